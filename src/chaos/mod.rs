//! The undead kit: zombies and D-state processes raised on purpose, held,
//! shown, and always taken back. A leaf module: the init reaches it only
//! through `Action::Chaos` / `Action::Release`.

use std::time::Duration;

use nix::unistd::Pid;

/// Which D state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A vfork holder: D but dies to SIGKILL (TASK_KILLABLE).
    Vfork,
    /// A reader stuck on an unanswered FUSE request: SIGKILL-immune.
    Fuse,
}

impl Kind {
    pub fn parse(text: &str) -> Result<Kind, String> {
        match text {
            "vfork" => Ok(Kind::Vfork),
            "fuse" => Ok(Kind::Fuse),
            _ => Err(format!("invalid kind '{text}' (use vfork or fuse)")),
        }
    }
}

/// A creation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChaosCmd {
    Zombies { n: usize, holder: bool },
    Dstate { n: usize, kind: Kind, outlive: Option<Duration> },
}

/// What to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    All,
    Zombies,
    Dstate,
    Pids(Vec<Pid>),
}
