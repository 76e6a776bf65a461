//! Byte streams the plugins relay: plain TCP or TLS, behind one boxed type.

use tokio::io::{AsyncRead, AsyncWrite};

/// Anything a session can read and write.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A plain or TLS stream.
pub type BoxStream = Box<dyn AsyncStream>;
