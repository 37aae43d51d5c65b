//! Waiting and running: bounded polling ([`wait_for`]) and the one way a
//! test runs a command to completion ([`exec`], giving a [`Ran`]).

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::proc::{descendants, kill};

/// Poll `f` every millisecond until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    f: impl FnMut() -> Option<T>,
) -> Option<T> {
    wait_every(Duration::from_millis(1), timeout, f)
}

/// Poll `f` every `period` until it returns `Some`, for at most `timeout`
/// (a period for probes that are themselves expensive, e.g. `docker`).
pub fn wait_every<T>(
    period: Duration,
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
        std::thread::sleep(period);
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Ran {
    /// The command line, for messages.
    pub what: String,
    /// The exit code, 128+N for death by signal N; -1 if it could not
    /// start or did not finish in time (then it was killed).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// stdout and stderr, one after the other.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> {} in {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` to completion with captured output, feeding it `input` on
/// stdin (`None`: /dev/null). After `timeout` it and everything under it
/// are killed (by pid), so a hung process fails the test instead of
/// hanging it; a process that outlived it and still holds the pipes is
/// waited for at most 2 s more. Never panics (usable in `Drop`).
pub fn exec(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Ran {
    exec_term(cmd, input, timeout, Duration::ZERO)
}

/// [`exec`] for a command that cleans up after itself on SIGTERM (a
/// scenario that removes its engine's containers): after `timeout` it gets
/// SIGTERM and `grace` to exit, then the SIGKILLs. `code` stays -1.
pub fn exec_term(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
    grace: Duration,
) -> Ran {
    let what = format!("{cmd:?}").replace('"', "");
    let started = Instant::now();
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    let spawned =
        cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let stderr = format!("cannot run: {e}\n");
            let took = started.elapsed();
            return Ran {
                what,
                code: -1,
                stdout: String::new(),
                stderr,
                took,
            };
        }
    };
    if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), input) {
        let _ = pipe.write_all(bytes);
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let code = wait_for(timeout, || child.try_wait().ok().flatten())
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
    if code.is_none() {
        if !grace.is_zero() {
            kill(child.id() as i32, libc::SIGTERM);
            let _ = wait_for(grace, || child.try_wait().ok().flatten());
        }
        for pid in descendants(child.id() as i32) {
            kill(pid, libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let took = started.elapsed();
    let limit = Duration::from_secs(2);
    let (stdout, stderr) = (out(limit), err(limit));
    Ran { what, code: code.unwrap_or(-1), stdout, stderr, took }
}

/// Read a pipe to its end in a thread; the returned closure gives what was
/// read, waiting at most the given time for the end (then "<unfinished>").
fn drain(
    pipe: Option<impl Read + Send + 'static>,
) -> impl FnOnce(Duration) -> String {
    let t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    move |limit| match wait_for(limit, || t.is_finished().then_some(())) {
        Some(()) => t.join().unwrap_or_default(),
        None => "<unfinished: a process still holds the pipe>".into(),
    }
}

/// Run a prepared command to completion, feeding it `input` on stdin:
/// (code, stdout, stderr); code -1 if it outlived `timeout` (then killed).
pub fn run_cmd(
    mut c: Command,
    input: &[u8],
    timeout: Duration,
) -> (i32, String, String) {
    let r = exec(&mut c, Some(input), timeout);
    (r.code, r.stdout, r.stderr)
}

/// [`exec`] with stdin from /dev/null.
pub fn run_ran(cmd: &mut Command, timeout: Duration) -> Ran {
    exec(cmd, None, timeout)
}
