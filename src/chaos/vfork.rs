//! Killable D state: a holder blocked in vfork behind a child that
//! neither execs nor exits.
//!
//! `undead-vfork` calls clone(CLONE_VM | CLONE_VFORK); its child
//! `undead-vstall` pauses forever. The parent waits in
//! `wait_for_vfork_done` with TASK_KILLABLE (`kernel/fork.c`), which /proc
//! shows as D (wchan `kernel_clone` on 6.18), yet SIGKILL ends it. The
//! holder ignores TERM, INT, HUP, QUIT, USR1 and USR2, so only SIGKILL
//! ends it: the usual shape of a stuck process. Release kills the stalled
//! child; its exit completes the vfork and the holder `_exit`s.
//!
//! What saves us when undead is SIGKILLed (Drop never runs): the holder
//! has PR_SET_PDEATHSIG(SIGKILL) against undead, the stalled child the same
//! against the holder, so the chain unwinds in the kernel.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{self, ForkResult, Pid};

use super::pending::Check;
use crate::procfs;
use crate::sys;

/// Whether a holder is in D behind its named stalled child (found in
/// /proc on the way). A stalled child names itself only once it runs,
/// which may be after its holder already shows D; naming itself is its
/// last step before it stalls, so the name also means its pdeathsig is
/// armed. A holder that is gone or dead never will be D: its clone failed
/// (EAGAIN at `pids.max`) and it exited.
pub fn check(holder: Pid, stall: &mut Option<Pid>) -> Check {
    match procfs::state_of(holder) {
        None | Some('Z' | 'X') => return Check::Failed,
        Some('D') => {}
        Some(_) => return Check::NotYet,
    }
    if stall.is_none() {
        *stall = procfs::children(holder).and_then(|k| k.first().copied());
    }
    match stall.map(procfs::read_proc) {
        None => Check::NotYet,
        Some(Some(q)) if q.comm != "undead-vstall" => Check::NotYet,
        Some(_) => Check::Ready,
    }
}

/// Fork one `undead-vfork` holder. The caller waits for it to show D and
/// finds its stalled child (`ppid` = holder) in /proc (`check`). `cwd`: a directory
/// both keep open and work in (`dstate --cwd`); the stalled child shares
/// the holder's descriptors and working directory at the clone.
pub fn spawn_vfork_holder(
    stack: &mut [u8],
    cwd: Option<&OwnedFd>,
) -> Result<Pid, nix::Error> {
    let parent = unistd::getpid();
    let cwd = cwd.map_or(-1, AsRawFd::as_raw_fd);
    match sys::fork()? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => run_holder(stack, parent, cwd),
    }
}

/// The holder's side; never returns. Async-signal-safe syscalls, plus
/// the one allocation of `sys::vfork_stall` (sound because undead is
/// single-threaded, see `sys`).
fn run_holder(stack: &mut [u8], parent: Pid, cwd: RawFd) -> ! {
    sys::set_comm(c"undead-vfork");
    let _ = sys::close_all_except(&mut [0, 1, 2, cwd]);
    if cwd >= 0 && sys::fchdir(cwd).is_err() {
        sys::exit_now(1);
    }
    sys::die_with_parent(parent);
    for &sig in super::deaf::SHRUGGED {
        let _ = sys::ignore_signal(sig);
    }
    // undead's mask blocks everything; the holder must not, or a blocked
    // fatal signal would hide what the test means to show.
    let _ = sys::set_mask(SigmaskHow::SIG_SETMASK, &SigSet::empty());
    let me = unistd::getpid();
    // The name comes last: the kit waits for it, so once it shows, the
    // pdeathsig is armed too.
    let mut stall = move || -> isize {
        sys::die_with_parent(me);
        sys::set_comm(c"undead-vstall");
        sys::pause_forever()
    };
    match sys::vfork_stall(stack, &mut stall) {
        Ok(_) => sys::exit_now(0),
        Err(e) => sys::exit_now(e as i32),
    }
}
