//! One exchange, once the connection and the identity are known: policy and the
//! hold, the upstream call with the agent's credentials swapped for the connection's,
//! the masked reply, and the record of both. An upgrade to WebSocket is handed to
//! [`websocket`](super::websocket) once the upstream has agreed to it.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_http::record::{Event, RequestHead, ResponseHead};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming as IncomingBody;
use hyper::header::{HeaderMap, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response, StatusCode, Version};

use super::error::{self, AgentBody, Reply};
use super::gate::{self, Asked};
use super::mask::{self, Masking, Recorded};
use super::session::Session;
use super::{APPROVAL_HEADER, AgentConn, Target, upstream, websocket};
use crate::approvals::{self, Holding, Settled};
use crate::identity::Identity;

impl AgentConn {
    /// One request to `target`, `path` being its path under the connection.
    pub(super) async fn exchange(
        &self,
        target: Arc<Target>,
        identity: Identity,
        mut req: Request<IncomingBody>,
        path: String,
    ) -> Result<Response<AgentBody>, Reply> {
        let session = self.session(&target, &identity).await?;
        session.caught_up().await;
        if session.recorder_failed() {
            return Err(Reply::Unavailable("Airlock cannot record this session".into()));
        }
        let id = session.next_exchange();
        let conn = &target.conn;
        let upgrade = req.headers().contains_key(UPGRADE);
        let agent_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let query = parts.uri.query().map(str::to_owned);
        let shown_url = target.upstream.shown_url(&path, query.as_deref());
        session.record(true, &Event::Request(id, request_head(&parts, &shown_url)));
        let reply = |reply: Reply| {
            let response = reply.response();
            record_reply(&session, id, &response);
            response
        };
        if upgrade && !conn.websocket {
            return Ok(reply(Reply::Denied {
                reason: format!("WebSocket upgrades are off on connection {:?} (websocket = false)", conn.name),
                rule: "websocket".into(),
                approval: None,
            }));
        }
        let has_body = !hyper::body::Body::is_end_stream(&body);
        if upgrade && let Err(why) = websocket::check_request(&parts, has_body) {
            return Ok(reply(Reply::Denied { reason: why, rule: "websocket".into(), approval: None }));
        }
        // GraphQL needs the body to say what it does.
        let graphql_path = gate::is_graphql(&conn.graphql, &path);
        let mut whole: Option<Bytes> = None;
        // No body stays no body upstream (a GET or HEAD must not turn chunked).
        let mut body = has_body.then(|| body_of(body));
        // A chunked body is read whole before anything goes upstream, so that chunk
        // framing Airlock refuses never reaches it in part; GraphQL needs the body to
        // say what it does.
        let chunked = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING);
        // A form may name another method in `_method`.
        let form = gate::is_form(&parts.headers);
        if (chunked || form || (graphql_path && parts.method == Method::POST))
            && let Some(b) = body.take()
        {
            whole = Some(match mask::read_capped(b, conn.max_body, true).await {
                Ok(b) => b,
                Err(r) => return Ok(reply(r)),
            });
            if let Err(why) = self.verdicts.framing() {
                return Ok(reply(Reply::BadRequest(why)));
            }
        }
        let method = parts.method.as_str().to_owned();
        let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let graphql =
            graphql_path.then(|| gate::graphql_of(&parts.method, query.as_deref(), content_type, whole.as_deref()));
        let overrides = gate::method_overrides(&parts.headers, query.as_deref(), whole.as_deref().filter(|_| form));
        let mut asked = Asked {
            method: &method,
            path: &path,
            query: query.as_deref(),
            graphql,
            body_sha256: whole.as_deref().map(sha256),
            overrides,
            content_type,
            keys_masked: target.masking.keys_masked(),
        };
        let policy = self.plugin.policy.as_deref();
        let mut decision = gate::decide(policy, &conn.name, &identity.groups, &asked);
        // What an approval covers includes the body: read it before asking.
        if !decision.allowed()
            && let Some(b) = body.take()
        {
            let bytes = match mask::read_capped(b, conn.max_body, true).await {
                Ok(bytes) => bytes,
                Err(r) => return Ok(reply(r)),
            };
            asked.body_sha256 = Some(sha256(&bytes));
            whole = Some(bytes);
            decision = gate::decide(policy, &conn.name, &identity.groups, &asked);
        }
        // What approvers and the record see; an allowed request needs none.
        let text = match decision.allowed() {
            true => String::new(),
            false => approver_text(&asked, whole.as_deref(), &target.masking),
        };
        let holding = Holding {
            broker: &self.plugin.broker,
            identity: &identity,
            connection: &conn.name,
            protocol: "http",
            recorder: session.recorder.as_deref(),
            metrics: &session.metrics,
            patience: Some(self.plugin.patience),
        };
        let cancel = tokio::sync::Notify::new();
        let retried = parts.headers.get(APPROVAL_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let settled = match &retried {
            Some(approval) => {
                approvals::redeem(&holding, &decision, &text, approval, &cancel, std::future::pending()).await
            }
            None => approvals::hold(&holding, &decision, &text, |_| {}, &cancel, std::future::pending()).await,
        };
        let settled = match settled {
            Ok(s) => s,
            Err(_) => return Ok(reply(Reply::Unavailable("Airlock cannot record this session".into()))),
        };
        match settled {
            Settled::Allowed | Settled::Approved => {}
            Settled::Denied(r) | Settled::Expired(r) => {
                return Ok(reply(Reply::Denied { reason: r.message, rule: r.rule, approval: retried }));
            }
            Settled::Parked(approval) => {
                let expires_at = self.plugin.broker.expires_at(&approval).await;
                let retry_after = 10;
                return Ok(reply(Reply::Pending { approval, retry_after, expires_at }));
            }
            Settled::Canceled | Settled::Withdrawn => {
                return Ok(reply(Reply::BadGateway("the request was withdrawn".into())));
            }
        }
        // Upstream.
        gate::strip_agent_headers(&mut parts.headers, upgrade);
        if upgrade {
            websocket::prepare_request(&mut parts.headers);
        }
        if target.masking.active() {
            mask::narrow_accept_encoding(&mut parts.headers);
            // A byte range of a JSON document escapes its paths and keys, and ranges of
            // several parts come back as one multipart body: whole answers only.
            parts.headers.remove(hyper::header::RANGE);
            parts.headers.remove(hyper::header::IF_RANGE);
        }
        for (name, value) in &target.upstream.headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        if conn.forwarded {
            add_forwarded(&mut parts.headers, self.peer, self.tls, &parts.uri);
        }
        parts.uri = match target.upstream.uri(&path, query.as_deref()) {
            Ok(uri) => uri,
            Err(e) => return Ok(reply(Reply::BadRequest(format!("the path does not make a URL: {e}")))),
        };
        parts.version = Version::HTTP_11;
        // An upstream that does not read a body it did not expect would take the body
        // for the next request on the connection: no connection is reused after one.
        if whole.as_ref().is_some_and(|b| !b.is_empty()) || body.is_some() {
            parts.headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        let recorded =
            |from_agent| Recorded { session: session.clone(), exchange: id, from_agent, cap: conn.record_body };
        let up_body = match (whole, body) {
            (Some(bytes), _) => recorded(true).wrap(error::full(bytes)),
            (None, Some(b)) => recorded(true).wrap(limited(b, conn.max_body)),
            (None, None) => error::full(Bytes::new()),
        };
        let client = if upgrade { &target.upstream.client_h1 } else { &target.upstream.client };
        let mut response = match client.request(Request::from_parts(parts, up_body)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, connection = %conn.name, "upstream request failed");
                return Ok(reply(Reply::BadGateway(format!("the upstream of {:?} failed: {e}", conn.name))));
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(agent_upgrade) = agent_upgrade
        {
            if let Err(why) = websocket::check_response(response.headers()) {
                return Ok(reply(Reply::BadGateway(why)));
            }
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let (mut rparts, _) = response.into_parts();
            mask::mask_headers(&mut rparts.headers, &target.masking);
            session.record(false, &Event::Response(id, response_head(&rparts)));
            let shutdown = self.shutdown.clone();
            self.keep(websocket::relay(agent_upgrade, upstream_upgrade, session.clone(), id, target.clone(), shutdown));
            return Ok(Response::from_parts(rparts, error::full(Bytes::new())));
        }
        let (mut rparts, rbody) = response.into_parts();
        if target.masking.active()
            && let Err(why) = mask::check_response_head(&rparts.headers)
        {
            return Ok(reply(Reply::BadGateway(why)));
        }
        strip_response_hop_headers(&mut rparts.headers);
        mask::mask_headers(&mut rparts.headers, &target.masking);
        // A HEAD's answer, a 204 and a 304 have no body, whatever their headers say.
        let bodiless = method == "HEAD" || matches!(rparts.status.as_u16(), 204 | 304);
        let masking = if bodiless { &mask::Masking::NONE } else { &target.masking };
        let body = match mask::response_body(&mut rparts.headers, rbody, masking, conn.max_body, recorded(false)).await
        {
            Ok(body) => body,
            Err(r) => return Ok(reply(r)),
        };
        session.record(false, &Event::Response(id, response_head(&rparts)));
        Ok(Response::from_parts(rparts, body))
    }
}

fn body_of(body: IncomingBody) -> AgentBody {
    body.map_err(upstream::BoxError::from).boxed()
}

/// A request body passed on as it streams, refused past `max` bytes.
fn limited(body: AgentBody, max: usize) -> AgentBody {
    http_body_util::Limited::new(body, max).map_err(upstream::BoxError::from).boxed()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// What approvers see: the request line, and the start of its body, masked.
fn approver_text(asked: &Asked<'_>, body: Option<&[u8]>, masking: &Masking) -> String {
    const PREVIEW: usize = 1024;
    let mut text = asked.text();
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        let shown = &body[..body.len().min(PREVIEW)];
        let shown = match &masking.masker {
            Some(m) => m.mask(shown).into_owned(),
            None => shown.to_vec(),
        };
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(&shown));
        if body.len() > PREVIEW {
            text.push_str(&format!("\n[... {} bytes in all]", body.len()));
        }
    }
    text
}

/// Headers recorded as the agent sent them, credentials left out.
fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match name.as_str() {
                "authorization" | "proxy-authorization" | "cookie" => "[REDACTED]".to_owned(),
                _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

fn request_head(parts: &hyper::http::request::Parts, url: &str) -> RequestHead {
    RequestHead {
        method: parts.method.as_str().to_owned(),
        url: url.to_owned(),
        version: format!("{:?}", parts.version),
        headers: recorded_headers(&parts.headers),
    }
}

fn response_head(parts: &hyper::http::response::Parts) -> ResponseHead {
    ResponseHead {
        status: parts.status.as_u16(),
        version: format!("{:?}", parts.version),
        headers: recorded_headers(&parts.headers),
    }
}

/// Records Airlock's own answer to an exchange.
fn record_reply(session: &Session, id: u64, response: &Response<AgentBody>) {
    let head = ResponseHead {
        status: response.status().as_u16(),
        version: "HTTP/1.1".into(),
        headers: recorded_headers(response.headers()),
    };
    session.record(false, &Event::Response(id, head));
}

fn strip_response_hop_headers(headers: &mut HeaderMap) {
    for name in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"] {
        headers.remove(name);
    }
}

fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, tls: bool, uri: &hyper::Uri) {
    let proto = if tls { "https" } else { "http" };
    let host = headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let host = host.or_else(|| uri.authority().map(|a| a.to_string()));
    let forwarded = format!("for=\"{peer}\";proto={proto}");
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert(hyper::header::FORWARDED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
        headers.insert("x-forwarded-host", v);
    }
}
