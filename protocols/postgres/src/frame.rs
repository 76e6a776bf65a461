//! Splitting a PostgreSQL message stream into frames.
//!
//! Every message after startup is `tag:u8 len:i32 body`, where `len` counts itself but
//! not the tag. A gateway needs to *look* at only a few message types; the rest it
//! forwards untouched. [`Scanner`] therefore asks its caller, once per message header,
//! whether it wants the message [`Disposition::Whole`] (buffered, returned as a
//! [`Frame`]) or [`Disposition::Pass`] (forwarded as raw bytes, possibly before the
//! message has fully arrived). Consecutive passed messages are coalesced into one
//! [`Chunk::Raw`] so that a socket read becomes, in the common case, one socket write.

use bytes::{Bytes, BytesMut};

/// The largest message PostgreSQL itself accepts (`PQ_LARGE_MESSAGE_LIMIT`, 1 GiB - 1).
pub const MAX_MESSAGE_LEN: usize = 0x3fff_ffff;

/// Size of a tagged message header: the tag byte and the `i32` length.
pub const HEADER_LEN: usize = 5;

/// The most buffer [`Scanner::next`] reserves for a whole message ahead of its bytes.
/// A longer message grows the buffer as it arrives, so what a peer's length field
/// costs before it sends the bytes is bounded by this, not by the length it claims.
const RESERVE_AHEAD: usize = 1 << 20;

/// A peer broke the wire protocol. The connection that produced it cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A length field below its minimum (4, or 8 for startup packets) or negative.
    #[error("message {tag:?} has an invalid length {len}")]
    InvalidLength {
        /// The message tag, as a character for readability.
        tag: char,
        /// The length field as sent.
        len: i64,
    },
    /// A length field over the configured or protocol cap.
    #[error("message {tag:?} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The message tag.
        tag: char,
        /// The announced length.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The body of a message does not have the shape its type requires.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A message that is valid PostgreSQL but not allowed at this point.
    #[error("unexpected message {tag:?} while {state}")]
    Unexpected {
        /// The message tag.
        tag: char,
        /// What the receiver was waiting for.
        state: &'static str,
    },
}

/// One whole message: tag, length and body, exactly as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    raw: Bytes,
}

impl Frame {
    /// Wraps a whole encoded message. The caller guarantees `raw` holds at least a
    /// header; [`Scanner`] and the builders in [`crate::message`] do.
    pub fn from_raw(raw: Bytes) -> Self {
        debug_assert!(raw.len() >= HEADER_LEN);
        Frame { raw }
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.raw.first().copied().unwrap_or(0)
    }

    /// The message body, after the length field.
    pub fn body(&self) -> &[u8] {
        self.raw.get(HEADER_LEN..).unwrap_or_default()
    }

    /// The message as it was on the wire.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Gives back the wire bytes.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }
}

/// A message header as shown to [`Scanner::next`]'s `classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Message type byte.
    pub tag: u8,
    /// Total wire length, tag included.
    pub len: usize,
    /// The part of the body already buffered (all of it when `body.len() + 5 == len`).
    pub body: &'a [u8],
}

impl Header<'_> {
    /// The whole body, if it has arrived.
    pub fn complete_body(&self) -> Option<&[u8]> {
        (self.body.len() + HEADER_LEN == self.len).then_some(self.body)
    }
}

/// What the caller wants done with a message, decided from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Forward it as raw bytes; never buffered whole.
    Pass,
    /// Buffer it and hand it over as a [`Frame`].
    Whole,
}

/// What [`Scanner::next`] split off the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes of one or more passed messages, possibly ending inside one.
    Raw(Bytes),
    /// One message the caller asked to see whole.
    Frame(Frame),
}

/// Incremental splitter for one direction of a connection.
#[derive(Debug, Clone)]
pub struct Scanner {
    max_whole: usize,
    /// Bytes of a passed message that are still to arrive.
    passing: usize,
    /// A header already shown to the caller (answered `Whole`) whose body is incomplete.
    pending_whole: bool,
}

impl Scanner {
    /// A scanner that buffers at most `max_whole` bytes for one [`Disposition::Whole`]
    /// message. Passed messages may be up to [`MAX_MESSAGE_LEN`].
    pub fn new(max_whole: usize) -> Self {
        Scanner { max_whole: max_whole.min(MAX_MESSAGE_LEN + 1), passing: 0, pending_whole: false }
    }

    /// Whether the stream is at a message boundary (nothing half-forwarded).
    pub fn at_boundary(&self) -> bool {
        self.passing == 0 && !self.pending_whole
    }

    /// Whether part of a passed message has been handed out and the rest is still to
    /// come: the only time bytes of another message must not be sent in between.
    pub fn mid_message(&self) -> bool {
        self.passing > 0
    }

    /// Splits the next chunk off `buf`.
    ///
    /// `classify(header)` is called exactly once per message, when its header is first
    /// complete. The header carries whatever part of the body is already buffered, so
    /// a caller can read a short message (ReadyForQuery's status byte) without asking
    /// for it whole. Returns `Ok(None)` when more bytes are needed; advances
    /// `buf` only past what it returns.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        classify: &mut impl FnMut(Header<'_>) -> Disposition,
    ) -> Result<Option<Chunk>, ProtocolError> {
        let mut offset = 0;
        if self.passing > 0 {
            offset = self.passing.min(buf.len());
            self.passing -= offset;
            if self.passing > 0 {
                return Ok(split_raw(buf, offset));
            }
        }
        while let Some(header) = buf.get(offset..offset + HEADER_LEN) {
            let tag = header[0];
            let total = message_len(tag, [header[1], header[2], header[3], header[4]])?;
            let disposition = if self.pending_whole {
                Disposition::Whole
            } else {
                let body_end = (offset + total).min(buf.len());
                classify(Header { tag, len: total, body: buf.get(offset + HEADER_LEN..body_end).unwrap_or_default() })
            };
            match disposition {
                Disposition::Pass => {
                    let available = buf.len() - offset;
                    if available >= total {
                        offset += total;
                    } else {
                        self.passing = total - available;
                        offset = buf.len();
                        break;
                    }
                }
                Disposition::Whole => {
                    // Hand over what precedes it first; it is classified already.
                    self.pending_whole = true;
                    if offset > 0 {
                        break;
                    }
                    if total > self.max_whole {
                        return Err(ProtocolError::TooLarge { tag: tag as char, len: total, max: self.max_whole });
                    }
                    if buf.len() < total {
                        // Room for the rest, but never more than RESERVE_AHEAD before the
                        // bytes arrive: five bytes of header must not buy a gigabyte.
                        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
                        return Ok(None);
                    }
                    self.pending_whole = false;
                    return Ok(Some(Chunk::Frame(Frame { raw: buf.split_to(total).freeze() })));
                }
            }
        }
        Ok(split_raw(buf, offset))
    }
}

fn split_raw(buf: &mut BytesMut, n: usize) -> Option<Chunk> {
    (n > 0).then(|| Chunk::Raw(buf.split_to(n).freeze()))
}

/// Total wire length (tag included) of a message with this tag whose length field is
/// `len_bytes`; a length under 4 or over [`MAX_MESSAGE_LEN`] is an error.
pub fn message_len(tag: u8, len_bytes: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = i32::from_be_bytes(len_bytes);
    if len < 4 {
        return Err(ProtocolError::InvalidLength { tag: tag as char, len: len.into() });
    }
    // `len` is positive, so the cast is lossless.
    let len = len as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(ProtocolError::TooLarge { tag: tag as char, len, max: MAX_MESSAGE_LEN });
    }
    Ok(len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use proptest::prelude::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// Feeds `input` in pieces of `step` bytes and collects (raw bytes, whole frames).
    fn drive(input: &[u8], step: usize, whole: &[u8]) -> (Vec<u8>, Vec<Frame>, Vec<u8>) {
        let mut scanner = Scanner::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut frames = Vec::new();
        let mut seen = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.put_slice(piece);
            let mut classify = |h: Header<'_>| {
                seen.push(h.tag);
                if whole.contains(&h.tag) { Disposition::Whole } else { Disposition::Pass }
            };
            while let Some(chunk) = scanner.next(&mut buf, &mut classify).unwrap() {
                match chunk {
                    Chunk::Raw(b) => out.extend_from_slice(&b),
                    Chunk::Frame(f) => {
                        out.extend_from_slice(f.raw());
                        frames.push(f)
                    }
                }
            }
        }
        assert!(buf.is_empty());
        assert!(scanner.at_boundary());
        (out, frames, seen)
    }

    #[test]
    fn one_byte_at_a_time_sees_every_header_once() {
        let mut input = msg(b'D', b"row one");
        input.extend(msg(b'Z', b"I"));
        input.extend(msg(b'D', &[7u8; 300]));
        input.extend(msg(b'C', b"SELECT 2\0"));
        input.extend(msg(b'Z', b"T"));
        let (out, frames, seen) = drive(&input, 1, b"Z");
        assert_eq!(out, input);
        assert_eq!(seen, b"DZDCZ");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].body(), b"I");
        assert_eq!(frames[1].body(), b"T");
    }

    #[test]
    fn message_lengths_are_checked() {
        assert_eq!(message_len(b'Q', 4i32.to_be_bytes()), Ok(5));
        assert_eq!(message_len(b'Q', 9i32.to_be_bytes()), Ok(10));
        assert_eq!(message_len(b'Q', 3i32.to_be_bytes()), Err(ProtocolError::InvalidLength { tag: 'Q', len: 3 }));
        assert_eq!(message_len(b'Q', (-1i32).to_be_bytes()), Err(ProtocolError::InvalidLength { tag: 'Q', len: -1 }));
        let over = MAX_MESSAGE_LEN + 1;
        assert_eq!(
            message_len(b'D', (over as i32).to_be_bytes()),
            Err(ProtocolError::TooLarge { tag: 'D', len: over, max: MAX_MESSAGE_LEN })
        );
    }

    #[test]
    fn passed_messages_coalesce_into_one_chunk() {
        let mut input = msg(b'D', b"a");
        input.extend(msg(b'D', b"b"));
        input.extend(msg(b'C', b"c\0"));
        let mut buf = BytesMut::from(&input[..]);
        let mut scanner = Scanner::new(64);
        let chunk = scanner.next(&mut buf, &mut |_| Disposition::Pass).unwrap();
        assert_eq!(chunk, Some(Chunk::Raw(Bytes::from(input))));
    }

    #[test]
    fn large_passed_message_streams_without_buffering() {
        let input = msg(b'd', &vec![1u8; 10_000]);
        let mut scanner = Scanner::new(16);
        let mut buf = BytesMut::from(&input[..100]);
        let Some(Chunk::Raw(first)) = scanner.next(&mut buf, &mut |_| Disposition::Pass).unwrap() else {
            panic!("expected raw bytes")
        };
        assert_eq!(first.len(), 100);
        assert!(!scanner.at_boundary());
    }

    #[test]
    fn a_length_field_alone_reserves_little() {
        // A header announcing a message just under 1 GiB, asked for whole (as the
        // replay transcript asks for every message): found by the pg_frontend fuzz
        // target, which saw a ~1 GB allocation from a few bytes.
        let mut scanner = Scanner::new(MAX_MESSAGE_LEN + 1);
        let mut buf = BytesMut::from(&[b'Q', 0x3f, 0xff, 0xff, 0x00, b's'][..]);
        assert_eq!(scanner.next(&mut buf, &mut |_| Disposition::Whole), Ok(None));
        assert!(buf.capacity() <= RESERVE_AHEAD + 64, "reserved {} bytes", buf.capacity());
        // A message that fits the reservation still gets it in one piece.
        let mut scanner = Scanner::new(1 << 20);
        let input = msg(b'Q', &[b'x'; 1000]);
        let mut buf = BytesMut::from(&input[..6]);
        assert_eq!(scanner.next(&mut buf, &mut |_| Disposition::Whole), Ok(None));
        assert!(buf.capacity() >= input.len());
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut scanner = Scanner::new(64);
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert!(matches!(
            scanner.next(&mut buf, &mut |_| Disposition::Pass),
            Err(ProtocolError::InvalidLength { len: 3, .. })
        ));
        let mut buf = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            scanner.next(&mut buf, &mut |_| Disposition::Pass),
            Err(ProtocolError::InvalidLength { len: -1, .. })
        ));
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(scanner.next(&mut buf, &mut |_| Disposition::Pass), Err(ProtocolError::TooLarge { .. })));
        // Over the whole-message cap, but a valid protocol length.
        let mut buf = BytesMut::from(&msg(b'Q', &[b'x'; 100])[..]);
        assert!(matches!(
            scanner.next(&mut buf, &mut |_| Disposition::Whole),
            Err(ProtocolError::TooLarge { max: 64, .. })
        ));
    }

    proptest! {
        #[test]
        fn any_split_reassembles_exactly(
            msgs in proptest::collection::vec((b'A'..=b'z', proptest::collection::vec(any::<u8>(), 0..200)), 0..20),
            step in 1usize..64,
        ) {
            let input: Vec<u8> = msgs.iter().flat_map(|(t, b)| msg(*t, b)).collect();
            let (out, frames, seen) = drive(&input, step, b"QZE");
            prop_assert_eq!(out, input);
            prop_assert_eq!(seen, msgs.iter().map(|(t, _)| *t).collect::<Vec<_>>());
            let expected: Vec<&Vec<u8>> =
                msgs.iter().filter(|(t, _)| b"QZE".contains(t)).map(|(_, b)| b).collect();
            prop_assert_eq!(frames.iter().map(|f| f.body().to_vec()).collect::<Vec<_>>(),
                expected.into_iter().cloned().collect::<Vec<_>>());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut scanner = Scanner::new(128);
            let mut buf = BytesMut::from(&input[..]);
            let mut flip = false;
            while let Ok(Some(_)) = scanner.next(&mut buf, &mut |_| {
                flip = !flip;
                if flip { Disposition::Whole } else { Disposition::Pass }
            }) {}
        }
    }
}
