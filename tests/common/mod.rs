//! Test harness: run the real undead binary as real PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`) or as a subreaper, and
//! observe it from the host's /proc. Waiting is bounded polling of a /proc
//! condition, never a bare sleep. `Undead` kills what it started on drop,
//! also when a test fails; a failure says expected vs got, then undead's
//! stderr and the process table under it.
//!
//! - `proc`: /proc readers (one `Stat` parser, `Ident`, the tree,
//!   `KillOnDrop`);
//! - `run`: `wait_for` and the one run-to-completion, `exec` (a `Ran`);
//! - `undead`: `Mode`, `both_modes!`, `Scratch`, `Undead`, `eqnice!`,
//!   `check!`;
//! - `cgroup`: `PidsCgroup`, a pids cgroup of the test's own;
//! - `control`: `Control`, one undead serving its control socket, and
//!   the client verbs against it;
//! - `engine`: the scratch image of the container-engine tests;
//! - `fusectl`: aborting a test's own stuck FUSE connections;
//! - `pty`: a pseudo-terminal.
#![allow(dead_code, unused_imports)]

pub mod cgroup;
pub mod control;
pub mod engine;
pub mod fusectl;
pub mod proc;
pub mod pty;
pub mod run;
pub mod undead;

use std::path::Path;
use std::time::Duration;

pub use cgroup::{FREEZER, PidsCgroup, ThawGuard, UNIFIED};
pub use control::Control;
pub use proc::{
    Ident, Kill, KillOnDrop, Stat, alive, all_descendants, all_pids,
    children_listed, children_of, comm, descendants, idents, kill, ns_pid,
    starttime, stat, stat_fields, state, status_field, status_mask, wchan,
};
pub use pty::Pty;

/// Taken by every test that holds thousands of pids at once (20 000
/// zombies, say): one at a time, they stay under the host's `pid_max`
/// (32 768 on the project's machines) with the rest of the suite running
/// beside them. Without it, two at once made other tests' forks fail with
/// EAGAIN.
pub fn many_pids() -> std::sync::MutexGuard<'static, ()> {
    static MANY_PIDS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MANY_PIDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub use run::{Ran, exec, exec_term, run_cmd, run_ran, wait_every, wait_for};
pub use undead::{
    BIN, Launch, MODES, Mode, Scratch, Undead, command, command_in, run,
};

/// The signals undead's kit processes ignore (a vfork holder, `deaf`
/// among more): those a runtime or a terminal sends to end a process.
pub const SHRUGGED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The lines of a file written by a fixture (empty if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Poll until the file has at least `n` lines; returns them.
pub fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    wait_for(timeout, || {
        let l = lines(path);
        (l.len() >= n).then_some(l)
    })
    .unwrap_or_else(|| lines(path))
}
