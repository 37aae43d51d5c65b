//! The undead kit II (`dstate --kind fuse`; README, "SIGKILL-immune D
//! state"): D state that SIGKILL cannot end, over undead's own FUSE
//! server, driven through the real binary as real PID 1 (and as a
//! subreaper where the mode changes something). Victims are observed from
//! the host's /proc as undead's descendants named `undead-fuse`.
//!
//! Cleanup: every test owns a `Fuse` guard. On drop (also when the test
//! fails) it SIGKILLs its undead and, if that test's victims are still
//! there after a second, aborts only their connections through fusectl
//! (found from the victims' own mountinfo), mounting fusectl for the
//! occasion if needed. `undead rescue` aborts every undead connection on
//! the host, so the tests of this module run one at a time (`serial()`).

use std::fs;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::common::fusectl::{abort_stuck, connections_of, fusectl_mounted};
use crate::common::{
    BIN, Ident, Launch, Mode, Ran, Scratch, Stat, Undead, descendants, exec,
    kill, ns_pid, status_mask, wait_for, wchan,
};
use crate::{both_modes, check, eqnice};

const T: Duration = Duration::from_secs(10);
const COMM: &str = "undead-fuse";
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

/// A victim: a process named `undead-fuse`, by pid and start time.
type Victim = Ident;

fn victim(pid: i32) -> Option<Victim> {
    let s = Stat::of(pid).filter(|s| s.comm == COMM)?;
    Some(Ident { pid, start: s.start })
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
        victims.iter().all(Ident::exited).then(|| t0.elapsed())
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

/// Run `undead ARGS` (a client verb) on the host to completion.
fn client(args: &[&str]) -> Ran {
    exec(Command::new(BIN).args(args), None, Duration::from_secs(40))
}

/// One undead serving a control socket, and every victim seen under it.
/// Dropped (also when a test fails), it SIGKILLs undead and, if victims
/// are still there after a second, aborts their connections and only
/// theirs (`common::fusectl`); then `Undead`'s drop does the rest.
struct Fuse {
    u: Undead,
    sock: String,
    _dir: Scratch,
    seen: Vec<Victim>,
}

impl Fuse {
    fn start(mode: Mode, args: &[&str]) -> Fuse {
        Fuse::launch(mode, &[], args, &[])
    }

    /// `wrap` runs just before undead (e.g. setpriv, which execs it),
    /// `env` is added to undead's environment.
    fn launch(
        mode: Mode,
        wrap: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Fuse {
        let dir = Scratch::new("fuse");
        let sock = dir.sock();
        let mut argv = vec!["--control", sock.as_str()];
        argv.extend(args);
        let how = Launch { inner: wrap, ..Launch::default() };
        let u = Undead::launch(mode, &how, &argv, |c| {
            c.envs(env.iter().copied());
        });
        let f = Fuse { u, sock, _dir: dir, seen: Vec::new() };
        let up = wait_for(T, || (f.ctl(&["status"]).code == 0).then_some(()));
        check!(f, up.is_some(), "undead does not answer");
        f
    }

    /// `undead VERB ARGS --control SOCK`.
    fn ctl(&self, args: &[&str]) -> Ran {
        let mut argv = args.to_vec();
        argv.extend(["--control", &self.sock]);
        client(&argv)
    }

    /// `dstate N --kind fuse EXTRA`; its output and the victims it made.
    fn dstate(&mut self, n: usize, extra: &[&str]) -> (Ran, Vec<Victim>) {
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
        let now: Vec<Victim> = self
            .u
            .descendants()
            .into_iter()
            .filter_map(victim)
            .filter(|v| !v.exited())
            .collect();
        for v in &now {
            if !self.seen.contains(v) {
                self.seen.push(*v);
            }
        }
        now
    }

    fn alive(&self) -> bool {
        self.u.alive()
    }

    /// SIGKILL undead (PID 1 of the namespace in PID-1 mode).
    fn kill_undead(&mut self) {
        self.victims();
        self.u.signal(libc::SIGKILL);
    }

    /// Fail unless the victims went (`gone`, timed by the caller) and the
    /// process this test started (`unshare` or undead) exits (within T);
    /// both times since `t0`.
    #[track_caller]
    fn ended(
        &mut self,
        made: &[Victim],
        gone: Option<Duration>,
        t0: Instant,
    ) -> (Duration, Duration) {
        let exited = self.wait_exit(T).map(|_| t0.elapsed());
        let Some(gone) = gone else {
            self.fail(&format!("victims still there: {:?}", states(made)))
        };
        let outer = match self.u.mode {
            Mode::Pid1 => "unshare",
            Mode::Subreaper => "undead",
        };
        let Some(exited) = exited else {
            self.fail(&format!("{outer} did not exit"))
        };
        (gone, exited)
    }

    /// Wait for the process we started (`unshare` or undead) to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        self.u.wait(timeout).map(|_| t0.elapsed())
    }

    /// Fail with undead's stderr and the process table under it.
    #[track_caller]
    fn fail(&self, msg: &str) -> ! {
        self.u.fail(msg)
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        self.kill_undead();
        // By default undead's death frees them within milliseconds.
        let stuck = || self.seen.iter().all(Ident::exited).then_some(());
        let _ = wait_for(Duration::from_secs(1), stuck);
        abort_stuck(&self.seen);
        let _ = self.u.wait(T);
    }
}

/// The first line of a client's stderr; asserts it is the only one.
fn one_line(out: &Ran) -> &str {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line of stderr: {out:?}");
    lines[0]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

both_modes!(victims_are_d_before_any_signal);
fn victims_are_d_before_any_signal(mode: Mode) {
    let _serial = serial();
    // Ten victims as PID 1, two as a subreaper.
    let n = if mode == Mode::Pid1 { 10 } else { 2 };
    let mut f = Fuse::start(mode, &["--", "sleep", "1000"]);
    let (out, made) = f.dstate(n, &[]);
    eqnice!(0, out.code, f, "{out:?}");
    eprintln!("{mode:?}: dstate {n} --kind fuse took {}", ms(out.took));
    // Returned once observably D: no polling needed here.
    eqnice!(n, made.len(), f, "{out:?}");
    eqnice!(vec![Some('D'); n], states(&made), f);
    for v in &made {
        assert_eq!(wchan(v.pid), "request_wait_answer", "{v:?}");
    }
    // It prints their pids as undead sees them.
    let mut printed: Vec<i32> =
        out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    let mut want: Vec<i32> = match mode {
        Mode::Pid1 => made.iter().map(|v| ns_pid(v.pid).unwrap()).collect(),
        Mode::Subreaper => made.iter().map(|v| v.pid).collect(),
    };
    printed.sort_unstable();
    want.sort_unstable();
    eqnice!(want, printed, f);
    // No mount in undead's (or the host's) mount table.
    let own = fs::read_to_string(format!("/proc/{}/mountinfo", f.u.pid));
    check!(
        f,
        !own.unwrap().contains("fuse.undead"),
        "a fuse.undead mount in undead's mount table"
    );
    let out = f.ctl(&["release", "all"]);
    let want = format!("released {n} processes");
    eqnice!(want.as_str(), out.stdout.trim(), f, "{out:?}");
    check!(
        f,
        gone_within(&made, T).is_some(),
        "victims not reaped: {:?}",
        states(&made)
    );
}

#[test]
fn victims_stay_d_after_sigterm_and_sigkill_until_released() {
    let _serial = serial();
    let mut f = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let (out, made) = f.dstate(2, &[]);
    eqnice!((0, 2), (out.code, made.len()), f, "{out:?}");
    // One signal each: after a fatal SIGTERM the process is already
    // exiting (SIGNAL_GROUP_EXIT) and a later SIGKILL would be dropped.
    let (term, kill9) = (made[0], made[1]);
    kill(term.pid, libc::SIGTERM);
    kill(kill9.pid, libc::SIGKILL);
    let r = stay_d(&made, STAY);
    eqnice!(Ok(()), r, f);
    // Delivered, not lost: pending and unable to act. The kernel turned
    // the fatal SIGTERM into a per-thread SIGKILL (complete_signal).
    let pending = |v: Victim, field| status_mask(v.pid, field).unwrap();
    let (sigterm, sigkill) = (1u64 << (libc::SIGTERM - 1), 1u64 << 8);
    assert_ne!(pending(term, "ShdPnd") & sigterm, 0, "{term:?}");
    assert_ne!(pending(term, "SigPnd") & sigkill, 0, "{term:?}");
    assert_ne!(pending(kill9, "ShdPnd") & sigkill, 0, "{kill9:?}");
    check!(f, f.alive(), "undead died");
    let out = f.ctl(&["release", "all"]);
    eqnice!(0, out.code, f, "{out:?}");
    eqnice!("released 2 processes", out.stdout.trim(), f);
    let gone = gone_within(&made, T);
    check!(f, gone.is_some(), "{:?}", states(&made));
    eprintln!(
        "release of 2 signalled victims: verb {}, reaped {} later",
        ms(out.took),
        ms(gone.unwrap())
    );
}

both_modes!(release_frees_them);
fn release_frees_them(mode: Mode) {
    let _serial = serial();
    let mut f = Fuse::start(mode, &["--", "sleep", "1000"]);
    let (out, made) = f.dstate(3, &[]);
    eqnice!((0, 3), (out.code, made.len()), f, "{out:?}");
    let t0 = Instant::now();
    let out = f.ctl(&["release", "dstate"]);
    eqnice!(0, out.code, f, "{out:?}");
    // The reply means gone: at most the reap is left.
    let gone = gone_within(&made, T);
    let took = t0.elapsed();
    check!(f, gone.is_some(), "{:?}", states(&made));
    eprintln!("{mode:?}: release of 3 victims: reaped after {}", ms(took));
    check!(f, took < Duration::from_secs(1), "{took:?}");
    check!(f, f.alive(), "undead died");
    let status = f.ctl(&["status"]);
    assert!(!status.stdout.contains("held "), "{status:?}");
}

#[test]
fn release_after_frees_them() {
    let _serial = serial();
    let args = ["--release-after", "1s", "--", "sleep", "1000"];
    let mut f = Fuse::start(Mode::Pid1, &args);
    let (out, made) = f.dstate(2, &[]);
    let t0 = Instant::now();
    eqnice!((0, 2), (out.code, made.len()), f, "{out:?}");
    assert_eq!(stay_d(&made, Duration::from_millis(700)), Ok(()));
    let gone =
        gone_within(&made, Duration::from_secs(5)).map(|_| t0.elapsed());
    check!(f, gone.is_some(), "{:?}", states(&made));
    let gone = gone.unwrap();
    eprintln!("--release-after 1s: victims reaped {} after dstate", ms(gone));
    check!(f, gone < Duration::from_millis(1500), "{gone:?}");
    check!(f, f.alive(), "undead died");
}

both_modes!(dstate_at_start);
fn dstate_at_start(mode: Mode) {
    let _serial = serial();
    let args = ["--dstate", "2", "--dstate-kind", "fuse"];
    let mut f =
        Fuse::start(mode, &[&args[..], &["--", "sleep", "1000"]].concat());
    // Raised before the child is spawned and before the socket answers.
    let made = f.victims();
    eqnice!(2, made.len(), f);
    eqnice!(vec![Some('D'); 2], states(&made), f);
    let out = f.ctl(&["release", "all"]);
    eqnice!(0, out.code, f, "{out:?}");
    check!(
        f,
        gone_within(&made, T).is_some(),
        "victims not reaped: {:?}",
        states(&made)
    );
}

both_modes!(undead_death_frees_default_victims);
fn undead_death_frees_default_victims(mode: Mode) {
    let _serial = serial();
    let mut f = Fuse::start(mode, &["--", "sleep", "1000"]);
    let (out, made) = f.dstate(2, &[]);
    eqnice!((0, 2), (out.code, made.len()), f, "{out:?}");
    let t0 = Instant::now();
    f.kill_undead();
    let gone = exited_within(&made, T).map(|_| t0.elapsed());
    // PID 1's death: the whole namespace, `unshare` exits.
    let (gone, exited) = f.ended(&made, gone, t0);
    eprintln!(
        "{mode:?}: SIGKILL of undead: victims gone {}, {} exited {}",
        ms(gone),
        if mode == Mode::Pid1 { "unshare" } else { "undead" },
        ms(exited)
    );
    assert!(gone < Duration::from_secs(1), "{gone:?}");
    assert!(exited < Duration::from_secs(1), "{exited:?}");
}

#[test]
fn outlive_is_bounded_by_the_kernel() {
    let _serial = serial();
    let mut f = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let t0 = Instant::now(); // before the request: an upper bound on age
    let (out, made) = f.dstate(2, &["--outlive", "3s"]);
    let returned = t0.elapsed();
    eqnice!((0, 2), (out.code, made.len()), f, "{out:?}");
    assert!(out.stderr.contains("frees them 15-30 s"), "{out:?}");
    f.kill_undead();
    // The namespace is held in teardown like a real hang.
    let ok = stay_d(&made, Duration::from_secs(1));
    eqnice!(Ok(()), ok, f);
    assert!(f.u.wait(Duration::ZERO).is_none(), "unshare exited");
    let gone =
        gone_within(&made, Duration::from_secs(35)).map(|_| t0.elapsed());
    let (gone, exited) = f.ended(&made, gone, t0);
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
    eqnice!((0, 1), (out.code, made.len()), f, "{out:?}");
    let conn = connections_of(&made);
    eqnice!(1, conn.len(), f);
    f.kill_undead();
    assert_eq!(stay_d(&made, Duration::from_millis(500)), Ok(()));
    // Never abort what is not ours: wait for other sessions' to go.
    let mine = format!("found fuse connection {} ", conn[0]);
    let dry = wait_for(T, || {
        let dry = client(&["rescue", "--dry-run"]);
        dry.stdout.lines().all(|l| l.starts_with(&mine)).then_some(dry)
    });
    assert!(dry.is_some(), "foreign undead connections on this host");
    let dry = dry.unwrap();
    assert_eq!(dry.code, 0, "{dry:?}");
    let line = dry.stdout.trim();
    assert!(line.ends_with(&format!(" {})", made[0].pid)), "{dry:?}");
    assert_eq!(stay_d(&made, Duration::from_millis(200)), Ok(()));
    let mounted_before = fusectl_mounted();
    let t0 = Instant::now();
    let out = client(&["rescue"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), line.replacen("found", "aborted", 1));
    let gone = gone_within(&made, T).map(|_| t0.elapsed());
    let (gone, exited) = f.ended(&made, gone, t0);
    eprintln!(
        "rescue: victim gone {} after `undead rescue` started, unshare {}",
        ms(gone),
        ms(exited)
    );
    assert!(gone < Duration::from_secs(1));
    assert_eq!(fusectl_mounted(), mounted_before, "fusectl left changed");
    let after = client(&["rescue", "--dry-run"]);
    assert!(!after.stdout.contains(&mine), "{after:?}");
}

/// Start undead without capability `cap` (setpriv drops it from the
/// inheritable and bounding sets, so root's exec does not regain it); ask
/// for one fuse victim; return the refusal line. undead must run on.
fn refusal_without(mode: Mode, cap: &str, bit: u32) -> String {
    let (inh, bset) =
        (format!("--inh-caps=-{cap}"), format!("--bounding-set=-{cap}"));
    let wrap = ["setpriv", inh.as_str(), bset.as_str()];
    let f = Fuse::launch(mode, &wrap, &["--", "sleep", "1000"], &[]);
    let eff = status_mask(f.u.pid, "CapEff").unwrap();
    assert_eq!(eff & (1 << bit), 0, "{cap} still effective");
    let out = f.ctl(&["dstate", "1", "--kind", "fuse"]);
    eqnice!(1, out.code, f, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    // Nothing left: no victim, no mount helper; undead answers.
    eqnice!(1, descendants(f.u.pid).len(), f);
    check!(f, f.alive(), "undead died");
    eqnice!(0, f.ctl(&["status"]).code, f);
    one_line(&out).to_string()
}

both_modes!(without_cap_sys_admin_one_line_and_undead_runs_on);
fn without_cap_sys_admin_one_line_and_undead_runs_on(mode: Mode) {
    let _serial = serial();
    let line = refusal_without(mode, "sys_admin", 21);
    assert!(line.contains("missing CAP_SYS_ADMIN"), "{line}");
    assert!(line.contains("--cap-add SYS_ADMIN"), "{line}");
    assert!(line.contains("capabilities.add: [\"SYS_ADMIN\"]"), "{line}");
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
    eqnice!((1, 0), (out.code, made.len()), f, "{out:?}");
    let line = one_line(&out);
    assert!(line.contains("kernel.hung_task_panic is set"), "{line}");
    assert!(line.contains("hung_task_timeout_secs is 120"), "{line}");
    // A bounded hang past the timeout too (200 s: up to 215 s).
    let (out, made) = f.dstate(1, &["--outlive", "200s"]);
    eqnice!((1, 0), (out.code, made.len()), f, "{out:?}");
    assert!(one_line(&out).contains("up to 215s"), "{out:?}");
    // Within the timeout (3 s: at most 30 s) it is allowed.
    let (out, made) = f.dstate(1, &["--outlive", "3s"]);
    eqnice!((0, 1), (out.code, made.len()), f, "{out:?}");
    assert_eq!(f.ctl(&["release", "all"]).code, 0);
    check!(
        f,
        gone_within(&made, T).is_some(),
        "victims not reaped: {:?}",
        states(&made)
    );
    // Negative control: the same undead with the switch off.
    set("hung_task_panic", "0");
    let (out, made) = f.dstate(1, &[]);
    eqnice!((0, 1), (out.code, made.len()), f, "{out:?}");
    assert_eq!(states(&made), vec![Some('D')]);
    check!(f, f.alive(), "undead died");
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
        eqnice!((1, 0), (out.code, made.len()), f, "{out:?}");
        assert!(one_line(&out).contains(want), "{out:?}");
    }
    check!(f, f.alive(), "undead died");
    eqnice!(0, f.ctl(&["status"]).code, f);
}

/// The cleanup every test relies on: a guard whose victims outlive their
/// undead aborts their connection, and only theirs.
#[test]
fn guard_aborts_only_its_own_connection() {
    let _serial = serial();
    let mut a = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let mut b = Fuse::start(Mode::Pid1, &["--", "sleep", "1000"]);
    let (out, va) = a.dstate(1, &["--outlive", "60s"]);
    eqnice!((0, 1), (out.code, va.len()), a, "{out:?}");
    let (out, vb) = b.dstate(1, &["--outlive", "60s"]);
    eqnice!((0, 1), (out.code, vb.len()), b, "{out:?}");
    assert_ne!(connections_of(&va), connections_of(&vb));
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
