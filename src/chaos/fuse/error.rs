//! Why a FUSE hold could not be made, each as one line that says what is
//! missing and how to provide it.

use std::fmt;
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::SETUP_LIMIT;

#[derive(Debug)]
pub enum FuseError {
    DevFuse(Errno),
    CapSysAdmin { op: &'static str, errno: Errno },
    Mount { op: &'static str, errno: Errno },
    Setns,
    Fork(Errno),
    OutliveTooLong(Duration),
    OutliveZero,
    NoRequestTimeout { major: u32, minor: u32 },
    HungTaskPanic { timeout_secs: String, lasts: Option<Duration> },
    Protocol(&'static str),
    Aborted,
    NotReady(&'static str),
    ChildFailed { what: &'static str, pid: Pid, code: Option<i32> },
    Rescue { op: &'static str, path: String, errno: Errno },
}

impl fmt::Display for FuseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DevFuse(e) => write!(
                f,
                "cannot open /dev/fuse: {} (docker: --device /dev/fuse; \
                 kubernetes: a device plugin exposing /dev/fuse, or \
                 securityContext.privileged: true)",
                e.desc()
            ),
            Self::CapSysAdmin { op, errno } => write!(
                f,
                "missing CAP_SYS_ADMIN to mount the fuse filesystem ({op}: \
                 {}) (docker: --cap-add SYS_ADMIN; kubernetes: \
                 securityContext.capabilities.add: [\"SYS_ADMIN\"])",
                errno.desc()
            ),
            Self::Mount { op, errno } => write!(
                f,
                "cannot mount the fuse filesystem ({op}: {}); with \
                 CAP_SYS_ADMIN, a security module denies it (docker: \
                 --security-opt apparmor=unconfined)",
                errno.desc()
            ),
            Self::Setns => write!(
                f,
                "missing CAP_SYS_CHROOT to join the fuse mount namespace \
                 (docker grants it by default; kubernetes: \
                 securityContext.capabilities.add: [\"SYS_CHROOT\"])"
            ),
            Self::Fork(e) => write!(f, "cannot fork: {}", e.desc()),
            Self::OutliveTooLong(d) => write!(
                f,
                "--outlive {}s is above the kernel's limit of 65535s",
                d.as_secs()
            ),
            Self::OutliveZero => write!(f, "--outlive must be at least 1s"),
            Self::NoRequestTimeout { major, minor } => write!(
                f,
                "--outlive refused: this kernel (fuse {major}.{minor}) has \
                 no FUSE_REQUEST_TIMEOUT to bound the hang (Linux 6.14+)"
            ),
            Self::HungTaskPanic { timeout_secs, lasts } => write!(
                f,
                "refusing immune D: kernel.hung_task_panic is set and the \
                 hang may last {} (kernel.hung_task_timeout_secs is {})",
                lasts.map_or("until released".into(), |d| format!(
                    "up to {}s",
                    d.as_secs()
                )),
                timeout_secs
            ),
            Self::Protocol(what) => write!(f, "fuse protocol: {what}"),
            Self::Aborted => {
                write!(f, "the fuse connection was aborted during setup")
            }
            Self::NotReady(what) => write!(
                f,
                "gave up waiting {}s for {what}",
                SETUP_LIMIT.as_secs()
            ),
            Self::ChildFailed { what, pid, code } => write!(
                f,
                "the fuse {what} (pid {pid}) exited early (code {})",
                code.map_or("unknown".into(), |c| c.to_string())
            ),
            Self::Rescue { op, path, errno } => {
                write!(f, "rescue: cannot {op} {path}: {}", errno.desc())
            }
        }
    }
}

impl std::error::Error for FuseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_lowercase_line() {
        let e = FuseError::DevFuse(Errno::ENOENT).to_string();
        assert!(e.starts_with(
            "cannot open /dev/fuse: No such file or directory \
             (docker: --device /dev/fuse; kubernetes:"
        ));
        let e = FuseError::CapSysAdmin { op: "unshare", errno: Errno::EPERM }
            .to_string();
        assert!(
            e.contains("missing CAP_SYS_ADMIN")
                && e.contains("--cap-add SYS_ADMIN")
                && e.contains("capabilities.add")
        );
        assert!(!e.contains('\n'));
    }
}
