//! Holding a command for approval, the same way for every protocol.
//!
//! A plugin turns what the agent asked into a policy [`Decision`] and calls [`hold`].
//! It checks grants, files the request with the broker, tells the agent it waits,
//! races the approver against the agent's cancel and departure and the timeout, and
//! records and counts every step. The plugin turns the [`Settled`] outcome into its
//! own protocol's bytes (for Postgres: a NoticeResponse while it waits, an
//! ErrorResponse when refused), as it does for errors.

use std::future::Future;

use tokio::sync::Notify;

use super::{Asked, Broker, Outcome, Request};
use crate::identity::Identity;
use crate::metrics::SessionMetrics;
use crate::policy::{Decision, Verdict};
use crate::recording::format::{Direction, Kind, PolicyEvent, VerdictEvent};
use crate::recording::{RecorderDown, SessionRecorder};

/// What a session holds its commands with.
pub struct Holding<'a> {
    /// Where requests wait for approvers.
    pub broker: &'a Broker,
    /// Who is asking.
    pub identity: &'a Identity,
    /// Which connection.
    pub connection: &'a str,
    /// `postgres`, `ssh` or `http`.
    pub protocol: &'static str,
    /// Where policy events are recorded, unless recording is off.
    pub recorder: Option<&'a SessionRecorder>,
    /// Where they are counted.
    pub metrics: &'a SessionMetrics,
    /// How long the agent waits for a decision; `None`: until one is made or the
    /// request expires. When its patience runs out the request is parked
    /// ([`Settled::Parked`]), and the agent may come back for it ([`redeem`]).
    pub patience: Option<std::time::Duration>,
}

/// How a decision was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Policy allows it, or an earlier approval's grant covers it: it goes ahead.
    Allowed,
    /// An approver approved it: it goes ahead.
    Approved,
    /// Refused: by policy (`approval` is `None`) or by an approver.
    Denied(Refusal),
    /// Nobody decided in time: refused.
    Expired(Refusal),
    /// The agent cancelled it while it waited.
    Canceled,
    /// The agent left while it waited; the request was withdrawn.
    Withdrawn,
    /// Nobody decided within the agent's patience: the request stays open, under this
    /// id, until `approvals.timeout`.
    Parked(String),
}

/// Why something is refused, for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What to tell the agent.
    pub message: String,
    /// The rule that refused it (`max_rows`, `default`, a rule's name).
    pub rule: String,
}

impl Holding<'_> {
    async fn record(&self, event: VerdictEvent) -> Result<(), RecorderDown> {
        record(self.recorder, self.metrics, event).await
    }
}

/// Records a policy event in a session (unless recording is off) and counts it.
pub async fn record(
    recorder: Option<&SessionRecorder>,
    metrics: &SessionMetrics,
    event: VerdictEvent,
) -> Result<(), RecorderDown> {
    metrics.policy_event(event.event.as_str());
    match recorder {
        Some(r) => {
            let payload = serde_json::to_vec(&event).map_err(|_| RecorderDown)?;
            r.record(Direction::None, Kind::Verdict, payload.into()).await
        }
        None => Ok(()),
    }
}

/// Settles `decision` on `text` (what the agent sent, as approvers see it): allowed,
/// denied, or held until an approver decides. `notify` tells the agent it waits,
/// once the request is filed; `cancel` fires when the agent cancels; `gone` finishes
/// when the agent has left (it is polled while the command waits, so it may read
/// what the agent sends meanwhile).
pub async fn hold(
    session: &Holding<'_>,
    decision: &Decision,
    text: &str,
    notify: impl FnOnce(&Request),
    cancel: &Notify,
    gone: impl Future<Output = ()>,
) -> Result<Settled, RecorderDown> {
    let classes: Vec<String> = decision.classes().iter().map(|c| c.as_str().to_owned()).collect();
    let first_rule = |pick: fn(&Verdict) -> bool| {
        decision.statements.iter().find(|s| pick(&s.verdict)).map(|s| s.rule.clone()).unwrap_or_default()
    };
    let event = |event, rule: &str, reason: &str| VerdictEvent {
        event,
        statement: text.to_owned(),
        classes: classes.clone(),
        rule: rule.to_owned(),
        reason: reason.to_owned(),
        ..VerdictEvent::default()
    };
    let reason = match decision.verdict() {
        Verdict::Allow => return Ok(Settled::Allowed),
        Verdict::Deny(reason) => {
            let rule = first_rule(|v| matches!(v, Verdict::Deny(_)));
            tracing::info!(%rule, %reason, "denied by policy");
            session.record(event(PolicyEvent::Denied, &rule, reason)).await?;
            let what = if session.protocol == "postgres" { "statement" } else { "command" };
            let message = format!("Airlock policy denies this {what}: {reason}");
            return Ok(Settled::Denied(Refusal { message, rule }));
        }
        Verdict::Approve(reason) => reason,
    };
    let rule = first_rule(|v| matches!(v, Verdict::Approve(_)));
    let fingerprints: Vec<String> = decision.held().map(|s| s.fingerprint.clone()).collect();
    let identity = session.identity;
    if session.broker.granted(&identity.subject, session.connection, &fingerprints).await {
        tracing::info!(%rule, "allowed by an earlier grant");
        session.record(event(PolicyEvent::Granted, &rule, reason)).await?;
        return Ok(Settled::Allowed);
    }
    // Listening for a cancel before the request exists: a cancel sent as soon as the
    // agent is told it waits must not slip between filing and waiting.
    let cancelled = cancel.notified();
    tokio::pin!(cancelled);
    cancelled.as_mut().enable();
    let filed = session.broker.file(Asked {
        subject: identity.subject.clone(),
        groups: identity.groups.clone(),
        connection: session.connection.to_owned(),
        protocol: session.protocol,
        statement: text.to_owned(),
        classes: decision.classes().iter().map(|c| c.as_str()).collect(),
        rule: rule.clone(),
        reason: reason.clone(),
        fingerprints,
    });
    let mut ticket = match filed.await {
        Ok(ticket) => ticket,
        Err(e) => {
            // Fail closed: nobody could approve it, so it does not run.
            tracing::warn!(%rule, error = %e, "cannot hold for approval");
            let why = "approvals are unavailable (Airlock cannot reach its shared state)";
            session.record(event(PolicyEvent::Denied, &rule, why)).await?;
            let message = format!("this needs approval ({reason}), but {why}: nothing was run; try again later");
            return Ok(Settled::Denied(Refusal { message, rule }));
        }
    };
    let id = ticket.request.id.clone();
    session.record(VerdictEvent { approval: Some(id.clone()), ..event(PolicyEvent::Held, &rule, reason) }).await?;
    notify(&ticket.request);
    let patience = async {
        match session.patience {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = ticket.wait() => Some(outcome),
        _ = patience => {
            ticket.park().await;
            tracing::info!(approval = %id, "the agent stopped waiting; the request stays open");
            let parked = VerdictEvent { approval: Some(id.clone()), ..event(PolicyEvent::Parked, &rule, reason) };
            session.record(parked).await?;
            return Ok(Settled::Parked(id));
        }
        _ = &mut cancelled => None,
        _ = gone => {
            // Dropping the ticket withdraws the request.
            tracing::info!(approval = %id, "the agent left while its request waited");
            let withdrawn = VerdictEvent { approval: Some(id.clone()), ..event(PolicyEvent::Withdrawn, &rule, reason) };
            session.record(withdrawn).await?;
            return Ok(Settled::Withdrawn);
        }
    };
    let mut approver_reason = None;
    let (event_kind, by, settled) = match outcome {
        Some(Outcome::Approved { by }) => (PolicyEvent::Approved, Some(by), Settled::Approved),
        Some(Outcome::Denied { by, reason }) => {
            let message = format!("approval {id} was denied by {by}: {reason}");
            approver_reason = Some(reason);
            (PolicyEvent::Denied, Some(by), Settled::Denied(Refusal { message, rule: rule.clone() }))
        }
        Some(Outcome::TimedOut) => {
            let message = format!("approval {id} timed out: no approver decided in time ({reason})");
            (PolicyEvent::Expired, None, Settled::Expired(Refusal { message, rule: rule.clone() }))
        }
        None => (PolicyEvent::Canceled, None, Settled::Canceled),
    };
    tracing::info!(approval = %id, event = event_kind.as_str(), by = by.as_deref().unwrap_or(""), "held command settled");
    let settled_event = VerdictEvent {
        approval: Some(id),
        by,
        approver_reason,
        classes: Vec::new(),
        ..event(event_kind, &rule, reason)
    };
    session.record(settled_event).await?;
    Ok(settled)
}

/// Settles a request the agent sends again with the id of its parked approval: it
/// goes ahead once that approval is given (once), and is refused when it was denied
/// or expired. A request the id does not cover (another identity, connection or
/// request) is decided afresh, as if no id came with it.
pub async fn redeem(
    session: &Holding<'_>,
    decision: &Decision,
    text: &str,
    id: &str,
    cancel: &Notify,
    gone: impl Future<Output = ()>,
) -> Result<Settled, RecorderDown> {
    let fingerprints: Vec<String> = decision.held().map(|s| s.fingerprint.clone()).collect();
    let redeemed = match decision.verdict() {
        Verdict::Approve(_) => {
            session.broker.redeem(id, &session.identity.subject, session.connection, &fingerprints).await
        }
        // Policy allows or denies it outright: an approval changes nothing.
        Verdict::Allow | Verdict::Deny(_) => super::Redeemed::Unknown,
    };
    let rule = decision.held().next().map(|s| s.rule.clone()).unwrap_or_default();
    let event = |event, reason: &str, by: Option<String>| VerdictEvent {
        event,
        statement: text.to_owned(),
        rule: rule.clone(),
        reason: reason.to_owned(),
        approval: Some(id.to_owned()),
        by,
        ..VerdictEvent::default()
    };
    let settled = match redeemed {
        super::Redeemed::Unknown => return hold(session, decision, text, |_| {}, cancel, gone).await,
        super::Redeemed::Pending => Settled::Parked(id.to_owned()),
        super::Redeemed::Approved { by } => {
            session.record(event(PolicyEvent::Approved, "approval redeemed", Some(by))).await?;
            Settled::Approved
        }
        super::Redeemed::Denied { by, reason } => {
            let message = format!("approval {id} was denied by {by}: {reason}");
            session.record(event(PolicyEvent::Denied, &reason, Some(by))).await?;
            Settled::Denied(Refusal { message, rule })
        }
        super::Redeemed::Expired => {
            let message = format!("approval {id} timed out: no approver decided in time");
            session.record(event(PolicyEvent::Expired, "", None)).await?;
            Settled::Expired(Refusal { message, rule })
        }
    };
    Ok(settled)
}
