//! undead: a tiny init for containers that, on request, raises the undead.
//!
//! `main` only parses the command line and hands over: init mode to
//! `init`, client verbs to `client`.

mod action;
mod chaos;
mod cli;
mod client;
mod control;
mod error;
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

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    match cli::parse(&argv) {
        Ok(cli::Invocation::Init(cfg)) => init::main(cfg),
        Ok(cli::Invocation::Client(verb)) => client::main(verb),
        Ok(cli::Invocation::Print(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error::Error::Help(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
