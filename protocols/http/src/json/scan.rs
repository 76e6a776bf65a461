//! The strict RFC 8259 lexical layer: strings (validated and unescaped), numbers,
//! literals, and whole values skipped over with every byte checked.

use std::borrow::Cow;

use super::{JsonError, MAX_DEPTH};

/// A position in the input.
pub(super) struct Scanner<'a> {
    pub input: &'a [u8],
    pub pos: usize,
}

type Result<T> = std::result::Result<T, JsonError>;

impl<'a> Scanner<'a> {
    pub fn new(input: &'a [u8]) -> Scanner<'a> {
        Scanner { input, pos: 0 }
    }

    pub fn error(&self, what: &'static str) -> JsonError {
        JsonError::Syntax { at: self.pos, what }
    }

    pub fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    /// The bytes from `start` to the current position.
    pub fn since(&self, start: usize) -> &'a [u8] {
        self.input.get(start..self.pos).unwrap_or_default()
    }

    /// Skips the four white-space bytes JSON allows.
    pub fn ws(&mut self) {
        self.pos += self.rest().iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count();
    }

    /// Consumes `byte` or fails with `what`.
    pub fn expect(&mut self, byte: u8, what: &'static str) -> Result<()> {
        if self.peek() != Some(byte) {
            return Err(self.error(what));
        }
        self.pos += 1;
        Ok(())
    }

    /// One level below `depth`, or an error past [`MAX_DEPTH`].
    pub fn deeper(&self, depth: usize) -> Result<usize> {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep(self.pos));
        }
        Ok(depth + 1)
    }

    /// A string, at its opening quote: its value, borrowed when it has no escapes.
    /// Control characters must be escaped, the bytes must be UTF-8 and a `\u`
    /// surrogate must be half of a pair.
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(n) = self.rest().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) else {
                return Err(JsonError::Syntax { at: start - 1, what: "unterminated string" });
            };
            self.pos += n;
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(self.error("control character in a string must be escaped")),
            }
        }
        let raw = self.since(start);
        self.pos += 1;
        let text = std::str::from_utf8(raw)
            .map_err(|e| JsonError::Syntax { at: start + e.valid_up_to(), what: "string is not UTF-8" })?;
        Ok(if escaped { Cow::Owned(unescape(text)) } else { Cow::Borrowed(text) })
    }

    /// Checks one escape, at its backslash.
    fn escape(&mut self) -> Result<()> {
        let at = self.pos;
        let bad = JsonError::Syntax { at, what: "invalid escape" };
        match self.input.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let lone = JsonError::Syntax { at, what: "lone surrogate in a \\u escape" };
                self.pos += 2;
                match self.hex4().ok_or(bad)? {
                    0xD800..=0xDBFF => {
                        if self.rest().starts_with(b"\\u") {
                            self.pos += 2;
                            if let Some(0xDC00..=0xDFFF) = self.hex4() {
                                return Ok(());
                            }
                        }
                        Err(lone)
                    }
                    0xDC00..=0xDFFF => Err(lone),
                    _ => Ok(()),
                }
            }
            _ => Err(bad),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let value = hex4(self.rest())?;
        self.pos += 4;
        Some(value)
    }

    /// A number, at its first byte: its text as written.
    pub fn number(&mut self) -> Result<&'a str> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.error("number with a leading zero"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error("expected a digit after `.`"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.digits();
        }
        // Only ASCII was consumed.
        Ok(std::str::from_utf8(self.since(start)).unwrap_or_default())
    }

    fn digits(&mut self) {
        self.pos += self.rest().iter().take_while(|b| b.is_ascii_digit()).count();
    }

    /// `true`, `false` or `null`.
    pub fn literal(&mut self) -> Result<()> {
        for word in [&b"true"[..], b"false", b"null"] {
            if self.rest().starts_with(word) {
                self.pos += word.len();
                return Ok(());
            }
        }
        Err(self.error("expected a value"))
    }

    /// Skips one value (after white space), checking all of it; `depth` is the
    /// number of arrays and objects it is inside.
    pub fn skip_value(&mut self, mut depth: usize) -> Result<()> {
        // The closing bracket of each open container, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    depth = self.deeper(depth)?;
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        open.push(b'}');
                        self.member_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    depth = self.deeper(depth)?;
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        open.push(b']');
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                _ => self.literal()?,
            }
            // A value is complete: close what it completes, up to the next value.
            loop {
                let Some(&close) = open.last() else { return Ok(()) };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.ws();
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(b) if b == close => {
                        self.pos += 1;
                        open.pop();
                        depth -= 1;
                    }
                    _ => return Err(self.error("expected `,` or a closing bracket")),
                }
            }
        }
    }

    /// A member's key and its colon.
    fn member_key(&mut self) -> Result<()> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a key"));
        }
        self.string()?;
        self.ws();
        self.expect(b':', "expected `:` after the key")
    }

    /// Whether the rest of the input is white space.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos >= self.input.len()
    }
}

/// Whether `bytes` are one JSON text: a value with white space around it.
pub(super) fn is_json(bytes: &[u8]) -> bool {
    let mut s = Scanner::new(bytes);
    s.skip_value(0).is_ok() && s.at_end()
}

fn hex4(bytes: &[u8]) -> Option<u32> {
    bytes.get(..4)?.iter().try_fold(0, |acc, &b| Some(acc * 16 + char::from(b).to_digit(16)?))
}

/// The value of a string's content whose escapes [`Scanner::string`] has checked.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let esc = rest.get(at + 1..).unwrap_or_default();
        let (c, len) = match esc.as_bytes().first() {
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => {
                let lead = hex4(esc.as_bytes().get(1..).unwrap_or_default()).unwrap_or(0xFFFD);
                if (0xD800..=0xDBFF).contains(&lead) {
                    let trail = hex4(esc.as_bytes().get(7..).unwrap_or_default()).unwrap_or(0xDC00);
                    let c = char::from_u32(0x10000 + ((lead - 0xD800) << 10) + (trail.saturating_sub(0xDC00) & 0x3FF));
                    (c.unwrap_or('\u{FFFD}'), 11)
                } else {
                    (char::from_u32(lead).unwrap_or('\u{FFFD}'), 5)
                }
            }
            // `"`, `\` and `/` stand for themselves.
            Some(&b) => (char::from(b), 1),
            None => break,
        };
        out.push(c);
        rest = esc.get(len..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Writes `text` as a JSON string: quoted, with `"`, `\` and control characters
/// escaped.
pub(super) fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\0'..='\u{1f}' => out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes()),
            _ => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}
