//! Airlock: a wire-level gateway between AI agents and the systems they touch.
//!
//! How a connection moves through the crate:
//!
//! - [`listener`]: one accept loop shape for every endpoint: connection limit, a task
//!   and a `tracing` span per connection, two-phase shutdown signals.
//! - [`plugins`]: protocol session drivers ([`plugins::postgres`], [`plugins::ssh`]), and
//!   [`plugins::masked`], the stream masking that byte-stream plugins share. A plugin owns the
//!   sockets, uses a `protocols/` crate for the bytes, [`identity`] for who is asking,
//!   and the connection's stored [`secrets`] to open the upstream.
//! - [`identity`]: tokens (JWT via JWKS or HS256, API keys) to an [`identity::Identity`];
//!   the SSH plugin also maps registered public keys to identities.
//! - [`recording`]: every session, as forwarded, into a compressed, hash-chained log;
//!   `sessions`, `replay` and `verify` read it back.
//! - [`policy`]: `[[rules]]` and the fail-closed default turn one classified
//!   [`policy::Command`] into a [`policy::Verdict`], knowing no protocol; the Postgres
//!   gate asks it per statement, the SSH channel per exec command line, and
//!   `airlock explain` prints it.
//! - [`approvals`]: [`approvals::hold`] holds a command until an approver decides
//!   through the admin API (`airlock approvals/approve/deny`), for every protocol;
//!   grants and the webhook.
//! - [`masking`]: value detectors and a streaming masker for what flows back to agents.
//! - [`config`] / [`secrets`]: the TOML file, validated, and where credentials come from.
//! - [`tls`]: the certificate agents see and how upstreams are dialled.
//! - [`admin`] / [`metrics`]: `/healthz`, `/metrics` and the approvals API; [`signal`]: the cheap one-shot
//!   signal sessions poll for shutdown; [`net`]: plain-or-TLS streams.
//! - [`server`]: binds all endpoints and runs shutdown; [`demo`] wraps it with a
//!   throwaway PostgreSQL so a first run needs nothing but this binary.
//!
//! Format knowledge lives in the `protocols/` crates (`airlock-postgres`, `airlock-ssh`,
//! and `airlock-classes` for the classes every protocol shares); this crate decides what
//! to do with it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod approvals;
pub mod config;
pub mod console;
pub mod demo;
pub mod glob;
pub mod identity;
pub mod listener;
pub mod masking;
pub mod metrics;
pub mod net;
pub mod plugins;
pub mod policy;
pub mod private;
pub mod recording;
pub mod secrets;
pub mod server;
pub mod signal;
pub mod state;
pub mod tls;
