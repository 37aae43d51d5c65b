//! SIGKILL-immune D state (SPEC §3, `fuse`): undead serves a tiny FUSE
//! filesystem of its own over raw /dev/fuse and never answers its victims'
//! READ.
//!
//! Kernel behaviour relied upon (fs/fuse/dev.c, Linux 6.18):
//! - `request_wait_answer` waits for a synchronous request interruptibly
//!   unless `fc->no_interrupt`, then killably (TASK_KILLABLE: `D` in
//!   /proc); on a fatal signal, a request the server has already read is
//!   waited out with `wait_event` (uninterruptible): SIGKILL cannot end it.
//! - `fc->no_interrupt` is set for good when the server answers one
//!   FUSE_INTERRUPT with -ENOSYS (`fuse_dev_do_write`). A *primer* child
//!   provides it: its READ is held, it is SIGKILLed, its INTERRUPT gets
//!   -ENOSYS, its READ -EIO, and it dies. Victims forked afterwards are `D`
//!   before any signal and stay `D` after SIGTERM and SIGKILL.
//! - An error reply frees a victim at once. The last close of the
//!   /dev/fuse file (including its holder's death) aborts the connection
//!   (`fuse_dev_release`) and frees all victims; `umount -l` does not.
//! - FUSE_REQUEST_TIMEOUT (7.43, Linux 6.14+): `fuse_check_timeout` runs
//!   every 15 s from INIT and aborts the connection once a request is older
//!   than max(T, 15 s) (`fuse_init_server_timeout`).
//!
//! The mount lives in a private mount namespace: a helper child unshares
//! one, makes / private, mounts with `fd=N` of its inherited copy of the
//! descriptor, closes every copy and stops itself; undead opens its
//! `/proc/PID/ns/mnt` and kills it; the victims `setns` into it. Nothing
//! appears in undead's mount table, no directory is created, and the
//! namespace (with the mount) goes with the last victim. This assumes that
//! undead's root is its mount namespace's root (true after pivot_root).
//! No threads: the caller polls `fd()` and calls `on_readable`.

use std::cell::Cell;
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getgid, getpid, getuid, read, write};

use crate::sys;

/// Type and source of undead's mounts: what `rescue` looks for.
pub(super) const FS_TYPE: &str = "fuse.undead";
const FS_SOURCE: &str = "undead";
/// Exists in every OCI container; hidden only in the private namespace.
const MOUNTPOINT: &str = "/dev";
const FILE_NAME: &str = "hold";
const COMM: &str = "undead-fuse";
const COMM_MOUNT: &str = "undead-fusemnt";
const SETUP_LIMIT: Duration = Duration::from_secs(3);
/// FUSE_TIMEOUT_TIMER_FREQ: the check period and the minimum timeout.
const TIMER_FREQ: Duration = Duration::from_secs(15);
/// Exit codes of a reader child that could not start its READ.
const EXIT_SETNS: i32 = 2;
const EXIT_OPEN: i32 = 3;

// include/uapi/linux/fuse.h. Debian 12's copy is 7.38: 7.43 is defined here.
const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const OPEN: u32 = 14;
const READ: u32 = 15;
const RELEASE: u32 = 18;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const INTERRUPT: u32 = 36;
const DESTROY: u32 = 38;
const BATCH_FORGET: u32 = 42;
const IN_HEADER: usize = 40;
const OUT_HEADER: usize = 16;
const INIT_OUT: usize = 64;
const FUSE_INIT_EXT: u32 = 1 << 30;
/// FUSE_REQUEST_TIMEOUT: bit 42 of the 64-bit flags = bit 10 of `flags2`.
const FLAGS2_REQUEST_TIMEOUT: u32 = 1 << 10;
const TIMEOUT_MINOR: u32 = 43;
/// `fuse_init_out.request_timeout` (u16): after flags2 (32) and
/// max_stack_depth (36). Measured here: written at 44 it is ignored.
const REQUEST_TIMEOUT_AT: usize = 40;
const FOPEN_DIRECT_IO: u32 = 1;
const ROOT: u64 = 1;
const FILE: u64 = 2;
/// Above the kernel's 8 KiB minimum; fits max_write (4 KiB) + headers.
const BUF_LEN: usize = 64 * 1024;

/// One /dev/fuse connection, its victims and its state. Dropping it closes
/// undead's descriptor: in the default mode the kernel then aborts the
/// connection and frees the victims; `outlive` victims hold copies and stay
/// until `release` (call it on a controlled exit) or the kernel's timeout.
pub struct FuseHold {
    dev: OwnedFd,
    victims: Vec<Pid>,
    /// Sticky: a pid seen gone may be reused once the caller reaps it.
    gone: Vec<Cell<bool>>,
    /// READs read and not answered: (unique, pid).
    held: Vec<(u64, Pid)>,
    outlive: Option<u16>,
    initialized: bool,
    no_interrupt: bool,
    released: bool,
    aborted: bool,
    refusal: Option<FuseError>,
    /// Why fewer than `n` victims were made (fork's EAGAIN: pids.max).
    shortfall: Option<Errno>,
    buf: Vec<u8>,
}

#[derive(Debug)]
pub enum FuseError {
    DevFuse(Errno),
    CapSysAdmin { op: &'static str, errno: Errno },
    Mount { op: &'static str, errno: Errno },
    Setns,
    Fork(Errno),
    OutliveTooLong(Duration),
    OutliveZero,
    NoRequestTimeout { major: u32, minor: u32 },
    HungTaskPanic { timeout_secs: String, lasts: Option<Duration> },
    Protocol(&'static str),
    Aborted,
    NotReady(&'static str),
    ChildFailed { what: &'static str, pid: Pid, code: Option<i32> },
    Rescue { op: &'static str, path: String, errno: Errno },
}

impl fmt::Display for FuseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DevFuse(e) => write!(
                f,
                "cannot open /dev/fuse: {} (docker: --device /dev/fuse; \
                 kubernetes: a device plugin exposing /dev/fuse, or \
                 securityContext.privileged: true)",
                e.desc()
            ),
            Self::CapSysAdmin { op, errno } => write!(
                f,
                "missing CAP_SYS_ADMIN to mount the fuse filesystem ({op}: \
                 {}) (docker: --cap-add SYS_ADMIN; kubernetes: \
                 securityContext.capabilities.add: [\"SYS_ADMIN\"])",
                errno.desc()
            ),
            Self::Mount { op, errno } => write!(
                f,
                "cannot mount the fuse filesystem ({op}: {}); with \
                 CAP_SYS_ADMIN, a security module denies it (docker: \
                 --security-opt apparmor=unconfined)",
                errno.desc()
            ),
            Self::Setns => write!(
                f,
                "missing CAP_SYS_CHROOT to join the fuse mount namespace \
                 (docker grants it by default; kubernetes: \
                 securityContext.capabilities.add: [\"SYS_CHROOT\"])"
            ),
            Self::Fork(e) => write!(f, "cannot fork: {}", e.desc()),
            Self::OutliveTooLong(d) => write!(
                f,
                "--outlive {}s is above the kernel's limit of 65535s",
                d.as_secs()
            ),
            Self::OutliveZero => write!(f, "--outlive must be at least 1s"),
            Self::NoRequestTimeout { major, minor } => write!(
                f,
                "--outlive refused: this kernel (fuse {major}.{minor}) has \
                 no FUSE_REQUEST_TIMEOUT to bound the hang (Linux 6.14+)"
            ),
            Self::HungTaskPanic { timeout_secs, lasts } => write!(
                f,
                "refusing immune D: kernel.hung_task_panic is set and the \
                 hang may last {} (kernel.hung_task_timeout_secs is {})",
                lasts.map_or("until released".into(), |d| format!(
                    "up to {}s",
                    d.as_secs()
                )),
                timeout_secs
            ),
            Self::Protocol(what) => write!(f, "fuse protocol: {what}"),
            Self::Aborted => {
                write!(f, "the fuse connection was aborted during setup")
            }
            Self::NotReady(what) => write!(
                f,
                "gave up waiting {}s for {what}",
                SETUP_LIMIT.as_secs()
            ),
            Self::ChildFailed { what, pid, code } => write!(
                f,
                "the fuse {what} (pid {pid}) exited early (code {})",
                code.map_or("unknown".into(), |c| c.to_string())
            ),
            Self::Rescue { op, path, errno } => {
                write!(f, "rescue: cannot {op} {path}: {}", errno.desc())
            }
        }
    }
}

impl std::error::Error for FuseError {}

impl FuseHold {
    /// Mount undead's fs privately and fork `n` victims; return once all
    /// are `D`, or give up after ~3 s (killing and reaping what it forked).
    /// `outlive`: the victims also hold the descriptor and the kernel
    /// aborts the connection by itself within `outlive_window(T)`.
    pub fn create(
        n: usize,
        outlive: Option<Duration>,
    ) -> Result<FuseHold, FuseError> {
        let outlive = outlive.map(timeout_secs).transpose()?;
        let lasts =
            outlive.map(|t| outlive_window(Duration::from_secs(t.into())).1);
        // UNDEAD_PROC_SYS (default /proc/sys) is the test seam that feeds
        // the check fake values; the real sysctls are never written.
        let root = std::env::var("UNDEAD_PROC_SYS")
            .unwrap_or_else(|_| "/proc/sys".into());
        let sysctl =
            |name| std::fs::read_to_string(format!("{root}/kernel/{name}"));
        // No files: no hung-task detector, nothing to check.
        if let (Ok(panic), Ok(timeout)) =
            (sysctl("hung_task_panic"), sysctl("hung_task_timeout_secs"))
        {
            check_hung_task(&panic, &timeout, lasts)?;
        }
        let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let dev = open("/dev/fuse", flags, Mode::empty())
            .map_err(FuseError::DevFuse)?;
        let mut hold = FuseHold {
            dev,
            victims: Vec::new(),
            gone: Vec::new(),
            held: Vec::new(),
            outlive,
            initialized: false,
            no_interrupt: false,
            released: false,
            aborted: false,
            refusal: None,
            shortfall: None,
            buf: vec![0; BUF_LEN],
        };
        let mut spawned = Vec::new();
        match hold.setup(n, Instant::now() + SETUP_LIMIT, &mut spawned) {
            Ok(()) => Ok(hold),
            Err(e) => {
                hold.abandon(&spawned);
                Err(e)
            }
        }
    }

    /// `spawned`: our children not yet handed to the caller, for cleanup.
    fn setup(
        &mut self,
        n: usize,
        deadline: Instant,
        spawned: &mut Vec<Pid>,
    ) -> Result<(), FuseError> {
        let ns = self.mount_privately(deadline, spawned)?;
        self.pump(deadline, "FUSE_INIT", |h| Ok(h.initialized))?;
        let primer = self.spawn_reader(&ns, false)?;
        spawned.push(primer);
        self.pump(deadline, "the primer's READ", |h| {
            h.reader(primer, "primer", |h| h.holds(primer))
        })?;
        let _ = kill(primer, Signal::SIGKILL);
        self.pump(deadline, "FUSE_INTERRUPT", |h| Ok(h.no_interrupt))?;
        self.answer_held(Some(primer));
        // Serve while it exits: its close sends a FLUSH that waits
        // uninterruptibly (fuse_flush sets args.force); our -ENOSYS sets
        // fc->no_flush, so the victims' exits send none.
        self.pump(deadline, "the primer to exit", |_| {
            Ok(reap(primer, Instant::now()))
        })?;
        spawned.retain(|p| *p != primer);
        for _ in 0..n {
            let pid = match self.spawn_reader(&ns, self.outlive.is_some()) {
                Ok(pid) => pid,
                // pids.max: keep the ones made (SPEC §3), say why.
                Err(FuseError::Fork(Errno::EAGAIN))
                    if !self.victims.is_empty() =>
                {
                    self.shortfall = Some(Errno::EAGAIN);
                    break;
                }
                Err(e) => return Err(e),
            };
            spawned.push(pid);
            self.victims.push(pid);
            self.gone.push(Cell::new(false));
        }
        let victims = self.victims.clone();
        // The promise is observable: 'D' in /proc/PID/stat.
        self.pump(deadline, "the victims to be D", |h| {
            victims.iter().try_fold(true, |all, &p| {
                let d = |h: &Self| {
                    h.holds(p) && crate::procfs::state_of(p) == Some('D')
                };
                Ok(h.reader(p, "victim", d)? && all)
            })
        })
    }

    /// Fork the mount helper; return its mount namespace once it has
    /// mounted and stopped.
    fn mount_privately(
        &mut self,
        deadline: Instant,
        spawned: &mut Vec<Pid>,
    ) -> Result<OwnedFd, FuseError> {
        let fd = self.dev.as_raw_fd();
        let (uid, gid) = (getuid(), getgid());
        let data =
            format!("fd={fd},rootmode=40000,user_id={uid},group_id={gid}");
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
            let (src, ty, opts) =
                (Some(&*source), Some(&*fstype), Some(&*data));
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
            self.wait_readable(Duration::from_millis(5));
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
    /// /dev/fuse), read one byte, `_exit`.
    fn spawn_reader(
        &self,
        ns: &OwnedFd,
        keep_dev: bool,
    ) -> Result<Pid, FuseError> {
        let path = cstring(&format!("{MOUNTPOINT}/{FILE_NAME}"))?;
        let name = cstring(COMM)?;
        let dev: RawFd = if keep_dev { self.dev.as_raw_fd() } else { -1 };
        fork_child(|| {
            sys::set_comm(&name);
            reset_signals();
            if setns(ns, CloneFlags::CLONE_NEWNS).is_err() {
                return EXIT_SETNS;
            }
            let Ok(file) = open(&*path, OFlag::O_RDONLY, Mode::empty()) else {
                return EXIT_OPEN;
            };
            let _ = sys::close_all_except(&mut [file.as_raw_fd(), dev]);
            let _ = read(&file, &mut [0u8; 1]); // never answered
            0
        })
        .map_err(FuseError::Fork)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }

    /// False once the connection is gone: `fd()` then polls POLLERR.
    pub fn wants_poll(&self) -> bool {
        !self.aborted
    }

    pub fn victims(&self) -> &[Pid] {
        &self.victims
    }

    /// Forget victims the init's drain has reaped (the connection was
    /// aborted, e.g. by `rescue` or the kernel's `--outlive` timeout):
    /// their pids may name unrelated processes from now on. Returns
    /// whether any victim is left.
    pub fn forget(&mut self, reaped: &[Pid]) -> bool {
        let mut gone = std::mem::take(&mut self.gone).into_iter();
        let mut kept = Vec::new();
        self.victims.retain(|p| {
            let flag = gone.next().unwrap_or_default();
            let keep = !reaped.contains(p);
            if keep {
                kept.push(flag);
            }
            keep
        });
        self.gone = kept;
        self.held.retain(|(_, p)| !reaped.contains(p));
        !self.victims.is_empty()
    }

    /// Set if fork failed (EAGAIN, pids.max) before `n` victims were made.
    pub fn shortfall(&self) -> Option<Errno> {
        self.shortfall
    }

    /// Serve every request readable now. Non-blocking; never panics.
    pub fn on_readable(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        while !self.aborted {
            match read(&self.dev, &mut buf) {
                Ok(len) => self.serve(buf.get(..len).unwrap_or(&[])),
                Err(Errno::EINTR) => {}
                // Aborted, or unmounted after the last victim went.
                Err(Errno::ENODEV) => self.aborted = true,
                Err(_) => break, // EAGAIN: nothing more
            }
        }
        self.buf = buf;
    }

    /// Free the victims: -EIO to their held READs; later requests (e.g.
    /// RELEASE of their exit) are answered until they are gone.
    pub fn release(&mut self) {
        self.released = true;
        self.answer_held(None);
    }

    /// Every victim has exited: zombie or reaped (the caller reaps them).
    pub fn is_finished(&self) -> bool {
        for (pid, gone) in self.victims.iter().zip(&self.gone) {
            let state = crate::procfs::state_of(*pid);
            gone.set(gone.get() || matches!(state, None | Some('Z' | 'X')));
        }
        self.gone.iter().all(Cell::get)
    }

    fn serve(&mut self, req: &[u8]) {
        let (Some(opcode), Some(unique), Some(node), Some(pid)) =
            (u32_at(req, 4), u64_at(req, 8), u64_at(req, 16), u32_at(req, 32))
        else {
            return;
        };
        let body = req.get(IN_HEADER..).unwrap_or(&[]);
        let (uid, gid) = (u32_at(req, 24), u32_at(req, 28));
        let (uid, gid) = (uid.unwrap_or(0), gid.unwrap_or(0));
        let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        let name = body.split(|b| *b == 0).next();
        let ours = node == ROOT && name == Some(FILE_NAME.as_bytes());
        let (error, out): (i32, &[u8]) = match opcode {
            INIT => match init_reply(body, self.outlive) {
                Ok(out) => {
                    self.initialized = self.reply(unique, 0, &out);
                    return;
                }
                Err(e) => {
                    self.refusal = Some(e);
                    (-libc::EPROTO, &[])
                }
            },
            LOOKUP if ours => (0, &entry_out(FILE, uid, gid)),
            LOOKUP => (-libc::ENOENT, &[]),
            GETATTR if node == ROOT || node == FILE => {
                (0, &attr_out(node, uid, gid))
            }
            OPEN => (0, &open_out(FOPEN_DIRECT_IO)),
            OPENDIR => (0, &open_out(0)),
            READDIR | RELEASE | RELEASEDIR | DESTROY => (0, &[]),
            READ if !self.released => {
                self.held.push((unique, pid));
                return;
            }
            READ => (-libc::EIO, &[]),
            // Sets fc->no_interrupt; `unique` has FUSE_INT_REQ_BIT already.
            INTERRUPT => {
                self.no_interrupt |= self.reply(unique, -libc::ENOSYS, &[]);
                return;
            }
            FLUSH => (-libc::ENOSYS, &[]), // sets fc->no_flush
            FORGET | BATCH_FORGET => return, // no reply
            _ => (-libc::ENOSYS, &[]),
        };
        self.reply(unique, error, out);
    }

    /// Write one reply; true if the kernel took it.
    fn reply(&mut self, unique: u64, error: i32, body: &[u8]) -> bool {
        let len = u32::try_from(OUT_HEADER + body.len()).unwrap_or(0);
        let mut msg = Vec::with_capacity(OUT_HEADER + body.len());
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&error.to_le_bytes());
        msg.extend_from_slice(&unique.to_le_bytes());
        msg.extend_from_slice(body);
        let r = write(&self.dev, &msg);
        self.aborted |= r == Err(Errno::ENODEV);
        r.is_ok()
    }

    /// -EIO to the held READs of `only`, or of all.
    fn answer_held(&mut self, only: Option<Pid>) {
        for (unique, pid) in std::mem::take(&mut self.held) {
            if only.is_none_or(|p| p == pid) {
                self.reply(unique, -libc::EIO, &[]);
            } else {
                self.held.push((unique, pid));
            }
        }
    }

    fn holds(&self, pid: Pid) -> bool {
        self.held.iter().any(|(_, p)| *p == pid)
    }

    /// `ok(self)`, or an error if the reader (our child, unknown to the
    /// caller) has exited: it could not join the namespace or open the file.
    fn reader(
        &self,
        pid: Pid,
        what: &'static str,
        ok: impl Fn(&Self) -> bool,
    ) -> Result<bool, FuseError> {
        if !matches!(crate::procfs::state_of(pid), None | Some('Z' | 'X')) {
            return Ok(ok(self));
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, EXIT_SETNS)) => Err(FuseError::Setns),
            Ok(WaitStatus::Exited(_, code)) => {
                Err(FuseError::ChildFailed { what, pid, code: Some(code) })
            }
            _ => Err(FuseError::ChildFailed { what, pid, code: None }),
        }
    }

    /// Serve until `done`, a refusal, an abort, or the deadline.
    fn pump(
        &mut self,
        deadline: Instant,
        what: &'static str,
        mut done: impl FnMut(&Self) -> Result<bool, FuseError>,
    ) -> Result<(), FuseError> {
        loop {
            self.on_readable();
            if let Some(e) = self.refusal.take() {
                return Err(e);
            }
            if self.aborted {
                return Err(FuseError::Aborted);
            }
            if done(self)? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FuseError::NotReady(what));
            }
            self.wait_readable(left.min(Duration::from_millis(5)));
        }
    }

    fn wait_readable(&self, timeout: Duration) {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.dev.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }

    /// Failed setup: kill what we forked, answer what is held, reap by pid
    /// (at most 1 s); dropping `self` then closes the descriptor.
    fn abandon(&mut self, spawned: &[Pid]) {
        for pid in spawned {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        self.release();
        let deadline = Instant::now() + Duration::from_secs(1);
        for pid in spawned {
            while !reap(*pid, Instant::now()) && Instant::now() < deadline {
                self.on_readable();
                self.wait_readable(Duration::from_millis(5));
            }
        }
    }
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
fn reap(pid: Pid, deadline: Instant) -> bool {
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

/// `t` as the kernel's u16 seconds, rounded up; 0 means "no timeout" to the
/// kernel, so it is refused.
fn timeout_secs(t: Duration) -> Result<u16, FuseError> {
    let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
    match u16::try_from(secs) {
        Ok(0) => Err(FuseError::OutliveZero),
        Ok(s) => Ok(s),
        Err(_) => Err(FuseError::OutliveTooLong(t)),
    }
}

/// When the kernel frees `outlive` victims, from their request: it raises
/// T to at least 15 s and checks every 15 s from INIT.
pub fn outlive_window(t: Duration) -> (Duration, Duration) {
    let lo = t.max(TIMER_FREQ);
    (lo, lo + TIMER_FREQ)
}

/// Refuse if `kernel.hung_task_panic` is set and the immune D (`lasts`;
/// None: until released) may outlast `kernel.hung_task_timeout_secs` (0:
/// detector off). Unparsable values refuse.
pub fn check_hung_task(
    panic: &str,
    timeout_secs: &str,
    lasts: Option<Duration>,
) -> Result<(), FuseError> {
    if panic.trim() == "0" {
        return Ok(());
    }
    let timeout = timeout_secs.trim();
    match (timeout.parse::<u64>(), lasts) {
        (Ok(0), _) => Ok(()),
        (Ok(t), Some(d)) if d <= Duration::from_secs(t) => Ok(()),
        _ => Err(FuseError::HungTaskPanic {
            timeout_secs: timeout.to_string(),
            lasts,
        }),
    }
}

/// The INIT reply body (`fuse_init_out`) for the kernel's `fuse_init_in`.
/// With `outlive`, negotiate FUSE_REQUEST_TIMEOUT, or refuse if the kernel
/// does not offer it (a kernel without it would ignore it silently).
fn init_reply(
    body: &[u8],
    outlive: Option<u16>,
) -> Result<[u8; INIT_OUT], FuseError> {
    let (Some(major), Some(minor), Some(flags)) =
        (u32_at(body, 0), u32_at(body, 4), u32_at(body, 12))
    else {
        return Err(FuseError::Protocol("short FUSE_INIT"));
    };
    if major != 7 {
        return Err(FuseError::Protocol("FUSE_INIT major is not 7"));
    }
    let ext = flags & FUSE_INIT_EXT != 0;
    let flags2 = if ext { u32_at(body, 16).unwrap_or(0) } else { 0 };
    let mut out = [0u8; INIT_OUT];
    put(&mut out, 0, &7u32.to_le_bytes());
    put(&mut out, 4, &minor.min(TIMEOUT_MINOR).to_le_bytes());
    put(&mut out, 20, &4096u32.to_le_bytes()); // max_write
    put(&mut out, 24, &1u32.to_le_bytes()); // time_gran
    if let Some(secs) = outlive {
        if minor < TIMEOUT_MINOR || flags2 & FLAGS2_REQUEST_TIMEOUT == 0 {
            return Err(FuseError::NoRequestTimeout { major, minor });
        }
        put(&mut out, 12, &FUSE_INIT_EXT.to_le_bytes());
        put(&mut out, 32, &FLAGS2_REQUEST_TIMEOUT.to_le_bytes());
        put(&mut out, REQUEST_TIMEOUT_AT, &secs.to_le_bytes());
    }
    Ok(out)
}

/// `fuse_attr` (88 bytes) of the root directory or of the file.
fn attr(ino: u64, uid: u32, gid: u32) -> [u8; 88] {
    let (mode, size, nlink) = if ino == ROOT {
        (libc::S_IFDIR | 0o555, 0u64, 2u32)
    } else {
        (libc::S_IFREG | 0o444, 4096, 1)
    };
    let mut a = [0u8; 88];
    put(&mut a, 0, &ino.to_le_bytes());
    put(&mut a, 8, &size.to_le_bytes());
    put(&mut a, 60, &mode.to_le_bytes());
    put(&mut a, 64, &nlink.to_le_bytes());
    put(&mut a, 68, &uid.to_le_bytes());
    put(&mut a, 72, &gid.to_le_bytes());
    put(&mut a, 80, &4096u32.to_le_bytes()); // blksize
    a
}

/// `fuse_entry_out`: nodeid, generation, entry/attr validity (1 day), attr.
fn entry_out(ino: u64, uid: u32, gid: u32) -> [u8; 128] {
    let mut e = [0u8; 128];
    put(&mut e, 0, &ino.to_le_bytes());
    put(&mut e, 16, &86400u64.to_le_bytes());
    put(&mut e, 24, &86400u64.to_le_bytes());
    put(&mut e, 40, &attr(ino, uid, gid));
    e
}

/// `fuse_attr_out`: attr_valid (1 day), attr.
fn attr_out(ino: u64, uid: u32, gid: u32) -> [u8; 104] {
    let mut o = [0u8; 104];
    put(&mut o, 0, &86400u64.to_le_bytes());
    put(&mut o, 16, &attr(ino, uid, gid));
    o
}

/// `fuse_open_out`. FOPEN_DIRECT_IO makes read(2) one synchronous READ
/// (the page cache path waits on folio locks, killably).
fn open_out(open_flags: u32) -> [u8; 16] {
    let mut o = [0u8; 16];
    put(&mut o, 8, &open_flags.to_le_bytes());
    o
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_in(minor: u32, flags: u32, flags2: u32) -> Vec<u8> {
        [7u32, minor, 0, flags, flags2]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain([0u8; 44])
            .collect()
    }

    #[test]
    fn init_reply_default_is_plain() {
        let out = init_reply(
            &init_in(45, FUSE_INIT_EXT, FLAGS2_REQUEST_TIMEOUT),
            None,
        )
        .unwrap();
        assert_eq!((u32_at(&out, 0), u32_at(&out, 4)), (Some(7), Some(43)));
        assert_eq!((u32_at(&out, 12), u32_at(&out, 32)), (Some(0), Some(0)));
        assert_eq!(&out[40..42], &[0, 0]);
        assert_eq!(u32_at(&out, 20), Some(4096));
    }

    #[test]
    fn init_reply_outlive_sets_timeout_at_40() {
        let out = init_reply(
            &init_in(45, FUSE_INIT_EXT, FLAGS2_REQUEST_TIMEOUT),
            Some(300),
        )
        .unwrap();
        assert_eq!(u32_at(&out, 12), Some(1 << 30));
        assert_eq!(u32_at(&out, 32), Some(1 << 10));
        assert_eq!(u16::from_le_bytes([out[40], out[41]]), 300);
        assert_eq!(out.len(), 64);
    }

    #[test]
    fn init_reply_outlive_refused_without_offer() {
        assert!(matches!(
            init_reply(&init_in(38, FUSE_INIT_EXT, 0), Some(5)),
            Err(FuseError::NoRequestTimeout { minor: 38, .. })
        ));
        // flags2 is only meaningful with FUSE_INIT_EXT
        assert!(
            init_reply(&init_in(45, 0, FLAGS2_REQUEST_TIMEOUT), Some(5))
                .is_err()
        );
        assert!(init_reply(&[1, 2, 3], None).is_err());
    }

    #[test]
    fn timeout_is_whole_seconds_within_u16() {
        assert_eq!(timeout_secs(Duration::from_millis(2500)).unwrap(), 3);
        assert!(matches!(
            timeout_secs(Duration::ZERO),
            Err(FuseError::OutliveZero)
        ));
        assert_eq!(timeout_secs(Duration::from_secs(65535)).unwrap(), 65535);
        assert!(matches!(
            timeout_secs(Duration::from_secs(65536)),
            Err(FuseError::OutliveTooLong(_))
        ));
    }

    #[test]
    fn window_is_raised_to_15s_plus_one_check() {
        let s = Duration::from_secs;
        assert_eq!(outlive_window(s(3)), (s(15), s(30)));
        assert_eq!(outlive_window(s(100)), (s(100), s(115)));
    }

    #[test]
    fn hung_task_check() {
        let s = Duration::from_secs;
        assert!(check_hung_task("0\n", "120\n", None).is_ok());
        assert!(check_hung_task("1\n", "0\n", None).is_ok());
        assert!(check_hung_task("1\n", "120\n", Some(s(30))).is_ok());
        assert!(check_hung_task("1\n", "120\n", Some(s(121))).is_err());
        assert!(check_hung_task("1\n", "120\n", None).is_err());
        assert!(check_hung_task("1", "garbage", Some(s(1))).is_err());
    }

    #[test]
    fn entry_and_attr_layout() {
        let e = entry_out(FILE, 5, 6);
        assert_eq!(u64_at(&e, 0), Some(FILE));
        assert_eq!(u32_at(&e, 40 + 60), Some(libc::S_IFREG | 0o444));
        assert_eq!(u32_at(&e, 40 + 68), Some(5));
        assert_eq!(
            u32_at(&attr_out(ROOT, 0, 0), 16 + 60),
            Some(libc::S_IFDIR | 0o555)
        );
        assert_eq!(u32_at(&open_out(FOPEN_DIRECT_IO), 8), Some(1));
    }

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

    #[test]
    fn errors_are_one_lowercase_line() {
        let e = FuseError::DevFuse(Errno::ENOENT).to_string();
        assert!(e.starts_with(
            "cannot open /dev/fuse: No such file or directory \
             (docker: --device /dev/fuse; kubernetes:"
        ));
        let e = FuseError::CapSysAdmin { op: "unshare", errno: Errno::EPERM }
            .to_string();
        assert!(
            e.contains("missing CAP_SYS_ADMIN")
                && e.contains("--cap-add SYS_ADMIN")
                && e.contains("capabilities.add")
        );
        assert!(!e.contains('\n'));
    }
}
