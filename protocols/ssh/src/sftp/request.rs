//! Client packets read into [`Request`]s, and what each one touches.

use bytes::Bytes;

use super::{Packet, Reader, SftpError, kind};

/// The `pflags` of an `OPEN` request (`SSH_FXF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    /// Open for reading.
    pub const READ: u32 = 0x01;
    /// Open for writing.
    pub const WRITE: u32 = 0x02;
    /// Every write goes to the end of the file, whatever its offset.
    pub const APPEND: u32 = 0x04;
    /// Create the file if it does not exist.
    pub const CREAT: u32 = 0x08;
    /// Truncate an existing file to zero length.
    pub const TRUNC: u32 = 0x10;
    /// With `CREAT`: fail if the file exists.
    pub const EXCL: u32 = 0x20;

    /// Whether every bit of `flag` is set.
    pub fn contains(self, flag: u32) -> bool {
        self.0 & flag == flag
    }

    /// Whether opening can change the file system: any flag but `READ`, unknown bits
    /// included, since a server may give them a meaning the gateway does not know.
    pub fn writes(self) -> bool {
        self.0 & !Self::READ != 0
    }
}

/// A client request. Paths are as the client sent them; see [`super::normalize`].
/// Handles are the server's opaque strings (at most [`super::MAX_HANDLE`] bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The client hello (no request id; [`decode_request`] pairs it with id 0).
    Init {
        /// The protocol version the client speaks (3 for OpenSSH).
        version: u32,
    },
    /// Open a file.
    Open {
        /// The file.
        path: String,
        /// How to open it.
        pflags: OpenFlags,
    },
    /// Close a file or directory handle.
    Close {
        /// The handle.
        handle: Bytes,
    },
    /// Read up to `len` bytes at `offset`.
    Read {
        /// A file handle.
        handle: Bytes,
        /// Where to start.
        offset: u64,
        /// How many bytes at most.
        len: u32,
    },
    /// Write `data` at `offset`.
    Write {
        /// A file handle.
        handle: Bytes,
        /// Where to write (ignored by the server for files opened with `APPEND`).
        offset: u64,
        /// The bytes, a view into the packet.
        data: Bytes,
    },
    /// Attributes of a path, not following a final symlink.
    Lstat {
        /// The path.
        path: String,
    },
    /// Attributes of a path.
    Stat {
        /// The path.
        path: String,
    },
    /// Attributes of a handle.
    Fstat {
        /// The handle.
        handle: Bytes,
    },
    /// Change a path's attributes (mode, owner, times, size).
    Setstat {
        /// The path.
        path: String,
    },
    /// Change a handle's attributes.
    Fsetstat {
        /// The handle.
        handle: Bytes,
    },
    /// Open a directory for listing.
    Opendir {
        /// The directory.
        path: String,
    },
    /// Next names from a directory handle.
    Readdir {
        /// The handle.
        handle: Bytes,
    },
    /// Remove a file.
    Remove {
        /// The file.
        path: String,
    },
    /// Create a directory.
    Mkdir {
        /// The directory.
        path: String,
    },
    /// Remove a directory.
    Rmdir {
        /// The directory.
        path: String,
    },
    /// Canonicalize a path.
    Realpath {
        /// The path.
        path: String,
    },
    /// Rename `from` to `to` (fails if `to` exists, in draft-02 semantics).
    Rename {
        /// The existing path.
        from: String,
        /// The new path.
        to: String,
    },
    /// Read a symlink's target.
    Readlink {
        /// The symlink.
        path: String,
    },
    /// Create the symlink `linkpath` pointing at `target`.
    ///
    /// OpenSSH reversed the draft's argument order by mistake and kept it for
    /// compatibility (its `PROTOCOL` file, §4.1): on the wire the *target* comes first
    /// and the new link's path second. This decodes OpenSSH's order, which is what
    /// OpenSSH servers obey.
    Symlink {
        /// The new link's path (second on the wire).
        linkpath: String,
        /// What the link points at (first on the wire); it may be relative to the
        /// link's directory, and need not exist.
        target: String,
    },
    /// A named extension.
    Extended(Extended),
    /// A request type this decoder does not know; servers answer `OP_UNSUPPORTED`.
    Unknown {
        /// The packet type.
        kind: u8,
    },
}

/// An `SSH_FXP_EXTENDED` request, decoded for the extensions OpenSSH implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extended {
    /// `posix-rename@openssh.com`: rename, replacing `to` if it exists.
    PosixRename {
        /// The existing path.
        from: String,
        /// The new path.
        to: String,
    },
    /// `statvfs@openssh.com`: file system statistics for a path.
    Statvfs {
        /// The path.
        path: String,
    },
    /// `fstatvfs@openssh.com`: file system statistics for a handle.
    Fstatvfs {
        /// The handle.
        handle: Bytes,
    },
    /// `hardlink@openssh.com`: create the hard link `new` to the existing `old`.
    Hardlink {
        /// The existing file.
        old: String,
        /// The new link.
        new: String,
    },
    /// `fsync@openssh.com`: flush a file handle to disk.
    Fsync {
        /// The handle.
        handle: Bytes,
    },
    /// `lsetstat@openssh.com`: change attributes without following a final symlink.
    Lsetstat {
        /// The path.
        path: String,
    },
    /// `limits@openssh.com`: the server's packet and handle limits.
    Limits,
    /// `expand-path@openssh.com`: canonicalize a path, expanding a leading `~`.
    ExpandPath {
        /// The path.
        path: String,
    },
    /// `copy-data`: the server copies `len` bytes (0: to end of file) from one open
    /// handle to another, the data never crossing the channel.
    CopyData {
        /// The handle read from.
        read_handle: Bytes,
        /// Where reading starts.
        read_offset: u64,
        /// How much to copy; 0 copies to the end of the file.
        len: u64,
        /// The handle written to.
        write_handle: Bytes,
        /// Where writing starts.
        write_offset: u64,
    },
    /// `home-directory`: a user's home directory.
    HomeDirectory {
        /// The user name (empty: the session's own user).
        user: String,
    },
    /// `users-groups-by-id@openssh.com`: names for numeric user and group ids.
    UsersGroupsById {
        /// User ids.
        uids: Vec<u32>,
        /// Group ids.
        gids: Vec<u32>,
    },
    /// Any other extension, by name, with its undecoded fields.
    Unknown {
        /// The extension name (lossy UTF-8: a name, not a path).
        name: String,
        /// What follows the name.
        data: Bytes,
    },
}

/// Whether a request can change anything on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Looks only.
    Read,
    /// Can change files, directories, links or attributes.
    Write,
    /// An unknown request or extension: treat as the policy treats the unknown.
    Unknown,
}

/// Reads a client packet. Returns the request id (0 for [`Request::Init`], which has
/// none) and the request.
pub fn decode_request(packet: &Packet) -> Result<(u32, Request), SftpError> {
    let k = packet.kind;
    let mut r = Reader::new(packet.body(), k);
    let id = packet.id.unwrap_or(0);
    let req = match k {
        kind::INIT => Request::Init { version: r.u32("version")? },
        kind::OPEN => {
            let path = r.text("path")?;
            Request::Open { path, pflags: OpenFlags(r.u32("pflags")?) }
        }
        kind::CLOSE => Request::Close { handle: r.handle()? },
        kind::READ => {
            let handle = r.handle()?;
            let offset = r.u64("offset")?;
            Request::Read { handle, offset, len: r.u32("length")? }
        }
        kind::WRITE => {
            let handle = r.handle()?;
            let offset = r.u64("offset")?;
            Request::Write { handle, offset, data: r.string("data")? }
        }
        kind::LSTAT => Request::Lstat { path: r.text("path")? },
        kind::STAT => Request::Stat { path: r.text("path")? },
        kind::FSTAT => Request::Fstat { handle: r.handle()? },
        kind::SETSTAT => Request::Setstat { path: r.text("path")? },
        kind::FSETSTAT => Request::Fsetstat { handle: r.handle()? },
        kind::OPENDIR => Request::Opendir { path: r.text("path")? },
        kind::READDIR => Request::Readdir { handle: r.handle()? },
        kind::REMOVE => Request::Remove { path: r.text("path")? },
        kind::MKDIR => Request::Mkdir { path: r.text("path")? },
        kind::RMDIR => Request::Rmdir { path: r.text("path")? },
        kind::REALPATH => Request::Realpath { path: r.text("path")? },
        kind::RENAME => {
            let from = r.text("old path")?;
            Request::Rename { from, to: r.text("new path")? }
        }
        kind::READLINK => Request::Readlink { path: r.text("path")? },
        kind::SYMLINK => {
            let target = r.text("symlink target")?;
            Request::Symlink { linkpath: r.text("link path")?, target }
        }
        kind::EXTENDED => Request::Extended(extended(&mut r)?),
        kind::VERSION | kind::STATUS..=kind::ATTRS | kind::EXTENDED_REPLY => {
            return Err(SftpError::NotARequest { kind: k });
        }
        _ => Request::Unknown { kind: k },
    };
    // Attributes and any trailing bytes after the fields above are not needed to judge
    // or track a request; they go to the server untouched.
    Ok((id, req))
}

fn extended(r: &mut Reader) -> Result<Extended, SftpError> {
    let name = r.string("extension name")?;
    Ok(match &name[..] {
        b"posix-rename@openssh.com" => {
            let from = r.text("old path")?;
            Extended::PosixRename { from, to: r.text("new path")? }
        }
        b"statvfs@openssh.com" => Extended::Statvfs { path: r.text("path")? },
        b"fstatvfs@openssh.com" => Extended::Fstatvfs { handle: r.handle()? },
        b"hardlink@openssh.com" => {
            let old = r.text("old path")?;
            Extended::Hardlink { old, new: r.text("new path")? }
        }
        b"fsync@openssh.com" => Extended::Fsync { handle: r.handle()? },
        b"lsetstat@openssh.com" => Extended::Lsetstat { path: r.text("path")? },
        b"limits@openssh.com" => Extended::Limits,
        b"expand-path@openssh.com" => Extended::ExpandPath { path: r.text("path")? },
        b"copy-data" => {
            let read_handle = r.handle()?;
            let read_offset = r.u64("read offset")?;
            let len = r.u64("read length")?;
            let write_handle = r.handle()?;
            Extended::CopyData { read_handle, read_offset, len, write_handle, write_offset: r.u64("write offset")? }
        }
        b"home-directory" => Extended::HomeDirectory { user: r.text("user name")? },
        b"users-groups-by-id@openssh.com" => {
            // Each list is a string of packed uint32s; its length is bounded by the packet.
            let ids = |b: Bytes| b.chunks_exact(4).map(|c| c.try_into().map(u32::from_be_bytes).unwrap_or(0)).collect();
            let uids = ids(r.string("uid list")?);
            Extended::UsersGroupsById { uids, gids: ids(r.string("gid list")?) }
        }
        _ => Extended::Unknown { name: String::from_utf8_lossy(&name).into_owned(), data: r.rest() },
    })
}

impl Request {
    /// Whether the request reads or changes the server's file system.
    pub fn access(&self) -> Access {
        use Access::{Read, Unknown, Write};
        match self {
            Request::Open { pflags, .. } if pflags.writes() => Write,
            Request::Init { .. }
            | Request::Open { .. }
            | Request::Close { .. }
            | Request::Read { .. }
            | Request::Lstat { .. }
            | Request::Stat { .. }
            | Request::Fstat { .. }
            | Request::Opendir { .. }
            | Request::Readdir { .. }
            | Request::Realpath { .. }
            | Request::Readlink { .. } => Read,
            Request::Write { .. }
            | Request::Setstat { .. }
            | Request::Fsetstat { .. }
            | Request::Remove { .. }
            | Request::Mkdir { .. }
            | Request::Rmdir { .. }
            | Request::Rename { .. }
            | Request::Symlink { .. } => Write,
            Request::Extended(e) => match e {
                Extended::Statvfs { .. }
                | Extended::Fstatvfs { .. }
                | Extended::Limits
                | Extended::ExpandPath { .. }
                | Extended::HomeDirectory { .. }
                | Extended::UsersGroupsById { .. } => Read,
                Extended::PosixRename { .. }
                | Extended::Hardlink { .. }
                | Extended::Fsync { .. }
                | Extended::Lsetstat { .. }
                | Extended::CopyData { .. } => Write,
                Extended::Unknown { .. } => Unknown,
            },
            Request::Unknown { .. } => Unknown,
        }
    }

    /// Every path the request names, as sent. Requests on handles name none: the path
    /// behind a handle is the one its `OPEN`/`OPENDIR` named ([`super::Tracker`] keeps it).
    /// A symlink names its new path first, then its target.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Request::Open { path, .. }
            | Request::Lstat { path }
            | Request::Stat { path }
            | Request::Setstat { path }
            | Request::Opendir { path }
            | Request::Remove { path }
            | Request::Mkdir { path }
            | Request::Rmdir { path }
            | Request::Realpath { path }
            | Request::Readlink { path } => vec![path],
            Request::Rename { from, to } => vec![from, to],
            Request::Symlink { linkpath, target } => vec![linkpath, target],
            Request::Extended(e) => match e {
                Extended::PosixRename { from, to } => vec![from, to],
                Extended::Hardlink { old, new } => vec![old, new],
                Extended::Statvfs { path } | Extended::Lsetstat { path } | Extended::ExpandPath { path } => {
                    vec![path]
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Framer;
    use super::super::tests::packet;
    use super::*;

    fn s(v: &[u8]) -> Vec<u8> {
        let mut b = (v.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(v);
        b
    }

    /// A request packet: type, id, then fields.
    fn req(k: u8, id: u32, fields: &[&[u8]]) -> Packet {
        let mut body = id.to_be_bytes().to_vec();
        for f in fields {
            body.extend_from_slice(f);
        }
        let mut f = Framer::new();
        f.push(&packet(k, &body));
        f.next().unwrap().unwrap()
    }

    fn decode(k: u8, fields: &[&[u8]]) -> Result<Request, SftpError> {
        decode_request(&req(k, 9, fields)).map(|(id, r)| {
            assert_eq!(id, 9);
            r
        })
    }

    fn ext(name: &str, fields: &[&[u8]]) -> Result<Request, SftpError> {
        let mut all = vec![s(name.as_bytes())];
        all.extend(fields.iter().map(|f| f.to_vec()));
        let refs: Vec<&[u8]> = all.iter().map(|v| &v[..]).collect();
        decode(kind::EXTENDED, &refs)
    }

    const NO_ATTRS: &[u8] = &[0, 0, 0, 0];

    #[test]
    fn decodes_init_without_id() {
        let mut f = Framer::new();
        f.push(&packet(kind::INIT, &[0, 0, 0, 3]));
        let p = f.next().unwrap().unwrap();
        assert_eq!(decode_request(&p), Ok((0, Request::Init { version: 3 })));
    }

    #[test]
    fn decodes_every_request() {
        let h = s(b"h1");
        let cases: Vec<(Request, Access, Vec<&str>)> = vec![
            (
                decode(kind::OPEN, &[&s(b"/etc/passwd"), &1u32.to_be_bytes(), NO_ATTRS]).unwrap(),
                Access::Read,
                vec!["/etc/passwd"],
            ),
            (
                decode(kind::OPEN, &[&s(b"/tmp/f"), &0x1au32.to_be_bytes(), NO_ATTRS]).unwrap(),
                Access::Write,
                vec!["/tmp/f"],
            ),
            (decode(kind::CLOSE, &[&h]).unwrap(), Access::Read, vec![]),
            (decode(kind::READ, &[&h, &7u64.to_be_bytes(), &100u32.to_be_bytes()]).unwrap(), Access::Read, vec![]),
            (decode(kind::WRITE, &[&h, &0u64.to_be_bytes(), &s(b"data")]).unwrap(), Access::Write, vec![]),
            (decode(kind::LSTAT, &[&s(b"a")]).unwrap(), Access::Read, vec!["a"]),
            (decode(kind::STAT, &[&s(b"b")]).unwrap(), Access::Read, vec!["b"]),
            (decode(kind::FSTAT, &[&h]).unwrap(), Access::Read, vec![]),
            (decode(kind::SETSTAT, &[&s(b"c"), NO_ATTRS]).unwrap(), Access::Write, vec!["c"]),
            (decode(kind::FSETSTAT, &[&h, NO_ATTRS]).unwrap(), Access::Write, vec![]),
            (decode(kind::OPENDIR, &[&s(b"/d")]).unwrap(), Access::Read, vec!["/d"]),
            (decode(kind::READDIR, &[&h]).unwrap(), Access::Read, vec![]),
            (decode(kind::REMOVE, &[&s(b"r")]).unwrap(), Access::Write, vec!["r"]),
            (decode(kind::MKDIR, &[&s(b"m"), NO_ATTRS]).unwrap(), Access::Write, vec!["m"]),
            (decode(kind::RMDIR, &[&s(b"rd")]).unwrap(), Access::Write, vec!["rd"]),
            (decode(kind::REALPATH, &[&s(b".")]).unwrap(), Access::Read, vec!["."]),
            (decode(kind::RENAME, &[&s(b"x"), &s(b"y")]).unwrap(), Access::Write, vec!["x", "y"]),
            (decode(kind::READLINK, &[&s(b"l")]).unwrap(), Access::Read, vec!["l"]),
            (decode(kind::SYMLINK, &[&s(b"target"), &s(b"link")]).unwrap(), Access::Write, vec!["link", "target"]),
            (ext("posix-rename@openssh.com", &[&s(b"p"), &s(b"q")]).unwrap(), Access::Write, vec!["p", "q"]),
            (ext("statvfs@openssh.com", &[&s(b"/")]).unwrap(), Access::Read, vec!["/"]),
            (ext("fstatvfs@openssh.com", &[&h]).unwrap(), Access::Read, vec![]),
            (ext("hardlink@openssh.com", &[&s(b"old"), &s(b"new")]).unwrap(), Access::Write, vec!["old", "new"]),
            (ext("fsync@openssh.com", &[&h]).unwrap(), Access::Write, vec![]),
            (ext("lsetstat@openssh.com", &[&s(b"ls"), NO_ATTRS]).unwrap(), Access::Write, vec!["ls"]),
            (ext("limits@openssh.com", &[]).unwrap(), Access::Read, vec![]),
            (ext("expand-path@openssh.com", &[&s(b"~/x")]).unwrap(), Access::Read, vec!["~/x"]),
            (
                ext("copy-data", &[&h, &0u64.to_be_bytes(), &0u64.to_be_bytes(), &s(b"h2"), &5u64.to_be_bytes()])
                    .unwrap(),
                Access::Write,
                vec![],
            ),
            (ext("home-directory", &[&s(b"bob")]).unwrap(), Access::Read, vec![]),
            (
                ext("users-groups-by-id@openssh.com", &[&s(&[0, 0, 0, 1, 0, 0, 3, 0xe8]), &s(&[])]).unwrap(),
                Access::Read,
                vec![],
            ),
            (ext("check-file@example.com", &[b"xyz"]).unwrap(), Access::Unknown, vec![]),
            (decode(77, &[]).unwrap(), Access::Unknown, vec![]),
        ];
        for (r, access, paths) in &cases {
            assert_eq!((r.access(), r.paths()), (*access, paths.clone()), "{r:?}");
        }
        assert_eq!(cases[3].0, Request::Read { handle: Bytes::from_static(b"h1"), offset: 7, len: 100 });
        assert_eq!(
            cases[4].0,
            Request::Write { handle: Bytes::from_static(b"h1"), offset: 0, data: Bytes::from_static(b"data") }
        );
        assert_eq!(cases[18].0, Request::Symlink { linkpath: "link".into(), target: "target".into() });
        assert_eq!(
            cases[27].0,
            Request::Extended(Extended::CopyData {
                read_handle: Bytes::from_static(b"h1"),
                read_offset: 0,
                len: 0,
                write_handle: Bytes::from_static(b"h2"),
                write_offset: 5
            })
        );
        assert_eq!(cases[29].0, Request::Extended(Extended::UsersGroupsById { uids: vec![1, 1000], gids: vec![] }));
        assert_eq!(
            cases[30].0,
            Request::Extended(Extended::Unknown {
                name: "check-file@example.com".into(),
                data: Bytes::from_static(b"xyz")
            })
        );
    }

    #[test]
    fn open_flags() {
        assert!(!OpenFlags(OpenFlags::READ).writes());
        for f in [OpenFlags::WRITE, OpenFlags::APPEND, OpenFlags::CREAT, OpenFlags::TRUNC, OpenFlags::EXCL, 0x100] {
            assert!(OpenFlags(f | OpenFlags::READ).writes(), "{f:#x}");
        }
        assert!(OpenFlags(0x1a).contains(OpenFlags::CREAT | OpenFlags::TRUNC));
        assert!(!OpenFlags(0x1a).contains(OpenFlags::APPEND));
    }

    #[test]
    fn refuses_malformed_requests() {
        let long = s(&[b'h'; 257]);
        assert_eq!(decode(kind::CLOSE, &[&long]), Err(SftpError::HandleTooLong { len: 257 }));
        assert_eq!(decode(kind::OPEN, &[&s(b"/x")]), Err(SftpError::Truncated { kind: kind::OPEN, field: "pflags" }));
        assert_eq!(
            decode(kind::STAT, &[&[0, 0, 0, 9, b'a']]),
            Err(SftpError::Truncated { kind: kind::STAT, field: "path" })
        );
        assert_eq!(
            decode(kind::STAT, &[&[0xff, 0xff, 0xff, 0xff]]),
            Err(SftpError::Truncated { kind: kind::STAT, field: "path" })
        );
        assert_eq!(
            decode(kind::REMOVE, &[&s(b"/a\xff")]),
            Err(SftpError::NotUtf8 { kind: kind::REMOVE, field: "path" })
        );
        assert_eq!(decode(kind::STATUS, &[]), Err(SftpError::NotARequest { kind: kind::STATUS }));
        assert_eq!(
            ext("posix-rename@openssh.com", &[&s(b"p")]),
            Err(SftpError::Truncated { kind: kind::EXTENDED, field: "new path" })
        );
        let mut f = Framer::new();
        f.push(&packet(kind::VERSION, &[0, 0, 0, 3]));
        let p = f.next().unwrap().unwrap();
        assert_eq!(decode_request(&p), Err(SftpError::NotARequest { kind: kind::VERSION }));
    }
}
