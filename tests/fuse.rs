//! The undead kit II (SPEC §3, `fuse`): SIGKILL-immune D state over
//! undead's own FUSE server, driven through the real binary as real PID 1
//! (and as a subreaper where the mode changes something). Victims are
//! observed from the host's /proc as undead's descendants named
//! `undead-fuse`.
//!
//! Cleanup: every test owns a `Fuse` guard. On drop (also when the test
//! fails) it SIGKILLs its undead and, if that test's victims are still
//! there after a second, aborts only their connections through fusectl
//! (found from the victims' own mountinfo), mounting fusectl for the
//! occasion if needed. `undead rescue` aborts every undead connection on
//! the host, so the tests of this module run one at a time (`SERIAL`).

use std::fs;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::common::{
    BIN, MODES, Mode, Scratch, children_of, comm, descendants, kill,
    status_field, wait_for,
};

const T: Duration = Duration::from_secs(10);
const COMM: &str = "undead-fuse";
const FUSECTL: &str = "/sys/fs/fuse/connections";
/// The D state is checked this long after each signal.
const STAY: Duration = Duration::from_secs(2);

static SERIAL: Mutex<()> = Mutex::new(());

/// Held while a test raises FUSE victims: `rescue` is host-wide.
pub(crate) struct Serial {
    _host: Option<nix::fcntl::Flock<fs::File>>,
    _here: MutexGuard<'static, ()>,
}

/// One fuse test at a time, in this test process (a mutex; a failed test
/// must not poison the others) and on the host (an flock on a file in
/// /tmp: a second `cargo test` running beside this one, say in another
/// checkout, must not have its victims rescued under it). Other modules
/// that raise fuse victims (docker) hold it too.
pub(crate) fn serial() -> Serial {
    let here = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let host = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/undead-tests-fuse.lock")
        .ok()
        .and_then(|f| {
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                .ok()
        });
    Serial { _host: host, _here: here }
}

/// A process identified by pid and start time, so a reused pid is not
/// mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Victim {
    pid: i32,
    start: u64,
}

/// (state, start time, comm) from /proc/PID/stat and /proc/PID/comm.
fn proc_info(pid: i32) -> Option<(char, u64, String)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> =
        text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let state = rest.first()?.chars().next()?;
    // Field 22 (starttime); `rest` starts at field 3 (state).
    let start = rest.get(19)?.parse().ok()?;
    Some((state, start, comm(pid)?))
}

impl Victim {
    fn of(pid: i32) -> Option<Victim> {
        let (_, start, name) = proc_info(pid)?;
        (name == COMM).then_some(Victim { pid, start })
    }

    /// Its state letter while it exists (a zombie included): None once it
    /// has been reaped.
    fn state(&self) -> Option<char> {
        let (state, start, _) = proc_info(self.pid)?;
        (start == self.start).then_some(state)
    }

    /// Its pid in the innermost PID namespace (what undead prints).
    fn ns_pid(&self) -> Option<i32> {
        status_field(self.pid, "NSpid")?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    }
}

fn states(victims: &[Victim]) -> Vec<Option<char>> {
    victims.iter().map(Victim::state).collect()
}

/// Poll until every victim is gone (reaped); how long it took.
fn gone_within(victims: &[Victim], timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    wait_for(timeout, || {
        victims.iter().all(|v| v.state().is_none()).then(|| t0.elapsed())
    })
}

/// Poll until every victim has exited: a zombie or reaped. (An orphan's
/// reaping is up to the host's init, not undead.)
fn exited_within(victims: &[Victim], timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    wait_for(timeout, || {
        let dead = |v: &Victim| matches!(v.state(), None | Some('Z'));
        victims.iter().all(dead).then(|| t0.elapsed())
    })
}

/// Poll every 10 ms for `d` that every victim stays `D`. A signal wakes
/// a killable wait for a moment (`R`) before the uninterruptible one
/// (`request_wait_answer`): allow 200 ms to settle first.
fn stay_d(victims: &[Victim], d: Duration) -> Result<(), String> {
    let settle = Duration::from_millis(200);
    let all_d = || states(victims).iter().all(|s| *s == Some('D'));
    let _ = wait_for(settle, || all_d().then_some(()));
    let end = Instant::now() + d;
    while Instant::now() < end {
        // A fatal signal arriving later (the namespace's own SIGKILL when
        // undead dies) wakes the killable wait for an instant (R) before
        // the uninterruptible one: only a victim that does not come back
        // to D within `settle` has left it.
        if !all_d() && wait_for(settle, || all_d().then_some(())).is_none() {
            return Err(format!("{victims:?} left D: {:?}", states(victims)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A finished client run.
#[derive(Debug)]
struct Out {
    code: i32,
    out: String,
    err: String,
    took: Duration,
}

/// Run `undead ARGS` (a client verb) on the host to completion.
fn client(args: &[&str]) -> Out {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut se = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let status =
        wait_for(Duration::from_secs(40), || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let took = t0.elapsed();
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    Out { code, out, err: errs.join().unwrap(), took }
}

/// One undead (in PID-1 mode inside `unshare`), its control socket, and
/// every victim seen under it. Drop cleans up: see the module doc.
struct Fuse {
    mode: Mode,
    child: Child,
    /// undead's pid on the host.
    pid: i32,
    sock: String,
    dir: Scratch,
    seen: Vec<Victim>,
    exited: bool,
}

impl Fuse {
    fn start(mode: Mode, args: &[&str]) -> Fuse {
        Fuse::launch(mode, &[], args, &[])
    }

    /// `wrap` runs between `unshare` and undead (e.g. setpriv), `env` is
    /// added to undead's environment.
    fn launch(
        mode: Mode,
        wrap: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Fuse {
        let dir = Scratch::new("fuse");
        let sock = dir.sock();
        let mut argv: Vec<&str> = Vec::new();
        if mode == Mode::Pid1 {
            argv.extend(["unshare", "--pid", "--fork", "--mount-proc"]);
            argv.push("--kill-child");
        }
        argv.extend(wrap);
        argv.extend([BIN, "--control", &sock]);
        argv.extend(args);
        let stderr = fs::File::create(dir.path("stderr")).unwrap();
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let outer = child.id() as i32;
        // Found by comm: `setpriv` (or unshare's fork) execs undead. The
        // process we started first: as a subreaper it *is* undead, and its
        // children (the main child before its exec, undead-guard before it
        // names itself) are called `undead` for a moment too; taking one of
        // them for undead made `descendants(f.pid)` empty (a flaky test).
        let pid = wait_for(T, || {
            std::iter::once(outer)
                .chain(children_of(outer))
                .find(|&p| comm(p).as_deref() == Some("undead"))
        });
        let f = Fuse {
            mode,
            child,
            pid: pid.unwrap_or(-1),
            sock,
            dir,
            seen: Vec::new(),
            exited: false,
        };
        assert!(pid.is_some(), "undead did not start{}", f.context());
        let up = wait_for(T, || (f.ctl(&["status"]).code == 0).then_some(()));
        assert!(up.is_some(), "undead does not answer{}", f.context());
        f
    }

    /// `undead VERB ARGS --control SOCK`.
    fn ctl(&self, args: &[&str]) -> Out {
        let mut argv = args.to_vec();
        argv.extend(["--control", &self.sock]);
        client(&argv)
    }

    /// `dstate N --kind fuse EXTRA`; its output and the victims it made.
    fn dstate(&mut self, n: usize, extra: &[&str]) -> (Out, Vec<Victim>) {
        let n = n.to_string();
        let mut args = vec!["dstate", &n, "--kind", "fuse"];
        args.extend(extra);
        let before = self.victims();
        let out = self.ctl(&args);
        let made = self.victims().into_iter().filter(|v| !before.contains(v));
        (out, made.collect())
    }

    /// The live `undead-fuse` descendants of undead (recorded for Drop).
    fn victims(&mut self) -> Vec<Victim> {
        let now: Vec<Victim> = descendants(self.pid)
            .into_iter()
            .filter_map(Victim::of)
            .filter(|v| !matches!(v.state(), None | Some('Z')))
            .collect();
        for v in &now {
            if !self.seen.contains(v) {
                self.seen.push(*v);
            }
        }
        now
    }

    fn alive(&self) -> bool {
        proc_info(self.pid).is_some_and(|(s, _, n)| s != 'Z' && n == "undead")
    }

    /// SIGKILL undead (PID 1 of the namespace in PID-1 mode).
    fn kill_undead(&mut self) {
        self.victims();
        kill(self.pid, libc::SIGKILL);
    }

    /// Wait for the process we started (`unshare` or undead) to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let child = &mut self.child;
        let done = wait_for(timeout, || child.try_wait().unwrap());
        self.exited |= done.is_some();
        done.map(|_| t0.elapsed())
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path("stderr")).unwrap_or_default()
    }

    /// What a failure message needs: undead's stderr and its processes.
    fn context(&self) -> String {
        let table: Vec<String> = descendants(self.pid)
            .into_iter()
            .map(|p| format!("{p} {:?}", proc_info(p)))
            .collect();
        format!(
            "\n mode: {:?}\n undead stderr:\n{}\n processes:\n{}\n",
            self.mode,
            self.stderr(),
            table.join("\n")
        )
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        self.kill_undead();
        // A zombie holds no connection.
        let stuck = || -> Vec<Victim> {
            let alive = |v: &Victim| !matches!(v.state(), None | Some('Z'));
            self.seen.iter().copied().filter(alive).collect()
        };
        // By default undead's death frees them within milliseconds.
        let _ = wait_for(Duration::from_secs(1), || {
            stuck().is_empty().then_some(())
        });
        let left = stuck();
        if !left.is_empty() {
            abort_own(&left);
            if exited_within(&left, T).is_none() {
                eprintln!("cleanup: {left:?} still there after the abort");
            }
        }
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.wait_exit(T);
        }
    }
}

/// The fusectl directory of each connection mounted in these processes'
/// own mount tables with undead's fs type: (st_dev minor).
fn own_connections(victims: &[Victim]) -> Vec<u32> {
    let mut conns = Vec::new();
    for v in victims.iter().filter(|v| v.state().is_some()) {
        let path = format!("/proc/{}/mountinfo", v.pid);
        let info = fs::read_to_string(path).unwrap_or_default();
        for line in info.lines().filter(|l| l.contains(" - fuse.undead ")) {
            let dev = line.split(' ').nth(2).unwrap_or("");
            if let Some(("0", minor)) = dev.split_once(':')
                && let Ok(minor) = minor.parse()
                && !conns.contains(&minor)
            {
                conns.push(minor);
            }
        }
    }
    conns
}

fn fusectl_mounted() -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(&format!(" {FUSECTL} "))))
}

fn sh(argv: &[&str]) -> bool {
    Command::new(argv[0]).args(&argv[1..]).status().is_ok_and(|s| s.success())
}

/// Abort the connections of these (our own) victims, and only those.
fn abort_own(victims: &[Victim]) {
    let conns = own_connections(victims);
    eprintln!("cleanup: {victims:?} stuck: aborting connections {conns:?}");
    let mounted_before = fusectl_mounted();
    if !mounted_before {
        sh(&["mount", "-t", "fusectl", "none", FUSECTL]);
    }
    for conn in conns {
        let _ = fs::write(format!("{FUSECTL}/{conn}/abort"), "1");
    }
    if !mounted_before {
        sh(&["umount", FUSECTL]);
    }
}

/// The first line of a client's stderr; asserts it is the only one.
fn one_line(out: &Out) -> &str {
    let lines: Vec<&str> = out.err.lines().collect();
    assert_eq!(lines.len(), 1, "want one line of stderr: {out:?}");
    lines[0]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn victims_are_d_before_any_signal() {
    let _serial = serial();
    for (mode, n) in [(Mode::Pid1, 10), (Mode::Subreaper, 2)] {
        let mut f = Fuse::start(mode, &["--", "sleep", "1000"]);
        let (out, made) = f.dstate(n, &[]);
        assert_eq!(out.code, 0, "{out:?}{}", f.context());
        eprintln!("{mode:?}: dstate {n} --kind fuse took {}", ms(out.took));
        // Returned once observably D: no polling needed here.
        assert_eq!(made.len(), n, "{out:?}{}", f.context());
        assert_eq!(states(&made), vec![Some('D'); n], "{}", f.context());
        for v in &made {
            let wchan = fs::read_to_string(format!("/proc/{}/wchan", v.pid));
            assert_eq!(wchan.unwrap(), "request_wait_answer", "{v:?}");
        }
        // It prints their pids as undead sees them.
        let mut printed: Vec<i32> =
            out.out.lines().map(|l| l.parse().unwrap()).collect();
        let mut want: Vec<i32> = match mode {
            Mode::Pid1 => made.iter().map(|v| v.ns_pid().unwrap()).collect(),
            Mode::Subreaper => made.iter().map(|v| v.pid).collect(),
        };
        printed.sort_unstable();
        want.sort_unstable();
        assert_eq!(printed, want, "{}", f.context());
        // No mount in undead's (or the host's) mount table.
        let own = fs::read_to_string(format!("/proc/{}/mountinfo", f.pid));
        assert!(!own.unwrap().contains("fuse.undead"), "{}", f.context());
        let out = f.ctl(&["release", "all"]);
        assert_eq!(out.out.trim(), format!("released {n} processes"));
        assert!(gone_within(&made, T).is_some(), "{}", f.context());
    }
}

#[test]
fn victims_stay_d_after_sigterm_and_sigkill_until_released() {
    let _serial = serial();
    let mut f = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let (out, made) = f.dstate(2, &[]);
    assert_eq!((out.code, made.len()), (0, 2), "{out:?}{}", f.context());
    // One signal each: after a fatal SIGTERM the process is already
    // exiting (SIGNAL_GROUP_EXIT) and a later SIGKILL would be dropped.
    let (term, kill9) = (made[0], made[1]);
    kill(term.pid, libc::SIGTERM);
    kill(kill9.pid, libc::SIGKILL);
    let r = stay_d(&made, STAY);
    assert_eq!(r, Ok(()), "{}", f.context());
    // Delivered, not lost: pending and unable to act. The kernel turned
    // the fatal SIGTERM into a per-thread SIGKILL (complete_signal).
    let pending = |v: Victim, field| {
        let mask = status_field(v.pid, field).unwrap();
        u64::from_str_radix(&mask, 16).unwrap()
    };
    let (sigterm, sigkill) = (1u64 << (libc::SIGTERM - 1), 1u64 << 8);
    assert_ne!(pending(term, "ShdPnd") & sigterm, 0, "{term:?}");
    assert_ne!(pending(term, "SigPnd") & sigkill, 0, "{term:?}");
    assert_ne!(pending(kill9, "ShdPnd") & sigkill, 0, "{kill9:?}");
    assert!(f.alive(), "{}", f.context());
    let out = f.ctl(&["release", "all"]);
    assert_eq!(out.code, 0, "{out:?}{}", f.context());
    assert_eq!(out.out.trim(), "released 2 processes", "{}", f.context());
    let gone = gone_within(&made, T);
    assert!(gone.is_some(), "{:?}{}", states(&made), f.context());
    eprintln!(
        "release of 2 signalled victims: verb {}, reaped {} later",
        ms(out.took),
        ms(gone.unwrap())
    );
}

#[test]
fn release_frees_them() {
    let _serial = serial();
    for mode in MODES {
        let mut f = Fuse::start(mode, &["--", "sleep", "1000"]);
        let (out, made) = f.dstate(3, &[]);
        assert_eq!((out.code, made.len()), (0, 3), "{out:?}{}", f.context());
        let t0 = Instant::now();
        let out = f.ctl(&["release", "dstate"]);
        assert_eq!(out.code, 0, "{out:?}{}", f.context());
        // The reply means gone: at most the reap is left.
        let gone = gone_within(&made, T);
        let took = t0.elapsed();
        assert!(gone.is_some(), "{:?}{}", states(&made), f.context());
        eprintln!("{mode:?}: release of 3 victims: reaped after {}", ms(took));
        assert!(took < Duration::from_secs(1), "{took:?}{}", f.context());
        assert!(f.alive(), "{}", f.context());
        let status = f.ctl(&["status"]);
        assert!(!status.out.contains("held "), "{status:?}");
    }
}

#[test]
fn release_after_frees_them() {
    let _serial = serial();
    let args = ["--release-after", "1s", "--", "sleep", "1000"];
    let mut f = Fuse::start(Mode::Pid1, &args);
    let (out, made) = f.dstate(2, &[]);
    let t0 = Instant::now();
    assert_eq!((out.code, made.len()), (0, 2), "{out:?}{}", f.context());
    assert_eq!(stay_d(&made, Duration::from_millis(700)), Ok(()));
    let gone =
        gone_within(&made, Duration::from_secs(5)).map(|_| t0.elapsed());
    assert!(gone.is_some(), "{:?}{}", states(&made), f.context());
    let gone = gone.unwrap();
    eprintln!("--release-after 1s: victims reaped {} after dstate", ms(gone));
    assert!(gone < Duration::from_millis(1500), "{gone:?}{}", f.context());
    assert!(f.alive(), "{}", f.context());
}

#[test]
fn dstate_at_start() {
    let _serial = serial();
    for mode in MODES {
        let args = ["--dstate", "2", "--dstate-kind", "fuse"];
        let mut f =
            Fuse::start(mode, &[&args[..], &["--", "sleep", "1000"]].concat());
        // Raised before the child is spawned and before the socket answers.
        let made = f.victims();
        assert_eq!(made.len(), 2, "{}", f.context());
        assert_eq!(states(&made), vec![Some('D'); 2], "{}", f.context());
        let out = f.ctl(&["release", "all"]);
        assert_eq!(out.code, 0, "{out:?}{}", f.context());
        assert!(gone_within(&made, T).is_some(), "{}", f.context());
    }
}

#[test]
fn undead_death_frees_default_victims() {
    let _serial = serial();
    for mode in MODES {
        let mut f = Fuse::start(mode, &["--", "sleep", "1000"]);
        let (out, made) = f.dstate(2, &[]);
        assert_eq!((out.code, made.len()), (0, 2), "{out:?}{}", f.context());
        let t0 = Instant::now();
        f.kill_undead();
        let gone = exited_within(&made, T).map(|_| t0.elapsed());
        // PID 1's death: the whole namespace, `unshare` exits.
        let exited = f.wait_exit(T).map(|_| t0.elapsed());
        assert!(gone.is_some(), "{:?}{}", states(&made), f.context());
        assert!(exited.is_some(), "{}", f.context());
        let (gone, exited) = (gone.unwrap(), exited.unwrap());
        eprintln!(
            "{mode:?}: SIGKILL of undead: victims gone {}, {} exited {}",
            ms(gone),
            if mode == Mode::Pid1 { "unshare" } else { "undead" },
            ms(exited)
        );
        assert!(gone < Duration::from_secs(1), "{gone:?}");
        assert!(exited < Duration::from_secs(1), "{exited:?}");
    }
}

#[test]
fn outlive_is_bounded_by_the_kernel() {
    let _serial = serial();
    let mut f = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let t0 = Instant::now(); // before the request: an upper bound on age
    let (out, made) = f.dstate(2, &["--outlive", "3s"]);
    let returned = t0.elapsed();
    assert_eq!((out.code, made.len()), (0, 2), "{out:?}{}", f.context());
    assert!(out.err.contains("frees them 15-30 s"), "{out:?}");
    f.kill_undead();
    // The namespace is held in teardown like a real hang.
    let ok = stay_d(&made, Duration::from_secs(1));
    assert_eq!(ok, Ok(()), "{}", f.context());
    assert!(f.child.try_wait().unwrap().is_none(), "unshare exited");
    let gone =
        gone_within(&made, Duration::from_secs(35)).map(|_| t0.elapsed());
    let exited = f.wait_exit(T).map(|_| t0.elapsed());
    assert!(gone.is_some(), "{:?}{}", states(&made), f.context());
    assert!(exited.is_some(), "{}", f.context());
    let (gone, exited) = (gone.unwrap(), exited.unwrap());
    eprintln!(
        "--outlive 3s: freed by the kernel {:.1} s after the request \
         (unshare exited at {:.1} s; dstate returned at {})",
        gone.as_secs_f64(),
        exited.as_secs_f64(),
        ms(returned)
    );
    // max(3 s, 15 s) .. +15 s (the kernel's check period) from the
    // request, which was made between t0 and `returned`; the check runs
    // from a delayed work item, seen up to 0.1 s late (30.1 s once), so
    // allow a second of slack over the window's upper edge.
    assert!(gone >= Duration::from_secs(15) - returned, "{gone:?}");
    assert!(gone <= Duration::from_secs(31), "{gone:?}");
}

#[test]
fn rescue_frees_a_victim_whose_server_was_killed() {
    let _serial = serial();
    let mut f = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let (out, made) = f.dstate(1, &["--outlive", "60s"]);
    assert_eq!((out.code, made.len()), (0, 1), "{out:?}{}", f.context());
    let conn = own_connections(&made);
    assert_eq!(conn.len(), 1, "{}", f.context());
    f.kill_undead();
    assert_eq!(stay_d(&made, Duration::from_millis(500)), Ok(()));
    // Never abort what is not ours: wait for other sessions' to go.
    let mine = format!("found fuse connection {} ", conn[0]);
    let dry = wait_for(T, || {
        let dry = client(&["rescue", "--dry-run"]);
        dry.out.lines().all(|l| l.starts_with(&mine)).then_some(dry)
    });
    assert!(dry.is_some(), "foreign undead connections on this host");
    let dry = dry.unwrap();
    assert_eq!(dry.code, 0, "{dry:?}");
    let line = dry.out.trim();
    assert!(line.ends_with(&format!(" {})", made[0].pid)), "{dry:?}");
    assert_eq!(stay_d(&made, Duration::from_millis(200)), Ok(()));
    let mounted_before = fusectl_mounted();
    let t0 = Instant::now();
    let out = client(&["rescue"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.out.trim(), line.replacen("found", "aborted", 1));
    let gone = gone_within(&made, T).map(|_| t0.elapsed());
    let exited = f.wait_exit(T).map(|_| t0.elapsed());
    assert!(gone.is_some(), "{:?}{}", states(&made), f.context());
    assert!(exited.is_some(), "{}", f.context());
    eprintln!(
        "rescue: victim gone {} after `undead rescue` started, unshare {}",
        ms(gone.unwrap()),
        ms(exited.unwrap())
    );
    assert!(gone.unwrap() < Duration::from_secs(1));
    assert_eq!(fusectl_mounted(), mounted_before, "fusectl left changed");
    let after = client(&["rescue", "--dry-run"]);
    assert!(!after.out.contains(&mine), "{after:?}");
}

/// Start undead without capability `cap` (setpriv drops it from the
/// inheritable and bounding sets, so root's exec does not regain it); ask
/// for one fuse victim; return the refusal line. undead must run on.
fn refusal_without(mode: Mode, cap: &str, bit: u32) -> String {
    let (inh, bset) =
        (format!("--inh-caps=-{cap}"), format!("--bounding-set=-{cap}"));
    let wrap = ["setpriv", inh.as_str(), bset.as_str()];
    let f = Fuse::launch(mode, &wrap, &["--", "sleep", "1000"], &[]);
    let eff = status_field(f.pid, "CapEff").unwrap();
    let eff = u64::from_str_radix(&eff, 16).unwrap();
    assert_eq!(eff & (1 << bit), 0, "{cap} still effective");
    let out = f.ctl(&["dstate", "1", "--kind", "fuse"]);
    assert_eq!(out.code, 1, "{out:?}{}", f.context());
    assert_eq!(out.out, "", "{out:?}");
    // Nothing left: no victim, no mount helper; undead answers.
    assert_eq!(descendants(f.pid).len(), 1, "{}", f.context());
    assert!(f.alive(), "{}", f.context());
    assert_eq!(f.ctl(&["status"]).code, 0, "{}", f.context());
    one_line(&out).to_string()
}

#[test]
fn without_cap_sys_admin_one_line_and_undead_runs_on() {
    let _serial = serial();
    for mode in MODES {
        let line = refusal_without(mode, "sys_admin", 21);
        assert!(line.contains("missing CAP_SYS_ADMIN"), "{line}");
        assert!(line.contains("--cap-add SYS_ADMIN"), "{line}");
        assert!(line.contains("capabilities.add: [\"SYS_ADMIN\"]"), "{line}");
    }
}

/// setns(CLONE_NEWNS) into the private mount namespace needs
/// CAP_SYS_CHROOT too (Docker grants it; a `drop: [ALL]` pod does not).
#[test]
fn without_cap_sys_chroot_one_line_and_undead_runs_on() {
    let _serial = serial();
    let line = refusal_without(Mode::Pid1, "sys_chroot", 18);
    assert!(line.contains("missing CAP_SYS_CHROOT"), "{line}");
    assert!(line.contains("capabilities.add: [\"SYS_CHROOT\"]"), "{line}");
}

#[test]
fn hung_task_panic_is_refused() {
    let _serial = serial();
    let sys = Scratch::new("procsys");
    fs::create_dir_all(sys.path("kernel")).unwrap();
    let set = |name: &str, v: &str| {
        fs::write(sys.path("kernel").join(name), format!("{v}\n")).unwrap();
    };
    set("hung_task_panic", "1");
    set("hung_task_timeout_secs", "120");
    let root = sys.0.display().to_string();
    let env = [("UNDEAD_PROC_SYS", root.as_str())];
    let mut f = Fuse::launch(Mode::Pid1, &[], &["--", "sleep", "1000"], &env);
    // Until released: may outlast the 120 s.
    let (out, made) = f.dstate(1, &[]);
    assert_eq!((out.code, made.len()), (1, 0), "{out:?}{}", f.context());
    let line = one_line(&out);
    assert!(line.contains("kernel.hung_task_panic is set"), "{line}");
    assert!(line.contains("hung_task_timeout_secs is 120"), "{line}");
    // A bounded hang past the timeout too (200 s: up to 215 s).
    let (out, made) = f.dstate(1, &["--outlive", "200s"]);
    assert_eq!((out.code, made.len()), (1, 0), "{out:?}{}", f.context());
    assert!(one_line(&out).contains("up to 215s"), "{out:?}");
    // Within the timeout (3 s: at most 30 s) it is allowed.
    let (out, made) = f.dstate(1, &["--outlive", "3s"]);
    assert_eq!((out.code, made.len()), (0, 1), "{out:?}{}", f.context());
    assert_eq!(f.ctl(&["release", "all"]).code, 0);
    assert!(gone_within(&made, T).is_some(), "{}", f.context());
    // Negative control: the same undead with the switch off.
    set("hung_task_panic", "0");
    let (out, made) = f.dstate(1, &[]);
    assert_eq!((out.code, made.len()), (0, 1), "{out:?}{}", f.context());
    assert_eq!(states(&made), vec![Some('D')]);
    assert!(f.alive(), "{}", f.context());
}

#[test]
fn outlive_outside_the_kernels_range_is_refused() {
    let _serial = serial();
    let mut f = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    for (outlive, want) in [
        ("65536s", "above the kernel's limit of 65535s"),
        ("0s", "at least 1s"),
    ] {
        let (out, made) = f.dstate(1, &["--outlive", outlive]);
        assert_eq!((out.code, made.len()), (1, 0), "{out:?}{}", f.context());
        assert!(one_line(&out).contains(want), "{out:?}");
    }
    assert!(f.alive(), "{}", f.context());
    assert_eq!(f.ctl(&["status"]).code, 0, "{}", f.context());
}

/// The cleanup every test relies on: a guard whose victims outlive their
/// undead aborts their connection, and only theirs.
#[test]
fn guard_aborts_only_its_own_connection() {
    let _serial = serial();
    let mut a = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let mut b = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let (out, va) = a.dstate(1, &["--outlive", "60s"]);
    assert_eq!((out.code, va.len()), (0, 1), "{out:?}{}", a.context());
    let (out, vb) = b.dstate(1, &["--outlive", "60s"]);
    assert_eq!((out.code, vb.len()), (0, 1), "{out:?}{}", b.context());
    assert_ne!(own_connections(&va), own_connections(&vb));
    let mounted_before = fusectl_mounted();
    let t0 = Instant::now();
    drop(a);
    assert!(exited_within(&va, Duration::ZERO).is_some(), "{va:?}");
    eprintln!("guard: stuck victim cleaned up in {}", ms(t0.elapsed()));
    assert_eq!(stay_d(&vb, Duration::from_millis(300)), Ok(()));
    assert_eq!(fusectl_mounted(), mounted_before, "fusectl left changed");
    b.kill_undead();
    assert_eq!(stay_d(&vb, Duration::from_millis(300)), Ok(()));
    drop(b);
    assert!(exited_within(&vb, Duration::ZERO).is_some(), "{vb:?}");
}
