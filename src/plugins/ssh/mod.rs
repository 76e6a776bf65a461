//! The SSH endpoint: `ssh`, `scp`, `sftp`, `rsync` and SSH libraries talk to Airlock
//! as if it were the host.
//!
//! A connection is a `russh` server session. The SSH username names the connection
//! (`ssh build-box@airlock`); the password is the agent's token, or a public key
//! registered in `[[auth.ssh_keys]]` stands for an identity. Once the agent is in,
//! Airlock logs in to the real host (`upstream`) with the connection's stored key,
//! checking the host key against the pinned one, and maps each agent channel to one
//! upstream channel (`channel`): exec requests are judged and may be held, output is
//! masked, SFTP packets are decoded and enforced (`sftp`), and everything is recorded.
//! Port forwarding, agent forwarding and X11 are refused: they would bypass all that.

mod channel;
pub mod judge;
mod sftp;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use russh::server::{self as ssh, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Preferred};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use upstream::{Forwards, SshTarget, UpstreamError, keyscan};

use crate::approvals::Broker;
use crate::config::{Config, Protocol, SftpMode};
use crate::identity::{AuthMethod, Authenticator, Identity};
use crate::listener::{Incoming, Plugin};
use crate::masking::Masker;
use crate::metrics::{Metrics, SessionMetrics};
use crate::policy::Policy;
use crate::recording::format::{Direction, Kind, SessionEnd};
use crate::recording::{Recorder, SessionRecorder};

/// Channel window Airlock offers each side: as OpenSSH does (2 MiB), so a bulk
/// transfer is not throttled by round trips, and what one channel may have in
/// flight stays bounded.
const WINDOW: u32 = 2 * 1024 * 1024;
/// Largest channel data packet.
const MAX_PACKET: u32 = 32 * 1024;
/// Channels an agent connection may have open at once, as OpenSSH's `MaxSessions`.
/// Each holds at most a window's worth of data each way (a peer that sends past its
/// window is disconnected) plus its output pipes, so this bounds a connection's memory.
const MAX_CHANNELS: usize = 10;
/// Messages queued per channel for its reader; what does not fit waits in the
/// session, within the channel's window (vendor/russh/PATCHES.md).
const CHANNEL_QUEUE: usize = 64;

/// Key exchange, ciphers and MACs on both sides: no SHA-1, no CBC, no small DH
/// groups, strict key exchange (the Terrapin fix) advertised.
fn algorithms() -> Preferred {
    use russh::{cipher, kex, mac};
    Preferred {
        kex: vec![
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]
        .into(),
        key: vec![
            russh::keys::Algorithm::Ed25519,
            russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 },
            russh::keys::Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP384 },
            russh::keys::Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
            russh::keys::Algorithm::Rsa { hash: Some(HashAlg::Sha256) },
        ]
        .into(),
        // AES-GCM first: with AES instructions it is the fastest; a client's own
        // preference picks on the agent side.
        cipher: vec![cipher::AES_128_GCM, cipher::AES_256_GCM, cipher::CHACHA20_POLY1305].into(),
        mac: vec![mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM].into(),
        ..Preferred::DEFAULT
    }
}

/// The host key's file in the data dir.
fn host_key_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("ssh_host_ed25519_key")
}

/// Loads Airlock's SSH host key, generating it (mode 0600) on first run.
pub fn load_or_create_host_key(data_dir: &Path) -> anyhow::Result<PrivateKey> {
    let path = host_key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => PrivateKey::from_openssh(&text)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}: not an OpenSSH private key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness for the SSH host key"))?;
            let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
            let key = PrivateKey::from(pair);
            let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::private::dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            crate::private::write_new(&path, text.as_bytes())
                .with_context(|| format!("writing the SSH host key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the SSH host key {}", path.display())),
    }
}

/// The host key's SHA-256 fingerprint, as `ssh` shows it.
pub fn host_key_fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// A registered agent key.
struct AgentKey {
    key: PublicKey,
    subject: String,
    groups: Vec<String>,
}

/// The SSH protocol plugin.
pub struct SshPlugin {
    targets: HashMap<String, Arc<SshTarget>>,
    keys: Vec<AgentKey>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    recorder: Option<Recorder>,
    /// The policy; `None` when `policy.enforce = false`.
    policy: Option<Arc<Policy>>,
    broker: Arc<Broker>,
    /// Output masking by connection name (absent: nothing masked there).
    masking: HashMap<String, Arc<Masker>>,
    server: Arc<ssh::Config>,
    handshake_timeout: Duration,
    fingerprint: String,
}

impl std::fmt::Debug for SshPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPlugin").field("connections", &self.targets.keys()).finish()
    }
}

impl SshPlugin {
    /// Builds the plugin: loads the host key and every SSH connection's secrets now,
    /// so mistakes surface at start-up.
    pub fn new(
        config: &Config,
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
        recorder: Option<Recorder>,
        policy: Option<Arc<Policy>>,
        broker: Arc<Broker>,
    ) -> anyhow::Result<SshPlugin> {
        let host_key = load_or_create_host_key(&config.data_dir())?;
        let fingerprint = host_key_fingerprint(&host_key);
        let mut targets = HashMap::new();
        let mut masking = HashMap::new();
        let hash_key = crate::identity::load_or_create_key(&config.data_dir().join("masking-hash.key"))
            .context("the masking hash key (data_dir/masking-hash.key)")?;
        for (i, conn) in config.connections.iter().enumerate().filter(|(_, c)| c.protocol == Protocol::Ssh) {
            targets.insert(conn.name.clone(), Arc::new(SshTarget::new(config, i)?));
            let masker = crate::masking::for_connection(config, &conn.name, hash_key.expose())?;
            if !masker.is_empty() {
                masking.insert(conn.name.clone(), Arc::new(masker));
            }
        }
        let keys = config
            .auth
            .ssh_keys
            .iter()
            .filter_map(|k| {
                let key = PublicKey::from_openssh(&k.key).ok()?;
                Some(AgentKey { key, subject: k.subject.clone(), groups: k.groups.clone() })
            })
            .collect();
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::Password);
        methods.push(MethodKind::PublicKey);
        let server = ssh::Config {
            server_id: russh::SshId::Standard(format!("SSH-2.0-Airlock_{}", env!("CARGO_PKG_VERSION")).into()),
            methods,
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::from_millis(0)),
            keys: vec![host_key],
            preferred: algorithms(),
            window_size: WINDOW,
            maximum_packet_size: MAX_PACKET,
            channel_buffer_size: CHANNEL_QUEUE,
            max_auth_attempts: 6,
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            nodelay: true,
            ..Default::default()
        };
        Ok(SshPlugin {
            targets,
            keys,
            auth,
            metrics,
            recorder,
            policy,
            broker,
            masking,
            server: Arc::new(server),
            handshake_timeout: config.limits.handshake_timeout,
            fingerprint,
        })
    }

    /// The host key's fingerprint, for the start-up banner.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    async fn serve_connection(self: Arc<Self>, conn: Incoming) {
        let authenticated = Arc::new(AtomicBool::new(false));
        let tasks = TaskTracker::new();
        let opened: Opened = Arc::default();
        let handler = AgentSide {
            plugin: self.clone(),
            peer: conn.peer,
            handshake: Some(conn.handshake),
            authenticated: authenticated.clone(),
            pending: None,
            session: None,
            opened: opened.clone(),
            started: Default::default(),
            channels: Arc::new(tokio::sync::Semaphore::new(MAX_CHANNELS)),
            tasks: tasks.clone(),
        };
        // One deadline from accept to login: the version exchange, key exchange and
        // authentication all count, so a peer that sends nothing is gone in time.
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let started = russh::server::run_stream(self.server.clone(), conn.stream, handler);
        let session = match tokio::time::timeout_at(deadline, started).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.metrics.connection_refused("ssh", "handshake");
                tracing::debug!(error = %e, "SSH handshake failed");
                return;
            }
            Err(_) => {
                self.metrics.connection_refused("ssh", "handshake_timeout");
                tracing::debug!("no SSH version line within the handshake timeout");
                return;
            }
        };
        let handle = session.handle();
        let deadline = tokio::time::sleep_until(deadline);
        let mut session = Box::pin(session);
        tokio::pin!(deadline);
        let mut timed = true;
        let result = loop {
            tokio::select! {
                r = &mut session => break r,
                _ = &mut deadline, if timed => {
                    timed = false;
                    if !authenticated.load(Ordering::Acquire) {
                        self.metrics.connection_refused("ssh", "handshake_timeout");
                        let _ = handle.disconnect(russh::Disconnect::ByApplication, "authentication took too long".into(), String::new()).await;
                    }
                }
                _ = conn.shutdown.abort.fired() => {
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "Airlock is shutting down".into(), String::new()).await;
                    break (&mut session).await;
                }
            }
        };
        // The handler goes with the session, so the channel tasks hold the last
        // references to what they share.
        drop(session);
        let reason = match result {
            Ok(()) => "AgentClosed".to_owned(),
            Err(e) => {
                tracing::debug!(error = %e, "SSH connection ended with an error");
                e.to_string()
            }
        };
        // Nothing more can reach the agent: end the upstream connection, so that its
        // commands end (as the host's own sshd ends them) and no channel task waits on
        // the host for ever.
        let upstream = opened.lock().ok().and_then(|o| o.as_ref().map(|(shared, _)| shared.clone()));
        if let Some(shared) = upstream {
            let _ = shared.upstream.disconnect(russh::Disconnect::ByApplication, "", "").await;
        }
        tasks.close();
        tasks.wait().await;
        let opened = opened.lock().ok().and_then(|mut o| o.take());
        if let Some((shared, started)) = opened {
            shared.finish(reason, started).await;
        }
    }
}

impl Plugin for SshPlugin {
    fn endpoint(&self) -> &'static str {
        "ssh"
    }

    async fn serve(self: Arc<Self>, conn: Incoming) {
        self.serve_connection(conn).await
    }
}

/// What a logged-in agent connection shares with its channel tasks.
pub(crate) struct Shared {
    pub identity: Identity,
    pub target: Arc<SshTarget>,
    pub upstream: russh::client::Handle<upstream::PinnedHost>,
    /// Set once the agent asks for a remote forward the connection allows.
    pub forwards: Forwards,
    pub agent: ssh::Handle,
    pub recorder: Option<SessionRecorder>,
    pub metrics: SessionMetrics,
    pub policy: Option<Arc<Policy>>,
    pub broker: Arc<Broker>,
    pub masker: Option<Arc<Masker>>,
    pub commands: AtomicU64,
    pub to_upstream: AtomicU64,
    pub to_agent: AtomicU64,
}

impl Shared {
    /// Logs out upstream and records the end of the session.
    async fn finish(self: Arc<Self>, reason: String, started: std::time::Instant) {
        let duration_ms = started.elapsed().as_millis() as u64;
        let commands = self.commands.load(Ordering::Relaxed);
        let _ = self.upstream.disconnect(russh::Disconnect::ByApplication, "", "").await;
        let span =
            tracing::info_span!("session", subject = %self.identity.subject, connection = %self.target.conn.name);
        span.in_scope(|| tracing::info!(commands, duration_ms, "session ended"));
        let Some(r) = &self.recorder else { return };
        let end = SessionEnd {
            reason,
            statements: commands,
            duration_ms,
            bytes_to_upstream: self.to_upstream.load(Ordering::Relaxed),
            bytes_to_agent: self.to_agent.load(Ordering::Relaxed),
            // The recorder adds the verdict counts.
            verdicts: Default::default(),
        };
        if r.record(Direction::None, Kind::SessionEnd, serde_json::to_vec(&end).unwrap_or_default().into())
            .await
            .is_err()
            || r.flush().await.is_err()
        {
            tracing::error!("the end of this session could not be recorded");
        }
    }

    /// Records an SSH event; a recorder that has failed ends the channel.
    pub async fn record(&self, from_agent: bool, event: airlock_ssh::record::Event<'_>) -> Result<(), channel::End> {
        match &self.recorder {
            Some(_) => self.record_payload(from_agent, event.encode().into()).await,
            None => Ok(()),
        }
    }

    /// Waits until everything recorded so far is durable.
    pub async fn flush(&self) -> Result<(), channel::End> {
        match &self.recorder {
            Some(r) => r.flush().await.map_err(|_| channel::End::RecorderFailed),
            None => Ok(()),
        }
    }

    /// Records an encoded event payload.
    pub async fn record_payload(&self, from_agent: bool, payload: bytes::Bytes) -> Result<(), channel::End> {
        let Some(r) = &self.recorder else { return Ok(()) };
        let (direction, kind) = match from_agent {
            true => (Direction::ToUpstream, Kind::SshAgent),
            false => (Direction::ToAgent, Kind::SshHost),
        };
        r.record(direction, kind, payload).await.map_err(|_| channel::End::RecorderFailed)
    }
}

/// Where the handler leaves the session it opened, and when, for the connection's
/// task to end once the handler is gone.
type Opened = Arc<std::sync::Mutex<Option<(Arc<Shared>, std::time::Instant)>>>;

/// The `russh` handler of one agent connection.
struct AgentSide {
    plugin: Arc<SshPlugin>,
    peer: SocketAddr,
    /// The connection's place in the handshake budget, until it has logged in.
    handshake: Option<crate::listener::HandshakeSlot>,
    authenticated: Arc<AtomicBool>,
    /// Who proved themselves, and for which connection, until the session opens.
    pending: Option<(Identity, Arc<SshTarget>)>,
    session: Option<Arc<Shared>>,
    /// The session, for the connection's task to end once the handler is gone.
    opened: Opened,
    /// Channels that were asked to run something: a channel runs one thing only.
    started: std::collections::HashSet<ChannelId>,
    /// Places for open channels (`MAX_CHANNELS`), each held by its channel's task.
    channels: Arc<tokio::sync::Semaphore>,
    tasks: TaskTracker,
}

impl AgentSide {
    /// Replies to a request that would start `channel`: its task judges the first;
    /// any later one is refused (the task would not pass it on).
    fn start(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        match self.session.is_some() && self.started.insert(channel) {
            true => session.channel_success(channel),
            false => session.channel_failure(channel),
        }
    }
}

impl AgentSide {
    /// A place for one more open channel, or `None` when the connection has
    /// `MAX_CHANNELS` open.
    fn channel_place(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let place = self.channels.clone().try_acquire_owned().ok();
        if place.is_none() {
            tracing::info!(limit = MAX_CHANNELS, "channel refused: too many open on this connection");
        }
        place
    }

    /// The connection the username names, if this identity may use it.
    fn admit(&self, user: &str, identity: Identity) -> Auth {
        let Some(target) = self.plugin.targets.get(user) else {
            tracing::info!(connection = user, subject = %identity.subject, "no SSH connection of that name");
            return Auth::reject();
        };
        if !identity.in_any(&target.conn.allow_groups) {
            tracing::info!(connection = user, subject = %identity.subject, "identity not in the connection's allow_groups");
            return Auth::reject();
        }
        Auth::Accept
    }

    fn accept(&mut self, user: &str, identity: Identity) -> Auth {
        let verdict = self.admit(user, identity.clone());
        if verdict == Auth::Accept
            && let Some(target) = self.plugin.targets.get(user)
        {
            self.pending = Some((identity, target.clone()));
        }
        verdict
    }
}

impl ssh::Handler for AgentSide {
    type Error = russh::Error;

    async fn auth_none(&mut self, _: &str) -> Result<Auth, Self::Error> {
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        methods.push(MethodKind::Password);
        Ok(Auth::Reject { proceed_with_methods: Some(methods), partial_success: false })
    }

    async fn auth_password(&mut self, user: &str, token: &str) -> Result<Auth, Self::Error> {
        match self.plugin.auth.authenticate(token).await {
            Ok(identity) => Ok(self.accept(user, identity)),
            Err(e) => {
                self.plugin.metrics.auth_failed("ssh", e.label());
                tracing::info!(connection = user, error = %e, "token refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey_offered(&mut self, _: &str, offer: ssh::PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        let known = self.plugin.keys.iter().any(|k| k.key.key_data() == offer.public_key.key_data());
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(&mut self, user: &str, key: ssh::VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let Some(k) = self.plugin.keys.iter().find(|k| k.key.key_data() == key.public_key.key_data()) else {
            self.plugin.metrics.auth_failed("ssh", "unknown_key");
            return Ok(Auth::reject());
        };
        let identity = Identity { subject: k.subject.clone(), groups: k.groups.clone(), method: AuthMethod::SshKey };
        Ok(self.accept(user, identity))
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.authenticated.store(true, Ordering::Release);
        self.handshake = None;
        let Some((identity, target)) = self.pending.take() else { return Err(russh::Error::NotAuthenticated) };
        let span = tracing::info_span!("session", subject = %identity.subject, connection = %target.conn.name);
        let forwards = Forwards::default();
        let upstream = match target.connect(forwards.clone()).instrument(span.clone()).await {
            Ok(u) => u,
            Err(e) => {
                span.in_scope(|| tracing::warn!(error = %e, "upstream unavailable"));
                self.plugin.metrics.connection_refused("ssh", "upstream");
                let message = format!("Airlock: connection {:?}: {e}", target.conn.name);
                session.disconnect(russh::Disconnect::ByApplication, &message, "")?;
                return Ok(());
            }
        };
        let recorder = match &self.plugin.recorder {
            None => None,
            Some(r) => {
                let start = crate::plugins::session_start(&identity, &target.conn, "ssh", self.peer, false);
                match r.session(&start).await {
                    Ok(s) => Some(s),
                    Err(_) => {
                        session.disconnect(
                            russh::Disconnect::ByApplication,
                            "Airlock cannot record this session",
                            "",
                        )?;
                        return Ok(());
                    }
                }
            }
        };
        span.in_scope(|| tracing::info!(groups = ?identity.groups, "session started"));
        let metrics = self.plugin.metrics.session("ssh", &target.conn.name);
        let shared = Arc::new(Shared {
            masker: self.plugin.masking.get(&target.conn.name).cloned(),
            identity,
            target,
            upstream,
            forwards,
            agent: session.handle(),
            recorder,
            metrics,
            policy: self.plugin.policy.clone(),
            broker: self.plugin.broker.clone(),
            commands: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
            to_agent: AtomicU64::new(0),
        });
        if let Ok(mut opened) = self.opened.lock() {
            *opened = Some((shared.clone(), std::time::Instant::now()));
        }
        self.session = Some(shared);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ssh::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shared) = self.session.clone() else {
            reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        let Some(place) = self.channel_place() else {
            reply.reject(russh::ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        reply.accept().await;
        let span = tracing::info_span!(
            "channel",
            subject = %shared.identity.subject,
            connection = %shared.target.conn.name,
            channel = %channel.id()
        );
        self.tasks.spawn(
            async move {
                channel::run(shared, channel).await;
                drop(place);
            }
            .instrument(span),
        );
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _: &str,
        _: u32,
        reply: ssh::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shared) = self.session.clone().filter(|s| s.target.conn.allow_forwarding) else {
            tracing::info!(host, port, "port forwarding refused (allow_forwarding = false)");
            reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        let Some(place) = self.channel_place() else {
            reply.reject(russh::ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        // The host answers once its own connect succeeds or fails, which may take as
        // long as a TCP connect timeout: the open waits in its own task, so the
        // connection's other channels go on meanwhile.
        let host = host.to_owned();
        self.tasks.spawn(async move {
            let upstream = match shared.upstream.channel_open_direct_tcpip(&host, port, "127.0.0.1", 0).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::info!(host, port, error = %e, "upstream refused the forwarded connection");
                    reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                    return;
                }
            };
            reply.accept().await;
            tracing::info!(host, port, "port forwarding opened");
            let mut a = channel.into_stream();
            let mut u = upstream.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut a, &mut u).await;
            drop(place);
        });
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        _: u32,
        reply: ssh::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _: Channel<Msg>,
        _: &str,
        reply: ssh::ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(shared) = self.session.clone().filter(|s| s.target.conn.allow_forwarding) else {
            tracing::info!(address, port = *port, "remote port forwarding refused (allow_forwarding = false)");
            return Ok(false);
        };
        match shared.upstream.tcpip_forward(address, *port).await {
            Ok(bound) => {
                if let Ok(mut f) = shared.forwards.lock() {
                    *f = Some(session.handle());
                }
                tracing::info!(address, port = bound, "remote port forwarding opened");
                if *port == 0 {
                    *port = bound;
                }
                Ok(true)
            }
            Err(e) => {
                tracing::info!(address, port = *port, error = %e, "the host refused the remote forward");
                Ok(false)
            }
        }
    }

    async fn cancel_tcpip_forward(&mut self, address: &str, port: u32, _: &mut Session) -> Result<bool, Self::Error> {
        let Some(shared) = self.session.clone().filter(|s| s.target.conn.allow_forwarding) else { return Ok(false) };
        Ok(shared.upstream.cancel_tcpip_forward(address, port).await.is_ok())
    }

    async fn streamlocal_forward(&mut self, _: &str, _: &mut Session) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn agent_request(&mut self, _: ChannelId, _: &mut Session) -> Result<bool, Self::Error> {
        tracing::info!("agent forwarding refused");
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _: bool,
        _: &str,
        _: &str,
        _: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.session.as_ref().is_some_and(|s| channel::env_allowed(&s.target.conn.env, name)) {
            true => session.channel_success(channel),
            false => session.channel_failure(channel),
        }
    }

    async fn exec_request(&mut self, channel: ChannelId, _: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        // Judged, held or refused by the channel's task; a refusal is exit status 126.
        self.start(channel, session)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn channel_close(&mut self, channel: ChannelId, _: &mut Session) -> Result<(), Self::Error> {
        self.started.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let sftp = self.session.as_ref().map(|s| s.target.conn.sftp);
        match (name, sftp) {
            ("sftp", Some(mode)) if mode != SftpMode::Deny => self.start(channel, session),
            _ => {
                tracing::info!(subsystem = name, "subsystem refused");
                session.channel_failure(channel)
            }
        }
    }
}
