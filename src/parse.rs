//! Pure parsers for the values users type: durations (`500ms`, `5s`, `2m`),
//! signals (`TERM`, `SIGTERM`, `15`), `FROM:TO` rewrites and exit codes.
//!
//! Every parser returns a one-line, lowercase reason on bad input; callers
//! wrap it in a usage error (exit 2).

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

/// `500ms`, `5s`, `2m`, `1h`; a bare number is seconds (as `sleep`).
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration '{text}' (use e.g. 500ms, 5s, 2m)");
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(bad)
}

/// `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn signal(text: &str) -> Result<Signal, String> {
    let bad =
        || format!("invalid signal '{text}' (use e.g. TERM, SIGTERM, 15)");
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name =
        if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).map_err(|_| bad())
}

/// A `-r FROM:TO` rewrite; `TO` = `0` drops the signal.
pub fn rewrite(text: &str) -> Result<(Signal, Option<Signal>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid rewrite '{text}' (use FROM:TO)"))?;
    let to = if to == "0" { None } else { Some(signal(to)?) };
    Ok((signal(from)?, to))
}

/// An exit code 0..=255 (for `-e`).
pub fn exit_code(text: &str) -> Result<u8, String> {
    text.parse().map_err(|_| format!("invalid exit code '{text}' (use 0-255)"))
}

/// A count such as `--zombies N`: at most the kernel's `pid_max`, since
/// no more processes can exist at once; a larger count is a usage error,
/// never an allocation failure or an overflow further on. Reads
/// `/proc/sys/kernel/pid_max` (the one impure parser here).
pub fn count(text: &str) -> Result<usize, String> {
    count_within(text, crate::procfs::pid_max())
}

/// `count` against a given `pid_max`. Pure.
pub fn count_within(text: &str, pid_max: usize) -> Result<usize, String> {
    let n: usize =
        text.parse().map_err(|_| format!("invalid count '{text}'"))?;
    if n > pid_max {
        return Err(format!(
            "count {n} is above the kernel's pid_max ({pid_max})"
        ));
    }
    Ok(n)
}

/// A boolean environment value: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/
/// `off`/empty.
pub fn flag(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid boolean '{text}' (use 1 or 0)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "5x", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        for t in ["TERM", "SIGTERM", "sigterm", "term", "15"] {
            assert_eq!(signal(t), Ok(Signal::SIGTERM), "{t}");
        }
        assert_eq!(signal("9"), Ok(Signal::SIGKILL));
        for bad in ["", "0", "65", "FOO", "SIG"] {
            assert!(signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rewrites_and_codes() {
        assert_eq!(
            rewrite("TERM:QUIT"),
            Ok((Signal::SIGTERM, Some(Signal::SIGQUIT)))
        );
        assert_eq!(rewrite("15:0"), Ok((Signal::SIGTERM, None)));
        assert!(rewrite("TERM").is_err());
        assert!(rewrite("TERM:NOPE").is_err());
        assert_eq!(exit_code("143"), Ok(143));
        assert!(exit_code("256").is_err());
        assert_eq!(flag("1"), Ok(true));
        assert_eq!(flag(""), Ok(false));
        assert!(flag("maybe").is_err());
    }

    #[test]
    fn counts_stop_at_pid_max() {
        assert_eq!(count_within("0", 400), Ok(0));
        assert_eq!(count_within("400", 400), Ok(400));
        for bad in ["401", "10000000000", "4611686018427387905", "-1", "x"] {
            assert!(count_within(bad, 400).is_err(), "{bad}");
        }
        assert!(count("99999999999999999999999").is_err());
    }
}
