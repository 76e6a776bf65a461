//! How `airlock replay` shows a recorded HTTP session: a text transcript, one JSON
//! object per event, or a HAR 1.2 document ([`har`]) for browsers' developer tools.
//!
//! Every frame payload is one [`Event`]. The text transcript holds each body back
//! until its end event, so that it is shown as one block: as text when it is UTF-8
//! (at most [`MAX_SHOWN`] bytes of it), else as its size. [`Transcript::finish`]
//! shows bodies whose end never came.
//!
//! Text is written raw, escape sequences and all; the caller escapes control
//! characters for the reader's terminal.

mod har;

use std::collections::BTreeMap;
use std::io::{self, Write};

use base64::Engine;
use serde_json::{Value, json};

use crate::record::{self, BodyEnd, Event};
use crate::status;

pub use har::har;

/// The most bytes of one body the text transcript shows.
pub const MAX_SHOWN: usize = 4096;

/// Bodies held back at most; past it the oldest is shown without waiting for its
/// end, so that a damaged record cannot grow the transcript's memory.
const MAX_PENDING: usize = 64;

/// A body seen so far.
#[derive(Debug, Default)]
struct Body {
    /// Its first bytes: [`MAX_SHOWN`], and up to 3 more to finish a character cut
    /// at the limit.
    head: Vec<u8>,
    /// Every byte recorded.
    len: u64,
}

/// One HTTP session's transcript, fed its recorded events in order.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Bodies not yet shown, by exchange and direction (`true`: from the agent).
    pending: BTreeMap<(u64, bool), Body>,
}

impl Transcript {
    /// A transcript at the start of a session.
    pub fn new() -> Transcript {
        Transcript::default()
    }

    /// Writes the text lines for one recorded event payload, sent by the agent or to
    /// it at `ts_us` (µs since the epoch); `at` is a time label like `[+1.234s]`.
    ///
    /// A request reads `> GET https://x/y HTTP/1.1` and a response `< 200 OK`, each
    /// with its header fields indented below. A body follows at its end as `| `
    /// lines of text, or `[N bytes binary]`, with a note when it was cut here or
    /// truncated in the record. A WebSocket message reads `~ text from the agent`
    /// (or `to the agent`, `binary`, `close`), its data below it like a body's.
    /// Bytes of an upgraded connection recorded raw are summarized by size.
    pub fn text(
        &mut self,
        from_agent: bool,
        bytes: &[u8],
        _ts_us: u64,
        at: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let event = match record::decode(from_agent, bytes) {
            Ok(e) => e,
            Err(e) => {
                return writeln!(out, "{at} damaged record ({e}): {} bytes {}", bytes.len(), way(from_agent));
            }
        };
        let indent = " ".repeat(at.len() + 1);
        match event {
            Event::Request(_, head) => {
                writeln!(out, "{at} > {} {} {}", head.method, head.url, head.version)?;
                headers(out, &indent, &head.headers)
            }
            Event::Response(_, head) => {
                let reason = status::reason(head.status).map(|r| format!(" {r}")).unwrap_or_default();
                writeln!(out, "{at} < {}{reason}", head.status)?;
                headers(out, &indent, &head.headers)
            }
            Event::Body(id, chunk) => {
                if !self.pending.contains_key(&(id, from_agent))
                    && self.pending.len() >= MAX_PENDING
                    && let Some((_, oldest)) = self.pending.pop_first()
                {
                    show_body(out, &indent, &oldest)?;
                }
                let body = self.pending.entry((id, from_agent)).or_default();
                let room = (MAX_SHOWN + 3).saturating_sub(body.head.len());
                body.head.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                body.len += chunk.len() as u64;
                Ok(())
            }
            Event::End(id, end) => {
                if let Some(body) = self.pending.remove(&(id, from_agent)) {
                    show_body(out, &indent, &body)?;
                }
                end_notes(out, &indent, &end)
            }
            Event::Message(_, m) => {
                if let Some((code, reason)) = m.close() {
                    return writeln!(out, "{indent}~ close {} ({code} {reason})", way(from_agent));
                }
                writeln!(out, "{indent}~ {} {}", m.kind.name(), way(from_agent))?;
                let shown = m.data.get(..MAX_SHOWN + 3).unwrap_or(m.data);
                show_body(out, &indent, &Body { head: shown.to_vec(), len: m.data.len() as u64 })?;
                if m.truncated() {
                    writeln!(out, "{indent}(recorded {} of {} bytes)", m.data.len(), m.len)?;
                }
                Ok(())
            }
            Event::Upgraded(_, data) => {
                writeln!(out, "{indent}~ {} bytes {} (upgraded connection)", data.len(), way(from_agent))
            }
        }
    }

    /// Shows the bodies whose end was never recorded (the session stopped mid-body),
    /// indented under a time label as long as `at`.
    pub fn finish(&mut self, at: &str, out: &mut dyn Write) -> io::Result<()> {
        let indent = " ".repeat(at.len() + 1);
        while let Some((_, body)) = self.pending.pop_first() {
            show_body(out, &indent, &body)?;
            writeln!(out, "{indent}(the body's end was not recorded)")?;
        }
        Ok(())
    }

    /// One JSON object for one recorded event payload: `{"type": "request",
    /// "exchange": 1, "method": ..., "url": ..., "version": ..., "headers": [[n, v]]}`,
    /// `{"type": "response", "exchange": 1, "status": 200, "reason": "OK", ...}`,
    /// `{"type": "body", "exchange": 1, "from_agent": true, "bytes": 5, "text": ...}`
    /// (with `"base64"` holding the exact bytes when they are not UTF-8), `{"type":
    /// "end", ...}` with the [`BodyEnd`] fields, `{"type": "message", "kind":
    /// "text", "len": 5, ...}` like a body (a close with its `code` and `reason`),
    /// `{"type": "upgraded", ...}` like a body, or `{"type": "damaged", ...}`.
    pub fn json(&mut self, from_agent: bool, bytes: &[u8]) -> Vec<Value> {
        let event = match record::decode(from_agent, bytes) {
            Ok(e) => e,
            Err(e) => {
                return vec![
                    json!({"type": "damaged", "error": e.to_string(), "bytes": bytes.len(), "from_agent": from_agent}),
                ];
            }
        };
        let exchange = event.exchange();
        let v = match event {
            Event::Request(_, head) => json!({
                "type": "request",
                "exchange": exchange,
                "method": head.method,
                "url": head.url,
                "version": head.version,
                "headers": head.headers,
            }),
            Event::Response(_, head) => json!({
                "type": "response",
                "exchange": exchange,
                "status": head.status,
                "reason": status::reason(head.status),
                "version": head.version,
                "headers": head.headers,
            }),
            Event::Body(_, data) => data_json("body", exchange, from_agent, data),
            Event::Message(_, m) => {
                let mut v = data_json("message", exchange, from_agent, m.data);
                v["kind"] = m.kind.name().into();
                v["len"] = m.len.into();
                if let Some((code, reason)) = m.close() {
                    v["code"] = code.into();
                    v["reason"] = reason.into();
                }
                v
            }
            Event::Upgraded(_, data) => data_json("upgraded", exchange, from_agent, data),
            Event::End(_, end) => json!({
                "type": "end",
                "exchange": exchange,
                "from_agent": from_agent,
                "bytes": end.bytes,
                "recorded": end.recorded,
                "truncated": end.truncated,
                "note": end.note,
            }),
        };
        vec![v]
    }
}

fn way(from_agent: bool) -> &'static str {
    if from_agent { "from the agent" } else { "to the agent" }
}

fn headers(out: &mut dyn Write, indent: &str, headers: &[(String, String)]) -> io::Result<()> {
    for (name, value) in headers {
        writeln!(out, "{indent}{name}: {value}")?;
    }
    Ok(())
}

/// A body's first bytes as text, or its size when they are not UTF-8.
fn show_body(out: &mut dyn Write, indent: &str, body: &Body) -> io::Result<()> {
    if body.len == 0 {
        return Ok(());
    }
    let cut = body.len > MAX_SHOWN as u64;
    let shown = body.head.get(..MAX_SHOWN).unwrap_or(&body.head);
    let text = match std::str::from_utf8(shown) {
        Ok(text) => Some(text),
        // Cut inside a character at the limit: the text before it is still text.
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(shown.get(..e.valid_up_to()).unwrap_or_default()).ok()
        }
        Err(_) => None,
    };
    let Some(text) = text else {
        return writeln!(out, "{indent}[{} bytes binary]", body.len);
    };
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        writeln!(out, "{indent}| {}", line.strip_suffix('\r').unwrap_or(line))?;
    }
    if cut {
        writeln!(out, "{indent}(body cut at {} of {} bytes)", text.len(), body.len)?;
    }
    Ok(())
}

/// What an end event adds: how much of the body the record lacks, and its note.
fn end_notes(out: &mut dyn Write, indent: &str, end: &BodyEnd) -> io::Result<()> {
    if end.truncated {
        writeln!(out, "{indent}(recorded {} of {} bytes)", end.recorded, end.bytes)?;
    }
    if let Some(note) = &end.note {
        writeln!(out, "{indent}({note})")?;
    }
    Ok(())
}

/// A body chunk or upgraded bytes as JSON: text when UTF-8, else lossy text and the
/// exact bytes in base64.
fn data_json(kind: &str, exchange: u64, from_agent: bool, data: &[u8]) -> Value {
    let mut v = json!({"type": kind, "exchange": exchange, "from_agent": from_agent, "bytes": data.len()});
    if let Value::Object(m) = &mut v {
        match std::str::from_utf8(data) {
            Ok(text) => {
                m.insert("text".into(), text.into());
            }
            Err(_) => {
                m.insert("text".into(), String::from_utf8_lossy(data).into());
                m.insert("base64".into(), base64::engine::general_purpose::STANDARD.encode(data).into());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests;
