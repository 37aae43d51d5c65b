//! One running undead, as PID 1 of a fresh PID namespace or as a
//! subreaper ([`Undead`]), its scratch directory, and the one failure
//! report every test gives: expected vs got, undead's stderr and the
//! process table under it ([`Undead::fail`], `eqnice!`, `check!`).

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::proc::{
    Ident, Stat, all_descendants, children_of, comm, descendants, kill,
    ns_pid, state, wchan,
};
use super::run::wait_for;

pub const BIN: &str = env!("CARGO_BIN_EXE_undead");

/// The two legs of the matrix (tini's FORCE_SUBREAPER 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pid1,
    Subreaper,
}

pub const MODES: [Mode; 2] = [Mode::Pid1, Mode::Subreaper];

/// Runs a test body `fn NAME(mode: Mode)` once per mode, as two tests
/// (`NAME::pid1`, `NAME::subreaper`) that run in parallel.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn pid1() {
                super::$name($crate::common::Mode::Pid1);
            }
            #[test]
            fn subreaper() {
                super::$name($crate::common::Mode::Subreaper);
            }
        }
    )*};
}

/// A unique scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 =
            std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir()
            .join(format!("undead-test-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn sock(&self) -> String {
        self.path("undead.sock").display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// How undead is started: `OUTER... [unshare --pid --fork --mount-proc
/// [--kill-child]] INNER... undead`. Wrappers set up what undead inherits
/// (e.g. `sh -c 'trap "" USR1; exec "$@"' sh`); INNER must exec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Launch<'a> {
    pub outer: &'a [&'a str],
    /// Inside the PID namespace (as PID 1), just before undead.
    pub inner: &'a [&'a str],
    /// No `--kill-child`: killing `unshare` does not SIGKILL undead.
    pub keep_child: bool,
}

pub fn command(mode: Mode) -> Command {
    command_in(mode, &Launch::default())
}

pub fn command_in(mode: Mode, how: &Launch<'_>) -> Command {
    let mut words: Vec<&str> = how.outer.to_vec();
    if mode == Mode::Pid1 {
        words.extend(["unshare", "--pid", "--fork", "--mount-proc"]);
        if !how.keep_child {
            words.push("--kill-child");
        }
    }
    words.extend(how.inner);
    words.push(BIN);
    let mut c = Command::new(words[0]);
    c.args(&words[1..]);
    c
}

/// Run undead to completion with captured output: (code, stdout, stderr);
/// code -1 if it did not finish within `timeout` (then it and everything
/// under it are killed, so a hung undead fails the test instead of hanging
/// it).
pub fn run(
    mode: Mode,
    args: &[&str],
    timeout: Duration,
) -> (i32, String, String) {
    let mut c = command(mode);
    c.args(args);
    super::run::run_cmd(c, b"", timeout)
}

/// One running undead (and, in PID-1 mode, the `unshare` around it).
/// Dropped, it kills what it started, also when a test fails.
pub struct Undead {
    pub mode: Mode,
    child: Child,
    /// undead's pid on the host.
    pub pid: i32,
    /// The same, with its start time: what is signalled (never a reused pid).
    ident: Option<Ident>,
    pub stderr_path: PathBuf,
    _scratch: Scratch,
    exited: Option<i32>,
}

impl Undead {
    /// Start `undead ARGS` with stdout piped nowhere and stderr captured.
    pub fn start(mode: Mode, args: &[&str]) -> Undead {
        Undead::start_with(mode, args, |_| {})
    }

    pub fn start_with(
        mode: Mode,
        args: &[&str],
        tweak: impl Fn(&mut Command),
    ) -> Undead {
        Undead::launch(mode, &Launch::default(), args, tweak)
    }

    /// Start undead as `how` says (see `Launch`); undead is the first
    /// process named `undead` in the tree of the spawned process.
    pub fn launch(
        mode: Mode,
        how: &Launch<'_>,
        args: &[&str],
        tweak: impl Fn(&mut Command),
    ) -> Undead {
        // No second try: a start lost once (2 in 6 full runs, as PID 1
        // with --pause) was most likely a stale kill by a bare pid from
        // another test's drop after pid wrap-around; those are gone
        // (`KillOnDrop` takes `Ident`s, `Undead` checks its own).
        Undead::try_launch(mode, how, args, &tweak)
            .unwrap_or_else(|why| panic!("undead did not start: {why}"))
    }

    fn try_launch(
        mode: Mode,
        how: &Launch<'_>,
        args: &[&str],
        tweak: &impl Fn(&mut Command),
    ) -> Result<Undead, String> {
        let scratch = Scratch::new("run");
        let stderr_path = scratch.path("stderr");
        let mut cmd = command_in(mode, how);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).unwrap());
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("spawn undead");
        let outer = child.id() as i32;
        let direct = how.outer.is_empty() && how.inner.is_empty();
        let pid = match (mode, direct) {
            (Mode::Subreaper, true) => Some(outer),
            // Generous: a loaded machine (forking tests beside this one)
            // can take seconds to run `unshare` and exec undead.
            _ => wait_for(Duration::from_secs(20), || {
                std::iter::once(outer)
                    .chain(descendants(outer))
                    .find(|&p| comm(p).as_deref() == Some("undead"))
            }),
        };
        let Some(pid) = pid else {
            let _ = child.kill();
            let status = child.wait();
            let err = fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(format!("{status:?}, stderr {err:?}"));
        };
        Ok(Undead {
            mode,
            child,
            pid,
            ident: Ident::of(pid),
            stderr_path,
            _scratch: scratch,
            exited: None,
        })
    }

    /// Wait for undead to exit; returns its exit code (128+N for a signal,
    /// as `unshare` reports it).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        if let Some(code) = self.exited {
            return Some(code);
        }
        let code = wait_for(timeout, || {
            let status = self.child.try_wait().unwrap()?;
            Some(
                status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            )
        });
        self.exited = code;
        code
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// undead runs: present and neither a zombie nor another process.
    pub fn alive(&self) -> bool {
        Stat::of(self.pid)
            .is_some_and(|s| s.state != 'Z' && s.comm == "undead")
    }

    /// Send a signal to undead itself (while it is still that process:
    /// as PID 1 it is reaped by `unshare`, not by the test).
    pub fn signal(&self, sig: i32) {
        if self.ident.is_some_and(|i| i.present()) {
            kill(self.pid, sig);
        }
    }

    /// Every descendant of undead on the host, excluding undead.
    pub fn descendants(&self) -> Vec<i32> {
        descendants(self.pid)
    }

    /// The host pid of undead's main child, once it has exec'd `name`.
    pub fn main_child(&self, name: &str, timeout: Duration) -> Option<i32> {
        wait_for(timeout, || {
            children_of(self.pid)
                .into_iter()
                .find(|&p| comm(p).as_deref() == Some(name))
        })
    }

    /// The host pid of a descendant whose command line contains `needle`.
    pub fn find_cmdline(
        &self,
        needle: &str,
        timeout: Duration,
    ) -> Option<i32> {
        wait_for(timeout, || {
            self.descendants().into_iter().find(|&p| {
                fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c).contains(needle)
                })
            })
        })
    }

    /// SIGKILL the process that started undead (`unshare` or a wrapper)
    /// and reap it; undead itself lives on (reparented) until drop.
    pub fn kill_parent(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The host pid of a descendant whose comm is `name`.
    pub fn find(&self, name: &str, timeout: Duration) -> Option<i32> {
        wait_for(timeout, || {
            self.descendants()
                .into_iter()
                .find(|&p| comm(p).as_deref() == Some(name))
        })
    }

    /// Map a pid as undead and its clients print it (undead's PID
    /// namespace) to the host pid: identity as a subreaper; as PID 1, the
    /// descendant whose innermost `NSpid` is `ns`. `None` if there is none.
    pub fn host_pid(&self, ns: i32) -> Option<i32> {
        match self.mode {
            Mode::Subreaper => (ns == self.pid
                || self.descendants().contains(&ns))
            .then_some(ns),
            Mode::Pid1 => std::iter::once(self.pid)
                .chain(self.descendants())
                .find(|&p| ns_pid(p) == Some(ns)),
        }
    }

    /// What a failure needs besides its message: the mode, undead's
    /// stderr and the process table under it (pid, ppid, state, comm,
    /// wchan), as the host's /proc shows it now.
    pub fn context(&self) -> String {
        let table: Vec<String> = self
            .descendants()
            .into_iter()
            .filter_map(Stat::of)
            .map(|p| {
                format!(
                    "{:>7} {:>7} {} {:<16} {}",
                    p.pid,
                    p.ppid,
                    p.state,
                    p.comm,
                    wchan(p.pid)
                )
            })
            .collect();
        format!(
            "\n mode: {:?}, undead host pid {}\n undead stderr:\n{}\n \
             processes under undead (pid ppid state comm wchan):\n{}\n",
            self.mode,
            self.pid,
            self.stderr(),
            table.join("\n")
        )
    }

    /// Fail the test: `msg`, then [`Undead::context`].
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!("\n{msg}{}", self.context())
    }
}

impl Drop for Undead {
    fn drop(&mut self) {
        // A pid whose process is gone (reaped by `unshare`) may be
        // another test's process by now: neither it nor its tree is ours.
        let ours = self.ident.is_some_and(|i| i.present());
        if self.exited.is_none() && ours {
            // Kill the tree before undead: while undead (a subreaper)
            // lives, whatever the tree forks meanwhile stays in it and is
            // found by the next round; killed first, undead would hand
            // such late forks to the host's init.
            let _ = wait_for(Duration::from_secs(2), || {
                let left: Vec<i32> = all_descendants(self.pid)
                    .into_iter()
                    .filter(|&p| state(p).is_some_and(|s| s != 'Z'))
                    .collect();
                for &p in &left {
                    kill(p, libc::SIGKILL);
                }
                left.is_empty().then_some(())
            });
            kill(self.pid, libc::SIGKILL);
        }
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Assert equality with the context a failure needs: expected vs got (and
/// an optional message), then undead's stderr and the process table under
/// it (`$undead` is anything with a `fail` method: an `Undead`, a kit
/// `Session`, a `Fuse`).
#[macro_export]
macro_rules! eqnice {
    ($want:expr, $got:expr, $undead:expr, $($fmt:tt)+) => {{
        let (want, got) = (&$want, &$got);
        if want != got {
            $undead.fail(&format!(
                "expected: {want:?}\n     got: {got:?}\n{}",
                format!($($fmt)+)
            ));
        }
    }};
    ($want:expr, $got:expr, $undead:expr) => {
        $crate::eqnice!($want, $got, $undead, "")
    };
}

/// Fail with undead's stderr and process table unless `cond`.
#[macro_export]
macro_rules! check {
    ($undead:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $undead.fail(&format!($($fmt)+));
        }
    };
}
