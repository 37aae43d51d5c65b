//! The teardown scorecard (`scorecard/run`, issue 14): its own logic (the
//! Python unit tests under scorecard/) and its `--quick` subset on Docker.
//!
//! The quick run fails only when undead broke its own contract in a cell
//! (exit 1: TERM not forwarded, something held not released, undead's
//! processes outliving it), or when a cell could not be set up (exit 3);
//! an engine that is slow, gives up or leaks only shows in its table. It
//! takes the host-wide FUSE lock itself, per cell, so this test must not
//! hold `crate::fuse::serial()` (the same flock) while it runs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::engine::BUSYBOX;
use crate::common::{BIN, Scratch, exec};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Bound of a probe that should answer at once.
const PROBE: Duration = Duration::from_secs(20);

fn python_or_skip(test: &str) -> bool {
    let ok = exec(Command::new("python3").arg("--version"), None, PROBE).ok();
    if !ok {
        eprintln!("skipping {test}: no python3");
    }
    ok
}

/// verdicts, undead's contract, parsers, leftover detection in a real PID
/// namespace and cleanup after a failed cell.
#[test]
fn scorecard_unit_tests() {
    if !python_or_skip("scorecard_unit_tests") {
        return;
    }
    let mut c = Command::new("python3");
    c.current_dir(REPO).env("UNDEAD_BIN", BIN).args([
        "-m",
        "unittest",
        "discover",
        "scorecard",
    ]);
    let r = exec(&mut c, None, Duration::from_secs(180));
    assert_eq!(r.code, 0, "python3 -m unittest discover scorecard\n{r}");
    assert!(r.stderr.contains("OK"), "{r}");
}

fn docker_or_skip(test: &str) -> bool {
    if !python_or_skip(test) {
        return false;
    }
    let mut info = Command::new("docker");
    info.args(["info", "--format", "{{.ServerVersion}}"]);
    if !exec(&mut info, None, Duration::from_secs(120)).ok() {
        eprintln!("skipping {test}: `docker info` failed");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        eprintln!(
            "skipping {test}: {BUSYBOX} missing \
             (apt-get install busybox-static)"
        );
        return false;
    }
    true
}

/// Runs `scorecard/run --quick --undead BINARY --json ... EXTRA`: (exit
/// code, stdout, stderr, the JSON).
fn quick(
    tag: &str,
    binary: &str,
    extra: &[&str],
) -> (i32, String, String, String) {
    let dir = Scratch::new(&format!("scorecard-{tag}"));
    let json = dir.path("quick.json");
    let mut c = Command::new(Path::new(REPO).join("scorecard/run"));
    c.args(["--quick", "--undead", binary])
        .args(extra)
        .arg("--json")
        .arg(&json);
    let r = exec(&mut c, None, Duration::from_secs(300));
    eprintln!("scorecard --quick {extra:?} took {:?}", r.took);
    let report = std::fs::read_to_string(&json).unwrap_or_default();
    (r.code, r.stdout, r.stderr, report)
}

/// Negative control: an "init" that answers every verb with success but
/// does nothing (no TERM forwarding as PID 1, no report) must fail the
/// quick run with exit 1, although Docker itself behaves (it SIGKILLs after
/// the grace).
#[test]
fn scorecard_quick_fails_when_the_init_lies() {
    if !docker_or_skip("scorecard_quick_fails_when_the_init_lies") {
        return;
    }
    let dir = Scratch::new("scorecard-liar");
    let liar = dir.path("undead");
    std::fs::write(
        &liar,
        "#!/bin/sh\n\
         case \"$1\" in status|zombie|dstate|wait|release|ps|--version) \
         exit 0;; esac\n\
         while [ $# -gt 0 ] && [ \"$1\" != \"--\" ]; do shift; done\n\
         [ $# -gt 0 ] && shift\n\
         exec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&liar, std::fs::Permissions::from_mode(0o755))
        .unwrap();
    let liar = liar.display().to_string();
    let (code, out, err, _) = quick("liar", &liar, &["--only", "none"]);
    drop(dir);
    assert_eq!(code, 1, "the liar is caught\n{out}{err}");
    assert!(out.contains("UNDEAD: no teardown report"), "{out}");
}

#[test]
fn scorecard_quick_on_docker() {
    if !docker_or_skip("scorecard_quick_on_docker") {
        return;
    }
    let (code, out, err, report) = quick("real", BIN, &[]);
    eprintln!("{out}");
    assert_eq!(code, 0, "scorecard --quick\n{out}{err}");
    // Not vacuous: every quick cell ran and was judged.
    let cells = report.matches("\"verdict\":\"").count();
    assert_eq!(cells, 8, "8 quick cells in the JSON:\n{err}");
    assert!(!report.contains("\"verdict\":\"skipped\""), "{err}");
    assert!(!report.contains("\"verdict\":\"error\""), "{err}");
    assert!(out.contains("| 5 held zombies |"), "the table:\n{out}");
}
