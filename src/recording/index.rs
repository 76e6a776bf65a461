//! The session index: which segment and block each session starts and ends in, and
//! who it was. Derived data: `airlock reindex` rebuilds it from the segments, and
//! start-up rebuilds the part of the last segment a crash may have left stale.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{Frame, Kind, SessionEnd, SessionStart};
use super::store::{self, Scan};

/// One line of `index.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexEntry {
    /// `start` or `end`.
    pub event: String,
    /// Session id (hex).
    pub session: String,
    /// Segment holding the frame.
    pub segment: u64,
    /// Offset of the block holding it.
    pub offset: u64,
    /// Frame time, µs since the epoch.
    pub ts_us: u64,
    /// The start or end frame's JSON.
    pub info: serde_json::Value,
}

impl IndexEntry {
    /// The entry for a start or end frame.
    pub fn from_frame(f: &Frame, segment: u64, offset: u64) -> IndexEntry {
        IndexEntry {
            event: if f.kind == Kind::SessionStart { "start" } else { "end" }.into(),
            session: session_name(f.session),
            segment,
            offset,
            ts_us: f.ts_us,
            info: serde_json::from_slice(&f.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Display form of a session id.
pub fn session_name(id: u64) -> String {
    format!("{id:016x}")
}

/// The index file, opened for appending.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    file: std::fs::File,
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    crate::private::append(path)
}

impl Index {
    /// Opens (or creates) `dir/index.jsonl`.
    pub fn open(dir: &Path) -> std::io::Result<Index> {
        let path = dir.join("index.jsonl");
        Ok(Index { file: open_append(&path)?, path })
    }

    /// Appends one entry.
    pub fn append(&mut self, entry: &IndexEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Replaces every entry of `segment` with what `scan` (decoded) holds.
    pub fn rebuild_segment(&mut self, segment: u64, scan: &Scan) -> std::io::Result<()> {
        let mut entries: Vec<IndexEntry> =
            read_entries(&self.path)?.into_iter().filter(|e| e.segment != segment).collect();
        entries.extend(entries_of(segment, scan));
        self.rewrite(&entries)
    }

    /// Drops the entries of deleted segments.
    pub fn forget_segments(&mut self, segments: Vec<u64>) -> std::io::Result<()> {
        let entries: Vec<IndexEntry> =
            read_entries(&self.path)?.into_iter().filter(|e| !segments.contains(&e.segment)).collect();
        self.rewrite(&entries)
    }

    fn rewrite(&mut self, entries: &[IndexEntry]) -> std::io::Result<()> {
        let mut out = Vec::new();
        for e in entries {
            out.extend(serde_json::to_vec(e).map_err(std::io::Error::other)?);
            out.push(b'\n');
        }
        crate::private::replace(&self.path, &out)?;
        self.file = open_append(&self.path)?;
        Ok(())
    }
}

fn entries_of(segment: u64, scan: &Scan) -> Vec<IndexEntry> {
    scan.blocks
        .iter()
        .flat_map(|b| {
            b.frames
                .iter()
                .filter(|f| matches!(f.kind, Kind::SessionStart | Kind::SessionEnd))
                .map(move |f| IndexEntry::from_frame(f, segment, b.offset))
        })
        .collect()
}

/// Reads every entry; unreadable lines (a torn last line) are skipped.
pub fn read_entries(path: &Path) -> std::io::Result<Vec<IndexEntry>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// Rebuilds `dir/index.jsonl` from every segment; returns the number of sessions.
pub fn reindex(dir: &Path) -> std::io::Result<usize> {
    let mut entries = Vec::new();
    for n in store::list_segments(dir)? {
        let scan = store::scan(&store::segment_path(dir, n), true)?;
        entries.extend(entries_of(n, &scan));
    }
    let sessions = entries.iter().filter(|e| e.event == "start").count();
    let mut index = Index::open(dir)?;
    index.rewrite(&entries)?;
    Ok(sessions)
}

/// A session as listed by `airlock sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    /// Session id.
    pub id: String,
    /// Start, µs since the epoch.
    pub start_us: u64,
    /// Duration in ms, if ended.
    pub duration_ms: Option<u64>,
    /// Identity subject.
    pub subject: String,
    /// Connection name.
    pub connection: String,
    /// Protocol.
    pub protocol: String,
    /// Client address.
    pub client: String,
    /// Statements (or commands, requests), if ended.
    pub statements: Option<u64>,
    /// How it ended, if it did.
    pub end_reason: Option<String>,
    /// Bytes relayed towards the upstream, if ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_to_upstream: Option<u64>,
    /// Bytes relayed towards the agent, if ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_to_agent: Option<u64>,
    /// Policy events by name (`held`, `denied`...), if ended.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<String, u64>,
    /// Where it starts: segment and block offset.
    #[serde(skip)]
    pub start_at: (u64, u64),
    /// Where it ends, if it did.
    #[serde(skip)]
    pub end_at: Option<(u64, u64)>,
    /// The replica that recorded it (listed from the shared state only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl SessionSummary {
    /// A session that started at `start_us` (µs since the epoch), at `start_at`.
    pub fn started(id: String, start_us: u64, start: SessionStart, start_at: (u64, u64)) -> SessionSummary {
        SessionSummary {
            id,
            start_us,
            duration_ms: None,
            subject: start.subject,
            connection: start.connection,
            protocol: start.protocol,
            client: start.client,
            statements: None,
            end_reason: None,
            bytes_to_upstream: None,
            bytes_to_agent: None,
            verdicts: BTreeMap::new(),
            start_at,
            end_at: None,
            replica: None,
        }
    }

    /// Notes how the session ended, at `end_us`.
    pub fn ended(&mut self, end: SessionEnd, end_us: u64) {
        self.duration_ms = Some(end_us.saturating_sub(self.start_us) / 1000);
        self.statements = Some(end.statements);
        self.end_reason = Some(end.reason);
        self.bytes_to_upstream = Some(end.bytes_to_upstream);
        self.bytes_to_agent = Some(end.bytes_to_agent);
        self.verdicts = end.verdicts;
    }
}

/// Joins start and end entries into sessions, oldest first.
pub fn sessions(dir: &Path) -> std::io::Result<Vec<SessionSummary>> {
    let path = dir.join("index.jsonl");
    if !path.exists() && !store::list_segments(dir)?.is_empty() {
        reindex(dir)?;
    }
    let mut by_id: BTreeMap<String, SessionSummary> = BTreeMap::new();
    for e in read_entries(&path)? {
        if e.event == "start" {
            let start: SessionStart = serde_json::from_value(e.info).unwrap_or_default();
            by_id.insert(
                e.session.clone(),
                SessionSummary::started(e.session.clone(), e.ts_us, start, (e.segment, e.offset)),
            );
        } else if let Some(s) = by_id.get_mut(&e.session) {
            s.ended(serde_json::from_value(e.info).unwrap_or_default(), e.ts_us);
            s.end_at = Some((e.segment, e.offset));
        }
    }
    let mut out: Vec<SessionSummary> = by_id.into_values().collect();
    out.sort_by_key(|s| s.start_us);
    Ok(out)
}
