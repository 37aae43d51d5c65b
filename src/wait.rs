//! The init's one blocking call: sleep until a signal, a control client, a
//! kit descriptor or a deadline needs undead, then collect what happened
//! as events, in the order the loop applies them (`event.rs`).
//!
//! Idle with nothing to time and no FUSE connection, everything that can
//! happen arrives as a signal (the control socket's readiness too, by
//! F_SETSIG, `control.rs`), so one blocking read(2) of the signalfd is the
//! whole wait: no periodic wake-up, two syscalls per forwarded signal or
//! reaped orphan. Otherwise `poll` watches the signalfd and every source's
//! descriptors until the first deadline.

use std::os::fd::AsFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;

use crate::chaos::{Kit, KitEvent};
use crate::control::Server;
use crate::event::Event;
use crate::log::error;
use crate::signals;
use crate::source::Source;

/// Wait, then return what happened: the signals read, then the kit's
/// events, then the complete control requests, then `Deadline` if `own`
/// (the init's own first deadline) is due. Each source is served only when
/// it is ready or due.
pub fn wait_for_events(
    sigfd: &SignalFd,
    control: Option<&mut Server>,
    kit: &mut Kit,
    own: Option<Instant>,
) -> Vec<Event> {
    let next = [own, kit.next_deadline()]
        .into_iter()
        .chain([control.as_deref().and_then(Source::next_deadline)])
        .flatten()
        .min();
    let ready = match next {
        None if !kit.has_fuse() => {
            Ready { signals: true, control: false, kit: false }
        }
        _ => poll_all(sigfd, control.as_deref(), kit, timeout_until(next)),
    };
    let now = Instant::now();
    let mut events = Vec::new();
    let mut asked = ready.control;
    if ready.signals {
        for got in signals::read_pending(sigfd) {
            if got.is_control_event() {
                asked = true;
            } else {
                events.push(Event::Signal(got));
            }
        }
    }
    // A victim's exit (SIGCHLD) may finish a released FUSE connection.
    // An idle kit (nothing held, nothing in progress) has nothing to do.
    let busy = !kit.is_idle();
    if busy && (ready.kit || ready.signals || is_due(&*kit, now)) {
        events.extend(kit.service(now).into_iter().map(|e| match e {
            KitEvent::Expired(pids) => Event::Expired(pids),
            KitEvent::Created(op, made) => Event::Finished(op, Some(made)),
            KitEvent::Released(op) => Event::Finished(op, None),
        }));
    }
    if let Some(server) = control {
        // Stalled clients may have reached their deadline.
        if asked || is_due(&*server, now) {
            // A fresh clock: the kit's turn above may have taken a while,
            // and a client accepted now must get its whole time to send.
            let requests = server.service(Instant::now()).into_iter();
            events.extend(requests.map(|(c, a)| Event::Request(c, a)));
        }
    }
    if own.is_some_and(|at| at <= now) {
        events.push(Event::Deadline(now));
    }
    events
}

/// Which inputs the wait found ready.
struct Ready {
    signals: bool,
    control: bool,
    kit: bool,
}

/// `poll` the signalfd, the control socket and the kit.
fn poll_all(
    sigfd: &SignalFd,
    control: Option<&Server>,
    kit: &Kit,
    timeout: PollTimeout,
) -> Ready {
    let input = |fd| PollFd::new(fd, PollFlags::POLLIN);
    let control_fds: Vec<PollFd> = control
        .map(|c| {
            let out = c.writable_fds().into_iter();
            let out = out.map(|fd| PollFd::new(fd, PollFlags::POLLOUT));
            c.fds().into_iter().map(input).chain(out).collect()
        })
        .unwrap_or_default();
    let n_control = control_fds.len();
    let mut fds: Vec<PollFd> = std::iter::once(input(sigfd.as_fd()))
        .chain(control_fds)
        .chain(kit.fds().into_iter().map(input))
        .collect();
    if let Err(e) = poll(&mut fds, timeout) {
        if e != Errno::EINTR {
            error!("poll failed: {}", e.desc());
        }
    }
    let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
    Ready {
        signals: ready(&fds[0]),
        control: fds[1..=n_control].iter().any(ready),
        kit: fds[n_control + 1..].iter().any(ready),
    }
}

/// The poll timeout until `at`, rounded up so undead never wakes just
/// before a deadline; none without a deadline.
fn timeout_until(at: Option<Instant>) -> PollTimeout {
    let Some(at) = at else { return PollTimeout::NONE };
    let left = at.saturating_duration_since(Instant::now());
    let ms =
        left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Whether `source` has a deadline at or before `now`.
fn is_due(source: &impl Source, now: Instant) -> bool {
    source.next_deadline().is_some_and(|at| at <= now)
}
