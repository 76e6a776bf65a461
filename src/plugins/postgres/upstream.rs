//! Opening a session on the real database with the connection's stored credentials.
//!
//! TCP (first address that answers), optional TLS per `tls` mode, a StartupMessage
//! with the configured user and database plus the agent's harmless parameters, then
//! whatever authentication the server asks for: SCRAM-SHA-256, MD5, cleartext or none.
//! Nothing read here is forwarded to the agent except ParameterStatus, notices and
//! the final ReadyForQuery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use airlock_postgres::message::{self, AuthRequest, Fields, tag};
use airlock_postgres::{Chunk, Disposition, Frame, Header, Scanner, startup};
use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Connection, UpstreamTls};
use crate::net::Stream;
use crate::secrets::Secret;
use crate::tls::UpstreamTlsPlan;

/// Startup parameters an agent may pass through. Anything else (`options`,
/// `replication`, GUCs that change privileges or logging) is dropped.
const FORWARDED_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "search_path",
    "intervalstyle",
    "bytea_output",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "default_transaction_isolation",
    "default_transaction_read_only",
];

/// Whether an agent's startup parameter may reach the upstream.
pub fn forwardable(name: &str) -> bool {
    FORWARDED_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// Everything needed to open sessions on one configured connection.
#[derive(Debug)]
pub struct UpstreamTarget {
    /// The connection from the config.
    pub conn: Connection,
    /// Its password, loaded at start-up.
    pub password: Option<Secret>,
    /// Its TLS plan.
    pub tls: UpstreamTlsPlan,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Cap on a message read during startup.
    pub max_message: usize,
}

/// A ready upstream session.
pub struct Upstream {
    /// The socket, possibly TLS.
    pub stream: Stream,
    /// Bytes already read past the startup sequence.
    pub buf: BytesMut,
    /// ParameterStatus and NoticeResponse frames to replay to the agent, in order.
    pub greeting: Vec<Frame>,
    /// The closing ReadyForQuery.
    pub ready: Frame,
    /// The upstream's cancel key.
    pub key: Option<(i32, Bytes)>,
    /// The address that answered.
    pub addr: SocketAddr,
}

impl Upstream {
    /// Sends `request` and hands every reply to `on_message` until ReadyForQuery; an
    /// ErrorResponse is an error.
    pub async fn exchange(
        &mut self,
        request: Bytes,
        max_message: usize,
        mut on_message: impl FnMut(u8, &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.stream.write_all(&request).await?;
        let mut scanner = Scanner::new(max_message);
        let mut failed = None;
        loop {
            let frame = loop {
                if let Some(Chunk::Frame(f)) = scanner.next(&mut self.buf, &mut |_: Header<'_>| Disposition::Whole)? {
                    break f;
                }
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    anyhow::bail!("the upstream closed the session");
                }
            };
            match frame.tag() {
                // Read on to ReadyForQuery, so the session stays usable.
                tag::ERROR_RESPONSE => failed = Some(Fields::parse(frame.body())?.message().to_owned()),
                tag::READY_FOR_QUERY => break,
                tag => on_message(tag, frame.body())?,
            }
        }
        match failed {
            Some(e) => anyhow::bail!("{e}"),
            None => Ok(()),
        }
    }
}

/// Why the upstream could not be opened. `Display` is for the operator's log.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No address answered.
    #[error("cannot reach {address}: {reason}")]
    Unreachable {
        /// Configured address.
        address: String,
        /// Last error.
        reason: String,
    },
    /// I/O failure mid-handshake.
    #[error("I/O error during startup: {0}")]
    Io(#[from] std::io::Error),
    /// TLS negotiation failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server rejected the startup or the credentials.
    #[error("server said {}: {} (user {user:?}; check the connection's password source)", fields.code(), fields.message())]
    Rejected {
        /// The ErrorResponse fields.
        fields: Fields,
        /// Upstream user.
        user: String,
    },
    /// Authentication Airlock cannot perform.
    #[error("{0}")]
    Auth(String),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] airlock_postgres::ProtocolError),
    /// The server closed the connection.
    #[error("server closed the connection during startup")]
    Closed,
}

impl UpstreamError {
    /// A message worth passing to the agent verbatim: server-side conditions that
    /// reveal nothing about credentials or topology (too many connections, starting
    /// up, shutting down).
    pub fn agent_message(&self) -> Option<(String, String)> {
        match self {
            UpstreamError::Rejected { fields, .. } if ["53300", "57P01", "57P02", "57P03"].contains(&fields.code()) => {
                Some((fields.code().to_owned(), fields.message().to_owned()))
            }
            _ => None,
        }
    }
}

impl UpstreamTarget {
    /// Connects and authenticates. `params` are the agent's forwardable startup
    /// parameters; `application_name` is rewritten to say who is behind Airlock.
    /// An upstream that accepts but never finishes the login fails after `connect_timeout`.
    pub async fn open(&self, params: &[(String, String)], subject: &str) -> Result<Upstream, UpstreamError> {
        match tokio::time::timeout(self.connect_timeout, self.login(params, subject)).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Unreachable {
                address: self.conn.address.clone(),
                reason: format!("no login within {:?}", self.connect_timeout),
            }),
        }
    }

    async fn login(&self, params: &[(String, String)], subject: &str) -> Result<Upstream, UpstreamError> {
        let (tcp, addr) = self.connect().await?;
        let mut stream = self.negotiate_tls(tcp).await?;

        let app = params.iter().find(|(k, _)| k == "application_name").map(|(_, v)| v.as_str()).unwrap_or("");
        let app_name = application_name(app, subject);
        let user = self.conn.user.as_deref().unwrap_or_default();
        let database = self.conn.database.as_deref().unwrap_or_default();
        // A read-only connection's guard is set by Airlock, never by the agent.
        let guard = self.conn.read_only.then_some(("default_transaction_read_only", "on"));
        let startup_params = [("user", user), ("database", database), ("application_name", app_name.as_str())]
            .into_iter()
            .chain(guard)
            .chain(
                params
                    .iter()
                    .filter(|(k, _)| {
                        k != "application_name"
                            && forwardable(k)
                            && !(guard.is_some() && k.eq_ignore_ascii_case("default_transaction_read_only"))
                    })
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        stream.write_all(&startup::encode_startup(startup_params)).await?;

        let mut reader =
            FrameReader { stream, buf: BytesMut::with_capacity(8192), scanner: Scanner::new(self.max_message) };
        self.authenticate(&mut reader, user).await?;

        let mut greeting = Vec::new();
        let mut key = None;
        loop {
            let frame = reader.next().await?;
            match frame.tag() {
                tag::PARAMETER_STATUS | tag::NOTICE_RESPONSE => greeting.push(frame),
                tag::BACKEND_KEY_DATA => key = Some(message::parse_backend_key_data(frame.body())?),
                tag::READY_FOR_QUERY => {
                    message::parse_ready_for_query(frame.body())?;
                    return Ok(Upstream { stream: reader.stream, buf: reader.buf, greeting, ready: frame, key, addr });
                }
                tag::ERROR_RESPONSE => return Err(rejected(&frame, user)),
                other => {
                    return Err(airlock_postgres::ProtocolError::Unexpected {
                        tag: other as char,
                        state: "awaiting ReadyForQuery",
                    }
                    .into());
                }
            }
        }
    }

    /// Sends `request` on a new session of its own, as the connection's upstream user,
    /// and hands every reply to `on_message` until ReadyForQuery; an ErrorResponse is
    /// an error. For Airlock's own questions (catalog, role checks), never an agent's.
    pub async fn exchange(
        &self,
        request: Bytes,
        on_message: impl FnMut(u8, &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut up = self.open(&[], "catalog").await?;
        up.exchange(request, self.max_message, on_message).await?;
        let _ = up.stream.write_all(&message::terminate()).await;
        Ok(())
    }

    /// What the upstream role may do beyond what an agent should: superuser,
    /// BYPASSRLS, CREATEROLE, REPLICATION. Each lets an approved (or misread) statement
    /// do far more than its class says; Airlock warns about them at start-up and in
    /// `airlock check-config --connect`.
    pub async fn role_risks(&self) -> anyhow::Result<Vec<&'static str>> {
        const ATTRIBUTES: [&str; 4] = ["SUPERUSER", "BYPASSRLS", "CREATEROLE", "REPLICATION"];
        let sql =
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolreplication FROM pg_roles WHERE rolname = current_user";
        let mut risks = Vec::new();
        self.exchange(message::query(sql), |tag, body| {
            if tag == tag::DATA_ROW {
                let values = airlock_postgres::describe::data_row(body)?;
                for (attribute, value) in ATTRIBUTES.iter().zip(values) {
                    if value == Some(&b"t"[..]) {
                        risks.push(*attribute);
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(risks)
    }

    async fn connect(&self) -> Result<(TcpStream, SocketAddr), UpstreamError> {
        let address = &self.conn.address;
        let unreachable = |reason: String| UpstreamError::Unreachable { address: address.clone(), reason };
        let addrs = tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host(address.as_str()))
            .await
            .map_err(|_| unreachable("DNS lookup timed out".into()))?
            .map_err(|e| unreachable(format!("DNS lookup failed: {e}")))?;
        let mut last = "no addresses".to_owned();
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true)?;
                    return Ok((stream, addr));
                }
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: connect timed out after {:?}", self.connect_timeout),
            }
        }
        Err(unreachable(last))
    }

    async fn negotiate_tls(&self, mut tcp: TcpStream) -> Result<Stream, UpstreamError> {
        let Some(client) = &self.tls.client else {
            return Ok(Stream::Tcp(tcp));
        };
        tcp.write_all(&startup::encode_ssl_request()).await?;
        let answer = tcp.read_u8().await?;
        match (answer, self.tls.mode) {
            (b'S', _) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(client));
                let tls = connector
                    .connect(self.tls.server_name.clone(), tcp)
                    .await
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                Ok(Stream::Other(Box::new(tls)))
            }
            (b'N', UpstreamTls::Prefer) => Ok(Stream::Tcp(tcp)),
            (b'N', mode) => Err(UpstreamError::Tls(format!("server does not offer TLS but tls = {mode:?}"))),
            (other, _) => Err(UpstreamError::Tls(format!("unexpected answer {:?} to SSLRequest", other as char))),
        }
    }

    async fn authenticate(&self, reader: &mut FrameReader, user: &str) -> Result<(), UpstreamError> {
        let password = || {
            self.password.as_ref().map(Secret::expose).ok_or_else(|| {
                UpstreamError::Auth(format!(
                    "server asks for a password for user {user:?} but connection {:?} has none (set password)",
                    self.conn.name
                ))
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = reader.next().await?;
            match frame.tag() {
                tag::AUTHENTICATION => {}
                tag::ERROR_RESPONSE => return Err(rejected(&frame, user)),
                tag::NEGOTIATE_PROTOCOL_VERSION | tag::NOTICE_RESPONSE => continue,
                other => {
                    return Err(airlock_postgres::ProtocolError::Unexpected {
                        tag: other as char,
                        state: "authenticating",
                    }
                    .into());
                }
            }
            let reply = match message::parse_auth_request(frame.body())? {
                AuthRequest::Ok => return Ok(()),
                AuthRequest::Cleartext => {
                    let mut payload = password()?.to_vec();
                    payload.push(0);
                    message::password_message(&payload)
                }
                AuthRequest::Md5 { salt } => {
                    let mut payload =
                        postgres_protocol::authentication::md5_hash(user.as_bytes(), password()?, salt).into_bytes();
                    payload.push(0);
                    message::password_message(&payload)
                }
                AuthRequest::Sasl { mechanisms } => {
                    if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                        return Err(UpstreamError::Auth(format!("server offers only SASL mechanisms {mechanisms:?}")));
                    }
                    let s = ScramSha256::new(password()?, ChannelBinding::unsupported());
                    let reply = message::sasl_initial_response(SCRAM_SHA_256, s.message());
                    scram = Some(s);
                    reply
                }
                AuthRequest::SaslContinue(data) => {
                    let s = scram.as_mut().ok_or_else(|| UpstreamError::Auth("SASLContinue before SASL".into()))?;
                    s.update(&data).map_err(|e| UpstreamError::Auth(format!("SCRAM: {e}")))?;
                    message::sasl_response(s.message())
                }
                AuthRequest::SaslFinal(data) => {
                    // Verifies the server's signature: a server that does not know
                    // the password cannot complete the exchange.
                    let s = scram.as_mut().ok_or_else(|| UpstreamError::Auth("SASLFinal before SASL".into()))?;
                    s.finish(&data).map_err(|e| UpstreamError::Auth(format!("SCRAM server proof: {e}")))?;
                    continue;
                }
                AuthRequest::Unsupported(code) => {
                    return Err(UpstreamError::Auth(format!(
                        "server requires authentication method {code}, which Airlock does not support"
                    )));
                }
            };
            reader.stream.write_all(&reply).await?;
        }
    }
}

fn rejected(frame: &Frame, user: &str) -> UpstreamError {
    match Fields::parse(frame.body()) {
        Ok(fields) => UpstreamError::Rejected { fields, user: user.to_owned() },
        Err(e) => e.into(),
    }
}

/// `application_name` as the upstream sees it: who is behind Airlock, within
/// PostgreSQL's 63-byte limit.
fn application_name(agent_app: &str, subject: &str) -> String {
    let mut name =
        if agent_app.is_empty() { format!("airlock:{subject}") } else { format!("airlock:{subject}:{agent_app}") };
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Reads whole messages during startup.
struct FrameReader {
    stream: Stream,
    buf: BytesMut,
    scanner: Scanner,
}

impl FrameReader {
    async fn next(&mut self) -> Result<Frame, UpstreamError> {
        loop {
            if let Some(Chunk::Frame(frame)) = self.scanner.next(&mut self.buf, &mut |_| Disposition::Whole)? {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(UpstreamError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_parameters_pass() {
        assert!(forwardable("application_name"));
        assert!(forwardable("DateStyle"));
        assert!(forwardable("TimeZone"));
        assert!(!forwardable("options"));
        assert!(!forwardable("replication"));
        assert!(!forwardable("user"));
        assert!(!forwardable("session_authorization"));
        assert!(!forwardable("_pq_.protocol_managed_params"));
    }

    #[test]
    fn application_name_names_the_subject_within_limits() {
        assert_eq!(application_name("", "agent-1"), "airlock:agent-1");
        assert_eq!(application_name("psql", "agent-1"), "airlock:agent-1:psql");
        assert_eq!(application_name(&"x".repeat(100), "a").len(), 63);
        // Multi-byte characters are never split.
        assert!(application_name(&"é".repeat(40), "a").len() <= 63);
    }
}
