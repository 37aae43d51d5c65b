//! The only file with `unsafe`: thin, typed wrappers over the syscalls
//! that nix marks unsafe or does not wrap without allocating.
//!
//! Contract: every function is one syscall (or one libc call) with a
//! `Result<T, Errno>`; raw `i32` pids and signal numbers stop here. The
//! functions marked "async-signal-safe" are the ones a forked child may call
//! before `execve`/`_exit`: they neither allocate nor take locks.
//!
//! Fork-child rule: a child of a multi-threaded process may call only
//! async-signal-safe functions, because another thread may have held a
//! lock (malloc's) at the fork (`fork(2)`, `signal-safety(7)`). undead
//! starts no thread, so its forked children could even allocate; three do
//! (`spawn_instant_zombie` and `vfork_stall` box a closure for `clone`;
//! the `ps` client's copy reads /proc, `show::Helper`), and that is sound
//! *only* because undead is single-threaded. Everything else a child runs
//! is listed here as async-signal-safe.

use std::ffi::{CStr, CString, c_char};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{ForkResult, Pid};

/// The process entry point, called by glibc's `__libc_start_main`
/// (`main.rs` is `no_main`). Returning from it runs `exit(3)`.
// SAFETY: exactly one symbol named `main` exists in the program: the
// crate is `no_main`, so Rust emits no `main` of its own. (A fuzz target,
// built with `--cfg fuzzing`, brings its own, like the unit tests.)
#[cfg(not(any(test, fuzzing)))]
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const c_char,
) -> std::ffi::c_int {
    std::ffi::c_int::from(crate::run())
}

/// fork(2). The caller's child must stay async-signal-safe until it
/// execs or `_exit`s (see the fork-child rule above).
pub fn fork() -> Result<ForkResult, Errno> {
    // SAFETY: undead is single-threaded whenever it forks (no thread is
    // ever started), so no lock is held by another thread in the child;
    // every child path calls only this module's async-signal-safe wrappers,
    // or allocates where a comment says so, before execve/_exit.
    unsafe { nix::unistd::fork() }
}

/// In a forked child: die by SIGKILL when the process that forked it dies
/// (PR_SET_PDEATHSIG), and close the race with a parent that died before
/// the prctl: if the parent is no longer `parent`, `_exit(1)` at once.
/// The death signal follows the parent *thread* (`prctl(2)`): undead has
/// one. Async-signal-safe (prctl, getppid, _exit).
pub fn die_with_parent(parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        exit_now(1);
    }
}

/// `_exit(2)`: leave the child at once, without running atexit handlers or
/// flushing buffers that belong to the parent. Async-signal-safe.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// sigprocmask(2) without nix's Option out-parameter. Async-signal-safe.
pub fn set_mask(how: SigmaskHow, set: &SigSet) -> Result<SigSet, Errno> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(how, Some(set), Some(&mut old))?;
    Ok(old)
}

/// An argv ready for execvp(3), built before fork so the child does not
/// allocate: the strings and the NULL-terminated pointer array.
pub struct ExecArgs {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl ExecArgs {
    pub fn new(argv: &[String]) -> Result<ExecArgs, Errno> {
        let strings = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| Errno::EINVAL))
            .collect::<Result<Vec<_>, _>>()?;
        if strings.is_empty() {
            return Err(Errno::EINVAL);
        }
        let mut ptrs: Vec<*const c_char> =
            strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(ExecArgs { _strings: strings, ptrs })
    }
}

/// execvp(3) with a prepared argv; returns only on failure.
/// Async-signal-safe enough for a child of a single-threaded parent: glibc's
/// execvp searches PATH on the stack.
pub fn execvp(args: &ExecArgs) -> Errno {
    // SAFETY: `ptrs` is a NULL-terminated array of pointers into `_strings`,
    // which `args` keeps alive for the duration of the call.
    unsafe { libc::execvp(args.ptrs[0], args.ptrs.as_ptr()) };
    Errno::last()
}

/// write(2) of a whole small buffer to stderr, ignoring errors: the child's
/// last words before `_exit`. Async-signal-safe.
pub fn write_stderr(parts: &[&[u8]]) {
    for part in parts {
        // SAFETY: the pointer and length describe a live byte slice.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
}

/// Set a signal's disposition to SIG_IGN. Async-signal-safe.
pub fn ignore_signal(sig: Signal) -> Result<(), Errno> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, sigaction};
    let ign =
        SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no Rust handler, so no handler can observe
    // inconsistent state.
    unsafe { sigaction(sig, &ign) }.map(drop)
}

/// pause(2) forever: the stalled body of kit processes, which end only by
/// a signal. Async-signal-safe.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause has no arguments and no memory effects.
        unsafe { libc::pause() };
    }
}

/// The real-time signal through which the kernel tells undead that a
/// control socket became readable (F_SETSIG): glibc's first free one.
pub fn control_signal() -> i32 {
    libc::SIGRTMIN()
}

/// `F_SETSIG` from Linux's <fcntl.h> (the libc crate does not export it).
const F_SETSIG: std::ffi::c_int = 10;

/// Ask the kernel to queue `control_signal()` to undead whenever `fd`
/// becomes readable (O_ASYNC, F_SETOWN, F_SETSIG; `fcntl(2)`), so the
/// socket wakes undead's blocking signalfd read like any signal.
pub fn notify_by_signal(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let fd = fd.as_raw_fd();
    let me = nix::unistd::getpid().as_raw();
    // SAFETY: fcntl with integer arguments only; no memory is passed.
    unsafe {
        Errno::result(libc::fcntl(fd, libc::F_SETOWN, me))?;
        Errno::result(libc::fcntl(fd, F_SETSIG, control_signal()))?;
        let flags = Errno::result(libc::fcntl(fd, libc::F_GETFL))?;
        let flags = flags | libc::O_ASYNC | libc::O_NONBLOCK;
        Errno::result(libc::fcntl(fd, libc::F_SETFL, flags)).map(drop)
    }
}

/// ioctl(fd, TIOCNOTTY): give up the controlling terminal, so that a child
/// in a new session (`--setsid`) can take it with TIOCSCTTY (dumb-init does
/// the same). As session leader this also sends SIGHUP and SIGCONT to
/// undead's foreground group, which undead, the sender, ignores.
pub fn detach_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCNOTTY takes no argument; no memory is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCNOTTY) };
    Errno::result(r).map(drop)
}

/// ioctl(fd, TIOCSCTTY, 0): make the terminal the controlling terminal of
/// this new session (dumb-init's `--setsid` behaviour). Async-signal-safe.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument by value; no memory is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(r).map(drop)
}

/// close_range(2) over every descriptor except those in `keep` (sorted in
/// place; negative entries are ignored). A forked kit process must not pin
/// undead's sockets (a client would never see EOF) or `/dev/fuse` (its
/// connection would outlive undead). Async-signal-safe, no allocation.
///
/// Only for a forked child that then `_exit`s: the `OwnedFd`s it inherited
/// are never dropped there, so nothing closes these numbers a second time.
pub fn close_all_except(keep: &mut [RawFd]) -> Result<(), Errno> {
    keep.sort_unstable();
    let mut first: u32 = 0;
    for &fd in keep.iter() {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd.saturating_add(1);
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes no pointers; closing numbers that inherited
    // `OwnedFd`s own is sound in a child that `_exit`s (see above).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    Errno::result(r).map(drop)
}

/// Set a signal's disposition back to SIG_DFL. Async-signal-safe.
pub fn default_signal(sig: Signal) -> Result<(), Errno> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, sigaction};
    let dfl =
        SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL installs no Rust handler, so no handler can observe
    // inconsistent state.
    unsafe { sigaction(sig, &dfl) }.map(drop)
}

/// fchdir(2) by raw descriptor (a forked child's copy of an `OwnedFd`).
/// Async-signal-safe.
pub fn fchdir(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: fchdir takes an integer; a bad descriptor is EBADF.
    Errno::result(unsafe { libc::fchdir(fd) }).map(drop)
}

/// Current thread's comm name, set for processes the kit creates.
/// Async-signal-safe (one prctl).
pub fn set_comm(name: &CStr) {
    let _ = nix::sys::prctl::set_name(name);
}

/// A child created with clone(CLONE_VM | CLONE_VFORK) that names itself
/// `comm` and `_exit`s at once, with exit signal SIGCHLD. Returns when the
/// child has released our memory (vfork semantics), i.e. at the very end
/// of its exit. Used by the zombie holder, whose children must be ordinary
/// children so that they reparent to undead as such.
pub fn spawn_instant_zombie(
    stack: &mut [u8],
    comm: &CStr,
) -> Result<Pid, Errno> {
    use nix::sched::CloneFlags;
    let flags = CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK;
    // An allocation in a forked child (the zombie holder): sound only
    // because undead, and so the holder, is single-threaded (no other
    // thread can hold malloc's lock).
    let body = Box::new(|| {
        set_comm(comm);
        exit_now(0)
    });
    // SAFETY: the child shares our memory but only calls prctl and _exit,
    // which touch no Rust state; CLONE_VFORK keeps us suspended until it
    // has exited, so the stack is not reused while it runs. The Box above
    // is allocated in a forked child, which is sound only because undead
    // is single-threaded.
    unsafe { nix::sched::clone(body, stack, flags, Some(libc::SIGCHLD)) }
}

/// The whole life of a held zombie: name itself, exit. Raw libc calls
/// only: it runs on a stack of its own but shares undead's memory and TLS,
/// and neither call touches TLS on success (prctl) or at all (_exit).
extern "C" fn zombie_entry(_arg: *mut std::ffi::c_void) -> std::ffi::c_int {
    // SAFETY: PR_SET_NAME reads a NUL-terminated static string.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"undead-zombie".as_ptr(), 0, 0, 0)
    };
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(0) }
}

/// Anonymous memory for the stacks of zombies created without waiting:
/// each child runs concurrently on its own slot. Unmapped on drop, so it
/// must outlive every child that may still run on it (the caller leaks it
/// with `mem::forget` if it cannot confirm they have all exited).
pub struct ZombieStacks {
    base: std::ptr::NonNull<std::ffi::c_void>,
    len: std::num::NonZeroUsize,
    slot: usize,
}

impl ZombieStacks {
    pub fn new(n: usize, slot: usize) -> Result<ZombieStacks, Errno> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        let len = n
            .max(1)
            .checked_mul(slot)
            .and_then(std::num::NonZeroUsize::new)
            .ok_or(Errno::ENOMEM)?;
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE;
        // SAFETY: a fresh anonymous mapping aliases no Rust object.
        let base = unsafe { mmap_anonymous(None, len, prot, flags) }?;
        Ok(ZombieStacks { base, len, slot })
    }

    /// clone(CLONE_VM) a child on slot `i` with exit signal 0 (a "clone
    /// child", invisible to `waitpid(-1)` without `__WCLONE`, `wait(2)`),
    /// which names itself `undead-zombie` and exits. Does not wait for it.
    pub fn spawn_zombie(&mut self, i: usize) -> Result<Pid, Errno> {
        let end = (i + 1) * self.slot;
        if end > self.len.get() {
            return Err(Errno::EINVAL);
        }
        // The stack grows down from the slot's end, 16-byte aligned.
        let top = self.base.as_ptr().cast::<u8>().wrapping_add(end & !15);
        // SAFETY: the child runs only `zombie_entry` on its own slot of a
        // mapping that stays alive until it has exited (see the type), and
        // shares no Rust object with us; flags carry no CLONE_VFORK, so we
        // return at once; the exit signal in the low byte is 0.
        let r = unsafe {
            libc::clone(
                zombie_entry,
                top.cast(),
                libc::CLONE_VM,
                std::ptr::null_mut(),
            )
        };
        Errno::result(r).map(Pid::from_raw)
    }
}

impl Drop for ZombieStacks {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and by the type's contract no child
        // runs on it any more.
        let _ = unsafe { nix::sys::mman::munmap(self.base, self.len.get()) };
    }
}

/// clone(CLONE_VM | CLONE_VFORK) whose child runs `stall` on `stack` and
/// never returns; the caller sits in `wait_for_vfork_done` (D state,
/// TASK_KILLABLE) until the child exits or execs.
pub fn vfork_stall(
    stack: &mut [u8],
    stall: &mut dyn FnMut() -> isize,
) -> Result<Pid, Errno> {
    use nix::sched::CloneFlags;
    let flags = CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK;
    // SAFETY: `stall` only makes raw syscalls (prctl, getppid, pause,
    // _exit) and never returns into our frames; CLONE_VFORK suspends us
    // while it runs, so the borrowed stack and closure stay valid and
    // unshared. The Box is allocated in a forked child (the vfork holder):
    // sound only because undead, and so the holder, is single-threaded.
    unsafe {
        nix::sched::clone(Box::new(stall), stack, flags, Some(libc::SIGCHLD))
    }
}
