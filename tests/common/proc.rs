//! The host's /proc, read from the test: one parser of `/proc/PID/stat`
//! ([`Stat`]), one process identity that survives pid reuse ([`Ident`]),
//! the process tree, and [`KillOnDrop`] for what escapes it.

use std::fs;
use std::process::Child;

/// One line of `/proc/PID/stat`, the fields the tests read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    /// Field 2, between the parentheses (a comm may hold spaces and `)`).
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// The controlling terminal's device number, 0 if none.
    pub tty_nr: i64,
    /// The terminal's foreground process group, -1 if none.
    pub tpgid: i32,
    /// Field 22, in clock ticks since boot: with the pid, it names one
    /// process even if the pid is reused later.
    pub start: u64,
    /// Fields 14 and 15: CPU time in user and kernel mode, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Field 52: the wait status of a zombie (0 while it runs).
    pub exit_code: i64,
}

impl Stat {
    /// Parse one stat line (of this host or, as text, of a container).
    pub fn parse(line: &str) -> Option<Stat> {
        let open = line.find('(')?;
        let close = line.rfind(')')?;
        // Fields from 3 (state) on: index N here is field N + 3.
        let f: Vec<&str> = line.get(close + 2..)?.split(' ').collect();
        let num = |i: usize| f.get(i)?.trim().parse::<i64>().ok();
        Some(Stat {
            pid: line[..open].trim().parse().ok()?,
            comm: line[open + 1..close].to_string(),
            state: f.first()?.chars().next()?,
            ppid: i32::try_from(num(1)?).ok()?,
            pgrp: i32::try_from(num(2)?).ok()?,
            session: i32::try_from(num(3)?).ok()?,
            tty_nr: num(4)?,
            tpgid: i32::try_from(num(5)?).ok()?,
            start: u64::try_from(num(19)?).ok()?,
            utime: u64::try_from(num(11)?).ok()?,
            stime: u64::try_from(num(12)?).ok()?,
            exit_code: num(49)?,
        })
    }

    /// `/proc/PID/stat` of the host; `None` once the process is reaped.
    pub fn of(pid: i32) -> Option<Stat> {
        Stat::parse(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

/// `/proc/PID/stat` fields: (state, ppid); `None` if gone.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    Stat::of(pid).map(|s| (s.state, s.ppid))
}

pub fn state(pid: i32) -> Option<char> {
    Stat::of(pid).map(|s| s.state)
}

/// The fields of `/proc/PID/stat` after the comm: [0] state (as 0),
/// [1] ppid, [2] pgrp, [3] session, [4] tty_nr, [5] tpgid.
pub fn stat_fields(pid: i32) -> Option<Vec<i64>> {
    let s = Stat::of(pid)?;
    let ids = [s.ppid, s.pgrp, s.session, s.tpgid].map(i64::from);
    Some([0, ids[0], ids[1], ids[2], s.tty_nr, ids[3]].to_vec())
}

/// `/proc/PID/stat` field 22, the start time (see [`Stat::start`]).
pub fn starttime(pid: i32) -> Option<u64> {
    Stat::of(pid).map(|s| s.start)
}

pub fn comm(pid: i32) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim_end()
            .to_string(),
    )
}

/// Where the process sleeps in the kernel (empty if running or gone).
pub fn wchan(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

/// A `Key:\tvalue` line of /proc/PID/status.
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string())
    })
}

/// A signal mask of /proc/PID/status (`SigIgn`, `ShdPnd`, `CapEff`...)
/// as bits: bit N-1 for signal N.
pub fn status_mask(pid: i32, key: &str) -> Option<u64> {
    u64::from_str_radix(&status_field(pid, key)?, 16).ok()
}

/// The pid of a process in the innermost PID namespace it belongs to: the
/// last field of the `NSpid` line of /proc/PID/status.
pub fn ns_pid(pid: i32) -> Option<i32> {
    status_field(pid, "NSpid")?.split_whitespace().last()?.parse().ok()
}

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The children of `pid` from its children files
/// (`/proc/PID/task/TID/children`): one short read, where `children_of`
/// scans every process on the host (slower than a 10 ms hop when the host
/// is busy).
pub fn children_listed(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

pub fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat(p).map(|s| s.1) == Some(pid))
        .collect()
}

/// Every descendant of `root` but `undead-guard`, the subreaper-mode
/// helper that exists exactly as long as undead does.
pub fn descendants(root: i32) -> Vec<i32> {
    all_descendants(root)
        .into_iter()
        .filter(|&p| comm(p).as_deref() != Some("undead-guard"))
        .collect()
}

/// Every descendant of `root`, the guard included.
pub fn all_descendants(root: i32) -> Vec<i32> {
    let procs: Vec<(i32, i32)> =
        all_pids().into_iter().filter_map(|p| Some((p, stat(p)?.1))).collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            procs.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Those of `pids` that still run: present and not a zombie.
pub fn alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|&p| state(p).is_some_and(|s| s != 'Z'))
        .collect()
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(pid, sig) };
}

/// One process, by pid and start time: `present`/`state` stay correct
/// even if the pid is reused by an unrelated process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    pub pid: i32,
    pub start: u64,
}

impl Ident {
    pub fn of(pid: i32) -> Option<Ident> {
        Some(Ident { pid, start: starttime(pid)? })
    }
    /// Its /proc/PID/stat while it is this process.
    pub fn stat(&self) -> Option<Stat> {
        Stat::of(self.pid).filter(|s| s.start == self.start)
    }
    /// Still present in /proc (in any state, Z included).
    pub fn present(&self) -> bool {
        self.stat().is_some()
    }
    /// The process's state letter, `None` once it is gone (reaped).
    pub fn state(&self) -> Option<char> {
        self.stat().map(|s| s.state)
    }
    /// Has exited: a zombie, or reaped.
    pub fn exited(&self) -> bool {
        matches!(self.state(), None | Some('Z'))
    }
}

/// What [`KillOnDrop`] can end: an [`Ident`] (only while it is still that
/// process) or a `Child` this test spawned (also reaped). Never a bare pid:
/// a drop can come after the pid was reused (the 20 000-zombie tests cycle
/// the host's pids), and a stale kill would hit another test's process.
pub trait Kill {
    fn kill(&mut self);
}

impl Kill for Ident {
    fn kill(&mut self) {
        if self.present() {
            kill(self.pid, libc::SIGKILL);
        }
    }
}

impl Kill for Child {
    fn kill(&mut self) {
        if let Ok(None) = self.try_wait() {
            let _ = Child::kill(self);
            let _ = self.wait();
        }
    }
}

/// SIGKILLs what it lists on drop: processes that escaped undead's tree,
/// which `Undead`'s drop no longer finds, also when the test fails.
pub struct KillOnDrop<T: Kill = Ident>(pub Vec<T>);

impl KillOnDrop<Ident> {
    /// Those of `pids` still present, each named by its start time.
    pub fn pids(pids: &[i32]) -> Self {
        KillOnDrop(idents(pids))
    }
    /// The pids of those still running (present, not a zombie, and still
    /// the same process).
    pub fn alive(&self) -> Vec<i32> {
        self.0
            .iter()
            .filter(|i| i.state().is_some_and(|s| s != 'Z'))
            .map(|i| i.pid)
            .collect()
    }
    /// Every pid listed.
    pub fn listed(&self) -> Vec<i32> {
        self.0.iter().map(|i| i.pid).collect()
    }
}

/// Those of `pids` still present, named so that a later kill reaches only
/// them.
pub fn idents(pids: &[i32]) -> Vec<Ident> {
    pids.iter().copied().filter_map(Ident::of).collect()
}

impl<T: Kill> Drop for KillOnDrop<T> {
    fn drop(&mut self) {
        for p in &mut self.0 {
            p.kill();
        }
    }
}
