//! The admin endpoint: `/healthz`, `/readyz`, `/metrics` (Prometheus text format) and
//! the approvals API.
//!
//! `/healthz` answers while the process serves; `/readyz` only while the recorder
//! works and, with `[state]`, the state database is connected (a replica that cannot
//! record or hold sessions should get no new ones).
//!
//! It runs on the same accept loop as the protocol endpoints; each connection is served
//! by `hyper`. The approvals API takes `Authorization: Bearer <token>` (a JWT or API key,
//! verified like an agent's) whose groups include one of `auth.approver_groups`:
//!
//! - `GET /approvals`: pending requests, oldest first (a JSON array);
//! - `POST /approvals/{id}/approve`, optional body `{"for": "30m"}` to grant the same
//!   statements to the same identity and connection for that long;
//! - `POST /approvals/{id}/deny`, body `{"reason": "..."}`.
//!
//! Nobody may decide their own request. Errors are JSON `{"error": "..."}` with 400,
//! 401, 403, 404 or 409.

mod client;

pub use client::{AdminClient, probe};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::approvals::{Broker, DecideError};
use crate::console::{Console, Reply};
use crate::identity::{Authenticator, Identity};
use crate::listener::{Incoming, Plugin};
use crate::metrics::Metrics;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin connections open at once (a console tab holds one for its live list), and
/// from one address. The admin port has its own budget: it never takes agents'
/// handshake places, and one source (a reverse proxy may be every browser's) cannot
/// take all of it.
const MAX_CONNECTIONS: usize = 256;
const MAX_CONNECTIONS_PER_SOURCE: usize = MAX_CONNECTIONS / 2;
/// Largest request body the API reads (decisions are a few bytes of JSON).
const MAX_BODY: usize = 64 * 1024;

/// Serves the admin API.
pub struct Admin {
    metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
    broker: Arc<Broker>,
    approver_groups: Vec<String>,
    recorder_failed: Option<Arc<crate::signal::Signal>>,
    console: Option<Arc<Console>>,
    connections: Arc<tokio::sync::Semaphore>,
    per_source: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// A connection's place in its source's share; given back when dropped.
struct SourcePlace {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    source: std::net::IpAddr,
}

impl SourcePlace {
    fn take(
        counts: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        source: std::net::IpAddr,
    ) -> Option<SourcePlace> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(source).or_default();
        if *n >= MAX_CONNECTIONS_PER_SOURCE {
            return None;
        }
        *n += 1;
        Some(SourcePlace { counts: counts.clone(), source })
    }
}

impl Drop for SourcePlace {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("approver_groups", &self.approver_groups).finish_non_exhaustive()
    }
}

fn reply(status: StatusCode, ctype: &str, body: String) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync())
        .unwrap_or_default()
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    reply(status, "application/json", serde_json::to_string_pretty(value).unwrap_or_default() + "\n")
}

/// An API error: its status and a message for the caller.
struct ApiError(StatusCode, String);

fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    ApiError(status, message.to_string())
}

impl ApiError {
    fn reply(self) -> Reply {
        json(self.0, &serde_json::json!({ "error": self.1 }))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Grant length, like "30m".
    #[serde(rename = "for")]
    grant: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    reason: String,
}

impl Admin {
    /// An admin endpoint reporting `metrics` and serving `broker`'s approvals to
    /// identities in `approver_groups`.
    pub fn new(
        metrics: Arc<Metrics>,
        auth: Arc<Authenticator>,
        broker: Arc<Broker>,
        approver_groups: Vec<String>,
        recorder_failed: Option<Arc<crate::signal::Signal>>,
        console: Option<Arc<Console>>,
    ) -> Admin {
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let per_source = Arc::default();
        Admin { metrics, auth, broker, approver_groups, recorder_failed, console, connections, per_source }
    }

    /// Why this replica should get no new sessions, if it should not.
    fn not_ready(&self) -> Option<&'static str> {
        if self.recorder_failed.as_ref().is_some_and(|f| f.is_fired()) {
            return Some("the recorder has failed");
        }
        if !self.broker.ready() {
            return Some("the state database is unreachable");
        }
        None
    }

    async fn route(&self, req: Request<Body>, peer: std::net::IpAddr) -> Reply {
        let path = req.uri().path().to_owned();
        if let Some(console) = &self.console {
            if path == "/console" || path.starts_with("/console/") {
                return console.route(req, peer).await;
            }
            if path == "/" && req.method() == Method::GET {
                let mut r = reply(StatusCode::SEE_OTHER, "text/plain", "the console is at /console/\n".into());
                r.headers_mut().insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static("/console/"));
                return r;
            }
        }
        if path == "/approvals" || path.starts_with("/approvals/") {
            return self.approvals(req, &path).await.unwrap_or_else(ApiError::reply);
        }
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            (&Method::GET, "/readyz") => match self.not_ready() {
                None => reply(StatusCode::OK, "text/plain", "ready\n".into()),
                Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n")),
            },
            (&Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.render(),
            ),
            (_, "/healthz" | "/readyz" | "/metrics") => {
                reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".into())
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /console/, /healthz, /readyz, /metrics or /approvals\n".into(),
            ),
        }
    }

    async fn approvals(&self, req: Request<Body>, path: &str) -> Result<Reply, ApiError> {
        let approver = self.approver(&req).await?;
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method(), parts.as_slice()) {
            (&Method::GET, ["approvals"]) => {
                let pending = self.broker.pending().await.map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
                Ok(json(StatusCode::OK, &pending))
            }
            (&Method::POST, ["approvals", id, "approve"]) => {
                let id = id.to_string();
                let body: ApproveBody = read_json(req, true).await?;
                let grant = body
                    .grant
                    .map(|d| {
                        humantime::parse_duration(&d)
                            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("for: {d:?}: {e}")))
                    })
                    .transpose()?;
                let request = self.broker.approve(&id, &approver, grant).await.map_err(decide_error)?;
                Ok(json(StatusCode::OK, &request))
            }
            (&Method::POST, ["approvals", id, "deny"]) => {
                let id = id.to_string();
                let body: DenyBody = read_json(req, false).await?;
                if body.reason.trim().is_empty() {
                    return Err(error(StatusCode::BAD_REQUEST, "reason: say why, the agent sees it"));
                }
                let request = self.broker.deny(&id, &approver, &body.reason).await.map_err(decide_error)?;
                Ok(json(StatusCode::OK, &request))
            }
            (_, ["approvals"] | ["approvals", _, "approve" | "deny"]) => {
                Err(error(StatusCode::METHOD_NOT_ALLOWED, "GET /approvals; POST /approvals/{id}/approve or /deny"))
            }
            _ => Err(error(StatusCode::NOT_FOUND, "try GET /approvals or POST /approvals/{id}/approve or /deny")),
        }
    }

    /// The caller, if their token is valid and they are an approver.
    async fn approver(&self, req: &Request<Body>) -> Result<Identity, ApiError> {
        let token = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "send Authorization: Bearer <token>"))?;
        let identity = self.auth.authenticate(token.trim()).await.map_err(|e| {
            self.metrics.auth_failed("admin", e.label());
            error(StatusCode::UNAUTHORIZED, e)
        })?;
        if !identity.in_any(&self.approver_groups) {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!("{} is not in an approver group (auth.approver_groups)", identity.subject),
            ));
        }
        Ok(identity)
    }
}

async fn read_json<T: serde::de::DeserializeOwned + Default>(
    req: Request<Body>,
    optional: bool,
) -> Result<T, ApiError> {
    let body = tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| error(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time"))?
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?
        .to_bytes();
    if optional && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("body: {e}")))
}

fn decide_error(e: DecideError) -> ApiError {
    error(e.http_status(), e)
}

impl Plugin for Admin {
    fn endpoint(&self) -> &'static str {
        "admin"
    }

    async fn serve(self: Arc<Self>, conn: Incoming) {
        // Admin requests authenticate each on their own: the connection takes no place
        // in the agents' handshake budget, only in the admin port's.
        drop(conn.handshake);
        let Some(_share) = SourcePlace::take(&self.per_source, conn.peer.ip()) else {
            tracing::warn!(peer = %conn.peer, "too many admin connections from this address; closing this one");
            return;
        };
        let Ok(_place) = self.connections.clone().try_acquire_owned() else {
            tracing::warn!(peer = %conn.peer, "too many admin connections; closing this one");
            return;
        };
        let (this, peer) = (self.clone(), conn.peer.ip());
        let service = hyper::service::service_fn(move |req| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.route(req, peer).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
        let connection = builder.serve_connection(TokioIo::new(conn.stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
            }
            _ = conn.shutdown.drain.fired() => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
            }
        }
    }
}
