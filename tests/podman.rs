//! Podman (4.3, runc, cgroupfs) with a store of its own: undead as
//! `--init-path`, as ENTRYPOINT with the kit over `podman exec`, and as
//! a pod's infra container. Driven by engines/scenarios/podman_run.py,
//! which checks its facts and prints `RESULT {json}` (times in ms); the
//! test re-checks the headline facts from it.
//!
//! Skipped, with the reason printed, only where podman, runc or the venv
//! (engines/setup.sh) is missing: CI installs them.

use std::time::Duration;

use crate::cri::{Scenario, scenario};

const LIMIT: Duration = Duration::from_secs(240);

fn podman(test: &str, which: &str) -> Option<Scenario> {
    scenario(test, "podman_run", &["--scenario", which], LIMIT)
}

#[test]
fn podman_init_path_exit_codes_signals_and_stop() {
    let Some(s) =
        podman("podman_init_path_exit_codes_signals_and_stop", "init")
    else {
        return;
    };
    // undead turns podman stop's SIGTERM into the command's exit at
    // once; the control (no init) spends the whole 2 s grace period.
    assert!(s.call_ms("podman stop") < 10_000);
    assert!(s.call_ms("podman stop (no init, -t 2)") >= 2_000);
}

/// `podman exec CONTAINER /undead VERB` raises the hazard; `podman stop`
/// comes back at once with 143 and undead's report says what it released.
fn kit(test: &str, hazard: &str, n: usize) {
    let Some(s) = podman(test, hazard) else {
        return;
    };
    assert_eq!(s.num(&["exec", "exit_code"]), Some(0));
    let made = s.at(&["exec", "stdout"]).as_str().unwrap_or("");
    assert_eq!(made.split_whitespace().count(), n, "{made:?}");
    assert!(s.call_ms("podman stop") < 10_000);
    assert_eq!(s.num(&["report", "exit_code"]), Some(143));
}

#[test]
fn podman_entrypoint_kit_zombies() {
    kit("podman_entrypoint_kit_zombies", "zombie", 3);
}

#[test]
fn podman_entrypoint_kit_vfork_dstate() {
    kit("podman_entrypoint_kit_vfork_dstate", "vfork", 2);
}

#[test]
fn podman_entrypoint_kit_fuse_dstate() {
    let _serial = crate::fuse::serial();
    kit("podman_entrypoint_kit_fuse_dstate", "fuse", 2);
}

/// A pod whose infra container is undead's pause image, sharing the PID
/// namespace: the infra is PID 1 of the pod and reaps the app's orphans.
#[test]
fn podman_pod_with_undead_as_infra() {
    let Some(s) = podman("podman_pod_with_undead_as_infra", "pod") else {
        return;
    };
    assert!(s.call_ms("podman pod stop") < 10_000);
    assert!(s.call_ms("podman pod rm") < 10_000);
    // undead --pause exits 0 on the TERM of `podman pod stop`.
    assert_eq!(s.num(&["exit_codes", "infra"]), Some(0));
}
