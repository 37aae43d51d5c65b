//! The `status` reply: what undead is, holds and sees, as one JSON object.
//!
//! ```json
//! {"ok":true,"pid":1,"pidns":"pid:[4026532]","child":{"pid":7,"state":"running","exit_code":null},
//!  "withholding":false,"withhold_left_ms":null,"release_after_ms":null,
//!  "reaped":12,"held":[{"pid":9,"kind":"zombie","held_ms":250,
//!  "release_in_ms":null}],"withheld":[],"seen":{"zombies":1,"dstate":0}}
//! ```
//! Under `--pause` the child is `{"pid":null,"state":"none",...}`.
//! `pidns` lets a client tell whether it shares undead's PID namespace
//! (pids mean the same to both) before it labels processes. `seen` counts the Z and D processes among undead's descendants (the
//! whole namespace as PID 1), which is what `wait` compares against.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::chaos::HeldProc;
use crate::json;
use crate::procfs::{self, Proc};
use crate::reaper::ChildExit;

/// What `status` reports, borrowed from the init.
pub struct View<'a> {
    pub me: Pid,
    pub child: Option<Pid>,
    pub child_exit: Option<ChildExit>,
    /// /proc is this namespace's; if not, nothing is seen or withheld.
    pub proc_ok: bool,
    pub withholding: bool,
    pub withhold_until: Option<Instant>,
    pub release_after: Option<Duration>,
    pub reaped: u64,
    pub held: &'a [HeldProc],
}

pub fn render(v: &View<'_>, now: Instant) -> String {
    // undead's own tree only, walked through the children files: cheap on
    // a host with thousands of processes.
    let mine = if v.proc_ok { procfs::descendants_of(v.me) } else { vec![] };
    let under: Vec<Proc> =
        mine.into_iter().filter_map(procfs::read_proc).collect();
    let count = |s| under.iter().filter(|p| p.state == s).count();
    let held_pids: Vec<Pid> = v.held.iter().map(|h| h.pid).collect();
    let withheld: Vec<String> = under
        .iter()
        .filter(|p| {
            p.state == 'Z' && p.ppid == v.me && !held_pids.contains(&p.pid)
        })
        .map(|p| p.pid.to_string())
        .collect();
    let ms = |d: Option<Duration>| {
        d.map_or("null".into(), |d| d.as_millis().to_string())
    };
    let held: Vec<String> = v
        .held
        .iter()
        .map(|h| {
            let age = now.saturating_duration_since(h.since);
            let left = v.release_after.map(|r| r.saturating_sub(age));
            format!(
                "{{\"pid\":{},\"kind\":{},\"held_ms\":{},\"release_in_ms\":{}}}",
                h.pid,
                json::string(h.kind),
                age.as_millis(),
                ms(left)
            )
        })
        .collect();
    let (state, code) = match v.child_exit {
        None if v.child.is_none() => ("none", "null".to_string()),
        None => ("running", "null".to_string()),
        Some(exit) => ("exited", exit.code().to_string()),
    };
    format!(
        "{{\"ok\":true,\"pid\":{},\"pidns\":{},\"child\":{{\"pid\":{},\"state\":\"{state}\",\
         \"exit_code\":{code}}},\"withholding\":{},\"withhold_left_ms\":{},\
         \"release_after_ms\":{},\"reaped\":{},\"held\":[{}],\"withheld\":[{}],\
         \"seen\":{{\"zombies\":{},\"dstate\":{}}}}}",
        v.me,
        json::string(&procfs::pid_namespace()),
        v.child.map_or("null".into(), |p| p.to_string()),
        v.withholding,
        ms(v.withhold_until.map(|t| t.saturating_duration_since(now))),
        ms(v.release_after),
        v.reaped,
        held.join(","),
        withheld.join(","),
        count('Z'),
        count('D'),
    )
}
