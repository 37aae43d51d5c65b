//! The command line: init mode (`undead [OPTIONS] -- COMMAND...`) or a
//! client verb (`undead zombie 3`), flags merged with environment variables
//! (a flag wins over its variable).
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
use crate::error::Error;
use crate::parse;
use crate::signals::Rewrites;

/// undead: a tiny init for containers (PID 1 or subreaper) that forwards
/// signals, reaps zombies and exits with the command's status; on request
/// it raises zombies and D-state processes for teardown tests.
#[derive(FromArgs)]
#[argh(
    note = "Usage: undead [OPTIONS] -- COMMAND [ARGS...] | undead VERB ... | \
            undead [OPTIONS] --pause",
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
    /// run no command: reap, serve the kit, exit 0 on TERM/INT (pod pause)
    #[argh(switch)]
    pause: bool,
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
    /// Empty exactly when `pause` is set.
    pub command: Vec<String>,
    /// `--pause`: no command; exit 0 on SIGTERM/SIGINT (SPEC §7).
    pub pause: bool,
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
    /// `None`: reap orphans; `Some(None)`: withhold forever.
    pub withhold: Option<Option<Duration>>,
    pub zombies: usize,
    pub dstate: usize,
    pub dstate_kind: Kind,
    pub release_after: Option<Duration>,
    pub control: Option<PathBuf>,
    /// The control path was given by flag or variable, not defaulted.
    pub control_explicit: bool,
}

/// What the command line asks for.
pub enum Invocation {
    Init(Config),
    Client(crate::client::Verb),
    /// `--help` / `--version`: print this and exit 0.
    Print(String),
}

pub const VERBS: [&str; 7] =
    ["zombie", "dstate", "release", "status", "wait", "ps", "rescue"];

/// The version line. `docker info` parses the init's `--version` as
/// `tini version X - git.Y` (moby's `parseInitVersion`); catatonit prints
/// the same shape for the same reason, so `dockerd --init-path` accepts us.
pub fn version() -> String {
    format!("tini version {} - git.undead", env!("CARGO_PKG_VERSION"))
}

pub fn parse(argv: &[String]) -> Result<Invocation, Error> {
    let words: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    if let Some(verb) = words.first().filter(|w| VERBS.contains(w)) {
        return crate::client::parse(verb, &words[1..])
            .map(Invocation::Client);
    }
    let words = normalise(&words);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let args = match InitArgs::from_args(&["undead"], &words) {
        Ok(args) => args,
        Err(e) if e.status.is_ok() => {
            return Ok(Invocation::Print(help_text(&e.output)));
        }
        Err(e) => return Err(Error::Usage(first_line(&e.output))),
    };
    if args.version {
        return Ok(Invocation::Print(version()));
    }
    config(args, &|name| env::var(name).ok()).map(Invocation::Init)
}

/// `--help` output: argh's text plus the exit-code table.
pub fn help_text(argh_output: &str) -> String {
    format!("{}\n{}", argh_output.trim_end(), crate::error::EXIT_CODES)
}

/// argh's first error line, lowercased like every undead error.
pub fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("usage error").trim();
    let mut chars = line.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
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

/// Merge flags with environment variables (flags win) and type the values.
fn config(
    a: InitArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let usage = Error::Usage;
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let opt = |flag: Option<String>, name: &str| flag.or_else(|| var(name));
    let switch = |flag: bool, name: &str| -> Result<bool, Error> {
        Ok(flag
            || var(name)
                .map(|v| parse::flag(&v))
                .transpose()
                .map_err(usage)?
                .unwrap_or(false))
    };
    let list = |flag: Vec<String>, name: &str| -> Vec<String> {
        if !flag.is_empty() {
            return flag;
        }
        var(name)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let dur = |v: Option<String>| {
        v.map(|v| parse::duration(&v)).transpose().map_err(usage)
    };
    let count = |v: Option<String>| -> Result<usize, Error> {
        Ok(v.map(|v| parse::count(&v))
            .transpose()
            .map_err(usage)?
            .unwrap_or(0))
    };
    let pause = switch(a.pause, "UNDEAD_PAUSE")?;
    let command = command(a.command, pause)?;
    // tini's variables: TINI_SUBREAPER and TINI_KILL_PROCESS_GROUP count when
    // merely set (tini checks getenv() != NULL); TINI_VERBOSITY is a level.
    let tini_set = |name: &str| env(name).is_some();
    let verbosity = match (
        a.verbose,
        opt(None, "UNDEAD_VERBOSITY").or_else(|| var("TINI_VERBOSITY")),
    ) {
        (0, Some(v)) => {
            v.parse().map_err(|_| usage(format!("invalid verbosity '{v}'")))?
        }
        (n, _) => n,
    };
    let withhold = if a.withhold_reaping || a.withhold_reaping_for.is_some() {
        Some(dur(a.withhold_reaping_for)?)
    } else {
        match var("UNDEAD_WITHHOLD_REAPING") {
            None => None,
            Some(v) if parse::flag(&v) == Ok(true) => Some(None),
            Some(v) if parse::flag(&v) == Ok(false) => None,
            Some(v) => Some(Some(parse::duration(&v).map_err(usage)?)),
        }
    };
    let log_format = opt(a.log_format, "UNDEAD_LOG_FORMAT");
    let log_json = match log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(usage(format!(
                "invalid log format '{other}' (use text or json)"
            )));
        }
    };
    let kind = opt(a.dstate_kind, "UNDEAD_DSTATE_KIND");
    let dstate_kind = kind
        .map(|k| Kind::parse(&k))
        .transpose()
        .map_err(usage)?
        .unwrap_or(Kind::Vfork);
    let no_control = switch(a.no_control, "UNDEAD_NO_CONTROL")?;
    let control = opt(a.control, "UNDEAD_CONTROL");
    let control_explicit = control.is_some();
    let control =
        control.unwrap_or_else(|| crate::client::DEFAULT_CONTROL.into());
    Ok(Config {
        command,
        pause,
        subreaper: switch(a.subreaper, "UNDEAD_SUBREAPER")?
            || tini_set("TINI_SUBREAPER"),
        pgroup: switch(a.pgroup, "UNDEAD_PGROUP")?
            || tini_set("TINI_KILL_PROCESS_GROUP"),
        setsid: switch(a.setsid, "UNDEAD_SETSID")?,
        pdeathsig: opt(a.pdeathsig, "UNDEAD_PDEATHSIG")
            .map(|s| parse::signal(&s))
            .transpose()
            .map_err(usage)?,
        remap_exit: list(a.remap_exit, "UNDEAD_REMAP_EXIT")
            .iter()
            .map(|c| parse::exit_code(c))
            .collect::<Result<_, _>>()
            .map_err(usage)?,
        rewrites: list(a.rewrite, "UNDEAD_REWRITE")
            .iter()
            .map(|r| parse::rewrite(r))
            .collect::<Result<_, _>>()
            .map_err(usage)?,
        grace: dur(opt(a.grace, "UNDEAD_GRACE"))?,
        wait_all: switch(a.wait_all, "UNDEAD_WAIT_ALL")?,
        report: opt(a.report, "UNDEAD_REPORT"),
        verbosity,
        log_json,
        warn_reap: switch(a.warn_reap, "UNDEAD_WARN_REAP")?,
        withhold,
        zombies: count(opt(a.zombies, "UNDEAD_ZOMBIES"))?,
        dstate: count(opt(a.dstate, "UNDEAD_DSTATE"))?,
        dstate_kind,
        release_after: dur(opt(a.release_after, "UNDEAD_RELEASE_AFTER"))?,
        control: (!no_control).then(|| PathBuf::from(control)),
        control_explicit,
    })
}

/// The command after the options: required, unless `--pause`, which
/// takes none.
fn command(mut words: Vec<String>, pause: bool) -> Result<Vec<String>, Error> {
    let dashes = words.first().is_some_and(|w| w == "--");
    if dashes {
        words.remove(0);
    }
    match (words.is_empty(), pause) {
        (true, false) if dashes => {
            Err(Error::Usage("no command after '--'".into()))
        }
        (true, false) => Err(Error::Usage(
            "no command given: undead [OPTIONS] -- COMMAND".into(),
        )),
        (false, true) => Err(Error::Usage("--pause runs no command".into())),
        _ => Ok(words),
    }
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
        config(args, &|n| {
            env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
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
    fn pause_takes_no_command() {
        let c = init(&["--pause"], &[]).unwrap();
        assert!(c.pause && c.command.is_empty());
        let c = init(&[], &[("UNDEAD_PAUSE", "1")]).unwrap();
        assert!(c.pause && c.command.is_empty());
        assert!(init(&["--pause", "--", "true"], &[]).is_err());
        assert!(init(&["true"], &[("UNDEAD_PAUSE", "1")]).is_err());
        assert!(!init(&["true"], &[("UNDEAD_PAUSE", "0")]).unwrap().pause);
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
        assert_eq!(init(&["true"], &[]).unwrap().withhold, None);
        assert_eq!(
            init(&["--withhold-reaping", "true"], &[]).unwrap().withhold,
            Some(None)
        );
        assert_eq!(
            init(&["--withhold-reaping=2s", "true"], &[]).unwrap().withhold,
            Some(Some(Duration::from_secs(2)))
        );
        assert!(init(&["--withhold-reaping=xx", "true"], &[]).is_err());
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
        assert!(
            init(&["--no-control", "true"], &[]).unwrap().control.is_none()
        );
    }
}
