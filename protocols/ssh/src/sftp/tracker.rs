//! Following an SFTP session by request id, to report what it did.
//!
//! The client pipelines: OpenSSH's `sftp` keeps up to 64 READs or WRITEs in flight,
//! each at the offset after the previous one, and replies come back by id. The tracker
//! remembers each request it cares about until its reply, the path behind each handle,
//! and the bytes moved through it, and reports an [`Op`] when an operation ends: a file
//! read or written at its `CLOSE`, a directory listed at its `CLOSE`, a change (remove,
//! rename, mkdir...) at its `STATUS`. Everything it holds is capped.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::digest::Digest;
use super::{Extended, OpenFlags, Packet, Reader, Request, code, kind, truncate};

/// Requests awaiting a reply that the tracker remembers; past this the oldest is
/// forgotten and whatever it belonged to is reported [`Status::Incomplete`].
pub const MAX_PENDING: usize = 4096;

/// Open handles the tracker remembers; past this the oldest is reported
/// [`Status::Incomplete`] and forgotten.
pub const MAX_HANDLES: usize = 1024;

/// Bytes of out-of-order data held, across all handles, to hash a transfer whose
/// chunks arrive out of order. Past this the transfer's hash is given up, not buffered.
pub const MAX_REORDER: usize = 4 * 1024 * 1024;

/// The longest path remembered, in bytes (Linux `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// The longest server message kept in a [`Status::Failed`].
const MAX_MESSAGE: usize = 256;

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A file opened for reading, from `OPEN` to `CLOSE`.
    Read,
    /// A file opened with any writing flag, from `OPEN` to `CLOSE`.
    Write,
    /// A directory listed, from `OPENDIR` to `CLOSE`.
    List,
    /// `REMOVE`.
    Remove,
    /// `RENAME` or `posix-rename@openssh.com`.
    Rename,
    /// `MKDIR`.
    Mkdir,
    /// `RMDIR`.
    Rmdir,
    /// `SETSTAT`, `FSETSTAT` or `lsetstat@openssh.com`.
    Setstat,
    /// `SYMLINK`.
    Symlink,
    /// `hardlink@openssh.com`.
    Hardlink,
    /// `copy-data`, server-side.
    Copy,
}

impl OpKind {
    /// The name in [`Op::to_json`].
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::List => "list",
            OpKind::Remove => "remove",
            OpKind::Rename => "rename",
            OpKind::Mkdir => "mkdir",
            OpKind::Rmdir => "rmdir",
            OpKind::Setstat => "setstat",
            OpKind::Symlink => "symlink",
            OpKind::Hardlink => "hardlink",
            OpKind::Copy => "copy",
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The server said `OK`.
    Ok,
    /// The server refused or failed, with its status code ([`code`]) and message.
    Failed {
        /// The `SSH_FX_*` code.
        code: u32,
        /// The server's message, cut to 256 bytes.
        message: String,
    },
    /// The tracker lost track (a reply of the wrong type, or a cap was reached), so
    /// the outcome is unknown.
    Incomplete,
}

impl Status {
    fn from_reply(packet: &Packet) -> Status {
        if packet.kind != kind::STATUS {
            return Status::Incomplete;
        }
        let mut r = Reader::new(packet.body(), packet.kind);
        let Ok(code) = r.u32("status code") else { return Status::Incomplete };
        if code == code::OK {
            return Status::Ok;
        }
        // Some old servers omit the message; it is optional here.
        let message = r.string("message").map(|m| String::from_utf8_lossy(&m).into_owned()).unwrap_or_default();
        Status::Failed { code, message: truncate(&message, MAX_MESSAGE).to_string() }
    }

    /// The name in [`Op::to_json`]: `ok`, `incomplete`, or the code's name
    /// (`permission_denied`, `no_such_file`, ..., `code_N` for codes draft-02 lacks).
    pub fn name(&self) -> String {
        match self {
            Status::Ok => "ok".into(),
            Status::Incomplete => "incomplete".into(),
            Status::Failed { code, .. } => match *code {
                code::OK => "ok".into(),
                code::EOF => "eof".into(),
                code::NO_SUCH_FILE => "no_such_file".into(),
                code::PERMISSION_DENIED => "permission_denied".into(),
                code::FAILURE => "failure".into(),
                code::BAD_MESSAGE => "bad_message".into(),
                code::NO_CONNECTION => "no_connection".into(),
                code::CONNECTION_LOST => "connection_lost".into(),
                code::OP_UNSUPPORTED => "op_unsupported".into(),
                n => format!("code_{n}"),
            },
        }
    }
}

/// A completed operation, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What it was.
    pub kind: OpKind,
    /// The path it acted on: the file, directory, source of a rename or copy, or the
    /// new link of a symlink or hard link.
    pub path: String,
    /// The destination of a rename or copy, or what a symlink or hard link points at.
    pub other: Option<String>,
    /// For reads and writes: bytes the server returned, or bytes it acknowledged writing.
    pub bytes: Option<u64>,
    /// For reads and writes: the SHA-256 of those bytes, when they form one run from
    /// offset 0, so it is the digest of the file (or of its first `bytes` bytes).
    pub sha256: Option<[u8; 32]>,
    /// For listings: the names the server returned.
    pub entries: Option<u64>,
    /// How it ended. A transfer reports its first failed READ/WRITE, else its CLOSE.
    pub status: Status,
}

impl Op {
    /// The op as recorded, e.g.
    /// `{"op":"write","path":"/tmp/f","bytes":52428800,"sha256":"…","status":"ok"}`.
    /// Renames and copies add `"to"`, symlinks and hard links `"target"`, listings
    /// `"entries"`; a failure adds the server's `"message"` when it gave one.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), self.kind.as_str().into());
        m.insert("path".into(), self.path.clone().into());
        if let Some(other) = &self.other {
            let key = if matches!(self.kind, OpKind::Symlink | OpKind::Hardlink) { "target" } else { "to" };
            m.insert(key.into(), other.clone().into());
        }
        if let Some(bytes) = self.bytes {
            m.insert("bytes".into(), bytes.into());
            m.insert("sha256".into(), self.sha256.map_or(Value::Null, |d| hex(&d).into()));
        }
        if let Some(entries) = self.entries {
            m.insert("entries".into(), entries.into());
        }
        m.insert("status".into(), self.status.name().into());
        if let Status::Failed { message, .. } = &self.status
            && !message.is_empty()
        {
            m.insert("message".into(), message.clone().into());
        }
        Value::Object(m)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes moved one way through a handle.
#[derive(Debug)]
struct Transfer {
    bytes: u64,
    digest: Digest,
}

/// What the tracker knows about an open handle.
#[derive(Debug)]
struct Opened {
    path: String,
    seq: u64,
    /// `None` for a directory.
    flags: Option<OpenFlags>,
    read: Transfer,
    written: Transfer,
    entries: u64,
    /// The first failed READ, WRITE or READDIR.
    failure: Option<Status>,
    /// A request on it was forgotten, so its counts and hashes are partial.
    lost: bool,
}

impl Opened {
    fn fail(&mut self, status: Status, writing: bool, room: &mut usize) {
        if writing { &mut self.written } else { &mut self.read }.digest.give_up(room);
        self.failure.get_or_insert(status);
    }

    fn lose(&mut self, room: &mut usize) {
        self.lost = true;
        self.read.digest.give_up(room);
        self.written.digest.give_up(room);
    }

    /// The ops for this handle, ended by `status` (its CLOSE's, or `Incomplete`).
    fn finish(mut self, status: Status, room: &mut usize) -> Vec<Op> {
        let status = match (self.failure.take(), self.lost) {
            (Some(failure), _) => failure,
            (None, true) => Status::Incomplete,
            (None, false) => status,
        };
        let op = |kind, bytes, sha256| Op {
            kind,
            path: self.path.clone(),
            other: None,
            bytes,
            sha256,
            entries: None,
            status: status.clone(),
        };
        let Some(flags) = self.flags else {
            return vec![Op { entries: Some(self.entries), ..op(OpKind::List, None, None) }];
        };
        let mut ops = Vec::new();
        if !flags.writes() || self.read.bytes > 0 {
            let sha = self.read.digest.finish(self.read.bytes, room);
            ops.push(op(OpKind::Read, Some(self.read.bytes), sha));
        }
        if flags.writes() {
            let sha = self.written.digest.finish(self.written.bytes, room);
            ops.push(op(OpKind::Write, Some(self.written.bytes), sha));
        }
        self.read.digest.give_up(room);
        self.written.digest.give_up(room);
        ops
    }
}

/// A request the tracker awaits the reply to.
#[derive(Debug)]
enum Pending {
    Open { path: String, flags: Option<OpenFlags> },
    Read { handle: Bytes, offset: u64 },
    Write { handle: Bytes, len: u64 },
    Readdir { handle: Bytes },
    Close { handle: Bytes },
    Change { kind: OpKind, path: String, other: Option<String> },
}

/// Follows one SFTP session and reports the operations it completes.
///
/// Feed it every request forwarded to the server ([`Tracker::request`]) and every
/// reply ([`Tracker::response`]). Requests the gateway refused itself are not fed:
/// the server never answers them.
#[derive(Debug)]
pub struct Tracker {
    pending: HashMap<u32, (u64, Pending)>,
    /// Pending ids by age, to forget the oldest.
    pending_order: BTreeMap<u64, u32>,
    handles: HashMap<Bytes, Opened>,
    handle_order: BTreeMap<u64, Bytes>,
    seq: u64,
    /// Reorder bytes still allowed, out of [`MAX_REORDER`].
    room: usize,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

/// A handle copied out of its packet, so remembering it does not pin the packet's data.
fn own(handle: &Bytes) -> Bytes {
    Bytes::copy_from_slice(handle)
}

/// A path as remembered: cut at [`MAX_PATH`] bytes, marked with `…`. Linux refuses
/// longer paths (`PATH_MAX`), so the op they belong to fails anyway, and the cut keeps
/// a flood of pipelined requests with huge paths from holding `MAX_PENDING` of them.
fn kept(path: &str) -> String {
    if path.len() <= MAX_PATH { path.to_string() } else { format!("{}…", truncate(path, MAX_PATH)) }
}

impl Tracker {
    /// A tracker for a new session.
    pub fn new() -> Tracker {
        Tracker {
            pending: HashMap::new(),
            pending_order: BTreeMap::new(),
            handles: HashMap::new(),
            handle_order: BTreeMap::new(),
            seq: 0,
            room: MAX_REORDER,
        }
    }

    /// Notes request `id`. Returns ops ended early: usually none, but when
    /// [`MAX_PENDING`] requests are awaiting replies the oldest is forgotten, and what
    /// it belonged to is reported [`Status::Incomplete`].
    pub fn request(&mut self, id: u32, req: &Request) -> Vec<Op> {
        // A reused id replaces whatever awaited a reply under it, tracked or not.
        let mut ops = self.forget(id);
        let change = |kind, path: &String, other: Option<&String>| Pending::Change {
            kind,
            path: kept(path),
            other: other.map(|o| kept(o)),
        };
        let pending = match req {
            Request::Open { path, pflags } => Pending::Open { path: kept(path), flags: Some(*pflags) },
            Request::Opendir { path } => Pending::Open { path: kept(path), flags: None },
            Request::Read { handle, offset, .. } if self.handles.contains_key(handle) => {
                Pending::Read { handle: own(handle), offset: *offset }
            }
            Request::Write { handle, offset, data } => {
                let Some(file) = self.handles.get_mut(handle) else { return ops };
                // With APPEND the server ignores the offset; the data goes on in order.
                let append = file.flags.is_some_and(|f| f.contains(OpenFlags::APPEND));
                let at = if append { file.written.digest.next } else { *offset };
                file.written.digest.add(at, data, &mut self.room);
                Pending::Write { handle: own(handle), len: data.len() as u64 }
            }
            Request::Readdir { handle } if self.handles.contains_key(handle) => {
                Pending::Readdir { handle: own(handle) }
            }
            Request::Close { handle } if self.handles.contains_key(handle) => Pending::Close { handle: own(handle) },
            Request::Remove { path } => change(OpKind::Remove, path, None),
            Request::Mkdir { path } => change(OpKind::Mkdir, path, None),
            Request::Rmdir { path } => change(OpKind::Rmdir, path, None),
            Request::Setstat { path } | Request::Extended(Extended::Lsetstat { path }) => {
                change(OpKind::Setstat, path, None)
            }
            Request::Fsetstat { handle } => change(OpKind::Setstat, &self.path_of(handle), None),
            Request::Rename { from, to } | Request::Extended(Extended::PosixRename { from, to }) => {
                change(OpKind::Rename, from, Some(to))
            }
            Request::Symlink { linkpath, target } => change(OpKind::Symlink, linkpath, Some(target)),
            Request::Extended(Extended::Hardlink { old, new }) => change(OpKind::Hardlink, new, Some(old)),
            Request::Extended(Extended::CopyData { read_handle, write_handle, .. }) => {
                // The copied bytes never cross the channel, so the destination's hash
                // can no longer describe its content.
                if let Some(file) = self.handles.get_mut(write_handle) {
                    file.written.digest.give_up(&mut self.room);
                }
                change(OpKind::Copy, &self.path_of(read_handle), Some(&self.path_of(write_handle)))
            }
            _ => return ops,
        };
        if self.pending.len() >= MAX_PENDING
            && let Some((_, oldest)) = self.pending_order.pop_first()
        {
            ops.extend(self.forget(oldest));
        }
        self.seq += 1;
        self.pending.insert(id, (self.seq, pending));
        self.pending_order.insert(self.seq, id);
        ops
    }

    /// Notes a server reply and returns the operations it completes.
    pub fn response(&mut self, packet: &Packet) -> Vec<Op> {
        let Some(id) = packet.id else { return Vec::new() };
        let Some((seq, pending)) = self.pending.remove(&id) else { return Vec::new() };
        self.pending_order.remove(&seq);
        let room = &mut self.room;
        match pending {
            Pending::Open { path, flags } => {
                let handle = (packet.kind == kind::HANDLE)
                    .then(|| Reader::new(packet.body(), packet.kind).handle().ok())
                    .flatten();
                match handle {
                    Some(handle) => return self.opened(own(&handle), path, flags),
                    None => {
                        let status = Status::from_reply(packet);
                        let transfer =
                            |kind| Op { kind, path, other: None, bytes: Some(0), sha256: None, entries: None, status };
                        return vec![match flags {
                            None => Op { bytes: None, entries: Some(0), ..transfer(OpKind::List) },
                            Some(f) if f.writes() => transfer(OpKind::Write),
                            Some(_) => transfer(OpKind::Read),
                        }];
                    }
                }
            }
            Pending::Read { handle, offset } => {
                let Some(file) = self.handles.get_mut(&handle) else { return Vec::new() };
                let mut r = Reader::new(packet.body(), packet.kind);
                match (packet.kind, Status::from_reply(packet)) {
                    (kind::DATA, _) => match r.string("data") {
                        Ok(data) => {
                            file.read.bytes = file.read.bytes.saturating_add(data.len() as u64);
                            file.read.digest.add(offset, &data, room);
                        }
                        Err(_) => file.lose(room),
                    },
                    (_, Status::Failed { code: code::EOF, .. }) => {}
                    (_, Status::Incomplete) => file.lose(room),
                    (_, status) => file.fail(status, false, room),
                }
            }
            Pending::Write { handle, len } => {
                let Some(file) = self.handles.get_mut(&handle) else { return Vec::new() };
                match Status::from_reply(packet) {
                    Status::Ok => file.written.bytes = file.written.bytes.saturating_add(len),
                    Status::Incomplete => file.lose(room),
                    failed => file.fail(failed, true, room),
                }
            }
            Pending::Readdir { handle } => {
                let Some(file) = self.handles.get_mut(&handle) else { return Vec::new() };
                if packet.kind == kind::NAME {
                    match Reader::new(packet.body(), packet.kind).u32("count") {
                        Ok(n) => file.entries = file.entries.saturating_add(u64::from(n)),
                        Err(_) => file.lose(room),
                    }
                } else {
                    match Status::from_reply(packet) {
                        Status::Failed { code: code::EOF, .. } => {}
                        Status::Incomplete | Status::Ok => file.lose(room),
                        failed => file.fail(failed, false, room),
                    }
                }
            }
            Pending::Close { handle } => {
                if let Some(file) = self.handles.remove(&handle) {
                    self.handle_order.remove(&file.seq);
                    return file.finish(Status::from_reply(packet), room);
                }
            }
            Pending::Change { kind, path, other } => {
                let status = Status::from_reply(packet);
                return vec![Op { kind, path, other, bytes: None, sha256: None, entries: None, status }];
            }
        }
        Vec::new()
    }

    /// Requests awaiting a reply, and handles open, as the tracker sees them.
    pub fn tracked(&self) -> (usize, usize) {
        (self.pending.len(), self.handles.len())
    }

    fn path_of(&self, handle: &Bytes) -> String {
        self.handles.get(handle).map_or_else(|| "(unknown handle)".to_string(), |f| f.path.clone())
    }

    fn opened(&mut self, handle: Bytes, path: String, flags: Option<OpenFlags>) -> Vec<Op> {
        let mut ops = Vec::new();
        // A server reusing a handle it did not close, or the cap: report and forget.
        if let Some(old) = self.handles.remove(&handle) {
            self.handle_order.remove(&old.seq);
            ops.extend(old.finish(Status::Incomplete, &mut self.room));
        }
        if self.handles.len() >= MAX_HANDLES
            && let Some((_, oldest)) = self.handle_order.pop_first()
            && let Some(mut old) = self.handles.remove(&oldest)
        {
            old.lost = true;
            ops.extend(old.finish(Status::Incomplete, &mut self.room));
        }
        self.seq += 1;
        let transfer = || Transfer { bytes: 0, digest: Digest::new() };
        let file = Opened {
            path,
            seq: self.seq,
            flags,
            read: transfer(),
            written: transfer(),
            entries: 0,
            failure: None,
            lost: false,
        };
        self.handles.insert(handle.clone(), file);
        self.handle_order.insert(self.seq, handle);
        ops
    }

    /// Forgets the request awaiting a reply under `id`, if any.
    fn forget(&mut self, id: u32) -> Vec<Op> {
        let Some((seq, pending)) = self.pending.remove(&id) else { return Vec::new() };
        self.pending_order.remove(&seq);
        match pending {
            Pending::Open { path, flags } => {
                let kind = match flags {
                    None => OpKind::List,
                    Some(f) if f.writes() => OpKind::Write,
                    Some(_) => OpKind::Read,
                };
                vec![Op {
                    kind,
                    path,
                    other: None,
                    bytes: None,
                    sha256: None,
                    entries: None,
                    status: Status::Incomplete,
                }]
            }
            Pending::Read { handle, .. } | Pending::Write { handle, .. } | Pending::Readdir { handle } => {
                if let Some(file) = self.handles.get_mut(&handle) {
                    file.lose(&mut self.room);
                }
                Vec::new()
            }
            Pending::Close { handle } => match self.handles.remove(&handle) {
                Some(file) => {
                    self.handle_order.remove(&file.seq);
                    file.finish(Status::Incomplete, &mut self.room)
                }
                None => Vec::new(),
            },
            Pending::Change { kind, path, other } => {
                vec![Op { kind, path, other, bytes: None, sha256: None, entries: None, status: Status::Incomplete }]
            }
        }
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
