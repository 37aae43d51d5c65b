//! Subreaper mode with `--guard` only: `undead-guard`, which outlives a
//! SIGKILLed undead just long enough to SIGKILL the child's process group.
//!
//! Off by default: tini's process tree has no helper, and tini's own tests
//! count init's descendants. Without the guard a SIGKILLed undead still
//! takes its child (PR_SET_PDEATHSIG, `spawn.rs`), not the grandchildren.
//! The kernel offers no invisible substitute: a process group or session
//! has no death signal, PR_SET_PDEATHSIG binds only the child undead forks
//! (and is cleared for the grandchildren: `fork(2)`), and a thread of
//! undead dies with it.
//!
//! When undead is not PID 1 and dies by SIGKILL, no code of its own runs.
//! The child dies by its parent-death signal (`spawn.rs`), but what the
//! child started is orphaned to undead's own reaper and would keep running.
//! The guard is a child of undead blocked in read(2) on a pipe whose only
//! write end undead holds (O_CLOEXEC; every kit process closes its
//! inherited descriptors). Any death of undead closes that end; read
//! returns 0 and the guard kills the child's process group (the child
//! leads it: `setpgid(0, 0)` or `setsid()`), then exits. A normal exit of
//! undead kills the guard with the other descendants first.
//!
//! The guard keeps undead's signal mask (every catchable signal blocked),
//! so a Ctrl-C or TERM sent to undead's group cannot end it early.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{self, ForkResult, Pid};

use crate::sys;

/// The guard's pid and undead's end of the lifeline.
pub struct Guard {
    pub pid: Pid,
    _lifeline: OwnedFd,
}

/// Fork the guard for the child's process group `group`.
pub fn spawn_guard(group: Pid) -> Result<Guard, nix::Error> {
    let (rd, wr) = unistd::pipe2(OFlag::O_CLOEXEC)?;
    match sys::fork()? {
        ForkResult::Child => run_guard(&rd, group),
        ForkResult::Parent { child } => {
            Ok(Guard { pid: child, _lifeline: wr })
        }
    }
}

/// The guard's side; never returns. Async-signal-safe syscalls only.
fn run_guard(lifeline: &OwnedFd, group: Pid) -> ! {
    sys::set_comm(c"undead-guard");
    // Drop every inherited descriptor, the write end included, or the
    // guard would keep its own lifeline open.
    let _ = sys::close_all_except(&mut [lifeline.as_raw_fd()]);
    let mut byte = [0u8; 1];
    // Returns 0 (EOF) once undead is gone; nobody ever writes.
    while let Err(nix::errno::Errno::EINTR) = unistd::read(lifeline, &mut byte)
    {
    }
    let _ = killpg(group, Signal::SIGKILL);
    sys::exit_now(0)
}
