//! `--report PATH`: the JSON teardown report written when undead exits
//! (`-` for stderr). Schema (all times in milliseconds since undead
//! started; documented in the README):
//!
//! ```json
//! {"undead_pid":1,"exit_code":143,
//!  "child":{"pid":7,"exit_code":143,"signal":"SIGTERM"},
//!  "duration_ms":5012,"first_term_ms":4990,"term_to_exit_ms":22,
//!  "signals":[{"signal":"SIGTERM","at_ms":4990}],"signals_total":1,
//!  "held":[{"pid":9,"kind":"zombie","unheld":false,"held_ms":4900}],
//!  "released":[9],"release_ms":3,
//!  "remaining":[{"pid":12,"ppid":1,"state":"S","comm":"sleep"}],
//!  "reaped":3}
//! ```
//! `held` is what the kit held at exit (`unheld`: a hazard undead showed
//! but did not hold, SPEC §3.4) and `released` what undead let go
//! before exiting; `remaining` is every other process still under undead
//! then (as PID 1 the kernel kills them when undead exits; as a subreaper
//! undead kills them).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::chaos::HeldProc;
use crate::json::{Value, obj};
use crate::procfs::Proc;
use crate::reaper::ChildExit;

/// At most this many signals are listed; `signals_total` counts all.
const MAX_SIGNALS: usize = 256;

/// What undead records while it runs, for the report.
pub struct Recorder {
    started: Instant,
    signals: Vec<(Signal, Duration)>,
    signals_total: u64,
    first_term: Option<Duration>,
}

/// What is known only at exit.
pub struct Ending<'a> {
    pub me: Pid,
    pub exit_code: u8,
    pub child: Option<Pid>,
    pub child_exit: Option<ChildExit>,
    pub held: &'a [HeldProc],
    pub released: &'a [Pid],
    pub release_took: Duration,
    pub remaining: &'a [Proc],
    pub reaped: u64,
}

impl Recorder {
    pub fn new(started: Instant) -> Recorder {
        Recorder {
            started,
            signals: Vec::new(),
            signals_total: 0,
            first_term: None,
        }
    }

    pub fn signal(&mut self, sig: Signal) {
        let at = self.started.elapsed();
        self.signals_total += 1;
        if self.signals.len() < MAX_SIGNALS {
            self.signals.push((sig, at));
        }
        if matches!(sig, Signal::SIGTERM | Signal::SIGINT)
            && self.first_term.is_none()
        {
            self.first_term = Some(at);
        }
    }

    pub fn render(&self, end: &Ending<'_>) -> Value {
        let now = self.started.elapsed();
        let (code, signal) = match end.child_exit {
            None => (None, None),
            Some(ChildExit::Code(c)) => (Some(i64::from(c)), None),
            Some(exit @ ChildExit::Signal(s)) => {
                (Some(i64::from(exit.code())), Some(s.as_str()))
            }
        };
        let signals: Vec<Value> = self
            .signals
            .iter()
            .map(|(s, at)| {
                obj([("signal", s.as_str().into()), ("at_ms", (*at).into())])
            })
            .collect();
        obj([
            ("undead_pid", end.me.into()),
            ("exit_code", i64::from(end.exit_code).into()),
            (
                "child",
                obj([
                    ("pid", end.child.into()),
                    ("exit_code", code.into()),
                    ("signal", signal.into()),
                ]),
            ),
            ("duration_ms", now.into()),
            ("first_term_ms", self.first_term.into()),
            (
                "term_to_exit_ms",
                self.first_term.map(|t| now.saturating_sub(t)).into(),
            ),
            ("signals", signals.into()),
            ("signals_total", self.signals_total.into()),
            ("held", held(end.held).into()),
            ("released", end.released.to_vec().into()),
            ("release_ms", end.release_took.into()),
            ("remaining", remaining(end.remaining).into()),
            ("reaped", end.reaped.into()),
        ])
    }
}

fn held(held: &[HeldProc]) -> Vec<Value> {
    let held_ms = |h: &HeldProc| h.since.elapsed().into();
    held.iter()
        .map(|h| {
            obj([
                ("pid", h.pid.into()),
                ("kind", h.kind.into()),
                ("unheld", h.unheld.into()),
                ("held_ms", held_ms(h)),
            ])
        })
        .collect()
}

fn remaining(procs: &[Proc]) -> Vec<Value> {
    procs
        .iter()
        .map(|p| {
            obj([
                ("pid", p.pid.into()),
                ("ppid", p.ppid.into()),
                ("state", p.state.to_string().into()),
                ("comm", p.comm.as_str().into()),
            ])
        })
        .collect()
}

/// Write the report to PATH, or stderr for `-`. Failures are logged:
/// undead is exiting and has nothing better to do with them.
pub fn write(path: &str, report: &Value) {
    use std::io::Write;
    let result = if path == "-" {
        std::io::stderr().lock().write_all(format!("{report}\n").as_bytes())
    } else {
        std::fs::write(path, format!("{report}\n"))
    };
    if let Err(e) = result {
        let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
        crate::log::error!("cannot write report {path}: {}", errno.desc());
    }
}
