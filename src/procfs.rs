//! Reading /proc of the PID namespace undead runs in: a snapshot of every
//! process (pid, ppid, state letter, comm, wchan). The parsers are pure.
//!
//! `/proc/PID/stat`'s comm sits in parentheses and may itself contain
//! spaces and ')', so the fields after it are found from the *last* ')'
//! (`proc(5)`).

use std::fs;

use nix::unistd::Pid;

/// One process as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: Pid,
    pub ppid: Pid,
    /// The one-letter state: R S D Z T t X I.
    pub state: char,
    pub comm: String,
}

/// Parse `/proc/PID/stat`. Pure.
pub fn parse_stat(text: &str) -> Option<Proc> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Proc {
        pid: Pid::from_raw(pid),
        ppid: Pid::from_raw(ppid),
        state,
        comm,
    })
}

/// Read one process; `None` if it is gone.
pub fn read_proc(pid: Pid) -> Option<Proc> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state letter of one process, `None` if it is gone (or reaped).
pub fn state_of(pid: Pid) -> Option<char> {
    read_proc(pid).map(|p| p.state)
}

/// The kernel function a process sleeps in (`/proc/PID/wchan`), or "".
pub fn wchan(pid: Pid) -> String {
    match fs::read_to_string(format!("/proc/{pid}/wchan")) {
        Ok(w) if w != "0" => w,
        _ => String::new(),
    }
}

/// This process's PID namespace (`pid:[INODE]`), or "" if unknown.
pub fn pid_namespace() -> String {
    fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Every process of this PID namespace's /proc, in pid order.
pub fn snapshot() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    let mut procs: Vec<Proc> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read_proc(Pid::from_raw(pid)))
        .collect();
    procs.sort_by_key(|p| p.pid);
    procs
}

/// The direct children of `pid`, from `/proc/PID/task/TID/children`
/// (CONFIG_PROC_CHILDREN); `None` if the kernel does not provide it.
pub fn children(pid: Pid) -> Option<Vec<Pid>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let text = fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(
            text.split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw),
        );
    }
    Some(out)
}

/// All descendants of `root`, walking the children files: cheap when
/// `root` has few descendants on a busy host. Falls back to a full scan.
pub fn descendants_of(root: Pid) -> Vec<Pid> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        match children(found[i]) {
            Some(kids) => found.extend(kids),
            // A process that exited since is simply skipped; a kernel
            // without children files needs the full scan.
            None if i == 0 => return descendants(&snapshot(), root),
            None => {}
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// All descendants of `root` in a snapshot (children, their children …),
/// excluding `root`. Pure.
pub fn descendants(procs: &[Proc], root: Pid) -> Vec<Pid> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            procs
                .iter()
                .filter(|p| p.ppid == parent && p.pid != root)
                .map(|p| p.pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The process group and session of one process (fields 5 and 6 of
/// `/proc/PID/stat`, after state and ppid), `None` if it is gone.
pub fn group_and_session(pid: Pid) -> Option<(Pid, Pid)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut ids = rest.split_ascii_whitespace().skip(2).map(str::parse);
    let pgid = ids.next()?.ok()?;
    let sid = ids.next()?.ok()?;
    Some((Pid::from_raw(pgid), Pid::from_raw(sid)))
}

/// A signal mask of `/proc/PID/status` (`SigIgn`, `SigBlk`, `ShdPnd` …)
/// as bits (bit N-1 = signal N), `None` if the process is gone.
pub fn signal_mask(pid: Pid, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line =
        text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let p = parse_stat("42 (a) b (c)) Z 7 42 42 0 -1 4194560").unwrap();
        assert_eq!(p.pid, Pid::from_raw(42));
        assert_eq!(p.comm, "a) b (c)");
        assert_eq!(p.state, 'Z');
        assert_eq!(p.ppid, Pid::from_raw(7));
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x)").is_none());
    }

    #[test]
    fn descendants_follow_ppid_chains() {
        let mk = |pid, ppid| Proc {
            pid: Pid::from_raw(pid),
            ppid: Pid::from_raw(ppid),
            state: 'S',
            comm: String::new(),
        };
        let procs =
            [mk(1, 0), mk(2, 1), mk(3, 2), mk(4, 3), mk(5, 1), mk(6, 9)];
        let mut d = descendants(&procs, Pid::from_raw(2));
        d.sort();
        assert_eq!(d, [Pid::from_raw(3), Pid::from_raw(4)]);
        assert_eq!(descendants(&procs, Pid::from_raw(1)).len(), 4);
        assert!(descendants(&procs, Pid::from_raw(6)).is_empty());
    }
}
