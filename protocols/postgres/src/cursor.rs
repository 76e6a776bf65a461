//! A bounds-checked reader over a message body.

use crate::frame::ProtocolError;

/// Reads big-endian integers and NUL-terminated strings out of a byte slice, failing
/// with [`ProtocolError::Malformed`] instead of panicking when the peer sent too little.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`; `what` names the message in error reports.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Cursor { rest: bytes, what }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn malformed(&self) -> ProtocolError {
        ProtocolError::Malformed(self.what)
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or_else(|| self.malformed())?;
        self.rest = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a big-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a NUL-terminated string (without the NUL). Invalid UTF-8 is malformed:
    /// every string a gateway reads (names, parameters, messages) is text.
    pub fn cstr(&mut self) -> Result<&'a str, ProtocolError> {
        let s = self.cbytes()?;
        std::str::from_utf8(s).map_err(|_| self.malformed())
    }

    /// Reads a NUL-terminated byte string (without the NUL), in whatever encoding.
    pub fn cbytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let nul = self.rest.iter().position(|&b| b == 0).ok_or_else(|| self.malformed())?;
        let (s, tail) = self.rest.split_at(nul);
        self.rest = tail.get(1..).unwrap_or_default();
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_are_errors_not_panics() {
        let mut c = Cursor::new(&[0, 0, 1], "test");
        assert!(c.i32().is_err());
        let mut c = Cursor::new(b"abc", "test");
        assert!(c.cstr().is_err());
        let mut c = Cursor::new(b"abc\0\x00\x07", "test");
        assert_eq!(c.cstr().unwrap(), "abc");
        assert_eq!(c.i16().unwrap(), 7);
        assert!(c.is_empty());
        assert!(c.u8().is_err());
    }
}
