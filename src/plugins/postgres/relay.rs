//! The steady state of a session: bytes both ways, looking at as little as possible.
//!
//! Two pumps run concurrently in the session's task:
//! - agent → upstream splits the agent's stream into messages only far enough to see
//!   statements (Query, Parse) whole and to count the requests that will be answered
//!   by a ReadyForQuery (Query, Sync, FunctionCall);
//! - upstream → agent passes everything through raw except ReadyForQuery, which closes
//!   a request: it feeds the latency histogram and tells shutdown when the session is
//!   idle.
//!
//! The pumps share one small [`Progress`] under a mutex; neither ever waits on the
//! other, so a slow reader on one side cannot deadlock the other direction.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use airlock_postgres::message::{self, Severity, TransactionStatus, tag};
use airlock_postgres::{Chunk, Disposition, Header, Scanner};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::SessionError;
use crate::listener::Shutdown;
use crate::metrics::SessionMetrics;
use crate::net::{BoxWrite, Stream};
use crate::recording::format::{Direction, Kind};
use crate::recording::{RecorderDown, SessionRecorder};

/// How a relay ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The agent sent Terminate.
    Terminated,
    /// The agent closed its socket.
    AgentClosed,
    /// The upstream closed its socket (after a FATAL error, or a server shutdown).
    UpstreamClosed,
    /// Airlock is draining and the session reached a safe point.
    Drained,
    /// Airlock's shutdown grace period ran out.
    Aborted,
}

/// Request/response bookkeeping shared by the two pumps.
#[derive(Debug)]
struct Progress {
    /// When each request still awaiting its ReadyForQuery was sent.
    in_flight: VecDeque<Instant>,
    status: TransactionStatus,
    /// Set once, when the session is closing at a safe point: nothing more goes up.
    closing: bool,
    statements: u64,
}

impl Progress {
    /// Idle between statements, outside any transaction: the only point where a drain
    /// may close the session without the agent losing work.
    fn at_safe_point(&self) -> bool {
        self.in_flight.is_empty() && self.status == TransactionStatus::Idle
    }
}

/// What a relay needs besides the sockets.
pub struct RelayContext<'a> {
    /// Where both directions are recorded, unless recording is off.
    pub recorder: Option<&'a SessionRecorder>,
    /// Per-session counters.
    pub metrics: &'a SessionMetrics,
    /// Process shutdown signals.
    pub shutdown: &'a Shutdown,
    /// Cap on a message buffered whole.
    pub max_message: usize,
}

/// Statistics of a finished relay, for the session's closing log line.
#[derive(Debug, Clone, Copy)]
pub struct RelayStats {
    /// Statements (Query and Parse messages) the agent sent.
    pub statements: u64,
    /// Bytes sent to the upstream.
    pub to_upstream: u64,
    /// Bytes sent to the agent.
    pub to_agent: u64,
}

/// Relays until either side ends; returns how, with the agent's still-open write half. `agent_buf` and `upstream_buf` hold bytes already
/// read from each side.
pub async fn relay(
    agent: Stream,
    agent_buf: BytesMut,
    upstream: Stream,
    upstream_buf: BytesMut,
    ctx: RelayContext<'_>,
) -> (Result<End, SessionError>, RelayStats, BoxWrite) {
    let progress = Mutex::new(Progress {
        in_flight: VecDeque::new(),
        status: TransactionStatus::Idle,
        closing: false,
        statements: 0,
    });
    let (mut agent_rd, mut agent_wr) = agent.into_split();
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let sent = [AtomicU64::new(0), AtomicU64::new(0)];
    let never = crate::signal::Signal::default();
    let recorder_failed = ctx.recorder.map(|r| r.failed()).unwrap_or(&never).fired();
    let result = tokio::select! {
        // Fixed order: a random start costs an RNG draw on every wake-up.
        biased;
        _ = recorder_failed => Err(SessionError::RecorderFailed),
        r = agent_to_upstream(&mut agent_rd, agent_buf, &mut up_wr, &progress, &ctx, &sent[0]) => r,
        r = upstream_to_agent(&mut up_rd, upstream_buf, &mut agent_wr, &progress, &ctx, &sent[1]) => r,
    };
    // Leave both peers in a clean state; failures here change nothing.
    if !matches!(result, Ok(End::Terminated) | Ok(End::UpstreamClosed)) {
        let _ = up_wr.write_all(&message::terminate()).await;
    }
    if let Err(e) = &result
        && let Some(reply) = e.agent_reply()
    {
        if let Some(r) = ctx.recorder
            && !matches!(e, SessionError::RecorderFailed)
        {
            let _ = r.record(Direction::ToAgent, Kind::PgBackend, reply.clone()).await;
        }
        let _ = agent_wr.write_all(&reply).await;
    }
    let _ = up_wr.shutdown().await;
    let statements = lock(&progress).statements;
    let [to_upstream, to_agent] = sent.map(AtomicU64::into_inner);
    // The caller closes the agent's side once the session's end is recorded, so an
    // agent that saw its connection close knows the whole session is on disk.
    (result, RelayStats { statements, to_upstream, to_agent }, agent_wr)
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    // Critical sections are a few field updates that cannot panic.
    progress.lock().unwrap_or_else(|p| p.into_inner())
}

async fn agent_to_upstream<R, W>(
    rd: &mut R,
    mut buf: BytesMut,
    wr: &mut W,
    progress: &Mutex<Progress>,
    ctx: &RelayContext<'_>,
    sent_total: &AtomicU64,
) -> Result<End, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = Scanner::new(ctx.max_message);
    let mut out = Batch::default();
    let mut sizing = ReadSizing::default();
    // Created once: registering a waiter takes a lock, later polls one atomic load.
    let abort = ctx.shutdown.abort.fired();
    tokio::pin!(abort);
    loop {
        let mut requests = 0usize;
        let mut statements = 0u64;
        let mut terminate = false;
        // The statement seam: policy and recording will answer `Whole` for Query and
        // Parse to inspect them before they go upstream; until then they pass raw.
        let mut classify = |h: Header<'_>| {
            match h.tag {
                tag::QUERY => {
                    requests += 1;
                    statements += 1;
                }
                tag::PARSE => statements += 1,
                tag::SYNC | tag::FUNCTION_CALL => requests += 1,
                tag::TERMINATE => terminate = true,
                _ => {}
            }
            // Statements stay within limits.max_message_size even while they pass
            // raw: asking for an oversized one whole makes the scanner refuse it.
            if matches!(h.tag, tag::QUERY | tag::PARSE) && h.len > ctx.max_message {
                Disposition::Whole
            } else {
                Disposition::Pass
            }
        };
        while let Some(chunk) = scanner.next(&mut buf, &mut classify)? {
            match chunk {
                Chunk::Raw(bytes) => out.push(bytes),
                Chunk::Frame(frame) => out.push(frame.into_raw()),
            }
        }
        if requests > 0 || statements > 0 {
            let mut p = lock(progress);
            if p.closing {
                return Ok(End::Drained);
            }
            let now = Instant::now();
            p.in_flight.extend(std::iter::repeat_n(now, requests));
            p.statements += statements;
        }
        let sent = out.send(wr, ctx.recorder, Direction::ToUpstream, Kind::PgFrontend, upstream_io).await?;
        ctx.metrics.to_upstream.inc_by(sent as u64);
        sent_total.fetch_add(sent as u64, Ordering::Relaxed);
        if terminate && scanner.at_boundary() {
            return Ok(End::Terminated);
        }
        sizing.prepare(&mut buf);
        let n = tokio::select! {
            biased;
            _ = &mut abort => return Ok(End::Aborted),
            n = rd.read_buf(&mut buf) => n.map_err(SessionError::AgentIo)?,
        };
        if n == 0 {
            return Ok(End::AgentClosed);
        }
        sizing.observe(n);
    }
}

async fn upstream_to_agent<R, W>(
    rd: &mut R,
    mut buf: BytesMut,
    wr: &mut W,
    progress: &Mutex<Progress>,
    ctx: &RelayContext<'_>,
    sent_total: &AtomicU64,
) -> Result<End, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = Scanner::new(ctx.max_message);
    let mut out = Batch::default();
    let mut sizing = ReadSizing::default();
    let mut draining = false;
    let mut statuses = Vec::new();
    let abort = ctx.shutdown.abort.fired();
    let drain = ctx.shutdown.drain.fired();
    tokio::pin!(abort, drain);
    loop {
        // ReadyForQuery closes a request. Its status byte is read from the header
        // view, so the message stays inside the raw run; only one split across two
        // reads is buffered whole.
        statuses.clear();
        loop {
            let chunk = scanner.next(&mut buf, &mut |h: Header<'_>| {
                // The result seam: masking and recording will ask for RowDescription,
                // DataRow and CommandComplete here; until then they pass raw.
                if h.tag != tag::READY_FOR_QUERY {
                    return Disposition::Pass;
                }
                match h.complete_body() {
                    Some(body) => {
                        statuses.push(message::parse_ready_for_query(body));
                        Disposition::Pass
                    }
                    None => Disposition::Whole,
                }
            })?;
            match chunk {
                None => break,
                Some(Chunk::Raw(bytes)) => out.push(bytes),
                Some(Chunk::Frame(frame)) => {
                    statuses.push(message::parse_ready_for_query(frame.body()));
                    out.push(frame.into_raw());
                }
            }
        }
        let mut close_now = false;
        if !statuses.is_empty() {
            let mut p = lock(progress);
            for status in statuses.drain(..) {
                p.status = status.map_err(upstream_protocol)?;
                if let Some(sent) = p.in_flight.pop_front() {
                    ctx.metrics.statement_seconds.observe(sent.elapsed().as_secs_f64());
                }
            }
            if draining && p.at_safe_point() {
                p.closing = true;
                close_now = true;
            }
        }
        if close_now {
            out.push(shutdown_notice());
        }
        let sent = out.send(wr, ctx.recorder, Direction::ToAgent, Kind::PgBackend, SessionError::AgentIo).await?;
        ctx.metrics.to_agent.inc_by(sent as u64);
        sent_total.fetch_add(sent as u64, Ordering::Relaxed);
        if close_now {
            return Ok(End::Drained);
        }
        sizing.prepare(&mut buf);
        let n = tokio::select! {
            biased;
            _ = &mut abort => {
                out.push(shutdown_notice());
                let _ = out.send(wr, ctx.recorder, Direction::ToAgent, Kind::PgBackend, SessionError::AgentIo).await;
                return Ok(End::Aborted);
            }
            _ = &mut drain, if !draining => {
                draining = true;
                let idle = {
                    let mut p = lock(progress);
                    p.closing = p.at_safe_point() && scanner.at_boundary() && buf.is_empty();
                    p.closing
                };
                if idle {
                    out.push(shutdown_notice());
                let _ = out.send(wr, ctx.recorder, Direction::ToAgent, Kind::PgBackend, SessionError::AgentIo).await;
                    return Ok(End::Drained);
                }
                continue;
            }
            n = rd.read_buf(&mut buf) => n.map_err(upstream_io)?,
        };
        if n == 0 {
            return Ok(End::UpstreamClosed);
        }
        sizing.observe(n);
    }
}

fn shutdown_notice() -> Bytes {
    message::error_response(
        Severity::Fatal,
        "57P01",
        "terminating connection because Airlock is shutting down",
        Some("reconnect in a moment"),
    )
}

fn upstream_io(e: std::io::Error) -> SessionError {
    SessionError::Upstream { connection: String::new(), detail: format!("I/O error: {e}"), agent_message: None }
}

fn upstream_protocol(e: airlock_postgres::ProtocolError) -> SessionError {
    SessionError::Upstream { connection: String::new(), detail: format!("protocol error: {e}"), agent_message: None }
}

/// Read buffer sizing: small for interactive traffic, growing while reads keep
/// filling it (COPY, large results), so bulk transfers take few syscalls and idle
/// sessions hold little memory.
struct ReadSizing {
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

    fn prepare(&self, buf: &mut BytesMut) {
        if buf.capacity() - buf.len() < self.want / 2 {
            buf.reserve(self.want);
        }
    }

    fn observe(&mut self, n: usize) {
        if n >= self.want / 2 {
            self.want = (self.want * 2).min(Self::MAX);
        } else if n < Self::MIN / 4 {
            self.want = Self::MIN;
        }
    }
}

/// Chunks waiting to be written, sent with as few writes as possible.
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    scratch: BytesMut,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.chunks.push(bytes);
        }
    }

    /// Records the batch (waiting if the recorder's queue is full), then writes it,
    /// returning the number of bytes written. What is recorded is exactly what is sent.
    async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        recorder: Option<&SessionRecorder>,
        direction: Direction,
        kind: Kind,
        io_error: fn(std::io::Error) -> SessionError,
    ) -> Result<usize, SessionError> {
        let bytes = match self.chunks.len() {
            0 => return Ok(0),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                // Small chunks are cheaper to copy than to write one by one.
                self.scratch.clear();
                for c in self.chunks.drain(..) {
                    self.scratch.extend_from_slice(&c);
                }
                self.scratch.split().freeze()
            }
        };
        if let Some(r) = recorder {
            r.record(direction, kind, bytes.clone()).await.map_err(|RecorderDown| SessionError::RecorderFailed)?;
        }
        wr.write_all(&bytes).await.map_err(io_error)?;
        wr.flush().await.map_err(io_error)?;
        Ok(bytes.len())
    }
}
