//! A PostgreSQL SQL lexer that draws token boundaries exactly where the server's
//! scanner (`src/backend/parser/scan.l`) draws them. Anything that can hide a keyword
//! (comments, the string forms, quoted identifiers, dollar quotes) is one token, so
//! `SELECT 'drop table x'` never shows a `drop`, and nothing the server reads as code
//! is ever hidden inside what this lexer calls a string or a comment.
//!
//! Faithful in the details an attacker reaches for:
//! - white space is exactly scan.l's `[ \t\n\r\f\v]`; a `--` comment ends at `\n` *or*
//!   `\r`; other Unicode "spaces" are identifier characters, as they are to the server;
//! - `/* */` comments nest; `--` and `/*` end an operator run;
//! - `'..'` follows [`Dialect::standard_conforming_strings`]: off, a backslash escapes
//!   the next byte, as in `E'..'`; `N'..'` is a plain string; `B'..'` and `X'..'` never
//!   double quotes; a string continues across white space that holds a newline
//!   (`'a'\n'b'`) in the state it was in;
//! - `U&'..'`, `"..."` and `U&"..."`; dollar quotes close at the first `$tag$`.
//!
//! Whitespace and comments are dropped. An unterminated construct becomes one
//! [`TokenKind::Unterminated`] token running to the end (the server rejects the whole
//! query string; classifiers treat it as not understood).
//!
//! The lexer reads the query as the server's encoding would after conversion. That
//! holds for UTF-8 and every client encoding whose multi-byte characters never contain
//! ASCII bytes; the gateway refuses the others
//! (see [`unsafe_client_encoding`](super::settings::unsafe_client_encoding)).

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

/// The longest name the server keeps (NAMEDATALEN - 1); longer ones are truncated.
const MAX_NAME: usize = 63;

/// The name the identifier at `t[i]` denotes, as the server resolves it, and how many
/// tokens it spans: unquoted words lower-cased (ASCII only, as for a UTF-8 server),
/// `"quoted"` ones as written, `U&"..."` decoded (with a following `UESCAPE 'c'`), all
/// truncated to 63 bytes. `None` when `t[i]` is no identifier or cannot be decoded.
pub fn ident_at(t: &[Token<'_>], i: usize) -> Option<(String, usize)> {
    let tok = t.get(i)?;
    let (name, span) = match tok.kind {
        TokenKind::Word => (tok.text.to_ascii_lowercase(), 1),
        TokenKind::QuotedIdent if tok.text.starts_with('"') => (unquote(&tok.text[1..], '"'), 1),
        TokenKind::QuotedIdent => {
            // U&"...": the escape character is `\` unless UESCAPE names another.
            let (escape, span) = match (t.get(i + 1), t.get(i + 2)) {
                (Some(u), Some(c)) if u.is("uescape") && c.kind == TokenKind::String => {
                    let c = c.text.strip_prefix('\'')?.strip_suffix('\'')?;
                    let mut chars = c.chars();
                    let (Some(e), None) = (chars.next(), chars.next()) else { return None };
                    (e, 3)
                }
                _ => ('\\', 1),
            };
            (unicode_unescape(&unquote(tok.text.get(3..)?, '"'), escape)?, span)
        }
        _ => return None,
    };
    Some((truncate_name(name), span))
}

/// Index just past the parenthesised group opening at `open`, if it closes.
pub(crate) fn skip_parens(t: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The body of a quoted construct whose opening quote is already stripped: closing
/// quote dropped, doubled quotes undoubled.
fn unquote(body: &str, q: char) -> String {
    let body = body.strip_suffix(q).unwrap_or(body);
    let doubled: String = [q, q].iter().collect();
    body.replace(&doubled, &q.to_string())
}

/// Decodes `U&` escapes: `\XXXX`, `\+XXXXXX`, and the escape character doubled.
pub fn unicode_unescape(s: &str, escape: char) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != escape {
            out.push(c);
            continue;
        }
        let rest = chars.as_str();
        let (digits, skip) = match rest.chars().next()? {
            e if e == escape => {
                out.push(escape);
                chars.next();
                continue;
            }
            '+' => (rest.get(1..7)?, 7),
            _ => (rest.get(..4)?, 4),
        };
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        out.push(char::from_u32(u32::from_str_radix(digits, 16).ok()?)?);
        chars = rest.get(skip..)?.chars();
    }
    Some(out)
}

fn truncate_name(mut name: String) -> String {
    if name.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// The text a string literal carries, for looking for names in it: its value where
/// [`string_value`] can tell, else its raw text with quotes and backslashes blanked
/// (more is read as names, never less).
pub fn literal_text(tok: &Token<'_>) -> String {
    string_value(tok).unwrap_or_else(|| tok.text.replace(['\'', '$', '\\'], " "))
}

/// The value of a string literal token, when it has one without guesswork: `'..'`,
/// `E'..'` with no escapes but `\\` and `\'`, and dollar quotes. `None` for anything
/// else (the caller treats the argument as not understood).
pub fn string_value(tok: &Token<'_>) -> Option<String> {
    match tok.kind {
        TokenKind::DollarString => {
            let open = tok.text.get(1..)?.find('$')? + 2;
            tok.text.get(open..tok.text.len().checked_sub(open)?).map(str::to_owned)
        }
        TokenKind::String => {
            let (escaped, body) = match tok.text.as_bytes().first()? {
                b'\'' => (false, &tok.text[1..]),
                b'e' | b'E' => (true, tok.text.get(2..)?),
                _ => return None,
            };
            // Continued strings ('a'\n'b') and plain strings with a backslash (whose
            // meaning depends on standard_conforming_strings) are not decoded.
            let body = body.strip_suffix('\'')?;
            if !escaped {
                if body.contains('\\') || body.replace("''", "").contains('\'') {
                    return None;
                }
                return Some(body.replace("''", "'"));
            }
            let mut out = String::with_capacity(body.len());
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next()? {
                        e @ ('\\' | '\'') => out.push(e),
                        _ => return None,
                    },
                    '\'' => match chars.next()? {
                        '\'' => out.push('\''),
                        _ => return None,
                    },
                    c => out.push(c),
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

const OP_CHARS: &str = "+-*/<>=~!@#%^&|`?:[]";

/// The server settings that change where tokens end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// `standard_conforming_strings`: when off, `'..'` treats backslash as an escape.
    pub standard_conforming_strings: bool,
}

impl Dialect {
    /// The server default since PostgreSQL 9.1.
    pub const STANDARD: Dialect = Dialect { standard_conforming_strings: true };
    /// `standard_conforming_strings = off`.
    pub const BACKSLASH_QUOTES: Dialect = Dialect { standard_conforming_strings: false };
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect::STANDARD
    }
}

/// Whether a query string could be cut differently under the two settings of
/// `standard_conforming_strings`: only a backslash inside a plain string can do that.
pub fn depends_on_dialect(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.contains(&b'\\') && b.contains(&b'\'')
}

/// scan.l's `space`. `\v` joined it in PostgreSQL 16; to older servers it is a stray
/// character that fails the whole query, so reading it as space hides nothing.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

fn is_newline(b: u8) -> bool {
    matches!(b, b'\n' | b'\r')
}

/// How a quoted construct's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    /// `'..'` (standard) and `U&'..'`: `''` is a quote.
    Standard,
    /// `E'..'` (and `'..'` without standard strings): `''` or `\` + any byte.
    Escaped,
    /// `B'..'`, `X'..'`: nothing escapes the closing quote.
    Bits,
    /// `"..."`: `""` is a quote.
    Ident,
}

/// Length of a quoted body after its opening quote, including the closing quote, or
/// `None` if it never closes. String kinds continue across white space holding a
/// newline, in the same state (scan.l's `xqs`).
fn quoted_len(rest: &[u8], how: Quoted) -> Option<usize> {
    let q = if how == Quoted::Ident { b'"' } else { b'\'' };
    let mut i = 0;
    loop {
        match *rest.get(i)? {
            b'\\' if how == Quoted::Escaped => i += 2,
            c if c == q => {
                if how != Quoted::Bits && rest.get(i + 1) == Some(&q) {
                    i += 2;
                } else if let Some(skip) = (how != Quoted::Ident).then(|| continuation(&rest[i + 1..])).flatten() {
                    i += 1 + skip + 1;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
}

/// If `s` starts with white space that holds a newline followed by a quote (scan.l's
/// `quotecontinue`), the length of that white space.
fn continuation(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut newline = false;
    loop {
        match s.get(i)? {
            b'\'' if newline => return Some(i),
            b if is_space(*b) => {
                newline |= is_newline(*b);
                i += 1;
            }
            b'-' if s.get(i + 1) == Some(&b'-') => {
                i += comment_len(&s[i..]);
            }
            _ => return None,
        }
    }
}

/// Length of a `--` comment: up to, not including, the first `\n` or `\r`.
fn comment_len(s: &[u8]) -> usize {
    s.iter().position(|b| is_newline(*b)).unwrap_or(s.len())
}

/// The length of a nested `/* */` comment starting at `s`, or `None` if unterminated.
fn block_comment_len(s: &[u8]) -> Option<usize> {
    let (mut depth, mut i) = (0usize, 0usize);
    loop {
        match (s.get(i)?, s.get(i + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
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

/// Splits `sql` into tokens, with standard conforming strings.
pub fn tokens(sql: &str) -> Vec<Token<'_>> {
    tokens_with(sql, Dialect::STANDARD)
}

/// Splits `sql` into tokens as a server with these settings would.
pub fn tokens_with(sql: &str, dialect: Dialect) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        let offset = sql.len() - rest.len();
        let Some(first) = rest.chars().next() else { break };
        let bytes = rest.as_bytes();
        let mut push = |kind, len: usize| {
            out.push(Token { kind, text: &rest[..len], offset });
            len
        };
        let consumed = if rest.starts_with("--") {
            comment_len(bytes)
        } else if rest.starts_with("/*") {
            match block_comment_len(bytes) {
                Some(n) => n,
                None => push(TokenKind::Unterminated, rest.len()),
            }
        } else if let Some((prefix, how)) = string_prefix(bytes, dialect) {
            let kind = if how == Quoted::Ident { TokenKind::QuotedIdent } else { TokenKind::String };
            match quoted_len(&bytes[prefix + 1..], how) {
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

/// If `s` opens a quoted string or identifier, returns (prefix length, how its body is
/// read). The longest match wins, as in flex: `E'` is a string, not the word `E`.
fn string_prefix(s: &[u8], dialect: Dialect) -> Option<(usize, Quoted)> {
    let plain = if dialect.standard_conforming_strings { Quoted::Standard } else { Quoted::Escaped };
    let lower = |i: usize| s.get(i).map(u8::to_ascii_lowercase);
    match (s.first()?, lower(1), lower(2)) {
        (b'\'', _, _) => Some((0, plain)),
        (b'"', _, _) => Some((0, Quoted::Ident)),
        (b'e' | b'E', Some(b'\''), _) => Some((1, Quoted::Escaped)),
        (b'n' | b'N', Some(b'\''), _) => Some((1, plain)),
        (b'b' | b'B' | b'x' | b'X', Some(b'\''), _) => Some((1, Quoted::Bits)),
        // The server refuses `U&'..'` without standard strings; reading it as standard
        // can only show more.
        (b'u' | b'U', Some(b'&'), Some(b'\'')) => Some((2, Quoted::Standard)),
        (b'u' | b'U', Some(b'&'), Some(b'"')) => Some((2, Quoted::Ident)),
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
    fn groups_are_skipped_to_their_closing_paren() {
        let t = tokens("f((a, ')'), b) c (");
        // `f`, `(`, `(`, `a`, `,`, `')'`, `)`, `,`, `b`, `)`, `c`, `(`
        assert_eq!(skip_parens(&t, 1), Some(10));
        assert_eq!(skip_parens(&t, 2), Some(7));
        assert_eq!(skip_parens(&t, 11), None);
        assert_eq!(skip_parens(&t, 99), None);
        // Starting at a closing paren is no group.
        assert_eq!(skip_parens(&t, 6), None);
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
