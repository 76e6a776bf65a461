//! How `airlock replay` shows a recorded SSH session: a terminal-log transcript, one
//! JSON object per event, or an asciicast v2 recording ([`asciicast`]) to play back.
//!
//! Every frame payload is one [`Event`]. The transcript keeps a little state per
//! channel: what kind of session it is (exec, shell, sftp) and the unfinished last
//! line of its output, so that output split across frames reads as whole lines.
//!
//! Text is written raw, escape sequences and all; the caller escapes control
//! characters for the reader's terminal.

mod asciicast;

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::record::{Event, Stream};

pub use asciicast::asciicast;

/// Output held back waiting for the end of its line, at most; past it the partial
/// line is shown as it is.
const MAX_PARTIAL: usize = 4096;

/// What the channel is for, as its requests said.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Session {
    #[default]
    Unknown,
    Exec,
    Shell,
    Sftp,
    Subsystem,
}

#[derive(Debug, Default)]
struct Channel {
    session: Session,
    /// `term`, `cols`, `rows` of its pseudo-terminal.
    pty: Option<(String, u32, u32)>,
    out: Vec<u8>,
    err: Vec<u8>,
    exited: bool,
}

/// One SSH session's transcript, fed its recorded events in order.
#[derive(Debug, Default)]
pub struct Transcript {
    channels: HashMap<u32, Channel>,
}

impl Transcript {
    /// A transcript at the start of a session.
    pub fn new() -> Transcript {
        Transcript::default()
    }

    /// Writes the text lines for one recorded event payload, sent by the agent or to
    /// it at `ts_us` (µs since the epoch); `at` is a time label like `[+1.234s]`.
    ///
    /// Commands read `$ uname -a`, typed lines `> ls -l`, standard output `| ...` and
    /// standard error `! ...` (indented under the time), then `exit 0`. Channels other
    /// than 0 are tagged `[ch N]`. Keystrokes in a shell are not shown, since the typed
    /// lines are; a command's standard input is summarized by size. SFTP operations
    /// read `sftp: write /tmp/f 5 bytes sha256 …`.
    pub fn text(
        &mut self,
        from_agent: bool,
        bytes: &[u8],
        _ts_us: u64,
        at: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let event = match Event::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                let way = if from_agent { "from the agent" } else { "to the agent" };
                return writeln!(out, "{at} damaged record ({e}): {} bytes {way}", bytes.len());
            }
        };
        let n = event.channel();
        let tag = if n > 0 { format!("[ch {n}] ") } else { String::new() };
        let indent = " ".repeat(at.len() + 1);
        let ch = self.channels.entry(n).or_default();
        match event {
            Event::Exec { command, .. } => {
                ch.session = Session::Exec;
                writeln!(out, "{at} {tag}$ {command}")
            }
            Event::Shell { .. } => {
                ch.session = Session::Shell;
                let pty = ch.pty.as_ref().map(|(t, c, r)| format!(" (pty {t} {c}x{r})")).unwrap_or_default();
                writeln!(out, "{at} {tag}shell{pty}")
            }
            Event::Subsystem { name, .. } => {
                ch.session = if name == "sftp" { Session::Sftp } else { Session::Subsystem };
                writeln!(out, "{at} {tag}subsystem {name}")
            }
            Event::Pty { cols, rows, term, .. } => {
                ch.pty = Some((term.to_string(), cols, rows));
                Ok(())
            }
            Event::Resize { cols, rows, .. } => writeln!(out, "{at} {tag}resized {cols}x{rows}"),
            Event::Line { line, .. } => writeln!(out, "{at} {tag}> {line}"),
            Event::Data { stream: Stream::In, bytes, .. } => {
                if ch.pty.is_some() || matches!(ch.session, Session::Shell | Session::Sftp) {
                    Ok(())
                } else {
                    writeln!(out, "{indent}{tag}({} bytes of input)", bytes.len())
                }
            }
            Event::Data { stream, bytes, .. } => {
                if ch.session == Session::Sftp {
                    return Ok(());
                }
                let strip = ch.pty.is_some();
                let (held, mark) = if stream == Stream::Err { (&mut ch.err, "!") } else { (&mut ch.out, "|") };
                held.extend_from_slice(bytes);
                let Some(last) = held.iter().rposition(|&b| b == b'\n') else {
                    if held.len() > MAX_PARTIAL {
                        show(out, &format!("{indent}{tag}{mark} "), held, strip)?;
                        held.clear();
                    }
                    return Ok(());
                };
                let rest = held.split_off(last + 1);
                let complete = held.strip_suffix(b"\n").unwrap_or(held);
                for line in complete.split(|&b| b == b'\n') {
                    show(out, &format!("{indent}{tag}{mark} "), line, strip)?;
                }
                *held = rest;
                Ok(())
            }
            Event::Exit { status, .. } => {
                ch.exited = true;
                flush(ch, out, &indent, &tag)?;
                writeln!(out, "{at} {tag}exit {status}")
            }
            Event::ExitSignal { signal, .. } => {
                ch.exited = true;
                flush(ch, out, &indent, &tag)?;
                writeln!(out, "{at} {tag}exit signal {signal}")
            }
            Event::Eof { .. } if !from_agent => flush(ch, out, &indent, &tag),
            Event::Eof { .. } => Ok(()),
            Event::Close { .. } => {
                flush(ch, out, &indent, &tag)?;
                let shown = ch.session != Session::Unknown && !ch.exited;
                self.channels.remove(&n);
                if shown { writeln!(out, "{at} {tag}closed") } else { Ok(()) }
            }
            Event::Sftp { json, .. } => writeln!(out, "{at} {tag}sftp: {}", describe_sftp(json)),
        }
    }

    /// One JSON object for one recorded event payload: `{"type": "exec", "channel": 0,
    /// "command": "ls"}`, `{"type": "stdout", "channel": 0, "text": "..."}` (with
    /// `"base64"` holding the exact bytes when they are not UTF-8), `{"type": "exit",
    /// "channel": 0, "status": 0}`, `{"type": "sftp", "channel": 1, "op": "write", ...}`.
    pub fn json(&mut self, from_agent: bool, bytes: &[u8]) -> Vec<Value> {
        let event = match Event::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                return vec![
                    json!({"type": "damaged", "error": e.to_string(), "bytes": bytes.len(), "from_agent": from_agent}),
                ];
            }
        };
        let channel = event.channel();
        let v = match event {
            Event::Exec { command, .. } => json!({"type": "exec", "command": command}),
            Event::Shell { .. } => json!({"type": "shell"}),
            Event::Subsystem { name, .. } => {
                if name == "sftp" {
                    self.channels.entry(channel).or_default().session = Session::Sftp;
                }
                json!({"type": "subsystem", "name": name})
            }
            Event::Pty { cols, rows, term, .. } => json!({"type": "pty", "term": term, "cols": cols, "rows": rows}),
            Event::Resize { cols, rows, .. } => json!({"type": "resize", "cols": cols, "rows": rows}),
            Event::Line { line, .. } => json!({"type": "line", "text": line}),
            Event::Data { stream, bytes, .. } => {
                let kind = match stream {
                    Stream::In => "stdin",
                    Stream::Out => "stdout",
                    Stream::Err => "stderr",
                };
                let sftp = self.channels.get(&channel).is_some_and(|c| c.session == Session::Sftp);
                if sftp {
                    json!({"type": "sftp-data", "stream": kind, "bytes": bytes.len()})
                } else {
                    match std::str::from_utf8(bytes) {
                        Ok(text) => json!({"type": kind, "text": text}),
                        Err(_) => {
                            json!({"type": kind, "text": String::from_utf8_lossy(bytes), "base64": base64(bytes)})
                        }
                    }
                }
            }
            Event::Exit { status, .. } => json!({"type": "exit", "status": status}),
            Event::ExitSignal { signal, .. } => json!({"type": "exit-signal", "signal": signal}),
            Event::Eof { .. } => json!({"type": "eof", "from_agent": from_agent}),
            Event::Close { .. } => {
                self.channels.remove(&channel);
                json!({"type": "close", "from_agent": from_agent})
            }
            Event::Sftp { json, .. } => match serde_json::from_str::<Value>(json) {
                Ok(Value::Object(op)) => {
                    let mut m = Map::new();
                    m.insert("type".into(), "sftp".into());
                    m.extend(op);
                    Value::Object(m)
                }
                _ => json!({"type": "sftp", "raw": json}),
            },
        };
        let mut v = v;
        if let Value::Object(m) = &mut v {
            m.insert("channel".into(), channel.into());
        }
        vec![v]
    }
}

/// Writes the partial lines a channel holds.
fn flush(ch: &mut Channel, out: &mut dyn Write, indent: &str, tag: &str) -> io::Result<()> {
    let strip = ch.pty.is_some();
    for (held, mark) in [(&mut ch.out, "|"), (&mut ch.err, "!")] {
        if !held.is_empty() {
            show(out, &format!("{indent}{tag}{mark} "), held, strip)?;
            held.clear();
        }
    }
    Ok(())
}

/// Writes one output line after `prefix`: lossy UTF-8, without its CR, and without
/// terminal escape sequences when it came from a pseudo-terminal (colours and cursor
/// moves read as noise in a log).
fn show(out: &mut dyn Write, prefix: &str, line: &[u8], strip: bool) -> io::Result<()> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let text = if strip { strip_escapes(&text) } else { text.into_owned() };
    writeln!(out, "{prefix}{text}")
}

/// `s` without CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or `ESC ] ... ESC \`) and
/// two-byte escape sequences.
fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// One SFTP op (as [`crate::sftp::Op::to_json`] wrote it) in words.
fn describe_sftp(json: &str) -> String {
    let Ok(Value::Object(op)) = serde_json::from_str::<Value>(json) else { return json.to_string() };
    let field = |k: &str| op.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let mut s = format!("{} {}", field("op").unwrap_or_default(), field("path").unwrap_or_default());
    if let Some(to) = field("to").or_else(|| field("target")) {
        s.push_str(&format!(" -> {to}"));
    }
    if let Some(bytes) = field("bytes") {
        s.push_str(&format!(" {bytes} bytes"));
    }
    if let Some(sha) = op.get("sha256").and_then(Value::as_str) {
        s.push_str(&format!(" sha256 {sha}"));
    }
    if let Some(entries) = field("entries") {
        s.push_str(&format!(" ({entries} entries)"));
    }
    match field("status") {
        Some(status) if status != "ok" => {
            s.push_str(&format!(" [{}", status.replace('_', " ")));
            if let Some(message) = field("message") {
                s.push_str(&format!(": {message}"));
            }
            s.push(']');
        }
        _ => {}
    }
    s
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                // Masked to six bits, so always inside the 64-entry alphabet.
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
