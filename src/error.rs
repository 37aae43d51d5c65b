//! undead's own failures and the exit codes they map to.
//!
//! One table, shared by `--help`, the README and a test: the main child's
//! status passes through (code, or 128+N for signal N; 126 cannot execute,
//! 127 not found, as `sh`); undead's own setup failures exit 1; usage
//! errors exit 2. Client verbs: 0 done, 1 failed, 2 usage, 3 no answer.

use std::fmt;

use nix::errno::Errno;

/// The exit-code table printed by `--help` (and checked by a test).
pub const EXIT_CODES: &str = "\
exit codes (init): the command's code; 128+N if it died of signal N;
  126 command not executable; 127 command not found; 2 usage error;
  1 internal error of undead
exit codes (client verbs): 0 done; 1 failed or timed out; 2 usage error;
  3 no undead answers on the control socket";

#[derive(Debug)]
pub enum Error {
    /// Bad command line or environment value.
    Usage(String),
    /// Blocking signals or opening the signalfd failed.
    Signals(Errno),
    /// PR_SET_CHILD_SUBREAPER failed while `-s` insisted on it.
    Subreaper(Errno),
    /// PR_SET_PDEATHSIG for `-p` failed.
    Pdeathsig(Errno),
    /// fork of the main child failed.
    Spawn { argv0: String, errno: Errno },
    /// The control socket could not be set up.
    ControlBind { path: String, errno: Errno },
    /// The undead kit could not raise what `--zombies`/`--dstate` asked
    /// at start: why (how many it made, what failed).
    RaiseAtStart(String),
    /// A client verb found nobody answering on the control socket.
    NoAnswer { path: String, errno: Errno },
    /// undead's reply to a client verb was not JSON.
    BadReply(String),
    /// undead answered a client verb with a failure: its reason.
    Refused(String),
    /// `wait` gave up at `--timeout`: what it saw.
    WaitTimeout(String),
    /// `rescue` could not reach the FUSE control filesystem.
    Rescue(String),
    /// `--help`: not a failure; the text goes to stdout, exit 0.
    Help(String),
}

/// argh's way out, in one place: `--help` (for init mode and every verb)
/// prints argh's text plus the exit-code table; a parse error is a usage
/// error on one line (argh lists what is missing on the lines after a
/// heading), lowercased like every undead error.
impl From<argh::EarlyExit> for Error {
    fn from(e: argh::EarlyExit) -> Error {
        match e.status {
            Ok(()) => {
                Error::Help(format!("{}\n{EXIT_CODES}", e.output.trim_end()))
            }
            Err(()) => {
                // "Required options not provided:\n    --x\n": the items
                // follow their heading, headings are separated by "; ".
                let mut line = String::new();
                for text in e.output.lines().filter(|l| !l.trim().is_empty()) {
                    if !line.is_empty() {
                        let item = text.starts_with(char::is_whitespace);
                        line.push_str(if item { " " } else { "; " });
                    }
                    line.push_str(text.trim());
                }
                let mut chars = line.chars();
                Error::Usage(chars.next().map_or_else(String::new, |c| {
                    c.to_lowercase().chain(chars).collect()
                }))
            }
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Help(_) => 0,
            Error::Usage(_) => 2,
            Error::NoAnswer { .. } => 3,
            Error::Signals(_)
            | Error::Subreaper(_)
            | Error::Pdeathsig(_)
            | Error::Spawn { .. }
            | Error::ControlBind { .. }
            | Error::RaiseAtStart(_)
            | Error::BadReply(_)
            | Error::Refused(_)
            | Error::WaitTimeout(_)
            | Error::Rescue(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(why) => write!(f, "{why} (see --help)"),
            Error::Signals(e) => {
                write!(f, "failed to set up signals: {}", e.desc())
            }
            Error::Subreaper(e) => {
                write!(f, "failed to become a child subreaper: {}", e.desc())
            }
            Error::Pdeathsig(e) => {
                write!(
                    f,
                    "failed to set the parent-death signal: {}",
                    e.desc()
                )
            }
            Error::Spawn { argv0, errno } => {
                write!(f, "cannot run '{argv0}': {}", errno.desc())
            }
            Error::ControlBind { path, errno: Errno::EADDRINUSE } => write!(
                f,
                "cannot serve control socket {path}: another undead answers \
                 on it"
            ),
            Error::ControlBind { path, errno: Errno::EEXIST } => write!(
                f,
                "cannot serve control socket {path}: it is not a socket \
                 (left as it is)"
            ),
            Error::ControlBind { path, errno } => {
                write!(
                    f,
                    "cannot serve control socket {path}: {}",
                    errno.desc()
                )
            }
            Error::BadReply(why) => {
                write!(f, "bad reply from undead: {why}")
            }
            Error::RaiseAtStart(why)
            | Error::Refused(why)
            | Error::WaitTimeout(why)
            | Error::Rescue(why)
            | Error::Help(why) => write!(f, "{why}"),
            Error::NoAnswer { path, errno } => write!(
                f,
                "no undead answers on {path}: {} (is undead running with \
                 this --control path?)",
                errno.desc()
            ),
        }
    }
}
