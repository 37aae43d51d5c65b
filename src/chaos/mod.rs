//! The undead kit: zombies and D-state processes raised on purpose, held,
//! shown, and always taken back. A leaf module: the init reaches it only
//! through `Action::Chaos` / `Action::Release`, and `Kit::release` is called
//! on every exit path undead controls.
//!
//! Creation returns only once the processes are observably in the promised
//! state (Z or D in /proc), within a bound; it stops at the first fork
//! failure (EAGAIN at `pids.max`) and says how many it made.

mod fuse;
mod rescue;
mod vfork;
mod zombie;

pub use rescue::rescue;

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::procfs;
use crate::reaper;

/// Which D state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A vfork holder: D but dies to SIGKILL (TASK_KILLABLE).
    Vfork,
    /// A reader stuck on an unanswered FUSE request: SIGKILL-immune.
    Fuse,
}

impl Kind {
    pub fn parse(text: &str) -> Result<Kind, String> {
        match text {
            "vfork" => Ok(Kind::Vfork),
            "fuse" => Ok(Kind::Fuse),
            _ => Err(format!("invalid kind '{text}' (use vfork or fuse)")),
        }
    }
}

/// A creation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChaosCmd {
    Zombies { n: usize, holder: bool },
    Dstate { n: usize, kind: Kind, outlive: Option<Duration> },
}

/// What to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    All,
    Zombies,
    Dstate,
    Pids(Vec<Pid>),
}

/// What creation made; `error` says why it stopped short.
#[derive(Debug, Default)]
pub struct Created {
    pub pids: Vec<Pid>,
    pub error: Option<String>,
    /// Something the user should know (e.g. the `--outlive` window).
    pub note: Option<String>,
}

/// One process the kit holds, as `status` and `ps` show it.
pub struct HeldProc {
    pub pid: Pid,
    pub kind: &'static str,
    pub since: Instant,
}

/// One unit of holding: released together.
enum Unit {
    /// A clone-child zombie of undead.
    Zombie(Pid),
    /// `undead-zholder` and its zombies.
    Holder(zombie::Holder),
    /// `undead-vfork` in D and its `undead-vstall` child.
    Vfork { holder: Pid, stall: Option<Pid> },
    /// A FUSE connection and its `undead-fuse` victims.
    Fuse(fuse::FuseHold),
}

impl Unit {
    fn procs(&self) -> Vec<(Pid, &'static str)> {
        match self {
            Unit::Zombie(pid) => vec![(*pid, "zombie")],
            Unit::Holder(h) => std::iter::once((h.pid, "zombie-holder"))
                .chain(h.zombies.iter().map(|&z| (z, "zombie")))
                .collect(),
            Unit::Vfork { holder, stall } => {
                std::iter::once((*holder, "vfork"))
                    .chain(stall.iter().map(|&s| (s, "vfork-stall")))
                    .collect()
            }
            Unit::Fuse(hold) => {
                hold.victims().iter().map(|&v| (v, "fuse")).collect()
            }
        }
    }

    fn is_zombie_kind(&self) -> bool {
        matches!(self, Unit::Zombie(_) | Unit::Holder(_))
    }
}

/// Everything the kit holds.
pub struct Kit {
    /// Stack for clone(CLONE_VM | CLONE_VFORK) children; the parent is
    /// suspended while a child runs on it, so one stack serves all.
    /// Allocated on first use, so a plain init does not carry it.
    stack: Vec<u8>,
    units: Vec<(Unit, Instant)>,
    /// Released FUSE connections still answering their victims' last
    /// requests (the FLUSH of their exit) until every victim is gone.
    releasing: Vec<fuse::FuseHold>,
    /// `--release-after`: nothing is held longer than this.
    release_after: Option<Duration>,
}

const STACK_SIZE: usize = 64 * 1024;

/// How long creation may take to become observable.
const OBSERVE: Duration = Duration::from_secs(3);

impl Kit {
    pub fn new(release_after: Option<Duration>) -> Kit {
        Kit {
            stack: Vec::new(),
            units: Vec::new(),
            releasing: Vec::new(),
            release_after,
        }
    }

    pub fn create(&mut self, cmd: &ChaosCmd) -> Created {
        // Every promise of the kit is checked in /proc: without our own,
        // pids there name other processes.
        if let Some(why) = procfs::not_ours() {
            return Created { error: Some(why), ..Created::default() };
        }
        let now = Instant::now();
        if self.stack.is_empty() {
            self.stack = vec![0; STACK_SIZE];
        }
        let (units, error) = match *cmd {
            ChaosCmd::Zombies { n, holder: false } => self.create_zombies(n),
            ChaosCmd::Zombies { n, holder: true } => self.create_holder(n),
            ChaosCmd::Dstate { n, kind: Kind::Vfork, outlive: None } => {
                self.create_vforks(n)
            }
            ChaosCmd::Dstate { kind: Kind::Vfork, .. } => (
                Vec::new(),
                Some("--outlive applies to --kind fuse only".to_string()),
            ),
            ChaosCmd::Dstate { n, kind: Kind::Fuse, outlive } => {
                create_fuse(n, outlive)
            }
        };
        let pids = units
            .iter()
            .flat_map(|u| match u {
                Unit::Fuse(hold) => hold.victims().to_vec(),
                // The holder first, then the zombies it holds.
                Unit::Holder(h) => {
                    std::iter::once(h.pid).chain(h.zombies.clone()).collect()
                }
                other => vec![other.procs()[0].0],
            })
            .collect();
        self.units.extend(units.into_iter().map(|u| (u, now)));
        let note = match *cmd {
            ChaosCmd::Dstate {
                kind: Kind::Fuse, outlive: Some(t), ..
            } => {
                let (lo, hi) = fuse::outlive_window(t);
                Some(format!(
                    "the victims outlive undead; the kernel frees them \
                     {}-{} s after their request",
                    lo.as_secs(),
                    hi.as_secs()
                ))
            }
            _ => None,
        };
        Created { pids, error, note }
    }

    fn create_zombies(&mut self, n: usize) -> (Vec<Unit>, Option<String>) {
        let (made, errno) = zombie::spawn_zombies(n, OBSERVE);
        let error = errno.map(|e| shortfall(made.len(), n, "zombie", e));
        (made.into_iter().map(Unit::Zombie).collect(), error)
    }

    fn create_holder(&mut self, n: usize) -> (Vec<Unit>, Option<String>) {
        match zombie::spawn_holder(n, &mut self.stack) {
            Ok(h) => (vec![Unit::Holder(h)], None),
            Err((h, e)) => {
                let made = h.as_ref().map_or(0, |h| h.zombies.len());
                let error = shortfall(made, n, "zombie", e);
                (h.into_iter().map(Unit::Holder).collect(), Some(error))
            }
        }
    }

    fn create_vforks(&mut self, n: usize) -> (Vec<Unit>, Option<String>) {
        let mut holders = Vec::new();
        let mut errno = None;
        for _ in 0..n {
            match vfork::spawn_vfork_holder(&mut self.stack) {
                Ok(pid) => holders.push(pid),
                Err(e) => {
                    errno = Some(e);
                    break;
                }
            }
        }
        let in_d = await_state(holders.clone(), 'D');
        // A holder whose clone failed (EAGAIN) exits instead of stalling;
        // it is reaped by the init's drain like any child.
        if in_d.len() < holders.len() && errno.is_none() {
            errno = Some(Errno::EAGAIN);
        }
        let units: Vec<Unit> = in_d
            .iter()
            .map(|&holder| Unit::Vfork {
                holder,
                stall: procfs::children(holder)
                    .and_then(|kids| kids.first().copied()),
            })
            .collect();
        let stalls: Vec<Pid> = units
            .iter()
            .filter_map(|u| match u {
                Unit::Vfork { stall, .. } => *stall,
                _ => None,
            })
            .collect();
        await_comm(&stalls, "undead-vstall");
        (units, errno.map(|e| shortfall(in_d.len(), n, "vfork holder", e)))
    }

    /// Whether a FUSE connection is held or still being released: then the
    /// init must `poll` its descriptor.
    pub fn has_fuse(&self) -> bool {
        !self.releasing.is_empty()
            || self.units.iter().any(|(u, _)| matches!(u, Unit::Fuse(_)))
    }

    /// The FUSE descriptors the init's `poll` must watch.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.units
            .iter()
            .filter_map(|(u, _)| match u {
                Unit::Fuse(hold) => Some(hold),
                _ => None,
            })
            .chain(&self.releasing)
            .filter(|h| h.wants_poll())
            .map(fuse::FuseHold::fd)
            .collect()
    }

    /// Serve readable FUSE requests; drop released connections whose
    /// victims are all gone. Never blocks.
    pub fn service(&mut self) {
        for (unit, _) in &mut self.units {
            if let Unit::Fuse(hold) = unit {
                hold.on_readable();
            }
        }
        for hold in &mut self.releasing {
            hold.on_readable();
        }
        self.releasing.retain(|h| !h.is_finished());
    }

    /// Release what `what` names; returns the pids let go. Waits (bounded)
    /// until the released processes are dead, so the caller's drain can
    /// reap them and the reply means "gone".
    pub fn release(&mut self, what: &Release) -> Vec<Pid> {
        let take = |unit: &Unit| match what {
            Release::All => true,
            Release::Zombies => unit.is_zombie_kind(),
            Release::Dstate => !unit.is_zombie_kind(),
            Release::Pids(pids) => {
                unit.procs().iter().any(|(p, _)| pids.contains(p))
            }
        };
        let (taken, kept) = std::mem::take(&mut self.units)
            .into_iter()
            .partition(|(u, _)| take(u));
        self.units = kept;
        self.release_units(taken.into_iter().map(|(u, _)| u).collect())
    }

    /// Forget holdings whose holder the init's drain has reaped (someone
    /// else killed it), and FUSE victims it reaped (their connection was
    /// aborted): their pids must not be shown or signalled later, they may
    /// belong to unrelated processes by then. A connection with no victim
    /// left is dropped. Held zombies are clone children the drain never
    /// reaps.
    pub fn forget(&mut self, reaped: &[Pid]) {
        self.units.retain_mut(|(unit, _)| match unit {
            Unit::Holder(h) => !reaped.contains(&h.pid),
            Unit::Vfork { holder, .. } => !reaped.contains(holder),
            Unit::Zombie(_) => true,
            Unit::Fuse(hold) => hold.forget(reaped),
        });
        for hold in &mut self.releasing {
            hold.forget(reaped);
        }
    }

    /// When the next unit reaches `--release-after`.
    pub fn next_expiry(&self) -> Option<Instant> {
        let after = self.release_after?;
        self.units.iter().map(|(_, since)| *since + after).min()
    }

    /// Release the units held for `--release-after` or longer.
    pub fn release_expired(&mut self, now: Instant) -> Vec<Pid> {
        let Some(after) = self.release_after else { return Vec::new() };
        let (taken, kept) = std::mem::take(&mut self.units)
            .into_iter()
            .partition(|(_, since)| *since + after <= now);
        self.units = kept;
        self.release_units(taken.into_iter().map(|(u, _)| u).collect())
    }

    pub fn held(&self) -> Vec<HeldProc> {
        self.units
            .iter()
            .flat_map(|(u, since)| {
                u.procs().into_iter().map(|(pid, kind)| HeldProc {
                    pid,
                    kind,
                    since: *since,
                })
            })
            .collect()
    }

    pub fn release_after(&self) -> Option<Duration> {
        self.release_after
    }
}

/// "made 3 of 50 zombies: fork failed: Resource temporarily unavailable
/// (pids.max reached?)"
fn shortfall(made: usize, wanted: usize, what: &str, e: Errno) -> String {
    let hint = if e == Errno::EAGAIN { " (pids.max reached?)" } else { "" };
    format!("made {made} of {wanted} {what}s: fork failed: {}{hint}", e.desc())
}

/// Wait until every pid shows `state` in /proc (at most `OBSERVE`);
/// returns those that do. A process that is gone or dead (Z, X) never
/// will, so it is not waited for: a vfork holder whose clone failed at
/// `pids.max` exits, and must not hold the verb for the whole bound.
fn await_state(pids: Vec<Pid>, state: char) -> Vec<Pid> {
    settle(&pids, OBSERVE, |p| {
        procfs::state_of(p)
            .is_none_or(|s| s == state || matches!(s, 'Z' | 'X'))
    });
    pids.into_iter().filter(|&p| procfs::state_of(p) == Some(state)).collect()
}

/// Wait (at most `OBSERVE`) until each pid shows `comm` in /proc. A
/// stalled child names itself only once it runs, which may be after its
/// holder already shows D; naming itself is its last step before it
/// stalls, so the name also means its pdeathsig is armed.
fn await_comm(pids: &[Pid], comm: &str) {
    settle(pids, OBSERVE, |p| {
        procfs::read_proc(p).is_none_or(|q| q.comm == comm)
    });
}

/// Poll `done` over `pids` (every 50 µs, at most `wait`) until it holds for
/// all; returns those for which it never did. The one bounded wait behind
/// every "observably in the promised state" of the kit.
pub(crate) fn settle(
    pids: &[Pid],
    wait: Duration,
    done: impl Fn(Pid) -> bool,
) -> Vec<Pid> {
    let deadline = Instant::now() + wait;
    let mut pending = pids.to_vec();
    loop {
        pending.retain(|&p| !done(p));
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

impl Kit {
    /// Let the units go: reap held zombies, SIGKILL holders and stalled
    /// children, answer FUSE victims with errors, and reap them too (at
    /// most `OBSERVE`; FUSE connections not yet finished are served on by
    /// the loop).
    ///
    /// The kit reaps what it releases itself, by pid, rather than leaving
    /// it to the init's drain: under `--withhold-reaping` the drain leaves
    /// every process but the main child in Z, and the kit's own processes
    /// are not the orphans withholding is about. A holder is undead's
    /// child; its stalled child and its zombies become undead's children
    /// when it dies (the kernel reparents them to the reaper,
    /// `forget_original_parent`), so each is reaped once it is a zombie
    /// whose parent is undead.
    fn release_units(&mut self, units: Vec<Unit>) -> Vec<Pid> {
        let mut released = Vec::new();
        let mut dying = Vec::new();
        let mut fuse_released = Vec::new();
        for unit in units {
            released.extend(unit.procs().iter().map(|(p, _)| *p));
            match unit {
                Unit::Zombie(pid) => {
                    reaper::reap_pid(pid, true);
                }
                Unit::Holder(h) => {
                    let _ = kill(h.pid, Signal::SIGKILL);
                    dying.push(h.pid);
                    dying.extend(h.zombies);
                }
                Unit::Vfork { holder, stall } => {
                    // Killing the stalled child completes the vfork; the
                    // holder then exits by itself. Without it, kill the
                    // holder.
                    let _ = kill(stall.unwrap_or(holder), Signal::SIGKILL);
                    dying.push(holder);
                    dying.extend(stall);
                }
                Unit::Fuse(mut hold) => {
                    hold.release();
                    dying.extend(hold.victims());
                    fuse_released.push(hold);
                }
            }
        }
        let me = nix::unistd::getpid();
        let deadline = Instant::now() + OBSERVE;
        while Instant::now() < deadline {
            for hold in &mut fuse_released {
                hold.on_readable();
            }
            dying.retain(|&p| match procfs::read_proc(p) {
                None => false,
                Some(q) if q.state == 'Z' && q.ppid == me => {
                    !reaper::reap_pid(p, false)
                }
                Some(_) => true,
            });
            fuse_released.retain(|h| !h.is_finished());
            if dying.is_empty() && fuse_released.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        self.releasing.extend(fuse_released);
        released
    }
}

/// `dstate N --kind fuse`: one connection, N victims.
fn create_fuse(
    n: usize,
    outlive: Option<Duration>,
) -> (Vec<Unit>, Option<String>) {
    match fuse::FuseHold::create(n, outlive) {
        Ok(hold) => {
            let error = hold
                .shortfall()
                .map(|e| shortfall(hold.victims().len(), n, "fuse victim", e));
            (vec![Unit::Fuse(hold)], error)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}
