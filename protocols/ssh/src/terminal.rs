//! The lines an agent types into an interactive shell, rebuilt from its keystrokes for
//! the record.
//!
//! [`LineEditor`] plays the part of a simple line discipline: printable text goes into
//! the line, backspace/DEL, Ctrl-U and Ctrl-W edit it, CR or LF (CRLF once) ends it.
//! What it cannot replay (arrow keys, history, Tab completion, readline commands such as
//! Ctrl-A or Ctrl-R) it skips, and the line comes back with [`Line::exact`] false: the
//! shell may have run something other than the text shown. The keystrokes themselves
//! are recorded too, so nothing is lost.

/// The longest line kept, in bytes; further characters are dropped and the line is
/// marked inexact.
pub const MAX_LINE: usize = 64 * 1024;

/// A CSI sequence longer than this is not a key; the editor stops skipping it.
const MAX_CSI: usize = 64;

/// A typed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text, without the line ending.
    pub text: String,
    /// False when keys the editor cannot replay were used on this line (arrows,
    /// history, Tab, Ctrl-A...), or it was cut at [`MAX_LINE`].
    pub exact: bool,
    /// Ended by Ctrl-C rather than Enter: the shell discards it and runs nothing.
    /// Ctrl-C on an empty line (interrupting a running command) is reported too.
    pub interrupted: bool,
}

impl Line {
    /// The line as a terminal shows it: the text, followed by `^C` when interrupted.
    pub fn for_record(&self) -> String {
        if self.interrupted { format!("{}^C", self.text) } else { self.text.clone() }
    }
}

/// Where the editor is in the key stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Text and control keys.
    Key,
    /// After ESC.
    Escape,
    /// Inside `ESC [`: parameter and intermediate bytes until a final byte. The first
    /// few parameter bytes are kept to spot the bracketed-paste markers.
    Csi { params: [u8; 4], len: usize },
    /// After `ESC O`: one more byte (keypad and function keys).
    Ss3,
    /// Between `ESC [200~` and `ESC [201~`; `matched` bytes of the end marker seen.
    Paste { matched: usize },
}

const PASTE_START: &[u8] = b"200";
const PASTE_END: &[u8] = b"\x1b[201~";

/// Rebuilds typed lines from the bytes an agent sends to a shell.
#[derive(Debug)]
pub struct LineEditor {
    line: String,
    exact: bool,
    expect: Expect,
    /// The last byte ended a line with CR, so an LF right after it is the same Enter.
    after_cr: bool,
    utf8: Utf8,
}

impl Default for LineEditor {
    fn default() -> Self {
        LineEditor::new()
    }
}

impl LineEditor {
    /// An editor with an empty line.
    pub fn new() -> LineEditor {
        LineEditor { line: String::new(), exact: true, expect: Expect::Key, after_cr: false, utf8: Utf8::default() }
    }

    /// Takes keystrokes, in any chunking, and returns the lines they complete. Empty
    /// lines (Enter alone) are returned too.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        for &b in bytes {
            self.byte(b, &mut lines);
        }
        lines
    }

    /// The line typed so far, not yet ended.
    pub fn pending(&self) -> &str {
        &self.line
    }

    fn byte(&mut self, b: u8, lines: &mut Vec<Line>) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        match self.expect {
            Expect::Key => self.key(b, after_cr, lines),
            Expect::Escape => match b {
                b'[' => self.expect = Expect::Csi { params: [0; 4], len: 0 },
                b'O' => self.expect = Expect::Ss3,
                // Alt with a non-ASCII key: skip the ESC, keep the character.
                0x80.. => {
                    self.exact = false;
                    self.expect = Expect::Key;
                    self.key(b, false, lines);
                }
                _ => {
                    // Alt-key or ESC-prefixed readline command (Alt-B, Alt-., ...).
                    self.exact = false;
                    self.expect = Expect::Key;
                }
            },
            Expect::Csi { mut params, len } => match b {
                0x40..=0x7e => {
                    let params = params.get(..len).unwrap_or_default();
                    self.expect = Expect::Key;
                    if b == b'~' && params == PASTE_START {
                        self.expect = Expect::Paste { matched: 0 };
                    } else if b == b'~' && params == &PASTE_END[2..5] {
                        // A stray paste end: nothing to undo.
                    } else {
                        self.exact = false;
                    }
                }
                0x20..=0x3f if len < MAX_CSI => {
                    if let Some(slot) = params.get_mut(len) {
                        *slot = b;
                    }
                    self.expect = Expect::Csi { params, len: len + 1 };
                }
                _ => {
                    // Not a well-formed key sequence: stop skipping and take the byte.
                    self.exact = false;
                    self.expect = Expect::Key;
                    self.key(b, after_cr, lines);
                }
            },
            Expect::Ss3 => {
                self.exact = false;
                self.expect = Expect::Key;
            }
            Expect::Paste { matched } => self.paste(b, matched),
        }
    }

    fn key(&mut self, b: u8, after_cr: bool, lines: &mut Vec<Line>) {
        if b >= 0x80 {
            let mut chars = Vec::new();
            self.utf8.byte(b, &mut |c| chars.push(c));
            chars.into_iter().for_each(|c| self.push(c));
            return;
        }
        if let Some(c) = self.utf8.flush() {
            self.push(c);
        }
        match b {
            b'\r' => {
                self.after_cr = true;
                lines.push(self.end(false));
            }
            b'\n' if after_cr => {}
            b'\n' => lines.push(self.end(false)),
            0x03 => lines.push(self.end(true)),
            0x08 | 0x7f => {
                self.line.pop();
            }
            0x15 => self.line.clear(),
            0x17 => {
                let word_end = self.line.trim_end_matches([' ', '\t']).len();
                let kept = self.line.get(..word_end).unwrap_or_default().trim_end_matches(|c| c != ' ' && c != '\t');
                self.line.truncate(kept.len());
            }
            b'\t' => {
                // Completion inserts text the keys do not show.
                self.exact = false;
                self.push('\t');
            }
            0x1b => self.expect = Expect::Escape,
            // Ctrl-L redraws; it changes nothing in the line.
            0x0c => {}
            // Ctrl-A, Ctrl-E, Ctrl-K, Ctrl-R, Ctrl-P, Ctrl-D... edit in ways not replayed.
            0x00..=0x1f => self.exact = false,
            _ => self.push(char::from(b)),
        }
    }

    fn paste(&mut self, b: u8, matched: usize) {
        if PASTE_END.get(matched) == Some(&b) {
            self.expect =
                if matched + 1 == PASTE_END.len() { Expect::Key } else { Expect::Paste { matched: matched + 1 } };
            return;
        }
        // What looked like the end marker was pasted text.
        for &m in PASTE_END.get(..matched).unwrap_or_default() {
            self.paste_byte(m);
        }
        if b == 0x1b {
            self.expect = Expect::Paste { matched: 1 };
        } else {
            self.expect = Expect::Paste { matched: 0 };
            self.paste_byte(b);
        }
    }

    /// Pasted bytes are text, control characters and line breaks included.
    fn paste_byte(&mut self, b: u8) {
        if b >= 0x80 {
            let mut chars = Vec::new();
            self.utf8.byte(b, &mut |c| chars.push(c));
            chars.into_iter().for_each(|c| self.push(c));
        } else {
            if let Some(c) = self.utf8.flush() {
                self.push(c);
            }
            self.push(char::from(b));
        }
    }

    fn push(&mut self, c: char) {
        if self.line.len() + c.len_utf8() > MAX_LINE {
            self.exact = false;
        } else {
            self.line.push(c);
        }
    }

    fn end(&mut self, interrupted: bool) -> Line {
        if let Some(c) = self.utf8.flush() {
            self.push(c);
        }
        let exact = std::mem::replace(&mut self.exact, true);
        Line { text: std::mem::take(&mut self.line), exact, interrupted }
    }
}

/// Decodes UTF-8 a byte at a time, carrying an incomplete character between calls.
/// Invalid bytes become U+FFFD.
#[derive(Debug, Default)]
struct Utf8 {
    buf: [u8; 4],
    len: usize,
}

impl Utf8 {
    /// How long a sequence `lead` starts (0: not a lead byte).
    fn width(lead: u8) -> usize {
        match lead {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        }
    }

    /// Takes a byte of 0x80 or more and emits the characters it completes.
    fn byte(&mut self, b: u8, emit: &mut dyn FnMut(char)) {
        if self.len > 0 {
            if (0x80..=0xbf).contains(&b) {
                if let Some(slot) = self.buf.get_mut(self.len) {
                    *slot = b;
                }
                self.len += 1;
                let want = self.buf.first().copied().map_or(0, Utf8::width);
                if self.len >= want {
                    let bytes = self.buf.get(..self.len).unwrap_or_default();
                    emit(std::str::from_utf8(bytes).ok().and_then(|s| s.chars().next()).unwrap_or('\u{fffd}'));
                    self.len = 0;
                }
                return;
            }
            // The character broke off; `b` starts afresh.
            self.len = 0;
            emit('\u{fffd}');
        }
        if Utf8::width(b) == 0 {
            emit('\u{fffd}');
        } else {
            self.buf = [b, 0, 0, 0];
            self.len = 1;
        }
    }

    /// A replacement for an incomplete character, which the next byte cut off.
    fn flush(&mut self) -> Option<char> {
        (std::mem::take(&mut self.len) > 0).then_some('\u{fffd}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(keys: &[u8]) -> Vec<(String, bool)> {
        LineEditor::new().feed(keys).into_iter().map(|l| (l.text, l.exact)).collect()
    }

    fn one(keys: &[u8]) -> (String, bool) {
        let mut lines = texts(keys);
        assert_eq!(lines.len(), 1, "{keys:?}");
        lines.remove(0)
    }

    #[test]
    fn plain_lines_and_line_endings() {
        assert_eq!(
            texts(b"ls -l\rpwd\nwho\r\nid\n\n"),
            [
                ("ls -l".to_string(), true),
                ("pwd".to_string(), true),
                ("who".to_string(), true),
                ("id".to_string(), true),
                (String::new(), true),
            ]
        );
        let mut e = LineEditor::new();
        assert_eq!(e.feed(b"echo hi\r").len(), 1);
        // The LF of a CRLF split across feeds is the same Enter.
        assert_eq!(e.feed(b"\n"), []);
        assert_eq!(e.feed(b"\r\r").len(), 2);
        assert_eq!(e.feed(b"ab"), []);
        assert_eq!(e.pending(), "ab");
    }

    #[test]
    fn editing_keys() {
        assert_eq!(one(b"lss\x7f -l\r"), ("ls -l".into(), true));
        assert_eq!(one(b"caf\xc3\xa9\x08e\r"), ("cafe".into(), true));
        assert_eq!(one(b"\x7f\x7fx\r"), ("x".into(), true));
        assert_eq!(one(b"rm -rf /\x15echo ok\r"), ("echo ok".into(), true));
        assert_eq!(one(b"git commit  \x17push\r"), ("git push".into(), true));
        assert_eq!(one(b"one\x17\x17two\r"), ("two".into(), true));
        assert_eq!(one(b"clear\x0c\r"), ("clear".into(), true));
    }

    #[test]
    fn ctrl_c_abandons_the_line() {
        let lines = LineEditor::new().feed(b"rm -rf /\x03\x03ls\r");
        assert_eq!(
            lines,
            [
                Line { text: "rm -rf /".into(), exact: true, interrupted: true },
                Line { text: String::new(), exact: true, interrupted: true },
                Line { text: "ls".into(), exact: true, interrupted: false },
            ]
        );
        assert_eq!(lines[0].for_record(), "rm -rf /^C");
        assert_eq!(lines[2].for_record(), "ls");
    }

    #[test]
    fn keys_that_cannot_be_replayed_make_the_line_inexact() {
        assert_eq!(one(b"\x1b[A\r"), (String::new(), false));
        assert_eq!(one(b"ls\x1b[D\x1b[Dx\r"), ("lsx".into(), false));
        assert_eq!(one(b"\x1bOAls\r"), ("ls".into(), false));
        assert_eq!(one(b"cd /us\t\r"), ("cd /us\t".into(), false));
        assert_eq!(one(b"\x12ssh\r"), ("ssh".into(), false));
        assert_eq!(one(b"ls\x1bb\r"), ("ls".into(), false));
        assert_eq!(one(b"x\x1b[1;5C\r"), ("x".into(), false));
        // The next line starts exact again.
        assert_eq!(texts(b"\x1b[A\rls\r"), [(String::new(), false), ("ls".into(), true)]);
    }

    #[test]
    fn bracketed_paste_is_literal() {
        assert_eq!(one(b"echo \x1b[200~a\x7fb\x03\tc\x1b[A\x1b[201~\r"), ("echo a\x7fb\x03\tc\x1b[A".into(), true));
        // Multi-line paste: the line ends at the Enter after the paste.
        assert_eq!(one(b"\x1b[200~one\rtwo\x1b[201~\r"), ("one\rtwo".into(), true));
        // A near-miss of the end marker is text; the marker split across feeds still ends it.
        let mut e = LineEditor::new();
        assert_eq!(e.feed(b"\x1b[200~a\x1b[20x\x1b\x1b[2"), []);
        assert_eq!(e.feed(b"01~b\r"), [Line { text: "a\x1b[20x\x1bb".into(), exact: true, interrupted: false }]);
    }

    #[test]
    fn utf8_and_invalid_bytes() {
        assert_eq!(one("grep «é» 日本 🦀\r".as_bytes()), ("grep «é» 日本 🦀".into(), true));
        assert_eq!(one(b"a\xffb\xc3\r"), ("a\u{fffd}b\u{fffd}".into(), true));
        assert_eq!(one(b"\xe6\x97x\r"), ("\u{fffd}x".into(), true));
        assert_eq!(one(b"\xc3\xc3\xa9\r"), ("\u{fffd}é".into(), true));
        let mut e = LineEditor::new();
        e.feed(b"\xe6");
        e.feed(b"\x97");
        assert_eq!(e.feed(b"\xa5\r")[0].text, "日");
    }

    #[test]
    fn long_lines_are_capped() {
        let mut keys = vec![b'x'; MAX_LINE + 10];
        keys.push(b'\r');
        let lines = LineEditor::new().feed(&keys);
        assert_eq!((lines[0].text.len(), lines[0].exact), (MAX_LINE, false));
        let mut keys = "é".repeat(MAX_LINE / 2 + 1).into_bytes();
        keys.push(b'\r');
        assert_eq!(LineEditor::new().feed(&keys)[0].text.len(), MAX_LINE);
    }

    #[test]
    fn overlong_csi_is_not_skipped_forever() {
        let mut keys = b"\x1b[".to_vec();
        keys.extend(std::iter::repeat_n(b'1', MAX_CSI + 5));
        keys.extend(b"\r");
        let (text, exact) = one(&keys);
        assert_eq!((text.as_str(), exact), ("11111", false));
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_lines(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let whole = LineEditor::new().feed(&bytes);
            let mut e = LineEditor::new();
            let (a, b) = bytes.split_at(cut.index(bytes.len() + 1));
            let mut split = e.feed(a);
            split.extend(e.feed(b));
            prop_assert_eq!(&whole, &split);
            let mut e = LineEditor::new();
            let bytewise: Vec<Line> = bytes.iter().flat_map(|b| e.feed(std::slice::from_ref(b))).collect();
            prop_assert_eq!(whole, bytewise);
        }

        #[test]
        fn printable_text_comes_back_exactly(text in "[ -~\u{a0}-\u{10ffff}]{0,100}") {
            let mut keys = text.clone().into_bytes();
            keys.push(b'\r');
            prop_assert_eq!(LineEditor::new().feed(&keys), vec![Line { text, exact: true, interrupted: false }]);
        }
    }
}
