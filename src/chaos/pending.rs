//! Kit operations in progress. PID 1 never blocks on the kit: a creation
//! or a release is state of the loop, advanced by `Kit::service` one
//! slice at a time (at most `SLICE` of forking, killing, reaping and
//! /proc reading), so signals are forwarded and children reaped between
//! slices. An operation is finished once its processes are observably in
//! state (created) or gone (released), or at its deadline; only then does
//! its client get the reply.
//!
//! A kind plugs in by what `Unit::check` says of one unit: ready (in its
//! promised state), not yet, or failed (it exited instead: a vfork holder
//! whose clone failed at `pids.max`). Units that miss the deadline stay
//! held, and are released like the others; they are never dropped while
//! they may still run.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::{Created, Kit, KitEvent, OBSERVE, Unit, shortfall, vfork, zombie};
use crate::procfs;
use crate::reaper;
use crate::source::Source;
use crate::sys;

/// How often a pending confirmation looks at /proc.
pub const TICK: Duration = Duration::from_millis(2);
/// The most work one service does before the loop runs again.
pub const SLICE: Duration = Duration::from_millis(5);

/// Names one operation, so that its reply finds its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId(pub u64);

/// What `Unit::check` sees of a unit being created.
pub enum Check {
    Ready,
    NotYet,
    /// It exited instead (the kernel refused what it needed).
    Failed,
}

/// What remains to be forked.
pub enum Making {
    /// Clone children that exit at once, each on its own stack slot.
    Zombies(sys::ZombieStacks),
    /// `undead-vfork` holders, one fork each, with `--cwd`'s directory.
    Vforks(Option<OwnedFd>),
    /// A zombie holder that has not reported yet.
    Holder(zombie::Reporting),
}

/// A creation in progress.
pub struct Creating {
    pub op: OpId,
    n: usize,
    what: &'static str,
    /// What remains to be forked; `None` once done.
    making: Option<Making>,
    /// Forks done so far.
    forked: usize,
    /// The zombies' stacks: unmapped only once no child can run on them.
    stacks: Option<sys::ZombieStacks>,
    /// Made, not yet seen in state, in creation order.
    made: VecDeque<Unit>,
    ready: Vec<Unit>,
    errno: Option<Errno>,
    /// Set when the last fork is done: confirmation may take `OBSERVE`.
    deadline: Option<Instant>,
    /// Said with the reply (the `--outlive` window).
    pub note: Option<String>,
}

impl Creating {
    pub fn new(op: OpId, n: usize, what: &'static str, m: Making) -> Self {
        Creating {
            op,
            n,
            what,
            making: Some(m),
            forked: 0,
            stacks: None,
            made: VecDeque::new(),
            ready: Vec::new(),
            errno: None,
            deadline: None,
            note: None,
        }
    }

    /// A creation whose processes are made (a FUSE hold and its victims,
    /// hazards): only their state is left to confirm.
    pub fn confirming(
        op: OpId,
        n: usize,
        what: &'static str,
        (units, errno): (Vec<Unit>, Option<Errno>),
    ) -> Self {
        let mut c = Creating::new(op, n, what, Making::Vforks(None));
        c.making = None;
        c.errno = errno;
        c.made.extend(units);
        c
    }

    /// Whether forks remain to be done now (a holder's report is waited
    /// for on the tick, not polled in a spin).
    pub fn is_making(&self) -> bool {
        matches!(self.making, Some(Making::Zombies(_) | Making::Vforks(_)))
    }

    /// Fork more; confirm what was made. True once finished.
    pub fn step(&mut self, stack: &mut [u8], until: Instant) -> bool {
        while self.making.is_some() && Instant::now() < until {
            self.make_one(stack);
            if !self.is_making() {
                break; // done, or a holder's report: one look per slice
            }
        }
        if self.making.is_none() && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + OBSERVE);
        }
        // In creation order: the first not ready yet ends the round.
        while let Some(unit) = self.made.front_mut() {
            if Instant::now() >= until {
                break;
            }
            match unit.check() {
                Check::Ready => self.ready.extend(self.made.pop_front()),
                Check::NotYet => break,
                Check::Failed => {
                    // It exited: the init's drain reaps it.
                    self.made.pop_front();
                    self.errno.get_or_insert(Errno::EAGAIN);
                }
            }
        }
        let Some(deadline) = self.deadline else { return false };
        self.made.is_empty() || Instant::now() >= deadline
    }

    fn make_one(&mut self, stack: &mut [u8]) {
        let made = match &mut self.making {
            Some(Making::Holder(r)) => {
                if let Some((holder, errno)) = r.poll() {
                    self.errno = errno;
                    self.making = None;
                    self.made.push_back(Unit::Holder(holder));
                }
                return;
            }
            _ if self.forked >= self.n => Err(None),
            Some(Making::Zombies(stacks)) => stacks
                .spawn_zombie(self.forked)
                .map(Unit::Zombie)
                .map_err(Some),
            Some(Making::Vforks(cwd)) => {
                vfork::spawn_vfork_holder(stack, cwd.as_ref())
                    .map(|holder| Unit::Vfork { holder, stall: None })
                    .map_err(Some)
            }
            None => return,
        };
        match made {
            Ok(unit) => {
                self.forked += 1;
                self.made.push_back(unit);
            }
            Err(errno) => {
                self.errno = errno;
                if let Some(Making::Zombies(stacks)) = self.making.take() {
                    self.stacks = Some(stacks);
                }
            }
        }
    }

    /// The reply, and every unit to hold: confirmed or not, a process made
    /// stays tracked until it is released.
    pub fn finish(mut self) -> (Created, Vec<Unit>) {
        let late = self.made.len();
        let pids = self.ready.iter().flat_map(Unit::reported).collect();
        let made: usize = self.ready.iter().map(Unit::made).sum();
        let (n, what) = (self.n, self.what);
        let error = match (self.errno, late) {
            (None, 0) if made >= n => None,
            (e, 0) => {
                Some(shortfall(made, n, what, e.unwrap_or(Errno::ETIMEDOUT)))
            }
            (e, late) => Some(format!(
                "made {made} of {n} {what}: {late} not in state after {} s{}",
                OBSERVE.as_secs(),
                e.map(|e| format!(" ({})", e.desc())).unwrap_or_default()
            )),
        };
        if let Some(stacks) = self.stacks.take().filter(|_| late > 0) {
            // A child may still run on its stack: never unmap it then.
            std::mem::forget(stacks);
        }
        let mut units = self.ready;
        units.extend(self.made);
        (Created { pids, error, note: self.note }, units)
    }

    /// Everything made so far, confirmed or not (`release all` takes
    /// a creation in progress too).
    pub fn abandon(mut self) -> (Created, Vec<Unit>) {
        if self.making.is_some() {
            self.errno = Some(Errno::ECANCELED);
            if let Some(Making::Zombies(stacks)) = self.making.take() {
                self.stacks = Some(stacks);
            }
        }
        self.deadline = Some(Instant::now());
        self.finish()
    }
}

/// A release in progress: the processes let go, until they are gone.
pub struct Releasing {
    pub op: OpId,
    todo: Vec<Unit>,
    dying: Vec<Pid>,
    deadline: Instant,
}

impl Releasing {
    pub fn new(op: OpId, todo: Vec<Unit>) -> Releasing {
        let deadline = Instant::now() + OBSERVE;
        Releasing { op, todo, dying: Vec::new(), deadline }
    }

    /// Kill, answer, reap. True once every process is gone, or at the
    /// deadline (what still dies is left in `leftover`).
    pub fn step(
        &mut self,
        until: Instant,
        fuse: &mut Vec<super::fuse::FuseHold>,
    ) -> bool {
        while Instant::now() < until {
            let Some(unit) = self.todo.pop() else { break };
            unit.let_go(&mut self.dying, fuse);
        }
        reap_dying(&mut self.dying, until);
        let done = self.todo.is_empty() && self.dying.is_empty();
        done || Instant::now() >= self.deadline
    }

    /// The drain reaped these (`reaped` sorted): no longer ours to reap
    /// or signal by pid, whether already let go or still to be.
    pub fn forget(&mut self, reaped: &[Pid]) {
        self.dying.retain(|p| reaped.binary_search(p).is_err());
        self.todo.retain_mut(|unit| unit.survives(reaped));
    }

    /// What is still dying after the deadline: the kit keeps reaping it.
    pub fn leftover(self) -> Vec<Pid> {
        self.dying
    }
}

/// Reap, by pid, what is dying and has become undead's zombie; forget
/// what is gone. At most until `until`.
pub fn reap_dying(dying: &mut Vec<Pid>, until: Instant) {
    if dying.is_empty() {
        return; // the common case: no syscall on every wake-up
    }
    let me = nix::unistd::getpid();
    dying.retain(|&p| {
        if Instant::now() >= until {
            return true;
        }
        match procfs::read_proc(p) {
            None => false,
            Some(q) if q.state == 'Z' && q.ppid == me => {
                !reaper::reap_pid(p, false)
            }
            Some(_) => true,
        }
    });
}

impl Kit {
    /// Advance the operations in progress by one slice; report those
    /// finished.
    pub(super) fn advance(&mut self, until: Instant) {
        let mut i = 0;
        while i < self.creating.len() {
            if !self.creating[i].step(&mut self.stack, until) {
                i += 1;
                continue;
            }
            let c = self.creating.swap_remove(i);
            let op = c.op;
            let (made, units) = c.finish();
            let now = Instant::now();
            self.units.extend(units.into_iter().map(|u| (u, now)));
            self.changed();
            self.done.push(KitEvent::Created(op, made));
        }
        let mut i = 0;
        while i < self.letting_go.len() {
            if !self.letting_go[i].step(until, &mut self.releasing) {
                i += 1;
                continue;
            }
            let r = self.letting_go.swap_remove(i);
            self.done.push(KitEvent::Released(r.op));
            self.dying.extend(r.leftover());
        }
        reap_dying(&mut self.dying, until);
    }

    /// Run operation `op` to its end, blocking: only at start (before the
    /// child runs) and at exit. Returns what a creation made.
    pub fn finish_now(&mut self, op: OpId) -> Option<Created> {
        loop {
            for event in self.service(Instant::now()) {
                match event {
                    KitEvent::Created(id, made) if id == op => {
                        return Some(made);
                    }
                    KitEvent::Released(id) if id == op => return None,
                    _ => {}
                }
            }
            if let Some(at) = self.next_deadline() {
                std::thread::sleep(
                    at.saturating_duration_since(Instant::now()),
                );
            }
        }
    }
}
