//! What the client verbs print: a reply (pids, a count, the status) and
//! the `ps` table of this PID namespace's processes, from /proc.

use nix::unistd::{ForkResult, Pid};

use crate::error::Error;
use crate::json::{Value, obj};
use crate::procfs;
use crate::sys;

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
pub fn ps(
    json_out: bool,
    procs: Vec<(procfs::Proc, String)>,
    held: &[(u64, String)],
) {
    let rows: Vec<(procfs::Proc, String, Option<&str>)> = procs
        .into_iter()
        .map(|(p, wchan)| {
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

/// From this many processes on, a forked copy of the client reads half
/// of them.
const SPLIT_FROM: usize = 2000;

/// Every process of /proc with its wchan, in pid order. The kernel spends
/// some 8 µs on each stat file (its lookup, most of it), on whichever CPU
/// asks, so with thousands of processes a forked copy of this client reads
/// the upper half while the client reads the lower one (README "Kit at
/// scale"): on a second CPU, that halves the time; on one, it costs a fork.
/// The copy hands its files over in a memfd, raw, and the client parses
/// them. A copy that fails leaves its half to the client.
pub fn read_all() -> Vec<(procfs::Proc, String)> {
    let pids = procfs::listed();
    let split = pids.len() >= SPLIT_FROM;
    let (mine, theirs) =
        pids.split_at(if split { pids.len() / 2 } else { pids.len() });
    let helper = split.then(|| Helper::start(theirs)).flatten();
    let rows = |pids: &[Pid]| {
        let read = pids.iter().filter_map(|&p| read_one(p));
        read.map(|(_, p, wchan)| (p, wchan)).collect::<Vec<_>>()
    };
    let mut out = rows(mine);
    match helper.and_then(Helper::finish) {
        Some(raw) => out.extend(frames(&raw)),
        None => out.extend(rows(theirs)),
    }
    out
}

/// One process: its stat file as read (what a copy hands over), parsed,
/// and its wchan. A zombie's stack is freed when it last switches out
/// (`finish_task_switch`), so the kernel's `get_wchan` finds nothing and
/// /proc/PID/wchan reads "0" for as long as it is a zombie: not read for
/// thousands of held ones.
fn read_one(pid: Pid) -> Option<(Vec<u8>, procfs::Proc, String)> {
    let stat = procfs::read_stat(pid)?;
    let p = procfs::parse_stat(&stat)?;
    let wchan =
        if p.state == 'Z' { String::new() } else { procfs::wchan(pid) };
    Some((stat, p, wchan))
}

/// A forked copy of the client reading processes into a memfd.
struct Helper {
    pid: Pid,
    out: std::fs::File,
}

impl Helper {
    /// Fork a copy that writes, for each of `pids` still there, its stat
    /// file and its wchan, each as a little-endian u32 length and the
    /// bytes. `None` if it cannot be started.
    fn start(pids: &[Pid]) -> Option<Helper> {
        let flags = nix::sys::memfd::MFdFlags::MFD_CLOEXEC;
        let out = std::fs::File::from(
            nix::sys::memfd::memfd_create(c"undead-ps", flags).ok()?,
        );
        let parent = nix::unistd::getpid();
        match sys::fork().ok()? {
            ForkResult::Parent { child } => Some(Helper { pid: child, out }),
            ForkResult::Child => {
                // The client is single-threaded: its copy may allocate
                // (sys.rs, fork-child rule).
                sys::die_with_parent(parent);
                let mut all = Vec::new();
                for (stat, _, wchan) in
                    pids.iter().filter_map(|&p| read_one(p))
                {
                    frame(&mut all, &stat);
                    frame(&mut all, wchan.as_bytes());
                }
                let ok = std::io::Write::write_all(&mut &out, &all).is_ok();
                sys::exit_now(if ok { 0 } else { 1 })
            }
        }
    }

    /// Wait for the copy; what it wrote, if it exited 0.
    fn finish(self) -> Option<Vec<u8>> {
        use std::io::{Read, Seek};
        let status = nix::sys::wait::waitpid(self.pid, None).ok()?;
        if status != nix::sys::wait::WaitStatus::Exited(self.pid, 0) {
            return None;
        }
        // The copy wrote through the same open file: back to its start.
        let mut out = &self.out;
        let mut raw = Vec::new();
        out.rewind().and_then(|()| out.read_to_end(&mut raw)).ok()?;
        Some(raw)
    }
}

fn frame(all: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    all.extend_from_slice(&len.to_le_bytes());
    all.extend_from_slice(&bytes[..len as usize]);
}

/// The processes a helper wrote: pairs of frames (stat, wchan). A cut
/// frame ends the list.
fn frames(mut raw: &[u8]) -> Vec<(procfs::Proc, String)> {
    let mut next = || {
        let (len, rest) = raw.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let bytes = rest.get(..len)?;
        raw = &rest[len..];
        Some(bytes)
    };
    let mut out = Vec::new();
    while let (Some(stat), Some(wchan)) = (next(), next()) {
        if let Some(p) = procfs::parse_stat(stat) {
            out.push((p, String::from_utf8_lossy(wchan).into_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a copy of `ps` writes is read back whole and in order; a frame
    /// cut short (a copy that died mid-write) ends the list there.
    #[test]
    fn frames_round_trip_and_stop_at_a_cut() {
        let mut all = Vec::new();
        for (stat, wchan) in [
            (&b"7 (sleep) S 1 7 7 0"[..], &b"hrtimer_nanosleep"[..]),
            (b"9 (a) b) Z 1 9 9 0", b""),
        ] {
            frame(&mut all, stat);
            frame(&mut all, wchan);
        }
        let got: Vec<(i32, char, String, String)> = frames(&all)
            .into_iter()
            .map(|(p, w)| (p.pid.as_raw(), p.state, p.comm, w))
            .collect();
        let want = vec![
            (7, 'S', "sleep".to_string(), "hrtimer_nanosleep".to_string()),
            (9, 'Z', "a) b".to_string(), String::new()),
        ];
        assert_eq!(got, want);
        // Control: cut inside the second stat frame, only the first is left.
        let cut = &all[..all.len() - 8];
        assert_eq!(frames(cut).len(), 1);
        assert!(frames(&[1, 0]).is_empty());
    }
}
