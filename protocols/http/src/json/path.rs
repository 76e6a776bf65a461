//! What a masking rule selects: a [`JsonPath`] names values by where they are, a
//! [`KeyGlob`] by the name of the key they sit under.
//!
//! A path is matched while the document streams past, as a small automaton: each
//! open level of the document keeps, per path, the set of steps matched so far (a
//! bit set, hence the cap of [`MAX_STEPS`] steps), and entering a member or element
//! computes the child's set from its parent's.

use std::fmt;

use thiserror::Error;

/// The most steps a path may have.
pub const MAX_STEPS: usize = 32;

/// The longest path or key pattern, in bytes.
pub const MAX_SELECTOR_LEN: usize = 1024;

/// A path or key pattern that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid JSON selector {text:?} at byte {at}: {what}")]
pub struct PathError {
    /// The selector as given.
    pub text: String,
    /// Where in it the problem is.
    pub at: usize,
    /// What the problem is.
    pub what: &'static str,
}

/// Where a value sits inside its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment<'k> {
    /// A member of an object, by its key (unescaped).
    Key(&'k str),
    /// An element of an array.
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    Index(usize),
    Any,
}

impl Selector {
    fn matches(&self, segment: Segment<'_>) -> bool {
        match (self, segment) {
            (Selector::Any, _) => true,
            (Selector::Name(name), Segment::Key(key)) => name == key,
            (Selector::Index(i), Segment::Index(j)) => *i == j,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// `..`: the selector may match any number of levels further down.
    descendant: bool,
    selector: Selector,
}

/// A path selecting values by position, in the common subset of JSONPath (RFC 9535):
///
/// | form | selects |
/// | --- | --- |
/// | `$` | the whole document |
/// | `$.a.b` | member `b` of member `a` of the root |
/// | `$['a b']`, `$["a"]` | a member by a quoted name (JSON escapes allowed) |
/// | `$.a[0]` | element 0 of the array `a` |
/// | `$.a[*]`, `$.a.*` | every element or member of `a` |
/// | `$..name` | member `name` at any depth (also `$..*`, `$..[0]`) |
///
/// Names compare with the document's keys after both are unescaped, so
/// `"pass\u0077ord"` is the key `password`. Negative indexes, slices and filters are
/// not supported and are errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Reads a path.
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        let err = |at: usize, what: &'static str| PathError { text: text.to_string(), at, what };
        if text.len() > MAX_SELECTOR_LEN {
            return Err(err(MAX_SELECTOR_LEN, "longer than the limit"));
        }
        let mut p = Cursor { text, pos: 0 };
        if !p.eat("$") {
            return Err(err(0, "a path starts with `$`"));
        }
        let mut steps = Vec::new();
        while p.pos < text.len() {
            let descendant = p.eat("..");
            let selector = if p.peek() == Some('[') {
                p.bracket().map_err(|(at, what)| err(at, what))?
            } else if descendant || p.eat(".") {
                if p.eat("*") {
                    Selector::Any
                } else {
                    Selector::Name(p.name().ok_or_else(|| err(p.pos, "expected a name, `*` or `[`"))?)
                }
            } else {
                return Err(err(p.pos, "expected `.`, `..` or `[`"));
            };
            steps.push(Step { descendant, selector });
            if steps.len() > MAX_STEPS {
                return Err(err(p.pos, "too many steps"));
            }
        }
        Ok(JsonPath { text: text.to_string(), steps })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The member names the path steps through, unescaped, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match &s.selector {
            Selector::Name(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The matcher state at the root: no step matched yet.
    pub(super) const START: u64 = 1;

    /// The state for a child at `segment` of a value in `state`. Bit `i` set means
    /// the first `i` steps are matched.
    pub(super) fn enter(&self, state: u64, segment: Segment<'_>) -> u64 {
        if state == 0 {
            return 0;
        }
        let mut next = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if state & (1 << i) == 0 {
                continue;
            }
            if step.descendant {
                next |= 1 << i;
            }
            if step.selector.matches(segment) {
                next |= 1 << (i + 1);
            }
        }
        next
    }

    /// Whether a value in `state` is selected: every step matched.
    pub(super) fn selects(&self, state: u64) -> bool {
        state & (1 << self.steps.len()) != 0
    }
}

impl std::str::FromStr for JsonPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<JsonPath, PathError> {
        JsonPath::parse(text)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads a path left to right.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, s: &str) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    /// A name in dot notation: a letter, `_` or non-ASCII character, then those or
    /// digits.
    fn name(&mut self) -> Option<String> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || !c.is_ascii() || (i > 0 && c.is_ascii_digit())))
            .map_or(rest.len(), |(i, _)| i);
        let name = rest.get(..len).filter(|n| !n.is_empty())?.to_string();
        self.pos += len;
        Some(name)
    }

    /// `[*]`, `[index]` or `['name']`, at the `[`.
    fn bracket(&mut self) -> Result<Selector, (usize, &'static str)> {
        self.pos += 1;
        let selector = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Selector::Any
            }
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                Selector::Name(self.quoted(q)?)
            }
            Some('0'..='9') => {
                let digits = self.rest().bytes().take_while(u8::is_ascii_digit).count();
                let at = self.pos;
                let index = self.rest().get(..digits).unwrap_or_default();
                if index.len() > 1 && index.starts_with('0') {
                    return Err((at, "an index has no leading zeros"));
                }
                let index = index.parse().map_err(|_| (at, "index too large"))?;
                self.pos += digits;
                Selector::Index(index)
            }
            Some('-') => return Err((self.pos, "negative indexes are not supported")),
            _ => return Err((self.pos, "expected `*`, an index or a quoted name")),
        };
        if !self.eat("]") {
            return Err((self.pos, "expected `]`"));
        }
        Ok(selector)
    }

    /// A quoted name after its opening quote `q`, up to and past the closing one.
    fn quoted(&mut self, q: char) -> Result<String, (usize, &'static str)> {
        let mut name = String::new();
        loop {
            let at = self.pos;
            let c = self.peek().ok_or((at, "unterminated quoted name"))?;
            self.pos += c.len_utf8();
            match c {
                _ if c == q => return Ok(name),
                '\\' => {
                    let e = self.peek().ok_or((at, "unterminated escape"))?;
                    self.pos += e.len_utf8();
                    match e {
                        '\\' | '/' | '\'' | '"' => name.push(e),
                        'b' => name.push('\u{8}'),
                        'f' => name.push('\u{c}'),
                        'n' => name.push('\n'),
                        'r' => name.push('\r'),
                        't' => name.push('\t'),
                        'u' => name.push(self.unicode().ok_or((at, "invalid `\\u` escape"))?),
                        _ => return Err((at, "invalid escape")),
                    }
                }
                '\0'..='\u{1f}' => return Err((at, "control characters in a name must be escaped")),
                _ => name.push(c),
            }
        }
    }

    /// The character of a `\uXXXX` escape (or surrogate pair), after the `u`.
    fn unicode(&mut self) -> Option<char> {
        let lead = self.hex4()?;
        if !(0xD800..=0xDBFF).contains(&lead) {
            return char::from_u32(lead);
        }
        if !self.eat("\\u") {
            return None;
        }
        let trail = self.hex4().filter(|t| (0xDC00..=0xDFFF).contains(t))?;
        char::from_u32(0x10000 + ((lead - 0xD800) << 10) + (trail - 0xDC00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.rest().get(..4)?;
        let value = u32::from_str_radix(digits, 16).ok().filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))?;
        self.pos += 4;
        Some(value)
    }
}

/// A key-name pattern: `*` matches any run of characters, everything else itself,
/// ignoring ASCII case (`*token*` matches `access_token` and `X-Token-Id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGlob {
    text: String,
    /// The literal pieces between the stars, lower-cased.
    pieces: Vec<String>,
}

impl KeyGlob {
    /// Reads a pattern: not empty, at most [`MAX_SELECTOR_LEN`] bytes.
    pub fn parse(text: &str) -> Result<KeyGlob, PathError> {
        let err = |at, what| PathError { text: text.to_string(), at, what };
        if text.is_empty() {
            return Err(err(0, "empty key pattern"));
        }
        if text.len() > MAX_SELECTOR_LEN {
            return Err(err(MAX_SELECTOR_LEN, "longer than the limit"));
        }
        Ok(KeyGlob {
            text: text.to_string(),
            pieces: text.to_ascii_lowercase().split('*').map(str::to_string).collect(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `key` (unescaped) matches.
    pub fn matches(&self, key: &str) -> bool {
        self.matches_lowercase(&key.to_ascii_lowercase())
    }

    /// Whether `key`, already ASCII-lower-cased, matches. Keys and pieces are short,
    /// so bytes are compared in a plain loop (no searcher to build, no `memcmp` call
    /// per position): this runs for every key of every masked JSON response.
    pub(super) fn matches_lowercase(&self, key: &str) -> bool {
        let key = key.as_bytes();
        let Some((first, rest)) = self.pieces.split_first() else { return key.is_empty() };
        let Some((last, middle)) = rest.split_last() else { return same(key, first.as_bytes()) };
        let (first, last) = (first.as_bytes(), last.as_bytes());
        if key.len() < first.len() + last.len()
            || !same(&key[..first.len()], first)
            || !same(&key[key.len() - last.len()..], last)
        {
            return false;
        }
        // Stars on both sides of each middle piece: the leftmost match of each leaves
        // the most room for the rest.
        let mut inner = &key[first.len()..key.len() - last.len()];
        for piece in middle {
            match find(inner, piece.as_bytes()) {
                Some(at) => inner = &inner[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Whether two byte strings are equal, compared in a loop.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Where `needle` first occurs in a short `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let last = hay.len().checked_sub(needle.len())?;
    (0..=last).find(|&i| same(&hay[i..i + needle.len()], needle))
}

impl std::str::FromStr for KeyGlob {
    type Err = PathError;

    fn from_str(text: &str) -> Result<KeyGlob, PathError> {
        KeyGlob::parse(text)
    }
}

impl fmt::Display for KeyGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(path: &str) -> Vec<Step> {
        JsonPath::parse(path).unwrap().steps
    }

    fn child(name: &str) -> Step {
        Step { descendant: false, selector: Selector::Name(name.into()) }
    }

    #[test]
    fn paths_read_every_supported_form() {
        assert_eq!(steps("$"), []);
        assert_eq!(steps("$.a.b_1"), [child("a"), child("b_1")]);
        assert_eq!(steps("$['a b'][\"c\\\"d\"]"), [child("a b"), child("c\"d")]);
        assert_eq!(steps("$['it\\'s\\u00e9\\ud83d\\ude00']"), [child("it'sé😀")]);
        assert_eq!(steps("$.é"), [child("é")]);
        assert_eq!(
            steps("$.a[0][*].*..b..*..[12]"),
            [
                child("a"),
                Step { descendant: false, selector: Selector::Index(0) },
                Step { descendant: false, selector: Selector::Any },
                Step { descendant: false, selector: Selector::Any },
                Step { descendant: true, selector: Selector::Name("b".into()) },
                Step { descendant: true, selector: Selector::Any },
                Step { descendant: true, selector: Selector::Index(12) },
            ]
        );
    }

    #[test]
    fn malformed_paths_are_errors() {
        for bad in [
            "",
            "a",
            ".a",
            "$.",
            "$..",
            "$a",
            "$.1a",
            "$.a.",
            "$[",
            "$[]",
            "$[-1]",
            "$[01]",
            "$[1",
            "$['a]",
            "$['a'",
            "$['\\x']",
            "$['\\ud800']",
            "$['\u{1}']",
            "$[ 0 ]",
            "$.a b",
            "$[99999999999999999999999]",
            "$...a",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("${}", ".a".repeat(MAX_STEPS + 1));
        assert_eq!(JsonPath::parse(&long).unwrap_err().what, "too many steps");
        assert!(JsonPath::parse(&format!("${}", ".a".repeat(MAX_STEPS))).is_ok());
    }

    #[test]
    fn a_descendant_step_matches_at_any_depth() {
        let p = JsonPath::parse("$..password").unwrap();
        let a = p.enter(JsonPath::START, Segment::Key("password"));
        assert!(p.selects(a));
        let deep = p.enter(p.enter(JsonPath::START, Segment::Key("x")), Segment::Index(3));
        assert!(!p.selects(deep));
        assert!(p.selects(p.enter(deep, Segment::Key("password"))));
        assert!(!p.selects(p.enter(deep, Segment::Key("Password"))));
    }

    #[test]
    fn globs_match_stars_and_ignore_ascii_case() {
        let cases = [
            ("*token*", "access_token", true),
            ("*token*", "X-TOKEN-ID", true),
            ("*token*", "toke", false),
            ("password", "PassWord", true),
            ("password", "passwords", false),
            ("*", "", true),
            ("a*b", "ab", true),
            ("a*b", "a", false),
            ("ab*ba", "aba", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("*é*", "CLÉ", false),
            ("*é*", "clé", true),
        ];
        for (glob, key, expected) in cases {
            assert_eq!(KeyGlob::parse(glob).unwrap().matches(key), expected, "{glob} {key}");
        }
        assert!(KeyGlob::parse("").is_err());
    }
}
