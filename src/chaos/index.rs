//! What the loop asks of the kit on every wake-up, kept ready: a held
//! process count, the held zombies' pids, the pids whose reaping changes a
//! holding, whether a FUSE connection is held, the oldest holding. Built
//! once after the holdings change (a creation, a release, a forget), so a
//! wake-up costs the same with 30 000 held zombies as with none.

use std::time::Instant;

use nix::unistd::Pid;

use super::unit::Unit;

#[derive(Default)]
pub struct Index {
    /// The held zombies (kind "zombie"), sorted: Z until undead (or
    /// their holder) reaps them, so they have no children to look for.
    pub zombies: Vec<Pid>,
    /// How many of each kind are held or shown unheld, but hazards.
    kinds: Vec<(&'static str, u64)>,
    /// Where the hazard holdings are in `units`: their processes change
    /// (a hopper's all the time), so they are counted when asked.
    pub hazards: Vec<usize>,
    /// Sorted pids whose reaping by the init's drain changes a holding
    /// (holders and their zombies, vfork holders, hazard processes, FUSE
    /// victims). Undead's own zombie clones are not among them: the drain
    /// never reaps those; a holder's zombies it does, once the holder was
    /// killed and they moved to undead.
    pub watched: Vec<Pid>,
    /// A FUSE connection is held (its descriptor is polled).
    pub fuse: bool,
    /// When the oldest holding that `--release-after` releases began.
    pub oldest: Option<Instant>,
}

impl Index {
    pub fn of(units: &[(Unit, Instant)]) -> Index {
        let mut ix = Index::default();
        for (i, (unit, since)) in units.iter().enumerate() {
            let procs = match unit {
                Unit::Hazard(super::hazard::Holding::Proc { pid, .. }) => {
                    ix.hazards.push(i);
                    ix.watched.push(*pid);
                    Vec::new()
                }
                Unit::Hazard(_) => {
                    ix.hazards.push(i);
                    Vec::new()
                }
                _ => unit.procs(),
            };
            for (pid, kind) in procs {
                match ix.kinds.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => ix.kinds.push((kind, 1)),
                }
                if kind == "zombie" {
                    ix.zombies.push(pid);
                }
                if !matches!(unit, Unit::Zombie(_)) {
                    ix.watched.push(pid);
                }
            }
            ix.fuse |= matches!(unit, Unit::Fuse(_));
            if !unit.is_unheld() {
                ix.oldest = Some(ix.oldest.map_or(*since, |o| o.min(*since)));
            }
        }
        ix.zombies.sort_unstable();
        ix.watched.sort_unstable();
        ix
    }

    /// How many of `kind` are held or shown, but hazards.
    pub fn count(&self, kind: &str) -> u64 {
        self.kinds.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
    }

    /// Whether any of `reaped` ends a holding.
    pub fn watches_any(&self, reaped: &[Pid]) -> bool {
        reaped.iter().any(|p| self.watched.binary_search(p).is_ok())
    }
}
