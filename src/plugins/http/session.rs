//! One recorded session: what one identity did on one connection over one agent
//! connection (a keep-alive connection, or a CONNECT tunnel).
//!
//! HTTP bodies stream after the handler has returned, so events are recorded through
//! a channel, in order, by a task per session. What the channel carries is bounded:
//! each body is recorded only up to the connection's `record_body`, and a new exchange
//! or WebSocket message waits while more than [`MAX_BACKLOG`] bytes are still to be
//! written (a recorder slower than the traffic slows the traffic, and Airlock's
//! memory stays bounded).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use airlock_http::record::{self, BodyEnd, Event};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::identity::Identity;
use crate::metrics::SessionMetrics;
use crate::recording::format::{Direction, Kind, SessionEnd};
use crate::recording::{Recorder, SessionRecorder};

/// A session's recording and counters.
pub struct Session {
    pub identity: Identity,
    pub connection: String,
    pub metrics: SessionMetrics,
    /// Where policy events go directly (the hold awaits them).
    pub recorder: Option<Arc<SessionRecorder>>,
    frames: std::sync::Mutex<Option<mpsc::UnboundedSender<(Direction, Kind, Bytes)>>>,
    recording: bool,
    failed: Arc<AtomicBool>,
    backlog: Arc<Backlog>,
    exchanges: AtomicU64,
    pub to_upstream: AtomicU64,
    pub to_agent: AtomicU64,
    started: std::time::Instant,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("connection", &self.connection).finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session, recording its start; `None` from a recorder that has failed.
    pub async fn open(
        recorder: Option<&Recorder>,
        start: crate::recording::format::SessionStart,
        identity: Identity,
        metrics: SessionMetrics,
    ) -> Result<Session, crate::recording::RecorderDown> {
        let connection = start.connection.clone();
        let failed = Arc::new(AtomicBool::new(false));
        let backlog = Arc::new(Backlog::default());
        let (recorder, frames, writer) = match recorder {
            None => (None, None, None),
            Some(r) => {
                let session = Arc::new(r.session(&start).await?);
                let (tx, mut rx) = mpsc::unbounded_channel::<(Direction, Kind, Bytes)>();
                let (to, down, backlog) = (session.clone(), failed.clone(), backlog.clone());
                let writer = tokio::spawn(async move {
                    while let Some((direction, kind, payload)) = rx.recv().await {
                        let len = payload.len();
                        if to.record(direction, kind, payload).await.is_err() {
                            down.store(true, Ordering::SeqCst);
                            backlog.release();
                        }
                        backlog.written(len);
                    }
                    if to.flush().await.is_err() {
                        down.store(true, Ordering::SeqCst);
                    }
                    backlog.release();
                });
                (Some(session), Some(tx), Some(writer))
            }
        };
        Ok(Session {
            identity,
            connection,
            metrics,
            recorder,
            recording: frames.is_some(),
            frames: std::sync::Mutex::new(frames),
            failed,
            backlog,
            exchanges: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
            to_agent: AtomicU64::new(0),
            started: std::time::Instant::now(),
            writer: std::sync::Mutex::new(writer),
        })
    }

    /// Whether recording has failed: nothing more may pass (fail closed).
    pub fn recorder_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Waits while more than [`MAX_BACKLOG`] recorded bytes are still to be written,
    /// or until recording has failed.
    pub async fn caught_up(&self) {
        if self.recording {
            self.backlog.below_max(&self.failed).await;
        }
    }

    /// The next exchange's id.
    pub fn next_exchange(&self) -> u64 {
        self.exchanges.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records an event, in order after those recorded before.
    pub fn record(&self, from_agent: bool, event: &Event<'_>) {
        if !self.recording {
            return;
        }
        let (direction, kind) = match from_agent {
            true => (Direction::ToUpstream, Kind::HttpAgent),
            false => (Direction::ToAgent, Kind::HttpUpstream),
        };
        let frames = self.frames.lock().unwrap_or_else(|p| p.into_inner());
        // After the session's end, a body still streaming is no longer recorded.
        let Some(tx) = frames.as_ref() else { return };
        let payload: Bytes = record::encode(event).into();
        self.backlog.queued(payload.len());
        if tx.send((direction, kind, payload)).is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether anything is recorded at all.
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// Records the end of a session and waits until it is on disk.
    pub async fn finish(&self, reason: &str) {
        let exchanges = self.exchanges.load(Ordering::Relaxed);
        let duration_ms = self.started.elapsed().as_millis() as u64;
        tracing::info!(subject = %self.identity.subject, connection = %self.connection, exchanges, duration_ms, "session ended");
        let Some(tx) = self.frames.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let end = SessionEnd {
            reason: reason.to_owned(),
            statements: exchanges,
            duration_ms,
            bytes_to_upstream: self.to_upstream.load(Ordering::Relaxed),
            bytes_to_agent: self.to_agent.load(Ordering::Relaxed),
            // The recorder adds the verdict counts.
            verdicts: Default::default(),
        };
        let _ = tx.send((Direction::None, Kind::SessionEnd, serde_json::to_vec(&end).unwrap_or_default().into()));
        drop(tx);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        if self.recorder_failed() {
            tracing::error!("the end of this session could not be recorded");
        }
    }
}

/// Recorded bytes a session may have queued for its writer before new traffic waits.
pub const MAX_BACKLOG: usize = 4 << 20;

/// What a session has queued for its recording task and not yet written.
#[derive(Debug, Default)]
struct Backlog {
    bytes: AtomicUsize,
    drained: Notify,
}

impl Backlog {
    fn queued(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }

    fn written(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::SeqCst);
        if before > MAX_BACKLOG && before - n <= MAX_BACKLOG {
            self.drained.notify_waiters();
        }
    }

    /// Wakes every waiter: nothing more will be written.
    fn release(&self) {
        self.drained.notify_waiters();
    }

    async fn below_max(&self, failed: &AtomicBool) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.bytes.load(Ordering::SeqCst) <= MAX_BACKLOG || failed.load(Ordering::SeqCst) {
                return;
            }
            drained.await;
        }
    }
}

/// The end of a body, as recorded.
pub fn body_end(bytes: u64, recorded: u64, note: Option<String>) -> BodyEnd {
    BodyEnd { bytes, recorded, truncated: recorded < bytes, note }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn traffic_waits_while_the_backlog_is_over_its_cap_and_not_after() {
        let backlog = Arc::new(Backlog::default());
        let failed = Arc::new(AtomicBool::new(false));
        backlog.queued(MAX_BACKLOG);
        backlog.below_max(&failed).await;
        backlog.queued(10);
        let waiter = tokio::spawn({
            let (backlog, failed) = (backlog.clone(), failed.clone());
            async move { backlog.below_max(&failed).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "went on with the backlog over its cap");
        backlog.written(10);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();

        // A failed recorder releases the waiters (they then refuse the traffic).
        backlog.queued(10);
        let waiter = tokio::spawn({
            let (backlog, failed) = (backlog.clone(), failed.clone());
            async move { backlog.below_max(&failed).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        failed.store(true, Ordering::SeqCst);
        backlog.release();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
