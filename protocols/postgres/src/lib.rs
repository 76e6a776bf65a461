//! PostgreSQL wire-protocol knowledge for Airlock. No sockets, no policy: bytes in,
//! messages out.
//!
//! - [`frame`]: splits a byte stream into whole messages (`Ok(Some)`), asks for more
//!   (`Ok(None)`) or names the protocol violation (`Err`). Messages the caller does not
//!   need to look at pass through as raw byte runs, so large rows are never buffered.
//! - [`startup`]: the untagged packets that open a connection (SSLRequest,
//!   GSSENCRequest, CancelRequest, StartupMessage) and the startup message we send
//!   upstream.
//! - [`message`]: reading the few tagged messages a gateway must understand
//!   (authentication requests, ErrorResponse, ParameterStatus, BackendKeyData,
//!   ReadyForQuery, PasswordMessage) and building the ones it sends itself.
//! - [`describe`]: decoding any message for display (recording replay).
//! - [`sql`]: SQL lexing, statement splitting and classification (for policy).
//! - [`copy`]: what a `COPY ... TO STDOUT` reads and in what layout, and its data lines.
//! - [`types`]: built-in data types by OID, and what their values can carry.
//! - [`transcript`]: a recorded session read back as text or JSON lines.
//! - [`node_tree`]: the server's stored query trees (where a view's columns come from).
//! - [`cursor`]: a bounds-checked reader every parser here goes through.
//!
//! Data flows: socket bytes -> [`frame::Scanner`] -> [`frame::Chunk`] -> (gateway
//! decides) -> bytes out. Encoders reuse `pgwire`'s message types; decoding of peer
//! bytes is done here with checked reads so that no peer input can panic.
#![forbid(unsafe_code)]

pub mod copy;
pub mod cursor;
pub mod describe;
pub mod frame;
pub mod message;
pub mod node_tree;
pub mod sql;
pub mod startup;
pub mod transcript;
pub mod types;

pub use frame::{Chunk, Disposition, Frame, Header, ProtocolError, Scanner};
