//! The decoder and tracker against OpenSSH's own `sftp-server`, run as a child over
//! pipes (no network). Skipped when the binary is not installed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::*;

const SERVER: &str = "/usr/lib/openssh/sftp-server";

struct Session {
    child: Child,
    to_server: ChildStdin,
    from_server: ChildStdout,
    /// Frames the client's bytes, as the gateway would.
    requests: Framer,
    replies: Framer,
    tracker: Tracker,
    ops: Vec<serde_json::Value>,
    next_id: u32,
}

fn s(v: &[u8]) -> Vec<u8> {
    let mut b = (v.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(v);
    b
}

impl Session {
    fn start() -> Option<Session> {
        if !Path::new(SERVER).exists() {
            eprintln!("skipped: {SERVER} is not installed");
            return None;
        }
        let mut child = Command::new(SERVER)
            .arg("-e")
            .arg("-l")
            .arg("QUIET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let to_server = child.stdin.take()?;
        let from_server = child.stdout.take()?;
        Some(Session {
            child,
            to_server,
            from_server,
            requests: Framer::new(),
            replies: Framer::new(),
            tracker: Tracker::new(),
            ops: Vec::new(),
            next_id: 1,
        })
    }

    /// Sends requests of `kind` with these bodies (after the id), all at once, as a
    /// pipelining client does, then reads one reply per request.
    fn send(&mut self, batch: &[(u8, Vec<u8>)]) -> Vec<Packet> {
        let mut wire = Vec::new();
        for (k, body) in batch {
            let mut payload = vec![*k];
            if *k != kind::INIT {
                payload.extend_from_slice(&self.next_id.to_be_bytes());
                self.next_id += 1;
            }
            payload.extend_from_slice(body);
            wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            wire.extend_from_slice(&payload);
        }
        // The gateway's view: frame the client's bytes in odd chunks, decode, track.
        for chunk in wire.chunks(7) {
            self.requests.push(chunk);
            while let Some(p) = self.requests.next().unwrap() {
                let (id, req) = decode_request(&p).unwrap();
                self.ops.extend(self.tracker.request(id, &req).iter().map(Op::to_json));
            }
        }
        self.to_server.write_all(&wire).unwrap();
        let mut replies = Vec::new();
        let mut buf = [0u8; 4096];
        while replies.len() < batch.len() {
            if let Some(p) = self.replies.next().unwrap() {
                self.ops.extend(self.tracker.response(&p).iter().map(Op::to_json));
                replies.push(p);
                continue;
            }
            let n = self.from_server.read(&mut buf).unwrap();
            assert!(n > 0, "sftp-server closed its output");
            self.replies.push(&buf[..n]);
        }
        replies
    }

    fn one(&mut self, k: u8, body: Vec<u8>) -> Packet {
        self.send(&[(k, body)]).remove(0)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing stdin ends sftp-server; wait for the child we started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("airlock-sftp-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn handle_of(p: &Packet) -> Vec<u8> {
    assert_eq!(p.kind, kind::HANDLE, "{p:?}");
    let mut r = Reader::new(p.body(), p.kind);
    s(&r.handle().unwrap())
}

#[test]
fn follows_a_real_sftp_server() {
    let Some(mut sess) = Session::start() else { return };
    let dir = temp_dir();
    let path = |name: &str| format!("{}/{name}", dir.display());
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = Sha256::digest(&content).iter().map(|b| format!("{b:02x}")).collect::<String>();

    let version = sess.one(kind::INIT, 3u32.to_be_bytes().to_vec());
    assert_eq!((version.kind, version.id), (kind::VERSION, None));

    // Upload in four pipelined writes.
    let flags = (OpenFlags::WRITE | OpenFlags::CREAT | OpenFlags::TRUNC).to_be_bytes();
    let h = handle_of(&sess.one(kind::OPEN, [s(path("f").as_bytes()), flags.to_vec(), vec![0; 4]].concat()));
    let writes: Vec<(u8, Vec<u8>)> = content
        .chunks(32768)
        .enumerate()
        .map(|(i, c)| (kind::WRITE, [h.clone(), (i as u64 * 32768).to_be_bytes().to_vec(), s(c)].concat()))
        .collect();
    assert!(sess.send(&writes).iter().all(|p| p.kind == kind::STATUS));
    assert_eq!(sess.one(kind::CLOSE, h).kind, kind::STATUS);
    assert_eq!(std::fs::read(path("f")).unwrap(), content);

    // Download with reads past the end, as `sftp get` does.
    let h = handle_of(
        &sess.one(kind::OPEN, [s(path("f").as_bytes()), OpenFlags::READ.to_be_bytes().to_vec(), vec![0; 4]].concat()),
    );
    let reads: Vec<(u8, Vec<u8>)> = (0..5u64)
        .map(|i| {
            (kind::READ, [h.clone(), (i * 32768).to_be_bytes().to_vec(), 32768u32.to_be_bytes().to_vec()].concat())
        })
        .collect();
    let kinds: Vec<u8> = sess.send(&reads).iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [kind::DATA, kind::DATA, kind::DATA, kind::DATA, kind::STATUS]);
    sess.one(kind::CLOSE, h);

    // Changes, one refused by the server.
    let rename = [s(b"posix-rename@openssh.com"), s(path("f").as_bytes()), s(path("g").as_bytes())].concat();
    sess.one(kind::EXTENDED, rename);
    sess.one(kind::MKDIR, [s(path("d").as_bytes()), vec![0; 4]].concat());
    sess.one(kind::REMOVE, s(path("missing").as_bytes()));
    sess.one(kind::SYMLINK, [s(b"g"), s(path("link").as_bytes())].concat());
    assert_eq!(std::fs::read_link(path("link")).unwrap(), Path::new("g"));
    let h = handle_of(&sess.one(kind::OPENDIR, s(dir.display().to_string().as_bytes())));
    while sess.one(kind::READDIR, h.clone()).kind == kind::NAME {}
    sess.one(kind::CLOSE, h);

    // A request the server does not know is answered, and decoded as unknown.
    let unknown = sess.one(kind::EXTENDED, [s(b"nonsense@example.com"), vec![1, 2, 3]].concat());
    assert_eq!(unknown.kind, kind::STATUS);

    let dir_path = dir.display().to_string();
    assert_eq!(
        sess.ops,
        vec![
            json!({"op": "write", "path": path("f"), "bytes": 100_000, "sha256": digest, "status": "ok"}),
            json!({"op": "read", "path": path("f"), "bytes": 100_000, "sha256": digest, "status": "ok"}),
            json!({"op": "rename", "path": path("f"), "to": path("g"), "status": "ok"}),
            json!({"op": "mkdir", "path": path("d"), "status": "ok"}),
            json!({"op": "remove", "path": path("missing"), "status": "no_such_file", "message": "No such file"}),
            json!({"op": "symlink", "path": path("link"), "target": "g", "status": "ok"}),
            // `.`, `..`, d, g, link.
            json!({"op": "list", "path": dir_path, "entries": 5, "status": "ok"}),
        ]
    );
    assert_eq!(sess.tracker.tracked(), (0, 0));
    drop(sess);
    std::fs::remove_dir_all(&dir).unwrap();
}
