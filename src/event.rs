//! What wakes the init: the events its one wait returns, in the order the
//! loop applies them, and the shape every event source has.
//!
//! One wake-up yields, in this order: the signals read from the signalfd,
//! then what the kit's descriptors and timers produced, then the complete
//! control requests, then the init's own due deadline. So a signal that
//! arrived together with a request (a SIGTERM and a `zombie 3`, say) is
//! forwarded before the request runs.

use std::os::fd::BorrowedFd;
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

/// A source of events besides the signalfd (the control server, the
/// kit): the descriptors to watch, when it next needs the loop without
/// any descriptor being ready, and the never-blocking work to do when
/// either happens.
pub trait Source {
    type Event;
    /// The descriptors the wait must watch for input.
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// The descriptors the wait must watch for room to write.
    fn writable_fds(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }
    /// When `service` must run even if no descriptor is ready.
    fn next_deadline(&self) -> Option<Instant>;
    /// Do what is ready or due at `now`, without waiting for input (the
    /// kit's releases still wait, bounded, until their processes are
    /// gone).
    fn service(&mut self, now: Instant) -> Vec<Self::Event>;
}
