//! Drop-in for tini: the facts tini's own inner test suite checks
//! (krallin/tini `test/run_inner_tests.py`), encoded here so a change that
//! would fail it fails `cargo test` first. tini's suite counts init's
//! descendants and expects every one of them in the child's process group
//! (its reaping and process-group sections), greps `-w`'s words, and sends
//! `-g` signals to the child's group; undead keeps `undead-guard` behind
//! `--guard` and the child's own session behind `--setsid`.

use std::time::Duration;

use libc::{SIGKILL, SIGUSR1};

use crate::common::{
    KillOnDrop, Mode, Scratch, Stat, Undead, all_descendants, children_of,
    comm, command, exec, state, status_mask, wait_for,
};
use crate::{both_modes, check, eqnice};

const T: Duration = Duration::from_secs(10);

both_modes!(
    init_has_exactly_the_childs_tree,
    w_says_reaped_zombie_process_with_pid,
    child_session_without_a_terminal,
    pgroup_signal_reaches_the_grandchild,
);

/// (pgrp, session) of a process.
fn group_and_session(pid: i32) -> Option<(i64, i64)> {
    Stat::of(pid).map(|s| (i64::from(s.pgrp), i64::from(s.session)))
}

/// The child `sh` and its one grandchild `sleep`, once both are there.
fn child_and_grandchild(u: &Undead) -> (i32, i32) {
    let child = u.main_child("sh", T);
    let child = child.unwrap_or_else(|| u.fail("no child"));
    let grand = wait_for(T, || {
        children_of(child)
            .into_iter()
            .find(|&p| comm(p).as_deref() == Some("sleep"))
    });
    eqnice!(true, grand.is_some(), u);
    (child, grand.unwrap_or_default())
}

const TREE: [&str; 4] = ["--", "sh", "-c", "sleep 1000 & wait"];

/// tini's reaping and process-group sections: init's descendants are
/// exactly the child and what it started, all in the child's group. The
/// control: `--guard` (flag or UNDEAD_GUARD=1) adds `undead-guard` in
/// undead's own group in subreaper mode, which is what failed tini's suite.
fn init_has_exactly_the_childs_tree(mode: Mode) {
    for guard in [None, Some("flag"), Some("env")] {
        let mut args = vec!["--no-control"];
        if guard == Some("flag") {
            args.push("--guard");
        }
        args.extend(TREE);
        let u = Undead::start_with(mode, &args, |c| {
            if guard == Some("env") {
                c.env("UNDEAD_GUARD", "1");
            }
        });
        let (child, grand) = child_and_grandchild(&u);
        let mut tree = all_descendants(u.pid);
        tree.sort_unstable();
        let mut want = vec![child, grand];
        want.sort_unstable();
        let guarded = guard.is_some() && mode == Mode::Subreaper;
        if !guarded {
            eqnice!(want, tree, u);
            let pg = group_and_session(child).map(|g| g.0);
            for p in tree {
                eqnice!(pg, group_and_session(p).map(|g| g.0), u);
            }
            continue;
        }
        let extra: Vec<i32> =
            tree.into_iter().filter(|p| !want.contains(p)).collect();
        eqnice!(1, extra.len(), u);
        // (Named just after its fork: wait for the name.)
        let named = wait_for(T, || {
            (comm(extra[0]).as_deref() == Some("undead-guard")).then_some(())
        });
        eqnice!(Some(()), named, u);
        eqnice!(
            group_and_session(u.pid).map(|g| g.0),
            group_and_session(extra[0]).map(|g| g.0),
            u
        );
    }
}

/// The `--guard` trade-off, subreaper mode (as PID 1 the kernel kills the
/// namespace): a SIGKILLed undead always takes its child (parent-death
/// signal); the grandchild in the child's group dies too only with the
/// guard, and survives without it.
#[test]
fn guard_decides_whether_a_sigkilled_subreaper_takes_the_group() {
    for guard in [true, false] {
        let mut args = vec!["--no-control"];
        if guard {
            args.push("--guard");
        }
        args.extend(TREE);
        let mut u = Undead::start(Mode::Subreaper, &args);
        let (child, grand) = child_and_grandchild(&u);
        let _left = KillOnDrop::pids(&[child, grand]);
        eqnice!(
            group_and_session(child).map(|g| g.0),
            group_and_session(grand).map(|g| g.0),
            u
        );
        crate::common::kill(u.pid, SIGKILL);
        eqnice!(true, u.wait(T).is_some(), u);
        // Dead, or a zombie waiting for whoever inherited it.
        let gone = |p: i32| matches!(state(p), None | Some('Z'));
        let child_gone = wait_for(T, || gone(child).then_some(()));
        check!(u, child_gone.is_some(), "guard={guard}: child {child} lives");
        // With the guard: gone within the bound. Without: still there
        // after a while (the bound of the negative case is shorter).
        let limit = Duration::from_millis(if guard { 5000 } else { 500 });
        let grand_gone = wait_for(limit, || gone(grand).then_some(()));
        eqnice!(guard, grand_gone.is_some(), u, "grandchild {grand}");
    }
}

/// `-w` prints tini's words, once per orphan and never for the guard;
/// without `-w` nothing (tini's reaping display test and its control).
fn w_says_reaped_zombie_process_with_pid(mode: Mode) {
    for (w, guard) in [(true, false), (true, true), (false, false)] {
        let dir = Scratch::new("dropin-w");
        let f = dir.path("orphan");
        // One orphan that exits; the child waits until it is reaped.
        let body = format!(
            "(sleep 0 & echo $! > '{f}'); p=$(cat '{f}'); \
             while [ -e /proc/$p ]; do sleep 0.01; done; exit 0",
            f = f.display()
        );
        let mut args = vec!["--no-control"];
        args.extend(w.then_some("-w"));
        args.extend(guard.then_some("--guard"));
        args.extend(["--", "sh", "-c", &body]);
        let r = exec(command(mode).args(&args), None, T);
        assert_eq!(r.code, 0, "{mode:?} {args:?}: {r}");
        let err = r.stderr;
        let pid = std::fs::read_to_string(&f).unwrap_or_default();
        let lines: Vec<&str> =
            err.lines().filter(|l| l.contains("Reaped")).collect();
        let want =
            format!("undead: Reaped zombie process with pid={}", pid.trim());
        let want = if w { vec![want.as_str()] } else { vec![] };
        assert_eq!(want, lines, "{mode:?} {args:?}");
    }
}

/// Without a terminal too, the child leads a process group in undead's
/// session, as under tini (with one: tests/init.rs, TTY); `--setsid` or
/// UNDEAD_SETSID=1 give it a session of its own (dumb-init's default).
fn child_session_without_a_terminal(mode: Mode) {
    for how in ["default", "--setsid", "UNDEAD_SETSID=1"] {
        let mut args = vec!["--no-control"];
        if how.starts_with("--") {
            args.push(how);
        }
        args.extend(["--", "sleep", "1000"]);
        let u = Undead::start_with(mode, &args, |c| {
            if how == "UNDEAD_SETSID=1" {
                c.env("UNDEAD_SETSID", "1");
            }
        });
        let child = u.main_child("sleep", T);
        let child = child.unwrap_or_else(|| u.fail("no child"));
        let (pgrp, sid) = group_and_session(child).unwrap_or_default();
        let undead_sid = group_and_session(u.pid).map(|g| g.1);
        eqnice!(i64::from(child), pgrp, u);
        let want =
            if how == "default" { undead_sid } else { Some(i64::from(child)) };
        eqnice!(want, Some(sid), u);
        // Control: the two cases differ (undead is not itself the
        // child's session leader by accident).
        check!(
            u,
            undead_sid != Some(i64::from(child)),
            "undead leads {child}"
        );
    }
}

/// tini's process-group section: the child ignores USR1, its child does
/// not; `-g` (or TINI_KILL_PROCESS_GROUP) sends USR1 to undead, the group
/// gets it, the grandchild dies, the child's wait returns and undead exits
/// 0. Checked with the child in undead's session (the default) and in a
/// session of its own (`--setsid`). Control: without `-g` only the child
/// gets it, ignores it, and undead runs on.
fn pgroup_signal_reaches_the_grandchild(mode: Mode) {
    let body = "trap '' USR1; env --default-signal=USR1 sleep 1000 & \
                wait; exit 0";
    for session in [&[][..], &["--setsid"][..]] {
        for g in ["-g", "TINI_KILL_PROCESS_GROUP", "none"] {
            let mut args = vec!["--no-control"];
            args.extend(session);
            if g == "-g" {
                args.push(g);
            }
            args.extend(["--", "sh", "-c", body]);
            let mut u = Undead::start_with(mode, &args, |c| {
                if g == "TINI_KILL_PROCESS_GROUP" {
                    c.env(g, "1");
                }
            });
            let (child, grand) = child_and_grandchild(&u);
            let _left = KillOnDrop::pids(&[child, grand]);
            // The grandchild runs with USR1 at its default again.
            let caught = wait_for(T, || {
                let ign = status_mask(grand, "SigIgn")?;
                (ign & (1 << (SIGUSR1 - 1)) == 0).then_some(())
            });
            eqnice!(Some(()), caught, u);
            u.signal(SIGUSR1);
            if g == "none" {
                let code = u.wait(Duration::from_millis(500));
                eqnice!(None, code, u);
            } else {
                eqnice!(Some(0), u.wait(T), u);
            }
        }
    }
}
