//! One undead serving a control socket in a scratch directory of its own
//! ([`Control`]), driven from the host by the client verbs: the fixture of
//! the kit modules (kit, hazards, reliability wrap it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::proc::Ident;
use super::run::{Ran, exec, wait_for};
use super::undead::{BIN, Launch, Mode, Scratch, Undead};

/// Bound of the wait for the socket: it should appear at once.
const UP: Duration = Duration::from_secs(10);
/// Client verbs: undead bounds creation to a few seconds itself.
pub const CLIENT: Duration = Duration::from_secs(20);

/// A running undead and its socket (tests run in parallel: nothing is
/// shared). Drops undead first (killing what it started), then the
/// directory.
pub struct Control {
    pub u: Undead,
    pub dir: Scratch,
    pub sock: String,
}

impl Control {
    /// `undead OPTS --control SOCK [-- CMD]` in a new scratch directory.
    pub fn start(mode: Mode, opts: &[&str], cmd: &[&str]) -> Control {
        let dir = Scratch::new("ctl");
        Control::launch(dir, mode, &Launch::default(), opts, cmd, |_| {})
    }

    /// `undead OPTS --control SOCK [-- CMD]` (no `--` when `cmd` is empty:
    /// `--pause`), started as `how` says, once the socket file exists.
    pub fn launch(
        dir: Scratch,
        mode: Mode,
        how: &Launch<'_>,
        opts: &[&str],
        cmd: &[&str],
        tweak: impl Fn(&mut Command),
    ) -> Control {
        let sock = dir.sock();
        // The options first: see `kit::option_values_do_not_end_the_options`.
        let mut args = opts.to_vec();
        args.extend(["--control", sock.as_str()]);
        if !cmd.is_empty() {
            args.push("--");
            args.extend(cmd);
        }
        let mut u = Undead::launch(mode, how, &args, tweak);
        // The socket file appears only once undead listens (README, "What
        // undead does as an init").
        let up = wait_for(UP, || {
            if Path::new(&sock).exists() {
                return Some(None);
            }
            u.wait(Duration::ZERO).map(Some)
        });
        let s = Control { u, dir, sock };
        match up {
            Some(None) => s,
            Some(Some(code)) => s.fail(&format!("undead exited {code}")),
            None => s.fail("no control socket"),
        }
    }

    /// `undead ARGS --control SOCK`, run from the host.
    pub fn client(&self, args: &[&str]) -> Ran {
        let mut c = Command::new(BIN);
        c.args(args).args(["--control", &self.sock]);
        exec(&mut c, None, CLIENT)
    }

    /// A client verb that must succeed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Ran {
        let r = self.client(args);
        if r.code != 0 {
            self.fail(&format!("`undead {}` failed: {r:?}", args.join(" ")));
        }
        r
    }

    /// The host identity of a pid a verb printed (undead's namespace).
    #[track_caller]
    pub fn host(&self, ns: i32) -> Ident {
        self.u
            .host_pid(ns)
            .and_then(Ident::of)
            .unwrap_or_else(|| self.fail(&format!("no process for pid {ns}")))
    }

    /// Poll `cond` for at most `timeout`; fail with context if it never
    /// holds.
    #[track_caller]
    pub fn until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut() -> bool,
    ) {
        if wait_for(timeout, || cond().then_some(())).is_none() {
            self.fail(&format!(
                "timed out after {timeout:?} waiting for {what}"
            ));
        }
    }

    /// Fail with undead's stderr and the process table under it.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        self.u.fail(msg)
    }
}

/// `control_newtype!(Session)`: declares `struct Session(Control)` that
/// derefs to its [`Control`], for a test module's own views of it.
#[macro_export]
macro_rules! control_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        struct $name($crate::common::Control);

        impl std::ops::Deref for $name {
            type Target = $crate::common::Control;
            fn deref(&self) -> &$crate::common::Control {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $crate::common::Control {
                &mut self.0
            }
        }
    };
}
