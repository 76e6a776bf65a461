//! Protocol plugins: session drivers that own the sockets and call into the core.
//!
//! A plugin turns an [`Incoming`](crate::listener::Incoming) connection into a session:
//! handshake, authentication through [`crate::identity`], the upstream connection, then
//! the relay loop. Format knowledge stays in the `protocols/` crates.

pub mod masked;
pub mod postgres;
