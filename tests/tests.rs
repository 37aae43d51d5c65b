//! One integration-test crate: every module drives the real undead binary,
//! as real PID 1 of a fresh PID namespace and as a subreaper.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

/// undead's own JSON reader, for replies, reports and manifests.
#[allow(dead_code)]
#[path = "../src/json.rs"]
mod json;

/// The init core: exit codes, signals, reaping, stdio/argv/env, TTY.
mod init;

/// The undead kit II: SIGKILL-immune D state over undead's own FUSE server.
mod fuse;

/// Docker and Kubernetes: the scratch image, the --init-path drop-in,
/// teardown on a real engine, manifests validated offline.
mod docker;

/// --report: the JSON teardown report.
mod report;

/// The undead kit I: zombies, withheld reaping, vfork D state, control socket.
mod kit;

/// The teardown scorecard: its Python unit tests and the --quick Docker run.
mod scorecard;

/// Kubernetes through its CRI: a private containerd driven as kubelet
/// drives it (engines/ scenarios).
mod cri;
/// Drop-in for tini: what tini's own test suite checks, as undead's tests.
mod dropin;
/// The loop: the order of events that arrive in one wake-up.
mod r#loop;

/// The undead kit III: stopped, deaf, slow, escapee, hopper, frozen,
/// dstate --cwd, and their teardown on Docker.
mod hazards;
/// Podman: --init-path, undead as ENTRYPOINT with the kit, pods with
/// undead as the infra container (engines/ scenarios).
mod podman;

/// Reliability: PID 1 never dies, blocks or lies; --pause; stop sequence.
mod reliability;

/// PID 1 never blocks: whole replies, EMFILE, crowds, `wait`, the kit.
mod blocking;
/// The seeded soak: random verbs, signals, orphans and bad clients, the
/// invariants checked from /proc after every step.
mod soak;
