//! SFTP version 3 (draft-ietf-secsh-filexfer-02) as OpenSSH speaks it, extensions
//! included, for a gateway that watches the `sftp` subsystem channel.
//!
//! Bytes move through three pieces:
//!
//! - [`Framer`] splits either direction of the channel into whole [`Packet`]s
//!   (`uint32 length | byte type | ...`), whatever the chunking, with a capped length.
//! - [`decode_request`] reads a client packet into a [`Request`], which says what it
//!   touches ([`Request::paths`]) and whether it reads or writes ([`Request::access`]).
//!   [`normalize`] makes a path comparable with policy globs, and [`status`] builds the
//!   reply that refuses a request without forwarding it.
//! - [`Tracker`] follows requests and replies by id and reports completed operations
//!   ([`Op`]): files read and written (bytes and SHA-256), directories listed, and
//!   every change to the file system, with the server's verdict.
//!
//! Packets are forwarded unchanged ([`Packet::raw`]); nothing here rewrites them.

mod digest;
mod request;
mod tracker;

#[cfg(test)]
mod server_test;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

pub use request::{Access, Extended, OpenFlags, Request, decode_request};
pub use tracker::{MAX_HANDLES, MAX_PENDING, MAX_REORDER, Op, OpKind, Status, Tracker};

/// The largest packet length field accepted, in bytes (the length counts what follows it).
///
/// OpenSSH's `sftp-server` and `sftp` refuse packets over 256 KiB
/// (`SFTP_MAX_MSG_LENGTH`). Other implementations (Go's `pkg/sftp`, for one) can be
/// configured to move 256 KiB of *data* per packet, which needs room for the header,
/// handle and offset on top; 1 KiB of slack covers that without inviting more.
pub const MAX_PACKET: u32 = 256 * 1024 + 1024;

/// The longest handle the protocol allows (draft-02 §3: "MUST NOT be longer than 256 bytes").
pub const MAX_HANDLE: usize = 256;

/// SFTP packet types (`SSH_FXP_*`).
pub mod kind {
    /// Client hello, with the version it speaks. Carries no request id.
    pub const INIT: u8 = 1;
    /// Server hello. Carries no request id.
    pub const VERSION: u8 = 2;
    /// Open a file.
    pub const OPEN: u8 = 3;
    /// Close a file or directory handle.
    pub const CLOSE: u8 = 4;
    /// Read from a file handle.
    pub const READ: u8 = 5;
    /// Write to a file handle.
    pub const WRITE: u8 = 6;
    /// Attributes of a path, not following symlinks.
    pub const LSTAT: u8 = 7;
    /// Attributes of an open handle.
    pub const FSTAT: u8 = 8;
    /// Change attributes of a path.
    pub const SETSTAT: u8 = 9;
    /// Change attributes of an open handle.
    pub const FSETSTAT: u8 = 10;
    /// Open a directory for listing.
    pub const OPENDIR: u8 = 11;
    /// Next batch of names from a directory handle.
    pub const READDIR: u8 = 12;
    /// Remove a file.
    pub const REMOVE: u8 = 13;
    /// Create a directory.
    pub const MKDIR: u8 = 14;
    /// Remove a directory.
    pub const RMDIR: u8 = 15;
    /// Canonicalize a path.
    pub const REALPATH: u8 = 16;
    /// Attributes of a path, following symlinks.
    pub const STAT: u8 = 17;
    /// Rename a path.
    pub const RENAME: u8 = 18;
    /// Read a symlink's target.
    pub const READLINK: u8 = 19;
    /// Create a symlink.
    pub const SYMLINK: u8 = 20;
    /// Reply: a status code and message.
    pub const STATUS: u8 = 101;
    /// Reply: an opened handle.
    pub const HANDLE: u8 = 102;
    /// Reply: data read.
    pub const DATA: u8 = 103;
    /// Reply: names (directory entries, realpath, readlink).
    pub const NAME: u8 = 104;
    /// Reply: attributes.
    pub const ATTRS: u8 = 105;
    /// A named extension request.
    pub const EXTENDED: u8 = 200;
    /// Reply to an extension request.
    pub const EXTENDED_REPLY: u8 = 201;
}

/// SFTP status codes (`SSH_FX_*`) carried by [`kind::STATUS`] replies.
pub mod code {
    /// Success.
    pub const OK: u32 = 0;
    /// End of file, or no more directory entries.
    pub const EOF: u32 = 1;
    /// The path does not exist.
    pub const NO_SUCH_FILE: u32 = 2;
    /// Not permitted.
    pub const PERMISSION_DENIED: u32 = 3;
    /// Some other failure.
    pub const FAILURE: u32 = 4;
    /// The packet was badly formed.
    pub const BAD_MESSAGE: u32 = 5;
    /// No connection to the server (client-side only).
    pub const NO_CONNECTION: u32 = 6;
    /// The connection was lost (client-side only).
    pub const CONNECTION_LOST: u32 = 7;
    /// The server does not support the operation.
    pub const OP_UNSUPPORTED: u32 = 8;
}

/// An SFTP peer sent bytes that are not SFTP. The stream cannot be followed after it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SftpError {
    /// A packet length of zero: not even a type byte.
    #[error("SFTP packet with a zero length")]
    Empty,
    /// A packet length over [`MAX_PACKET`].
    #[error("SFTP packet of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length field as sent.
        len: u32,
        /// The cap in force.
        max: u32,
    },
    /// A packet that ends before one of its fields does.
    #[error("SFTP packet of type {kind} ends inside its {field}")]
    Truncated {
        /// The packet type.
        kind: u8,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A handle longer than [`MAX_HANDLE`].
    #[error("SFTP handle of {len} bytes exceeds the limit of {MAX_HANDLE} bytes")]
    HandleTooLong {
        /// The handle's length as sent.
        len: usize,
    },
    /// A path or name that is not UTF-8. Policy globs cannot judge it, so it is refused
    /// rather than guessed at.
    #[error("SFTP packet of type {kind} has a {field} that is not UTF-8")]
    NotUtf8 {
        /// The packet type.
        kind: u8,
        /// Which field.
        field: &'static str,
    },
    /// A server packet type (or `VERSION`) sent by the client.
    #[error("SFTP packet type {kind} is not a client request")]
    NotARequest {
        /// The packet type.
        kind: u8,
    },
}

impl SftpError {
    /// The `STATUS` reply that refuses the packet `id` this error came from, or `None`
    /// when the framing itself is broken and the channel must close: nothing after
    /// the bad length can be trusted to be a packet.
    ///
    /// A path that is not UTF-8 is refused as `PERMISSION_DENIED` (policy cannot judge
    /// it); a packet that is malformed, or not a request, as `BAD_MESSAGE`, as the
    /// server would.
    pub fn agent_reply(&self, id: Option<u32>) -> Option<Bytes> {
        let code = match self {
            SftpError::Empty | SftpError::TooLarge { .. } => return None,
            SftpError::NotUtf8 { .. } => code::PERMISSION_DENIED,
            SftpError::Truncated { .. } | SftpError::HandleTooLong { .. } | SftpError::NotARequest { .. } => {
                code::BAD_MESSAGE
            }
        };
        Some(status(id?, code, &format!("refused by Airlock: {self}")))
    }
}

/// One whole SFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet as it was on the wire, length prefix included, to forward unchanged.
    pub raw: Bytes,
    /// The packet type ([`kind`]).
    pub kind: u8,
    /// The request id; `None` for `INIT` and `VERSION`, which have none.
    pub id: Option<u32>,
}

impl Packet {
    /// The fields after the type byte and the id (if the type has one).
    pub fn body(&self) -> Bytes {
        let start = if self.id.is_some() { 9 } else { 5 };
        // `raw` came from the framer, which checked it holds the header and id.
        self.raw.slice(start.min(self.raw.len())..)
    }
}

/// Splits one direction of an SFTP channel into packets, whatever the chunking.
///
/// Call [`Framer::next`] until it returns `Ok(None)` after each [`Framer::push`]; at most
/// one incomplete packet (≤ [`MAX_PACKET`] + 4 bytes) is then held. After an `Err` the
/// stream is broken and every later call returns the same error.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Appends bytes read from the channel.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole packet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole packet: `Ok(Some)` when one is complete, `Ok(None)` when more
    /// bytes are needed, `Err` when the peer broke the framing.
    #[allow(clippy::should_implement_trait)] // fallible, so not an `Iterator`
    pub fn next(&mut self) -> Result<Option<Packet>, SftpError> {
        let Some(&len) = self.buf.first_chunk::<4>() else { return Ok(None) };
        let len = u32::from_be_bytes(len);
        if len == 0 {
            return Err(SftpError::Empty);
        }
        if len > MAX_PACKET {
            return Err(SftpError::TooLarge { len, max: MAX_PACKET });
        }
        // Both bounded by MAX_PACKET, so no overflow.
        let total = 4 + len as usize;
        let Some(&kind) = self.buf.get(4) else { return Ok(None) };
        let has_id = kind != kind::INIT && kind != kind::VERSION;
        if has_id && len < 5 {
            return Err(SftpError::Truncated { kind, field: "request id" });
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let raw = self.buf.split_to(total).freeze();
        let id = match raw.get(5..9) {
            Some(id) if has_id => Some(id.try_into().map(u32::from_be_bytes).unwrap_or_default()),
            _ => None,
        };
        Ok(Some(Packet { raw, kind, id }))
    }
}

/// An `SSH_FXP_STATUS` reply to request `id`, with `code` ([`code`]), `message` and an
/// empty language tag: how the gateway refuses a request without forwarding it.
pub fn status(id: u32, code: u32, message: &str) -> Bytes {
    // A message from our own code; cap it anyway so the packet stays well under MAX_PACKET.
    let message = truncate(message, 1024);
    let len = 1 + 4 + 4 + 4 + message.len() + 4;
    let mut b = BytesMut::with_capacity(4 + len);
    b.put_u32(len as u32);
    b.put_u8(kind::STATUS);
    b.put_u32(id);
    b.put_u32(code);
    b.put_u32(message.len() as u32);
    b.put_slice(message.as_bytes());
    b.put_u32(0);
    b.freeze()
}

/// An `SSH_FXP_REALPATH` request for `path`: how the gateway asks the server where a
/// path really leads (symlinks resolved) before it lets a request on it through.
pub fn realpath(id: u32, path: &str) -> Bytes {
    let len = 1 + 4 + 4 + path.len();
    let mut b = BytesMut::with_capacity(4 + len);
    b.put_u32(len as u32);
    b.put_u8(kind::REALPATH);
    b.put_u32(id);
    b.put_u32(path.len() as u32);
    b.put_slice(path.as_bytes());
    b.freeze()
}

/// The first name of an `SSH_FXP_NAME` reply (a `REALPATH` answer), or `None` for any
/// other reply (a `STATUS`: no such path) or one that is not UTF-8.
pub fn first_name(packet: &Packet) -> Option<String> {
    if packet.kind != kind::NAME {
        return None;
    }
    let mut r = Reader::new(packet.body(), packet.kind);
    if r.u32("count").ok()? == 0 {
        return None;
    }
    r.text("filename").ok()
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A path made comparable with policy globs, lexically: `//` collapsed, `.` dropped,
/// `..` resolved against what precedes it, no trailing `/`.
///
/// A relative path stays relative (`a/../b` → `b`, `a/..` → `.`); SFTP resolves it against
/// the session's start directory (usually the home directory), which the caller knows
/// from `realpath(".")`. `None` refuses the path: a `..` that climbs above `/` or above
/// the start of a relative path, or a NUL or other control character.
///
/// This is a *lexical* view. A symlink on the server can still lead anywhere, and a
/// policy that allows `/srv/**` also allows whatever `/srv/link` points at; the upstream
/// account's own permissions are the real boundary.
pub fn normalize(path: &str) -> Option<String> {
    if path.chars().any(char::is_control) {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    let joined = parts.join("/");
    Some(if path.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    })
}

/// A read cursor over a packet's fields, every length checked against what is left.
pub(crate) struct Reader {
    buf: Bytes,
    kind: u8,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, kind: u8) -> Reader {
        Reader { buf, kind }
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), SftpError> {
        if self.buf.remaining() < n { Err(SftpError::Truncated { kind: self.kind, field }) } else { Ok(()) }
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, SftpError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, SftpError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    /// A `string`: its length is checked against the packet before anything is taken,
    /// and the bytes are a view into the packet, not a copy.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<Bytes, SftpError> {
        let len = self.u32(field)? as usize;
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<String, SftpError> {
        let b = self.string(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| SftpError::NotUtf8 { kind: self.kind, field })
    }

    pub(crate) fn handle(&mut self) -> Result<Bytes, SftpError> {
        let h = self.string("handle")?;
        if h.len() > MAX_HANDLE {
            return Err(SftpError::HandleTooLong { len: h.len() });
        }
        Ok(h)
    }

    pub(crate) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A packet of `kind` with `body` after the type byte.
    pub(crate) fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn realpath_requests_and_name_replies() {
        let mut f = Framer::default();
        f.push(&realpath(7, "/srv/a"));
        let p = f.next().unwrap().unwrap();
        assert_eq!((p.kind, p.id), (kind::REALPATH, Some(7)));
        assert!(matches!(decode_request(&p), Ok((7, Request::Realpath { ref path })) if path == "/srv/a"));
        let mut name = BytesMut::new();
        // type, id, count, filename "/srv/b", empty longname, empty attrs.
        let body_len = 1 + 4 + 4 + (4 + 6) + 4 + 4;
        name.put_u32(body_len);
        name.put_u8(kind::NAME);
        name.put_u32(7);
        name.put_u32(1);
        name.put_u32(6);
        name.put_slice(b"/srv/b");
        name.put_u32(0);
        name.put_u32(0);
        f.push(&name);
        let p = f.next().unwrap().unwrap();
        assert_eq!(first_name(&p).as_deref(), Some("/srv/b"));
        f.push(&status(7, code::NO_SUCH_FILE, "no"));
        assert_eq!(first_name(&f.next().unwrap().unwrap()), None);
    }

    #[test]
    fn frames_whole_and_split_packets() {
        let mut bytes = packet(kind::INIT, &3u32.to_be_bytes());
        bytes.extend(packet(kind::REALPATH, b"\0\0\0\x07\0\0\0\x01."));
        let mut f = Framer::new();
        for b in &bytes {
            f.push(std::slice::from_ref(b));
        }
        let init = f.next().unwrap().unwrap();
        assert_eq!((init.kind, init.id, init.raw.len()), (kind::INIT, None, 9));
        assert_eq!(&init.body()[..], &3u32.to_be_bytes());
        let real = f.next().unwrap().unwrap();
        assert_eq!((real.kind, real.id), (kind::REALPATH, Some(7)));
        assert_eq!(&real.body()[..], b"\0\0\0\x01.");
        assert_eq!(f.next(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn waits_for_the_rest() {
        let mut f = Framer::new();
        f.push(&[0, 0, 0]);
        assert_eq!(f.next(), Ok(None));
        f.push(&[9, kind::OPEN, 0, 0]);
        assert_eq!(f.next(), Ok(None));
        assert_eq!(f.buffered(), 7);
    }

    #[test]
    fn refuses_bad_lengths() {
        let mut f = Framer::new();
        f.push(&[0, 0, 0, 0]);
        assert_eq!(f.next(), Err(SftpError::Empty));
        let mut f = Framer::new();
        f.push(&(MAX_PACKET + 1).to_be_bytes());
        assert_eq!(f.next(), Err(SftpError::TooLarge { len: MAX_PACKET + 1, max: MAX_PACKET }));
        let mut f = Framer::new();
        f.push(&u32::MAX.to_be_bytes());
        assert!(f.next().is_err());
        let mut f = Framer::new();
        f.push(&[0, 0, 0, 3, kind::OPEN, 0, 0]);
        assert_eq!(f.next(), Err(SftpError::Truncated { kind: kind::OPEN, field: "request id" }));
        // The largest allowed length is accepted once complete.
        let mut f = Framer::new();
        f.push(&packet(kind::WRITE, &vec![0; MAX_PACKET as usize - 1]));
        assert_eq!(f.next().unwrap().unwrap().raw.len(), MAX_PACKET as usize + 4);
    }

    #[test]
    fn builds_status_replies() {
        let s = status(42, code::PERMISSION_DENIED, "denied");
        assert_eq!(&s[..], b"\0\0\0\x17\x65\0\0\0\x2a\0\0\0\x03\0\0\0\x06denied\0\0\0\0");
        let mut f = Framer::new();
        f.push(&s);
        let p = f.next().unwrap().unwrap();
        assert_eq!((p.kind, p.id), (kind::STATUS, Some(42)));
    }

    #[test]
    fn errors_map_to_replies() {
        assert_eq!(SftpError::TooLarge { len: 1 << 30, max: MAX_PACKET }.agent_reply(Some(1)), None);
        assert_eq!(SftpError::NotARequest { kind: kind::VERSION }.agent_reply(None), None);
        let e = SftpError::NotUtf8 { kind: kind::REMOVE, field: "path" };
        let mut f = Framer::new();
        f.push(&e.agent_reply(Some(5)).unwrap());
        let p = f.next().unwrap().unwrap();
        let mut r = Reader::new(p.body(), p.kind);
        assert_eq!((p.id, r.u32("code")), (Some(5), Ok(code::PERMISSION_DENIED)));
        assert_eq!(
            &r.string("message").unwrap()[..],
            b"refused by Airlock: SFTP packet of type 13 has a path that is not UTF-8"
        );
    }

    #[test]
    fn normalizes_paths() {
        let cases = [
            ("/a//b/./c/", Some("/a/b/c")),
            ("/a/b/../c", Some("/a/c")),
            ("a/../b", Some("b")),
            ("a/..", Some(".")),
            ("", Some(".")),
            (".", Some(".")),
            ("/", Some("/")),
            ("//", Some("/")),
            ("/..", None),
            ("/a/../..", None),
            ("..", None),
            ("a/../../b", None),
            ("/a\0b", None),
            ("/a\nb", None),
            ("/a\u{9b}b", None),
            ("/tmp/é x", Some("/tmp/é x")),
            ("~/x", Some("~/x")),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path).as_deref(), want, "{path:?}");
        }
    }

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    fn frame_all(chunks: &[&[u8]]) -> (Vec<Packet>, Option<SftpError>) {
        let mut f = Framer::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            loop {
                match f.next() {
                    Ok(Some(p)) => {
                        let _ = decode_request(&p).map(|(_, r)| (r.access(), r.paths().len()));
                        out.push(p);
                    }
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    proptest! {
        #[test]
        fn any_chunking_frames_alike_and_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for a in at {
                chunks.push(&bytes[prev..a]);
                prev = a;
            }
            chunks.push(&bytes[prev..]);
            prop_assert_eq!(frame_all(&chunks), frame_all(&[&bytes]));
        }

        #[test]
        fn well_framed_garbage_never_panics(
            packets in proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16),
        ) {
            let mut bytes = Vec::new();
            for (k, body) in &packets {
                bytes.extend(packet(*k, body));
            }
            let (framed, err) = frame_all(&[&bytes]);
            prop_assert!(err.is_none() || framed.len() < packets.len());
            let mut t = Tracker::new();
            for p in &framed {
                if let Ok((id, r)) = decode_request(p) {
                    t.request(id, &r);
                }
                t.response(p);
            }
        }
    }
}
