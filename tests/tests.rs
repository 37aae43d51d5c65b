//! One integration-test crate: every module drives the real undead binary,
//! as real PID 1 of a fresh PID namespace and as a subreaper.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

/// The init core: exit codes, signals, reaping, stdio/argv/env, TTY.
mod init;

/// The undead kit I: zombies, withheld reaping, vfork D state, control socket.
mod kit;
