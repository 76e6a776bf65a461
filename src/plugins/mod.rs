//! Protocol plugins: session drivers that own the sockets and call into the core.
//!
//! A plugin turns an [`Incoming`](crate::listener::Incoming) connection into a session:
//! handshake, authentication through [`crate::identity`], the upstream connection, then
//! the relay loop. Format knowledge stays in the `protocols/` crates.
//!
//! # The shape every plugin takes
//!
//! The Postgres plugin is the model; SSH and HTTP follow it, so that a reader who
//! knows one knows where to look in the others. SSH's `channel.rs` is its relay and
//! gate (each channel is judged once, at its exec, shell or subsystem request), and
//! `sftp.rs` its enforced relay for the SFTP subsystem; `russh` turns its errors into
//! SSH disconnects, so it has no `error.rs`. HTTP's `relay.rs` runs one exchange (hyper
//! owns the sockets and the framing; `audit.rs` watches the raw bytes), and its
//! `session.rs` records each identity's exchanges on one agent connection.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the [`Plugin`](crate::listener::Plugin) impl (serve, refuse when full), the handshake as a phase enum, the session's start and end records |
//! | `error.rs` | session errors turned into the protocol's own replies, in one place |
//! | `upstream.rs` | dialling the real target with the connection's stored secrets |
//! | `relay.rs` | the sockets, one state per direction, the pumps between them |
//! | `gate.rs` | message → [`Command`](crate::policy::Command)s → [`Policy::decide`](crate::policy::Policy::decide) → [`approvals::hold`](crate::approvals::hold) |
//! | `mask.rs` | the reply side: what the agent may see of the results |
//!
//! Each `protocols/<p>` crate holds what is pure about its format, with no I/O: the
//! parser (returning `Ok(Some(message))`, `Ok(None)` for "need more bytes", or an
//! error; every length capped), the classifier producing the shared
//! [`Classes`](airlock_classes::Classes), and the transcript decoder `airlock replay`
//! uses for the protocol's sessions.
//!
//! What the core gives every plugin, and what no plugin re-implements:
//! - [`crate::policy`]: rules and the fail-closed default, knowing no protocol;
//! - [`crate::approvals::hold`]: grants, filing, waiting, cancel and departure, and
//!   the verdict records; the plugin only turns [`Settled`](crate::approvals::Settled)
//!   into its bytes (a notice and an error for Postgres, a message on stderr and an
//!   exit status for SSH, a status code for HTTP);
//! - [`crate::recording`]: frames in, with typed
//!   [`SessionStart`](crate::recording::format::SessionStart) and
//!   [`SessionEnd`](crate::recording::format::SessionEnd) records around them;
//! - [`crate::masking`] and [`masked`]: value detectors and the streaming masker.
//!
//! A file over about 600 lines is a sign that a concern wants its own file.

pub mod http;
pub mod masked;
pub mod postgres;
pub mod ssh;

use crate::config::Connection;
use crate::identity::Identity;
use crate::recording::format::SessionStart;
use crate::recording::replay::{Opaque, Transcript};

/// The record that opens a session of `protocol` on `conn`, for `identity` at `client`.
pub fn session_start(
    identity: &Identity,
    conn: &Connection,
    protocol: &str,
    client: std::net::SocketAddr,
    tls: bool,
) -> SessionStart {
    SessionStart {
        subject: identity.subject.clone(),
        groups: identity.groups.clone(),
        connection: conn.name.clone(),
        protocol: protocol.into(),
        client: client.to_string(),
        tls,
        upstream_user: conn.user.clone(),
        airlock_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The transcript `airlock replay` reads a session of `protocol` with, showing at most
/// `max_rows` rows of each result.
pub fn transcript(protocol: &str, max_rows: usize) -> Box<dyn Transcript> {
    match protocol {
        "postgres" => Box::new(airlock_postgres::transcript::Transcript::new(max_rows)),
        "ssh" => Box::new(airlock_ssh::transcript::Transcript::new()),
        "http" => Box::new(airlock_http::transcript::Transcript::new()),
        _ => Box::new(Opaque),
    }
}

/// Each protocol crate's transcript has the trait's methods as its own (`finish` where
/// it holds something back): the trait lives here, since the protocol crates know
/// nothing of the recorder.
macro_rules! transcript_of {
    ($($t:ty $(=> $finish:ident)?),*) => {$(
        impl Transcript for $t {
            fn text(
                &mut self,
                from_agent: bool,
                bytes: &[u8],
                ts_us: u64,
                at: &str,
                out: &mut dyn std::io::Write,
            ) -> std::io::Result<()> {
                self.text(from_agent, bytes, ts_us, at, out)
            }

            fn json(&mut self, from_agent: bool, bytes: &[u8]) -> Vec<serde_json::Value> {
                self.json(from_agent, bytes)
            }

            $(
                fn $finish(&mut self, at: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
                    self.$finish(at, out)
                }
            )?
        }
    )*};
}

transcript_of!(
    airlock_postgres::transcript::Transcript,
    airlock_ssh::transcript::Transcript,
    airlock_http::transcript::Transcript => finish
);
