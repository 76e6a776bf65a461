//! Byte streams the plugins relay: plain TCP or TLS, behind one type.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Anything a session can read and write.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A boxed plain or TLS stream.
pub type BoxStream = Box<dyn AsyncStream>;
/// The reading half of a [`Stream`].
pub type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
/// The writing half of a [`Stream`].
pub type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// A connection to an agent or an upstream.
///
/// Plain TCP is kept apart from everything else so that splitting it for the relay
/// costs nothing: `TcpStream::into_split` halves need no lock, while a TLS stream's
/// halves share one.
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS (or anything else).
    Other(BoxStream),
}

impl Stream {
    /// Splits into independently usable halves.
    pub fn into_split(self) -> (BoxRead, BoxWrite) {
        match self {
            Stream::Tcp(tcp) => {
                let (r, w) = tcp.into_split();
                (Box::new(r), Box::new(w))
            }
            Stream::Other(other) => {
                let (r, w) = tokio::io::split(other);
                (Box::new(r), Box::new(w))
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
