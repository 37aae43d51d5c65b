//! The init core as PID 1 and as subreaper: exit status, forwarding,
//! reaping, signal state of the child, stdio/argv/env, TTY, teardown.
//!
//! Every test runs both legs of the matrix (`both_modes!`). Fixtures are
//! small `sh` scripts that `trap` signals and append what they got to a file
//! in a `Scratch` directory; the test polls that file. Negative controls are
//! ordered by signal number where possible: the kernel dequeues the lowest
//! pending standard signal first, so once a later, higher-numbered marker
//! signal is seen, an earlier one that was never logged never came.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use libc::{
    SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
    SIGWINCH,
};

use crate::common::{
    KillOnDrop, Launch, Mode, Pty, Scratch, Stat, Undead, alive, comm,
    command, command_in, descendants, kill, lines, run, run_cmd, stat,
    stat_fields, state, status_field, wait_for, wait_lines,
};
use crate::{both_modes, eqnice};

const T: Duration = Duration::from_secs(10);

/// An idle loop that keeps a `wait` running so traps fire at once (dash
/// runs a trap only between commands; `wait` returns early for a trapped
/// signal). The sleep is respawned if a group signal killed it.
const IDLE: &str = "P=; while :; do \
                    if [ -z \"$P\" ] || ! kill -0 $P 2>/dev/null; \
                    then sleep 1000 & P=$!; fi; wait $P; done";

/// A script that logs each of `sigs` (names without SIG) as a line of
/// `out`, writes `ready PID` first, then idles.
fn trapper(out: &Path, sigs: &[&str]) -> String {
    let mut s = format!("F='{}'\n", out.display());
    for sig in sigs {
        s.push_str(&format!("trap 'echo {sig} >> \"$F\"' {sig}\n"));
    }
    s.push_str("echo ready $$ >> \"$F\"\n");
    s.push_str(IDLE);
    s.push('\n');
    s
}

/// Alive and neither stopped nor a zombie.
fn running(pid: i32) -> bool {
    matches!(state(pid), Some('S' | 'R'))
}

/// Write a fixture script into the scratch dir; returns its path.
fn script(dir: &Scratch, name: &str, text: &str) -> String {
    let path = dir.path(name);
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn ready(u: &Undead, out: &Path) {
    let l = wait_lines(out, 1, T);
    eqnice!(true, l.first().is_some_and(|l| l.starts_with("ready")), u);
}

/// The logged lines after `ready`.
fn got(out: &Path) -> Vec<String> {
    lines(out).into_iter().skip(1).collect()
}

fn wait_got(out: &Path, n: usize) -> Vec<String> {
    wait_lines(out, n + 1, T).into_iter().skip(1).collect()
}

// ---------------------------------------------------------------- exits

both_modes!(exit_codes_pass_through);
fn exit_codes_pass_through(mode: Mode) {
    for code in [0, 1, 2, 3, 7, 42, 126, 127, 128, 129, 200, 254, 255] {
        let (got, _, err) =
            run(mode, &["--", "sh", "-c", &format!("exit {code}")], T);
        assert_eq!(got, code, "{mode:?} {err}");
        assert_eq!(err, "", "{mode:?}: undead must be silent");
    }
}

both_modes!(death_by_signal_is_128_plus_n);
fn death_by_signal_is_128_plus_n(mode: Mode) {
    for (name, n) in [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ABRT", 6),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("TERM", 15),
    ] {
        // `env --default-signal`: the child must not depend on how the
        // suite was started (a background job of a shell ignores INT and
        // QUIT, and undead passes dispositions on, as tini does).
        let cmd = format!("kill -{name} $$");
        let argv = ["--", "env", "--default-signal", "sh", "-c", &cmd];
        let (got, _, err) = run(mode, &argv, T);
        assert_eq!(got, 128 + n, "{mode:?} {name} {err}");
    }
    // Killed from outside, by a signal undead did not forward.
    let u = Undead::start(mode, &["--", "sleep", "1000"]);
    let mut u = u;
    let child = u.main_child("sleep", T).unwrap();
    kill(child, SIGKILL);
    let code = u.wait(T);
    eqnice!(Some(137), code, u);
}

both_modes!(remap_exit_reports_listed_codes_as_zero);
fn remap_exit_reports_listed_codes_as_zero(mode: Mode) {
    let cases: [(&[&str], &str, i32); 5] = [
        (&["-e", "3"], "exit 3", 0),
        (&["-e", "3"], "exit 4", 4),
        (&["-e", "4", "-e", "3"], "exit 3", 0),
        (&["-e", "143"], "kill -TERM $$", 0),
        (&["-e", "3"], "kill -TERM $$", 143),
    ];
    for (flags, body, want) in cases {
        let mut args = flags.to_vec();
        args.extend(["--", "sh", "-c", body]);
        let (code, _, err) = run(mode, &args, T);
        assert_eq!(code, want, "{mode:?} {args:?} {err}");
    }
}

both_modes!(usage_errors_exit_2_with_one_line);
fn usage_errors_exit_2_with_one_line(mode: Mode) {
    for args in [
        &["--bogus", "--", "true"][..],
        &[],
        &["--"],
        &["-p", "NOPE", "--", "true"],
        &["--grace", "soon", "--", "true"],
        &["-r", "TERM", "--", "true"],
        &["-e", "300", "--", "true"],
    ] {
        let (code, out, err) = run(mode, args, T);
        assert_eq!(code, 2, "{mode:?} {args:?} {err}");
        assert_eq!(out, "", "{mode:?} {args:?}");
        assert_eq!(err.lines().count(), 1, "{mode:?} {args:?}: {err:?}");
        assert!(err.starts_with("undead: "), "{mode:?} {args:?}: {err}");
    }
    // Control: the same options, well formed, run the command.
    let (code, _, err) = run(
        mode,
        &["-p", "TERM", "--grace", "1s", "-r", "TERM:INT", "-e", "3"],
        T,
    );
    assert_eq!(code, 2, "no command is still a usage error: {err}");
    let (code, _, err) = run(
        mode,
        &["-p", "TERM", "--grace", "1s", "-r", "TERM:INT", "--", "true"],
        T,
    );
    assert_eq!(code, 0, "{mode:?} {err}");
}

// ------------------------------------------------------- exec and argv

both_modes!(argv_is_passed_verbatim);
fn argv_is_passed_verbatim(mode: Mode) {
    let body = r#"for a in "$@"; do printf '[%s]' "$a"; done"#;
    let want = "[a b][][--][-x][--help][-v][x=y][ lead]";
    let extra = ["a b", "", "--", "-x", "--help", "-v", "x=y", " lead"];
    let mut args = vec!["--", "sh", "-c", body, "sh"];
    args.extend(extra);
    let (code, out, err) = run(mode, &args, T);
    assert_eq!((code, out.as_str()), (0, want), "{mode:?} {err}");
    // Without `--`: everything from the command on is the command's.
    let (code, out, err) = run(mode, &args[1..], T);
    assert_eq!((code, out.as_str()), (0, want), "{mode:?} {err}");
    // With undead's own flags before `--`, none leak to the child.
    let mut args = vec!["-g", "-w", "--"];
    args.extend(["sh", "-c", body, "sh", "-g", "-w", "--"]);
    let (code, out, err) = run(mode, &args, T);
    assert_eq!((code, out.as_str()), (0, "[-g][-w][--]"), "{mode:?} {err}");
}

both_modes!(stdio_and_env_pass_through);
fn stdio_and_env_pass_through(mode: Mode) {
    let input = b"line one\n\0binary\n\tlast";
    let mut c = command(mode);
    c.args(["--", "sh", "-c", "cat; echo to-stderr >&2; exit 4"]);
    let (code, out, err) = run_cmd(c, input, T);
    assert_eq!(code, 4, "{mode:?} {err}");
    assert_eq!(out.as_bytes(), String::from_utf8_lossy(input).as_bytes());
    assert_eq!(err, "to-stderr\n", "{mode:?}");

    // The child's environment is exactly undead's.
    let env_of = |mut c: Command| {
        c.env("UNDEADTEST_SPACES", "a b=c")
            .env("UNDEADTEST_EMPTY", "")
            .env_remove("UNDEADTEST_UNSET");
        let (code, out, err) = run_cmd(c, b"", T);
        assert_eq!(code, 0, "{err}");
        let mut v: Vec<String> = out
            .split('\0')
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let mut c = command(mode);
    c.args(["--", "env", "-0"]);
    let via_undead = env_of(c);
    let mut c = Command::new("env");
    c.arg("-0");
    let direct = env_of(c);
    assert_eq!(via_undead, direct, "{mode:?}");
    assert!(via_undead.contains(&"UNDEADTEST_SPACES=a b=c".to_string()));
    assert!(via_undead.contains(&"UNDEADTEST_EMPTY=".to_string()));
}

both_modes!(path_lookup_and_exec_failures);
fn path_lookup_and_exec_failures(mode: Mode) {
    let dir = Scratch::new("path");
    let probe = dir.path("undead-path-probe");
    fs::write(&probe, "#!/bin/sh\nexit 9\n").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
    let noexec = dir.path("undead-noexec");
    fs::write(&noexec, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&noexec, fs::Permissions::from_mode(0o644)).unwrap();
    let with_dir = format!("{}:/usr/bin:/bin", dir.0.display());
    let noexec = noexec.display().to_string();
    let exec = |path: &str, argv: &[&str]| {
        let mut c = command(mode);
        c.env("PATH", path).arg("--").args(argv);
        run_cmd(c, b"", T)
    };
    // Found through PATH.
    let (code, _, err) = exec(&with_dir, &["undead-path-probe"]);
    assert_eq!((code, err.as_str()), (9, ""), "{mode:?}");
    // Control: the same name without the directory in PATH.
    let (code, _, err) = exec("/usr/bin:/bin", &["undead-path-probe"]);
    assert_eq!(code, 127, "{mode:?} {err}");
    assert_eq!(
        err,
        "undead: cannot run 'undead-path-probe': No such file or \
         directory\n",
        "{mode:?}"
    );
    let (code, _, err) = exec(&with_dir, &["/nonexistent/x"]);
    assert_eq!(code, 127, "{mode:?} {err}");
    assert_eq!(
        err,
        "undead: cannot run '/nonexistent/x': No such file or directory\n"
    );
    // Not executable: by path, through PATH, and a directory.
    let (code, _, err) = exec(&with_dir, &[&noexec]);
    assert_eq!(code, 126, "{mode:?} {err}");
    assert_eq!(
        err,
        format!("undead: cannot run '{noexec}': Permission denied\n")
    );
    let (code, _, err) = exec(&with_dir, &["undead-noexec"]);
    assert_eq!(code, 126, "{mode:?} {err}");
    assert_eq!(err, "undead: cannot run 'undead-noexec': Permission denied\n");
    let (code, _, err) = exec(&with_dir, &["/"]);
    assert_eq!(code, 126, "{mode:?} {err}");
    assert_eq!(err.lines().count(), 1, "{mode:?} {err}");
    // With `--log-format json` the line is JSON too (the child writes it).
    let mut c = command(mode);
    c.args(["--log-format", "json", "--", "/nonexistent/x"]);
    let (code, _, err) = run_cmd(c, b"", T);
    assert_eq!(code, 127, "{mode:?} {err}");
    assert_eq!(
        err,
        "{\"prog\":\"undead\",\"level\":\"error\",\"msg\":\"cannot run \
         '/nonexistent/x': No such file or directory\"}\n",
        "{mode:?}"
    );
    // What the command is called is escaped in it.
    let mut c = command(mode);
    c.args(["--log-format", "json", "--", "/nonexistent/a\"b\\c"]);
    let (code, _, err) = run_cmd(c, b"", T);
    assert_eq!(code, 127, "{mode:?} {err}");
    assert!(
        err.contains(r#""msg":"cannot run '/nonexistent/a\"b\\c': No such"#),
        "{mode:?} {err}"
    );
}

// -------------------------------------------------------------- signals

const SIGNALS: [(&str, i32); 7] = [
    ("TERM", SIGTERM),
    ("INT", SIGINT),
    ("HUP", SIGHUP),
    ("USR1", SIGUSR1),
    ("USR2", SIGUSR2),
    ("WINCH", SIGWINCH),
    ("QUIT", SIGQUIT),
];

both_modes!(signals_reach_the_child);
fn signals_reach_the_child(mode: Mode) {
    let names: Vec<&str> = SIGNALS.iter().map(|s| s.0).collect();
    let dir = Scratch::new("sig");
    let out = dir.path("got");
    let s = script(&dir, "child.sh", &trapper(&out, &names));
    // A signal ignored on entry cannot be trapped by sh: start the child
    // with default dispositions, whatever the suite inherited.
    let argv = ["--", "env", "--default-signal", "sh", &s];
    let u = Undead::start(mode, &argv);
    ready(&u, &out);
    // One at a time, in an order that is not signal-number order.
    for (i, (name, sig)) in SIGNALS.iter().enumerate() {
        u.signal(*sig);
        let l = wait_got(&out, i + 1);
        eqnice!(Some(name.to_string()), l.get(i).cloned(), u);
    }
    eqnice!(names, got(&out), u);
    // Still running: none of these ended the child or undead.
    eqnice!(true, running(u.pid), u);
}

both_modes!(rewrite_maps_and_drops);
fn rewrite_maps_and_drops(mode: Mode) {
    let dir = Scratch::new("rw");
    let out = dir.path("got");
    let s = script(
        &dir,
        "c.sh",
        &trapper(&out, &["HUP", "USR1", "USR2", "WINCH"]),
    );
    let u = Undead::start(
        mode,
        &["-r", "USR1:USR2", "-r", "HUP:0", "--", "sh", &s],
    );
    ready(&u, &out);
    u.signal(SIGUSR1);
    eqnice!(vec!["USR2"], wait_got(&out, 1), u);
    // HUP is dropped: WINCH (28) sent after HUP (1) arrives, HUP never.
    u.signal(SIGHUP);
    u.signal(SIGWINCH);
    eqnice!(vec!["USR2", "WINCH"], wait_got(&out, 2), u);
    // Control: a signal without a rule passes unchanged.
    u.signal(SIGUSR2);
    eqnice!(vec!["USR2", "WINCH", "USR2"], wait_got(&out, 3), u);
}

both_modes!(pgroup_reaches_grandchildren_only_with_g);
fn pgroup_reaches_grandchildren_only_with_g(mode: Mode) {
    for group in [true, false] {
        let dir = Scratch::new("pg");
        let (fc, fg) = (dir.path("child"), dir.path("grandchild"));
        let g = script(&dir, "gc.sh", &trapper(&fg, &["USR1", "USR2"]));
        let c = format!("sh '{g}' &\n{}", trapper(&fc, &["USR1"]));
        let c = script(&dir, "c.sh", &c);
        let mut args = vec!["--", "sh", &c];
        if group {
            args.insert(0, "-g");
        }
        let u = Undead::start(mode, &args);
        ready(&u, &fc);
        ready(&u, &fg);
        let gc = u.find_cmdline("gc.sh", T).unwrap();
        u.signal(SIGUSR1);
        eqnice!(vec!["USR1"], wait_got(&fc, 1), u);
        if group {
            eqnice!(vec!["USR1"], wait_got(&fg, 1), u);
        } else {
            // USR2 (12) straight to the grandchild, after undead has
            // forwarded USR1 (10): had the group got USR1, it would
            // be logged first.
            kill(gc, SIGUSR2);
            eqnice!(vec!["USR2"], wait_got(&fg, 1), u);
        }
    }
}

/// SigBlk and SigIgn of `undead -- grep` (the child) and, as reference,
/// of `grep` started in undead's place: what undead itself inherited.
fn sig_state(mode: Mode, wrapper: &[&str]) -> (String, String) {
    let grep = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"];
    let how = Launch { outer: wrapper, ..Launch::default() };
    let mut c = command_in(mode, &how);
    c.arg("--").args(grep);
    let (code, child, err) = run_cmd(c, b"", T);
    assert_eq!(code, 0, "{mode:?} {wrapper:?} {err}");
    // The same chain with grep where undead would be.
    let mut words: Vec<&str> = wrapper.to_vec();
    if mode == Mode::Pid1 {
        words.extend(["unshare", "--pid", "--fork", "--mount-proc"]);
    }
    words.extend(grep);
    let mut c = Command::new(words[0]);
    c.args(&words[1..]);
    let (code, reference, err) = run_cmd(c, b"", T);
    assert_eq!(code, 0, "{mode:?} {wrapper:?} {err}");
    (child, reference)
}

fn mask(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

both_modes!(child_signal_state_is_what_undead_inherited);
fn child_signal_state_is_what_undead_inherited(mode: Mode) {
    let bit = |sig: i32| 1u64 << (sig - 1);
    let block_usr2 = [
        "perl",
        "-e",
        "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGUSR2)) \
         or die; exec @ARGV or die",
    ];
    let ignore_usr1 = ["sh", "-c", "trap '' USR1; exec \"$@\"", "sh"];
    // undead blocks every signal itself; the child gets the mask and
    // the ignored set undead started with, nothing more (SIGPIPE
    // included, which Rust's runtime ignores in undead) and nothing
    // less. (Rust's Command uses glibc's posix_spawn, which leaves the
    // internal signals 32 and 33 ignored in what it starts: they are
    // part of what undead inherits here.)
    let (child, reference) = sig_state(mode, &[]);
    assert_eq!(child, reference, "{mode:?}");
    assert_eq!(mask(&child, "SigBlk:"), 0, "{mode:?}");
    assert_eq!(mask(&child, "SigIgn:") & bit(libc::SIGPIPE), 0, "{mode:?}");
    // Inherited SIG_IGN of USR1 stays.
    let (child, reference) = sig_state(mode, &ignore_usr1);
    assert_eq!(child, reference, "{mode:?}");
    assert_eq!(mask(&child, "SigIgn:") & bit(SIGUSR1), bit(SIGUSR1));
    // Inherited block of USR2 stays.
    let (child, reference) = sig_state(mode, &block_usr2);
    assert_eq!(child, reference, "{mode:?}");
    assert_eq!(mask(&child, "SigBlk:"), bit(SIGUSR2), "{mode:?}");
}

both_modes!(stop_and_continue_do_not_end_undead);
fn stop_and_continue_do_not_end_undead(mode: Mode) {
    let dir = Scratch::new("stop");
    let out = dir.path("got");
    // The child stops itself; undead's forwarded SIGCONT resumes it.
    let body =
        format!("echo ready > '{}'; kill -STOP $$; exit 5", out.display());
    let mut u = Undead::start(mode, &["--", "sh", "-c", &body]);
    let child = u.main_child("sh", T).unwrap();
    let stopped = wait_for(T, || (state(child) == Some('T')).then_some(()));
    eqnice!(Some(()), stopped, u);
    // undead sees the stop (SIGCHLD) and must not take it for an exit.
    eqnice!(None, u.wait(Duration::from_millis(300)), u);
    u.signal(SIGCONT);
    eqnice!(Some(5), u.wait(T), u);

    // Stopped and continued from outside, directly.
    let s = script(&dir, "c.sh", &format!("trap 'exit 6' USR1\n{IDLE}\n"));
    let mut u = Undead::start(mode, &["--", "sh", &s]);
    let child = u.main_child("sh", T).unwrap();
    kill(child, libc::SIGSTOP);
    let stopped = wait_for(T, || (state(child) == Some('T')).then_some(()));
    eqnice!(Some(()), stopped, u);
    eqnice!(None, u.wait(Duration::from_millis(300)), u);
    kill(child, SIGCONT);
    let running = wait_for(T, || (state(child) == Some('S')).then_some(()));
    eqnice!(Some(()), running, u);
    u.signal(SIGUSR1);
    eqnice!(Some(6), u.wait(T), u);
}

both_modes!(pdeathsig_signals_undead_when_its_parent_dies);
fn pdeathsig_signals_undead_when_its_parent_dies(mode: Mode) {
    for with_p in [true, false] {
        let dir = Scratch::new("pdeath");
        let out = dir.path("got");
        let s = script(&dir, "c.sh", &trapper(&out, &["USR1", "USR2"]));
        // As subreaper, undead's parent is a shell that waits for it;
        // as PID 1 it is `unshare` (without --kill-child).
        let wrapper: &[&str] = match mode {
            Mode::Subreaper => &["sh", "-c", "\"$@\"; exit $?", "sh"],
            Mode::Pid1 => &[],
        };
        let mut args = vec!["--", "sh", &s];
        if with_p {
            args.splice(0..0, ["-p", "USR1"]);
        }
        let how =
            Launch { outer: wrapper, keep_child: true, ..Launch::default() };
        let mut u = Undead::launch(mode, &how, &args, |_| {});
        ready(&u, &out);
        let parent = stat(u.pid).unwrap().1;
        assert_ne!(parent, std::process::id() as i32, "{mode:?}");
        u.kill_parent();
        if with_p {
            eqnice!(vec!["USR1"], wait_got(&out, 1), u);
        } else {
            // The parent is reaped, so any parent-death signal is
            // already queued at undead; USR2 (12) sent now comes after
            // a USR1 (10) that was queued.
            u.signal(SIGUSR2);
            eqnice!(vec!["USR2"], wait_got(&out, 1), u);
        }
        eqnice!(true, running(u.pid), u);
    }
}

// -------------------------------------------------------------- reaping

const ORPHANS: &str =
    "for i in $(seq 100); do (true &); done; exec sleep 1000";

fn reaped_lines(u: &Undead) -> usize {
    u.stderr().lines().filter(|l| l.starts_with("undead: reaped ")).count()
}

both_modes!(orphans_are_reaped);
fn orphans_are_reaped(mode: Mode) {
    let mut u = Undead::start(mode, &["-vv", "--", "sh", "-c", ORPHANS]);
    let n = wait_for(T, || (reaped_lines(&u) >= 100).then_some(()));
    eqnice!(Some(()), n, u);
    eqnice!(100, reaped_lines(&u), u);
    let child = u.main_child("sleep", T);
    eqnice!(true, child.is_some(), u);
    // Nothing but the child is left under undead.
    eqnice!(vec![child.unwrap()], u.descendants(), u);
    u.signal(SIGTERM);
    eqnice!(Some(143), u.wait(T), u);
}

both_modes!(negative_control_withheld_orphans_stay_zombies);
fn negative_control_withheld_orphans_stay_zombies(mode: Mode) {
    let u = Undead::start(
        mode,
        &["-vv", "--withhold-reaping", "--", "sh", "-c", ORPHANS],
    );
    let zombies = || {
        u.descendants()
            .into_iter()
            .filter(|&p| stat(p) == Some(('Z', u.pid)))
            .count()
    };
    let z = wait_for(T, || (zombies() >= 100).then_some(()));
    eqnice!(Some(()), z, u);
    eqnice!(100, zombies(), u);
    eqnice!(0, reaped_lines(&u), u);
}

both_modes!(warn_on_reaping_an_orphan);
fn warn_on_reaping_an_orphan(mode: Mode) {
    for warn in [true, false] {
        let dir = Scratch::new("warn");
        let f = dir.path("orphan");
        // An orphan that exits only once its parent (the subshell) is
        // gone, so it is reparented to undead whatever the scheduling (a
        // `sleep 0` could be reaped by the subshell itself): it waits for
        // a file the child makes after the subshell has ended. The child
        // then waits until it is reaped (its /proc entry is gone).
        let body = format!(
            "(sh -c 'while [ ! -e \"$0\" ]; do sleep 0.01; done' '{f}.go' \
             & echo $! > '{f}'); touch '{f}.go'; p=$(cat '{f}'); \
             while [ -e /proc/$p ]; do sleep 0.01; done; exit 0",
            f = f.display()
        );
        let mut args = vec!["--", "sh", "-c", &body];
        if warn {
            args.insert(0, "-w");
        }
        let (code, _, err) = run(mode, &args, T);
        assert_eq!(code, 0, "{mode:?} {err}");
        let pid = fs::read_to_string(&f).unwrap();
        let want =
            format!("undead: Reaped zombie process with pid={}\n", pid.trim());
        if warn {
            assert!(err.contains(&want), "{mode:?}: {err:?} lacks {want:?}");
        } else {
            assert_eq!(err, "", "{mode:?}");
        }
    }
}

// ------------------------------------------------- grace, wait-all, teardown

/// Host pids of everything under undead, killed on drop if they escape.
fn snapshot(u: &Undead) -> KillOnDrop {
    KillOnDrop::pids(&u.descendants())
}

both_modes!(grace_kills_every_descendant_after_term);
fn grace_kills_every_descendant_after_term(mode: Mode) {
    for grace in [true, false] {
        let dir = Scratch::new("grace");
        let out = dir.path("got");
        // The child and its sleep ignore TERM.
        let s = script(
            &dir,
            "c.sh",
            &format!("trap '' TERM\n{}", trapper(&out, &["WINCH"])),
        );
        let mut args = vec!["--", "sh", &s];
        if grace {
            args.splice(0..0, ["--grace", "500ms"]);
        }
        let mut u = Undead::start(mode, &args);
        ready(&u, &out);
        let _ = u.find("sleep", T).unwrap();
        let tree = snapshot(&u);
        eqnice!(2, tree.0.len(), u);
        let sent = Instant::now();
        u.signal(SIGTERM);
        if grace {
            eqnice!(Some(137), u.wait(T), u);
            let took = sent.elapsed();
            assert!(took >= Duration::from_millis(500), "{mode:?} {took:?}");
            eqnice!(Vec::<i32>::new(), tree.alive(), u);
        } else {
            // WINCH (28) after TERM (15): once the child logs it, undead
            // has handled the TERM. Then nothing happens for 1 s.
            u.signal(SIGWINCH);
            eqnice!(vec!["WINCH"], wait_got(&out, 1), u);
            eqnice!(None, u.wait(Duration::from_secs(1)), u);
            eqnice!(tree.listed(), tree.alive(), u);
        }
    }
}

/// A child that starts a grandchild blocked on a fifo, then exits 3 once
/// the test creates `go` (after it has found the grandchild). `prefix`
/// runs first in the child, `launcher` starts the grandchild.
struct WaitAll {
    body: String,
    fifo: std::path::PathBuf,
    go: std::path::PathBuf,
}

fn wait_all_child(dir: &Scratch, prefix: &str, launcher: &str) -> WaitAll {
    let fifo = dir.path("fifo");
    let go = dir.path("go");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let body = format!(
        "{prefix} {launcher} sh -c 'read x < \"$0\"' '{}' & \
         while [ ! -e '{}' ]; do sleep 0.01; done; exit 3",
        fifo.display(),
        go.display()
    );
    WaitAll { body, fifo, go }
}

/// Start undead on a `WaitAll` child: (undead, child, grandchild).
fn start_wait_all(
    mode: Mode,
    flags: &[&str],
    w: &WaitAll,
) -> (Undead, i32, i32) {
    let mut args = flags.to_vec();
    args.extend(["--", "sh", "-c", &w.body]);
    let u = Undead::start(mode, &args);
    let child = u.main_child("sh", T).unwrap();
    let gc = u.find_cmdline("read x < \"$0\"\0", T).unwrap();
    fs::write(&w.go, "").unwrap();
    (u, child, gc)
}

both_modes!(wait_all_waits_for_the_last_descendant);
fn wait_all_waits_for_the_last_descendant(mode: Mode) {
    let dir = Scratch::new("waitall");
    let w = wait_all_child(&dir, "", "");
    let (mut u, child, gc) = start_wait_all(mode, &["--wait-all"], &w);
    let _guard = KillOnDrop::pids(&[gc]);
    let gone = wait_for(T, || stat(child).is_none().then_some(()));
    eqnice!(Some(()), gone, u);
    // The child is reaped; the grandchild keeps undead running.
    eqnice!(None, u.wait(Duration::from_millis(300)), u);
    eqnice!(Some(u.pid), stat(gc).map(|s| s.1), u);
    fs::write(&w.fifo, "go\n").unwrap();
    eqnice!(Some(3), u.wait(T), u);
    eqnice!(None, stat(gc), u);
}

both_modes!(wait_all_with_grace_kills_the_stragglers);
fn wait_all_with_grace_kills_the_stragglers(mode: Mode) {
    let dir = Scratch::new("waitallgrace");
    let w = wait_all_child(&dir, "", "");
    let flags = ["--wait-all", "--grace", "500ms"];
    let (mut u, child, gc) = start_wait_all(mode, &flags, &w);
    let _guard = KillOnDrop::pids(&[gc]);
    let gone = wait_for(T, || stat(child).is_none().then_some(()));
    eqnice!(Some(()), gone, u);
    let t0 = Instant::now();
    eqnice!(Some(3), u.wait(T), u);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(400), "{mode:?} {took:?}");
    eqnice!(None, stat(gc), u);
}

both_modes!(wait_all_term_reaches_the_stragglers);
fn wait_all_term_reaches_the_stragglers(mode: Mode) {
    let dir = Scratch::new("waitallterm");
    let w = wait_all_child(&dir, "", "");
    let (mut u, child, gc) = start_wait_all(mode, &["--wait-all"], &w);
    let _guard = KillOnDrop::pids(&[gc]);
    let gone = wait_for(T, || stat(child).is_none().then_some(()));
    eqnice!(Some(()), gone, u);
    // `docker stop` now: the straggler should get the TERM (it has
    // the default disposition) and undead exit with the child's code.
    u.signal(SIGTERM);
    eqnice!(Some(3), u.wait(Duration::from_secs(3)), u);
}

both_modes!(wait_all_does_not_wait_for_withheld_zombies);
fn wait_all_does_not_wait_for_withheld_zombies(mode: Mode) {
    let args = ["--withhold-reaping", "--wait-all", "--", "sh", "-c"];
    let mut args = args.to_vec();
    args.push("(true &); exit 4");
    let (code, _, err) = run(mode, &args, Duration::from_secs(3));
    assert_eq!(code, 4, "{mode:?} {err}");
}

both_modes!(without_wait_all_undead_exits_at_once_and_leaves_nothing);
fn without_wait_all_undead_exits_at_once_and_leaves_nothing(mode: Mode) {
    let dir = Scratch::new("nowaitall");
    // The grandchild ignores TERM and HUP and has its own session:
    // undead must still take it down.
    let w = wait_all_child(&dir, "trap '' TERM HUP;", "setsid");
    let (mut u, _, gc) = start_wait_all(mode, &[], &w);
    let _guard = KillOnDrop::pids(&[gc]);
    eqnice!(Some(3), u.wait(T), u);
    let gone = wait_for(T, || alive(&[gc]).is_empty().then_some(()));
    eqnice!(Some(()), gone, u);
}

both_modes!(forwarded_term_leaves_nothing);
fn forwarded_term_leaves_nothing(mode: Mode) {
    let dir = Scratch::new("termall");
    let out = dir.path("got");
    // The child dies of TERM; its grandchildren ignore it.
    let body = format!(
        "(trap '' TERM; exec sleep 1000) & (trap '' TERM; exec setsid sleep 1000) & \
         echo ready >> '{}'; wait",
        out.display()
    );
    let mut u = Undead::start(mode, &["--", "sh", "-c", &body]);
    ready(&u, &out);
    let tree = wait_for(T, || {
        let t = u.descendants();
        (t.len() == 3).then_some(t)
    });
    eqnice!(true, tree.is_some(), u);
    let tree = KillOnDrop::pids(&tree.unwrap());
    u.signal(SIGTERM);
    eqnice!(Some(143), u.wait(T), u);
    eqnice!(Vec::<i32>::new(), tree.alive(), u);
}

/// Start a child with two grandchildren (one in its own session) and
/// SIGKILL undead (started with `opts`). Returns (child, grandchildren)
/// host pids and a guard.
fn sigkill_undead(
    mode: Mode,
    opts: &[&str],
) -> (i32, Vec<i32>, KillOnDrop, Undead) {
    let body = "sleep 1000 & setsid sleep 1000 & wait";
    let args = [opts, &["--", "sh", "-c", body]].concat();
    let mut u = Undead::start(mode, &args);
    let child = u.main_child("sh", T).unwrap();
    let grand = wait_for(T, || {
        let g: Vec<i32> = descendants(child)
            .into_iter()
            .filter(|&p| comm(p).as_deref() == Some("sleep"))
            .collect();
        (g.len() == 2).then_some(g)
    })
    .unwrap_or_default();
    let guard = KillOnDrop::pids(&grand);
    assert_eq!(grand.len(), 2, "{mode:?}");
    // The one in the child's process group first, the setsid one second.
    let mut grand = grand;
    grand.sort_by_key(|&p| pgid(p) != pgid(child));
    kill(u.pid, SIGKILL);
    // (unshare reports its SIGKILLed child as exit 1, not as 137.)
    assert!(u.wait(T).is_some(), "{mode:?}");
    (child, grand, guard, u)
}

both_modes!(sigkilled_undead_takes_its_child);
fn sigkilled_undead_takes_its_child(mode: Mode) {
    let (child, _, _guard, u) = sigkill_undead(mode, &[]);
    let gone = wait_for(T, || alive(&[child]).is_empty().then_some(()));
    eqnice!(Some(()), gone, u);
}

both_modes!(sigkilled_undead_leaves_no_grandchild_of_its_group);
/// `--guard`: `undead-guard` kills the child's process group when undead
/// is SIGKILLed (as PID 1 the kernel kills the namespace; without it, see
/// tests/dropin.rs). A grandchild that moved to a
/// session of its own escapes in subreaper mode: the documented limit
/// (README, "Limits"), checked here so a change in it is noticed.
fn sigkilled_undead_leaves_no_grandchild_of_its_group(mode: Mode) {
    let (_, grand, _guard, u) = sigkill_undead(mode, &["--guard"]);
    let (ours, own_session) = (&grand[..1], &grand[1..]);
    let gone = wait_for(Duration::from_secs(2), || {
        alive(ours).is_empty().then_some(())
    });
    let left: Vec<String> = alive(ours)
        .iter()
        .map(|&p| format!("{p} {:?} {:?}", stat(p), comm(p)))
        .collect();
    assert!(gone.is_some(), "{mode:?}: survivors: {left:?}");
    let escaped = wait_for(Duration::from_millis(300), || {
        alive(own_session).is_empty().then_some(())
    })
    .is_none();
    assert_eq!(escaped, mode == Mode::Subreaper, "{mode:?}");
    drop(u);
}

/// The process group, read before the kill.
fn pgid(pid: i32) -> Option<i32> {
    Stat::of(pid).map(|s| s.pgrp)
}

// ---------------------------------------------------------------- storm

const STORM: &str = r#"
use POSIX ();
# Ignored, not handled: perl's deferred-signal handlers die past 120
# pending signals ("Maximal count of pending signals"), which a flood
# reaches. undead forwards every one either way.
$SIG{$_} = 'IGNORE' for qw(USR1 USR2 HUP WINCH);
open(my $f, '>', $ARGV[1]) or die; close($f);
for my $r (1..100) {
  my $p = fork // die "fork: $!";
  if ($p == 0) {
    for (1..100) { my $q = fork; POSIX::_exit(0) if defined $q && $q == 0; }
    POSIX::_exit(0);
  }
  1 while waitpid($p, 0) == -1 && $!{EINTR};
}
# Storm over: tell the test, wait until it has checked the zombies.
open($f, '>', $ARGV[2]) or die; close($f);
select(undef, undef, undef, 0.001) until -e $ARGV[3];
kill($ARGV[0], $$) if $ARGV[0];
exit 42;
"#;

both_modes!(storm_never_loses_the_child_status);
fn storm_never_loses_the_child_status(mode: Mode) {
    // 10 000 orphans (100 batches of 100 zombies reparented at once)
    // while USR1/USR2/HUP/WINCH are forwarded as fast as we can send;
    // then, with no signal to wake undead, no zombie may be left; then
    // the child exits in a new flood.
    for (sig, want) in [("0", 42), ("KILL", 137)] {
        let dir = Scratch::new("storm");
        let [ready, done, quiet] =
            ["ready", "done", "quiet"].map(|n| dir.path(n));
        let [r, d, q] =
            [&ready, &done, &quiet].map(|p| p.display().to_string());
        let mut u =
            Undead::start(mode, &["--", "perl", "-e", STORM, sig, &r, &d, &q]);
        let up = wait_for(T, || ready.exists().then_some(()));
        eqnice!(Some(()), up, u);
        let mut sent = 0u64;
        let mut flood = |u: &Undead| {
            for s in [SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH] {
                u.signal(s);
                sent += 1;
            }
        };
        let over = wait_for(Duration::from_secs(20), || {
            flood(&u);
            done.exists().then_some(())
        });
        eqnice!(Some(()), over, u);
        let zombies = || {
            u.descendants()
                .into_iter()
                .filter(|&p| state(p) == Some('Z'))
                .count()
        };
        let clean = wait_for(T, || (zombies() == 0).then_some(()));
        eqnice!(Some(()), clean, u);
        fs::write(&quiet, "").unwrap();
        let code = wait_for(T, || {
            flood(&u);
            u.wait(Duration::ZERO)
        });
        eqnice!(Some(want), code, u);
        assert!(sent > 100, "{mode:?}: only {sent} signals sent");
    }
}

// ------------------------------------------------------------------ TTY

/// Start undead with a pty as stdio and as the controlling terminal of a
/// session undead leads, as `docker run -t` does.
fn on_pty(mode: Mode, pty: &Pty, args: &[&str]) -> Undead {
    let how = Launch { inner: &["setsid", "-c"], ..Launch::default() };
    Undead::launch(mode, &how, args, |c| {
        c.stdin(pty.slave()).stdout(pty.slave()).stderr(pty.slave());
    })
}

/// (pgrp, session, tty_nr, tpgid) of a process.
fn job(pid: i32) -> (i64, i64, i64, i64) {
    let f = stat_fields(pid).unwrap();
    (f[2], f[3], f[4], f[5])
}

both_modes!(tty_child_leads_a_foreground_process_group);
fn tty_child_leads_a_foreground_process_group(mode: Mode) {
    let pty = Pty::open();
    let u = on_pty(mode, &pty, &["--", "sleep", "1000"]);
    let child = u.main_child("sleep", T).unwrap();
    let c = i64::from(child);
    let (_, undead_sid, undead_tty, _) = job(u.pid);
    eqnice!(pty.tty_nr(), undead_tty, u);
    eqnice!((c, undead_sid, pty.tty_nr(), c), job(child), u);
    // Control: without a terminal, the child still leads its own
    // group, but there is no foreground group to own.
    let u = Undead::start(mode, &["--", "sleep", "1000"]);
    let child = u.main_child("sleep", T).unwrap();
    let (pgrp, sid, tty, tpgid) = job(child);
    eqnice!((i64::from(child), 0, -1), (pgrp, tty, tpgid), u);
    eqnice!(job(u.pid).1, sid, u);
}

both_modes!(setsid_gives_the_child_its_own_session);
fn setsid_gives_the_child_its_own_session(mode: Mode) {
    let u = Undead::start(mode, &["--setsid", "--", "sleep", "1000"]);
    let child = u.main_child("sleep", T).unwrap();
    let c = i64::from(child);
    let (pgrp, sid, _, _) = job(child);
    eqnice!((c, c), (pgrp, sid), u);
    assert_ne!(job(u.pid).1, sid);
}

both_modes!(setsid_child_owns_the_terminal);
fn setsid_child_owns_the_terminal(mode: Mode) {
    let pty = Pty::open();
    let u = on_pty(mode, &pty, &["--setsid", "--", "sleep", "1000"]);
    let child = u.main_child("sleep", T).unwrap();
    let c = i64::from(child);
    eqnice!((c, c, pty.tty_nr(), c), job(child), u);
}

both_modes!(ctrl_z_stops_the_job_not_undead);
fn ctrl_z_stops_the_job_not_undead(mode: Mode) {
    let pty = Pty::open();
    let u = on_pty(mode, &pty, &["--", "sh", "-i"]);
    let sh = u.main_child("sh", T).unwrap();
    pty.write(b"sleep 1000\n");
    let sleep = wait_for(T, || {
        descendants(sh).into_iter().find(|&p| {
            comm(p).as_deref() == Some("sleep")
                && stat_fields(p).is_some_and(|f| f[5] == f[2])
        })
    });
    eqnice!(true, sleep.is_some(), u);
    let sleep = sleep.unwrap();
    // Control: the job is in the foreground and not stopped.
    let asleep = wait_for(T, || (state(sleep) == Some('S')).then_some(()));
    eqnice!(Some(()), asleep, u);
    pty.write(b"\x1a");
    let stopped = wait_for(T, || (state(sleep) == Some('T')).then_some(()));
    eqnice!(Some(()), stopped, u);
    // The shell takes the terminal back; undead and the shell run on.
    let back = wait_for(T, || (job(sh).3 == i64::from(sh)).then_some(()));
    eqnice!(Some(()), back, u);
    eqnice!(true, running(u.pid), u);
    eqnice!(true, running(sh), u);
    // And the job can be resumed and ended from the shell.
    // (dash refuses the first `exit` while it still counts a stopped
    // job, so say it twice.)
    pty.write(b"kill -CONT %1; kill %1; exit 7; exit 7\n");
    let mut u = u;
    let code = u.wait(T);
    assert_eq!(code, Some(7), "{mode:?} terminal:\n{}", pty.text());
}

// ----------------------------------------------------------------- idle

/// Context switches of a process so far (voluntary + involuntary).
fn switches(pid: i32) -> u64 {
    ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
        .iter()
        .filter_map(|k| status_field(pid, k)?.parse::<u64>().ok())
        .sum()
}

both_modes!(idle_undead_never_wakes);
fn idle_undead_never_wakes(mode: Mode) {
    // A control socket of its own: at the default path, other tests'
    // clients (and a second undead probing whether the path is live)
    // would connect to it, and a connection wakes undead by design.
    let dir = Scratch::new("idle");
    let sock = dir.sock();
    let u = Undead::start(mode, &["--control", &sock, "--", "sleep", "1000"]);
    u.main_child("sleep", T).unwrap();
    // Let start-up settle: the count stops moving for three samples while
    // undead sleeps (S). Under load a runnable undead (R) that waits for a
    // CPU would keep the count still without being idle yet.
    let mut last = switches(u.pid);
    let mut still = 0;
    let settled = wait_for(T, || {
        std::thread::sleep(Duration::from_millis(100));
        let now = switches(u.pid);
        let same = std::mem::replace(&mut last, now) == now;
        still = if same && state(u.pid) == Some('S') { still + 1 } else { 0 };
        (still >= 3).then_some(())
    });
    eqnice!(Some(()), settled, u);
    // 1.5 s idle: a periodic wake-up (tini's is 1 s) would show.
    let before = switches(u.pid);
    let woke = wait_for(Duration::from_millis(1500), || {
        (switches(u.pid) != before).then_some(())
    });
    eqnice!(None, woke, u);
    // Control: a signal does wake it, and the counter shows that.
    u.signal(SIGWINCH);
    let woke = wait_for(T, || (switches(u.pid) != before).then_some(()));
    eqnice!(Some(()), woke, u);
}
