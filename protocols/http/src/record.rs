//! How an HTTP session is recorded: one [`Event`] per frame payload, in both
//! directions.
//!
//! ```text
//! event := tag:u8 exchange:u64 body
//! tag   := 'H' head | 'B' body chunk | 'E' end of body | 'W' WebSocket message
//!        | 'U' upgraded bytes (older records)
//! message := kind:u8 length:u64 data       kind := 't' text | 'b' binary | 'c' close
//! ```
//!
//! The exchange id is big-endian and numbers a session's request/response pairs,
//! the first being 1. A head's body is JSON: a [`RequestHead`] in frames from the
//! agent, a [`ResponseHead`] in frames to it. Body chunks are raw, as the agent sent
//! or was sent them (masked). An end is a [`BodyEnd`] as JSON. A WebSocket message
//! is one whole message as it was passed on (masked, to the agent), its length, and
//! as much of its data as the record keeps; a close's data is the close frame's
//! payload (a big-endian status code, then the reason). The recorder stores payloads
//! as they are; only the transcript decodes them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A payload that is not an event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// Nothing at all.
    #[error("bad HTTP record: empty")]
    Empty,
    /// Fewer than eight bytes of exchange id.
    #[error("bad HTTP record: no exchange id")]
    NoExchange,
    /// A tag that is not `H`, `B`, `E`, `W` or `U`.
    #[error("bad HTTP record: unknown tag {0:#04x}")]
    UnknownTag(u8),
    /// A head or end whose JSON does not read.
    #[error("bad HTTP record: {0}")]
    Json(String),
    /// A WebSocket message without its kind and length, or of an unknown kind.
    #[error("bad HTTP record: damaged WebSocket message")]
    Message,
}

/// A request as the agent sent it (after Airlock's own changes, if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHead {
    /// `GET`, `POST`...
    pub method: String,
    /// The absolute URL the request went to.
    pub url: String,
    /// `HTTP/1.1`, `HTTP/2`...
    pub version: String,
    /// Header fields in order, names as received; `[name, value]` pairs in JSON.
    pub headers: Vec<(String, String)>,
}

/// A response as the agent was sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/2`...
    pub version: String,
    /// Header fields in order; `[name, value]` pairs in JSON.
    pub headers: Vec<(String, String)>,
}

/// The end of a body, and how much of it the record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyEnd {
    /// The body's length as it passed through.
    pub bytes: u64,
    /// How many of those bytes were recorded in `B` events.
    pub recorded: u64,
    /// Whether the record stops short of the body (`recorded < bytes`).
    pub truncated: bool,
    /// Why, or anything else worth saying (the body was cut off, replaced...).
    pub note: Option<String>,
}

/// One recorded HTTP event. The `u64` is the exchange id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A request head (from the agent).
    Request(u64, RequestHead),
    /// A response head (to the agent).
    Response(u64, ResponseHead),
    /// A chunk of a request body (from the agent) or response body (to it).
    Body(u64, &'a [u8]),
    /// The end of a body.
    End(u64, BodyEnd),
    /// One WebSocket message, in either direction.
    Message(u64, Message<'a>),
    /// Bytes of a connection upgraded out of HTTP, in either direction (records
    /// made before WebSocket connections were relayed message by message).
    Upgraded(u64, &'a [u8]),
}

/// A WebSocket message as it was passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: MessageKind,
    /// The message's whole length.
    pub len: u64,
    /// Its first bytes, up to what the connection records (`record_body`).
    pub data: &'a [u8],
}

impl Message<'_> {
    /// Whether the record holds less than the message.
    pub fn truncated(&self) -> bool {
        (self.data.len() as u64) < self.len
    }

    /// A close's status code and reason, when the close frame carried them.
    pub fn close(&self) -> Option<(u16, Cow<'_, str>)> {
        let (code, reason) = self.data.split_first_chunk::<2>()?;
        (self.kind == MessageKind::Close).then(|| (u16::from_be_bytes(*code), String::from_utf8_lossy(reason)))
    }
}

/// What a WebSocket message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
    Close,
}

impl MessageKind {
    const fn tag(self) -> u8 {
        match self {
            MessageKind::Text => b't',
            MessageKind::Binary => b'b',
            MessageKind::Close => b'c',
        }
    }

    /// `text`, `binary` or `close`.
    pub const fn name(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
            MessageKind::Close => "close",
        }
    }

    /// Its WebSocket opcode.
    pub const fn opcode(self) -> u8 {
        match self {
            MessageKind::Text => 1,
            MessageKind::Binary => 2,
            MessageKind::Close => 8,
        }
    }
}

const HEAD: u8 = b'H';
const BODY: u8 = b'B';
const END: u8 = b'E';
const UPGRADED: u8 = b'U';
const MESSAGE: u8 = b'W';

/// Bytes before the data of a `B` or `U` payload.
pub const HEADER_LEN: usize = 9;

impl Event<'_> {
    /// The exchange it belongs to.
    pub fn exchange(&self) -> u64 {
        match *self {
            Event::Request(id, _)
            | Event::Response(id, _)
            | Event::Body(id, _)
            | Event::End(id, _)
            | Event::Message(id, _)
            | Event::Upgraded(id, _) => id,
        }
    }
}

/// The frame payload for `event`.
pub fn encode(event: &Event<'_>) -> Vec<u8> {
    let (tag, body): (u8, Cow<'_, [u8]>) = match event {
        Event::Request(_, head) => (HEAD, to_json(head).into()),
        Event::Response(_, head) => (HEAD, to_json(head).into()),
        Event::Body(_, bytes) => (BODY, (*bytes).into()),
        Event::End(_, end) => (END, to_json(end).into()),
        Event::Message(_, m) => {
            let mut body = Vec::with_capacity(9 + m.data.len());
            body.push(m.kind.tag());
            body.extend_from_slice(&m.len.to_be_bytes());
            body.extend_from_slice(m.data);
            (MESSAGE, body.into())
        }
        Event::Upgraded(_, bytes) => (UPGRADED, (*bytes).into()),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(tag);
    out.extend_from_slice(&event.exchange().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a frame payload; `from_agent` says which way the frame went, which tells a
/// request head from a response head.
pub fn decode(from_agent: bool, payload: &[u8]) -> Result<Event<'_>, RecordError> {
    let (&tag, rest) = payload.split_first().ok_or(RecordError::Empty)?;
    let (id, body) = rest.split_first_chunk::<8>().ok_or(RecordError::NoExchange)?;
    let id = u64::from_be_bytes(*id);
    let json_err = |e: serde_json::Error| RecordError::Json(e.to_string());
    Ok(match tag {
        HEAD if from_agent => Event::Request(id, serde_json::from_slice(body).map_err(json_err)?),
        HEAD => Event::Response(id, serde_json::from_slice(body).map_err(json_err)?),
        BODY => Event::Body(id, body),
        END => Event::End(id, serde_json::from_slice(body).map_err(json_err)?),
        MESSAGE => {
            let (&kind, rest) = body.split_first().ok_or(RecordError::Message)?;
            let (len, data) = rest.split_first_chunk::<8>().ok_or(RecordError::Message)?;
            let kind = [MessageKind::Text, MessageKind::Binary, MessageKind::Close]
                .into_iter()
                .find(|k| k.tag() == kind)
                .ok_or(RecordError::Message)?;
            Event::Message(id, Message { kind, len: u64::from_be_bytes(*len), data })
        }
        UPGRADED => Event::Upgraded(id, body),
        other => return Err(RecordError::UnknownTag(other)),
    })
}

/// A head or end as JSON. Serializing cannot fail: every field is a string, an
/// integer, a boolean or a list of string pairs.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RequestHead {
        RequestHead {
            method: "POST".into(),
            url: "https://api.example.com/v1/items?q=a%20b".into(),
            version: "HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), "api.example.com".into()),
                ("X-Dup".into(), "1".into()),
                ("X-Dup".into(), "2".into()),
            ],
        }
    }

    #[test]
    fn every_event_round_trips() {
        let events = [
            (true, Event::Request(1, request())),
            (false, Event::Response(1, ResponseHead { status: 201, version: "HTTP/1.1".into(), headers: vec![] })),
            (true, Event::Body(1, b"{\"a\":1}")),
            (false, Event::Body(u64::MAX, b"\xff\x00")),
            (true, Event::End(1, BodyEnd { bytes: 7, recorded: 7, truncated: false, note: None })),
            (
                false,
                Event::End(2, BodyEnd { bytes: 1 << 40, recorded: 65536, truncated: true, note: Some("cut".into()) }),
            ),
            (true, Event::Upgraded(3, b"\x81\x05hello")),
            (false, Event::Upgraded(3, b"")),
            (true, Event::Message(4, Message { kind: MessageKind::Text, len: 5, data: b"hello" })),
            (false, Event::Message(4, Message { kind: MessageKind::Binary, len: 1 << 20, data: b"\0\x01" })),
            (false, Event::Message(4, Message { kind: MessageKind::Close, len: 6, data: b"\x03\xe8done" })),
        ];
        for (from_agent, e) in events {
            assert_eq!(decode(from_agent, &encode(&e)), Ok(e.clone()));
        }
    }

    #[test]
    fn the_layout_is_tag_id_body_and_headers_are_pairs() {
        let bytes = encode(&Event::Request(258, request()));
        assert_eq!(&bytes[..HEADER_LEN], b"H\0\0\0\0\0\0\x01\x02");
        let json: serde_json::Value = serde_json::from_slice(&bytes[HEADER_LEN..]).unwrap();
        assert_eq!(json["headers"], serde_json::json!([["Host", "api.example.com"], ["X-Dup", "1"], ["X-Dup", "2"]]));
        assert_eq!(encode(&Event::Body(1, b"abc")), b"B\0\0\0\0\0\0\0\x01abc");
    }

    #[test]
    fn damaged_payloads_are_errors() {
        assert_eq!(decode(true, b""), Err(RecordError::Empty));
        assert_eq!(decode(true, b"B\0\0\0"), Err(RecordError::NoExchange));
        assert_eq!(decode(true, b"X\0\0\0\0\0\0\0\x01"), Err(RecordError::UnknownTag(b'X')));
        assert!(matches!(decode(true, b"H\0\0\0\0\0\0\0\x01{}"), Err(RecordError::Json(_))));
        // A response head is not a request head: the direction decides which is read.
        let response =
            encode(&Event::Response(1, ResponseHead { status: 200, version: "HTTP/1.1".into(), headers: vec![] }));
        assert!(matches!(decode(true, &response), Err(RecordError::Json(_))));
        assert!(matches!(decode(false, b"E\0\0\0\0\0\0\0\x01{\"bytes\":-1}"), Err(RecordError::Json(_))));
        assert_eq!(decode(true, b"W\0\0\0\0\0\0\0\x01t\0\0"), Err(RecordError::Message));
        assert_eq!(decode(true, b"W\0\0\0\0\0\0\0\x01x\0\0\0\0\0\0\0\0"), Err(RecordError::Message));
        let close = Message { kind: MessageKind::Close, len: 6, data: b"\x03\xe8done" };
        assert_eq!(close.close(), Some((1000, "done".into())));
    }
}
