//! The one vocabulary of things undead can be asked to do, whether the
//! request arrives as a signal (`signals::classify`) or over the control
//! socket (`control::parse`). `Init::apply` is the only executor.

use nix::sys::signal::Signal;

use crate::chaos::{ChaosCmd, Release};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do (a signal undead raised itself, or one `-r` drops).
    Ignore,
    /// Drain the reaper: SIGCHLD is a hint, never a count.
    Reap,
    /// Forward a signal to the child (or its group with `-g`).
    Forward(Signal),
    /// Forward a SIGTERM/SIGINT-class signal and start the `--grace` timer.
    Shutdown(Signal),
    /// Create processes of the undead kit.
    Chaos(ChaosCmd),
    /// Release what the kit holds.
    Release(Release),
    /// Report what undead holds and sees (`status`, `wait`).
    Snapshot,
}
