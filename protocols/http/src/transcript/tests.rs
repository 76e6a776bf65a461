use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::record::{Message, MessageKind, RequestHead, ResponseHead, encode};

fn get(url: &str) -> RequestHead {
    RequestHead {
        method: "GET".into(),
        url: url.into(),
        version: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "x".into()), ("Accept".into(), "application/json".into())],
    }
}

fn ok(headers: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        status: 200,
        version: "HTTP/1.1".into(),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
    }
}

fn end(bytes: u64) -> BodyEnd {
    BodyEnd { bytes, recorded: bytes, truncated: false, note: None }
}

/// The text transcript of `events`, each with its label and direction.
fn text(events: &[(&str, bool, Event)]) -> String {
    let mut t = Transcript::new();
    let mut out = Vec::new();
    for (at, from_agent, e) in events {
        t.text(*from_agent, &encode(e), 0, at, &mut out).unwrap();
    }
    t.finish("[+9.9s]", &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn an_exchange_reads_like_a_request_log() {
    let got = text(&[
        ("[+0.1s]", true, Event::Request(1, get("https://x/y?q=1"))),
        ("[+0.1s]", true, Event::End(1, end(0))),
        ("[+0.2s]", false, Event::Response(1, ok(&[("Content-Type", "application/json")]))),
        ("[+0.2s]", false, Event::Body(1, b"{\"a\":\r\n")),
        ("[+0.3s]", false, Event::Body(1, b"1}\n")),
        ("[+0.3s]", false, Event::End(1, end(10))),
    ]);
    assert_eq!(
        got,
        "[+0.1s] > GET https://x/y?q=1 HTTP/1.1\n\
         \x20       Host: x\n\
         \x20       Accept: application/json\n\
         [+0.2s] < 200 OK\n\
         \x20       Content-Type: application/json\n\
         \x20       | {\"a\":\n\
         \x20       | 1}\n"
    );
}

#[test]
fn binary_bodies_are_summarized_and_long_ones_cut() {
    let long = "é".repeat(MAX_SHOWN); // two bytes each: the cut falls between characters
    let got = text(&[
        ("[0]", true, Event::Request(1, RequestHead { method: "POST".into(), ..get("https://x/up") })),
        ("[0]", true, Event::Body(1, b"\x89PNG\r\n\x1a\n\0\0")),
        ("[0]", true, Event::End(1, end(10))),
        ("[1]", false, Event::Response(1, ok(&[]))),
        ("[1]", false, Event::Body(1, &long.as_bytes()[..4095])),
        ("[1]", false, Event::Body(1, &long.as_bytes()[4095..])),
        (
            "[1]",
            false,
            Event::End(
                1,
                BodyEnd { bytes: 1 << 20, recorded: 8192, truncated: true, note: Some("recording cap".into()) },
            ),
        ),
    ]);
    let shown = "é".repeat(MAX_SHOWN / 2);
    assert_eq!(
        got,
        format!(
            "[0] > POST https://x/up HTTP/1.1\n    Host: x\n    Accept: application/json\n    [10 bytes binary]\n\
             [1] < 200 OK\n    | {shown}\n    (body cut at 4096 of 8192 bytes)\n    (recorded 8192 of 1048576 bytes)\n    (recording cap)\n"
        )
    );
}

#[test]
fn a_cut_inside_a_character_keeps_the_text_before_it() {
    let body = format!("a{}", "é".repeat(MAX_SHOWN));
    let got =
        text(&[("[0]", false, Event::Body(1, body.as_bytes())), ("[0]", false, Event::End(1, end(body.len() as u64)))]);
    assert_eq!(got, format!("    | a{}\n    (body cut at 4095 of {} bytes)\n", "é".repeat(2047), body.len()));
}

#[test]
fn unknown_statuses_upgrades_and_unfinished_bodies_are_shown() {
    let got = text(&[
        ("[0]", false, Event::Response(1, ResponseHead { status: 599, version: "HTTP/1.1".into(), headers: vec![] })),
        ("[0]", false, Event::Response(2, ResponseHead { status: 101, version: "HTTP/1.1".into(), headers: vec![] })),
        ("[0]", true, Event::Upgraded(2, b"\x81\x85abcde")),
        ("[0]", false, Event::Upgraded(2, b"")),
        ("[0]", true, Event::Message(2, Message { kind: MessageKind::Text, len: 8, data: b"hi\nthere" })),
        ("[0]", false, Event::Message(2, Message { kind: MessageKind::Binary, len: 9, data: b"\xff\0" })),
        ("[0]", false, Event::Message(2, Message { kind: MessageKind::Close, len: 6, data: b"\x03\xe8done" })),
        ("[0]", true, Event::Body(3, b"partial")),
    ]);
    assert_eq!(
        got,
        "[0] < 599\n\
         [0] < 101 Switching Protocols\n\
         \x20   ~ 7 bytes from the agent (upgraded connection)\n\
         \x20   ~ 0 bytes to the agent (upgraded connection)\n\
         \x20   ~ text from the agent\n\
         \x20   | hi\n\
         \x20   | there\n\
         \x20   ~ binary to the agent\n\
         \x20   [2 bytes binary]\n\
         \x20   (recorded 2 of 9 bytes)\n\
         \x20   ~ close to the agent (1000 done)\n\
         \x20       | partial\n\
         \x20       (the body's end was not recorded)\n"
    );
}

#[test]
fn damaged_records_say_so() {
    let mut t = Transcript::new();
    let mut out = Vec::new();
    t.text(true, b"Z\0\0\0\0\0\0\0\x01", 0, "[0]", &mut out).unwrap();
    t.text(false, b"H", 0, "[0]", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "[0] damaged record (bad HTTP record: unknown tag 0x5a): 9 bytes from the agent\n\
         [0] damaged record (bad HTTP record: no exchange id): 1 bytes to the agent\n"
    );
    assert_eq!(t.json(false, b"")[0]["type"], "damaged");
}

#[test]
fn json_has_one_object_per_event() {
    let mut t = Transcript::new();
    let events = [
        (true, Event::Request(1, get("https://x/"))),
        (false, Event::Response(1, ok(&[("A", "b")]))),
        (false, Event::Body(1, b"hi")),
        (false, Event::Body(1, b"\xff")),
        (false, Event::End(1, end(3))),
        (true, Event::Upgraded(1, b"ws")),
        (false, Event::Message(1, Message { kind: MessageKind::Close, len: 4, data: b"\x03\xe8ok" })),
    ];
    let got: Vec<Value> = events.iter().flat_map(|(from_agent, e)| t.json(*from_agent, &encode(e))).collect();
    assert_eq!(
        got,
        [
            json!({"type": "request", "exchange": 1, "method": "GET", "url": "https://x/", "version": "HTTP/1.1",
                   "headers": [["Host", "x"], ["Accept", "application/json"]]}),
            json!({"type": "response", "exchange": 1, "status": 200, "reason": "OK", "version": "HTTP/1.1", "headers": [["A", "b"]]}),
            json!({"type": "body", "exchange": 1, "from_agent": false, "bytes": 2, "text": "hi"}),
            json!({"type": "body", "exchange": 1, "from_agent": false, "bytes": 1, "text": "\u{FFFD}", "base64": "/w=="}),
            json!({"type": "end", "exchange": 1, "from_agent": false, "bytes": 3, "recorded": 3, "truncated": false, "note": null}),
            json!({"type": "upgraded", "exchange": 1, "from_agent": true, "bytes": 2, "text": "ws"}),
            json!({"type": "message", "exchange": 1, "from_agent": false, "bytes": 4, "text": "\u{3}\u{FFFD}ok",
                   "base64": "A+hvaw==", "kind": "close", "len": 4, "code": 1000, "reason": "ok"}),
        ]
    );
}

/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000_000;

fn session() -> Vec<(bool, u64, Vec<u8>)> {
    let post = RequestHead {
        method: "POST".into(),
        url: "https://api.example.com/v1/items?tag=a%20b&tag=c+d&flag".into(),
        version: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "api.example.com".into()), ("Content-Type".into(), "application/json".into())],
    };
    let created = ResponseHead {
        status: 201,
        version: "HTTP/1.1".into(),
        headers: vec![("content-type".into(), "image/png".into()), ("Location".into(), "/v1/items/7".into())],
    };
    let events = [
        (true, 1_000, Event::Request(1, get("https://api.example.com/v1/items"))),
        (true, 1_000, Event::End(1, end(0))),
        (false, 13_500, Event::Response(1, ok(&[("Content-Type", "application/json")]))),
        (false, 14_000, Event::Body(1, b"[{\"id\":1}]")),
        (false, 15_250, Event::End(1, end(10))),
        (true, 20_000, Event::Request(2, post)),
        (true, 20_000, Event::Body(2, b"{\"name\":\"x\"}")),
        (true, 21_000, Event::End(2, end(12))),
        (false, 30_000, Event::Response(2, created)),
        (false, 30_000, Event::Body(2, b"\x89PNG\r\n")),
        (false, 31_000, Event::End(2, BodyEnd { bytes: 100, recorded: 6, truncated: true, note: None })),
    ];
    events.into_iter().map(|(from_agent, us, e)| (from_agent, T0 + us, encode(&e))).collect()
}

#[test]
fn a_session_makes_a_har_document_with_every_required_field() {
    let har = har(T0, session());
    let log = &har["log"];
    assert_eq!(log["version"], "1.2");
    assert_eq!(log["creator"], json!({"name": "airlock", "version": env!("CARGO_PKG_VERSION")}));
    assert_eq!(log["pages"][0]["startedDateTime"], "2023-11-14T22:13:20.000Z");
    assert!(log.get("comment").is_none());
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        for field in ["pageref", "startedDateTime", "time", "request", "response", "cache", "timings"] {
            assert!(entry.get(field).is_some(), "entry.{field}");
        }
        for field in ["method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"] {
            assert!(entry["request"].get(field).is_some(), "request.{field}");
        }
        let response = &entry["response"];
        for field in [
            "status",
            "statusText",
            "httpVersion",
            "cookies",
            "headers",
            "content",
            "redirectURL",
            "headersSize",
            "bodySize",
        ] {
            assert!(response.get(field).is_some(), "response.{field}");
        }
        assert!(response["content"]["size"].is_u64() && response["content"]["mimeType"].is_string());
        let timings = &entry["timings"];
        let sum = timings["send"].as_f64().unwrap()
            + timings["wait"].as_f64().unwrap()
            + timings["receive"].as_f64().unwrap();
        assert_eq!(entry["time"].as_f64(), Some(sum));
    }

    let get = &entries[0];
    assert_eq!(get["startedDateTime"], "2023-11-14T22:13:20.001Z");
    assert_eq!(get["time"], json!(14.25));
    assert_eq!(
        get["timings"],
        json!({"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": 12.5, "receive": 1.75, "ssl": -1})
    );
    assert_eq!(get["cache"], json!({}));
    assert_eq!(get["request"]["bodySize"], 0);
    assert!(get["request"].get("postData").is_none());
    assert_eq!(get["request"]["queryString"], json!([]));
    assert_eq!(
        get["request"]["headers"],
        json!([{"name": "Host", "value": "x"}, {"name": "Accept", "value": "application/json"}])
    );
    assert_eq!(
        get["response"],
        json!({
            "status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "content": {"size": 10, "mimeType": "application/json", "text": "[{\"id\":1}]"},
            "redirectURL": "", "headersSize": -1, "bodySize": 10,
        })
    );

    let post = &entries[1];
    assert_eq!(post["request"]["method"], "POST");
    assert_eq!(
        post["request"]["queryString"],
        json!([{"name": "tag", "value": "a b"}, {"name": "tag", "value": "c d"}, {"name": "flag", "value": ""}])
    );
    assert_eq!(
        post["request"]["postData"],
        json!({"mimeType": "application/json", "params": [], "text": "{\"name\":\"x\"}"})
    );
    assert_eq!(post["request"]["bodySize"], 12);
    assert_eq!(post["response"]["statusText"], "Created");
    assert_eq!(post["response"]["redirectURL"], "/v1/items/7");
    assert_eq!(
        post["response"]["content"],
        json!({"size": 100, "mimeType": "image/png", "text": "iVBORw0K", "encoding": "base64",
               "comment": "truncated in the record: 6 of 100 bytes recorded"})
    );
    assert_eq!(post["timings"]["wait"], json!(10.0));
    assert_eq!(post["timings"]["receive"], json!(1.0));
}

#[test]
fn an_exchange_without_a_response_has_status_zero() {
    let frames = vec![
        (true, T0, encode(&Event::Request(1, get("https://x/")))),
        (true, T0 + 2_000, encode(&Event::End(1, end(0)))),
        (false, T0, b"junk".to_vec()),
        (false, T0, encode(&Event::Response(9, ok(&[])))),
    ];
    let har = har(T0, frames);
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let response = &entries[0]["response"];
    assert_eq!(response["status"], 0);
    assert_eq!(response["statusText"], "");
    assert_eq!(entries[0]["timings"]["wait"], json!(2.0));
    assert_eq!(har["log"]["comment"], "1 damaged records left out; 1 exchanges without a recorded request left out");
}

#[test]
fn websocket_messages_are_in_their_entry_as_chromium_writes_them() {
    let upgrade = ResponseHead { status: 101, version: "HTTP/1.1".into(), headers: vec![] };
    let message = |kind, len, data: &'static [u8]| Message { kind, len, data };
    let frames = vec![
        (true, T0, encode(&Event::Request(1, get("https://x/ws")))),
        (false, T0 + 1_000, encode(&Event::Response(1, upgrade))),
        (true, T0 + 2_000, encode(&Event::Message(1, message(MessageKind::Text, 5, b"hello")))),
        (false, T0 + 2_500, encode(&Event::Message(1, message(MessageKind::Binary, 9, b"\xff\0")))),
        (true, T0 + 3_000, encode(&Event::Message(1, message(MessageKind::Close, 4, b"\x03\xe8ok")))),
    ];
    let har = har(T0, frames);
    let entry = &har["log"]["entries"][0];
    assert_eq!(entry["response"]["status"], 101);
    assert_eq!(
        entry["_webSocketMessages"],
        json!([
            {"type": "send", "time": 1_700_000_000.002, "opcode": 1, "data": "hello"},
            {"type": "receive", "time": 1_700_000_000.002_5, "opcode": 2, "data": "/wA=",
             "_comment": "truncated in the record: 2 of 9 bytes recorded"},
            {"type": "send", "time": 1_700_000_000.003, "opcode": 8, "data": "ok", "_code": 1000},
        ])
    );
}

#[test]
fn dates_are_iso_8601_utc_with_milliseconds() {
    assert_eq!(har::iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(har::iso8601(951_782_400_000_000 + 999_999), "2000-02-29T00:00:00.999Z");
    assert_eq!(har::iso8601(T0 + 123_456), "2023-11-14T22:13:20.123Z");
    assert_eq!(har::iso8601(4_102_444_799_000_000), "2099-12-31T23:59:59.000Z");
    assert!(har::iso8601(u64::MAX).ends_with('Z'));
}

proptest! {
    #[test]
    fn any_payload_is_shown_without_panicking(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
        let mut t = Transcript::new();
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            t.text(i % 2 == 0, p, 0, "[+0s]", &mut out).unwrap();
            prop_assert_eq!(t.json(i % 2 == 1, p).len(), 1);
        }
        t.finish("[+0s]", &mut out).unwrap();
        let frames = payloads.into_iter().enumerate().map(|(i, p)| (i % 3 == 0, i as u64, p));
        prop_assert_eq!(&har(0, frames)["log"]["version"], "1.2");
    }

    #[test]
    fn bodies_held_back_stay_bounded(ids in proptest::collection::vec(0u64..200, 0..300)) {
        let mut t = Transcript::new();
        let mut out = Vec::new();
        for id in ids {
            t.text(false, &encode(&Event::Body(id, &[b'x'; 100])), 0, "[0]", &mut out).unwrap();
            prop_assert!(t.pending.len() <= MAX_PENDING);
        }
    }
}
