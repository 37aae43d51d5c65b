//! Reliability (issue #10): PID 1 never dies, blocks or lies, whatever a
//! client sends or the namespace looks like; `--pause` (SPEC §7) and the
//! stop sequence (SPEC §2). Each test drives the real binary as PID 1 of a
//! fresh PID namespace and as a subreaper, and failed on the code before
//! its fix (said in the commit that added it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    BIN, MODES, Mode, Ran, Scratch, Undead, comm, run_ran, state, wait_for,
};

/// Bound of every wait for something that should happen at once.
const T: Duration = Duration::from_secs(10);

/// One undead with a control socket in a scratch directory of its own.
#[allow(dead_code)] // `dir` is for fixtures
struct Fix {
    u: Undead,
    dir: Scratch,
    sock: String,
}

#[allow(dead_code)]
impl Fix {
    /// `undead OPTS --control SOCK [-- CMD]` (no `--` when `cmd` is
    /// empty: `--pause`), once the socket answers.
    fn start(mode: Mode, opts: &[&str], cmd: &[&str]) -> Fix {
        Fix::start_env(mode, opts, cmd, &[])
    }

    fn start_env(
        mode: Mode,
        opts: &[&str],
        cmd: &[&str],
        env: &[(&str, &str)],
    ) -> Fix {
        let dir = Scratch::new("rel");
        let sock = dir.sock();
        let mut args = opts.to_vec();
        args.extend(["--control", sock.as_str()]);
        if !cmd.is_empty() {
            args.push("--");
            args.extend(cmd);
        }
        let mut u = Undead::start_with(mode, &args, |c| {
            c.envs(env.iter().copied());
        });
        let up = wait_for(T, || {
            if Path::new(&sock).exists() {
                return Some(None);
            }
            u.wait(Duration::ZERO).map(Some)
        });
        let f = Fix { u, dir, sock };
        match up {
            Some(None) => f,
            Some(Some(code)) => f.fail(&format!("undead exited {code}")),
            None => f.fail("no control socket"),
        }
    }

    /// `undead ARGS --control SOCK`, from the host.
    fn client(&self, args: &[&str]) -> Ran {
        let mut c = Command::new(BIN);
        c.args(args).args(["--control", &self.sock]);
        run_ran(&mut c, Duration::from_secs(20))
    }

    fn ok(&self, args: &[&str]) -> Ran {
        let r = self.client(args);
        if r.code != 0 {
            self.fail(&format!("`undead {}`: {r:?}", args.join(" ")));
        }
        r
    }

    /// The host pids under undead named `name`, in state `st`.
    fn named(&self, name: &str, st: char) -> Vec<i32> {
        self.u
            .descendants()
            .into_iter()
            .filter(|&p| {
                comm(p).as_deref() == Some(name) && state(p) == Some(st)
            })
            .collect()
    }

    fn fail(&self, msg: &str) -> ! {
        let table: Vec<String> = self
            .u
            .descendants()
            .into_iter()
            .map(|p| format!("{p:>7} {:?} {:?}", state(p), comm(p)))
            .collect();
        panic!(
            "\n{msg}\n mode: {:?}, undead {}\n stderr:\n{}\n under undead:\n{}",
            self.u.mode,
            self.u.pid,
            self.u.stderr(),
            table.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// --pause (SPEC §7)
// ---------------------------------------------------------------------------

/// `--pause` (and `UNDEAD_PAUSE=1`) runs no command, serves the kit, lives
/// through signals other than TERM/INT, and on SIGTERM releases what it
/// holds and exits 0. See: #10
#[test]
fn pause_serves_the_kit_and_exits_0_on_term() {
    for mode in MODES {
        for (flag, env) in [
            (&["--pause"][..], &[][..]),
            (&[][..], &[("UNDEAD_PAUSE", "1")][..]),
        ] {
            let mut f = Fix::start_env(mode, flag, &[], env);
            f.ok(&["zombie", "2"]);
            if f.named("undead-zombie", 'Z').len() != 2 {
                f.fail("want 2 held zombies");
            }
            let st = f.ok(&["status", "--json"]).stdout;
            if !st.contains("\"child\":{\"pid\":null") {
                f.fail(&format!("status names a child: {st}"));
            }
            // Negative control: only TERM/INT end the pause.
            f.u.signal(libc::SIGHUP);
            f.ok(&["status"]);
            if f.u.wait(Duration::from_millis(200)).is_some() {
                f.fail("SIGHUP ended --pause");
            }
            f.u.signal(libc::SIGTERM);
            let code = f.u.wait(T);
            if code != Some(0) {
                f.fail(&format!("exit {code:?} after SIGTERM, want 0"));
            }
            if mode == Mode::Subreaper && !f.u.descendants().is_empty() {
                f.fail("descendants left after --pause exited");
            }
            if Path::new(&f.sock).exists() {
                f.fail("socket file left behind");
            }
        }
    }
}

/// `--pause` with a command is a usage error (exit 2, one line).
#[test]
fn pause_with_a_command_is_a_usage_error() {
    let r = run_ran(Command::new(BIN).args(["--pause", "--", "true"]), T);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
}
