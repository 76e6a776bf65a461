//! The SFTP subsystem, enforced: every request the agent sends is decoded
//! (`airlock_ssh::sftp`) and checked against the connection's `sftp` mode and path
//! globs before it goes upstream. A refused request never reaches the host; the
//! agent gets a permission-denied status for it, as from the server itself.
//! Replies are framed too, so that a refusal is never spliced into the middle of
//! one. What each operation did (path, bytes, SHA-256 of whole files) is recorded;
//! file contents are not, and are never masked: a transfer is passed on unchanged
//! or refused.

use std::sync::Arc;

use airlock_ssh::record::Event;
use airlock_ssh::sftp::{self, Access, Framer, Request, Tracker};
use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{Mutex, mpsc};

use super::Shared;
use crate::config::{PathGlobs, SftpMode};
use crate::glob;

/// Whole packets queued towards the agent.
const QUEUE: usize = 32;

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
        if globs.deny.iter().any(|g| glob::matches_path(g, &path)) {
            return Some(format!("Airlock: {path} is denied on this connection"));
        }
        if !globs.allow.is_empty() && !globs.allow.iter().any(|g| glob::matches_path(g, &path)) {
            return Some(format!("Airlock: {path} is outside the paths this connection allows"));
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
        let mut pending = early;
        'read: loop {
            let data = match pending.pop() {
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
                if let Some(why) = refusal(conn.sftp, &conn.sftp_paths, &request) {
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
        if let Some(status) = exit {
            let _ = agent_tx.exit_status(status).await;
        }
        let _ = agent_tx.eof().await;
        let _ = agent_tx.close().await;
    });
}
