//! The HTTP endpoint: agents call APIs through Airlock, which adds the real
//! credential, decides per request, masks responses and records every exchange.
//!
//! One listener serves both modes, over plain TCP or TLS (told apart by the first
//! byte; ALPN offers HTTP/2 over TLS):
//! - **reverse proxy**: `/<connection>/<path>` goes to the connection's `url` +
//!   `/<path>`; the agent's token comes as `Authorization: Bearer`;
//! - **forward proxy** (`HTTP_PROXY`/`HTTPS_PROXY`): an absolute-form request or a
//!   `CONNECT` names the destination host, whose connection is the one whose `url`
//!   has that host (no such connection: 403, never an open proxy); the token comes
//!   in `Proxy-Authorization` (Basic, as the password, or Bearer). Inside a CONNECT
//!   tunnel Airlock answers TLS with a certificate minted by its CA ([`mitm`]).
//!
//! Each request: strict head checks ([`gate::check_head`]), identity, policy
//! ([`gate`]), [`approvals::hold`] with the agent's patience `approvals.http_hold`
//! (then 403 with the approval id to retry with), the upstream call with the agent's
//! credentials removed and the connection's added ([`upstream`]), and the masked
//! reply ([`mask`]). A recording session is one identity on one connection over one
//! agent connection ([`session`]).
//!
//! - [`error`]: Airlock's own answers, as JSON.
//! - [`audit`]: the framing audit on the raw bytes (request smuggling shapes).
//! - `relay`: one exchange, from the hold to the masked reply, and upgrades.

pub mod audit;
pub mod error;
pub mod gate;
pub mod mask;
pub mod mitm;
mod relay;
pub mod session;
pub mod upstream;
mod websocket;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hyper::body::Incoming as IncomingBody;
use hyper::header::{HeaderMap, HeaderValue, PROXY_AUTHORIZATION, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use self::error::{AgentBody, Reply};
use self::mask::Masking;
use self::session::Session;
use self::upstream::Upstream;
use crate::approvals::Broker;
use crate::config::{Config, Connection, Protocol};
use crate::identity::{Authenticator, Identity};
use crate::listener::{HandshakeSlot, Incoming, Plugin, Refusal, Shutdown};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::recording::Recorder;

/// The header a retried request names its approval in.
const APPROVAL_HEADER: &str = "airlock-approval";
/// Tokens remembered per agent connection, so keep-alive requests skip verification.
const MAX_TOKENS: usize = 16;
/// How long a verified token is trusted without verifying it again (so an expired or
/// revoked token stops working on a connection kept open).
const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(15);
/// The largest request head hyper reads.
const MAX_HEAD: usize = 64 << 10;

/// One HTTP connection's settings, prepared.
pub struct Target {
    pub conn: Connection,
    pub upstream: Arc<Upstream>,
    pub masking: Masking,
}

/// The HTTP protocol plugin.
pub struct HttpPlugin {
    targets: HashMap<String, Arc<Target>>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    recorder: Option<Recorder>,
    policy: Option<Arc<Policy>>,
    broker: Arc<Broker>,
    tls: TlsAcceptor,
    ca: Arc<mitm::Authority>,
    patience: Duration,
    handshake_timeout: Duration,
}

impl HttpPlugin {
    /// Prepares every HTTP connection (secrets loaded now, so a missing one fails start-up).
    pub fn new(
        config: &Config,
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
        tls: Arc<rustls::ServerConfig>,
        recorder: Option<Recorder>,
        policy: Option<Arc<Policy>>,
        broker: Arc<Broker>,
    ) -> anyhow::Result<HttpPlugin> {
        let hash_key = crate::identity::load_or_create_key(&config.data_dir().join("masking-hash.key"))
            .context("the masking hash key (data_dir/masking-hash.key)")?;
        let mut targets = HashMap::new();
        for conn in config.connections.iter().filter(|c| c.protocol == Protocol::Http) {
            let upstream = Upstream::new(config, conn)?;
            let mut masker = crate::masking::for_connection(config, &conn.name, hash_key.expose())?;
            // The connection's own credentials, wherever a response shows them.
            for secret in &upstream.secrets {
                let Ok(text) = std::str::from_utf8(secret.expose()) else { continue };
                let mut forms = vec![text.to_owned(), upstream::percent_encode(text.as_bytes())];
                forms.dedup();
                for form in forms.iter().filter(|f| f.len() >= 4) {
                    let pattern = format!("(?i){}", regex::escape(form));
                    let detector = crate::masking::Detector::custom("credential", &pattern, form.len())
                        .map_err(|e| anyhow::anyhow!("connection {:?}: {e}", conn.name))?;
                    masker.add(detector);
                }
            }
            let style = masker.style();
            let rules =
                config.masking.iter().filter(|r| r.connections.is_empty() || r.connections.contains(&conn.name));
            let mut json = airlock_http::json::JsonRules::default();
            for rule in rules {
                for path in &rule.json {
                    json.paths.push(airlock_http::json::JsonPath::parse(path)?);
                }
                for key in &rule.keys {
                    json.keys.push(airlock_http::json::KeyGlob::parse(key)?);
                }
            }
            let masking = Masking { masker: (!masker.is_empty()).then(|| Arc::new(masker)), json, style };
            targets.insert(conn.name.clone(), Arc::new(Target { conn: conn.clone(), upstream, masking }));
        }
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let ca = Arc::new(mitm::Authority::load_or_create(&config.data_dir())?);
        Ok(HttpPlugin {
            targets,
            auth,
            metrics,
            recorder,
            policy,
            broker,
            tls: TlsAcceptor::from(Arc::new(tls)),
            ca,
            patience: config.approvals.http_hold,
            handshake_timeout: config.limits.handshake_timeout,
        })
    }

    /// The connection a forward-proxy request to `host:port` goes to.
    /// Among connections on one host, the one whose base path is the longest prefix
    /// of `path` wins (ties by name); `path` `None` (a CONNECT) asks only whether
    /// any connection has this host and port.
    fn by_host(&self, host: &str, port: u16, path: Option<&str>) -> Option<&Arc<Target>> {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let on_host: Vec<&Arc<Target>> = self.targets.values().filter(|t| t.upstream.host == host).collect();
        let exact: Vec<&Arc<Target>> = on_host.iter().copied().filter(|t| t.upstream.port == port).collect();
        // Another port of the host only when all its connections share one port (an
        // `http://` request for a connection configured as `https://`).
        let one_port = on_host.windows(2).all(|w| w[0].upstream.port == w[1].upstream.port);
        let candidates = if !exact.is_empty() || !one_port { exact } else { on_host };
        let Some(path) = path else { return candidates.into_iter().next() };
        candidates
            .into_iter()
            .filter(|t| {
                let base = t.upstream.base_path.as_str();
                path.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by(|a, b| {
                (a.upstream.base_path.len(), std::cmp::Reverse(&a.conn.name))
                    .cmp(&(b.upstream.base_path.len(), std::cmp::Reverse(&b.conn.name)))
            })
    }
}

impl Plugin for HttpPlugin {
    fn endpoint(&self) -> &'static str {
        "http"
    }

    async fn serve(self: Arc<Self>, conn: Incoming) {
        let Incoming { stream, peer, shutdown, handshake, .. } = conn;
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.handshake_timeout, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        let tls = first[0] == 0x16;
        let agent = Arc::new(AgentConn::new(self.clone(), peer, tls, Some(handshake), None, shutdown.clone()));
        let timeout = self.handshake_timeout;
        if tls {
            match tokio::time::timeout(timeout, self.tls.accept(stream)).await {
                // HTTP/2 frames its own messages; hyper's h2 checks them.
                Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                    serve_http(stream, agent.clone(), &shutdown, timeout).await
                }
                Ok(Ok(stream)) => {
                    let audited = audit::Audited::new(stream, agent.verdicts.clone());
                    serve_http(audited, agent.clone(), &shutdown, timeout).await
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        } else {
            let audited = audit::Audited::new(stream, agent.verdicts.clone());
            serve_http(audited, agent.clone(), &shutdown, timeout).await;
        }
        agent.finish("agent closed").await;
    }

    async fn refuse(self: Arc<Self>, mut stream: tokio::net::TcpStream, why: Refusal) {
        use tokio::io::AsyncWriteExt;
        let detail = match why {
            Refusal::TooManyConnections => "too many connections",
            Refusal::TooManyHandshakes => "too many connections still starting",
            Refusal::ShuttingDown => "Airlock is shutting down",
        };
        let body = serde_json::json!({"error": "unavailable", "detail": detail}).to_string();
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
    }
}

/// Serves HTTP/1.1 (and HTTP/2, where TLS negotiated it) on one agent connection
/// until it ends or Airlock shuts down.
async fn serve_http<S>(stream: S, agent: Arc<AgentConn>, shutdown: &Shutdown, head_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD)
        .max_headers(100)
        .keep_alive(true)
        .half_close(true);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEAD as u32);
    let service = hyper::service::service_fn(move |req| {
        let agent = agent.clone();
        async move { Ok::<_, Infallible>(agent.handle(req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let drain = shutdown.drain.fired();
    let abort = shutdown.abort.fired();
    tokio::pin!(drain, abort);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        }
        _ = &mut drain => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = &mut abort => {}
            }
        }
    }
}

/// Inside a CONNECT tunnel: where every request goes, and who sends it.
struct Tunnel {
    /// The host and port the CONNECT named; each request's path picks among the
    /// connections there.
    host: String,
    port: u16,
    /// The token the CONNECT carried, verified again as requests come.
    token: String,
}

/// One agent connection (or one CONNECT tunnel inside it).
struct AgentConn {
    plugin: Arc<HttpPlugin>,
    peer: SocketAddr,
    tls: bool,
    /// Given back once the agent has proven who it is.
    handshake: Mutex<Option<HandshakeSlot>>,
    tunnel: Option<Tunnel>,
    tokens: Mutex<HashMap<String, (Identity, std::time::Instant)>>,
    sessions: tokio::sync::Mutex<HashMap<(String, String), Arc<Session>>>,
    /// The framing audit's verdicts on this connection's request heads.
    verdicts: audit::Verdicts,
    /// Airlock's shutdown, which tunnels and WebSocket connections follow too.
    shutdown: Shutdown,
    /// What runs on after an upgrade (a CONNECT tunnel, a WebSocket connection):
    /// the connection lasts, and its sessions stay open, until these end.
    upgraded: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl AgentConn {
    fn new(
        plugin: Arc<HttpPlugin>,
        peer: SocketAddr,
        tls: bool,
        handshake: Option<HandshakeSlot>,
        tunnel: Option<Tunnel>,
        shutdown: Shutdown,
    ) -> AgentConn {
        AgentConn {
            plugin,
            peer,
            tls,
            handshake: Mutex::new(handshake),
            tunnel,
            tokens: Mutex::default(),
            sessions: tokio::sync::Mutex::default(),
            verdicts: audit::Verdicts::default(),
            shutdown,
            upgraded: Mutex::default(),
        }
    }

    /// Runs what an upgrade handed over as part of this connection.
    fn keep(&self, task: impl Future<Output = ()> + Send + 'static) {
        let task = tokio::spawn(task.in_current_span());
        self.upgraded.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// Ends the connection's sessions once what it upgraded to has ended (or at
    /// Airlock's abort).
    async fn finish(&self, reason: &str) {
        let upgraded = std::mem::take(&mut *self.upgraded.lock().unwrap_or_else(|p| p.into_inner()));
        for mut task in upgraded {
            tokio::select! {
                _ = &mut task => {}
                _ = self.shutdown.abort.fired() => task.abort(),
            }
        }
        let sessions: Vec<Arc<Session>> = self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.finish(reason).await;
        }
    }

    async fn handle(self: Arc<Self>, req: Request<IncomingBody>) -> Response<AgentBody> {
        let connect = req.method() == Method::CONNECT;
        let upgrade = connect || req.headers().contains_key(UPGRADE);
        let mut response = match self.route(req).await {
            Ok(response) => response,
            Err(reply) => reply.response(),
        };
        // A refused CONNECT or upgrade may be followed by bytes that are not HTTP,
        // which the framing audit no longer follows: the connection ends here.
        let switched =
            response.status() == StatusCode::SWITCHING_PROTOCOLS || (connect && response.status().is_success());
        if upgrade && !switched {
            response.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// Finds the connection, the identity and the path under the connection.
    async fn route(self: &Arc<Self>, req: Request<IncomingBody>) -> Result<Response<AgentBody>, Reply> {
        self.verdicts.next().map_err(Reply::BadRequest)?;
        let (parts, body) = req.into_parts();
        gate::check_head(&parts).map_err(Reply::BadRequest)?;
        let req = Request::from_parts(parts, body);
        if req.method() == Method::CONNECT {
            return self.connect(req).await;
        }
        if let Some(tunnel) = &self.tunnel {
            if req.uri().authority().is_some() {
                return Err(Reply::BadRequest("an absolute-form request inside a CONNECT tunnel".into()));
            }
            let identity = self.verify(tunnel.token.clone(), true).await?;
            let full = req.uri().path().to_owned();
            let target = self
                .plugin
                .by_host(&tunnel.host, tunnel.port, Some(&full))
                .cloned()
                .ok_or_else(|| Reply::UnknownHost(format!("{}:{}{full}", tunnel.host, tunnel.port)))?;
            check_groups(&target, &identity)?;
            let path = under_base(&target, &full)?;
            return self.exchange(target, identity, req, path).await;
        }
        // HTTP/2 always names the authority; forward proxying is HTTP/1's.
        if let Some(authority) = req.uri().authority().filter(|_| req.version() < hyper::Version::HTTP_2) {
            // Forward proxy, plain http://.
            let scheme_port = if req.uri().scheme_str() == Some("https") { 443 } else { 80 };
            let host = authority.host().to_owned();
            let port = authority.port_u16().unwrap_or(scheme_port);
            let identity = self.identify(req.headers(), true).await?;
            let target = self
                .plugin
                .by_host(&host, port, Some(req.uri().path()))
                .cloned()
                .ok_or(Reply::UnknownHost(format!("{host}:{port}")))?;
            check_groups(&target, &identity)?;
            let path = under_base(&target, req.uri().path())?;
            return self.exchange(target, identity, req, path).await;
        }
        // Reverse proxy: /<connection>/<path>.
        let full = req.uri().path();
        let rest = full.strip_prefix('/').unwrap_or(full);
        let (name, path) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let identity = self.identify(req.headers(), false).await?;
        let target = self.plugin.targets.get(name).cloned().ok_or_else(|| self.unknown(name, &identity))?;
        check_groups(&target, &identity).map_err(|_| self.unknown(name, &identity))?;
        self.exchange(target, identity, req, path).await
    }

    fn unknown(&self, name: &str, identity: &Identity) -> Reply {
        let mut mine: Vec<&str> = self
            .plugin
            .targets
            .values()
            .filter(|t| identity.in_any(&t.conn.allow_groups))
            .map(|t| t.conn.name.as_str())
            .collect();
        mine.sort_unstable();
        Reply::UnknownConnection(format!(
            "no HTTP connection {name:?} for you; use /<connection>/<path> with one of: {}",
            mine.join(", ")
        ))
    }

    /// The agent's identity from its token, remembered for the connection's next requests.
    async fn identify(&self, headers: &HeaderMap, proxy: bool) -> Result<Identity, Reply> {
        let name = if proxy { PROXY_AUTHORIZATION } else { hyper::header::AUTHORIZATION };
        let unauthorized = |detail: &str| Reply::Unauthorized { proxy, detail: detail.to_owned() };
        let value = headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            unauthorized(if proxy {
                "send your Airlock token in Proxy-Authorization (Basic, as the password, or Bearer)"
            } else {
                "send your Airlock token as Authorization: Bearer <token>"
            })
        })?;
        let token = token_of(value, proxy).ok_or_else(|| unauthorized("the credential is not Bearer or Basic"))?;
        self.verify(token, proxy).await
    }

    /// The identity a token proves, from the connection's recent verifications.
    async fn verify(&self, token: String, proxy: bool) -> Result<Identity, Reply> {
        let unauthorized = |detail: &str| Reply::Unauthorized { proxy, detail: detail.to_owned() };
        if let Some((identity, at)) = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&token)
            && at.elapsed() < TOKEN_RECHECK
        {
            return Ok(identity.clone());
        }
        let identity = match self.plugin.auth.authenticate(&token).await {
            Ok(identity) => identity,
            Err(e) => {
                self.plugin.metrics.auth_failed("http", e.label());
                tracing::info!(reason = e.label(), "authentication failed");
                return Err(unauthorized(&format!("authentication failed: {e}")));
            }
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= MAX_TOKENS {
            tokens.clear();
        }
        tokens.insert(token, (identity.clone(), std::time::Instant::now()));
        drop(tokens);
        // Proven: this connection no longer counts against the handshake budget.
        self.handshake.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(identity)
    }

    /// The recording session for this identity on this connection, opened on first use.
    async fn session(&self, target: &Target, identity: &Identity) -> Result<Arc<Session>, Reply> {
        let key = (target.conn.name.clone(), identity.subject.clone());
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(&key) {
            return Ok(s.clone());
        }
        let start = crate::plugins::session_start(identity, &target.conn, "http", self.peer, self.tls);
        let metrics = self.plugin.metrics.session("http", &target.conn.name);
        let session = Session::open(self.plugin.recorder.as_ref(), start, identity.clone(), metrics)
            .await
            .map_err(|_| Reply::Unavailable("Airlock cannot record this session".into()))?;
        tracing::info!(subject = %identity.subject, connection = %target.conn.name, groups = ?identity.groups, "session started");
        let session = Arc::new(session);
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// `CONNECT host:port`: authenticate, pick the connection by host, then answer
    /// TLS inside the tunnel with a certificate for that host.
    async fn connect(self: &Arc<Self>, mut req: Request<IncomingBody>) -> Result<Response<AgentBody>, Reply> {
        if self.tunnel.is_some() {
            return Err(Reply::BadRequest("CONNECT inside a CONNECT tunnel".into()));
        }
        let identity = self.identify(req.headers(), true).await?;
        let token = req
            .headers()
            .get(PROXY_AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| token_of(v, true))
            .unwrap_or_default();
        let Some(authority) = req.uri().authority().cloned() else {
            return Err(Reply::BadRequest("CONNECT needs host:port".into()));
        };
        let port = authority.port_u16().unwrap_or(443);
        let target = self
            .plugin
            .by_host(authority.host(), port, None)
            .cloned()
            .ok_or_else(|| Reply::UnknownHost(authority.to_string()))?;
        check_groups(&target, &identity)?;
        let server = self
            .plugin
            .ca
            .server_config(authority.host())
            .map_err(|e| Reply::BadGateway(format!("minting a certificate failed: {e}")))?;
        let upgrade = hyper::upgrade::on(&mut req);
        self.keep(serve_tunnel(
            self.plugin.clone(),
            self.peer,
            upgrade,
            server,
            Tunnel { host: authority.host().to_owned(), port, token },
            self.shutdown.clone(),
        ));
        Ok(Response::new(error::full(Bytes::new())))
    }
}

/// Serves the requests inside a CONNECT tunnel, answering its TLS as the host. Boxed:
/// a tunnel's requests are served by the same code that accepted the CONNECT.
fn serve_tunnel(
    plugin: Arc<HttpPlugin>,
    peer: SocketAddr,
    upgrade: hyper::upgrade::OnUpgrade,
    server: Arc<rustls::ServerConfig>,
    tunnel: Tunnel,
    shutdown: Shutdown,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let timeout = plugin.handshake_timeout;
        let acceptor = TlsAcceptor::from(server);
        let tls = match tokio::time::timeout(timeout, acceptor.accept(TokioIo::new(upgraded))).await {
            Ok(Ok(tls)) => tls,
            _ => {
                tracing::info!("TLS inside a CONNECT tunnel failed: does the agent trust `airlock ca export`?");
                return;
            }
        };
        let inner = Arc::new(AgentConn::new(plugin, peer, true, None, Some(tunnel), shutdown.clone()));
        let audited = audit::Audited::new(tls, inner.verdicts.clone());
        serve_http(audited, inner.clone(), &shutdown, timeout).await;
        inner.finish("agent closed").await;
    })
}

/// The path under the connection's base path, or a refusal for one outside it.
fn under_base(target: &Target, path: &str) -> Result<String, Reply> {
    let base = &target.upstream.base_path;
    match path.strip_prefix(base.as_str()) {
        Some("") => Ok("/".into()),
        Some(rest) if rest.starts_with('/') => Ok(rest.to_owned()),
        _ => Err(Reply::UnknownHost(format!(
            "{}{path} (outside {}{base})",
            target.upstream.authority, target.upstream.authority
        ))),
    }
}

fn check_groups(target: &Target, identity: &Identity) -> Result<(), Reply> {
    match identity.in_any(&target.conn.allow_groups) {
        true => Ok(()),
        false => Err(Reply::UnknownConnection(format!("connection {:?} is not for you", target.conn.name))),
    }
}

/// The token in an `Authorization` or `Proxy-Authorization` value.
fn token_of(value: &str, proxy: bool) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if proxy && scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_owned());
    }
    None
}
