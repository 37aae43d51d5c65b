//! The undead kit III (issue #12): teardown hazards beyond Z and D —
//! stopped, deaf, slow, escapee, hopper, frozen, `dstate --cwd` — driven
//! from the host against the real binary as PID 1 of a fresh PID namespace
//! and as a subreaper. Every assertion is a /proc fact seen from the host
//! (state letter, SigIgn/ShdPnd bits, session and group ids, cwd, the
//! exit code of a withheld zombie); pids the verbs print are mapped to host
//! pids through `NSpid`. Waits are bounded polls.
//!
//! Tests of the §2 stop sequence (SIGCONT after TERM, `--wait-all` TERM to
//! unheld descendants) are marked `needs cdef`: they pass once the stop
//! sequence branch is merged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::control::CLIENT;
use crate::common::{
    BIN, Control, Ident, Launch, Mode, Ran, Scratch, Stat, comm, kill,
    run_ran, stat, status_mask, wait_for,
};
use crate::common::{PidsCgroup, SHRUGGED};
use crate::{both_modes, check, control_newtype};

/// Bound of every wait for something that should happen at once.
const T: Duration = Duration::from_secs(10);
const SLEEP: [&str; 2] = ["sleep", "1000"];

control_newtype!(
    /// One undead with its own control socket ([`Control`]), seen from the
    /// host.
    Session
);

impl Session {
    fn start(mode: Mode, opts: &[&str], cmd: &[&str]) -> Session {
        Session::start_with(mode, opts, cmd, |_| {})
    }

    fn start_with(
        mode: Mode,
        opts: &[&str],
        cmd: &[&str],
        tweak: impl Fn(&mut Command),
    ) -> Session {
        Session::launch_with(mode, &Launch::default(), opts, cmd, tweak)
    }

    fn launch(
        mode: Mode,
        how: &Launch,
        opts: &[&str],
        cmd: &[&str],
    ) -> Session {
        Session::launch_with(mode, how, opts, cmd, |_| {})
    }

    fn launch_with(
        mode: Mode,
        how: &Launch,
        opts: &[&str],
        cmd: &[&str],
        tweak: impl Fn(&mut Command),
    ) -> Session {
        let dir = Scratch::new("hazards");
        Session(Control::launch(dir, mode, how, opts, cmd, tweak))
    }

    /// Create and map the printed pids to host identities.
    fn raise(&self, args: &[&str]) -> Vec<Ident> {
        let r = self.ok(args);
        let pids: Vec<i32> =
            r.stdout.lines().filter_map(|l| l.trim().parse().ok()).collect();
        pids.into_iter().map(|p| self.host(p)).collect()
    }

    /// Host pids under undead named `name`, not dead. Walks the children
    /// files from undead down: a readdir of all /proc takes milliseconds,
    /// and misses processes that change their pid every millisecond.
    fn live(&self, name: &str) -> Vec<i32> {
        tree(self.u.pid)
            .into_iter()
            .filter(|&p| comm(p).as_deref() == Some(name))
            .filter(|&p| stat(p).is_some_and(|(s, _)| !matches!(s, 'Z' | 'X')))
            .collect()
    }

    /// The hoppers under undead: the most any of 5 walks sees (one walk
    /// may miss a hopper between two children files).
    fn hoppers(&self) -> Vec<i32> {
        (0..5)
            .map(|_| self.live("undead-hopper"))
            .max_by_key(Vec::len)
            .unwrap_or_default()
    }
}

both_modes!(
    stopped_holds_term_pending_until_cont,
    deaf_ignores_the_list_and_dies_to_kill,
    slow_exits_zero_its_delay_after_term,
    escapee_survives_a_kill_of_the_child_group,
    hoppers_change_pid_and_keep_their_number,
    kill_by_pid_loop_leaves_hoppers_alive,
    release_by_kind_and_pid_leaves_unheld_alone,
    release_after_leaves_unheld_alone,
    raise_at_start_flags_and_environment,
    status_ps_and_report_mark_held_and_unheld,
    pids_max_stops_creation_and_hoppers_keep_their_number,
    dstate_cwd_keeps_a_mount_busy,
    frozen_v1_stays_d_after_sigkill_until_released,
    frozen_v2_victims_die_on_sigkill,
);

/// Descendants of `root` through /proc/PID/task/TID/children.
fn tree(root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let tasks = fs::read_dir(format!("/proc/{}/task", found[i]));
        for t in tasks.into_iter().flatten().flatten() {
            let kids = fs::read_to_string(t.path().join("children"));
            let kids = kids.unwrap_or_default();
            found.extend(
                kids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()),
            );
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// Bit of signal `sig` in a /proc/PID/status mask.
fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

fn mask(pid: i32, key: &str) -> u64 {
    status_mask(pid, key).unwrap_or(0)
}

/// (pgid, sid) of a host process.
fn group_session(pid: i32) -> Option<(i32, i32)> {
    Stat::of(pid).map(|s| (s.pgrp, s.session))
}

/// `/proc/PID/stat` field 52: the wait status of a zombie.
fn exit_status(pid: i32) -> Option<i64> {
    Stat::of(pid).map(|s| s.exit_code)
}

// ---------------------------------------------------------------------------
// stopped, deaf, slow, escapee
// ---------------------------------------------------------------------------

fn stopped_holds_term_pending_until_cont(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let made = s.raise(&["stopped", "2"]);
    check!(s, made.len() == 2, "stopped 2 made {made:?}");
    for p in &made {
        check!(s, p.state() == Some('T'), "{p:?} not T");
        check!(s, comm(p.pid).as_deref() == Some("undead-stopped"), "comm");
    }
    let (a, b) = (made[0], made[1]);
    kill(a.pid, libc::SIGTERM);
    s.until("TERM pending on a T process", T, || {
        mask(a.pid, "ShdPnd") & bit(libc::SIGTERM) != 0
            || mask(a.pid, "SigPnd") & bit(libc::SIGTERM) != 0
    });
    // Negative control: it stays T with TERM pending while nobody CONTs it.
    std::thread::sleep(Duration::from_millis(300));
    check!(s, a.state() == Some('T'), "TERM ended a stopped process");
    kill(a.pid, libc::SIGCONT);
    s.until("CONT lets the pending TERM end it", T, || {
        a.state().is_none_or(|st| st == 'Z')
    });
    check!(s, b.state() == Some('T'), "the other one moved: {b:?}");
    kill(b.pid, libc::SIGKILL);
    s.until("SIGKILL ends a stopped process at once", T, || {
        b.state().is_none_or(|st| st == 'Z')
    });
}

fn deaf_ignores_the_list_and_dies_to_kill(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let p = s.raise(&["deaf", "1"])[0];
    let list = [&SHRUGGED[..], &[libc::SIGPIPE, libc::SIGALRM]].concat();
    let want = list.iter().fold(0, |m, &sig| m | bit(sig));
    check!(s, mask(p.pid, "SigIgn") & want == want, "SigIgn of {p:?}");
    check!(s, p.state() == Some('S'), "deaf is S");
    for &sig in &list {
        kill(p.pid, sig);
    }
    std::thread::sleep(Duration::from_millis(300));
    check!(s, p.state() == Some('S'), "a listed signal ended deaf {p:?}");
    kill(p.pid, libc::SIGKILL);
    s.until("SIGKILL ends deaf", T, || p.state().is_none_or(|st| st == 'Z'));
}

fn slow_exits_zero_its_delay_after_term(mode: Mode) {
    // Withheld reaping keeps its zombie, whose stat shows the exit status.
    let s = Session::start(mode, &["--withhold-reaping"], &SLEEP);
    let p = s.raise(&["slow", "1", "--exit-after", "1s"])[0];
    check!(s, p.state() == Some('S'), "slow is S");
    let sent = Instant::now();
    kill(p.pid, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    check!(s, p.state() == Some('S'), "slow exited before its delay");
    s.until("slow exits", T, || p.state().is_none_or(|st| st == 'Z'));
    let took = sent.elapsed();
    println!("{mode:?}: slow --exit-after 1s exited {took:?} after TERM");
    check!(s, took >= Duration::from_millis(950), "too early: {took:?}");
    check!(s, took < Duration::from_secs(4), "too late: {took:?}");
    check!(s, exit_status(p.pid) == Some(0), "exit status not 0");
    let q = s.raise(&["slow", "1", "--exit-after", "1h"])[0];
    kill(q.pid, libc::SIGKILL);
    s.until("SIGKILL ends slow", T, || q.state().is_none_or(|st| st == 'Z'));
}

fn escapee_survives_a_kill_of_the_child_group(mode: Mode) {
    // --wait-all: with the child gone undead waits for the unheld escapee.
    let mut s = Session::start(mode, &["--wait-all"], &SLEEP);
    let child = s.u.main_child("sleep", T).unwrap_or_else(|| s.fail("child"));
    let e = s.raise(&["escapee", "1", "--unheld"])[0];
    let (pg, sid) = group_session(e.pid).unwrap_or_else(|| s.fail("gone"));
    check!(s, pg == e.pid && sid == e.pid, "own session: {pg} {sid}");
    let (cpg, csid) = group_session(child).unwrap_or_else(|| s.fail("child"));
    let (upg, usid) = group_session(s.u.pid).unwrap_or_else(|| s.fail("u"));
    check!(s, sid != csid && sid != usid, "session {sid} {csid} {usid}");
    check!(s, pg != cpg && pg != upg, "group {pg} {cpg} {upg}");
    let want = bit(libc::SIGTERM) | bit(libc::SIGHUP);
    check!(s, mask(e.pid, "SigIgn") & want == want, "escapee is deaf");
    kill(-cpg, libc::SIGKILL);
    s.until("the child's group is dead", T, || stat(child).is_none());
    std::thread::sleep(Duration::from_millis(300));
    check!(s, e.state() == Some('S'), "escapee died with the group");
    kill(e.pid, libc::SIGKILL);
    let code = s.u.wait(T);
    check!(
        s,
        code == Some(137),
        "undead exits with the child's 137: {code:?}"
    );
}

// ---------------------------------------------------------------------------
// hopper
// ---------------------------------------------------------------------------

fn hoppers_change_pid_and_keep_their_number(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let r = s.ok(&["hopper", "3"]);
    check!(s, r.stdout.lines().count() >= 3, "hopper 3 printed {r:?}");
    let first = s.hoppers();
    check!(s, first.len() >= 3, "3 live hoppers: {first:?}");
    let mut seen = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        let live = s.hoppers();
        check!(s, (3..=6).contains(&live.len()), "3 lines: {live:?}");
        seen.push(live);
    }
    for p in &first {
        check!(s, !seen[4].contains(p), "{p} never hopped");
    }
    // The predecessors are reaped: no zombie piles up under undead.
    let z =
        s.u.descendants()
            .into_iter()
            .filter(|&p| stat(p).is_some_and(|(st, _)| st == 'Z'))
            .count();
    check!(s, z <= 6, "{z} zombies under undead");
    let r = s.ok(&["release", "hopper"]);
    check!(s, r.stdout.contains("released"), "{r:?}");
    s.until("no hopper after release", T, || s.hoppers().is_empty());
    std::thread::sleep(Duration::from_millis(100));
    check!(s, s.hoppers().is_empty(), "a hopper came back");
}

/// The process group of the session's hoppers, read from any hopper still
/// there (at 1 ms a hop, the one listed first may be gone by the time its
/// stat is read); -1 if none shows up.
fn hoppers_group(s: &Session) -> i32 {
    wait_for(T, || s.hoppers().into_iter().find_map(group_session))
        .map_or(-1, |(g, _)| g)
}

/// Negative control: a runtime's kill-by-PID loop (scan, SIGKILL each pid,
/// five rounds) loses against hoppers; undead's own release does not.
fn kill_by_pid_loop_leaves_hoppers_alive(mode: Mode) {
    let mut s = Session::start(mode, &[], &SLEEP);
    s.ok(&["hopper", "4", "--every", "1ms", "--unheld"]);
    // Only this test's hoppers (their process group): `ps -e` on the host
    // lists every test's and every engineer's.
    // Their group, read from any hopper still there (at 1 ms a hop, the
    // one listed first may be gone by the time its stat is read).
    let ours = hoppers_group(&s);
    check!(s, ours > 0, "no hopper to chase");
    // As a teardown script does it: list the processes (ps), SIGKILL each
    // pid found, five rounds.
    for _ in 0..5 {
        let ps =
            run_ran(Command::new("ps").args(["-e", "-o", "pid=,comm="]), T);
        let found = ps.stdout.lines().filter_map(|l| {
            let (pid, name) = l.trim().split_once(' ')?;
            (name.trim() == "undead-hopper").then(|| pid.parse().ok())?
        });
        found
            .filter(|&p| group_session(p).is_some_and(|(g, _)| g == ours))
            .for_each(|p: i32| kill(p, libc::SIGKILL));
    }
    std::thread::sleep(Duration::from_millis(50));
    let left = s.hoppers().len();
    println!("{mode:?}: {left} hoppers alive after 5 kill-by-pid rounds");
    check!(s, left > 0, "a kill-by-PID loop caught every hopper");
    // Unheld: `release` leaves them; undead's own exit does not.
    s.ok(&["release", "all"]);
    check!(s, !s.hoppers().is_empty(), "release took unheld");
    let pgid = hoppers_group(&s);
    check!(s, pgid == ours, "the hoppers' group changed: {pgid}");
    kill(s.u.main_child("sleep", T).unwrap_or(-1), libc::SIGKILL);
    let code = s.u.wait(T);
    check!(s, code == Some(137), "undead exit {code:?}");
    // Whatever the lines forked meanwhile: none of them is left anywhere.
    std::thread::sleep(Duration::from_millis(100));
    let stray: Vec<i32> = crate::common::all_pids()
        .into_iter()
        .filter(|&p| comm(p).as_deref() == Some("undead-hopper"))
        .filter(|&p| group_session(p).is_some_and(|(g, _)| g == pgid))
        .filter(|&p| stat(p).is_some_and(|(st, _)| st != 'Z'))
        .collect();
    check!(s, stray.is_empty(), "hoppers outlived undead: {stray:?}");
}

// ---------------------------------------------------------------------------
// release, --release-after, --raise, status/ps/report
// ---------------------------------------------------------------------------

fn release_by_kind_and_pid_leaves_unheld_alone(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let st = s.raise(&["stopped", "2"]);
    let deaf = s.raise(&["deaf", "1"])[0];
    let unheld = s.raise(&["deaf", "1", "--unheld"])[0];
    let gone = |p: &Ident| p.state().is_none_or(|st| st == 'Z');
    s.ok(&["release", "deaf"]);
    s.until("held deaf released", T, || gone(&deaf));
    check!(s, unheld.state() == Some('S'), "release deaf took the unheld");
    check!(s, st.iter().all(|p| p.state() == Some('T')), "stopped moved");
    let ns = crate::common::ns_pid(st[0].pid).unwrap_or(-1).to_string();
    s.ok(&["release", &ns]);
    s.until("stopped released by pid", T, || gone(&st[0]));
    check!(s, st[1].state() == Some('T'), "release by pid took another");
    let ns = crate::common::ns_pid(unheld.pid).unwrap_or(-1).to_string();
    s.ok(&["release", &ns]);
    s.ok(&["release", "all"]);
    s.until("stopped released by all", T, || gone(&st[1]));
    check!(s, unheld.state() == Some('S'), "release took the unheld");
    // SPEC §1 `release [all|KIND...|PID...]`: kinds mix, `zombies` and
    // `dstate` with the hazard kinds; what is not named stays.
    let zs = s.raise(&["zombie", "2"]);
    let ds = s.raise(&["dstate", "1"]);
    let deaf = s.raise(&["deaf", "1"])[0];
    let st = s.raise(&["stopped", "1"])[0];
    check!(s, zs.len() == 2, "zombies made: {zs:?}");
    check!(s, zs.iter().all(|z| z.state() == Some('Z')), "zombies");
    check!(s, ds.first().and_then(Ident::state) == Some('D'), "dstate");
    s.ok(&["release", "zombies", "deaf", "dstate"]);
    // A released zombie is reaped: gone, not merely still Z.
    s.until("zombies, deaf and dstate released", T, || {
        zs.iter().all(|z| z.state().is_none())
            && ds.iter().chain([&deaf]).all(gone)
    });
    check!(s, st.state() == Some('T'), "release of other kinds took stopped");
    check!(s, unheld.state() == Some('S'), "release took the unheld");
    let bad = s.client(&["release", "zombies", "12"]);
    check!(s, bad.code == 2, "kinds and pids mixed: {bad:?}");
    check!(s, st.state() == Some('T'), "a refused release took stopped");
}

fn release_after_leaves_unheld_alone(mode: Mode) {
    let s = Session::start(mode, &["--release-after", "1s"], &SLEEP);
    let held = s.raise(&["stopped", "1"])[0];
    let unheld = s.raise(&["stopped", "1", "--unheld"])[0];
    s.until("--release-after releases held", T, || {
        held.state().is_none_or(|st| st == 'Z')
    });
    std::thread::sleep(Duration::from_millis(300));
    check!(s, unheld.state() == Some('T'), "--release-after took unheld");
}

fn raise_at_start_flags_and_environment(mode: Mode) {
    let s = Session::start_with(
        mode,
        &["--raise", "stopped 2", "--raise", "hopper 1 --every 5ms"],
        &SLEEP,
        |c| {
            c.env("UNDEAD_RAISE", "deaf 9");
        },
    );
    // The socket exists only once the holdings are in place.
    let n = |name| s.live(name).len();
    check!(s, n("undead-stopped") == 2, "2 stopped at start");
    check!(s, !s.hoppers().is_empty(), "1 hopper at start");
    check!(s, n("undead-deaf") == 0, "a flag wins over UNDEAD_RAISE");
    drop(s);
    let s = Session::start_with(mode, &[], &SLEEP, |c| {
        c.env("UNDEAD_RAISE", "deaf 2; escapee 1 --unheld ;");
    });
    s.until("deaf 2, escapee 1 from UNDEAD_RAISE", T, || {
        s.live("undead-deaf").len() == 2 && s.live("undead-escapee").len() == 1
    });
    s.ok(&["wait", "--deaf", "2", "--escapee", "1", "--timeout", "5s"]);
    let r = s.client(&["wait", "--stopped", "1", "--timeout", "200ms"]);
    check!(s, r.code == 1 && r.stderr.contains("0 of 1 stopped"), "{r:?}");
    for bad in [
        &["--raise", "deaf x", "--", "true"][..],
        &["--raise", "nope 1", "--", "true"],
        &["--raise", "frozen 1 --unheld", "--", "true"],
        &["--raise", "slow 1", "--", "true"],
        &["--raise", "hopper 1 --every soon", "--", "true"],
    ] {
        let mut c = Command::new(BIN);
        c.args(bad);
        let r = run_ran(&mut c, CLIENT);
        check!(s, r.code == 2, "{bad:?}: {r:?}");
        check!(s, r.stderr.trim().lines().count() == 1, "one line: {r:?}");
    }
}

fn status_ps_and_report_mark_held_and_unheld(mode: Mode) {
    let dir = Scratch::new("hazrep");
    let report = dir.path("report.json");
    let rep = report.display().to_string();
    let mut s = Session::start(mode, &["--report", &rep], &SLEEP);
    s.raise(&["deaf", "1"]);
    s.raise(&["stopped", "1", "--unheld"]);
    let st = s.ok(&["status", "--json"]).stdout;
    check!(s, st.contains("\"kind\":\"deaf\",\"unheld\":false"), "{st}");
    check!(s, st.contains("\"kind\":\"stopped\",\"unheld\":true"), "{st}");
    let text = s.ok(&["status"]).stdout;
    check!(s, text.contains("unheld") && text.contains("stopped"), "{text}");
    if mode == Mode::Subreaper {
        // ps labels only inside undead's PID namespace.
        let ps = s.ok(&["ps", "--json"]).stdout;
        check!(s, ps.contains("\"held\":\"deaf\"}"), "{ps}");
        check!(s, ps.contains("\"held\":\"stopped (unheld)\"}"), "{ps}");
    }
    let child = s.u.main_child("sleep", T).unwrap_or(-1);
    kill(child, libc::SIGKILL);
    check!(s, s.u.wait(T).is_some(), "undead exits");
    let r = fs::read_to_string(&report).unwrap_or_default();
    check!(s, r.contains("\"kind\":\"deaf\",\"unheld\":false"), "{r}");
    check!(s, r.contains("\"kind\":\"stopped\",\"unheld\":true"), "{r}");
}

// ---------------------------------------------------------------------------
// pids.max
// ---------------------------------------------------------------------------

fn pids_max_stops_creation_and_hoppers_keep_their_number(mode: Mode) {
    if !Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
        eprintln!("skipping: no v1 pids cgroup");
        return;
    }
    let cg = PidsCgroup::new(&format!("{mode:?}"), 16);
    let cg = cg.expect("a writable pids cgroup");
    let s = Session::start_with(mode, &[], &SLEEP, |c| cg.join_at_exec(c));
    let r = s.client(&["stopped", "50"]);
    check!(s, r.code == 1, "stopped 50 at pids.max=16: {r:?}");
    check!(s, r.stderr.contains("of 50 stopped"), "{r:?}");
    check!(s, r.stderr.contains("pids.max"), "{r:?}");
    check!(s, r.stderr.trim().lines().count() == 1, "one line: {r:?}");
    s.ok(&["release", "stopped"]);
    s.until("stopped released", T, || s.live("undead-stopped").is_empty());
    // Room for exactly 2 more processes: 2 lines that cannot fork.
    let used = cg.procs().len() as u32;
    cg.set_max(used + 2).unwrap();
    let r = s.client(&["hopper", "2"]);
    check!(s, r.code == 0, "hopper 2 with room for 2: {r:?}");
    let first = s.hoppers();
    std::thread::sleep(Duration::from_millis(300));
    let later = s.hoppers();
    check!(s, later.len() == 2, "2 lines keep their number: {later:?}");
    check!(s, first == later, "no room to hop, so no new pid: {later:?}");
    s.ok(&["status"]);
    s.ok(&["release", "hopper"]);
    s.until("hoppers released", T, || s.hoppers().is_empty());
}

// ---------------------------------------------------------------------------
// dstate --cwd
// ---------------------------------------------------------------------------

/// A tmpfs mounted on a scratch directory, unmounted (lazily if need be)
/// on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: PathBuf) -> Tmpfs {
        let r = run_ran(
            Command::new("mount").args([
                "-t",
                "tmpfs",
                "hz",
                &dir.display().to_string(),
            ]),
            T,
        );
        assert_eq!(r.code, 0, "mount tmpfs: {r:?}");
        Tmpfs(dir)
    }

    fn umount(&self) -> Ran {
        run_ran(Command::new("umount").arg(&self.0), T)
    }

    /// umount in the mount namespace of `pid` (undead's: as PID 1 it has
    /// its own copy of the mount, from `unshare --mount-proc`).
    fn umount_as(&self, pid: i32) -> Ran {
        let t = pid.to_string();
        let mut c = Command::new("nsenter");
        c.args(["-t", &t, "-m", "umount"]).arg(&self.0);
        run_ran(&mut c, T)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.umount().code != 0 {
            let _ = run_ran(Command::new("umount").arg("-l").arg(&self.0), T);
        }
    }
}

fn dstate_cwd_keeps_a_mount_busy(mode: Mode) {
    let scratch = Scratch::new("hzcwd");
    let data = scratch.path("data");
    fs::create_dir(&data).unwrap();
    let m = Tmpfs::new(data.clone());
    let s = Session::start(mode, &[], &SLEEP);
    let path = data.display().to_string();
    let file = scratch.path("file");
    fs::write(&file, "").unwrap();
    let r = s.client(&["dstate", "1", "--cwd", &file.display().to_string()]);
    check!(s, r.code == 2, "--cwd on a file: {r:?}");
    let mut kinds = vec!["vfork"];
    let _serial = crate::fuse::serial();
    if Path::new("/dev/fuse").exists() {
        kinds.push("fuse");
    }
    for kind in kinds {
        let v = s.raise(&["dstate", "1", "--kind", kind, "--cwd", &path])[0];
        check!(s, v.state() == Some('D'), "{kind} victim in D");
        let cwd = fs::read_link(format!("/proc/{}/cwd", v.pid)).ok();
        check!(s, cwd.as_deref() == Some(data.as_path()), "{kind}: {cwd:?}");
        let busy = m.umount_as(s.u.pid);
        check!(s, busy.code != 0, "{kind}: umount while held: {busy:?}");
        check!(s, busy.stderr.contains("busy"), "{kind}: {busy:?}");
        s.ok(&["release", "dstate"]);
        s.until("victim gone", T, || v.state().is_none_or(|st| st == 'Z'));
    }
    // Negative control: with the victims gone, the mount is not busy.
    let free = wait_for(T, || {
        let r = m.umount_as(s.u.pid);
        (r.code == 0).then_some(r)
    });
    check!(s, free.is_some(), "umount after release");
}

// ---------------------------------------------------------------------------
// frozen
// ---------------------------------------------------------------------------

use crate::common::{FREEZER, UNIFIED};

/// cgroup v2 `cgroup.freeze` (undead started in a mount namespace without
/// the v1 freezer, so the v2 hierarchy is what there is): no --unbounded
/// needed, the victims show S and die on SIGKILL while frozen.
fn frozen_v2_victims_die_on_sigkill(mode: Mode) {
    if !Path::new(UNIFIED).join("cgroup.procs").exists() {
        eprintln!("skipping: no cgroup v2 at {UNIFIED}");
        return;
    }
    let _serial = crate::fuse::serial();
    let no_v1 = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount /sys/fs/cgroup/freezer; exec \"$@\"",
        "sh",
    ];
    let how = Launch { outer: &no_v1, ..Launch::default() };
    let s = Session::launch(mode, &how, &[], &SLEEP);
    let guard = crate::common::ThawGuard::of(&s.u);
    let v = s.raise(&["frozen", "2"]);
    check!(s, v.len() == 2, "frozen 2: {v:?}");
    let dirs = guard.dirs();
    check!(s, dirs.len() == 1, "one cgroup: {dirs:?}");
    check!(s, dirs[0].1 == "cgroup.freeze", "a v2 cgroup: {dirs:?}");
    let events = fs::read_to_string(dirs[0].0.join("cgroup.events"));
    check!(s, events.is_ok_and(|e| e.contains("frozen 1")), "frozen 1");
    for p in &v {
        check!(s, p.state() == Some('S'), "{p:?} frozen in S");
    }
    kill(v[0].pid, libc::SIGKILL);
    s.until("SIGKILL ends a v2 frozen victim", T, || {
        v[0].state().is_none_or(|st| st == 'Z')
    });
    check!(s, v[1].state() == Some('S'), "the other one is still there");
    s.ok(&["release", "frozen"]);
    s.until("cgroup removed", T, || guard.dirs().is_empty());
}

fn frozen_v1_stays_d_after_sigkill_until_released(mode: Mode) {
    if !Path::new(FREEZER).join("freezer.state").exists()
        && !Path::new(FREEZER).join("tasks").exists()
    {
        eprintln!("skipping: no v1 freezer at {FREEZER}");
        return;
    }
    // `rescue` (a docker test) would thaw our cgroup: one at a time.
    let _serial = crate::fuse::serial();
    let s = Session::start(mode, &[], &SLEEP);
    let guard = crate::common::ThawGuard::of(&s.u);
    let r = s.client(&["frozen", "1"]);
    check!(s, r.code == 1 && r.stderr.contains("--unbounded"), "{r:?}");
    check!(s, guard.dirs().is_empty(), "a refused frozen left a cgroup");
    let v = s.raise(&["frozen", "2", "--unbounded"]);
    check!(s, v.len() == 2, "frozen 2: {v:?}");
    check!(s, guard.dirs().len() == 1, "one cgroup: {:?}", guard.dirs());
    for p in &v {
        check!(s, p.state() == Some('D'), "{p:?} frozen in D");
    }
    kill(v[0].pid, libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(500));
    check!(s, v[0].state() == Some('D'), "SIGKILL ended a frozen victim");
    check!(s, mask(v[0].pid, "SigPnd") & bit(libc::SIGKILL) != 0, "pending");
    s.ok(&["wait", "--frozen", "2", "--timeout", "5s"]);
    s.ok(&["release", "frozen"]);
    s.until("frozen released", T, || {
        v.iter().all(|p| p.state().is_none_or(|st| st == 'Z'))
    });
    s.until("cgroup removed", T, || guard.dirs().is_empty());
    drop(guard);
}

// ---------------------------------------------------------------------------
// The stop sequence against the hazards (SPEC §2)
// ---------------------------------------------------------------------------

// Before the stop sequence of branch `cdef` the last two failed: the
// stopped child's TERM stayed pending (undead exited only at the test's 5 s
// bound), and the unheld slow never got TERM (the whole 20 s grace).
both_modes!(
    deaf_unheld_wait_all_grace_then_kill,
    stopped_child_ends_on_term_with_cont,
    slow_unheld_wait_all_gets_term_and_drains,
);

/// `--wait-all --grace 1s` with 2 unheld deaf processes: TERM ends the
/// child, the deaf wait out the grace, SIGKILL, exit 143. Negative
/// control: held deaf processes are released at exit, not waited for.
fn deaf_unheld_wait_all_grace_then_kill(mode: Mode) {
    for (unheld, lo, hi) in [(true, 900, 5000), (false, 0, 700)] {
        let raise = if unheld { "deaf 2 --unheld" } else { "deaf 2" };
        let opts = ["--wait-all", "--grace", "1s", "--raise", raise];
        let mut s = Session::start(mode, &opts, &SLEEP);
        let deaf = s.live("undead-deaf");
        check!(s, deaf.len() == 2, "deaf 2: {deaf:?}");
        let sent = Instant::now();
        s.u.signal(libc::SIGTERM);
        let code = s.u.wait(T);
        let took = sent.elapsed();
        println!("{mode:?}: deaf 2 (unheld {unheld}) --grace 1s: {took:?}");
        check!(s, code == Some(143), "exit {code:?}");
        let ms = took.as_millis();
        check!(s, (lo..hi).contains(&ms), "unheld {unheld}: {took:?}");
        s.until("no deaf left", T, || {
            deaf.iter().all(|&p| stat(p).is_none_or(|(st, _)| st == 'Z'))
        });
    }
}

/// The main child stops itself; SIGTERM to undead must end it at once:
/// undead sends SIGCONT after the forwarded TERM (SPEC §2). Needs the
/// stop sequence of branch `cdef`.
fn stopped_child_ends_on_term_with_cont(mode: Mode) {
    let cmd = ["sh", "-c", "kill -STOP $$; sleep 1000"];
    let mut s = Session::start(mode, &[], &cmd);
    let child = s.u.main_child("sh", T).unwrap_or_else(|| s.fail("no sh"));
    s.until("the child stopped", T, || {
        stat(child).is_some_and(|(st, _)| st == 'T')
    });
    let sent = Instant::now();
    s.u.signal(libc::SIGTERM);
    let code = s.u.wait(Duration::from_secs(5));
    println!("{mode:?}: stopped child, TERM to undead: {:?}", sent.elapsed());
    check!(s, code == Some(143), "a stopped child got TERM+CONT: {code:?}");
}

/// `slow 1 --exit-after 1s --unheld` under `--wait-all --grace 20s`: the
/// stop sequence sends it TERM once the child is gone; it drains 1 s and
/// exits 0, long before the grace. Needs branch `cdef`.
fn slow_unheld_wait_all_gets_term_and_drains(mode: Mode) {
    let opts = ["--wait-all", "--grace", "20s"];
    let mut s = Session::start(mode, &opts, &SLEEP);
    s.raise(&["slow", "1", "--exit-after", "1s", "--unheld"]);
    let sent = Instant::now();
    s.u.signal(libc::SIGTERM);
    let code = s.u.wait(Duration::from_secs(25));
    let took = sent.elapsed();
    println!("{mode:?}: slow --exit-after 1s, --grace 20s: {took:?}");
    check!(s, code == Some(143), "exit {code:?}");
    check!(s, took < Duration::from_secs(5), "the grace was spent: {took:?}");
}

// ---------------------------------------------------------------------------
// PID 1's cost of hoppers
// ---------------------------------------------------------------------------

/// utime+stime of a process, in clock ticks (0 once it is gone).
fn cpu_ticks(pid: i32) -> u64 {
    Stat::of(pid).map_or(0, |s| s.utime + s.stime)
}

#[test]
fn pid1_cpu_per_hop() {
    let s = Session::start(Mode::Pid1, &[], &SLEEP);
    let before = s.ok(&["status", "--json"]).stdout;
    let reaped = |st: &str| -> u64 {
        st.split("\"reaped\":")
            .nth(1)
            .and_then(|r| r.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    s.ok(&["hopper", "10", "--every", "10ms"]);
    let (t0, r0) = (cpu_ticks(s.u.pid), reaped(&before));
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (t1, r1) =
        (cpu_ticks(s.u.pid), reaped(&s.ok(&["status", "--json"]).stdout));
    let hops = r1.saturating_sub(r0).max(1);
    let tick_us = 1_000_000 / 100; // USER_HZ
    let per_hop = (t1 - t0) * tick_us / hops;
    println!(
        "PID 1 with hopper 10 --every 10ms: {hops} hops in {:?}, {} ticks: \
         ~{per_hop} us of CPU per hop",
        start.elapsed(),
        t1 - t0
    );
    check!(s, hops > 300, "the lines hop: {hops}");
    check!(s, per_hop < 1000, "PID 1 spends {per_hop} us per hop");
}

// ---------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------

/// The engine's view of the hazards: every container, image and volume
/// gets a unique name and is removed on drop, after `undead rescue` (host
/// side) if the test raised frozen or outliving victims.
mod engine {
    use std::fs;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::Duration;

    use crate::common::{BIN, Ran, run_ran};

    pub use crate::common::engine::{BUSYBOX, DOCKERFILE};

    pub fn docker(args: &[&str]) -> Ran {
        let mut c = Command::new("docker");
        c.args(args);
        run_ran(&mut c, Duration::from_secs(120))
    }

    /// True when the engine answers and busybox is there; else says why.
    pub fn available(test: &str) -> bool {
        let why = if !std::path::Path::new(BUSYBOX).exists() {
            format!("{BUSYBOX} missing")
        } else {
            let r = docker(&["info", "--format", "{{.ServerVersion}}"]);
            if r.code == 0 {
                return true;
            }
            format!("docker info failed: {}", r.stderr.trim())
        };
        eprintln!("skipping {test}: {why}");
        false
    }

    #[derive(Default)]
    pub struct Dock {
        names: Vec<String>,
        images: Vec<String>,
        volumes: Vec<String>,
        dirs: Vec<PathBuf>,
        /// Run `undead rescue` on drop (frozen or outliving victims).
        pub rescue: bool,
    }

    impl Dock {
        pub fn name(&mut self, what: &str) -> String {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = format!(
                "undead-test-hz-{what}-{}-{nanos:x}",
                std::process::id()
            );
            self.names.push(n.clone());
            n
        }

        pub fn volume(&mut self, what: &str) -> String {
            let v = self.name(what);
            self.volumes.push(v.clone());
            let r = docker(&["volume", "create", &v]);
            assert_eq!(r.code, 0, "{r:?}");
            v
        }

        pub fn image(&mut self) -> String {
            let tag = self.name("img");
            self.images.push(tag.clone());
            let ctx = std::env::temp_dir().join(format!("{tag}-ctx"));
            fs::create_dir_all(&ctx).unwrap();
            self.dirs.push(ctx.clone());
            fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
            fs::copy(BUSYBOX, ctx.join("busybox")).unwrap();
            fs::copy(BIN, ctx.join("undead")).unwrap();
            let ctx = ctx.display().to_string();
            let r = docker(&["build", "--no-cache", "-q", "-t", &tag, &ctx]);
            assert_eq!(r.code, 0, "{r:?}");
            tag
        }

        /// `docker exec C /undead ARGS`.
        pub fn undead(&self, c: &str, args: &[&str]) -> Ran {
            let mut full = vec!["exec", c, "/undead"];
            full.extend(args);
            docker(&full)
        }

        pub fn running(&self, c: &str) -> bool {
            let r = docker(&["inspect", "-f", "{{.State.Running}}", c]);
            r.stdout.trim() == "true"
        }

        pub fn exit_code(&self, c: &str) -> i32 {
            let r = docker(&["inspect", "-f", "{{.State.ExitCode}}", c]);
            r.stdout.trim().parse().unwrap_or(-1)
        }

        /// A new image's `sleep 600` under undead `--wait-all --grace
        /// GRACE` that raised `RAISE` at start, once undead answers.
        pub fn wait_all(
            &mut self,
            what: &str,
            grace: &str,
            raise: &str,
        ) -> String {
            let img = self.image();
            let c = self.name(what);
            let grace = format!("UNDEAD_GRACE={grace}");
            let raise = format!("UNDEAD_RAISE={raise}");
            let r = docker(&[
                "run",
                "-d",
                "--name",
                &c,
                "-e",
                "UNDEAD_WAIT_ALL=1",
                "-e",
                &grace,
                "-e",
                &raise,
                &img,
                "sleep",
                "600",
            ]);
            assert_eq!(r.code, 0, "{r:?}");
            self.wait_up(&c);
            c
        }

        /// Waits until undead in `c` answers `status`.
        pub fn wait_up(&self, c: &str) {
            let up = crate::common::wait_for(Duration::from_secs(20), || {
                (self.undead(c, &["status"]).code == 0).then_some(())
            });
            assert!(up.is_some(), "undead in {c} never answered");
        }
    }

    impl Drop for Dock {
        fn drop(&mut self) {
            if self.rescue {
                let mut c = Command::new(BIN);
                c.arg("rescue");
                let r = run_ran(&mut c, Duration::from_secs(30));
                eprintln!("cleanup rescue: {}", r.stdout.trim());
            }
            for c in &self.names {
                let _ = docker(&["rm", "-f", "-v", c]);
            }
            for v in &self.volumes {
                let _ = docker(&["volume", "rm", "-f", v]);
            }
            for i in &self.images {
                let _ = docker(&["rmi", "-f", i]);
            }
            for d in &self.dirs {
                let _ = fs::remove_dir_all(d);
            }
        }
    }
}

use engine::{Dock, docker};

/// `deaf 2 --unheld` with `--wait-all --grace 3s`: `docker stop -t 30`
/// takes the grace (3 s ± 1), exit 143.
#[test]
fn docker_deaf_unheld_wait_all_grace() {
    if !engine::available("docker_deaf_unheld_wait_all_grace") {
        return;
    }
    let mut d = Dock::default();
    let c = d.wait_all("deaf", "3s", "deaf 2 --unheld");
    let st = d.undead(&c, &["status"]);
    assert_eq!(st.stdout.matches("unheld").count(), 2, "{st:?}");
    let stop = docker(&["stop", "-t", "30", &c]);
    println!("docker stop, deaf 2 --unheld, --grace 3s: {:?}", stop.took);
    assert_eq!(stop.code, 0, "{stop:?}");
    assert_eq!(d.exit_code(&c), 143);
    let secs = stop.took.as_secs_f64();
    assert!((2.0..6.0).contains(&secs), "docker stop took {secs} s");
}

/// `slow 1 --exit-after 2s --unheld` with `--wait-all --grace 20s`:
/// `docker stop` takes about the 2 s drain. Needs branch `cdef`.
#[test]
fn docker_slow_unheld_drains_within_the_grace() {
    if !engine::available("docker_slow_unheld_drains_within_the_grace") {
        return;
    }
    let mut d = Dock::default();
    let c = d.wait_all("slow", "20s", "slow 1 --exit-after 2s --unheld");
    let stop = docker(&["stop", "-t", "30", &c]);
    println!(
        "docker stop, slow --exit-after 2s, --grace 20s: {:?}",
        stop.took
    );
    assert_eq!(d.exit_code(&c), 143);
    let secs = stop.took.as_secs_f64();
    assert!((1.5..6.0).contains(&secs), "docker stop took {secs} s");
}

const STOP_SELF: &str = "kill -STOP $$; sleep 600";

/// A stopped main command: undead sends SIGCONT after the forwarded TERM,
/// so `docker stop` ends it at once. Needs branch `cdef`.
#[test]
fn docker_stopped_child_ends_at_once() {
    if !engine::available("docker_stopped_child_ends_at_once") {
        return;
    }
    let mut d = Dock::default();
    let img = d.image();
    let c = d.name("stopped");
    let r = docker(&["run", "-d", "--name", &c, &img, "sh", "-c", STOP_SELF]);
    assert_eq!(r.code, 0, "{r:?}");
    d.wait_up(&c);
    let stop = docker(&["stop", "-t", "10", &c]);
    println!("docker stop, stopped child, undead: {:?}", stop.took);
    assert_eq!(d.exit_code(&c), 143);
    assert!(stop.took < Duration::from_secs(4), "{:?}", stop.took);
}

/// The same with tini (`docker run --init`) as the image's init: the TERM
/// stays pending on the stopped child for the whole timeout, then KILL.
#[test]
fn docker_stopped_child_under_tini_waits_the_timeout() {
    if !engine::available("docker_stopped_child_under_tini_waits_the_timeout")
    {
        return;
    }
    let mut d = Dock::default();
    let img = d.image();
    let c = d.name("tini");
    let r = docker(&[
        "run",
        "-d",
        "--init",
        "--name",
        &c,
        "--entrypoint",
        "/bin/sh",
        &img,
        "-c",
        STOP_SELF,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    std::thread::sleep(Duration::from_millis(500)); // sh stops itself
    let stop = docker(&["stop", "-t", "5", &c]);
    println!("docker stop -t 5, stopped child, tini: {:?}", stop.took);
    assert_eq!(d.exit_code(&c), 137, "tini's child died of the KILL");
    assert!(stop.took >= Duration::from_millis(4500), "{:?}", stop.took);
}

/// `frozen 2 --unbounded` with a writable cgroup v1 freezer: once undead
/// is SIGKILLed the kernel waits for the frozen victims forever, so
/// `docker kill` cannot end the container; `undead rescue` on the host
/// thaws them and it ends. Without a writable hierarchy `frozen` says what
/// is missing. The SPEC's recipe is `--privileged`; this machine's dockerd
/// lacks CAP_SYS_RESOURCE, so runc cannot apply the full capability set
/// ("unable to apply caps"), and the test bind-mounts the host's freezer
/// hierarchy read-write instead (what `--privileged` gives on v1).
#[test]
fn docker_frozen_blocks_kill_until_rescue() {
    if !engine::available("docker_frozen_blocks_kill_until_rescue") {
        return;
    }
    if !Path::new(FREEZER).exists() {
        eprintln!("skipping: no v1 freezer");
        return;
    }
    // rescue is host-wide: no other undead test may hold victims now.
    let _serial = crate::fuse::serial();
    let mut d = Dock::default();
    d.rescue = true;
    let img = d.image();
    let plain = d.name("plain");
    let r = docker(&["run", "-d", "--name", &plain, &img, "sleep", "600"]);
    assert_eq!(r.code, 0, "{r:?}");
    d.wait_up(&plain);
    let r = d.undead(&plain, &["frozen", "1", "--unbounded"]);
    println!("frozen without a writable freezer: {}", r.stderr.trim());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--privileged"), "{r:?}");
    let c = d.name("frozen");
    let bind = format!("{FREEZER}:{FREEZER}");
    let r = docker(&[
        "run", "-d", "-v", &bind, "--name", &c, &img, "sleep", "600",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    d.wait_up(&c);
    let r = d.undead(&c, &["frozen", "2"]);
    println!("frozen 2 without --unbounded: {} {}", r.code, r.stderr.trim());
    assert_eq!(r.code, 1, "{r:?}");
    let r = d.undead(&c, &["frozen", "2", "--unbounded"]);
    assert_eq!(r.code, 0, "{r:?}");
    let kill = docker(&["kill", &c]);
    println!(
        "docker kill with frozen 2: exit {} after {:?}: {}",
        kill.code,
        kill.took,
        kill.stderr.trim()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.running(&c), "the frozen victims hold the container");
    let dry = run_ran(Command::new(BIN).args(["rescue", "--dry-run"]), T);
    assert!(dry.stdout.contains("found frozen cgroup"), "{dry:?}");
    let rescued = Instant::now();
    let r = run_ran(Command::new(BIN).arg("rescue"), T);
    println!("undead rescue: {}", r.stdout.trim());
    assert!(r.stdout.contains("thawed and removed frozen cgroup"), "{r:?}");
    let gone =
        wait_for(Duration::from_secs(20), || (!d.running(&c)).then_some(()));
    println!("container gone {:?} after rescue", rescued.elapsed());
    assert!(gone.is_some(), "rescue did not end the container");
}

/// `dstate 1 --kind fuse --outlive 20s --cwd /data` with a volume at
/// /data: what `docker rm -v` and `docker volume rm` say while the victim
/// lives (it outlives the container), and after the kernel frees it.
#[test]
fn docker_busy_volume_under_outliving_dstate() {
    if !engine::available("docker_busy_volume_under_outliving_dstate") {
        return;
    }
    let _serial = crate::fuse::serial();
    let mut d = Dock::default();
    d.rescue = true;
    let img = d.image();
    let vol = d.volume("vol");
    let c = d.name("busy");
    let mount = format!("{vol}:/data");
    let r = docker(&[
        "run",
        "-d",
        "--cap-add",
        "SYS_ADMIN",
        "--device",
        "/dev/fuse",
        "-v",
        &mount,
        "--name",
        &c,
        &img,
        "sleep",
        "600",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    d.wait_up(&c);
    let r = d.undead(
        &c,
        &[
            "dstate",
            "1",
            "--kind",
            "fuse",
            "--outlive",
            "20s",
            "--cwd",
            "/data",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let raised = Instant::now();
    let rm = docker(&["rm", "-f", "-v", &c]);
    println!(
        "docker rm -f -v: exit {} in {:?}: {}",
        rm.code,
        rm.took,
        rm.stderr.trim()
    );
    let vrm = docker(&["volume", "rm", &vol]);
    println!(
        "docker volume rm while the victim lives ({:?} after): exit {}: {}",
        raised.elapsed(),
        vrm.code,
        vrm.stderr.trim()
    );
    // The container can go only once the kernel frees the victim (15-30 s
    // after its request): then `rm` and `volume rm` succeed.
    let freed = wait_for(Duration::from_secs(60), || {
        let rm = docker(&["rm", "-f", "-v", &c]);
        let r = docker(&["volume", "rm", &vol]);
        (rm.code == 0 && r.code == 0).then_some(raised.elapsed())
    });
    println!("docker rm + volume rm succeeded {freed:?} after the request");
    assert!(freed.is_some(), "the volume stayed busy past the kernel bound");
    assert_ne!(vrm.code, 0, "volume rm while the victim lives: {vrm:?}");
    assert!(vrm.stderr.contains("in use"), "{vrm:?}");
    assert!(freed >= Some(Duration::from_secs(12)), "{freed:?}");
}

/// Subreaper, undead SIGKILLed (no exit path of its own runs): every
/// hazard but frozen goes by the kernel's parent-death signal, the hoppers
/// within one period (they check their parent before each hop).
#[test]
fn sigkill_of_undead_subreaper_leaves_no_hazard() {
    let s = Session::start(Mode::Subreaper, &[], &SLEEP);
    let mut made = Vec::new();
    for args in [
        &["stopped", "1"][..],
        &["deaf", "1", "--unheld"],
        &["slow", "1", "--exit-after", "1h"],
        &["escapee", "1"],
    ] {
        made.extend(s.raise(args));
    }
    s.ok(&["hopper", "2", "--every", "20ms", "--unheld"]);
    let pgid = hoppers_group(&s);
    check!(s, pgid > 0, "hoppers");
    s.u.signal(libc::SIGKILL);
    s.until("every kit process gone", T, || {
        made.iter().all(|p| !p.present() || p.state() == Some('Z'))
    });
    // The group exists while any member does (even a zombie): ESRCH
    // means every hopper is gone, which no /proc scan can tell for sure.
    let left = wait_for(T, || {
        // SAFETY: kill with signal 0 only checks; no memory is passed.
        let r = unsafe { libc::kill(-pgid, 0) };
        (r == -1).then_some(())
    });
    check!(s, left.is_some(), "hoppers outlived a SIGKILLed undead");
}
