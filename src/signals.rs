//! Signal setup and the pure decision of what each received signal means.
//!
//! undead installs no signal handler at all: it blocks every catchable
//! signal and reads them from a signalfd in its one blocking `poll`, so idle
//! it sleeps in the kernel with no periodic wake-up. Blocked signals are
//! still queued, and a blocked SIGTTOU/SIGTTIN counts as ignored for the
//! TTY job-control checks (`tty_check_change`), so undead may write to a
//! terminal it does not own in the foreground.
//!
//! Invariants: fault signals (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT) stay
//! unblocked so a bug in undead kills it loudly instead of looping on a
//! fault (catatonit's `kernel_signals`). The mask undead inherited is saved
//! and restored in the child before exec, because the mask survives
//! `execve(2)` (`signal(7)`).

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::action::Action;
use crate::error::Error;
use crate::sys;

/// Signals the kernel raises for our own faults: never blocked.
const FAULTS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGABRT,
];

/// What the child must get back before exec: the mask undead inherited.
/// undead changes no disposition (it installs no handler), so the
/// dispositions it inherited, SIG_IGN included, pass to the child as they
/// would without undead, exactly as tini restores what it found.
pub struct ChildSignalState {
    pub inherited_mask: SigSet,
}

/// `-r FROM:TO` rules, applied before forwarding (`None` drops).
pub type Rewrites = Vec<(Signal, Option<Signal>)>;

/// Block every catchable signal but the faults, and open the signalfd
/// that `poll` waits on. Returns the state the child must restore.
pub fn block_signals() -> Result<(SignalFd, ChildSignalState), Error> {
    let mut set = SigSet::all();
    for sig in FAULTS {
        set.remove(sig);
    }
    let inherited_mask =
        sys::set_mask(SigmaskHow::SIG_BLOCK, &set).map_err(Error::Signals)?;
    // Blocking: when nothing but signals can happen, undead sleeps in
    // read(2) on it (the control socket signals too, see `control.rs`).
    let flags = SfdFlags::SFD_CLOEXEC;
    let fd = SignalFd::with_flags(&set, flags).map_err(Error::Signals)?;
    Ok((fd, ChildSignalState { inherited_mask }))
}

/// One signal read from the signalfd: its number and sender.
pub struct Received {
    /// `Err(n)` for a real-time signal, which nix's `Signal` cannot name.
    pub signal: Result<Signal, u32>,
    pub sender: u32,
    /// `ssi_code`: > 0 when the kernel raised it (POLL_IN from F_SETSIG,
    /// 0x80 SI_KERNEL), <= 0 when a process sent it (SI_USER, SI_QUEUE).
    pub code: i32,
}

impl Received {
    /// The kernel saying a control socket is readable: our F_SETSIG
    /// signal, or SIGIO when the real-time queue overflowed (`fcntl(2)`),
    /// in both cases raised by the kernel, never by a process.
    pub fn is_control_event(&self) -> bool {
        let rt = u32::try_from(sys::control_signal()).unwrap_or(0);
        self.code > 0
            && (self.signal == Err(rt) || self.signal == Ok(Signal::SIGIO))
    }
}

/// Size of `struct signalfd_siginfo` (`signalfd(2)`).
const SIGINFO: usize = 128;
/// Signals read per read(2).
const BATCH: usize = 16;

/// Read the pending signals, up to `BATCH` `signalfd_siginfo` records per
/// read(2); a short read means the queue is empty. The signalfd blocks:
/// the first read waits for a signal, and after a full batch the next
/// read happens only if `poll` says more is queued.
pub fn read_pending(fd: &SignalFd) -> Vec<Received> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    let mut buf = [0u8; SIGINFO * BATCH];
    loop {
        if !out.is_empty() {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1..)) {
                return out;
            }
        }
        let n = match nix::unistd::read(fd, &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return out,
        };
        out.extend(buf[..n].chunks_exact(SIGINFO).map(parse_siginfo));
        if n < buf.len() {
            return out;
        }
    }
}

/// `ssi_signo` (u32 at 0), `ssi_code` (i32 at 8) and `ssi_pid` (u32 at
/// 12). Pure.
fn parse_siginfo(rec: &[u8]) -> Received {
    let u32_at = |at: usize| {
        rec.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_ne_bytes)
    };
    let signo = u32_at(0);
    Received {
        signal: i32::try_from(signo)
            .ok()
            .and_then(|n| Signal::try_from(n).ok())
            .ok_or(signo),
        sender: u32_at(12),
        code: u32_at(8) as i32,
    }
}

/// Restore in the (forked, not yet exec'd) child the mask undead found.
/// Async-signal-safe. sigprocmask fails only for an invalid `how`
/// (`sigprocmask(2)`), so there is nothing to report.
pub fn restore_signal_state(state: &ChildSignalState) {
    let _ = sys::set_mask(SigmaskHow::SIG_SETMASK, &state.inherited_mask);
}

/// Decide what a received signal means. Pure.
///
/// * SIGCHLD is only a hint to drain the reaper (one SIGCHLD may stand for
///   many exits).
/// * A signal undead raised on itself (`from_self`: SIGPIPE from a write to
///   a closed pipe, SIGTTOU from a terminal write) is not the user's and is
///   not forwarded.
/// * SIGTTIN/SIGTTOU are the terminal telling undead's own process group to
///   stop; forwarding them would stop the child for undead's sake (tini
///   ignores them for the same reason).
/// * SIGTERM/SIGINT as received start the shutdown grace (`--grace`), even
///   when `-r` forwards them as another signal.
/// * Everything else is forwarded after `-r` rewriting.
pub fn classify(sig: Signal, from_self: bool, rewrites: &Rewrites) -> Action {
    match sig {
        Signal::SIGCHLD => return Action::Reap,
        Signal::SIGTTIN | Signal::SIGTTOU => return Action::Ignore,
        _ if from_self => return Action::Ignore,
        _ => {}
    }
    let to = rewrites
        .iter()
        .find(|(from, _)| *from == sig)
        .map_or(Some(sig), |(_, to)| *to);
    match (sig, to) {
        (_, None) => Action::Ignore,
        (Signal::SIGTERM | Signal::SIGINT, Some(to)) => Action::Shutdown(to),
        (_, Some(to)) => Action::Forward(to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_has_one_meaning() {
        let none = Rewrites::new();
        for sig in Signal::iterator() {
            let got = classify(sig, false, &none);
            let want = match sig {
                Signal::SIGCHLD => Action::Reap,
                Signal::SIGTTIN | Signal::SIGTTOU => Action::Ignore,
                Signal::SIGTERM | Signal::SIGINT => Action::Shutdown(sig),
                _ => Action::Forward(sig),
            };
            assert_eq!(got, want, "{sig}");
            if sig != Signal::SIGCHLD {
                assert_eq!(
                    classify(sig, true, &none),
                    Action::Ignore,
                    "{sig}"
                );
            }
        }
    }

    #[test]
    fn siginfo_records() {
        let mut rec = [0u8; SIGINFO];
        rec[0..4].copy_from_slice(&15u32.to_ne_bytes());
        rec[12..16].copy_from_slice(&42u32.to_ne_bytes());
        let r = parse_siginfo(&rec);
        assert_eq!(r.signal, Ok(Signal::SIGTERM));
        assert_eq!(r.sender, 42);
        rec[0..4].copy_from_slice(&40u32.to_ne_bytes());
        assert_eq!(parse_siginfo(&rec).signal, Err(40));
    }

    #[test]
    fn rewrites_apply_before_forwarding() {
        let rules = vec![
            (Signal::SIGTERM, Some(Signal::SIGQUIT)),
            (Signal::SIGHUP, None),
            (Signal::SIGUSR1, Some(Signal::SIGUSR2)),
        ];
        let c = |s| classify(s, false, &rules);
        assert_eq!(c(Signal::SIGTERM), Action::Shutdown(Signal::SIGQUIT));
        assert_eq!(c(Signal::SIGHUP), Action::Ignore);
        assert_eq!(c(Signal::SIGUSR1), Action::Forward(Signal::SIGUSR2));
        assert_eq!(c(Signal::SIGUSR2), Action::Forward(Signal::SIGUSR2));
        assert_eq!(c(Signal::SIGCHLD), Action::Reap);
    }
}
