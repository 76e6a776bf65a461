//! The framing audit: what hyper's parser forgives, seen on the raw bytes.
//!
//! hyper reads HTTP/1.1 correctly, but it quietly resolves some ambiguities: it drops
//! a `Content-Length` that comes with `Transfer-Encoding` (the body is chunked, as RFC
//! 9112 says) and accepts bare-LF line ends. Another server on the path may read such
//! a request otherwise, which is what request smuggling exploits, so Airlock refuses
//! them outright. The audit watches the agent's bytes as hyper reads them (nothing is
//! held back), finds each request head by following the body framing (a length, or the
//! chunks), and files a verdict per head, in order; the request handler takes the
//! verdict of each request before anything goes upstream.
//!
//! Heads are parsed with `httparse` (hyper's own parser), so the audit agrees with
//! hyper on where a head ends. After a CONNECT or an upgrade the stream is no longer
//! HTTP and the audit stops; Airlock closes the connection when it refuses either, so
//! no request follows unaudited.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest head the audit reads (hyper refuses larger ones itself).
const MAX_HEAD: usize = 64 << 10;
/// The longest chunk-size line.
const MAX_CHUNK_LINE: usize = 4096;

/// Verdicts on the heads seen so far, oldest first, and whether the framing of the
/// stream was lost (a malformed chunk: every request from then on is refused).
#[derive(Debug, Default, Clone)]
pub struct Verdicts(Arc<Mutex<Audit>>);

#[derive(Debug, Default)]
struct Audit {
    heads: VecDeque<Result<(), String>>,
    lost: Option<String>,
}

impl Verdicts {
    /// The verdict on the next request's head; `Ok` when the audit has not seen one (a
    /// connection it does not audit).
    pub fn next(&self) -> Result<(), String> {
        let mut audit = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let head = audit.heads.pop_front().unwrap_or(Ok(()));
        match &audit.lost {
            Some(why) => Err(why.clone()),
            None => head,
        }
    }

    /// Whether the stream is still well framed (checked again once a chunked body
    /// has been read).
    pub fn framing(&self) -> Result<(), String> {
        match &self.0.lock().unwrap_or_else(|p| p.into_inner()).lost {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    fn lose(&self, why: &str) {
        let mut audit = self.0.lock().unwrap_or_else(|p| p.into_inner());
        audit.lost.get_or_insert_with(|| why.to_owned());
    }

    fn push(&self, verdict: Result<(), String>) {
        let mut audit = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let q = &mut audit.heads;
        // hyper reads at most a buffer ahead; a peer that pipelines more heads than
        // this without reading answers is cut off by hyper's own limits first.
        if q.len() < 1024 {
            q.push_back(verdict);
        }
    }
}

#[derive(Debug)]
enum State {
    /// Reading a head (the bytes so far).
    Head(Vec<u8>),
    /// Skipping a body of this many more bytes.
    Length(u64),
    /// Reading a chunk-size line.
    ChunkLine(Vec<u8>),
    /// Skipping chunk data, then its CRLF (`crlf` bytes of it still to come).
    ChunkData { left: u64, crlf: u8 },
    /// Reading trailer lines until an empty one.
    Trailers(Vec<u8>),
    /// Not HTTP any more (an upgrade), or framing lost.
    Done,
}

/// An agent stream whose request framing is audited as it is read.
pub struct Audited<S> {
    inner: S,
    state: State,
    verdicts: Verdicts,
}

impl<S> Audited<S> {
    /// Audits `inner`, filing verdicts in `verdicts`.
    pub fn new(inner: S, verdicts: Verdicts) -> Self {
        Audited { inner, state: State::Head(Vec::new()), verdicts }
    }

    /// The stream's framing is lost: every request from here on is refused.
    fn lost(&mut self, why: &str) {
        self.verdicts.lose(why);
        self.state = State::Done;
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Head(head) => {
                    // A head ends at the first empty line; look from a little before
                    // the new bytes, so an end split across reads is found.
                    let from = head.len().saturating_sub(3);
                    head.extend_from_slice(bytes);
                    bytes = &[];
                    let Some(end) = head_end(&head[from..]).map(|e| from + e) else {
                        if head.len() > MAX_HEAD {
                            self.lost("a request head over 64 KiB");
                        }
                        continue;
                    };
                    let rest = head.split_off(end);
                    let head = std::mem::take(head);
                    self.state = self.judge(&head);
                    self.feed(&rest);
                    return;
                }
                State::Length(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkLine(line) => match memchr::memchr(b'\n', bytes) {
                    None => {
                        line.extend_from_slice(bytes);
                        bytes = &[];
                        if line.len() > MAX_CHUNK_LINE {
                            self.lost("a chunk-size line over 4 KiB");
                        }
                    }
                    Some(at) => {
                        line.extend_from_slice(&bytes[..=at]);
                        bytes = &bytes[at + 1..];
                        match chunk_size(line) {
                            Some(0) => self.state = State::Trailers(Vec::new()),
                            Some(n) => self.state = State::ChunkData { left: n, crlf: 2 },
                            None => self.lost("a malformed chunk-size line"),
                        }
                    }
                },
                State::ChunkData { left, crlf } => {
                    if *left > 0 {
                        let n = (*left).min(bytes.len() as u64);
                        *left -= n;
                        bytes = &bytes[n as usize..];
                        continue;
                    }
                    let expected = if *crlf == 2 { b'\r' } else { b'\n' };
                    if bytes[0] != expected {
                        self.lost("chunk data not followed by CRLF");
                        return;
                    }
                    bytes = &bytes[1..];
                    *crlf -= 1;
                    if *crlf == 0 {
                        self.state = State::ChunkLine(Vec::new());
                    }
                }
                State::Trailers(line) => match memchr::memchr(b'\n', bytes) {
                    None => {
                        line.extend_from_slice(bytes);
                        bytes = &[];
                        if line.len() > MAX_CHUNK_LINE {
                            self.lost("a trailer line over 4 KiB");
                        }
                    }
                    Some(at) => {
                        line.extend_from_slice(&bytes[..=at]);
                        bytes = &bytes[at + 1..];
                        if line.as_slice() == b"\r\n" {
                            self.state = State::Head(Vec::new());
                        } else if trailer_line(line) {
                            line.clear();
                        } else {
                            self.lost("a malformed trailer line");
                        }
                    }
                },
            }
        }
    }

    /// Files the verdict on one head and returns how its body is framed.
    fn judge(&self, head: &[u8]) -> State {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(head);
        let framing = match parsed {
            Ok(httparse::Status::Complete(_)) => framing(&req, head),
            // hyper refuses what httparse refuses, and closes the connection.
            _ => {
                self.verdicts.lose("a malformed request head");
                Err(("a malformed request head".to_owned(), State::Done))
            }
        };
        match framing {
            Ok(state) => {
                self.verdicts.push(Ok(()));
                state
            }
            Err((why, state)) => {
                self.verdicts.lose(&why);
                self.verdicts.push(Err(why));
                state
            }
        }
    }
}

/// Where a head ends: just after its first empty line, as httparse finds it. A line
/// ends in CRLF or in a bare LF that hyper would accept (which [`framing`] then
/// refuses), so the empty line is `\r\n` or `\n` after either: `\n\r\n` (which CRLF
/// CRLF ends with) or `\n\n`.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(bytes, b"\n\r\n").map(|i| i + 3);
    let lf = memchr::memmem::find(bytes, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The body framing of a parsed head, or why the head is refused (with the state to
/// go on in: the framing hyper will follow, or none).
fn framing(req: &httparse::Request<'_, '_>, head: &[u8]) -> Result<State, (String, State)> {
    let refuse = |why: &str, then: State| Err((why.to_owned(), then));
    let named = |name: &'static str| -> Vec<&[u8]> {
        req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value).collect()
    };
    let lengths = named("content-length");
    let codings = named("transfer-encoding");
    let upgrade = req.method == Some("CONNECT") || !named("upgrade").is_empty();
    // What hyper will follow, whatever the verdict.
    let follow = if upgrade {
        State::Done
    } else if !codings.is_empty() {
        State::ChunkLine(Vec::new())
    } else {
        match lengths.first().and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok()) {
            Some(0) | None => State::Head(Vec::new()),
            Some(n) => State::Length(n),
        }
    };
    if head.windows(2).enumerate().any(|(i, w)| w[1] == b'\n' && w[0] != b'\r' && i + 1 < head.len())
        || head.first() == Some(&b'\n')
    {
        return refuse("a line ended by a bare LF", State::Done);
    }
    if req.path.is_some_and(|p| p.contains('#')) {
        return refuse("a fragment in the request target", follow);
    }
    // httparse trims the spaces around a value; the raw line must say exactly `chunked`.
    let raw_codings = head
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = memchr::memchr(b':', line)?;
            let name = &line[..colon];
            name.eq_ignore_ascii_case(b"transfer-encoding").then(|| &line[colon + 1..])
        })
        .map(|v| v.strip_suffix(b"\r").unwrap_or(v))
        .map(|v| &v[v.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(v.len())..]);
    if raw_codings.into_iter().any(|v| !v.eq_ignore_ascii_case(b"chunked")) {
        return refuse("Transfer-Encoding other than exactly `chunked`", State::Done);
    }
    if !lengths.is_empty() && !codings.is_empty() {
        return refuse("both Content-Length and Transfer-Encoding", State::Done);
    }
    if lengths.len() > 1 {
        return refuse("more than one Content-Length", State::Done);
    }
    if codings.len() > 1 || codings.first().is_some_and(|v| !v.eq_ignore_ascii_case(b"chunked")) {
        return refuse("Transfer-Encoding other than exactly `chunked`", State::Done);
    }
    Ok(follow)
}

/// Whether a trailer line is a plain `name: value` line (no folding, no bare CR).
fn trailer_line(line: &[u8]) -> bool {
    let Some(body) = line.strip_suffix(b"\r\n") else { return false };
    let Some(colon) = memchr::memchr(b':', body) else { return false };
    let name = &body[..colon];
    !name.is_empty()
        && name.iter().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
        && !body.iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0)
}

/// The size on a chunk-size line (`1a;ext=v\r\n`), if it is well formed.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let (size, ext) = match memchr::memchr(b';', line) {
        Some(at) => (&line[..at], &line[at..]),
        None => (line, &[][..]),
    };
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if ext.iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

impl<S: AsyncRead + Unpin> AsyncRead for Audited<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            self.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Audited<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(chunks: &[&[u8]]) -> Vec<Result<(), String>> {
        let verdicts = Verdicts::default();
        let mut a = Audited::new(tokio::io::empty(), verdicts.clone());
        for c in chunks {
            a.feed(c);
        }
        let lost = verdicts.framing();
        let mut out: Vec<_> = verdicts.0.lock().unwrap().heads.drain(..).collect();
        if let Err(why) = lost {
            out.push(Err(why));
        }
        out
    }

    #[test]
    fn pipelined_requests_are_found_through_lengths_and_chunks_split_anywhere() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let whole = audit(&[stream]);
        // Three heads; the third refused, which also loses the stream's framing.
        assert_eq!(whole.len(), 4, "{whole:?}");
        assert!(whole[0].is_ok() && whole[1].is_ok() && whole[2].is_err() && whole[3].is_err());
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(audit(&bytes), whole);
    }

    #[test]
    fn a_head_ends_where_httparse_ends_it() {
        // Each head is followed by the start of another request: the first verdict
        // must be about the first head, whichever line ending closed it.
        for head in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\nHost: x\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\n\n",
        ] {
            let end = head_end(head);
            assert_eq!(end, Some(head.len()), "{}", String::from_utf8_lossy(head));
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let parsed = httparse::Request::new(&mut headers).parse(&[head, b"GET /next"].concat());
            assert_eq!(parsed, Ok(httparse::Status::Complete(head.len())));
        }
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        for head in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
            // A bare LF ending the last header line, then CRLF: found by the
            // http_head fuzz target. The audit looked for CRLF CRLF or LF LF only, so
            // it saw no head at all and filed no verdict, while hyper read this one.
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\n\r\n",
        ] {
            assert!(audit(&[head])[0].is_err(), "{}", String::from_utf8_lossy(head));
        }
        assert_eq!(chunk_size(b"1a;x=y\r\n"), Some(26));
        for bad in [&b"0x5\r\n"[..], b"+5\r\n", b" 5\r\n", b"5 \r\n", b"\r\n", b"5;a\rb\r\n", b"11111111111111111\r\n"]
        {
            assert_eq!(chunk_size(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
