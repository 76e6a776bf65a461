//! PostgreSQL frontend messages (what an agent sends after startup).
//!
//! - `Scanner` over the stream, whole and in input-chosen chunks: the bytes handed
//!   out are the stream's, in order, and the chunking changes nothing
//!   (`airlock_fuzz::pg::check_scanner`).
//! - Every whole message through the readers the gateway uses on agent bytes
//!   (`message::parse_*`, `describe::frontend`, `describe::bind`): no panic; where
//!   `message` has a builder, decode -> encode -> decode gives the same value, and
//!   the bytes too where the reader reads the whole body.
//! - The transcript `airlock replay` uses, over the same stream: its text is safe
//!   for a terminal, and no length field makes it allocate ahead of the bytes.
#![no_main]

use airlock_fuzz::{Input, cuts, pg};
use airlock_postgres::describe::{self, Described};
use airlock_postgres::frame::{Frame, HEADER_LEN};
use airlock_postgres::message::{self, CloseTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    // A small cap, so that messages over it are refused as they are in the relay.
    let max_whole = HEADER_LEN + usize::from(input.byte()) * 8;
    let whole_tags = input.byte();
    let cuts = cuts(input.take(3));
    let stream = input.rest();

    // Ask for every message whole once (under a 1 MiB cap), to read them all below.
    for frame in pg::check_scanner(stream, &cuts, 1 << 20, 0xff) {
        check_message(&frame);
    }
    pg::check_scanner(stream, &cuts, max_whole, whole_tags);

    let mut as_json = airlock_postgres::transcript::Transcript::new(5);
    let mut as_text = airlock_postgres::transcript::Transcript::new(5);
    let mut text = Vec::new();
    for piece in airlock_fuzz::chunks(stream, &cuts) {
        let _ = as_json.json(true, piece);
        as_text.text(true, piece, 0, "[+0.000s]", &mut text).expect("writing to memory");
    }
    airlock_fuzz::assert_terminal_safe(&text, "the transcript");
});

/// The body of a message built by `message`.
fn body(raw: &[u8]) -> &[u8] {
    raw.get(HEADER_LEN..).expect("a built message has a header")
}

fn utf8(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

fn check_message(frame: &Frame) {
    let (tag, b) = (frame.tag(), frame.body());
    let described = describe::frontend(tag, b);
    match tag {
        message::tag::QUERY => {
            let Ok(sql) = message::parse_query(b) else { return };
            assert!(matches!(described, Ok(Described::Query(_))) || utf8(sql).is_none());
            if let Some(sql) = utf8(sql) {
                let again = message::query(sql);
                assert_eq!(message::parse_query(body(&again)), Ok(sql.as_bytes()));
                if b.len() == sql.len() + 1 {
                    assert_eq!(body(&again), b, "Query re-encodes to other bytes");
                }
            }
        }
        message::tag::PARSE => {
            let Ok((name, sql)) = message::parse_parse(b) else { return };
            if let (Some(name), Some(sql)) = (utf8(name), utf8(sql)) {
                let again = message::parse_named(name, sql);
                assert_eq!(message::parse_parse(body(&again)), Ok((name.as_bytes(), sql.as_bytes())));
            }
        }
        message::tag::BIND => {
            let names = message::parse_bind(b);
            let Ok(bind) = describe::bind(b) else { return };
            assert!(names.is_ok(), "describe::bind reads a body parse_bind refuses");
            for (range, value) in &bind.params {
                // Each value's range is where it sits in the body.
                match value {
                    Some(v) => assert_eq!(b.get(range.clone()), Some(*v)),
                    None => assert!(range.is_empty()),
                }
                assert!(range.end <= b.len());
            }
            if let Ok(Described::Bind { params, formats, .. }) = &described {
                assert_eq!(params.len(), bind.params.len());
                assert_eq!(formats, &bind.param_formats);
            }
        }
        message::tag::EXECUTE => {
            let _ = message::parse_execute(b);
        }
        message::tag::CLOSE | message::tag::DESCRIBE => {
            let close = message::parse_close(b);
            let describe = message::parse_describe(b);
            assert_eq!(close.is_ok(), describe.is_ok(), "Close and Describe share one shape");
            if let Ok((target, name)) = describe {
                assert_eq!(close.ok(), Some((target, name)));
                assert_eq!(b.first(), Some(if target == CloseTarget::Statement { &b'S' } else { &b'P' }));
            }
        }
        message::tag::PASSWORD => {
            let Ok(password) = message::parse_password(b) else { return };
            // The reader takes the whole body, so the builder must give it back exactly.
            let again = message::password_message(&[password.as_bytes(), b"\0"].concat());
            assert_eq!(body(&again), b);
            assert_eq!(message::parse_password(body(&again)), Ok(password));
        }
        message::tag::COPY_DATA => {
            for csv in [false, true] {
                for line in b.split(|c| *c == b'\n') {
                    let fields = airlock_postgres::copy::copy_fields(line, csv);
                    assert!(fields.iter().map(|f| f.len()).sum::<usize>() <= line.len());
                }
            }
        }
        _ => {}
    }
    if let Ok(Described::Other(t, len)) = described {
        assert_eq!((t, len), (tag as char, b.len()));
    }
}
