//! The one writer of a process: frames in, durable blocks out.
//!
//! Sessions hand frames to [`Recorder`] (after taking their size from a byte budget,
//! which is the queue bound: when the writer falls behind, the proxy waits, and no
//! frame is ever dropped). A dedicated thread collects frames for a few milliseconds
//! (group commit), compresses them into one block, appends it to the open segment,
//! fsyncs according to the policy, and then releases the budget and answers flushes.
//! Any I/O failure fires [`Recorder::failed`]: new sessions are refused and open
//! ones closed, because traffic that cannot be recorded must not flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::format::{self, Direction, Footer, Frame, Hash, Kind, PolicyEvent, SegmentHeader, SessionEnd, SessionStart};
use super::index::{Index, IndexEntry};
use super::store::{self, OpenSegment};
use super::{FsyncPolicy, RecordingSettings, SigningKey, now_us};
use crate::signal::Signal;

/// What a frame takes from the queue budget, and gives back once written. A frame
/// larger than the whole budget takes all of it.
fn budget_cost(payload_len: usize, budget: usize) -> usize {
    (payload_len + format::FRAME_HEADER_LEN).min(budget)
}

/// How soon a waiting flush (a session ending) is noticed within the group-commit window.
const FLUSH_POLL: Duration = Duration::from_millis(2);

enum Msg {
    Frame(Frame),
    /// Answered once every frame sent before it is written (and fsynced, unless the
    /// policy is `never`).
    Flush(oneshot::Sender<bool>),
    /// A flush that also seals the open segment (at shutdown, so that object storage
    /// gets everything).
    Seal(oneshot::Sender<bool>),
}

/// Handle to the process's recorder.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    failed: Arc<Signal>,
    next_session: Arc<AtomicU64>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("failed", &self.failed.is_fired()).finish()
    }
}

/// The recorder is not accepting frames (it failed, or the process is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the session recorder is unavailable")]
pub struct RecorderDown;

impl Recorder {
    /// Recovers the log in `settings.dir` (cutting a torn tail) and starts the writer.
    pub fn start(settings: RecordingSettings) -> anyhow::Result<Recorder> {
        crate::private::dir(&settings.dir).with_context(|| format!("creating {}", settings.dir.display()))?;
        let state = WriterState::recover(settings)?;
        let budget_bytes = state.settings.queue_bytes;
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let failed = Signal::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_failed = failed.clone();
        let writer_budget = budget.clone();
        std::thread::Builder::new()
            .name("airlock-recorder".into())
            .spawn(move || state.run(rx, writer_budget, writer_failed))
            .context("starting the recorder thread")?;
        Ok(Recorder {
            tx,
            budget,
            budget_bytes,
            failed,
            next_session: Arc::new(AtomicU64::new(rand::random::<u64>() >> 1)),
        })
    }

    /// Fires when the recorder has failed for good.
    pub fn failed(&self) -> &Arc<Signal> {
        &self.failed
    }

    /// Opens a session's recording, writing its start frame.
    pub async fn session(&self, start: &SessionStart) -> Result<SessionRecorder, RecorderDown> {
        if self.failed.is_fired() {
            return Err(RecorderDown);
        }
        // Multiplying by an odd constant is a bijection: ids stay unique within a run
        // and, from a random start, unpredictable across runs.
        let id = self.next_session.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let s = SessionRecorder { recorder: self.clone(), id, seq: AtomicU64::new(0), verdicts: Default::default() };
        let start = serde_json::to_vec(start).map_err(|_| RecorderDown)?;
        s.record(Direction::None, Kind::SessionStart, Bytes::from(start)).await?;
        Ok(s)
    }

    /// Waits until everything sent so far is durable.
    pub async fn flush(&self) -> Result<(), RecorderDown> {
        self.ask(Msg::Flush).await
    }

    /// Flushes, then seals the open segment (a new one opens); for shutdown.
    pub async fn seal(&self) -> Result<(), RecorderDown> {
        self.ask(Msg::Seal).await
    }

    /// Sends the writer a request and waits for its answer.
    async fn ask(&self, request: fn(oneshot::Sender<bool>) -> Msg) -> Result<(), RecorderDown> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(request(tx)).map_err(|_| RecorderDown)?;
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(RecorderDown),
        }
    }
}

/// One session's view of the recorder: assigns sequence numbers and timestamps.
#[derive(Debug)]
pub struct SessionRecorder {
    recorder: Recorder,
    id: u64,
    /// Both relay directions record through one `&SessionRecorder`.
    seq: AtomicU64,
    /// Verdict frames so far, by [`PolicyEvent`] (in [`PolicyEvent::ALL`] order); the
    /// end frame carries the counts, so the index can tell held or denied sessions.
    verdicts: [AtomicU64; PolicyEvent::ALL.len()],
}

impl SessionRecorder {
    /// The session id, as shown by `airlock sessions`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a frame; waits only when the queue's byte budget is exhausted.
    pub async fn record(&self, direction: Direction, kind: Kind, payload: Bytes) -> Result<(), RecorderDown> {
        let payload = match kind {
            Kind::Verdict => {
                self.count(&payload);
                payload
            }
            Kind::SessionEnd => self.with_verdicts(payload),
            _ => payload,
        };
        let r = &self.recorder;
        // Every frame costs at least its header, so empty frames are bounded too.
        let cost = budget_cost(payload.len(), r.budget_bytes) as u32;
        let permit = r.budget.acquire_many(cost).await.map_err(|_| RecorderDown)?;
        // Released by the writer once the frame is on disk.
        permit.forget();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let frame = Frame { session: self.id, seq, ts_us: now_us(), direction, kind, payload };
        r.tx.send(Msg::Frame(frame)).map_err(|_| RecorderDown)
    }

    fn count(&self, verdict: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Event {
            event: PolicyEvent,
        }
        if let Ok(Event { event }) = serde_json::from_slice(verdict)
            && let Some(i) = PolicyEvent::ALL.iter().position(|e| *e == event)
        {
            self.verdicts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The end frame with the session's verdict counts added.
    fn with_verdicts(&self, end: Bytes) -> Bytes {
        let Ok(mut parsed) = serde_json::from_slice::<SessionEnd>(&end) else { return end };
        for (event, n) in PolicyEvent::ALL.iter().zip(&self.verdicts) {
            match n.load(Ordering::Relaxed) {
                0 => {}
                n => {
                    parsed.verdicts.insert(event.as_str().to_owned(), n);
                }
            }
        }
        serde_json::to_vec(&parsed).map(Bytes::from).unwrap_or(end)
    }

    /// Writes the end frame and waits until the whole session is durable.
    pub async fn finish(self, end: &SessionEnd) -> Result<(), RecorderDown> {
        let end = serde_json::to_vec(end).map_err(|_| RecorderDown)?;
        self.record(Direction::None, Kind::SessionEnd, Bytes::from(end)).await?;
        self.recorder.flush().await
    }

    /// Waits until everything this process recorded so far is durable.
    pub async fn flush(&self) -> Result<(), RecorderDown> {
        self.recorder.flush().await
    }

    /// Fires when the recorder fails.
    pub fn failed(&self) -> &Signal {
        &self.recorder.failed
    }
}

struct WriterState {
    settings: RecordingSettings,
    segment: OpenSegment,
    last_hash: Hash,
    index: Index,
    signing: Option<SigningKey>,
    encoder: format::BlockEncoder,
    /// Frames of the block being built, reused between blocks.
    raw: Vec<u8>,
}

impl WriterState {
    fn recover(settings: RecordingSettings) -> anyhow::Result<WriterState> {
        let dir = settings.dir.clone();
        let signing = settings.signing_key.clone();
        let segments = store::list_segments(&dir)?;
        let mut index = Index::open(&dir)?;
        let (segment, last_hash) = match segments.last() {
            None => {
                let (segment, prev_hash) = settings.resume.unwrap_or((0, [0; 32]));
                if segment > 0 {
                    tracing::info!(
                        segment,
                        "no local recordings: the chain continues after object storage's last segment"
                    );
                }
                let header = SegmentHeader {
                    segment,
                    created_us: now_us(),
                    prev_hash,
                    replica: settings.replica.clone(),
                    ..SegmentHeader::default()
                };
                let segment = OpenSegment::create(&dir, &header, settings.faults.as_ref())?;
                let start = segment.chain_start;
                (segment, start)
            }
            Some(&last) => {
                let path = store::segment_path(&dir, last);
                let scan = store::scan(&path, true)?;
                if scan.header.is_none() {
                    anyhow::bail!(
                        "{}: unreadable segment header ({}); move the file away to start a new chain",
                        path.display(),
                        scan.error.map(|e| e.to_string()).unwrap_or_default()
                    );
                }
                if scan.error.is_some() && !scan.torn_tail() {
                    anyhow::bail!(
                        "{}: damaged at offset {} ({}), which is not a torn write; run `airlock verify`, then move the file away to continue",
                        path.display(),
                        scan.good_len,
                        scan.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
                    );
                }
                if let Some(e) = &scan.error {
                    tracing::warn!(segment = %path.display(), offset = scan.good_len, cut = scan.file_len - scan.good_len, error = %e,
                        "recovering a torn tail: truncating to the last good block");
                }
                let last_hash = scan.last_hash().unwrap_or([0; 32]);
                // The index may miss what the crash cut short: rebuild this segment's part.
                index.rebuild_segment(last, &scan)?;
                if scan.footer.is_some() {
                    let header = SegmentHeader {
                        segment: last + 1,
                        created_us: now_us(),
                        prev_hash: last_hash,
                        replica: settings.replica.clone(),
                        ..SegmentHeader::default()
                    };
                    let segment = OpenSegment::create(&dir, &header, settings.faults.as_ref())?;
                    let start = segment.chain_start;
                    (segment, start)
                } else {
                    (OpenSegment::reopen(&dir, &scan, last, settings.faults.as_ref())?, last_hash)
                }
            }
        };
        let encoder = format::BlockEncoder::new(settings.zstd_level)?;
        Ok(WriterState { settings, segment, last_hash, index, signing, encoder, raw: Vec::new() })
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, budget: Arc<Semaphore>, failed: Arc<Signal>) {
        let mut last_sync = Instant::now();
        let mut dirty = false;
        loop {
            // Sleep until something arrives, then gather for one flush interval
            // without being woken per frame.
            let Some(first) = rx.blocking_recv() else { break };
            let mut batch = Vec::new();
            let (mut bytes, mut flush_asked, mut seal_asked) = (0usize, false, false);
            let mut next = Some(first);
            // Gather until the window closes, the block is full, or someone waits on a
            // flush, sleeping in short slices rather than being woken per frame.
            let deadline = Instant::now() + self.settings.flush_interval;
            loop {
                while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
                    match &m {
                        Msg::Frame(f) => bytes += f.payload.len() + format::FRAME_HEADER_LEN,
                        Msg::Flush(_) => flush_asked = true,
                        Msg::Seal(_) => (flush_asked, seal_asked) = (true, true),
                    }
                    batch.push(m);
                    if bytes >= self.settings.block_size {
                        break;
                    }
                }
                let now = Instant::now();
                if flush_asked || bytes >= self.settings.block_size || now >= deadline {
                    break;
                }
                std::thread::sleep((deadline - now).min(FLUSH_POLL));
            }
            let (mut frames, mut flushes) = (Vec::with_capacity(batch.len()), Vec::new());
            for m in batch {
                match m {
                    Msg::Frame(f) => frames.push(f),
                    Msg::Flush(tx) | Msg::Seal(tx) => flushes.push(tx),
                }
            }
            let cost: usize = frames.iter().map(|f| budget_cost(f.payload.len(), self.settings.queue_bytes)).sum();
            let result = self.write(&frames).and_then(|wrote| {
                dirty |= wrote;
                let sync_now = match self.settings.fsync {
                    FsyncPolicy::EveryBatch => true,
                    FsyncPolicy::Interval(d) => last_sync.elapsed() >= d || !flushes.is_empty(),
                    FsyncPolicy::Never => false,
                };
                if dirty && sync_now {
                    self.segment.file.sync_data()?;
                    last_sync = Instant::now();
                    dirty = false;
                }
                if seal_asked { self.rotate() } else { self.maybe_rotate() }
            });
            match result {
                Ok(()) => {
                    budget.add_permits(cost);
                    for tx in flushes {
                        let _ = tx.send(true);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.settings.dir.display(),
                        "cannot write recordings: refusing new sessions and closing open ones");
                    self.settings.metrics.failures.inc();
                    failed.fire();
                    // Leave senders waiting on the budget unblocked; they see the failure.
                    budget.close();
                    return;
                }
            }
        }
        let _ = self.segment.file.sync_data();
    }

    /// Appends one block holding `frames`. Returns whether anything was written.
    fn write(&mut self, frames: &[Frame]) -> std::io::Result<bool> {
        if frames.is_empty() {
            return Ok(false);
        }
        self.raw.clear();
        frames.iter().for_each(|f| format::encode_frame(&mut self.raw, f));
        let (block, hash) = self.encoder.encode(&self.raw, frames.len() as u32, &self.last_hash)?;
        let offset = self.segment.len;
        self.segment.file.write_all(block)?;
        let m = &self.settings.metrics;
        m.frames.inc_by(frames.len() as u64);
        m.bytes.inc_by(self.raw.len() as u64);
        m.disk_bytes.inc_by(block.len() as u64);
        m.blocks.inc();
        self.segment.len += block.len() as u64;
        self.segment.blocks += 1;
        self.last_hash = hash;
        for f in frames.iter().filter(|f| matches!(f.kind, Kind::SessionStart | Kind::SessionEnd)) {
            self.index.append(&IndexEntry::from_frame(f, self.segment.number, offset))?;
        }
        Ok(true)
    }

    fn maybe_rotate(&mut self) -> std::io::Result<()> {
        let age = Duration::from_micros(now_us().saturating_sub(self.segment.created_us));
        if self.segment.len < self.settings.segment_size && age < self.settings.segment_age {
            return Ok(());
        }
        self.rotate()
    }

    /// Seals the open segment (unless it is empty) and opens the next.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.segment.blocks == 0 {
            return Ok(());
        }
        self.seal()?;
        let expired = self.expired()?;
        let (uploaded, retired_remotely) = self.settings.notes.take();
        let mut retired = expired.clone();
        retired.extend(retired_remotely);
        let header = SegmentHeader {
            segment: self.segment.number + 1,
            created_us: now_us(),
            prev_hash: self.last_hash,
            retired,
            replica: self.settings.replica.clone(),
            uploaded,
        };
        self.segment = OpenSegment::create(&self.settings.dir, &header, self.settings.faults.as_ref())?;
        // The new header is the next link of the chain.
        self.last_hash = self.segment.chain_start;
        // The header is durable: the notes it holds may go (a failure only repeats them).
        if let Err(e) = self.settings.notes.recorded(&header.uploaded, &header.retired) {
            tracing::warn!(error = %e, "cannot clear recorded header notes; the next header repeats them");
        }
        // Only now that a durable header records them do the expired segments go: a
        // reader (`airlock verify`) never finds one missing and unaccounted for. A
        // crash before the delete leaves them on disk, recorded; they go next time.
        self.retire(&expired)
    }

    fn seal(&mut self) -> std::io::Result<()> {
        let signature = self
            .signing
            .as_ref()
            .map(|k| k.sign(&format::signed_message(self.segment.number, &self.last_hash)))
            .unwrap_or_default();
        let footer = Footer { blocks: self.segment.blocks, final_hash: self.last_hash, signature };
        self.segment.file.write_all(&footer.encode())?;
        self.settings.metrics.sealed.inc();
        self.segment.file.sync_data()
    }

    /// Sealed segments past retention, with their final hashes, for the next header
    /// to record before they are deleted.
    fn expired(&self) -> std::io::Result<Vec<(u64, Hash)>> {
        let Some(retention) = self.settings.retention else { return Ok(Vec::new()) };
        let cutoff = now_us().saturating_sub(retention.as_micros() as u64);
        let mut retired = Vec::new();
        for n in store::list_segments(&self.settings.dir)? {
            // The open segment and the one just sealed stay.
            if n >= self.segment.number {
                break;
            }
            // A segment's data ends when the next one starts (or, when the next one was
            // uploaded and is no longer here, when it was last written).
            // The uploader may delete an uploaded segment meanwhile: then it is in object
            // storage, not retired, and its retention is the uploader's.
            let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            let path = store::segment_path(&self.settings.dir, n);
            let next = store::segment_path(&self.settings.dir, n + 1);
            let ended = match store::read_header(&next) {
                Ok(header) => header.map_or(u64::MAX, |h| h.created_us),
                Err(e) if gone(&e) => match modified_us(&path) {
                    Ok(t) => t,
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            };
            if ended > cutoff {
                break;
            }
            let footer = match store::read_footer(&path) {
                Ok(Some(footer)) => footer,
                Ok(None) => break,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            retired.push((n, footer.final_hash));
        }
        Ok(retired)
    }

    /// Deletes the `expired` segments, which a header now records.
    fn retire(&mut self, expired: &[(u64, Hash)]) -> std::io::Result<()> {
        let mut deleted = Vec::with_capacity(expired.len());
        for &(n, _) in expired {
            match std::fs::remove_file(store::segment_path(&self.settings.dir, n)) {
                Ok(()) => {
                    tracing::info!(segment = n, "retention: deleted recording segment");
                    deleted.push(n);
                }
                // The uploader deleted it meanwhile: it is in object storage, and the
                // index keeps it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if deleted.is_empty() {
            return Ok(());
        }
        self.index.forget_segments(deleted)
    }
}

/// When `path` was last written, µs since the epoch.
fn modified_us(path: &std::path::Path) -> std::io::Result<u64> {
    let modified = std::fs::metadata(path)?.modified()?;
    Ok(modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64))
}
