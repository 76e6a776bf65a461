//! Byte-preserving masking of JSON documents, for API responses before an agent sees
//! them.
//!
//! Airlock must change nothing but what it masks, so the document is never parsed
//! into a tree and printed again (which would reorder keys, merge duplicates, respell
//! numbers). A strict RFC 8259 scanner (`scan.rs`) walks the bytes once and copies
//! them to the output, replacing only the values a rule selects ([`JsonRules`]:
//! [`JsonPath`]s and [`KeyGlob`]s, matched as the document streams past, in
//! `path.rs`) and the strings the masker's detectors want hidden. With nothing
//! masked the output is the input, byte for byte.
//!
//! Anything that is not exactly JSON is an error, never a guess: trailing commas,
//! single quotes, `NaN`, leading zeros, raw control characters in strings, lone
//! surrogates in `\u` escapes, bytes that are not UTF-8, a byte order mark, and
//! anything after the value but white space. Nesting is capped at [`MAX_DEPTH`];
//! the input's length is the caller's to cap.

mod path;
mod scan;

use thiserror::Error;

pub use path::{JsonPath, KeyGlob, MAX_SELECTOR_LEN, MAX_STEPS, PathError};

use path::Segment;
use scan::Scanner;

/// The deepest nesting of arrays and objects read.
pub const MAX_DEPTH: usize = 256;

/// What to mask by position: values a path selects, and values under a key a
/// pattern matches (at any depth).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonRules {
    /// Paths whose values are masked whole.
    pub paths: Vec<JsonPath>,
    /// Key patterns whose members' values are masked whole.
    pub keys: Vec<KeyGlob>,
}

/// Why a value is masked whole: the rule that selected it, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why<'a> {
    /// A [`JsonPath`].
    Path(&'a str),
    /// A [`KeyGlob`].
    Key(&'a str),
}

/// What replaces masked values.
pub trait JsonMasker {
    /// A value selected by a path or a key rule: its raw JSON bytes in; valid JSON
    /// out (e.g. `"[MASKED]"`).
    fn whole(&mut self, raw: &[u8], why: Why<'_>) -> Vec<u8>;

    /// Any other string (object keys included), JSON-unescaped: `Some(replacement
    /// text)` to mask it. Numbers that no rule selects come here too, as written
    /// (a card number can be a JSON number); a masked number becomes a string.
    fn text(&mut self, text: &str) -> Option<String>;
}

/// A masker that changes nothing: [`mask`] with it and no rules reads a document
/// and hands its bytes back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unchanged;

impl JsonMasker for Unchanged {
    fn whole(&mut self, raw: &[u8], _why: Why<'_>) -> Vec<u8> {
        raw.to_vec()
    }

    fn text(&mut self, _text: &str) -> Option<String> {
        None
    }
}

/// Whether `input` is exactly one JSON document, as [`mask`] reads it.
pub fn check(input: &[u8]) -> std::result::Result<(), JsonError> {
    mask(input, &JsonRules::default(), &mut Unchanged).map(|_| ())
}

/// A masked document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The document with masked values replaced.
    pub bytes: Vec<u8>,
    /// How many values and keys were replaced.
    pub masked: usize,
}

/// A document that cannot be masked, so must not be passed on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonError {
    /// The bytes are not JSON (the upstream's fault).
    #[error("not valid JSON at byte {at}: {what}")]
    Syntax {
        /// Byte offset of the problem.
        at: usize,
        /// What the problem is.
        what: &'static str,
    },
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("JSON nests deeper than {MAX_DEPTH} levels at byte {0}")]
    TooDeep(usize),
    /// [`JsonMasker::whole`] returned bytes that are not JSON (our own bug).
    #[error("the replacement for the value at byte {0} is not JSON")]
    BadReplacement(usize),
}

/// `input` with the values `rules` select replaced by [`JsonMasker::whole`], and
/// other strings, keys and numbers replaced where [`JsonMasker::text`] says so.
/// A path rule wins over a key rule when both select a value; nothing inside a value
/// masked whole is looked at.
pub fn mask(input: &[u8], rules: &JsonRules, masker: &mut dyn JsonMasker) -> std::result::Result<Masked, JsonError> {
    let mut walk = Walk {
        s: Scanner::new(input),
        rules,
        masker,
        out: Vec::new(),
        copied: 0,
        masked: 0,
        states: vec![JsonPath::START; rules.paths.len()],
    };
    walk.value(0, 0, None)?;
    if !walk.s.at_end() {
        return Err(walk.s.error("unexpected bytes after the value"));
    }
    if walk.masked == 0 {
        return Ok(Masked { bytes: input.to_vec(), masked: 0 });
    }
    walk.out.extend_from_slice(input.get(walk.copied..).unwrap_or_default());
    Ok(Masked { bytes: walk.out, masked: walk.masked })
}

/// One pass over a document.
struct Walk<'a, 'r> {
    s: Scanner<'a>,
    rules: &'r JsonRules,
    masker: &'r mut dyn JsonMasker,
    /// The output so far: `input[..copied]` with replacements.
    out: Vec<u8>,
    copied: usize,
    masked: usize,
    /// The path matchers' states: a row of one word per path for each open level,
    /// the current value's row last.
    states: Vec<u64>,
}

type Result<T> = std::result::Result<T, JsonError>;

impl<'a, 'r> Walk<'a, 'r> {
    /// Puts `with` in the output in place of `input[start..end]`.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        self.out.extend_from_slice(self.s.input.get(self.copied..start).unwrap_or_default());
        self.out.extend_from_slice(with);
        self.copied = end;
        self.masked += 1;
    }

    /// Puts `text` as a JSON string in place of `input[start..end]`.
    fn replace_with_string(&mut self, start: usize, end: usize, text: &str) {
        let mut quoted = Vec::with_capacity(text.len() + 2);
        scan::write_string(&mut quoted, text);
        self.replace(start, end, &quoted);
    }

    /// Adds the row of states for a child at `segment` of the value whose row starts
    /// at `parent`, and returns where it starts.
    fn enter(&mut self, parent: usize, segment: Segment<'_>) -> usize {
        let row = self.states.len();
        for (i, path) in self.rules.paths.iter().enumerate() {
            let state = self.states.get(parent + i).copied().unwrap_or(0);
            self.states.push(path.enter(state, segment));
        }
        row
    }

    /// The first path that selects the value whose row starts at `row`.
    fn selected_by_path(&self, row: usize) -> Option<Why<'r>> {
        let rules: &'r JsonRules = self.rules;
        rules
            .paths
            .iter()
            .enumerate()
            .find(|(i, path)| path.selects(self.states.get(row + i).copied().unwrap_or(0)))
            .map(|(_, path)| Why::Path(path.as_str()))
    }

    /// One value; `depth` counts the containers it is in, `row` is its path states,
    /// `by_key` the key rule that selects it, if any.
    fn value(&mut self, depth: usize, row: usize, by_key: Option<Why<'r>>) -> Result<()> {
        self.s.ws();
        let start = self.s.pos;
        if let Some(why) = self.selected_by_path(row).or(by_key) {
            self.s.skip_value(depth)?;
            let replacement = self.masker.whole(self.s.since(start), why);
            if !scan::is_json(&replacement) {
                return Err(JsonError::BadReplacement(start));
            }
            self.replace(start, self.s.pos, &replacement);
            return Ok(());
        }
        match self.s.peek() {
            Some(b'{') => self.object(depth, row),
            Some(b'[') => self.array(depth, row),
            Some(b'"') => {
                let text = self.s.string()?;
                if let Some(replacement) = self.masker.text(&text) {
                    self.replace_with_string(start, self.s.pos, &replacement);
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let number = self.s.number()?;
                if let Some(replacement) = self.masker.text(number) {
                    self.replace_with_string(start, self.s.pos, &replacement);
                }
                Ok(())
            }
            _ => self.s.literal(),
        }
    }

    /// An object, at its `{`.
    fn object(&mut self, depth: usize, row: usize) -> Result<()> {
        let depth = self.s.deeper(depth)?;
        self.s.pos += 1;
        self.s.ws();
        if self.s.peek() == Some(b'}') {
            self.s.pos += 1;
            return Ok(());
        }
        loop {
            self.s.ws();
            if self.s.peek() != Some(b'"') {
                return Err(self.s.error("expected a key"));
            }
            let key_start = self.s.pos;
            let key = self.s.string()?;
            let key_end = self.s.pos;
            // Rules judge the key as the document spells it, before any masking.
            let child = self.enter(row, Segment::Key(&key));
            let by_key = self.key_rule(&key);
            if let Some(replacement) = self.masker.text(&key) {
                self.replace_with_string(key_start, key_end, &replacement);
            }
            self.s.ws();
            self.s.expect(b':', "expected `:` after the key")?;
            self.value(depth, child, by_key)?;
            self.states.truncate(child);
            self.s.ws();
            match self.s.peek() {
                Some(b',') => self.s.pos += 1,
                Some(b'}') => {
                    self.s.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.s.error("expected `,` or `}`")),
            }
        }
    }

    /// The first key rule matching `key`.
    fn key_rule(&self, key: &str) -> Option<Why<'r>> {
        let rules: &'r JsonRules = self.rules;
        if rules.keys.is_empty() {
            return None;
        }
        let key = key.to_ascii_lowercase();
        rules.keys.iter().find(|glob| glob.matches_lowercase(&key)).map(|glob| Why::Key(glob.as_str()))
    }

    /// An array, at its `[`.
    fn array(&mut self, depth: usize, row: usize) -> Result<()> {
        let depth = self.s.deeper(depth)?;
        self.s.pos += 1;
        self.s.ws();
        if self.s.peek() == Some(b']') {
            self.s.pos += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            let child = self.enter(row, Segment::Index(index));
            self.value(depth, child, None)?;
            self.states.truncate(child);
            self.s.ws();
            match self.s.peek() {
                Some(b',') => self.s.pos += 1,
                Some(b']') => {
                    self.s.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.s.error("expected `,` or `]`")),
            }
            // Each element takes at least one byte, so this stays below the input length.
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests;
