//! The on-disk format of recordings: frames, blocks and segments. Pure functions of
//! bytes, so the reader can be fuzzed and a damaged file can only produce errors.
//!
//! ```text
//! segment := header block* footer?
//! header  := "ALKSEG02" segment:u64 created_us:u64 prev_hash:[32] nretired:u32
//!            (segment:u64 last_hash:[32])*nretired replica_len:u8 replica
//!            nuploaded:u32 (segment:u64 last_hash:[32])*nuploaded crc:u32
//! block   := "BLK1" payload_len:u32 raw_len:u32 frames:u32 prev_hash:[32] crc:u32 payload
//! footer  := "END1" blocks:u64 final_hash:[32] sig_len:u32 sig crc:u32
//! frame   := session:u64 seq:u64 ts_us:u64 direction:u8 kind:u8 len:u32 payload
//! ```
//!
//! Integers are little-endian. `payload` is a zstd-compressed run of frames. A block's
//! hash is SHA-256 over its header (CRC excluded) and payload; the next block names it
//! in `prev_hash`, across segment boundaries, so removing, reordering or editing any
//! block breaks the chain. CRC32C catches torn writes cheaply before hashing.
//!
//! Each replica of a fleet keeps its own chain and names itself in every header; a
//! header lists the segments shipped to object storage since the previous header. A
//! version 2 header is itself in the chain: the segment's first block names the
//! header's SHA-256 (which covers `prev_hash`) as its `prev_hash`, so a header's
//! retired and uploaded lists cannot be edited without breaking the chain. A version 1
//! header (`ALKSEG01`) has none of this (its first block names `prev_hash`) and still
//! reads.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Segment file magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"ALKSEG02";
/// The first version's magic: no replica, no uploads.
pub const SEGMENT_MAGIC_V1: &[u8; 8] = b"ALKSEG01";
/// Longest replica name in a header.
pub const MAX_REPLICA_LEN: usize = 255;
/// Block magic.
pub const BLOCK_MAGIC: &[u8; 4] = b"BLK1";
/// Footer magic.
pub const FOOTER_MAGIC: &[u8; 4] = b"END1";
/// Fixed part of a block header.
pub const BLOCK_HEADER_LEN: usize = 4 + 4 + 4 + 4 + 32 + 4;
/// Fixed part of a frame.
pub const FRAME_HEADER_LEN: usize = 8 + 8 + 8 + 1 + 1 + 4;
/// Largest compressed or uncompressed block accepted when reading.
pub const MAX_BLOCK_LEN: usize = 256 << 20;
/// Largest frame payload accepted.
pub const MAX_FRAME_LEN: usize = 64 << 20;
/// Largest number of retired segments one header may list.
pub const MAX_RETIRED: usize = 1 << 20;

/// The payload of a session's first frame (`Kind::SessionStart`), as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionStart {
    /// The identity's subject.
    pub subject: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// The connection's name.
    pub connection: String,
    /// `postgres`, `ssh` or `http`: which transcript decoder reads the traffic.
    pub protocol: String,
    /// The agent's address.
    pub client: String,
    /// Whether the agent spoke TLS.
    pub tls: bool,
    /// The account Airlock logged in as upstream.
    pub upstream_user: Option<String>,
    /// The Airlock that recorded it.
    pub airlock_version: String,
}

/// The payload of a session's last frame (`Kind::SessionEnd`), as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionEnd {
    /// How it ended (`Terminated`, `AgentClosed`, ... or an error).
    pub reason: String,
    /// Statements, commands or requests seen.
    pub statements: u64,
    /// How long it lasted.
    pub duration_ms: u64,
    /// Bytes relayed towards the upstream.
    pub bytes_to_upstream: u64,
    /// Bytes relayed towards the agent.
    pub bytes_to_agent: u64,
    /// Policy events in the session by name (`held`, `denied`...), counted by the
    /// recorder from the session's verdict frames.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub verdicts: std::collections::BTreeMap<String, u64>,
}

/// What happened under policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyEvent {
    /// Refused, by policy or by an approver.
    #[default]
    Denied,
    /// Allowed by an earlier approval's grant.
    Granted,
    /// Held for approval.
    Held,
    /// Approved.
    Approved,
    /// Nobody decided in time.
    Expired,
    /// The agent cancelled it while it waited.
    Canceled,
    /// The agent left while it waited.
    Withdrawn,
    /// The rows-affected guard counted what it changed.
    Counted,
    /// Still undecided when the agent's wait ended (HTTP): the agent may retry with
    /// the approval's id.
    Parked,
}

impl PolicyEvent {
    /// Every event, in declaration order.
    pub const ALL: [PolicyEvent; 9] = [
        PolicyEvent::Denied,
        PolicyEvent::Granted,
        PolicyEvent::Held,
        PolicyEvent::Approved,
        PolicyEvent::Expired,
        PolicyEvent::Canceled,
        PolicyEvent::Withdrawn,
        PolicyEvent::Counted,
        PolicyEvent::Parked,
    ];

    /// Its name, as recorded and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyEvent::Denied => "denied",
            PolicyEvent::Granted => "granted",
            PolicyEvent::Held => "held",
            PolicyEvent::Approved => "approved",
            PolicyEvent::Expired => "expired",
            PolicyEvent::Canceled => "canceled",
            PolicyEvent::Withdrawn => "withdrawn",
            PolicyEvent::Counted => "counted",
            PolicyEvent::Parked => "parked",
        }
    }
}

/// The payload of a policy event frame (`Kind::Verdict`), as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerdictEvent {
    /// What happened.
    pub event: PolicyEvent,
    /// The approval request, once one was filed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The statement, command or request.
    pub statement: String,
    /// Its classes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The rule that decided.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// Why.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The approver who decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The approver's own reason, for a denial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver_reason: Option<String>,
    /// For `counted`: the rows it changed, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// ... the most it may change, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// ... and what became of it (`committed`, `rolled back and held`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// Which way recorded bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Not traffic (session events, verdicts).
    None = 0,
    /// From the agent towards the upstream.
    ToUpstream = 1,
    /// From the upstream towards the agent.
    ToAgent = 2,
}

impl Direction {
    fn from_u8(b: u8) -> Option<Direction> {
        Some(match b {
            0 => Direction::None,
            1 => Direction::ToUpstream,
            2 => Direction::ToAgent,
            _ => return None,
        })
    }

    /// Name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::None => "none",
            Direction::ToUpstream => "to_upstream",
            Direction::ToAgent => "to_agent",
        }
    }
}

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Session start: JSON with identity, connection, protocol, client, version.
    SessionStart = 1,
    /// Session end: JSON with reason, counts, duration.
    SessionEnd = 2,
    /// Raw PostgreSQL frontend messages, exactly as forwarded upstream.
    PgFrontend = 10,
    /// Raw PostgreSQL backend messages, exactly as sent to the agent.
    PgBackend = 11,
    /// An SSH event from the agent (`airlock_ssh::record::Event`: input, requests).
    SshAgent = 30,
    /// An SSH event towards the agent (output as the agent saw it, exits, SFTP results).
    SshHost = 31,
    /// An HTTP event from the agent (`airlock_http::record::Event`: request heads and
    /// bodies, upgraded bytes).
    HttpAgent = 40,
    /// An HTTP event towards the agent (response heads and bodies as the agent saw them).
    HttpUpstream = 41,
    /// A policy verdict or approval event: JSON with the statement, classes, decision,
    /// rule, and for approvals the id, outcome and approver.
    Verdict = 20,
}

impl Kind {
    /// Whether frames of this kind carry a protocol's traffic (which its transcript
    /// decodes), not a record of Airlock's own.
    pub fn is_traffic(self) -> bool {
        matches!(
            self,
            Kind::PgFrontend | Kind::PgBackend | Kind::SshAgent | Kind::SshHost | Kind::HttpAgent | Kind::HttpUpstream
        )
    }

    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::SessionStart,
            2 => Kind::SessionEnd,
            10 => Kind::PgFrontend,
            11 => Kind::PgBackend,
            30 => Kind::SshAgent,
            31 => Kind::SshHost,
            40 => Kind::HttpAgent,
            41 => Kind::HttpUpstream,
            20 => Kind::Verdict,
            _ => return None,
        })
    }

    /// Name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::SessionEnd => "session_end",
            Kind::PgFrontend => "pg_frontend",
            Kind::PgBackend => "pg_backend",
            Kind::SshAgent => "ssh_agent",
            Kind::SshHost => "ssh_host",
            Kind::HttpAgent => "http_agent",
            Kind::HttpUpstream => "http_upstream",
            Kind::Verdict => "verdict",
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Session id.
    pub session: u64,
    /// Per-session sequence number, from 0.
    pub seq: u64,
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    /// Direction of the bytes.
    pub direction: Direction,
    /// What the payload is.
    pub kind: Kind,
    /// The payload.
    pub payload: bytes::Bytes,
}

/// A format violation: where reading stopped and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Fewer bytes than the structure needs (a torn tail when at the end of a file).
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Wrong magic bytes.
    #[error("bad magic in {0}")]
    BadMagic(&'static str),
    /// CRC mismatch.
    #[error("CRC mismatch in {0}")]
    BadCrc(&'static str),
    /// A length or count over its cap.
    #[error("{0} length {1} over the limit")]
    TooLarge(&'static str, usize),
    /// A field with an impossible value.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// zstd refused the payload.
    #[error("block payload does not decompress: {0}")]
    Decompress(String),
}

struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(FormatError::Truncated(self.what))?;
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// A segment header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment number (also its file name).
    pub segment: u64,
    /// Creation time, µs since the epoch.
    pub created_us: u64,
    /// Hash of the last block written before this segment (zeros for the first).
    pub prev_hash: Hash,
    /// Segments deleted by retention since the previous segment, with their last
    /// block hash, so verification can tell retirement from tampering.
    pub retired: Vec<(u64, Hash)>,
    /// The replica whose chain this is (empty in version 1 headers).
    pub replica: String,
    /// Segments uploaded to object storage (and verified there) since the previous
    /// segment, with their last block hash.
    pub uploaded: Vec<(u64, Hash)>,
}

impl SegmentHeader {
    /// What the segment's first block names as its `prev_hash`, given the header's
    /// bytes: their SHA-256 for a version 2 header, `prev_hash` for a version 1 one.
    pub fn chain_start(&self, encoded: &[u8]) -> Hash {
        if encoded.starts_with(SEGMENT_MAGIC) { Sha256::digest(encoded).into() } else { self.prev_hash }
    }

    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + (self.retired.len() + self.uploaded.len()) * 40 + self.replica.len());
        out.extend_from_slice(SEGMENT_MAGIC);
        out.extend_from_slice(&self.segment.to_le_bytes());
        out.extend_from_slice(&self.created_us.to_le_bytes());
        out.extend_from_slice(&self.prev_hash);
        let list = |out: &mut Vec<u8>, items: &[(u64, Hash)]| {
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for (n, h) in items {
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(h);
            }
        };
        list(&mut out, &self.retired);
        // Names are checked where they are configured; a longer one is cut, not fatal.
        let replica = &self.replica.as_bytes()[..self.replica.len().min(MAX_REPLICA_LEN)];
        out.push(replica.len() as u8);
        out.extend_from_slice(replica);
        list(&mut out, &self.uploaded);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header from the start of `bytes`; returns it and its length.
    pub fn decode(bytes: &[u8]) -> Result<(SegmentHeader, usize), FormatError> {
        let mut r = Reader { rest: bytes, what: "segment header" };
        let v2 = match r.take(8)? {
            m if m == SEGMENT_MAGIC => true,
            m if m == SEGMENT_MAGIC_V1 => false,
            _ => return Err(FormatError::BadMagic("segment header")),
        };
        let segment = r.u64()?;
        let created_us = r.u64()?;
        let prev_hash = r.array()?;
        let list = |r: &mut Reader<'_>, what: &'static str| -> Result<Vec<(u64, Hash)>, FormatError> {
            let n = r.u32()? as usize;
            if n > MAX_RETIRED {
                return Err(FormatError::TooLarge(what, n));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push((r.u64()?, r.array()?));
            }
            Ok(items)
        };
        let retired = list(&mut r, "retired list")?;
        let (replica, uploaded) = if v2 {
            let len = r.take(1)?[0] as usize;
            let name = String::from_utf8_lossy(r.take(len)?).into_owned();
            (name, list(&mut r, "uploaded list")?)
        } else {
            (String::new(), Vec::new())
        };
        let len = bytes.len() - r.rest.len();
        let crc = r.u32()?;
        if crc != crc32c::crc32c(bytes.get(..len).unwrap_or_default()) {
            return Err(FormatError::BadCrc("segment header"));
        }
        Ok((SegmentHeader { segment, created_us, prev_hash, retired, replica, uploaded }, len + 4))
    }
}

/// A decoded block header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// Compressed payload length.
    pub payload_len: usize,
    /// Uncompressed length.
    pub raw_len: usize,
    /// Frames in the block.
    pub frames: u32,
    /// Hash of the previous block.
    pub prev_hash: Hash,
}

/// Builds blocks, reusing its compression context and buffers from block to block.
pub struct BlockEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    payload: Vec<u8>,
    out: Vec<u8>,
}

impl BlockEncoder {
    /// An encoder compressing at zstd `level`.
    pub fn new(level: i32) -> std::io::Result<BlockEncoder> {
        Ok(BlockEncoder { compressor: zstd::bulk::Compressor::new(level)?, payload: Vec::new(), out: Vec::new() })
    }

    /// Builds a block from encoded frames; returns its bytes and its hash.
    pub fn encode(&mut self, raw: &[u8], frames: u32, prev_hash: &Hash) -> std::io::Result<(&[u8], Hash)> {
        self.payload.clear();
        self.payload.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        self.compressor.compress_to_buffer(raw, &mut self.payload)?;
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(BLOCK_MAGIC);
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&frames.to_le_bytes());
        out.extend_from_slice(prev_hash);
        let crc = crc32c::crc32c_append(crc32c::crc32c(out), &self.payload);
        let hash = block_hash(out, &self.payload);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&self.payload);
        Ok((out, hash))
    }
}

/// Builds one block with a fresh encoder (tests and tools).
pub fn encode_block(raw: &[u8], frames: u32, prev_hash: &Hash, level: i32) -> std::io::Result<(Vec<u8>, Hash)> {
    let mut encoder = BlockEncoder::new(level)?;
    let (bytes, hash) = encoder.encode(raw, frames, prev_hash)?;
    Ok((bytes.to_vec(), hash))
}

fn block_hash(header: &[u8], payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(header);
    h.update(payload);
    h.finalize().into()
}

/// What starts at a position in a segment after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A block: header, compressed payload, its hash, total length.
    Block {
        /// Header fields.
        header: BlockHeader,
        /// Compressed payload.
        payload: &'a [u8],
        /// The block's hash.
        hash: Hash,
        /// Bytes the block occupies.
        len: usize,
    },
    /// The footer of a sealed segment.
    Footer {
        /// Footer fields.
        footer: Footer,
        /// Bytes the footer occupies.
        len: usize,
    },
}

/// The footer that seals a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Blocks in the segment.
    pub blocks: u64,
    /// Hash of the last block (or the segment's `prev_hash` if it has none).
    pub final_hash: Hash,
    /// Ed25519 signature over `segment || final_hash`, if signing is on.
    pub signature: Vec<u8>,
}

impl Footer {
    /// Encodes the footer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52 + self.signature.len());
        out.extend_from_slice(FOOTER_MAGIC);
        out.extend_from_slice(&self.blocks.to_le_bytes());
        out.extend_from_slice(&self.final_hash);
        out.extend_from_slice(&(self.signature.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.signature);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// The message an Ed25519 segment signature covers.
pub fn signed_message(segment: u64, final_hash: &Hash) -> Vec<u8> {
    let mut m = b"airlock-segment".to_vec();
    m.extend_from_slice(&segment.to_le_bytes());
    m.extend_from_slice(final_hash);
    m
}

/// Decodes the block or footer at the start of `bytes`.
pub fn decode_item(bytes: &[u8]) -> Result<Item<'_>, FormatError> {
    let mut r = Reader { rest: bytes, what: "block" };
    let magic = r.take(4)?;
    if magic == FOOTER_MAGIC {
        r.what = "footer";
        let blocks = r.u64()?;
        let final_hash = r.array()?;
        let sig_len = r.u32()? as usize;
        if sig_len > 1024 {
            return Err(FormatError::TooLarge("signature", sig_len));
        }
        let signature = r.take(sig_len)?.to_vec();
        let len = bytes.len() - r.rest.len();
        let crc = r.u32()?;
        if crc != crc32c::crc32c(bytes.get(..len).unwrap_or_default()) {
            return Err(FormatError::BadCrc("footer"));
        }
        return Ok(Item::Footer { footer: Footer { blocks, final_hash, signature }, len: len + 4 });
    }
    if magic != BLOCK_MAGIC {
        return Err(FormatError::BadMagic("block"));
    }
    let payload_len = r.u32()? as usize;
    let raw_len = r.u32()? as usize;
    let frames = r.u32()?;
    let prev_hash = r.array()?;
    let header_len = bytes.len() - r.rest.len();
    let crc = r.u32()?;
    if payload_len > MAX_BLOCK_LEN || raw_len > MAX_BLOCK_LEN {
        return Err(FormatError::TooLarge("block", payload_len.max(raw_len)));
    }
    let payload = r.take(payload_len)?;
    let header_bytes = bytes.get(..header_len).unwrap_or_default();
    if crc != crc32c::crc32c_append(crc32c::crc32c(header_bytes), payload) {
        return Err(FormatError::BadCrc("block"));
    }
    let hash = block_hash(header_bytes, payload);
    Ok(Item::Block {
        header: BlockHeader { payload_len, raw_len, frames, prev_hash },
        payload,
        hash,
        len: header_len + 4 + payload_len,
    })
}

/// Decompresses a block payload and decodes its frames.
pub fn decode_frames(header: &BlockHeader, payload: &[u8]) -> Result<Vec<Frame>, FormatError> {
    let raw = zstd::bulk::decompress(payload, header.raw_len).map_err(|e| FormatError::Decompress(e.to_string()))?;
    if raw.len() != header.raw_len {
        return Err(FormatError::Invalid("block raw length"));
    }
    let raw = bytes::Bytes::from(raw);
    let mut frames = Vec::with_capacity(header.frames.min(1 << 16) as usize);
    let mut offset = 0;
    while offset < raw.len() {
        let (frame, len) = decode_frame(&raw, offset)?;
        frames.push(frame);
        offset += len;
    }
    if frames.len() != header.frames as usize {
        return Err(FormatError::Invalid("block frame count"));
    }
    Ok(frames)
}

/// Appends one encoded frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, f: &Frame) {
    out.extend_from_slice(&f.session.to_le_bytes());
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(&f.ts_us.to_le_bytes());
    out.push(f.direction as u8);
    out.push(f.kind as u8);
    // Payloads are capped at MAX_FRAME_LEN by the recorder.
    out.extend_from_slice(&(f.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&f.payload);
}

fn decode_frame(raw: &bytes::Bytes, offset: usize) -> Result<(Frame, usize), FormatError> {
    let mut r = Reader { rest: raw.get(offset..).unwrap_or_default(), what: "frame" };
    let session = r.u64()?;
    let seq = r.u64()?;
    let ts_us = r.u64()?;
    let direction = Direction::from_u8(r.u8()?).ok_or(FormatError::Invalid("frame direction"))?;
    let kind = Kind::from_u8(r.u8()?).ok_or(FormatError::Invalid("frame kind"))?;
    let len = r.u32()? as usize;
    if len > MAX_FRAME_LEN {
        return Err(FormatError::TooLarge("frame", len));
    }
    r.take(len)?;
    let start = offset + FRAME_HEADER_LEN;
    Ok((Frame { session, seq, ts_us, direction, kind, payload: raw.slice(start..start + len) }, FRAME_HEADER_LEN + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(session: u64, seq: u64, payload: Vec<u8>) -> Frame {
        Frame {
            session,
            seq,
            ts_us: 1_700_000_000_000_000 + seq,
            direction: Direction::ToAgent,
            kind: Kind::PgBackend,
            payload: payload.into(),
        }
    }

    #[test]
    fn header_and_footer_round_trip() {
        let h = SegmentHeader {
            segment: 7,
            created_us: 1,
            prev_hash: [3; 32],
            retired: vec![(5, [9; 32])],
            replica: "airlock-0".into(),
            uploaded: vec![(4, [8; 32]), (6, [7; 32])],
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), (h, bytes.len()));
        // A version 1 header (no replica, no uploads) still reads.
        let mut v1 = SEGMENT_MAGIC_V1.to_vec();
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&1u64.to_le_bytes());
        v1.extend_from_slice(&[3; 32]);
        v1.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let old = SegmentHeader { segment: 7, created_us: 1, prev_hash: [3; 32], ..SegmentHeader::default() };
        assert_eq!(SegmentHeader::decode(&v1).unwrap(), (old, v1.len()));
        let f = Footer { blocks: 2, final_hash: [1; 32], signature: vec![4; 64] };
        let bytes = f.encode();
        assert_eq!(decode_item(&bytes).unwrap(), Item::Footer { footer: f, len: bytes.len() });
    }

    proptest! {
        #[test]
        fn frames_round_trip_through_a_block(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40)) {
            let frames: Vec<Frame> = payloads.into_iter().enumerate().map(|(i, p)| frame(42, i as u64, p)).collect();
            let mut raw = Vec::new();
            frames.iter().for_each(|f| encode_frame(&mut raw, f));
            let (block, hash) = encode_block(&raw, frames.len() as u32, &[0; 32], 3).unwrap();
            let Item::Block { header, payload, hash: h2, len } = decode_item(&block).unwrap() else { panic!() };
            prop_assert_eq!(len, block.len());
            prop_assert_eq!(hash, h2);
            prop_assert_eq!(decode_frames(&header, payload).unwrap(), frames);
        }

        #[test]
        fn any_flipped_byte_is_detected(flip in 0usize..10_000, bit in 0u8..8) {
            let mut raw = Vec::new();
            encode_frame(&mut raw, &frame(1, 0, b"SELECT 1".to_vec()));
            let (mut block, _) = encode_block(&raw, 1, &[7; 32], 3).unwrap();
            let i = flip % block.len();
            block[i] ^= 1 << bit;
            prop_assert!(decode_item(&block).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SegmentHeader::decode(&bytes);
            if let Ok(Item::Block { header, payload, .. }) = decode_item(&bytes) {
                let _ = decode_frames(&header, payload);
            }
        }
    }
}
