//! Test harness: run the real undead binary as real PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`) or as a subreaper, and
//! observe it from the host's /proc. Waiting is bounded polling of a /proc
//! condition, never a bare sleep. `Undead` kills what it started on drop,
//! also when a test fails.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_undead");

/// The two legs of the matrix (tini's FORCE_SUBREAPER 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pid1,
    Subreaper,
}

pub const MODES: [Mode; 2] = [Mode::Pid1, Mode::Subreaper];

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

/// One running undead (and, in PID-1 mode, the `unshare` around it).
pub struct Undead {
    pub mode: Mode,
    child: Child,
    /// undead's pid on the host.
    pub pid: i32,
    pub stderr_path: PathBuf,
    _scratch: Scratch,
    exited: Option<i32>,
}

pub fn command(mode: Mode) -> Command {
    command_in(mode, &Launch::default())
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

impl Undead {
    /// Start `undead ARGS` with stdout piped nowhere and stderr captured.
    pub fn start(mode: Mode, args: &[&str]) -> Undead {
        Undead::start_with(mode, args, |_| {})
    }

    pub fn start_with(
        mode: Mode,
        args: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Undead {
        Undead::launch(mode, &Launch::default(), args, tweak)
    }

    /// Start undead as `how` says (see `Launch`); undead is the first
    /// process named `undead` in the tree of the spawned process.
    pub fn launch(
        mode: Mode,
        how: &Launch<'_>,
        args: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> Undead {
        let scratch = Scratch::new("run");
        let stderr_path = scratch.path("stderr");
        let mut cmd = command_in(mode, how);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).unwrap());
        tweak(&mut cmd);
        let child = cmd.spawn().expect("spawn undead");
        let outer = child.id() as i32;
        let direct = how.outer.is_empty() && how.inner.is_empty();
        let pid = match (mode, direct) {
            (Mode::Subreaper, true) => outer,
            _ => wait_for(Duration::from_secs(5), || {
                std::iter::once(outer)
                    .chain(descendants(outer))
                    .find(|&p| comm(p).as_deref() == Some("undead"))
            })
            .expect("undead did not start"),
        };
        Undead {
            mode,
            child,
            pid,
            stderr_path,
            _scratch: scratch,
            exited: None,
        }
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

    /// Send a signal to undead itself.
    pub fn signal(&self, sig: i32) {
        kill(self.pid, sig);
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
}

impl Drop for Undead {
    fn drop(&mut self) {
        if self.exited.is_none() {
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
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(pid, sig) };
}

/// Poll `f` every millisecond until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `/proc/PID/stat` fields: (state, ppid); `None` if gone.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?))
}

pub fn state(pid: i32) -> Option<char> {
    stat(pid).map(|s| s.0)
}

pub fn comm(pid: i32) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim_end()
            .to_string(),
    )
}

/// A `Key:\tvalue` line of /proc/PID/status.
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string())
    })
}

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat(p).map(|s| s.1) == Some(pid))
        .collect()
}

/// Every descendant of `root` but `undead-guard`, the subreaper-mode
/// helper that exists exactly as long as undead does.
pub fn descendants(root: i32) -> Vec<i32> {
    all_descendants(root)
        .into_iter()
        .filter(|&p| comm(p).as_deref() != Some("undead-guard"))
        .collect()
}

/// Every descendant of `root`, the guard included.
pub fn all_descendants(root: i32) -> Vec<i32> {
    let procs: Vec<(i32, i32)> =
        all_pids().into_iter().filter_map(|p| Some((p, stat(p)?.1))).collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            procs.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
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
    run_cmd(c, b"", timeout)
}

/// Run a prepared command to completion, feeding it `input` on stdin:
/// (code, stdout, stderr); code -1 if it outlived `timeout` (then killed).
pub fn run_cmd(
    mut c: Command,
    input: &[u8],
    timeout: Duration,
) -> (i32, String, String) {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
    }
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let code = wait_for(timeout, || child.try_wait().unwrap())
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // The output ends when every writer has closed the pipe; a process
    // that outlived undead and still holds it must not hang the test.
    let out = out(Duration::from_secs(2));
    (code.unwrap_or(-1), out, err(Duration::from_secs(2)))
}

/// Read a pipe to its end in a thread; the returned closure gives what was
/// read, waiting at most the given time for the end (then "<unfinished>").
fn drain(
    mut pipe: impl Read + Send + 'static,
) -> impl FnOnce(Duration) -> String {
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    move |limit| match wait_for(limit, || t.is_finished().then_some(())) {
        Some(()) => t.join().unwrap_or_default(),
        None => "<unfinished: a process still holds the pipe>".into(),
    }
}

/// Assert with the context a failure needs: expected vs got, undead's
/// stderr and the process table under it.
#[macro_export]
macro_rules! eqnice {
    ($want:expr, $got:expr, $undead:expr) => {{
        let (want, got) = (&$want, &$got);
        if want != got {
            let u: &$crate::common::Undead = &$undead;
            let table: Vec<String> = u
                .descendants()
                .into_iter()
                .map(|p| format!("{p} {:?} {:?}", $crate::common::stat(p), $crate::common::comm(p)))
                .collect();
            panic!(
                "\nexpected: {want:?}\n     got: {got:?}\n mode: {:?}\n undead stderr:\n{}\n processes:\n{}\n",
                u.mode,
                u.stderr(),
                table.join("\n")
            );
        }
    }};
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The fields of `/proc/PID/stat` after the comm: [0] state, [1] ppid,
/// [2] pgrp, [3] session, [4] tty_nr, [5] tpgid, ...
pub fn stat_fields(pid: i32) -> Option<Vec<i64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    // The state letter parses as 0; the others are numbers.
    Some(rest.split(' ').take(6).map(|f| f.parse().unwrap_or(0)).collect())
}

/// The lines of a file written by a fixture (empty if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Poll until the file has at least `n` lines; returns them.
pub fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    wait_for(timeout, || {
        let l = lines(path);
        (l.len() >= n).then_some(l)
    })
    .unwrap_or_else(|| lines(path))
}

/// SIGKILLs the listed host pids on drop: for processes that escaped
/// undead's tree, which `Undead`'s drop no longer finds.
pub struct KillOnDrop(pub Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &p in &self.0 {
            kill(p, libc::SIGKILL);
        }
    }
}

/// `/proc/PID/stat` field 22, the start time in clock ticks since boot:
/// with the pid, it names one process even if the pid is reused later.
pub fn starttime(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the comm: state is field 3, so starttime is the 20th.
    text[text.rfind(')')? + 2..].split(' ').nth(19)?.parse().ok()
}

/// One process, by pid and start time: `alive`/`gone` stay correct even if
/// the pid is reused by an unrelated process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    pub pid: i32,
    pub start: u64,
}

impl Ident {
    pub fn of(pid: i32) -> Option<Ident> {
        Some(Ident { pid, start: starttime(pid)? })
    }
    /// Still present in /proc (in any state, Z included).
    pub fn present(&self) -> bool {
        starttime(self.pid) == Some(self.start)
    }
    /// The process's state letter, `None` once it is gone (reaped).
    pub fn state(&self) -> Option<char> {
        let s = state(self.pid)?;
        self.present().then_some(s)
    }
}

/// The pid of a process in the innermost PID namespace it belongs to: the
/// last field of the `NSpid` line of /proc/PID/status.
pub fn ns_pid(pid: i32) -> Option<i32> {
    status_field(pid, "NSpid")?.split_whitespace().last()?.parse().ok()
}

impl Undead {
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
}

/// A pseudo-terminal; a thread drains the master into `output` so the
/// terminal never blocks a writer.
pub struct Pty {
    pub master: fs::File,
    slave: std::os::fd::OwnedFd,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    pub fn open() -> Pty {
        let p = nix::pty::openpty(None, None).unwrap();
        let master = fs::File::from(p.master);
        let mut reader = master.try_clone().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once every slave descriptor is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { master, slave: p.slave, output }
    }

    /// A new descriptor of the slave side, for a child's stdio.
    pub fn slave(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }

    /// The terminal's device number as `/proc/PID/stat`'s tty_nr shows it.
    pub fn tty_nr(&self) -> i64 {
        use std::os::unix::fs::MetadataExt;
        let path = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.slave)
        ))
        .unwrap();
        let rdev = fs::metadata(path).unwrap().rdev();
        // new_encode_dev: minor low 8 bits, major, then minor's high bits.
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        i64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
    }

    pub fn write(&self, bytes: &[u8]) {
        use std::io::Write;
        (&self.master).write_all(bytes).unwrap();
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Run `cmd` to completion with captured output, killing it (by its own
/// pid) after `timeout`; `code` is -1 then.
pub fn run_ran(cmd: &mut Command, timeout: Duration) -> Ran {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let so = drain(Box::new(child.stdout.take().unwrap()));
    let se = drain(Box::new(child.stderr.take().unwrap()));
    let code = wait_for(timeout, || child.try_wait().unwrap())
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
    if code.is_none() {
        // Everything under it too: a descendant holding the pipes would
        // keep the readers below waiting.
        for pid in descendants(child.id() as i32) {
            kill(pid, libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let took = started.elapsed();
    Ran {
        code: code.unwrap_or(-1),
        stdout: so.join().unwrap(),
        stderr: se.join().unwrap(),
        took,
    }
}
