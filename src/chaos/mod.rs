//! The undead kit: zombies and D-state processes raised on purpose, held,
//! shown, and always taken back. A leaf module: the init reaches it only
//! through `Action::Chaos` / `Action::Release`, and `Kit::release` is called
//! on every exit path undead controls.
//!
//! Creation answers only once the processes are observably in the
//! promised state (Z or D in /proc), within a bound; it stops at the first
//! fork failure (EAGAIN at `pids.max`) and says how many it made. Creation
//! and release never block the loop: they are operations in progress
//! (`pending.rs`), advanced a slice at a time by `service`, and answered
//! by a `KitEvent` when done.

mod cwd;
mod deaf;
mod fork;
mod frozen;
mod fuse;
mod hazard;
mod hopper;
mod index;
mod pending;
mod rescue;
mod select;
mod settle;
mod slow;
mod stopped;
mod unit;
mod vfork;
mod zombie;

use cwd::open_dir;
#[cfg(fuzzing)]
pub use fuse::fuzz_serve;
pub use hazard::{HazardCmd, HazardKind, hazard_words};
pub use pending::OpId;
pub use rescue::rescue;
pub(crate) use settle::settle;

use index::Index;
use pending::{Creating, Making, Releasing, SLICE, TICK};
use unit::Unit;

use std::cell::OnceCell;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::procfs;
use crate::source::Source;

/// Only a FUSE victim can outlive undead (README, "`--outlive`").
pub const OUTLIVE_FUSE_ONLY: &str = "--outlive applies to --kind fuse only";

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

    /// The word `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vfork => "vfork",
            Kind::Fuse => "fuse",
        }
    }
}

/// A creation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChaosCmd {
    Zombies {
        n: usize,
        holder: bool,
    },
    /// `cwd`: the victims' working directory, kept busy (§3.4).
    Dstate {
        n: usize,
        kind: Kind,
        outlive: Option<Duration>,
        cwd: Option<PathBuf>,
    },
    /// `stopped`, `deaf`, `slow`, `escapee`, `hopper`, `frozen`.
    Hazard(HazardCmd),
}

/// What to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    All,
    /// `release zombies dstate stopped …`: every holding of these kinds.
    Kinds(Kinds),
    Pids(Vec<Pid>),
}

/// The kinds one `release` names, any mix of `zombies`, `dstate` and the
/// hazard kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kinds {
    pub zombies: bool,
    pub dstate: bool,
    pub hazards: Vec<HazardKind>,
}

impl Release {
    /// Whether it takes the held zombies (and so ends withheld orphans).
    pub fn takes_zombies(&self) -> bool {
        match self {
            Release::All => true,
            Release::Kinds(k) => k.zombies,
            Release::Pids(_) => false,
        }
    }
}

/// What creation made; `error` says why it stopped short.
#[derive(Debug, Default)]
pub struct Created {
    pub pids: Vec<Pid>,
    pub error: Option<String>,
    /// Something the user should know (e.g. the `--outlive` window).
    pub note: Option<String>,
}

/// What the kit tells the init when it is serviced.
#[derive(Debug)]
pub enum KitEvent {
    /// `--release-after` released these pids.
    Expired(Vec<Pid>),
    /// A creation is finished: its processes are in state, or its time
    /// is up.
    Created(OpId, Created),
    /// A release is finished: its processes are gone (or its time is up;
    /// the kit reaps the rest as they die).
    Released(OpId),
}

/// How a creation or a release went: answered at once, or an operation
/// in progress, answered by a `KitEvent` with this id.
pub enum Started<T> {
    Now(T),
    Later(OpId),
}

/// One process the kit holds, as `status` and `ps` show it.
pub struct HeldProc {
    pub pid: Pid,
    pub kind: &'static str,
    pub since: Instant,
    /// `--unheld`: shown with its kind, but not released by undead.
    pub unheld: bool,
}

/// Everything the kit holds.
pub struct Kit {
    /// Stack for clone(CLONE_VM | CLONE_VFORK) children; the parent is
    /// suspended while a child runs on it, so one stack serves all.
    /// Allocated on first use, so a plain init does not carry it.
    stack: Vec<u8>,
    units: Vec<(Unit, Instant)>,
    /// What the loop asks of `units`, rebuilt after they change.
    index: OnceCell<Index>,
    /// Released FUSE connections still answering their victims' last
    /// requests (the FLUSH of their exit) until every victim is gone.
    releasing: Vec<fuse::FuseHold>,
    /// `--release-after`: nothing is held longer than this.
    release_after: Option<Duration>,
    creating: Vec<Creating>,
    letting_go: Vec<Releasing>,
    /// Released processes still dying after their release was answered.
    dying: Vec<Pid>,
    /// Finished operations not reported yet.
    done: Vec<KitEvent>,
    last_op: u64,
    /// When the operations in progress next need `service`.
    busy_at: Option<Instant>,
}

const STACK_SIZE: usize = 64 * 1024;

/// Bytes of stack per concurrently created zombie: its whole life is two
/// libc calls.
const ZOMBIE_STACK: usize = 8 * 1024;

/// How long creation may take to become observable.
const OBSERVE: Duration = Duration::from_secs(3);

impl Kit {
    pub fn new(release_after: Option<Duration>) -> Kit {
        Kit {
            stack: Vec::new(),
            units: Vec::new(),
            index: OnceCell::new(),
            releasing: Vec::new(),
            release_after,
            creating: Vec::new(),
            letting_go: Vec::new(),
            dying: Vec::new(),
            done: Vec::new(),
            last_op: 0,
            busy_at: None,
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::of(&self.units))
    }

    /// `units` changed: the index is rebuilt when next asked for.
    fn changed(&mut self) {
        self.index.take();
    }

    /// How many of a kind are held or shown unheld.
    pub fn count(&self, kind: &str) -> u64 {
        let ix = self.index();
        let live = ix.hazards.iter().filter_map(|&i| self.units.get(i));
        let hazards: usize = live
            .filter(|(u, _)| matches!(u, Unit::Hazard(h) if h.kind().name() == kind))
            .map(|(u, _)| u.procs().len())
            .sum();
        ix.count(kind) + hazards as u64
    }

    /// The pids of the zombies held (sorted): confirmed Z, and only undead
    /// (or their holder) can reap them.
    pub fn zombies(&self) -> &[Pid] {
        &self.index().zombies
    }

    fn next_op(&mut self) -> OpId {
        self.last_op += 1;
        self.busy_at = Some(Instant::now());
        OpId(self.last_op)
    }

    /// Now while there is something to report or fork; a `TICK` away while
    /// an operation waits for /proc to confirm.
    fn busy_at(&self) -> Option<Instant> {
        let now = Instant::now();
        if !self.done.is_empty()
            || self.creating.iter().any(Creating::is_making)
        {
            Some(now)
        } else if !self.creating.is_empty() || !self.letting_go.is_empty() {
            Some(now + TICK)
        } else {
            None
        }
    }

    /// Start a creation; answered now only if it cannot start (or, for
    /// FUSE, once set up: that creation still waits for its victims).
    pub fn create(&mut self, cmd: &ChaosCmd) -> Started<Created> {
        // Every promise of the kit is checked in /proc: without our own,
        // pids there name other processes.
        if let Some(why) = procfs::not_ours() {
            return Started::Now(Created {
                error: Some(why),
                ..Created::default()
            });
        }
        if self.stack.is_empty() {
            self.stack = vec![0; STACK_SIZE];
        }
        let failed = |why: String| {
            Started::Now(Created { error: Some(why), ..Created::default() })
        };
        let cwd = match cmd {
            ChaosCmd::Dstate { cwd: Some(path), .. } => match open_dir(path) {
                Ok(fd) => Some(fd),
                Err(why) => return failed(why),
            },
            _ => None,
        };
        let (n, what, making) = match *cmd {
            ChaosCmd::Zombies { n, holder: false } => {
                match crate::sys::ZombieStacks::new(n, ZOMBIE_STACK) {
                    Ok(stacks) => (n, "zombies", Making::Zombies(stacks)),
                    Err(e) => return failed(shortfall(0, n, "zombies", e)),
                }
            }
            ChaosCmd::Zombies { n, holder: true } => {
                match zombie::start_holder(n, &mut self.stack) {
                    Ok(r) => (n, "zombies", Making::Holder(r)),
                    Err(e) => return failed(shortfall(0, n, "zombies", e)),
                }
            }
            ChaosCmd::Dstate {
                n, kind: Kind::Vfork, outlive: None, ..
            } => (n, "vfork holders", Making::Vforks(cwd)),
            ChaosCmd::Dstate { kind: Kind::Vfork, .. } => {
                return failed(OUTLIVE_FUSE_ONLY.into());
            }
            ChaosCmd::Dstate { n, kind: Kind::Fuse, outlive, .. } => {
                return self.create_fuse(n, outlive, cwd.as_ref());
            }
            ChaosCmd::Hazard(ref h) => return self.create_hazard(h),
        };
        let op = self.next_op();
        self.creating.push(Creating::new(op, n, what, making));
        Started::Later(op)
    }

    /// `dstate N --kind fuse`: one connection, N victims. The set-up (the
    /// mount, FUSE_INIT, the primer) runs within the loop's turn, bounded;
    /// the victims are confirmed in D as an operation in progress.
    fn create_fuse(
        &mut self,
        n: usize,
        outlive: Option<Duration>,
        cwd: Option<&OwnedFd>,
    ) -> Started<Created> {
        let hold = match fuse::FuseHold::create(n, outlive, cwd) {
            Ok(hold) => hold,
            Err(e) => {
                let error = Some(e.to_string());
                return Started::Now(Created { error, ..Created::default() });
            }
        };
        let op = self.next_op();
        let errno = hold.shortfall();
        let made = vec![Unit::Fuse(hold)];
        let mut c = Creating::confirming(op, n, "fuse victims", (made, errno));
        c.note = outlive.map(|t| {
            let (lo, hi) = fuse::outlive_window(t);
            format!(
                "the victims outlive undead; the kernel frees them \
                 {}-{} s after their request",
                lo.as_secs(),
                hi.as_secs()
            )
        });
        self.creating.push(c);
        Started::Later(op)
    }

    /// A hazard (§3.4): forked within the loop's turn, confirmed in its
    /// state as an operation in progress.
    fn create_hazard(&mut self, cmd: &HazardCmd) -> Started<Created> {
        let (made, errno) = match hazard::spawn(cmd) {
            Ok(made) => made,
            Err(why) => {
                return Started::Now(Created {
                    error: Some(why),
                    ..Created::default()
                });
            }
        };
        let op = self.next_op();
        let made = made.into_iter().map(Unit::Hazard).collect();
        let what = cmd.kind.name();
        let c = Creating::confirming(op, cmd.n, what, (made, errno));
        self.creating.push(c);
        Started::Later(op)
    }

    /// Whether a FUSE connection is held or still being released: then the
    /// init must `poll` its descriptor.
    pub fn has_fuse(&self) -> bool {
        !self.releasing.is_empty() || self.index().fuse
    }

    /// Nothing held, nothing in progress, nothing to report: what a plain
    /// init's kit is.
    pub fn is_idle(&self) -> bool {
        self.done.is_empty()
            && self.units.is_empty()
            && self.releasing.is_empty()
            && self.creating.is_empty()
            && self.letting_go.is_empty()
            && self.dying.is_empty()
    }

    /// Release what `what` names: returns the pids let go, and the
    /// operation to wait for while they die (`KitEvent::Released`).
    /// `release all` also ends the creations in progress and takes what
    /// they made.
    pub fn release(&mut self, what: &Release) -> (Vec<Pid>, Option<OpId>) {
        if *what == Release::All {
            for c in std::mem::take(&mut self.creating) {
                let op = c.op;
                let (made, units) = c.abandon();
                let now = Instant::now();
                self.units.extend(units.into_iter().map(|u| (u, now)));
                self.done.push(KitEvent::Created(op, made));
                self.busy_at = Some(now);
            }
        }
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.units)
            .into_iter()
            .partition(|(u, _)| u.taken_by(what));
        self.units = kept;
        self.changed();
        self.let_go(taken.into_iter().map(|(u, _)| u).collect())
    }

    fn let_go(&mut self, units: Vec<Unit>) -> (Vec<Pid>, Option<OpId>) {
        let released: Vec<Pid> = units
            .iter()
            .flat_map(|u| u.procs().into_iter().map(|(p, _)| p))
            .collect();
        if units.is_empty() {
            return (released, None);
        }
        let op = self.next_op();
        self.letting_go.push(Releasing::new(op, units));
        (released, Some(op))
    }

    /// Forget holdings whose holder the init's drain has reaped (someone
    /// else killed it), and FUSE victims it reaped (their connection was
    /// aborted): their pids must not be shown or signalled later, they may
    /// belong to unrelated processes by then. A connection with no victim
    /// left is dropped. Held zombies are clone children the drain never
    /// reaps.
    ///
    /// Released processes the drain reaped first leave `dying` too: kept,
    /// their pid could name a new process by the next look, whose exit the
    /// kit would then reap in the drain's place (and the holding it belongs
    /// to would never hear of it).
    pub fn forget(&mut self, reaped: &[Pid]) {
        if self.is_idle() {
            return; // an orphan's reap with nothing held: no work at all
        }
        let mut reaped = reaped.to_vec();
        reaped.sort_unstable();
        let reaped = &reaped[..];
        for hold in &mut self.releasing {
            hold.forget(reaped);
        }
        self.dying.retain(|p| reaped.binary_search(p).is_err());
        for r in &mut self.letting_go {
            r.forget(reaped);
        }
        if !self.index().watches_any(reaped) {
            return;
        }
        self.changed();
        self.units.retain_mut(|(unit, _)| unit.survives(reaped));
    }

    /// Release the units held for `--release-after` or longer.
    fn release_expired(&mut self, now: Instant) -> Vec<Pid> {
        let Some(after) = self.release_after else { return Vec::new() };
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.units)
            .into_iter()
            .partition(|(u, since)| !u.is_unheld() && *since + after <= now);
        self.units = kept;
        self.changed();
        self.let_go(taken.into_iter().map(|(u, _)| u).collect()).0
    }

    pub fn held(&self) -> Vec<HeldProc> {
        self.units
            .iter()
            .flat_map(|(u, since)| {
                u.procs().into_iter().map(|(pid, kind)| HeldProc {
                    pid,
                    kind,
                    since: *since,
                    unheld: u.is_unheld(),
                })
            })
            .collect()
    }

    pub fn release_after(&self) -> Option<Duration> {
        self.release_after
    }
}

impl Source for Kit {
    type Event = KitEvent;

    /// The FUSE descriptors with requests to answer.
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let held = if self.index().fuse { &self.units[..] } else { &[] };
        held.iter()
            .filter_map(|(u, _)| match u {
                Unit::Fuse(hold) => Some(hold),
                _ => None,
            })
            .chain(&self.releasing)
            .filter(|h| h.wants_poll())
            .map(fuse::FuseHold::fd)
            .collect()
    }

    /// When an operation in progress needs a slice, or the next unit
    /// reaches `--release-after`.
    fn next_deadline(&self) -> Option<Instant> {
        let expiry = self
            .release_after
            .and_then(|after| Some(self.index().oldest? + after));
        self.busy_at.into_iter().chain(expiry).min()
    }

    /// Serve readable FUSE requests; drop released connections whose
    /// victims are all gone; advance the operations in progress by one
    /// slice; release what reached `--release-after`. Never blocks.
    fn service(&mut self, now: Instant) -> Vec<KitEvent> {
        if self.index().fuse {
            for (unit, _) in &mut self.units {
                if let Unit::Fuse(hold) = unit {
                    hold.on_readable();
                }
            }
        }
        for hold in &mut self.releasing {
            hold.on_readable();
        }
        self.releasing.retain(|h| !h.is_finished());
        self.advance(Instant::now() + SLICE);
        let mut events = std::mem::take(&mut self.done);
        let expired = self.release_after.is_some_and(|after| {
            self.index().oldest.is_some_and(|since| since + after <= now)
        });
        if expired {
            events.push(KitEvent::Expired(self.release_expired(now)));
        }
        self.busy_at = self.busy_at();
        events
    }
}

/// "made 3 of 50 zombies: fork failed: Resource temporarily unavailable
/// (pids.max reached?)"; `what` in the plural.
fn shortfall(made: usize, wanted: usize, what: &str, e: Errno) -> String {
    let hint = if e == Errno::EAGAIN { " (pids.max reached?)" } else { "" };
    format!("made {made} of {wanted} {what}: fork failed: {}{hint}", e.desc())
}
