//! The init-mode command line (`undead [OPTIONS] -- COMMAND...`); the
//! client verbs (`undead zombie 3`) are `client.rs`'s, `main` decides which.
//!
//! argh parses the words; this file only normalises what argh does not
//! know (`-vvv`, `--opt=value`, the optional value of `--withhold-reaping`).
//! `config.rs` merges the flags with the environment into typed values
//! (`config::invocation`: the words to what init mode runs).

use argh::FromArgs;

use crate::error::Error;

/// undead: a tiny init for containers (PID 1 or subreaper) that forwards
/// signals, reaps zombies and exits with the command's status; on request
/// it raises zombies and D-state processes for teardown tests.
#[derive(FromArgs)]
#[argh(
    note = "Usage: undead [OPTIONS] -- COMMAND [ARGS...] | undead VERB ... | \
            undead [OPTIONS] --pause",
    note = "Verbs: zombie, dstate, stopped, deaf, slow, escapee, hopper, \
            frozen, release, status, wait, ps, rescue (undead VERB --help).",
    note = "Every option can be set by environment: UNDEAD_<OPTION> (e.g. \
            UNDEAD_GRACE=10s, UNDEAD_ZOMBIES=3), and tini's TINI_SUBREAPER, \
            TINI_KILL_PROCESS_GROUP, TINI_VERBOSITY; a flag wins.",
    note = "D-state processes raise the load average, and the kernel logs \
            hung-task warnings for them after kernel.hung_task_timeout_secs."
)]
pub struct InitArgs {
    /// insist on PR_SET_CHILD_SUBREAPER, fail if it cannot be set (tini -s)
    #[argh(switch, short = 's')]
    pub subreaper: bool,
    /// forward signals to the child's process group (tini -g)
    #[argh(switch, short = 'g')]
    pub pgroup: bool,
    /// start the child in a new session (dumb-init's default)
    #[argh(switch)]
    pub setsid: bool,
    /// as a subreaper, keep a helper (undead-guard) that kills the child's
    /// process group if undead is SIGKILLed
    #[argh(switch)]
    pub guard: bool,
    /// signal undead gets when its parent dies (tini -p)
    #[argh(option, short = 'p')]
    pub pdeathsig: Option<String>,
    /// report exit code CODE as 0, repeatable (tini -e)
    #[argh(option, short = 'e')]
    pub remap_exit: Vec<String>,
    /// forward signal FROM as TO; TO=0 drops it, repeatable (dumb-init -r)
    #[argh(option, short = 'r')]
    pub rewrite: Vec<String>,
    /// after the first TERM/INT, SIGKILL every descendant left after this
    #[argh(option)]
    pub grace: Option<String>,
    /// when the child exits, wait for the other descendants (up to --grace)
    #[argh(switch)]
    pub wait_all: bool,
    /// on exit write a JSON teardown report to PATH (- for stderr)
    #[argh(option)]
    pub report: Option<String>,
    /// more diagnostics on stderr, repeatable (tini -v)
    #[argh(switch, short = 'v')]
    pub verbose: u8,
    /// diagnostics as text (default) or json
    #[argh(option)]
    pub log_format: Option<String>,
    /// warn when a zombie that is not the child is reaped (tini -w)
    #[argh(switch, short = 'w')]
    pub warn_reap: bool,
    /// leave orphans unreaped (Z), forever; =DURATION for a while
    #[argh(switch)]
    pub withhold_reaping: bool,
    /// duration of --withhold-reaping=DURATION
    #[argh(option, hidden_help)]
    pub withhold_reaping_for: Option<String>,
    /// at start, create N zombies held by undead
    #[argh(option)]
    pub zombies: Option<String>,
    /// at start, create N D-state processes
    #[argh(option)]
    pub dstate: Option<String>,
    /// kind of --dstate: vfork (killable, default) or fuse (SIGKILL-immune)
    #[argh(option)]
    pub dstate_kind: Option<String>,
    /// at start, raise what 'VERB ARGS' would (repeatable; e.g. --raise
    /// 'stopped 2'; UNDEAD_RAISE='stopped 2; hopper 1', ;-separated)
    #[argh(option)]
    pub raise: Vec<String>,
    /// release everything undead holds after DURATION (safety timer)
    #[argh(option)]
    pub release_after: Option<String>,
    /// control socket path (default /run/undead.sock)
    #[argh(option)]
    pub control: Option<String>,
    /// serve no control socket
    #[argh(switch)]
    pub no_control: bool,
    /// run no command: reap, serve the kit, exit 0 on TERM/INT (pod pause)
    #[argh(switch)]
    pub pause: bool,
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    /// the command and its arguments
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// The version line. `docker info` parses the init's `--version` as
/// `tini version X - git.Y` (moby's `parseInitVersion`); catatonit prints
/// the same shape for the same reason, so `dockerd --init-path` accepts us.
pub fn version() -> String {
    format!("tini version {} - git.undead", env!("CARGO_PKG_VERSION"))
}

/// The words as argh reads them, after `normalise`.
pub fn args(words: &[&str]) -> Result<InitArgs, Error> {
    let words = normalise(words);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(InitArgs::from_args(&["undead"], &words)?)
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
const TAKES_VALUE: [&str; 16] = [
    "--raise",
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
