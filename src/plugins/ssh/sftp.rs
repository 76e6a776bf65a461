//! The SFTP subsystem, enforced: every request the agent sends is decoded
//! (`airlock_ssh::sftp`) and checked against the connection's `sftp` mode and path
//! globs before it goes upstream. A refused request never reaches the host; the
//! agent gets a permission-denied status for it, as from the server itself.
//! Replies are framed too, so that a refusal is never spliced into the middle of
//! one. What each operation did (path, bytes, SHA-256 of whole files) is recorded;
//! file contents are not, and are never masked: a transfer is passed on unchanged
//! or refused.
//!
//! Path globs are checked twice: on the path as the agent wrote it, and on where it
//! really leads. For the second, Airlock asks the server itself (`REALPATH`, with ids
//! of its own that never reach the agent) for the path and for its directory, so a
//! symlink planted on the host cannot lead a request outside the allowed paths.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use airlock_ssh::record::Event;
use airlock_ssh::sftp::{self, Access, Framer, Packet, Request, Tracker};
use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::Shared;
use crate::config::{PathGlobs, SftpMode};
use crate::glob;

/// Whole packets queued towards the agent.
const QUEUE: usize = 32;
/// Request ids from here on are Airlock's own; an agent's request with one is refused.
const OWN_IDS: u32 = 0xFFF0_0000;
/// How long the server may take to say where a path leads.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Airlock's own `REALPATH` requests to the server, and who waits for each answer.
struct Resolver {
    waiting: std::sync::Mutex<HashMap<u32, oneshot::Sender<Packet>>>,
    next: AtomicU32,
}

impl Resolver {
    fn new() -> Resolver {
        Resolver { waiting: Default::default(), next: AtomicU32::new(OWN_IDS) }
    }

    /// Where `path` leads on the server (`Ok(None)`: it does not exist), or `Err` when
    /// the server cannot be asked.
    async fn realpath(&self, up: &ChannelWriteHalf<russh::client::Msg>, path: &str) -> Result<Option<String>, ()> {
        let id = self.next.fetch_add(1, Ordering::Relaxed).max(OWN_IDS);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().map_err(|_| ())?.insert(id, tx);
        up.data_bytes(sftp::realpath(id, path)).await.map_err(|_| ())?;
        let answer = tokio::time::timeout(RESOLVE_TIMEOUT, rx).await;
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&id);
        }
        match answer {
            Ok(Ok(packet)) => Ok(sftp::first_name(&packet)),
            _ => Err(()),
        }
    }

    /// Takes the server's answer to one of Airlock's own requests; `false` for a reply
    /// that is the agent's.
    fn answer(&self, packet: &Packet) -> bool {
        let Some(id) = packet.id.filter(|id| *id >= OWN_IDS) else { return false };
        if let Some(tx) = self.waiting.lock().ok().and_then(|mut w| w.remove(&id)) {
            let _ = tx.send(packet.clone());
        }
        true
    }
}

/// Why a path is refused by the globs, or `None` when they allow it.
fn outside(globs: &PathGlobs, path: &str) -> Option<String> {
    if globs.deny.iter().any(|g| glob::matches_path(g, path)) {
        return Some(format!("Airlock: {path} is denied on this connection"));
    }
    if !globs.allow.is_empty() && !globs.allow.iter().any(|g| glob::matches_path(g, path)) {
        return Some(format!("Airlock: {path} is outside the paths this connection allows"));
    }
    None
}

/// Checks where each of `request`'s paths really leads: the path itself (symlinks
/// followed), and its directory with its own name appended (the name itself not
/// followed, as remove, rename and lstat treat it).
async fn really_outside(
    resolver: &Resolver,
    up: &ChannelWriteHalf<russh::client::Msg>,
    globs: &PathGlobs,
    request: &Request,
) -> Option<String> {
    if globs.allow.is_empty() && globs.deny.is_empty() || matches!(request, Request::Realpath { .. }) {
        return None;
    }
    for path in request.paths() {
        let (dir, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((dir, name)) => (dir, name),
            None => (".", path),
        };
        let Ok(dir) = resolver.realpath(up, dir).await else {
            return Some("Airlock could not check where the path leads".into());
        };
        let Some(dir) = dir else { return Some(format!("Airlock: no such directory for {path}")) };
        let named = if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") };
        if let Some(why) = outside(globs, &named) {
            return Some(why);
        }
        match resolver.realpath(up, path).await {
            Err(()) => return Some("Airlock could not check where the path leads".into()),
            Ok(Some(real)) => {
                if let Some(why) = outside(globs, &real) {
                    return Some(why);
                }
            }
            Ok(None) => {}
        }
    }
    None
}

/// Why a request is refused, or `None` when it may go.
fn refusal(mode: SftpMode, globs: &PathGlobs, request: &Request) -> Option<String> {
    match request.access() {
        Access::Unknown => return Some("Airlock does not know this SFTP request".into()),
        Access::Write if mode == SftpMode::ReadOnly => {
            return Some("Airlock: this connection is read-only for SFTP".into());
        }
        _ => {}
    }
    // Resolving "." is how clients learn where they are; it names nothing else.
    if matches!(request, Request::Realpath { .. }) {
        return None;
    }
    for path in request.paths() {
        let Some(path) = sftp::normalize(path) else {
            return Some(format!("Airlock refuses the path {path:?}"));
        };
        if let Some(why) = outside(globs, &path) {
            return Some(why);
        }
    }
    None
}

/// Relays an SFTP channel until either side closes it.
pub(super) async fn relay(
    shared: &Shared,
    channel: u32,
    mut agent_rx: ChannelReadHalf,
    agent_tx: Arc<ChannelWriteHalf<Msg>>,
    mut up_rx: ChannelReadHalf,
    up_tx: ChannelWriteHalf<russh::client::Msg>,
    early: Vec<Bytes>,
) {
    let conn = &shared.target.conn;
    let tracker = Mutex::new(Tracker::default());
    let resolver = Resolver::new();
    // One writer towards the agent, so refusals and replies never interleave. It
    // stops at the `None` the reply side sends when the host is done.
    let (to_agent, mut queue) = mpsc::channel::<Option<Bytes>>(QUEUE);
    let replies_tx = to_agent.clone();
    let writer = async {
        while let Some(Some(packet)) = queue.recv().await {
            shared.to_agent.fetch_add(packet.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if agent_tx.data_bytes(packet).await.is_err() {
                break;
            }
        }
    };
    let requests = async {
        let mut framer = Framer::default();
        // What the agent sent before the subsystem started, first, in order.
        let mut pending = std::collections::VecDeque::from(early);
        'read: loop {
            let data = match pending.pop_front() {
                Some(d) => d,
                None => match agent_rx.wait().await {
                    Some(ChannelMsg::Data { data }) => data,
                    Some(ChannelMsg::Eof) => {
                        let _ = up_tx.eof().await;
                        continue;
                    }
                    None | Some(ChannelMsg::Close) => break,
                    Some(_) => continue,
                },
            };
            framer.push(&data);
            loop {
                let packet = match framer.next() {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(error = %e, "malformed SFTP packet from the agent; closing the channel");
                        break 'read;
                    }
                };
                let (id, request) = match sftp::decode_request(&packet) {
                    Ok(r) => r,
                    Err(e) => match e.agent_reply(packet.id) {
                        // Refused as the server would refuse it, and never forwarded.
                        Some(reply) => {
                            tracing::info!(error = %e, "SFTP request refused: not understood");
                            if to_agent.send(Some(reply)).await.is_err() {
                                break 'read;
                            }
                            continue;
                        }
                        None => {
                            tracing::info!(error = %e, "undecodable SFTP request; closing the channel");
                            break 'read;
                        }
                    },
                };
                let why = match refusal(conn.sftp, &conn.sftp_paths, &request) {
                    Some(why) => Some(why),
                    None if id >= OWN_IDS => Some("Airlock: request ids from 0xfff00000 on are reserved".into()),
                    None => really_outside(&resolver, &up_tx, &conn.sftp_paths, &request).await,
                };
                if let Some(why) = why {
                    tracing::info!(request = ?request, reason = %why, "SFTP request refused");
                    let op = serde_json::json!({"op": "refused", "request": format!("{request:?}"), "reason": why});
                    if shared.record(true, Event::Sftp { channel, json: &op.to_string() }).await.is_err() {
                        break 'read;
                    }
                    let reply = sftp::status(id, sftp::code::PERMISSION_DENIED, &why);
                    if to_agent.send(Some(reply)).await.is_err() {
                        break 'read;
                    }
                    continue;
                }
                let dropped = tracker.lock().await.request(id, &request);
                for op in dropped {
                    if shared.record(false, Event::Sftp { channel, json: &op.to_json().to_string() }).await.is_err() {
                        break 'read;
                    }
                }
                shared.to_upstream.fetch_add(packet.raw.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if up_tx.data_bytes(packet.raw).await.is_err() {
                    break 'read;
                }
            }
        }
        let _ = up_tx.close().await;
    };
    let replies = async {
        let mut framer = Framer::default();
        let mut exit = None;
        'read: loop {
            match up_rx.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    framer.push(&data);
                    loop {
                        let packet = match framer.next() {
                            Ok(Some(p)) => p,
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "malformed SFTP packet from the host; closing the channel");
                                break 'read;
                            }
                        };
                        if resolver.answer(&packet) {
                            continue;
                        }
                        let ops = tracker.lock().await.response(&packet);
                        for op in ops {
                            if shared
                                .record(false, Event::Sftp { channel, json: &op.to_json().to_string() })
                                .await
                                .is_err()
                            {
                                break 'read;
                            }
                        }
                        if replies_tx.send(Some(packet.raw)).await.is_err() {
                            break 'read;
                        }
                    }
                }
                // Said once every reply is out, after the writer is done.
                Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
                None | Some(ChannelMsg::Close) => break,
                Some(_) => {}
            }
        }
        let _ = replies_tx.send(None).await;
        exit
    };
    tokio::join!(requests, async {
        let (exit, ()) = tokio::join!(replies, writer);
        // As for a command: the exit status only once the operations are on record.
        if exit.is_some() && shared.flush().await.is_err() {
            return super::channel::unrecorded(&agent_tx).await;
        }
        if let Some(status) = exit {
            let _ = agent_tx.exit_status(status).await;
        }
        let _ = agent_tx.eof().await;
        let _ = agent_tx.close().await;
    });
}
