//! Setup in kernel order, before the loop: block the signals (before any
//! child exists, so none is lost), become a subreaper unless PID 1, raise
//! what `--zombies`/`--dstate`/`--raise` ask, serve the control socket,
//! spawn the child, then the guard. A failure here exits with a
//! documented code, after undoing what was already raised.

use std::time::Instant;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::unistd::{self, Pid};

use super::Init;
use crate::chaos::{ChaosCmd, Kit, Release, Started};
use crate::config::{Config, ControlPath, Withhold};
use crate::control::Server;
use crate::error::Error;
use crate::guard::{self, Guard};
use crate::log::{error, info};
use crate::procfs;
use crate::reaper::{self, Policy};
use crate::report::Recorder;
use crate::signals;
use crate::spawn::{self, Group, SpawnPlan};
use crate::waiting::Waiters;

/// Block signals → become a subreaper unless PID 1 → raise what
/// `--zombies`/`--dstate` ask → serve the control socket → spawn the child.
pub(super) fn setup(cfg: Config) -> Result<Init, Error> {
    let started = Instant::now();
    let cfg_report = cfg.report.is_some();
    let (sigfd, child_signals) = signals::block_signals()?;
    let me = unistd::getpid();
    let is_pid1 = me.as_raw() == 1;
    reaper::become_subreaper(cfg.subreaper, is_pid1)?;
    if let Some(sig) = cfg.pdeathsig {
        prctl::set_pdeathsig(sig).map_err(Error::Pdeathsig)?;
    }
    let raising = cfg.zombies > 0 || cfg.dstate > 0 || !cfg.raise.is_empty();
    // Said once: by the refusal of what is raised at start, else here.
    let proc_ok = proc_is_ours(!raising);
    let mut kit = Kit::new(cfg.release_after);
    raise_at_start(&cfg, &mut kit).inspect_err(|_| {
        kit.release(&Release::All);
    })?;
    // After the holdings, before the child: once the socket exists, what
    // `--zombies`/`--dstate` asked for is in place and undead answers
    // (the child may rely on it, e.g. `-- undead wait --zombies N`).
    let control = serve_control(&cfg).inspect_err(|_| {
        kit.release(&Release::All);
    })?;
    let child = if cfg.pause {
        info!("--pause: no command; SIGTERM or SIGINT ends undead");
        None
    } else {
        // A failed fork (pids.max) is an exit path undead controls too.
        let started = start_child(&cfg, is_pid1, &child_signals);
        Some(started.inspect_err(|_| {
            kit.release(&Release::All);
            if let Some(server) = &control {
                server.remove();
            }
        })?)
    };
    let guard = child.filter(|_| !is_pid1 && proc_ok && cfg.guard);
    let guard = guard.and_then(start_guard);
    let now = Instant::now();
    Ok(Init {
        policy: policy(&cfg.withhold),
        withhold_until: cfg.withhold.ends(cfg.release_after).map(|d| now + d),
        cfg,
        me,
        is_pid1,
        proc_ok,
        sigfd,
        child,
        pause_ended: false,
        child_exit: None,
        kill_at: None,
        stopping: None,
        killing: false,
        reaped: 0,
        control,
        kit,
        recorder: cfg_report.then(|| Recorder::new(started)),
        guard,
        waiters: Waiters::default(),
        later: Vec::new(),
    })
}

fn start_child(
    cfg: &Config,
    is_pid1: bool,
    signals: &signals::ChildSignalState,
) -> Result<Pid, Error> {
    let plan = SpawnPlan {
        argv: &cfg.command,
        group: if cfg.setsid { Group::Session } else { Group::ProcessGroup },
        die_with_parent: !is_pid1,
        signals,
    };
    let child = spawn::spawn_child(&plan)?;
    info!("started child {child}: {}", cfg.command.join(" "));
    Ok(child)
}

/// The control socket. An explicit `--control`/`UNDEAD_CONTROL` that
/// cannot be served is an error; the default path is best effort, so a
/// read-only /run does not stop undead from standing in for tini.
fn serve_control(cfg: &Config) -> Result<Option<Server>, Error> {
    let (path, explicit) = match &cfg.control {
        ControlPath::Off => return Ok(None),
        ControlPath::Default(path) => (path, false),
        ControlPath::Explicit(path) => (path, true),
    };
    match Server::bind(path) {
        Ok(server) => {
            info!("control socket at {}", path.display());
            Ok(Some(server))
        }
        Err(errno) if explicit => {
            Err(Error::ControlBind { path: path.display().to_string(), errno })
        }
        Err(Errno::EADDRINUSE) => {
            info!(
                "no control socket: another undead answers on {}",
                path.display()
            );
            Ok(None)
        }
        Err(errno) => {
            info!("no control socket at {}: {}", path.display(), errno.desc());
            Ok(None)
        }
    }
}

/// `--zombies N`, `--dstate N`, then each `--raise`: all or nothing at
/// start.
fn raise_at_start(cfg: &Config, kit: &mut Kit) -> Result<(), Error> {
    let asks = [
        (cfg.zombies, ChaosCmd::Zombies { n: cfg.zombies, holder: false }),
        (
            cfg.dstate,
            ChaosCmd::Dstate {
                n: cfg.dstate,
                kind: cfg.dstate_kind,
                outlive: None,
                cwd: None,
            },
        ),
    ];
    let raises = cfg.raise.iter().map(|cmd| (1, cmd.clone()));
    for (n, cmd) in asks.into_iter().filter(|(n, _)| *n > 0).chain(raises) {
        // Before the child runs: nothing to forward yet, so block.
        let made = match kit.create(&cmd) {
            Started::Now(made) => made,
            Started::Later(op) => kit.finish_now(op).unwrap_or_default(),
        };
        if let Some(why) = made.error {
            return Err(Error::RaiseAtStart(why));
        }
        info!("holding {n}: pids {}", crate::log::pids(&made.pids));
    }
    Ok(())
}

/// /proc is this PID namespace's (said if not, when `say`).
fn proc_is_ours(say: bool) -> bool {
    match procfs::not_ours() {
        None => true,
        Some(why) => {
            if say {
                error!("{why}");
            }
            false
        }
    }
}

/// undead-guard, started only as a subreaper with /proc and `--guard`.
/// As PID 1 the kernel kills the namespace when undead dies. As a
/// subreaper the child dies by its parent-death signal; only `--guard`
/// adds a process of our own to the tree (tini's tree by default:
/// tini's tests count init's descendants). Without /proc, `--wait-all`
/// waits for waitpid's ECHILD, which the guard (a child as long as
/// undead lives) would never let come.
fn start_guard(child: Pid) -> Option<Guard> {
    guard::spawn_guard(child)
        .inspect_err(|e| error!("failed to start undead-guard: {}", e.desc()))
        .ok()
}

/// Reap from the start, or withhold (for a while or until released).
fn policy(withhold: &Withhold) -> Policy {
    match withhold {
        Withhold::Off => Policy::ReapAll,
        Withhold::Forever | Withhold::For(_) => Policy::Withhold,
    }
}
