//! Dialling the real SSH host: one `russh` client connection per agent connection,
//! logged in with the connection's stored key or password, and only to a host whose
//! key matches the one pinned in the config. There is no trust on first use: an
//! agent cannot answer a prompt, and a changed key may be an attacker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use crate::config::{Config, Connection};
use crate::secrets::Secret;

/// How Airlock logs in upstream.
enum Credential {
    Key(Arc<PrivateKey>),
    Password(Secret),
}

/// One SSH connection's upstream, with its secrets loaded.
pub struct SshTarget {
    /// The connection as configured.
    pub conn: Connection,
    credential: Credential,
    host_key: PublicKey,
    connect_timeout: Duration,
}

impl std::fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTarget").field("connection", &self.conn.name).finish()
    }
}

/// Why the upstream could not be used. The text is for the agent and the log: it
/// names the connection and the fix, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed or timed out.
    #[error("cannot reach {address}: {detail}")]
    Unreachable { address: String, detail: String },
    /// The host presented a key other than the pinned one.
    #[error(
        "the host key of {address} does not match the key pinned in connections.host_key \
         (it presented {presented}); if the host was re-keyed on purpose, check and pin the new key \
         printed by `airlock ssh-keyscan {address}`"
    )]
    HostKeyMismatch { address: String, presented: String },
    /// The SSH handshake failed.
    #[error("SSH handshake with {address} failed: {detail}")]
    Handshake { address: String, detail: String },
    /// The host refused Airlock's credential.
    #[error("{address} refused the stored credential for user {user:?} (check private_key/password)")]
    Refused { address: String, user: String },
}

impl SshTarget {
    /// Loads connection `index` of `config` (an SSH connection).
    pub fn new(config: &Config, index: usize) -> anyhow::Result<SshTarget> {
        let conn = config.connections.get(index).context("no such connection")?.clone();
        let at = |key: &str| format!("connections[{index}].{key} (connection {:?})", conn.name);
        let credential = match (&conn.private_key, &conn.password) {
            (Some(key), _) => {
                let secret = key.load(&config.base_dir).with_context(|| at("private_key"))?;
                let text = std::str::from_utf8(secret.expose()).with_context(|| at("private_key"))?;
                let key = PrivateKey::from_openssh(text)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("{}: not an unencrypted OpenSSH private key", at("private_key")))?;
                Credential::Key(Arc::new(key))
            }
            (None, Some(password)) => {
                Credential::Password(password.load(&config.base_dir).with_context(|| at("password"))?)
            }
            (None, None) => anyhow::bail!("{}: set private_key or password", at("private_key")),
        };
        let line = conn.host_key.as_deref().with_context(|| at("host_key"))?;
        let host_key =
            PublicKey::from_openssh(line).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| at("host_key"))?;
        Ok(SshTarget { conn, credential, host_key, connect_timeout: config.limits.connect_timeout })
    }

    /// Connects and logs in. Connections the host opens for a remote forward go to
    /// the agent session in `forwards`, once one is set there.
    pub async fn connect(&self, forwards: Forwards) -> Result<Handle<PinnedHost>, UpstreamError> {
        let address = self.conn.address.clone();
        let user = self.conn.user.clone().unwrap_or_default();
        let stream = tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(&address))
            .await
            .map_err(|_| UpstreamError::Unreachable { address: address.clone(), detail: "timed out".into() })?
            .map_err(|e| UpstreamError::Unreachable { address: address.clone(), detail: e.to_string() })?;
        let _ = stream.set_nodelay(true);
        let seen = Arc::new(std::sync::Mutex::new(None));
        let handler = PinnedHost { pinned: Some(self.host_key.clone()), seen: seen.clone(), forwards };
        let handshake = client::connect_stream(client_config(), stream, handler);
        let mut handle = match tokio::time::timeout(self.connect_timeout, handshake).await {
            Err(_) => return Err(UpstreamError::Handshake { address, detail: "timed out".into() }),
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => {
                return Err(match seen.lock().ok().and_then(|mut s| s.take()) {
                    Some(presented) => UpstreamError::HostKeyMismatch { address, presented },
                    None => UpstreamError::Handshake { address, detail: e.to_string() },
                });
            }
        };
        let auth = match &self.credential {
            Credential::Key(key) => {
                let hash = match key.algorithm().is_rsa() {
                    true => handle.best_supported_rsa_hash().await.ok().flatten().flatten(),
                    false => None,
                };
                handle.authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(key.clone(), hash)).await
            }
            Credential::Password(p) => {
                let password = String::from_utf8_lossy(p.expose()).into_owned();
                handle.authenticate_password(user.clone(), password).await
            }
        };
        match auth {
            Ok(AuthResult::Success) => Ok(handle),
            Ok(AuthResult::Failure { .. }) => Err(UpstreamError::Refused { address, user }),
            Err(e) => Err(UpstreamError::Handshake { address, detail: e.to_string() }),
        }
    }
}

/// The client settings for upstream connections: modern algorithms, keepalives.
fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        preferred: super::algorithms(),
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        window_size: super::WINDOW,
        maximum_packet_size: super::MAX_PACKET,
        ..Default::default()
    })
}

/// Where connections the host opens for an agent's remote forward (`ssh -R`) go: the
/// agent's session, once the connection allows forwarding and the agent asked.
pub type Forwards = Arc<std::sync::Mutex<Option<russh::server::Handle>>>;

/// The client handler: accepts only the pinned host key (or, for `ssh-keyscan`, notes
/// whatever key is presented and stops), and passes remote-forward connections on.
pub struct PinnedHost {
    pinned: Option<PublicKey>,
    seen: Arc<std::sync::Mutex<Option<String>>>,
    forwards: Forwards,
}

impl client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(&mut self, presented: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = presented else {
            return Ok(false);
        };
        let matches = self.pinned.as_ref().is_some_and(|p| p.key_data() == key.key_data());
        if !matches && let Ok(mut seen) = self.seen.lock() {
            *seen = Some(format!("{} {}", key.to_openssh().unwrap_or_default(), key.fingerprint(HashAlg::Sha256)));
        }
        Ok(matches)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let Some(agent) = self.forwards.lock().ok().and_then(|f| f.clone()) else {
            reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        reply.accept().await;
        let (address, origin) = (connected_address.to_owned(), originator_address.to_owned());
        tokio::spawn(async move {
            match agent.channel_open_forwarded_tcpip(address, connected_port, origin, originator_port).await {
                Ok(to_agent) => {
                    let (mut up, mut down) = (channel.into_stream(), to_agent.into_stream());
                    let _ = tokio::io::copy_bidirectional(&mut up, &mut down).await;
                }
                Err(e) => tracing::info!(error = %e, "the agent refused a remote-forward connection"),
            }
        });
        Ok(())
    }
}

/// `airlock ssh-keyscan HOST:PORT`: the host key line to pin, read from the host.
pub async fn keyscan(address: &str) -> anyhow::Result<String> {
    let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(address))
        .await
        .with_context(|| format!("connecting to {address}: timed out"))?
        .with_context(|| format!("connecting to {address}"))?;
    let seen = Arc::new(std::sync::Mutex::new(None));
    let handler = PinnedHost { pinned: None, seen: seen.clone(), forwards: Forwards::default() };
    let _ =
        tokio::time::timeout(Duration::from_secs(10), client::connect_stream(client_config(), stream, handler)).await;
    let line = seen.lock().ok().and_then(|mut s| s.take());
    let line = line.with_context(|| format!("{address} presented no host key Airlock accepts (ssh-ed25519, ecdsa)"))?;
    let key = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
    Ok(key)
}
