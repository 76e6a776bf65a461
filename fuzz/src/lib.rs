//! Helpers the fuzz targets in `fuzz_targets/` share.
//!
//! Each target is a pure function of the bytes libFuzzer gives it. Where a property
//! is about chunking (a stream parser, the streaming masker), the chunk boundaries are
//! taken from the input too ([`Input::cuts`]), so libFuzzer explores them like any
//! other byte.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The fuzz input read from the front: a few control bytes, then the payload.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// The next byte, or 0 when the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }

    /// A prefix of up to `max` bytes ending at the first `sep` (which is dropped), or
    /// all of it (up to `max`) when there is none.
    pub fn until(&mut self, sep: u8, max: usize) -> &'a [u8] {
        let window = &self.data[..self.data.len().min(max)];
        match window.iter().position(|b| *b == sep) {
            Some(at) => {
                let head = &self.data[..at];
                self.data = &self.data[at + 1..];
                head
            }
            None => self.take(max),
        }
    }
}

/// Chunk lengths for cutting a payload: one control byte a chunk, 1 to 64 bytes each
/// (a zero byte means "the rest in one piece"). Cycled when the payload is longer.
pub fn cuts(control: &[u8]) -> Vec<usize> {
    control.iter().map(|b| if *b == 0 { usize::MAX } else { usize::from(*b % 64) + 1 }).collect()
}

/// `payload` cut into consecutive pieces by `cuts` (cycled); one piece if `cuts` is
/// empty. The pieces concatenate to `payload`.
pub fn chunks<'a>(payload: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < payload.len() {
        let len = cuts.get(i % cuts.len().max(1)).copied().unwrap_or(usize::MAX);
        let end = at.saturating_add(len).min(payload.len());
        out.push(&payload[at..end]);
        at = end;
        i += 1;
    }
    out
}

/// Runs a future that never waits (an `async fn` whose path under test awaits no
/// I/O) to completion in one poll; `None` if it would have waited.
pub fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// `bytes` as UTF-8, with invalid sequences replaced: targets whose API takes `&str`
/// still see every input.
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Panics unless `out` is UTF-8 a terminal shows as it is: no control character but
/// `\n` and `\t` (no ESC sequences, no `\r` overwriting a line), no bidirectional
/// override or zero-width character hiding or reordering text.
pub fn assert_terminal_safe(out: &[u8], what: &str) {
    let Ok(text) = std::str::from_utf8(out) else { panic!("{what} output is not UTF-8") };
    let hides = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if let Some(c) = text.chars().find(|c| hides(*c)) {
        panic!("{what} writes {c:?} to the terminal: {text:?}");
    }
}

/// Driving `airlock_postgres::Scanner` over a stream, for the message targets.
pub mod pg {
    use airlock_postgres::frame::{Chunk, Disposition, Frame, HEADER_LEN, Header, ProtocolError, Scanner};
    use bytes::BytesMut;

    /// What one pass of a scanner over a stream produced.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Scanned {
        /// Every byte handed out, raw chunks and frames alike, in order.
        pub out: Vec<u8>,
        /// The messages asked for whole.
        pub frames: Vec<Frame>,
        /// `(tag, total length)` of each header shown to `classify`.
        pub headers: Vec<(u8, usize)>,
        /// The error that ended the pass, if one did.
        pub error: Option<ProtocolError>,
    }

    /// Feeds `pieces` one at a time to a scanner that asks for a message whole when
    /// bit `tag % 8` of `whole_tags` is set, and drains it after each piece.
    pub fn scan(pieces: &[&[u8]], max_whole: usize, whole_tags: u8) -> Scanned {
        let mut scanner = Scanner::new(max_whole);
        let mut buf = BytesMut::new();
        let mut scanned = Scanned { out: Vec::new(), frames: Vec::new(), headers: Vec::new(), error: None };
        for piece in pieces {
            buf.extend_from_slice(piece);
            let headers = &mut scanned.headers;
            // The decision may depend on the header only, never on how much of the
            // body happens to be buffered, or chunkings could not be compared.
            let mut classify = |h: Header<'_>| {
                assert!(h.len >= HEADER_LEN, "a header shorter than the header: {}", h.len);
                assert!(h.body.len() + HEADER_LEN <= h.len, "more body than the message holds");
                if let Some(body) = h.complete_body() {
                    assert_eq!(body.len() + HEADER_LEN, h.len);
                }
                headers.push((h.tag, h.len));
                if whole_tags >> (h.tag % 8) & 1 == 1 { Disposition::Whole } else { Disposition::Pass }
            };
            loop {
                let before = buf.len();
                match scanner.next(&mut buf, &mut classify) {
                    Ok(Some(Chunk::Raw(raw))) => {
                        assert!(!raw.is_empty(), "an empty raw chunk");
                        assert_eq!(before - buf.len(), raw.len(), "the buffer advanced by other than the chunk");
                        scanned.out.extend_from_slice(&raw);
                    }
                    Ok(Some(Chunk::Frame(frame))) => {
                        assert_eq!(before - buf.len(), frame.raw().len());
                        assert!(frame.raw().len() <= max_whole, "a frame over the whole-message cap");
                        scanned.out.extend_from_slice(frame.raw());
                        scanned.frames.push(frame);
                    }
                    Ok(None) => {
                        assert_eq!(before, buf.len(), "Ok(None) consumed bytes");
                        break;
                    }
                    Err(e) => {
                        scanned.error = Some(e);
                        return scanned;
                    }
                }
            }
        }
        scanned
    }

    /// The scanner's contract, checked on `stream` scanned whole and cut at `cuts`:
    /// the bytes handed out are the stream's own, in order; a chunking changes
    /// neither the messages nor the verdict, only how far an error lets output get.
    /// Returns the frames of the whole pass.
    pub fn check_scanner(stream: &[u8], cuts: &[usize], max_whole: usize, whole_tags: u8) -> Vec<Frame> {
        let whole = scan(&[stream], max_whole, whole_tags);
        let cut = scan(&super::chunks(stream, cuts), max_whole, whole_tags);
        for s in [&whole, &cut] {
            assert!(stream.starts_with(&s.out), "scanner output is not the stream's prefix");
            for f in &s.frames {
                let len = i32::from_be_bytes([f.raw()[1], f.raw()[2], f.raw()[3], f.raw()[4]]);
                assert_eq!(usize::try_from(len).ok().map(|l| l + 1), Some(f.raw().len()), "frame length field");
                assert_eq!(airlock_postgres::message::frame_from(f.raw().clone()).as_ref(), Ok(f));
            }
        }
        assert_eq!(whole.error, cut.error, "the verdict depends on the chunking");
        if whole.error.is_none() {
            assert_eq!(whole, cut, "the messages depend on the chunking");
        } else {
            // A whole pass fails before handing out what preceded the bad header;
            // a chunked one may have handed it out already.
            assert!(cut.out.starts_with(&whole.out));
            assert!(cut.frames.starts_with(&whole.frames));
            assert!(cut.headers.starts_with(&whole.headers));
        }
        whole.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_payload() {
        let payload: Vec<u8> = (0..200u8).collect();
        for control in [&[][..], &[0], &[1, 2, 3], &[63, 0, 7]] {
            let pieces = chunks(&payload, &cuts(control));
            assert_eq!(pieces.concat(), payload);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
    }
}
