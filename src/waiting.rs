//! `wait`: clients held until undead sees enough Z and D processes.
//!
//! A waiting client costs the init nothing while nothing happens: its
//! condition is checked after each wake-up (a reap, a kit operation
//! confirmed, a request), at its timeout, and every `RECHECK` for what no
//! event tells undead about (a grandchild turning Z or D signals its own
//! parent, not undead). The client used to ask for `status` every 10 ms.
//! The reply is `{"ok":true}`, or the timeout as an error.

use std::time::{Duration, Instant};

use crate::action::WaitFor;
use crate::event::ConnId;

/// How often the condition is checked with nothing else happening.
const RECHECK: Duration = Duration::from_millis(100);

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
    recheck_at: Option<Instant>,
}

impl Waiters {
    pub fn add(&mut self, conn: ConnId, want: WaitFor, now: Instant) {
        let until = now + want.timeout.min(MAX_HOLD);
        self.list.push(Waiter { conn, want, until });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The next timeout or recheck, while anyone waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let first = self.list.iter().map(|w| w.until).min()?;
        Some(self.recheck_at.map_or(first, |at| at.min(first)))
    }

    /// Given what is seen now (Z, D), the clients to answer: `Ok` when
    /// their condition holds, `Err` with why at their timeout.
    /// `of_kind`: how many of a hazard kind undead holds or shows.
    pub fn answer(
        &mut self,
        (zombies, dstate): (u64, u64),
        of_kind: impl Fn(&str) -> u64,
        now: Instant,
    ) -> Vec<(ConnId, Result<(), String>)> {
        let mut out = Vec::new();
        self.list.retain(|w| {
            let short: Vec<String> = w
                .want
                .kinds
                .iter()
                .filter(|(k, want)| of_kind(k) < *want)
                .map(|(k, want)| format!(", {} of {want} {k}", of_kind(k)))
                .collect();
            let met = zombies >= w.want.zombies
                && dstate >= w.want.dstate
                && short.is_empty();
            if met {
                out.push((w.conn, Ok(())));
            } else if now >= w.until {
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
        self.recheck_at = (!self.list.is_empty()).then(|| now + RECHECK);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_when_met_or_at_the_timeout() {
        let now = Instant::now();
        let mut w = Waiters::default();
        let want = |zombies, timeout| WaitFor {
            zombies,
            dstate: 0,
            timeout: Duration::from_millis(timeout),
            kinds: Vec::new(),
        };
        w.add(ConnId(1), want(2, 1000), now);
        w.add(ConnId(2), want(9, 50), now);
        assert!(w.answer((1, 0), |_| 0, now).is_empty());
        assert_eq!(w.next_deadline(), Some(now + Duration::from_millis(50)));
        let got = w.answer((2, 0), |_| 0, now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, ConnId(1));
        let late = now + Duration::from_millis(50);
        let got = w.answer((2, 0), |_| 0, late);
        assert!(got[0].1.as_ref().is_err_and(|e| e.contains("2 of 9")));
        assert!(w.is_empty() && w.next_deadline().is_none());
    }
}
