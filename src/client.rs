//! Client verbs (stub).
use crate::error::Error;
use std::process::ExitCode;
pub const DEFAULT_CONTROL: &str = "/run/undead.sock";
pub enum Verb {}
pub fn parse(_verb: &str, _words: &[&str]) -> Result<Verb, Error> {
    Err(Error::Usage("not yet".into()))
}
pub fn main(verb: Verb) -> ExitCode {
    match verb {}
}
