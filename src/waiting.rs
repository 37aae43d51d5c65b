//! `wait`: clients held until undead sees enough Z and D processes.
//!
//! After each wake-up (a reap, a kit operation confirmed, a request) a
//! waiting client's condition is first checked against what the kit
//! holds, which is exact and free: held zombies stay Z until undead reaps
//! them. Only a condition that needs more (D processes, zombies the kit
//! does not hold) needs a look at /proc, which costs what a walk of the
//! processes under undead costs (about 50-100 ms at 30 000 held zombies,
//! see README "Kit at scale"). Looks are spaced by `SPACING` times what
//! the last one cost (2% of a CPU) but come at least every `MAX_SPACING`
//! (so a costlier look takes more: 160 ms/s measured at 30 000 held),
//! are taken at once for a new client, at a client's timeout, and every
//! `RECHECK` (or the spacing, if longer) for what no event tells undead
//! about: a grandchild turning Z or D signals its own parent, not undead.
//! The reply is `{"ok":true}`, or the timeout as an error.

use std::time::{Duration, Instant};

use crate::action::WaitFor;
use crate::event::ConnId;

/// How often the condition is checked with nothing else happening.
const RECHECK: Duration = Duration::from_millis(100);

/// A look at /proc is at least this many times its own cost after the
/// last one.
const SPACING: u32 = 50;

/// Looks within this of each other are one.
const MIN_SPACING: Duration = Duration::from_millis(1);

/// However costly a look, one at least this often while a client waits
/// for what only /proc shows.
const MAX_SPACING: Duration = Duration::from_secs(1);

/// The most a client is held per request; its own `--timeout` may be
/// longer: it asks again.
pub const MAX_HOLD: Duration = Duration::from_secs(20);

struct Waiter {
    conn: ConnId,
    want: WaitFor,
    until: Instant,
}

/// The clients waiting.
#[derive(Default)]
pub struct Waiters {
    list: Vec<Waiter>,
    /// No look at /proc before this (but for a new client or a timeout).
    look_at: Option<Instant>,
    /// The next look with nothing else happening.
    recheck_at: Option<Instant>,
    /// What the last look saw (Z, D).
    last: Option<(u64, u64)>,
}

/// What the kit alone says: the zombies it holds (all Z) and how many of
/// a hazard kind it holds or shows.
pub struct Held<F: Fn(&str) -> u64> {
    pub zombies: u64,
    pub of_kind: F,
}

impl Waiters {
    pub fn add(&mut self, conn: ConnId, want: WaitFor, now: Instant) {
        let until = now + want.timeout.min(MAX_HOLD);
        self.list.push(Waiter { conn, want, until });
        self.look_at = None;
        self.last = None;
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The next timeout or recheck, while anyone waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let first = self.list.iter().map(|w| w.until).min()?;
        Some(self.recheck_at.map_or(first, |at| at.min(first)))
    }

    /// The clients to answer: `Ok` when their condition holds, `Err` with
    /// why at their timeout. `look` counts the Z and D processes under
    /// undead in /proc; it is called at most once, and only when needed.
    pub fn answer<F: Fn(&str) -> u64>(
        &mut self,
        held: &Held<F>,
        look: impl FnOnce() -> (u64, u64),
        now: Instant,
    ) -> Vec<(ConnId, Result<(), String>)> {
        // Each kind counted once per call (a hopper's count reads /proc).
        let mut counted: Vec<(&'static str, u64)> = Vec::new();
        for w in &self.list {
            for &(k, _) in &w.want.kinds {
                if !counted.iter().any(|(c, _)| *c == k) {
                    counted.push((k, (held.of_kind)(k)));
                }
            }
        }
        let of_kind = |k: &str| {
            counted.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n)
        };
        let short = |w: &Waiter| -> Vec<String> {
            w.want
                .kinds
                .iter()
                .filter(|(k, want)| of_kind(k) < *want)
                .map(|(k, want)| format!(", {} of {want} {k}", of_kind(k)))
                .collect()
        };
        let by_kit =
            |w: &Waiter| w.want.dstate == 0 && held.zombies >= w.want.zombies;
        // Kinds come from the kit only: /proc cannot make up for them.
        let needs_look = |w: &Waiter| !by_kit(w) && short(w).is_empty();
        let due = self.look_at.is_none_or(|at| now >= at);
        // A timeout is told what the last look saw, or a fresh one.
        let timed_out = self.list.iter().any(|w| now >= w.until);
        let wanted = self.list.iter().any(needs_look)
            || (timed_out && self.last.is_none());
        let seen = if due && wanted {
            let t0 = Instant::now();
            let seen = look();
            let spacing =
                (t0.elapsed() * SPACING).clamp(MIN_SPACING, MAX_SPACING);
            self.look_at = Some(now + spacing);
            self.recheck_at = Some(now + spacing.max(RECHECK));
            self.last = Some(seen);
            Some(seen)
        } else {
            None
        };
        let mut out = Vec::new();
        self.list.retain(|w| {
            let short = short(w);
            let met = short.is_empty()
                && (by_kit(w)
                    || seen.is_some_and(|(z, d)| {
                        z >= w.want.zombies && d >= w.want.dstate
                    }));
            if met {
                out.push((w.conn, Ok(())));
            } else if now >= w.until {
                let (zombies, dstate) =
                    seen.or(self.last).unwrap_or((held.zombies, 0));
                out.push((
                    w.conn,
                    Err(format!(
                        "timed out: seen {zombies} of {} zombies, \
                         {dstate} of {} in D{}",
                        w.want.zombies,
                        w.want.dstate,
                        short.concat()
                    )),
                ));
            }
            !met && now < w.until
        });
        // Never a deadline already past: the loop would wake at once,
        // again and again.
        if self.list.is_empty() {
            self.recheck_at = None;
        } else if self.recheck_at.is_none_or(|at| at <= now) {
            let next = now + RECHECK;
            self.recheck_at =
                Some(self.look_at.map_or(next, |at| at.max(next)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(zombies: u64, dstate: u64, timeout: u64) -> WaitFor {
        WaitFor {
            zombies,
            dstate,
            timeout: Duration::from_millis(timeout),
            kinds: Vec::new(),
        }
    }

    fn held(zombies: u64) -> Held<impl Fn(&str) -> u64> {
        Held { zombies, of_kind: |_: &str| 0 }
    }

    #[test]
    fn answered_when_met_or_at_the_timeout() {
        let now = Instant::now();
        let mut w = Waiters::default();
        w.add(ConnId(1), want(2, 0, 1000), now);
        w.add(ConnId(2), want(9, 0, 50), now);
        assert!(w.answer(&held(1), || (1, 0), now).is_empty());
        assert_eq!(w.next_deadline(), Some(now + Duration::from_millis(50)));
        let got = w.answer(&held(2), || (2, 0), now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, ConnId(1));
        let late = now + Duration::from_millis(50);
        let got = w.answer(&held(2), || (2, 0), late);
        assert!(got[0].1.as_ref().is_err_and(|e| e.contains("2 of 9")));
        assert!(w.is_empty() && w.next_deadline().is_none());
    }

    /// What the kit holds answers without a look at /proc; D needs one,
    /// and looks are spaced.
    #[test]
    fn the_kit_answers_first_and_looks_are_spaced() {
        let now = Instant::now();
        let mut w = Waiters::default();
        w.add(ConnId(1), want(3, 0, 1000), now);
        let got = w.answer(&held(3), || panic!("looked"), now);
        assert_eq!(got.len(), 1);
        w.add(ConnId(2), want(0, 1, 1000), now);
        let mut looks = 0;
        assert!(
            w.answer(
                &held(3),
                || {
                    looks += 1;
                    (3, 0)
                },
                now
            )
            .is_empty()
        );
        assert_eq!(looks, 1);
        // Right after: not due (spacing), so no look.
        assert!(w.answer(&held(3), || panic!("looked"), now).is_empty());
        let later = now + RECHECK;
        let got = w.answer(&held(3), || (3, 1), later);
        assert_eq!(got.len(), 1);
    }

    /// A client waiting for a kind the kit does not hold yet needs no look
    /// at /proc, and its deadline must still move on: one left in the past
    /// would wake the loop at once, forever.
    #[test]
    fn no_deadline_left_in_the_past() {
        let now = Instant::now();
        let mut w = Waiters::default();
        let mut want = want(0, 0, 10_000);
        want.kinds.push(("hopper", 3));
        w.add(ConnId(1), want, now);
        let two = Held { zombies: 0, of_kind: |_: &str| 2 };
        let mut t = now;
        for _ in 0..5 {
            assert!(w.answer(&two, || (0, 0), t).is_empty());
            let next = w.next_deadline().expect("a deadline");
            assert!(next > t, "deadline {next:?} not after {t:?}");
            t = next;
        }
    }
}
