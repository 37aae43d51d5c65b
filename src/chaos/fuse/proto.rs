//! The FUSE wire protocol as undead speaks it: pure encoding and decoding
//! of the messages read from and written to /dev/fuse
//! (`include/uapi/linux/fuse.h`, 7.43). No descriptors, no processes.

use std::time::Duration;

use super::FuseError;

/// FUSE_TIMEOUT_TIMER_FREQ: the check period and the minimum timeout.
const TIMER_FREQ: Duration = Duration::from_secs(15);
/// The one file undead serves, in its root directory.
pub const FILE_NAME: &str = "hold";

// include/uapi/linux/fuse.h. Debian 12's copy is 7.38: 7.43 is defined here.
pub const LOOKUP: u32 = 1;
pub const FORGET: u32 = 2;
pub const GETATTR: u32 = 3;
pub const OPEN: u32 = 14;
pub const READ: u32 = 15;
pub const RELEASE: u32 = 18;
pub const FLUSH: u32 = 25;
pub const INIT: u32 = 26;
pub const OPENDIR: u32 = 27;
pub const READDIR: u32 = 28;
pub const RELEASEDIR: u32 = 29;
pub const INTERRUPT: u32 = 36;
pub const DESTROY: u32 = 38;
pub const BATCH_FORGET: u32 = 42;
pub const IN_HEADER: usize = 40;
pub const OUT_HEADER: usize = 16;
pub const INIT_OUT: usize = 64;
pub const FUSE_INIT_EXT: u32 = 1 << 30;
/// FUSE_REQUEST_TIMEOUT: bit 42 of the 64-bit flags = bit 10 of `flags2`.
pub const FLAGS2_REQUEST_TIMEOUT: u32 = 1 << 10;
pub const TIMEOUT_MINOR: u32 = 43;
/// `fuse_init_out.request_timeout` (u16): after flags2 (32) and
/// max_stack_depth (36). Measured here: written at 44 it is ignored.
pub const REQUEST_TIMEOUT_AT: usize = 40;
pub const FOPEN_DIRECT_IO: u32 = 1;
pub const ROOT: u64 = 1;
pub const FILE: u64 = 2;

/// A request's `fuse_in_header` and what follows it.
pub struct In<'a> {
    pub opcode: u32,
    pub unique: u64,
    pub node: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub body: &'a [u8],
}

/// Decode one request as read from /dev/fuse; `None` if it is too short
/// for its header. Pure; any bytes are safe.
pub fn parse_in(req: &[u8]) -> Option<In<'_>> {
    Some(In {
        opcode: u32_at(req, 4)?,
        unique: u64_at(req, 8)?,
        node: u64_at(req, 16)?,
        uid: u32_at(req, 24)?,
        gid: u32_at(req, 28)?,
        pid: u32_at(req, 32)?,
        body: req.get(IN_HEADER..).unwrap_or(&[]),
    })
}

/// One reply: `fuse_out_header` (len, error, unique), then `body`.
pub fn out_msg(unique: u64, error: i32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(OUT_HEADER + body.len()).unwrap_or(0);
    let mut msg = Vec::with_capacity(OUT_HEADER + body.len());
    msg.extend_from_slice(&len.to_le_bytes());
    msg.extend_from_slice(&error.to_le_bytes());
    msg.extend_from_slice(&unique.to_le_bytes());
    msg.extend_from_slice(body);
    msg
}

/// `t` as the kernel's u16 seconds, rounded up; 0 means "no timeout" to the
/// kernel, so it is refused.
pub fn timeout_secs(t: Duration) -> Result<u16, FuseError> {
    let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
    match u16::try_from(secs) {
        Ok(0) => Err(FuseError::OutliveZero),
        Ok(s) => Ok(s),
        Err(_) => Err(FuseError::OutliveTooLong(t)),
    }
}

/// When the kernel frees `outlive` victims, from their request: it raises
/// T to at least 15 s and checks every 15 s from INIT.
pub fn outlive_window(t: Duration) -> (Duration, Duration) {
    let lo = t.max(TIMER_FREQ);
    (lo, lo + TIMER_FREQ)
}

/// The INIT reply body (`fuse_init_out`) for the kernel's `fuse_init_in`.
/// With `outlive`, negotiate FUSE_REQUEST_TIMEOUT, or refuse if the kernel
/// does not offer it (a kernel without it would ignore it silently).
pub fn init_reply(
    body: &[u8],
    outlive: Option<u16>,
) -> Result<[u8; INIT_OUT], FuseError> {
    let (Some(major), Some(minor), Some(flags)) =
        (u32_at(body, 0), u32_at(body, 4), u32_at(body, 12))
    else {
        return Err(FuseError::Protocol("short FUSE_INIT"));
    };
    if major != 7 {
        return Err(FuseError::Protocol("FUSE_INIT major is not 7"));
    }
    let ext = flags & FUSE_INIT_EXT != 0;
    let flags2 = if ext { u32_at(body, 16).unwrap_or(0) } else { 0 };
    let mut out = [0u8; INIT_OUT];
    put(&mut out, 0, &7u32.to_le_bytes());
    put(&mut out, 4, &minor.min(TIMEOUT_MINOR).to_le_bytes());
    put(&mut out, 20, &4096u32.to_le_bytes()); // max_write
    put(&mut out, 24, &1u32.to_le_bytes()); // time_gran
    if let Some(secs) = outlive {
        if minor < TIMEOUT_MINOR || flags2 & FLAGS2_REQUEST_TIMEOUT == 0 {
            return Err(FuseError::NoRequestTimeout { major, minor });
        }
        put(&mut out, 12, &FUSE_INIT_EXT.to_le_bytes());
        put(&mut out, 32, &FLAGS2_REQUEST_TIMEOUT.to_le_bytes());
        put(&mut out, REQUEST_TIMEOUT_AT, &secs.to_le_bytes());
    }
    Ok(out)
}

/// `fuse_attr` (88 bytes) of the root directory or of the file.
pub fn attr(ino: u64, uid: u32, gid: u32) -> [u8; 88] {
    let (mode, size, nlink) = if ino == ROOT {
        (libc::S_IFDIR | 0o555, 0u64, 2u32)
    } else {
        (libc::S_IFREG | 0o444, 4096, 1)
    };
    let mut a = [0u8; 88];
    put(&mut a, 0, &ino.to_le_bytes());
    put(&mut a, 8, &size.to_le_bytes());
    put(&mut a, 60, &mode.to_le_bytes());
    put(&mut a, 64, &nlink.to_le_bytes());
    put(&mut a, 68, &uid.to_le_bytes());
    put(&mut a, 72, &gid.to_le_bytes());
    put(&mut a, 80, &4096u32.to_le_bytes()); // blksize
    a
}

/// `fuse_entry_out`: nodeid, generation, entry/attr validity (1 day), attr.
pub fn entry_out(ino: u64, uid: u32, gid: u32) -> [u8; 128] {
    let mut e = [0u8; 128];
    put(&mut e, 0, &ino.to_le_bytes());
    put(&mut e, 16, &86400u64.to_le_bytes());
    put(&mut e, 24, &86400u64.to_le_bytes());
    put(&mut e, 40, &attr(ino, uid, gid));
    e
}

/// `fuse_attr_out`: attr_valid (1 day), attr.
pub fn attr_out(ino: u64, uid: u32, gid: u32) -> [u8; 104] {
    let mut o = [0u8; 104];
    put(&mut o, 0, &86400u64.to_le_bytes());
    put(&mut o, 16, &attr(ino, uid, gid));
    o
}

/// `fuse_open_out`. FOPEN_DIRECT_IO makes read(2) one synchronous READ
/// (the page cache path waits on folio locks, killably).
pub fn open_out(open_flags: u32) -> [u8; 16] {
    let mut o = [0u8; 16];
    put(&mut o, 8, &open_flags.to_le_bytes());
    o
}

pub fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_in(minor: u32, flags: u32, flags2: u32) -> Vec<u8> {
        [7u32, minor, 0, flags, flags2]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain([0u8; 44])
            .collect()
    }

    #[test]
    fn init_reply_default_is_plain() {
        let out = init_reply(
            &init_in(45, FUSE_INIT_EXT, FLAGS2_REQUEST_TIMEOUT),
            None,
        )
        .unwrap();
        assert_eq!((u32_at(&out, 0), u32_at(&out, 4)), (Some(7), Some(43)));
        assert_eq!((u32_at(&out, 12), u32_at(&out, 32)), (Some(0), Some(0)));
        assert_eq!(&out[40..42], &[0, 0]);
        assert_eq!(u32_at(&out, 20), Some(4096));
    }

    #[test]
    fn init_reply_outlive_sets_timeout_at_40() {
        let out = init_reply(
            &init_in(45, FUSE_INIT_EXT, FLAGS2_REQUEST_TIMEOUT),
            Some(300),
        )
        .unwrap();
        assert_eq!(u32_at(&out, 12), Some(1 << 30));
        assert_eq!(u32_at(&out, 32), Some(1 << 10));
        assert_eq!(u16::from_le_bytes([out[40], out[41]]), 300);
        assert_eq!(out.len(), 64);
    }

    #[test]
    fn init_reply_outlive_refused_without_offer() {
        assert!(matches!(
            init_reply(&init_in(38, FUSE_INIT_EXT, 0), Some(5)),
            Err(FuseError::NoRequestTimeout { minor: 38, .. })
        ));
        // flags2 is only meaningful with FUSE_INIT_EXT
        assert!(
            init_reply(&init_in(45, 0, FLAGS2_REQUEST_TIMEOUT), Some(5))
                .is_err()
        );
        assert!(init_reply(&[1, 2, 3], None).is_err());
    }

    #[test]
    fn timeout_is_whole_seconds_within_u16() {
        assert_eq!(timeout_secs(Duration::from_millis(2500)).unwrap(), 3);
        assert!(matches!(
            timeout_secs(Duration::ZERO),
            Err(FuseError::OutliveZero)
        ));
        assert_eq!(timeout_secs(Duration::from_secs(65535)).unwrap(), 65535);
        assert!(matches!(
            timeout_secs(Duration::from_secs(65536)),
            Err(FuseError::OutliveTooLong(_))
        ));
    }

    #[test]
    fn window_is_raised_to_15s_plus_one_check() {
        let s = Duration::from_secs;
        assert_eq!(outlive_window(s(3)), (s(15), s(30)));
        assert_eq!(outlive_window(s(100)), (s(100), s(115)));
    }

    #[test]
    fn entry_and_attr_layout() {
        let e = entry_out(FILE, 5, 6);
        assert_eq!(u64_at(&e, 0), Some(FILE));
        assert_eq!(u32_at(&e, 40 + 60), Some(libc::S_IFREG | 0o444));
        assert_eq!(u32_at(&e, 40 + 68), Some(5));
        assert_eq!(
            u32_at(&attr_out(ROOT, 0, 0), 16 + 60),
            Some(libc::S_IFDIR | 0o555)
        );
        assert_eq!(u32_at(&open_out(FOPEN_DIRECT_IO), 8), Some(1));
    }

    #[test]
    fn requests_decode_and_replies_encode() {
        assert!(parse_in(&[0u8; 35]).is_none());
        let mut req = vec![0u8; IN_HEADER + 3];
        req[4..8].copy_from_slice(&READ.to_le_bytes());
        req[8..16].copy_from_slice(&7u64.to_le_bytes());
        req[32..36].copy_from_slice(&42u32.to_le_bytes());
        let r = parse_in(&req).unwrap();
        assert_eq!(
            (r.opcode, r.unique, r.pid, r.body.len()),
            (READ, 7, 42, 3)
        );
        let out = out_msg(7, -5, b"ab");
        assert_eq!(out.len(), OUT_HEADER + 2);
        assert_eq!(out[..4], 18u32.to_le_bytes());
    }
}
