//! Everything that can end a Postgres session early, and the one place where each is
//! turned into what the agent sees.

use airlock_postgres::ProtocolError;
use airlock_postgres::message::{self, Severity};
use bytes::Bytes;

use crate::identity::AuthError;

/// Why a session ended before (or instead of) a normal close.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The agent's socket failed or closed; nobody to tell.
    #[error("agent connection lost: {0}")]
    AgentIo(#[source] std::io::Error),
    /// The agent broke the wire protocol.
    #[error("agent protocol violation: {0}")]
    AgentProtocol(#[from] ProtocolError),
    /// TLS handshake with the agent failed.
    #[error("agent TLS handshake failed: {0}")]
    AgentTls(#[source] std::io::Error),
    /// The agent tried to send a token without TLS.
    #[error("agent did not use TLS")]
    TlsRequired,
    /// The token was rejected.
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// `dbname` names no connection.
    #[error("unknown connection {name:?}")]
    UnknownConnection {
        /// What the agent asked for.
        name: String,
        /// Connections this identity may use.
        available: Vec<String>,
    },
    /// The identity is not in the connection's `allow_groups`.
    #[error("subject {subject:?} may not use connection {connection:?}")]
    NotAllowed {
        /// Who asked.
        subject: String,
        /// What they asked for.
        connection: String,
    },
    /// The upstream could not be reached or refused Airlock.
    #[error("connection {connection:?}: {detail}")]
    Upstream {
        /// The connection name.
        connection: String,
        /// Operator-facing detail (may name addresses; never shown to the agent).
        detail: String,
        /// Safe text for the agent, when the upstream said something worth passing on.
        agent_message: Option<(String, String)>,
    },
    /// The agent asked for a client encoding whose characters can hide `\\` or `'`.
    #[error("client_encoding {0:?} refused")]
    UnsafeEncoding(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The process is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// Sessions cannot be recorded, so none may run.
    #[error("the session recorder is unavailable")]
    RecorderFailed,
}

impl SessionError {
    /// The ErrorResponse that tells the agent what happened and what to do, or `None`
    /// when the agent is gone or the session ended cleanly.
    pub fn agent_reply(&self) -> Option<Bytes> {
        let fatal =
            |code: &str, msg: &str, hint: Option<&str>| Some(message::error_response(Severity::Fatal, code, msg, hint));
        match self {
            SessionError::AgentIo(_) | SessionError::AgentTls(_) => None,
            SessionError::AgentProtocol(e) => fatal("08P01", &format!("protocol violation: {e}"), None),
            SessionError::TlsRequired => {
                fatal("28000", "Airlock requires TLS for token authentication", Some("connect with sslmode=require"))
            }
            SessionError::Auth(e) => fatal(
                "28P01",
                &format!("Airlock authentication failed: {e}"),
                Some("pass your identity token (JWT or API key) as the password, e.g. PGPASSWORD=$TOKEN"),
            ),
            SessionError::UnknownConnection { name, available } => {
                let hint = if available.is_empty() {
                    "no connections are available to your identity; ask the Airlock operator".to_owned()
                } else {
                    format!("set dbname to one of: {}", available.join(", "))
                };
                fatal("3D000", &format!("Airlock has no connection named \"{name}\""), Some(&hint))
            }
            SessionError::NotAllowed { subject, connection } => fatal(
                "28000",
                &format!("\"{subject}\" is not allowed to use connection \"{connection}\""),
                Some("ask the Airlock operator to add one of your groups to allow_groups"),
            ),
            SessionError::Upstream { connection, agent_message, .. } => match agent_message {
                Some((code, msg)) => fatal(code, &on_connection(connection, msg), None),
                None => fatal(
                    "08006",
                    &on_connection(connection, "the upstream database is unavailable"),
                    Some("try again later; if it persists, the Airlock operator can see the cause in Airlock's log"),
                ),
            },
            SessionError::UnsafeEncoding(name) => fatal(
                "22023",
                &format!("Airlock refuses client_encoding \"{name}\""),
                Some(
                    "its multi-byte characters can contain the bytes of \\ and ', so statements could not be read \
                     as the server reads them; use UTF8 (PGCLIENTENCODING=UTF8)",
                ),
            ),
            SessionError::HandshakeTimeout => fatal("08006", "Airlock: connection handshake timed out", None),
            SessionError::ShuttingDown => fatal("57P01", "Airlock is shutting down", Some("reconnect in a moment")),
            SessionError::RecorderFailed => fatal(
                "58030",
                "Airlock cannot record sessions right now, so it runs none",
                Some("try again later; the Airlock operator can see the cause in Airlock's log"),
            ),
        }
    }

    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SessionError::AgentIo(_) => "agent_io",
            SessionError::AgentProtocol(_) => "protocol",
            SessionError::AgentTls(_) => "tls",
            SessionError::TlsRequired => "tls_required",
            SessionError::Auth(_) => "auth",
            SessionError::UnknownConnection { .. } => "unknown_connection",
            SessionError::NotAllowed { .. } => "not_allowed",
            SessionError::Upstream { .. } => "upstream",
            SessionError::UnsafeEncoding(_) => "unsafe_encoding",
            SessionError::HandshakeTimeout => "handshake_timeout",
            SessionError::ShuttingDown => "shutting_down",
            SessionError::RecorderFailed => "recorder",
        }
    }
}

/// `msg` about connection `name`, when the error knows which.
fn on_connection(name: &str, msg: &str) -> String {
    match name {
        "" => msg.to_owned(),
        name => format!("connection \"{name}\": {msg}"),
    }
}
