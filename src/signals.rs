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
    let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
    let fd = SignalFd::with_flags(&set, flags).map_err(Error::Signals)?;
    Ok((fd, ChildSignalState { inherited_mask }))
}

/// Restore in the (forked, not yet exec'd) child the mask undead found,
/// and SIGPIPE's default disposition. Async-signal-safe.
///
/// undead installs no handler, but Rust's runtime sets SIGPIPE to SIG_IGN
/// before `main`, and SIG_IGN survives `execve(2)`: without the reset every
/// command under undead would ignore SIGPIPE (`yes | head` would spin on
/// EPIPE instead of dying). std's `Command` resets it the same way. The
/// disposition undead itself inherited for SIGPIPE is lost by then; a
/// caller that ignored SIGPIPE gets the default in the child.
pub fn restore_signal_state(state: &ChildSignalState) {
    let _ = sys::default_disposition(Signal::SIGPIPE);
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
