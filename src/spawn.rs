//! Fork and exec of the main child.
//!
//! Between fork and exec the child runs only async-signal-safe calls
//! (syscall wrappers; no allocation, no locks): everything it needs, argv
//! included, is prepared before fork.
//!
//! In the child, in this order:
//! 1. its own process group (tini's default) or its own session
//!    (`--setsid`, dumb-init's default);
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
use nix::unistd::{self, ForkResult, Pid};

use crate::error::Error;
use crate::log::split_error_line;
use crate::signals::{self, ChildSignalState};
use crate::sys::{self, ExecArgs};

/// Where the child's process group lives. tini's process group is the
/// default with or without a terminal: a new session also puts the child
/// in a scheduler autogroup of its own (`setsid(2)`, when
/// `kernel.sched_autogroup_enabled` is 1 and the task is in the root CPU
/// cgroup), and that changed the signal latency one way or the other with
/// the machine's load (README, "Signal latency and the child's session"),
/// while it costs tini's semantics: the child's group would be orphaned,
/// so the kernel would discard a forwarded SIGTSTP (`kernel/signal.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A new process group in undead's session (tini).
    ProcessGroup,
    /// A new session (dumb-init).
    Session,
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
    let lines = ChildLines {
        cannot_run: split_error_line(&format!("cannot run '{argv0}': ")),
        no_terminal: split_error_line("cannot give the child the terminal: "),
    };
    let tty = std::io::stdin().is_terminal();
    if tty && plan.group == Group::Session {
        let _ = sys::detach_controlling_tty(std::io::stdin().as_fd());
    }
    let parent = unistd::getpid();
    match sys::fork() {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => exec_child(plan, &args, &lines, tty, parent),
        Err(errno) => Err(Error::Spawn { argv0, errno }),
    }
}

/// What the child may have to say, made before the fork (the child may
/// not allocate): each line's start and end, its errno between.
struct ChildLines {
    cannot_run: (Vec<u8>, &'static [u8]),
    no_terminal: (Vec<u8>, &'static [u8]),
}

impl ChildLines {
    /// Async-signal-safe.
    fn say(line: &(Vec<u8>, &'static [u8]), errno: Errno) {
        sys::write_stderr(&[&line.0, errno.desc().as_bytes(), line.1]);
    }
}

/// The child side; never returns. Async-signal-safe only.
fn exec_child(
    plan: &SpawnPlan<'_>,
    args: &ExecArgs,
    lines: &ChildLines,
    tty: bool,
    parent: Pid,
) -> ! {
    let stdin = std::io::stdin();
    // setpgid(0, 0) and setsid() cannot fail in a child just forked: it
    // leads no session (EPERM for setpgid) and no process group has its
    // pid (EPERM for setsid), `setpgid(2)`, `setsid(2)`.
    match plan.group {
        Group::ProcessGroup => {
            let _ = unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            if tty {
                take_terminal(&stdin, lines);
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
        sys::die_with_parent(parent);
    }
    signals::restore_signal_state(plan.signals);
    let errno = sys::execvp(args);
    ChildLines::say(&lines.cannot_run, errno);
    sys::exit_now(if errno == Errno::ENOENT { 127 } else { 126 })
}

/// Make the child's group the terminal's foreground group, as tini does.
/// ENOTTY (stdin is a terminal, but not undead's controlling one) and
/// ENXIO are fine, the child runs in the background of it (tini says so at
/// debug level only); anything else is said on stderr. Async-signal-safe.
fn take_terminal(stdin: &std::io::Stdin, lines: &ChildLines) {
    match unistd::tcsetpgrp(stdin, unistd::getpgrp()) {
        Ok(()) | Err(Errno::ENOTTY | Errno::ENXIO) => {}
        Err(e) => ChildLines::say(&lines.no_terminal, e),
    }
}
