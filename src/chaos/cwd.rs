//! `dstate --cwd PATH` (SPEC §3.4): D victims that keep a directory busy,
//! a hung client on a volume (kubernetes#72048).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

/// `dstate --cwd PATH`: a descriptor on the directory, which each victim
/// keeps open and makes its working directory (`fchdir`), so the
/// filesystem at PATH is busy (`umount` fails with EBUSY) while it lives.
pub(super) fn open_dir(path: &Path) -> Result<OwnedFd, String> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    open(path, flags, Mode::empty())
        .map_err(|e| format!("--cwd {}: {}", path.display(), e.desc()))
}
