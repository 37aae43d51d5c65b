//! The control socket: a Unix stream socket served from the init's one
//! `poll`, one request line and one reply per connection.
//!
//! PID 1 must never block or die on what a client sends, so: every socket
//! is non-blocking; a request is capped at `MAX_REQUEST` bytes and must
//! arrive within `CLIENT_TIMEOUT`, or the connection is answered with an
//! error and closed; at most `MAX_CONNS` clients are served at once, the
//! others wait in the listen backlog (std listens with the kernel's
//! maximum, net.core.somaxconn), as they do while accept fails for want
//! of descriptors (EMFILE/ENFILE: accepting pauses, it does not spin); a
//! reply the socket cannot take at once is written as the client reads it,
//! within `REPLY_TIMEOUT`; only a peer
//! with undead's uid or uid 0 (SO_PEERCRED) is served; malformed input gets
//! an error reply. The path appears only once the socket listens (bind to
//! a temporary name, listen, rename), so "the socket exists" means "undead
//! answers", and a stale socket from an earlier run is replaced; a live one
//! (another undead answers on it) is not (`EADDRINUSE`), nor is anything
//! that is not a socket (`EEXIST`). At exit the file
//! is removed only while it is still this socket (same dev and inode).
//!
//! The request line is `request.rs`'s `Request`; the reply is the JSON
//! encoding (`encode`) of what `Init::apply` returned.

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::{self, Pid};

use crate::action::{Action, Reply};
use crate::event::ConnId;
use crate::json::{Value, obj};
use crate::request::Request;
use crate::source::Source;

/// Where undead serves, and clients ask, unless told otherwise
/// (`--control`, `$UNDEAD_CONTROL`).
pub const DEFAULT_CONTROL: &str = "/run/undead.sock";

pub const MAX_REQUEST: usize = 4096;
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNS: usize = 64;
/// How long a client may take to read its whole reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long accepting pauses when undead is out of descriptors
/// (EMFILE/ENFILE), unless a connection closes first.
const FD_BACKOFF: Duration = Duration::from_millis(100);

/// Where a connection is: reading its request, waiting for the init to
/// answer it (a `wait`), or being sent its reply.
enum Stage {
    Reading(Vec<u8>),
    Asked,
    Writing { out: Vec<u8>, sent: usize },
}

/// One client connection, from accept to the last byte of its reply.
struct Conn {
    id: ConnId,
    stream: UnixStream,
    stage: Stage,
    /// Reading: the request's deadline; Writing: the reply's.
    deadline: Instant,
}

pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's (dev, ino): removed at exit only if unchanged.
    inode: (u64, u64),
    conns: Vec<Conn>,
    next_id: u64,
    /// Accepting is paused until then (too many clients, or no
    /// descriptor left); a connection that closes ends the pause.
    paused_until: Option<Instant>,
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
        // Only a socket is replaced: anything else there is not undead's.
        // (A file made at the path between this look and the rename below
        // is replaced: the rename cannot tell, and undead does not race
        // its own user.)
        if fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_socket())
        {
            return Err(Errno::EEXIST);
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
            paused_until: None,
        })
    }

    /// Send the reply for connection `conn`: what the socket takes now,
    /// the rest as the client reads (within `REPLY_TIMEOUT`); then close.
    pub fn respond(&mut self, conn: ConnId, reply: &Reply) {
        let now = Instant::now();
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            c.stage = Stage::Writing { out: line(reply), sent: 0 };
            c.deadline = now + REPLY_TIMEOUT;
        }
        self.flush(now);
    }

    /// Write what the sockets take; close the connections whose reply is
    /// complete, whose client is gone or whose time is up.
    fn flush(&mut self, now: Instant) {
        let before = self.conns.len();
        self.conns.retain_mut(|c| match &mut c.stage {
            Stage::Writing { out, sent } => {
                !write_some(&c.stream, out, sent) && now < c.deadline
            }
            _ => true,
        });
        if self.conns.len() < before {
            // A descriptor and a slot are free: serve the backlog now.
            self.paused_until = self.paused_until.map(|_| now);
        }
    }

    fn accept_all(&mut self, now: Instant) {
        // A client's time starts when it is accepted, not when the wake-up
        // began: the kit's slice may have run in between.
        let now = now.max(Instant::now());
        if self.paused_until.is_some_and(|at| now < at) {
            return;
        }
        self.paused_until = None;
        loop {
            if self.conns.len() >= MAX_CONNS {
                // The rest wait in the backlog until a slot frees.
                self.paused_until = Some(now + CLIENT_TIMEOUT);
                return;
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    if matches!(errno, libc::EMFILE | libc::ENFILE) {
                        // Polling a listener we cannot accept from would
                        // spin: back off, keep the client in the backlog.
                        crate::log::debug!("accept: out of descriptors");
                        self.paused_until = Some(now + FD_BACKOFF);
                    }
                    return;
                }
            };
            if let Err(why) = admit(&stream) {
                let out = format!("{}\n", encode(&Reply::Refused(why)));
                write_some(&stream, out.as_bytes(), &mut 0);
                continue;
            }
            self.next_id += 1;
            self.conns.push(Conn {
                id: ConnId(self.next_id),
                stream,
                stage: Stage::Reading(Vec::new()),
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

    /// The listener unless accepting is paused, and every connection
    /// still sending its request.
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let listener = self.paused_until.is_none().then_some(&self.listener);
        listener
            .map(AsFd::as_fd)
            .into_iter()
            .chain(
                self.conns
                    .iter()
                    .filter(|c| matches!(c.stage, Stage::Reading(_)))
                    .map(|c| c.stream.as_fd()),
            )
            .collect()
    }

    /// The connections whose reply waits for room in the socket.
    fn writable_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.conns
            .iter()
            .filter(|c| matches!(c.stage, Stage::Writing { .. }))
            .map(|c| c.stream.as_fd())
            .collect()
    }

    /// When the oldest client runs out of time, or accepting resumes.
    fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter(|c| !matches!(c.stage, Stage::Asked))
            .map(|c| c.deadline)
            .chain(self.paused_until)
            .min()
    }

    /// Accept what is pending, read what is readable, write what the
    /// sockets take, drop stalled clients; return the complete requests.
    /// Never blocks.
    fn service(&mut self, now: Instant) -> Vec<Self::Event> {
        self.flush(now);
        self.accept_all(now);
        let mut ready = Vec::new();
        let mut failed = Vec::new();
        for conn in &mut self.conns {
            let Stage::Reading(buf) = &mut conn.stage else { continue };
            match read_request(&conn.stream, buf, conn.deadline, now) {
                Progress::Waiting => {}
                Progress::Done(action) => {
                    conn.stage = Stage::Asked;
                    ready.push((conn.id, action));
                }
                Progress::Fail(why) => failed.push((conn.id, why)),
            }
        }
        for (id, why) in failed {
            self.respond(id, &Reply::Refused(why));
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
        connect(fd.as_raw_fd(), &addr),
        Ok(()) | Err(Errno::EAGAIN | Errno::EINPROGRESS)
    )
}

/// Only undead's uid or root is served (SO_PEERCRED).
fn admit(stream: &UnixStream) -> Result<(), String> {
    // Its data, too, wakes undead through the control signal.
    crate::sys::notify_by_signal(stream.as_fd())
        .map_err(|e| format!("cannot watch the connection: {}", e.desc()))?;
    let cred = getsockopt(stream, sockopt::PeerCredentials)
        .map_err(|e| format!("cannot read peer credentials: {}", e.desc()))?;
    let me = unistd::geteuid().as_raw();
    if cred.uid() != me && cred.uid() != 0 {
        return Err(format!("uid {} may not control undead", cred.uid()));
    }
    Ok(())
}

enum Progress {
    Waiting,
    Done(Result<Action, String>),
    Fail(String),
}

fn read_request(
    mut stream: &UnixStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    now: Instant,
) -> Progress {
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Some(line) = complete_line(buf) {
                    return Progress::Done(to_action(line));
                }
                if buf.len() > MAX_REQUEST {
                    return Progress::Fail(format!(
                        "request over {MAX_REQUEST} bytes"
                    ));
                }
                if now >= deadline {
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
        if buf.len() > MAX_REQUEST {
            return Progress::Fail(format!(
                "request over {MAX_REQUEST} bytes"
            ));
        }
    }
    // EOF: what arrived is the request, newline or not.
    match complete_line(buf) {
        Some(line) => Progress::Done(to_action(line)),
        None if buf.is_empty() => Progress::Fail("empty request".into()),
        None => Progress::Done(to_action(buf)),
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

/// Send what the socket takes of `out[*sent..]`, never blocking, never
/// raising SIGPIPE. True once the connection is finished with: all sent,
/// or the client gone.
fn write_some(stream: &UnixStream, out: &[u8], sent: &mut usize) -> bool {
    use nix::sys::socket::{MsgFlags, send};
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    while *sent < out.len() {
        match send(stream.as_raw_fd(), &out[*sent..], flags) {
            Ok(n) => *sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return false,
            Err(_) => return true,
        }
    }
    true
}

/// A reply as sent: its JSON and a newline. `status` is written as built,
/// not copied first (1.3 MB at 10 000 held).
fn line(reply: &Reply) -> Vec<u8> {
    match reply {
        Reply::Status(status) => format!("{status}\n"),
        other => format!("{}\n", encode(other)),
    }
    .into_bytes()
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
        // Never sent: `Init` keeps it until the kit is done.
        Reply::Later(_, then) => encode(then),
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
