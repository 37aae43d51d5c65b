//! Reaping: becoming the reaper of orphans (subreaper), the `waitpid`
//! drain, the mapping of a wait status to an exit code, and the one
//! explicit exception, withheld reaping.
//!
//! Invariants:
//! * SIGCHLD is a hint: the drain loops `waitpid(-1, WNOHANG)` until it
//!   returns 0 or ECHILD, because standard signals do not queue and one
//!   SIGCHLD may stand for many exits (catatonit e4c14f5).
//! * The main child's status is learnt only here, from `waitpid`, never
//!   from SIGCHLD's siginfo.
//! * Zombies the kit holds are "clone children" (exit signal 0): a plain
//!   `waitpid(-1)` without `__WALL`/`__WCLONE` never returns them (`wait(2)`),
//!   so the drain cannot steal them.

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::Error;
use crate::log::{error, info};

/// How the main child ended, as undead will report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(Signal),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exited with {c}"),
            ChildExit::Signal(s) => write!(f, "was killed by {s}"),
        }
    }
}

impl ChildExit {
    /// sh's convention: the code itself, or 128+N for signal N.
    pub fn code(self) -> u8 {
        match self {
            ChildExit::Code(c) => (c & 0xff) as u8,
            ChildExit::Signal(s) => (128 + s as i32) as u8,
        }
    }
}

/// What one drain found.
#[derive(Debug, Default)]
pub struct Drained {
    pub child: Option<ChildExit>,
    /// Other processes reaped (orphans that landed on undead, kit holders).
    pub others: Vec<Pid>,
}

/// Whether orphans are reaped (`--withhold-reaping` turns it off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    ReapAll,
    /// Reap only the main child; every other zombie stays Z.
    Withhold,
}

/// Reap what can be reaped now; never blocks. `child` is the main child
/// whose status undead still waits for, if any.
pub fn reap_zombies(child: Option<Pid>, policy: Policy) -> Drained {
    let mut out = Drained::default();
    match policy {
        Policy::ReapAll => {
            while let Some((pid, exit)) = reap_one(None) {
                record(&mut out, child, pid, exit);
            }
        }
        // Withheld reaping must name the child: `waitpid(-1)` reaps
        // whichever zombie comes first (`wait(2)`), so it would also take
        // the orphans we promised to leave in Z.
        Policy::Withhold => {
            if let Some((pid, exit)) = child.and_then(|c| reap_one(Some(c))) {
                record(&mut out, child, pid, exit);
            }
        }
    }
    out
}

fn record(
    out: &mut Drained,
    child: Option<Pid>,
    pid: Pid,
    exit: Option<ChildExit>,
) {
    match exit {
        Some(exit) if Some(pid) == child => out.child = Some(exit),
        _ => out.others.push(pid),
    }
}

/// One `waitpid(pid or -1, WNOHANG)`: `None` once nothing is left to reap.
fn reap_one(pid: Option<Pid>) -> Option<(Pid, Option<ChildExit>)> {
    loop {
        return match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) => {
                Some((p, Some(ChildExit::Code(code))))
            }
            Ok(WaitStatus::Signaled(p, sig, _)) => {
                Some((p, Some(ChildExit::Signal(sig))))
            }
            // Without WUNTRACED/WCONTINUED no stop or continue is reported;
            // anything else means nothing to reap now.
            Ok(_) | Err(Errno::ECHILD) => None,
            Err(Errno::EINTR) => continue,
            Err(_) => None,
        };
    }
}

/// Reap one specific process if it has exited (used for kit holders and
/// zombies, including clone children with `__WCLONE`). Never blocks.
pub fn reap_pid(pid: Pid, clone_child: bool) -> bool {
    let mut flags = WaitPidFlag::WNOHANG;
    if clone_child {
        flags |= WaitPidFlag::__WCLONE;
    }
    matches!(
        waitpid(pid, Some(flags)),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
            | Err(Errno::ECHILD)
    )
}

/// Whether a clone child (exit signal 0) is a zombie now, without reaping
/// it (`child_state` with `__WCLONE`).
pub fn is_zombie_clone(pid: Pid) -> bool {
    child_state(pid, WaitPidFlag::__WCLONE) == Some(false)
}

/// Whether `pid`, a child of undead of any kind, is alive (`child_state`
/// with `__WALL`).
pub fn child_alive(pid: Pid) -> Option<bool> {
    child_state(pid, WaitPidFlag::__WALL)
}

/// Whether the child `pid` (of the kind `kind` selects) is alive:
/// `Some(false)` if it has exited (a zombie: `waitid(P_PID, pid, WEXITED |
/// WNOHANG | WNOWAIT)` reports only a child whose exit state is
/// EXIT_ZOMBIE, and leaves it so), `Some(true)` if not, `None` if it is no
/// such child of undead (gone). The same fact as a 'Z' in /proc/PID/stat,
/// for one syscall instead of an open, a read and a close. Never blocks.
fn child_state(pid: Pid, kind: WaitPidFlag) -> Option<bool> {
    use nix::sys::wait::{Id, waitid};
    let flags =
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(pid), flags | kind) {
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => Some(false),
        Ok(_) => Some(true),
        Err(_) => None,
    }
}

/// Whether undead has any child left, of any kind, without reaping:
/// `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT | __WALL)` fails with ECHILD
/// only when there is none (`wait(2)`); any other error counts as a child
/// (the safe side: a walk). What `--wait-all` waits on when /proc is not
/// ours; at exit, for a subreaper, none means no descendant at all (one
/// would have been reparented to undead when its parent died).
pub fn has_children() -> bool {
    use nix::sys::wait::{Id, waitid};
    let flags = WaitPidFlag::WEXITED
        | WaitPidFlag::WNOHANG
        | WaitPidFlag::WNOWAIT
        | WaitPidFlag::__WALL;
    loop {
        return match waitid(Id::All, flags) {
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => false,
            Err(_) | Ok(_) => true,
        };
    }
}

/// `-e CODE`: report these codes as 0 (tini's `-e`).
pub fn remap(code: u8, remapped: &[u8]) -> u8 {
    if remapped.contains(&code) { 0 } else { code }
}

/// As PID 1 undead already reaps the namespace; otherwise orphans reach it
/// only if it is a child subreaper (`PR_SET_CHILD_SUBREAPER`, Linux 3.4).
/// `-s` makes a failure fatal, as in tini.
pub fn become_subreaper(insist: bool, is_pid1: bool) -> Result<(), Error> {
    if is_pid1 && !insist {
        return Ok(());
    }
    match prctl::set_child_subreaper(true) {
        Ok(()) => {
            info!("registered as a child subreaper");
            Ok(())
        }
        Err(e) if insist => Err(Error::Subreaper(e)),
        Err(e) => {
            error!("failed to become a child subreaper: {}", e.desc());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_sh() {
        assert_eq!(ChildExit::Code(0).code(), 0);
        assert_eq!(ChildExit::Code(255).code(), 255);
        assert_eq!(ChildExit::Code(256 + 3).code(), 3);
        assert_eq!(ChildExit::Signal(Signal::SIGTERM).code(), 143);
        assert_eq!(ChildExit::Signal(Signal::SIGKILL).code(), 137);
        assert_eq!(ChildExit::Signal(Signal::SIGHUP).code(), 129);
    }

    #[test]
    fn remap_only_listed_codes() {
        assert_eq!(remap(143, &[143]), 0);
        assert_eq!(remap(1, &[143]), 1);
        assert_eq!(remap(0, &[]), 0);
    }
}
