//! undead's JSON reader (`json::parse`), which reads replies and reports.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(v) = undead_fuzz::json::parse(text) {
                let _ = (v.get("ok"), v.as_u64(), v.as_str(), v.as_array());
            }
        }
    });
}
