//! The command line (`cli::parse`: init options and client verbs, split
//! on NUL into words) and the value parsers that environment variables go
//! through (`parse::*`).
use undead_fuzz::{cli, parse};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let argv: Vec<String> = std::iter::once("undead")
            .chain(text.split('\0'))
            .map(str::to_string)
            .collect();
        let _ = cli::parse(&argv);
        for word in &argv[1..] {
            let _ = parse::duration(word);
            let _ = parse::signal(word);
            let _ = parse::rewrite(word);
            let _ = parse::exit_code(word);
            let _ = parse::count_within(word, 4 << 20);
            let _ = parse::flag(word);
        }
    });
}
