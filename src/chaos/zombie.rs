//! Zombies on purpose: children that exit at once and that nobody waits
//! for (`wait(2)`: a child that has terminated but has not been waited for
//! stays a zombie, Z in /proc).
//!
//! * Held by undead: clone children with exit signal 0, so undead's own
//!   `waitpid(-1)` drain never reaps them; released by `waitpid(pid,
//!   __WCLONE)`. They are made concurrently, each on a stack of its own
//!   (1 000 in about 30 ms here; `pending.rs` forks them a slice at a
//!   time), and confirmed with `waitid(WNOWAIT)`.
//! * Under a holder (`--holder`, the stress-ng shape): a live process
//!   `undead-zholder` is their parent and never waits. Killing it makes the
//!   zombies orphans; the kernel reparents them to undead (PID 1 or
//!   subreaper) with exit signal SIGCHLD (`reparent_leader`), and the drain
//!   reaps them.
//!
//! What saves us when undead is SIGKILLed: as PID 1 the namespace dies;
//! as a subreaper, undead's zombies reparent to its own reaper, which reaps
//! them, and a holder has PR_SET_PDEATHSIG(SIGKILL).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{self, ForkResult, Pid};

use super::pending::Check;
use crate::procfs;
use crate::sys;

/// How long a holder may take to say how many zombies it made.
const REPORT_LIMIT: Duration = Duration::from_secs(5);

/// A holder process and the zombies it made.
pub struct Holder {
    pub pid: Pid,
    pub zombies: Vec<Pid>,
    /// How many it said it made: confirmed once that many are Z.
    pub want: usize,
}

/// A holder forked, its "made, errno" report not read yet.
pub struct Reporting {
    pid: Pid,
    rd: OwnedFd,
    until: Instant,
}

/// Fork `undead-zholder`, which makes `n` zombies, reports how many, and
/// then pauses without ever waiting.
pub fn start_holder(n: usize, stack: &mut [u8]) -> Result<Reporting, Errno> {
    let (rd, wr) = unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let parent = unistd::getpid();
    let pid = match sys::fork()? {
        ForkResult::Child => run_holder(n, stack, &wr, parent),
        ForkResult::Parent { child } => child,
    };
    Ok(Reporting { pid, rd, until: Instant::now() + REPORT_LIMIT })
}

impl Reporting {
    /// The holder and the error that stopped it, once it has reported
    /// (or given up on: it died, or took too long). Never blocks.
    pub fn poll(&mut self) -> Option<(Holder, Option<Errno>)> {
        let mut msg = [0u8; 8];
        let (want, errno) = match unistd::read(&self.rd, &mut msg) {
            Ok(8) => {
                let made =
                    u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
                let e = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
                (made as usize, (e != 0).then(|| Errno::from_raw(e)))
            }
            Err(Errno::EAGAIN) if Instant::now() < self.until => return None,
            _ => {
                crate::log::error!(
                    "zombie holder {} did not report",
                    self.pid
                );
                (0, Some(Errno::EIO))
            }
        };
        let holder = Holder { pid: self.pid, zombies: Vec::new(), want };
        Some((holder, errno))
    }
}

/// Whether the holder shows all the zombies it made (Z children).
pub fn check_holder(h: &mut Holder) -> Check {
    if procfs::state_of(h.pid).is_none_or(|s| matches!(s, 'Z' | 'X')) {
        return Check::Failed;
    }
    h.zombies = procfs::children(h.pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| procfs::state_of(p) == Some('Z'))
        .collect();
    if h.zombies.len() >= h.want { Check::Ready } else { Check::NotYet }
}

/// The holder's side; never returns. Async-signal-safe syscalls, plus
/// the one allocation of `sys::spawn_instant_zombie` (sound because undead
/// is single-threaded, see `sys`).
fn run_holder(n: usize, stack: &mut [u8], report: &OwnedFd, parent: Pid) -> ! {
    sys::set_comm(c"undead-zholder");
    let _ = sys::close_all_except(&mut [0, 1, 2, report.as_raw_fd()]);
    sys::die_with_parent(parent);
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
