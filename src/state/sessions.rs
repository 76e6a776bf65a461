//! The session index of every replica in the state database.
//!
//! Each replica ships its own `index.jsonl` (start and end entries, written by the
//! recorder) to `airlock_sessions`, from the byte where it left off. Rows are upserts,
//! so shipping an entry twice is harmless: after an outage, or when start-up rebuilt the
//! file after a crash, the replica ships it again from the start. The local file stays
//! the source of truth; this is a shared copy to list sessions fleet-wide.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

use super::{StateStore, Unavailable};
use crate::recording::format::{SessionEnd, SessionStart};
use crate::recording::index::{IndexEntry, SessionSummary};

/// The most index bytes shipped per round (the rest goes next round).
const MAX_ROUND: u64 = 4 << 20;

/// Where shipping stands in the local index file (a rewritten file is a new one).
#[derive(Debug, Default)]
pub(super) struct Shipped {
    file: Option<(u64, u64)>,
    offset: u64,
}

fn time(ts_us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(ts_us)
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl StateStore {
    /// Ships the index entries written since the last round; returns how many.
    pub(super) async fn ship_index(&self, path: &Path, shipped: &mut Shipped) -> Result<usize, Unavailable> {
        let client = self.current()?;
        let (entries, consumed) = match read_from(path, shipped) {
            Ok(read) => read,
            Err(e) => return Err(Unavailable(format!("reading {}: {e}", path.display()))),
        };
        let (starts, ends): (Vec<&IndexEntry>, Vec<&IndexEntry>) = entries.iter().partition(|e| e.event == "start");
        self.upsert_starts(&client, &starts).await?;
        self.upsert_ends(&client, &ends).await?;
        shipped.offset += consumed;
        Ok(entries.len())
    }

    /// One statement for a whole round's starts.
    async fn upsert_starts(&self, client: &Client, starts: &[&IndexEntry]) -> Result<(), Unavailable> {
        if starts.is_empty() {
            return Ok(());
        }
        let sessions: Vec<&str> = starts.iter().map(|e| e.session.as_str()).collect();
        let times: Vec<SystemTime> = starts.iter().map(|e| time(e.ts_us)).collect();
        let segments: Vec<i64> = starts.iter().map(|e| i64::try_from(e.segment).unwrap_or(i64::MAX)).collect();
        let offsets: Vec<i64> = starts.iter().map(|e| i64::try_from(e.offset).unwrap_or(0)).collect();
        let infos: Vec<&serde_json::Value> = starts.iter().map(|e| &e.info).collect();
        client
            .execute(
                r#"INSERT INTO airlock_sessions (replica, session, started_at, segment, "offset", start_info)
                   SELECT $1, s.session, s.started_at, s.segment, s.off, s.info
                     FROM unnest($2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::jsonb[])
                          AS s (session, started_at, segment, off, info)
                   ON CONFLICT (replica, session) DO UPDATE
                      SET started_at = EXCLUDED.started_at, segment = EXCLUDED.segment,
                          "offset" = EXCLUDED."offset", start_info = EXCLUDED.start_info"#,
                &[&self.replica, &sessions, &times, &segments, &offsets, &infos],
            )
            .await?;
        Ok(())
    }

    /// One statement for a whole round's ends (a start always precedes its end).
    async fn upsert_ends(&self, client: &Client, ends: &[&IndexEntry]) -> Result<(), Unavailable> {
        if ends.is_empty() {
            return Ok(());
        }
        let sessions: Vec<&str> = ends.iter().map(|e| e.session.as_str()).collect();
        let times: Vec<SystemTime> = ends.iter().map(|e| time(e.ts_us)).collect();
        let infos: Vec<&serde_json::Value> = ends.iter().map(|e| &e.info).collect();
        client
            .execute(
                "UPDATE airlock_sessions t SET ended_at = e.ended_at, end_info = e.info
                   FROM unnest($2::text[], $3::timestamptz[], $4::jsonb[]) AS e (session, ended_at, info)
                  WHERE t.replica = $1 AND t.session = e.session",
                &[&self.replica, &sessions, &times, &infos],
            )
            .await?;
        Ok(())
    }
}

/// Complete lines of `path` after the shipped offset (from the start again if the file
/// was rewritten shorter), and the bytes they took.
fn read_from(path: &Path, shipped: &mut Shipped) -> std::io::Result<(Vec<IndexEntry>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let identity = Some((std::os::unix::fs::MetadataExt::dev(&meta), std::os::unix::fs::MetadataExt::ino(&meta)));
    let len = meta.len();
    // Rewritten (start-up recovery, retention) or cut: ship it again from the start.
    if shipped.file != identity || len < shipped.offset {
        shipped.file = identity;
        shipped.offset = 0;
    }
    file.seek(SeekFrom::Start(shipped.offset))?;
    let mut bytes = Vec::new();
    file.take(MAX_ROUND.min(len - shipped.offset)).read_to_end(&mut bytes)?;
    // Only whole lines: the writer may be halfway through one.
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let entries = bytes[..whole]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((entries, whole as u64))
}

impl StateStore {
    /// Every replica's sessions started at or after `since_us`, oldest first, as
    /// shipped so far.
    pub async fn sessions(&self, since_us: u64) -> Result<Vec<SessionSummary>, Unavailable> {
        let client = self.current()?;
        list(&client, since_us).await.map_err(|e| Unavailable(format!("{e:#}")))
    }
}

/// Every replica's sessions started at or after `since_us`, oldest first.
pub async fn list(client: &Client, since_us: u64) -> anyhow::Result<Vec<SessionSummary>> {
    let rows = client
        .query(
            "SELECT replica, session, started_at, segment, \"offset\", start_info, ended_at, end_info
               FROM airlock_sessions WHERE started_at >= $1 ORDER BY started_at, replica, session",
            &[&time(since_us)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let start: SessionStart = serde_json::from_value(r.get(5)).unwrap_or_default();
            let started: SystemTime = r.get(2);
            let ended: Option<SystemTime> = r.get(6);
            let end: Option<SessionEnd> =
                r.get::<_, Option<serde_json::Value>>(7).and_then(|v| serde_json::from_value(v).ok());
            let (segment, offset): (i64, i64) = (r.get(3), r.get(4));
            let start_at = (u64::try_from(segment).unwrap_or(0), u64::try_from(offset).unwrap_or(0));
            let mut summary = SessionSummary::started(r.get(1), micros(started), start, start_at);
            if let (Some(end), Some(ended)) = (end, ended) {
                summary.ended(end, micros(ended));
            }
            summary.replica = Some(r.get(0));
            summary
        })
        .collect())
}
