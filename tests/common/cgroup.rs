//! A pids cgroup of the test's own ([`PidsCgroup`]), to hit `pids.max`:
//! what it holds is killed and it is removed on drop, also when the test
//! fails; and [`ThawGuard`], which thaws and removes an undead's frozen
//! cgroups on drop.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::proc::kill;
use super::run::wait_for;
use super::undead::Undead;

const T: Duration = Duration::from_secs(10);
pub const FREEZER: &str = "/sys/fs/cgroup/freezer";
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// A fresh pids cgroup (v1 `/sys/fs/cgroup/pids`, else v2), removed on
/// drop: its processes (ours) are killed, waited for, then it is rmdir'd.
pub struct PidsCgroup {
    pub dir: PathBuf,
}

impl PidsCgroup {
    /// `None` (say why) if there is no pids controller or it is not
    /// writable; a caller that cannot go on without one fails on it.
    pub fn new(tag: &str, max: u32) -> Option<PidsCgroup> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let root = if v1.join("cgroup.procs").exists() {
            v1.to_path_buf()
        } else {
            let v2 = Path::new("/sys/fs/cgroup");
            let ctl = fs::read_to_string(v2.join("cgroup.controllers"));
            if !ctl.is_ok_and(|c| c.split(' ').any(|w| w.trim() == "pids")) {
                eprintln!("no pids cgroup controller (v1 or v2)");
                return None;
            }
            let _ = fs::write(v2.join("cgroup.subtree_control"), "+pids");
            v2.to_path_buf()
        };
        let name = format!("undead-test-{}-{tag}-{n}", std::process::id());
        let dir = root.join(name);
        let _ = fs::remove_dir(&dir);
        if let Err(e) = fs::create_dir(&dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return None;
        }
        let cg = PidsCgroup { dir };
        cg.set_max(max).ok()?;
        Some(cg)
    }

    pub fn set_max(&self, max: u32) -> std::io::Result<()> {
        fs::write(self.dir.join("pids.max"), max.to_string())
    }

    /// The pids in the cgroup.
    pub fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// Wait (bounded) until no process is left in the cgroup.
    pub fn until_empty(&self) -> bool {
        wait_for(T, || self.procs().is_empty().then_some(())).is_some()
    }

    /// Make the spawned process join the cgroup before it execs.
    pub fn join_at_exec(&self, cmd: &mut Command) {
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"));
        let Ok(procs) = procs else {
            panic!("cannot open {}/cgroup.procs", self.dir.display())
        };
        // SAFETY: the closure only calls write(2) on a descriptor it owns
        // (kept alive by the moved File), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                use std::os::fd::AsRawFd;
                let fd = procs.as_raw_fd();
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// `sh -c JOIN sh CMD...`: CMD runs in the cgroup (for wrappers).
    pub fn join_script(&self) -> String {
        let procs = self.dir.join("cgroup.procs");
        format!("echo $$ > {}; exec \"$@\"", procs.display())
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let empty = wait_for(T, || {
            let left = self.procs();
            for &p in &left {
                kill(p, libc::SIGKILL);
            }
            left.is_empty().then_some(())
        });
        let removed = wait_for(T, || fs::remove_dir(&self.dir).ok());
        if empty.is_none() || removed.is_none() {
            eprintln!("could not remove cgroup {}", self.dir.display());
        }
    }
}

/// Thaws and removes, on drop, every `undead-frozen-*` cgroup of one
/// undead (named after its PID namespace and pid, under its own cgroup in
/// the v1 freezer and the v2 hierarchy): never anything else.
pub struct ThawGuard {
    prefix: String,
    /// (directory to search, freeze file, thawed value)
    bases: Vec<(PathBuf, &'static str, &'static str)>,
}

impl ThawGuard {
    pub fn of(u: &Undead) -> ThawGuard {
        let ns = fs::read_link(format!("/proc/{}/ns/pid", u.pid))
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let ns: String = ns.chars().filter(char::is_ascii_digit).collect();
        let pid = super::proc::ns_pid(u.pid).unwrap_or(u.pid);
        let own = fs::read_to_string(format!("/proc/{}/cgroup", u.pid))
            .unwrap_or_default();
        let path = |key: &str| {
            own.lines()
                .find_map(|l| l.split_once(key).map(|(_, p)| p.to_string()))
                .unwrap_or_default()
        };
        let base = |root: &str, rel: String| {
            Path::new(root).join(rel.trim_start_matches('/'))
        };
        ThawGuard {
            prefix: format!("undead-frozen-{ns}-{pid}-"),
            bases: vec![
                (base(FREEZER, path(":freezer:")), "freezer.state", "THAWED"),
                (base(UNIFIED, path("0::")), "cgroup.freeze", "0"),
            ],
        }
    }

    pub fn dirs(&self) -> Vec<(PathBuf, &'static str, &'static str)> {
        let mut out = Vec::new();
        for (base, file, thawed) in &self.bases {
            for e in fs::read_dir(base).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    out.push((e.path(), *file, *thawed));
                }
            }
        }
        out
    }
}

impl Drop for ThawGuard {
    fn drop(&mut self) {
        for (dir, file, thawed) in self.dirs() {
            let _ = fs::write(dir.join(file), thawed);
            let _ = wait_for(T, || {
                let procs = fs::read_to_string(dir.join("cgroup.procs"));
                let procs = procs.unwrap_or_default();
                procs
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .for_each(|p| kill(p, libc::SIGKILL));
                fs::remove_dir(&dir).ok()
            });
        }
    }
}
