//! `deaf N` and `escapee N`: processes that ignore every catchable
//! termination signal (TERM, INT, HUP, QUIT, USR1, USR2, PIPE, ALRM: their
//! bits show in `/proc/PID/status` SigIgn), so only SIGKILL ends them, as
//! a server stuck in a loop that never reads its signals (podman#17888:
//! the runtime's grace period is all spent).
//!
//! An escapee also leaves undead's session (`setsid(2)`): its session and
//! process group are its own, so a process-group kill (`tini -g`,
//! dumb-init's default, `kill(-pgid)`) misses it (dumb-init#191,
//! containerd#4594). What saves us when undead is SIGKILLed:
//! PR_SET_PDEATHSIG(SIGKILL), which a new session does not reset.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{self, Pid};

use crate::procfs;
use crate::sys;

/// What a deaf process ignores.
const IGNORED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
];

/// TERM to USR2, what a stuck process typically shrugs off (the vfork
/// holder ignores these).
pub const SHRUGGED: &[Signal] = IGNORED.split_at(6).0;

/// The SigIgn bits of `IGNORED` (bit N-1 for signal N).
fn ignored_bits() -> u64 {
    IGNORED.iter().fold(0, |bits, &s| bits | 1 << (s as u32 - 1))
}

/// Fork `n` deaf processes; `escape`: each in a session of its own.
pub fn spawn(n: usize, escape: bool) -> (Vec<Pid>, Option<Errno>) {
    let comm = if escape { c"undead-escapee" } else { c"undead-deaf" };
    super::fork::spawn_each(n, true, &|| {
        if escape {
            let _ = unistd::setsid();
        }
        for sig in IGNORED {
            let _ = sys::ignore_signal(sig);
        }
        sys::set_comm(comm);
        sys::pause_forever()
    })
}

/// The promised state: the SigIgn bits, and for an escapee a session of
/// its own (session id = its pid, so neither undead's nor the child's).
pub fn ready(pid: Pid, escape: bool) -> bool {
    let bits = ignored_bits();
    let name = if escape { "undead-escapee" } else { "undead-deaf" };
    let deaf = super::fork::named(pid, name)
        && procfs::signal_mask(pid, "SigIgn")
            .is_some_and(|m| m & bits == bits);
    deaf && (!escape
        || procfs::group_and_session(pid).is_some_and(|(_, sid)| sid == pid))
}
