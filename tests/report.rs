//! `--report`: the JSON teardown report undead writes on exit, checked
//! field by field against the README's schema, as PID 1 and as subreaper.

use std::time::Duration;

use crate::common::{Mode, Scratch, Undead, wait_for};
use crate::json::{self, Value};
use crate::{both_modes, eqnice};

const T: Duration = Duration::from_secs(10);

fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

both_modes!(report_describes_the_teardown);
fn report_describes_the_teardown(mode: Mode) {
    let dir = Scratch::new("report");
    let path = dir.path("report.json");
    let path_s = path.display().to_string();
    let sock = dir.sock();
    let script = "sleep 1000 & exec sleep 1000";
    let mut u = Undead::start(
        mode,
        &[
            "--report",
            &path_s,
            "--control",
            &sock,
            "--zombies",
            "2",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    // The child has exec'd its sleep and the background one runs.
    let two = wait_for(T, || {
        let sleeps = u
            .descendants()
            .into_iter()
            .filter(|&p| crate::common::comm(p).as_deref() == Some("sleep"))
            .count();
        (sleeps == 2).then_some(())
    });
    eqnice!(Some(()), two, u);
    u.signal(libc::SIGTERM);
    eqnice!(Some(143), u.wait(T), u);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let r = json::parse(text.trim()).unwrap_or(Value::Null);
    assert!(matches!(r, Value::Obj(_)), "{mode:?}: not JSON: {text:?}");
    assert_eq!(num(&r, "exit_code"), Some(143), "{text}");
    let child = r.get("child").unwrap();
    assert_eq!(num(child, "exit_code"), Some(143), "{text}");
    assert_eq!(child.get("signal").and_then(Value::as_str), Some("SIGTERM"));
    let signals: Vec<&str> = r
        .get("signals")
        .map(Value::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(|s| s.get("signal")?.as_str())
        .collect();
    assert!(signals.contains(&"SIGTERM"), "{text}");
    assert!(num(&r, "signals_total") >= Some(1), "{text}");
    let first = num(&r, "first_term_ms").unwrap();
    assert!(first <= num(&r, "duration_ms").unwrap(), "{text}");
    assert!(num(&r, "term_to_exit_ms").is_some(), "{text}");
    let held = r.get("held").map(Value::as_array).unwrap_or(&[]);
    let kinds: Vec<&str> =
        held.iter().filter_map(|h| h.get("kind")?.as_str()).collect();
    assert_eq!(kinds, ["zombie", "zombie"], "{text}");
    let held_pids: Vec<u64> =
        held.iter().filter_map(|h| num(h, "pid")).collect();
    let released: Vec<u64> = r
        .get("released")
        .map(Value::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(released, held_pids, "{text}");
    // The background sleep outlived the child: it is what remained.
    let remaining = r.get("remaining").map(Value::as_array).unwrap_or(&[]);
    let comms: Vec<&str> =
        remaining.iter().filter_map(|p| p.get("comm")?.as_str()).collect();
    assert_eq!(comms, ["sleep"], "{mode:?}: {text}");
    assert!(num(&r, "reaped").is_some(), "{text}");
    if mode == Mode::Pid1 {
        assert_eq!(num(&r, "undead_pid"), Some(1), "{text}");
    }
}

/// Negative control: without --report nothing is written.
#[test]
fn no_report_without_the_flag() {
    let dir = Scratch::new("noreport");
    let (code, _, err) =
        crate::common::run(Mode::Pid1, &["--no-control", "--", "true"], T);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_dir(&dir.0).unwrap().next().is_none());
    let path = dir.path("r.json").display().to_string();
    let (code, _, err) = crate::common::run(
        Mode::Subreaper,
        &["--no-control", "--report", &path, "--", "sh", "-c", "exit 4"],
        T,
    );
    assert_eq!(code, 4, "{err}");
    let r = json::parse(std::fs::read_to_string(&path).unwrap().trim());
    assert_eq!(r.map(|r| num(&r, "exit_code")), Ok(Some(4)));
}
