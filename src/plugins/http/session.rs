//! One recorded session: what one identity did on one connection over one agent
//! connection (a keep-alive connection, or a CONNECT tunnel).
//!
//! HTTP bodies stream after the handler has returned, so events are recorded through
//! a channel, in order, by a task per session. What the channel carries is bounded:
//! each body is recorded only up to the connection's `record_body`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use airlock_http::record::{self, BodyEnd, Event};
use bytes::Bytes;
use tokio::sync::mpsc;

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
        let (recorder, frames, writer) = match recorder {
            None => (None, None, None),
            Some(r) => {
                let session = Arc::new(r.session(&start).await?);
                let (tx, mut rx) = mpsc::unbounded_channel::<(Direction, Kind, Bytes)>();
                let (to, down) = (session.clone(), failed.clone());
                let writer = tokio::spawn(async move {
                    while let Some((direction, kind, payload)) = rx.recv().await {
                        if to.record(direction, kind, payload).await.is_err() {
                            down.store(true, Ordering::SeqCst);
                        }
                    }
                    if to.flush().await.is_err() {
                        down.store(true, Ordering::SeqCst);
                    }
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
        if let Some(tx) = frames.as_ref()
            && tx.send((direction, kind, record::encode(event).into())).is_err()
        {
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

/// The end of a body, as recorded.
pub fn body_end(bytes: u64, recorded: u64, note: Option<String>) -> BodyEnd {
    BodyEnd { bytes, recorded, truncated: recorded < bytes, note }
}
