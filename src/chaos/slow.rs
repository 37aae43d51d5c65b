//! `slow N --exit-after D`: processes that exit with status 0 D after
//! SIGTERM or SIGINT, as a server that drains its connections first: the
//! stop takes D however early the signal comes, and a grace period shorter
//! than D ends in SIGKILL.
//!
//! Each process blocks TERM and INT and waits for one in `sigwait(3)`
//! (state S), then sleeps D and `_exit(0)`s; a second TERM during the
//! drain stays pending. SIGKILL ends it at any time. What saves us when
//! undead is SIGKILLed: PR_SET_PDEATHSIG(SIGKILL).

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::sys;

fn drain_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Fork `n` processes that exit 0 `exit_after` after TERM or INT.
pub fn spawn(n: usize, exit_after: Duration) -> (Vec<Pid>, Option<Errno>) {
    let set = drain_signals();
    super::fork::spawn_each(n, true, &move || {
        let _ = sys::set_mask(SigmaskHow::SIG_BLOCK, &set);
        sys::set_comm(c"undead-slow");
        while set.wait().is_err() {}
        std::thread::sleep(exit_after);
        sys::exit_now(0)
    })
}

/// The promised state: TERM and INT caught. It names itself right after
/// blocking them, so the name means a TERM from now on is taken by
/// `sigwait` (SigBlk itself cannot show it: `do_sigtimedwait` unblocks
/// the awaited signals while it sleeps).
pub fn ready(pid: Pid) -> bool {
    super::fork::named(pid, "undead-slow")
}
