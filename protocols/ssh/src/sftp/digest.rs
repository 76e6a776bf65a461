//! The SHA-256 of a transfer whose chunks may arrive out of order.

use std::collections::BTreeMap;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// The running SHA-256 of one direction of a transfer, fed chunks by offset.
///
/// Chunks are hashed while each starts where the last ended; one that arrives early
/// waits in `held` (charged to the tracker-wide `room`), and anything else (a gap
/// that never fills, an overlap, a rewind) gives the hash up.
#[derive(Debug)]
pub(super) struct Digest {
    sha: Option<Sha256>,
    /// The offset the next chunk must start at to be hashed now.
    pub(super) next: u64,
    held: BTreeMap<u64, Bytes>,
    held_bytes: usize,
}

impl Digest {
    pub(super) fn new() -> Digest {
        Digest { sha: Some(Sha256::new()), next: 0, held: BTreeMap::new(), held_bytes: 0 }
    }

    pub(super) fn add(&mut self, offset: u64, data: &[u8], room: &mut usize) {
        let Some(sha) = &mut self.sha else { return };
        if offset == self.next {
            sha.update(data);
            self.next = self.next.saturating_add(data.len() as u64);
            self.drain(room);
        } else if offset > self.next && data.len() <= *room && !self.held.contains_key(&offset) {
            *room -= data.len();
            self.held_bytes += data.len();
            // A copy, so what is held is what is counted, not the buffer it came in.
            self.held.insert(offset, Bytes::copy_from_slice(data));
        } else {
            self.give_up(room);
        }
    }

    fn drain(&mut self, room: &mut usize) {
        while let Some(entry) = self.held.first_entry() {
            let at = *entry.key();
            if at > self.next {
                return;
            }
            let data = entry.remove();
            self.held_bytes -= data.len();
            *room += data.len();
            match &mut self.sha {
                Some(sha) if at == self.next => {
                    sha.update(&data);
                    self.next = self.next.saturating_add(data.len() as u64);
                }
                _ => return self.give_up(room),
            }
        }
    }

    pub(super) fn give_up(&mut self, room: &mut usize) {
        self.sha = None;
        *room += self.held_bytes;
        self.held_bytes = 0;
        self.held.clear();
    }

    /// The digest if exactly `bytes` bytes were hashed in one run; releases what is held.
    pub(super) fn finish(&mut self, bytes: u64, room: &mut usize) -> Option<[u8; 32]> {
        let whole = self.held.is_empty() && self.next == bytes;
        let sha = self.sha.take();
        self.give_up(room);
        sha.filter(|_| whole).map(|s| s.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn early_chunks_wait_and_overlaps_give_up() {
        let mut room = 100;
        let mut d = Digest::new();
        d.add(3, b"def", &mut room);
        d.add(6, b"g", &mut room);
        assert_eq!(room, 96);
        d.add(0, b"abc", &mut room);
        assert_eq!((room, d.next), (100, 7));
        assert_eq!(d.finish(7, &mut room), Some(sha(b"abcdefg")));

        let mut d = Digest::new();
        d.add(0, b"abc", &mut room);
        d.add(5, b"xy", &mut room);
        d.add(2, b"cde", &mut room);
        assert_eq!((d.finish(5, &mut room), room), (None, 100));

        // An early chunk overlapped by the run that reaches it.
        let mut d = Digest::new();
        d.add(2, b"cd", &mut room);
        d.add(0, b"abc", &mut room);
        assert_eq!((d.finish(4, &mut room), room), (None, 100));

        // Out of room: given up rather than held.
        let mut small = 1;
        let mut d = Digest::new();
        d.add(5, b"xy", &mut small);
        d.add(0, b"abcde", &mut small);
        assert_eq!((d.finish(7, &mut small), small), (None, 1));
    }
}
