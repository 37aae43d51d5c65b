//! A pseudo-terminal for the TTY tests.

use std::fs;
use std::io::Read;
use std::process::Stdio;

/// A pseudo-terminal; a thread drains the master into `output` so the
/// terminal never blocks a writer.
pub struct Pty {
    pub master: fs::File,
    slave: std::os::fd::OwnedFd,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    pub fn open() -> Pty {
        let p = nix::pty::openpty(None, None).unwrap();
        let master = fs::File::from(p.master);
        let mut reader = master.try_clone().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once every slave descriptor is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { master, slave: p.slave, output }
    }

    /// A new descriptor of the slave side, for a child's stdio.
    pub fn slave(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }

    /// The terminal's device number as `/proc/PID/stat`'s tty_nr shows it.
    pub fn tty_nr(&self) -> i64 {
        use std::os::unix::fs::MetadataExt;
        let path = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.slave)
        ))
        .unwrap();
        let rdev = fs::metadata(path).unwrap().rdev();
        // new_encode_dev: minor low 8 bits, major, then minor's high bits.
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        i64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
    }

    pub fn write(&self, bytes: &[u8]) {
        use std::io::Write;
        (&self.master).write_all(bytes).unwrap();
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}
