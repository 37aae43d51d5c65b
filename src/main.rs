//! undead: a tiny init for containers that, on request, raises the undead.
//!
//! `run` only parses the command line and hands over: init mode to
//! `init`, client verbs to `client`.
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
mod control;
mod error;
mod guard;
mod init;
mod json;
mod log;
mod parse;
mod procfs;
mod reaper;
mod report;
mod signals;
mod spawn;
mod status;
mod sys;
mod teardown;

/// The whole program; returns the exit code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    let argv: Vec<String> = std::env::args().collect();
    match cli::parse(&argv) {
        Ok(cli::Invocation::Init(cfg)) => init::main(cfg),
        Ok(cli::Invocation::Client(verb)) => client::main(verb),
        Ok(cli::Invocation::Print(text)) | Err(error::Error::Help(text)) => {
            log::out!("{text}");
            0
        }
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}
