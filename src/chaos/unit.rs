//! A unit of holding: what the kit makes, holds and releases together
//! (a zombie, a holder and its zombies, a vfork holder and its stalled
//! child, a FUSE connection and its victims), and what each kind says of
//! itself: its processes, whether it is in state yet, how to let it go.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::pending::Check;
use super::{fuse, hazard, vfork, zombie};
use crate::reaper;

/// One unit of holding: released together.
pub enum Unit {
    /// A clone-child zombie of undead.
    Zombie(Pid),
    /// `undead-zholder` and its zombies.
    Holder(zombie::Holder),
    /// `undead-vfork` in D and its `undead-vstall` child.
    Vfork { holder: Pid, stall: Option<Pid> },
    /// A FUSE connection and its `undead-fuse` victims.
    Fuse(fuse::FuseHold),
    /// A hazard of SPEC §3.4.
    Hazard(hazard::Holding),
}

impl Unit {
    pub fn procs(&self) -> Vec<(Pid, &'static str)> {
        match self {
            Unit::Zombie(pid) => vec![(*pid, "zombie")],
            Unit::Holder(h) => std::iter::once((h.pid, "zombie-holder"))
                .chain(h.zombies.iter().map(|&z| (z, "zombie")))
                .collect(),
            Unit::Vfork { holder, stall } => {
                std::iter::once((*holder, "vfork"))
                    .chain(stall.iter().map(|&s| (s, "vfork-stall")))
                    .collect()
            }
            Unit::Fuse(hold) => {
                hold.victims().iter().map(|&v| (v, "fuse")).collect()
            }
            Unit::Hazard(h) => {
                h.pids().into_iter().map(|p| (p, h.kind().name())).collect()
            }
        }
    }

    /// Whether the holding goes on now that the init's drain reaped
    /// `reaped` (sorted): not once its holder (or hazard process) is gone,
    /// whose pid may name another process by the next look; a FUSE hold
    /// while a victim is left; a holder's zombies the drain took (its
    /// holder was killed by someone else) are no longer listed.
    pub fn survives(&mut self, reaped: &[Pid]) -> bool {
        let gone = |p: &Pid| reaped.binary_search(p).is_ok();
        match self {
            Unit::Holder(h) => {
                h.zombies.retain(|z| !gone(z));
                !gone(&h.pid)
            }
            Unit::Vfork { holder, .. } => !gone(holder),
            Unit::Hazard(h) => !h.reaped(reaped),
            Unit::Zombie(_) => true,
            Unit::Fuse(hold) => hold.forget(reaped),
        }
    }

    /// Whether a unit being created is observably in its state.
    pub fn check(&mut self) -> Check {
        match self {
            Unit::Zombie(pid) if reaper::is_zombie_clone(*pid) => Check::Ready,
            Unit::Zombie(_) => Check::NotYet,
            Unit::Holder(h) => zombie::check_holder(h),
            Unit::Vfork { holder, stall } => vfork::check(*holder, stall),
            Unit::Hazard(h) => h.check(),
            Unit::Fuse(hold) => match hold.check() {
                Ok(true) => Check::Ready,
                Ok(false) => Check::NotYet,
                Err(e) => {
                    crate::log::error!("fuse victims: {e}");
                    Check::Failed
                }
            },
        }
    }

    /// The pids a creation reply lists: the holder first, then the
    /// zombies it holds; a vfork holder without its stalled child.
    pub fn reported(&self) -> Vec<Pid> {
        match self {
            Unit::Fuse(hold) => hold.victims().to_vec(),
            Unit::Hazard(h) => h.pids(),
            Unit::Holder(h) => {
                std::iter::once(h.pid).chain(h.zombies.clone()).collect()
            }
            other => other.procs().into_iter().take(1).map(|p| p.0).collect(),
        }
    }

    /// How many of what was asked for this unit is.
    pub fn made(&self) -> usize {
        match self {
            Unit::Holder(h) => h.zombies.len(),
            Unit::Fuse(hold) => hold.victims().len(),
            Unit::Hazard(h) => h.made(),
            _ => 1,
        }
    }

    /// Release: reap held zombies, SIGKILL holders and stalled children,
    /// answer FUSE victims with errors (the connection goes to `fuse`,
    /// served until its victims are gone); what must still die goes to
    /// `dying`, which the kit reaps by pid.
    ///
    /// The kit reaps what it releases itself rather than leaving it to the
    /// init's drain: under `--withhold-reaping` the drain leaves every
    /// process but the main child in Z, and the kit's own processes are
    /// not the orphans withholding is about. A holder is undead's child;
    /// its stalled child and its zombies become undead's children when it
    /// dies (the kernel reparents them to the reaper,
    /// `forget_original_parent`), so each is reaped once it is a zombie
    /// whose parent is undead.
    pub fn let_go(self, dying: &mut Vec<Pid>, fuse: &mut Vec<fuse::FuseHold>) {
        // kill() can fail only with ESRCH here (a process already gone).
        match self {
            Unit::Zombie(pid) => {
                reaper::reap_pid(pid, true);
            }
            Unit::Holder(h) => {
                let _ = kill(h.pid, Signal::SIGKILL);
                dying.push(h.pid);
                dying.extend(h.zombies);
            }
            Unit::Vfork { holder, stall } => {
                // Killing the stalled child completes the vfork; the
                // holder then exits by itself. Without it, kill the
                // holder.
                let _ = kill(stall.unwrap_or(holder), Signal::SIGKILL);
                dying.push(holder);
                dying.extend(stall);
            }
            Unit::Fuse(mut hold) => {
                hold.release();
                dying.extend(hold.victims());
                fuse.push(hold);
            }
            Unit::Hazard(h) => dying.extend(h.release(super::OBSERVE)),
        }
    }
}
