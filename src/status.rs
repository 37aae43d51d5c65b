//! The `status` reply: what undead is, holds and sees, as one JSON object.
//!
//! ```json
//! {"ok":true,"pid":1,"pidns":"pid:[4026532]","child":{"pid":7,"state":"running","exit_code":null},
//!  "withholding":false,"withhold_left_ms":null,"release_after_ms":null,
//!  "reaped":12,"held":[{"pid":9,"kind":"zombie","unheld":false,"held_ms":250,
//!  "release_in_ms":null}],"withheld":[],"seen":{"zombies":1,"dstate":0}}
//! ```
//! Under `--pause` the child is `{"pid":null,"state":"none",...}`.
//! `pidns` lets a client tell whether it shares undead's PID namespace
//! (pids mean the same to both) before it labels processes. `seen` counts the Z and D processes among undead's descendants (the
//! whole namespace as PID 1), which is what `wait` compares against.

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::chaos::HeldProc;
use crate::json::{Value, obj};
use crate::procfs::{self, Proc};
use crate::reaper::ChildExit;

/// What `status` reports, borrowed from the init.
pub struct View<'a> {
    pub me: Pid,
    pub child: Option<Pid>,
    pub child_exit: Option<ChildExit>,
    /// /proc is this namespace's; if not, nothing is seen or withheld.
    pub proc_ok: bool,
    /// Look at /proc for `seen` and `withheld`; without, both are left out
    /// (`status held`).
    pub seen: bool,
    pub withholding: bool,
    pub withhold_until: Option<Instant>,
    pub release_after: Option<Duration>,
    pub reaped: u64,
    pub held: &'a [HeldProc],
}

/// The `status` reply as one JSON object (schema above).
pub fn snapshot(v: &View<'_>, now: Instant) -> Value {
    // undead's own tree only, walked through the children files: cheap on
    // a host with thousands of processes.
    let mut held_z: Vec<Pid> =
        v.held.iter().filter(|h| h.kind == "zombie").map(|h| h.pid).collect();
    held_z.sort_unstable();
    let (under, known_z) = tree(v.me, v.proc_ok && v.seen, &held_z);
    let count = |s| {
        let extra = if s == 'Z' { known_z } else { 0 };
        under.iter().filter(|p| p.state == s).count() + extra
    };
    // Sorted: a lookup per process, not a scan of everything held.
    let mut held_pids: Vec<Pid> = v.held.iter().map(|h| h.pid).collect();
    held_pids.sort_unstable();
    let withheld: Vec<Pid> = under
        .iter()
        .filter(|p| {
            p.state == 'Z'
                && p.ppid == v.me
                && held_pids.binary_search(&p.pid).is_err()
        })
        .map(|p| p.pid)
        .collect();
    let (state, code) = match v.child_exit {
        None if v.child.is_none() => ("none", None),
        None => ("running", None),
        Some(exit) => ("exited", Some(i64::from(exit.code()))),
    };
    let withhold_left =
        v.withhold_until.map(|t| t.saturating_duration_since(now));
    let mut reply = obj([
        ("ok", true.into()),
        ("pid", v.me.into()),
        ("pidns", procfs::pid_namespace().into()),
        (
            "child",
            obj([
                ("pid", v.child.into()),
                ("state", state.into()),
                ("exit_code", code.into()),
            ]),
        ),
        ("withholding", v.withholding.into()),
        ("withhold_left_ms", withhold_left.into()),
        ("release_after_ms", v.release_after.into()),
        ("reaped", v.reaped.into()),
        ("held", held(v, now).into()),
    ]);
    if v.seen {
        let seen = obj([
            ("zombies", count('Z').into()),
            ("dstate", count('D').into()),
        ]);
        reply.push("withheld", withheld.into());
        reply.push("seen", seen);
    }
    reply
}

/// How many Z and D processes undead sees among its descendants (what
/// `wait` compares against).
/// `zombies`: the kit's (sorted), counted without being read. One walk
/// (`procfs::descendants_once`): a process missed is counted by the next.
pub fn seen(me: Pid, proc_ok: bool, zombies: &[Pid]) -> (u64, u64) {
    if !proc_ok {
        return (0, 0);
    }
    let (known_z, rest): (Vec<Pid>, Vec<Pid>) =
        procfs::descendants_once(me, zombies)
            .into_iter()
            .partition(|p| zombies.binary_search(p).is_ok());
    let under: Vec<Proc> =
        rest.into_iter().filter_map(procfs::read_proc).collect();
    let count = |s| under.iter().filter(|p| p.state == s).count() as u64;
    (count('Z') + known_z.len() as u64, count('D'))
}

/// undead's descendants as read from /proc, but for the zombies the kit
/// holds, which are only counted: a held zombie is Z until the kit reaps
/// it (nothing else can), and thousands of them are common.
/// `held_z`: the kit's zombies, sorted.
fn tree(me: Pid, proc_ok: bool, held_z: &[Pid]) -> (Vec<Proc>, usize) {
    if !proc_ok {
        return (Vec::new(), 0);
    }
    let (known_z, rest): (Vec<Pid>, Vec<Pid>) =
        procfs::descendants_of(me, held_z)
            .into_iter()
            .partition(|p| held_z.binary_search(p).is_ok());
    (rest.into_iter().filter_map(procfs::read_proc).collect(), known_z.len())
}

/// The held processes, each with its age and time left.
fn held(v: &View<'_>, now: Instant) -> Vec<Value> {
    v.held
        .iter()
        .map(|h| {
            let age = now.saturating_duration_since(h.since);
            let left = v.release_after.map(|r| r.saturating_sub(age));
            obj([
                ("pid", h.pid.into()),
                ("kind", h.kind.into()),
                ("unheld", h.unheld.into()),
                ("held_ms", age.into()),
                ("release_in_ms", left.filter(|_| !h.unheld).into()),
            ])
        })
        .collect()
}
