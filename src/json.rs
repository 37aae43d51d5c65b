//! Minimal JSON writing and reading for the control protocol, `--json`
//! output and the teardown report: strings, numbers, flat objects.
//! Hand-written because undead's JSON is a handful of flat records; a
//! serde stack would add more to the binary than all of undead's logic.

use std::borrow::Cow;
use std::fmt::{self, Display, Write};

/// A JSON string literal with the escapes RFC 8259 requires.
fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    // Runs that need no escape are written whole.
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        f.write_str(&s[plain..i])?;
        if escaped.is_empty() {
            write!(f, "\\u{:04x}", c as u32)?;
        } else {
            f.write_str(escaped)?;
        }
        plain = i + c.len_utf8();
    }
    f.write_str(&s[plain..])?;
    f.write_char('"')
}

/// Compact JSON text, fields in the order they were built: the one writer
/// behind every reply, `--json` output, the report and JSON log lines.
impl Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) => write_string(f, s),
            Value::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Value::Obj(fields) => {
                f.write_char('{')?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_string(f, key)?;
                    write!(f, ":{value}")?;
                }
                f.write_char('}')
            }
        }
    }
}

/// An object from `(key, value)` pairs, in order.
pub fn obj<const N: usize>(fields: [(&'static str, Value); N]) -> Value {
    Value::Obj(
        fields.into_iter().map(|(k, v)| (Cow::Borrowed(k), v)).collect(),
    )
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Num(n)
    }
}

/// Counts and milliseconds; saturates (never reached by undead's values).
impl From<u128> for Value {
    fn from(n: u128) -> Value {
        Value::Num(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::from(n as u128)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::from(u128::from(n))
    }
}

impl From<nix::unistd::Pid> for Value {
    fn from(pid: nix::unistd::Pid) -> Value {
        Value::Num(i64::from(pid.as_raw()))
    }
}

/// Whole milliseconds.
impl From<std::time::Duration> for Value {
    fn from(d: std::time::Duration) -> Value {
        Value::from(d.as_millis())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Value {
        Value::Arr(items.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            Value::from("a\"b\\c\n\u{1}").to_string(),
            "\"a\\\"b\\\\c\\n\\u0001\""
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let text = r#"{"ok":true,"pids":[1,-2],"e":null,"s":"a\"\n","o":{}}"#;
        let v = parse(text).unwrap();
        assert_eq!(v.to_string(), text);
        let built = obj([
            ("ok", true.into()),
            ("pids", vec![nix::unistd::Pid::from_raw(1)].into()),
            ("e", Option::<u64>::None.into()),
        ]);
        assert_eq!(built.to_string(), r#"{"ok":true,"pids":[1],"e":null}"#);
    }
}

/// A parsed JSON value (what undead's own replies contain).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Integers only: undead's own JSON has no fractions, and leaving
    /// float parsing and printing out keeps the static binary smaller.
    Num(i64),
    Str(String),
    Arr(Vec<Value>),
    /// Keys: undead's own are `'static` (no allocation per key, per
    /// object: a `status` of 30 000 held builds 150 000 of them).
    Obj(Vec<(Cow<'static, str>, Value)>),
}

impl Value {
    /// Add a field at the end of an object (nothing to another value).
    pub fn push(&mut self, key: &'static str, value: Value) {
        if let Value::Obj(fields) = self {
            fields.push((Cow::Borrowed(key), value));
        }
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(fields) => {
                fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Num(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> &[Value] {
        match self {
            Value::Arr(items) => items,
            _ => &[],
        }
    }
}

/// Parse one JSON document. Pure; depth-limited so hostile input cannot
/// overflow the stack.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing data at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &str) -> bool {
        let ok = self.s[self.i..].starts_with(lit.as_bytes());
        if ok {
            self.i += lit.len();
        }
        ok
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid JSON: {what} at byte {}", self.i))
    }
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 32 {
            return self.err("nesting too deep");
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::Str),
            Some(b't') if self.eat("true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(Value::Bool(false)),
            Some(b'n') if self.eat("null") => Ok(Value::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            _ => self.err("unexpected input"),
        }
    }
    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| b"+-.eE0123456789".contains(c))
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        text.parse().map(Value::Num).or_else(|_| self.err("bad integer"))
    }
    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => {
                    let esc = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    match esc {
                        Some(b'n') => out.push(b'\n'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b'u') => {
                            let hex =
                                self.s.get(self.i..self.i + 4).unwrap_or(b"");
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            let Some(c) = code else {
                                return self.err("bad \\u escape");
                            };
                            self.i += 4;
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        Some(c @ (b'"' | b'\\' | b'/')) => out.push(c),
                        _ => return self.err("bad escape"),
                    }
                    continue;
                }
                Some(&c) => out.push(c),
            }
            self.i += 1;
        }
        self.i += 1;
        String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
    }
    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat("]") {
            return Ok(Value::Arr(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat("]") {
                return Ok(Value::Arr(items));
            }
            if !self.eat(",") {
                return self.err("expected , or ]");
            }
        }
    }
    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.eat("}") {
            return Ok(Value::Obj(fields));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(":") {
                return self.err("expected :");
            }
            fields.push((Cow::Owned(key), self.value(depth + 1)?));
            self.ws();
            if self.eat("}") {
                return Ok(Value::Obj(fields));
            }
            if !self.eat(",") {
                return self.err("expected , or }");
            }
        }
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = parse(
            r#"{"ok":true,"pids":[1,2],"e":null,"s":"a\"\u0041","n":-15}"#,
        )
        .unwrap();
        assert_eq!(v.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(v.get("pids").unwrap().as_array().len(), 2);
        assert_eq!(v.get("s").unwrap().as_str(), Some("a\"A"));
        assert_eq!(v.get("n"), Some(&Value::Num(-15)));
        assert!(parse("1.5").is_err(), "no fractions");
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "tru",
            "\"\\x\"",
            "1 2",
            &"[".repeat(100),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
