//! WebSocket connections, relayed message by message.
//!
//! Airlock speaks WebSocket to both sides (`tungstenite`): the server side to the
//! agent, the client side to the upstream. Each whole message is judged as a body
//! would be:
//! - what the upstream sends is masked like a response body before the agent sees
//!   it (JSON by path and key where rules say so, the detectors on the rest; binary
//!   data that reads as text is masked as text). A message that cannot be made safe
//!   to show is not sent: the agent gets a close (1011) saying so, and the
//!   connection ends;
//! - every text, binary and close message is recorded as it was passed on; once the
//!   recorder has failed nothing more passes (a close, 1011, says why).
//!
//! Pings are answered by each side's own WebSocket (they say nothing about the other
//! side). Extensions are not negotiated: the agent's `Sec-WebSocket-Extensions` is
//! not passed on, and an upstream that answers with one anyway is refused, since a
//! compressed message could not be masked. Frames that break the protocol, and
//! messages past the connection's `max_body`, end the connection.

use std::sync::Arc;
use std::time::Duration;

use airlock_http::record::{Event, Message as Recorded, MessageKind};
use futures_util::{SinkExt, StreamExt};
use hyper::header::{HeaderMap, SEC_WEBSOCKET_EXTENSIONS, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Target;
use super::mask::{self, Masking};
use super::session::Session;
use crate::listener::Shutdown;

/// How long the other direction may go on once one has ended (its close handshake).
const LINGER: Duration = Duration::from_secs(5);
/// Bytes gathered before a write goes to the socket.
const WRITE_BUFFER: usize = 128 << 10;

/// Why an upgrade request is refused, if it is: only WebSocket is relayed, since
/// only WebSocket is understood well enough to mask and record, and only as RFC 6455
/// asks for it (an HTTP/1.1 GET without a body, whose bytes an upstream might
/// otherwise read as frames).
pub fn check_request(head: &hyper::http::request::Parts, has_body: bool) -> Result<(), String> {
    let upgrade = head.headers.get(UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if head.headers.get_all(UPGRADE).iter().count() != 1 || !upgrade.trim().eq_ignore_ascii_case("websocket") {
        return Err(format!("only WebSocket upgrades are relayed, not {upgrade:?}"));
    }
    if head.method != hyper::Method::GET || head.version != hyper::Version::HTTP_11 || has_body {
        return Err("a WebSocket upgrade must be an HTTP/1.1 GET without a body".into());
    }
    Ok(())
}

/// The agent's upgrade request as it goes upstream: no extensions.
pub fn prepare_request(headers: &mut HeaderMap) {
    headers.remove(SEC_WEBSOCKET_EXTENSIONS);
}

/// Why the upstream's `101` is refused, if it is.
pub fn check_response(headers: &HeaderMap) -> Result<(), String> {
    match headers.get(SEC_WEBSOCKET_EXTENSIONS) {
        Some(ext) => Err(format!(
            "the upstream's WebSocket uses extensions Airlock did not offer ({}), so its messages could not be masked",
            String::from_utf8_lossy(ext.as_bytes())
        )),
        None => Ok(()),
    }
}

/// Relays one WebSocket connection until either side ends it (or Airlock stops).
pub async fn relay(
    agent: OnUpgrade,
    upstream: OnUpgrade,
    session: Arc<Session>,
    exchange: u64,
    target: Arc<Target>,
    shutdown: Shutdown,
) {
    let (Ok(agent), Ok(upstream)) = (agent.await, upstream.await) else { return };
    let max = target.conn.max_body;
    // What waits to be written is bounded too: a peer that sends pings and never
    // reads would otherwise queue pongs without end.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + max + 4096);
    let agent = WebSocketStream::from_raw_socket(TokioIo::new(agent), Role::Server, Some(config)).await;
    let upstream = WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, Some(config)).await;
    let (agent_tx, agent_rx) = agent.split();
    let (upstream_tx, upstream_rx) = upstream.split();
    let pass = Pass { session: &session, exchange, masking: &target.masking, record_max: target.conn.record_body, max };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let up = pass.pump(agent_rx, upstream_tx, true, stop_rx.clone());
    let down = pass.pump(upstream_rx, agent_tx, false, stop_rx);
    tokio::pin!(up, down);
    let drain = shutdown.drain.fired();
    tokio::select! {
        _ = &mut up => { let _ = tokio::time::timeout(LINGER, down).await; }
        _ = &mut down => { let _ = tokio::time::timeout(LINGER, up).await; }
        _ = drain => {
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(LINGER, futures_util::future::join(up, down)).await;
        }
    }
}

/// What one message's passage needs.
struct Pass<'a> {
    session: &'a Session,
    exchange: u64,
    masking: &'a Masking,
    record_max: usize,
    /// The largest message (`max_body`).
    max: usize,
}

impl Pass<'_> {
    /// Passes messages one way until that side closes, fails, or `stop` says
    /// Airlock is stopping; then closes the other side.
    async fn pump<R, W>(&self, mut rx: R, mut tx: W, from_agent: bool, mut stop: tokio::sync::watch::Receiver<bool>)
    where
        R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
        W: futures_util::Sink<Message, Error = WsError> + Unpin,
    {
        // The end of what the agent was last shown, for secrets cut across messages.
        let mut shown = Vec::new();
        let close = loop {
            let next = tokio::select! {
                next = rx.next() => next,
                _ = stop.wait_for(|s| *s) => break Some(close_frame(CloseCode::Away, "Airlock is shutting down")),
            };
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(WsError::Protocol(_) | WsError::Utf8(_) | WsError::Capacity(_))) => {
                    break Some(close_frame(CloseCode::Protocol, "the other side broke the WebSocket protocol"));
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, from_agent, "WebSocket connection ended");
                    break None;
                }
                None => break None,
            };
            let message = match message {
                Message::Text(text) if !from_agent => {
                    match mask::message(text.as_bytes(), true, self.masking, self.max) {
                        Ok(masked) => match String::from_utf8(masked.into_owned()) {
                            Ok(masked) => Message::text(masked),
                            Err(_) => break Some(self.refuse()),
                        },
                        Err(_) => break Some(self.refuse()),
                    }
                }
                Message::Binary(data) if !from_agent => match mask::message(&data, false, self.masking, self.max) {
                    Ok(masked) => Message::binary(masked.into_owned()),
                    Err(_) => break Some(self.refuse()),
                },
                Message::Close(mut frame) => {
                    if !from_agent && let Some(frame) = &mut frame {
                        let reason = self.masked_reason(&frame.reason);
                        // Nor may the reason finish a secret the last message began.
                        let split = self.straddles(&mut shown, reason.as_bytes());
                        frame.reason = if split { String::new() } else { reason }.into();
                    }
                    self.record(from_agent, MessageKind::Close, &close_payload(frame.as_ref()));
                    let _ = tx.send(Message::Close(frame)).await;
                    return;
                }
                // Each side's own WebSocket answers its pings.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                other => other,
            };
            let (kind, data) = match &message {
                Message::Text(text) => (MessageKind::Text, text.as_bytes()),
                Message::Binary(data) => (MessageKind::Binary, data.as_ref()),
                _ => continue,
            };
            if !from_agent && self.straddles(&mut shown, data) {
                break Some(close_frame(
                    CloseCode::Error,
                    "a secret runs across messages, so Airlock ended the connection",
                ));
            }
            self.record(from_agent, kind, data);
            self.session.caught_up().await;
            // Nothing passes that is not on record.
            if self.session.recorder_failed() {
                break Some(close_frame(CloseCode::Error, "Airlock cannot record this session"));
            }
            if tx.send(message).await.is_err() {
                break None;
            }
        };
        let close = close.unwrap_or_else(|| close_frame(CloseCode::Away, "the other side went away"));
        self.record(from_agent, MessageKind::Close, &close_payload(Some(&close)));
        let _ = tx.send(Message::Close(Some(close))).await;
    }

    /// A message from the upstream that cannot be made safe to show: the agent
    /// gets a close saying so instead (recorded as the close it is).
    fn refuse(&self) -> CloseFrame {
        tracing::info!(exchange = self.exchange, "a WebSocket message could not be masked; the connection ends");
        close_frame(CloseCode::Error, "Airlock cannot mask this message, so it was not sent")
    }

    /// Whether a secret runs from the end of what the agent has been shown into
    /// `next`; `shown` then keeps the end of both.
    fn straddles(&self, shown: &mut Vec<u8>, next: &[u8]) -> bool {
        let Some(m) = &self.masking.masker else { return false };
        let hold = m.longest_match();
        let boundary = shown.len();
        shown.extend_from_slice(&next[..next.len().min(hold)]);
        let split = boundary > 0 && m.find(shown, 0).iter().any(|f| f.claim.0 < boundary && f.claim.1 > boundary);
        if next.len() > hold {
            shown.clear();
            shown.extend_from_slice(&next[next.len() - hold..]);
        } else {
            let cut = shown.len().saturating_sub(hold);
            shown.drain(..cut);
        }
        split
    }

    /// A close reason from the upstream as the agent may see it: masked, within the
    /// 123 bytes a close frame holds, or none when it cannot be masked.
    fn masked_reason(&self, reason: &str) -> String {
        const MAX_REASON: usize = 123;
        let Ok(masked) = mask::message(reason.as_bytes(), true, self.masking, self.max) else { return String::new() };
        let mut masked = String::from_utf8_lossy(&masked).into_owned();
        let mut cut = masked.len().min(MAX_REASON);
        while !masked.is_char_boundary(cut) {
            cut -= 1;
        }
        masked.truncate(cut);
        masked
    }

    fn record(&self, from_agent: bool, kind: MessageKind, data: &[u8]) {
        let kept = &data[..data.len().min(self.record_max)];
        let message = Recorded { kind, len: data.len() as u64, data: kept };
        self.session.record(from_agent, &Event::Message(self.exchange, message));
    }
}

fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame { code, reason: reason.into() }
}

/// A close frame's payload: its code, big-endian, then its reason.
fn close_payload(frame: Option<&CloseFrame>) -> Vec<u8> {
    let Some(frame) = frame else { return Vec::new() };
    let mut out = u16::from(frame.code).to_be_bytes().to_vec();
    out.extend_from_slice(frame.reason.as_bytes());
    out
}
