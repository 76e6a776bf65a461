//! `airlock verify`: walk every segment and block, check CRCs, the hash chain across
//! segments, footers and (given a public key) signatures. The first problem is named
//! by segment, offset and kind.

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};

use super::format::{self, Hash};
use super::store;

/// Counts from a successful verification.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Segments checked.
    pub segments: usize,
    /// Sealed segments among them.
    pub sealed: usize,
    /// Blocks checked.
    pub blocks: usize,
    /// Frames decoded.
    pub frames: usize,
    /// Segments deleted by retention, as recorded in later headers.
    pub retired: usize,
    /// Signatures checked.
    pub signatures: usize,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("segment {segment} at offset {offset}: {what}")]
pub struct Problem {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment file.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

/// How many times [`verify`] starts again when a segment vanishes under it.
const VANISHED_RETRIES: usize = 3;

/// Why one pass over the segments stopped.
enum Stop {
    /// A listed segment was gone when read: retention deleted it meanwhile.
    Vanished(Problem),
    Problem(Problem),
}

/// Verifies all of `dir`. `public_key` is a raw 32-byte Ed25519 key.
///
/// A running Airlock may delete its oldest segments while this reads (retention, or
/// a segment stored remotely leaving the disk): a segment listed but gone when read
/// starts the walk again from a fresh listing, where a later header records it.
pub fn verify(dir: &Path, public_key: Option<&[u8]>) -> Result<Report, Problem> {
    let mut tries = 0;
    loop {
        match walk(dir, public_key) {
            Ok(report) => return Ok(report),
            Err(Stop::Vanished(_)) if tries < VANISHED_RETRIES => tries += 1,
            Err(Stop::Vanished(p) | Stop::Problem(p)) => return Err(p),
        }
    }
}

/// One pass over every segment of `dir`.
fn walk(dir: &Path, public_key: Option<&[u8]>) -> Result<Report, Stop> {
    let io = |segment, e: std::io::Error| {
        let vanished = e.kind() == std::io::ErrorKind::NotFound;
        let problem = Problem { segment, offset: 0, what: format!("cannot read: {e}") };
        if vanished { Stop::Vanished(problem) } else { Stop::Problem(problem) }
    };
    let segments = store::list_segments(dir).map_err(|e| io(0, e))?;
    let mut report = Report::default();
    // Retirement records come from later headers; collect them first, from the
    // headers alone, then check one segment at a time so memory stays flat.
    let mut retired: HashMap<u64, Hash> = HashMap::new();
    for &n in &segments {
        if let Ok(header) = store::read_header(&store::segment_path(dir, n)).map_err(|e| io(n, e))? {
            retired.extend(header.retired.iter().copied());
        }
    }
    report.retired = retired.len();
    let mut expected: Option<Hash> = None;
    let last_index = segments.len().saturating_sub(1);
    for (i, &n) in segments.iter().enumerate() {
        let scan = store::scan(&store::segment_path(dir, n), true).map_err(|e| io(n, e))?;
        let problem = |offset: u64, what: String| Stop::Problem(Problem { segment: n, offset, what });
        let Some(header) = &scan.header else {
            return Err(problem(
                0,
                format!("header: {}", scan.error.as_ref().map(|e| e.to_string()).unwrap_or_default()),
            ));
        };
        if header.segment != n {
            return Err(problem(0, format!("header names segment {} (file renamed?)", header.segment)));
        }
        let start_ok = match expected {
            Some(prev) if i > 0 && segments[i - 1] + 1 == n => header.prev_hash == prev,
            _ if n == 0 => header.prev_hash == [0; 32],
            // The predecessor is gone: only retention may explain that.
            _ => retired.get(&(n - 1)) == Some(&header.prev_hash),
        };
        if !start_ok {
            let what = if i > 0 && segments[i - 1] + 1 != n || (i == 0 && n > 0) {
                format!(
                    "segment {} is missing and not recorded as retired (if it was uploaded to object \
                     storage, verify with a --config that has [recording.remote])",
                    n - 1
                )
            } else {
                "hash chain broken at the segment start (previous segment altered or replaced)".to_owned()
            };
            return Err(problem(0, what));
        }
        // The first block names the header (version 2) or the previous hash (version 1).
        let mut running = scan.chain_start.unwrap_or(header.prev_hash);
        for block in &scan.blocks {
            if block.prev_hash != running {
                return Err(problem(
                    block.offset,
                    "hash chain broken: a block was removed, reordered or altered".into(),
                ));
            }
            running = block.hash;
            report.blocks += 1;
            report.frames += block.frames.len();
        }
        if let Some(e) = &scan.error {
            // A crash while appending tears the open segment's tail, and so does
            // cutting blocks off its end: both are reported; a restart recovers the first.
            let what = if i == last_index && scan.torn_tail() {
                format!("{e}: the segment ends in a torn write (after a crash, starting Airlock again cuts it off)")
            } else {
                e.to_string()
            };
            return Err(problem(scan.good_len, what));
        }
        match &scan.footer {
            Some(footer) => {
                if footer.final_hash != running || footer.blocks != scan.blocks.len() as u64 {
                    return Err(problem(scan.good_len, "footer does not match the blocks before it".into()));
                }
                if let Some(key) = public_key {
                    if footer.signature.is_empty() {
                        return Err(problem(scan.good_len, "segment is not signed".into()));
                    }
                    UnparsedPublicKey::new(&ED25519, key)
                        .verify(&format::signed_message(n, &footer.final_hash), &footer.signature)
                        .map_err(|_| problem(scan.good_len, "signature does not verify".into()))?;
                    report.signatures += 1;
                }
                report.sealed += 1;
            }
            None if i != last_index => {
                return Err(problem(
                    scan.good_len,
                    "segment ends without a footer but is not the last (truncated in the middle)".into(),
                ));
            }
            None => {}
        }
        report.segments += 1;
        expected = Some(running);
    }
    Ok(report)
}

/// Checks that every segment header in `dir` names `replica` (version 1 headers name
/// none): a chain stored under one replica's name holds that replica's segments only.
pub fn check_replica(dir: &Path, replica: &str) -> Result<(), Problem> {
    let segments = store::list_segments(dir).map_err(|e| Problem { segment: 0, offset: 0, what: e.to_string() })?;
    for n in segments {
        if let Ok(Ok(header)) = store::read_header(&store::segment_path(dir, n))
            && !header.replica.is_empty()
            && header.replica != replica
        {
            return Err(Problem {
                segment: n,
                offset: 0,
                what: format!("stored as replica {replica:?}'s, but its header names replica {:?}", header.replica),
            });
        }
    }
    Ok(())
}
