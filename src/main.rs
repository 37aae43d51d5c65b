//! undead: a tiny init for containers that, on request, raises the undead.
//!
//! `run` decides between a client verb (`undead zombie 3`: `client`) and
//! init mode (anything else: `cli` and `config` parse it, `init` runs it),
//! and is the one place errors of either are printed.
//!
//! `no_main`: the C `main` in `sys.rs` calls `run` directly, bypassing
//! Rust's runtime start-up, which would set SIGPIPE to SIG_IGN in undead
//! (and SIG_IGN survives `execve(2)`, so every child would inherit it) and
//! link glibc's scanf family for its stack-guard probe. std still works:
//! glibc hands argv to std through `.init_array`.
// The unit-test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

mod action;
mod cgroup;
mod chaos;
mod cli;
mod client;
mod config;
mod control;
mod error;
mod event;
mod guard;
mod init;
mod json;
mod log;
mod parse;
mod procfs;
mod reaper;
mod report;
mod request;
mod show;
mod signals;
mod source;
mod spawn;
mod status;
mod sys;
mod wait;
mod waiting;

use error::Error;
mod teardown;

/// The whole program; returns the exit code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    let argv: Vec<String> = std::env::args().collect();
    let words: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let done = match words.split_first() {
        Some((verb, rest)) if client::VERBS.contains(verb) => {
            client::parse(verb, rest).and_then(client::run).map(|()| 0)
        }
        _ => config::invocation(&words).map(|invocation| match invocation {
            config::Invocation::Init(cfg) => init::main(*cfg),
            config::Invocation::Print(text) => {
                log::out!("{text}");
                0
            }
        }),
    };
    match done {
        Ok(code) => code,
        Err(Error::Help(text)) => {
            log::out!("{text}");
            0
        }
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}
