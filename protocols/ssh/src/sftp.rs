//! Stub.
use bytes::Bytes;
/// Error.
#[derive(Debug, thiserror::Error)]
#[error("sftp")]
pub struct SftpError;
/// Packet.
pub struct Packet {
    pub raw: Bytes,
    pub kind: u8,
    pub id: Option<u32>,
}
/// Framer.
#[derive(Default)]
pub struct Framer;
impl Framer {
    /// push
    pub fn push(&mut self, _b: &[u8]) {}
    /// next
    pub fn next(&mut self) -> Result<Option<Packet>, SftpError> {
        Ok(None)
    }
}
/// Request.
#[derive(Debug)]
pub enum Request {
    Realpath { path: String },
    Other,
}
/// Access.
pub enum Access {
    Read,
    Write,
    Unknown,
}
impl Request {
    /// access
    pub fn access(&self) -> Access {
        Access::Unknown
    }
    /// paths
    pub fn paths(&self) -> Vec<&str> {
        Vec::new()
    }
}
/// decode
pub fn decode_request(_p: &Packet) -> Result<(u32, Request), SftpError> {
    Err(SftpError)
}
/// normalize
pub fn normalize(p: &str) -> Option<String> {
    Some(p.to_owned())
}
/// perm
pub const PERMISSION_DENIED: u32 = 3;
/// status
pub fn status(_id: u32, _code: u32, _m: &str) -> Bytes {
    Bytes::new()
}
/// op
pub struct Op;
impl Op {
    /// json
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
/// Tracker
#[derive(Default)]
pub struct Tracker;
impl Tracker {
    /// req
    pub fn request(&mut self, _id: u32, _r: &Request) {}
    /// resp
    pub fn response(&mut self, _p: &Packet) -> Vec<Op> {
        Vec::new()
    }
}
