//! The init's loop: what it does with events that arrive together.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::common::*;
use crate::json;
use crate::{both_modes, eqnice};

const T: Duration = Duration::from_secs(10);

both_modes!(signals_apply_before_requests_of_the_same_wake_up,);

/// A SIGCHLD and a `status` request that reach undead in the same wake-up
/// are applied in that order: the orphan is reaped before `status`
/// answers, so the reply counts it as reaped and sees no zombie. (Requests
/// used to run from inside the signal read, ahead of the signals read with
/// them: "reaped 0, 1 zombie seen".)
///
/// Both are queued while undead is stopped (SIGSTOP, which PID 1 gets from
/// an ancestor namespace), so one read of the signalfd returns SIGCHLD and
/// the socket's F_SETSIG signal together.
fn signals_apply_before_requests_of_the_same_wake_up(mode: Mode) {
    let scratch = Scratch::new("loop");
    let sock = scratch.sock();
    // The subshell exits at once: its `sleep 1000` is undead's orphan.
    let script = "(sleep 1000 &); exec sleep 1001";
    let u =
        Undead::start(mode, &["--control", &sock, "--", "sh", "-c", script]);
    let orphan = wait_for(T, || {
        children_of(u.pid).into_iter().find(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c == b"sleep\x001000\x00")
        })
    })
    .unwrap_or_else(|| u.fail("no wait for: the orphan under undead"));
    wait_for(T, || exists(std::path::Path::new(&sock)).then_some(()))
        .unwrap_or_else(|| u.fail("no wait for: the control socket"));

    kill(u.pid, libc::SIGSTOP);
    wait_for(T, || (state(u.pid) == Some('T')).then_some(()))
        .unwrap_or_else(|| u.fail("no wait for: undead stopped"));
    kill(orphan, libc::SIGKILL);
    wait_for(T, || (state(orphan) == Some('Z')).then_some(()))
        .unwrap_or_else(|| u.fail("no wait for: the orphan a zombie"));
    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(b"status\n").unwrap();
    // Negative control: undead was stopped the whole time, so the
    // SIGCHLD cannot have been served in a wake-up of its own.
    eqnice!(Some('T'), state(u.pid), u);
    eqnice!(Some(('Z', u.pid)), stat(orphan), u);
    kill(u.pid, libc::SIGCONT);

    c.set_read_timeout(Some(T)).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    let v = json::parse(reply.trim()).unwrap();
    let num = |a: &str, b: Option<&str>| {
        let v = v.get(a)?;
        b.map_or(Some(v), |b| v.get(b))?.as_u64()
    };
    let got = (num("reaped", None), num("seen", Some("zombies")));
    eqnice!((Some(1), Some(0)), got, u, "reaped, zombies seen: {reply}");
}
