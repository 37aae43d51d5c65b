//! The control protocol's request: one line of words, the same type on
//! both ends. The client builds a `Request` from its verb and sends its
//! `Display`; undead reads the line back with `Request::parse` (pure, so
//! hostile bytes are an error, never a panic). `parse(r.to_string()) == r`
//! for every request (tested below).
//!
//! ```text
//! zombie N [holder]
//! dstate N [vfork|fuse] [outlive DURATION] [cwd PATH]
//! KIND N [unheld] [every D] [exit_after D] [unbounded]   (chaos::HazardCmd)
//! release [all|KIND...|PID...]     KIND: zombies dstate or a hazard kind
//! status [held]
//! wait Z D MS
//! ```
//!
//! A new verb is one `Request` (or `ChaosCmd`) variant, one arm in
//! `parse` and one in `fmt`.

use std::fmt;
use std::time::Duration;

use nix::unistd::Pid;

use crate::action::{Action, WaitFor};
use crate::chaos::{
    ChaosCmd, HazardCmd, HazardKind, Kind, Kinds, OUTLIVE_FUSE_ONLY, Release,
};
use crate::parse;
use crate::waiting::MAX_HOLD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `zombie ...`, `dstate ...`: raise processes of the kit.
    Raise(ChaosCmd),
    /// `release ...`: let go of what the kit holds.
    Release(Release),
    /// `status`: what undead is, holds and sees. `status held` leaves
    /// out what it sees (`seen`, `withheld`: a look at /proc, costly at
    /// thousands of processes): what `ps` asks, which reads /proc itself.
    Status { seen: bool },
    /// `wait Z D MS`: answer once at least Z zombies and D processes in D
    /// are seen, or after MS milliseconds.
    Wait(WaitFor),
}

impl Request {
    /// Parse one request line. Pure.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let text =
            std::str::from_utf8(line).map_err(|_| "request is not UTF-8")?;
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        match words.split_first() {
            Some((&"zombie", rest)) => parse_zombie(rest).map(Request::Raise),
            Some((&"dstate", rest)) => parse_dstate(rest).map(Request::Raise),
            Some((&"release", rest)) => {
                parse_release(rest).map(Request::Release)
            }
            Some((&"status", [])) => Ok(Request::Status { seen: true }),
            Some((&"status", ["held"])) => Ok(Request::Status { seen: false }),
            Some((&"wait", rest)) => parse_wait(rest).map(Request::Wait),
            Some((verb, rest)) if HazardKind::parse(verb).is_some() => {
                let kind = HazardKind::parse(verb).ok_or("unknown kind")?;
                let cmd = HazardCmd::parse(kind, rest)?;
                Ok(Request::Raise(ChaosCmd::Hazard(cmd)))
            }
            Some((verb, _)) => {
                Err(format!("unknown request '{}'", verb.escape_debug()))
            }
            None => Err("empty request".into()),
        }
    }

    /// What the init executes for it.
    pub fn into_action(self) -> Action {
        match self {
            Request::Raise(cmd) => Action::Chaos(cmd),
            Request::Release(what) => Action::Release(what),
            Request::Status { seen } => Action::Snapshot { seen },
            Request::Wait(want) => Action::Wait(want),
        }
    }
}

/// The request line, without its newline.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Raise(cmd) => write!(f, "{cmd}"),
            Request::Release(Release::All) => f.write_str("release all"),
            Request::Release(Release::Kinds(kinds)) => {
                f.write_str("release")?;
                if kinds.zombies {
                    f.write_str(" zombies")?;
                }
                if kinds.dstate {
                    f.write_str(" dstate")?;
                }
                kinds
                    .hazards
                    .iter()
                    .try_for_each(|k| write!(f, " {}", k.name()))
            }
            Request::Release(Release::Pids(pids)) => {
                f.write_str("release")?;
                pids.iter().try_for_each(|p| write!(f, " {p}"))
            }
            Request::Status { seen: true } => f.write_str("status"),
            Request::Status { seen: false } => f.write_str("status held"),
            Request::Wait(w) => {
                let ms = w.timeout.as_millis();
                write!(f, "wait {} {} {ms}", w.zombies, w.dstate)?;
                w.kinds.iter().try_for_each(|(k, n)| write!(f, " {k} {n}"))
            }
        }
    }
}

/// A raise request's line, without its newline (also what undead logs).
impl fmt::Display for ChaosCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosCmd::Zombies { n, holder } => {
                write!(f, "zombie {n}")?;
                if *holder {
                    f.write_str(" holder")?;
                }
                Ok(())
            }
            ChaosCmd::Dstate { n, kind, outlive, cwd } => {
                write!(f, "dstate {n} {}", kind.name())?;
                if let Some(d) = outlive {
                    write!(f, " outlive {}ms", d.as_millis())?;
                }
                if let Some(path) = cwd {
                    write!(f, " cwd {}", path.display())?;
                }
                Ok(())
            }
            ChaosCmd::Hazard(cmd) => write!(f, "{cmd}"),
        }
    }
}

fn count(word: Option<&&str>) -> Result<usize, String> {
    parse::count(word.ok_or("missing count")?)
}

/// `N [holder]`.
fn parse_zombie(words: &[&str]) -> Result<ChaosCmd, String> {
    let holder = match words.get(1..) {
        Some([]) | None => false,
        Some(["holder"]) => true,
        Some(other) => return Err(format!("unexpected {other:?}")),
    };
    Ok(ChaosCmd::Zombies { n: count(words.first())?, holder })
}

/// `N [vfork|fuse] [outlive DURATION] [cwd PATH]`.
fn parse_dstate(words: &[&str]) -> Result<ChaosCmd, String> {
    let n = count(words.first())?;
    let mut kind = Kind::Vfork;
    let mut outlive = None;
    let mut cwd = None;
    let mut it = words.iter().skip(1);
    while let Some(&w) = it.next() {
        match w {
            "outlive" => {
                let d = it.next().ok_or("outlive needs a duration")?;
                outlive = Some(parse::duration(d)?);
            }
            "cwd" => {
                let p = it.next().ok_or("cwd needs a path")?;
                cwd = Some(p.into());
            }
            other => kind = Kind::parse(other)?,
        }
    }
    if outlive.is_some() && kind != Kind::Fuse {
        return Err(OUTLIVE_FUSE_ONLY.into());
    }
    Ok(ChaosCmd::Dstate { n, kind, outlive, cwd })
}

/// `Z D MS [KIND N]...`: counts as `count` reads them, the timeout in
/// milliseconds (at most `MAX_HOLD`), then per hazard kind a minimum.
fn parse_wait(words: &[&str]) -> Result<WaitFor, String> {
    let [z, d, ms, pairs @ ..] = words else {
        return Err("wait needs: zombies dstate milliseconds".into());
    };
    let ms: u64 = ms.parse().map_err(|_| format!("invalid timeout '{ms}'"))?;
    let kinds = pairs
        .chunks(2)
        .map(|pair| match pair {
            [k, n] => {
                let kind = HazardKind::parse(k).ok_or_else(|| {
                    format!("unknown kind '{}'", k.escape_debug())
                })?;
                Ok((kind.name(), parse::count(n)? as u64))
            }
            _ => Err("wait: a kind needs a count".to_string()),
        })
        .collect::<Result<_, String>>()?;
    Ok(WaitFor {
        zombies: parse::count(z)? as u64,
        dstate: parse::count(d)? as u64,
        timeout: Duration::from_millis(ms).min(MAX_HOLD),
        kinds,
    })
}

/// `all`, kinds (`zombies`, `dstate`, hazard kinds, any mix) or PIDs;
/// nothing means `all`. Pure.
pub fn parse_release(words: &[&str]) -> Result<Release, String> {
    if matches!(words, [] | ["all"]) {
        return Ok(Release::All);
    }
    let mut kinds = Kinds::default();
    let mut pids = Vec::new();
    for &w in words {
        match (w, HazardKind::parse(w), w.parse::<i32>()) {
            ("zombies", ..) => kinds.zombies = true,
            ("dstate", ..) => kinds.dstate = true,
            ("all", ..) => return Err("release: 'all' stands alone".into()),
            (_, Some(kind), _) if kinds.hazards.contains(&kind) => {}
            (_, Some(kind), _) => kinds.hazards.push(kind),
            (_, None, Ok(pid)) if pid > 0 => pids.push(Pid::from_raw(pid)),
            _ => {
                return Err(format!(
                    "invalid release target '{}' (all, a kind or a PID)",
                    w.escape_debug()
                ));
            }
        }
    }
    match (kinds == Kinds::default(), pids.is_empty()) {
        (false, true) => Ok(Release::Kinds(kinds)),
        (true, false) => Ok(Release::Pids(pids)),
        _ => Err("release takes kinds or PIDs, not both".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(line: &[u8]) -> Result<Request, String> {
        Request::parse(line)
    }

    #[test]
    fn requests() {
        let z =
            |n, holder| Ok(Request::Raise(ChaosCmd::Zombies { n, holder }));
        assert_eq!(parse(b"zombie 3"), z(3, false));
        assert_eq!(parse(b"  zombie   1000 holder "), z(1000, true));
        assert_eq!(
            parse(b"dstate 2 fuse outlive 3s"),
            Ok(Request::Raise(ChaosCmd::Dstate {
                n: 2,
                kind: Kind::Fuse,
                outlive: Some(Duration::from_secs(3)),
                cwd: None,
            }))
        );
        assert_eq!(
            parse(b"dstate 1"),
            Ok(Request::Raise(ChaosCmd::Dstate {
                n: 1,
                kind: Kind::Vfork,
                outlive: None,
                cwd: None,
            }))
        );
        assert_eq!(
            parse(b"dstate 1 fuse cwd /data"),
            Ok(Request::Raise(ChaosCmd::Dstate {
                n: 1,
                kind: Kind::Fuse,
                outlive: None,
                cwd: Some("/data".into()),
            }))
        );
        assert!(matches!(
            parse(b"hopper 2 every 5ms unheld"),
            Ok(Request::Raise(ChaosCmd::Hazard(HazardCmd { n: 2, .. })))
        ));
        let kinds = |zombies, dstate, hazards| {
            Ok(Request::Release(Release::Kinds(Kinds {
                zombies,
                dstate,
                hazards,
            })))
        };
        use HazardKind::{Deaf, Hopper, Stopped};
        assert_eq!(
            parse(b"release stopped hopper"),
            kinds(false, false, vec![Stopped, Hopper])
        );
        // SPEC §1: `release [all|KIND...|PID...]`, any mix of kinds.
        assert_eq!(
            parse(b"release zombies deaf dstate"),
            kinds(true, true, vec![Deaf])
        );
        assert_eq!(parse(b"release dstate"), kinds(false, true, vec![]));
        assert_eq!(parse(b"status"), Ok(Request::Status { seen: true }));
        assert_eq!(parse(b"status held"), Ok(Request::Status { seen: false }));
        assert_eq!(parse(b"release"), Ok(Request::Release(Release::All)));
        assert_eq!(parse(b"release zombies"), kinds(true, false, vec![]));
        assert_eq!(
            parse(b"release 12 13"),
            Ok(Request::Release(Release::Pids(vec![
                Pid::from_raw(12),
                Pid::from_raw(13)
            ])))
        );
    }

    /// Every verb, every option: what the client sends is what undead
    /// reads.
    #[test]
    fn every_request_survives_the_wire() {
        let dstate = |kind, outlive| {
            Request::Raise(ChaosCmd::Dstate { n: 2, kind, outlive, cwd: None })
        };
        let hazard = |line: &str| {
            let words: Vec<&str> = line.split(' ').collect();
            let kind = HazardKind::parse(words[0]).unwrap();
            Request::Raise(ChaosCmd::Hazard(
                HazardCmd::parse(kind, &words[1..]).unwrap(),
            ))
        };
        let release = |zombies, dstate, hazards| {
            Request::Release(Release::Kinds(Kinds {
                zombies,
                dstate,
                hazards,
            }))
        };
        let all = [
            Request::Raise(ChaosCmd::Zombies { n: 0, holder: false }),
            Request::Raise(ChaosCmd::Zombies { n: 7, holder: true }),
            dstate(Kind::Vfork, None),
            dstate(Kind::Fuse, None),
            dstate(Kind::Fuse, Some(Duration::from_millis(1500))),
            Request::Raise(ChaosCmd::Dstate {
                n: 1,
                kind: Kind::Fuse,
                outlive: Some(Duration::from_secs(20)),
                cwd: Some("/data".into()),
            }),
            hazard("stopped 2 unheld"),
            hazard("deaf 3"),
            hazard("slow 1 exit_after 2s unheld"),
            hazard("escapee 1"),
            hazard("hopper 4 every 5ms"),
            hazard("frozen 2 unbounded"),
            release(false, false, vec![HazardKind::Deaf, HazardKind::Frozen]),
            Request::Release(Release::All),
            release(true, false, vec![]),
            release(false, true, vec![]),
            release(true, true, vec![HazardKind::Slow]),
            Request::Release(Release::Pids(vec![Pid::from_raw(9)])),
            Request::Release(Release::Pids(vec![
                Pid::from_raw(1),
                Pid::from_raw(2_000_000),
            ])),
            Request::Status { seen: true },
            Request::Status { seen: false },
            Request::Wait(WaitFor {
                zombies: 3,
                dstate: 0,
                timeout: Duration::from_millis(1500),
                kinds: vec![("stopped", 2), ("hopper", 1)],
            }),
        ];
        for request in all {
            let line = request.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(parse(line.as_bytes()), Ok(request), "{line}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"zombie",
            b"zombie -1",
            b"zombie x",
            b"zombie 3 4",
            b"dstate 2 nfs",
            b"dstate 2 outlive",
            b"dstate 2 outlive forever",
            b"release 0",
            b"release all zombies",
            b"release zombies 12",
            b"release 12 stopped",
            b"dstate 2 outlive 5s",
            b"frozen 1 unheld",
            b"slow 1",
            b"dstate 1 cwd",
            b"status now",
            b"wait",
            b"wait 1 1",
            b"wait 1 1 x",
            b"wait -1 0 10",
            b"rm -rf /",
            b"\0\0\0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
