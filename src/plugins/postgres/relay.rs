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

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use airlock_postgres::message::{self, Severity, TransactionStatus, tag};
use airlock_postgres::{Chunk, Disposition, Header, Scanner, describe};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};

use super::error::SessionError;
use super::gate::{Held, HeldKind, SessionGate, Step};
use super::judge;
use super::mask::{ConnectionMasking, Expect, FrontendMasking, ResultMasking, Taint};
use crate::approvals::{self, Broker, Holding, Settled};
use crate::identity::Identity;
use crate::listener::Shutdown;
use crate::metrics::SessionMetrics;
use crate::net::{BoxWrite, Stream};
use crate::policy::Policy;
use crate::recording::format::{Direction, Kind, PolicyEvent, VerdictEvent};
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

/// A request awaiting its ReadyForQuery.
#[derive(Debug)]
struct Request {
    sent: Instant,
    reply: Reply,
    /// A Sync (the server ignores one that arrives while it copies in), or a Query or
    /// FunctionCall.
    sync: bool,
    /// Its place among all requests sent.
    seq: u64,
}

/// A frontend message the relay's bookkeeping follows, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// A Query or FunctionCall: answered by a ReadyForQuery.
    Query,
    /// A Sync: answered by a ReadyForQuery, unless the server is copying in.
    Sync,
    /// A CopyDone or CopyFail: ends copying in; answered by nothing.
    CopyEnd,
}

impl Ask {
    fn of(tag: u8) -> Option<Ask> {
        match tag {
            tag::QUERY | tag::FUNCTION_CALL => Some(Ask::Query),
            tag::SYNC => Some(Ask::Sync),
            tag::COPY_DONE | tag::COPY_FAIL => Some(Ask::CopyEnd),
            _ => None,
        }
    }
}

/// How the agent learns the outcome of a request.
#[derive(Debug)]
enum Reply {
    /// The upstream's reply, as is.
    Upstream,
    /// Airlock refused the request and sent a Sync instead: this error, then the
    /// Sync's ReadyForQuery.
    ErrorThenReady(Bytes),
    /// Airlock refused an Execute and ended the upstream's pipeline with a failing
    /// Parse and a Sync, so the server aborts the transaction as it would after any
    /// error: this error instead of their answer (the agent's own Sync gets the next
    /// ReadyForQuery).
    ErrorInstead(Bytes),
    /// Airlock's own request (the rows guard's): its answer, up to and including its
    /// ReadyForQuery, goes to the agent pump (if it asked), never to the agent.
    Capture(Option<oneshot::Sender<Captured>>),
    /// Airlock's own request that ends a guarded statement: the agent gets the
    /// statement's answer (these bytes), or this request's own answer if it failed,
    /// then this request's ReadyForQuery.
    Instead(Bytes),
}

impl Reply {
    /// Whether the request's answer is read by Airlock before the agent may see it.
    fn captured(&self) -> bool {
        matches!(self, Reply::Capture(_) | Reply::Instead(_) | Reply::ErrorInstead(_))
    }
}

/// An Execute the rows guard sent: its answer follows the `after`-th answer to the
/// extended-protocol messages since the last ReadyForQuery.
#[derive(Debug)]
struct ExecuteCapture {
    after: usize,
    to: oneshot::Sender<Captured>,
}

/// Counts the answers to extended-protocol messages since the last ReadyForQuery, so
/// that the answer to a given message can be told apart without a Sync.
#[derive(Debug, Default)]
struct Answers {
    /// Messages answered: each Parse, Bind, Describe, Close and Execute gets one
    /// answer that ends its reply.
    count: usize,
    /// An ErrorResponse came: the server skips everything else up to the Sync.
    failed: bool,
}

impl Answers {
    fn see(&mut self, tag: u8) {
        match tag {
            tag::READY_FOR_QUERY => *self = Answers::default(),
            tag::ERROR_RESPONSE => {
                self.count += 1;
                self.failed = true;
            }
            _ if Self::ends(tag) => self.count += 1,
            _ => {}
        }
    }

    /// Whether a message ends the answer to one frontend message: ParseComplete,
    /// BindComplete, CloseComplete, RowDescription or NoData (a Describe), and
    /// CommandComplete, EmptyQueryResponse or PortalSuspended (an Execute).
    fn ends(tag: u8) -> bool {
        matches!(tag, b'1' | b'2' | b'3' | b'T' | b'n' | b'C' | b'I' | b's')
    }
}

/// The answer to one of Airlock's own requests, as the agent pump sees it.
#[derive(Debug, Default)]
struct Captured {
    /// What the agent would have been sent (masked), without the ReadyForQuery.
    bytes: BytesMut,
    /// Rows changed, from a CommandComplete's tag.
    rows: Option<u64>,
    /// An ErrorResponse came.
    failed: bool,
    /// The answer was too large to keep whole: `bytes` is incomplete.
    overflow: bool,
    /// The ReadyForQuery's transaction status, for a request's answer.
    status: Option<TransactionStatus>,
    /// The first row, as the server sent it (before masking).
    first_row: Option<Bytes>,
    /// An Execute's answer: whether the server ran it at all (not when an earlier
    /// message of its pipeline failed).
    ran: bool,
}

impl Captured {
    /// Cap on a captured answer: a bulk statement's RETURNING rows wait here until
    /// its rows are counted.
    const MAX: usize = 64 << 20;

    fn push(&mut self, bytes: &[u8]) {
        if self.bytes.len() + bytes.len() > Self::MAX {
            self.overflow = true;
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }

    /// Reads one whole message of the answer.
    fn message(&mut self, tag: u8, body: &[u8]) {
        match tag {
            tag::COMMAND_COMPLETE => self.rows = message::rows_changed(body),
            tag::ERROR_RESPONSE => self.failed = true,
            tag::DATA_ROW if self.first_row.is_none() => self.first_row = Some(Bytes::copy_from_slice(body)),
            _ => {}
        }
    }
}

/// Request/response bookkeeping shared by the two pumps.
#[derive(Debug)]
struct Progress {
    /// Requests still awaiting their ReadyForQuery, oldest first.
    in_flight: VecDeque<Request>,
    /// Notices Airlock owes the agent, sent at the next message boundary.
    notices: Vec<Bytes>,
    /// Told once the notices queued with them have been written to the agent.
    delivered: Vec<oneshot::Sender<()>>,
    /// An Execute whose answer the rows guard reads before the agent may.
    execute_capture: Option<ExecuteCapture>,
    /// What the requests sent since the upstream pump last looked will be answered
    /// with, for result masking.
    expect: Vec<Expect>,
    status: TransactionStatus,
    /// Tags of the upstream's replies that settle prepared-statement names, oldest
    /// first, until the agent pump hands them to its gate.
    replies: Vec<u8>,
    /// Set once, when the session is closing at a safe point: nothing more goes up.
    closing: bool,
    /// The server copies in and the agent has not ended the COPY: its Syncs until then
    /// are ignored by the server, so they are not requests.
    copying: bool,
    /// CopyDone/CopyFail not yet matched to a COPY: the `seq` of the request each came
    /// before.
    copy_ends: VecDeque<u64>,
    /// Requests ever sent: the next one's `seq`.
    pushed: u64,
    statements: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            in_flight: VecDeque::new(),
            notices: Vec::new(),
            delivered: Vec::new(),
            execute_capture: None,
            expect: Vec::new(),
            status: TransactionStatus::Idle,
            replies: Vec::new(),
            closing: false,
            copying: false,
            copy_ends: VecDeque::new(),
            pushed: 0,
            statements: 0,
        }
    }
}

impl Progress {
    /// Idle between statements, outside any transaction: the only point where a drain
    /// may close the session without the agent losing work.
    fn at_safe_point(&self) -> bool {
        self.in_flight.is_empty() && self.status == TransactionStatus::Idle
    }

    /// Awaits the answer to a request sent now; `sync`: it is a Sync.
    fn push(&mut self, reply: Reply, sync: bool) {
        self.in_flight.push_back(Request { sent: Instant::now(), reply, sync, seq: self.pushed });
        self.pushed += 1;
    }

    /// Notes a request (or the end of COPY data) the agent sent. While the server
    /// copies in, it ignores Syncs until the COPY data ends.
    fn ask(&mut self, ask: Ask) {
        match ask {
            Ask::Sync if self.copying => {}
            Ask::CopyEnd if self.copying => self.copying = false,
            Ask::CopyEnd => {
                // Kept small: an agent may send these with no COPY going on.
                if self.copy_ends.len() >= 64 {
                    self.copy_ends.pop_front();
                }
                self.copy_ends.push_back(self.pushed);
            }
            Ask::Query | Ask::Sync => self.push(Reply::Upstream, ask == Ask::Sync),
        }
    }

    /// The server now copies in (CopyInResponse), for the request at the head (a
    /// Query), or for an Execute before it (the head is then that pipeline's Sync):
    /// the Syncs the agent sent from then until its CopyDone or CopyFail are ignored,
    /// so they are no longer awaited. Returns the replies Airlock owed on them.
    fn copying_in(&mut self) -> Vec<Reply> {
        let Some(head) = self.in_flight.front() else {
            self.copying = true;
            return Vec::new();
        };
        let first = head.seq + u64::from(!head.sync);
        // Ends sent before the COPY began belong to none (a CopyDone right before the
        // pipeline's Sync ended this one before that Sync, which is then answered).
        while self.copy_ends.front().is_some_and(|&at| at < first) {
            self.copy_ends.pop_front();
        }
        let end = self.copy_ends.pop_front().unwrap_or_else(|| {
            self.copying = true;
            u64::MAX
        });
        let (ignored, kept) =
            std::mem::take(&mut self.in_flight).into_iter().partition(|r| r.sync && (first..end).contains(&r.seq));
        self.in_flight = kept;
        ignored.into_iter().map(|r: Request| r.reply).collect()
    }
}

/// State both pumps share.
struct Shared {
    progress: Mutex<Progress>,
    /// Requests with an Airlock reply plus notices waiting: while non-zero, the
    /// upstream pump looks at every ReadyForQuery instead of passing it raw.
    attention: AtomicUsize,
    /// Wakes the upstream pump when a notice is waiting.
    bell: Notify,
    /// Wakes the agent pump when no request is in flight.
    settled: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Critical sections are a few field updates that cannot panic.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a notice for the agent and wakes the upstream pump.
    fn notify_agent(&self, notice: Bytes) {
        self.lock().notices.push(notice);
        self.attention.fetch_add(1, Ordering::SeqCst);
        self.bell.notify_one();
    }

    /// Queues bytes for the agent, as a notice is; the receiver hears once they are
    /// written. Used when nothing is in flight upstream but an answer Airlock holds.
    fn deliver(&self, bytes: Bytes) -> oneshot::Receiver<()> {
        let (done, written) = oneshot::channel();
        {
            let mut p = self.lock();
            p.notices.push(bytes);
            p.delivered.push(done);
        }
        self.attention.fetch_add(1, Ordering::SeqCst);
        self.bell.notify_one();
        written
    }
}

/// The policy, enforced: who the session is and where approvals go.
pub struct Enforcement<'a> {
    /// The compiled rules.
    pub policy: &'a Policy,
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
    /// The policy, unless `policy.enforce = false` and nothing is masked.
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
    let statements = shared.lock().statements;
    let [to_upstream, to_agent] = sent.map(AtomicU64::into_inner);
    // The caller closes the agent's side once the session's end is recorded, so an
    // agent that saw its connection close knows the whole session is on disk.
    (result, RelayStats { statements, to_upstream, to_agent }, agent_wr)
}

async fn agent_to_upstream<R, W>(
    rd: &mut R,
    mut buf: BytesMut,
    wr: &mut W,
    shared: &Shared,
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
    let mut gate = ctx.enforcement.as_ref().map(|e| {
        SessionGate::new(e.policy, e.identity, e.connection, ctx.masking)
            .with_catalog(e.runs_code.clone(), e.showing_masked.clone())
            .with_max_rows(e.max_rows)
    });
    // After a refused Execute, the agent's messages up to its Sync are dropped, as
    // PostgreSQL does after an error; each is then looked at whole.
    let mut skipping = false;
    let mut counts = Counts::default();
    // A message the gate held while it was still in the read buffer, until the
    // scanner hands it over whole.
    let mut held_in_place: Option<Held> = None;
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
        while let Some(chunk) = scanner
            .next(&mut buf, &mut |h| counts.classify(h, gate.as_mut(), skipping, ctx.max_message, &mut held_in_place))?
        {
            let frame = match chunk {
                Chunk::Raw(bytes) => {
                    out.push(bytes);
                    continue;
                }
                Chunk::Frame(frame) => frame,
            };
            let step = if skipping && !matches!(frame.tag(), tag::SYNC | tag::TERMINATE) {
                continue;
            } else if let Some(held) = held_in_place.take() {
                Step::Decide(held)
            } else if let Some(gate) = gate.as_mut() {
                gate.inspect(frame.tag(), frame.body())?
            } else {
                Step::Forward { statement: false, expect: None }
            };
            if frame.tag() == tag::SYNC {
                skipping = false;
            }
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
                    if !counts.commit(shared, None) {
                        return Ok(End::Drained);
                    }
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
                            HeldKind::Execute if counts.copied => Ok(Counted::Hold(
                                "after COPY data in this session Airlock cannot count a bulk Execute's rows".into(),
                            )),
                            HeldKind::Execute => {
                                // The messages before it since the agent's last Sync.
                                let earlier = counts.since_sync.saturating_sub(1);
                                guarded_execute(frame.raw(), &held, max_rows, earlier, &mut up, rd, &mut buf).await?
                            }
                            HeldKind::FunctionCall => Ok(Counted::Forward),
                        };
                        match counted {
                            Err(end) => return Ok(end),
                            Ok(Counted::Done) => {
                                counts.statements += u64::from(held.kind == HeldKind::Query);
                                continue;
                            }
                            // Allowed as it stands: forwarded below.
                            Ok(Counted::Forward) => {}
                            Ok(Counted::Hold(reason)) => {
                                held.decision =
                                    std::sync::Arc::new(held.decision.held_for_rows(&reason, judge::text_fingerprint));
                            }
                            Ok(Counted::HoldOpen(reason, answer)) => {
                                held.decision =
                                    std::sync::Arc::new(held.decision.held_for_rows(&reason, judge::text_fingerprint));
                                ran = Some(answer);
                            }
                            Ok(Counted::Refuse(reason)) => {
                                if let Err(end) = up.abort_ran(refusal(&reason, "max_rows"), rd, &mut buf).await? {
                                    return Ok(end);
                                }
                                skipping = true;
                                counts.since_sync = 0;
                                continue;
                            }
                        }
                    }
                    let verdict = match decide(&held, enforcement, shared, ctx, rd, &mut buf).await? {
                        Ok(verdict) => verdict,
                        Err(end) => return Ok(end),
                    };
                    counts.statements += u64::from(held.kind == HeldKind::Query);
                    let mut up =
                        OwnRequests { wr: &mut *wr, shared, ctx, sent_total, recorded: recorded.as_mut(), gate };
                    match (verdict, ran) {
                        // Approved after it ran: its answer goes on, so does its transaction.
                        (None, Some(answer)) => {
                            if let Err(end) = up.deliver(answer, rd, &mut buf).await {
                                return Ok(end);
                            }
                        }
                        (Some(error), Some(_)) => {
                            if let Err(end) = up.abort_ran(error, rd, &mut buf).await? {
                                return Ok(end);
                            }
                            skipping = true;
                            counts.since_sync = 0;
                        }
                        (None, None) => {
                            let gate = up.gate;
                            gate.released(held.kind);
                            if held.kind == HeldKind::Query
                                && let Ok(text) = message::parse_query(frame.body())
                            {
                                gate.ran(&String::from_utf8_lossy(text));
                            }
                            counts.requests.extend(Ask::of(frame.tag()));
                            counts.expect.extend(held.expect);
                            out.push(frame.into_raw());
                        }
                        (Some(error), None) => {
                            up.gate.refused();
                            let reply = match held.kind {
                                HeldKind::Execute => {
                                    skipping = true;
                                    Reply::ErrorInstead(error)
                                }
                                HeldKind::Query | HeldKind::FunctionCall => Reply::ErrorThenReady(error),
                            };
                            counts.since_sync = 0;
                            // The Sync sent in its place is answered by a ReadyForQuery.
                            if ctx.masking.is_some() {
                                counts.expect.push(Expect::Sync);
                            }
                            if !counts.commit(shared, Some(reply)) {
                                return Ok(End::Drained);
                            }
                            if held.kind == HeldKind::Execute {
                                out.push(failing_parse());
                            }
                            out.push(message::sync());
                        }
                    }
                }
            }
        }
        if !counts.commit(shared, None) {
            return Ok(End::Drained);
        }
        send_upstream(&mut out, wr, ctx, sent_total, recorded.as_mut()).await?;
        if counts.terminate && scanner.at_boundary() {
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

/// What the agent pump has passed since it last updated `Progress`.
#[derive(Debug, Default)]
struct Counts {
    /// Requests a ReadyForQuery will answer (Query, Sync, FunctionCall), and the ends
    /// of COPY data between them, in order.
    requests: Vec<Ask>,
    /// Query and Parse messages.
    statements: u64,
    /// The agent sent Terminate.
    terminate: bool,
    /// What the forwarded requests will be answered with, for result masking.
    expect: Vec<Expect>,
    /// Extended-protocol messages forwarded since the last Sync (or Query or
    /// FunctionCall), each answered before a later one: where the answer to the next
    /// one begins.
    since_sync: usize,
    /// The agent has sent COPY data in this session: the server may have ignored a
    /// Sync of its, so counting answers no longer tells them apart.
    copied: bool,
}

impl Counts {
    /// The statement seam, called once per frontend message header. Statements stay
    /// within limits.max_message_size even while they pass raw: asking for an
    /// oversized one whole makes the scanner refuse it. While `skipping`, everything
    /// is asked for whole (and dropped by the caller).
    ///
    /// With the policy enforced, the messages the gate wants are inspected in place
    /// when they are already wholly buffered (the common case), so allowed traffic
    /// still passes raw; a held one is parked in `held` and asked for whole, as is a
    /// message still arriving (the caller inspects those).
    fn classify(
        &mut self,
        h: Header<'_>,
        gate: Option<&mut SessionGate<'_>>,
        skipping: bool,
        max_message: usize,
        held: &mut Option<Held>,
    ) -> Disposition {
        if h.tag == tag::TERMINATE {
            self.terminate = true;
        }
        if skipping {
            return Disposition::Whole;
        }
        // The server ignores a Query or FunctionCall that comes while it skips to a
        // Sync after an error in the extended protocol, which no answer would tell:
        // Airlock asks for the Sync first.
        if gate.is_some() && self.since_sync > 0 && matches!(h.tag, tag::QUERY | tag::FUNCTION_CALL) {
            let kind = if h.tag == tag::QUERY { HeldKind::Query } else { HeldKind::FunctionCall };
            let reason = "a Query or FunctionCall must not follow extended-protocol messages before their Sync";
            *held = Some(Held::refused("(protocol)", reason, kind));
            return Disposition::Whole;
        }
        match h.tag {
            tag::PARSE | tag::BIND | tag::DESCRIBE | tag::CLOSE | tag::EXECUTE => self.since_sync += 1,
            tag::SYNC | tag::QUERY | tag::FUNCTION_CALL => self.since_sync = 0,
            tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => self.copied = true,
            _ => {}
        }
        if matches!(h.tag, tag::QUERY | tag::PARSE) && h.len > max_message {
            return Disposition::Whole;
        }
        if let Some(gate) = gate
            && SessionGate::wants(h.tag)
        {
            // A malformed message is asked for whole: the caller's inspection reports it.
            return match h.complete_body().map(|body| gate.inspect(h.tag, body)) {
                Some(Ok(Step::Forward { statement, expect, .. })) => {
                    self.requests.extend(Ask::of(h.tag));
                    self.statements += u64::from(statement);
                    self.expect.extend(expect);
                    Disposition::Pass
                }
                Some(Ok(Step::Decide(h))) => {
                    *held = Some(h);
                    Disposition::Whole
                }
                Some(Err(_)) | None => Disposition::Whole,
            };
        }
        self.requests.extend(Ask::of(h.tag));
        self.statements += u64::from(matches!(h.tag, tag::QUERY | tag::PARSE));
        Disposition::Pass
    }

    /// Moves the counted requests (then an Airlock-answered one) into `Progress`,
    /// before their bytes go upstream. Returns false if the session is closing:
    /// nothing more may go upstream.
    fn commit(&mut self, shared: &Shared, refused: Option<Reply>) -> bool {
        let statements = std::mem::take(&mut self.statements);
        if self.requests.is_empty() && statements == 0 && refused.is_none() && self.expect.is_empty() {
            return true;
        }
        let mut p = shared.lock();
        if p.closing {
            return false;
        }
        p.expect.append(&mut self.expect);
        for ask in self.requests.drain(..) {
            p.ask(ask);
        }
        p.statements += statements;
        if let Some(reply) = refused {
            p.push(reply, true);
            shared.attention.fetch_add(1, Ordering::SeqCst);
        }
        true
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

/// How a bulk statement fared under the rows-affected guard.
#[derive(Debug)]
enum Counted {
    /// It changed no more rows than allowed: it stands, and its answer is on its way
    /// to the agent.
    Done,
    /// It changed more, or could not be counted, and was rolled back: hold it, for
    /// this reason.
    Hold(String),
    /// The guard does not run it (the agent's transaction has failed, so the server
    /// refuses it anyway): it goes upstream as it is.
    Forward,
    /// An Execute that ran and changed more rows than allowed, or could not be
    /// counted: hold it, for this reason, with its transaction open and this answer
    /// waiting for the agent.
    HoldOpen(String, Bytes),
    /// An Execute that ran but whose answer Airlock could not keep: refuse it.
    Refuse(String),
}

/// One of Airlock's own messages to the upstream (the rows guard's).
struct Own {
    message: Bytes,
    /// The agent's own message, sent by the guard: recorded as the agent's. Airlock's
    /// transaction control is not (the session's verdict frames say what it did).
    agents: bool,
    /// For a message answered by a ReadyForQuery: how that answer is handled.
    reply: Option<Reply>,
    /// What its answer holds, for result masking.
    expect: Option<Expect>,
}

impl Own {
    /// A Simple Query of Airlock's: its answer, up to its ReadyForQuery, is `reply`'s.
    fn query(sql: &str, reply: Reply) -> Own {
        Own {
            message: message::query(sql),
            agents: false,
            reply: Some(reply),
            expect: Some(Expect::Query { copy: None, taint: Taint::Clean }),
        }
    }

    /// A Sync of Airlock's.
    fn sync(reply: Reply) -> Own {
        Own { message: message::sync(), agents: false, reply: Some(reply), expect: Some(Expect::Sync) }
    }
}

/// Sends Airlock's own messages upstream from the agent pump, keeping the gate's
/// pairing of replies and result masking's expectations in step.
struct OwnRequests<'a, 'c, 'm, 'g, W> {
    wr: &'a mut W,
    shared: &'a Shared,
    ctx: &'a RelayContext<'c>,
    sent_total: &'a AtomicU64,
    recorded: Option<&'a mut FrontendMasking<'m>>,
    gate: &'a mut SessionGate<'g>,
}

impl<W: AsyncWrite + Unpin> OwnRequests<'_, '_, '_, '_, W> {
    /// Sends `messages`, with `execute` (an Execute among them whose answer the guard
    /// reads). Returns false if the session is closing: nothing more may go upstream.
    async fn send(&mut self, messages: Vec<Own>, execute: Option<ExecuteCapture>) -> Result<bool, SessionError> {
        let mut out = Batch::default();
        let mut agents = BytesMut::new();
        {
            let mut p = self.shared.lock();
            if p.closing {
                return Ok(false);
            }
            if let Some(capture) = execute {
                p.execute_capture = Some(capture);
                self.shared.attention.fetch_add(1, Ordering::SeqCst);
            }
            for own in messages {
                if let Some(expect) = own.expect.filter(|_| self.ctx.masking.is_some()) {
                    p.expect.push(expect);
                }
                if let Some(reply) = own.reply {
                    p.push(reply, own.message[0] == tag::SYNC);
                    self.shared.attention.fetch_add(1, Ordering::SeqCst);
                }
                self.gate.sent_own(own.message[0]);
                if own.agents {
                    agents.extend_from_slice(&own.message);
                }
                out.push(own.message);
            }
        }
        if let Some(r) = self.ctx.recorder
            && !agents.is_empty()
        {
            let agents = agents.freeze();
            let recorded = match self.recorded.as_deref_mut() {
                Some(masking) => masking.apply(&agents),
                None => agents,
            };
            r.record(Direction::ToUpstream, Kind::PgFrontend, recorded)
                .await
                .map_err(|RecorderDown| SessionError::RecorderFailed)?;
        }
        let sent = out.send(self.wr, None, Direction::ToUpstream, Kind::PgFrontend, upstream_io, None).await?;
        self.ctx.metrics.to_upstream.inc_by(sent as u64);
        self.sent_total.fetch_add(sent as u64, Ordering::Relaxed);
        Ok(true)
    }

    /// Refuses an Execute that has already run: the agent gets `error` in place of its
    /// answer, and a Parse that always fails (bad SQL) makes the server abort the
    /// transaction, as any error at that point would, so nothing the Execute did
    /// stands. The server then skips the agent's messages up to its Sync; the caller
    /// drops them. Ok(Err(end)) when the session ends meanwhile.
    async fn abort_ran<R: AsyncRead + Unpin>(
        &mut self,
        error: Bytes,
        rd: &mut R,
        buf: &mut BytesMut,
    ) -> Result<Result<(), End>, SessionError> {
        if let Err(end) = self.deliver(error, rd, buf).await {
            return Ok(Err(end));
        }
        let fail = Own { message: failing_parse(), agents: false, reply: None, expect: None };
        if !self.send(vec![fail, Own::sync(Reply::Capture(None))], None).await? {
            return Ok(Err(End::Drained));
        }
        Ok(Ok(()))
    }

    /// Writes `bytes` to the agent (through the upstream pump, the agent's only
    /// writer) and waits until they are written, reading what the agent pipelines.
    async fn deliver<R: AsyncRead + Unpin>(&mut self, bytes: Bytes, rd: &mut R, buf: &mut BytesMut) -> Result<(), End> {
        let written = self.shared.deliver(bytes);
        match while_reading(written, rd, buf, self.ctx.max_message).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(End::UpstreamClosed),
        }
    }
}

/// A Parse that always fails (its SQL is no SQL; a named statement, so the agent's
/// unnamed one survives): the server then aborts the transaction, as after any error.
fn failing_parse() -> Bytes {
    message::parse_named("airlock_refused", "airlock: refused")
}

/// The savepoint the guard opens inside an agent's transaction.
const GUARD_SAVEPOINT: &str = "airlock_rows";

/// Runs a bulk Simple Query statement under the rows-affected guard: in a transaction
/// of its own (outside the agent's) or a savepoint (inside it), it keeps the statement
/// only if its command tag reports at most `max_rows` changed rows. Nothing else goes
/// upstream meanwhile, so the count and the commit are one transaction's.
async fn guarded<R, W>(
    query: &Bytes,
    held: &Held,
    max_rows: u64,
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Result<Counted, End>, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max_message = up.ctx.max_message;
    let status = match settled(up.shared, rd, buf, max_message).await {
        Ok(status) => status,
        Err(end) => return Ok(Err(end)),
    };
    let autocommit = match status {
        TransactionStatus::Idle => true,
        TransactionStatus::InTransaction => false,
        TransactionStatus::Failed => return Ok(Ok(Counted::Forward)),
    };
    // The opening answers with a value of its own, so its answer cannot be mistaken
    // for another's: only then does the statement go.
    // It also reads how many rows the transaction has changed so far, in every table
    // (what cascades and triggers change counts too).
    let nonce = format!("airlock:{:016x}", rand::random::<u64>());
    let open = match autocommit {
        true => format!("BEGIN; SELECT '{nonce}', {ROWS_CHANGED}"),
        false => format!("SAVEPOINT {GUARD_SAVEPOINT}; SELECT '{nonce}', {ROWS_CHANGED}"),
    };
    let opened = match own_answer(up, &open, rd, buf).await? {
        Ok(answer) => answer,
        Err(end) => return Ok(Err(end)),
    };
    let row = opened.first_row.as_deref().and_then(|r| describe::data_row(r).ok());
    let (ours, before) = match row.as_deref() {
        Some([Some(n), Some(count)]) => (*n == nonce.as_bytes(), parse_count(count)),
        _ => (false, None),
    };
    if opened.failed || opened.status != Some(TransactionStatus::InTransaction) || !ours {
        // Its transaction state is not what the session's answers said: ending the
        // session rolls back whatever the server has open.
        return Err(SessionError::Upstream {
            connection: String::new(),
            detail: "the rows guard found the session's answers out of step".into(),
            agent_message: None,
        });
    }
    let (to, answer) = oneshot::channel();
    let statement = Own {
        message: query.clone(),
        agents: true,
        reply: Some(Reply::Capture(Some(to))),
        expect: held.expect.clone(),
    };
    if !up.send(vec![statement], None).await? {
        return Ok(Err(End::Drained));
    }
    let mut answer = match captured(answer, rd, buf, max_message).await {
        Ok(answer) => answer,
        Err(end) => return Ok(Err(end)),
    };
    // Rows it changed anywhere, if more than its command tag says.
    if !answer.failed && !answer.overflow {
        let after = match own_answer(up, &format!("SELECT {ROWS_CHANGED}"), rd, buf).await? {
            Ok(answer) => answer,
            Err(end) => return Ok(Err(end)),
        };
        let after =
            after.first_row.as_deref().and_then(|r| describe::data_row(r).ok()).and_then(|row| match row.as_slice() {
                [Some(count)] => parse_count(count),
                _ => None,
            });
        if let (Some(before), Some(after)) = (before, after) {
            answer.rows = answer.rows.map(|tag| tag.max(after.saturating_sub(before)));
        }
    }
    let release = format!("RELEASE SAVEPOINT {GUARD_SAVEPOINT}");
    let (keep, undo) = if autocommit {
        ("COMMIT".to_owned(), "ROLLBACK".to_owned())
    } else {
        (release.clone(), format!("ROLLBACK TO SAVEPOINT {GUARD_SAVEPOINT}; {release}"))
    };
    let bytes = std::mem::take(&mut answer.bytes).freeze();
    let rolled_back = |reason: String| (Own::query(&undo, Reply::Capture(None)), Counted::Hold(reason));
    let (request, counted) = match answer.rows {
        _ if answer.overflow => rolled_back(format!(
            "its answer is larger than the {} MiB Airlock keeps while counting rows",
            Captured::MAX >> 20
        )),
        // It failed: a transaction the guard opened is rolled back, the agent's is left
        // as the failure left it (a Sync carries the answer back).
        _ if answer.failed => {
            let answer = Reply::Instead(bytes);
            (if autocommit { Own::query("ROLLBACK", answer) } else { Own::sync(answer) }, Counted::Done)
        }
        Some(rows) if rows <= max_rows => (Own::query(&keep, Reply::Instead(bytes)), Counted::Done),
        Some(rows) => rolled_back(format!(
            "it would change {rows} rows, more than the {max_rows} allowed without approval (max_rows)"
        )),
        None => rolled_back("its command tag does not say how many rows it changed".into()),
    };
    if !up.send(vec![request], None).await? {
        return Ok(Err(End::Drained));
    }
    let outcome = match &counted {
        Counted::Done if answer.failed => "failed",
        Counted::Done => "kept",
        _ => "rolled back",
    };
    tracing::info!(rows = ?answer.rows, max_rows, outcome, "bulk statement counted");
    record_verdict(up.ctx, counted_event(held, answer.rows, max_rows, outcome)).await?;
    Ok(Ok(counted))
}

/// Runs a bulk Execute under the rows-affected guard. An extended-protocol statement
/// cannot be sent again (its portal, and an implicit transaction, end at the Sync), so
/// it runs once, ahead of the agent's Sync, with a Flush to have its answer now. Within
/// `max_rows` the answer goes on. Over it, the agent waits for approval while the
/// transaction stays open (with its locks): approved, the answer goes on; otherwise the
/// transaction is aborted (see [`OwnRequests::abort_ran`]).
async fn guarded_execute<R, W>(
    execute: &Bytes,
    held: &Held,
    max_rows: u64,
    earlier: usize,
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Result<Counted, End>, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max_message = up.ctx.max_message;
    if let Err(end) = settled(up.shared, rd, buf, max_message).await {
        return Ok(Err(end));
    }
    let (to, answer) = oneshot::channel();
    let messages = vec![
        Own { message: execute.clone(), agents: true, reply: None, expect: held.expect.clone() },
        Own { message: message::flush(), agents: false, reply: None, expect: None },
    ];
    if !up.send(messages, Some(ExecuteCapture { after: earlier, to })).await? {
        return Ok(Err(End::Drained));
    }
    let mut answer = match captured(answer, rd, buf, max_message).await {
        Ok(answer) => answer,
        Err(end) => return Ok(Err(end)),
    };
    let bytes = std::mem::take(&mut answer.bytes).freeze();
    let (counted, outcome) = match answer.rows {
        // An earlier message of its pipeline failed: the server skips it.
        _ if !answer.ran => (Counted::Done, "skipped"),
        _ if answer.overflow => (
            Counted::Refuse(format!(
                "its answer is larger than the {} MiB Airlock keeps while counting rows; the transaction was aborted",
                Captured::MAX >> 20
            )),
            "refused",
        ),
        // It failed, or stays within the limit: the agent has its answer.
        Some(rows) if rows <= max_rows || answer.failed => {
            if let Err(end) = up.deliver(bytes, rd, buf).await {
                return Ok(Err(end));
            }
            (Counted::Done, if answer.failed { "failed" } else { "kept" })
        }
        None if answer.failed => {
            if let Err(end) = up.deliver(bytes, rd, buf).await {
                return Ok(Err(end));
            }
            (Counted::Done, "failed")
        }
        Some(rows) => (
            Counted::HoldOpen(
                format!(
                    "it changed {rows} rows, more than the {max_rows} allowed without approval (max_rows); its transaction waits open"
                ),
                bytes,
            ),
            "held open",
        ),
        None => (
            Counted::HoldOpen(
                "its answer does not say how many rows it changed; its transaction waits open".into(),
                bytes,
            ),
            "held open",
        ),
    };
    tracing::info!(rows = ?answer.rows, max_rows, outcome, "bulk statement counted");
    record_verdict(up.ctx, counted_event(held, answer.rows, max_rows, outcome)).await?;
    Ok(Ok(counted))
}

/// Rows the current transaction has inserted, updated or deleted in every table so far
/// (the server counts what cascades and triggers change too).
const ROWS_CHANGED: &str =
    "(SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_catalog.pg_stat_xact_user_tables)::text";

fn parse_count(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Sends a query of Airlock's own and waits for its answer, kept from the agent.
/// `Ok(Err(end))` when the session ends meanwhile.
async fn own_answer<R, W>(
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    sql: &str,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Result<Captured, End>, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (to, answer) = oneshot::channel();
    if !up.send(vec![Own::query(sql, Reply::Capture(Some(to)))], None).await? {
        return Ok(Err(End::Drained));
    }
    Ok(captured(answer, rd, buf, up.ctx.max_message).await)
}

/// The answer the upstream pump captured for Airlock, read while waiting for it
/// (see [`while_reading`]).
async fn captured<R: AsyncRead + Unpin>(
    answer: oneshot::Receiver<Captured>,
    rd: &mut R,
    buf: &mut BytesMut,
    max_message: usize,
) -> Result<Captured, End> {
    match while_reading(answer, rd, buf, max_message).await? {
        Ok(answer) => Ok(answer),
        // The upstream pump dropped it: the session is ending.
        Err(_) => Err(End::UpstreamClosed),
    }
}

/// The transaction status once every request sent so far is answered.
async fn settled<R: AsyncRead + Unpin>(
    shared: &Shared,
    rd: &mut R,
    buf: &mut BytesMut,
    max_message: usize,
) -> Result<TransactionStatus, End> {
    loop {
        let notified = shared.settled.notified();
        tokio::pin!(notified);
        // Listening before looking: an answer landing in between still wakes us.
        notified.as_mut().enable();
        {
            let p = shared.lock();
            if p.in_flight.is_empty() {
                return Ok(p.status);
            }
        }
        while_reading(notified, rd, buf, max_message).await?;
    }
}

/// Waits for `until`, reading what the agent pipelines meanwhile (up to a cap) so
/// that its leaving is noticed.
async fn while_reading<F, R>(until: F, rd: &mut R, buf: &mut BytesMut, max_message: usize) -> Result<F::Output, End>
where
    F: std::future::Future,
    R: AsyncRead + Unpin,
{
    tokio::pin!(until);
    loop {
        let room = buf.len() < max_message;
        tokio::select! {
            out = &mut until => return Ok(out),
            n = rd.read_buf(buf), if room => match n {
                Ok(0) | Err(_) => return Err(End::AgentClosed),
                Ok(_) => continue,
            },
        }
    }
}

/// The record of a bulk statement the rows-affected guard counted.
fn counted_event(held: &Held, rows: Option<u64>, max_rows: u64, outcome: &str) -> VerdictEvent {
    VerdictEvent {
        event: PolicyEvent::Counted,
        statement: held.text(),
        rows,
        max_rows: Some(max_rows),
        outcome: Some(outcome.to_owned()),
        ..VerdictEvent::default()
    }
}

/// How this session holds statements, for `approvals::hold`.
fn holding<'a>(e: &'a Enforcement<'_>, ctx: &'a RelayContext<'_>) -> Holding<'a> {
    Holding {
        broker: e.broker,
        identity: e.identity,
        connection: e.connection,
        protocol: "postgres",
        recorder: ctx.recorder,
        metrics: ctx.metrics,
    }
}

/// Records a policy event in the session (as a verdict frame) and counts it.
async fn record_verdict(ctx: &RelayContext<'_>, event: VerdictEvent) -> Result<(), SessionError> {
    approvals::record(ctx.recorder, ctx.metrics, event).await.map_err(|RecorderDown| SessionError::RecorderFailed)
}

/// Settles a held message: `Ok(Ok(None))` to forward it, `Ok(Ok(Some(error)))` to
/// refuse it with that ErrorResponse, `Ok(Err(end))` when the agent leaves meanwhile.
async fn decide<R: AsyncRead + Unpin>(
    held: &Held,
    e: &Enforcement<'_>,
    shared: &Shared,
    ctx: &RelayContext<'_>,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Result<Option<Bytes>, End>, SessionError> {
    let notify = |request: &approvals::Request| {
        let id = &request.id;
        shared.notify_agent(message::notice_response(
            "00000",
            &format!("Airlock is holding this statement for approval (id {id}): {}", request.asked.reason),
            Some(&format!(
                "An approver runs `airlock approve {id}` or `airlock deny {id} --reason ...`; this session waits until {} and then gives up.",
                request.expires_at
            )),
        ));
    };
    // The agent may pipeline more messages or leave while it waits; keep reading (up
    // to a cap) so that a departure withdraws the request.
    let gone = async {
        loop {
            if buf.len() >= ctx.max_message {
                std::future::pending::<()>().await;
            }
            match rd.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    let settled = approvals::hold(&holding(e, ctx), &held.decision, &held.text(), notify, e.cancel, gone)
        .await
        .map_err(|RecorderDown| SessionError::RecorderFailed)?;
    Ok(match settled {
        Settled::Allowed | Settled::Approved => Ok(None),
        Settled::Denied(r) | Settled::Expired(r) => Ok(Some(refusal(&r.message, &r.rule))),
        Settled::Canceled => Ok(Some(message::error_response(
            Severity::Error,
            "57014",
            "canceling statement due to user request (it was waiting for approval)",
            None,
        ))),
        Settled::Withdrawn => Err(End::AgentClosed),
    })
}

/// The ErrorResponse for a statement Airlock refuses.
fn refusal(message: &str, rule: &str) -> Bytes {
    let hint = format!("Airlock policy rule {rule:?}; nothing was run and the session is still usable");
    message::error_response(Severity::Error, "42501", message, Some(&hint))
}

async fn upstream_to_agent<R, W>(
    rd: &mut R,
    mut buf: BytesMut,
    wr: &mut W,
    shared: &Shared,
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
    let mut results = ctx.masking.map(ResultMasking::new);
    // The gate pairs these replies with the names its requests define.
    let track_replies = ctx.enforcement.is_some();
    let mut replies = Vec::new();
    let mut captured = Captured::default();
    // The rows guard's Execute: registered and waiting for the answers before its own,
    // then being captured.
    let mut answers = Answers::default();
    let mut execute: Option<ExecuteCapture> = None;
    let mut capturing_execute: Option<oneshot::Sender<Captured>> = None;
    let abort = ctx.shutdown.abort.fired();
    let drain = ctx.shutdown.drain.fired();
    tokio::pin!(abort, drain);
    loop {
        if let Some(results) = results.as_mut() {
            // What the agent side announced for the requests these replies answer.
            let announced = std::mem::take(&mut shared.lock().expect);
            results.expect(announced);
        }
        // ReadyForQuery closes a request. Its status byte is read from the header
        // view, so the message stays inside the raw run; only one split across two
        // reads is buffered whole, and every one while Airlock owes the agent a reply.
        let watch = shared.attention.load(Ordering::SeqCst) > 0;
        // The answer to one of Airlock's own requests is kept from the agent. While
        // Airlock owes the agent something or reads an answer itself (both rare),
        // every message that fits is looked at whole, so each is routed on its own.
        let mut capturing = false;
        if watch && scanner.at_boundary() {
            capturing = route_captures(shared, &mut execute, &answers, &mut capturing_execute)?;
        }
        let mut close_now = false;
        // Whether masking asked for the message handed over next whole.
        let mut masking_whole = false;
        loop {
            let chunk = scanner.next(&mut buf, &mut |h: Header<'_>| {
                // The result seam: masking follows every result message and asks for
                // RowDescriptions and changed rows whole.
                let masked = results.as_mut().map_or(Disposition::Pass, |r| r.classify(h));
                masking_whole = masked == Disposition::Whole;
                if track_replies {
                    if matches!(h.tag, b'1' | b'3' | b'C' | b'I' | b's' | b'E' | b'Z' | b'G' | b'W') {
                        replies.push(h.tag);
                    }
                    answers.see(h.tag);
                }
                // Settings the server reports are checked whole (they are rare), and so is
                // the start of copying in, which changes what the server will answer.
                if matches!(h.tag, tag::PARAMETER_STATUS | tag::COPY_IN) {
                    return Disposition::Whole;
                }
                if h.tag != tag::READY_FOR_QUERY {
                    return if watch && h.len <= ctx.max_message { Disposition::Whole } else { masked };
                }
                match h.complete_body() {
                    Some(body) if !watch => {
                        statuses.push(message::parse_ready_for_query(body));
                        Disposition::Pass
                    }
                    _ => Disposition::Whole,
                }
            })?;
            let frame = match chunk {
                None => break,
                Some(Chunk::Raw(bytes)) if capturing || capturing_execute.is_some() => {
                    captured.push(&bytes);
                    continue;
                }
                Some(Chunk::Raw(bytes)) => {
                    out.push(bytes);
                    continue;
                }
                Some(Chunk::Frame(frame)) => frame,
            };
            let tag = frame.tag();
            if tag != tag::READY_FOR_QUERY {
                if tag == tag::PARAMETER_STATUS {
                    refuse_unsafe_encoding(frame.body())?;
                }
                if tag == tag::COPY_IN {
                    // The answers before it settle first, against the requests as sent.
                    close_now |= settle(shared, ctx, &mut statuses, draining, |r| out.push_unexpected(r))?;
                    for owed in shared.lock().copying_in() {
                        if !matches!(owed, Reply::Upstream) {
                            shared.attention.fetch_sub(1, Ordering::SeqCst);
                        }
                        out.push_unexpected(owed);
                    }
                }
                let into_capture = capturing || capturing_execute.is_some();
                if into_capture {
                    captured.message(tag, frame.body());
                }
                let raw = frame.into_raw();
                let raw = match results.as_mut() {
                    Some(r) if masking_whole => r.frame(tag, raw).await.map_err(upstream_protocol)?,
                    _ => raw,
                };
                // Notifications and settings are no part of any answer.
                if into_capture && !matches!(tag, tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS) {
                    captured.push(&raw);
                } else {
                    out.push(raw);
                }
                if capturing_execute.is_some() && (Answers::ends(tag) || tag == tag::ERROR_RESPONSE) {
                    // The guard's Execute is answered.
                    let answer = Captured { ran: true, ..std::mem::take(&mut captured) };
                    if let Some(to) = capturing_execute.take() {
                        let _ = to.send(answer);
                    }
                    shared.attention.fetch_sub(1, Ordering::SeqCst);
                }
            } else {
                // Earlier ReadyForQuerys passed raw settle first, in order.
                close_now |= settle(shared, ctx, &mut statuses, draining, |r| out.push_unexpected(r))?;
                statuses.push(message::parse_ready_for_query(frame.body()));
                let mut reply = Reply::Upstream;
                close_now |= settle(shared, ctx, &mut statuses, draining, |r| reply = r)?;
                match reply {
                    Reply::Upstream => out.push(frame.into_raw()),
                    Reply::ErrorThenReady(error) => {
                        out.push(error);
                        out.push(frame.into_raw());
                    }
                    Reply::ErrorInstead(error) => {
                        drop(std::mem::take(&mut captured));
                        out.push(error);
                    }
                    Reply::Capture(to) => {
                        let status = message::parse_ready_for_query(frame.body()).ok();
                        let answer = Captured { status, ..std::mem::take(&mut captured) };
                        if let Some(to) = to {
                            // The agent pump is gone only when the session is ending.
                            let _ = to.send(answer);
                        }
                    }
                    Reply::Instead(answer) => {
                        let own = std::mem::take(&mut captured);
                        out.push(if own.failed { own.bytes.freeze() } else { answer });
                        out.push(frame.into_raw());
                    }
                }
            }
            // Past a whole message the next may belong to another answer.
            if watch && scanner.at_boundary() {
                capturing = route_captures(shared, &mut execute, &answers, &mut capturing_execute)?;
            }
        }
        close_now |= settle(shared, ctx, &mut statuses, draining, |r| out.push_unexpected(r))?;
        if !replies.is_empty() {
            shared.lock().replies.append(&mut replies);
        }
        let mut delivered = Vec::new();
        if shared.attention.load(Ordering::SeqCst) > 0 && !scanner.mid_message() {
            let mut p = shared.lock();
            let n = p.notices.len();
            p.notices.drain(..).for_each(|notice| out.push(notice));
            delivered.append(&mut p.delivered);
            shared.attention.fetch_sub(n, Ordering::SeqCst);
        }
        if close_now {
            out.push(shutdown_notice());
        }
        let sent = send_to_agent(&mut out, wr, ctx).await?;
        ctx.metrics.to_agent.inc_by(sent as u64);
        sent_total.fetch_add(sent as u64, Ordering::Relaxed);
        for done in delivered {
            let _ = done.send(());
        }
        if close_now {
            return Ok(End::Drained);
        }
        sizing.prepare(&mut buf);
        let n = tokio::select! {
            biased;
            _ = &mut abort => {
                out.push(shutdown_notice());
                let _ = send_to_agent(&mut out, wr, ctx).await;
                return Ok(End::Aborted);
            }
            _ = &mut drain, if !draining => {
                draining = true;
                let idle = {
                    let mut p = shared.lock();
                    p.closing = p.at_safe_point() && scanner.at_boundary() && buf.is_empty();
                    p.closing
                };
                if idle {
                    out.push(shutdown_notice());
                    let _ = send_to_agent(&mut out, wr, ctx).await;
                    return Ok(End::Drained);
                }
                continue;
            }
            // A notice is waiting: the loop's top sends it.
            _ = shared.bell.notified() => continue,
            n = rd.read_buf(&mut buf) => n.map_err(upstream_io)?,
        };
        if n == 0 {
            return Ok(End::UpstreamClosed);
        }
        sizing.observe(n);
    }
}

/// Where the upstream's next bytes go, at a message boundary while `watch`ing:
/// returns whether they are the answer to one of Airlock's own requests. Also starts
/// capturing the answer to the rows guard's Execute once the answers to the messages
/// before it have come, or tells the agent pump it will not run (an earlier message
/// failed, so the server skips it).
fn route_captures(
    shared: &Shared,
    execute: &mut Option<ExecuteCapture>,
    answers: &Answers,
    capturing: &mut Option<oneshot::Sender<Captured>>,
) -> Result<bool, SessionError> {
    let mut p = shared.lock();
    if execute.is_none() && capturing.is_none() {
        *execute = p.execute_capture.take();
    }
    let request = p.in_flight.front().is_some_and(|r| r.reply.captured());
    drop(p);
    let Some(pending) = execute.take_if(|c| answers.failed || answers.count >= c.after) else { return Ok(request) };
    if answers.failed {
        let _ = pending.to.send(Captured::default());
        shared.attention.fetch_sub(1, Ordering::SeqCst);
    } else if answers.count == pending.after {
        *capturing = Some(pending.to);
    } else {
        // More answers than messages sent before it: where its own begins is lost, and
        // only ending the session (which rolls its transaction back) is safe.
        let lost = airlock_postgres::ProtocolError::Malformed("extended-protocol answers out of step");
        return Err(upstream_protocol(lost));
    }
    Ok(request)
}

/// Ends the session if the server now reads the agent's bytes in an encoding whose
/// characters can hide `\` or `'`: from then on no statement could be read as the
/// server reads it. `SET client_encoding` to one is held as privilege; this catches
/// every other way (an approved SET, a function, a role or database default).
fn refuse_unsafe_encoding(body: &[u8]) -> Result<(), SessionError> {
    match message::parse_parameter_status(body) {
        Ok(("client_encoding", value)) if airlock_postgres::sql::settings::unsafe_client_encoding(value) => {
            Err(SessionError::UnsafeEncoding(value.to_owned()))
        }
        _ => Ok(()),
    }
}

/// Records and sends what the upstream pump has batched for the agent.
async fn send_to_agent<W: AsyncWrite + Unpin>(
    out: &mut Batch,
    wr: &mut W,
    ctx: &RelayContext<'_>,
) -> Result<usize, SessionError> {
    out.send(wr, ctx.recorder, Direction::ToAgent, Kind::PgBackend, SessionError::AgentIo, None).await
}

/// Closes the requests answered by `statuses` (in order), handing each request's
/// reply to `reply`. Returns whether a drain may now close the session.
fn settle(
    shared: &Shared,
    ctx: &RelayContext<'_>,
    statuses: &mut Vec<Result<TransactionStatus, airlock_postgres::ProtocolError>>,
    draining: bool,
    mut reply: impl FnMut(Reply),
) -> Result<bool, SessionError> {
    if statuses.is_empty() {
        return Ok(false);
    }
    let mut p = shared.lock();
    for status in statuses.drain(..) {
        p.status = status.map_err(upstream_protocol)?;
        let Some(request) = p.in_flight.pop_front() else { continue };
        if !request.reply.captured() {
            ctx.metrics.statement_seconds.observe(request.sent.elapsed().as_secs_f64());
        }
        if !matches!(request.reply, Reply::Upstream) {
            shared.attention.fetch_sub(1, Ordering::SeqCst);
        }
        reply(request.reply);
    }
    if p.in_flight.is_empty() {
        shared.settled.notify_one();
    }
    if draining && p.at_safe_point() {
        p.closing = true;
        return Ok(true);
    }
    Ok(false)
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

    /// The reply of a request whose ReadyForQuery passed raw. Requests Airlock answers
    /// are marked before their Sync goes upstream, so their ReadyForQuery is always
    /// looked at whole; should one slip through, the error still reaches the agent.
    fn push_unexpected(&mut self, reply: Reply) {
        match reply {
            Reply::ErrorThenReady(error) | Reply::ErrorInstead(error) | Reply::Instead(error) => {
                tracing::error!("a request Airlock answers had its ReadyForQuery pass raw; its answer follows it");
                self.push(error);
            }
            // Dropping the sender tells the agent pump nothing was counted.
            Reply::Capture(_) => tracing::error!("a request Airlock captures had its ReadyForQuery pass raw"),
            Reply::Upstream => {}
        }
    }

    /// Records the batch (waiting if the recorder's queue is full), then writes it,
    /// returning the number of bytes written. What is recorded is what is sent, or what
    /// `record_as` makes of it (the agent's statements with their secrets masked).
    async fn send<W: AsyncWrite + Unpin>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(asks: &[Ask]) -> Progress {
        let mut p = Progress::default();
        asks.iter().for_each(|&a| p.ask(a));
        p
    }

    fn awaited(p: &Progress) -> Vec<(u64, bool)> {
        p.in_flight.iter().map(|r| (r.seq, r.sync)).collect()
    }

    #[test]
    fn syncs_sent_while_the_server_copies_in_are_not_awaited() {
        use Ask::*;
        // libpq's COPY in the extended protocol: Execute, Sync (ignored), data,
        // CopyDone, Sync.
        let mut p = progress(&[Sync, CopyEnd, Sync]);
        assert!(p.copying_in().len() == 1 && awaited(&p) == [(1, true)]);
        // A simple COPY with a stray Sync in its data: the Query is still answered.
        let mut p = progress(&[Query, Sync, CopyEnd, Sync]);
        p.copying_in();
        assert_eq!(awaited(&p), [(0, false), (2, true)]);
        // COPY data not ended yet: later Syncs are not awaited until it ends.
        let mut p = progress(&[Query]);
        p.copying_in();
        [Sync, Sync, CopyEnd, Sync].into_iter().for_each(|a| p.ask(a));
        assert_eq!(awaited(&p), [(0, false), (1, true)]);
        // A CopyDone sent right before the pipeline's Sync ended the COPY: that Sync
        // is answered; CopyDones from before the COPY are no part of it.
        let mut p = progress(&[CopyEnd, Query, CopyEnd, Sync]);
        p.pop_for_test();
        p.ask(Sync);
        p.copying_in();
        assert_eq!(awaited(&p), [(1, true), (2, true)]);
    }

    impl Progress {
        fn pop_for_test(&mut self) {
            self.in_flight.pop_front();
        }
    }
}
