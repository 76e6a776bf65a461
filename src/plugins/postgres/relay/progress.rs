//! What the two pumps share: the requests awaiting their ReadyForQuery and how each
//! is answered ([`Progress`], under the mutex of [`Shared`]), and the answers to
//! Airlock's own requests, captured by the upstream pump for the agent pump.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use airlock_postgres::message::{self, TransactionStatus, tag};
use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, oneshot};

use crate::plugins::postgres::mask::Expect;

/// A request awaiting its ReadyForQuery.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) sent: Instant,
    pub(super) reply: Reply,
    /// A Sync (the server ignores one that arrives while it copies in), or a Query or
    /// FunctionCall.
    sync: bool,
    /// Its place among all requests sent.
    seq: u64,
}

/// A frontend message the relay's bookkeeping follows, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ask {
    /// A Query or FunctionCall: answered by a ReadyForQuery.
    Query,
    /// A Sync: answered by a ReadyForQuery, unless the server is copying in.
    Sync,
    /// A CopyDone or CopyFail: ends copying in; answered by nothing.
    CopyEnd,
}

impl Ask {
    pub(super) fn of(tag: u8) -> Option<Ask> {
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
pub(super) enum Reply {
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
    /// Airlock's own Sync ahead of an agent's Query that followed Parse, Describe or
    /// Close messages without their Sync: the answers before it are the agent's (they
    /// pass as they come); its ReadyForQuery is Airlock's and goes nowhere.
    Unsaid,
}

impl Reply {
    /// Whether the request's answer is read by Airlock before the agent may see it.
    pub(super) fn captured(&self) -> bool {
        matches!(self, Reply::Capture(_) | Reply::Instead(_) | Reply::ErrorInstead(_))
    }
}

/// An Execute the rows guard sent: its answer follows the `after`-th answer to the
/// extended-protocol messages since the last ReadyForQuery.
#[derive(Debug)]
pub(super) struct ExecuteCapture {
    pub(super) after: usize,
    pub(super) to: oneshot::Sender<Captured>,
}

/// The answer to one of Airlock's own requests, as the agent pump sees it.
#[derive(Debug, Default)]
pub(super) struct Captured {
    /// What the agent would have been sent (masked), without the ReadyForQuery.
    pub(super) bytes: BytesMut,
    /// Rows changed, from a CommandComplete's tag.
    pub(super) rows: Option<u64>,
    /// An ErrorResponse came.
    pub(super) failed: bool,
    /// The answer was too large to keep whole: `bytes` is incomplete.
    pub(super) overflow: bool,
    /// The ReadyForQuery's transaction status, for a request's answer.
    pub(super) status: Option<TransactionStatus>,
    /// The first row, as the server sent it (before masking).
    pub(super) first_row: Option<Bytes>,
    /// An Execute's answer: whether the server ran it at all (not when an earlier
    /// message of its pipeline failed).
    pub(super) ran: bool,
}

impl Captured {
    /// Cap on a captured answer: a bulk statement's RETURNING rows wait here until
    /// its rows are counted.
    pub(super) const MAX: usize = 64 << 20;

    pub(super) fn push(&mut self, bytes: &[u8]) {
        if self.bytes.len() + bytes.len() > Self::MAX {
            self.overflow = true;
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }

    /// Reads one whole message of the answer.
    pub(super) fn message(&mut self, tag: u8, body: &[u8]) {
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
pub(super) struct Progress {
    /// Requests still awaiting their ReadyForQuery, oldest first.
    pub(super) in_flight: VecDeque<Request>,
    /// Notices Airlock owes the agent, sent at the next message boundary.
    pub(super) notices: Vec<Bytes>,
    /// Told once the notices queued with them have been written to the agent.
    pub(super) delivered: Vec<oneshot::Sender<()>>,
    /// An Execute whose answer the rows guard reads before the agent may.
    pub(super) execute_capture: Option<ExecuteCapture>,
    /// What the requests sent since the upstream pump last looked will be answered
    /// with, for result masking.
    pub(super) expect: Vec<Expect>,
    pub(super) status: TransactionStatus,
    /// Tags of the upstream's replies that settle prepared-statement names, oldest
    /// first, until the agent pump hands them to its gate.
    pub(super) replies: Vec<u8>,
    /// Where the session is in its life: open, draining, or closing.
    pub(super) phase: Phase,
    /// The server copies in and the agent has not ended the COPY: its Syncs until then
    /// are ignored by the server, so they are not requests.
    copying: bool,
    /// CopyDone/CopyFail not yet matched to a COPY: the `seq` of the request each came
    /// before.
    copy_ends: VecDeque<u64>,
    /// Requests ever sent: the next one's `seq`.
    pushed: u64,
    pub(super) statements: u64,
}

/// A session's life as Airlock shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Requests flow.
    Open,
    /// Airlock is draining: the session closes at its next safe point.
    Draining,
    /// It reached one: nothing more goes upstream.
    Closing,
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
            phase: Phase::Open,
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
    pub(super) fn at_safe_point(&self) -> bool {
        self.in_flight.is_empty() && self.status == TransactionStatus::Idle
    }

    /// A request is awaiting its answer, or the server is copying in.
    pub(super) fn busy(&self) -> bool {
        !self.in_flight.is_empty() || self.copying
    }

    /// Awaits the answer to a request sent now; `sync`: it is a Sync.
    pub(super) fn push(&mut self, reply: Reply, sync: bool) {
        self.in_flight.push_back(Request { sent: Instant::now(), reply, sync, seq: self.pushed });
        self.pushed += 1;
    }

    /// Notes a request (or the end of COPY data) the agent sent. While the server
    /// copies in, it ignores Syncs until the COPY data ends.
    pub(super) fn ask(&mut self, ask: Ask) {
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
    pub(super) fn copying_in(&mut self) -> Vec<Reply> {
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
pub(super) struct Shared {
    pub(super) progress: Mutex<Progress>,
    /// Requests with an Airlock reply plus notices waiting: while non-zero, the
    /// upstream pump looks at every ReadyForQuery instead of passing it raw.
    pub(super) attention: AtomicUsize,
    /// Wakes the upstream pump when a notice is waiting.
    pub(super) bell: Notify,
    /// Wakes the agent pump when no request is in flight.
    pub(super) settled: Notify,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Critical sections are a few field updates that cannot panic.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a notice for the agent and wakes the upstream pump.
    pub(super) fn notify_agent(&self, notice: Bytes) {
        self.lock().notices.push(notice);
        self.attention.fetch_add(1, Ordering::SeqCst);
        self.bell.notify_one();
    }

    /// Queues bytes for the agent, as a notice is; the receiver hears once they are
    /// written. Used when nothing is in flight upstream but an answer Airlock holds.
    pub(super) fn deliver(&self, bytes: Bytes) -> oneshot::Receiver<()> {
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
