//! Teardown: what undead does to the descendants left when it stops.
//!
//! The stop sequence (as systemd and s6 do it): a SIGTERM-class signal is
//! followed by SIGCONT to the same target, because a stopped process holds
//! a TERM pending (SigPnd/ShdPnd) until it is continued, so without the
//! CONT it would wait for the runtime's SIGKILL (`signal(7)`: stopped
//! processes do not act on signals but SIGKILL). With `--wait-all`, once
//! the child has exited, every remaining descendant that undead does not
//! hold gets the same TERM and CONT; after `--grace`, SIGKILL.
//!
//! Finding them: as PID 1, `kill(-1)` reaches every process of the
//! namespace but undead (`kill(2)`), and the kernel never lets a fork
//! complete with a fatal signal pending (`copy_process` fails with
//! ERESTARTNOINTR), so one call leaves no late fork behind. As a
//! subreaper, they are found in /proc (the children files), and a process
//! that forks as it is killed can put a child out of the scan's sight:
//! the final kill repeats until a scan finds nothing.
//!
//! Without this namespace's /proc (see `procfs::not_ours`), pids read
//! there name other processes: nothing is looked up; as PID 1 `kill(-1)`
//! still works, as a subreaper only the child's process group is reached.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use crate::procfs;
use crate::reaper;
use crate::signals;

/// Who undead's teardown may signal.
pub struct Scope {
    pub me: Pid,
    pub is_pid1: bool,
    /// /proc is this PID namespace's.
    pub proc_ok: bool,
    /// The child's process group (it leads it), if there is a child.
    pub child_group: Option<Pid>,
    /// Left alone (sorted): what the kit holds (released, not killed) and
    /// `undead-guard`.
    pub spare: Vec<Pid>,
    /// The kit's zombies (sorted): no children to look for under them.
    pub zombies: Vec<Pid>,
}

impl Scope {
    /// Whether any descendant is left: one found, or a tree that kept
    /// changing under the walk (processes forking and exiting: there are
    /// some, even if each one the walk saw is gone by now).
    pub fn any_left(&self) -> bool {
        self.proc_ok
            && procfs::any_descendant(self.me, &self.zombies, |p| {
                self.is_left(p)
            })
    }

    /// Live descendants (zombies excluded: they are reaped or withheld)
    /// other than the spared ones, and whether the walk settled.
    fn scan(&self) -> (Vec<Pid>, bool) {
        if !self.proc_ok {
            return (Vec::new(), true);
        }
        procfs::descendants_where(self.me, &self.zombies, |p| self.is_left(p))
    }

    /// Alive (zombies are reaped or withheld) and not spared.
    fn is_left(&self, pid: Pid) -> bool {
        !self.spared(pid) && procfs::state_of(pid).is_some_and(|s| s != 'Z')
    }

    fn spared(&self, pid: Pid) -> bool {
        self.spare.binary_search(&pid).is_ok()
    }

    /// The stop sequence's TERM: `sig`, then SIGCONT, to every remaining
    /// descendant. Returns how many were found.
    pub fn terminate(&self, sig: Signal) -> usize {
        self.send(&[sig, Signal::SIGCONT])
    }

    /// SIGKILL every remaining descendant; returns how many were found, at
    /// least 1 while the tree keeps changing (as PID 1, where `kill(-1)`
    /// reaches them without a count, 0).
    pub fn kill_all(&self) -> usize {
        self.send(&[Signal::SIGKILL])
    }

    /// Any other signal (`--wait-all` forwards them to the stragglers once
    /// the child has exited).
    pub fn signal(&self, sig: Signal) -> usize {
        self.send(&[sig])
    }

    /// As PID 1, one `kill(-1)` when it spares nothing that must be
    /// spared: for SIGKILL (held processes are released at exit anyway),
    /// or when nothing is held.
    fn send(&self, sigs: &[Signal]) -> usize {
        let everyone = self.is_pid1
            && (!self.proc_ok
                || self.spare.is_empty()
                || sigs == [Signal::SIGKILL]);
        let target = if everyone { Some(-1) } else { self.group() };
        if everyone || !self.proc_ok {
            for &sig in sigs {
                target.map(|t| kill(Pid::from_raw(t), sig));
            }
            return 0;
        }
        let Some(before) = procfs::children(self.me) else {
            // No children files (CONFIG_PROC_CHILDREN): a full scan.
            let (left, settled) = self.scan();
            for (&pid, &sig) in
                left.iter().flat_map(|p| sigs.iter().map(move |s| (p, s)))
            {
                let _ = kill(pid, sig);
            }
            return left.len() + usize::from(!settled);
        };
        let found = self.walk_and_send(sigs);
        found + usize::from(procfs::children(self.me) != Some(before))
    }

    /// Signal each descendant as soon as the walk sees it, before reading
    /// its own children: a process that has a fatal signal pending can no
    /// longer complete a fork (`copy_process`), so the only child it can
    /// still hide is one forked in the instant between the read of its
    /// parent's children file and the kill. Returns how many of them are
    /// still alive (not yet a zombie) after the signals.
    fn walk_and_send(&self, sigs: &[Signal]) -> usize {
        let mut queue = vec![self.me];
        let mut alive = 0;
        let mut group_killed = false;
        while let Some(parent) = queue.pop() {
            let kids = procfs::children(parent).unwrap_or_default();
            for kid in kids.into_iter().filter(|&p| !self.spared(p)) {
                for &sig in sigs {
                    let _ = kill(kid, sig);
                }
                if !group_killed && sigs == [Signal::SIGKILL] {
                    group_killed = self.kill_child_group(kid);
                }
                // A zombie (or a process gone) has no children left to
                // walk: they moved to undead when it died. For undead's own
                // children one `waitid` tells a zombie; one it calls alive
                // is read too (a zombie traced by another process is hidden
                // from its parent's wait until the tracer lets go).
                let live = (parent != self.me
                    || reaper::child_alive(kid) == Some(true))
                    && procfs::state_of(kid).is_some_and(|s| s != 'Z');
                if live {
                    alive += 1;
                    queue.push(kid);
                }
            }
        }
        alive
    }

    /// SIGKILL the child's whole process group once a descendant shows it
    /// is still in use (so the id is not a reused one): a group-wide
    /// signal is atomic against fork (a fork racing it restarts, and the
    /// child is never born: `copy_process`, `multiprocess` signals), so
    /// processes that fork as they are killed, and stay in the child's
    /// group as they do by default, all go at once instead of one scan at a
    /// time. Nothing spared lives there: the kit's processes are undead's
    /// children, in undead's group or a session of their own.
    fn kill_child_group(&self, seen: Pid) -> bool {
        let Some(group) = self.child_group else { return false };
        if nix::unistd::getpgid(Some(seen)) != Ok(group) {
            return false;
        }
        let _ = kill(Pid::from_raw(-group.as_raw()), Signal::SIGKILL);
        true
    }

    fn group(&self) -> Option<i32> {
        self.child_group.map(|g| -g.as_raw())
    }
}

/// Kill until a scan finds nothing: SIGKILL every remaining descendant,
/// then `settle(timeout)` (reap, wait for the next SIGCHLD at most
/// `timeout`: see `wait_for_signal`) before the next round, at most
/// `limit` in all. A killed grandchild reaches undead only when its parent
/// dies and the kernel reparents it, and a process forked as its parent
/// was killed is seen only by the next scan.
pub fn kill_until_none(
    scope: &Scope,
    limit: Duration,
    mut settle: impl FnMut(Duration),
) {
    let deadline = Instant::now() + limit;
    while scope.kill_all() > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // A dying process may show (not yet Z) for a moment after its
        // SIGCHLD-less siblings: look again within 10 ms regardless.
        settle(left.min(Duration::from_millis(10)));
    }
    settle(Duration::ZERO);
}

/// Wait at most `timeout` for a signal (SIGCHLD, in practice) and drop
/// what is pending: at exit nothing but reaping is left to do with it.
pub fn wait_for_signal(sigfd: &SignalFd, timeout: Duration) {
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
    if matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(1..)) {
        let _ = signals::read_pending(sigfd);
    }
}
