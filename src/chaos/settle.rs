//! A bounded wait inside one turn of the loop, left for what still needs
//! one (a frozen cgroup's victims naming themselves before the freeze);
//! the kit's creations are confirmed by the loop (`pending.rs`).

use std::time::{Duration, Instant};

use nix::unistd::Pid;

/// Poll `done` over `pids` (every 50 µs, at most `wait`) until it holds for
/// all; returns those for which it never did.
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
