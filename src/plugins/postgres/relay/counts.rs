//! What the agent pump counts as messages pass: the requests a ReadyForQuery will
//! answer, and where the extended protocol and COPY leave the count of answers.

use std::sync::atomic::Ordering;

use airlock_postgres::message::tag;
use airlock_postgres::{Disposition, Header};

use super::progress::{Ask, Phase, Reply, Shared};
use super::{End, Reading, Stop};
use crate::plugins::postgres::gate::{Held, HeldKind, SessionGate, Step};
use crate::plugins::postgres::mask::Expect;

/// What the agent pump has passed since it last updated `Progress`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Requests a ReadyForQuery will answer (Query, Sync, FunctionCall), and the ends
    /// of COPY data between them, in order.
    pub(super) requests: Vec<Ask>,
    /// Query and Parse messages.
    pub(super) statements: u64,
    /// The agent sent Terminate.
    pub(super) terminate: bool,
    /// What the forwarded requests will be answered with, for result masking.
    pub(super) expect: Vec<Expect>,
    /// Extended-protocol messages forwarded since the last Sync (or Query or
    /// FunctionCall), each answered before a later one: where the answer to the next
    /// one begins.
    pub(super) since_sync: usize,
    /// A Bind or Execute was forwarded since the last Sync: a Sync of Airlock's would
    /// end the transaction and portals they began.
    pub(super) unsynced_portals: bool,
    /// Airlock sends a Sync of its own before the message asked for whole now (a
    /// Query after Parse, Describe or Close messages without their Sync).
    pub(super) sync_first: bool,
    /// A Sync was forwarded since the last Execute or Query, the messages that may
    /// start copying in (during which the server ignores Syncs).
    pub(super) synced_since_start: bool,
    /// The last of those was an Execute: it runs one statement, so once its COPY data
    /// ends no other COPY follows it.
    pub(super) started_by_execute: bool,
    /// COPY data ended (CopyDone or CopyFail) after that Execute.
    pub(super) copy_ended: bool,
    /// COPY data came after a Sync that may then have been ignored, and no Sync known
    /// to be answered has followed: counting answers no longer tells them apart.
    pub(super) misaligned: bool,
}

impl Counts {
    /// Follows what may have made the server ignore a Sync: COPY data after a Sync
    /// that came after an Execute or Query (which may have started copying in). A Sync
    /// after an Execute's COPY data ended is answered whatever happened (the COPY
    /// ended, never began, or failed), so it realigns the count.
    fn follow_copies(&mut self, tag: u8) {
        match tag {
            tag::EXECUTE | tag::QUERY => {
                self.synced_since_start = false;
                self.started_by_execute = tag == tag::EXECUTE;
                self.copy_ended = false;
            }
            tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {
                self.misaligned |= self.synced_since_start;
                self.copy_ended |= tag != tag::COPY_DATA && self.started_by_execute;
            }
            tag::SYNC => {
                self.misaligned &= !self.copy_ended;
                self.synced_since_start = true;
            }
            _ => {}
        }
    }

    /// The statement seam, called once per frontend message header. Statements stay
    /// within limits.max_message_size even while they pass raw: asking for an
    /// oversized one whole makes the scanner refuse it. While skipping to a Sync,
    /// everything is asked for whole (and dropped by the caller).
    ///
    /// With the policy enforced, the messages the gate wants are inspected in place
    /// when they are already wholly buffered (the common case), so allowed traffic
    /// still passes raw; a held one is parked in `reading` and asked for whole, as
    /// is a message still arriving (the caller inspects those).
    pub(super) fn classify(
        &mut self,
        h: Header<'_>,
        gate: Option<&mut SessionGate<'_>>,
        reading: &mut Reading,
        max_message: usize,
    ) -> Disposition {
        if h.tag == tag::TERMINATE {
            self.terminate = true;
        }
        if matches!(reading, Reading::SkippingToSync) {
            return Disposition::Whole;
        }
        // The server ignores a Query or FunctionCall that comes while it skips to a
        // Sync after an error in the extended protocol, which no answer would tell.
        // After statements only (asyncpg prepares with Parse, Describe and Flush, then
        // may send a Query), Airlock sends the Sync itself: it ends nothing the agent
        // began. After a Bind or Execute it would end their transaction and portals
        // early, so the agent is asked for its Sync first.
        if gate.is_some() && self.since_sync > 0 && matches!(h.tag, tag::QUERY | tag::FUNCTION_CALL) {
            if self.unsynced_portals {
                let kind = if h.tag == tag::QUERY { HeldKind::Query } else { HeldKind::FunctionCall };
                let reason = "a Query or FunctionCall must not follow a Bind or Execute before their Sync";
                *reading = Reading::Held(Held::refused("(protocol)", reason, kind));
                return Disposition::Whole;
            }
            self.sync_first = true;
        }
        match h.tag {
            tag::PARSE | tag::DESCRIBE | tag::CLOSE => self.since_sync += 1,
            tag::BIND | tag::EXECUTE => {
                self.since_sync += 1;
                self.unsynced_portals = true;
            }
            tag::SYNC | tag::QUERY | tag::FUNCTION_CALL => {
                self.since_sync = 0;
                self.unsynced_portals = false;
            }
            _ => {}
        }
        self.follow_copies(h.tag);
        if self.sync_first {
            return Disposition::Whole;
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
                    *reading = Reading::Held(h);
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
    /// before their bytes go upstream. Stops with `Drained` if the session is
    /// closing: nothing more may go upstream.
    pub(super) fn commit(&mut self, shared: &Shared, refused: Option<Reply>) -> Result<(), Stop> {
        let statements = std::mem::take(&mut self.statements);
        if self.requests.is_empty() && statements == 0 && refused.is_none() && self.expect.is_empty() {
            return Ok(());
        }
        let mut p = shared.lock();
        if p.phase == Phase::Closing {
            return Err(End::Drained.into());
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
        Ok(())
    }
}
