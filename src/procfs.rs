//! Reading /proc of the PID namespace undead runs in: a snapshot of every
//! process (pid, ppid, state letter, comm, wchan). The parsers are pure.
//!
//! `/proc/PID/stat`'s comm sits in parentheses and may itself contain
//! spaces and ')', so the fields after it are found from the *last* ')'
//! (`proc(5)`). It is bytes, not text: the kernel cuts a name at 15 bytes
//! (`TASK_COMM_LEN`), which can split a UTF-8 character, so /proc is read
//! as bytes and a name is shown lossily, never skipped.

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

/// Parse `/proc/PID/stat`: bytes, whatever the comm holds. Pure.
pub fn parse_stat(raw: &[u8]) -> Option<Proc> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    let ascii = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let pid = ascii(&raw[..open])?.trim().parse().ok()?;
    let comm = String::from_utf8_lossy(raw.get(open + 1..close)?).into_owned();
    let rest = ascii(raw.get(close + 1..)?)?;
    let mut rest = rest.split_ascii_whitespace();
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
    parse_stat(&read_stat(pid)?)
}

/// `/proc/PID/stat` as it reads; `None` if the process is gone.
pub fn read_stat(pid: Pid) -> Option<Vec<u8>> {
    read_small(&format!("/proc/{pid}/stat"))
}

/// A /proc file, whole, in few syscalls: open, a read per KiB, close.
/// `fs::read` spends eight on a stat file: a statx for a size that /proc
/// does not report, then reads of 32, 32, 64 … bytes and one at the end.
/// A read of less than a page that comes back short has reached the end:
/// a seq_file fills the reader's buffer from its page of records and
/// stops short of it only when no record is left (`seq_read_iter`).
fn read_small(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    const CHUNK: usize = 1024;
    let mut file = fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    loop {
        let len = buf.len();
        buf.resize(len + CHUNK, 0);
        let n = file.read(&mut buf[len..]).ok()?;
        buf.truncate(len + n);
        if n < CHUNK {
            return Some(buf);
        }
    }
}

/// The state letter of one process, `None` if it is gone (or reaped).
pub fn state_of(pid: Pid) -> Option<char> {
    read_proc(pid).map(|p| p.state)
}

/// The kernel function a process sleeps in (`/proc/PID/wchan`), or "".
pub fn wchan(pid: Pid) -> String {
    match read_small(&format!("/proc/{pid}/wchan")) {
        Some(w) if w != b"0" => String::from_utf8_lossy(&w).into_owned(),
        _ => String::new(),
    }
}

/// Why /proc is not this PID namespace's, if it is not: `unshare --pid
/// --fork` without `--mount-proc`, or a host /proc bind-mounted into a
/// container. /proc shows the pids of the namespace it was mounted in
/// (`pid_namespaces(7)`), so then `/proc/self` is not our `getpid()` (or
/// is missing), and every pid read there names another process.
pub fn not_ours() -> Option<String> {
    let me = nix::unistd::getpid();
    let seen = fs::read_link("/proc/self").ok();
    let seen = seen.as_ref().and_then(|p| p.to_str());
    if seen == Some(me.to_string().as_str()) {
        return None;
    }
    Some(format!(
        "/proc is not this PID namespace's (/proc/self is {}, undead is {me}; \
         mount it, e.g. unshare --mount-proc): the kit is off",
        seen.unwrap_or("missing")
    ))
}

/// The kernel's `pid_max` (`/proc/sys/kernel/pid_max`): no more
/// processes can exist at once. `PID_MAX_LIMIT` (4 Mi, 64-bit) if unknown.
pub fn pid_max() -> usize {
    fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(4 << 20)
}

/// This process's PID namespace (`pid:[INODE]`), or "" if unknown.
pub fn pid_namespace() -> String {
    fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Every process of this PID namespace's /proc, in pid order.
pub fn snapshot() -> Vec<Proc> {
    listed().into_iter().filter_map(read_proc).collect()
}

/// The pids /proc lists, in ascending order: `proc_pid_readdir` walks the
/// pid table upwards from where the last getdents(2) stopped.
pub fn listed() -> Vec<Pid> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .collect()
}

/// The direct children of `pid`, from `/proc/PID/task/TID/children`
/// (CONFIG_PROC_CHILDREN); `None` if the kernel does not provide it.
/// Each thread has its own file (a child is listed under the thread that
/// forked it); undead has one thread (`sys.rs`), so its own children are
/// one file, read without listing its tasks (3 syscalls instead of 8).
pub fn children(pid: Pid) -> Option<Vec<Pid>> {
    let parse = |text: Vec<u8>| {
        let text = String::from_utf8(text).ok()?;
        let kids =
            text.split_ascii_whitespace().filter_map(|p| p.parse().ok());
        Some(kids.map(Pid::from_raw).collect::<Vec<_>>())
    };
    if pid.as_raw().unsigned_abs() == std::process::id() {
        return parse(read_small(&format!(
            "/proc/{pid}/task/{pid}/children"
        ))?);
    }
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let path = task.path().join("children");
        out.extend(parse(read_small(path.to_str()?)?)?);
    }
    Some(out)
}

/// All descendants of `root`, walking the children files: cheap when
/// `root` has few descendants on a busy host. Falls back to a full scan.
///
/// The walk is not atomic: a process whose parent exits while the walk
/// reads that parent's children file is reparented to the subreaper
/// (`root`, for undead) and would be missed: a chain of processes that
/// fork and exit could look like no descendant at all. Any such move
/// changes `root`'s own children (the subreaper reaps only between
/// walks, so an exited child stays listed, as a zombie), so the walk is
/// repeated until they read the same before and after it.
///
/// `leaves` (sorted) are processes known to be zombies, which have no
/// children: theirs are not read (the kit holds thousands).
pub fn descendants_of(root: Pid, leaves: &[Pid]) -> Vec<Pid> {
    descendants_where(root, leaves, |_| true).0
}

/// One walk, not repeated until it settles: a process moving to `root`
/// meanwhile may be missed, never counted twice (`root`'s children are
/// read first). For counts that may only come late (`wait`): half the
/// cost of a settled walk, which at 30 000 held zombies is mostly the
/// kernel reading `root`'s children file.
pub fn descendants_once(root: Pid, leaves: &[Pid]) -> Vec<Pid> {
    if leaves.len() >= LIST_FROM {
        return descendants_listed(root, leaves);
    }
    walk_descendants(root, children(root), leaves, |_| false)
}

/// From this many known zombies on, descendants are found by listing
/// /proc once rather than by walking children files. `root`'s children
/// file is a seq_file whose every read(2) returns at most a page and walks
/// `root`'s list of children from its head to where the last one stopped
/// (`get_children_pid`, fs/proc/array.c): reading n children costs
/// O(n²/700), 47 ms at 30 000 on the project's machine, against a listing
/// that is linear in the processes of /proc (README, "Kit at scale").
const LIST_FROM: usize = 4096;

/// `root`'s descendants from one listing of /proc: the `leaves` (zombies
/// undead holds, sorted: its descendants, with no children) are taken as
/// listed, unread; every other process's stat gives its parent.
///
/// A process that lives through the listing is listed, whatever moves
/// around it; but the stats are read one after another, so a parent may
/// exit and be reaped between the read of its child's stat and its own,
/// which breaks the child's chain of parents (its own stat named the
/// parent; the kernel has moved it to a subreaper since). Such a child is
/// read again: it then names its new parent.
fn descendants_listed(root: Pid, leaves: &[Pid]) -> Vec<Pid> {
    let is_leaf = |p: &Pid| leaves.binary_search(p).is_ok();
    let (mut found, rest): (Vec<Pid>, Vec<Pid>) =
        listed().into_iter().filter(|&p| p != root).partition(is_leaf);
    let mut procs: Vec<Proc> =
        rest.into_iter().filter_map(read_proc).collect();
    for _ in 0..3 {
        let mut moved = false;
        for i in 0..procs.len() {
            let parent = procs[i].ppid;
            let known = parent == root
                || parent.as_raw() <= 0
                || is_leaf(&parent)
                || procs.binary_search_by_key(&parent, |p| p.pid).is_ok();
            if !known {
                if let Some(again) = read_proc(procs[i].pid) {
                    moved |= again.ppid != parent;
                    procs[i] = again;
                }
            }
        }
        if !moved {
            break;
        }
    }
    found.extend(descendants(&procs, root));
    found
}

/// The descendants for which `keep` holds, and whether the walk settled:
/// `false` when `root`'s children changed under every one of a few walks
/// (processes keep forking and exiting under it), so some may be missing.
/// `keep` runs inside the check: a process it finds gone (or a zombie)
/// whose children moved to `root` meanwhile unsettles the walk.
pub fn descendants_where(
    root: Pid,
    leaves: &[Pid],
    keep: impl Fn(Pid) -> bool,
) -> (Vec<Pid>, bool) {
    if leaves.len() >= LIST_FROM {
        let mut found = descendants_listed(root, leaves);
        found.retain(|&p| keep(p));
        return (found, true);
    }
    let mut found = Vec::new();
    for _ in 0..8 {
        let before = children(root);
        found = walk_descendants(root, before.clone(), leaves, |_| false);
        found.retain(|&p| keep(p));
        if children(root) == before {
            return (found, true);
        }
    }
    (found, false)
}

/// Whether `root` has a descendant for which `keep` holds: the walk of
/// `descendants_where`, ended at the first one found, so a tree with
/// thousands of zombies not yet reaped (processes forking and exiting as
/// fast as they can) costs one partial walk, not up to eight whole ones.
/// A walk that finds none is repeated until it settles, as there; `true`
/// when it never does.
pub fn any_descendant(
    root: Pid,
    leaves: &[Pid],
    keep: impl Fn(Pid) -> bool,
) -> bool {
    if leaves.len() >= LIST_FROM {
        return descendants_listed(root, leaves).into_iter().any(keep);
    }
    for _ in 0..8 {
        let before = children(root);
        let mut hit = false;
        walk_descendants(root, before.clone(), leaves, |p| {
            hit = keep(p);
            hit
        });
        if hit {
            return true;
        }
        if children(root) == before {
            return false;
        }
    }
    true
}

/// `root`'s descendants, given its children (`None`: the kernel has no
/// children files, a full scan instead), in walk order up to the first
/// one for which `stop` holds, if any.
fn walk_descendants(
    root: Pid,
    kids: Option<Vec<Pid>>,
    leaves: &[Pid],
    mut stop: impl FnMut(Pid) -> bool,
) -> Vec<Pid> {
    let Some(mut found) = kids else {
        let mut all = descendants(&snapshot(), root);
        if let Some(at) = all.iter().position(|&p| stop(p)) {
            all.truncate(at + 1);
        }
        return all;
    };
    let mut i = 0;
    while i < found.len() {
        if stop(found[i]) {
            found.truncate(i + 1);
            break;
        }
        // A process that exited since is simply skipped.
        if leaves.binary_search(&found[i]).is_err() {
            if let Some(kids) = children(found[i]) {
                found.extend(kids);
            }
        }
        i += 1;
    }
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
        let p = parse_stat(b"42 (a) b (c)) Z 7 42 42 0 -1 4194560").unwrap();
        assert_eq!(p.pid, Pid::from_raw(42));
        assert_eq!(p.comm, "a) b (c)");
        assert_eq!(p.state, 'Z');
        assert_eq!(p.ppid, Pid::from_raw(7));
        assert!(parse_stat(b"garbage").is_none());
        assert!(parse_stat(b"1 (x)").is_none());
        // Nine 'é' cut at 15 bytes: the name ends in half a character.
        let p = parse_stat(b"9 (\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3) S 1 9")
            .unwrap();
        assert_eq!((p.pid, p.state), (Pid::from_raw(9), 'S'));
        assert_eq!(
            p.comm,
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{fffd}"
        );
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
