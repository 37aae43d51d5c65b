//! Fork and exec of the main child.
//!
//! Between fork and exec the child runs only async-signal-safe calls
//! (syscall wrappers; no allocation, no locks): everything it needs, argv
//! included, is prepared before fork.
//!
//! In the child, in this order:
//! 1. its own session when stdin is not a terminal (dumb-init's default),
//!    its own process group in undead's session when it is (tini's);
//!    `--setsid`/`--no-setsid` choose either way (`choose_group`);
//! 2. if stdin is a terminal, it takes the terminal's foreground (tini:
//!    `tcsetpgrp`; `--setsid`: `TIOCSCTTY`), so Ctrl-C/Ctrl-Z reach it.
//!    Signals are still blocked here, and a blocked SIGTTOU lets a
//!    background process call `tcsetpgrp` (`tty_check_change`);
//! 3. when undead is not PID 1, PR_SET_PDEATHSIG(SIGKILL), so even a
//!    SIGKILLed undead leaves no running child; then it re-checks its
//!    parent, closing the race with a parent that died before the prctl;
//! 4. the inherited signal mask is restored (the mask survives `execve(2)`);
//! 5. execvp; on failure one line on stderr and `_exit(127)` for ENOENT,
//!    `_exit(126)` otherwise, as `sh` does.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{self, ForkResult, Pid};

use crate::error::Error;
use crate::signals::{self, ChildSignalState};
use crate::sys::{self, ExecArgs};

/// Where the child's process group lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A new process group in undead's session (tini).
    ProcessGroup,
    /// A new session (dumb-init).
    Session,
}

/// The child's group. Without a terminal there is no job control to keep,
/// and a session of its own puts the child in a scheduler autogroup of its
/// own (`setsid(2)` → `sched_autogroup_create_attach`, when
/// `kernel.sched_autogroup_enabled` is 1): a signal forwarded by undead
/// wakes it in another group, which preempts sooner (README, signal
/// latency). With a terminal the child must be in undead's session to
/// take its foreground group (Ctrl-C, Ctrl-Z), as under tini.
/// The cost without a terminal: the child's group is orphaned (its parent
/// is in another session), so the kernel discards SIGTSTP/SIGTTIN/SIGTTOU
/// sent to a member that has them at their default (`kernel/signal.c`,
/// `is_current_pgrp_orphaned`); `--no-setsid` keeps tini's behaviour.
pub fn choose_group(setsid: Option<bool>, tty: bool) -> Group {
    match setsid {
        Some(true) => Group::Session,
        Some(false) => Group::ProcessGroup,
        None if tty => Group::ProcessGroup,
        None => Group::Session,
    }
}

pub struct SpawnPlan<'a> {
    pub argv: &'a [String],
    pub group: Group,
    /// Kill the child when undead dies (set when undead is not PID 1).
    pub die_with_parent: bool,
    pub signals: &'a ChildSignalState,
}

/// Fork the main child and exec the command in it.
pub fn spawn_child(plan: &SpawnPlan<'_>) -> Result<Pid, Error> {
    let argv0 = plan.argv.first().cloned().unwrap_or_default();
    let args = ExecArgs::new(plan.argv)
        .map_err(|errno| Error::Spawn { argv0: argv0.clone(), errno })?;
    let prefix = format!("undead: cannot run '{argv0}': ");
    let tty = std::io::stdin().is_terminal();
    if tty && plan.group == Group::Session {
        let _ = sys::detach_controlling_tty(std::io::stdin().as_fd());
    }
    let parent = unistd::getpid();
    match sys::fork() {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            exec_child(plan, &args, prefix.as_bytes(), tty, parent)
        }
        Err(errno) => Err(Error::Spawn { argv0, errno }),
    }
}

/// The child side; never returns. Async-signal-safe only.
fn exec_child(
    plan: &SpawnPlan<'_>,
    args: &ExecArgs,
    prefix: &[u8],
    tty: bool,
    parent: Pid,
) -> ! {
    let stdin = std::io::stdin();
    match plan.group {
        Group::ProcessGroup => {
            let _ = unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            if tty {
                let _ = unistd::tcsetpgrp(&stdin, unistd::getpgrp());
            }
        }
        Group::Session => {
            let _ = unistd::setsid();
            if tty {
                // Fails when the terminal is already another session's
                // controlling terminal; dumb-init goes on without it too.
                let _ =
                    sys::set_controlling_tty(std::os::fd::AsFd::as_fd(&stdin));
            }
        }
    }
    if plan.die_with_parent {
        let _ = prctl::set_pdeathsig(Signal::SIGKILL);
        if unistd::getppid() != parent {
            sys::exit_now(1);
        }
    }
    signals::restore_signal_state(plan.signals);
    let errno = sys::execvp(args);
    sys::write_stderr(&[prefix, errno.desc().as_bytes(), b"\n"]);
    sys::exit_now(if errno == Errno::ENOENT { 127 } else { 126 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_without_a_terminal_unless_told() {
        use Group::{ProcessGroup as Pg, Session as Ss};
        let table = [
            (None, false, Ss),
            (None, true, Pg),
            (Some(true), false, Ss),
            (Some(true), true, Ss),
            (Some(false), false, Pg),
            (Some(false), true, Pg),
        ];
        for (setsid, tty, want) in table {
            assert_eq!(choose_group(setsid, tty), want, "{setsid:?} {tty}");
        }
    }
}
