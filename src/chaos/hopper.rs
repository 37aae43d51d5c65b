//! `hopper N --every D`: N lines of processes, each forking its successor
//! and exiting every D, so every hopper's PID keeps changing. A
//! kill-by-PID loop chases them and loses (runc#1180 made `runc kill
//! --all` freeze first for them; nomad#14371, youki#1204); a group-wide
//! signal, a PID namespace's death, `cgroup.kill` or a freezer catch them.
//!
//! All lines of one creation share one process group (of their own, so a
//! `-g` kill of the child's group misses them too). Release SIGKILLs the
//! group until no live member is left: a fork racing a group-wide fatal
//! signal is restarted by the kernel and its child never runs
//! (`copy_process` checks `fatal_signal_pending` after linking the child
//! into the group, `kernel/fork.c`). The exited predecessors are orphans
//! that land on undead and are reaped by its drain (or withheld).
//!
//! A hopper whose fork fails (EAGAIN at `pids.max`) stays and tries again
//! D later: the lines keep their number or stop, they never fail later.
//! What saves us when undead is SIGKILLed: no PR_SET_PDEATHSIG (it would
//! fire at every hop, when the predecessor exits); instead every hopper
//! checks before each hop that its parent is still its predecessor or
//! undead, and exits otherwise: as PID 1 the namespace dies anyway, as a
//! subreaper the lines end within one period.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{self, ForkResult, Pid};

use crate::procfs;
use crate::reaper;
use crate::sys;

/// The lines of one creation: their process group.
#[derive(Debug)]
pub struct Lines {
    pub pgid: Pid,
    pub n: usize,
}

/// Fork `n` lines hopping every `every`, in one new process group.
pub fn spawn(n: usize, every: Duration) -> (Option<Lines>, Option<Errno>) {
    let undead = unistd::getpid();
    let mut pgid: Option<Pid> = None;
    let mut made = 0;
    for _ in 0..n {
        let target = pgid.unwrap_or(Pid::from_raw(0));
        let (pids, errno) = super::fork::spawn_each(1, false, &|| {
            // Both sides set the group (as shells do): whichever runs
            // first, the line is in it before its first hop.
            let _ = unistd::setpgid(Pid::from_raw(0), target);
            sys::set_comm(c"undead-hopper");
            hop_forever(undead, every)
        });
        if let Some(&pid) = pids.first() {
            let _ = unistd::setpgid(pid, pgid.unwrap_or(pid));
            pgid.get_or_insert(pid);
            made += 1;
        }
        if let Some(e) = errno {
            return (pgid.map(|pgid| Lines { pgid, n: made }), Some(e));
        }
    }
    (pgid.map(|pgid| Lines { pgid, n: made }), None)
}

/// The life of a line: wait, fork the successor, exit. Async-signal-safe
/// calls only (a forked copy of undead).
fn hop_forever(undead: Pid, every: Duration) -> ! {
    let mut parent = unistd::getppid();
    loop {
        std::thread::sleep(every);
        let now = unistd::getppid();
        if now != parent && now != undead {
            sys::exit_now(0); // undead is gone
        }
        match sys::fork() {
            Ok(ForkResult::Parent { .. }) => sys::exit_now(0),
            Ok(ForkResult::Child) => parent = unistd::getppid(),
            Err(_) => {} // pids.max: stay, try again
        }
    }
}

impl Lines {
    /// The members of the group under undead, live or not. A hopper is
    /// undead's child, or its predecessor's while both live. A walk of
    /// the whole tree is slower than a hop with many processes under
    /// undead, and a line whose predecessor exits meanwhile moves to
    /// undead's children already read: it would be missed (status then
    /// lists fewer lines than there are). So only these two levels are
    /// read (held zombie clones skipped by one `waitid`, not read), and
    /// undead's children once more after: those new since are the
    /// successors of hoppers that exited meanwhile.
    fn members(&self) -> Vec<(Pid, char)> {
        let me = unistd::getpid();
        let member = |p: Pid| -> Option<(Pid, char)> {
            if reaper::is_zombie_clone(p) {
                return None;
            }
            let (group, _) = procfs::group_and_session(p)?;
            (group == self.pgid).then_some((p, procfs::state_of(p)?))
        };
        let Some(mut first) = procfs::children(me) else {
            // No children files (CONFIG_PROC_CHILDREN): every process.
            let all = procfs::snapshot().into_iter().map(|p| p.pid);
            return all.filter_map(member).collect();
        };
        let mut out: Vec<(Pid, char)> = Vec::new();
        let mut add = |m: (Pid, char)| {
            if !out.iter().any(|&(p, _)| p == m.0) {
                out.push(m);
            }
        };
        for &p in &first {
            if let Some(m) = member(p) {
                add(m);
                let kids = procfs::children(p).unwrap_or_default();
                kids.into_iter().filter_map(member).for_each(&mut add);
            }
        }
        first.sort_unstable();
        let later = procfs::children(me).unwrap_or_default();
        let new =
            later.into_iter().filter(|p| first.binary_search(p).is_err());
        new.filter_map(member).for_each(&mut add);
        out
    }

    /// The hoppers alive now (up to 2N while successors are born).
    pub fn live(&self) -> Vec<Pid> {
        let dead = |s: char| matches!(s, 'Z' | 'X');
        self.members()
            .into_iter()
            .filter(|&(_, s)| !dead(s))
            .map(|(p, _)| p)
            .collect()
    }

    /// At most one pid per line, the newest: a hopper whose successor is
    /// born but which has not exited yet is not listed, so `status` and
    /// `wait --hopper` never count a line twice. The walk is not atomic (a
    /// predecessor read live, then its successor read reparented), so the
    /// count is capped at N too, the highest pids kept.
    pub fn newest(&self) -> Vec<Pid> {
        let live = self.live();
        let parents: Vec<Pid> = live
            .iter()
            .filter_map(|&p| procfs::read_proc(p).map(|q| q.ppid))
            .collect();
        let mut out: Vec<Pid> =
            live.into_iter().filter(|p| !parents.contains(p)).collect();
        out.sort_unstable();
        out.reverse();
        out.truncate(self.n);
        out
    }

    /// The promised state: N live hoppers named `undead-hopper`, one per
    /// line (`newest`: a line caught mid-hop, predecessor and successor
    /// both live, counts once, as `status` and `wait` count it).
    pub fn ready(&self) -> bool {
        let named = |p: &Pid| super::fork::named(*p, "undead-hopper");
        self.newest().iter().filter(|p| named(p)).count() >= self.n
    }

    /// SIGKILL the group until no live member is left (at most `wait`),
    /// reaping those killed; returns them.
    pub fn release(&self, wait: Duration) -> Vec<Pid> {
        let me = unistd::getpid();
        let deadline = std::time::Instant::now() + wait;
        let mut killed: Vec<Pid> = Vec::new();
        loop {
            let live = self.live();
            if kill(Pid::from_raw(-self.pgid.as_raw()), Signal::SIGKILL)
                == Err(Errno::ESRCH)
            {
                break;
            }
            for p in live {
                if !killed.contains(&p) {
                    killed.push(p);
                }
            }
            for (p, s) in self.members() {
                let ours = procfs::read_proc(p).is_some_and(|q| q.ppid == me);
                if s == 'Z' && ours && killed.contains(&p) {
                    reaper::reap_pid(p, false);
                }
            }
            let any_live = !self.live().is_empty();
            let reaping =
                killed.iter().any(|&p| procfs::state_of(p).is_some());
            if (!any_live && !reaping) || std::time::Instant::now() >= deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        killed
    }
}
