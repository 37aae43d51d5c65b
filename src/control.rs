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
//! The request line is `request.rs`'s `Request`; the reply is the JSON
//! encoding (`encode`) of what `Init::apply` returned.

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

use crate::action::{Action, Reply};
use crate::event::{ConnId, Source};
use crate::json::{Value, obj};
use crate::request::Request;

/// Where undead serves, and clients ask, unless told otherwise
/// (`--control`, `$UNDEAD_CONTROL`).
pub const DEFAULT_CONTROL: &str = "/run/undead.sock";

pub const MAX_REQUEST: usize = 4096;
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_CONNS: usize = 32;

/// A client connection waiting for its request line.
struct Conn {
    id: ConnId,
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

    /// Send the reply for connection `conn` and close it.
    pub fn respond(&mut self, conn: ConnId, reply: &Reply) {
        if let Some(i) = self.conns.iter().position(|c| c.id == conn) {
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
                reply_to(&mut stream, &Reply::Refused(why));
                continue;
            }
            self.next_id += 1;
            self.conns.push(Conn {
                id: ConnId(self.next_id),
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

impl Source for Server {
    /// A complete request (or why it is none) and who asked it.
    type Event = (ConnId, Result<Action, String>);

    /// The listener and every connection still sending its request.
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.conns.iter().map(|c| c.stream.as_fd()))
            .collect()
    }

    /// When the oldest waiting client runs out of time.
    fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|c| c.deadline).min()
    }

    /// Accept what is pending, read what is readable, drop stalled
    /// clients; return the complete requests. Never blocks.
    fn service(&mut self, now: Instant) -> Vec<Self::Event> {
        self.accept_all(now);
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.conns.len() {
            match read_request(&mut self.conns[i], now) {
                Progress::Waiting => i += 1,
                Progress::Done(action) => {
                    ready.push((self.conns[i].id, action));
                    i += 1;
                }
                Progress::Fail(why) => {
                    let mut conn = self.conns.swap_remove(i);
                    reply_to(&mut conn.stream, &Reply::Refused(why));
                }
            }
        }
        ready
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
                    return Progress::Done(to_action(line));
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
        Some(line) => Progress::Done(to_action(line)),
        None if conn.buf.is_empty() => Progress::Fail("empty request".into()),
        None => Progress::Done(to_action(&conn.buf)),
    }
}

fn complete_line(buf: &[u8]) -> Option<&[u8]> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    Some(&buf[..end])
}

/// A request line as the action it asks for. Pure.
fn to_action(line: &[u8]) -> Result<Action, String> {
    Request::parse(line).map(Request::into_action)
}

/// Best effort, never blocking: a client that does not read its reply
/// loses it.
fn reply_to(stream: &mut UnixStream, reply: &Reply) {
    // One write: the reply and its newline.
    let _ = stream.write_all(format!("{}\n", encode(reply)).as_bytes());
}

/// A reply as the client reads it: one JSON object with `ok`. Pure.
pub fn encode(reply: &Reply) -> Value {
    let pids = |pids: &[Pid]| Value::from(pids.to_vec());
    match reply {
        Reply::Done => obj([("ok", true.into())]),
        Reply::Raised(made) => match (&made.error, &made.note) {
            (None, None) => {
                obj([("ok", true.into()), ("pids", pids(&made.pids))])
            }
            (None, Some(note)) => obj([
                ("ok", true.into()),
                ("pids", pids(&made.pids)),
                ("note", note.as_str().into()),
            ]),
            (Some(why), _) => obj([
                ("ok", false.into()),
                ("error", why.as_str().into()),
                ("pids", pids(&made.pids)),
            ]),
        },
        Reply::Released(released) => {
            obj([("ok", true.into()), ("released", pids(released))])
        }
        Reply::Status(status) => status.clone(),
        Reply::Refused(why) => {
            obj([("ok", false.into()), ("error", why.as_str().into())])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::Created;

    #[test]
    fn lines_and_replies() {
        assert!(complete_line(b"status").is_none());
        assert_eq!(complete_line(b"status\nrest"), Some(&b"status"[..]));
        assert!(to_action(b"rm -rf /").is_err());
        let made = |error: Option<&str>, note: Option<&str>| {
            encode(&Reply::Raised(Created {
                pids: vec![Pid::from_raw(3), Pid::from_raw(4)],
                error: error.map(str::to_string),
                note: note.map(str::to_string),
            }))
            .to_string()
        };
        assert_eq!(made(None, None), r#"{"ok":true,"pids":[3,4]}"#);
        assert_eq!(
            made(None, Some("n")),
            r#"{"ok":true,"pids":[3,4],"note":"n"}"#
        );
        assert_eq!(
            made(Some("why"), Some("n")),
            r#"{"ok":false,"error":"why","pids":[3,4]}"#
        );
        assert_eq!(
            encode(&Reply::Released(vec![Pid::from_raw(9)])).to_string(),
            r#"{"ok":true,"released":[9]}"#
        );
        assert_eq!(
            encode(&Reply::Refused("no \"x\"".into())).to_string(),
            r#"{"ok":false,"error":"no \"x\""}"#
        );
        assert_eq!(encode(&Reply::Done).to_string(), r#"{"ok":true}"#);
    }
}
