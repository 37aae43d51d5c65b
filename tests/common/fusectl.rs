//! Cleanup of FUSE victims: a test whose victims outlive their undead
//! aborts their connections through fusectl (`/sys/fs/fuse/connections`),
//! only those found in the victims' own mount tables, never another
//! test's or another FUSE filesystem's.

use std::fs;
use std::process::Command;
use std::time::Duration;

use super::proc::Ident;
use super::run::{exec, wait_for};

pub const FUSECTL: &str = "/sys/fs/fuse/connections";

/// The fusectl connection names (the minor of the mount's `0:N` device) of
/// undead's own FUSE mounts in a mountinfo: filesystem type `fuse*` with
/// "undead" in its type or source. Never another FUSE filesystem: in a
/// container the root itself may be a fuse-overlayfs mount.
pub fn undead_fuse_connections(mountinfo: &str) -> Vec<String> {
    let mut conns: Vec<String> = Vec::new();
    for line in mountinfo.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else { continue };
        let mut fs = fs.split_whitespace();
        let fstype = fs.next().unwrap_or("");
        let source = fs.next().unwrap_or("");
        let ours = fstype.starts_with("fuse")
            && (fstype.contains("undead") || source.contains("undead"));
        let dev = mount.split_whitespace().nth(2).unwrap_or("");
        if let Some(("0", minor)) = dev.split_once(':')
            && ours
            && !conns.iter().any(|c| c == minor)
        {
            conns.push(minor.to_string());
        }
    }
    conns
}

/// The connections mounted in these processes' own mount tables.
pub fn connections_of(victims: &[Ident]) -> Vec<String> {
    let mut conns: Vec<String> = Vec::new();
    for v in victims.iter().filter(|v| v.present()) {
        let path = format!("/proc/{}/mountinfo", v.pid);
        let info = fs::read_to_string(path).unwrap_or_default();
        for c in undead_fuse_connections(&info) {
            if !conns.contains(&c) {
                conns.push(c);
            }
        }
    }
    conns
}

/// fusectl is mounted in this test's mount namespace.
pub fn fusectl_mounted() -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(&format!(" {FUSECTL} "))))
}

fn sh(argv: &[&str]) -> bool {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    exec(&mut c, None, Duration::from_secs(10)).ok()
}

/// Abort the connections of these (the test's own) victims that have not
/// exited, and only those, mounting fusectl for the occasion if needed;
/// then wait (bounded) for them to exit. Says on stderr what it did.
pub fn abort_stuck(victims: &[Ident]) {
    let stuck: Vec<Ident> =
        victims.iter().copied().filter(|v| !v.exited()).collect();
    if stuck.is_empty() {
        return;
    }
    let conns = connections_of(&stuck);
    eprintln!("cleanup: {stuck:?} stuck: aborting connections {conns:?}");
    let mounted_before = fusectl_mounted();
    if !mounted_before {
        sh(&["mount", "-t", "fusectl", "none", FUSECTL]);
    }
    for conn in conns {
        let _ = fs::write(format!("{FUSECTL}/{conn}/abort"), "1");
    }
    if !mounted_before {
        sh(&["umount", FUSECTL]);
    }
    let t = Duration::from_secs(10);
    if wait_for(t, || stuck.iter().all(Ident::exited).then_some(())).is_none()
    {
        eprintln!("cleanup: {stuck:?} still there after the abort");
    }
}
