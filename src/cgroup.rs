//! The cgroup freezer, for `frozen`: a cgroup of undead's own under its
//! own cgroup, frozen with the cgroup v1 freezer (`freezer.state`) or
//! cgroup v2 (`cgroup.freeze`), thawed and removed again.
//!
//! Kernel behaviour relied upon (measured on 6.18): v1 frozen tasks sit in
//! `__refrigerator`, shown as D, with a SIGKILL pending but not acted on
//! until thawed (`Documentation/admin-guide/cgroup-v1/freezer-subsystem`);
//! v2 frozen tasks show S and die on SIGKILL (`cgroup-v2.rst`, "cgroup
//! freezer"). The hierarchy is found in /proc/self/mountinfo (a v1 mount
//! whose super options name `freezer`, or a `cgroup2` mount) and undead's
//! place in it in /proc/self/cgroup, minus the mount's root (a container
//! sees its own cgroup as the root of the mount). v1 is preferred where it
//! is writable (a hybrid host); a read-only mount (Docker without
//! `--privileged`) is refused with one line.
//!
//! Names are `undead-frozen-<pidns inode>-<pid>-<n>`: unique on the host,
//! and what `rescue` looks for. Nothing else is ever frozen or thawed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::{AccessFlags, Pid, access};

/// The prefix `rescue` recognises.
pub const PREFIX: &str = "undead-frozen-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One cgroup undead made for freezing.
#[derive(Debug)]
pub struct Cgroup {
    pub version: Version,
    pub dir: PathBuf,
}

/// Where undead may make a freezer cgroup: its own cgroup's directory.
pub fn find_base() -> Result<(Version, PathBuf), String> {
    let mounts =
        fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut seen = Vec::new();
    for version in [Version::V1, Version::V2] {
        // The last mount of the hierarchy is the one on top (a bind
        // mount over a container's read-only one, say).
        let Some((root, at)) =
            mounts.lines().rev().find_map(|l| mount_of(l, version))
        else {
            continue;
        };
        let Some(path) = own.lines().find_map(|l| own_path(l, version)) else {
            continue;
        };
        let rel = path.strip_prefix(&root).unwrap_or(&path);
        let base = Path::new(&at).join(rel.trim_start_matches('/'));
        match access(&base, AccessFlags::W_OK) {
            Ok(()) => return Ok((version, base)),
            Err(e) => seen.push(format!("{}: {}", base.display(), e.desc())),
        }
    }
    Err(if seen.is_empty() {
        "frozen needs a cgroup freezer (v1 freezer or cgroup v2): none is \
         mounted"
            .into()
    } else {
        format!(
            "frozen needs a writable cgroup freezer ({}; docker: \
             --privileged)",
            seen.join("; ")
        )
    })
}

/// `(root, mountpoint)` of a mountinfo line for the hierarchy. Pure.
fn mount_of(line: &str, version: Version) -> Option<(String, String)> {
    let (left, right) = line.split_once(" - ")?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let superopts = right.nth(1)?;
    let ok = match version {
        Version::V1 => {
            fstype == "cgroup" && superopts.split(',').any(|o| o == "freezer")
        }
        Version::V2 => fstype == "cgroup2",
    };
    let mut left = left.split(' ');
    let root = left.nth(3)?.to_string();
    let at = left.next()?.replace("\\040", " ");
    ok.then_some((root, at))
}

/// undead's cgroup path from a /proc/self/cgroup line. Pure.
fn own_path(line: &str, version: Version) -> Option<String> {
    let mut f = line.splitn(3, ':');
    let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
    let ok = match version {
        Version::V1 => controllers.split(',').any(|c| c == "freezer"),
        Version::V2 => id == "0" && controllers.is_empty(),
    };
    ok.then(|| path.to_string())
}

fn io(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Cgroup {
    /// mkdir `base/name`.
    pub fn create(
        version: Version,
        base: &Path,
        name: &str,
    ) -> Result<Cgroup, Errno> {
        let dir = base.join(name);
        nix::unistd::mkdir(
            &dir,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )?;
        Ok(Cgroup { version, dir })
    }

    fn write(&self, file: &str, text: &str) -> Result<(), Errno> {
        fs::write(self.dir.join(file), text).map_err(io)
    }

    pub fn add(&self, pid: Pid) -> Result<(), Errno> {
        self.write("cgroup.procs", &pid.to_string())
    }

    pub fn freeze(&self) -> Result<(), Errno> {
        match self.version {
            Version::V1 => self.write("freezer.state", "FROZEN"),
            Version::V2 => self.write("cgroup.freeze", "1"),
        }
    }

    pub fn thaw(&self) -> Result<(), Errno> {
        thaw_dir(self.version, &self.dir)
    }

    /// Whether the freeze is complete (FROZEN, or `frozen 1`).
    pub fn is_frozen(&self) -> bool {
        is_frozen_dir(self.version, &self.dir)
    }

    /// rmdir: succeeds once no process is left in it.
    pub fn remove(&self) -> Result<(), Errno> {
        fs::remove_dir(&self.dir).map_err(io)
    }
}

fn thaw_dir(version: Version, dir: &Path) -> Result<(), Errno> {
    let (file, text) = match version {
        Version::V1 => ("freezer.state", "THAWED"),
        Version::V2 => ("cgroup.freeze", "0"),
    };
    fs::write(dir.join(file), text).map_err(io)
}

fn is_frozen_dir(version: Version, dir: &Path) -> bool {
    match version {
        Version::V1 => fs::read_to_string(dir.join("freezer.state"))
            .is_ok_and(|s| s.trim() != "THAWED"),
        Version::V2 => fs::read_to_string(dir.join("cgroup.events"))
            .is_ok_and(|s| s.lines().any(|l| l == "frozen 1")),
    }
}

/// `rescue`: thaw (unless `dry_run`) and remove every frozen cgroup named
/// `undead-frozen-*` in the host's freezer hierarchies (walked 8 levels
/// deep). Returns one line per cgroup.
pub fn rescue_frozen(dry_run: bool) -> Vec<String> {
    let mounts =
        fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for version in [Version::V1, Version::V2] {
        for (_, at) in mounts.lines().filter_map(|l| mount_of(l, version)) {
            walk(Path::new(&at), 8, &mut |dir| {
                let named = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX));
                if !named || !is_frozen_dir(version, dir) {
                    return;
                }
                let what = if dry_run {
                    "found".to_string()
                } else {
                    match thaw_dir(version, dir) {
                        Ok(()) if remove_when_empty(dir) => {
                            "thawed and removed".into()
                        }
                        Ok(()) => "thawed".into(),
                        Err(e) => format!("cannot thaw ({})", e.desc()),
                    }
                };
                out.push(format!("{what} frozen cgroup {}", dir.display()));
            });
        }
    }
    out
}

/// rmdir, retried for up to 5 s: thawed victims with a pending SIGKILL
/// (their namespace's death) leave the cgroup within milliseconds, once
/// the dying init of their namespace has reaped them (seconds on a loaded
/// host); live ones (an undead that still runs) keep it, and it stays.
/// Gone already counts as removed: the runtime removes a dead container's
/// cgroups, ours among them, and may do it between two tries.
fn remove_when_empty(dir: &Path) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) => {}
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn walk(dir: &Path, depth: u32, visit: &mut dyn FnMut(&Path)) {
    visit(dir);
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth - 1, visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_from_mountinfo() {
        let v1 = "37 31 0:34 /docker/ab /sys/fs/cgroup/freezer rw,relatime \
                  - cgroup cgroup rw,freezer";
        let v2 = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw";
        assert_eq!(
            mount_of(v1, Version::V1),
            Some(("/docker/ab".into(), "/sys/fs/cgroup/freezer".into()))
        );
        assert_eq!(mount_of(v1, Version::V2), None);
        assert_eq!(
            mount_of(v2, Version::V2),
            Some(("/".into(), "/sys/fs/cgroup/unified".into()))
        );
        assert_eq!(
            own_path("6:freezer:/docker/ab", Version::V1).as_deref(),
            { Some("/docker/ab") }
        );
        assert_eq!(own_path("0::/a/b", Version::V2).as_deref(), Some("/a/b"));
        assert_eq!(own_path("4:memory:/x", Version::V1), None);
    }
}
