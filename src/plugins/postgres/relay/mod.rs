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
//!
//! With the policy enforced, the agent pump also sees every statement and extended
//! protocol message whole and asks the [`SessionGate`]. A held statement waits in the
//! agent pump (everything before it has gone upstream); the agent is told why through
//! a NoticeResponse. A refused one never goes upstream: a Sync goes in its place, and
//! the upstream pump puts Airlock's ErrorResponse in front of that Sync's
//! ReadyForQuery, so replies stay in order however deep the pipeline, and the
//! ReadyForQuery carries the upstream's real transaction status. The upstream pump is
//! the only writer to the agent; what Airlock owes the agent rides in [`Progress`].
//!
//! - [`progress`]: what the two pumps share: the requests in flight, how each is
//!   answered, and the answers Airlock captures for itself.
//! - [`guard`]: the rows-affected guard, which runs a bulk statement with requests of
//!   Airlock's own around it and counts the rows it changed.
//! - [`hold`]: holding a statement for approval, and recording verdicts.
//! - [`to_agent`]: the upstream → agent pump.
//! - [`batch`]: adaptive read sizes and batched writes, for both pumps.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use airlock_postgres::message::{self, tag};
use airlock_postgres::{Chunk, Scanner};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::error::SessionError;
use super::gate::{Held, HeldKind, SessionGate, Step};
use super::judge;
use super::mask::{ConnectionMasking, Expect, FrontendMasking};
use crate::approvals::Broker;
use crate::identity::Identity;
use crate::listener::Shutdown;
use crate::metrics::SessionMetrics;
use crate::net::{BoxWrite, Stream};
use crate::policy::Policy;
use crate::recording::SessionRecorder;
use crate::recording::format::{Direction, Kind};

mod batch;
mod counts;
mod guard;
mod hold;
mod progress;
mod to_agent;

use batch::{Batch, ReadSizing};
use counts::Counts;
use guard::{Counted, Own, OwnRequests, describe_in_session, failing_parse, guarded, guarded_execute};
use hold::{Ruling, decide, refusal};
use progress::{Ask, Progress, Reply, Shared};
use to_agent::upstream_to_agent;

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

/// Why a pump stops: the session ended, or failed. The helpers that run requests of
/// Airlock's own stop the same way, so `?` carries either out of the pump.
#[derive(Debug)]
enum Stop {
    Ended(End),
    Failed(SessionError),
}

impl From<End> for Stop {
    fn from(end: End) -> Stop {
        Stop::Ended(end)
    }
}

impl From<SessionError> for Stop {
    fn from(e: SessionError) -> Stop {
        Stop::Failed(e)
    }
}

impl From<airlock_postgres::ProtocolError> for Stop {
    fn from(e: airlock_postgres::ProtocolError) -> Stop {
        Stop::Failed(e.into())
    }
}

impl Stop {
    fn into_result(self) -> Result<End, SessionError> {
        match self {
            Stop::Ended(end) => Ok(end),
            Stop::Failed(e) => Err(e),
        }
    }
}

/// Where the agent pump is in the agent's stream.
#[derive(Debug)]
enum Reading {
    /// Messages pass, raw where the gate allows them in place.
    Passing,
    /// The gate held a message while it was still in the read buffer; the scanner
    /// hands it over whole next.
    Held(Held),
    /// A refused Execute: the agent's messages up to its Sync are dropped, as
    /// PostgreSQL drops them after an error; each is looked at whole.
    SkippingToSync,
}

/// The session gate's setting: who the session is and where approvals go.
pub struct Enforcement<'a> {
    /// The compiled rules; `None` when `policy.enforce = false` but results are
    /// masked (statements are followed, and all allowed).
    pub policy: Option<&'a Policy>,
    /// Where held statements wait.
    pub broker: &'a Broker,
    /// The agent.
    pub identity: &'a Identity,
    /// The connection name.
    pub connection: &'a str,
    /// Notified when the agent sends a CancelRequest for this session.
    pub cancel: &'a Notify,
    /// The relations that run the database's own code when read, as the session started.
    pub runs_code: std::sync::Arc<super::hidden::SessionCatalog>,
    /// The views that show a rule-masked column, as the session started.
    pub showing_masked: std::sync::Arc<std::collections::HashSet<String>>,
    /// The connection's rows-affected limit for `bulk` statements.
    pub max_rows: u64,
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
    /// The session gate, unless `policy.enforce = false` and nothing is masked.
    pub enforcement: Option<Enforcement<'a>>,
    /// Result masking for this connection, if anything is masked there.
    pub masking: Option<&'a ConnectionMasking>,
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
    /// The upstream was still working on a request (or copying in) when the relay ended.
    pub busy: bool,
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
    let shared = Shared {
        progress: Mutex::new(Progress::default()),
        attention: AtomicUsize::new(0),
        bell: Notify::new(),
        settled: Notify::new(),
    };
    let (mut agent_rd, mut agent_wr) = agent.into_split();
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let sent = [AtomicU64::new(0), AtomicU64::new(0)];
    let never = crate::signal::Signal::default();
    let recorder_failed = ctx.recorder.map(|r| r.failed()).unwrap_or(&never).fired();
    let result = tokio::select! {
        // Fixed order: a random start costs an RNG draw on every wake-up.
        biased;
        _ = recorder_failed => Err(SessionError::RecorderFailed),
        r = agent_to_upstream(&mut agent_rd, agent_buf, &mut up_wr, &shared, &ctx, &sent[0]) => r,
        r = upstream_to_agent(&mut up_rd, upstream_buf, &mut agent_wr, &shared, &ctx, &sent[1]) => r,
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
    let (statements, busy) = {
        let progress = shared.lock();
        (progress.statements, progress.busy())
    };
    let [to_upstream, to_agent] = sent.map(AtomicU64::into_inner);
    // The caller closes the agent's side once the session's end is recorded, so an
    // agent that saw its connection close knows the whole session is on disk.
    (result, RelayStats { statements, to_upstream, to_agent, busy }, agent_wr)
}

async fn agent_to_upstream<R, W>(
    rd: &mut R,
    buf: BytesMut,
    wr: &mut W,
    shared: &Shared,
    ctx: &RelayContext<'_>,
    sent_total: &AtomicU64,
) -> Result<End, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Err(stop) = forward_agent(rd, buf, wr, shared, ctx, sent_total).await;
    stop.into_result()
}

async fn forward_agent<R, W>(
    rd: &mut R,
    mut buf: BytesMut,
    wr: &mut W,
    shared: &Shared,
    ctx: &RelayContext<'_>,
    sent_total: &AtomicU64,
) -> Result<std::convert::Infallible, Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = Scanner::new(ctx.max_message);
    let mut out = Batch::default();
    let mut sizing = ReadSizing::default();
    let mut gate = ctx.enforcement.as_ref().map(|e| {
        SessionGate::new(e.policy, e.identity, e.connection, ctx.masking)
            .with_catalog(e.runs_code.clone(), e.showing_masked.clone())
            .with_max_rows(e.max_rows)
    });
    let mut reading = Reading::Passing;
    let mut counts = Counts::default();
    // Secrets in the agent's statements and parameters are masked in the recording.
    let mut recorded = ctx.masking.filter(|_| ctx.recorder.is_some()).map(FrontendMasking::new);
    // Created once: registering a waiter takes a lock, later polls one atomic load.
    let abort = ctx.shutdown.abort.fired();
    tokio::pin!(abort);
    loop {
        if let Some(gate) = gate.as_mut() {
            let replies = std::mem::take(&mut shared.lock().replies);
            gate.replies(&replies);
        }
        while let Some(chunk) =
            scanner.next(&mut buf, &mut |h| counts.classify(h, gate.as_mut(), &mut reading, ctx.max_message))?
        {
            let frame = match chunk {
                Chunk::Raw(bytes) => {
                    out.push(bytes);
                    continue;
                }
                Chunk::Frame(frame) => frame,
            };
            if std::mem::take(&mut counts.sync_first) {
                // What the agent sent before goes first, then Airlock's Sync ending it.
                counts.commit(shared, None)?;
                send_upstream(&mut out, wr, ctx, sent_total, recorded.as_mut()).await?;
                if let Some(gate) = gate.as_mut() {
                    let mut up =
                        OwnRequests { wr: &mut *wr, shared, ctx, sent_total, recorded: recorded.as_mut(), gate };
                    up.send(vec![Own::sync(Reply::Unsaid)], None).await?;
                }
            }
            let step = match std::mem::replace(&mut reading, Reading::Passing) {
                Reading::SkippingToSync if frame.tag() != tag::SYNC => {
                    reading = Reading::SkippingToSync;
                    if frame.tag() != tag::TERMINATE {
                        continue;
                    }
                    inspect(gate.as_mut(), &frame)?
                }
                Reading::Held(held) => Step::Decide(held),
                Reading::Passing | Reading::SkippingToSync => inspect(gate.as_mut(), &frame)?,
            };
            match step {
                Step::Forward { statement, expect, .. } => {
                    counts.requests.extend(Ask::of(frame.tag()));
                    counts.statements += u64::from(statement);
                    counts.expect.extend(expect);
                    out.push(frame.into_raw());
                }
                Step::Decide(mut held) => {
                    // What the agent sent before this goes first: its replies come
                    // before this one's, and nothing earlier waits on an approver.
                    counts.commit(shared, None)?;
                    send_upstream(&mut out, wr, ctx, sent_total, recorded.as_mut()).await?;
                    let (Some(enforcement), Some(gate)) = (ctx.enforcement.as_ref(), gate.as_mut()) else { continue };
                    let mut up =
                        OwnRequests { wr: &mut *wr, shared, ctx, sent_total, recorded: recorded.as_mut(), gate };
                    // An Execute the guard ran and holds the answer of, its transaction open.
                    let mut ran = None;
                    if let Some(max_rows) = held.max_rows {
                        let counted = match held.kind {
                            HeldKind::Query => guarded(frame.raw(), &held, max_rows, &mut up, rd, &mut buf).await?,
                            // After COPY data the server may have ignored a Sync, so
                            // counting answers cannot find this Execute's: held first.
                            HeldKind::Execute if counts.misaligned => Counted::Hold(
                                "after COPY data whose Syncs the server may have ignored, Airlock cannot count a bulk Execute's rows until a Sync after the COPY".into(),
                            ),
                            HeldKind::Execute => {
                                // The messages before it since the agent's last Sync.
                                let earlier = counts.since_sync.saturating_sub(1);
                                guarded_execute(frame.raw(), &held, max_rows, earlier, &mut up, rd, &mut buf).await?
                            }
                            HeldKind::FunctionCall => Counted::Forward,
                        };
                        match counted {
                            Counted::Done => {
                                counts.statements += u64::from(held.kind == HeldKind::Query);
                                continue;
                            }
                            // Allowed as it stands: forwarded below.
                            Counted::Forward => {}
                            Counted::Hold(reason) => {
                                held.decision =
                                    std::sync::Arc::new(held.decision.held_for_rows(&reason, judge::text_fingerprint));
                            }
                            Counted::HoldOpen(reason, answer) => {
                                held.decision =
                                    std::sync::Arc::new(held.decision.held_for_rows(&reason, judge::text_fingerprint));
                                ran = Some(answer);
                            }
                            Counted::Refuse(reason) => {
                                up.abort_ran(refusal(&reason, "max_rows"), rd, &mut buf).await?;
                                reading = Reading::SkippingToSync;
                                counts.since_sync = 0;
                                continue;
                            }
                        }
                    }
                    let verdict = match decide(&held, enforcement, shared, ctx, rd, &mut buf).await? {
                        Ruling::Forward => None,
                        Ruling::Refuse(error) => Some(error),
                        Ruling::Left => return Err(End::AgentClosed.into()),
                    };
                    counts.statements += u64::from(held.kind == HeldKind::Query);
                    let mut up =
                        OwnRequests { wr: &mut *wr, shared, ctx, sent_total, recorded: recorded.as_mut(), gate };
                    match (verdict, ran) {
                        // Approved after it ran: its answer goes on, so does its transaction.
                        (None, Some(answer)) => {
                            up.deliver(answer, rd, &mut buf).await?;
                        }
                        (Some(error), Some(_)) => {
                            up.abort_ran(error, rd, &mut buf).await?;
                            reading = Reading::SkippingToSync;
                            counts.since_sync = 0;
                        }
                        (None, None) => {
                            let mut expect = held.expect;
                            if let Some(select) = &held.describe {
                                let columns = describe_in_session(&mut up, select, rd, &mut buf).await?;
                                if let Some(Expect::Query { described, .. }) = expect.as_mut() {
                                    *described = columns.map(std::sync::Arc::new);
                                }
                            }
                            let gate = up.gate;
                            gate.released(held.kind);
                            if held.kind == HeldKind::Query
                                && let Ok(text) = message::parse_query(frame.body())
                            {
                                gate.ran(&String::from_utf8_lossy(text));
                            }
                            counts.requests.extend(Ask::of(frame.tag()));
                            counts.expect.extend(expect);
                            out.push(frame.into_raw());
                        }
                        (Some(error), None) => {
                            up.gate.refused();
                            let reply = match held.kind {
                                HeldKind::Execute => {
                                    reading = Reading::SkippingToSync;
                                    Reply::ErrorInstead(error)
                                }
                                HeldKind::Query | HeldKind::FunctionCall => Reply::ErrorThenReady(error),
                            };
                            counts.since_sync = 0;
                            // The Sync sent in its place is answered by a ReadyForQuery.
                            if ctx.masking.is_some() {
                                counts.expect.push(Expect::Sync);
                            }
                            counts.commit(shared, Some(reply))?;
                            if held.kind == HeldKind::Execute {
                                out.push(failing_parse());
                            }
                            out.push(message::sync());
                        }
                    }
                }
            }
        }
        counts.commit(shared, None)?;
        send_upstream(&mut out, wr, ctx, sent_total, recorded.as_mut()).await?;
        if counts.terminate && scanner.at_boundary() {
            return Err(End::Terminated.into());
        }
        sizing.prepare(&mut buf);
        let n = tokio::select! {
            biased;
            _ = &mut abort => return Err(End::Aborted.into()),
            n = rd.read_buf(&mut buf) => n.map_err(SessionError::AgentIo)?,
        };
        if n == 0 {
            return Err(End::AgentClosed.into());
        }
        sizing.observe(n);
    }
}

/// What the gate says of a message the scanner handed over whole.
fn inspect(
    gate: Option<&mut SessionGate<'_>>,
    frame: &airlock_postgres::Frame,
) -> Result<Step, airlock_postgres::ProtocolError> {
    match gate {
        Some(gate) => gate.inspect(frame.tag(), frame.body()),
        None => Ok(Step::Forward { statement: false, expect: None }),
    }
}

async fn send_upstream<W: AsyncWrite + Unpin>(
    out: &mut Batch,
    wr: &mut W,
    ctx: &RelayContext<'_>,
    sent_total: &AtomicU64,
    record_as: Option<&mut FrontendMasking<'_>>,
) -> Result<(), SessionError> {
    let sent = out.send(wr, ctx.recorder, Direction::ToUpstream, Kind::PgFrontend, upstream_io, record_as).await?;
    ctx.metrics.to_upstream.inc_by(sent as u64);
    sent_total.fetch_add(sent as u64, Ordering::Relaxed);
    Ok(())
}

fn upstream_io(e: std::io::Error) -> SessionError {
    SessionError::Upstream { connection: String::new(), detail: format!("I/O error: {e}"), agent_message: None }
}

fn upstream_lost() -> SessionError {
    SessionError::Upstream {
        connection: String::new(),
        detail: "the upstream closed the connection without an error".into(),
        agent_message: Some(("08006".into(), "the upstream database closed the connection".into())),
    }
}

fn upstream_protocol(e: airlock_postgres::ProtocolError) -> SessionError {
    SessionError::Upstream { connection: String::new(), detail: format!("protocol error: {e}"), agent_message: None }
}
