//! `--report PATH`: the JSON teardown report written when undead exits
//! (`-` for stderr). Schema (all times in milliseconds since undead
//! started; documented in the README):
//!
//! ```json
//! {"undead_pid":1,"exit_code":143,
//!  "child":{"pid":7,"exit_code":143,"signal":"SIGTERM"},
//!  "duration_ms":5012,"first_term_ms":4990,"term_to_exit_ms":22,
//!  "signals":[{"signal":"SIGTERM","at_ms":4990}],"signals_total":1,
//!  "held":[{"pid":9,"kind":"zombie","held_ms":4900}],
//!  "released":[9],"release_ms":3,
//!  "remaining":[{"pid":12,"ppid":1,"state":"S","comm":"sleep"}],
//!  "reaped":3}
//! ```
//! `held` is what the kit held at exit and `released` what undead let go
//! before exiting; `remaining` is every other process still under undead
//! then (as PID 1 the kernel kills them when undead exits; as a subreaper
//! undead kills them).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::chaos::HeldProc;
use crate::json;
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

    pub fn render(&self, end: &Ending<'_>) -> String {
        let now = self.started.elapsed();
        let ms = |d: Duration| d.as_millis().to_string();
        let opt = |d: Option<Duration>| d.map_or("null".into(), ms);
        let list = |items: Vec<String>| items.join(",");
        let (code, signal) = match end.child_exit {
            None => ("null".into(), "null".into()),
            Some(ChildExit::Code(c)) => (c.to_string(), "null".into()),
            Some(exit @ ChildExit::Signal(s)) => {
                (exit.code().to_string(), json::string(s.as_str()))
            }
        };
        let signals = self
            .signals
            .iter()
            .map(|(s, at)| {
                format!(
                    "{{\"signal\":\"{}\",\"at_ms\":{}}}",
                    s.as_str(),
                    ms(*at)
                )
            })
            .collect();
        let held = end
            .held
            .iter()
            .map(|h| {
                format!(
                    "{{\"pid\":{},\"kind\":{},\"held_ms\":{}}}",
                    h.pid,
                    json::string(h.kind),
                    ms(h.since.elapsed())
                )
            })
            .collect();
        let remaining = end
            .remaining
            .iter()
            .map(|p| {
                format!(
                    "{{\"pid\":{},\"ppid\":{},\"state\":\"{}\",\"comm\":{}}}",
                    p.pid,
                    p.ppid,
                    p.state,
                    json::string(&p.comm)
                )
            })
            .collect();
        format!(
            "{{\"undead_pid\":{},\"exit_code\":{},\"child\":{{\"pid\":{},\
             \"exit_code\":{code},\"signal\":{signal}}},\"duration_ms\":{},\
             \"first_term_ms\":{},\"term_to_exit_ms\":{},\"signals\":[{}],\
             \"signals_total\":{},\"held\":[{}],\"released\":[{}],\
             \"release_ms\":{},\"remaining\":[{}],\"reaped\":{}}}",
            end.me,
            end.exit_code,
            end.child.map_or("null".into(), |p| p.to_string()),
            ms(now),
            opt(self.first_term),
            opt(self.first_term.map(|t| now.saturating_sub(t))),
            list(signals),
            self.signals_total,
            list(held),
            list(end.released.iter().map(Pid::to_string).collect()),
            ms(end.release_took),
            list(remaining),
            end.reaped,
        )
    }
}

/// Write the report to PATH, or stderr for `-`. Failures are logged:
/// undead is exiting and has nothing better to do with them.
pub fn write(path: &str, text: &str) {
    use std::io::Write;
    let result = if path == "-" {
        std::io::stderr().lock().write_all(format!("{text}\n").as_bytes())
    } else {
        std::fs::write(path, format!("{text}\n"))
    };
    if let Err(e) = result {
        let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
        crate::log::error!("cannot write report {path}: {}", errno.desc());
    }
}
