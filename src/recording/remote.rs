//! Recordings in object storage (`[recording.remote]`).
//!
//! Each replica ships its own sealed segments to `<prefix>/<replica>/<n>.seg`. A
//! segment is uploaded, read back and compared byte for byte; only then is it noted for
//! the next segment header ([`HeaderNotes`]) and the local copy deleted. A failed
//! round leaves everything local and is tried again next round. Retention deletes
//! remote segments too, and the deletion is recorded like a local one, so `verify` can
//! tell retirement from loss.
//!
//! Readers (`sessions`, `replay`, `verify`) see local and remote segments alike through
//! a cache directory per replica ([`materialize`]): local segments are linked, remote
//! ones downloaded once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::Hash;
use super::{HeaderNotes, NoteKind, now_us, store};
use crate::config::{Config, RemoteStorage};

/// An object store holding every replica's segments under one prefix.
#[derive(Debug, Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    /// Where the segments are, for messages (`s3://bucket/prefix`).
    pub url: String,
}

impl Remote {
    /// The store `[recording.remote]` names, with its credentials loaded.
    pub fn from_config(config: &Config, r: &RemoteStorage) -> anyhow::Result<Remote> {
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = if let Some(rest) = r.url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "recording.remote.url {:?}: no bucket", r.url);
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&r.region)
                .with_allow_http(r.allow_http)
                .with_retry(object_store::RetryConfig {
                    max_retries: 5,
                    retry_timeout: Duration::from_secs(60),
                    ..Default::default()
                });
            if let Some(endpoint) = &r.endpoint {
                // S3-compatible stores are addressed by path, not by bucket host name.
                builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
            }
            if let (Some(id), Some(secret)) = (&r.access_key_id, &r.secret_access_key) {
                let text = |s: crate::secrets::Secret, what: &str| {
                    String::from_utf8(s.expose().to_vec())
                        .with_context(|| format!("recording.remote.{what}: not UTF-8"))
                };
                builder = builder
                    .with_access_key_id(text(id.load(&config.base_dir)?, "access_key_id")?)
                    .with_secret_access_key(text(secret.load(&config.base_dir)?, "secret_access_key")?);
            }
            (Arc::new(builder.build().context("recording.remote")?), prefix)
        } else if let Some(path) = r.url.strip_prefix("file://") {
            std::fs::create_dir_all(path).with_context(|| format!("recording.remote.url: creating {path}"))?;
            (Arc::new(object_store::local::LocalFileSystem::new_with_prefix(path)?), "")
        } else {
            anyhow::bail!("recording.remote.url {:?}: use s3://bucket/prefix or file:///path", r.url);
        };
        let prefix = Key::parse(prefix.trim_matches('/')).context("recording.remote.url: prefix")?;
        Ok(Remote { store, prefix, url: r.url.clone() })
    }

    fn key(&self, replica: &str, n: u64) -> Key {
        self.prefix.clone().join(replica).join(format!("{n:020}.seg"))
    }

    /// Uploads segment `n` of `replica` unless an object is there already, then reads it
    /// back and compares. An object with other bytes under the same key (two processes
    /// under one replica name, or a chain that restarted) is an error: nothing is
    /// overwritten, and the local copy stays.
    pub async fn upload(&self, replica: &str, n: u64, bytes: Bytes) -> anyhow::Result<()> {
        let key = self.key(replica, n);
        let sent = Sha256::digest(&bytes);
        let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&key, PutPayload::from_bytes(bytes), create).await {
            Ok(_) => {}
            // Uploaded before (a crash came between the upload and the local delete).
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("uploading {key}")),
        }
        let back = self.fetch(replica, n).await?;
        anyhow::ensure!(
            Sha256::digest(&back) == sent,
            "{key} holds other bytes than this segment: is another process using replica name {replica:?}? \
             (nothing was overwritten; the local copy stays)"
        );
        Ok(())
    }

    /// The bytes of segment `n` of `replica`.
    pub async fn fetch(&self, replica: &str, n: u64) -> anyhow::Result<Bytes> {
        let key = self.key(replica, n);
        let got = self.store.get(&key).await.with_context(|| format!("reading {key}"))?;
        anyhow::ensure!(got.meta.size <= MAX_SEGMENT, "{key}: {} bytes is larger than any segment", got.meta.size);
        got.bytes().await.with_context(|| format!("reading {key}"))
    }

    /// Deletes segment `n` of `replica`; a segment already gone is deleted.
    pub async fn delete(&self, replica: &str, n: u64) -> anyhow::Result<()> {
        let key = self.key(replica, n);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {key}")),
        }
    }

    /// The replicas with segments here.
    pub async fn replicas(&self) -> anyhow::Result<Vec<String>> {
        let list = self.store.list_with_delimiter(Some(&self.prefix)).await.context("listing replicas")?;
        let mut out: Vec<String> =
            list.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        out.sort();
        Ok(out)
    }

    /// The segments of `replica` here, ascending.
    pub async fn segments(&self, replica: &str) -> anyhow::Result<Vec<Listed>> {
        let dir = self.prefix.clone().join(replica);
        let list = self.store.list_with_delimiter(Some(&dir)).await.with_context(|| format!("listing {dir}"))?;
        let mut out: Vec<Listed> = list
            .objects
            .iter()
            .filter_map(|o| {
                let n = o.location.filename()?.strip_suffix(".seg")?.parse().ok()?;
                // What identifies this version of the object, for the cache.
                let version = format!("{} {}", o.size, o.e_tag.as_deref().unwrap_or("-"));
                let modified_us = u64::try_from(o.last_modified.timestamp_micros()).unwrap_or(0);
                Some(Listed { n, size: o.size, version, modified_us })
            })
            .collect();
        out.sort_unstable_by_key(|l| l.n);
        Ok(out)
    }
}

/// A segment as listed in object storage.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Segment number.
    pub n: u64,
    /// Size in bytes.
    pub size: u64,
    /// Size and ETag: a cached copy with another version is stale.
    pub version: String,
    /// When the object was written, µs since the epoch.
    pub modified_us: u64,
}

/// The largest object read back as a segment (segments seal at `segment_size`, at
/// most a few hundred MiB).
const MAX_SEGMENT: u64 = 4 << 30;

/// Where a replica whose local recordings are gone (a new disk, a new pod under the
/// same name) continues its chain: after the last segment it shipped, so that nothing
/// it shipped is ever written over and the chain stays whole.
pub async fn resume_point(remote: &Remote, replica: &str) -> anyhow::Result<Option<(u64, Hash)>> {
    let Some(last) = remote.segments(replica).await?.pop() else { return Ok(None) };
    let bytes = remote.fetch(replica, last.n).await?;
    let scan = store::scan_bytes(&bytes, false);
    let footer = scan.footer.with_context(|| {
        format!("{}: the last segment of replica {replica:?} in object storage is not sealed", remote.url)
    })?;
    Ok(Some((last.n + 1, footer.final_hash)))
}

/// One line of `uploaded.jsonl`: a segment this replica shipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipped {
    segment: u64,
    final_hash: String,
    uploaded_us: u64,
}

/// The uploader's settings.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// The local recordings directory.
    pub dir: PathBuf,
    /// This replica's name.
    pub replica: String,
    /// Where uploads and remote retirements are noted for the next header.
    pub notes: Arc<HeaderNotes>,
    /// Delete remote segments older than this.
    pub retention: Option<Duration>,
    /// Time between rounds.
    pub interval: Duration,
    /// Counters: uploads, failed rounds.
    pub metrics: crate::metrics::RecorderMetrics,
    /// One round at a time (the background rounds and the one at shutdown).
    pub busy: Arc<tokio::sync::Mutex<()>>,
    /// The fleet's shared state, to tell replicas that are gone from live ones.
    pub fleet: Option<Arc<crate::state::StateStore>>,
}

/// Ships sealed segments for as long as the process runs.
pub async fn ship(remote: Remote, uploader: Uploader) {
    let mut failures = 0u32;
    loop {
        match round(&remote, &uploader).await {
            Ok(n) => {
                if failures > 0 {
                    tracing::info!(uploaded = n, "recording uploads resumed");
                }
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                uploader.metrics.upload_failures.inc();
                // Segments stay local until a later round gets them there.
                tracing::warn!(error = %format!("{e:#}"), remote = %remote.url, failures, "recording upload failed; will retry");
            }
        }
        tokio::time::sleep(uploader.interval).await;
    }
}

/// One round: upload every sealed local segment, then apply retention remotely.
/// Returns how many segments were uploaded.
pub async fn round(remote: &Remote, u: &Uploader) -> anyhow::Result<usize> {
    let _one = u.busy.lock().await;
    let manifest = u.dir.join("uploaded.jsonl");
    let mut uploaded = 0;
    for n in store::list_segments(&u.dir)? {
        let path = store::segment_path(&u.dir, n);
        // Only sealed segments: the open one has no footer yet.
        let footer = match store::read_footer(&path) {
            Ok(Some(footer)) => footer,
            Ok(None) => continue,
            // Local retention deleted it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            // Retention deleted it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        remote.upload(&u.replica, n, bytes).await?;
        u.notes.note(NoteKind::Uploaded, n, footer.final_hash)?;
        let line = Shipped { segment: n, final_hash: hex::encode(footer.final_hash), uploaded_us: now_us() };
        append_line(&manifest, &line)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("deleting {} after its upload", path.display()));
            }
            _ => {}
        }
        tracing::info!(segment = n, remote = %remote.url, "recording segment uploaded and verified; local copy deleted");
        u.metrics.uploaded.inc();
        uploaded += 1;
    }
    if let Some(retention) = u.retention {
        retire(remote, u, &manifest, retention).await?;
        if let Some(fleet) = &u.fleet {
            retire_gone(remote, u, fleet, retention).await?;
        }
    }
    Ok(uploaded)
}

/// Retention for remote segments, in two steps: a segment past `retention` is first
/// noted for the next header; once a durable header records its retirement, it is
/// deleted. A restart in between notes it again (a repeat is harmless).
async fn retire(remote: &Remote, u: &Uploader, manifest: &Path, retention: Duration) -> anyhow::Result<()> {
    let cutoff = now_us().saturating_sub(retention.as_micros() as u64);
    let lines = read_lines(manifest)?;
    if lines.iter().all(|l| l.uploaded_us > cutoff) {
        return Ok(());
    }
    let (mut kept, mut deleted) = (Vec::new(), 0);
    for line in lines {
        if line.uploaded_us > cutoff {
            kept.push(line);
            continue;
        }
        let mut hash: Hash = [0; 32];
        hex::decode_to_slice(&line.final_hash, &mut hash).context("uploaded.jsonl: bad hash")?;
        if u.notes.is_recorded(NoteKind::Retired, line.segment) {
            // A failure here leaves the manifest as it was: the next round deletes
            // again, and a segment already gone counts as deleted.
            remote.delete(&u.replica, line.segment).await?;
            tracing::info!(segment = line.segment, "retention: deleted remote recording segment");
            deleted += 1;
            continue;
        }
        u.notes.note(NoteKind::Retired, line.segment, hash)?;
        kept.push(line);
    }
    if deleted > 0 {
        let text: String = kept.iter().filter_map(|l| serde_json::to_string(l).ok()).map(|l| l + "\n").collect();
        crate::private::replace(manifest, text.as_bytes())?;
    }
    Ok(())
}

/// Retention for replicas that are gone (a Deployment's old pods): nobody writes their
/// chains' headers any more, so a chain is deleted whole, once even its newest segment
/// is past retention and the replica has not been seen for three heartbeats. What is
/// left of any chain is then always whole.
async fn retire_gone(
    remote: &Remote,
    u: &Uploader,
    fleet: &crate::state::StateStore,
    retention: Duration,
) -> anyhow::Result<()> {
    let cutoff = now_us().saturating_sub(retention.as_micros() as u64);
    let live = fleet.live_replicas().await?;
    for replica in remote.replicas().await? {
        if replica == u.replica || live.contains(&replica) {
            continue;
        }
        let segments = remote.segments(&replica).await?;
        if segments.is_empty() || segments.iter().any(|s| s.modified_us > cutoff) {
            continue;
        }
        for s in &segments {
            remote.delete(&replica, s.n).await?;
        }
        tracing::info!(replica = %replica, segments = segments.len(), "retention: deleted the recordings of a replica that is gone");
    }
    Ok(())
}

fn append_line(path: &Path, line: &Shipped) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_vec(line)?;
    text.push(b'\n');
    crate::private::append(path)?.write_all(&text)?;
    Ok(())
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<Shipped>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The replica whose chain `dir` holds, from its first segment's header.
pub fn local_replica(dir: &Path) -> Option<String> {
    let first = *store::list_segments(dir).ok()?.first()?;
    store::read_header(&store::segment_path(dir, first)).ok()?.ok().map(|h| h.replica)
}

/// Makes one directory per replica under `cache` holding every segment of that replica,
/// local (`local`, linked; they are replica `own`'s) and remote (downloaded, and kept
/// while the object's size and ETag stay the same; with `fresh`, downloaded again), and
/// returns them. Anything else in them is removed; each gets a fresh `index.jsonl`.
pub async fn materialize(
    remote: &Remote,
    local: Option<&Path>,
    own: &str,
    cache: &Path,
    fresh: bool,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    crate::private::dir(cache)?;
    let local = local.filter(|dir| store::list_segments(dir).is_ok_and(|s| !s.is_empty()));
    if let Some(dir) = local
        && let Some(name) = local_replica(dir).filter(|n| !n.is_empty() && n != own)
    {
        anyhow::bail!("{} holds replica {name:?}'s recordings, but this config is replica {own:?}", dir.display());
    }
    let mut replicas = remote.replicas().await?;
    if local.is_some() && !replicas.iter().any(|r| r == own) {
        replicas.push(own.to_owned());
    }
    let mut out = Vec::new();
    for replica in replicas {
        anyhow::ensure!(
            !replica.is_empty() && !replica.contains(['/', '\\']) && !replica.starts_with('.'),
            "object storage holds an odd replica name {replica:?}"
        );
        let dir = cache.join(&replica);
        crate::private::dir(&dir)?;
        let mut wanted = std::collections::BTreeSet::new();
        if let (Some(local), true) = (local, replica == own) {
            for n in store::list_segments(local)? {
                let link = store::segment_path(&dir, n);
                let _ = std::fs::remove_file(&link);
                let _ = std::fs::remove_file(version_path(&link));
                let target = match store::segment_path(local, n).canonicalize() {
                    Ok(target) => target,
                    // Retired by the running replica since it was listed: what is left
                    // of it is the uploaded copy, fetched below, or nothing.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                // A hard link keeps the bytes readable when the running replica
                // deletes its copy meanwhile (stored remotely, or past retention);
                // across file systems a symbolic link has to do.
                if std::fs::hard_link(&target, &link).is_err() {
                    std::os::unix::fs::symlink(target, &link)?;
                }
                wanted.insert(n);
            }
        }
        for listed in remote.segments(&replica).await? {
            if !wanted.insert(listed.n) {
                continue;
            }
            let path = store::segment_path(&dir, listed.n);
            let kept = !fresh
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == listed.size)
                && std::fs::read_to_string(version_path(&path)).is_ok_and(|v| v == listed.version);
            if kept {
                continue;
            }
            let _ = std::fs::remove_file(&path);
            let bytes = match remote.fetch(&replica, listed.n).await {
                Ok(bytes) => bytes,
                // Deleted by retention since it was listed, which a header has
                // recorded before the delete.
                Err(e) if matches!(e.downcast_ref(), Some(object_store::Error::NotFound { .. })) => {
                    wanted.remove(&listed.n);
                    continue;
                }
                Err(e) => return Err(e),
            };
            crate::private::write_new(&path, &bytes)?;
            let _ = std::fs::remove_file(version_path(&path));
            crate::private::write_new(&version_path(&path), listed.version.as_bytes())?;
        }
        // What is neither local nor remote any more (deleted, retired) goes.
        for n in store::list_segments(&dir)? {
            if !wanted.contains(&n) {
                let path = store::segment_path(&dir, n);
                std::fs::remove_file(&path)?;
                let _ = std::fs::remove_file(version_path(&path));
            }
        }
        let _ = std::fs::remove_file(dir.join("index.jsonl"));
        super::index::reindex(&dir)?;
        out.push((replica, dir));
    }
    Ok(out)
}

/// Where the cached copy of a remote segment keeps the version it was downloaded at.
fn version_path(segment: &Path) -> PathBuf {
    segment.with_extension("seg.version")
}
