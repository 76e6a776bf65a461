//! Reading the tagged messages a gateway must understand, and building the ones it
//! sends on its own behalf.
//!
//! Builders encode through `pgwire`'s message types. Readers take a [`Frame`] body and
//! use [`Cursor`], so a short or lying message is an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::Message;
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus as PgTxStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey};

use crate::cursor::Cursor;
use crate::frame::{Frame, ProtocolError};

/// Frontend message tags.
pub mod tag {
    /// Simple Query.
    pub const QUERY: u8 = b'Q';
    /// Parse (extended protocol).
    pub const PARSE: u8 = b'P';
    /// Sync (extended protocol).
    pub const SYNC: u8 = b'S';
    /// Bind (extended protocol).
    pub const BIND: u8 = b'B';
    /// Execute (extended protocol).
    pub const EXECUTE: u8 = b'E';
    /// Close (extended protocol).
    pub const CLOSE: u8 = b'C';
    /// Describe (extended protocol, frontend).
    pub const DESCRIBE: u8 = b'D';

    /// RowDescription (backend).
    pub const ROW_DESCRIPTION: u8 = b'T';
    /// DataRow (backend).
    pub const DATA_ROW: u8 = b'D';
    /// NoData (backend).
    pub const NO_DATA: u8 = b'n';
    /// CommandComplete (backend).
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// EmptyQueryResponse (backend).
    pub const EMPTY_QUERY: u8 = b'I';
    /// PortalSuspended (backend).
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// CopyOutResponse (backend).
    pub const COPY_OUT: u8 = b'H';
    /// CopyData (both directions).
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone (both directions).
    pub const COPY_DONE: u8 = b'c';
    /// CopyFail (frontend).
    pub const COPY_FAIL: u8 = b'f';
    /// CopyInResponse (backend).
    pub const COPY_IN: u8 = b'G';
    /// CopyBothResponse (backend).
    pub const COPY_BOTH: u8 = b'W';
    /// FunctionCall (legacy fast-path).
    pub const FUNCTION_CALL: u8 = b'F';
    /// Terminate.
    pub const TERMINATE: u8 = b'X';
    /// PasswordMessage / SASL responses.
    pub const PASSWORD: u8 = b'p';

    /// Authentication request (backend).
    pub const AUTHENTICATION: u8 = b'R';
    /// ErrorResponse (backend).
    pub const ERROR_RESPONSE: u8 = b'E';
    /// NoticeResponse (backend).
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// ParameterStatus (backend).
    pub const PARAMETER_STATUS: u8 = b'S';
    /// NotificationResponse (backend).
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// BackendKeyData (backend).
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// ReadyForQuery (backend).
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// NegotiateProtocolVersion (backend).
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// Transaction state reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block.
    Failed,
}

impl TransactionStatus {
    fn to_pgwire(self) -> PgTxStatus {
        match self {
            TransactionStatus::Idle => PgTxStatus::Idle,
            TransactionStatus::InTransaction => PgTxStatus::Transaction,
            TransactionStatus::Failed => PgTxStatus::Error,
        }
    }
}

/// Reads a ReadyForQuery body.
pub fn parse_ready_for_query(body: &[u8]) -> Result<TransactionStatus, ProtocolError> {
    match body {
        b"I" => Ok(TransactionStatus::Idle),
        b"T" => Ok(TransactionStatus::InTransaction),
        b"E" => Ok(TransactionStatus::Failed),
        _ => Err(ProtocolError::Malformed("ReadyForQuery")),
    }
}

/// An authentication request from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationCleartextPassword.
    Cleartext,
    /// AuthenticationMD5Password with its salt.
    Md5 {
        /// Four random bytes to hash with.
        salt: [u8; 4],
    },
    /// AuthenticationSASL with the offered mechanisms.
    Sasl {
        /// e.g. `SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`.
        mechanisms: Vec<String>,
    },
    /// AuthenticationSASLContinue with server data.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal with server data.
    SaslFinal(Bytes),
    /// Kerberos, GSS, SSPI or anything else Airlock cannot answer.
    Unsupported(i32),
}

/// Reads an Authentication (`R`) body.
pub fn parse_auth_request(body: &[u8]) -> Result<AuthRequest, ProtocolError> {
    let mut c = Cursor::new(body, "Authentication");
    Ok(match c.i32()? {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let s = c.take(4)?;
            AuthRequest::Md5 { salt: [s[0], s[1], s[2], s[3]] }
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let m = c.cstr()?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m.to_owned());
            }
            AuthRequest::Sasl { mechanisms }
        }
        11 => AuthRequest::SaslContinue(Bytes::copy_from_slice(c.remaining())),
        12 => AuthRequest::SaslFinal(Bytes::copy_from_slice(c.remaining())),
        other => AuthRequest::Unsupported(other),
    })
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(u8, String)>);

impl Fields {
    /// Reads an ErrorResponse/NoticeResponse body.
    pub fn parse(body: &[u8]) -> Result<Fields, ProtocolError> {
        let mut c = Cursor::new(body, "ErrorResponse");
        let mut fields = Vec::new();
        loop {
            let code = c.u8()?;
            if code == 0 {
                return Ok(Fields(fields));
            }
            fields.push((code, c.cstr()?.to_owned()));
        }
    }

    /// The value of field `code` (`b'C'` SQLSTATE, `b'M'` message, ...).
    pub fn get(&self, code: u8) -> Option<&str> {
        self.0.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_str())
    }

    /// SQLSTATE.
    pub fn code(&self) -> &str {
        self.get(b'C').unwrap_or("")
    }

    /// Primary message.
    pub fn message(&self) -> &str {
        self.get(b'M').unwrap_or("")
    }
}

/// Reads a ParameterStatus body into `(name, value)`.
pub fn parse_parameter_status(body: &[u8]) -> Result<(&str, &str), ProtocolError> {
    let mut c = Cursor::new(body, "ParameterStatus");
    Ok((c.cstr()?, c.cstr()?))
}

/// Reads a BackendKeyData body into `(pid, secret)`.
pub fn parse_backend_key_data(body: &[u8]) -> Result<(i32, Bytes), ProtocolError> {
    let mut c = Cursor::new(body, "BackendKeyData");
    let pid = c.i32()?;
    let secret = c.remaining();
    if secret.len() < 4 || secret.len() > 256 {
        return Err(ProtocolError::Malformed("BackendKeyData"));
    }
    Ok((pid, Bytes::copy_from_slice(secret)))
}

/// Reads a PasswordMessage body (a cleartext password) as text.
pub fn parse_password(body: &[u8]) -> Result<&str, ProtocolError> {
    let mut c = Cursor::new(body, "PasswordMessage");
    let password = c.cstr()?;
    if !c.is_empty() {
        return Err(ProtocolError::Malformed("PasswordMessage"));
    }
    Ok(password)
}

/// Severity of an ErrorResponse Airlock sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

fn encode(msg: &impl Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(msg.message_length() + 1);
    // Encoding can fail only when a message exceeds pgwire's per-type cap; every
    // message built here is small and bounded by the caller's own text.
    if msg.encode(&mut buf).is_err() {
        buf.clear();
    }
    buf.freeze()
}

fn report_fields(severity: &str, code: &str, message: &str, hint: Option<&str>) -> Vec<(u8, String)> {
    let mut fields = vec![
        (b'S', severity.to_owned()),
        (b'V', severity.to_owned()),
        (b'C', code.to_owned()),
        (b'M', message.to_owned()),
    ];
    if let Some(hint) = hint {
        fields.push((b'H', hint.to_owned()));
    }
    fields
}

/// An ErrorResponse with SQLSTATE `code`, `message` and an optional `hint`.
pub fn error_response(severity: Severity, code: &str, message: &str, hint: Option<&str>) -> Bytes {
    encode(&ErrorResponse::new(report_fields(severity.as_str(), code, message, hint)))
}

/// A NoticeResponse (severity NOTICE, SQLSTATE 00000 unless given).
pub fn notice_response(code: &str, message: &str, hint: Option<&str>) -> Bytes {
    encode(&NoticeResponse::new(report_fields("NOTICE", code, message, hint)))
}

/// AuthenticationOk.
pub fn auth_ok() -> Bytes {
    encode(&Authentication::Ok)
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext_password() -> Bytes {
    encode(&Authentication::CleartextPassword)
}

/// ParameterStatus.
pub fn parameter_status(name: &str, value: &str) -> Bytes {
    encode(&ParameterStatus::new(name.to_owned(), value.to_owned()))
}

/// BackendKeyData with a 4-byte (protocol 3.0) secret.
pub fn backend_key_data(pid: i32, secret: i32) -> Bytes {
    encode(&BackendKeyData::new(pid, SecretKey::I32(secret)))
}

/// ReadyForQuery.
pub fn ready_for_query(status: TransactionStatus) -> Bytes {
    encode(&ReadyForQuery::new(status.to_pgwire()))
}

/// NegotiateProtocolVersion: Airlock speaks 3.0 and none of the `_pq_` options.
pub fn negotiate_protocol_version(unsupported: Vec<String>) -> Bytes {
    encode(&NegotiateProtocolVersion::new(0, unsupported))
}

/// A frontend PasswordMessage carrying `payload` verbatim (cleartext password with its
/// NUL, or an MD5 hash string with its NUL).
pub fn password_message(payload: &[u8]) -> Bytes {
    tagged(tag::PASSWORD, |b| b.put_slice(payload))
}

/// SASLInitialResponse.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Bytes {
    tagged(tag::PASSWORD, |b| {
        b.put_slice(mechanism.as_bytes());
        b.put_u8(0);
        // SCRAM client-first messages are a few dozen bytes.
        b.put_i32(data.len() as i32);
        b.put_slice(data);
    })
}

/// SASLResponse.
pub fn sasl_response(data: &[u8]) -> Bytes {
    tagged(tag::PASSWORD, |b| b.put_slice(data))
}

// Statement text and names are read as bytes: the session's client_encoding need not
// be UTF-8, and SQL keywords are ASCII in every encoding PostgreSQL allows clients.

/// The statement text of a Query message.
pub fn parse_query(body: &[u8]) -> Result<&[u8], ProtocolError> {
    Cursor::new(body, "Query").cbytes()
}

/// The statement name and text of a Parse message.
pub fn parse_parse(body: &[u8]) -> Result<(&[u8], &[u8]), ProtocolError> {
    let mut c = Cursor::new(body, "Parse");
    Ok((c.cbytes()?, c.cbytes()?))
}

/// The portal and statement names of a Bind message.
pub fn parse_bind(body: &[u8]) -> Result<(&[u8], &[u8]), ProtocolError> {
    let mut c = Cursor::new(body, "Bind");
    Ok((c.cbytes()?, c.cbytes()?))
}

/// The portal name of an Execute message.
pub fn parse_execute(body: &[u8]) -> Result<&[u8], ProtocolError> {
    Cursor::new(body, "Execute").cbytes()
}

/// What a Close message closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseTarget {
    /// A prepared statement.
    Statement,
    /// A portal.
    Portal,
}

/// The target and name of a Close message.
pub fn parse_close(body: &[u8]) -> Result<(CloseTarget, &[u8]), ProtocolError> {
    let mut c = Cursor::new(body, "Close");
    let target = match c.u8()? {
        b'S' => CloseTarget::Statement,
        b'P' => CloseTarget::Portal,
        _ => return Err(ProtocolError::Malformed("Close")),
    };
    Ok((target, c.cbytes()?))
}

/// The target and name of a Describe message (same shape as Close).
pub fn parse_describe(body: &[u8]) -> Result<(CloseTarget, &[u8]), ProtocolError> {
    parse_close(body).map_err(|_| ProtocolError::Malformed("Describe"))
}

/// The rows a DELETE, UPDATE, MERGE or INSERT changed, from its CommandComplete body
/// (`DELETE 5`, `INSERT 0 5`); `None` for any other command tag.
pub fn rows_changed(body: &[u8]) -> Option<u64> {
    let tag = std::str::from_utf8(body.strip_suffix(&[0]).unwrap_or(body)).ok()?;
    let mut words = tag.split(' ');
    if !matches!(words.next()?, "DELETE" | "UPDATE" | "MERGE" | "INSERT") {
        return None;
    }
    words.next_back()?.parse().ok()
}

/// A Simple Query message.
pub fn query(sql: &str) -> Bytes {
    tagged(tag::QUERY, |b| {
        b.put_slice(sql.as_bytes());
        b.put_u8(0);
    })
}

/// Parse of an unnamed statement without parameter types.
pub fn parse(sql: &str) -> Bytes {
    parse_named("", sql)
}

/// Parse of statement `name` without parameter types.
pub fn parse_named(name: &str, sql: &str) -> Bytes {
    tagged(tag::PARSE, |b| {
        b.put_slice(name.as_bytes());
        b.put_u8(0);
        b.put_slice(sql.as_bytes());
        b.put_u8(0);
        b.put_i16(0);
    })
}

/// Flush: the server sends what it has buffered.
pub fn flush() -> Bytes {
    tagged(b'H', |_| {})
}

/// Describe of the unnamed statement.
pub fn describe_unnamed_statement() -> Bytes {
    tagged(tag::DESCRIBE, |b| {
        b.put_u8(b'S');
        b.put_u8(0);
    })
}

/// Sync.
pub fn sync() -> Bytes {
    tagged(tag::SYNC, |_| {})
}

/// Terminate.
pub fn terminate() -> Bytes {
    tagged(tag::TERMINATE, |_| {})
}

fn tagged(tag: u8, body: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u8(tag);
    buf.put_i32(0);
    body(&mut buf);
    set_length(&mut buf);
    buf.freeze()
}

/// Fills in the length field of a tagged message built in place: `message` holds the
/// tag, four placeholder bytes and the whole body. Messages are capped far below
/// `i32::MAX` (`frame::MAX_MESSAGE_LEN`), so the length fits.
pub fn set_length(message: &mut [u8]) {
    let len = (message.len().saturating_sub(1)) as i32;
    if let Some(field) = message.get_mut(1..5) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// Splits `frame` into a tag and body after checking it is a whole message (helper for
/// callers that hold raw bytes from elsewhere).
pub fn frame_from(raw: Bytes) -> Result<Frame, ProtocolError> {
    let len = raw
        .get(1..5)
        .map(|l| i32::from_be_bytes([l[0], l[1], l[2], l[3]]))
        .ok_or(ProtocolError::Malformed("message header"))?;
    if len < 4 || len as usize + 1 != raw.len() {
        return Err(ProtocolError::Malformed("message length"));
    }
    Ok(Frame::from_raw(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &Bytes) -> &[u8] {
        &raw[5..]
    }

    #[test]
    fn rows_changed_reads_only_row_changing_tags() {
        assert_eq!(rows_changed(b"DELETE 5000\0"), Some(5000));
        assert_eq!(rows_changed(b"INSERT 0 3\0"), Some(3));
        assert_eq!(rows_changed(b"MERGE 0"), Some(0));
        assert_eq!(rows_changed(b"SELECT 7\0"), None);
        assert_eq!(rows_changed(b"UPDATE x\0"), None);
        assert_eq!(rows_changed(b"DELETE\0"), None);
    }

    #[test]
    fn error_response_round_trips() {
        let raw = error_response(Severity::Error, "42501", "denied", Some("ask an approver"));
        assert_eq!(raw[0], b'E');
        let f = Fields::parse(body(&raw)).unwrap();
        assert_eq!(f.code(), "42501");
        assert_eq!(f.message(), "denied");
        assert_eq!(f.get(b'H'), Some("ask an approver"));
        assert_eq!(f.get(b'S'), Some("ERROR"));
        assert!(frame_from(raw).is_ok());
    }

    #[test]
    fn frontend_readers() {
        assert_eq!(parse_query(b"select 1\0").unwrap(), b"select 1");
        assert_eq!(parse_parse(b"s1\0drop table t\0\0\0").unwrap(), (&b"s1"[..], &b"drop table t"[..]));
        assert_eq!(parse_bind(b"p\0s1\0\0\0").unwrap(), (&b"p"[..], &b"s1"[..]));
        assert_eq!(parse_execute(b"\0\0\0\0\0").unwrap(), b"");
        assert_eq!(parse_close(b"Sname\0").unwrap(), (CloseTarget::Statement, &b"name"[..]));
        assert!(parse_close(b"Xname\0").is_err());
        assert!(parse_parse(b"s1\0drop").is_err());
        assert_eq!(sync()[..], [b'S', 0, 0, 0, 4]);
    }

    #[test]
    fn short_bodies_are_errors() {
        assert!(Fields::parse(b"Cabc").is_err());
        assert!(Fields::parse(b"").is_err());
        assert!(parse_auth_request(&[0, 0, 0]).is_err());
        assert!(parse_auth_request(&[0, 0, 0, 5, 1, 2]).is_err());
        assert!(parse_backend_key_data(&[0, 0, 0, 1]).is_err());
        assert!(parse_ready_for_query(b"X").is_err());
        assert!(parse_password(b"abc").is_err());
    }

    #[test]
    fn auth_requests() {
        assert_eq!(parse_auth_request(body(&auth_ok())).unwrap(), AuthRequest::Ok);
        assert_eq!(parse_auth_request(body(&auth_cleartext_password())).unwrap(), AuthRequest::Cleartext);
        assert_eq!(
            parse_auth_request(&[0, 0, 0, 10, b'S', b'C', 0, 0]).unwrap(),
            AuthRequest::Sasl { mechanisms: vec!["SC".into()] }
        );
        assert_eq!(parse_auth_request(&[0, 0, 0, 5, 1, 2, 3, 4]).unwrap(), AuthRequest::Md5 { salt: [1, 2, 3, 4] });
    }

    #[test]
    fn key_data_and_status() {
        let raw = backend_key_data(7, 99);
        let (pid, secret) = parse_backend_key_data(body(&raw)).unwrap();
        assert_eq!(pid, 7);
        assert_eq!(&secret[..], &99i32.to_be_bytes());
        let raw = ready_for_query(TransactionStatus::InTransaction);
        assert_eq!(parse_ready_for_query(body(&raw)).unwrap(), TransactionStatus::InTransaction);
        let raw = parameter_status("TimeZone", "UTC");
        assert_eq!(parse_parameter_status(body(&raw)).unwrap(), ("TimeZone", "UTC"));
        let raw = password_message(b"secret\0");
        assert_eq!(parse_password(body(&raw)).unwrap(), "secret");
    }
}
