//! Session recordings: a compressed, hash-chained, segmented log.
//!
//! - [`format`](mod@format): frames, blocks, segment headers and footers as bytes (pure).
//! - [`store`]: segment files: listing, scanning, torn-tail recovery.
//! - [`writer`]: the process's single writer thread, group commit, fail-closed.
//! - [`index`]: session → segment/offset, identity, connection; rebuildable.
//! - [`verify`]: walks the chain and names the first bad block.
//! - [`replay`]: turns a session's frames back into a transcript.
//!
//! What is recorded is what crossed Airlock after every transformation: the agent's
//! messages as forwarded upstream and the upstream's replies as the agent received them.

pub mod format;
pub mod index;
pub mod remote;
pub mod replay;
pub mod store;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

pub use writer::{Recorder, RecorderDown, SessionRecorder};

use crate::config::{Config, FsyncSetting};

/// When the writer forces blocks to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every block (group commit): nothing acknowledged is lost.
    EveryBatch,
    /// At most this often (and on every explicit flush).
    Interval(Duration),
    /// Leave it to the OS.
    Never,
}

/// Everything the writer needs, resolved from the config.
#[derive(Debug, Clone)]
pub struct RecordingSettings {
    /// `data_dir/recordings`.
    pub dir: PathBuf,
    /// Seal a segment at this size.
    pub segment_size: u64,
    /// ... or at this age.
    pub segment_age: Duration,
    /// Delete sealed segments older than this.
    pub retention: Option<Duration>,
    /// Fsync policy.
    pub fsync: FsyncPolicy,
    /// zstd level.
    pub zstd_level: i32,
    /// Group-commit window.
    pub flush_interval: Duration,
    /// Uncompressed bytes per block at most (a batch stops growing there).
    pub block_size: usize,
    /// Bytes of frames queued before senders wait.
    pub queue_bytes: usize,
    /// Signs sealed segments when present.
    pub signing_key: Option<SigningKey>,
    /// Counters the writer updates.
    pub metrics: crate::metrics::RecorderMetrics,
    /// Disk faults to inject (tests only; `None` in service).
    pub faults: Option<std::sync::Arc<store::FaultPlan>>,
    /// This replica's name, written in every segment header.
    pub replica: String,
    /// What the uploader tells the next segment header.
    pub notes: std::sync::Arc<HeaderNotes>,
    /// With no local segments: the segment number and previous hash to start from
    /// (the chain continues from object storage).
    pub resume: Option<(u64, format::Hash)>,
}

/// Records for the next segment header that come from outside the writer: segments
/// uploaded to object storage, and uploaded ones to be deleted there by retention.
///
/// Notes are durable (`header-notes.jsonl`, fsynced) from the moment they are made
/// until a segment header holding them is on disk; a restart puts them in the next
/// header (a repeat is harmless). A remote segment is deleted only once its retirement
/// is in a durable header, so `verify` never meets a gap nothing explains.
#[derive(Debug, Default)]
pub struct HeaderNotes {
    /// `None`: in memory only (tests, benchmarks).
    path: Option<PathBuf>,
    inner: std::sync::Mutex<NotesState>,
}

#[derive(Debug, Default)]
struct NotesState {
    pending: Vec<Note>,
    /// Notes a durable header holds (since this process started).
    recorded: std::collections::HashSet<(NoteKind, u64)>,
}

/// What a note says of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    /// Uploaded and read back intact.
    Uploaded,
    /// Deleted from object storage by retention (once recorded).
    Retired,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Note {
    kind: NoteKind,
    segment: u64,
    hash: String,
}

impl Note {
    fn hash(&self) -> Option<format::Hash> {
        let mut h = [0; 32];
        hex::decode_to_slice(&self.hash, &mut h).ok().map(|_| h)
    }
}

/// Segment numbers with their last block hash.
pub type Segments = Vec<(u64, format::Hash)>;

impl HeaderNotes {
    /// Notes kept in `dir/header-notes.jsonl`, with those a crash left there.
    pub fn open(dir: &Path) -> std::io::Result<HeaderNotes> {
        let path = dir.join("header-notes.jsonl");
        let pending = match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let inner = std::sync::Mutex::new(NotesState { pending, ..NotesState::default() });
        Ok(HeaderNotes { path: Some(path), inner })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NotesState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes `kind` of segment `n`, ending in `hash`, durably.
    pub fn note(&self, kind: NoteKind, n: u64, hash: format::Hash) -> std::io::Result<()> {
        use std::io::Write;
        let mut state = self.lock();
        if state.pending.iter().any(|p| p.kind == kind && p.segment == n) {
            return Ok(());
        }
        let note = Note { kind, segment: n, hash: hex::encode(hash) };
        if let Some(path) = &self.path {
            let mut line = serde_json::to_vec(&note).map_err(std::io::Error::other)?;
            line.push(b'\n');
            let mut file = crate::private::append(path)?;
            file.write_all(&line)?;
            file.sync_data()?;
        }
        state.pending.push(note);
        Ok(())
    }

    /// Whether a note of `kind` for segment `n` waits for a header.
    pub fn is_pending(&self, kind: NoteKind, n: u64) -> bool {
        self.lock().pending.iter().any(|p| p.kind == kind && p.segment == n)
    }

    /// Whether a durable header holds a note of `kind` for segment `n`.
    pub fn is_recorded(&self, kind: NoteKind, n: u64) -> bool {
        self.lock().recorded.contains(&(kind, n))
    }

    /// Everything waiting for a header: (uploaded, retired).
    pub fn take(&self) -> (Segments, Segments) {
        let state = self.lock();
        let of =
            |kind| state.pending.iter().filter(move |p| p.kind == kind).filter_map(|p| Some((p.segment, p.hash()?)));
        (of(NoteKind::Uploaded).collect(), of(NoteKind::Retired).collect())
    }

    /// A durable header now holds these notes.
    pub fn recorded(&self, uploaded: &Segments, retired: &Segments) -> std::io::Result<()> {
        let mut state = self.lock();
        let done: std::collections::HashSet<(NoteKind, u64)> = uploaded
            .iter()
            .map(|(n, _)| (NoteKind::Uploaded, *n))
            .chain(retired.iter().map(|(n, _)| (NoteKind::Retired, *n)))
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        state.pending.retain(|p| !done.contains(&(p.kind, p.segment)));
        state.recorded.extend(done);
        let Some(path) = &self.path else { return Ok(()) };
        let text: String =
            state.pending.iter().filter_map(|p| serde_json::to_string(p).ok()).map(|l| l + "\n").collect();
        crate::private::replace(path, text.as_bytes())
    }
}

impl RecordingSettings {
    /// Settings from the `[recording]` table.
    pub fn from_config(config: &Config) -> anyhow::Result<RecordingSettings> {
        let r = &config.recording;
        let data_dir = config.data_dir();
        Ok(RecordingSettings {
            dir: store::recordings_dir(&data_dir),
            segment_size: r.segment_size as u64,
            segment_age: r.segment_age,
            retention: r.retention,
            fsync: match r.fsync {
                FsyncSetting::EveryBatch => FsyncPolicy::EveryBatch,
                FsyncSetting::Interval => FsyncPolicy::Interval(r.fsync_interval),
                FsyncSetting::Never => FsyncPolicy::Never,
            },
            zstd_level: r.zstd_level,
            flush_interval: r.flush_interval,
            block_size: 1 << 20,
            queue_bytes: r.queue_size,
            signing_key: if r.sign { Some(SigningKey::load_or_create(&data_dir)?) } else { None },
            metrics: Default::default(),
            faults: None,
            replica: config.replica(),
            notes: std::sync::Arc::new(HeaderNotes::open(&store::recordings_dir(&data_dir))?),
            resume: None,
        })
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The Ed25519 key that signs sealed segments (`data_dir/recording-signing.key`,
/// PKCS#8; its public half in `recording-signing.pub` as hex).
#[derive(Clone)]
pub struct SigningKey(std::sync::Arc<Ed25519KeyPair>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl SigningKey {
    /// Loads the key from `data_dir`, creating it (and the public key file) first.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<SigningKey> {
        let path = data_dir.join("recording-signing.key");
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::private::dir(data_dir)?;
                let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("generating the recording signing key"))?;
                let mut file = crate::private::create(&path)?;
                std::io::Write::write_all(&mut file, doc.as_ref())?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 key: {e}", path.display()))?;
        let public = hex::encode(pair.public_key().as_ref());
        std::fs::write(data_dir.join("recording-signing.pub"), format!("{public}\n"))?;
        Ok(SigningKey(std::sync::Arc::new(pair)))
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::format::{Direction, Kind};
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    fn settings(dir: &Path, segment_size: u64) -> RecordingSettings {
        RecordingSettings {
            dir: dir.to_owned(),
            segment_size,
            segment_age: Duration::from_secs(3600),
            retention: None,
            fsync: FsyncPolicy::EveryBatch,
            zstd_level: 3,
            flush_interval: Duration::from_millis(1),
            block_size: 4096,
            queue_bytes: 1 << 20,
            signing_key: None,
            metrics: Default::default(),
            faults: None,
            replica: "test".into(),
            notes: Default::default(),
            resume: None,
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("airlock-rec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Records `sessions` sessions of `frames` rows each, sequentially, and flushes.
    async fn record(recorder: &Recorder, sessions: usize, frames: usize) {
        for s in 0..sessions {
            let session = recorder
                .session(&format::SessionStart {
                    subject: format!("agent-{s}"),
                    connection: "db".into(),
                    protocol: "postgres".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            for i in 0..frames {
                let row = format!("row {i} of session {s}: {}", "x".repeat(i % 50));
                session.record(Direction::ToAgent, Kind::PgBackend, Bytes::from(row)).await.unwrap();
            }
            let end =
                format::SessionEnd { reason: "Terminated".into(), statements: frames as u64, ..Default::default() };
            session.finish(&end).await.unwrap();
        }
    }

    #[tokio::test]
    async fn chain_survives_rotation_and_detects_tampering() {
        let dir = temp("chain");
        let recorder = Recorder::start(settings(&dir, 1024)).unwrap();
        record(&recorder, 12, 40).await;
        let report = verify::verify(&dir, None).unwrap();
        assert!(report.sealed >= 2, "{report:?}");
        assert_eq!(index::sessions(&dir).unwrap().len(), 12);
        assert_eq!(index::reindex(&dir).unwrap(), 12);

        // Flip one byte in the middle of the first segment.
        let first = store::segment_path(&dir, 0);
        let original = std::fs::read(&first).unwrap();
        let mut bytes = original.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&first, &bytes).unwrap();
        let problem = verify::verify(&dir, None).unwrap_err();
        assert_eq!(problem.segment, 0, "{problem}");

        // Remove a whole block: CRCs are fine, the chain is not.
        let scan = store::scan_bytes(&original, false);
        let (b0, b1) = (scan.blocks[0].offset as usize, scan.blocks[1].offset as usize);
        let mut cut = original[..b0].to_vec();
        cut.extend_from_slice(&original[b1..]);
        std::fs::write(&first, &cut).unwrap();
        let problem = verify::verify(&dir, None).unwrap_err();
        assert!(problem.what.contains("hash chain"), "{problem}");
        assert_eq!((problem.segment, problem.offset), (0, b0 as u64));

        // Deleting a sealed segment is noticed too.
        std::fs::write(&first, &original).unwrap();
        std::fs::remove_file(store::segment_path(&dir, 1)).unwrap();
        let problem = verify::verify(&dir, None).unwrap_err();
        assert!(problem.what.contains("segment 1 is missing"), "{problem}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn torn_tail_is_recovered_and_nothing_flushed_is_lost() {
        let dir = temp("torn");
        {
            let recorder = Recorder::start(settings(&dir, 64 << 20)).unwrap();
            record(&recorder, 3, 20).await;
        }
        // A crash mid-write leaves half a block at the end.
        let last = *store::list_segments(&dir).unwrap().last().unwrap();
        let path = store::segment_path(&dir, last);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, &format::BLOCK_MAGIC[..]).unwrap();
        std::io::Write::write_all(&mut file, &[0xff; 30]).unwrap();
        drop(file);
        let problem = verify::verify(&dir, None).unwrap_err();
        assert!(problem.what.contains("torn write"), "{problem}");

        let recorder = Recorder::start(settings(&dir, 64 << 20)).unwrap();
        record(&recorder, 1, 5).await;
        verify::verify(&dir, None).unwrap();
        let sessions = index::sessions(&dir).unwrap();
        assert_eq!(sessions.len(), 4);
        assert!(sessions.iter().all(|s| s.end_reason.as_deref() == Some("Terminated")));
        let (_, frames) = replay::load(&dir, &sessions[1].id).unwrap();
        assert_eq!(frames.len(), 22, "start + 20 rows + end");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn signatures_and_retention() {
        let dir = temp("sign");
        let data = dir.join("data");
        let mut s = settings(&data.join("recordings"), 1024);
        s.signing_key = Some(SigningKey::load_or_create(&data).unwrap());
        s.retention = Some(Duration::ZERO);
        let recorder = Recorder::start(s).unwrap();
        record(&recorder, 10, 40).await;
        let public = hex::decode(std::fs::read_to_string(data.join("recording-signing.pub")).unwrap().trim()).unwrap();
        let rec_dir = data.join("recordings");
        let report = verify::verify(&rec_dir, Some(&public)).unwrap();
        assert!(report.retired > 0 && report.signatures > 0, "{report:?}");
        let other = SigningKey::load_or_create(&dir.join("other")).unwrap();
        let wrong =
            hex::decode(std::fs::read_to_string(dir.join("other/recording-signing.pub")).unwrap().trim()).unwrap();
        drop(other);
        assert!(verify::verify(&rec_dir, Some(&wrong)).unwrap_err().what.contains("signature"));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `verify` beside a recorder whose retention deletes each segment as the next
    /// begins: a segment listed but gone when read is looked at again, not reported.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_while_retention_deletes_segments() {
        let dir = temp("verify-retention");
        let rec_dir = dir.join("recordings");
        let mut s = settings(&rec_dir, 1024);
        s.retention = Some(Duration::ZERO);
        let recorder = Arc::new(Recorder::start(s).unwrap());
        record(&recorder, 1, 10).await;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checker = {
            let (done, rec_dir) = (done.clone(), rec_dir.clone());
            tokio::task::spawn_blocking(move || {
                let mut passes = 0;
                while !done.load(Ordering::Relaxed) || passes < 20 {
                    verify::verify(&rec_dir, None).unwrap_or_else(|e| panic!("pass {passes}: {e}"));
                    passes += 1;
                }
                passes
            })
        };
        record(&recorder, 40, 40).await;
        done.store(true, Ordering::Relaxed);
        assert!(checker.await.unwrap() >= 20);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Starts a session, records `rows` frames and ends it; whether the end is on record.
    async fn one_session(recorder: &Recorder, subject: &str, rows: usize) -> Result<(), RecorderDown> {
        let start = format::SessionStart {
            subject: subject.into(),
            connection: "db".into(),
            protocol: "postgres".into(),
            ..Default::default()
        };
        let session = recorder.session(&start).await?;
        for i in 0..rows {
            session.record(Direction::ToAgent, Kind::PgBackend, Bytes::from(format!("{subject} row {i}"))).await?;
        }
        session.finish(&format::SessionEnd { reason: "Terminated".into(), ..Default::default() }).await
    }

    /// Injects each kind of disk fault through the segment file: every session whose end
    /// was acknowledged before it is recovered whole, the failure stops the recorder
    /// for good (new sessions are refused), and the recovered chain verifies.
    #[tokio::test]
    async fn injected_disk_faults_stop_the_recorder_and_lose_nothing_acknowledged() {
        type Inject = fn(&store::FaultPlan);
        let faults: [(&str, Inject); 4] = [
            ("disk full mid-block", |p| p.space.store(100, Ordering::SeqCst)),
            ("disk full at a block boundary", |p| p.space.store(0, Ordering::SeqCst)),
            ("sync fails", |p| p.failing_syncs.store(true, Ordering::SeqCst)),
            ("rotation cannot create a segment", |p| {
                p.failing_creates.store(true, Ordering::SeqCst);
            }),
        ];
        for (n, (what, inject)) in faults.into_iter().enumerate() {
            let dir = temp(&format!("fault-{n}"));
            let plan = Arc::new(store::FaultPlan::default());
            // Small segments: the last fault strikes when one fills up.
            let mut s = settings(&dir, 4096);
            s.faults = Some(plan.clone());
            let recorder = Recorder::start(s).unwrap();
            let mut acknowledged = Vec::new();
            for i in 0..3 {
                let subject = format!("before-{i}");
                one_session(&recorder, &subject, 5).await.unwrap();
                acknowledged.push(subject);
            }
            inject(&plan);
            let mut failed_at = None;
            for i in 0..50 {
                let subject = format!("during-{i}");
                match one_session(&recorder, &subject, 40).await {
                    Ok(()) => acknowledged.push(subject),
                    Err(RecorderDown) => {
                        failed_at = Some(i);
                        break;
                    }
                }
            }
            assert!(failed_at.is_some(), "{what}: the recorder never failed");
            assert!(recorder.failed().is_fired(), "{what}");
            assert!(one_session(&recorder, "after", 1).await.is_err(), "{what}: a new session was recorded");
            drop(recorder);

            // Recovery on a healthy disk keeps every acknowledged session whole.
            let recorder = Recorder::start(settings(&dir, 4096)).unwrap();
            one_session(&recorder, "recovered", 1).await.unwrap();
            drop(recorder);
            verify::verify(&dir, None).unwrap_or_else(|e| panic!("{what}: {e}"));
            let listed = index::sessions(&dir).unwrap();
            for subject in &acknowledged {
                let s =
                    listed.iter().find(|s| &s.subject == subject).unwrap_or_else(|| panic!("{what}: {subject} lost"));
                assert_eq!(s.end_reason.as_deref(), Some("Terminated"), "{what}: {subject}");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// A sealed segment with a few blocks, built in memory: (file name, bytes).
    fn sealed_segment() -> Vec<u8> {
        let header = format::SegmentHeader { segment: 0, created_us: 1, prev_hash: [0; 32], ..Default::default() };
        let mut out = header.encode();
        let mut prev = header.chain_start(&out);
        for b in 0..3u64 {
            let mut raw = Vec::new();
            for seq in 0..4 {
                let payload = Bytes::from(format!("block {b} frame {seq} SELECT * FROM t"));
                let f = format::Frame {
                    session: 9,
                    seq,
                    ts_us: seq,
                    direction: Direction::ToAgent,
                    kind: Kind::PgBackend,
                    payload,
                };
                format::encode_frame(&mut raw, &f);
            }
            let (block, hash) = format::encode_block(&raw, 4, &prev, 1).unwrap();
            out.extend_from_slice(&block);
            prev = hash;
        }
        out.extend_from_slice(&format::Footer { blocks: 3, final_hash: prev, signature: vec![] }.encode());
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn flipping_any_byte_of_a_sealed_segment_is_detected(at in 0usize..100_000, bit in 0u8..8) {
            let dir = temp(&format!("flip-{at}-{bit}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut bytes = sealed_segment();
            let path = store::segment_path(&dir, 0);
            std::fs::write(&path, &bytes).unwrap();
            proptest::prop_assert!(verify::verify(&dir, None).is_ok());
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
            std::fs::write(&path, &bytes).unwrap();
            let result = verify::verify(&dir, None);
            let _ = std::fs::remove_dir_all(&dir);
            proptest::prop_assert!(result.is_err(), "flip at {} went unnoticed", i);
        }
    }
}
