//! The upstream → agent pump, the agent's only writer: it passes the upstream's bytes
//! through (masked where results are masked), closes requests at their ReadyForQuery,
//! puts Airlock's own replies and notices in their place, and keeps the answers to
//! Airlock's own requests from the agent.

use std::sync::atomic::{AtomicU64, Ordering};

use airlock_postgres::message::{self, Severity, TransactionStatus, tag};
use airlock_postgres::{Chunk, Disposition, Header, Scanner};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::oneshot;

use super::batch::{Batch, ReadSizing};
use super::progress::{Captured, ExecuteCapture, Phase, Reply, Shared};
use super::{End, RelayContext, upstream_io, upstream_lost, upstream_protocol};
use crate::plugins::postgres::error::SessionError;
use crate::plugins::postgres::mask::ResultMasking;
use crate::recording::format::{Direction, Kind};

pub(super) async fn upstream_to_agent<R, W>(
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
    // Both describe the message being read, which may span reads: whether it is part
    // of an answer Airlock captures, and whether masking asked for it whole.
    let mut capturing = false;
    let mut masking_whole = false;
    // The tag of the last message begun, to tell a close after a FATAL error from one
    // the agent has not been told about.
    let mut last_tag = 0u8;
    let abort = ctx.shutdown.abort.fired();
    let drain = ctx.shutdown.drain.fired();
    // The drain signal fires once; the session's phase lives in `Progress`, this only
    // stops polling a finished future (without a lock per loop).
    let mut drain_seen = false;
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
        if scanner.at_boundary() {
            capturing = watch && route_captures(shared, &mut execute, &answers, &mut capturing_execute)?;
        }
        let mut close_now = false;
        loop {
            let chunk = scanner.next(&mut buf, &mut |h: Header<'_>| {
                last_tag = h.tag;
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
                    close_now |= settle(shared, ctx, &mut statuses, |r| out.push_unexpected(r))?;
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
                close_now |= settle(shared, ctx, &mut statuses, |r| out.push_unexpected(r))?;
                statuses.push(message::parse_ready_for_query(frame.body()));
                let mut reply = Reply::Upstream;
                close_now |= settle(shared, ctx, &mut statuses, |r| reply = r)?;
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
                    Reply::Unsaid => {}
                }
            }
            // Past a whole message the next may belong to another answer.
            if watch && scanner.at_boundary() {
                capturing = route_captures(shared, &mut execute, &answers, &mut capturing_execute)?;
            }
        }
        close_now |= settle(shared, ctx, &mut statuses, |r| out.push_unexpected(r))?;
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
            _ = &mut drain, if !drain_seen => {
                drain_seen = true;
                let idle = {
                    let mut p = shared.lock();
                    let idle = p.at_safe_point() && scanner.at_boundary() && buf.is_empty();
                    p.phase = if idle { Phase::Closing } else { Phase::Draining };
                    idle
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
            // PostgreSQL closes a connection after a FATAL error, which the agent has
            // then seen. Any other close (a crash, a cut link, mid-row) is news the agent
            // must be told.
            return match last_tag == tag::ERROR_RESPONSE && scanner.at_boundary() && buf.is_empty() {
                true => Ok(End::UpstreamClosed),
                false => Err(upstream_lost()),
            };
        }
        sizing.observe(n);
    }
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
    if p.phase == Phase::Draining && p.at_safe_point() {
        p.phase = Phase::Closing;
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
