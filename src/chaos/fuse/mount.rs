//! The FUSE mount in a private mount namespace, and the processes that
//! use it: a helper child unshares a mount namespace, makes / private,
//! mounts with `fd=N` of its inherited copy of the descriptor, closes every
//! copy and stops itself; undead opens its `/proc/PID/ns/mnt` and kills
//! it; the readers (primer, victims) `setns` into it. Nothing appears in
//! undead's mount table, no directory is created, and the namespace (with
//! the mount) goes with the last victim. This assumes that undead's root
//! is its mount namespace's root (true after pivot_root).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getgid, getpid, getuid, read};

use super::FuseError;
use super::proto::FILE_NAME;
use crate::sys;

/// Type and source of undead's mounts: what `rescue` looks for.
pub const FS_TYPE: &str = "fuse.undead";
const FS_SOURCE: &str = "undead";
/// Exists in every OCI container; hidden only in the private namespace.
const MOUNTPOINT: &str = "/dev";
const COMM: &str = "undead-fuse";
const COMM_MOUNT: &str = "undead-fusemnt";
/// Exit codes of a reader child that could not start its READ.
pub const EXIT_SETNS: i32 = 2;
const EXIT_OPEN: i32 = 3;

/// Fork the mount helper; return its mount namespace once it has
/// mounted and stopped.
pub(super) fn mount_privately(
    fd: RawFd,
    deadline: Instant,
    spawned: &mut Vec<Pid>,
    wait: impl Fn(Duration),
) -> Result<OwnedFd, FuseError> {
    let (uid, gid) = (getuid(), getgid());
    let data = format!("fd={fd},rootmode=40000,user_id={uid},group_id={gid}");
    let (data, name) = (cstring(&data)?, cstring(COMM_MOUNT)?);
    let (source, fstype) = (cstring(FS_SOURCE)?, cstring(FS_TYPE)?);
    let target = cstring(MOUNTPOINT)?;
    // Child: raw syscalls only; exit codes as in `helper_failure`.
    let helper = fork_child(|| {
        sys::set_comm(&name);
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
            return e as i32;
        }
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        let none = None::<&str>;
        if let Err(e) = mount(none, c"/", none, private, none) {
            return 0x80 | (e as i32 & 0x3f);
        }
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        let (src, ty, opts) = (Some(&*source), Some(&*fstype), Some(&*data));
        if let Err(e) = mount(src, &*target, ty, flags, opts) {
            return 0xc0 | (e as i32 & 0x3f);
        }
        let _ = sys::close_all_except(&mut []);
        let _ = kill(getpid(), Signal::SIGSTOP);
        0
    })
    .map_err(FuseError::Fork)?;
    spawned.push(helper);
    let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WNOHANG;
    let status = loop {
        match waitpid(helper, Some(flags)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(status) => break status,
            Err(e) => return Err(FuseError::Fork(e)),
        }
        if Instant::now() >= deadline {
            return Err(FuseError::NotReady("the mount helper"));
        }
        wait(Duration::from_millis(5));
    };
    let WaitStatus::Stopped(..) = status else {
        spawned.retain(|p| *p != helper);
        return Err(helper_failure(helper, status));
    };
    let path = format!("/proc/{helper}/ns/mnt");
    let ns = open(path.as_str(), OFlag::O_CLOEXEC, Mode::empty());
    let _ = kill(helper, Signal::SIGKILL);
    if reap(helper, deadline) {
        spawned.retain(|p| *p != helper);
    }
    ns.map_err(|errno| FuseError::Mount { op: "open ns/mnt", errno })
}

/// Fork a reader (primer or victim): join the namespace, open the file,
/// close every other descriptor (an `outlive` victim keeps its copy of
/// /dev/fuse, a `--cwd` victim its directory), read one byte, `_exit`.
/// `setns` moves the working directory to the namespace's root, so
/// `fchdir(cwd)` comes after it: the descriptor still names the
/// directory (and mount) of undead's namespace.
pub(super) fn spawn_reader(
    dev: RawFd,
    ns: &OwnedFd,
    keep_dev: bool,
    cwd: RawFd,
) -> Result<Pid, FuseError> {
    let path = cstring(&format!("{MOUNTPOINT}/{FILE_NAME}"))?;
    let name = cstring(COMM)?;
    let dev: RawFd = if keep_dev { dev } else { -1 };
    fork_child(|| {
        sys::set_comm(&name);
        reset_signals();
        if setns(ns, CloneFlags::CLONE_NEWNS).is_err() {
            return EXIT_SETNS;
        }
        if cwd >= 0 && sys::fchdir(cwd).is_err() {
            return EXIT_OPEN;
        }
        let Ok(file) = open(&*path, OFlag::O_RDONLY, Mode::empty()) else {
            return EXIT_OPEN;
        };
        let _ = sys::close_all_except(&mut [file.as_raw_fd(), dev, cwd]);
        let _ = read(&file, &mut [0u8; 1]); // never answered
        0
    })
    .map_err(FuseError::Fork)
}

/// fork(2): the child runs `body` (raw syscalls on values prepared before
/// the fork: no allocation, no locks) and `_exit`s with its result.
fn fork_child(body: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    match sys::fork()? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => sys::exit_now(body()),
    }
}

/// In a child that does not exec: SIG_DFL for every catchable signal and an
/// empty mask, so SIGTERM acts as on any process (the child would inherit
/// undead's handlers and blocked mask).
fn reset_signals() {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            let _ = sys::default_signal(sig);
        }
    }
    let _ = sys::set_mask(SigmaskHow::SIG_SETMASK, &SigSet::empty());
}

/// The mount helper's exit code: the errno of unshare(CLONE_NEWNS),
/// 0x80|errno of making / private, 0xc0|errno of the mount (errnos < 64).
fn helper_failure(pid: Pid, status: WaitStatus) -> FuseError {
    let (op, errno) = match status {
        WaitStatus::Exited(_, c) if c >= 0xc0 => ("mount", c & 0x3f),
        WaitStatus::Exited(_, c) if c >= 0x80 => ("make / private", c & 0x3f),
        WaitStatus::Exited(_, c) => ("unshare(CLONE_NEWNS)", c),
        _ => {
            let what = "mount helper";
            return FuseError::ChildFailed { what, pid, code: None };
        }
    };
    match Errno::from_raw(errno) {
        Errno::EPERM => FuseError::CapSysAdmin { op, errno: Errno::EPERM },
        errno => FuseError::Mount { op, errno },
    }
}

/// Reap our own child `pid` (polling until `deadline`); true once gone.
pub(super) fn reap(pid: Pid, deadline: Instant) -> bool {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn cstring(s: &str) -> Result<CString, FuseError> {
    CString::new(s).map_err(|_| FuseError::Protocol("nul byte in a path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_exit_codes() {
        let pid = Pid::from_raw(7);
        let exit = |c| helper_failure(pid, WaitStatus::Exited(pid, c));
        assert!(matches!(
            exit(1),
            FuseError::CapSysAdmin { op: "unshare(CLONE_NEWNS)", .. }
        ));
        assert!(matches!(
            exit(0xc0 | 13),
            FuseError::Mount { op: "mount", errno: Errno::EACCES }
        ));
        assert!(matches!(
            exit(0x80 | 22),
            FuseError::Mount { op: "make / private", errno: Errno::EINVAL }
        ));
    }
}
