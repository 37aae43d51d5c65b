//! What wakes the init: the events its one wait returns, in the order the
//! loop applies them (every event source has the shape of `source.rs`).
//!
//! One wake-up yields, in this order: the signals read from the signalfd,
//! then what the kit's descriptors and timers produced, then the complete
//! control requests, then the init's own due deadline. So a signal that
//! arrived together with a request (a SIGTERM and a `zombie 3`, say) is
//! forwarded before the request runs.

use std::time::Instant;

use nix::unistd::Pid;

use crate::action::Action;
use crate::chaos::{Created, OpId};
use crate::signals::Received;

/// One control connection, from accept to reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(pub u64);

pub enum Event {
    /// A signal read from the signalfd (the control socket's own wake-up
    /// signal is not an event: it makes the server look for requests).
    Signal(Received),
    /// The kit released what reached `--release-after`.
    Expired(Vec<Pid>),
    /// A kit operation is finished: what a creation made, `None` for a
    /// release.
    Finished(OpId, Option<Created>),
    /// A complete control request, or why it cannot be one; the reply goes
    /// to its connection.
    Request(ConnId, Result<Action, String>),
    /// A deadline of the init itself (`--grace`, withholding) may be due.
    Deadline(Instant),
}
