//! How an SSH session is recorded: one [`Event`] per frame payload.
//!
//! ```text
//! event := tag:u8 channel:u32 body
//! ```
//!
//! Integers are big-endian, as on the SSH wire. Strings are the rest of the payload
//! (UTF-8 where the event is text). The recorder stores the payload as it is, and the
//! transcript decodes it; neither the gateway nor the recorder reads it back otherwise.

use thiserror::Error;

/// A payload that is not an event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad SSH record: {0}")]
pub struct RecordError(&'static str);

/// Which stream channel data travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// From the agent (a command's stdin, keys typed in a shell).
    In,
    /// Standard output, as the agent saw it (masked).
    Out,
    /// Standard error, as the agent saw it (masked).
    Err,
}

/// One recorded SSH event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// Channel data.
    Data { channel: u32, stream: Stream, bytes: &'a [u8] },
    /// An exec request, with its command line.
    Exec { channel: u32, command: &'a str },
    /// A shell request.
    Shell { channel: u32 },
    /// A subsystem request (`sftp`).
    Subsystem { channel: u32, name: &'a str },
    /// A pseudo-terminal request.
    Pty { channel: u32, cols: u32, rows: u32, term: &'a str },
    /// The terminal was resized.
    Resize { channel: u32, cols: u32, rows: u32 },
    /// A line typed in an interactive shell, rebuilt from the keys.
    Line { channel: u32, line: &'a str },
    /// The command exited with a status.
    Exit { channel: u32, status: u32 },
    /// The command was killed by a signal.
    ExitSignal { channel: u32, signal: &'a str },
    /// End of input from this side.
    Eof { channel: u32 },
    /// The channel closed.
    Close { channel: u32 },
    /// An SFTP operation, as JSON (see [`crate::sftp`]).
    Sftp { channel: u32, json: &'a str },
}

const DATA_IN: u8 = 0;
const DATA_OUT: u8 = 1;
const DATA_ERR: u8 = 2;
const EXEC: u8 = 3;
const SHELL: u8 = 4;
const SUBSYSTEM: u8 = 5;
const PTY: u8 = 6;
const RESIZE: u8 = 7;
const LINE: u8 = 8;
const EXIT: u8 = 9;
const EXIT_SIGNAL: u8 = 10;
const EOF: u8 = 11;
const CLOSE: u8 = 12;
const SFTP: u8 = 13;

impl<'a> Event<'a> {
    /// The channel it happened on.
    pub fn channel(&self) -> u32 {
        match *self {
            Event::Data { channel, .. }
            | Event::Exec { channel, .. }
            | Event::Shell { channel }
            | Event::Subsystem { channel, .. }
            | Event::Pty { channel, .. }
            | Event::Resize { channel, .. }
            | Event::Line { channel, .. }
            | Event::Exit { channel, .. }
            | Event::ExitSignal { channel, .. }
            | Event::Eof { channel }
            | Event::Close { channel }
            | Event::Sftp { channel, .. } => channel,
        }
    }

    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, body): (u8, Vec<u8>) = match *self {
            Event::Data { stream, bytes, .. } => {
                let tag = match stream {
                    Stream::In => DATA_IN,
                    Stream::Out => DATA_OUT,
                    Stream::Err => DATA_ERR,
                };
                (tag, bytes.to_vec())
            }
            Event::Exec { command, .. } => (EXEC, command.as_bytes().to_vec()),
            Event::Shell { .. } => (SHELL, Vec::new()),
            Event::Subsystem { name, .. } => (SUBSYSTEM, name.as_bytes().to_vec()),
            Event::Pty { cols, rows, term, .. } => {
                let mut b = Vec::with_capacity(8 + term.len());
                b.extend_from_slice(&cols.to_be_bytes());
                b.extend_from_slice(&rows.to_be_bytes());
                b.extend_from_slice(term.as_bytes());
                (PTY, b)
            }
            Event::Resize { cols, rows, .. } => {
                let mut b = cols.to_be_bytes().to_vec();
                b.extend_from_slice(&rows.to_be_bytes());
                (RESIZE, b)
            }
            Event::Line { line, .. } => (LINE, line.as_bytes().to_vec()),
            Event::Exit { status, .. } => (EXIT, status.to_be_bytes().to_vec()),
            Event::ExitSignal { signal, .. } => (EXIT_SIGNAL, signal.as_bytes().to_vec()),
            Event::Eof { .. } => (EOF, Vec::new()),
            Event::Close { .. } => (CLOSE, Vec::new()),
            Event::Sftp { json, .. } => (SFTP, json.as_bytes().to_vec()),
        };
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(tag);
        out.extend_from_slice(&self.channel().to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads a frame payload.
    pub fn decode(payload: &'a [u8]) -> Result<Event<'a>, RecordError> {
        let (&tag, rest) = payload.split_first().ok_or(RecordError("empty"))?;
        let (channel, body) = split_u32(rest).ok_or(RecordError("no channel"))?;
        let text = || std::str::from_utf8(body).map_err(|_| RecordError("text is not UTF-8"));
        let pair = || {
            let (a, rest) = split_u32(body).ok_or(RecordError("short size"))?;
            let (b, rest) = split_u32(rest).ok_or(RecordError("short size"))?;
            Ok::<_, RecordError>((a, b, rest))
        };
        Ok(match tag {
            DATA_IN => Event::Data { channel, stream: Stream::In, bytes: body },
            DATA_OUT => Event::Data { channel, stream: Stream::Out, bytes: body },
            DATA_ERR => Event::Data { channel, stream: Stream::Err, bytes: body },
            EXEC => Event::Exec { channel, command: text()? },
            SHELL => Event::Shell { channel },
            SUBSYSTEM => Event::Subsystem { channel, name: text()? },
            PTY => {
                let (cols, rows, term) = pair()?;
                let term = std::str::from_utf8(term).map_err(|_| RecordError("terminal is not UTF-8"))?;
                Event::Pty { channel, cols, rows, term }
            }
            RESIZE => {
                let (cols, rows, _) = pair()?;
                Event::Resize { channel, cols, rows }
            }
            LINE => Event::Line { channel, line: text()? },
            EXIT => Event::Exit { channel, status: split_u32(body).ok_or(RecordError("short status"))?.0 },
            EXIT_SIGNAL => Event::ExitSignal { channel, signal: text()? },
            EOF => Event::Eof { channel },
            CLOSE => Event::Close { channel },
            SFTP => Event::Sftp { channel, json: text()? },
            _ => return Err(RecordError("unknown tag")),
        })
    }
}

/// Bytes before the data in a [`Event::Data`] payload.
pub const DATA_HEADER: usize = 5;

/// The payload of [`Event::Data`], built in one copy of `bytes`: the data is then
/// `payload[DATA_HEADER..]`, so a relay can record the payload and send that slice
/// without copying the bytes again.
pub fn data_payload(channel: u32, stream: Stream, bytes: &[u8]) -> bytes::Bytes {
    let tag = match stream {
        Stream::In => DATA_IN,
        Stream::Out => DATA_OUT,
        Stream::Err => DATA_ERR,
    };
    let mut out = bytes::BytesMut::with_capacity(DATA_HEADER + bytes.len());
    out.extend_from_slice(&[tag]);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(bytes);
    out.freeze()
}

fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips() {
        let events = [
            Event::Data { channel: 1, stream: Stream::In, bytes: b"ls\r" },
            Event::Data { channel: 1, stream: Stream::Out, bytes: b"a\r\n" },
            Event::Data { channel: 2, stream: Stream::Err, bytes: b"" },
            Event::Exec { channel: 0, command: "uname -a" },
            Event::Shell { channel: 0 },
            Event::Subsystem { channel: 3, name: "sftp" },
            Event::Pty { channel: 0, cols: 80, rows: 24, term: "xterm" },
            Event::Resize { channel: 0, cols: 120, rows: 40 },
            Event::Line { channel: 0, line: "ls -l" },
            Event::Exit { channel: 0, status: 126 },
            Event::ExitSignal { channel: 0, signal: "KILL" },
            Event::Eof { channel: 9 },
            Event::Close { channel: u32::MAX },
            Event::Sftp { channel: 4, json: r#"{"op":"open"}"# },
        ];
        for e in events {
            assert_eq!(Event::decode(&e.encode()), Ok(e.clone()));
        }
    }

    #[test]
    fn data_payloads_are_data_events() {
        let p = data_payload(3, Stream::Err, b"oops");
        assert_eq!(Event::decode(&p), Ok(Event::Data { channel: 3, stream: Stream::Err, bytes: b"oops" }));
        assert_eq!(&p[DATA_HEADER..], b"oops");
    }

    #[test]
    fn damaged_payloads_are_errors() {
        for bad in [&b""[..], b"\x01", b"\x01\0\0\0", b"\x63\0\0\0\0", b"\x07\0\0\0\0\0\0\0\x50", b"\x03\0\0\0\0\xff"] {
            assert!(Event::decode(bad).is_err(), "{bad:?}");
        }
    }
}
