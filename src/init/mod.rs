//! Init mode: `setup()` in kernel order (`start.rs`), then one loop:
//! wait for events (signals, kit events, control requests, a due
//! deadline: `event.rs`), apply each in that order, check whether to exit.
//! A signal becomes an `Action` (`signals::classify`), and so does a
//! control request (`Request::into_action`); `apply` executes every
//! `Action` and returns a `Reply`, which goes to the client that asked
//! (`control::encode`).
//!
//! Two-phase error policy: `setup` may fail and exit with a documented
//! code; `run` returns no `Result`. Once the child runs, undead must not
//! die on a recoverable error: if PID 1 exits, the kernel SIGKILLs every
//! process of the namespace (`pid_namespaces(7)`), so errors are logged once
//! and the loop goes on.

mod start;

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use crate::action::{Action, Reply};
use crate::chaos::{ChaosCmd, Created, Kit, OpId, Release, Started};
use crate::config::Config;
use crate::control::Server;
use crate::event::{ConnId, Event};
use crate::guard::Guard;
use crate::log::{debug, error, info};
use crate::procfs;
use crate::reaper::{self, ChildExit, Policy};
use crate::report::{self, Recorder};
use crate::signals;
use crate::status;
use crate::teardown;
use crate::wait;
use crate::waiting::{self, Waiters};

/// How long a subreaper's exit keeps killing what is left (a released
/// `--outlive` FUSE victim is SIGKILL-immune until the kernel frees it).
const EXIT_KILL: Duration = Duration::from_secs(2);

/// The one struct that owns undead's state.
pub struct Init {
    cfg: Config,
    me: Pid,
    is_pid1: bool,
    /// /proc is this PID namespace's: without it undead finds no
    /// descendant there (their pids would name other processes).
    proc_ok: bool,
    sigfd: SignalFd,
    /// The main child; `None` under `--pause`, which runs no command.
    child: Option<Pid>,
    /// `--pause` got SIGTERM/SIGINT: release and exit 0.
    pause_ended: bool,
    child_exit: Option<ChildExit>,
    policy: Policy,
    /// End of `--withhold-reaping=DURATION`.
    withhold_until: Option<Instant>,
    /// When the remaining descendants get SIGKILL (`--grace`).
    kill_at: Option<Instant>,
    /// The stop sequence's signal, once SIGTERM/SIGINT arrived (after
    /// `-r`): the stragglers get it too once the child has exited.
    stopping: Option<Signal>,
    /// `--grace` ran out: kill on every wake-up until none is left.
    killing: bool,
    reaped: u64,
    control: Option<Server>,
    kit: Kit,
    /// Signals and times for `--report`, when asked for.
    recorder: Option<Recorder>,
    /// `--guard` in subreaper mode: kills the child's group if undead is
    /// SIGKILLed.
    guard: Option<Guard>,
    /// `wait` clients, answered when their condition holds.
    waiters: Waiters,
    /// Clients whose reply waits for a kit operation, with that reply.
    later: Vec<(OpId, ConnId, Reply)>,
}

pub fn main(cfg: Config) -> u8 {
    crate::log::configure(cfg.verbosity, cfg.log_json);
    match start::setup(cfg) {
        Ok(init) => init.run(),
        Err(e) => {
            error!("{e}");
            e.exit_code()
        }
    }
}

impl Init {
    /// The loop. Returns undead's exit code; never fails.
    pub fn run(mut self) -> u8 {
        loop {
            // The only blocking call of the loop (`wait.rs`).
            let own = self.own_deadline();
            let control = self.control.as_mut();
            let events = wait::wait_for_events(
                &self.sigfd,
                control,
                &mut self.kit,
                own,
            );
            for event in events {
                match event {
                    Event::Signal(got) => {
                        let action = self.classify(&got);
                        self.apply(action);
                    }
                    Event::Expired(released) => self.on_expired(&released),
                    Event::Finished(op, made) => self.on_finished(op, made),
                    Event::Request(conn, asked) => self.request(conn, asked),
                    Event::Deadline(now) => self.on_deadlines(now),
                }
            }
            self.answer_waiters();
            if let Some(code) = self.exit_code() {
                return self.finish(code);
            }
        }
    }

    /// A control request: executed and answered, or (`wait`) held.
    fn request(&mut self, conn: ConnId, asked: Result<Action, String>) {
        let reply = match asked {
            Ok(Action::Wait(want)) => {
                self.waiters.add(conn, want, Instant::now());
                return;
            }
            Ok(action) => self.apply(action),
            Err(why) => Reply::Refused(why),
        };
        match reply {
            Reply::Later(op, then) => self.later.push((op, conn, *then)),
            reply => self.respond(conn, &reply),
        }
    }

    /// A kit operation is finished: answer the client that asked for it.
    fn on_finished(&mut self, op: OpId, made: Option<Created>) {
        let Some(i) = self.later.iter().position(|(id, ..)| *id == op) else {
            return; // `--release-after`'s, or the client's is gone
        };
        let (_, conn, reply) = self.later.swap_remove(i);
        let reply = match made {
            Some(made) => {
                info!("raised: pids {}", crate::log::pids(&made.pids));
                Reply::Raised(made)
            }
            None => reply,
        };
        self.respond(conn, &reply);
    }

    fn respond(&mut self, conn: ConnId, reply: &Reply) {
        if let Some(server) = self.control.as_mut() {
            server.respond(conn, reply);
        }
    }

    /// Answer the `wait` clients whose condition now holds or whose time
    /// is up.
    fn answer_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let kit = &self.kit;
        let held = waiting::Held {
            zombies: kit.zombies().len() as u64,
            of_kind: |k: &str| kit.count(k),
        };
        let look = || status::seen(self.me, self.proc_ok, kit.zombies());
        let now = Instant::now();
        let answers = self.waiters.answer(&held, look, now);
        for (conn, met) in answers {
            let reply = match met {
                Ok(()) => Reply::Done,
                Err(why) => Reply::Refused(why),
            };
            self.respond(conn, &reply);
        }
    }

    /// What a received signal asks for; records it for `--report`.
    fn classify(&mut self, got: &signals::Received) -> Action {
        let sig = match got.signal {
            Ok(sig) => sig,
            Err(n) => {
                info!("dropped real-time signal {n}");
                return Action::Ignore;
            }
        };
        let from_self = got.sender == self.me.as_raw() as u32;
        debug!(
            "received {sig}{}",
            if from_self { " (from undead)" } else { "" }
        );
        if let Some(rec) = self.recorder.as_mut().filter(|_| !from_self) {
            rec.signal(sig);
        }
        signals::classify(sig, from_self, &self.cfg.rewrites)
    }

    /// The one executor of actions; a control request gets its reply.
    fn apply(&mut self, action: Action) -> Reply {
        match action {
            Action::Ignore => {}
            Action::Reap => self.reap_zombies(),
            Action::Forward(sig) => self.forward_signal(sig),
            Action::Shutdown(_) if self.child.is_none() => {
                self.pause_ended = true;
            }
            Action::Shutdown(sig) => self.stop(sig),
            Action::Chaos(cmd) => return self.raise(&cmd),
            Action::Release(what) => return self.release(&what),
            Action::Snapshot { seen } => {
                return Reply::Status(self.status(seen));
            }
            // Only a control connection can wait (`request`).
            Action::Wait(_) => {
                return Reply::Refused("wait needs a connection".into());
            }
        }
        Reply::Done
    }

    fn raise(&mut self, cmd: &ChaosCmd) -> Reply {
        match self.kit.create(cmd) {
            Started::Now(made) => {
                info!("raised {cmd}: pids {}", crate::log::pids(&made.pids));
                Reply::Raised(made)
            }
            Started::Later(op) => Reply::Later(op, Box::new(Reply::Done)),
        }
    }

    /// Release; `release all` also ends withholding, and releasing zombies
    /// reaps the orphans withheld so far (README, "Withheld reaping").
    fn release(&mut self, what: &Release) -> Reply {
        let (mut released, op) = self.kit.release(what);
        if matches!(what, Release::All) {
            self.end_withholding();
        }
        if what.takes_zombies() {
            let drained =
                reaper::reap_zombies(self.awaited_child(), Policy::ReapAll);
            released.extend(&drained.others);
            self.account(drained);
        }
        self.reap_zombies();
        released.sort_unstable();
        released.dedup();
        info!("released pids {}", crate::log::pids(&released));
        match op {
            // Answered once they are gone.
            Some(op) => Reply::Later(op, Box::new(Reply::Released(released))),
            None => Reply::Released(released),
        }
    }

    fn status(&self, seen: bool) -> crate::json::Value {
        let held = self.kit.held();
        let view = status::View {
            me: self.me,
            child: self.child,
            child_exit: self.child_exit,
            proc_ok: self.proc_ok,
            seen,
            withholding: self.policy == Policy::Withhold,
            withhold_until: self.withhold_until,
            release_after: self.kit.release_after(),
            reaped: self.reaped,
            held: &held,
        };
        status::snapshot(&view, Instant::now())
    }

    fn reap_zombies(&mut self) {
        let drained = reaper::reap_zombies(self.awaited_child(), self.policy);
        self.account(drained);
    }

    /// The child while its status is still to be taken. It is taken once:
    /// afterwards its pid may be reused by an unrelated process, which is
    /// an ordinary orphan (its exit must not overwrite the child's).
    fn awaited_child(&self) -> Option<Pid> {
        self.child.filter(|_| self.child_exit.is_none())
    }

    fn account(&mut self, drained: reaper::Drained) {
        if let (Some(exit), Some(child)) = (drained.child, self.child) {
            info!("child {child} {exit}");
            self.child_exit = Some(exit);
            if self.cfg.wait_all {
                if let Some(sig) = self.stopping {
                    self.teardown().terminate(sig);
                }
                self.start_grace();
            }
        }
        for pid in &drained.others {
            if self.cfg.warn_reap && Some(*pid) != self.guard_pid() {
                // tini's words: tests and log greps match them.
                error!("Reaped zombie process with pid={pid}");
            }
            debug!("reaped {pid}");
        }
        self.reaped += drained.others.len() as u64;
        if !drained.others.is_empty() {
            self.kit.forget(&drained.others);
        }
    }

    fn end_withholding(&mut self) {
        self.withhold_until = None;
        self.policy = Policy::ReapAll;
    }

    /// Forward to the child, or to its process group with `-g` (tini -g):
    /// the child leads its own group, so the group id is its pid.
    fn forward_signal(&mut self, sig: Signal) {
        let Some(child) = self.child else {
            debug!("--pause: no child to forward {sig} to");
            return;
        };
        if self.child_exit.is_some() {
            // `--wait-all` after the child exited: the stragglers are what
            // undead waits for, so they get the signal (`docker stop` must
            // still end the container).
            if self.cfg.wait_all {
                self.teardown().signal(sig);
            }
            return;
        }
        let target = if self.cfg.pgroup {
            Pid::from_raw(-child.as_raw())
        } else {
            child
        };
        debug!("forwarding {sig} to {target}");
        if let Err(e) = kill(target, sig) {
            debug!("failed to forward {sig} to {target}: {}", e.desc());
        }
    }

    /// The stop sequence (SPEC §2): `sig` then SIGCONT to the child (or
    /// its group), so a stopped child acts on the TERM instead of holding
    /// it pending; once the child has exited (`--wait-all`), to every
    /// remaining descendant undead does not hold. Then the `--grace` timer.
    fn stop(&mut self, sig: Signal) {
        self.stopping = Some(sig);
        if self.child_exit.is_none() {
            self.forward_signal(sig);
            self.forward_signal(Signal::SIGCONT);
        } else if self.cfg.wait_all {
            self.teardown().terminate(sig);
        }
        self.start_grace();
    }

    fn start_grace(&mut self) {
        if let (Some(grace), None) = (self.cfg.grace, self.kill_at) {
            self.kill_at = Some(Instant::now() + grace);
        }
    }

    /// The init's own timers: end of withholding, end of `--grace`, the
    /// `wait` clients' timeouts and rechecks.
    fn own_deadline(&self) -> Option<Instant> {
        [self.withhold_until, self.kill_at, self.waiters.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_deadlines(&mut self, now: Instant) {
        if self.withhold_until.is_some_and(|at| at <= now) {
            info!("withholding ended; reaping orphans again");
            self.end_withholding();
            self.reap_zombies();
        }
        if self.kill_at.is_some_and(|at| at <= now) {
            self.kill_at = None;
            self.killing = true;
            info!("grace period over; killing every remaining descendant");
        }
        // Every wake-up (a SIGCHLD at least) until none is left: a process
        // that forks as it is killed leaves a child the last scan missed.
        if self.killing {
            self.teardown().kill_all();
        }
    }

    /// `--release-after` released what the kit held; it ends withholding
    /// too ("nothing is held longer"), so the withheld orphans are reaped.
    fn on_expired(&mut self, released: &[Pid]) {
        info!("--release-after: released pids {}", crate::log::pids(released));
        self.end_withholding();
        self.reap_zombies();
    }

    /// Who the teardown may signal: every descendant but what the kit
    /// holds and the guard. `--unheld` processes are the workload's: the
    /// stop sequence signals them and waits for them.
    fn teardown(&self) -> teardown::Scope {
        let held = self.kit.held();
        let spare = held.iter().filter(|h| !h.unheld).map(|h| h.pid);
        let mut spare: Vec<Pid> = spare.chain(self.guard_pid()).collect();
        spare.sort_unstable();
        teardown::Scope {
            me: self.me,
            is_pid1: self.is_pid1,
            proc_ok: self.proc_ok,
            child_group: self.child,
            spare,
            zombies: self.kit.zombies().to_vec(),
        }
    }

    /// The exit code once undead should exit, else `None`.
    fn exit_code(&self) -> Option<u8> {
        if self.pause_ended {
            return Some(0);
        }
        let exit = self.child_exit?;
        if self.cfg.wait_all && self.has_descendants() {
            return None;
        }
        Some(reaper::remap(exit.code(), &self.cfg.remap_exit))
    }

    /// Live descendants other than what the kit holds (released at exit)
    /// and the guard. Zombies do not count: they are reaped or withheld.
    fn has_descendants(&self) -> bool {
        if !self.proc_ok {
            return reaper::has_children();
        }
        self.teardown().any_left()
    }

    /// Every descendant in /proc; none when /proc is not ours.
    fn descendants(&self) -> Vec<Pid> {
        if !self.proc_ok {
            return Vec::new();
        }
        procfs::descendants_of(self.me, self.kit.zombies())
    }

    fn guard_pid(&self) -> Option<Pid> {
        self.guard.as_ref().map(|g| g.pid)
    }

    /// Leave nothing behind, then exit. As PID 1 the kernel kills what is
    /// left when we return; as a subreaper we must do it ourselves, or the
    /// descendants would live on under our own reaper.
    fn finish(mut self, code: u8) -> u8 {
        let held = self.kit.held();
        let releasing = Instant::now();
        let (released, op) = self.kit.release(&Release::All);
        if let Some(op) = op {
            // Exiting: nothing else to do but wait (bounded) for them.
            self.kit.finish_now(op);
        }
        let release_took = releasing.elapsed();
        if let Some(server) = &self.control {
            server.remove();
        }
        if let (Some(rec), Some(path)) = (&self.recorder, &self.cfg.report) {
            let remaining: Vec<procfs::Proc> = self
                .descendants()
                .into_iter()
                .filter(|p| Some(*p) != self.guard_pid())
                .filter_map(procfs::read_proc)
                .collect();
            let ending = report::Ending {
                me: self.me,
                exit_code: code,
                child: self.child,
                child_exit: self.child_exit,
                held: &held,
                released: &released,
                release_took,
                remaining: &remaining,
                reaped: self.reaped,
            };
            report::write(path, &rec.render(&ending));
        }
        // No child at all (the usual end: the child exited and was
        // reaped) is no descendant at all for a subreaper: nothing to walk
        // /proc for. Without our /proc the kill goes to the child's group,
        // which may hold orphans reparented elsewhere: sent regardless.
        if !self.is_pid1 && (!self.proc_ok || reaper::has_children()) {
            // Nothing is spared any more: the kit has released, and the
            // guard goes with the rest.
            let scope =
                teardown::Scope { spare: Vec::new(), ..self.teardown() };
            self.policy = Policy::ReapAll;
            teardown::kill_until_none(&scope, EXIT_KILL, |wait| {
                self.reap_zombies();
                teardown::wait_for_signal(&self.sigfd, wait);
            });
        }
        info!("exiting with {code}");
        code
    }
}
