//! The undead kit I (issue #4): zombies, withheld reaping, vfork D state,
//! release, the control socket and the client verbs, driven from the host
//! against the real binary as PID 1 of a fresh PID namespace and as a
//! subreaper.
//!
//! Every assertion is a /proc fact seen from the host (state letter, ppid,
//! comm, wchan, SigIgn, presence), with pids the verbs print (undead's PID
//! namespace) mapped to host pids through `NSpid`. A process is named by
//! pid and start time ([`Ident`]), so "gone" cannot be fooled by pid reuse.
//! Waits are bounded polls; a failure prints undead's stderr and the
//! process table under it.

use std::fs;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::control::CLIENT;
use crate::common::{
    BIN, Control, Ident, KillOnDrop, Launch, Mode, PidsCgroup, Ran, SHRUGGED,
    Scratch, Stat, Undead, comm, exec, many_pids, run_ran, stat, status_mask,
    wait_for, wchan,
};
use crate::{both_modes, check, control_newtype};

/// Bound of every wait for something that should happen at once.
const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Fixture: one undead with its own control socket, seen from the host
// ---------------------------------------------------------------------------

/// One process under undead, as the host's /proc shows it.
#[derive(Debug, Clone)]
struct P {
    id: Ident,
    ppid: i32,
    state: char,
    comm: String,
}

control_newtype!(
    /// A running undead serving a control socket in its own scratch directory
    /// ([`Control`]), with the kit's own views of the tree.
    Session
);

impl Session {
    fn start(mode: Mode, opts: &[&str], cmd: &[&str]) -> Session {
        Session::start_in(Scratch::new("kit"), mode, opts, cmd, |_| {})
    }

    fn start_in(
        dir: Scratch,
        mode: Mode,
        opts: &[&str],
        cmd: &[&str],
        tweak: impl Fn(&mut Command),
    ) -> Session {
        let how = Launch::default();
        Session(Control::launch(dir, mode, &how, opts, cmd, tweak))
    }

    /// Every process under undead (host pids), undead excluded.
    fn procs(&self) -> Vec<P> {
        self.u
            .descendants()
            .into_iter()
            .filter_map(Stat::of)
            .map(|st| P {
                id: Ident { pid: st.pid, start: st.start },
                ppid: st.ppid,
                state: st.state,
                comm: st.comm,
            })
            .collect()
    }

    /// The processes under undead named `name` in state `state`.
    fn find(&self, name: &str, state: char) -> Vec<P> {
        self.procs()
            .into_iter()
            .filter(|p| p.comm == name && p.state == state)
            .collect()
    }

    fn count(&self, name: &str, state: char) -> usize {
        self.find(name, state).len()
    }

    /// How many Z and D processes there are under undead, any name.
    fn zd(&self) -> (usize, usize) {
        let procs = self.procs();
        let n = |s| procs.iter().filter(|p| p.state == s).count();
        (n('Z'), n('D'))
    }

    /// undead exits with `want` (within T), and none of `held` (not even
    /// a zombie) outlived it.
    fn exits_leaving_none(&mut self, want: i32, held: &[Ident]) {
        let code = self.u.wait(T);
        check!(self, code == Some(want), "exit {code:?}, want {want}");
        let left: Vec<&Ident> = held.iter().filter(|i| i.present()).collect();
        check!(self, left.is_empty(), "outlived undead: {left:?}");
    }

    /// `status --json`, checked to be JSON, as Python re-renders `expr`
    /// of it (`d` is the parsed object).
    fn status(&self, expr: &str) -> String {
        let r = self.ok(&["status", "--json"]);
        py(&r.stdout, expr)
    }

    /// Let a fixture blocked in `read x < FIFO` go on.
    fn go(&self, name: &str) {
        let fifo = self.dir.path(name);
        let opened = wait_for(T, || {
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .ok()
        });
        let mut w = opened.unwrap_or_else(|| {
            self.fail(&format!("nobody reads {}", fifo.display()))
        });
        w.write_all(b"go\n").unwrap();
    }
}

/// A FIFO in `dir` a fixture script blocks on (`read x < FIFO`) until
/// [`Session::go`]: the fixture waits without polling or children.
fn fifo(dir: &Scratch, name: &str) -> String {
    let path = dir.path(name);
    let c = std::ffi::CString::new(path.display().to_string()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    path.display().to_string()
}

/// The pids a creation verb printed, one per line.
fn pids(r: &Ran) -> Vec<i32> {
    r.stdout.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Parse `json` with Python's json module (an independent parser) and
/// print `expr` of it, `d` being the parsed value.
fn py(json: &str, expr: &str) -> String {
    let script =
        format!("import json,sys\nd=json.load(sys.stdin)\nprint({expr})");
    let mut c = Command::new("python3");
    c.args(["-c", &script]);
    let r = exec(&mut c, Some(json.as_bytes()), T);
    assert!(r.ok(), "python3 rejected {json:?} / {expr}: {r}");
    r.stdout.trim_end().to_string()
}

both_modes!(
    zombies_at_start_and_on_request,
    holder_zombies_reparent_to_undead_and_are_reaped,
    withheld_orphans_stay_zombies,
    negative_control_orphans_are_reaped,
    withhold_for_a_duration_then_reap,
    withholding_still_reaps_the_main_child,
    vfork_holders_sit_in_d,
    vfork_holder_shrugs_off_term_like_signals_but_not_kill,
    release_by_kind_and_pid,
    release_all_and_release_after,
    release_under_withholding_leaves_nothing,
    child_exit_releases_everything,
    forwarded_signal_exit_releases_everything,
    sigkill_of_undead_leaves_nothing_alive,
    stale_socket_is_replaced_and_removed_at_exit,
    wait_succeeds_and_times_out,
    status_and_ps_json,
    socket_survives_garbage_oversize_and_stalled_clients,
    non_root_uid_is_refused,
    pids_max_stops_creation_and_undead_goes_on,
    killed_holders_are_no_longer_held,
    withholding_with_wait_all_still_exits,
    release_after_ends_withholding,
    option_values_do_not_end_the_options,
    counts_agree_past_the_listing_threshold,
);

const SLEEP: [&str; 2] = ["sleep", "1000"];

// ---------------------------------------------------------------------------
// Zombies
// ---------------------------------------------------------------------------

fn zombies_at_start_and_on_request(mode: Mode) {
    let s = Session::start(mode, &["--zombies", "3"], &SLEEP);
    s.until("3 zombies from --zombies 3", T, || {
        s.count("undead-zombie", 'Z') == 3
    });
    for z in s.find("undead-zombie", 'Z') {
        check!(s, z.ppid == s.u.pid, "zombie {z:?} not under undead");
    }
    let r = s.ok(&["zombie", "4"]);
    let made = pids(&r);
    check!(s, made.len() == 4, "zombie 4 printed {:?}", r.stdout);
    // The verb returns only once they are Z: no waiting here.
    for &ns in &made {
        let id = s.host(ns);
        let p = stat(id.pid);
        check!(s, p == Some(('Z', s.u.pid)), "{ns}: {p:?}");
        check!(s, comm(id.pid).as_deref() == Some("undead-zombie"), "{ns}");
    }
    check!(s, s.count("undead-zombie", 'Z') == 7, "want 7 zombies");
    let before: Vec<Ident> =
        s.find("undead-zombie", 'Z').iter().map(|p| p.id).collect();
    let r = s.ok(&["release", "zombies"]);
    check!(s, r.stdout.trim() == "released 7 processes", "{r:?}");
    // Held zombies are reaped before the reply.
    let left: Vec<&Ident> = before.iter().filter(|i| i.present()).collect();
    check!(s, left.is_empty(), "still present after release: {left:?}");
    check!(s, s.zd() == (0, 0), "Z/D left");
}

fn holder_zombies_reparent_to_undead_and_are_reaped(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let r = s.ok(&["zombie", "3", "--holder"]);
    let printed = pids(&r);
    check!(s, !printed.is_empty(), "zombie --holder printed nothing");
    let holders = s.find("undead-zholder", 'S');
    check!(s, holders.len() == 1, "want one live undead-zholder");
    let holder = holders[0].id;
    check!(s, holders[0].ppid == s.u.pid, "holder not under undead");
    let zombies: Vec<P> = s
        .find("undead-zombie", 'Z')
        .into_iter()
        .filter(|p| p.ppid == holder.pid)
        .collect();
    check!(s, zombies.len() == 3, "want 3 Z under the holder");
    // SIGKILL the live parent that never waits: its zombies become orphans,
    // reparent to undead and are reaped by its drain.
    crate::common::kill(holder.pid, libc::SIGKILL);
    s.until("holder and its zombies reaped", T, || {
        !holder.present() && zombies.iter().all(|z| !z.id.present())
    });
    let reaped = s.status("d['reaped']");
    check!(s, reaped == "4", "reaped counter {reaped}, want 4");
    check!(s, s.zd() == (0, 0), "Z/D left");
}

/// The kit must forget processes that died without it: after the holder
/// is SIGKILLed from outside and reaped, `status` must not list it (nor
/// its zombies) as held, and a later `release` must not signal the pids,
/// which may by then name unrelated processes.
fn killed_holders_are_no_longer_held(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let zh = pids(&s.ok(&["zombie", "2", "--holder"]));
    let vf = pids(&s.ok(&["dstate", "1"]));
    let (h, v) = (s.host(zh[0]), s.host(vf[0]));
    crate::common::kill(h.pid, libc::SIGKILL);
    crate::common::kill(v.pid, libc::SIGKILL);
    s.until("killed holders reaped", T, || {
        !h.present() && !v.present() && s.zd() == (0, 0)
    });
    let held = s.status("len(d['held'])");
    check!(s, held == "0", "{mode:?}: {held} dead processes still held");
    let r = s.ok(&["release", "all"]);
    check!(s, r.stdout.trim() == "released 0 processes", "{r:?}");
}

// ---------------------------------------------------------------------------
// Withheld reaping
// ---------------------------------------------------------------------------

/// A shell that makes batch K of orphans (`/bin/true` whose parent
/// subshell is gone) once FIFO `goK` lets it (batch 0 at once), then
/// creates `madeK`.
fn orphan_script(dir: &Scratch, batches: &[usize], end: &str) -> String {
    let mut script = String::new();
    for (k, n) in batches.iter().enumerate() {
        let made = dir.path(&format!("made{k}"));
        if k > 0 {
            script += &format!("read x < {}; ", fifo(dir, &format!("go{k}")));
        }
        script += &format!(
            "i=0; while [ $i -lt {n} ]; do (/bin/true &); i=$((i+1)); done; \
             touch {}; ",
            made.display()
        );
    }
    script + end
}

/// undead with `opts` over a shell that makes batches of orphans (see
/// [`orphan_script`]), then sleeps.
fn orphan_session(mode: Mode, opts: &[&str], batches: &[usize]) -> Session {
    let dir = Scratch::new("kit");
    let script = orphan_script(&dir, batches, "exec sleep 1000");
    Session::start_in(dir, mode, opts, &["sh", "-c", &script], |_| {})
}

/// The orphans (`true`) under undead in state `state`, parent undead.
fn orphans(s: &Session, state: char) -> Vec<Ident> {
    s.find("true", state)
        .into_iter()
        .filter(|p| p.ppid == s.u.pid)
        .map(|p| p.id)
        .collect()
}

fn withheld_orphans_stay_zombies(mode: Mode) {
    let s = orphan_session(mode, &["--withhold-reaping"], &[3, 2, 2]);
    s.until("3 withheld orphans in Z", T, || orphans(&s, 'Z').len() == 3);
    let batch1 = orphans(&s, 'Z');
    check!(s, s.status("d['withholding']") == "True", "withholding off?");
    check!(s, s.status("len(d['withheld'])") == "3", "withheld list");
    // They stay: a status round trip (a full loop of undead) later, still Z.
    check!(s, batch1.iter().all(|i| i.state() == Some('Z')), "not Z");
    // `release zombies` reaps them, but withholding goes on (README,
    // "Withheld reaping").
    s.ok(&["release", "zombies"]);
    s.until("batch 1 reaped", T, || batch1.iter().all(|i| !i.present()));
    check!(s, s.status("d['withholding']") == "True", "withholding ended");
    s.go("go1");
    s.until("2 new orphans withheld", T, || orphans(&s, 'Z').len() == 2);
    let batch2 = orphans(&s, 'Z');
    // `release all` reaps them and ends withholding.
    s.ok(&["release", "all"]);
    s.until("batch 2 reaped", T, || batch2.iter().all(|i| !i.present()));
    check!(s, s.status("d['withholding']") == "False", "still withholding");
    s.go("go2");
    s.until("batch 3 made and reaped", T, || {
        s.dir.path("made2").exists()
            && s.status("d['reaped']") == "7"
            && s.zd() == (0, 0)
    });
}

fn negative_control_orphans_are_reaped(mode: Mode) {
    let s = orphan_session(mode, &[], &[5]);
    // Without --withhold-reaping the same orphans are reaped: the counter
    // reaches 5 and no Z is left.
    s.until("5 orphans made and reaped", T, || {
        s.dir.path("made0").exists()
            && s.status("d['reaped']") == "5"
            && s.zd() == (0, 0)
    });
    check!(s, s.status("d['withholding']") == "False", "withholding on?");
}

fn withhold_for_a_duration_then_reap(mode: Mode) {
    let started = Instant::now();
    let s = orphan_session(mode, &["--withhold-reaping=1s"], &[4]);
    s.until("4 withheld orphans in Z", T, || orphans(&s, 'Z').len() == 4);
    let seen_z = started.elapsed();
    let batch = orphans(&s, 'Z');
    s.until("orphans reaped after the duration", T, || {
        batch.iter().all(|i| !i.present())
    });
    let reaped_at = started.elapsed();
    println!(
        "{mode:?}: --withhold-reaping=1s: Z seen at {seen_z:?}, \
         reaped by {reaped_at:?} after start"
    );
    // Logic, not speed: they may not go before the second is over.
    check!(s, reaped_at >= Duration::from_secs(1), "reaped too early");
    check!(s, s.status("d['withholding']") == "False", "still withholding");
}

fn withholding_still_reaps_the_main_child(mode: Mode) {
    let dir = Scratch::new("kit");
    let script = format!(
        "(/bin/true &); (/bin/true &); read x < {}; exit 7",
        fifo(&dir, "go")
    );
    let mut s = Session::start_in(
        dir,
        mode,
        &["--withhold-reaping"],
        &["sh", "-c", &script],
        |_| {},
    );
    s.until("2 withheld orphans", T, || orphans(&s, 'Z').len() == 2);
    let withheld = orphans(&s, 'Z');
    s.go("go");
    // The child's 7. On its way out undead reaps what it withheld (as
    // PID 1 the kernel does when the namespace dies).
    s.exits_leaving_none(7, &withheld);
}

/// `--wait-all` waits for the living: a withheld zombie is dead and will
/// never exit, so undead must still exit with the child's status (here it
/// waited for ever, and neither `--grace` nor SIGTERM could end it).
fn withholding_with_wait_all_still_exits(mode: Mode) {
    for grace in [&[][..], &["--grace", "500ms"]] {
        let mut args = vec!["--no-control", "--withhold-reaping"];
        args.extend(grace);
        args.extend(["--wait-all", "--", "sh", "-c", "(/bin/true &); exit 4"]);
        let (code, _, err) = crate::common::run(mode, &args, T);
        assert_eq!(code, 4, "{mode:?} {args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Killable D state (vfork)
// ---------------------------------------------------------------------------

/// `holder` is an `undead-vfork` in D, wchan `kernel_clone`, parent
/// undead, with exactly one `undead-vstall` child.
fn assert_vfork_holder(s: &Session, holder: Ident) {
    let pid = holder.pid;
    check!(s, holder.state() == Some('D'), "holder {pid} not in D");
    check!(s, comm(pid).as_deref() == Some("undead-vfork"), "{pid} comm");
    check!(s, stat(pid).map(|p| p.1) == Some(s.u.pid), "{pid} ppid");
    let w = wchan(pid);
    check!(s, w == "kernel_clone", "{pid} wchan {w:?}");
    let stalls: Vec<P> =
        s.procs().into_iter().filter(|p| p.ppid == pid).collect();
    check!(
        s,
        stalls.len() == 1 && stalls[0].comm == "undead-vstall",
        "{pid}'s children: {stalls:?}"
    );
}

fn vfork_holders_sit_in_d(mode: Mode) {
    let s = Session::start(mode, &["--dstate", "2"], &SLEEP);
    s.until("2 vfork holders from --dstate 2", T, || {
        s.count("undead-vfork", 'D') == 2
    });
    for h in s.find("undead-vfork", 'D') {
        assert_vfork_holder(&s, h.id);
    }
    let r = s.ok(&["dstate", "3"]);
    let made = pids(&r);
    check!(s, made.len() == 3, "dstate 3 printed {:?}", r.stdout);
    // Observably D when the verb returns: no waiting.
    let holders: Vec<Ident> = made.iter().map(|&ns| s.host(ns)).collect();
    for &h in &holders {
        assert_vfork_holder(&s, h);
    }
    let all: Vec<Ident> = s.procs().iter().map(|p| p.id).collect();
    s.ok(&["release", "dstate"]);
    s.until("holders and stalled children gone", T, || {
        s.zd() == (0, 0)
            && s.count("undead-vstall", 'S') == 0
            && all.iter().filter(|i| i.present()).count() == 1 // sleep
    });
    check!(s, s.status("len(d['held'])") == "0", "still held");
}

fn vfork_holder_shrugs_off_term_like_signals_but_not_kill(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let holder = s.host(pids(&s.ok(&["dstate", "1"]))[0]);
    let stall = s.procs().into_iter().find(|p| p.ppid == holder.pid);
    let stall = stall.unwrap_or_else(|| s.fail("no stalled child")).id;
    let shrugged = SHRUGGED;
    let mask = shrugged.iter().fold(0u64, |m, &sig| m | 1 << (sig - 1));
    let ign = status_mask(holder.pid, "SigIgn").unwrap_or(0);
    check!(s, ign & mask == mask, "SigIgn {ign:x} lacks {mask:x}");
    for sig in shrugged {
        crate::common::kill(holder.pid, sig);
    }
    // A bounded look: if any of them were fatal the holder would leave D
    // within milliseconds; it must still be D (and the same process).
    let left_d = wait_for(Duration::from_millis(300), || {
        (holder.state() != Some('D')).then_some(())
    });
    check!(s, left_d.is_none(), "holder left D after TERM-like signals");
    check!(s, stall.present(), "stalled child gone");
    crate::common::kill(holder.pid, libc::SIGKILL);
    // TASK_KILLABLE: SIGKILL ends it; the stalled child follows (its
    // pdeathsig) and undead reaps both.
    s.until("holder and stalled child gone", T, || {
        !holder.present() && !stall.present()
    });
    check!(s, s.zd() == (0, 0), "Z/D left");
}

// ---------------------------------------------------------------------------
// Release
// ---------------------------------------------------------------------------

fn release_by_kind_and_pid(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let zs: Vec<i32> = pids(&s.ok(&["zombie", "3"]));
    let ds: Vec<i32> = pids(&s.ok(&["dstate", "2"]));
    s.ok(&["zombie", "2", "--holder"]);
    let z: Vec<Ident> = zs.iter().map(|&p| s.host(p)).collect();
    let d: Vec<Ident> = ds.iter().map(|&p| s.host(p)).collect();
    let stall_of = |h: Ident| {
        s.procs().into_iter().find(|p| p.ppid == h.pid).map(|p| p.id)
    };
    let d0_stall = stall_of(d[0]).unwrap_or_else(|| s.fail("no stall"));
    let zh = s.find("undead-zholder", 'S')[0].id;
    check!(s, s.zd() == (5, 2), "before release");

    // One zombie by pid.
    let r = s.ok(&["release", &zs[0].to_string()]);
    check!(s, r.stdout.trim() == "released 1 processes", "{r:?}");
    check!(s, !z[0].present(), "released zombie still there");
    check!(s, z[1..].iter().all(|i| i.state() == Some('Z')), "others");

    // One vfork holder by pid: it and its stalled child go.
    s.ok(&["release", &ds[0].to_string()]);
    s.until("holder 0 gone", T, || !d[0].present() && !d0_stall.present());
    check!(s, d[1].state() == Some('D'), "holder 1 must stay D");

    // Zombies: the held ones and the holder's.
    s.ok(&["release", "zombies"]);
    s.until("zombies gone", T, || s.zd() == (0, 1));
    check!(s, !zh.present(), "zombie holder left");
    check!(s, d[1].state() == Some('D'), "holder 1 must stay D");

    s.ok(&["release", "dstate"]);
    s.until("all gone", T, || s.zd() == (0, 0) && !d[1].present());
    check!(s, s.procs().len() == 1, "only the main child may be left");
    check!(s, s.status("len(d['held'])") == "0", "still held");
}

fn release_all_and_release_after(mode: Mode) {
    // `release all`.
    let s = Session::start(mode, &["--zombies", "3", "--dstate", "2"], &SLEEP);
    s.until("3 Z, 2 D", T, || s.zd() == (3, 2));
    s.ok(&["zombie", "2", "--holder"]);
    let held: Vec<Ident> = s.procs().iter().map(|p| p.id).collect();
    let r = s.ok(&["release", "all"]);
    check!(s, r.stdout.trim() == "released 10 processes", "{r:?}");
    s.until("nothing held left", T, || {
        s.zd() == (0, 0) && held.iter().filter(|i| i.present()).count() == 1
    });
    drop(s);

    // `--release-after 1s`: the timer releases what --zombies/--dstate
    // made, and what a verb made later, each a second after it was made.
    let started = Instant::now();
    let s = Session::start(
        mode,
        &["--zombies", "3", "--dstate", "2", "--release-after", "1s"],
        &SLEEP,
    );
    s.until("3 Z, 2 D", T, || s.zd() == (3, 2));
    let ms = s.status("d['release_after_ms']");
    check!(s, ms == "1000", "release_after_ms {ms}");
    let late = s.host(pids(&s.ok(&["zombie", "1"]))[0]);
    let at_start: Vec<Ident> = s.procs().iter().map(|p| p.id).collect();
    s.until("the timer to release everything", T, || {
        s.zd() == (0, 0) && !late.present()
    });
    println!("{mode:?}: --release-after 1s: all gone {:?}", started.elapsed());
    let left = at_start.iter().filter(|i| i.present()).count();
    check!(s, left == 1, "{left} left, only the main child may be");
    check!(s, started.elapsed() >= Duration::from_secs(1), "too early");
    check!(s, s.status("len(d['held'])") == "0", "still held");
}

/// Withholding is about orphans: what the kit releases is still reaped,
/// and withholding goes on.
fn release_under_withholding_leaves_nothing(mode: Mode) {
    let s = orphan_session(mode, &["--withhold-reaping"], &[2]);
    s.until("2 withheld orphans", T, || orphans(&s, 'Z').len() == 2);
    s.ok(&["dstate", "2"]);
    let zh_ns = pids(&s.ok(&["zombie", "2", "--holder"]))[0];
    let zh = s.host(zh_ns);
    let zs: Vec<Ident> =
        s.procs().iter().filter(|p| p.ppid == zh.pid).map(|p| p.id).collect();
    check!(s, zs.len() == 2, "holder's zombies {zs:?}");
    let vf: Vec<Ident> = s
        .procs()
        .iter()
        .filter(|p| p.comm.starts_with("undead-v"))
        .map(|p| p.id)
        .collect();
    check!(s, vf.len() == 4, "vfork holders and stalled children {vf:?}");
    s.ok(&["release", "dstate"]);
    s.until("vfork holders and stalled children reaped", T, || {
        vf.iter().all(|i| !i.present())
    });
    s.ok(&["release", &zh_ns.to_string()]);
    s.until("the holder and its zombies reaped", T, || {
        !zh.present() && zs.iter().all(|i| !i.present())
    });
    // Polled: the main child (a shell that forks) shows D for a moment
    // while it vforks; the held processes, if not reaped, never would go.
    s.until("only the 2 withheld orphans Z, nothing D", T, || {
        s.zd() == (2, 0)
    });
    check!(s, s.status("d['withholding']") == "True", "withholding ended");
}

/// `--release-after` ends withholding too (README, "Withheld reaping":
/// "`release all` (or the DURATION, or `--release-after`) ends
/// withholding"), also when the kit holds nothing of its own.
fn release_after_ends_withholding(mode: Mode) {
    let s = orphan_session(
        mode,
        &["--withhold-reaping", "--release-after", "1s"],
        &[2],
    );
    s.until("2 withheld orphans", T, || orphans(&s, 'Z').len() == 2);
    let batch = orphans(&s, 'Z');
    s.until("--release-after to reap the withheld orphans", T, || {
        batch.iter().all(|i| !i.present())
    });
    check!(s, s.status("d['withholding']") == "False", "withholding");
}

// ---------------------------------------------------------------------------
// Exit paths
// ---------------------------------------------------------------------------

/// Start undead holding zombies, a holder and vfork holders, with a main
/// child that exits when told; returns what it holds (host idents).
fn loaded(mode: Mode) -> (Session, Vec<Ident>) {
    let dir = Scratch::new("kit");
    let script = format!("read x < {}; exit 3", fifo(&dir, "go"));
    let s = Session::start_in(
        dir,
        mode,
        &["--zombies", "3", "--dstate", "2"],
        &["sh", "-c", &script],
        |_| {},
    );
    s.ok(&["zombie", "2", "--holder"]);
    s.ok(&["dstate", "1"]);
    s.until("5 Z and 3 D", T, || s.zd() == (5, 3));
    let all: Vec<Ident> = s.procs().iter().map(|p| p.id).collect();
    check!(s, all.len() == 3 + 1 + 2 + 3 * 2 + 1, "table {all:?}");
    (s, all)
}

fn child_exit_releases_everything(mode: Mode) {
    let (mut s, all) = loaded(mode);
    s.go("go");
    // The child's 3; released before undead exited: nothing is left, not
    // even Z.
    s.exits_leaving_none(3, &all);
}

fn forwarded_signal_exit_releases_everything(mode: Mode) {
    let (mut s, all) = loaded(mode);
    s.u.signal(libc::SIGTERM);
    s.exits_leaving_none(128 + libc::SIGTERM, &all);
}

/// A SIGKILLed undead runs no cleanup. As PID 1 the kernel kills and
/// reaps the whole namespace; as a subreaper the pdeathsig chain (undead
/// → holders and child → stalled children) must end everything.
fn sigkill_of_undead_leaves_nothing_alive(mode: Mode) {
    let (mut s, all) = loaded(mode);
    let _guard = KillOnDrop(all.clone());
    s.u.signal(libc::SIGKILL);
    let code = s.u.wait(T);
    // unshare (util-linux 2.38) fails to re-raise SIGKILL on itself
    // ("sigprocmask unblock failed") and exits 1: only its exit counts.
    let want = match mode {
        Mode::Pid1 => code.is_some(),
        Mode::Subreaper => code == Some(128 + libc::SIGKILL),
    };
    check!(s, want, "exit {code:?}");
    let alive = || -> Vec<Ident> {
        all.iter()
            .copied()
            .filter(|i| i.state().is_some_and(|st| st != 'Z'))
            .collect()
    };
    if wait_for(T, || alive().is_empty().then_some(())).is_none() {
        s.fail(&format!("alive after undead was SIGKILLed: {:?}", alive()));
    }
    if mode == Mode::Pid1 {
        // zap_pid_ns_processes: the namespace's processes are reaped
        // before its init is gone.
        let left: Vec<&Ident> = all.iter().filter(|i| i.present()).collect();
        check!(s, left.is_empty(), "left after the namespace died: {left:?}");
        return;
    }
    // The dead ones now belong to the host's reaper; report, not assert.
    let started = Instant::now();
    let gone = wait_for(Duration::from_secs(5), || {
        all.iter().all(|i| !i.present()).then_some(())
    });
    println!(
        "sigkill subreaper: all {} dead; reaped by the host's init: {} \
         (after {:?})",
        all.len(),
        gone.is_some(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// wait, status, ps
// ---------------------------------------------------------------------------

fn wait_succeeds_and_times_out(mode: Mode) {
    let s = Session::start(mode, &["--zombies", "2", "--dstate", "1"], &SLEEP);
    let r = s.client(&[
        "wait",
        "--zombies",
        "2",
        "--dstate",
        "1",
        "--timeout",
        "5s",
    ]);
    check!(s, r.code == 0, "wait for what exists: {r:?}");
    let r = s.client(&["wait", "--zombies", "3", "--timeout", "300ms"]);
    check!(s, r.code == 1, "wait must time out with 1: {r:?}");
    check!(s, r.took >= Duration::from_millis(300), "gave up early {r:?}");
    check!(s, r.stderr.contains("timed out"), "{r:?}");
    // A waiter that is satisfied later.
    let mut waiter = Command::new(BIN)
        .args(["wait", "--zombies", "5", "--dstate", "2", "--timeout", "10s"])
        .args(["--control", &s.sock])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let early = waiter.try_wait().unwrap();
    s.ok(&["zombie", "3"]);
    s.ok(&["dstate", "1"]);
    let code = wait_for(T, || waiter.try_wait().unwrap()).map(|st| st.code());
    if code.is_none() {
        let _ = waiter.kill();
        let _ = waiter.wait();
    }
    check!(s, early.is_none(), "waiter returned before: {early:?}");
    check!(s, code == Some(Some(0)), "waiter: {code:?}");
}

/// From 4096 held zombies on, undead finds its descendants by listing
/// /proc once instead of walking children files (`procfs::LIST_FROM`):
/// `status`, `wait` and the exit must count the same either way. The child
/// leaves a zombie of its own (a background job of a shell that then execs
/// `sleep`, which never reaps: Z under a live parent, not undead's) and two
/// orphans that `--withhold-reaping` keeps; a vfork holder adds one D.
/// Negative control: the same counts below the threshold, by the walk.
fn counts_agree_past_the_listing_threshold(mode: Mode) {
    let _pids = many_pids();
    let script = "( (exit 3) & ); ( (exit 4) & ); (exit 0) & exec sleep 1000";
    let mut s = Session::start(
        mode,
        &["--withhold-reaping", "--dstate", "1"],
        &["sh", "-c", script],
    );
    let counts = |s: &Session| {
        s.status(
            "d['seen']['zombies'], d['seen']['dstate'], len(d['withheld'])",
        )
    };
    s.until("3 Z (2 withheld), 1 D, by the walk", T, || counts(&s) == "3 1 2");
    check!(s, s.zd() == (3, 1), "/proc: {:?}", s.zd());
    s.ok(&["zombie", "4200"]);
    let got = counts(&s);
    check!(s, got == "4203 1 2", "by the listing: {got}");
    let r = s.client(&["wait", "--zombies", "4203", "--dstate", "1"]);
    check!(s, r.code == 0, "wait for what exists: {r:?}");
    let r = s.client(&["wait", "--zombies", "4204", "--timeout", "300ms"]);
    check!(s, r.code == 1, "wait for one more must time out: {r:?}");
    // The withheld orphans go with the held zombies; sleep's stays.
    s.ok(&["release", "zombies"]);
    let got = counts(&s);
    check!(s, got == "1 1 0", "zombies released, by the walk: {got}");
    s.u.signal(libc::SIGTERM);
    let code = s.u.wait(T);
    check!(s, code == Some(143), "exit {code:?}");
}

fn status_and_ps_json(mode: Mode) {
    let s = Session::start(
        mode,
        &["--zombies", "2", "--dstate", "1", "--release-after", "60s"],
        &SLEEP,
    );
    s.until("2 Z, 1 D", T, || s.zd() == (2, 1));
    let st = s.ok(&["status", "--json"]).stdout;
    let keys = py(&st, "sorted(d)");
    check!(
        s,
        keys == "['child', 'held', 'ok', 'pid', 'pidns', 'reaped', \
                 'release_after_ms', 'seen', 'withheld', 'withhold_left_ms', \
                 'withholding']",
        "status keys {keys}"
    );
    let undead_pid = match mode {
        Mode::Pid1 => 1,
        Mode::Subreaper => s.u.pid,
    };
    check!(s, py(&st, "d['pid']") == undead_pid.to_string(), "pid");
    let child = py(&st, "sorted(d['child'].items())");
    check!(s, child.contains("('state', 'running')"), "child {child}");
    check!(s, child.contains("('exit_code', None)"), "child {child}");
    let child_ns: i32 = py(&st, "d['child']['pid']").parse().unwrap();
    let child_host = s.host(child_ns);
    check!(s, comm(child_host.pid).as_deref() == Some("sleep"), "child");
    check!(s, py(&st, "d['seen']") == "{'zombies': 2, 'dstate': 1}", "seen");
    check!(s, py(&st, "d['release_after_ms']") == "60000", "timer");
    check!(s, py(&st, "d['withholding']") == "False", "withholding");
    let kinds = py(&st, "sorted(h['kind'] for h in d['held'])");
    check!(
        s,
        kinds == "['vfork', 'vfork-stall', 'zombie', 'zombie']",
        "held kinds {kinds}"
    );
    let fields = py(
        &st,
        "all(sorted(h)==['held_ms','kind','pid','release_in_ms','unheld'] and \
         0 < h['release_in_ms'] <= 60000 for h in d['held'])",
    );
    check!(s, fields == "True", "held entries {st}");
    // Every held pid is what /proc says it is.
    let held =
        py(&st, "' '.join(f\"{h['pid']}:{h['kind']}\" for h in d['held'])");
    for item in held.split(' ') {
        let (pid, kind) = item.split_once(':').unwrap();
        let id = s.host(pid.parse().unwrap());
        let want = match kind {
            "zombie" => ('Z', "undead-zombie"),
            "vfork" => ('D', "undead-vfork"),
            _ => ('S', "undead-vstall"),
        };
        let got =
            (id.state().unwrap_or('?'), comm(id.pid).unwrap_or_default());
        check!(s, got.0 == want.0 && got.1 == want.1, "{item}: {got:?}");
    }
    let text = s.ok(&["status"]).stdout;
    check!(s, text.contains(&format!("undead pid {undead_pid}")), "{text}");

    // ps --json reads /proc of the namespace it runs in: inside undead's
    // namespace as PID 1 (nsenter), the host's as a subreaper.
    let ps = match mode {
        Mode::Pid1 => {
            let target = s.u.pid.to_string();
            let mut c = Command::new("nsenter");
            c.args(["-t", &target, "-p", "-m", BIN, "ps", "--json"])
                .args(["--control", &s.sock]);
            run_ran(&mut c, CLIENT)
        }
        Mode::Subreaper => s.client(&["ps", "--json"]),
    };
    check!(s, ps.code == 0, "ps --json: {ps:?}");
    let shape = py(
        &ps.stdout,
        "all(sorted(p)==['comm','held','pid','ppid','state','wchan'] for p in d)",
    );
    check!(s, shape == "True", "ps --json rows {}", ps.stdout);
    let held_rows = py(
        &ps.stdout,
        "'\\n'.join(f\"{p['pid']} {p['ppid']} {p['state']} {p['comm']} \
         {p['wchan'] or '-'} {p['held']}\" for p in d if p['held'])",
    );
    let mut kinds: Vec<&str> = Vec::new();
    for row in held_rows.lines() {
        let f: Vec<&str> = row.split(' ').collect();
        check!(
            s,
            f[1] == undead_pid.to_string() || f[5] == "vfork-stall",
            "{row}"
        );
        match f[5] {
            "zombie" => {
                check!(s, f[2] == "Z" && f[3] == "undead-zombie", "{row}")
            }
            "vfork" => check!(
                s,
                f[2] == "D"
                    && f[3] == "undead-vfork"
                    && f[4] == "kernel_clone",
                "{row}"
            ),
            _ => check!(s, f[3] == "undead-vstall", "{row}"),
        }
        kinds.push(f[5]);
    }
    kinds.sort();
    check!(
        s,
        kinds == ["vfork", "vfork-stall", "zombie", "zombie"],
        "{held_rows}"
    );
}

// ---------------------------------------------------------------------------
// Control socket
// ---------------------------------------------------------------------------

/// A raw client: connect, send `bytes`, read the reply until EOF (bounded).
fn raw(sock: &str, bytes: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    // undead may refuse before it has read everything: a failed write or
    // a reset after the reply are fine, the reply is what counts.
    let _ = c.write_all(bytes).and_then(|()| c.shutdown(Shutdown::Write));
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = c.read(&mut chunk) {
        out.extend_from_slice(&chunk[..n]);
    }
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

fn socket_survives_garbage_oversize_and_stalled_clients(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    // Stalled clients: one sends nothing, one half a request.
    let silent = UnixStream::connect(&s.sock).unwrap();
    let mut partial = UnixStream::connect(&s.sock).unwrap();
    partial.write_all(b"sta").unwrap();
    // Each waits for its reply and EOF in a thread, timing the cut-off.
    let stalled: Vec<_> = [("silent", silent), ("partial", partial)]
        .into_iter()
        .map(|(name, mut c)| {
            let at = Instant::now();
            std::thread::spawn(move || {
                c.set_read_timeout(Some(T)).unwrap();
                let mut out = String::new();
                let got = c.read_to_string(&mut out).map_err(|e| e.kind());
                (name, got, out, at.elapsed())
            })
        })
        .collect();

    // Meanwhile a good client is served at once, and the kit forks (whose
    // children must not inherit the stalled connections).
    let r = s.ok(&["status", "--json"]);
    check!(s, r.took < Duration::from_secs(1), "status took {:?}", r.took);
    println!("{mode:?}: status with 2 stalled clients: {:?}", r.took);
    s.ok(&["dstate", "1"]);
    s.ok(&["zombie", "1", "--holder"]);

    for (bytes, want) in [
        (&b"\xff\xfe\x00garbage\n"[..], "not UTF-8"),
        (b"frobnicate 3\n", "unknown request"),
        (b"zombie -1\n", ""),
        (b"\n", "empty request"),
        (b"", "empty request"),
        (&[b'a'; 5000][..], "over 4096 bytes"),
        (&[b'z'; 100_000][..], "over 4096 bytes"),
    ] {
        let (reply, _) = raw(&s.sock, bytes);
        let ok = py(&reply, "d['ok']");
        let err = py(&reply, "d['error']");
        check!(
            s,
            ok == "False" && err.contains(want),
            "{bytes:.20?}: {reply}"
        );
    }
    // A line over the cap, newline included, is refused too.
    let mut long = b"status ".to_vec();
    long.extend([b' '; 5000]);
    long.push(b'\n');
    let (reply, _) = raw(&s.sock, &long);
    check!(s, py(&reply, "d['ok']") == "False", "long line: {reply}");

    // The stalled clients are answered with an error and closed (EOF):
    // nothing undead forked holds their connections.
    for t in stalled {
        let (name, got, out, took) = t.join().unwrap();
        check!(s, got.is_ok(), "{name}: no EOF within {T:?}: {got:?} {out:?}");
        check!(s, out.contains("timed out"), "{name}: {out:?}");
        println!("{mode:?}: stalled client ({name}) cut off after {took:?}");
    }
    check!(
        s,
        s.u.pid > 0 && stat(s.u.pid).is_some_and(|p| p.0 != 'Z'),
        "dead"
    );
    s.ok(&["release", "all"]);
    s.until("released", T, || s.zd() == (0, 0));
}

/// A stale socket file from an earlier run is replaced (README); the
/// path and `UNDEAD_CONTROL` work for undead and its clients alike; the
/// socket goes when undead exits.
fn stale_socket_is_replaced_and_removed_at_exit(mode: Mode) {
    let dir = Scratch::new("kit");
    let sock = dir.sock();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(Path::new(&sock).exists(), "no stale socket to start with");
    let mut u = Undead::start_with(mode, &["--", "sleep", "1000"], |c| {
        c.env("UNDEAD_CONTROL", &sock);
    });
    let status = || {
        let mut c = Command::new(BIN);
        c.arg("status").env("UNDEAD_CONTROL", &sock);
        run_ran(&mut c, CLIENT)
    };
    let up = wait_for(T, || (status().code == 0).then_some(()));
    assert!(up.is_some(), "{mode:?}: nobody answers: {}", u.stderr());
    let bits = fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(bits, 0o600, "{mode:?}: socket mode");
    u.signal(libc::SIGTERM);
    assert_eq!(u.wait(T), Some(128 + libc::SIGTERM), "{mode:?}");
    assert!(!Path::new(&sock).exists(), "{mode:?}: socket left behind");
    assert_eq!(status().code, 3, "{mode:?}: status after exit");
}

/// Run `args` as uid/gid 65534 (nobody) with no groups.
fn as_nobody(args: &[&str]) -> Ran {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).args(args);
    run_ran(&mut c, CLIENT)
}

/// A raw client as nobody: connect, send a request, print the reply.
const RAW_CLIENT: &str = "import socket,sys
s=socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b'zombie 1\\n')
except OSError:
    pass
out=b''
while True:
    try:
        b=s.recv(4096)
    except OSError:
        break
    if not b:
        break
    out+=b
sys.stdout.write(out.decode())";

fn non_root_uid_is_refused(mode: Mode) {
    let s = Session::start(mode, &[], &SLEEP);
    let mode_bits = fs::metadata(&s.sock).unwrap().permissions().mode();
    check!(s, mode_bits & 0o777 == 0o600, "socket mode {mode_bits:o}");
    // 0600: connect fails with EACCES, so nobody answers (3).
    let r = as_nobody(&[BIN, "status", "--control", &s.sock]);
    check!(s, r.code == 3, "nobody on a 0600 socket: {r:?}");
    check!(s, r.stderr.contains("Permission denied"), "{r:?}");
    // 0666: the connection is made and SO_PEERCRED refuses the peer.
    fs::set_permissions(&s.sock, fs::Permissions::from_mode(0o666)).unwrap();
    let r = as_nobody(&["/usr/bin/python3", "-c", RAW_CLIENT, &s.sock]);
    check!(s, r.code == 0, "raw client: {r:?}");
    let reply = py(&r.stdout, "(d['ok'], d['error'])");
    check!(
        s,
        reply == "(False, 'uid 65534 may not control undead')",
        "refusal: {r:?}"
    );
    check!(s, s.zd() == (0, 0), "a refused client created something");
    s.ok(&["status"]);
}

/// A refused client must say why and exit 1 ("failed", README, "Exit
/// codes"), not 3. undead answers a refused peer before reading its
/// request, so the client's write may fail with EPIPE although the reply
/// is waiting to be read.
#[test]
fn refused_client_exits_1_with_the_reason() {
    let s = Session::start(Mode::Subreaper, &[], &SLEEP);
    fs::set_permissions(&s.sock, fs::Permissions::from_mode(0o666)).unwrap();
    for _ in 0..50 {
        let r = as_nobody(&[BIN, "zombie", "1", "--control", &s.sock]);
        check!(s, r.code == 1, "refused client: {r:?}");
        check!(
            s,
            r.stderr.contains("uid 65534 may not control undead"),
            "{r:?}"
        );
    }
}

/// `--withhold-reaping=DURATION` (and `-vv`) must be understood wherever
/// it stands among the options, also after an option that takes a value
/// (`--control PATH`, `--grace 5s`, ...).
fn option_values_do_not_end_the_options(mode: Mode) {
    for opts in [
        &["--grace", "5s", "--withhold-reaping=1s"][..],
        &["--no-control", "--grace", "5s", "-vv"],
    ] {
        let mut args = opts.to_vec();
        args.extend(["--no-control", "--", "true"]);
        let (code, _, err) = crate::common::run(mode, &args, T);
        assert_eq!(code, 0, "{mode:?} {args:?}: {err}");
    }
}

/// Usage errors exit 2 and name the problem on one line; no undead on the
/// socket exits 3.
#[test]
fn client_exit_codes() {
    let dir = Scratch::new("kit");
    let nobody_home = dir.sock();
    for args in [
        &["zombie"][..],
        &["zombie", "x"],
        &["zombie", "-1"],
        &["zombie", "3", "--bogus"],
        &["dstate", "1", "--kind", "nfs"],
        &["dstate", "1", "--outlive", "forever"],
        &["dstate", "1", "--outlive", "5s"],
        &["wait", "--timeout", "forever"],
        &["wait", "--zombies", "many"],
        &["release", "bogus"],
        &["release", "0"],
        &["release", "zombies", "12"],
        &["release", "all", "zombies"],
        &["status", "--bogus"],
    ] {
        let r = run_ran(Command::new(BIN).args(args), CLIENT);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("undead: "), "{args:?}: {r:?}");
    }
    for args in [
        &["status"][..],
        &["zombie", "1"],
        &["dstate", "1"],
        &["release", "all"],
        &["wait", "--zombies", "1", "--timeout", "1s"],
    ] {
        let r = run_ran(
            Command::new(BIN).args(args).args(["--control", &nobody_home]),
            CLIENT,
        );
        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        // The same through UNDEAD_CONTROL.
        let r = run_ran(
            Command::new(BIN).args(args).env("UNDEAD_CONTROL", &nobody_home),
            CLIENT,
        );
        assert_eq!(r.code, 3, "{args:?} via UNDEAD_CONTROL: {r:?}");
    }
}

// ---------------------------------------------------------------------------
// pids.max
// ---------------------------------------------------------------------------

fn pids_max_stops_creation_and_undead_goes_on(mode: Mode) {
    let cg = PidsCgroup::new(&format!("{mode:?}"), 20);
    let cg = cg.expect("a writable pids cgroup");
    let s = Session::start_in(Scratch::new("kit"), mode, &[], &SLEEP, |c| {
        cg.join_at_exec(c)
    });
    check!(s, cg.procs().contains(&s.u.pid), "undead not in the cgroup");

    let started = Instant::now();
    let r = s.client(&["zombie", "50"]);
    let took = started.elapsed();
    let made = pids(&r).len();
    check!(s, r.code == 1, "zombie 50 under pids.max=20: {r:?}");
    check!(s, r.stderr.contains(&format!("made {made} of 50")), "{r:?}");
    check!(s, r.stderr.contains("pids.max"), "{r:?}");
    check!(s, r.stderr.lines().count() == 1, "{r:?}");
    check!(s, made > 0 && made < 50, "made {made}");
    check!(s, s.count("undead-zombie", 'Z') == made, "Z count vs {made}");
    s.ok(&["status"]);
    println!("{mode:?}: zombie 50 at pids.max=20: made {made} in {took:?}");
    s.ok(&["release", "all"]);
    s.until("zombies released", T, || s.zd() == (0, 0));

    let started = Instant::now();
    let r = s.client(&["dstate", "50"]);
    let took = started.elapsed();
    let made = pids(&r).len();
    check!(s, r.code == 1, "dstate 50 under pids.max=20: {r:?}");
    check!(s, r.stderr.contains(&format!("made {made} of 50")), "{r:?}");
    check!(s, r.stderr.contains("pids.max"), "{r:?}");
    // Not `made > 0`: holders are forked without waiting for each to
    // stall, so at the limit the holders themselves may take every pid.
    check!(s, made < 50, "made {made}");
    check!(s, s.count("undead-vfork", 'D') == made, "D count vs {made}");
    s.ok(&["status"]);
    println!("{mode:?}: dstate 50 at pids.max=20: made {made} in {took:?}");
    s.ok(&["release", "all"]);
    s.until("holders released", T, || s.zd() == (0, 0));
    check!(s, stat(s.u.pid).is_some_and(|p| p.0 != 'Z'), "undead died");
    drop(s);
    assert!(cg.until_empty(), "{mode:?}: undead's processes left");

    // At start, `--zombies N` is all or nothing: undead says why and exits
    // 1 (an internal error), leaving nothing behind.
    let mut c = crate::common::command(mode);
    c.args(["--no-control", "--zombies", "50", "--", "sleep", "1000"]);
    cg.join_at_exec(&mut c);
    let r = run_ran(&mut c, T);
    assert_eq!(r.code, 1, "{mode:?}: --zombies 50 at pids.max: {r:?}");
    assert!(r.stderr.contains("of 50 zombies"), "{mode:?}: {r:?}");
    assert!(r.stderr.contains("pids.max"), "{mode:?}: {r:?}");
    assert!(cg.until_empty(), "{mode:?}: left in the cgroup");
}

// ---------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------

/// 1 000 zombies and 100 vfork holders made and released in one run.
/// Timings are printed for information; the benchmark judges speed.
#[test]
fn scale_1000_zombies_100_vfork_holders() {
    let s = Session::start(Mode::Pid1, &[], &SLEEP);
    let r = s.ok(&["zombie", "1000"]);
    check!(s, pids(&r).len() == 1000, "printed {}", pids(&r).len());
    let z_took = r.took;
    let r = s.ok(&["dstate", "100"]);
    check!(s, pids(&r).len() == 100, "printed {}", pids(&r).len());
    let d_took = r.took;
    check!(s, s.count("undead-zombie", 'Z') == 1000, "zombies");
    check!(s, s.count("undead-vfork", 'D') == 100, "vfork holders");
    check!(s, s.count("undead-vstall", 'S') == 100, "stalled children");
    let r = s.ok(&["release", "all"]);
    check!(s, r.stdout.trim() == "released 1200 processes", "{r:?}");
    let rel_took = r.took;
    s.until("everything released", T, || s.procs().len() == 1);
    println!(
        "scale (Pid1, debug build, client round trips): zombie 1000 {z_took:?}, \
         dstate 100 {d_took:?}, release all {rel_took:?}"
    );
}
