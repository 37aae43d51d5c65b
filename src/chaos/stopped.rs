//! `stopped N`: processes in state T (SIGSTOP). A stopped process acts on
//! no signal but SIGKILL and SIGCONT: a SIGTERM sent to it stays pending
//! (`/proc/PID/status` ShdPnd) until SIGCONT lets it run and take it
//! (`signal(7)`; `kernel/signal.c`, `do_signal_stop`), whatever its
//! disposition. A stop sequence without SIGCONT after SIGTERM (s6 and
//! systemd send it) waits for the runtime's SIGKILL.
//!
//! Each process stops itself (`kill(getpid(), SIGSTOP)`) with default
//! dispositions, so the TERM that CONT releases ends it (signal 15). What
//! saves us when undead is SIGKILLed: PR_SET_PDEATHSIG(SIGKILL), which a
//! stopped process acts on (SIGKILL wakes stopped tasks).

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getpid};

use crate::procfs;
use crate::sys;

/// Fork `n` processes that stop themselves.
pub fn spawn(n: usize) -> (Vec<Pid>, Option<Errno>) {
    super::fork::spawn_each(n, true, &|| {
        sys::set_comm(c"undead-stopped");
        let _ = kill(getpid(), Signal::SIGSTOP);
        sys::pause_forever()
    })
}

/// The promised state: T in /proc/PID/stat.
pub fn ready(pid: Pid) -> bool {
    procfs::state_of(pid) == Some('T')
}
