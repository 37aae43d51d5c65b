//! The FUSE request decoder: a sequence of requests as the kernel would
//! write them to /dev/fuse, served by a connection whose replies go to
//! /dev/null (`chaos::fuzz_serve`). The first byte picks `--outlive`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&mode, reqs)) = data.split_first() else { return };
        let outlive = (mode & 1 == 1).then_some(u16::from(mode));
        undead_fuzz::chaos::fuzz_serve(reqs, outlive);
    });
}
