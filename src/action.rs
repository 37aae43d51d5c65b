//! The one vocabulary of things undead can be asked to do, whether the
//! request arrives as a signal (`signals::classify`) or over the control
//! socket (`Request::into_action`). `Init::apply` is the only executor;
//! it returns a `Reply`, which `control.rs` encodes for the client.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::chaos::{ChaosCmd, Created, OpId, Release};
use crate::json::Value;

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
    /// Report what undead holds and, with `seen`, what it sees in /proc
    /// (`status`).
    Snapshot { seen: bool },
    /// Answer once enough Z and D processes are seen (`wait`).
    Wait(WaitFor),
}

/// What `Init::apply` did, for the client that asked (a signal's reply is
/// dropped). Encoded by `control::encode`.
#[derive(Debug)]
pub enum Reply {
    /// Done, nothing to report.
    Done,
    /// `Action::Chaos`: the processes made, or why creation stopped short.
    Raised(Created),
    /// `Action::Release`: the pids let go.
    Released(Vec<Pid>),
    /// `Action::Snapshot`: the `status` object (`status.rs`).
    Status(Value),
    /// The request was not executed: why.
    Refused(String),
    /// The kit answers when operation `OpId` is finished: with what it
    /// made (a creation), else with the reply kept here.
    Later(OpId, Box<Reply>),
}

/// What a `wait` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    pub zombies: u64,
    pub dstate: u64,
    /// At most `waiting::MAX_HOLD`.
    pub timeout: Duration,
    /// At least this many held (or shown unheld) of each hazard kind.
    pub kinds: Vec<(&'static str, u64)>,
}
