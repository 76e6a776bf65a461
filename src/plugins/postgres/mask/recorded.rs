//! What is recorded of the agent's side, with the secrets it sent masked.

use airlock_postgres::describe;
use airlock_postgres::frame::{self, HEADER_LEN};
use airlock_postgres::message::{self, tag};
use bytes::{Bytes, BytesMut};

use super::ConnectionMasking;
use crate::masking::Masker;

/// Masks what is recorded of the agent's side: Query and Parse text and Bind
/// parameters go through the value detectors (the upstream still gets them as sent).
/// Other messages are recorded as they are.
pub struct FrontendMasking<'a> {
    masker: &'a Masker,
    /// Bytes of a message begun in an earlier batch, still to come.
    carry: usize,
}

impl<'a> FrontendMasking<'a> {
    /// Masking with this connection's detectors.
    pub fn new(conn: &'a ConnectionMasking) -> Self {
        FrontendMasking { masker: &conn.masker, carry: 0 }
    }

    /// What to record for a batch of frontend bytes.
    pub fn apply(&mut self, bytes: &Bytes) -> Bytes {
        let mut out: Option<BytesMut> = None;
        let mut at = self.carry.min(bytes.len());
        self.carry -= at;
        while let Some(&[tag, a, b, c, d]) = bytes.get(at..at + HEADER_LEN) {
            // The scanner refuses a bad length before its message is sent; were one to
            // get here, the rest of the batch would be recorded as it came.
            let Ok(len) = frame::message_len(tag, [a, b, c, d]) else { break };
            let end = at + len;
            if end > bytes.len() {
                // Statements always arrive whole (the gate reads them); what is split
                // across batches is data, recorded as is.
                self.carry = end - bytes.len();
                break;
            }
            if let Some(masked) = self.mask_message(tag, &bytes[at + HEADER_LEN..end]) {
                let out = out.get_or_insert_with(|| BytesMut::from(&bytes[..at]));
                out.extend_from_slice(&masked);
            } else if let Some(out) = out.as_mut() {
                out.extend_from_slice(&bytes[at..end]);
            }
            at = end;
        }
        match out {
            None => bytes.clone(),
            Some(mut out) => {
                out.extend_from_slice(bytes.get(at..).unwrap_or_default());
                out.freeze()
            }
        }
    }

    /// The message rebuilt with its secrets masked, if it has any.
    fn mask_message(&self, tag: u8, body: &[u8]) -> Option<Bytes> {
        let mask = |v: &[u8]| match self.masker.mask(v) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(m) => Some(m),
        };
        let message = |tag: u8, parts: &[&[u8]]| {
            let mut b = BytesMut::new();
            b.extend_from_slice(&[tag, 0, 0, 0, 0]);
            parts.iter().for_each(|p| b.extend_from_slice(p));
            message::set_length(&mut b);
            b.freeze()
        };
        match tag {
            tag::QUERY => {
                let text = message::parse_query(body).ok()?;
                Some(message(tag, &[&mask(text)?, b"\0"]))
            }
            tag::PARSE => {
                let (name, text) = message::parse_parse(body).ok()?;
                let rest = body.get(name.len() + text.len() + 2..)?;
                Some(message(tag, &[name, b"\0", &mask(text)?, b"\0", rest]))
            }
            tag::BIND => {
                let values = describe::bind(body).ok()?.params;
                let masked: Vec<Option<Vec<u8>>> = values.iter().map(|(_, v)| v.and_then(mask)).collect();
                if masked.iter().all(Option::is_none) {
                    return None;
                }
                let mut b = BytesMut::new();
                let mut last = 0;
                for ((range, _), m) in values.iter().zip(&masked) {
                    let Some(m) = m else { continue };
                    // Each value is its i32 length then its bytes.
                    b.extend_from_slice(&body[last..range.start - 4]);
                    b.extend_from_slice(&(m.len() as i32).to_be_bytes());
                    b.extend_from_slice(m);
                    last = range.end;
                }
                b.extend_from_slice(&body[last..]);
                Some(message(tag, &[&b]))
            }
            _ => None,
        }
    }
}
