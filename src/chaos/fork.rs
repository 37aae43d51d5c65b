//! Forking a kit process of the hazard kinds: the preamble every such
//! child runs first (async-signal-safe only), and how undead tells that its
//! setup is done (it has named itself).

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{self, ForkResult, Pid};

use crate::sys;

/// Fork up to `n` kit processes running `body`; stop at the first fork
/// failure (EAGAIN at `pids.max`) and return it with what was made. The
/// body names itself (`sys::set_comm`) as its last step before it waits:
/// until then the child still shows undead's name and undead's masks, so
/// each `ready` checks the name first.
pub fn spawn_each(
    n: usize,
    pdeathsig: bool,
    body: &dyn Fn(),
) -> (Vec<Pid>, Option<Errno>) {
    let parent = unistd::getpid();
    let mut made = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        match sys::fork() {
            Ok(ForkResult::Parent { child }) => made.push(child),
            Ok(ForkResult::Child) => {
                preamble(parent, pdeathsig);
                body();
                sys::exit_now(0)
            }
            Err(e) => return (made, Some(e)),
        }
    }
    (made, None)
}

/// In a fresh kit child (async-signal-safe calls only): drop undead's
/// descriptors (a client must see EOF, `/dev/fuse` must not be pinned),
/// die with undead (PR_SET_PDEATHSIG, checked against the race with its
/// death), default dispositions and an empty mask: the child inherits
/// undead's all-blocked mask, which would hide what each kind shows.
fn preamble(parent: Pid, pdeathsig: bool) {
    let _ = sys::close_all_except(&mut [0, 1, 2]);
    if pdeathsig {
        sys::die_with_parent(parent);
    }
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            let _ = sys::default_signal(sig);
        }
    }
    let _ = sys::set_mask(SigmaskHow::SIG_SETMASK, &SigSet::empty());
}

/// Whether `pid` has named itself `comm` (its setup is done).
pub fn named(pid: Pid, comm: &str) -> bool {
    crate::procfs::read_proc(pid).is_some_and(|p| p.comm == comm)
}
