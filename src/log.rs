//! Diagnostics on stderr, prefixed `undead:`; silent by default except for
//! errors. Text (`undead: message`) or one JSON object per line.
//!
//! The level and format are set once at start (`init`) and only read after:
//! a write-once setting, not mutable state.

use std::io::Write;
use std::sync::OnceLock;

static CONFIG: OnceLock<(u8, bool)> = OnceLock::new();

/// Set the verbosity and format; later calls are ignored.
pub fn configure(verbosity: u8, json: bool) {
    let _ = CONFIG.set((verbosity, json));
}

fn enabled(level: u8) -> Option<bool> {
    let &(verbosity, json) = CONFIG.get().unwrap_or(&(0, false));
    (level <= verbosity).then_some(json)
}

/// Write one diagnostic line at `level` (0 = always, as for errors).
pub fn write(level: u8, msg: std::fmt::Arguments<'_>) {
    let Some(json) = enabled(level) else { return };
    let line = if json {
        format!("{}\n", entry(level, msg.to_string()))
    } else {
        format!("undead: {msg}\n")
    };
    // One write(2) per line so lines from several processes do not mix; a
    // failed write to stderr has nowhere to be reported.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A JSON log line: `{"prog":"undead","level":…,"msg":…}`, `msg` last.
fn entry(level: u8, msg: String) -> crate::json::Value {
    let level = ["error", "info", "debug", "trace"][usize::from(level.min(3))];
    crate::json::obj([
        ("prog", "undead".into()),
        ("level", level.into()),
        ("msg", msg.into()),
    ])
}

/// An error line split for a process that can only write bytes (the
/// child between fork and exec) to end: its start, up to and with `msg`,
/// and its end. What goes between must need no JSON escaping (an errno's
/// description does not).
pub fn split_error_line(msg: &str) -> (Vec<u8>, &'static [u8]) {
    if enabled(0) != Some(true) {
        return (format!("undead: {msg}").into_bytes(), b"\n");
    }
    let line = entry(0, msg.to_string()).to_string();
    // `…,"msg":"MSG"}`: open again before its closing quote.
    let open = line.strip_suffix("\"}").unwrap_or(&line);
    (open.as_bytes().to_vec(), b"\"}\n")
}

/// A line of a verb's output on stdout. Unlike `println!`, a closed pipe
/// is not a panic (`undead ps | head` is fine) and no io::Error is
/// formatted.
pub fn write_out(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Pids as `2 3 4` for log lines.
pub fn pids(pids: &[nix::unistd::Pid]) -> String {
    let text: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    text.join(" ")
}

/// An error or warning: always shown.
macro_rules! error { ($($t:tt)*) => { $crate::log::write(0, format_args!($($t)*)) } }
/// `-v`: what undead does.
macro_rules! info { ($($t:tt)*) => { $crate::log::write(1, format_args!($($t)*)) } }
/// `-vv`: every signal and reap.
macro_rules! debug { ($($t:tt)*) => { $crate::log::write(2, format_args!($($t)*)) } }
/// A line on stdout, like `println!` but never panicking.
macro_rules! out { ($($t:tt)*) => { $crate::log::write_out(&format!($($t)*)) } }
pub(crate) use {debug, error, info, out};
