//! Which units a release takes: `release all|KIND...|PID...` (KIND:
//! `zombies`, `dstate` or a hazard kind), `--release-after` and undead's
//! exit. Never an `--unheld` one: those are the workload's, ended by the
//! stop sequence (SPEC §3.4).

use super::{Release, Unit};

impl Unit {
    pub(super) fn is_unheld(&self) -> bool {
        matches!(self, Unit::Hazard(h) if h.unheld())
    }

    /// Whether `release WHAT` takes this unit: never an `--unheld` one.
    pub(super) fn taken_by(&self, what: &Release) -> bool {
        !self.is_unheld()
            && match what {
                Release::All => true,
                Release::Kinds(kinds) => match self {
                    Unit::Zombie(_) | Unit::Holder(_) => kinds.zombies,
                    Unit::Vfork { .. } | Unit::Fuse(_) => kinds.dstate,
                    Unit::Hazard(h) => kinds.hazards.contains(&h.kind()),
                },
                Release::Pids(pids) => {
                    self.procs().iter().any(|(p, _)| pids.contains(p))
                }
            }
    }
}
