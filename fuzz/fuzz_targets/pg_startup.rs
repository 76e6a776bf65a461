//! PostgreSQL startup-phase packets (SSLRequest, GSSENCRequest, CancelRequest,
//! StartupMessage), as `startup::decode` reads them off a new connection.
//!
//! - Decoding the bytes whole and fed in input-chosen chunks gives the same packets
//!   and the same error; `Ok(None)` never consumes a byte, a packet consumes exactly
//!   its length field's worth.
//! - decode -> encode -> decode: a StartupMessage's parameters and a CancelRequest
//!   (whose encoding is exact) survive the builders the gateway sends upstream.
#![no_main]

use airlock_fuzz::{Input, chunks, cuts};
use airlock_postgres::frame::ProtocolError;
use airlock_postgres::startup::{self, MAX_STARTUP_PACKET_LEN, StartupPacket};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Decodes packets from `pieces` fed in order, as a connection reads them.
fn decode_all(pieces: &[&[u8]]) -> (Vec<StartupPacket>, Option<ProtocolError>, Vec<u8>) {
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.clone();
            match startup::decode(&mut buf) {
                Ok(Some(p)) => {
                    let used = before.len() - buf.len();
                    let len = i32::from_be_bytes([before[0], before[1], before[2], before[3]]);
                    assert_eq!(usize::try_from(len).ok(), Some(used), "consumed other than the length field says");
                    assert!((8..=MAX_STARTUP_PACKET_LEN).contains(&used));
                    packets.push(p);
                }
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) touched the buffer");
                    break;
                }
                Err(e) => return (packets, Some(e), buf.to_vec()),
            }
        }
    }
    (packets, None, buf.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cuts = cuts(input.take(3));
    let stream = input.rest();

    let whole = decode_all(&[stream]);
    let cut = decode_all(&chunks(stream, &cuts));
    assert_eq!((&whole.0, &whole.1), (&cut.0, &cut.1), "decoding depends on the chunking");
    if whole.1.is_none() {
        // What is left is the start of an incomplete packet, however it arrived.
        assert_eq!(whole.2, cut.2);
        assert!(stream.ends_with(&whole.2));
    }

    for packet in &whole.0 {
        match packet {
            StartupPacket::Startup(m) => {
                assert_eq!(m.major, 3);
                if m.params.iter().all(|(k, v)| !k.is_empty() && !k.contains('\0') && !v.contains('\0')) {
                    let raw = startup::encode_startup(m.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    if raw.len() <= MAX_STARTUP_PACKET_LEN {
                        let again = startup::decode(&mut BytesMut::from(&raw[..]));
                        let Ok(Some(StartupPacket::Startup(again))) = again else {
                            panic!("our own StartupMessage does not decode: {again:?}")
                        };
                        assert_eq!(again.params, m.params);
                        assert_eq!((again.major, again.minor), (3, 0));
                    }
                }
                let _ = (m.database(), m.protocol_options().count());
            }
            StartupPacket::CancelRequest { pid, secret } => {
                assert!((4..=256).contains(&secret.len()));
                let raw = startup::encode_cancel_request(*pid, secret);
                assert_eq!(
                    startup::decode(&mut BytesMut::from(&raw[..])),
                    Ok(Some(StartupPacket::CancelRequest { pid: *pid, secret: secret.clone() }))
                );
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {}
        }
    }
});
