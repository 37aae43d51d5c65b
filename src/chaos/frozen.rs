//! `frozen N [--unbounded]`: N processes in a cgroup that undead makes
//! under its own and freezes (runc#2105, runc#3134, containerd#8102: a
//! frozen sub-cgroup blocks kill; crun's own test freezes init in a v1
//! freezer to simulate a stuck delete).
//!
//! cgroup v1: the victims are D with SIGKILL pending but not acted on
//! until thawed. Nothing inside the PID namespace can thaw them once
//! undead is gone (the kernel waits for them forever when PID 1 exits,
//! `zap_pid_ns_processes`), so v1 is refused without `--unbounded`; on the
//! host `undead rescue` thaws them. cgroup v2: the victims show S and die
//! on SIGKILL; the cgroup stays populated until they do.
//!
//! Release: SIGKILL, thaw, and once the cgroup is empty (the victims'
//! exit leaves it, the zombies are reaped by the kit) rmdir.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cgroup::{self, Cgroup, Version};
use crate::procfs;
use crate::sys;

/// The frozen cgroup and its victims.
#[derive(Debug)]
pub struct Frozen {
    pub cgroup: Cgroup,
    pub pids: Vec<Pid>,
}

/// Why `frozen` made nothing or fewer than asked.
pub enum Refusal {
    /// Usage-like: a one-line reason.
    Refused(String),
    /// A syscall failed after `made` victims.
    Failed(&'static str, Errno),
}

static SEQ: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(0);

/// Make the cgroup, fork `n` victims into it, freeze it; `Err` once
/// nothing could be made.
pub fn spawn(
    n: usize,
    unbounded: bool,
) -> Result<(Frozen, Option<Errno>), Refusal> {
    let (version, base) = cgroup::find_base().map_err(Refusal::Refused)?;
    if version == Version::V1 && !unbounded {
        return Err(Refusal::Refused(
            "frozen on cgroup v1 outlives undead (nothing in the container \
             can thaw it): pass --unbounded, and thaw with `undead rescue` \
             on the host"
                .into(),
        ));
    }
    let ns = procfs::pid_namespace();
    let ns: String = ns.chars().filter(char::is_ascii_digit).collect();
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let me = nix::unistd::getpid();
    let name = format!("{}{ns}-{me}-{seq}", cgroup::PREFIX);
    let cg = Cgroup::create(version, &base, &name)
        .map_err(|e| Refusal::Failed("mkdir cgroup", e))?;
    let (pids, errno) = super::fork::spawn_each(n, true, &|| {
        sys::set_comm(c"undead-frozen");
        sys::pause_forever()
    });
    // Frozen before its preamble, a victim would keep undead's
    // descriptors (the control socket, /dev/fuse) for as long as it is.
    let named = |p| super::fork::named(p, "undead-frozen");
    super::settle(&pids, Duration::from_secs(3), named);
    let mut frozen = Frozen { cgroup: cg, pids };
    let moved = frozen.pids.iter().try_for_each(|&p| frozen.cgroup.add(p));
    if let Err(e) = moved.and_then(|()| frozen.cgroup.freeze()) {
        frozen.release(Duration::from_secs(3));
        return Err(Refusal::Failed("freeze cgroup", e));
    }
    Ok((frozen, errno))
}

impl Frozen {
    /// The promised state: the freeze complete, every victim named and,
    /// on v1, D.
    pub fn ready(&self) -> bool {
        self.cgroup.is_frozen()
            && self.pids.iter().all(|&p| match self.cgroup.version {
                Version::V1 => procfs::state_of(p) == Some('D'),
                Version::V2 => true,
            })
    }

    /// SIGKILL, thaw, wait (at most `wait`) until the cgroup is empty,
    /// rmdir. Returns the victims; the caller reaps them.
    pub fn release(&mut self, wait: Duration) -> Vec<Pid> {
        for &p in &self.pids {
            let _ = kill(p, Signal::SIGKILL);
        }
        let _ = self.cgroup.thaw();
        let deadline = Instant::now() + wait;
        while self.cgroup.remove().is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::mem::take(&mut self.pids)
    }
}

impl Drop for Frozen {
    /// Last line of defence: never leave a frozen cgroup behind by
    /// accident (the explicit `release` has emptied `pids`).
    fn drop(&mut self) {
        if !self.pids.is_empty() {
            self.release(Duration::from_secs(1));
        }
    }
}
