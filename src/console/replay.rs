//! A recorded session as the console shows it: a Postgres session as statements with
//! their results, an SSH session as a terminal cast to play, an HTTP session as
//! exchanges; every protocol with its policy events inline and the plain transcript.

use std::path::Path;

use serde_json::Value;

use crate::recording::format::{Direction, Frame, Kind, SessionEnd, VerdictEvent};
use crate::recording::index::SessionSummary;

/// Rows kept per result; the rest are counted.
const MAX_ROWS: usize = 200;
/// Statements (or exchanges) kept; the rest are counted.
const MAX_ITEMS: usize = 2_000;
/// Bytes of one body or statement shown.
const MAX_TEXT: usize = 64 * 1024;
/// WebSocket messages shown per exchange.
const MAX_MESSAGES: usize = 500;
/// Bytes of the plain transcript shown.
const MAX_PLAIN: usize = 2 << 20;
/// Bytes of terminal output the player gets; `airlock replay` has the rest.
const MAX_CAST: usize = 8 << 20;

/// A loaded session.
pub struct Replay {
    /// What the index says of it.
    pub summary: SessionSummary,
    /// The segments holding it.
    pub segments: (u64, u64),
    /// Its items in order.
    pub items: Vec<Item>,
    /// Items left out past [`MAX_ITEMS`].
    pub more: usize,
    /// The text transcript (`airlock replay`).
    pub text: String,
    /// For SSH: the terminal cast (asciicast v2 as one JSON object).
    pub cast: Option<Value>,
    frames: usize,
    ended: bool,
}

/// One thing that happened.
pub enum Item {
    /// A statement and what came back.
    Statement(Statement),
    /// A policy event.
    Policy {
        /// Time from the session start, ms.
        at_ms: u64,
        /// The event.
        verdict: VerdictEvent,
    },
    /// An SSH command: an exec request, a line typed in a shell, or how it exited.
    Command {
        /// Time from the session start, ms.
        at_ms: u64,
        /// `exec`, `typed`, `exit` or `subsystem`.
        kind: &'static str,
        /// The command line, or the exit status.
        text: String,
    },
    /// An HTTP exchange.
    Exchange(Box<Exchange>),
    /// The end of the session.
    End {
        /// Time from the session start, ms.
        at_ms: u64,
        /// How it ended.
        end: SessionEnd,
    },
}

/// A Postgres statement.
#[derive(Default)]
pub struct Statement {
    /// Time from the session start, ms.
    pub at_ms: u64,
    /// The SQL.
    pub text: String,
    /// Bound parameters, for the extended protocol.
    pub params: Vec<Option<String>>,
    /// Result sets.
    pub results: Vec<ResultSet>,
    /// Command tags.
    pub tags: Vec<String>,
    /// Error from the server.
    pub error: Option<String>,
    /// Time until the server was ready again, ms.
    pub latency_ms: Option<f64>,
    started_us: u64,
}

/// Rows of one result.
#[derive(Default)]
pub struct ResultSet {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows as recorded (masked values as the agent saw them); `None` is NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows past [`MAX_ROWS`], counted.
    pub more: usize,
}

/// An HTTP exchange, from the HAR.
pub struct Exchange {
    /// Time from the session start, ms.
    pub at_ms: u64,
    /// `GET`...
    pub method: String,
    /// The URL.
    pub url: String,
    /// Status, if answered.
    pub status: Option<u64>,
    /// Request headers.
    pub request_headers: Vec<(String, String)>,
    /// Request body.
    pub request_body: Option<String>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body and its type.
    pub response_body: Option<(String, String)>,
    /// Total time, ms.
    pub time_ms: Option<f64>,
    /// WebSocket messages, at most [`MAX_MESSAGES`] (`messages_left_out` more).
    pub messages: Vec<WsMessage>,
    pub messages_left_out: usize,
}

/// One WebSocket message of an exchange.
pub struct WsMessage {
    /// Time from the session start, ms.
    pub at_ms: u64,
    /// From the agent (else to it).
    pub sent: bool,
    /// `text`, `binary` or `close`.
    pub kind: &'static str,
    /// Its text; base64 for binary; a close's code and reason.
    pub text: String,
}

impl Replay {
    /// Loads session `id` (or a unique prefix) from `dir`.
    pub fn load(dir: &Path, id: &str) -> anyhow::Result<Replay> {
        let (summary, frames) = crate::recording::replay::load(dir, id)?;
        Ok(Replay::from_frames(summary, &frames))
    }

    /// The session `summary` describes, from its `frames` (in order).
    pub fn from_frames(summary: SessionSummary, frames: &[Frame]) -> Replay {
        let mut text = Capped { text: Vec::new(), left_out: 0 };
        let mut transcript = crate::plugins::transcript(&summary.protocol, MAX_ROWS);
        // Writing to memory cannot fail.
        let _ = crate::recording::replay::render_text(&summary, frames, transcript.as_mut(), &mut text);
        let left_out = text.left_out;
        let mut text = String::from_utf8_lossy(&text.text).into_owned();
        if left_out > 0 {
            text.push_str(&format!("\n… {left_out} more bytes: `airlock replay` shows them all"));
        }
        let ended = frames.iter().any(|f| f.kind == Kind::SessionEnd);
        let segments = (summary.start_at.0, summary.end_at.map_or(summary.start_at.0, |e| e.0));
        let mut replay =
            Replay { segments, items: Vec::new(), more: 0, text, cast: None, frames: frames.len(), ended, summary };
        match replay.summary.protocol.as_str() {
            "postgres" => replay.postgres(frames),
            "ssh" => replay.ssh(frames),
            "http" => replay.http(frames),
            _ => {}
        }
        replay.events(frames);
        replay
    }

    /// Frames loaded.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Whether the session has ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn at_ms(&self, ts_us: u64) -> u64 {
        ts_us.saturating_sub(self.summary.start_us) / 1000
    }

    fn push(&mut self, item: Item) {
        if self.items.len() < MAX_ITEMS {
            self.items.push(item);
        } else {
            self.more += 1;
        }
    }

    /// Policy events and the end, merged into the items by time.
    fn events(&mut self, frames: &[Frame]) {
        let mut events = Vec::new();
        for f in frames {
            match f.kind {
                Kind::Verdict => {
                    let verdict: VerdictEvent = serde_json::from_slice(&f.payload).unwrap_or_default();
                    events.push(Item::Policy { at_ms: self.at_ms(f.ts_us), verdict });
                }
                Kind::SessionEnd => {
                    let end: SessionEnd = serde_json::from_slice(&f.payload).unwrap_or_default();
                    events.push(Item::End { at_ms: self.at_ms(f.ts_us), end });
                }
                _ => {}
            }
        }
        if events.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.items);
        let mut merged = Vec::with_capacity(items.len() + events.len());
        let mut events = events.into_iter().peekable();
        for item in items {
            // A policy event about a statement comes before the statement's result.
            while events.peek().is_some_and(|e| e.at_ms() <= item.at_ms()) {
                merged.extend(events.next());
            }
            merged.push(item);
        }
        merged.extend(events);
        self.items = merged;
    }

    fn postgres(&mut self, frames: &[Frame]) {
        let mut transcript = airlock_postgres::transcript::Transcript::new(MAX_ROWS);
        let mut prepared: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let mut bound: Vec<Option<String>> = Vec::new();
        let mut bound_text = String::new();
        let mut current: Option<Statement> = None;
        for f in frames.iter().filter(|f| f.kind.is_traffic()) {
            let from_agent = f.direction == Direction::ToUpstream;
            for m in transcript.json(from_agent, &f.payload) {
                let kind = m["type"].as_str().unwrap_or_default();
                match kind {
                    "query" | "execute" => {
                        if let Some(done) = current.take() {
                            self.push(Item::Statement(done));
                        }
                        let text = if kind == "query" { str_of(&m["text"]) } else { bound_text.clone() };
                        let params = if kind == "query" { Vec::new() } else { bound.clone() };
                        current = Some(Statement {
                            at_ms: self.at_ms(f.ts_us),
                            text: clip(text),
                            params,
                            started_us: f.ts_us,
                            ..Statement::default()
                        });
                    }
                    "parse" if prepared.len() < 10_000 || prepared.contains_key(&str_of(&m["name"])) => {
                        prepared.insert(str_of(&m["name"]), str_of(&m["text"]));
                    }
                    "bind" => {
                        bound_text = prepared.get(&str_of(&m["statement"])).cloned().unwrap_or_default();
                        bound = m["params"]
                            .as_array()
                            .map(|p| p.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                            .unwrap_or_default();
                    }
                    "row_description" => {
                        if let Some(s) = current.as_mut() {
                            let columns = m["columns"]
                                .as_array()
                                .map(|c| c.iter().map(|c| str_of(&c["name"])).collect())
                                .unwrap_or_default();
                            s.results.push(ResultSet { columns, ..ResultSet::default() });
                        }
                    }
                    "data_row" => {
                        if let Some(s) = current.as_mut() {
                            if s.results.is_empty() {
                                s.results.push(ResultSet::default());
                            }
                            let Some(result) = s.results.last_mut() else { continue };
                            if result.rows.len() < MAX_ROWS {
                                let row = m["values"]
                                    .as_array()
                                    .map(|v| v.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                                    .unwrap_or_default();
                                result.rows.push(row);
                            } else {
                                result.more += 1;
                            }
                        }
                    }
                    "command_complete" => {
                        if let Some(s) = current.as_mut() {
                            s.tags.push(str_of(&m["tag"]));
                        }
                    }
                    "error" => {
                        if let Some(s) = current.as_mut() {
                            s.error = Some(format!("{} {}", str_of(&m["code"]), str_of(&m["message"])));
                        }
                    }
                    "ready_for_query" => {
                        if let Some(mut done) = current.take() {
                            done.latency_ms = Some(f.ts_us.saturating_sub(done.started_us) as f64 / 1000.0);
                            self.push(Item::Statement(done));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(done) = current.take() {
            self.push(Item::Statement(done));
        }
    }

    fn ssh(&mut self, frames: &[Frame]) {
        use airlock_ssh::record::Event;
        for f in frames.iter().filter(|f| matches!(f.kind, Kind::SshAgent | Kind::SshHost)) {
            let (kind, text) = match Event::decode(&f.payload) {
                Ok(Event::Exec { command, .. }) => ("exec", command.to_owned()),
                Ok(Event::Line { line, .. }) => ("typed", line.to_owned()),
                Ok(Event::Subsystem { name, .. }) => ("subsystem", name.to_owned()),
                Ok(Event::Exit { status, .. }) => ("exit", format!("exit status {status}")),
                Ok(Event::ExitSignal { signal, .. }) => ("exit", format!("killed by signal {signal}")),
                _ => continue,
            };
            let at_ms = self.at_ms(f.ts_us);
            self.push(Item::Command { at_ms, kind, text: clip(text) });
        }
        let events = frames
            .iter()
            .filter(|f| matches!(f.kind, Kind::SshAgent | Kind::SshHost))
            .map(|f| (f.ts_us, f.kind == Kind::SshAgent, &f.payload[..]));
        let mut cast = Vec::new();
        if airlock_ssh::transcript::asciicast(self.summary.start_us, events, &mut cast).is_err() {
            return;
        }
        let mut lines = cast.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        let Some(header) = lines.next().and_then(|h| serde_json::from_slice::<Value>(h).ok()) else { return };
        let (mut events, mut bytes, mut left_out) = (Vec::new(), 0usize, 0usize);
        for event in lines.filter_map(|l| serde_json::from_slice::<Value>(l).ok()) {
            let len = event[2].as_str().map_or(0, str::len);
            if bytes + len > MAX_CAST {
                left_out += len;
                continue;
            }
            bytes += len;
            events.push(event);
        }
        if left_out > 0 {
            let at = events.last().map_or(Value::from(0.0), |e| e[0].clone());
            let note =
                format!("\r\n[{left_out} more bytes of output: `airlock replay --format asciicast` has them]\r\n");
            events.push(serde_json::json!([at, "o", note]));
        }
        self.cast = Some(serde_json::json!({
            "width": header["width"],
            "height": header["height"],
            "command": header.get("command"),
            "events": events,
        }));
    }

    fn http(&mut self, frames: &[Frame]) {
        let events = frames
            .iter()
            .filter(|f| matches!(f.kind, Kind::HttpAgent | Kind::HttpUpstream))
            .map(|f| (f.kind == Kind::HttpAgent, f.ts_us, f.payload.to_vec()));
        let har = airlock_http::transcript::har(self.summary.start_us, events);
        let start_ms = self.summary.start_us / 1000;
        for entry in har["log"]["entries"].as_array().into_iter().flatten() {
            let request = &entry["request"];
            let response = &entry["response"];
            let started = entry["startedDateTime"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            let status = response["status"].as_u64().filter(|s| *s > 0);
            let all = entry["_webSocketMessages"].as_array().map_or(&[][..], Vec::as_slice);
            let messages = all
                .iter()
                .take(MAX_MESSAGES)
                .map(|m| {
                    let (kind, text) = match m["opcode"].as_u64() {
                        Some(2) => ("binary", str_of(&m["data"])),
                        Some(8) => ("close", format!("{} {}", str_of(&m["_code"]), str_of(&m["data"]))),
                        _ => ("text", str_of(&m["data"])),
                    };
                    WsMessage {
                        at_ms: ((m["time"].as_f64().unwrap_or(0.0) * 1000.0) as u64).saturating_sub(start_ms),
                        sent: m["type"] == "send",
                        kind,
                        text: clip(text),
                    }
                })
                .collect();
            self.push(Item::Exchange(Box::new(Exchange {
                at_ms: started.saturating_sub(start_ms),
                method: str_of(&request["method"]),
                url: str_of(&request["url"]),
                status,
                request_headers: headers(&request["headers"]),
                request_body: request["postData"]["text"].as_str().map(|t| clip(t.to_owned())),
                response_headers: headers(&response["headers"]),
                response_body: response["content"]["text"]
                    .as_str()
                    .map(|t| (clip(t.to_owned()), str_of(&response["content"]["mimeType"]))),
                time_ms: entry["time"].as_f64(),
                messages,
                messages_left_out: all.len().saturating_sub(MAX_MESSAGES),
            })));
        }
    }
}

impl Item {
    fn at_ms(&self) -> u64 {
        match self {
            Item::Statement(s) => s.at_ms,
            Item::Policy { at_ms, .. } | Item::End { at_ms, .. } => *at_ms,
            Item::Exchange(x) => x.at_ms,
            Item::Command { at_ms, .. } => *at_ms,
        }
    }
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn headers(v: &Value) -> Vec<(String, String)> {
    v.as_array().into_iter().flatten().map(|h| (str_of(&h["name"]), str_of(&h["value"]))).collect()
}

/// Keeps the first [`MAX_PLAIN`] bytes written to it.
struct Capped {
    text: Vec<u8>,
    left_out: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_PLAIN.saturating_sub(self.text.len()).min(buf.len());
        self.text.extend_from_slice(&buf[..room]);
        self.left_out += buf.len() - room;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Text cut to [`MAX_TEXT`] bytes, saying so.
fn clip(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("… ({dropped} more bytes)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::recording::format::SessionStart;

    fn frame(seq: u64, direction: Direction, kind: Kind, payload: Vec<u8>) -> Frame {
        Frame { session: 1, seq, ts_us: 1_000 + seq, direction, kind, payload: Bytes::from(payload) }
    }

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn summary(protocol: &str) -> SessionSummary {
        let start =
            SessionStart { subject: "<b>agent</b>".into(), protocol: protocol.into(), ..SessionStart::default() };
        SessionSummary::started("0000000000000001".into(), 1_000, start, (0, 0))
    }

    /// No element the page did not put there: recorded text is escaped.
    fn assert_no_foreign_markup(html: &str) {
        for bad in ["<img", "<svg", "<script>", "<iframe"] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
    }

    #[test]
    fn hostile_rows_and_statements_are_text() {
        let hostile = "<img src=x onerror=alert(1)></script><script>alert(2)</script>";
        let mut row_description = 1i16.to_be_bytes().to_vec();
        row_description.extend(b"<svg onload=alert(3)>\0");
        row_description.extend([0; 18]);
        let mut data_row = 1i16.to_be_bytes().to_vec();
        data_row.extend((hostile.len() as i32).to_be_bytes());
        data_row.extend(hostile.as_bytes());
        let frames = vec![
            frame(
                0,
                Direction::ToUpstream,
                Kind::PgFrontend,
                message(b'Q', format!("select '{hostile}'\0").as_bytes()),
            ),
            frame(
                1,
                Direction::ToAgent,
                Kind::PgBackend,
                [message(b'T', &row_description), message(b'D', &data_row), message(b'Z', b"I")].concat(),
            ),
        ];
        let replay = Replay::from_frames(summary("postgres"), &frames);
        let html = super::super::transcript_html(&replay);
        assert_no_foreign_markup(&html);
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(html.contains("&lt;svg onload=alert(3)&gt;"), "{html}");
    }

    #[test]
    fn websocket_messages_show_under_their_exchange_as_text() {
        use airlock_http::record::{Event, Message, MessageKind, RequestHead, ResponseHead};
        let hostile = "<img src=x onerror=alert(1)>";
        let head = RequestHead {
            method: "GET".into(),
            url: "http://x/ws".into(),
            version: "HTTP/1.1".into(),
            headers: vec![],
        };
        let switched = ResponseHead { status: 101, version: "HTTP/1.1".into(), headers: vec![] };
        let message = |kind, data: &'static [u8]| Event::Message(1, Message { kind, len: data.len() as u64, data });
        let frames = vec![
            frame(0, Direction::ToUpstream, Kind::HttpAgent, airlock_http::record::encode(&Event::Request(1, head))),
            frame(
                1,
                Direction::ToAgent,
                Kind::HttpUpstream,
                airlock_http::record::encode(&Event::Response(1, switched)),
            ),
            frame(
                2,
                Direction::ToUpstream,
                Kind::HttpAgent,
                airlock_http::record::encode(&message(MessageKind::Text, hostile.as_bytes())),
            ),
            frame(
                3,
                Direction::ToAgent,
                Kind::HttpUpstream,
                airlock_http::record::encode(&message(MessageKind::Close, b"\x03\xf3bye")),
            ),
        ];
        let replay = Replay::from_frames(summary("http"), &frames);
        let html = super::super::transcript_html(&replay);
        assert_no_foreign_markup(&html);
        assert!(html.contains("WebSocket messages") && html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(html.contains("1011 bye"), "{html}");
    }

    #[test]
    fn a_terminal_cast_cannot_close_its_script_element() {
        use airlock_ssh::record::{Event, Stream};
        let output = "</script><script>alert(1)</script>\u{2028}<!--";
        let frames = vec![
            frame(0, Direction::ToUpstream, Kind::SshAgent, Event::Shell { channel: 0 }.encode()),
            frame(
                1,
                Direction::ToAgent,
                Kind::SshHost,
                Event::Data { channel: 0, stream: Stream::Out, bytes: output.as_bytes() }.encode(),
            ),
        ];
        let replay = Replay::from_frames(summary("ssh"), &frames);
        let html = super::super::transcript_html(&replay);
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert!(!html.contains("<!--"), "{html}");
        let cast = &html[html.find("application/json\">").unwrap() + 18..html.find("</script>").unwrap()];
        let value: Value = serde_json::from_str(cast).unwrap();
        assert!(value["events"].to_string().contains("alert(1)"), "{value}");
    }
}
