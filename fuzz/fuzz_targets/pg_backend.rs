//! PostgreSQL backend messages (what an upstream server sends).
//!
//! - `Scanner` over the stream, whole and in input-chosen chunks: the bytes handed
//!   out are the stream's, in order, and the chunking changes nothing
//!   (`airlock_fuzz::pg::check_scanner`).
//! - Every whole message through the readers the gateway uses on upstream bytes
//!   (`message::parse_*`, `Fields`, `describe::backend`, `describe::data_row`,
//!   `describe::row_description`): no panic; where `message` has a builder,
//!   decode -> encode -> decode gives the same value, and the same bytes where the
//!   reader reads the whole body.
//! - The transcript `airlock replay` uses, over the same stream: its text is safe
//!   for a terminal, and no length field makes it allocate ahead of the bytes.
#![no_main]

use airlock_fuzz::{Input, cuts, pg};
use airlock_postgres::describe::{self, Described};
use airlock_postgres::frame::{Frame, HEADER_LEN};
use airlock_postgres::message::{self, AuthRequest, Fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let max_whole = HEADER_LEN + usize::from(input.byte()) * 8;
    let whole_tags = input.byte();
    let cuts = cuts(input.take(3));
    let stream = input.rest();

    for frame in pg::check_scanner(stream, &cuts, 1 << 20, 0xff) {
        check_message(&frame);
    }
    pg::check_scanner(stream, &cuts, max_whole, whole_tags);

    let mut as_json = airlock_postgres::transcript::Transcript::new(5);
    let mut as_text = airlock_postgres::transcript::Transcript::new(5);
    let mut text = Vec::new();
    for piece in airlock_fuzz::chunks(stream, &cuts) {
        let _ = as_json.json(false, piece);
        as_text.text(false, piece, 0, "[+0.000s]", &mut text).expect("writing to memory");
    }
    airlock_fuzz::assert_terminal_safe(&text, "the transcript");
});

fn body(raw: &[u8]) -> &[u8] {
    raw.get(HEADER_LEN..).expect("a built message has a header")
}

fn check_message(frame: &Frame) {
    let (tag, b) = (frame.tag(), frame.body());
    let described = describe::backend(tag, b);
    match tag {
        message::tag::AUTHENTICATION => {
            let Ok(request) = message::parse_auth_request(b) else { return };
            let rebuilt = match request {
                AuthRequest::Ok => Some(message::auth_ok()),
                AuthRequest::Cleartext => Some(message::auth_cleartext_password()),
                _ => None,
            };
            if let Some(raw) = rebuilt {
                assert_eq!(message::parse_auth_request(body(&raw)), Ok(request));
                if b.len() == 4 {
                    assert_eq!(body(&raw), b);
                }
            }
        }
        message::tag::ERROR_RESPONSE | message::tag::NOTICE_RESPONSE => {
            let fields = Fields::parse(b);
            match (&fields, &described) {
                (Ok(f), Ok(Described::Error(d) | Described::Notice(d))) => assert_eq!(f, d),
                (Err(_), Err(_)) => {}
                other => panic!("Fields::parse and describe::backend disagree: {other:?}"),
            }
            if let Ok(f) = fields {
                assert!(f.0.iter().all(|(code, value)| *code != 0 && !value.contains('\0')));
                // What the gateway shows of an upstream error, rebuilt the way it does.
                let raw = message::error_response(message::Severity::Error, f.code(), f.message(), None);
                let again = Fields::parse(body(&raw)).expect("our own ErrorResponse reads back");
                assert_eq!((again.code(), again.message()), (f.code(), f.message()));
            }
        }
        message::tag::PARAMETER_STATUS => {
            let Ok((name, value)) = message::parse_parameter_status(b) else { return };
            let raw = message::parameter_status(name, value);
            assert_eq!(message::parse_parameter_status(body(&raw)), Ok((name, value)));
            if b.len() == name.len() + value.len() + 2 {
                assert_eq!(body(&raw), b);
            }
        }
        message::tag::BACKEND_KEY_DATA => {
            let Ok((pid, secret)) = message::parse_backend_key_data(b) else { return };
            assert!((4..=256).contains(&secret.len()));
            if let Ok(four) = <[u8; 4]>::try_from(&secret[..]) {
                let raw = message::backend_key_data(pid, i32::from_be_bytes(four));
                assert_eq!(body(&raw), b, "BackendKeyData re-encodes to other bytes");
            }
        }
        message::tag::READY_FOR_QUERY => {
            let Ok(status) = message::parse_ready_for_query(b) else { return };
            assert_eq!(body(&message::ready_for_query(status)), b);
            assert_eq!(described, Ok(Described::Ready(status)));
        }
        message::tag::ROW_DESCRIPTION => {
            let columns = describe::row_description(b);
            assert_eq!(columns.is_ok(), described.is_ok());
            if let (Ok(columns), Ok(Described::RowDescription(d))) = (columns, &described) {
                assert_eq!(&columns, d);
            }
        }
        message::tag::DATA_ROW => {
            let values = describe::data_row(b);
            match (&values, &described) {
                (Ok(v), Ok(Described::DataRow(d))) => {
                    assert_eq!(v.len(), d.len());
                    for (a, b) in v.iter().zip(d) {
                        assert_eq!(a.map(<[u8]>::to_vec), *b);
                    }
                }
                (Err(_), Err(_)) => {}
                other => panic!("data_row and describe::backend disagree: {other:?}"),
            }
        }
        message::tag::COMMAND_COMPLETE => {
            if let Some(n) = message::rows_changed(b) {
                let text = String::from_utf8_lossy(b);
                assert!(text.contains(&n.to_string()) || text.contains('+'), "{text:?} -> {n}");
            }
        }
        _ => {}
    }
}
