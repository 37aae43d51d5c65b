//! The command line as `main` splits it (split on NUL into the words
//! after `undead`): a client verb (`client::parse`) or init options
//! (`config::invocation`), and the value parsers that environment
//! variables go through (`parse::*`).
use undead_fuzz::{client, config, parse};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let words: Vec<&str> = text.split('\0').collect();
        match words.split_first() {
            Some((verb, rest)) if client::VERBS.contains(verb) => {
                let _ = client::parse(verb, rest);
            }
            _ => {
                let _ = config::invocation(&words);
            }
        }
        for word in &words {
            let _ = parse::duration(word);
            let _ = parse::signal(word);
            let _ = parse::rewrite(word);
            let _ = parse::exit_code(word);
            let _ = parse::count_within(word, 4 << 20);
            let _ = parse::flag(word);
        }
    });
}
