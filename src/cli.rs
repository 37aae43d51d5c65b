//! The init-mode command line (`undead [OPTIONS] -- COMMAND...`), flags
//! merged with environment variables (a flag wins over its variable). The
//! client verbs (`undead zombie 3`) are `client.rs`'s; `main` decides which.
//!
//! argh parses the words; this file only normalises what argh does not
//! know (`-vvv`, `--opt=value`, the optional value of `--withhold-reaping`)
//! and turns strings into typed values with one-line usage errors.

use std::env;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use nix::sys::signal::Signal;

use crate::chaos::Kind;
use crate::control::DEFAULT_CONTROL;
use crate::error::Error;
use crate::parse;
use crate::signals::Rewrites;

/// undead: a tiny init for containers (PID 1 or subreaper) that forwards
/// signals, reaps zombies and exits with the command's status; on request
/// it raises zombies and D-state processes for teardown tests.
#[derive(FromArgs)]
#[argh(
    note = "Usage: undead [OPTIONS] -- COMMAND [ARGS...] | undead VERB ...",
    note = "Verbs: zombie, dstate, release, status, wait, ps, rescue \
            (undead VERB --help).",
    note = "Every option can be set by environment: UNDEAD_<OPTION> (e.g. \
            UNDEAD_GRACE=10s, UNDEAD_ZOMBIES=3), and tini's TINI_SUBREAPER, \
            TINI_KILL_PROCESS_GROUP, TINI_VERBOSITY; a flag wins.",
    note = "D-state processes raise the load average, and the kernel logs \
            hung-task warnings for them after kernel.hung_task_timeout_secs."
)]
struct InitArgs {
    /// insist on PR_SET_CHILD_SUBREAPER, fail if it cannot be set (tini -s)
    #[argh(switch, short = 's')]
    subreaper: bool,
    /// forward signals to the child's process group (tini -g)
    #[argh(switch, short = 'g')]
    pgroup: bool,
    /// start the child in a new session (dumb-init's default)
    #[argh(switch)]
    setsid: bool,
    /// signal undead gets when its parent dies (tini -p)
    #[argh(option, short = 'p')]
    pdeathsig: Option<String>,
    /// report exit code CODE as 0, repeatable (tini -e)
    #[argh(option, short = 'e')]
    remap_exit: Vec<String>,
    /// forward signal FROM as TO; TO=0 drops it, repeatable (dumb-init -r)
    #[argh(option, short = 'r')]
    rewrite: Vec<String>,
    /// after the first TERM/INT, SIGKILL every descendant left after this
    #[argh(option)]
    grace: Option<String>,
    /// when the child exits, wait for the other descendants (up to --grace)
    #[argh(switch)]
    wait_all: bool,
    /// on exit write a JSON teardown report to PATH (- for stderr)
    #[argh(option)]
    report: Option<String>,
    /// more diagnostics on stderr, repeatable (tini -v)
    #[argh(switch, short = 'v')]
    verbose: u8,
    /// diagnostics as text (default) or json
    #[argh(option)]
    log_format: Option<String>,
    /// warn when a zombie that is not the child is reaped (tini -w)
    #[argh(switch, short = 'w')]
    warn_reap: bool,
    /// leave orphans unreaped (Z), forever; =DURATION for a while
    #[argh(switch)]
    withhold_reaping: bool,
    /// duration of --withhold-reaping=DURATION
    #[argh(option, hidden_help)]
    withhold_reaping_for: Option<String>,
    /// at start, create N zombies held by undead
    #[argh(option)]
    zombies: Option<String>,
    /// at start, create N D-state processes
    #[argh(option)]
    dstate: Option<String>,
    /// kind of --dstate: vfork (killable, default) or fuse (SIGKILL-immune)
    #[argh(option)]
    dstate_kind: Option<String>,
    /// release everything undead holds after DURATION (safety timer)
    #[argh(option)]
    release_after: Option<String>,
    /// control socket path (default /run/undead.sock)
    #[argh(option)]
    control: Option<String>,
    /// serve no control socket
    #[argh(switch)]
    no_control: bool,
    /// print the version and exit
    #[argh(switch, short = 'V')]
    version: bool,
    /// the command and its arguments
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// Everything init mode needs, typed.
#[derive(Debug, Clone)]
pub struct Config {
    pub command: Vec<String>,
    pub subreaper: bool,
    pub pgroup: bool,
    pub setsid: bool,
    pub pdeathsig: Option<Signal>,
    pub remap_exit: Vec<u8>,
    pub rewrites: Rewrites,
    pub grace: Option<Duration>,
    pub wait_all: bool,
    pub report: Option<String>,
    pub verbosity: u8,
    pub log_json: bool,
    pub warn_reap: bool,
    pub withhold: Withhold,
    pub zombies: usize,
    pub dstate: usize,
    pub dstate_kind: Kind,
    pub release_after: Option<Duration>,
    pub control: ControlPath,
}

/// `--withhold-reaping[=DURATION]`: whether orphans are left in Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withhold {
    /// Reap every orphan (the default).
    Off,
    /// Until `release all` or `--release-after`.
    Forever,
    /// For DURATION (or until `--release-after`, if sooner).
    For(Duration),
}

impl Withhold {
    /// How long after start withholding ends by itself: its DURATION or
    /// `--release-after`, whichever comes first (the safety timer ends
    /// withholding too, held processes or not).
    pub fn ends(self, release_after: Option<Duration>) -> Option<Duration> {
        let own = match self {
            Withhold::Off => return None,
            Withhold::Forever => None,
            Withhold::For(d) => Some(d),
        };
        [own, release_after].into_iter().flatten().min()
    }
}

/// Where the control socket is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPath {
    /// `--no-control`.
    Off,
    /// Nobody asked: best effort, so a read-only /run does not stop undead
    /// from standing in for tini.
    Default(PathBuf),
    /// `--control` or `UNDEAD_CONTROL`: failing to serve it is an error.
    Explicit(PathBuf),
}

/// What the init command line asks for.
pub enum Invocation {
    Init(Config),
    /// `--version`: print this and exit 0.
    Print(String),
}

/// The version line. `docker info` parses the init's `--version` as
/// `tini version X - git.Y` (moby's `parseInitVersion`); catatonit prints
/// the same shape for the same reason, so `dockerd --init-path` accepts us.
pub fn version() -> String {
    format!("tini version {} - git.undead", env!("CARGO_PKG_VERSION"))
}

/// Parse the words after `undead` (no verb among them).
pub fn parse(words: &[&str]) -> Result<Invocation, Error> {
    let words = normalise(words);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = InitArgs::from_args(&["undead"], &words)?;
    if args.version {
        return Ok(Invocation::Print(version()));
    }
    let env = |name: &str| env::var(name).ok();
    config(args, &Env(&env)).map(Invocation::Init)
}

/// Split `-vvv` into `-v -v -v` and `--opt=value` into `--opt value` up to
/// the command; `--withhold-reaping=D` becomes `--withhold-reaping-for D`.
/// Pure.
fn normalise(words: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = words.iter();
    while let Some(&w) = rest.next() {
        if w == "--" || !w.starts_with('-') {
            out.push(w.to_string());
            break;
        }
        if let Some((name, value)) =
            w.split_once('=').filter(|_| w.starts_with("--"))
        {
            let name = match name {
                "--withhold-reaping" => "--withhold-reaping-for",
                other => other,
            };
            out.extend([name.to_string(), value.to_string()]);
        } else if w.len() > 2
            && !w.starts_with("--")
            && w[1..].chars().all(|c| c == 'v')
        {
            out.extend(w[1..].chars().map(|_| "-v".to_string()));
        } else {
            out.push(w.to_string());
            // An option's value is not the command, whatever it looks like.
            if TAKES_VALUE.contains(&w) {
                out.extend(rest.next().map(|v| v.to_string()));
            }
        }
    }
    out.extend(rest.map(|w| w.to_string()));
    out
}

/// The init options that take a value (as separate words).
const TAKES_VALUE: [&str; 15] = [
    "-p",
    "--pdeathsig",
    "-e",
    "--remap-exit",
    "-r",
    "--rewrite",
    "--grace",
    "--report",
    "--log-format",
    "--zombies",
    "--dstate",
    "--dstate-kind",
    "--release-after",
    "--control",
    "--withhold-reaping-for",
];

/// The environment, as `config` reads it (a closure, so tests pass
/// their own).
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The variable, if set and not empty.
    fn var(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    /// Set at all, even empty (tini's `getenv() != NULL`).
    fn is_set(&self, name: &str) -> bool {
        (self.0)(name).is_some()
    }

    /// The flag's value, else the variable's.
    fn opt(&self, flag: Option<String>, name: &str) -> Option<String> {
        flag.or_else(|| self.var(name))
    }

    /// The switch, else the variable as a boolean (`1`, `true`, ...).
    fn switch(&self, flag: bool, name: &str) -> Result<bool, Error> {
        match self.var(name) {
            Some(v) if !flag => parse::flag(&v).map_err(Error::Usage),
            _ => Ok(flag),
        }
    }

    /// The repeated flag, else the variable split at commas.
    fn list(&self, flag: Vec<String>, name: &str) -> Vec<String> {
        match self.var(name) {
            Some(v) if flag.is_empty() => {
                v.split(',').map(str::to_string).collect()
            }
            _ => flag,
        }
    }
}

/// A typed value, or a usage error naming what was wrong.
fn typed<T>(
    v: Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    v.map(|v| parse(&v)).transpose().map_err(Error::Usage)
}

/// Every item typed, or the first usage error.
fn typed_all<T>(
    items: Vec<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Error> {
    items
        .iter()
        .map(|v| parse(v))
        .collect::<Result<_, _>>()
        .map_err(Error::Usage)
}

/// The command after the options (`--` optional).
fn command(mut words: Vec<String>) -> Result<Vec<String>, Error> {
    if words.is_empty() {
        return Err(Error::Usage(
            "no command given: undead [OPTIONS] -- COMMAND".into(),
        ));
    }
    if words[0] == "--" {
        words.remove(0);
        if words.is_empty() {
            return Err(Error::Usage("no command after '--'".into()));
        }
    }
    Ok(words)
}

/// `--withhold-reaping[=D]`, else `UNDEAD_WITHHOLD_REAPING` as a boolean
/// or a duration.
fn withhold(
    flag: bool,
    value: Option<String>,
    env: &Env<'_>,
) -> Result<Withhold, Error> {
    if let Some(d) = value {
        return parse::duration(&d).map(Withhold::For).map_err(Error::Usage);
    }
    if flag {
        return Ok(Withhold::Forever);
    }
    let Some(v) = env.var("UNDEAD_WITHHOLD_REAPING") else {
        return Ok(Withhold::Off);
    };
    match parse::flag(&v) {
        Ok(true) => Ok(Withhold::Forever),
        Ok(false) => Ok(Withhold::Off),
        Err(_) => parse::duration(&v).map(Withhold::For).map_err(Error::Usage),
    }
}

/// tini's `TINI_VERBOSITY` is a level; `-v` wins, then
/// `UNDEAD_VERBOSITY`.
fn verbosity(flag: u8, env: &Env<'_>) -> Result<u8, Error> {
    let var =
        env.var("UNDEAD_VERBOSITY").or_else(|| env.var("TINI_VERBOSITY"));
    match (flag, var) {
        (0, Some(v)) => v
            .parse()
            .map_err(|_| Error::Usage(format!("invalid verbosity '{v}'"))),
        (n, _) => Ok(n),
    }
}

fn log_json(format: Option<String>) -> Result<bool, Error> {
    match format.as_deref() {
        None | Some("text") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => Err(Error::Usage(format!(
            "invalid log format '{other}' (use text or json)"
        ))),
    }
}

/// Merge flags with environment variables (flags win) and type the values.
fn config(a: InitArgs, env: &Env<'_>) -> Result<Config, Error> {
    let command = command(a.command)?;
    let withhold = withhold(a.withhold_reaping, a.withhold_reaping_for, env)?;
    let control = match env.opt(a.control, "UNDEAD_CONTROL") {
        _ if env.switch(a.no_control, "UNDEAD_NO_CONTROL")? => {
            ControlPath::Off
        }
        Some(path) => ControlPath::Explicit(path.into()),
        None => ControlPath::Default(DEFAULT_CONTROL.into()),
    };
    let count = |flag, name| -> Result<usize, Error> {
        Ok(typed(env.opt(flag, name), parse::count)?.unwrap_or(0))
    };
    Ok(Config {
        command,
        // tini's TINI_SUBREAPER and TINI_KILL_PROCESS_GROUP count when
        // merely set.
        subreaper: env.switch(a.subreaper, "UNDEAD_SUBREAPER")?
            || env.is_set("TINI_SUBREAPER"),
        pgroup: env.switch(a.pgroup, "UNDEAD_PGROUP")?
            || env.is_set("TINI_KILL_PROCESS_GROUP"),
        setsid: env.switch(a.setsid, "UNDEAD_SETSID")?,
        pdeathsig: typed(
            env.opt(a.pdeathsig, "UNDEAD_PDEATHSIG"),
            parse::signal,
        )?,
        remap_exit: typed_all(
            env.list(a.remap_exit, "UNDEAD_REMAP_EXIT"),
            parse::exit_code,
        )?,
        rewrites: typed_all(
            env.list(a.rewrite, "UNDEAD_REWRITE"),
            parse::rewrite,
        )?,
        grace: typed(env.opt(a.grace, "UNDEAD_GRACE"), parse::duration)?,
        wait_all: env.switch(a.wait_all, "UNDEAD_WAIT_ALL")?,
        report: env.opt(a.report, "UNDEAD_REPORT"),
        verbosity: verbosity(a.verbose, env)?,
        log_json: log_json(env.opt(a.log_format, "UNDEAD_LOG_FORMAT"))?,
        warn_reap: env.switch(a.warn_reap, "UNDEAD_WARN_REAP")?,
        withhold,
        zombies: count(a.zombies, "UNDEAD_ZOMBIES")?,
        dstate: count(a.dstate, "UNDEAD_DSTATE")?,
        dstate_kind: typed(
            env.opt(a.dstate_kind, "UNDEAD_DSTATE_KIND"),
            Kind::parse,
        )?
        .unwrap_or(Kind::Vfork),
        release_after: typed(
            env.opt(a.release_after, "UNDEAD_RELEASE_AFTER"),
            parse::duration,
        )?,
        control,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(words: &[&str], env: &[(&str, &str)]) -> Result<Config, Error> {
        let words = normalise(words);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let args = InitArgs::from_args(&["undead"], &words)
            .map_err(|e| Error::Usage(e.output))?;
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let get =
            |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        config(args, &Env(&get))
    }

    #[test]
    fn normalise_skips_option_values() {
        assert_eq!(
            normalise(&[
                "--grace",
                "1s",
                "--withhold-reaping=1s",
                "-vv",
                "--",
                "x"
            ]),
            [
                "--grace",
                "1s",
                "--withhold-reaping-for",
                "1s",
                "-v",
                "-v",
                "--",
                "x"
            ]
        );
        assert_eq!(
            normalise(&["-p", "TERM", "-vv", "sh"]),
            ["-p", "TERM", "-v", "-v", "sh"]
        );
    }

    #[test]
    fn normalise_splits_what_argh_does_not() {
        assert_eq!(
            normalise(&[
                "-vvv",
                "--grace=5s",
                "--withhold-reaping=2s",
                "--",
                "sh",
                "-vv",
                "--x=y"
            ]),
            [
                "-v",
                "-v",
                "-v",
                "--grace",
                "5s",
                "--withhold-reaping-for",
                "2s",
                "--",
                "sh",
                "-vv",
                "--x=y"
            ]
        );
        assert_eq!(normalise(&["sh", "-c", "x=1"]), ["sh", "-c", "x=1"]);
    }

    #[test]
    fn command_after_dashes_keeps_its_flags() {
        let c = init(&["-g", "--", "sh", "-c", "echo -v", ""], &[]).unwrap();
        assert_eq!(c.command, ["sh", "-c", "echo -v", ""]);
        assert!(c.pgroup);
        let c = init(&["sh", "-c", "true"], &[]).unwrap();
        assert_eq!(c.command, ["sh", "-c", "true"]);
        assert!(init(&["--"], &[]).is_err());
        assert!(init(&[], &[]).is_err());
    }

    #[test]
    fn flags_win_over_environment() {
        let env = [
            ("UNDEAD_GRACE", "9s"),
            ("UNDEAD_ZOMBIES", "3"),
            ("TINI_SUBREAPER", ""),
        ];
        let c = init(&["--grace", "1s", "--", "true"], &env).unwrap();
        assert_eq!(c.grace, Some(Duration::from_secs(1)));
        assert_eq!(c.zombies, 3);
        assert!(c.subreaper, "TINI_SUBREAPER counts when merely set");
        let c = init(&["-vv", "true"], &[("TINI_VERBOSITY", "3")]).unwrap();
        assert_eq!(c.verbosity, 2);
        let c = init(&["true"], &[("TINI_VERBOSITY", "3")]).unwrap();
        assert_eq!(c.verbosity, 3);
        assert!(init(&["true"], &[("UNDEAD_ZOMBIES", "x")]).is_err());
    }

    #[test]
    fn withhold_reaping_value_is_optional() {
        assert_eq!(init(&["true"], &[]).unwrap().withhold, Withhold::Off);
        assert_eq!(
            init(&["--withhold-reaping", "true"], &[]).unwrap().withhold,
            Withhold::Forever
        );
        assert_eq!(
            init(&["--withhold-reaping=2s", "true"], &[]).unwrap().withhold,
            Withhold::For(Duration::from_secs(2))
        );
        assert!(init(&["--withhold-reaping=xx", "true"], &[]).is_err());
        let env = |v| [("UNDEAD_WITHHOLD_REAPING", v)];
        assert_eq!(
            init(&["true"], &env("1")).unwrap().withhold,
            Withhold::Forever
        );
        assert_eq!(
            init(&["true"], &env("0")).unwrap().withhold,
            Withhold::Off
        );
        assert_eq!(
            init(&["true"], &env("3s")).unwrap().withhold,
            Withhold::For(Duration::from_secs(3))
        );
        let s = Duration::from_secs;
        assert_eq!(Withhold::For(s(5)).ends(Some(s(2))), Some(s(2)));
        assert_eq!(Withhold::Forever.ends(Some(s(2))), Some(s(2)));
        assert_eq!(Withhold::Forever.ends(None), None);
        assert_eq!(Withhold::Off.ends(Some(s(2))), None);
    }

    #[test]
    fn lists_and_bad_values() {
        let c = init(
            &[
                "-e",
                "143",
                "-e",
                "1",
                "-r",
                "TERM:QUIT",
                "-r",
                "HUP:0",
                "true",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.remap_exit, [143, 1]);
        assert_eq!(
            c.rewrites,
            [(Signal::SIGTERM, Some(Signal::SIGQUIT)), (Signal::SIGHUP, None)]
        );
        let c = init(&["true"], &[("UNDEAD_REMAP_EXIT", "2,3")]).unwrap();
        assert_eq!(c.remap_exit, [2, 3]);
        for bad in [
            &["-p", "NOPE", "true"][..],
            &["--grace", "x", "true"],
            &["--log-format", "xml", "true"],
        ] {
            assert!(matches!(init(bad, &[]), Err(Error::Usage(_))), "{bad:?}");
        }
        let control = |words: &[&str], env: &[(&str, &str)]| {
            init(words, env).unwrap().control
        };
        assert_eq!(control(&["--no-control", "true"], &[]), ControlPath::Off);
        assert_eq!(
            control(&["true"], &[]),
            ControlPath::Default(DEFAULT_CONTROL.into())
        );
        assert_eq!(
            control(&["true"], &[("UNDEAD_CONTROL", "/x.sock")]),
            ControlPath::Explicit("/x.sock".into())
        );
        assert_eq!(
            control(&["--control", "/y", "true"], &[("UNDEAD_CONTROL", "/x")]),
            ControlPath::Explicit("/y".into())
        );
        assert_eq!(
            control(&["true"], &[("UNDEAD_NO_CONTROL", "1")]),
            ControlPath::Off
        );
    }
}
