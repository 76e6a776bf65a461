//! A byte stream read through the streaming masker, for plugins whose replies are
//! free-form bytes (terminal output, HTTP bodies) rather than Postgres values.
//!
//! [`StreamMasker`] holds back the tail that a secret could still be growing into. Over a
//! network that tail may be the end of a prompt or of a line, with nothing more coming
//! until the agent answers, so [`MaskedReader`] lets it out after a short quiet timer:
//! bytes are held at most `flush_after` past the moment they were first held back.
//! Waiting longer could only help a secret that has stopped arriving.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

use crate::masking::{Masker, StreamMasker};

/// How long held-back bytes may wait by default: short enough that a prompt looks
/// immediate to a person, long enough that a line arriving in two TCP segments is
/// still masked as one.
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);

/// Bytes read from the inner stream per call: two SSH channel packets, so bulk output
/// goes to the masker, the recording and the agent in large pieces (16 KiB cost 15%
/// more CPU per MB through an SSH exec).
const READ_CHUNK: usize = 64 * 1024;

/// An [`AsyncRead`] that yields `inner`'s bytes masked.
#[derive(Debug)]
pub struct MaskedReader<R> {
    inner: R,
    stream: StreamMasker<Arc<Masker>>,
    flush_after: Duration,
    /// Armed while bytes are held back: when it fires, they go out.
    timer: Option<Pin<Box<Sleep>>>,
    /// Masked bytes not yet handed to the reader, from `ready_at` on.
    ready: Vec<u8>,
    ready_at: usize,
    chunk: Box<[u8]>,
    eof: bool,
    /// On the timer, let out whole lines only (output nobody types into).
    lines_when_quiet: bool,
}

impl<R: AsyncRead + Unpin> MaskedReader<R> {
    /// Reads `inner` through `masker`, holding bytes back at most `flush_after`.
    pub fn new(inner: R, masker: Arc<Masker>, flush_after: Duration) -> Self {
        MaskedReader {
            inner,
            stream: StreamMasker::new(masker),
            flush_after,
            timer: None,
            ready: Vec::new(),
            ready_at: 0,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            eof: false,
            lines_when_quiet: false,
        }
    }

    /// On the timer, lets out only whole lines: a partial line waits for its end, more
    /// output or the end of the stream. For output no one is typing into (a command's,
    /// not a terminal's), where a program could otherwise print a secret in pieces
    /// with pauses between them and have each piece go out before the next arrives.
    pub fn holding_partial_lines(mut self) -> Self {
        self.lines_when_quiet = true;
        self
    }

    /// Takes what the masker let out, and arms or disarms the timer to match what it
    /// still holds.
    fn take(&mut self, out: Vec<u8>) {
        self.ready = out;
        self.ready_at = 0;
        if self.stream.pending() == 0 {
            self.timer = None;
        } else if self.timer.is_none() {
            self.timer = Some(Box::pin(tokio::time::sleep(self.flush_after)));
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for MaskedReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(ready) = this.ready.get(this.ready_at..).filter(|r| !r.is_empty()) {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.ready_at += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => {
                    this.eof = true;
                    let out = this.stream.flush();
                    this.take(out);
                }
                Poll::Ready(Ok(())) => {
                    let out = this.stream.push(chunk.filled());
                    this.take(out);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let Some(timer) = this.timer.as_mut() else { return Poll::Pending };
                    ready!(timer.as_mut().poll(cx));
                    let out = match this.lines_when_quiet {
                        true => this.stream.flush_lines(),
                        false => this.stream.flush(),
                    };
                    this.take(out);
                    // Whatever is still held waits for more bytes or the end.
                    if this.lines_when_quiet && this.ready.is_empty() {
                        this.timer = None;
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::Style;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn reader() -> (tokio::io::DuplexStream, MaskedReader<tokio::io::DuplexStream>) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let masker = Arc::new(Masker::new(None, Style::Redact, b"k"));
        (near, MaskedReader::new(far, masker, FLUSH_AFTER))
    }

    async fn read_some(r: &mut MaskedReader<tokio::io::DuplexStream>) -> String {
        let mut buf = vec![0; 4096];
        let n = r.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_split_across_writes_is_masked_and_a_quiet_tail_goes_out_on_the_timer() {
        let (mut near, mut r) = reader();
        let start = tokio::time::Instant::now();
        near.write_all(b"$ cat .env\nDATABASE_URL=postgres://app:hun").await.unwrap();
        // The held tail could be a secret still arriving: the reader waits for more.
        let first = tokio::time::timeout(Duration::from_millis(10), read_some(&mut r)).await;
        assert!(first.is_err(), "nothing may go out before the timer: {first:?}");
        near.write_all(b"ter2@db:5432/app\n$ ").await.unwrap();
        let out = read_some(&mut r).await;
        assert_eq!(out, "$ cat .env\nDATABASE_URL=postgres://app:[MASKED:url_password]@db:5432/app\n$ ");
        // Everything went out at once, on the timer armed when the first bytes were held.
        assert_eq!(start.elapsed(), FLUSH_AFTER);
        near.shutdown().await.unwrap();
        assert_eq!(read_some(&mut r).await, "", "end of stream");
    }

    #[tokio::test(start_paused = true)]
    async fn held_bytes_wait_at_most_the_timer_even_while_more_trickles_in() {
        let (mut near, mut r) = reader();
        let start = tokio::time::Instant::now();
        let typing = async {
            for b in b"echo hi" {
                near.write_all(&[*b]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            near
        };
        let reading = async {
            let out = read_some(&mut r).await;
            (out, start.elapsed())
        };
        let (near, (out, waited)) = tokio::join!(typing, reading);
        // The first keystrokes went out when the first one had waited FLUSH_AFTER,
        // not when typing stopped.
        assert_eq!(waited, FLUSH_AFTER);
        assert_eq!(out, "ech");
        drop(near);
        let mut rest = String::new();
        r.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "o hi");
    }

    #[tokio::test(start_paused = true)]
    async fn holding_partial_lines_a_secret_printed_in_pieces_with_pauses_is_masked() {
        let (mut near, far) = tokio::io::duplex(64 * 1024);
        let masker = Arc::new(Masker::new(None, Style::Redact, b"k"));
        let mut r = MaskedReader::new(far, masker, FLUSH_AFTER).holding_partial_lines();
        near.write_all(b"line one\ntoken ghp_0123456789").await.unwrap();
        assert_eq!(read_some(&mut r).await, "line one\n", "whole lines go out on the timer");
        // The partial line waits, however long the pause.
        let held = tokio::time::timeout(Duration::from_secs(5), read_some(&mut r)).await;
        assert!(held.is_err(), "a partial line went out: {held:?}");
        near.write_all(b"abcdefghijABCDEFGHIJ012345 done\n").await.unwrap();
        drop(near);
        let mut rest = String::new();
        r.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "token [MASKED:github_token] done\n");
    }

    #[tokio::test]
    async fn a_long_stream_is_masked_whatever_its_cuts() {
        let (mut near, mut r) = reader();
        let line = "user ada@example.com paid with 4111 1111 1111 1111\n".repeat(2000);
        let masker = Masker::new(None, Style::Redact, b"k");
        let want = String::from_utf8(masker.mask(line.as_bytes()).into_owned()).unwrap();
        let writer = tokio::spawn(async move {
            for piece in line.as_bytes().chunks(777) {
                near.write_all(piece).await.unwrap();
            }
        });
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, want);
        assert!(!got.contains("ada@"));
    }
}
