//! Airlock's own answers to an HTTP agent, in one place: JSON bodies that say what
//! happened and what to do next.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::upstream::BoxError;

/// A response body to the agent.
pub type AgentBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> AgentBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Why Airlock answers a request itself.
#[derive(Debug)]
pub enum Reply {
    /// The request's head is malformed or ambiguous (request smuggling shapes).
    BadRequest(String),
    /// No or a bad token.
    Unauthorized { proxy: bool, detail: String },
    /// No such connection, or not for this identity.
    UnknownConnection(String),
    /// A forward-proxy request for a host no connection names.
    UnknownHost(String),
    /// Refused by policy or an approver.
    Denied { reason: String, rule: String, approval: Option<String> },
    /// Held, and nobody decided within `approvals.http_hold`.
    Pending { approval: String, retry_after: u64, expires_at: Option<String> },
    /// A body is over the connection's `max_body`.
    TooLarge(String),
    /// The upstream failed, or its answer could not be made safe to show.
    BadGateway(String),
    /// The session cannot be recorded.
    Unavailable(String),
}

impl Reply {
    /// The response for the agent.
    pub fn response(self) -> Response<AgentBody> {
        let (status, body, retry_after, challenge) = match self {
            Reply::BadRequest(detail) => {
                (StatusCode::BAD_REQUEST, json!({"error": "bad_request", "detail": detail}), None, None)
            }
            Reply::Unauthorized { proxy, detail } => {
                let status = if proxy { StatusCode::PROXY_AUTHENTICATION_REQUIRED } else { StatusCode::UNAUTHORIZED };
                let challenge = if proxy { "Basic realm=\"airlock\"" } else { "Bearer realm=\"airlock\"" };
                (status, json!({"error": "unauthorized", "detail": detail}), None, Some((proxy, challenge)))
            }
            Reply::UnknownConnection(detail) => {
                (StatusCode::NOT_FOUND, json!({"error": "unknown_connection", "detail": detail}), None, None)
            }
            Reply::UnknownHost(host) => (
                StatusCode::FORBIDDEN,
                json!({"error": "unknown_host", "detail": format!("Airlock has no connection for {host}; it is not an open proxy")}),
                None,
                None,
            ),
            Reply::Denied { reason, rule, approval } => {
                let mut body = json!({"error": "denied", "reason": reason, "rule": rule});
                if let Some(id) = approval {
                    body["approval"] = Value::String(id);
                }
                (StatusCode::FORBIDDEN, body, None, None)
            }
            Reply::Pending { approval, retry_after, expires_at } => (
                StatusCode::FORBIDDEN,
                json!({
                    "error": "approval_pending",
                    "approval": approval,
                    "detail": format!(
                        "Airlock is holding this request for approval (id {approval}). An approver runs `airlock approve {approval}`; then send the same request again with the header `Airlock-Approval: {approval}`."
                    ),
                    "retry_with": {"Airlock-Approval": approval},
                    "expires_at": expires_at,
                }),
                Some(retry_after),
                None,
            ),
            Reply::TooLarge(detail) => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "too_large", "detail": detail}), None, None)
            }
            Reply::BadGateway(detail) => {
                (StatusCode::BAD_GATEWAY, json!({"error": "bad_gateway", "detail": detail}), None, None)
            }
            Reply::Unavailable(detail) => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "unavailable", "detail": detail}), None, None)
            }
        };
        let mut response = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("airlock", HeaderValue::from_static("1"));
        if let Some(seconds) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some((proxy, challenge)) = challenge {
            let name = if proxy { hyper::header::PROXY_AUTHENTICATE } else { hyper::header::WWW_AUTHENTICATE };
            headers.insert(name, HeaderValue::from_static(challenge));
        }
        if status == StatusCode::BAD_REQUEST {
            headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
