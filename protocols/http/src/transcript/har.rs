//! A recorded HTTP session as a HAR 1.2 document (the W3C Web Performance group's
//! "HTTP Archive" draft), which browsers' developer tools and HAR viewers open.
//!
//! One entry per exchange, in exchange order, with every field the format requires.
//! What a record cannot say is written as the format asks: sizes of header blocks are
//! `-1`, DNS/connect/TLS timings `-1`, cookies empty (the `Cookie` and `Set-Cookie`
//! headers are there). Bodies that are not UTF-8 are base64 (`"encoding": "base64"`
//! for responses; a comment says so for requests, whose `postData` has no such
//! field). An exchange refused before any response was recorded has status 0.
//! A WebSocket connection's messages are in its entry's `_webSocketMessages`, as
//! Chromium's developer tools write them (`type` send or receive, `time` in seconds
//! since the epoch, `opcode`, and `data`: text, base64 for binary, a close's reason
//! with its status code in `_code`).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};

use crate::record::{self, BodyEnd, Event, Message, MessageKind, RequestHead, ResponseHead};
use crate::{status, urlencoded};

/// The most bytes of one body put in the document; the rest is left out with a
/// comment. Records are capped already; this keeps a damaged one from growing it.
const MAX_BODY: usize = 16 << 20;

/// One direction of an exchange.
#[derive(Debug)]
struct Half<H> {
    /// The head and when it was recorded.
    head: Option<(u64, H)>,
    body: Vec<u8>,
    /// Body bytes recorded but left out past [`MAX_BODY`].
    dropped: u64,
    end: Option<BodyEnd>,
    /// When its last event was recorded.
    last_us: u64,
}

impl<H> Default for Half<H> {
    fn default() -> Half<H> {
        Half { head: None, body: Vec::new(), dropped: 0, end: None, last_us: 0 }
    }
}

impl<H> Half<H> {
    fn seen(&mut self, ts_us: u64) {
        self.last_us = self.last_us.max(ts_us);
    }

    fn add(&mut self, chunk: &[u8]) {
        let room = MAX_BODY.saturating_sub(self.body.len()).min(chunk.len());
        self.body.extend_from_slice(chunk.get(..room).unwrap_or_default());
        self.dropped += (chunk.len() - room) as u64;
    }

    /// The body's length as it passed through, or what was recorded of it.
    fn body_size(&self) -> u64 {
        self.end.as_ref().map_or(self.body.len() as u64 + self.dropped, |end| end.bytes)
    }

    /// What the document should say about a body it does not hold in full.
    fn comment(&self) -> Option<String> {
        let mut notes = Vec::new();
        if let Some(end) = self.end.as_ref().filter(|end| end.truncated) {
            notes.push(format!("truncated in the record: {} of {} bytes recorded", end.recorded, end.bytes));
        }
        if self.dropped > 0 {
            notes.push(format!("{} bytes past the first {MAX_BODY} left out", self.dropped));
        }
        if let Some(note) = self.end.as_ref().and_then(|end| end.note.as_deref()) {
            notes.push(note.to_string());
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

#[derive(Debug, Default)]
struct Exchange {
    request: Half<RequestHead>,
    response: Half<ResponseHead>,
    /// WebSocket messages, as `_webSocketMessages` entries.
    messages: Vec<Value>,
    /// Bytes of message data held in `messages`, at most [`MAX_BODY`].
    message_bytes: usize,
    /// Messages left out past that.
    messages_dropped: u64,
}

impl Exchange {
    fn message(&mut self, from_agent: bool, ts_us: u64, m: &Message<'_>) {
        if self.message_bytes + m.data.len() > MAX_BODY {
            self.messages_dropped += 1;
            return;
        }
        self.message_bytes += m.data.len();
        let close = m.close();
        let data = match (m.kind, std::str::from_utf8(m.data)) {
            (MessageKind::Close, _) => close.as_ref().map(|(_, reason)| reason.to_string()).unwrap_or_default(),
            (MessageKind::Binary, _) | (_, Err(_)) => base64::engine::general_purpose::STANDARD.encode(m.data),
            (_, Ok(text)) => text.to_owned(),
        };
        let mut v = json!({
            "type": if from_agent { "send" } else { "receive" },
            "time": ts_us as f64 / 1e6,
            "opcode": m.kind.opcode(),
            "data": data,
        });
        if let Some((code, _)) = close {
            v["_code"] = code.into();
        }
        if m.truncated() {
            v["_comment"] = format!("truncated in the record: {} of {} bytes recorded", m.data.len(), m.len).into();
        }
        self.messages.push(v);
    }
}

/// The HAR 1.2 document for a session that started at `start_us` (µs since the
/// epoch), from its frames: `(from_agent, ts_us, payload)` in recorded order.
/// Frames that do not decode, and exchanges without a request head, are left out and
/// counted in the log's comment.
pub fn har(start_us: u64, frames: impl IntoIterator<Item = (bool, u64, Vec<u8>)>) -> Value {
    let mut exchanges: BTreeMap<u64, Exchange> = BTreeMap::new();
    let mut damaged = 0;
    for (from_agent, ts_us, payload) in frames {
        let Ok(event) = record::decode(from_agent, &payload) else {
            damaged += 1;
            continue;
        };
        let x = exchanges.entry(event.exchange()).or_default();
        match event {
            Event::Request(_, head) => x.request.head = Some((ts_us, head)),
            Event::Response(_, head) => x.response.head = Some((ts_us, head)),
            Event::Body(_, chunk) if from_agent => x.request.add(chunk),
            Event::Body(_, chunk) => x.response.add(chunk),
            Event::End(_, end) if from_agent => x.request.end = Some(end),
            Event::End(_, end) => x.response.end = Some(end),
            Event::Message(_, m) => x.message(from_agent, ts_us, &m),
            // Raw bytes of an upgraded connection (older records) have nothing to show.
            Event::Upgraded(..) => {}
        }
        if from_agent { x.request.seen(ts_us) } else { x.response.seen(ts_us) }
    }
    let mut headless = 0;
    let entries: Vec<Value> = exchanges
        .into_values()
        .filter_map(|x| {
            let entry = entry(&x);
            headless += usize::from(entry.is_none());
            entry
        })
        .collect();
    let mut log = json!({
        "version": "1.2",
        "creator": {"name": "airlock", "version": env!("CARGO_PKG_VERSION")},
        "pages": [{
            "startedDateTime": iso8601(start_us),
            "id": PAGE,
            "title": "Airlock session",
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        }],
        "entries": entries,
    });
    let mut comments = Vec::new();
    if damaged > 0 {
        comments.push(format!("{damaged} damaged records left out"));
    }
    if headless > 0 {
        comments.push(format!("{headless} exchanges without a recorded request left out"));
    }
    if !comments.is_empty() {
        log["comment"] = comments.join("; ").into();
    }
    json!({ "log": log })
}

/// The id of the one page, the session, that every entry belongs to.
const PAGE: &str = "session";

/// One entry, if the exchange's request was recorded.
fn entry(x: &Exchange) -> Option<Value> {
    let (started, head) = x.request.head.as_ref()?;
    let started = *started;
    let request_done = x.request.last_us.max(started);
    let (wait, receive) = match &x.response.head {
        Some((at, _)) => (at.saturating_sub(started), x.response.last_us.max(*at).saturating_sub(*at)),
        None => (request_done - started, 0),
    };
    let (wait, receive) = (ms(wait), ms(receive));
    let mut entry = json!({
        "pageref": PAGE,
        "startedDateTime": iso8601(started),
        "time": wait + receive,
        "request": request(head, &x.request),
        "response": response(&x.response),
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "send": 0,
            "wait": wait,
            "receive": receive,
            "ssl": -1,
        },
    });
    if !x.messages.is_empty() {
        entry["_webSocketMessages"] = x.messages.clone().into();
    }
    if x.messages_dropped > 0 {
        entry["comment"] =
            format!("{} WebSocket messages past the first {MAX_BODY} bytes left out", x.messages_dropped).into();
    }
    Some(entry)
}

fn request(head: &RequestHead, half: &Half<RequestHead>) -> Value {
    let mut request = json!({
        "method": head.method,
        "url": head.url,
        "httpVersion": head.version,
        "cookies": [],
        "headers": name_values(&head.headers),
        "queryString": query_string(&head.url),
        "headersSize": -1,
        "bodySize": half.body_size(),
    });
    if !half.body.is_empty() || half.body_size() > 0 {
        // `params` is empty: the body is given whole in `text` (as Firefox writes it).
        let mut post = json!({ "mimeType": header(&head.headers, "content-type").unwrap_or_default(), "params": [] });
        let mut comments: Vec<String> = half.comment().into_iter().collect();
        match std::str::from_utf8(&half.body) {
            Ok(text) => post["text"] = text.into(),
            Err(_) => {
                post["text"] = base64::engine::general_purpose::STANDARD.encode(&half.body).into();
                comments.insert(0, "text is base64: the body is not UTF-8".into());
            }
        }
        if !comments.is_empty() {
            post["comment"] = comments.join("; ").into();
        }
        request["postData"] = post;
    }
    request
}

fn response(half: &Half<ResponseHead>) -> Value {
    let Some((_, head)) = &half.head else {
        return json!({
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "comment": "no response was recorded",
        });
    };
    let mut content = json!({
        "size": half.body_size(),
        "mimeType": header(&head.headers, "content-type").unwrap_or_default(),
    });
    if !half.body.is_empty() {
        match std::str::from_utf8(&half.body) {
            Ok(text) => content["text"] = text.into(),
            Err(_) => {
                content["text"] = base64::engine::general_purpose::STANDARD.encode(&half.body).into();
                content["encoding"] = "base64".into();
            }
        }
    }
    if let Some(comment) = half.comment() {
        content["comment"] = comment.into();
    }
    json!({
        "status": head.status,
        "statusText": status::reason(head.status).unwrap_or_default(),
        "httpVersion": head.version,
        "cookies": [],
        "headers": name_values(&head.headers),
        "content": content,
        "redirectURL": header(&head.headers, "location").unwrap_or_default(),
        "headersSize": -1,
        "bodySize": half.body_size(),
    })
}

/// The first value of header `name` (ASCII case-insensitive).
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn name_values<'p>(pairs: impl IntoIterator<Item = &'p (String, String)>) -> Vec<Value> {
    pairs.into_iter().map(|(name, value)| json!({"name": name, "value": value})).collect()
}

/// The URL's query parameters, decoded for reading.
fn query_string(url: &str) -> Vec<Value> {
    let Some((_, query)) = url.split_once('?') else { return Vec::new() };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let pairs: Vec<(String, String)> =
        urlencoded::pairs(query).map(|(n, v)| (urlencoded::decode_lossy(n), urlencoded::decode_lossy(v))).collect();
    name_values(&pairs)
}

/// Microseconds as milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `us` since the epoch as an ISO 8601 UTC time with milliseconds:
/// `2023-11-14T22:13:20.000Z`.
pub(super) fn iso8601(us: u64) -> String {
    let secs = us / 1_000_000;
    let millis = us % 1_000_000 / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}
