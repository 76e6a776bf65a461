//! The Postgres endpoint: `psql` and every libpq/driver client talk to Airlock as if it
//! were the database.
//!
//! A session moves through `Phase`s: negotiate TLS, read the StartupMessage, take the
//! agent's token as a cleartext password (inside TLS), authenticate it, pick the
//! connection named by `dbname`, check `allow_groups`, open the upstream with the stored
//! credentials, greet the agent with the upstream's parameters and Airlock's own cancel
//! key, then `relay` until either side leaves.

mod cancel;
mod error;
mod gate;
mod hidden;
pub mod judge;
mod mask;

pub use mask::static_masks;
mod relay;
mod statements;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use airlock_postgres::message::{self, Severity, tag};
use airlock_postgres::sql;
use airlock_postgres::startup::{self, StartupMessage, StartupPacket};
use airlock_postgres::{Chunk, Disposition, Frame, ProtocolError, Scanner};
use anyhow::Context;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

pub use cancel::{CancelRegistry, CancelTarget};
pub use error::SessionError;
pub use upstream::{UpstreamError, UpstreamTarget};

use crate::approvals::Broker;
use crate::config::{Config, Protocol};
use crate::identity::{Authenticator, Identity};
use crate::listener::{Incoming, Plugin, Refusal};
use crate::metrics::Metrics;
use crate::net::{BoxStream, Stream};
use crate::policy::Policy;
use crate::recording::format::{Direction, Kind, SessionEnd};
use crate::recording::{Recorder, SessionRecorder};
use crate::tls::UpstreamTlsPlan;

/// Largest PasswordMessage accepted (tokens are a few KiB).
const MAX_PASSWORD_MESSAGE: usize = 64 * 1024;

/// The Postgres protocol plugin.
pub struct PostgresPlugin {
    targets: HashMap<String, Arc<UpstreamTarget>>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    tls: TlsAcceptor,
    cancels: Arc<CancelRegistry>,
    recorder: Option<Recorder>,
    /// The policy; `None` when `policy.enforce = false`.
    policy: Option<Arc<Policy>>,
    /// Result masking by connection name (absent: nothing masked there).
    masking: HashMap<String, mask::ConnectionMasking>,
    broker: Arc<Broker>,
    allow_plaintext_loopback: bool,
    handshake_timeout: std::time::Duration,
    max_message: usize,
}

impl std::fmt::Debug for PostgresPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPlugin").field("connections", &self.targets.keys()).finish()
    }
}

/// Where a connection is in its handshake.
enum Phase {
    /// Waiting for SSLRequest, GSSENCRequest, CancelRequest or StartupMessage.
    AwaitingStartup,
    /// Startup read; the token is requested next.
    Authenticating(StartupMessage),
}

/// A connection in its handshake: the stream and what was read past the last message.
struct Agent {
    stream: Stream,
    buf: BytesMut,
    tls: bool,
    peer: SocketAddr,
}

impl Agent {
    async fn fill(&mut self) -> Result<(), SessionError> {
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(SessionError::AgentIo(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => Ok(()),
            Err(e) => Err(SessionError::AgentIo(e)),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.stream.write_all(bytes).await.map_err(SessionError::AgentIo)?;
        self.stream.flush().await.map_err(SessionError::AgentIo)
    }

    async fn read_startup(&mut self) -> Result<StartupPacket, SessionError> {
        loop {
            if let Some(packet) = startup::decode(&mut self.buf)? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    async fn read_frame(&mut self, max: usize) -> Result<Frame, SessionError> {
        let mut scanner = Scanner::new(max);
        loop {
            if let Some(Chunk::Frame(f)) = scanner.next(&mut self.buf, &mut |_| Disposition::Whole)? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }
}

impl PostgresPlugin {
    /// Builds the plugin from the config: loads every Postgres connection's password
    /// and TLS settings now, so mistakes surface at start-up.
    pub fn new(
        config: &Config,
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
        tls: Arc<rustls::ServerConfig>,
        recorder: Option<Recorder>,
        policy: Option<Arc<Policy>>,
        broker: Arc<Broker>,
    ) -> anyhow::Result<PostgresPlugin> {
        let targets = targets(config)?;
        for target in targets.values() {
            let target = target.clone();
            tokio::spawn(async move { warn_about_role(&target).await });
        }
        let key = crate::identity::load_or_create_key(&config.data_dir().join("masking-hash.key"))
            .context("the masking hash key (data_dir/masking-hash.key)")?;
        let mut masking = HashMap::new();
        for (name, target) in &targets {
            if let Some(m) = mask::ConnectionMasking::new(config, target.clone(), key.expose())? {
                masking.insert(name.clone(), m);
            }
        }
        Ok(PostgresPlugin {
            targets,
            auth,
            metrics,
            tls: TlsAcceptor::from(tls),
            cancels: Arc::new(CancelRegistry::default()),
            recorder,
            policy,
            masking,
            broker,
            allow_plaintext_loopback: config.postgres.allow_plaintext_loopback,
            handshake_timeout: config.limits.handshake_timeout,
            max_message: config.limits.max_message_size,
        })
    }

    /// Runs the handshake; `Ok(None)` means the connection was a cancel request or
    /// ended politely before a session existed.
    async fn handshake(
        &self,
        agent: &mut Agent,
    ) -> Result<Option<(Identity, Arc<UpstreamTarget>, StartupMessage)>, SessionError> {
        let mut phase = Phase::AwaitingStartup;
        loop {
            phase = match phase {
                Phase::AwaitingStartup => match agent.read_startup().await? {
                    StartupPacket::SslRequest if !agent.tls => {
                        // Bytes pipelined behind SSLRequest were sent in the clear and
                        // could be injected by a man in the middle (CVE-2021-23214).
                        if !agent.buf.is_empty() {
                            return Err(ProtocolError::Unexpected { tag: '?', state: "negotiating TLS" }.into());
                        }
                        agent.send(b"S").await?;
                        let plain = std::mem::replace(&mut agent.stream, Stream::Other(Box::new(tokio::io::empty())));
                        let tls = self.tls.accept(plain).await.map_err(SessionError::AgentTls)?;
                        agent.stream = Stream::Other(Box::new(tls));
                        agent.tls = true;
                        Phase::AwaitingStartup
                    }
                    StartupPacket::SslRequest => {
                        return Err(ProtocolError::Unexpected { tag: '?', state: "already using TLS" }.into());
                    }
                    StartupPacket::GssEncRequest => {
                        agent.send(b"N").await?;
                        Phase::AwaitingStartup
                    }
                    StartupPacket::CancelRequest { pid, secret } => {
                        self.forward_cancel(pid, &secret).await;
                        // Closed politely: over TLS a close_notify first, which libpq 17's
                        // PQcancelBlocking waits for before it reports success.
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut agent.stream).await;
                        return Ok(None);
                    }
                    StartupPacket::Startup(startup) => Phase::Authenticating(startup),
                },
                Phase::Authenticating(startup) => {
                    let unsupported: Vec<String> = startup.protocol_options().map(str::to_owned).collect();
                    if startup.minor > 0 || !unsupported.is_empty() {
                        agent.send(&message::negotiate_protocol_version(unsupported)).await?;
                    }
                    if !(agent.tls || self.allow_plaintext_loopback && agent.peer.ip().is_loopback()) {
                        return Err(SessionError::TlsRequired);
                    }
                    agent.send(&message::auth_cleartext_password()).await?;
                    let token = match agent.read_frame(MAX_PASSWORD_MESSAGE).await {
                        // psql asks the user for a password only after the server
                        // requested one, by closing and reconnecting: not an error.
                        Err(SessionError::AgentIo(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                        Ok(frame) if frame.tag() == tag::PASSWORD => frame,
                        Ok(frame) => {
                            return Err(ProtocolError::Unexpected {
                                tag: frame.tag() as char,
                                state: "awaiting the password",
                            }
                            .into());
                        }
                    };
                    let identity = self.authenticate(message::parse_password(token.body())?).await?;
                    let name = startup.database().unwrap_or_default().to_owned();
                    let target = self.targets.get(&name).cloned().ok_or_else(|| SessionError::UnknownConnection {
                        available: self.available_to(&identity),
                        name: name.clone(),
                    })?;
                    if !identity.in_any(&target.conn.allow_groups) {
                        return Err(SessionError::NotAllowed { subject: identity.subject.clone(), connection: name });
                    }
                    return Ok(Some((identity, target, startup)));
                }
            };
        }
    }

    async fn authenticate(&self, token: &str) -> Result<Identity, SessionError> {
        self.auth.authenticate(token).await.map_err(|e| {
            self.metrics.auth_failed("postgres", e.label());
            SessionError::Auth(e)
        })
    }

    fn available_to(&self, identity: &Identity) -> Vec<String> {
        let mut names: Vec<String> = self
            .targets
            .values()
            .filter(|t| identity.in_any(&t.conn.allow_groups))
            .map(|t| t.conn.name.clone())
            .collect();
        names.sort();
        names
    }

    async fn forward_cancel(&self, pid: i32, secret: &[u8]) {
        match self.cancels.lookup(pid, secret) {
            Some(target) => {
                target.hold.notify_waiters();
                if let Err(e) = cancel::send_cancel(&target).await {
                    tracing::warn!(error = %e, "forwarding a cancel request upstream failed");
                } else {
                    tracing::info!("cancel request forwarded upstream");
                }
            }
            None => tracing::debug!("cancel request for an unknown session ignored"),
        }
    }

    async fn session(&self, conn: Incoming) -> Result<(), SessionError> {
        let mut agent =
            Agent { stream: Stream::Tcp(conn.stream), buf: BytesMut::with_capacity(8192), tls: false, peer: conn.peer };
        let handshake = tokio::select! {
            biased;
            _ = conn.shutdown.drain.fired() => Err(SessionError::ShuttingDown),
            r = tokio::time::timeout(self.handshake_timeout, self.open(&mut agent)) => r.unwrap_or(Err(SessionError::HandshakeTimeout)),
        };
        let ready = match handshake {
            Ok(Some(ready)) => {
                // Authenticated: the place in the handshake budget goes to the next.
                drop(conn.handshake);
                ready
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                if let Some(reply) = e.agent_reply() {
                    let _ = agent.send(&reply).await;
                }
                return Err(e);
            }
        };
        let Ready { identity, target, upstream, cancel_key, recording, runs_code, showing_masked } = ready;
        let span = tracing::info_span!("session", subject = %identity.subject, connection = %target.conn.name);
        async {
            tracing::info!(groups = ?identity.groups, tls = agent.tls, "session started");
            let started = std::time::Instant::now();
            let metrics = self.metrics.session("postgres", &target.conn.name);
            let hold = cancel_key.as_ref().map(|k| k.hold.clone()).unwrap_or_default();
            let masking = self.masking.get(&target.conn.name);
            let ctx = relay::RelayContext {
                recorder: recording.as_ref(),
                metrics: &metrics,
                shutdown: &conn.shutdown,
                max_message: self.max_message,
                enforcement: (self.policy.is_some() || masking.is_some()).then(|| relay::Enforcement {
                        policy: self.policy.as_deref(),
                        broker: &self.broker,
                        identity: &identity,
                        connection: &target.conn.name,
                        cancel: &hold,
                        runs_code: runs_code.clone(),
                        showing_masked: showing_masked.clone(),
                        max_rows: target.conn.max_rows,
                    }),
                masking,
            };
            let (result, stats, mut agent_wr) =
                relay::relay(agent.stream, agent.buf, upstream.stream, upstream.buf, ctx).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            // An agent that vanished (or a session failed) mid-statement leaves nothing
            // running upstream. A Terminate is the agent's own word and is honoured as
            // PostgreSQL honours it: the statement before it completes.
            if stats.busy
                && !matches!(result, Ok(relay::End::Terminated | relay::End::UpstreamClosed))
                && let Some(target) = cancel_key.as_ref().and_then(|k| self.cancels.lookup(k.pid, &k.secret.to_be_bytes()))
            {
                tracing::info!("cancelling the statement the session left running");
                tokio::spawn(async move {
                    if let Err(e) = cancel::send_cancel(&target).await {
                        tracing::warn!(error = %e, "could not cancel the abandoned statement");
                    }
                });
            }
            if let Some(r) = recording {
                let reason = match &result {
                    Ok(end) => format!("{end:?}"),
                    Err(e) => e.to_string(),
                };
                let end = SessionEnd {
                    reason,
                    statements: stats.statements,
                    duration_ms,
                    bytes_to_upstream: stats.to_upstream,
                    bytes_to_agent: stats.to_agent,
                    // The recorder adds the verdict counts.
                    verdicts: Default::default(),
                };
                if r.finish(&end).await.is_err() {
                    tracing::error!("the end of this session could not be recorded");
                    // A clean close tells the agent its whole session is on record: this
                    // one is not, and the agent hears so (unless the relay said it).
                    if !matches!(result, Err(SessionError::RecorderFailed))
                        && let Some(reply) = SessionError::RecorderFailed.agent_reply()
                    {
                        let _ = agent_wr.write_all(&reply).await;
                    }
                }
            }
            let _ = agent_wr.shutdown().await;
            match &result {
                Ok(end) => tracing::info!(?end, statements = stats.statements, duration_ms, "session ended"),
                Err(e) => tracing::warn!(error = %e, statements = stats.statements, duration_ms, "session ended with an error"),
            }
            // Reported here; the caller counts only connections refused before a session.
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Handshake, upstream and greeting.
    async fn open(&self, agent: &mut Agent) -> Result<Option<Ready>, SessionError> {
        let Some((identity, target, startup)) = self.handshake(agent).await? else {
            return Ok(None);
        };
        if let Some((_, encoding)) = startup
            .params
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case("client_encoding") && sql::settings::unsafe_client_encoding(v))
        {
            return Err(SessionError::UnsafeEncoding(encoding.clone()));
        }
        let mut upstream = target.open(&startup.params, &identity.subject).await.map_err(|e| {
            tracing::warn!(connection = %target.conn.name, subject = %identity.subject, error = %e, "upstream unavailable");
            SessionError::Upstream { connection: target.conn.name.clone(), agent_message: e.agent_message(), detail: e.to_string() }
        })?;
        // Which relations run code of the database's own when read, as of now.
        let runs_code = match self.policy.is_some() {
            true => {
                hidden::read_catalog(&mut upstream, self.max_message).await.map_err(|e| SessionError::Upstream {
                    connection: target.conn.name.clone(),
                    agent_message: None,
                    detail: format!("reading the catalog (views and functions of its own): {e:#}"),
                })?
            }
            false => Default::default(),
        };
        let showing_masked = match self.masking.get(&target.conn.name).filter(|m| m.has_column_rules()) {
            Some(m) => m.views_showing_masked_columns(&mut upstream, self.max_message).await.map_err(|e| {
                SessionError::Upstream {
                    connection: target.conn.name.clone(),
                    agent_message: None,
                    detail: format!("reading which views show masked columns: {e:#}"),
                }
            })?,
            None => Default::default(),
        };
        let recording = match &self.recorder {
            None => None,
            Some(r) => {
                let start = crate::plugins::session_start(&identity, &target.conn, "postgres", agent.peer, agent.tls);
                Some(r.session(&start).await.map_err(|_| SessionError::RecorderFailed)?)
            }
        };
        let cancel_key = upstream.key.clone().map(|(pid, secret)| {
            self.cancels.register(CancelTarget { addr: upstream.addr, pid, secret, hold: Arc::default() })
        });
        // Greeting in one write: AuthenticationOk, parameters, our key, ReadyForQuery.
        let mut greeting = BytesMut::with_capacity(1024);
        greeting.extend_from_slice(&message::auth_ok());
        for frame in &upstream.greeting {
            greeting.extend_from_slice(frame.raw());
        }
        if let Some(key) = &cancel_key {
            greeting.extend_from_slice(&message::backend_key_data(key.pid, key.secret));
        }
        greeting.extend_from_slice(upstream.ready.raw());
        let greeting = greeting.freeze();
        if let Some(r) = &recording {
            r.record(Direction::ToAgent, Kind::PgBackend, greeting.clone())
                .await
                .map_err(|_| SessionError::RecorderFailed)?;
        }
        agent.send(&greeting).await?;
        Ok(Some(Ready {
            identity,
            target,
            upstream,
            cancel_key,
            recording,
            runs_code: Arc::new(runs_code),
            showing_masked: Arc::new(showing_masked),
        }))
    }
}

/// Every Postgres connection's upstream, with its secrets loaded.
fn targets(config: &Config) -> anyhow::Result<HashMap<String, Arc<UpstreamTarget>>> {
    let mut targets = HashMap::new();
    for (i, conn) in config.connections.iter().enumerate().filter(|(_, c)| c.protocol == Protocol::Postgres) {
        let password = conn
            .password
            .as_ref()
            .map(|p| p.load(&config.base_dir))
            .transpose()
            .with_context(|| format!("connections[{i}].password (connection {:?})", conn.name))?;
        let target = UpstreamTarget {
            conn: conn.clone(),
            password,
            tls: UpstreamTlsPlan::new(config, conn)?,
            connect_timeout: config.limits.connect_timeout,
            max_message: config.limits.max_message_size,
        };
        targets.insert(conn.name.clone(), Arc::new(target));
    }
    Ok(targets)
}

/// Logs, loudly, an upstream role that can do more than an agent should.
async fn warn_about_role(target: &UpstreamTarget) {
    match target.role_risks().await {
        Ok(risks) if !risks.is_empty() => tracing::warn!(
            connection = %target.conn.name,
            user = target.conn.user.as_deref().unwrap_or_default(),
            attributes = %risks.join(", "),
            "the upstream role is too powerful for an agent: an approved or misread statement can do anything \
             these allow; give Airlock a least-privileged role (README: Against a hostile agent)"
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!(connection = %target.conn.name, error = %e, "upstream role not checked"),
    }
}

/// For `airlock check-config --connect`: each Postgres connection's name and what its
/// upstream role may do beyond an agent's needs (empty: nothing), or why it could not
/// be checked.
pub async fn upstream_role_risks(config: &Config) -> anyhow::Result<Vec<(String, anyhow::Result<Vec<&'static str>>)>> {
    let mut out = Vec::new();
    let mut targets: Vec<_> = targets(config)?.into_iter().collect();
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, target) in targets {
        out.push((name, target.role_risks().await));
    }
    Ok(out)
}

struct Ready {
    identity: Identity,
    target: Arc<UpstreamTarget>,
    upstream: upstream::Upstream,
    cancel_key: Option<cancel::CancelKey>,
    recording: Option<SessionRecorder>,
    runs_code: Arc<hidden::SessionCatalog>,
    showing_masked: Arc<std::collections::HashSet<String>>,
}

impl Plugin for PostgresPlugin {
    fn endpoint(&self) -> &'static str {
        "postgres"
    }

    async fn serve(self: Arc<Self>, conn: Incoming) {
        if let Err(e) = self.session(conn).await {
            self.metrics.connection_refused("postgres", e.label());
            match e {
                SessionError::AgentIo(_) => tracing::debug!(error = %e, "connection ended"),
                _ => tracing::info!(error = %e, "connection refused"),
            }
        }
    }

    async fn refuse(self: Arc<Self>, stream: TcpStream, why: Refusal) {
        // Refuse the way PostgreSQL does: after TLS negotiation, so that a client
        // insisting on sslmode=require reads the reason instead of a TLS failure.
        let mut stream: BoxStream = Box::new(stream);
        let mut buf = BytesMut::with_capacity(64);
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(1), stream.read_buf(&mut buf)).await {
            match startup::decode(&mut buf) {
                Ok(Some(StartupPacket::SslRequest)) if stream.write_all(b"S").await.is_ok() => {
                    match self.tls.accept(stream).await {
                        Ok(tls) => stream = Box::new(tls),
                        Err(_) => return,
                    }
                }
                Ok(Some(StartupPacket::GssEncRequest)) => {
                    let _ = stream.write_all(b"N").await;
                }
                _ => {}
            }
        }
        let (code, msg) = match why {
            Refusal::TooManyConnections => {
                ("53300", "sorry, too many clients already (Airlock limits.max_connections)")
            }
            Refusal::TooManyHandshakes => {
                ("53300", "sorry, too many connections are still logging in (Airlock limits.max_handshakes)")
            }
            Refusal::ShuttingDown => ("57P01", "Airlock is shutting down"),
        };
        let _ = stream.write_all(&message::error_response(Severity::Fatal, code, msg, None)).await;
        let _ = stream.shutdown().await;
    }
}
