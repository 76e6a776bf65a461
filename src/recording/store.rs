//! Segment files on disk: naming, listing, scanning, tail recovery.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::format::{self, Footer, FormatError, Frame, Hash, Item, SegmentHeader};

/// `data_dir/recordings`.
pub fn recordings_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// File name of segment `n`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let name = e?.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                    out.push(n);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort_unstable();
    Ok(out)
}

/// One block as found in a segment.
#[derive(Debug)]
pub struct BlockAt {
    /// Byte offset in the segment file.
    pub offset: u64,
    /// The block's hash.
    pub hash: Hash,
    /// The `prev_hash` it names.
    pub prev_hash: Hash,
    /// Its frames.
    pub frames: Vec<Frame>,
}

/// Everything readable in one segment, and where (if anywhere) reading stopped.
#[derive(Debug)]
pub struct Scan {
    /// The header, if it decoded.
    pub header: Option<SegmentHeader>,
    /// Length of the header.
    pub header_len: u64,
    /// Blocks in order (frames decoded only when asked).
    pub blocks: Vec<BlockAt>,
    /// The footer, if sealed.
    pub footer: Option<Footer>,
    /// Offset just past the last good item.
    pub good_len: u64,
    /// The file's length.
    pub file_len: u64,
    /// Why reading stopped early, at `good_len`.
    pub error: Option<FormatError>,
    /// What the first block must name as its `prev_hash` (see
    /// [`SegmentHeader::chain_start`]).
    pub chain_start: Option<Hash>,
    /// Reading stopped early, yet the file ends with a valid footer: the segment was
    /// sealed and later damaged, which no crash can cause.
    pub damaged_sealed: bool,
}

impl Scan {
    /// Whether the segment merely ends in a torn write (a crash while appending).
    pub fn torn_tail(&self) -> bool {
        self.footer.is_none() && !self.damaged_sealed && matches!(self.error, Some(FormatError::Truncated(_)))
    }

    /// Hash of the last block, or where the chain starts in this segment when there
    /// is none.
    pub fn last_hash(&self) -> Option<Hash> {
        self.blocks.last().map(|b| b.hash).or(self.chain_start)
    }
}

/// Reads and checks a whole segment file. With `decode`, frames are decompressed too
/// (a block whose frames do not decode is reported like any other damage).
pub fn scan(path: &Path, decode: bool) -> std::io::Result<Scan> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(scan_bytes(&bytes, decode))
}

/// [`scan`] over bytes already in memory.
pub fn scan_bytes(bytes: &[u8], decode: bool) -> Scan {
    let mut scan = scan_items(bytes, decode);
    if scan.error.is_some() {
        scan.damaged_sealed = ends_with_footer(bytes);
    }
    scan
}

/// Whether `bytes` end with a well-formed footer.
fn ends_with_footer(bytes: &[u8]) -> bool {
    trailing_footer(bytes).is_some()
}

/// Longest footer: the fixed part plus an Ed25519 signature.
const MAX_FOOTER_LEN: usize = 52 + 64;

/// The footer `bytes` end with, if any (unsigned, or with an Ed25519 signature).
fn trailing_footer(bytes: &[u8]) -> Option<Footer> {
    [52usize, MAX_FOOTER_LEN].iter().find_map(|&len| {
        let tail = bytes.len().checked_sub(len).and_then(|start| bytes.get(start..))?;
        match format::decode_item(tail) {
            Ok(Item::Footer { footer, len: l }) if l == len => Some(footer),
            _ => None,
        }
    })
}

/// Reads only a segment's footer, from the end of the file (sealed segments only).
pub fn read_footer(path: &Path) -> std::io::Result<Option<Footer>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let take = len.min(MAX_FOOTER_LEN as u64);
    file.seek(SeekFrom::Start(len - take))?;
    let mut tail = vec![0u8; take as usize];
    file.read_exact(&mut tail)?;
    Ok(trailing_footer(&tail))
}

/// Reads only a segment's header.
pub fn read_header(path: &Path) -> std::io::Result<Result<SegmentHeader, FormatError>> {
    let mut file = File::open(path)?;
    let mut head = Vec::new();
    // Reads `n` more bytes, or says the header is cut short.
    let mut more = |head: &mut Vec<u8>, n: usize| -> std::io::Result<bool> {
        let start = head.len();
        (&mut file).take(n as u64).read_to_end(head)?;
        Ok(head.len() - start == n)
    };
    let list_len = |head: &[u8]| {
        let at = head.len() - 4;
        u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]) as usize
    };
    // Fixed part: magic, segment, created, prev_hash, retired count.
    if !more(&mut head, 8 + 8 + 8 + 32 + 4)? {
        return Ok(Err(FormatError::Truncated("segment header")));
    }
    let v2 = &head[..8] == format::SEGMENT_MAGIC;
    let retired = list_len(&head);
    if retired > format::MAX_RETIRED {
        return Ok(Err(FormatError::TooLarge("retired list", retired)));
    }
    let mut complete = more(&mut head, retired * 40)?;
    if v2 && complete {
        // Replica name, then the uploaded list.
        complete = more(&mut head, 1)?;
        let name = head.last().copied().unwrap_or(0) as usize;
        complete = complete && more(&mut head, name + 4)?;
        let uploaded = if complete { list_len(&head) } else { 0 };
        if uploaded > format::MAX_RETIRED {
            return Ok(Err(FormatError::TooLarge("uploaded list", uploaded)));
        }
        complete = complete && more(&mut head, uploaded * 40)?;
    }
    if !complete || !more(&mut head, 4)? {
        return Ok(Err(FormatError::Truncated("segment header")));
    }
    Ok(SegmentHeader::decode(&head).map(|(h, _)| h))
}

fn scan_items(bytes: &[u8], decode: bool) -> Scan {
    let file_len = bytes.len() as u64;
    let mut scan = Scan {
        header: None,
        header_len: 0,
        blocks: Vec::new(),
        footer: None,
        good_len: 0,
        file_len,
        error: None,
        damaged_sealed: false,
        chain_start: None,
    };
    let (header, mut pos) = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            scan.error = Some(e);
            return scan;
        }
    };
    scan.chain_start = Some(header.chain_start(bytes.get(..pos).unwrap_or_default()));
    scan.header = Some(header);
    scan.header_len = pos as u64;
    scan.good_len = pos as u64;
    while pos < bytes.len() {
        if scan.footer.is_some() {
            scan.error = Some(FormatError::Invalid("data after the footer"));
            return scan;
        }
        match format::decode_item(bytes.get(pos..).unwrap_or_default()) {
            Ok(Item::Block { header, payload, hash, len }) => {
                let frames = if decode {
                    match format::decode_frames(&header, payload) {
                        Ok(f) => f,
                        Err(e) => {
                            scan.error = Some(e);
                            return scan;
                        }
                    }
                } else {
                    Vec::new()
                };
                scan.blocks.push(BlockAt { offset: pos as u64, hash, prev_hash: header.prev_hash, frames });
                pos += len;
            }
            Ok(Item::Footer { footer, len }) => {
                scan.footer = Some(footer);
                pos += len;
            }
            Err(e) => {
                scan.error = Some(e);
                return scan;
            }
        }
        scan.good_len = pos as u64;
    }
    scan
}

/// Disk faults to inject, for tests of how the writer fails: every segment create,
/// write and sync goes through [`SegmentFile`], which consults the plan.
#[derive(Debug)]
pub struct FaultPlan {
    /// Bytes segment writes may still store. A write past them stores what fits, then
    /// fails as a full disk does.
    pub space: AtomicU64,
    /// Syncs fail (EIO) while set.
    pub failing_syncs: AtomicBool,
    /// Creating a segment fails (ENOSPC) while set.
    pub failing_creates: AtomicBool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            space: AtomicU64::new(u64::MAX),
            failing_syncs: AtomicBool::new(false),
            failing_creates: AtomicBool::default(),
        }
    }
}

impl FaultPlan {
    /// Takes up to `n` bytes of the space left; how many were granted.
    fn take(&self, n: usize) -> usize {
        let mut granted = 0;
        let _ = self.space.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            granted = left.min(n as u64);
            Some(left - granted)
        });
        granted as usize
    }
}

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// A segment's file as the writer sees it: appends and syncs, with faults injected
/// where a [`FaultPlan`] is given.
#[derive(Debug)]
pub struct SegmentFile {
    file: File,
    faults: Option<Arc<FaultPlan>>,
}

impl SegmentFile {
    /// Appends all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(plan) = &self.faults {
            let granted = plan.take(bytes.len());
            if granted < bytes.len() {
                self.file.write_all(&bytes[..granted])?;
                return Err(std::io::Error::from_raw_os_error(ENOSPC));
            }
        }
        self.file.write_all(bytes)
    }

    /// Forces what was written to disk.
    pub fn sync_data(&self) -> std::io::Result<()> {
        if self.faults.as_ref().is_some_and(|p| p.failing_syncs.load(Ordering::SeqCst)) {
            return Err(std::io::Error::from_raw_os_error(EIO));
        }
        self.file.sync_data()
    }
}

/// An open, writable segment.
#[derive(Debug)]
pub struct OpenSegment {
    /// Segment number.
    pub number: u64,
    /// The file, positioned at its end.
    pub file: SegmentFile,
    /// Bytes written so far.
    pub len: u64,
    /// Blocks written so far.
    pub blocks: u64,
    /// Creation time, µs.
    pub created_us: u64,
    /// What its first block names as `prev_hash`.
    pub chain_start: Hash,
}

impl OpenSegment {
    /// Creates segment `number` with `header`, durably (file and directory).
    pub fn create(dir: &Path, header: &SegmentHeader, faults: Option<&Arc<FaultPlan>>) -> std::io::Result<OpenSegment> {
        if faults.is_some_and(|p| p.failing_creates.load(Ordering::SeqCst)) {
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        let path = segment_path(dir, header.segment);
        let mut file = SegmentFile { file: crate::private::create(&path)?, faults: faults.cloned() };
        let bytes = header.encode();
        file.write_all(&bytes)?;
        file.sync_data()?;
        File::open(dir)?.sync_all()?;
        Ok(OpenSegment {
            number: header.segment,
            file,
            len: bytes.len() as u64,
            blocks: 0,
            created_us: header.created_us,
            chain_start: header.chain_start(&bytes),
        })
    }

    /// Reopens the last segment after a crash, cutting a torn tail at `good_len`.
    pub fn reopen(
        dir: &Path,
        scan: &Scan,
        number: u64,
        faults: Option<&Arc<FaultPlan>>,
    ) -> std::io::Result<OpenSegment> {
        let path = segment_path(dir, number);
        let mut file = std::fs::OpenOptions::new().write(true).read(true).open(path)?;
        if scan.good_len < scan.file_len {
            file.set_len(scan.good_len)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(scan.good_len))?;
        Ok(OpenSegment {
            number,
            file: SegmentFile { file, faults: faults.cloned() },
            len: scan.good_len,
            blocks: scan.blocks.len() as u64,
            created_us: scan.header.as_ref().map(|h| h.created_us).unwrap_or(0),
            chain_start: scan.chain_start.unwrap_or([0; 32]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::format::{Direction, Kind};

    fn segment_bytes(blocks: usize) -> (Vec<u8>, Vec<usize>) {
        let header = SegmentHeader { segment: 0, created_us: 0, prev_hash: [0; 32], ..Default::default() };
        let mut out = header.encode();
        let mut starts = Vec::new();
        let mut prev = [0u8; 32];
        for i in 0..blocks {
            let mut raw = Vec::new();
            let f = Frame {
                session: 1,
                seq: i as u64,
                ts_us: 0,
                direction: Direction::ToAgent,
                kind: Kind::PgBackend,
                payload: vec![b'x'; 100].into(),
            };
            format::encode_frame(&mut raw, &f);
            let (block, hash) = format::encode_block(&raw, 1, &prev, 3).unwrap();
            starts.push(out.len());
            out.extend_from_slice(&block);
            prev = hash;
        }
        (out, starts)
    }

    #[test]
    fn torn_tail_stops_at_the_last_good_block() {
        let (bytes, starts) = segment_bytes(3);
        let torn = &bytes[..bytes.len() - 7];
        let scan = scan_bytes(torn, true);
        assert_eq!(scan.blocks.len(), 2);
        assert_eq!(scan.good_len, starts[2] as u64);
        assert!(matches!(scan.error, Some(FormatError::Truncated(_))));
    }

    #[test]
    fn intact_segment_scans_clean() {
        let (bytes, _) = segment_bytes(3);
        let scan = scan_bytes(&bytes, true);
        assert!(scan.error.is_none());
        assert_eq!(scan.blocks.len(), 3);
        assert_eq!(scan.blocks[1].prev_hash, scan.blocks[0].hash);
    }
}
