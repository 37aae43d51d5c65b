//! Reliability (issue #10): PID 1 never dies, blocks or lies, whatever a
//! client sends or the namespace looks like; `--pause` (SPEC §7) and the
//! stop sequence (SPEC §2). Each test drives the real binary as PID 1 of a
//! fresh PID namespace and as a subreaper, and failed on the code before
//! its fix (said in the commit that added it).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::PidsCgroup;
use crate::common::fusectl::{abort_stuck, connections_of};
use crate::common::{
    BIN, Control, Ident, Launch, Mode, Scratch, Undead, comm, many_pids,
    run_ran, stat, state, status_mask, wait_for,
};
use crate::{both_modes, check, eqnice};

/// Bound of every wait for something that should happen at once.
const T: Duration = Duration::from_secs(10);

both_modes!(
    pause_serves_the_kit_and_exits_0_on_term,
    counts_above_pid_max_are_usage_errors,
    non_utf8_names_are_seen_and_waited_for,
    a_live_socket_is_not_taken_over,
    proc_of_another_namespace_is_detected,
    reaped_fuse_victims_are_forgotten,
    failed_spawn_releases_and_removes_the_socket,
    forwarded_term_is_followed_by_cont,
    wait_all_stop_sequence_reaches_stopped_stragglers,
    grace_kill_repeats_against_processes_that_fork,
);

/// `undead OPTS --control SOCK [-- CMD]` with `env` added to undead's
/// environment, once the socket answers.
fn start_env(
    mode: Mode,
    opts: &[&str],
    cmd: &[&str],
    env: &[(&str, &str)],
) -> Control {
    let (dir, how) = (Scratch::new("rel"), Launch::default());
    Control::launch(dir, mode, &how, opts, cmd, |c| {
        c.envs(env.iter().copied());
    })
}

/// The host pids under undead named `name`, in state `st`.
fn named(f: &Control, name: &str, st: char) -> Vec<i32> {
    f.u.descendants()
        .into_iter()
        .filter(|&p| comm(p).as_deref() == Some(name) && state(p) == Some(st))
        .collect()
}

// ---------------------------------------------------------------------------
// --pause (SPEC §7)
// ---------------------------------------------------------------------------

/// `--pause` (and `UNDEAD_PAUSE=1`) runs no command, serves the kit, lives
/// through signals other than TERM/INT, and on SIGTERM releases what it
/// holds and exits 0. See: #10
fn pause_serves_the_kit_and_exits_0_on_term(mode: Mode) {
    for (flag, env) in
        [(&["--pause"][..], &[][..]), (&[][..], &[("UNDEAD_PAUSE", "1")][..])]
    {
        let mut f = start_env(mode, flag, &[], env);
        f.ok(&["zombie", "2"]);
        if named(&f, "undead-zombie", 'Z').len() != 2 {
            f.fail("want 2 held zombies");
        }
        let st = f.ok(&["status", "--json"]).stdout;
        if !st.contains("\"child\":{\"pid\":null") {
            f.fail(&format!("status names a child: {st}"));
        }
        // Negative control: only TERM/INT end the pause.
        f.u.signal(libc::SIGHUP);
        f.ok(&["status"]);
        if f.u.wait(Duration::from_millis(200)).is_some() {
            f.fail("SIGHUP ended --pause");
        }
        f.u.signal(libc::SIGTERM);
        let code = f.u.wait(T);
        if code != Some(0) {
            f.fail(&format!("exit {code:?} after SIGTERM, want 0"));
        }
        if mode == Mode::Subreaper && !f.u.descendants().is_empty() {
            f.fail("descendants left after --pause exited");
        }
        if Path::new(&f.sock).exists() {
            f.fail("socket file left behind");
        }
    }
}

/// `--pause` with a command is a usage error (exit 2, one line).
#[test]
fn pause_with_a_command_is_a_usage_error() {
    let r = run_ran(Command::new(BIN).args(["--pause", "--", "true"]), T);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
}

// ---------------------------------------------------------------------------
// Defect 1: counts are bounded by pid_max
// ---------------------------------------------------------------------------

/// One raw request line on the socket; the reply line ("" if none).
fn raw(sock: &str, line: &[u8]) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(T));
    let _ = s.write_all(line);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Environment variables for one run.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Above every pid_max: PID_MAX_LIMIT (4 Mi on 64-bit) + 1. Not the
/// host's pid_max + 1: a fresh PID namespace reports its own pid_max (4 Mi
/// on 6.18), and a count it accepts would fork until pids.max.
const ABOVE_ANY_PID_MAX: &str = "4194305";

/// A count above pid_max is a usage error (client exit 2, start exit 2),
/// never an allocation failure that kills PID 1. The huge counts come
/// first: on the old code they abort undead at once (a count within
/// pid_max would fork until pids.max instead). See: #10 (1)
fn counts_above_pid_max_are_usage_errors(mode: Mode) {
    let counts = ["10000000000", "4611686018427387905", ABOVE_ANY_PID_MAX];
    let mut f = Control::start(mode, &[], &["sleep", "600"]);
    for n in counts {
        for verb in
            [&["dstate", n][..], &["zombie", n], &["wait", "--zombies", n]]
        {
            let r = f.client(verb);
            if r.code != 2 || r.stderr.lines().count() != 1 {
                f.fail(&format!("{verb:?}: want exit 2 and one line: {r:?}"));
            }
        }
        // Past the client: the server's parser refuses it too.
        for req in [format!("dstate {n}\n"), format!("zombie {n} holder\n")] {
            let reply = raw(&f.sock, req.as_bytes());
            if !reply.contains("\"ok\":false") || !reply.contains("pid_max") {
                f.fail(&format!("{req:?}: reply {reply:?}"));
            }
        }
        if f.u.wait(Duration::ZERO).is_some() {
            f.fail(&format!("undead died of count {n}"));
        }
    }
    f.ok(&["zombie", "1"]);
    f.ok(&["status"]);
    for n in counts {
        let cases: [(&[&str], Env); 3] = [
            (&["--dstate", n, "--", "true"], &[]),
            (&["--zombies", n, "--", "true"], &[]),
            (&["--no-control", "--", "true"], &[("UNDEAD_DSTATE", n)]),
        ];
        for (args, env) in cases {
            let mut c = crate::common::command(mode);
            c.args(args).envs(env.iter().copied());
            let r = run_ran(&mut c, T);
            assert_eq!(r.code, 2, "{mode:?} {args:?} {env:?}: {r:?}");
            assert!(r.stderr.contains("pid_max"), "{r:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Defect 3: names that are not UTF-8
// ---------------------------------------------------------------------------

/// A link to `sleep` named nine 'é' (18 bytes): the kernel cuts its comm
/// at 15 bytes, mid-character (ends in 0xC3).
fn non_utf8_sleep(dir: &Scratch) -> String {
    let which =
        run_ran(Command::new("sh").args(["-c", "command -v sleep"]), T);
    let link = dir.path(&"\u{e9}".repeat(9));
    std::os::unix::fs::symlink(which.stdout.trim(), &link).unwrap();
    link.display().to_string()
}

/// Processes whose comm is not UTF-8 are seen, counted and waited for:
/// `--wait-all` waits for such a straggler, `status` lists such a withheld
/// zombie. See: #10 (3)
fn non_utf8_names_are_seen_and_waited_for(mode: Mode) {
    let dir = Scratch::new("utf8");
    let sleep = non_utf8_sleep(&dir);
    let script = format!("'{sleep}' 2 & exit 0");
    let mut c = crate::common::command(mode);
    c.args(["--no-control", "--wait-all", "--", "sh", "-c", &script]);
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 0, "{mode:?}: {r:?}");
    assert!(
        r.took >= Duration::from_millis(1800),
        "{mode:?}: --wait-all returned after {:?}, before the straggler",
        r.took
    );

    let script = format!("('{sleep}' 0 &); exec sleep 600");
    let f =
        Control::start(mode, &["--withhold-reaping"], &["sh", "-c", &script]);
    let st = wait_for(T, || {
        let st = f.ok(&["status", "--json"]).stdout;
        (!st.contains("\"withheld\":[]")).then_some(st)
    });
    let st = st.unwrap_or_else(|| f.fail("no withheld zombie in status"));
    if st.contains("\"zombies\":0") {
        f.fail(&format!("zombie not counted: {st}"));
    }
}

// ---------------------------------------------------------------------------
// Defect 4: the child's status is taken once
// ---------------------------------------------------------------------------

/// After the child exits 3 under `--wait-all`, an orphan that reuses its
/// pid and exits 42 must not change undead's exit code. PID 1 only: the
/// namespace's pid_max is lowered to 400 (per namespace since Linux 6.14)
/// so pids wrap at once; as a subreaper the host's pids would have to wrap.
/// Pids wrap to 300 (RESERVED_PIDS), so the wrapper burns pids first and
/// the child gets one above 300; the straggler leaves the child's group
/// (a pid stays taken while it names a group); a `true` now and then shifts the parity
/// of the orphans' pids (each loop forks two). See: #10 (4)
#[test]
fn child_status_is_taken_once_despite_pid_reuse() {
    let dir = Scratch::new("reuse");
    let (pidf, hit) = (dir.path("pid"), dir.path("hit"));
    let (pidf, hit) = (pidf.display(), hit.display());
    let straggler = dir.path("straggler.sh");
    fs::write(
        &straggler,
        format!(
            "n=$(cat {pidf}); i=0\n\
             while [ ! -e {hit} ] && [ $i -lt 3000 ]; do\n\
             i=$((i+1)); [ $((i % 7)) = 0 ] && /bin/true\n\
             ( sh -c '[ $$ = '$n' ] && {{ touch {hit}; exit 42; }}; exit 0' & )\n\
             done\n"
        ),
    )
    .unwrap();
    let burn = "echo 400 > /proc/sys/kernel/pid_max; i=0; \
                while [ $i -lt 320 ]; do /bin/true; i=$((i+1)); done; \
                exec \"$@\"";
    let child = format!(
        "echo $$ > {pidf}; (setsid sh {} &); exit 3",
        straggler.display()
    );
    let how = Launch { inner: &["sh", "-c", burn, "sh"], ..Launch::default() };
    let args = ["--no-control", "--wait-all", "-v", "--", "sh", "-c", &child];
    let mut u = Undead::launch(Mode::Pid1, &how, &args, |_| {});
    let code = u.wait(Duration::from_secs(60));
    let reused = Path::new(&hit.to_string()).exists();
    check!(u, reused, "negative control: no orphan reused the child's pid");
    eqnice!(Some(3), code, u);
}

// ---------------------------------------------------------------------------
// Defect 5: one socket path, one undead
// ---------------------------------------------------------------------------

fn inode(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A second undead with an explicit `--control` of a live socket fails
/// with one line (exit 1) and leaves the first one's socket alone; when
/// the file has been replaced by another's, undead's exit does not remove
/// it; a stale socket is replaced, anything else at the path is left
/// alone. See: #10 (5)
fn a_live_socket_is_not_taken_over(mode: Mode) {
    let a = Control::start(mode, &[], &["sleep", "600"]);
    let before = inode(&a.sock);
    let mut c = crate::common::command(mode);
    c.args(["--control", &a.sock, "--", "sleep", "600"]);
    let r = run_ran(&mut c, T);
    if r.code != 1 || r.stderr.lines().count() != 1 {
        a.fail(&format!("second undead: want exit 1, one line: {r:?}"));
    }
    if inode(&a.sock) != before {
        a.fail("the second undead replaced the live socket");
    }
    a.ok(&["status"]);

    // Someone else's socket now sits at A's path: A must leave it.
    let mut a = a;
    let other = a.dir.path("other.sock");
    let _keep = std::os::unix::net::UnixListener::bind(&other).unwrap();
    fs::rename(&other, &a.sock).unwrap();
    let theirs = inode(&a.sock);
    a.u.signal(libc::SIGTERM);
    if a.u.wait(T).is_none() {
        a.fail("undead did not exit on SIGTERM");
    }
    if inode(&a.sock) != theirs {
        a.fail("undead removed a socket file that was not its own");
    }

    // A stale socket (nobody listens) is replaced.
    let dir = Scratch::new("stale");
    let sock = dir.sock();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let mut c = crate::common::command(mode);
    c.args(["--control", &sock, "--", "sh", "-c"]);
    c.arg(format!("exec '{BIN}' status --control '{sock}'"));
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 0, "{mode:?}: stale socket not replaced: {r:?}");

    // Anything else at the path is left as it is: one line, exit 1.
    let file = dir.path("file.sock").display().to_string();
    fs::write(&file, "not a socket\n").unwrap();
    let mut c = crate::common::command(mode);
    c.args(["--control", &file, "--", "true"]);
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 1, "{mode:?}: a regular file at the path: {r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{mode:?}: {r:?}");
    let kept = fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(kept, "not a socket\n", "{mode:?}: the file was replaced");
    // Nor a symlink, even a dangling one.
    let link = dir.path("link.sock").display().to_string();
    std::os::unix::fs::symlink("nowhere", &link).unwrap();
    let mut c = crate::common::command(mode);
    c.args(["--control", &link, "--", "true"]);
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 1, "{mode:?}: a symlink at the path: {r:?}");
    let target = fs::read_link(&link).ok();
    assert_eq!(target, Some("nowhere".into()), "{mode:?}: link replaced");
}

/// With the default path (/run/undead.sock, here on a private tmpfs), a
/// second undead runs its command without a socket (said at -v) and the
/// first one keeps answering. See: #10 (5)
#[test]
fn default_path_taken_runs_without_a_socket() {
    let script = format!(
        "mount -t tmpfs undead-test /run || exit 90\n\
         '{BIN}' -- sleep 600 & a=$!\n\
         i=0; while [ ! -S /run/undead.sock ] && [ $i -lt 2000 ]; do \
         i=$((i+1)); sleep 0.005; done\n\
         before=$(stat -c %i /run/undead.sock)\n\
         '{BIN}' -v -- echo second-ran; echo \"second=$?\"\n\
         [ \"$(stat -c %i /run/undead.sock)\" = \"$before\" ] && echo kept\n\
         '{BIN}' status >/dev/null && echo first-answers\n\
         kill $a; wait $a\n"
    );
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let r = run_ran(&mut c, Duration::from_secs(30));
    for want in ["second-ran", "second=0", "kept", "first-answers"] {
        assert!(r.stdout.contains(want), "missing {want}: {r:?}");
    }
    assert!(r.stderr.contains("another undead answers"), "{r:?}");
}

// ---------------------------------------------------------------------------
// Defect 6: /proc of another PID namespace
// ---------------------------------------------------------------------------

/// `unshare --pid --fork` without `--mount-proc`: /proc is the host's.
/// As PID 1 undead is the namespace's init; as a subreaper it runs under
/// a `sh` that is.
fn foreign_proc(mode: Mode) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--pid", "--fork", "--kill-child"]);
    if mode == Mode::Subreaper {
        c.args(["sh", "-c", "\"$@\"; exit $?", "sh"]);
    }
    c.arg(BIN);
    c
}

/// Detected at start (one line); `--wait-all` waits until waitpid says
/// no child is left, then exits; kit verbs fail with that line; status
/// reports nothing of the host as seen or withheld. See: #10 (6)
fn proc_of_another_namespace_is_detected(mode: Mode) {
    let mut c = foreign_proc(mode);
    c.args(["--no-control", "--wait-all", "--"]);
    c.args(["sh", "-c", "sleep 1 & exit 5"]);
    let r = run_ran(&mut c, Duration::from_secs(20));
    assert_eq!(r.code, 5, "{mode:?}: {r:?}");
    assert!(r.took >= Duration::from_millis(800), "{mode:?}: {r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{mode:?}: {r:?}");
    assert!(r.stderr.contains("/proc is not"), "{mode:?}: {r:?}");

    let mut c = foreign_proc(mode);
    c.args(["--no-control", "--zombies", "1", "--", "true"]);
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 1, "{mode:?}: {r:?}");
    assert!(r.stderr.contains("/proc is not"), "{mode:?}: {r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "said once: {mode:?}: {r:?}");

    let dir = Scratch::new("proc");
    let sock = dir.sock();
    let script = format!(
        "'{BIN}' zombie 1 --control '{sock}'; echo \"zombie=$?\"; \
         '{BIN}' status --json --control '{sock}'"
    );
    let mut c = foreign_proc(mode);
    c.args(["--control", &sock, "--", "sh", "-c", &script]);
    let r = run_ran(&mut c, Duration::from_secs(20));
    assert_eq!(r.code, 0, "{mode:?}: {r:?}");
    assert!(r.stdout.contains("zombie=1"), "{mode:?}: {r:?}");
    assert!(r.stderr.matches("/proc is not").count() >= 2, "{r:?}");
    assert!(r.stdout.contains("\"withheld\":[]"), "{mode:?}: {r:?}");
    assert!(r.stdout.contains("\"zombies\":0,\"dstate\":0"), "{r:?}");
}

// ---------------------------------------------------------------------------
// Defect 7: FUSE victims reaped by the drain are forgotten
// ---------------------------------------------------------------------------

/// A FUSE victim freed behind undead's back (its connection aborted) and
/// reaped by the drain is no longer listed as held. See: #10 (7)
fn reaped_fuse_victims_are_forgotten(mode: Mode) {
    let _serial = crate::fuse::serial();
    let f = Control::start(mode, &[], &["sleep", "600"]);
    let r = f.ok(&["dstate", "1", "--kind", "fuse"]);
    let ns: i32 = r.stdout.trim().parse().unwrap();
    let victim = named(&f, "undead-fuse", 'D');
    if victim.len() != 1 {
        f.fail("want one undead-fuse victim in D");
    }
    // Only this victim's connection: it must have one to abort.
    let id = Ident::of(victim[0]);
    let id = id.unwrap_or_else(|| f.fail("the victim vanished"));
    check!(f, !connections_of(&[id]).is_empty(), "no fuse mount");
    abort_stuck(&[id]);
    if wait_for(T, || state(victim[0]).is_none().then_some(())).is_none() {
        f.fail("the victim was not reaped after the abort");
    }
    let st = f.ok(&["status", "--json"]).stdout;
    if st.contains(&format!("\"pid\":{ns},\"kind\":\"fuse\"")) {
        f.fail(&format!("reaped victim {ns} still held: {st}"));
    }
    let r = f.ok(&["release", "all"]);
    if !r.stdout.contains("released 0 processes") {
        f.fail(&format!("release of a forgotten victim: {r:?}"));
    }
}

// ---------------------------------------------------------------------------
// Defect 9: a failed spawn leaves nothing behind
// ---------------------------------------------------------------------------

/// At pids.max the child cannot be forked: undead says so (exit 1),
/// releases what it raised and removes its socket file. See: #10 (9)
fn failed_spawn_releases_and_removes_the_socket(mode: Mode) {
    let Some(cg) = PidsCgroup::new(&format!("{mode:?}"), 10) else {
        eprintln!("skipped: no writable v1 pids cgroup");
        return;
    };
    let join = cg.join_script();
    let wrap = ["sh", "-c", join.as_str(), "sh"];
    let how = match mode {
        Mode::Pid1 => {
            crate::common::Launch { inner: &wrap, ..Default::default() }
        }
        Mode::Subreaper => {
            crate::common::Launch { outer: &wrap, ..Default::default() }
        }
    };
    let dir = Scratch::new("spawn");
    let sock = dir.sock();
    let mut c = crate::common::command_in(mode, &how);
    c.args(["--zombies", "9", "--control", &sock, "--", "true"]);
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 1, "{mode:?}: {r:?}");
    assert!(r.stderr.contains("cannot run 'true'"), "{mode:?}: {r:?}");
    assert!(!Path::new(&sock).exists(), "{mode:?}: socket left: {r:?}");
}

// ---------------------------------------------------------------------------
// The stop sequence (SPEC §2)
// ---------------------------------------------------------------------------

/// Whether `sig` is pending for `pid` (SigPnd: the thread; ShdPnd: the
/// process).
fn pending(pid: i32, sig: i32) -> bool {
    ["SigPnd", "ShdPnd"].iter().any(|key| {
        status_mask(pid, key).is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
    })
}

/// A stopped child gets SIGCONT after the forwarded SIGTERM, so it acts on
/// the TERM (exit 143) instead of holding it pending until the runtime's
/// SIGKILL. Negative control: a TERM alone stays pending while it is T.
/// See: #10 (stop sequence)
fn forwarded_term_is_followed_by_cont(mode: Mode) {
    let script = "kill -STOP $$; exit 7";
    let args = ["--no-control", "--", "sh", "-c", script];
    let mut u = Undead::start(mode, &args);
    let child = u.main_child("sh", T);
    let child = child.unwrap_or_else(|| u.fail("no child"));
    let stopped = wait_for(T, || (state(child) == Some('T')).then_some(()));
    check!(u, stopped.is_some(), "child never stopped");
    crate::common::kill(child, libc::SIGTERM);
    let held = wait_for(T, || pending(child, libc::SIGTERM).then_some(()));
    check!(u, held.is_some(), "negative control: TERM not pending");
    std::thread::sleep(Duration::from_millis(100));
    eqnice!(Some('T'), state(child), u, "TERM alone ended it");
    u.signal(libc::SIGTERM);
    eqnice!(Some(143), u.wait(T), u);
}

/// `--wait-all`: after the child exited, a TERM to undead reaches the
/// stragglers with SIGCONT (a stopped one too), long before `--grace`; and
/// a TERM that arrived while the child ran reaches the stragglers once the
/// child exits. See: #10 (stop sequence)
fn wait_all_stop_sequence_reaches_stopped_stragglers(mode: Mode) {
    let straggler = "sh -c 'kill -STOP $$; sleep 100' & exit 0";
    let args = ["--no-control", "--wait-all", "--grace", "60s", "--"];
    let mut u =
        Undead::start(mode, &[&args[..], &["sh", "-c", straggler]].concat());
    // Stopped, and reparented to undead: the child has exited (else the
    // TERM would reach the child, which then dies of it: 143).
    let stopped = wait_for(T, || {
        u.descendants().into_iter().find(|&p| stat(p) == Some(('T', u.pid)))
    });
    check!(u, stopped.is_some(), "no stopped straggler");
    u.signal(libc::SIGTERM);
    eqnice!(Some(0), u.wait(T), u);

    let child = "trap 'exit 3' TERM; sleep 100 & wait";
    let args = ["--no-control", "--wait-all", "--", "sh", "-c", child];
    let mut u = Undead::start(mode, &args);
    check!(u, u.find("sleep", T).is_some(), "no sleep");
    u.signal(libc::SIGTERM);
    eqnice!(Some(3), u.wait(T), u);
}

/// Creates the stop file of a hopper chain on drop, so a chain that
/// escaped a failed test ends by itself.
struct StopFile(std::path::PathBuf);

impl Drop for StopFile {
    fn drop(&mut self) {
        let _ = fs::write(&self.0, "");
    }
}

/// Processes that fork as they are killed (chains in which each link
/// forks the next and exits at once): `--wait-all` sees them until
/// `--grace` runs out (a /proc walk racing their reparenting saw none and
/// exited at once), then the kill repeats until a scan finds nothing,
/// undead exits, and no link outlives it. See: #10 (stop sequence)
fn grace_kill_repeats_against_processes_that_fork(mode: Mode) {
    // One mode at a time, as when both ran in one test: two sets of
    // chains at once starve undead's kill loop on a loaded machine.
    // They also hold thousands of pids at times (zombies not reaped yet).
    let _one = many_pids();
    let dir = Scratch::new("hop");
    let stop = StopFile(dir.path("stop"));
    // Bounded: a chain that escapes ends by itself (and on drop).
    // 16 chains: a walk racing their reparenting loses them all now
    // and then (the old code exited early 2 runs in 3).
    let hop = format!(
        "import os\n\
         for c in range(15):\n\
         \x20   if os.fork() == 0: break\n\
         for i in range(100000):\n\
         \x20   if os.path.exists('{}'): break\n\
         \x20   if os.fork(): os._exit(0)\n",
        stop.0.display()
    );
    let child = "python3 -c \"$0\" & exit 0";
    let args = ["--no-control", "--wait-all", "--grace", "2s", "--"];
    let run = [&args[..], &["sh", "-c", child, &hop]].concat();
    let t0 = std::time::Instant::now();
    let mut u = Undead::start(mode, &run);
    // Generous: the chains load the machine while they live.
    let code = u.wait(Duration::from_secs(40));
    let took = t0.elapsed();
    let needle = stop.0.display().to_string();
    let links = || {
        crate::common::all_pids()
            .into_iter()
            .filter(|p| {
                fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c).contains(&needle)
                })
            })
            .count()
    };
    let left = wait_for(T, || (links() == 0).then_some(()));
    drop(stop);
    eqnice!(Some(0), code, u);
    check!(u, left.is_some(), "the chain outlived undead");
    // The chains live until the grace runs out: a walk that lost them
    // while they were being reparented would exit early.
    check!(u, took >= Duration::from_millis(1800), "exited after {took:?}");
}
