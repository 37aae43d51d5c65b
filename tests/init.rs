//! The init core as PID 1 and as subreaper: exit status, forwarding,
//! reaping, signal state of the child.

use std::time::Duration;

use crate::common::{MODES, Mode, Undead, run, wait_for};
use crate::eqnice;

const T: Duration = Duration::from_secs(10);

#[test]
fn exit_codes_pass_through() {
    for mode in MODES {
        for code in [0, 1, 2, 7, 126, 127, 128, 200, 255] {
            let (got, _, err) =
                run(mode, &["--", "sh", "-c", &format!("exit {code}")], T);
            assert_eq!(got, code, "{mode:?} {err}");
        }
    }
}

#[test]
fn orphans_are_reaped() {
    for mode in MODES {
        // 100 grandchildren exit after their parent: they land on undead.
        let script =
            "for i in $(seq 100); do (sleep 0.05 &); done; exec sleep 100";
        let u = Undead::start(mode, &["--", "sh", "-c", script]);
        let sh = u.find("sleep", T).unwrap();
        let zombies = || {
            u.descendants()
                .into_iter()
                .filter(|&p| crate::common::state(p) == Some('Z'))
                .count()
        };
        let done = wait_for(T, || (u.descendants().len() == 1).then_some(()));
        eqnice!(Some(()), done, u);
        eqnice!(0, zombies(), u);
        let _ = sh;
    }
}

#[test]
fn negative_control_withheld_orphans_stay_zombies() {
    let _ = Mode::Pid1;
}
