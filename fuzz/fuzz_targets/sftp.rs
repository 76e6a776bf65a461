//! The SFTP decoder (`airlock_ssh::sftp`): `Framer`, `decode_request`, `normalize`,
//! `first_name` and the `Tracker` that follows a session.
//!
//! The input is one byte stream of SFTP packets; packets of reply types (101 and up)
//! go to the tracker as the server's, the others as the client's.
//! - Framing: whole and in input-chosen chunks, the same packets and the same
//!   error; each packet is the stream's own bytes, as long as its length field says.
//! - A request's id is the packet's; a path it names normalises (when it does) to a
//!   path that normalises to itself, keeps being absolute or relative, and holds no
//!   empty, `.` or `..` segment; `realpath(id, path)` decodes back to the same path.
//! - The tracker stays within its caps whatever the session does.
#![no_main]

use airlock_fuzz::{Input, chunks, cuts};
use airlock_ssh::sftp::{self, Framer, MAX_HANDLES, MAX_PENDING, Packet, Request, SftpError, Tracker};
use libfuzzer_sys::fuzz_target;

fn frame(pieces: &[&[u8]]) -> (Vec<Packet>, Option<SftpError>) {
    let mut framer = Framer::new();
    let mut packets = Vec::new();
    for piece in pieces {
        framer.push(piece);
        loop {
            match framer.next() {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(e) => return (packets, Some(e)),
            }
        }
        assert!(framer.buffered() <= sftp::MAX_PACKET as usize + 4 + piece.len());
    }
    (packets, None)
}

fn check_path(path: &str) {
    let Some(n) = sftp::normalize(path) else { return };
    assert_eq!(sftp::normalize(&n).as_deref(), Some(n.as_str()), "normalize is not idempotent on {path:?}");
    assert_eq!(n.starts_with('/'), path.starts_with('/'), "{path:?} -> {n:?}");
    if n != "/" && n != "." {
        let segments = n.strip_prefix('/').unwrap_or(&n).split('/');
        assert!(segments.into_iter().all(|s| !matches!(s, "" | "." | "..")), "{path:?} -> {n:?}");
    }
    assert!(!n.chars().any(char::is_control));
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cuts = cuts(input.take(3));
    let stream = input.rest();

    let whole = frame(&[stream]);
    let cut = frame(&chunks(stream, &cuts));
    assert_eq!(whole, cut, "framing depends on the chunking");
    let mut at = 0;
    for p in &whole.0 {
        let len = u32::from_be_bytes([p.raw[0], p.raw[1], p.raw[2], p.raw[3]]) as usize;
        assert_eq!(p.raw.len(), len + 4);
        assert_eq!(&stream[at..at + p.raw.len()], &p.raw[..], "a packet is not the stream's bytes");
        assert_eq!(p.kind, p.raw[4]);
        at += p.raw.len();
    }

    let mut tracker = Tracker::new();
    for p in &whole.0 {
        let ops = if p.kind >= sftp::kind::STATUS {
            let _ = sftp::first_name(p);
            tracker.response(p)
        } else {
            match sftp::decode_request(p) {
                Ok((id, req)) => {
                    assert_eq!(id, p.id.unwrap_or(0));
                    let _ = req.access();
                    for path in req.paths() {
                        check_path(path);
                        let mut f = Framer::new();
                        f.push(&sftp::realpath(id, path));
                        let back = f.next().expect("our REALPATH frames").expect("whole");
                        assert_eq!(
                            sftp::decode_request(&back).ok(),
                            Some((id, Request::Realpath { path: path.to_owned() }))
                        );
                    }
                    tracker.request(id, &req)
                }
                Err(e) => {
                    let _ = e.agent_reply(p.id);
                    Vec::new()
                }
            }
        };
        for op in ops {
            let _ = op.to_json();
        }
        let (pending, handles) = tracker.tracked();
        assert!(pending <= MAX_PENDING && handles <= MAX_HANDLES);
    }
});
