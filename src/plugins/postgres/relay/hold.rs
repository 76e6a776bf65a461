//! Holding a statement for approval while the agent waits, the refusal the agent gets
//! when it is not approved, and the verdict frames in the session's recording.

use airlock_postgres::message::{self, Severity};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::progress::Shared;
use super::{Enforcement, RelayContext};
use crate::approvals::{self, Holding, Settled};
use crate::plugins::postgres::error::SessionError;
use crate::plugins::postgres::gate::Held;
use crate::recording::RecorderDown;
use crate::recording::format::VerdictEvent;

/// How this session holds statements, for `approvals::hold`.
fn holding<'a>(e: &'a Enforcement<'_>, ctx: &'a RelayContext<'_>) -> Holding<'a> {
    Holding {
        broker: e.broker,
        identity: e.identity,
        connection: e.connection,
        protocol: "postgres",
        recorder: ctx.recorder,
        metrics: ctx.metrics,
        patience: None,
    }
}

/// Records a policy event in the session (as a verdict frame) and counts it.
pub(super) async fn record_verdict(ctx: &RelayContext<'_>, event: VerdictEvent) -> Result<(), SessionError> {
    approvals::record(ctx.recorder, ctx.metrics, event).await.map_err(|RecorderDown| SessionError::RecorderFailed)
}

/// What becomes of a held message, in Postgres terms.
pub(super) enum Ruling {
    /// It goes upstream.
    Forward,
    /// The agent gets this ErrorResponse in its place.
    Refuse(Bytes),
    /// The agent left while it waited.
    Left,
}

/// Settles a held message through `approvals::hold`.
pub(super) async fn decide<R: AsyncRead + Unpin>(
    held: &Held,
    e: &Enforcement<'_>,
    shared: &Shared,
    ctx: &RelayContext<'_>,
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<Ruling, SessionError> {
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
        Settled::Allowed | Settled::Approved => Ruling::Forward,
        Settled::Denied(r) | Settled::Expired(r) => Ruling::Refuse(refusal(&r.message, &r.rule)),
        Settled::Canceled => Ruling::Refuse(message::error_response(
            Severity::Error,
            "57014",
            "canceling statement due to user request (it was waiting for approval)",
            None,
        )),
        // Parked only with a patience, which Postgres does not set.
        Settled::Withdrawn | Settled::Parked(_) => Ruling::Left,
    })
}

/// The ErrorResponse for a statement Airlock refuses.
pub(super) fn refusal(message: &str, rule: &str) -> Bytes {
    let hint = format!("Airlock policy rule {rule:?}; nothing was run and the session is still usable");
    message::error_response(Severity::Error, "42501", message, Some(&hint))
}
