//! Kubernetes through its CRI: a private containerd (never Docker's) driven
//! with the calls kubelet makes, by the scenario scripts of engines/ (the
//! Python package the teardown scorecard shares). Each script checks its
//! facts and prints `RESULT {json}`; the test asserts it passed, re-checks
//! the headline facts from that JSON, and prints the measured times.
//!
//! Skipped, with the reason printed, only where containerd, runc or the
//! CRI client's venv (engines/setup.sh) is missing: CI installs them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{BIN, exec_term};
use crate::json::{self, Value};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Where engines/setup.sh makes the venv with grpcio and the CRI client.
const VENV_PYTHON: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/target/venv/bin/python");
/// The exit code of a scenario that cannot run here (engines/scenarios).
const SKIP: i32 = 77;

/// What a scenario script said, once it passed.
pub(crate) struct Scenario {
    pub result: Value,
    pub stderr: String,
}

impl Scenario {
    pub fn at(&self, path: &[&str]) -> &Value {
        path.iter()
            .try_fold(&self.result, |v, k| v.get(k))
            .unwrap_or(&Value::Null)
    }

    pub fn num(&self, path: &[&str]) -> Option<u64> {
        self.at(path).as_u64()
    }

    /// The milliseconds an engine call took (`calls.NAME.ms`).
    pub fn call_ms(&self, name: &str) -> u64 {
        self.num(&["calls", name, "ms"])
            .unwrap_or_else(|| panic!("no time for {name}: {:?}", self.result))
    }
}

/// Runs `python -m engines.scenarios.MODULE ARGS` with the venv's Python
/// (which has grpcio; podman scenarios fall back to the system python3).
/// None when it skipped (the reason is printed). Panics with everything it
/// said when it failed. On `limit` it gets SIGTERM first, so that its
/// cleanup (atexit) removes the engine's containers, then SIGKILL.
pub(crate) fn scenario(
    test: &str,
    module: &str,
    args: &[&str],
    limit: Duration,
) -> Option<Scenario> {
    // The podman scenarios need only the standard library.
    let python = if Path::new(VENV_PYTHON).exists() {
        VENV_PYTHON
    } else if module.starts_with("podman") {
        "python3"
    } else {
        eprintln!(
            "skipping {test}: {VENV_PYTHON} missing (run engines/setup.sh)"
        );
        return None;
    };
    let mut c = Command::new(python);
    c.args(["-m", &format!("engines.scenarios.{module}"), "--undead", BIN])
        .args(args)
        .current_dir(REPO)
        .env("PYTHONPATH", REPO)
        .env("PYTHONUNBUFFERED", "1");
    let r = exec_term(&mut c, None, limit, Duration::from_secs(90));
    let said = format!("{module} {args:?} -> {r}");
    let (code, stdout) = (Some(r.code).filter(|&c| c != -1), &r.stdout);
    assert!(code.is_some(), "not finished within {limit:?}: {said}");
    if code == Some(SKIP) {
        eprintln!("skipping {test}: {}", stdout.trim());
        return None;
    }
    assert_eq!(code, Some(0), "{said}");
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line: {said}"));
    let result = json::parse(line)
        .unwrap_or_else(|e| panic!("RESULT is not JSON ({e:?}): {said}"));
    eprintln!("{test}: {line}");
    Some(Scenario { result, stderr: r.stderr })
}

const LIMIT: Duration = Duration::from_secs(240);

fn pod(test: &str, scenario: &str, share_pid: bool) -> Option<Scenario> {
    let mut args = vec!["--scenario", scenario];
    if share_pid {
        args.push("--share-pid");
    }
    self::scenario(test, "cri_pod", &args, LIMIT)
}

/// The headline facts of a hazard pod, from the scenario's RESULT:
/// ExecSync made `n`, StopContainer came back well within the grace
/// period, and undead's report (read back from the container's log) says
/// it exited 143 after SIGTERM.
fn assert_clean_stop(s: &Scenario, n: usize) {
    assert_eq!(s.num(&["exec_sync", "exit_code"]), Some(0));
    let made = s.at(&["exec_sync", "stdout"]).as_str().unwrap_or("");
    assert_eq!(made.split_whitespace().count(), n, "{made:?}");
    let grace_ms = s.num(&["grace_s"]).unwrap() * 1000;
    assert!(s.call_ms("StopContainer") < grace_ms / 3);
    assert_eq!(s.num(&["report", "exit_code"]), Some(143));
    assert_eq!(s.at(&["report", "child", "signal"]).as_str(), Some("SIGTERM"));
    for call in ["StopPodSandbox", "RemovePodSandbox"] {
        assert!(s.call_ms(call) < 10_000, "{call}");
    }
}

#[test]
fn cri_pod_with_zombies() {
    for share_pid in [false, true] {
        let Some(s) = pod("cri_pod_with_zombies", "zombie", share_pid) else {
            return;
        };
        assert_clean_stop(&s, 3);
        if !share_pid {
            // The control: no init, so the whole 3 s grace is spent.
            let bare = s.call_ms("StopContainer (no init, grace 3 s)");
            assert!(bare >= 3_000, "{bare} ms");
        }
        // ExecSync passes a failing verb's code and its one line through.
        let why = s.at(&["exec_without_fuse"]).as_str().unwrap_or("");
        assert!(why.contains("/dev/fuse"), "{why}");
    }
}

#[test]
fn cri_pod_with_vfork_dstate() {
    for share_pid in [false, true] {
        let Some(s) = pod("cri_pod_with_vfork_dstate", "vfork", share_pid)
        else {
            return;
        };
        assert_clean_stop(&s, 2);
    }
}

#[test]
fn cri_pod_with_fuse_dstate() {
    let _serial = crate::fuse::serial();
    for share_pid in [false, true] {
        let Some(s) = pod("cri_pod_with_fuse_dstate", "fuse", share_pid)
        else {
            return;
        };
        assert_clean_stop(&s, 2);
    }
}

/// The pause sandbox is PID 1 of a pod that shares its PID namespace:
/// the orphans of every container land on it and it reaps them; with
/// `--withhold-reaping` it keeps them as zombies until the pod goes.
#[test]
fn cri_pause_sandbox_reaps_or_withholds_the_pods_orphans() {
    let t = "cri_pause_sandbox_reaps_or_withholds_the_pods_orphans";
    let Some(reaped) = pod(t, "reap", true) else {
        return;
    };
    assert_eq!(reaped.num(&["withheld"]), Some(0));
    let withheld = pod(t, "withhold", true).unwrap();
    assert_eq!(withheld.num(&["withheld"]), Some(3));
}

/// `dstate --kind fuse --outlive 15s`, then a forced deletion (grace 0,
/// so undead is SIGKILLed and cannot release them): the victims outlive
/// the container, StopContainer cannot complete while they live, and the
/// kernel's FUSE request timeout frees them 15-30 s after their request;
/// then the pod is removed and nothing is left.
#[test]
fn cri_fuse_outlive_holds_the_pod_until_the_kernel_bound() {
    let _serial = crate::fuse::serial();
    let t = "cri_fuse_outlive_holds_the_pod_until_the_kernel_bound";
    let Some(s) = pod(t, "outlive", false) else {
        return;
    };
    assert_eq!(s.num(&["victims_in_d_after_stop_container"]), Some(2));
    let gone = s.num(&["victims_gone_ms"]).unwrap();
    assert!((14_000..=45_000).contains(&gone), "gone after {gone} ms");
    assert!(s.stderr.is_empty() || !s.stderr.contains("FAILED"));
}

/// What a pod spec must give `dstate --kind fuse` under containerd:
/// SYS_ADMIN with a hostPath mount of /dev/fuse is not enough (the device
/// cgroup denies the open: EPERM, said in undead's one line); a
/// privileged container is (and /dev/fuse as a device is: the fuse test).
#[test]
fn cri_fuse_needs_the_device_not_a_hostpath_mount() {
    let _serial = crate::fuse::serial();
    let t = "cri_fuse_needs_the_device_not_a_hostpath_mount";
    let Some(s) = pod(t, "fuse-access", false) else {
        return;
    };
    assert_eq!(s.num(&["fuse_access", "hostpath", "exit_code"]), Some(1));
    assert_eq!(s.num(&["fuse_access", "privileged", "exit_code"]), Some(0));
}
