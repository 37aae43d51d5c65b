//! Zombies on purpose: children that exit at once and that nobody waits
//! for (`wait(2)`: a child that has terminated but has not been waited for
//! stays a zombie, Z in /proc).
//!
//! * Held by undead: clone children with exit signal 0, so undead's own
//!   `waitpid(-1)` drain never reaps them; released by `waitpid(pid,
//!   __WCLONE)`. They are made concurrently, each on a stack of its own
//!   (1 000 in about 30 ms here), and confirmed with `waitid(WNOWAIT)`.
//! * Under a holder (`--holder`, the stress-ng shape): a live process
//!   `undead-zholder` is their parent and never waits. Killing it makes the
//!   zombies orphans; the kernel reparents them to undead (PID 1 or
//!   subreaper) with exit signal SIGCHLD (`reparent_leader`), and the drain
//!   reaps them.
//!
//! What saves us when undead is SIGKILLed: as PID 1 the namespace dies;
//! as a subreaper, undead's zombies reparent to its own reaper, which reaps
//! them, and a holder has PR_SET_PDEATHSIG(SIGKILL).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{self, ForkResult, Pid};

use crate::sys;

/// Bytes of stack per concurrently created zombie: its whole life is two
/// libc calls.
const ZOMBIE_STACK: usize = 8 * 1024;

/// Make up to `n` zombies held by undead, all at once: each child runs on
/// a stack of its own, so undead forks the next while the last exits (on
/// the other core). Stops at the first failure (EAGAIN at `pids.max`).
/// Returns once every child made is a zombie (at most `wait`), with the
/// error that stopped it.
pub fn spawn_zombies(n: usize, wait: Duration) -> (Vec<Pid>, Option<Errno>) {
    let mut stacks = match sys::ZombieStacks::new(n, ZOMBIE_STACK) {
        Ok(stacks) => stacks,
        Err(e) => return (Vec::new(), Some(e)),
    };
    // Nothing sized by `n` up front: `n` may be large (up to pid_max).
    let mut made = Vec::new();
    let mut errno = None;
    for i in 0..n {
        match stacks.spawn_zombie(i) {
            Ok(pid) => made.push(pid),
            Err(e) => {
                errno = Some(e);
                break;
            }
        }
    }
    let zombies = await_zombies(&made, wait);
    if zombies.len() < made.len() {
        // A child may still run on its stack: never unmap it then.
        std::mem::forget(stacks);
    }
    (zombies, errno)
}

/// Those of `pids` that are zombies, polling until all are (at most
/// `wait`): `waitid(WNOWAIT | __WCLONE)` reports a clone child only once
/// it is a zombie, and leaves it one.
fn await_zombies(pids: &[Pid], wait: Duration) -> Vec<Pid> {
    let pending = super::settle(pids, wait, crate::reaper::is_zombie_clone);
    pids.iter().copied().filter(|p| !pending.contains(p)).collect()
}

/// A holder process and the zombies it made.
pub struct Holder {
    pub pid: Pid,
    pub zombies: Vec<Pid>,
}

/// Fork `undead-zholder`, which makes `n` zombies and then pauses without
/// ever waiting. Returns once the holder has said how many it made;
/// `Err` carries what was made when it fell short.
pub fn spawn_holder(
    n: usize,
    stack: &mut [u8],
) -> Result<Holder, (Option<Holder>, Errno)> {
    let (rd, wr) = unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| (None, e))?;
    let parent = unistd::getpid();
    let pid = match sys::fork() {
        Err(e) => return Err((None, e)),
        Ok(ForkResult::Child) => run_holder(n, stack, &wr, parent),
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(wr);
    let (made, errno) = read_report(&rd, pid);
    let zombies = children_in_state(pid, 'Z', made);
    let holder = Holder { pid, zombies };
    match errno {
        None if holder.zombies.len() == n => Ok(holder),
        None => Err((Some(holder), Errno::ETIMEDOUT)),
        Some(e) => Err((Some(holder), e)),
    }
}

/// The holder's side; never returns. Async-signal-safe syscalls only.
fn run_holder(n: usize, stack: &mut [u8], report: &OwnedFd, parent: Pid) -> ! {
    sys::set_comm(c"undead-zholder");
    let _ = sys::close_all_except(&mut [0, 1, 2, report.as_raw_fd()]);
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    if unistd::getppid() != parent {
        sys::exit_now(1);
    }
    let mut made: u32 = 0;
    let mut errno: i32 = 0;
    for _ in 0..n {
        match sys::spawn_instant_zombie(stack, c"undead-zombie") {
            Ok(_) => made += 1,
            Err(e) => {
                errno = e as i32;
                break;
            }
        }
    }
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&made.to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    let _ = unistd::write(report, &msg);
    // A live parent that never waits: default dispositions, so TERM ends it
    // like any ordinary stuck parent.
    let _ = sys::set_mask(SigmaskHow::SIG_SETMASK, &SigSet::empty());
    sys::pause_forever()
}

/// Read the holder's "made, errno" message, at most 5 s.
fn read_report(rd: &OwnedFd, holder: Pid) -> (usize, Option<Errno>) {
    let mut fds = [PollFd::new(rd.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(5_000u16));
    let mut msg = [0u8; 8];
    match unistd::read(rd, &mut msg) {
        Ok(8) => {
            let made = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
            let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
            (made as usize, (errno != 0).then(|| Errno::from_raw(errno)))
        }
        _ => {
            crate::log::error!("zombie holder {holder} did not report");
            (0, Some(Errno::EIO))
        }
    }
}

/// Children of `parent` in state `state`, polling until `want` are seen
/// (at most 2 s).
fn children_in_state(parent: Pid, state: char, want: usize) -> Vec<Pid> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found: Vec<Pid> = crate::procfs::children(parent)
            .unwrap_or_default()
            .into_iter()
            .filter(|&p| crate::procfs::state_of(p) == Some(state))
            .collect();
        if found.len() >= want || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
