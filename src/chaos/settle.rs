//! "Observably in the promised state": the one bounded wait behind every
//! creation of the kit (Z, D, T in /proc, a name, a mask …).

use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::OBSERVE;
use crate::procfs;

/// Wait until every pid shows `state` in /proc (at most `OBSERVE`);
/// returns those that do. A process that is gone or dead (Z, X) never
/// will, so it is not waited for: a vfork holder whose clone failed at
/// `pids.max` exits, and must not hold the verb for the whole bound.
pub(super) fn await_state(pids: Vec<Pid>, state: char) -> Vec<Pid> {
    settle(&pids, OBSERVE, |p| {
        procfs::state_of(p)
            .is_none_or(|s| s == state || matches!(s, 'Z' | 'X'))
    });
    pids.into_iter().filter(|&p| procfs::state_of(p) == Some(state)).collect()
}

/// Wait (at most `OBSERVE`) until each pid shows `comm` in /proc. A
/// stalled child names itself only once it runs, which may be after its
/// holder already shows D; naming itself is its last step before it
/// stalls, so the name also means its pdeathsig is armed.
pub(super) fn await_comm(pids: &[Pid], comm: &str) {
    settle(pids, OBSERVE, |p| {
        procfs::read_proc(p).is_none_or(|q| q.comm == comm)
    });
}

/// Poll `done` over `pids` (every 50 µs, at most `wait`) until it holds for
/// all; returns those for which it never did. The one bounded wait behind
/// every "observably in the promised state" of the kit.
pub(crate) fn settle(
    pids: &[Pid],
    wait: Duration,
    done: impl Fn(Pid) -> bool,
) -> Vec<Pid> {
    let deadline = Instant::now() + wait;
    let mut pending = pids.to_vec();
    loop {
        pending.retain(|&p| !done(p));
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}
