//! The GraphQL lexical grammar (October 2021 edition, §2.1): source text in, tokens
//! out, ignored tokens skipped.
//!
//! Every token is checked in full even where the parser only needs its kind: a string
//! with a bad escape or a number with a leading zero is an error here because the
//! server rejects it too, and a lexer that guessed where such a token ends could see
//! a different document than the server does.

use super::{GraphqlError, Pos};

/// What a token is. Values (numbers, strings) carry no text: nothing downstream
/// reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind<'a> {
    /// One of `! $ & ( ) : = @ [ ] { | }`.
    Punct(u8),
    /// `...`
    Spread,
    /// `[_A-Za-z][_0-9A-Za-z]*`
    Name(&'a str),
    /// IntValue.
    Int,
    /// FloatValue.
    Float,
    /// StringValue, quoted or block.
    String,
    /// The end of the document.
    End,
}

/// A token and the byte offset it starts at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'a> {
    pub kind: Kind<'a>,
    pub at: usize,
}

/// Reads tokens off a document, left to right.
pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

const BOM: &str = "\u{FEFF}";

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    /// A syntax error at byte `at`.
    pub fn error(&self, at: usize, what: &'static str) -> GraphqlError {
        GraphqlError::Syntax { at: Pos::of(self.src, at), what }
    }

    /// The position of byte `at`, for errors the parser raises.
    pub fn position(&self, at: usize) -> Pos {
        Pos::of(self.src, at)
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.src.as_bytes().get(self.pos..).unwrap_or_default()
    }

    /// The next token.
    pub fn next(&mut self) -> Result<Token<'a>, GraphqlError> {
        self.skip_ignored();
        let at = self.pos;
        let Some(b) = self.byte(at) else { return Ok(Token { kind: Kind::End, at }) };
        let kind = match b {
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|' | b'}' => {
                self.pos += 1;
                Kind::Punct(b)
            }
            b'.' if self.rest().starts_with(b"...") => {
                self.pos += 3;
                Kind::Spread
            }
            b'.' => return Err(self.error(at, "`.` alone is not a token (a spread is `...`)")),
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                let len = self.rest().iter().take_while(|&&b| is_name_continue(b)).count();
                self.pos += len;
                // Names are ASCII, so the slice ends on a character boundary.
                Kind::Name(self.src.get(at..self.pos).unwrap_or_default())
            }
            b'-' | b'0'..=b'9' => self.number()?,
            b'"' => self.string()?,
            _ => return Err(self.error(at, "unexpected character")),
        };
        Ok(Token { kind, at })
    }

    /// Skips white space, line terminators, commas, comments and byte order marks.
    fn skip_ignored(&mut self) {
        loop {
            match self.byte(self.pos) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | b',') => self.pos += 1,
                Some(b'#') => {
                    // A comment runs to the next line terminator: `\n`, `\r\n` or a lone
                    // `\r`. Both are ASCII, so the end is on a character boundary.
                    let len = memchr::memchr2(b'\n', b'\r', self.rest()).unwrap_or(self.rest().len());
                    self.pos += len;
                }
                Some(0xEF) if self.rest().starts_with(BOM.as_bytes()) => self.pos += BOM.len(),
                _ => return,
            }
        }
    }

    /// IntValue or FloatValue (§2.9.3, §2.9.4), with their lookahead restrictions:
    /// no leading zeros, and a number must not run into a digit, `.` or a name.
    fn number(&mut self) -> Result<Kind<'a>, GraphqlError> {
        let start = self.pos;
        if self.byte(self.pos) == Some(b'-') {
            self.pos += 1;
        }
        match self.byte(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.pos += self.digits(),
            _ => return Err(self.error(start, "`-` must be followed by a digit")),
        }
        let mut kind = Kind::Int;
        if self.byte(self.pos) == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(self.pos, "a fraction needs a digit after `.`"));
            }
            self.pos += self.digits();
            kind = Kind::Float;
        }
        if matches!(self.byte(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.byte(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(self.pos, "an exponent needs a digit"));
            }
            self.pos += self.digits();
            kind = Kind::Float;
        }
        match self.byte(self.pos) {
            Some(b) if b == b'.' || is_name_continue(b) => {
                Err(self.error(self.pos, "a number must not be followed by a digit, `.` or a name"))
            }
            _ => Ok(kind),
        }
    }

    /// How many ASCII digits start at the current position.
    fn digits(&self) -> usize {
        self.rest().iter().take_while(|b| b.is_ascii_digit()).count()
    }

    /// StringValue (§2.9.4): `"..."` on one line with escapes, or a block string.
    fn string(&mut self) -> Result<Kind<'a>, GraphqlError> {
        let start = self.pos;
        if self.rest().starts_with(b"\"\"\"") {
            return self.block_string();
        }
        self.pos += 1;
        loop {
            // Any other character, control characters included, stands for itself
            // (October 2021 allows every Unicode scalar value in a string).
            let Some(n) = self.rest().iter().position(|&b| matches!(b, b'"' | b'\\' | b'\n' | b'\r')) else {
                return Err(self.error(start, "unterminated string"));
            };
            self.pos += n;
            match self.byte(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Kind::String);
                }
                Some(b'\\') => self.escape()?,
                _ => {
                    return Err(self.error(self.pos, "line break in a string (a block string `\"\"\"` may span lines)"));
                }
            }
        }
    }

    /// One escape sequence, at the backslash.
    fn escape(&mut self) -> Result<(), GraphqlError> {
        let at = self.pos;
        match self.byte(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 2;
                self.unicode_escape(at)
            }
            _ => Err(self.error(at, "invalid escape sequence")),
        }
    }

    /// The rest of `\u...` after the `u`: `{HEX+}` naming a Unicode scalar value, or
    /// four hex digits, where a leading surrogate must be followed by `\u` and a
    /// trailing one.
    fn unicode_escape(&mut self, at: usize) -> Result<(), GraphqlError> {
        if self.byte(self.pos) == Some(b'{') {
            self.pos += 1;
            let mut value: u32 = 0;
            let mut digits = 0;
            while let Some(d) = self.byte(self.pos).and_then(hex) {
                value = value * 16 + d;
                if value > 0x10FFFF {
                    return Err(self.error(at, "escaped code point is past U+10FFFF"));
                }
                digits += 1;
                self.pos += 1;
            }
            if digits == 0 || self.byte(self.pos) != Some(b'}') {
                return Err(self.error(at, "invalid `\\u{...}` escape"));
            }
            self.pos += 1;
            return match char::from_u32(value) {
                Some(_) => Ok(()),
                None => Err(self.error(at, "escaped code point is a surrogate")),
            };
        }
        let value = self.hex4().ok_or_else(|| self.error(at, "`\\u` needs four hex digits"))?;
        match value {
            0xD800..=0xDBFF => {
                let trail = if self.rest().starts_with(b"\\u") {
                    self.pos += 2;
                    self.hex4()
                } else {
                    None
                };
                match trail {
                    Some(0xDC00..=0xDFFF) => Ok(()),
                    _ => Err(self.error(at, "leading surrogate without a trailing one")),
                }
            }
            0xDC00..=0xDFFF => Err(self.error(at, "trailing surrogate without a leading one")),
            _ => Ok(()),
        }
    }

    /// Four hex digits, consumed if they are there.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.rest().get(..4)?;
        let value = digits.iter().try_fold(0, |acc, &b| Some(acc * 16 + hex(b)?))?;
        self.pos += 4;
        Some(value)
    }

    /// A block string, at its opening `"""`: anything up to a `"""` that is not
    /// `\"""`, line breaks included.
    fn block_string(&mut self) -> Result<Kind<'a>, GraphqlError> {
        let start = self.pos;
        self.pos += 3;
        loop {
            let rest = self.rest();
            let Some(n) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(self.error(start, "unterminated block string"));
            };
            self.pos += n;
            let rest = self.rest();
            if rest.starts_with(b"\\\"\"\"") {
                self.pos += 4;
            } else if rest.starts_with(b"\"\"\"") {
                self.pos += 3;
                return Ok(Kind::String);
            } else {
                self.pos += 1;
            }
        }
    }
}

fn is_name_continue(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}
