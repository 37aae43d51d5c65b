//! Client verbs: talk to the running undead over its control socket
//! (`zombie`, `dstate`, `release`, `status`, `wait`), or read /proc
//! directly (`ps`), or work on the host (`rescue`); `show.rs` prints.
//!
//! Exit codes: 0 done, 1 failed or timed out, 2 usage error, 3 no undead
//! answers on the socket.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use argh::FromArgs;
use nix::sys::socket::{MsgFlags, send};

use crate::action::WaitFor;
use crate::chaos::{ChaosCmd, HazardCmd, HazardKind, Kind, OUTLIVE_FUSE_ONLY};
use crate::control::DEFAULT_CONTROL;
use crate::error::Error;
use crate::json::Value;
use crate::parse;
use crate::procfs;
use crate::request::{self, Request};
use crate::show::{self, Print};
use crate::waiting::MAX_HOLD;

/// The words `main` hands to `parse` instead of running an init.
pub const VERBS: [&str; 13] = [
    "zombie", "dstate", "release", "status", "wait", "ps", "rescue",
    "stopped", "deaf", "slow", "escapee", "hopper", "frozen",
];

/// How long a client waits for undead's reply (creation is bounded by
/// undead itself to a few seconds).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(FromArgs)]
/// create N zombies held by undead; prints their PIDs
struct ZombieArgs {
    /// how many
    #[argh(positional)]
    n: String,
    /// put them under a separate holder process that never waits
    #[argh(switch)]
    holder: bool,
    /// control socket (default $UNDEAD_CONTROL or /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
}

#[derive(FromArgs)]
/// create N D-state processes; prints their PIDs
struct DstateArgs {
    /// how many
    #[argh(positional)]
    n: String,
    /// vfork (killable, default) or fuse (SIGKILL-immune)
    #[argh(option)]
    kind: Option<String>,
    /// fuse only: victims outlive undead, freed by the kernel after DURATION
    #[argh(option)]
    outlive: Option<String>,
    /// the victims work in (and keep busy) this directory
    #[argh(option)]
    cwd: Option<String>,
    /// control socket (default $UNDEAD_CONTROL or /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
}

#[derive(FromArgs)]
/// release what undead holds: all (default), kinds (any mix) or PIDs
struct ReleaseArgs {
    /// all; or kinds: zombies, dstate, stopped, deaf, slow, escapee,
    /// hopper, frozen; or PIDs
    #[argh(positional)]
    what: Vec<String>,
    /// control socket (default $UNDEAD_CONTROL or /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
}

#[derive(FromArgs)]
/// show undead's PID, child, holdings, timers and counters
struct StatusArgs {
    /// print JSON
    #[argh(switch)]
    json: bool,
    /// control socket (default $UNDEAD_CONTROL or /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
}

#[derive(FromArgs)]
/// wait until undead holds or sees at least N zombies and N D processes
#[argh(
    note = "Also --stopped N, --deaf N, --slow N, --escapee N, --hopper N, \
               --frozen N: at least N processes of that kit kind, held or \
               unheld."
)]
struct WaitArgs {
    /// at least this many Z processes
    #[argh(option)]
    zombies: Option<String>,
    /// at least this many D processes
    #[argh(option)]
    dstate: Option<String>,
    /// give up (exit 1) after DURATION; default: wait forever
    #[argh(option)]
    timeout: Option<String>,
    /// control socket (default $UNDEAD_CONTROL or /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
}

#[derive(FromArgs)]
/// list the processes of this PID namespace with state, wchan and what undead holds
struct PsArgs {
    /// print JSON
    #[argh(switch)]
    json: bool,
    /// control socket (default $UNDEAD_CONTROL or /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
}

#[derive(FromArgs)]
/// on a host, as root: abort the FUSE connections of undead's filesystems
struct RescueArgs {
    /// only list them
    #[argh(switch)]
    dry_run: bool,
}

/// A parsed client verb.
pub enum Verb {
    /// One request, one reply, shown as `print` says.
    Send {
        request: Request,
        control: String,
        print: Print,
    },
    Wait {
        zombies: u64,
        dstate: u64,
        /// Minimums per hazard kind (held or unheld).
        kinds: Vec<(&'static str, u64)>,
        timeout: Option<Duration>,
        control: String,
    },
    Ps {
        json: bool,
        control: String,
    },
    Rescue {
        dry_run: bool,
    },
}

/// `--control`, else `$UNDEAD_CONTROL`, else the default path.
fn control(flag: Option<String>) -> String {
    flag.or_else(|| {
        std::env::var("UNDEAD_CONTROL").ok().filter(|v| !v.is_empty())
    })
    .unwrap_or_else(|| DEFAULT_CONTROL.into())
}

fn count(text: &str) -> Result<usize, Error> {
    parse::count(text).map_err(Error::Usage)
}

fn duration(text: Option<String>) -> Result<Option<Duration>, Error> {
    text.map(|t| parse::duration(&t)).transpose().map_err(Error::Usage)
}

/// Parse `undead VERB WORDS...`; one arm per verb. Called from the
/// init's `--raise` too: one copy, not inlined twice.
#[inline(never)]
pub fn parse(verb: &str, words: &[&str]) -> Result<Verb, Error> {
    let cmd = ["undead", verb];
    let send =
        |request, control, print| Ok(Verb::Send { request, control, print });
    match verb {
        "zombie" => {
            let a = ZombieArgs::from_args(&cmd, words)?;
            let n = count(&a.n)?;
            let cmd = ChaosCmd::Zombies { n, holder: a.holder };
            send(Request::Raise(cmd), control(a.control), Print::Pids)
        }
        "dstate" => {
            let a = DstateArgs::from_args(&cmd, words)?;
            let n = count(&a.n)?;
            let kind = a.kind.as_deref().map_or(Ok(Kind::Vfork), Kind::parse);
            let kind = kind.map_err(Error::Usage)?;
            let outlive = duration(a.outlive)?;
            if outlive.is_some() && kind != Kind::Fuse {
                return Err(Error::Usage(OUTLIVE_FUSE_ONLY.into()));
            }
            let cwd = a.cwd.as_deref().map(cwd_word).transpose()?;
            let cwd = cwd.map(Into::into);
            let cmd = ChaosCmd::Dstate { n, kind, outlive, cwd };
            send(Request::Raise(cmd), control(a.control), Print::Pids)
        }
        "stopped" | "deaf" | "slow" | "escapee" | "hopper" | "frozen" => {
            let (w, path) = crate::chaos::hazard_words(words)?;
            let kind = HazardKind::parse(verb)
                .ok_or_else(|| Error::Usage(verb.into()))?;
            let cmd = HazardCmd::parse(kind, &w).map_err(Error::Usage)?;
            let cmd = ChaosCmd::Hazard(cmd);
            send(Request::Raise(cmd), control(path), Print::Pids)
        }
        "release" => {
            let a = ReleaseArgs::from_args(&cmd, words)?;
            let what: Vec<&str> = a.what.iter().map(String::as_str).collect();
            let what = request::parse_release(&what).map_err(Error::Usage)?;
            send(Request::Release(what), control(a.control), Print::Released)
        }
        "status" => {
            let a = StatusArgs::from_args(&cmd, words)?;
            let print = Print::Status { json: a.json };
            send(Request::Status { seen: true }, control(a.control), print)
        }
        "wait" => {
            let (kinds, rest) = wait_kinds(words)?;
            let a = WaitArgs::from_args(&cmd, &rest)?;
            let n = |v: Option<String>| -> Result<u64, Error> {
                Ok(v.as_deref().map(count).transpose()?.unwrap_or(0) as u64)
            };
            Ok(Verb::Wait {
                zombies: n(a.zombies)?,
                dstate: n(a.dstate)?,
                kinds,
                timeout: duration(a.timeout)?,
                control: control(a.control),
            })
        }
        "ps" => {
            let a = PsArgs::from_args(&cmd, words)?;
            Ok(Verb::Ps { json: a.json, control: control(a.control) })
        }
        "rescue" => {
            let a = RescueArgs::from_args(&cmd, words)?;
            Ok(Verb::Rescue { dry_run: a.dry_run })
        }
        other => Err(Error::Usage(format!("unknown verb '{other}'"))),
    }
}

/// Run a client verb; `main` prints the error.
pub fn run(verb: Verb) -> Result<(), Error> {
    match verb {
        Verb::Send { request, control, print } => {
            ask(&control, &request, REPLY_TIMEOUT)
                .and_then(|reply| show::reply(&reply, print))
        }
        Verb::Wait { zombies, dstate, kinds, timeout, control } => {
            wait(zombies, dstate, &kinds, timeout, &control)
        }
        Verb::Ps { json, control } => {
            // Asked first, read last: undead builds its reply while the
            // client reads /proc.
            let status = Request::Status { seen: false };
            let asking =
                Asking::start(&control, &status, Duration::from_secs(2));
            let procs = show::read_all();
            show::ps(json, procs, &held_here(asking, &control));
            Ok(())
        }
        Verb::Rescue { dry_run } => rescue(dry_run),
    }
}

/// One request, one reply. Connection errors mean nobody answers (exit 3).
pub fn ask(
    control: &str,
    request: &Request,
    timeout: Duration,
) -> Result<Value, Error> {
    Asking::start(control, request, timeout)?.reply()
}

/// A request sent whose reply is still to be read: undead prepares it
/// while the client does something else.
pub struct Asking {
    stream: UnixStream,
    control: String,
}

impl Asking {
    pub fn start(
        control: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Asking, Error> {
        let stream = UnixStream::connect(control)
            .and_then(|s| s.set_read_timeout(Some(timeout)).map(|()| s))
            .map_err(|e| no_answer(control, &e))?;
        // MSG_NOSIGNAL: undead may have answered (a refusal) and closed
        // already; that is a reply to read, not a SIGPIPE to die of. A
        // failed send is therefore not final either: the read decides.
        let line = format!("{request}\n");
        let _ =
            send(stream.as_raw_fd(), line.as_bytes(), MsgFlags::MSG_NOSIGNAL);
        Ok(Asking { stream, control: control.to_string() })
    }

    /// The reply: one line; no wait for EOF beyond it.
    pub fn reply(mut self) -> Result<Value, Error> {
        let mut reply = Vec::new();
        let mut chunk = [0u8; 65536];
        while !reply.ends_with(b"\n") {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
                Err(e) if reply.is_empty() => {
                    return Err(no_answer(&self.control, &e));
                }
                Err(_) => break,
            }
        }
        if reply.is_empty() {
            let reset = std::io::Error::from_raw_os_error(libc::ECONNRESET);
            return Err(no_answer(&self.control, &reset));
        }
        let reply = String::from_utf8_lossy(&reply);
        crate::json::parse(reply.trim()).map_err(Error::BadReply)
    }
}

fn no_answer(control: &str, e: &std::io::Error) -> Error {
    Error::NoAnswer {
        path: control.to_string(),
        errno: nix::errno::Errno::from_raw(
            e.raw_os_error().unwrap_or(libc::EIO),
        ),
    }
}

/// Ask undead to answer once it sees enough Z and D processes and holds
/// (or shows unheld) enough of each hazard kind; it holds the request at
/// most `MAX_HOLD`, so a longer wait asks again.
fn wait(
    zombies: u64,
    dstate: u64,
    kinds: &[(&'static str, u64)],
    timeout: Option<Duration>,
    control: &str,
) -> Result<(), Error> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline
            .map_or(MAX_HOLD, |d| d.saturating_duration_since(Instant::now()));
        let want = WaitFor {
            zombies,
            dstate,
            timeout: left.min(MAX_HOLD),
            kinds: kinds.to_vec(),
        };
        let s = ask(control, &Request::Wait(want), REPLY_TIMEOUT)?;
        if matches!(s.get("ok"), Some(Value::Bool(true))) {
            return Ok(());
        }
        let why = s.get("error").and_then(Value::as_str).unwrap_or("");
        if !why.starts_with("timed out") {
            return Err(Error::Refused(why.to_string()));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::WaitTimeout(why.to_string()));
        }
    }
}

/// What undead holds, as (pid, kind), if it answers and shares this PID
/// namespace: pids mean the same only inside it, so a client on the host
/// labels nothing rather than the wrong processes.
/// An undead older than `status held` refuses it: then `status` is asked.
fn held_here(
    asking: Result<Asking, Error>,
    control: &str,
) -> Vec<(u64, String)> {
    // The kind, marked when undead does not hold it (`deaf (unheld)`): what
    // `ps` shows in its HELD column and in `held` of `--json`.
    let Ok(mut s) = asking.and_then(Asking::reply) else {
        return Vec::new();
    };
    if !matches!(s.get("ok"), Some(Value::Bool(true))) {
        let status = Request::Status { seen: true };
        let Ok(full) = ask(control, &status, Duration::from_secs(2)) else {
            return Vec::new();
        };
        s = full;
    }
    if s.get("pidns").and_then(Value::as_str)
        != Some(procfs::pid_namespace().as_str())
    {
        return Vec::new();
    }
    let held = s.get("held").map(Value::as_array).unwrap_or(&[]);
    let mut kinds: Vec<(u64, String)> = held
        .iter()
        .filter_map(|h| {
            let kind = h.get("kind")?.as_str()?;
            let unheld = matches!(h.get("unheld"), Some(Value::Bool(true)));
            Some((
                h.get("pid")?.as_u64()?,
                if unheld { format!("{kind} (unheld)") } else { kind.into() },
            ))
        })
        .collect();
    // Sorted by pid: `ps` looks each process up.
    kinds.sort_unstable_by_key(|(pid, _)| *pid);
    kinds
}

/// Abort (or list) the FUSE connections of undead's filesystems; thaw
/// (or list) its frozen cgroups.
fn rescue(dry_run: bool) -> Result<(), Error> {
    let frozen = crate::cgroup::rescue_frozen(dry_run);
    frozen.iter().for_each(|line| crate::log::out!("{line}"));
    let items = crate::chaos::rescue(dry_run)
        .map_err(|e| Error::Rescue(e.to_string()))?;
    if items.is_empty() {
        crate::log::out!("no fuse connection of undead found");
    }
    items.iter().for_each(|item| crate::log::out!("{item}"));
    Ok(())
}

/// At least this many of each hazard kind (by name).
type Minimums = Vec<(&'static str, u64)>;

/// `wait`'s per-kind minimums (`--stopped N`, `--hopper=N`, …), by hand:
/// six more argh options would cost the binary ~8 KB. Returns them and
/// the words left for argh.
fn wait_kinds<'a>(
    words: &[&'a str],
) -> Result<(Minimums, Vec<&'a str>), Error> {
    let mut kinds = Vec::new();
    let mut rest = Vec::new();
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        let kind = w
            .strip_prefix("--")
            .and_then(|k| HazardKind::parse(k.split('=').next()?));
        let Some(kind) = kind else {
            rest.push(w);
            continue;
        };
        let v = match w.split_once('=') {
            Some((_, v)) => Some(v),
            None => it.next().copied(),
        };
        let v = v.ok_or_else(|| {
            Error::Usage(format!("missing value for option '{w}'"))
        })?;
        kinds.push((kind.name(), count(v)? as u64));
    }
    Ok((kinds, rest))
}

/// A `--cwd` directory as one request word: it must be a directory here
/// (usage error otherwise) and, the request being words, hold no space.
fn cwd_word(dir: &str) -> Result<&str, Error> {
    if dir.contains(char::is_whitespace) || dir.is_empty() {
        return Err(Error::Usage(format!(
            "--cwd '{dir}': a path without whitespace, please"
        )));
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        _ => Err(Error::Usage(format!("--cwd '{dir}' is not a directory"))),
    }
}
