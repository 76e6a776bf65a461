//! The untagged packets that open a PostgreSQL connection.
//!
//! Before authentication a client sends `len:i32 code:i32 ...` packets without a tag:
//! SSLRequest, GSSENCRequest, CancelRequest or the StartupMessage itself. The server
//! caps them at 10 000 bytes (`MAX_STARTUP_PACKET_LENGTH`); so do we.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::Cursor;
use crate::frame::ProtocolError;

/// Largest startup-phase packet accepted, as in PostgreSQL's `pqcomm.h`.
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

const SSL_REQUEST_CODE: i32 = 80_877_103;
const GSSENC_REQUEST_CODE: i32 = 80_877_104;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// Protocol 3.0, the version Airlock speaks.
pub const PROTOCOL_3_0: i32 = 3 << 16;

/// A decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks to switch to TLS; answer `S` or `N`.
    SslRequest,
    /// The client asks for GSSAPI encryption; Airlock answers `N`.
    GssEncRequest,
    /// Cancel the query running on the backend named by the key.
    CancelRequest {
        /// Process id from BackendKeyData.
        pid: i32,
        /// Secret key from BackendKeyData (4 bytes in protocol 3.0, up to 256 in 3.2).
        secret: Bytes,
    },
    /// The StartupMessage proper.
    Startup(StartupMessage),
}

/// A StartupMessage: protocol version and parameters in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Major protocol version (3).
    pub major: u16,
    /// Minor protocol version (0, or 2 for PostgreSQL 18 clients asking for 3.2).
    pub minor: u16,
    /// `(name, value)` pairs, in wire order.
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// The value of parameter `name`, if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The database the client asked for; libpq defaults it to the user name.
    pub fn database(&self) -> Option<&str> {
        self.param("database").filter(|d| !d.is_empty()).or_else(|| self.param("user"))
    }

    /// Protocol extension options (`_pq_.*`), which Airlock does not support and must
    /// list in NegotiateProtocolVersion.
    pub fn protocol_options(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(k, _)| k.as_str()).filter(|k| k.starts_with("_pq_."))
    }
}

/// Decodes one startup-phase packet from the front of `buf`.
///
/// `Ok(None)`: more bytes are needed; `buf` is untouched. On success the packet's bytes
/// are consumed.
pub fn decode(buf: &mut BytesMut) -> Result<Option<StartupPacket>, ProtocolError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if len < 8 {
        return Err(ProtocolError::InvalidLength { tag: '\0', len: len.into() });
    }
    // Positive, so lossless.
    let len = len as usize;
    if len > MAX_STARTUP_PACKET_LEN {
        return Err(ProtocolError::TooLarge { tag: '\0', len, max: MAX_STARTUP_PACKET_LEN });
    }
    if buf.len() < len {
        return Ok(None);
    }
    let packet = buf.split_to(len).freeze();
    parse(packet.get(4..).unwrap_or_default()).map(Some)
}

fn parse(body: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let mut c = Cursor::new(body, "startup");
    let code = c.i32()?;
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let pid = c.i32()?;
            let secret = Bytes::copy_from_slice(c.remaining());
            if secret.len() < 4 || secret.len() > 256 {
                return Err(ProtocolError::Malformed("CancelRequest"));
            }
            Ok(StartupPacket::CancelRequest { pid, secret })
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(ProtocolError::Malformed("StartupMessage (unsupported protocol)"));
            }
            let mut params = Vec::new();
            loop {
                let name = c.cstr()?;
                if name.is_empty() {
                    break;
                }
                let value = c.cstr()?;
                params.push((name.to_owned(), value.to_owned()));
            }
            Ok(StartupPacket::Startup(StartupMessage { major, minor, params }))
        }
    }
}

/// Encodes a protocol 3.0 StartupMessage with `params` in the given order.
pub fn encode_startup<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    buf.put_i32(PROTOCOL_3_0);
    for (k, v) in params {
        put_cstr(&mut buf, k);
        put_cstr(&mut buf, v);
    }
    buf.put_u8(0);
    patch_len(buf)
}

/// Encodes an SSLRequest.
pub fn encode_ssl_request() -> Bytes {
    let mut buf = BytesMut::with_capacity(8);
    buf.put_i32(8);
    buf.put_i32(SSL_REQUEST_CODE);
    buf.freeze()
}

/// Encodes a CancelRequest for the given backend key.
pub fn encode_cancel_request(pid: i32, secret: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(12 + secret.len());
    buf.put_i32(0);
    buf.put_i32(CANCEL_REQUEST_CODE);
    buf.put_i32(pid);
    buf.put_slice(secret);
    patch_len(buf)
}

fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
}

fn patch_len(mut buf: BytesMut) -> Bytes {
    // Startup packets are capped far below i32::MAX by their callers' inputs.
    let len = buf.len() as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_bytewise(input: &[u8]) -> Result<StartupPacket, ProtocolError> {
        let mut buf = BytesMut::new();
        for (i, b) in input.iter().enumerate() {
            buf.put_u8(*b);
            if let Some(p) = decode(&mut buf)? {
                assert_eq!(i, input.len() - 1, "decoded before the last byte");
                assert!(buf.is_empty());
                return Ok(p);
            }
        }
        panic!("never decoded")
    }

    #[test]
    fn startup_round_trips_byte_at_a_time() {
        let raw = encode_startup([("user", "agent"), ("database", "app-db"), ("application_name", "psql")]);
        let StartupPacket::Startup(m) = feed_bytewise(&raw).unwrap() else { panic!() };
        assert_eq!((m.major, m.minor), (3, 0));
        assert_eq!(m.database(), Some("app-db"));
        assert_eq!(m.params[2], ("application_name".into(), "psql".into()));
    }

    #[test]
    fn database_defaults_to_user() {
        let raw = encode_startup([("user", "app-db")]);
        let StartupPacket::Startup(m) = feed_bytewise(&raw).unwrap() else { panic!() };
        assert_eq!(m.database(), Some("app-db"));
    }

    #[test]
    fn special_requests() {
        assert_eq!(feed_bytewise(&encode_ssl_request()).unwrap(), StartupPacket::SslRequest);
        assert_eq!(
            feed_bytewise(&encode_cancel_request(42, &[1, 2, 3, 4])).unwrap(),
            StartupPacket::CancelRequest { pid: 42, secret: Bytes::from_static(&[1, 2, 3, 4]) }
        );
        let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        assert_eq!(feed_bytewise(&gss).unwrap(), StartupPacket::GssEncRequest);
    }

    #[test]
    fn bad_lengths() {
        assert!(decode(&mut BytesMut::from(&[0u8, 0, 0, 4][..])).is_err());
        assert!(decode(&mut BytesMut::from(&[0xffu8, 0, 0, 4][..])).is_err());
        assert!(matches!(decode(&mut BytesMut::from(&[0u8, 1, 0, 0][..])), Err(ProtocolError::TooLarge { .. })));
        // Unterminated parameter list.
        let mut raw = BytesMut::new();
        raw.put_i32(13);
        raw.put_i32(PROTOCOL_3_0);
        raw.put_slice(b"user\0");
        assert!(decode(&mut raw).is_err());
    }

    proptest! {
        #[test]
        fn params_round_trip(params in proptest::collection::vec(("[a-z_]{1,12}", "[ -~]{0,20}"), 0..8)) {
            let raw = encode_startup(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let StartupPacket::Startup(m) = decode(&mut BytesMut::from(&raw[..])).unwrap().unwrap() else {
                panic!()
            };
            prop_assert_eq!(m.params, params);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&mut BytesMut::from(&input[..]));
        }
    }
}
