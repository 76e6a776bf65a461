//! Socket I/O for both pumps: read buffers sized to the traffic, and writes batched
//! and recorded.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::progress::Reply;
use crate::plugins::postgres::error::SessionError;
use crate::plugins::postgres::mask::FrontendMasking;
use crate::recording::format::{Direction, Kind};
use crate::recording::{RecorderDown, SessionRecorder};

/// Read buffer sizing: small for interactive traffic, growing while reads keep
/// filling it (COPY, large results), so bulk transfers take few syscalls and idle
/// sessions hold little memory.
pub(super) struct ReadSizing {
    want: usize,
}

impl Default for ReadSizing {
    fn default() -> Self {
        ReadSizing { want: ReadSizing::MIN }
    }
}

impl ReadSizing {
    const MIN: usize = 8 * 1024;
    const MAX: usize = 128 * 1024;

    pub(super) fn prepare(&self, buf: &mut BytesMut) {
        if buf.capacity() - buf.len() < self.want / 2 {
            buf.reserve(self.want);
        }
    }

    pub(super) fn observe(&mut self, n: usize) {
        if n >= self.want / 2 {
            self.want = (self.want * 2).min(Self::MAX);
        } else if n < Self::MIN / 4 {
            self.want = Self::MIN;
        }
    }
}

/// Chunks waiting to be written, sent with as few writes as possible.
#[derive(Default)]
pub(super) struct Batch {
    chunks: Vec<Bytes>,
    scratch: BytesMut,
}

impl Batch {
    pub(super) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.chunks.push(bytes);
        }
    }

    /// The reply of a request whose ReadyForQuery passed raw. Requests Airlock answers
    /// are marked before their Sync goes upstream, so their ReadyForQuery is always
    /// looked at whole; should one slip through, the error still reaches the agent.
    pub(super) fn push_unexpected(&mut self, reply: Reply) {
        match reply {
            Reply::ErrorThenReady(error) | Reply::ErrorInstead(error) | Reply::Instead(error) => {
                tracing::error!("a request Airlock answers had its ReadyForQuery pass raw; its answer follows it");
                self.push(error);
            }
            // Dropping the sender tells the agent pump nothing was counted.
            Reply::Capture(_) => tracing::error!("a request Airlock captures had its ReadyForQuery pass raw"),
            Reply::Unsaid => tracing::error!("Airlock's own Sync had its ReadyForQuery pass raw"),
            Reply::Upstream => {}
        }
    }

    /// Records the batch (waiting if the recorder's queue is full), then writes it,
    /// returning the number of bytes written. What is recorded is what is sent, or what
    /// `record_as` makes of it (the agent's statements with their secrets masked).
    pub(super) async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        recorder: Option<&SessionRecorder>,
        direction: Direction,
        kind: Kind,
        io_error: fn(std::io::Error) -> SessionError,
        record_as: Option<&mut FrontendMasking<'_>>,
    ) -> Result<usize, SessionError> {
        let bytes = match self.chunks.len() {
            0 => return Ok(0),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                // Small chunks are cheaper to copy than to write one by one.
                self.scratch.clear();
                self.scratch.reserve(self.chunks.iter().map(Bytes::len).sum());
                for c in self.chunks.drain(..) {
                    self.scratch.extend_from_slice(&c);
                }
                self.scratch.split().freeze()
            }
        };
        if let Some(r) = recorder {
            let recorded = match record_as {
                Some(masking) => masking.apply(&bytes),
                None => bytes.clone(),
            };
            r.record(direction, kind, recorded).await.map_err(|RecorderDown| SessionError::RecorderFailed)?;
        }
        wr.write_all(&bytes).await.map_err(io_error)?;
        wr.flush().await.map_err(io_error)?;
        Ok(bytes.len())
    }
}
