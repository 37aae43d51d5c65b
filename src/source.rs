//! The shape every event source besides the signalfd has (the control
//! server, the kit): what the one wait (`wait.rs`) watches for them and
//! when it calls them back.

use std::os::fd::BorrowedFd;
use std::time::Instant;

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
