//! undead's sources, as a library the fuzz targets can call: the crate has
//! no lib of its own, so its modules are included by path, with the same
//! names as in `src/main.rs` (their `crate::` paths resolve here).
#![allow(dead_code, unused_imports, unused_macros)]

#[path = "../../src/action.rs"]
pub mod action;
#[path = "../../src/chaos/mod.rs"]
pub mod chaos;
#[path = "../../src/cli.rs"]
pub mod cli;
#[path = "../../src/client.rs"]
pub mod client;
#[path = "../../src/control.rs"]
pub mod control;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/guard.rs"]
pub mod guard;
#[path = "../../src/init.rs"]
pub mod init;
#[path = "../../src/json.rs"]
pub mod json;
#[path = "../../src/log.rs"]
#[macro_use]
pub mod log;
#[path = "../../src/parse.rs"]
pub mod parse;
#[path = "../../src/procfs.rs"]
pub mod procfs;
#[path = "../../src/reaper.rs"]
pub mod reaper;
#[path = "../../src/report.rs"]
pub mod report;
#[path = "../../src/signals.rs"]
pub mod signals;
#[path = "../../src/spawn.rs"]
pub mod spawn;
#[path = "../../src/status.rs"]
pub mod status;
#[path = "../../src/sys.rs"]
pub mod sys;
#[path = "../../src/teardown.rs"]
pub mod teardown;
#[path = "../../src/config.rs"]
pub mod config;
#[path = "../../src/event.rs"]
pub mod event;
#[path = "../../src/request.rs"]
pub mod request;
#[path = "../../src/wait.rs"]
pub mod wait;
#[path = "../../src/waiting.rs"]
pub mod waiting;
