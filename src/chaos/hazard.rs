//! Teardown hazards beyond Z and D (SPEC §3.4): the request shared by the
//! six kinds (`stopped`, `deaf`, `slow`, `escapee`, `hopper`, `frozen`),
//! its one text form (client and server both use `parse`/`Display`); their
//! processes are forked by `fork.rs`.
//!
//! Each kind lives in a file of its own with the same narrow shape:
//! `spawn` (fork what is asked, stop at the first fork failure), `ready`
//! (the observable state that creation waits for) and release.

use std::fmt;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::Error;
use crate::parse;

use super::frozen::{self, Frozen};
use super::hopper::{self, Lines};
use super::{deaf, slow, stopped};

/// The six kinds, in the order of the SPEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HazardKind {
    Stopped,
    Deaf,
    Slow,
    Escapee,
    Hopper,
    Frozen,
}

impl HazardKind {
    pub const ALL: [HazardKind; 6] = [
        HazardKind::Stopped,
        HazardKind::Deaf,
        HazardKind::Slow,
        HazardKind::Escapee,
        HazardKind::Hopper,
        HazardKind::Frozen,
    ];

    /// The verb, the `release` word and the kind in `status`/`ps`.
    pub fn name(self) -> &'static str {
        match self {
            HazardKind::Stopped => "stopped",
            HazardKind::Deaf => "deaf",
            HazardKind::Slow => "slow",
            HazardKind::Escapee => "escapee",
            HazardKind::Hopper => "hopper",
            HazardKind::Frozen => "frozen",
        }
    }

    pub fn parse(word: &str) -> Option<HazardKind> {
        HazardKind::ALL.into_iter().find(|k| k.name() == word)
    }

    /// Every kind but `frozen` may be `--unheld` (SPEC §3.4).
    pub fn may_be_unheld(self) -> bool {
        self != HazardKind::Frozen
    }
}

/// A creation request: `KIND N [unheld] [every D] [exit_after D]
/// [unbounded]` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HazardCmd {
    pub kind: HazardKind,
    pub n: usize,
    pub unheld: bool,
    /// `hopper --every` (default 10 ms).
    pub every: Option<Duration>,
    /// `slow --exit-after` (required).
    pub exit_after: Option<Duration>,
    /// `frozen --unbounded` (required on cgroup v1).
    pub unbounded: bool,
}

/// How often a hopper forks its successor unless told.
pub const DEFAULT_EVERY: Duration = Duration::from_millis(10);

impl HazardCmd {
    /// The words after the verb. Pure; every error is one line.
    pub fn parse(kind: HazardKind, words: &[&str]) -> Result<Self, String> {
        let (n, rest) = words.split_first().ok_or("missing count")?;
        let mut cmd = HazardCmd {
            kind,
            n: parse::count(n)?,
            unheld: false,
            every: None,
            exit_after: None,
            unbounded: false,
        };
        let name = kind.name();
        let mut it = rest.iter();
        while let Some(&w) = it.next() {
            let mut value = || -> Result<Duration, String> {
                parse::duration(it.next().ok_or(format!("{w} needs a value"))?)
            };
            match (w, kind) {
                ("unheld", k) if k.may_be_unheld() => cmd.unheld = true,
                ("every", HazardKind::Hopper) => cmd.every = Some(value()?),
                ("exit_after", HazardKind::Slow) => {
                    cmd.exit_after = Some(value()?);
                }
                ("unbounded", HazardKind::Frozen) => cmd.unbounded = true,
                _ => {
                    let w = w.replace('_', "-");
                    return Err(format!("{name} takes no --{w}"));
                }
            }
        }
        if kind == HazardKind::Slow && cmd.exit_after.is_none() {
            return Err("slow needs --exit-after DURATION".into());
        }
        if cmd.every.is_some_and(|d| d.is_zero()) {
            return Err("hopper needs --every above 0".into());
        }
        Ok(cmd)
    }
}

impl fmt::Display for HazardCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.n)?;
        if self.unheld {
            write!(f, " unheld")?;
        }
        if let Some(d) = self.every {
            write!(f, " every {}ms", d.as_millis())?;
        }
        if let Some(d) = self.exit_after {
            write!(f, " exit_after {}ms", d.as_millis())?;
        }
        if self.unbounded {
            write!(f, " unbounded")?;
        }
        Ok(())
    }
}

/// `undead KIND --help` for the six hazard verbs (parsed by hand: one
/// argh struct per verb would cost the binary ~10 KB).
const HAZARD_HELP: &str = "\
Usage: undead KIND N [--unheld] [--every D] [--exit-after D] [--unbounded] \
[--control PATH]

Raise N processes of a teardown hazard; prints their PIDs. KIND:
  stopped   state T: a SIGTERM stays pending until SIGCONT
  deaf      ignores TERM INT HUP QUIT USR1 USR2 PIPE ALRM: only SIGKILL ends it
  slow      exits 0 --exit-after D after SIGTERM/SIGINT (required)
  escapee   deaf, in a session and process group of its own
  hopper    forks its successor and exits every --every D (default 10ms)
  frozen    in a frozen cgroup of undead's own; --unbounded is required on
            cgroup v1 (undead rescue on the host thaws it)

Options:
  --unheld          not held: release leaves them, the stop sequence ends
                    them (all kinds but frozen)
  --control PATH    control socket (default $UNDEAD_CONTROL or
                    /run/undead.sock)
  --help, help      display usage information";

/// The words of a hazard verb as request words (`--exit-after 2s` →
/// `exit_after 2s`) and the control path; `HazardCmd::parse` judges them.
pub fn hazard_words<'a>(
    words: &[&'a str],
) -> Result<(Vec<&'a str>, Option<String>), Error> {
    let mut out = Vec::new();
    let mut control = None;
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if w.starts_with("--") => (n, Some(v)),
            _ => (w, None),
        };
        let mut value = |what| {
            inline.or_else(|| it.next().copied()).ok_or_else(|| {
                Error::Usage(format!("missing value for option '{what}'"))
            })
        };
        match name {
            "--help" | "help" => return Err(Error::Help(HAZARD_HELP.into())),
            "--unheld" => out.push("unheld"),
            "--unbounded" => out.push("unbounded"),
            "--every" => out.extend(["every", value(name)?]),
            "--exit-after" => out.extend(["exit_after", value(name)?]),
            "--control" => control = Some(value(name)?.to_string()),
            _ if w.starts_with("--") => {
                return Err(Error::Usage(format!(
                    "unrecognized argument: {w}"
                )));
            }
            _ => out.push(w),
        }
    }
    // The count comes first on the wire.
    if let Some(i) = out.iter().position(|w| w.parse::<usize>().is_ok()) {
        let n = out.remove(i);
        out.insert(0, n);
    }
    Ok((out, control))
}

/// One holding of a hazard kind: released together.
#[derive(Debug)]
pub enum Holding {
    /// A stopped, deaf, slow or escapee process (undead's child).
    Proc { kind: HazardKind, pid: Pid, unheld: bool },
    /// The lines of one `hopper` creation.
    Hopper { lines: Lines, unheld: bool },
    /// A frozen cgroup and its victims.
    Frozen(Frozen),
}

impl Holding {
    pub fn kind(&self) -> HazardKind {
        match self {
            Holding::Proc { kind, .. } => *kind,
            Holding::Hopper { .. } => HazardKind::Hopper,
            Holding::Frozen(_) => HazardKind::Frozen,
        }
    }

    /// `--unheld`: left alone by `release`, `--release-after` and exit.
    pub fn unheld(&self) -> bool {
        match self {
            Holding::Proc { unheld, .. } | Holding::Hopper { unheld, .. } => {
                *unheld
            }
            Holding::Frozen(_) => false,
        }
    }

    /// Its processes now (a hopper's change all the time).
    pub fn pids(&self) -> Vec<Pid> {
        match self {
            Holding::Proc { pid, .. } => vec![*pid],
            Holding::Hopper { lines, .. } => lines.newest(),
            Holding::Frozen(f) => f.pids.clone(),
        }
    }

    /// How many of what was asked it is: its lines for a hopper (however
    /// many of them a scan catches mid-hop), else its processes.
    pub fn made(&self) -> usize {
        match self {
            Holding::Hopper { lines, .. } => lines.n,
            other => other.pids().len(),
        }
    }

    /// Whether the drain reaped it (someone else killed it): its pid must
    /// not be signalled later. Hoppers and frozen victims stay until
    /// released: their group and cgroup are undead's own.
    pub fn reaped(&self, reaped: &[Pid]) -> bool {
        matches!(self, Holding::Proc { pid, .. } if reaped.contains(pid))
    }

    /// SIGKILL it (hoppers: until their group is empty; frozen: then
    /// thaw and remove the cgroup); returns the pids the caller reaps.
    pub fn release(self, wait: Duration) -> Vec<Pid> {
        match self {
            Holding::Proc { pid, .. } => {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                vec![pid]
            }
            Holding::Hopper { lines, .. } => lines.release(wait),
            Holding::Frozen(mut f) => f.release(wait),
        }
    }
}

/// Fork what `cmd` asks (stopping at the first fork failure, whose errno
/// comes back); the kit confirms each holding's state (`check`) as an
/// operation in progress. `Err`: nothing could be made, and why.
pub fn spawn(
    cmd: &HazardCmd,
) -> Result<(Vec<Holding>, Option<Errno>), String> {
    let (kind, n, unheld) = (cmd.kind, cmd.n, cmd.unheld);
    let (pids, errno) = match kind {
        HazardKind::Stopped => stopped::spawn(n),
        HazardKind::Deaf => deaf::spawn(n, false),
        HazardKind::Escapee => deaf::spawn(n, true),
        HazardKind::Slow => slow::spawn(n, cmd.exit_after.unwrap_or_default()),
        HazardKind::Hopper => {
            let every = cmd.every.unwrap_or(DEFAULT_EVERY);
            let (lines, errno) = hopper::spawn(n, every);
            let Some(lines) = lines else {
                let e = errno.unwrap_or(Errno::EAGAIN);
                return Err(shortfall(0, n, kind, e));
            };
            return Ok((vec![Holding::Hopper { lines, unheld }], errno));
        }
        HazardKind::Frozen => {
            return match frozen::spawn(n, cmd.unbounded) {
                Ok((f, errno)) => Ok((vec![Holding::Frozen(f)], errno)),
                Err(frozen::Refusal::Refused(why)) => Err(why),
                Err(frozen::Refusal::Failed(op, e)) => {
                    Err(format!("frozen: {op} failed: {}", e.desc()))
                }
            };
        }
    };
    let made = pids.into_iter().map(|pid| Holding::Proc { kind, pid, unheld });
    Ok((made.collect(), errno))
}

impl Holding {
    /// Whether it is observably in its state: T, a signal mask, a name;
    /// a hopper's lines all running; a frozen cgroup frozen. A process
    /// that is gone or dead never will be.
    pub fn check(&mut self) -> super::pending::Check {
        use super::pending::Check;
        let ready = match self {
            Holding::Proc { kind, pid, .. } => {
                if matches!(crate::procfs::state_of(*pid), None | Some('Z')) {
                    return Check::Failed;
                }
                match kind {
                    HazardKind::Stopped => stopped::ready(*pid),
                    HazardKind::Slow => slow::ready(*pid),
                    k => deaf::ready(*pid, *k == HazardKind::Escapee),
                }
            }
            Holding::Hopper { lines, .. } => lines.ready(),
            Holding::Frozen(f) => f.ready(),
        };
        if ready { Check::Ready } else { Check::NotYet }
    }
}

/// "made 3 of 50 stopped: fork failed: Resource temporarily unavailable
/// (pids.max reached?)"
fn shortfall(made: usize, n: usize, kind: HazardKind, e: Errno) -> String {
    let hint = if e == Errno::EAGAIN { " (pids.max reached?)" } else { "" };
    let (name, desc) = (kind.name(), e.desc());
    format!("made {made} of {n} {name}: fork failed: {desc}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for text in [
            "stopped 2",
            "deaf 3 unheld",
            "slow 1 unheld exit_after 2000ms",
            "escapee 1",
            "hopper 4 every 10ms",
            "frozen 2 unbounded",
        ] {
            let words: Vec<&str> = text.split(' ').collect();
            let kind = HazardKind::parse(words[0]).unwrap();
            let cmd = HazardCmd::parse(kind, &words[1..]).unwrap();
            assert_eq!(cmd.to_string(), text);
        }
    }

    #[test]
    fn bad_requests_are_one_line() {
        let p = |k, w: &[&str]| HazardCmd::parse(k, w).unwrap_err();
        assert_eq!(p(HazardKind::Frozen, &["1", "unheld"]), {
            "frozen takes no --unheld".to_string()
        });
        assert!(p(HazardKind::Slow, &["1"]).contains("--exit-after"));
        assert!(p(HazardKind::Deaf, &["x"]).contains("invalid count"));
        assert!(
            p(HazardKind::Hopper, &["1", "every", "soon"])
                .contains("invalid duration")
        );
        assert!(p(HazardKind::Hopper, &["1", "every"]).contains("value"));
        assert!(p(HazardKind::Hopper, &["1", "every", "0ms"]).contains("0"));
        assert!(p(HazardKind::Stopped, &[]).contains("missing"));
        assert!(p(HazardKind::Stopped, &["1", "unbounded"]).contains("no"));
    }
}
