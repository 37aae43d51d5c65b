//! `undead rescue [--dry-run]`: the break-glass for a host whose tests
//! left undead's FUSE victims stuck (an `--outlive` hang whose server was
//! killed). Finds the connections of undead's filesystems by their type
//! (`fuse.undead`) in /proc/*/mountinfo; the st_dev minor of the mount is
//! the connection's number under fusectl, and writing 1 to its `abort`
//! fails every pending request (`fs/fuse/control.c`), which frees the
//! victims. `umount -l` alone would not.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount, umount};
use nix::unistd::Pid;

use super::fuse::{FS_TYPE, FuseError};

const FUSECTL: &str = "/sys/fs/fuse/connections";

/// One connection of undead's fs, found (and aborted) by `rescue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescueItem {
    /// The st_dev minor: its directory under /sys/fs/fuse/connections.
    pub conn: u32,
    pub mountpoint: String,
    /// Processes whose mount namespace holds the mount (the victims).
    pub pids: Vec<Pid>,
    pub aborted: bool,
}

impl fmt::Display for RescueItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.aborted { "aborted" } else { "found" };
        let (conn, at) = (self.conn, &self.mountpoint);
        write!(f, "{what} fuse connection {conn} ({FS_TYPE} on {at}, pids")?;
        self.pids.iter().try_for_each(|p| write!(f, " {p}"))?;
        write!(f, ")")
    }
}

/// (connection, mountpoint) if this /proc/PID/mountinfo line is one of
/// undead's mounts: `id parent major:minor root mountpoint opts [tags] -
/// fstype source superopts`.
fn mountinfo_undead(line: &str) -> Option<(u32, String)> {
    let (left, right) = line.split_once(" - ")?;
    if right.split(' ').next()? != FS_TYPE {
        return None;
    }
    let mut left = left.split(' ');
    let (major, minor) = left.nth(2)?.split_once(':')?;
    let mountpoint = left.nth(1)?.replace("\\040", " ");
    (major == "0").then_some((minor.parse().ok()?, mountpoint))
}

/// `undead rescue [--dry-run]`: find undead's connections in
/// /proc/*/mountinfo and abort them through fusectl (mounted on
/// /sys/fs/fuse/connections for the occasion if it is not).
pub fn rescue(dry_run: bool) -> Result<Vec<RescueItem>, FuseError> {
    let error = |op, path: &str, errno| FuseError::Rescue {
        op,
        path: path.to_string(),
        errno,
    };
    let mut found: BTreeMap<u32, RescueItem> = BTreeMap::new();
    let procs = std::fs::read_dir("/proc")
        .map_err(|e| error("read", "/proc", io_errno(&e)))?;
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // Processes come and go: an unreadable mountinfo is skipped.
        let path = entry.path().join("mountinfo");
        // Bytes: a mount path need not be UTF-8.
        let info = std::fs::read(path).unwrap_or_default();
        let info = String::from_utf8_lossy(&info);
        for (conn, mountpoint) in info.lines().filter_map(mountinfo_undead) {
            let new = || RescueItem {
                conn,
                mountpoint,
                pids: Vec::new(),
                aborted: false,
            };
            let item = found.entry(conn).or_insert_with(new);
            item.pids.push(Pid::from_raw(pid));
        }
    }
    let Some(first) = found.keys().next().filter(|_| !dry_run) else {
        return Ok(found.into_values().collect());
    };
    let mount_here = !Path::new(&format!("{FUSECTL}/{first}")).exists();
    if mount_here {
        let fusectl = Some("fusectl");
        mount(fusectl, FUSECTL, fusectl, MsFlags::empty(), None::<&str>)
            .map_err(|errno| error("mount fusectl on", FUSECTL, errno))?;
    }
    let mut result = Ok(());
    for item in found.values_mut() {
        let path = format!("{FUSECTL}/{}/abort", item.conn);
        match std::fs::write(&path, "1") {
            Ok(()) => item.aborted = true,
            // Freed meanwhile: nothing to abort.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => result = Err(error("write", &path, io_errno(&e))),
        }
    }
    if mount_here {
        let _ = umount(FUSECTL);
    }
    result.map(|()| found.into_values().collect())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let ours = "812 790 0:61 / /dev rw,nosuid,nodev,relatime - \
                    fuse.undead undead rw,user_id=0,group_id=0";
        assert_eq!(mountinfo_undead(ours), Some((61, "/dev".to_string())));
        let tagged = "812 790 0:62 / /a\\040b rw shared:5 master:1 - \
                      fuse.undead undead rw";
        assert_eq!(mountinfo_undead(tagged), Some((62, "/a b".to_string())));
        assert_eq!(
            mountinfo_undead("30 1 0:27 / /mnt rw - fuse.sshfs host: rw"),
            None
        );
        assert_eq!(
            mountinfo_undead("30 1 8:1 / / rw - ext4 /dev/sda1 rw"),
            None
        );
        assert_eq!(mountinfo_undead("garbage"), None);
    }
}
