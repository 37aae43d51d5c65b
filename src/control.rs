//! The control socket: a Unix stream socket served from the init's one
//! `poll`, one request line and one reply per connection.
//!
//! PID 1 must never block or die on what a client sends, so: every socket
//! is non-blocking; a request is capped at `MAX_REQUEST` bytes and must
//! arrive within `CLIENT_TIMEOUT`, or the connection is answered with an
//! error and closed; at most `MAX_CONNS` clients wait at once; only a peer
//! with undead's uid or uid 0 (SO_PEERCRED) is served; malformed input gets
//! an error reply. The path appears only once the socket listens (bind to
//! a temporary name, listen, rename), so "the socket exists" means "undead
//! answers", and a stale file from an earlier run is replaced; a live one
//! (another undead answers on it) is not (`EADDRINUSE`). At exit the file
//! is removed only while it is still this socket (same dev and inode).
//!
//! Requests (pure parser `parse`): `zombie N [holder]`,
//! `dstate N [vfork|fuse] [outlive DURATION]`,
//! `release [all|zombies|dstate|PID...]`, `status`.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::{self, Pid};

use crate::action::Action;
use crate::chaos::{ChaosCmd, Kind, Release};
use crate::parse;

pub const MAX_REQUEST: usize = 4096;
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_CONNS: usize = 32;

/// A client connection waiting for its request line.
struct Conn {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
    deadline: Instant,
}

pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's (dev, ino): removed at exit only if unchanged.
    inode: (u64, u64),
    conns: Vec<Conn>,
    next_id: u64,
}

/// A request ready to execute: reply to `id` with the result.
pub struct Request {
    pub id: u64,
    pub action: Result<Action, String>,
}

impl Server {
    /// Create the directory, bind a temporary name, listen, chmod 0600,
    /// then rename into place.
    pub fn bind(path: &Path) -> Result<Server, Errno> {
        let errno = |e: std::io::Error| {
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            fs::create_dir_all(dir).map_err(errno)?;
        }
        if answers(path) {
            return Err(Errno::EADDRINUSE);
        }
        let tmp = path.with_extension(format!("tmp{}", unistd::getpid()));
        let _ = fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(errno)?;
        let mut inode = (0, 0);
        let setup = crate::sys::notify_by_signal(listener.as_fd())
            .map_err(std::io::Error::from)
            .and_then(|()| {
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            })
            .and_then(|()| fs::metadata(&tmp))
            .and_then(|meta| {
                inode = (meta.dev(), meta.ino());
                fs::rename(&tmp, path)
            });
        if let Err(e) = setup {
            let _ = fs::remove_file(&tmp);
            return Err(errno(e));
        }
        Ok(Server {
            listener,
            path: path.to_owned(),
            inode,
            conns: Vec::new(),
            next_id: 0,
        })
    }

    /// The descriptors `poll` should watch.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.conns.iter().map(|c| c.stream.as_fd()))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|c| c.deadline).min()
    }

    /// Accept what is pending, read what is readable, drop stalled
    /// clients; return the complete requests. Never blocks.
    pub fn service(&mut self, now: Instant) -> Vec<Request> {
        self.accept_all(now);
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.conns.len() {
            match read_request(&mut self.conns[i], now) {
                Progress::Waiting => i += 1,
                Progress::Done(action) => {
                    ready.push(Request { id: self.conns[i].id, action });
                    i += 1;
                }
                Progress::Fail(why) => {
                    let mut conn = self.conns.swap_remove(i);
                    reply_to(&mut conn.stream, &error_reply(&why));
                }
            }
        }
        ready
    }

    /// Send the reply for request `id` and close its connection.
    pub fn respond(&mut self, id: u64, reply: &str) {
        if let Some(i) = self.conns.iter().position(|c| c.id == id) {
            let mut conn = self.conns.swap_remove(i);
            reply_to(&mut conn.stream, reply);
        }
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if let Err(why) = admit(&stream, self.conns.len()) {
                reply_to(&mut stream, &error_reply(&why));
                continue;
            }
            self.next_id += 1;
            self.conns.push(Conn {
                id: self.next_id,
                stream,
                buf: Vec::new(),
                deadline: now + CLIENT_TIMEOUT,
            });
        }
    }

    /// Remove the socket file (on exit) if it is still ours: another
    /// undead may have replaced it since (ours went stale to it).
    pub fn remove(&self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether something accepts connections on the socket at `path`. The
/// connect does not block: a full backlog (EAGAIN) is a live server too;
/// ECONNREFUSED means a stale file nobody listens on.
fn answers(path: &Path) -> bool {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, connect, socket,
    };
    let Ok(addr) = UnixAddr::new(path) else { return false };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let Ok(fd) = socket(AddressFamily::Unix, SockType::Stream, flags, None)
    else {
        return false;
    };
    matches!(
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr),
        Ok(()) | Err(Errno::EAGAIN | Errno::EINPROGRESS)
    )
}

/// Only undead's uid or root is served (SO_PEERCRED), and only
/// `MAX_CONNS` at once.
fn admit(stream: &UnixStream, open: usize) -> Result<(), String> {
    // Its data, too, wakes undead through the control signal.
    crate::sys::notify_by_signal(stream.as_fd())
        .map_err(|e| format!("cannot watch the connection: {}", e.desc()))?;
    let cred = getsockopt(stream, sockopt::PeerCredentials)
        .map_err(|e| format!("cannot read peer credentials: {}", e.desc()))?;
    let me = unistd::geteuid().as_raw();
    if cred.uid() != me && cred.uid() != 0 {
        return Err(format!("uid {} may not control undead", cred.uid()));
    }
    if open >= MAX_CONNS {
        return Err("too many clients at once; try again".into());
    }
    Ok(())
}

enum Progress {
    Waiting,
    Done(Result<Action, String>),
    Fail(String),
}

fn read_request(conn: &mut Conn, now: Instant) -> Progress {
    let mut chunk = [0u8; 1024];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Some(line) = complete_line(&conn.buf) {
                    return Progress::Done(parse(line));
                }
                if conn.buf.len() > MAX_REQUEST {
                    return Progress::Fail(format!(
                        "request over {MAX_REQUEST} bytes"
                    ));
                }
                if now >= conn.deadline {
                    return Progress::Fail("request timed out".into());
                }
                return Progress::Waiting;
            }
            Err(e) => {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                return Progress::Fail(format!(
                    "read failed: {}",
                    errno.desc()
                ));
            }
        }
        if conn.buf.len() > MAX_REQUEST {
            return Progress::Fail(format!(
                "request over {MAX_REQUEST} bytes"
            ));
        }
    }
    // EOF: what arrived is the request, newline or not.
    match complete_line(&conn.buf) {
        Some(line) => Progress::Done(parse(line)),
        None if conn.buf.is_empty() => Progress::Fail("empty request".into()),
        None => Progress::Done(parse(&conn.buf)),
    }
}

fn complete_line(buf: &[u8]) -> Option<&[u8]> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    Some(&buf[..end])
}

/// Best effort, never blocking: a client that does not read its reply
/// loses it.
fn reply_to(stream: &mut UnixStream, reply: &str) {
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.write_all(b"\n");
}

pub fn error_reply(why: &str) -> String {
    format!("{{\"ok\":false,\"error\":{}}}", crate::json::string(why))
}

/// Parse one request line. Pure.
pub fn parse(line: &[u8]) -> Result<Action, String> {
    let text =
        std::str::from_utf8(line).map_err(|_| "request is not UTF-8")?;
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let count = |w: Option<&&str>| {
        w.ok_or("missing count")
            .map_err(str::to_string)
            .and_then(|w| parse::count(w))
    };
    match words.split_first() {
        Some((&"zombie", rest)) => {
            let holder = match rest.get(1..) {
                Some([]) | None => false,
                Some(["holder"]) => true,
                Some(other) => return Err(format!("unexpected {other:?}")),
            };
            Ok(Action::Chaos(ChaosCmd::Zombies {
                n: count(rest.first())?,
                holder,
            }))
        }
        Some((&"dstate", rest)) => {
            let n = count(rest.first())?;
            let mut kind = Kind::Vfork;
            let mut outlive = None;
            let mut it = rest.iter().skip(1);
            while let Some(&w) = it.next() {
                match w {
                    "outlive" => {
                        let d = it.next().ok_or("outlive needs a duration")?;
                        outlive = Some(parse::duration(d)?);
                    }
                    other => kind = Kind::parse(other)?,
                }
            }
            Ok(Action::Chaos(ChaosCmd::Dstate { n, kind, outlive }))
        }
        Some((&"release", rest)) => Ok(Action::Release(parse_release(rest)?)),
        Some((&"status", [])) => Ok(Action::Snapshot),
        Some((verb, _)) => {
            Err(format!("unknown request '{}'", verb.escape_debug()))
        }
        None => Err("empty request".into()),
    }
}

/// `all`, `zombies`, `dstate` or PIDs; nothing means `all`. Pure.
pub fn parse_release(words: &[&str]) -> Result<Release, String> {
    match words {
        [] | ["all"] => Ok(Release::All),
        ["zombies"] => Ok(Release::Zombies),
        ["dstate"] => Ok(Release::Dstate),
        pids => pids
            .iter()
            .map(|w| match w.parse::<i32>() {
                Ok(p) if p > 0 => Ok(Pid::from_raw(p)),
                _ => Err(format!(
                    "invalid release target '{}'",
                    w.escape_debug()
                )),
            })
            .collect::<Result<_, _>>()
            .map(Release::Pids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let z = |n, holder| Ok(Action::Chaos(ChaosCmd::Zombies { n, holder }));
        assert_eq!(parse(b"zombie 3"), z(3, false));
        assert_eq!(parse(b"  zombie   1000 holder "), z(1000, true));
        assert_eq!(
            parse(b"dstate 2 fuse outlive 3s"),
            Ok(Action::Chaos(ChaosCmd::Dstate {
                n: 2,
                kind: Kind::Fuse,
                outlive: Some(Duration::from_secs(3))
            }))
        );
        assert_eq!(
            parse(b"dstate 1"),
            Ok(Action::Chaos(ChaosCmd::Dstate {
                n: 1,
                kind: Kind::Vfork,
                outlive: None
            }))
        );
        assert_eq!(parse(b"status"), Ok(Action::Snapshot));
        assert_eq!(parse(b"release"), Ok(Action::Release(Release::All)));
        assert_eq!(
            parse(b"release zombies"),
            Ok(Action::Release(Release::Zombies))
        );
        assert_eq!(
            parse(b"release 12 13"),
            Ok(Action::Release(Release::Pids(vec![
                Pid::from_raw(12),
                Pid::from_raw(13)
            ])))
        );
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
            b"status now",
            b"rm -rf /",
            b"\0\0\0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(complete_line(b"status").is_none());
        assert_eq!(complete_line(b"status\nrest"), Some(&b"status"[..]));
    }
}
