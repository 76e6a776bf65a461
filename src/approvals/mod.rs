//! Approvals: statements held until a human decides.
//!
//! A session whose statement needs approval files a [`Request`] with the [`Broker`] and
//! waits on its [`Ticket`]. Approvers list, approve and deny through the admin API. An
//! approval may carry a grant (`--for 30m`): for that long, the same identity may run
//! statements with the same fingerprints on the same connection without asking again.
//! Without `[state]`, everything lives in memory: a restart refuses whatever was
//! pending (the agents' sessions end with it). With it, requests and grants live in
//! the state database ([`crate::state`]): any replica lists and decides them, and the
//! decision reaches the replica whose session waits through a notification. The
//! waiting itself stays local: each replica keeps the tickets of its own sessions.
//!
//! An HTTP agent does not wait for ever: when its wait ends, its ticket is parked
//! ([`Ticket::park`]) and the request stays open until `approvals.timeout`. The agent
//! retries with the id, and [`Broker::redeem`] tells how it was decided; an approval
//! is redeemed once, and only for the same identity, connection and fingerprints.

mod hold;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::Approvals as ApprovalSettings;
use crate::identity::Identity;
use crate::state::{Change, StateStore, Unavailable};
pub use hold::{Holding, Refusal, Settled, hold, record, redeem};
pub use webhook::Webhook;

/// What an agent asked for, as approvers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Short id approvers type.
    pub id: String,
    /// The request itself.
    #[serde(flatten)]
    pub asked: Asked,
    /// When it was filed (RFC 3339).
    pub created_at: String,
    /// When it is refused unless decided (RFC 3339).
    pub expires_at: String,
}

/// What a session asks for; the broker adds the id and times.
#[derive(Debug, Clone, Serialize)]
pub struct Asked {
    /// Who asked.
    pub subject: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// Which connection.
    pub connection: String,
    /// `postgres`, later `ssh` and `http`.
    pub protocol: &'static str,
    /// The statement (or command, or request) as sent.
    pub statement: String,
    /// Its classes.
    pub classes: Vec<&'static str>,
    /// The rule that asked for approval (`default` for the default policy).
    pub rule: String,
    /// Why approval is needed; shown to approvers and, on timeout, to the agent.
    pub reason: String,
    /// What a grant from this approval would cover: the held statements' fingerprints.
    #[serde(skip)]
    pub fingerprints: Vec<String>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Approved by `by`.
    Approved {
        /// The approver's subject.
        by: String,
    },
    /// Denied by `by`, with a reason.
    Denied {
        /// The approver's subject.
        by: String,
        /// Their reason.
        reason: String,
    },
    /// Nobody decided within `approvals.timeout`.
    TimedOut,
}

/// Why an approver's decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// No pending request has that id (decided, expired or never filed).
    #[error("no pending approval {0:?} (already decided, expired, or its session ended)")]
    NotFound(String),
    /// The approver filed the request.
    #[error("{0} cannot approve or deny their own request")]
    OwnRequest(String),
    /// The grant asked for is longer than `approvals.max_grant`.
    #[error("a grant may last at most {max}")]
    GrantTooLong {
        /// The cap, human-readable.
        max: String,
    },
    /// The shared state store could not be reached; nothing was decided.
    #[error("the shared state store is unavailable, nothing was decided: {0}")]
    Unavailable(String),
}

impl DecideError {
    /// The HTTP status an approver is answered with.
    pub fn http_status(&self) -> hyper::StatusCode {
        match self {
            DecideError::NotFound(_) => hyper::StatusCode::NOT_FOUND,
            DecideError::OwnRequest(_) => hyper::StatusCode::FORBIDDEN,
            DecideError::GrantTooLong { .. } => hyper::StatusCode::BAD_REQUEST,
            DecideError::Unavailable(_) => hyper::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

struct Pending {
    request: Request,
    decide: oneshot::Sender<Outcome>,
}

#[derive(Debug)]
struct Grant {
    subject: String,
    connection: String,
    fingerprint: String,
    until: Instant,
}

/// A request whose agent stopped waiting, with the end of its decision.
struct Parked {
    request: Request,
    decided: oneshot::Receiver<Outcome>,
    /// When it expires unless decided.
    until: Instant,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    grants: Vec<Grant>,
    parked: HashMap<String, Parked>,
}

/// How a parked request stands when its agent comes back for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// Approved: the request may go ahead, this once.
    Approved {
        /// The approver.
        by: String,
    },
    /// Denied by an approver.
    Denied {
        /// The approver.
        by: String,
        /// Their reason.
        reason: String,
    },
    /// Nobody has decided yet.
    Pending,
    /// Nobody decided in time.
    Expired,
    /// No parked request has this id for this identity, connection and request.
    Unknown,
}

/// The locked state; the pending gauge follows every change when the lock is released.
struct Locked<'a> {
    state: std::sync::MutexGuard<'a, State>,
    gauge: &'a Gauge,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.gauge.set(i64::try_from(self.state.pending.len()).unwrap_or(i64::MAX));
    }
}

/// Pending requests and grants.
pub struct Broker {
    timeout: Duration,
    max_grant: Duration,
    /// In memory: every request. With shared state: the requests this replica's
    /// sessions wait on, with the senders that wake them.
    state: Mutex<State>,
    webhook: Option<Webhook>,
    pending_gauge: Gauge,
    shared: Option<Arc<StateStore>>,
    /// Bumped whenever a request is filed or settled, here or (with shared state) on
    /// any replica: what the console's live list follows.
    changed: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// A filed request; [`Ticket::wait`] resolves it. Dropping the ticket (the agent left)
/// withdraws the request.
#[derive(Debug)]
pub struct Ticket<'a> {
    broker: &'a Broker,
    /// The request as filed.
    pub request: Request,
    decided: Option<oneshot::Receiver<Outcome>>,
}

impl Ticket<'_> {
    /// Waits for a decision or the timeout.
    pub async fn wait(&mut self) -> Outcome {
        let Some(rx) = self.decided.as_mut() else { return Outcome::TimedOut };
        let outcome = match tokio::time::timeout(self.broker.timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            // Timed out, or the sender vanished (it never does before a decision).
            _ => Outcome::TimedOut,
        };
        self.decided = None;
        if outcome != Outcome::TimedOut {
            return outcome;
        }
        let expired = self.broker.withdraw(&self.request.id);
        let outcome = match &self.broker.shared {
            None if expired => Outcome::TimedOut,
            None => return Outcome::TimedOut,
            // A decision made on another replica just before the timeout stands.
            Some(store) => match store.expire(&self.request.id).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    // The row expires on its own (nobody may decide it after
                    // `expires_at`); the agent is refused either way.
                    tracing::warn!(id = %self.request.id, error = %e, "could not mark the request expired");
                    Outcome::TimedOut
                }
            },
        };
        if outcome == Outcome::TimedOut {
            self.broker.announce("expired", &self.request, None);
        }
        outcome
    }

    /// Stops waiting but keeps the request open until `approvals.timeout`, for the
    /// agent to come back to with [`Broker::redeem`] (on any replica, with shared
    /// state).
    pub async fn park(mut self) {
        let Some(decided) = self.decided.take() else { return };
        let Some(store) = &self.broker.shared else {
            let until = Instant::now() + self.broker.timeout;
            let mut state = self.broker.lock();
            state.parked.insert(self.request.id.clone(), Parked { request: self.request.clone(), decided, until });
            return;
        };
        self.broker.withdraw(&self.request.id);
        if let Err(e) = store.park(&self.request.id).await {
            tracing::warn!(id = %self.request.id, error = %e, "could not mark the request parked");
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.decided.is_none() {
            return;
        }
        let withdrawn = self.broker.withdraw(&self.request.id);
        let Some(store) = self.broker.shared.clone() else {
            if withdrawn {
                self.broker.announce("withdrawn", &self.request, None);
            }
            return;
        };
        // The row is withdrawn in the background: a drop cannot wait.
        let (request, webhook) = (self.request.clone(), self.broker.webhook.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            match store.withdraw(&request.id).await {
                Ok(true) => {
                    if let Some(hook) = webhook {
                        hook.send("withdrawn", &request, None);
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(id = %request.id, error = %e, "could not withdraw the request"),
            }
        });
    }
}

impl Broker {
    /// A broker with the `[approvals]` settings, reporting the number pending to `gauge`.
    pub fn new(settings: &ApprovalSettings, gauge: Gauge) -> anyhow::Result<Broker> {
        let webhook = settings.webhook.as_deref().map(|url| Webhook::new(url, settings.webhook_timeout)).transpose()?;
        Ok(Broker {
            timeout: settings.timeout,
            max_grant: settings.max_grant,
            state: Mutex::default(),
            webhook,
            pending_gauge: gauge,
            shared: None,
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A broker whose requests and grants live in the shared state store, so that
    /// every replica sees and decides them.
    pub fn shared(settings: &ApprovalSettings, gauge: Gauge, store: Arc<StateStore>) -> anyhow::Result<Arc<Broker>> {
        let changes = store.subscribe();
        let broker = Arc::new(Broker { shared: Some(store), ..Broker::new(settings, gauge)? });
        tokio::spawn(wake_on_changes(Arc::downgrade(&broker), changes));
        Ok(broker)
    }

    /// The shared state store, with `[state]`.
    pub fn store(&self) -> Option<&Arc<StateStore>> {
        self.shared.as_ref()
    }

    /// Changes whenever the pending list may have changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether approvals can be filed and decided now.
    pub fn ready(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| s.ready())
    }

    fn lock(&self) -> Locked<'_> {
        // Every critical section is a few map operations that cannot panic.
        Locked { state: self.state.lock().unwrap_or_else(|p| p.into_inner()), gauge: &self.pending_gauge }
    }

    /// Whether a live grant covers every fingerprint for this identity and connection.
    pub async fn granted(&self, subject: &str, connection: &str, fingerprints: &[String]) -> bool {
        if fingerprints.is_empty() {
            return false;
        }
        if let Some(store) = &self.shared {
            return store.granted(subject, connection, fingerprints).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "grants cannot be checked; asking for approval");
                false
            });
        }
        let mut state = self.lock();
        if state.grants.is_empty() {
            return false;
        }
        let now = Instant::now();
        state.grants.retain(|g| g.until > now);
        fingerprints.iter().all(|fp| {
            state.grants.iter().any(|g| g.subject == subject && g.connection == connection && &g.fingerprint == fp)
        })
    }

    /// Files a request; the agent should be told its id, then wait on the ticket.
    /// Fails only with shared state, when the store cannot be reached.
    pub async fn file(&self, asked: Asked) -> Result<Ticket<'_>, Unavailable> {
        let (tx, rx) = oneshot::channel();
        let request = match &self.shared {
            None => {
                let now = SystemTime::now();
                let mut state = self.lock();
                let id = loop {
                    let id = short_id();
                    if !state.pending.contains_key(&id) {
                        break id;
                    }
                };
                let request = Request {
                    id: id.clone(),
                    asked,
                    created_at: rfc3339(now),
                    expires_at: rfc3339(now + self.timeout),
                };
                state.pending.insert(id, Pending { request: request.clone(), decide: tx });
                request
            }
            Some(store) => {
                let request = store.file(&asked, self.timeout).await?;
                self.lock().pending.insert(request.id.clone(), Pending { request: request.clone(), decide: tx });
                // A decision could have come between the insert and now (an approver
                // faster than this replica): look once, then rely on notifications.
                self.wake(&request.id).await;
                request
            }
        };
        tracing::info!(id = %request.id, subject = %request.asked.subject, connection = %request.asked.connection, "approval requested");
        self.announce("requested", &request, None);
        Ok(Ticket { broker: self, request, decided: Some(rx) })
    }

    /// Pending requests, oldest first (every replica's, with shared state).
    pub async fn pending(&self) -> Result<Vec<Request>, Unavailable> {
        if let Some(store) = &self.shared {
            return store.pending().await;
        }
        self.sweep();
        let mut list: Vec<Request> = self.lock().pending.values().map(|p| p.request.clone()).collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(list)
    }

    /// Approves request `id`, optionally granting the same statements for `grant`.
    pub async fn approve(
        &self,
        id: &str,
        approver: &Identity,
        grant: Option<Duration>,
    ) -> Result<Request, DecideError> {
        if let Some(d) = grant
            && d > self.max_grant
        {
            return Err(DecideError::GrantTooLong { max: spoken(self.max_grant) });
        }
        let request = self
            .decide(id, approver, Outcome::Approved { by: approver.subject.clone() }, grant, |state, request| {
                if let Some(d) = grant {
                    let until = Instant::now() + d;
                    for fp in &request.asked.fingerprints {
                        state.grants.push(Grant {
                            subject: request.asked.subject.clone(),
                            connection: request.asked.connection.clone(),
                            fingerprint: fp.clone(),
                            until,
                        });
                    }
                }
            })
            .await?;
        let detail = grant.map(|d| format!("granted for {}", spoken(d)));
        tracing::info!(id, approver = %approver.subject, grant = ?detail, "approval approved");
        self.announce("approved", &request, Some((&approver.subject, detail.as_deref().unwrap_or(""))));
        Ok(request)
    }

    /// Denies request `id` with a reason for the agent.
    pub async fn deny(&self, id: &str, approver: &Identity, reason: &str) -> Result<Request, DecideError> {
        let outcome = Outcome::Denied { by: approver.subject.clone(), reason: reason.to_owned() };
        let request = self.decide(id, approver, outcome, None, |_, _| {}).await?;
        tracing::info!(id, approver = %approver.subject, reason, "approval denied");
        self.announce("denied", &request, Some((&approver.subject, reason)));
        Ok(request)
    }

    async fn decide(
        &self,
        id: &str,
        approver: &Identity,
        outcome: Outcome,
        grant: Option<Duration>,
        then: impl FnOnce(&mut State, &Request),
    ) -> Result<Request, DecideError> {
        if let Some(store) = &self.shared {
            // A request's subject never changes: looked up first, it is compared as
            // people are (the store's own check compares exactly).
            if let Ok(Some(subject)) = store.subject(id).await
                && crate::identity::same_person(&subject, &approver.subject)
            {
                return Err(DecideError::OwnRequest(approver.subject.clone()));
            }
            // The session's replica hears of it and wakes the session.
            return store.decide(id, &approver.subject, &outcome, grant).await;
        }
        self.sweep();
        let mut state = self.lock();
        let pending = state.pending.get(id).ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        if crate::identity::same_person(&pending.request.asked.subject, &approver.subject) {
            return Err(DecideError::OwnRequest(approver.subject.clone()));
        }
        let Some(Pending { request, decide }) = state.pending.remove(id) else {
            return Err(DecideError::NotFound(id.to_owned()));
        };
        then(&mut state, &request);
        drop(state);
        // The session may have left in the meantime; the decision stands either way.
        let _ = decide.send(outcome);
        Ok(request)
    }

    /// When request `id`, still pending, expires (RFC 3339).
    pub async fn expires_at(&self, id: &str) -> Option<String> {
        if let Some(store) = &self.shared {
            return store.expires_at(id).await.ok().flatten();
        }
        self.lock().pending.get(id).map(|p| p.request.expires_at.clone())
    }

    /// How parked request `id` was decided, if it was filed for this subject and
    /// connection with these fingerprints. An approval is handed out once.
    pub async fn redeem(&self, id: &str, subject: &str, connection: &str, fingerprints: &[String]) -> Redeemed {
        if let Some(store) = &self.shared {
            return store.redeem(id, subject, connection, fingerprints, self.timeout).await.unwrap_or_else(|e| {
                tracing::warn!(id, error = %e, "cannot look up the approval; deciding afresh");
                Redeemed::Unknown
            });
        }
        self.sweep();
        let mut state = self.lock();
        let Some(parked) = state.parked.get_mut(id) else { return Redeemed::Unknown };
        let asked = &parked.request.asked;
        if asked.subject != subject || asked.connection != connection || asked.fingerprints != fingerprints {
            return Redeemed::Unknown;
        }
        let redeemed = match parked.decided.try_recv() {
            Ok(Outcome::Approved { by }) => Redeemed::Approved { by },
            Ok(Outcome::Denied { by, reason }) => Redeemed::Denied { by, reason },
            Ok(Outcome::TimedOut) | Err(oneshot::error::TryRecvError::Closed) => Redeemed::Expired,
            Err(oneshot::error::TryRecvError::Empty) => return Redeemed::Pending,
        };
        state.parked.remove(id);
        redeemed
    }

    /// Expires parked requests nobody decided in time, and forgets decided ones their
    /// agents never came back for.
    fn sweep(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut state = self.lock();
            if state.parked.is_empty() {
                return;
            }
            let State { pending, parked, .. } = &mut *state;
            // Decided ones are kept as long again, for an agent that comes back late.
            let keep_decided = self.timeout;
            parked.retain(|id, p| match pending.contains_key(id) {
                true if p.until <= now => {
                    expired.extend(pending.remove(id).map(|gone| gone.request));
                    false
                }
                true => true,
                false => p.until + keep_decided > now,
            });
        }
        for request in expired {
            tracing::info!(id = %request.id, "parked approval expired");
            self.announce("expired", &request, None);
        }
    }

    fn withdraw(&self, id: &str) -> bool {
        self.lock().pending.remove(id).is_some()
    }

    /// With shared state: wakes the local session waiting on request `id` if the
    /// request has been decided.
    async fn wake(&self, id: &str) {
        let Some(store) = &self.shared else { return };
        match store.decision(id).await {
            Ok(Some(outcome)) => {
                if let Some(pending) = self.lock().pending.remove(id) {
                    let _ = pending.decide.send(outcome);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(id, error = %e, "cannot look up the request yet"),
        }
    }

    fn waiting(&self) -> Vec<String> {
        self.lock().pending.keys().cloned().collect()
    }

    fn announce(&self, event: &'static str, request: &Request, by: Option<(&str, &str)>) {
        self.bump();
        if let Some(hook) = &self.webhook {
            hook.send(event, request, by);
        }
    }
}

/// Wakes the sessions of this replica whose requests were decided elsewhere, for as
/// long as the broker lives.
async fn wake_on_changes(broker: Weak<Broker>, mut changes: tokio::sync::broadcast::Receiver<Change>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = changes.recv().await;
        let Some(broker) = broker.upgrade() else { return };
        broker.bump();
        match change {
            Ok(Change::Approval(id)) => {
                if broker.lock().pending.contains_key(&id) {
                    broker.wake(&id).await;
                }
            }
            // Reconnected, or fell behind: anything may have been decided unheard.
            Ok(Change::Reconnected) | Err(RecvError::Lagged(_)) => {
                for id in broker.waiting() {
                    broker.wake(&id).await;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Eight characters from an alphabet without look-alikes (no 0/o, 1/l/i).
pub(crate) fn short_id() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    (0..8).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    // The formatter handles years up to 9999 only; a time read from the state database
    // may be anything.
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_seconds(t.clamp(SystemTime::UNIX_EPOCH, last)).to_string()
}

/// A duration as people write it: `1 day`, `3 hours`, `90 minutes`, `45 seconds`.
fn spoken(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn identity(subject: &str) -> Identity {
        Identity { subject: subject.into(), groups: vec!["agents".into()], method: AuthMethod::Jwt }
    }

    fn broker(timeout: Duration) -> Broker {
        Broker::new(&ApprovalSettings { timeout, ..ApprovalSettings::default() }, Gauge::default()).unwrap()
    }

    fn request(subject: &str) -> Asked {
        Asked {
            subject: subject.into(),
            groups: vec!["agents".into()],
            connection: "db".into(),
            protocol: "postgres",
            statement: "DROP TABLE t".into(),
            classes: vec!["destructive"],
            rule: "default".into(),
            reason: "destructive statements need approval".into(),
            fingerprints: vec!["fp1".into()],
        }
    }

    #[tokio::test]
    async fn approve_wakes_the_waiter_and_grants_cover_later_runs() {
        let b = broker(Duration::from_secs(60));
        let mut ticket = b.file(request("agent")).await.unwrap();
        let id = ticket.request.id.clone();
        assert_eq!(b.pending().await.unwrap().len(), 1);
        assert_eq!(
            b.approve(&id, &identity("agent"), None).await.unwrap_err(),
            DecideError::OwnRequest("agent".into())
        );
        assert!(matches!(
            b.approve(&id, &identity("sre"), Some(Duration::from_secs(365 * 86400))).await,
            Err(DecideError::GrantTooLong { .. })
        ));
        b.approve(&id, &identity("sre"), Some(Duration::from_secs(60))).await.unwrap();
        assert_eq!(ticket.wait().await, Outcome::Approved { by: "sre".into() });
        assert!(b.pending().await.unwrap().is_empty());
        assert!(b.granted("agent", "db", &["fp1".into()]).await);
        assert!(!b.granted("agent", "other-db", &["fp1".into()]).await);
        assert!(!b.granted("other", "db", &["fp1".into()]).await);
        assert!(!b.granted("agent", "db", &["fp1".into(), "fp2".into()]).await);
        assert_eq!(b.deny(&id, &identity("sre"), "late").await.unwrap_err(), DecideError::NotFound(id));
    }

    #[tokio::test]
    async fn deny_timeout_and_withdrawal() {
        let b = broker(Duration::from_millis(50));
        let mut ticket = b.file(request("agent")).await.unwrap();
        let id = ticket.request.id.clone();
        b.deny(&id, &identity("sre"), "not today").await.unwrap();
        assert_eq!(ticket.wait().await, Outcome::Denied { by: "sre".into(), reason: "not today".into() });

        let mut ticket = b.file(request("agent")).await.unwrap();
        assert_eq!(ticket.wait().await, Outcome::TimedOut);
        assert!(b.pending().await.unwrap().is_empty());

        let ticket = b.file(request("agent")).await.unwrap();
        assert_eq!(b.pending().await.unwrap().len(), 1);
        drop(ticket);
        assert!(b.pending().await.unwrap().is_empty());
    }
}
