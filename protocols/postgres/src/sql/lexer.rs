//! A PostgreSQL SQL lexer, faithful where it matters for classification: anything
//! that can hide a keyword (comments, the string forms, quoted identifiers) is one
//! token, so `SELECT 'drop table x'` never shows a `drop`.
//!
//! Covered: `--` and nested `/* */` comments, `'..'` with `''`, `E'..'` with backslash
//! escapes, `B'..'`, `X'..'`, `N'..'`, `U&'..'`, `"..."` and `U&"..."` identifiers,
//! dollar quotes (`$$`, `$fn$`), parameters (`$1`), numbers, operators, `;`.
//! Whitespace and comments are dropped. An unterminated construct becomes one
//! [`TokenKind::Unterminated`] token running to the end (the server rejects such text;
//! classifiers treat it as not understood).

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, satisfy};
use nom::combinator::{opt, recognize};
use nom::sequence::pair;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or unquoted identifier (compare case-insensitively).
    Word,
    /// A `"quoted"` or `U&"quoted"` identifier.
    QuotedIdent,
    /// Any single-quoted string form.
    String,
    /// A dollar-quoted string.
    DollarString,
    /// A numeric literal.
    Number,
    /// A positional parameter, `$1`.
    Param,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `;`.
    Semicolon,
    /// `.`.
    Dot,
    /// An operator character or run (`=`, `::`, `<>`...).
    Op,
    /// A string, identifier, dollar quote or comment that never ends.
    Unterminated,
}

/// A token: its kind, its text as written and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// Kind.
    pub kind: TokenKind,
    /// Source text.
    pub text: &'a str,
    /// Byte offset in the input.
    pub offset: usize,
}

impl Token<'_> {
    /// Whether this is the word `kw` (case-insensitive).
    pub fn is(&self, kw: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(kw)
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

const OP_CHARS: &str = "+-*/<>=~!@#%^&|`?:[]";

/// Length of a quoted body after its opening quote `q`, doubling `q` to escape it and,
/// with `backslash`, also `\x`. Returns the length including the closing quote, or
/// `None` if it never closes.
fn quoted_len(rest: &str, q: u8, backslash: bool) -> Option<usize> {
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c == q => {
                if b.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            b'\\' if backslash => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The length of a nested `/* */` comment starting at `s`, or `None` if unterminated.
fn block_comment_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i + 1 < b.len() + 1 {
        match (b.get(i), b.get(i + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            (Some(_), _) => i += 1,
            (None, _) => return None,
        }
    }
    None
}

fn word(i: &str) -> IResult<&str, &str> {
    recognize(pair(satisfy(is_ident_start), take_while(is_ident_char))).parse(i)
}

fn number(i: &str) -> IResult<&str, &str> {
    let digits = || take_while1(|c: char| c.is_ascii_digit() || c == '_');
    let exponent = || (alt((char('e'), char('E'))), opt(alt((char('+'), char('-')))), digits());
    alt((
        recognize((digits(), opt((char('.'), opt(digits()))), opt(exponent()))),
        recognize((char('.'), digits(), opt(exponent()))),
    ))
    .parse(i)
}

fn param(i: &str) -> IResult<&str, &str> {
    recognize(pair(char('$'), take_while1(|c: char| c.is_ascii_digit()))).parse(i)
}

/// `$tag$` opening a dollar quote (a tag is an identifier without `$`).
fn dollar_tag(i: &str) -> IResult<&str, &str> {
    let tag_word = recognize(pair(satisfy(is_ident_start), take_while(|c: char| c != '$' && is_ident_char(c))));
    recognize((char('$'), opt(tag_word), char('$'))).parse(i)
}

fn operator(i: &str) -> IResult<&str, &str> {
    alt((tag("::"), recognize(satisfy(|c| OP_CHARS.contains(c))))).parse(i)
}

/// Splits `sql` into tokens.
pub fn tokens(sql: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        let offset = sql.len() - rest.len();
        let Some(first) = rest.chars().next() else { break };
        let mut push = |kind, len: usize| {
            out.push(Token { kind, text: &rest[..len], offset });
            len
        };
        let consumed = if rest.starts_with("--") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            match block_comment_len(rest) {
                Some(n) => n,
                None => push(TokenKind::Unterminated, rest.len()),
            }
        } else if let Some((prefix, q, backslash)) = string_prefix(rest) {
            let body = &rest[prefix + 1..];
            let kind = if q == b'"' { TokenKind::QuotedIdent } else { TokenKind::String };
            match quoted_len(body, q, backslash) {
                Some(n) => push(kind, prefix + 1 + n),
                None => push(TokenKind::Unterminated, rest.len()),
            }
        } else if let Ok((after, open)) = dollar_tag(rest) {
            match after.find(open) {
                Some(n) => push(TokenKind::DollarString, open.len() + n + open.len()),
                None => push(TokenKind::Unterminated, rest.len()),
            }
        } else if let Ok((_, p)) = param(rest) {
            push(TokenKind::Param, p.len())
        } else if let Ok((_, w)) = word(rest) {
            push(TokenKind::Word, w.len())
        } else if let Ok((_, n)) = number(rest) {
            push(TokenKind::Number, n.len())
        } else {
            let kind = match first {
                '(' => TokenKind::LParen,
                ')' => TokenKind::RParen,
                ',' => TokenKind::Comma,
                ';' => TokenKind::Semicolon,
                '.' => TokenKind::Dot,
                _ => TokenKind::Op,
            };
            let len = match kind {
                TokenKind::Op => operator(rest).map(|(_, o)| o.len()).unwrap_or(first.len_utf8()),
                _ => 1,
            };
            push(kind, len)
        };
        rest = &rest[consumed..];
    }
    out
}

/// If `s` opens a quoted string or identifier, returns (prefix length, quote byte,
/// backslash escapes).
fn string_prefix(s: &str) -> Option<(usize, u8, bool)> {
    let b = s.as_bytes();
    let lower = |i: usize| b.get(i).map(u8::to_ascii_lowercase);
    match (b.first()?, lower(1), lower(2)) {
        (b'\'', _, _) => Some((0, b'\'', false)),
        (b'"', _, _) => Some((0, b'"', false)),
        (b'e' | b'E', Some(b'\''), _) => Some((1, b'\'', true)),
        (b'b' | b'B' | b'x' | b'X' | b'n' | b'N', Some(b'\''), _) => Some((1, b'\'', false)),
        (b'u' | b'U', Some(b'&'), Some(b'\'')) => Some((2, b'\'', false)),
        (b'u' | b'U', Some(b'&'), Some(b'"')) => Some((2, b'"', false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, &str)> {
        tokens(sql).into_iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn strings_and_comments_hide_keywords() {
        use TokenKind::*;
        assert_eq!(kinds("SELECT 'drop table x'"), vec![(Word, "SELECT"), (String, "'drop table x'")]);
        assert_eq!(
            kinds("select 'it''s' -- drop\n, 1"),
            vec![(Word, "select"), (String, "'it''s'"), (Comma, ","), (Number, "1")]
        );
        assert_eq!(kinds("select /* a /* nested */ drop */ 1"), vec![(Word, "select"), (Number, "1")]);
        assert_eq!(kinds(r"select E'a\'b drop' x"), vec![(Word, "select"), (String, r"E'a\'b drop'"), (Word, "x")]);
        assert_eq!(
            kinds("select $$ drop $$, $fn$ a $$ b $fn$"),
            vec![(Word, "select"), (DollarString, "$$ drop $$"), (Comma, ","), (DollarString, "$fn$ a $$ b $fn$")]
        );
        assert_eq!(
            kinds(r#"select "drop" from "a""b""#),
            vec![(Word, "select"), (QuotedIdent, "\"drop\""), (Word, "from"), (QuotedIdent, "\"a\"\"b\"")]
        );
        assert_eq!(
            kinds(r#"select U&'d\0072op', U&"x""#),
            vec![(Word, "select"), (String, r"U&'d\0072op'"), (Comma, ","), (QuotedIdent, "U&\"x\"")]
        );
        assert_eq!(
            kinds("select $1::int, x'ff', 1.5e3, .5"),
            vec![
                (Word, "select"),
                (Param, "$1"),
                (Op, "::"),
                (Word, "int"),
                (Comma, ","),
                (String, "x'ff'"),
                (Comma, ","),
                (Number, "1.5e3"),
                (Comma, ","),
                (Number, ".5")
            ]
        );
        assert_eq!(kinds("select $a$ x $a$b"), vec![(Word, "select"), (DollarString, "$a$ x $a$"), (Word, "b")]);
        assert_eq!(
            kinds("select drop_log from t"),
            vec![(Word, "select"), (Word, "drop_log"), (Word, "from"), (Word, "t")]
        );
    }

    #[test]
    fn unterminated_constructs_swallow_the_rest() {
        for sql in ["select 'abc; drop table t", "select $x$ abc; drop", "select /* /* */ drop", "select \"x; drop"] {
            let t = tokens(sql);
            assert_eq!(t.last().unwrap().kind, TokenKind::Unterminated, "{sql}");
            assert!(!t.iter().any(|t| t.is("drop")), "{sql}");
        }
    }

    proptest! {
        #[test]
        fn lexing_arbitrary_text_never_panics_and_stays_in_bounds(s in "\\PC{0,200}") {
            let mut last_end = 0;
            for t in tokens(&s) {
                prop_assert!(t.offset >= last_end);
                prop_assert_eq!(&s[t.offset..t.offset + t.text.len()], t.text);
                last_end = t.offset + t.text.len();
            }
        }

        #[test]
        fn lexing_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = String::from_utf8_lossy(&b);
            let _ = tokens(&s);
        }
    }
}
