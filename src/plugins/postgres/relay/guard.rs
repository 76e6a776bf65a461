//! The rows-affected guard: a bulk statement runs with requests of Airlock's own
//! around it (a transaction or savepoint, and a count of the rows it changed), and
//! stands only if it changed no more rows than allowed. The guard's requests go
//! upstream from the agent pump ([`OwnRequests`]); their answers come back captured by
//! the upstream pump, never seen by the agent.

use std::sync::atomic::{AtomicU64, Ordering};

use airlock_postgres::describe::{self, Column};
use airlock_postgres::message::{self, TransactionStatus, tag};
use airlock_postgres::{Chunk, Disposition, Scanner};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::oneshot;

use super::batch::Batch;
use super::hold::record_verdict;
use super::progress::{Captured, ExecuteCapture, Phase, Reply, Shared};
use super::{End, RelayContext, Stop, upstream_io};
use crate::plugins::postgres::error::SessionError;
use crate::plugins::postgres::gate::{Held, SessionGate};
use crate::plugins::postgres::mask::{Expect, FrontendMasking, Taint};
use crate::recording::RecorderDown;
use crate::recording::format::{Direction, Kind, PolicyEvent, VerdictEvent};

/// How a bulk statement fared under the rows-affected guard.
#[derive(Debug)]
pub(super) enum Counted {
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
pub(super) struct Own {
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
            expect: Some(Expect::Query { copy: None, described: None, taint: Taint::Clean }),
        }
    }

    /// A Sync of Airlock's.
    pub(super) fn sync(reply: Reply) -> Own {
        Own { message: message::sync(), agents: false, reply: Some(reply), expect: Some(Expect::Sync) }
    }
}

/// Sends Airlock's own messages upstream from the agent pump, keeping the gate's
/// pairing of replies and result masking's expectations in step.
pub(super) struct OwnRequests<'a, 'c, 'm, 'g, W> {
    pub(super) wr: &'a mut W,
    pub(super) shared: &'a Shared,
    pub(super) ctx: &'a RelayContext<'c>,
    pub(super) sent_total: &'a AtomicU64,
    pub(super) recorded: Option<&'a mut FrontendMasking<'m>>,
    pub(super) gate: &'a mut SessionGate<'g>,
}

impl<W: AsyncWrite + Unpin> OwnRequests<'_, '_, '_, '_, W> {
    /// Sends `messages`, with `execute` (an Execute among them whose answer the guard
    /// reads). Stops with `Drained` if the session is closing: nothing more may go upstream.
    pub(super) async fn send(&mut self, messages: Vec<Own>, execute: Option<ExecuteCapture>) -> Result<(), Stop> {
        let mut out = Batch::default();
        let mut agents = BytesMut::new();
        {
            let mut p = self.shared.lock();
            if p.phase == Phase::Closing {
                return Err(Stop::Ended(End::Drained));
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
        Ok(())
    }

    /// Refuses an Execute that has already run: the agent gets `error` in place of its
    /// answer, and a Parse that always fails (bad SQL) makes the server abort the
    /// transaction, as any error at that point would, so nothing the Execute did
    /// stands. The server then skips the agent's messages up to its Sync; the caller
    /// drops them. `Stop::Ended` when the session ends meanwhile.
    pub(super) async fn abort_ran<R: AsyncRead + Unpin>(
        &mut self,
        error: Bytes,
        rd: &mut R,
        buf: &mut BytesMut,
    ) -> Result<(), Stop> {
        self.deliver(error, rd, buf).await?;
        let fail = Own { message: failing_parse(), agents: false, reply: None, expect: None };
        self.send(vec![fail, Own::sync(Reply::Capture(None))], None).await?;
        Ok(())
    }

    /// Writes `bytes` to the agent (through the upstream pump, the agent's only
    /// writer) and waits until they are written, reading what the agent pipelines.
    pub(super) async fn deliver<R: AsyncRead + Unpin>(
        &mut self,
        bytes: Bytes,
        rd: &mut R,
        buf: &mut BytesMut,
    ) -> Result<(), End> {
        let written = self.shared.deliver(bytes);
        match while_reading(written, rd, buf, self.ctx.max_message).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(End::UpstreamClosed),
        }
    }
}

/// A Parse that always fails (its SQL is no SQL; a named statement, so the agent's
/// unnamed one survives): the server then aborts the transaction, as after any error.
pub(super) fn failing_parse() -> Bytes {
    message::parse_named("airlock_refused", "airlock: refused")
}

/// The savepoint the guard opens inside an agent's transaction.
const GUARD_SAVEPOINT: &str = "airlock_rows";

/// Runs a bulk Simple Query statement under the rows-affected guard: in a transaction
/// of its own (outside the agent's) or a savepoint (inside it), it keeps the statement
/// only if its command tag reports at most `max_rows` changed rows. Nothing else goes
/// upstream meanwhile, so the count and the commit are one transaction's.
pub(super) async fn guarded<R, W>(
    query: &Bytes,
    held: &Held,
    max_rows: u64,
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Counted, Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max_message = up.ctx.max_message;
    let status = settled(up.shared, rd, buf, max_message).await?;
    let autocommit = match status {
        TransactionStatus::Idle => true,
        TransactionStatus::InTransaction => false,
        TransactionStatus::Failed => return Ok(Counted::Forward),
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
    let opened = own_answer(up, &open, rd, buf).await?;
    let row = opened.first_row.as_deref().and_then(|r| describe::data_row(r).ok());
    let (ours, before) = match row.as_deref() {
        Some([Some(n), Some(count)]) => (*n == nonce.as_bytes(), parse_count(count)),
        _ => (false, None),
    };
    if opened.failed || opened.status != Some(TransactionStatus::InTransaction) || !ours {
        // Its transaction state is not what the session's answers said: ending the
        // session rolls back whatever the server has open.
        return Err(Stop::Failed(SessionError::Upstream {
            connection: String::new(),
            detail: "the rows guard found the session's answers out of step".into(),
            agent_message: None,
        }));
    }
    let (to, answer) = oneshot::channel();
    let statement = Own {
        message: query.clone(),
        agents: true,
        reply: Some(Reply::Capture(Some(to))),
        expect: held.expect.clone(),
    };
    up.send(vec![statement], None).await?;
    let mut answer = captured(answer, rd, buf, max_message).await?;
    // Rows it changed anywhere, if more than its command tag says.
    if !answer.failed && !answer.overflow {
        let after = own_answer(up, &format!("SELECT {ROWS_CHANGED}"), rd, buf).await?;
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
    up.send(vec![request], None).await?;
    let outcome = match &counted {
        Counted::Done if answer.failed => "failed",
        Counted::Done => "kept",
        _ => "rolled back",
    };
    tracing::info!(rows = ?answer.rows, max_rows, outcome, "bulk statement counted");
    record_verdict(up.ctx, counted_event(held, answer.rows, max_rows, outcome)).await?;
    Ok(counted)
}

/// Runs a bulk Execute under the rows-affected guard. An extended-protocol statement
/// cannot be sent again (its portal, and an implicit transaction, end at the Sync), so
/// it runs once, ahead of the agent's Sync, with a Flush to have its answer now. Within
/// `max_rows` the answer goes on. Over it, the agent waits for approval while the
/// transaction stays open (with its locks): approved, the answer goes on; otherwise the
/// transaction is aborted (see [`OwnRequests::abort_ran`]).
pub(super) async fn guarded_execute<R, W>(
    execute: &Bytes,
    held: &Held,
    max_rows: u64,
    earlier: usize,
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Counted, Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max_message = up.ctx.max_message;
    settled(up.shared, rd, buf, max_message).await?;
    let (to, answer) = oneshot::channel();
    let messages = vec![
        Own { message: execute.clone(), agents: true, reply: None, expect: held.expect.clone() },
        Own { message: message::flush(), agents: false, reply: None, expect: None },
    ];
    up.send(messages, Some(ExecuteCapture { after: earlier, to })).await?;
    let mut answer = captured(answer, rd, buf, max_message).await?;
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
            up.deliver(bytes, rd, buf).await?;
            (Counted::Done, if answer.failed { "failed" } else { "kept" })
        }
        None if answer.failed => {
            up.deliver(bytes, rd, buf).await?;
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
    Ok(counted)
}

/// Rows the current transaction has inserted, updated or deleted in every table so far
/// (the server counts what cascades and triggers change too).
const ROWS_CHANGED: &str =
    "(SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_catalog.pg_stat_xact_user_tables)::text";

fn parse_count(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Sends a query of Airlock's own and waits for its answer, kept from the agent.
/// `Stop::Ended` when the session ends meanwhile.
async fn own_answer<R, W>(
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    sql: &str,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Captured, Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (to, answer) = oneshot::channel();
    up.send(vec![Own::query(sql, Reply::Capture(Some(to)))], None).await?;
    Ok(captured(answer, rd, buf, up.ctx.max_message).await?)
}

/// Describes `select` in the agent's own session, the answer kept from the agent:
/// its columns as that session resolves them (its search_path, its temporary
/// tables), or `None` if the server could not describe it. The unnamed statement it
/// uses is the one the Simple Query after it replaces anyway.
pub(super) async fn describe_in_session<R, W>(
    up: &mut OwnRequests<'_, '_, '_, '_, W>,
    select: &str,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Option<Vec<Column>>, Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (to, answer) = oneshot::channel();
    let messages = vec![
        Own { message: message::parse(select), agents: false, reply: None, expect: None },
        Own {
            message: message::describe_unnamed_statement(),
            agents: false,
            reply: None,
            expect: Some(Expect::DescribeStatement(String::new())),
        },
        Own::sync(Reply::Capture(Some(to))),
    ];
    up.send(messages, None).await?;
    let answer = captured(answer, rd, buf, up.ctx.max_message).await?;
    if answer.failed || answer.overflow {
        return Ok(None);
    }
    let mut bytes = answer.bytes;
    let mut scanner = Scanner::new(up.ctx.max_message);
    while let Ok(Some(Chunk::Frame(frame))) = scanner.next(&mut bytes, &mut |_| Disposition::Whole) {
        if frame.tag() == tag::ROW_DESCRIPTION {
            return Ok(describe::row_description(frame.body()).ok());
        }
    }
    Ok(None)
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
