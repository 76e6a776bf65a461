use bytes::Bytes;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::super::tests::packet;
use super::super::{Framer, status};
use super::*;

fn frame(raw: &[u8]) -> Packet {
    let mut f = Framer::new();
    f.push(raw);
    f.next().unwrap().unwrap()
}

fn s(v: &[u8]) -> Vec<u8> {
    let mut b = (v.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(v);
    b
}

fn reply(k: u8, id: u32, fields: &[&[u8]]) -> Packet {
    let mut body = id.to_be_bytes().to_vec();
    for f in fields {
        body.extend_from_slice(f);
    }
    frame(&packet(k, &body))
}

fn handle(id: u32, h: &[u8]) -> Packet {
    reply(kind::HANDLE, id, &[&s(h)])
}

fn data(id: u32, d: &[u8]) -> Packet {
    reply(kind::DATA, id, &[&s(d)])
}

fn st(id: u32, c: u32) -> Packet {
    frame(&status(id, c, if c == code::OK { "" } else { "nope" }))
}

fn h(b: &'static [u8]) -> Bytes {
    Bytes::from_static(b)
}

fn open(path: &str, flags: u32) -> Request {
    Request::Open { path: path.into(), pflags: OpenFlags(flags) }
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

const W: u32 = OpenFlags::WRITE | OpenFlags::CREAT | OpenFlags::TRUNC;

/// Opens `path` as handle `h1` under id 1.
fn opened(t: &mut Tracker, path: &str, flags: u32) {
    assert!(t.request(1, &open(path, flags)).is_empty());
    assert!(t.response(&handle(1, b"h1")).is_empty());
}

#[test]
fn pipelined_write_with_acks_out_of_order() {
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut t = Tracker::new();
    opened(&mut t, "/tmp/f", W);
    let chunks: Vec<&[u8]> = content.chunks(32768).collect();
    for (i, c) in chunks.iter().enumerate() {
        let req = Request::Write { handle: h(b"h1"), offset: i as u64 * 32768, data: Bytes::copy_from_slice(c) };
        assert!(t.request(10 + i as u32, &req).is_empty());
    }
    for i in (0..chunks.len()).rev() {
        assert!(t.response(&st(10 + i as u32, code::OK)).is_empty());
    }
    assert!(t.request(99, &Request::Close { handle: h(b"h1") }).is_empty());
    let ops = t.response(&st(99, code::OK));
    assert_eq!(
        ops,
        vec![Op {
            kind: OpKind::Write,
            path: "/tmp/f".into(),
            other: None,
            bytes: Some(100_000),
            sha256: Some(sha(&content)),
            entries: None,
            status: Status::Ok,
        }]
    );
    assert_eq!(
        ops[0].to_json(),
        json!({"op": "write", "path": "/tmp/f", "bytes": 100_000, "sha256": hex(&sha(&content)), "status": "ok"})
    );
    assert_eq!(t.tracked(), (0, 0));
    assert_eq!(t.room, MAX_REORDER);
}

#[test]
fn read_with_short_reads_and_replies_out_of_order() {
    let content = b"0123456789abcdefghij";
    let mut t = Tracker::new();
    opened(&mut t, "/etc/motd", OpenFlags::READ);
    // Reads of 8 bytes at 0, 8, 16, 24; the one at 8 comes back short (4 bytes) and
    // the client asks again for 12..16.
    for (id, off) in [(2, 0), (3, 8), (4, 16), (5, 24)] {
        t.request(id, &Request::Read { handle: h(b"h1"), offset: off, len: 8 });
    }
    assert!(t.response(&data(4, &content[16..])).is_empty());
    assert!(t.response(&st(5, code::EOF)).is_empty());
    assert!(t.response(&data(3, &content[8..12])).is_empty());
    t.request(6, &Request::Read { handle: h(b"h1"), offset: 12, len: 4 });
    assert!(t.response(&data(2, &content[..8])).is_empty());
    assert!(t.response(&data(6, &content[12..16])).is_empty());
    t.request(7, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&st(7, code::OK));
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].kind, ops[0].bytes, ops[0].sha256), (OpKind::Read, Some(20), Some(sha(content))));
    assert_eq!(t.room, MAX_REORDER);
}

#[test]
fn a_gap_that_never_fills_gives_no_hash() {
    let mut t = Tracker::new();
    opened(&mut t, "/f", OpenFlags::READ);
    t.request(2, &Request::Read { handle: h(b"h1"), offset: 100, len: 8 });
    t.response(&data(2, b"abcdefgh"));
    t.request(3, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&st(3, code::OK));
    assert_eq!((ops[0].bytes, ops[0].sha256), (Some(8), None));
    assert_eq!(ops[0].to_json()["sha256"], serde_json::Value::Null);
    assert_eq!(t.room, MAX_REORDER);
}

#[test]
fn reorder_room_is_bounded() {
    let mut t = Tracker::new();
    opened(&mut t, "/big", OpenFlags::READ);
    let chunk = vec![7u8; 256 * 1024];
    let n = MAX_REORDER / chunk.len() + 2;
    for i in 0..n as u32 {
        t.request(10 + i, &Request::Read { handle: h(b"h1"), offset: u64::from(i) * chunk.len() as u64, len: 1 << 18 });
    }
    // Every reply but the first arrives first: they cannot all be held.
    for i in 1..n as u32 {
        t.response(&data(10 + i, &chunk));
        assert!(t.room <= MAX_REORDER);
    }
    t.response(&data(10, &chunk));
    t.request(1, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&st(1, code::OK));
    assert_eq!((ops[0].bytes, ops[0].sha256), (Some((n * chunk.len()) as u64), None));
    assert_eq!(t.room, MAX_REORDER);
}

#[test]
fn failed_writes_and_opens_are_reported() {
    let mut t = Tracker::new();
    t.request(1, &open("/etc/shadow", OpenFlags::READ));
    let ops = t.response(&st(1, code::PERMISSION_DENIED));
    assert_eq!(
        ops[0].to_json(),
        json!({"op": "read", "path": "/etc/shadow", "bytes": 0, "sha256": null, "status": "permission_denied", "message": "nope"})
    );

    opened(&mut t, "/full", W | OpenFlags::READ);
    t.request(2, &Request::Write { handle: h(b"h1"), offset: 0, data: h(b"abc") });
    t.request(3, &Request::Write { handle: h(b"h1"), offset: 3, data: h(b"def") });
    t.response(&st(2, code::OK));
    t.response(&st(3, code::FAILURE));
    t.request(4, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&st(4, code::OK));
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].kind, ops[0].bytes, ops[0].sha256), (OpKind::Write, Some(3), None));
    assert_eq!(ops[0].status, Status::Failed { code: code::FAILURE, message: "nope".into() });
}

#[test]
fn append_writes_hash_in_order_sent() {
    let mut t = Tracker::new();
    opened(&mut t, "/log", OpenFlags::WRITE | OpenFlags::APPEND);
    t.request(2, &Request::Write { handle: h(b"h1"), offset: 0, data: h(b"one ") });
    t.request(3, &Request::Write { handle: h(b"h1"), offset: 0, data: h(b"two") });
    t.response(&st(3, code::OK));
    t.response(&st(2, code::OK));
    t.request(4, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&st(4, code::OK));
    assert_eq!((ops[0].bytes, ops[0].sha256), (Some(7), Some(sha(b"one two"))));
}

#[test]
fn read_write_handle_reports_both() {
    let mut t = Tracker::new();
    opened(&mut t, "/rw", OpenFlags::READ | OpenFlags::WRITE);
    t.request(2, &Request::Read { handle: h(b"h1"), offset: 0, len: 10 });
    t.response(&data(2, b"old"));
    t.request(3, &Request::Write { handle: h(b"h1"), offset: 0, data: h(b"new") });
    t.response(&st(3, code::OK));
    t.request(4, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&st(4, code::OK));
    let got: Vec<_> = ops.iter().map(|o| (o.kind, o.sha256)).collect();
    assert_eq!(got, vec![(OpKind::Read, Some(sha(b"old"))), (OpKind::Write, Some(sha(b"new")))]);
}

#[test]
fn listing_counts_entries() {
    let mut t = Tracker::new();
    t.request(1, &Request::Opendir { path: "/home".into() });
    t.response(&handle(1, b"d1"));
    t.request(2, &Request::Readdir { handle: h(b"d1") });
    t.response(&reply(kind::NAME, 2, &[&3u32.to_be_bytes(), b"..."]));
    t.request(3, &Request::Readdir { handle: h(b"d1") });
    t.response(&st(3, code::EOF));
    t.request(4, &Request::Close { handle: h(b"d1") });
    let ops = t.response(&st(4, code::OK));
    assert_eq!(ops[0].to_json(), json!({"op": "list", "path": "/home", "entries": 3, "status": "ok"}));
}

#[test]
fn changes_are_reported_at_their_status() {
    let mut t = Tracker::new();
    let reqs = [
        Request::Remove { path: "/a".into() },
        Request::Rename { from: "/a".into(), to: "/b".into() },
        Request::Extended(Extended::PosixRename { from: "/c".into(), to: "/d".into() }),
        Request::Mkdir { path: "/m".into() },
        Request::Rmdir { path: "/m".into() },
        Request::Setstat { path: "/s".into() },
        Request::Extended(Extended::Lsetstat { path: "/l".into() }),
        Request::Symlink { linkpath: "/link".into(), target: "/etc/passwd".into() },
        Request::Extended(Extended::Hardlink { old: "/old".into(), new: "/new".into() }),
    ];
    for (i, r) in reqs.iter().enumerate() {
        assert!(t.request(i as u32, r).is_empty());
    }
    // Requests that change nothing are not tracked.
    t.request(100, &Request::Stat { path: "/x".into() });
    assert!(t.response(&st(100, code::OK)).is_empty());
    let mut got = Vec::new();
    for i in 0..reqs.len() as u32 {
        got.extend(t.response(&st(i, if i == 3 { code::FAILURE } else { code::OK })));
    }
    let json: Vec<_> = got.iter().map(Op::to_json).collect();
    assert_eq!(
        json,
        vec![
            json!({"op": "remove", "path": "/a", "status": "ok"}),
            json!({"op": "rename", "path": "/a", "to": "/b", "status": "ok"}),
            json!({"op": "rename", "path": "/c", "to": "/d", "status": "ok"}),
            json!({"op": "mkdir", "path": "/m", "status": "failure", "message": "nope"}),
            json!({"op": "rmdir", "path": "/m", "status": "ok"}),
            json!({"op": "setstat", "path": "/s", "status": "ok"}),
            json!({"op": "setstat", "path": "/l", "status": "ok"}),
            json!({"op": "symlink", "path": "/link", "target": "/etc/passwd", "status": "ok"}),
            json!({"op": "hardlink", "path": "/new", "target": "/old", "status": "ok"}),
        ]
    );
    assert_eq!(t.tracked(), (0, 0));
}

#[test]
fn copy_data_and_fsetstat_name_the_handles_paths() {
    let mut t = Tracker::new();
    opened(&mut t, "/src", OpenFlags::READ);
    t.request(2, &open("/dst", W));
    t.response(&handle(2, b"h2"));
    let copy =
        Extended::CopyData { read_handle: h(b"h1"), read_offset: 0, len: 0, write_handle: h(b"h2"), write_offset: 0 };
    t.request(3, &Request::Extended(copy));
    t.request(4, &Request::Fsetstat { handle: h(b"h2") });
    assert_eq!(
        t.response(&st(3, code::OK))[0].to_json(),
        json!({"op": "copy", "path": "/src", "to": "/dst", "status": "ok"})
    );
    assert_eq!(t.response(&st(4, code::OK))[0].to_json(), json!({"op": "setstat", "path": "/dst", "status": "ok"}));
    t.request(5, &Request::Close { handle: h(b"h2") });
    let ops = t.response(&st(5, code::OK));
    assert_eq!((ops[0].kind, ops[0].sha256), (OpKind::Write, None));
}

#[test]
fn pending_requests_are_capped() {
    let mut t = Tracker::new();
    for id in 0..MAX_PENDING as u32 {
        assert!(t.request(id, &Request::Remove { path: format!("/f{id}") }).is_empty());
    }
    let ops = t.request(MAX_PENDING as u32, &Request::Remove { path: "/last".into() });
    assert_eq!(
        ops,
        vec![Op {
            kind: OpKind::Remove,
            path: "/f0".into(),
            other: None,
            bytes: None,
            sha256: None,
            entries: None,
            status: Status::Incomplete,
        }]
    );
    assert_eq!(t.tracked(), (MAX_PENDING, 0));
    assert!(t.response(&st(0, code::OK)).is_empty());
    assert_eq!(t.response(&st(1, code::OK))[0].path, "/f1");
}

#[test]
fn handles_are_capped() {
    let mut t = Tracker::new();
    for i in 0..MAX_HANDLES as u32 {
        t.request(i, &open(&format!("/f{i}"), OpenFlags::READ));
        assert!(t.response(&handle(i, &i.to_be_bytes())).is_empty());
    }
    t.request(7, &open("/one-more", OpenFlags::READ));
    let ops = t.response(&handle(7, b"new"));
    assert_eq!((ops[0].path.as_str(), &ops[0].status), ("/f0", &Status::Incomplete));
    assert_eq!(t.tracked(), (0, MAX_HANDLES));
}

#[test]
fn a_reused_id_replaces_the_request() {
    let mut t = Tracker::new();
    t.request(1, &Request::Remove { path: "/a".into() });
    let ops = t.request(1, &Request::Stat { path: "/b".into() });
    assert_eq!((ops[0].kind, &ops[0].status), (OpKind::Remove, &Status::Incomplete));
    assert!(t.response(&st(1, code::OK)).is_empty());
}

#[test]
fn unexpected_replies_lose_track_without_panicking() {
    let mut t = Tracker::new();
    opened(&mut t, "/f", OpenFlags::READ);
    t.request(2, &Request::Read { handle: h(b"h1"), offset: 0, len: 8 });
    t.response(&reply(kind::DATA, 2, &[&[0, 0, 0, 9, 1]]));
    t.request(3, &Request::Remove { path: "/r".into() });
    assert_eq!(t.response(&handle(3, b"x"))[0].status, Status::Incomplete);
    t.request(4, &Request::Close { handle: h(b"h1") });
    let ops = t.response(&reply(kind::STATUS, 4, &[]));
    assert_eq!(ops[0].status, Status::Incomplete);
    assert_eq!(Status::Failed { code: 99, message: String::new() }.name(), "code_99");
}

#[test]
fn remembered_paths_are_capped() {
    let mut t = Tracker::new();
    let long = "d/".repeat(MAX_PATH);
    t.request(1, &Request::Mkdir { path: long.clone() });
    let ops = t.response(&st(1, code::FAILURE));
    assert_eq!(ops[0].path, format!("{}…", &long[..MAX_PATH]));
}
