//! Everything init mode needs, typed: the flags argh parsed (`cli.rs`)
//! merged with environment variables (a flag wins over its variable;
//! tini's `TINI_*` variables keep tini's meaning).

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::chaos::{ChaosCmd, Kind};
use crate::cli::{self, InitArgs};
use crate::client::Verb;
use crate::control::DEFAULT_CONTROL;
use crate::error::Error;
use crate::parse;
use crate::request::Request;
use crate::signals::Rewrites;

/// Everything init mode needs, typed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Empty exactly when `pause` is set.
    pub command: Vec<String>,
    /// `--pause`: no command; exit 0 on SIGTERM/SIGINT (the pod sandbox).
    pub pause: bool,
    pub subreaper: bool,
    pub pgroup: bool,
    pub setsid: bool,
    /// Fork `undead-guard` in subreaper mode (off: tini's process tree).
    pub guard: bool,
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
    /// `--raise`/`UNDEAD_RAISE`, after `--zombies` and `--dstate`.
    pub raise: Vec<ChaosCmd>,
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

/// The environment, as `config` reads it (a closure, so tests pass
/// their own).
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

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

    /// The flag's value, else the variable's, with where it came from.
    fn value(
        &self,
        flag: Option<String>,
        name: &'static str,
    ) -> Option<Value> {
        let var = flag.is_none().then_some(name);
        flag.or_else(|| self.var(name)).map(|text| Value { text, var })
    }

    /// The repeated flag, else the variable split at commas, each with
    /// where it came from.
    fn values(&self, flag: Vec<String>, name: &'static str) -> Vec<Value> {
        let var = flag.is_empty().then_some(name);
        let texts = self.list(flag, name).into_iter();
        texts.map(|text| Value { text, var }).collect()
    }

    /// The switch, else the variable as a boolean (`1`, `true`, ...).
    fn switch(&self, flag: bool, name: &'static str) -> Result<bool, Error> {
        match self.var(name) {
            Some(v) if !flag => parse::flag(&v).map_err(|e| in_var(name, e)),
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

/// An option's text and, when it came from the environment, the variable.
struct Value {
    text: String,
    var: Option<&'static str>,
}

impl Value {
    /// The usage error: what was wrong, and the variable it was read from.
    fn error(&self, why: String) -> Error {
        match self.var {
            Some(name) => in_var(name, why),
            None => Error::Usage(why),
        }
    }
}

/// The usage error of a value read from the variable `name`.
fn in_var(name: &str, why: String) -> Error {
    Error::Usage(format!("{name}: {why}"))
}

/// A typed value, or a usage error naming what was wrong.
fn typed<T>(
    v: Option<Value>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    v.map(|v| parse(&v.text).map_err(|why| v.error(why))).transpose()
}

/// Every item typed, or the first usage error.
fn typed_all<T>(
    items: Vec<Value>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Error> {
    items.iter().map(|v| parse(&v.text).map_err(|why| v.error(why))).collect()
}

/// The command after the options (`--` optional): required, unless
/// `--pause`, which takes none.
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

/// `--raise 'VERB ARGS'` (repeatable), else `UNDEAD_RAISE` (`;`-separated).
fn raises(flags: Vec<String>, env: &Env<'_>) -> Result<Vec<ChaosCmd>, Error> {
    let (texts, from) = match (flags.is_empty(), env.var("UNDEAD_RAISE")) {
        (true, Some(v)) => {
            (v.split(';').map(str::to_string).collect(), "UNDEAD_RAISE")
        }
        _ => (flags, "--raise"),
    };
    let texts = texts.iter().filter(|r| !r.trim().is_empty());
    texts.map(|r| raise(r, from)).collect()
}

/// One `--raise 'VERB ARGS'` (or an item of `UNDEAD_RAISE`, `from`): the
/// client verb's own parser, so both accept exactly the same words.
fn raise(text: &str, from: &str) -> Result<ChaosCmd, Error> {
    let text = text.trim();
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let bad = || Error::Usage(format!("{from} '{text}': not a creation verb"));
    let verb = words.first().ok_or_else(bad)?;
    match crate::client::parse(verb, &words[1..]) {
        Ok(Verb::Send { request: Request::Raise(cmd), .. }) => Ok(cmd),
        Ok(_) => Err(bad()),
        Err(Error::Usage(why)) => {
            Err(Error::Usage(format!("{from} '{text}': {why}")))
        }
        Err(other) => Err(other),
    }
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
        Err(_) => parse::duration(&v)
            .map(Withhold::For)
            .map_err(|why| in_var("UNDEAD_WITHHOLD_REAPING", why)),
    }
}

/// tini's `TINI_VERBOSITY` is a level; `-v` wins, then
/// `UNDEAD_VERBOSITY`.
fn verbosity(flag: u8, env: &Env<'_>) -> Result<u8, Error> {
    let var = ["UNDEAD_VERBOSITY", "TINI_VERBOSITY"]
        .into_iter()
        .find_map(|name| env.var(name).map(|v| (name, v)));
    match (flag, var) {
        (0, Some((name, v))) => v
            .parse()
            .map_err(|_| in_var(name, format!("invalid verbosity '{v}'"))),
        (n, _) => Ok(n),
    }
}

fn log_json(format: Option<Value>) -> Result<bool, Error> {
    let Some(v) = format else { return Ok(false) };
    match v.text.as_str() {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(v.error(format!(
            "invalid log format '{other}' (use text or json)"
        ))),
    }
}

/// What the init command line asks for.
pub enum Invocation {
    Init(Box<Config>),
    /// `--version`: print this and exit 0.
    Print(String),
}

/// Parse the words after `undead` (no verb among them).
pub fn invocation(words: &[&str]) -> Result<Invocation, Error> {
    let args = cli::args(words)?;
    if args.version {
        return Ok(Invocation::Print(cli::version()));
    }
    let env = |name: &str| std::env::var(name).ok();
    config(args, &Env(&env)).map(|c| Invocation::Init(Box::new(c)))
}

/// Merge flags with environment variables (flags win) and type the values.
pub fn config(a: InitArgs, env: &Env<'_>) -> Result<Config, Error> {
    let pause = env.switch(a.pause, "UNDEAD_PAUSE")?;
    let command = command(a.command, pause)?;
    let withhold = withhold(a.withhold_reaping, a.withhold_reaping_for, env)?;
    let control = match env.opt(a.control, "UNDEAD_CONTROL") {
        _ if env.switch(a.no_control, "UNDEAD_NO_CONTROL")? => {
            ControlPath::Off
        }
        Some(path) => ControlPath::Explicit(path.into()),
        None => ControlPath::Default(DEFAULT_CONTROL.into()),
    };
    let count = |flag, name| -> Result<usize, Error> {
        Ok(typed(env.value(flag, name), parse::count)?.unwrap_or(0))
    };
    Ok(Config {
        command,
        pause,
        // tini's TINI_SUBREAPER and TINI_KILL_PROCESS_GROUP count when
        // merely set.
        subreaper: env.switch(a.subreaper, "UNDEAD_SUBREAPER")?
            || env.is_set("TINI_SUBREAPER"),
        pgroup: env.switch(a.pgroup, "UNDEAD_PGROUP")?
            || env.is_set("TINI_KILL_PROCESS_GROUP"),
        setsid: env.switch(a.setsid, "UNDEAD_SETSID")?,
        guard: env.switch(a.guard, "UNDEAD_GUARD")?,
        pdeathsig: typed(
            env.value(a.pdeathsig, "UNDEAD_PDEATHSIG"),
            parse::signal,
        )?,
        remap_exit: typed_all(
            env.values(a.remap_exit, "UNDEAD_REMAP_EXIT"),
            parse::exit_code,
        )?,
        rewrites: typed_all(
            env.values(a.rewrite, "UNDEAD_REWRITE"),
            parse::rewrite,
        )?,
        grace: typed(env.value(a.grace, "UNDEAD_GRACE"), parse::duration)?,
        wait_all: env.switch(a.wait_all, "UNDEAD_WAIT_ALL")?,
        report: env.opt(a.report, "UNDEAD_REPORT"),
        verbosity: verbosity(a.verbose, env)?,
        log_json: log_json(env.value(a.log_format, "UNDEAD_LOG_FORMAT"))?,
        warn_reap: env.switch(a.warn_reap, "UNDEAD_WARN_REAP")?,
        withhold,
        zombies: count(a.zombies, "UNDEAD_ZOMBIES")?,
        dstate: count(a.dstate, "UNDEAD_DSTATE")?,
        dstate_kind: typed(
            env.value(a.dstate_kind, "UNDEAD_DSTATE_KIND"),
            Kind::parse,
        )?
        .unwrap_or(Kind::Vfork),
        raise: raises(a.raise, env)?,
        release_after: typed(
            env.value(a.release_after, "UNDEAD_RELEASE_AFTER"),
            parse::duration,
        )?,
        control,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(words: &[&str], env: &[(&str, &str)]) -> Result<Config, Error> {
        let args = crate::cli::args(words)?;
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let get =
            |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        config(args, &Env(&get))
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

    /// A bad value from the environment names its variable; from a flag,
    /// the flag's own message.
    #[test]
    fn environment_errors_name_the_variable() {
        let usage =
            |words: &[&str], env: &[(&str, &str)]| match init(words, env) {
                Err(Error::Usage(why)) => why,
                other => panic!("not a usage error: {:?}", other.is_ok()),
            };
        for (var, value) in [
            ("UNDEAD_GRACE", "bad"),
            ("UNDEAD_ZOMBIES", "x"),
            ("UNDEAD_REWRITE", "TERM:nope"),
            ("UNDEAD_WAIT_ALL", "maybe"),
            ("UNDEAD_WITHHOLD_REAPING", "soon"),
            ("UNDEAD_VERBOSITY", "loud"),
            ("TINI_VERBOSITY", "loud"),
            ("UNDEAD_LOG_FORMAT", "xml"),
            ("UNDEAD_RAISE", "zombie many"),
        ] {
            let why = usage(&["true"], &[(var, value)]);
            let named = why.strip_prefix(var).and_then(|r| r.chars().next());
            assert!(matches!(named, Some(':' | ' ')), "{why}");
        }
        let why = usage(&["--grace", "bad", "true"], &[]);
        assert!(!why.contains("UNDEAD_"), "{why}");
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
