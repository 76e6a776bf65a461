//! The reader for the HTTP request corpora in `fixtures/http/` (`smuggling.txt`,
//! requests a gateway must refuse with 400 before forwarding; `benign.txt`, requests
//! it must pass), shared by this crate's tests and the gateway's.
//!
//! ```text
//! anything before the first case is a preamble, not read
//! ### name: what the case is
//! GET /api/echo HTTP/1.1\r\n
//! Host: upstream\r\n
//! \r\n
//! ```
//!
//! A case is its header line, `### ` then a name, `: ` and a description, and the
//! lines up to the next header. The file's line breaks only lay the bytes out: the
//! request is the case's lines joined without them, then unescaped: `\r`, `\n`, `\t`,
//! `\0`, `\\` and `\xHH` (two hex digits). Every other byte must be printable ASCII
//! written as itself, and no line may end in a space or tab (write `\x20`), so that
//! every byte of a request can be seen in the file. [`check_corpus`] enforces the
//! format; [`unescape_corpus`] reads it.

use std::collections::HashSet;

use thiserror::Error;

/// A corpus file that breaks the format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("corpus line {line}: {what}")]
pub struct CorpusError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong there.
    pub what: &'static str,
}

const HEADER: &str = "### ";

/// The cases of a corpus, `(name, request bytes)` in file order. A malformed escape
/// is kept as written (so a typo shows up as a stray backslash rather than
/// vanishing); [`check_corpus`] reports it.
pub fn unescape_corpus(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix(HEADER) {
            let name = header.split_once(':').map_or(header, |(name, _)| name).trim();
            cases.push((name.to_string(), Vec::new()));
        } else if let Some((_, bytes)) = cases.last_mut() {
            unescape_line(line, bytes);
        }
    }
    cases
}

/// Checks that `text` is a well-formed corpus: every header is `### name:
/// description` with a unique name of lower-case letters, digits and `-`; every
/// case has bytes; every escape is one of the six; every other byte is printable
/// ASCII; no line ends in white space.
pub fn check_corpus(text: &str) -> Result<(), CorpusError> {
    let mut names = HashSet::new();
    let mut open_case: Option<(usize, bool)> = None;
    let empty = |line| CorpusError { line, what: "case has no request bytes" };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |what| CorpusError { line: n, what };
        if let Some(header) = line.strip_prefix(HEADER) {
            if let Some((at, false)) = open_case {
                return Err(empty(at));
            }
            let (name, description) = header.split_once(": ").ok_or(err("a case header is `### name: description`"))?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(err("a case name is lower-case letters, digits and `-`"));
            }
            if description.trim().is_empty() {
                return Err(err("a case needs a description"));
            }
            if !names.insert(name) {
                return Err(err("two cases have this name"));
            }
            open_case = Some((n, false));
            continue;
        }
        let Some((_, has_bytes)) = open_case.as_mut() else { continue };
        if line.ends_with([' ', '\t']) {
            return Err(err("line ends in white space (write it as \\x20 or \\t)"));
        }
        if !line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(err("bytes other than printable ASCII must be escaped"));
        }
        let mut rest = line;
        while let Some(at) = rest.find('\\') {
            let escape = rest.get(at..).unwrap_or_default();
            let len = escape_len(escape).ok_or(err("unknown escape (use \\r \\n \\t \\0 \\\\ or \\xHH)"))?;
            rest = escape.get(len..).unwrap_or_default();
        }
        *has_bytes |= !line.is_empty();
    }
    match open_case {
        None => Err(CorpusError { line: 1, what: "no cases" }),
        Some((at, false)) => Err(empty(at)),
        Some(_) => Ok(()),
    }
}

/// The length of the escape `s` starts with, if it is one.
fn escape_len(s: &str) -> Option<usize> {
    match s.as_bytes() {
        [b'\\', b'r' | b'n' | b't' | b'0' | b'\\', ..] => Some(2),
        [b'\\', b'x', hi, lo, ..] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => Some(4),
        _ => None,
    }
}

/// Appends the bytes `line` stands for.
fn unescape_line(line: &str, out: &mut Vec<u8>) {
    let mut rest = line.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let (byte, len) = match (b, tail) {
            (b'\\', [b'r', ..]) => (b'\r', 2),
            (b'\\', [b'n', ..]) => (b'\n', 2),
            (b'\\', [b't', ..]) => (b'\t', 2),
            (b'\\', [b'0', ..]) => (0, 2),
            (b'\\', [b'\\', ..]) => (b'\\', 2),
            (b'\\', [b'x', hi, lo, ..]) => match (char::from(*hi).to_digit(16), char::from(*lo).to_digit(16)) {
                // Two hex digits make a value below 256.
                (Some(hi), Some(lo)) => ((hi * 16 + lo) as u8, 4),
                _ => (b, 1),
            },
            _ => (b, 1),
        };
        out.push(byte);
        rest = rest.get(len..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_their_lines_joined_and_unescaped() {
        let text = "preamble\n### a-1: first\nGET / HTTP/1.1\\r\\n\n\nX: \\x41\\0\\t\\\\\\r\\n\\r\\n\n### b: second\r\n\\xzz\\q\r\n";
        assert_eq!(
            unescape_corpus(text),
            [
                ("a-1".to_string(), b"GET / HTTP/1.1\r\nX: A\0\t\\\r\n\r\n".to_vec()),
                ("b".to_string(), b"\\xzz\\q".to_vec())
            ]
        );
    }

    #[test]
    fn the_format_is_checked() {
        assert_eq!(check_corpus("### a: x\nGET\\r\\n\n### b: y\n\\x00\n"), Ok(()));
        let bad = [
            ("", 1, "no cases"),
            ("### a: x\n", 1, "case has no request bytes"),
            ("### a: x\n\n### b: y\nz\n", 1, "case has no request bytes"),
            ("### a x\nGET\n", 1, "a case header is `### name: description`"),
            ("### A: x\nGET\n", 1, "a case name is lower-case letters, digits and `-`"),
            ("### a: \nGET\n", 1, "a case needs a description"),
            ("### a: x\nGET\n### a: y\nGET\n", 3, "two cases have this name"),
            ("### a: x\nGET \n", 2, "line ends in white space (write it as \\x20 or \\t)"),
            ("### a: x\nG\tET\n", 2, "bytes other than printable ASCII must be escaped"),
            ("### a: x\nGÉT\n", 2, "bytes other than printable ASCII must be escaped"),
            ("### a: x\nGET\\q\n", 2, "unknown escape (use \\r \\n \\t \\0 \\\\ or \\xHH)"),
            ("### a: x\nGET\\x4\n", 2, "unknown escape (use \\r \\n \\t \\0 \\\\ or \\xHH)"),
        ];
        for (text, line, what) in bad {
            assert_eq!(check_corpus(text), Err(CorpusError { line, what }), "{text:?}");
        }
    }
}
