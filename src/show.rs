//! What the client verbs print: a reply (pids, a count, the status) and
//! the `ps` table of this PID namespace's processes, from /proc.

use crate::error::Error;
use crate::json::{Value, obj};
use crate::procfs;

/// How to show a reply.
#[derive(Clone, Copy)]
pub enum Print {
    Pids,
    Released,
    Status { json: bool },
}

pub fn reply(reply: &Value, print: Print) -> Result<(), Error> {
    let pids = |key| {
        reply
            .get(key)
            .map(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_u64)
    };
    match print {
        Print::Pids => pids("pids").for_each(|p| crate::log::out!("{p}")),
        Print::Released => {
            crate::log::out!("released {} processes", pids("released").count())
        }
        Print::Status { json: true } => crate::log::out!("{reply}"),
        Print::Status { json: false } => {
            if matches!(reply.get("ok"), Some(Value::Bool(true))) {
                print_status(reply);
            }
        }
    }
    if let Some(note) = reply.get("note").and_then(Value::as_str) {
        crate::log::error!("{note}");
    }
    match reply.get("ok") {
        Some(Value::Bool(true)) => Ok(()),
        _ => {
            let why = reply
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            Err(Error::Refused(why.to_string()))
        }
    }
}

fn print_status(s: &Value) {
    let num = |v: Option<&Value>| {
        v.and_then(Value::as_u64).map_or("-".to_string(), |n| n.to_string())
    };
    let child = s.get("child");
    crate::log::out!("undead pid {}", num(s.get("pid")));
    crate::log::out!(
        "child pid {} {}",
        num(child.and_then(|c| c.get("pid"))),
        child
            .and_then(|c| c.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("?")
    );
    crate::log::out!(
        "withholding {}",
        matches!(s.get("withholding"), Some(Value::Bool(true)))
    );
    crate::log::out!("reaped {}", num(s.get("reaped")));
    let seen = s.get("seen");
    crate::log::out!(
        "seen {} zombies, {} in D",
        num(seen.and_then(|v| v.get("zombies"))),
        num(seen.and_then(|v| v.get("dstate")))
    );
    for h in s.get("held").map(Value::as_array).unwrap_or(&[]) {
        let unheld = matches!(h.get("unheld"), Some(Value::Bool(true)));
        crate::log::out!(
            "{} {} {} for {}ms",
            if unheld { "unheld" } else { "held" },
            num(h.get("pid")),
            h.get("kind").and_then(Value::as_str).unwrap_or("?"),
            num(h.get("held_ms"))
        );
    }
}

/// The processes of this PID namespace, with what undead holds them as
/// (asked over the socket if undead answers; `null` otherwise). `held` is
/// sorted by pid.
pub fn ps(json_out: bool, held: &[(u64, String)]) {
    let rows: Vec<(procfs::Proc, String, Option<&str>)> = procfs::snapshot()
        .into_iter()
        .map(|p| {
            // A zombie's stack is freed when it last switches out
            // (`finish_task_switch`), so the kernel's `get_wchan` finds
            // nothing and /proc/PID/wchan reads "0" for as long as it is a
            // zombie: not read for thousands of held ones.
            let wchan = if p.state == 'Z' {
                String::new()
            } else {
                procfs::wchan(p.pid)
            };
            let pid = p.pid.as_raw() as u64;
            let kind = held
                .binary_search_by_key(&pid, |(p, _)| *p)
                .ok()
                .map(|i| held[i].1.as_str());
            (p, wchan, kind)
        })
        .collect();
    if json_out {
        let items: Vec<Value> = rows
            .iter()
            .map(|(p, wchan, kind)| {
                obj([
                    ("pid", p.pid.into()),
                    ("ppid", p.ppid.into()),
                    ("state", p.state.to_string().into()),
                    ("comm", p.comm.as_str().into()),
                    ("wchan", wchan.as_str().into()),
                    ("held", kind.map(Value::from).into()),
                ])
            })
            .collect();
        crate::log::out!("{}", Value::from(items));
    } else {
        crate::log::out!(
            "{:>7} {:>7} S {:<16} {:<24} HELD",
            "PID",
            "PPID",
            "COMMAND",
            "WCHAN"
        );
        for (p, wchan, kind) in &rows {
            crate::log::out!(
                "{:>7} {:>7} {} {:<16} {:<24} {}",
                p.pid,
                p.ppid,
                p.state,
                p.comm,
                wchan,
                kind.unwrap_or("-")
            );
        }
    }
}
