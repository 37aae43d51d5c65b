//! SIGKILL-immune D state (`dstate --kind fuse`; README "SIGKILL-immune D
//! state"): undead serves a tiny FUSE filesystem of its own over raw
//! /dev/fuse and never answers its victims' READ.
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
//! Three layers: `proto.rs` (the wire format, pure), `mount.rs` (the
//! private mount namespace and the processes in it), this file (the
//! connection's state: what is held, what to answer).
//! No threads: the caller polls `fd()` and calls `on_readable`.

mod error;
mod mount;
mod proto;

use std::cell::Cell;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, read, write};

pub use error::FuseError;
pub(super) use mount::FS_TYPE;
use mount::{EXIT_SETNS, reap};
pub use proto::outlive_window;
use proto::*;

pub(super) const SETUP_LIMIT: Duration = Duration::from_secs(3);
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

impl FuseHold {
    /// A connection on `dev` that has served nothing yet.
    fn fresh(dev: OwnedFd, outlive: Option<u16>, buf: Vec<u8>) -> Self {
        FuseHold {
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
            buf,
        }
    }

    /// Mount undead's fs privately and fork `n` victims (whose READs the
    /// caller confirms with `check`), or give up after ~3 s (killing and
    /// reaping what it forked).
    /// `outlive`: the victims also hold the descriptor and the kernel
    /// aborts the connection by itself within `outlive_window(T)`.
    /// `cwd`: a directory each victim keeps open and works in.
    pub fn create(
        n: usize,
        outlive: Option<Duration>,
        cwd: Option<&OwnedFd>,
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
        let mut hold = FuseHold::fresh(dev, outlive, vec![0; BUF_LEN]);
        let mut spawned = Vec::new();
        let cwd = cwd.map_or(-1, AsRawFd::as_raw_fd);
        let deadline = Instant::now() + SETUP_LIMIT;
        match hold.setup(n, deadline, cwd, &mut spawned) {
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
        cwd: RawFd,
        spawned: &mut Vec<Pid>,
    ) -> Result<(), FuseError> {
        let fd = self.dev.as_raw_fd();
        let wait = |t| self.wait_readable(t);
        let ns = mount::mount_privately(fd, deadline, spawned, wait)?;
        self.pump(deadline, "FUSE_INIT", |h| Ok(h.initialized))?;
        let primer = mount::spawn_reader(fd, &ns, false, -1)?;
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
            let keep = self.outlive.is_some();
            let pid = match mount::spawn_reader(fd, &ns, keep, cwd) {
                Ok(pid) => pid,
                // pids.max: keep the ones made and say why, as every
                // kind of the kit does ("made 3 of 5 ...").
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
        // The victims are confirmed by the kit's loop (`check`).
        Ok(())
    }

    /// Serve what is readable; then whether every victim is observably in
    /// its promised state: its READ held and 'D' in /proc/PID/stat. An
    /// error if the connection was refused or aborted, or a victim exited.
    /// Never blocks.
    pub fn check(&mut self) -> Result<bool, FuseError> {
        self.on_readable();
        if let Some(e) = self.refusal.take() {
            return Err(e);
        }
        if self.aborted {
            return Err(FuseError::Aborted);
        }
        self.victims.iter().try_fold(true, |all, &p| {
            let d = |h: &Self| {
                h.holds(p) && crate::procfs::state_of(p) == Some('D')
            };
            Ok(self.reader(p, "victim", d)? && all)
        })
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
        let Some(In { opcode, unique, node, uid, gid, pid, body }) =
            proto::parse_in(req)
        else {
            return;
        };
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
        let r = write(&self.dev, &proto::out_msg(unique, error, body));
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

/// Fuzzing seam (fuzz/, `--cfg fuzzing`): the requests in `input`, each
/// cut at its header's length, served by a connection whose replies go to
/// /dev/null. Exercises the decoder and its state (INIT, READ held,
/// INTERRUPT) without a kernel.
#[cfg(fuzzing)]
pub fn fuzz_serve(mut input: &[u8], outlive: Option<u16>) {
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let Ok(dev) = open("/dev/null", flags, Mode::empty()) else { return };
    let mut hold = FuseHold::fresh(dev, outlive, Vec::new());
    while let Some(len) = u32_at(input, 0) {
        let len = (len as usize).clamp(1, input.len());
        hold.serve(&input[..len]);
        input = &input[len..];
    }
    hold.release();
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
