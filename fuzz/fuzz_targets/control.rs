//! The control socket's request line (`control::parse`): any bytes a
//! client sends get an action or an error, never a panic.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = undead_fuzz::control::parse(data);
    });
}
