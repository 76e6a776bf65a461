use proptest::prelude::*;
use serde_json::json;

use super::*;

/// The text transcript of `events`, each with its `[+Ns]` label and direction.
fn text(events: &[(&str, bool, Event)]) -> String {
    let mut t = Transcript::new();
    let mut out = Vec::new();
    for (at, from_agent, e) in events {
        t.text(*from_agent, &e.encode(), 0, at, &mut out).unwrap();
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn an_exec_session_reads_like_a_terminal_log() {
    let got = text(&[
        ("[+0.010s]", true, Event::Exec { channel: 0, command: "uname -a; ls /nope" }),
        ("[+0.020s]", true, Event::Data { channel: 0, stream: Stream::In, bytes: b"12345" }),
        ("[+0.100s]", false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"Linux h 6.1 x86_64\nsec" }),
        ("[+0.110s]", false, Event::Data { channel: 0, stream: Stream::Err, bytes: b"ls: cannot access '/nope'\n" }),
        ("[+0.120s]", false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"ond\r\n\nlast" }),
        ("[+0.200s]", false, Event::Exit { channel: 0, status: 2 }),
        ("[+0.210s]", false, Event::Eof { channel: 0 }),
        ("[+0.220s]", false, Event::Close { channel: 0 }),
        ("[+0.220s]", true, Event::Close { channel: 0 }),
    ]);
    assert_eq!(
        got,
        "[+0.010s] $ uname -a; ls /nope\n\
         \x20         (5 bytes of input)\n\
         \x20         | Linux h 6.1 x86_64\n\
         \x20         ! ls: cannot access '/nope'\n\
         \x20         | second\n\
         \x20         | \n\
         \x20         | last\n\
         [+0.200s] exit 2\n"
    );
}

#[test]
fn a_shell_session_shows_typed_lines_not_keys() {
    let got = text(&[
        ("[+0.0s]", true, Event::Pty { channel: 1, cols: 80, rows: 24, term: "xterm" }),
        ("[+0.0s]", true, Event::Shell { channel: 1 }),
        ("[+0.1s]", false, Event::Data { channel: 1, stream: Stream::Out, bytes: b"\x1b[01;32muser@h\x1b[00m:~$ " }),
        ("[+0.5s]", true, Event::Data { channel: 1, stream: Stream::In, bytes: b"ls\r" }),
        ("[+0.5s]", true, Event::Line { channel: 1, line: "ls" }),
        ("[+0.6s]", false, Event::Data { channel: 1, stream: Stream::Out, bytes: b"ls\r\n\x1b]0;title\x07a  b\r\n" }),
        ("[+0.7s]", true, Event::Resize { channel: 1, cols: 120, rows: 40 }),
        ("[+0.9s]", false, Event::ExitSignal { channel: 1, signal: "KILL" }),
        ("[+1.0s]", false, Event::Close { channel: 1 }),
    ]);
    assert_eq!(
        got,
        "[+0.0s] [ch 1] shell (pty xterm 80x24)\n\
         [+0.5s] [ch 1] > ls\n\
         \x20       [ch 1] | user@h:~$ ls\n\
         \x20       [ch 1] | a  b\n\
         [+0.7s] [ch 1] resized 120x40\n\
         [+0.9s] [ch 1] exit signal KILL\n"
    );
}

#[test]
fn sftp_ops_and_closes_without_exit() {
    let write = r#"{"op":"write","path":"/tmp/f","bytes":5,"sha256":"ab12","status":"ok"}"#;
    let denied = r#"{"op":"read","path":"/etc/shadow","bytes":0,"sha256":null,"status":"permission_denied","message":"Permission denied"}"#;
    let got = text(&[
        ("[+1s]", true, Event::Subsystem { channel: 0, name: "sftp" }),
        ("[+1s]", true, Event::Data { channel: 0, stream: Stream::In, bytes: b"\0\0\0\x05\x01\0\0\0\x03" }),
        ("[+1s]", false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"\0\0\0\x05\x02\0\0\0\x03" }),
        ("[+2s]", true, Event::Sftp { channel: 0, json: write }),
        ("[+3s]", true, Event::Sftp { channel: 0, json: denied }),
        ("[+4s]", true, Event::Sftp { channel: 0, json: r#"{"op":"rename","path":"/a","to":"/b","status":"ok"}"# }),
        ("[+4s]", true, Event::Sftp { channel: 0, json: r#"{"op":"list","path":"/","entries":3,"status":"ok"}"# }),
        ("[+5s]", true, Event::Sftp { channel: 0, json: "not json" }),
        ("[+6s]", false, Event::Close { channel: 0 }),
    ]);
    assert_eq!(
        got,
        "[+1s] subsystem sftp\n\
         [+2s] sftp: write /tmp/f 5 bytes sha256 ab12\n\
         [+3s] sftp: read /etc/shadow 0 bytes [permission denied: Permission denied]\n\
         [+4s] sftp: rename /a -> /b\n\
         [+4s] sftp: list / (3 entries)\n\
         [+5s] sftp: not json\n\
         [+6s] closed\n"
    );
}

#[test]
fn long_partial_lines_are_shown_in_pieces() {
    let long = vec![b'x'; MAX_PARTIAL + 1];
    let got = text(&[("[+0s]", false, Event::Data { channel: 0, stream: Stream::Out, bytes: &long })]);
    assert_eq!(got.len(), "      | ".len() + long.len() + 1);
}

#[test]
fn damaged_payloads_are_reported() {
    let mut t = Transcript::new();
    let mut out = Vec::new();
    t.text(false, b"\x63\0\0\0\0", 0, "[+0s]", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "[+0s] damaged record (bad SSH record: unknown tag): 5 bytes to the agent\n"
    );
    assert_eq!(
        t.json(true, b""),
        vec![json!({"type": "damaged", "error": "bad SSH record: empty", "bytes": 0, "from_agent": true})]
    );
}

#[test]
fn json_has_one_object_per_event() {
    let mut t = Transcript::new();
    let mut j = |from_agent, e: Event| t.json(from_agent, &e.encode());
    assert_eq!(
        j(true, Event::Exec { channel: 0, command: "ls" }),
        [json!({"type": "exec", "channel": 0, "command": "ls"})]
    );
    assert_eq!(
        j(false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"a\n" }),
        [json!({"type": "stdout", "channel": 0, "text": "a\n"})]
    );
    assert_eq!(
        j(false, Event::Data { channel: 0, stream: Stream::Err, bytes: b"\xffab" }),
        [json!({"type": "stderr", "channel": 0, "text": "\u{fffd}ab", "base64": "/2Fi"})]
    );
    assert_eq!(j(false, Event::Exit { channel: 0, status: 0 }), [json!({"type": "exit", "channel": 0, "status": 0})]);
    assert_eq!(
        j(true, Event::Pty { channel: 2, cols: 80, rows: 24, term: "xterm" }),
        [json!({"type": "pty", "channel": 2, "term": "xterm", "cols": 80, "rows": 24})]
    );
    assert_eq!(
        j(true, Event::Subsystem { channel: 3, name: "sftp" }),
        [json!({"type": "subsystem", "channel": 3, "name": "sftp"})]
    );
    assert_eq!(
        j(true, Event::Data { channel: 3, stream: Stream::In, bytes: b"\0\0\0\x01\x01" }),
        [json!({"type": "sftp-data", "channel": 3, "stream": "stdin", "bytes": 5})]
    );
    assert_eq!(
        j(true, Event::Sftp { channel: 3, json: r#"{"op":"mkdir","path":"/d","status":"ok"}"# }),
        [json!({"type": "sftp", "channel": 3, "op": "mkdir", "path": "/d", "status": "ok"})]
    );
    assert_eq!(j(true, Event::Sftp { channel: 3, json: "[1]" }), [json!({"type": "sftp", "channel": 3, "raw": "[1]"})]);
    assert_eq!(j(true, Event::Line { channel: 2, line: "ls" }), [json!({"type": "line", "channel": 2, "text": "ls"})]);
    assert_eq!(j(true, Event::Close { channel: 3 }), [json!({"type": "close", "channel": 3, "from_agent": true})]);
}

#[test]
fn base64_matches_rfc4648() {
    for (plain, coded) in
        [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
    {
        assert_eq!(base64(plain.as_bytes()), coded);
    }
}

#[test]
fn strips_escape_sequences() {
    assert_eq!(strip_escapes("\x1b[1;31mred\x1b[0m \x1b]0;t\x1b\\ok\x1b=\x1b[?2004h"), "red ok");
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
        let mut cast = Vec::new();
        asciicast(0, payloads.iter().map(|p| (0, false, &p[..])), &mut cast).unwrap();
        for line in String::from_utf8(cast).unwrap().lines() {
            prop_assert!(serde_json::from_str::<Value>(line).is_ok());
        }
    }
}
