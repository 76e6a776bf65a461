use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::BytesMut;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::Notify;

use super::WindowSizeRef;
use crate::ChannelMsg;

/// Messages kept for a reader whose queue is full before the session ends (data is
/// joined up to `JOINED` per message, and limited by the window).
const OVERFLOW_MESSAGES: usize = 1024;
/// Data kept for a reader whose queue is full before the session ends. A peer that
/// respects the window never sends more than the window (2 MiB in Airlock); one that
/// does not is disconnected first.
const OVERFLOW_BYTES: usize = 4 << 20;

/// Flow control driven by the reader (a patch to russh): the window a channel gives
/// its peer opens again when the application has read the data, not when it arrives,
/// so a channel whose reader stops makes its own peer wait and never the session.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    /// Data bytes delivered to the reader's queue (or held for it) and not yet read.
    unread: AtomicU32,
    /// Set while messages wait in the overflow for room in the reader's queue.
    overflowing: AtomicBool,
    /// Set when the overflow passed its caps: the session ends.
    flooded: AtomicBool,
    /// The session's wake-up, set when the session first delivers data.
    wake: OnceLock<Arc<Notify>>,
}

impl Flow {
    /// Whether the peer flooded the channel past the overflow's caps.
    pub(crate) fn flooded(&self) -> bool {
        self.flooded.load(Ordering::Acquire)
    }

    /// Bytes delivered and not yet read.
    pub(crate) fn unread(&self) -> u32 {
        self.unread.load(Ordering::Acquire)
    }

    fn add_unread(&self, len: u32) {
        let _ = self.unread.fetch_update(Ordering::AcqRel, Ordering::Acquire, |unread| {
            Some(unread.saturating_add(len))
        });
    }

    /// The reader took `msg` from its queue.
    pub(crate) fn took(&self, msg: &ChannelMsg) {
        let read = data_len(msg);
        if read > 0 {
            let _ = self.unread.fetch_update(Ordering::AcqRel, Ordering::Acquire, |unread| {
                Some(unread.saturating_sub(read))
            });
        }
        if read > 0 || self.overflowing.load(Ordering::Acquire) {
            if let Some(wake) = self.wake.get() {
                wake.notify_one();
            }
        }
    }
}

fn data_len(msg: &ChannelMsg) -> u32 {
    match msg {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
            u32::try_from(data.len()).unwrap_or(u32::MAX)
        }
        _ => 0,
    }
}

/// A handle to the [`super::Channel`]'s to be able to transmit messages
/// to it and update it's `window_size`.
#[derive(Debug)]
pub struct ChannelRef {
    pub(super) sender: Sender<ChannelMsg>,
    pub(super) window_size: WindowSizeRef,
    pub(crate) flow: Arc<Flow>,
    /// What the reader's queue had no room for, in order (only the session touches it).
    overflow: Mutex<Overflow>,
}

/// Data joined per waiting message: appending is amortised, so a flood of tiny packets
/// costs what their bytes cost.
const JOINED: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Overflow {
    messages: VecDeque<Waiting>,
    bytes: usize,
}

#[derive(Debug)]
enum Waiting {
    /// Data (on extended stream `ext`) being joined.
    Data { ext: Option<u32>, data: BytesMut },
    Message(ChannelMsg),
}

impl Waiting {
    fn into_msg(self) -> ChannelMsg {
        match self {
            Waiting::Data { ext: None, data } => ChannelMsg::Data { data: data.freeze() },
            Waiting::Data { ext: Some(ext), data } => ChannelMsg::ExtendedData { data: data.freeze(), ext },
            Waiting::Message(msg) => msg,
        }
    }
}

impl Overflow {
    /// Appends `msg`, joining data to the data before it.
    fn push(&mut self, msg: ChannelMsg) {
        self.bytes += data_len(&msg) as usize;
        let (ext, data) = match msg {
            ChannelMsg::Data { data } => (None, data),
            ChannelMsg::ExtendedData { data, ext } => (Some(ext), data),
            msg => return self.messages.push_back(Waiting::Message(msg)),
        };
        if let Some(Waiting::Data { ext: last_ext, data: last }) = self.messages.back_mut()
            && *last_ext == ext
            && last.len() + data.len() <= JOINED
        {
            last.extend_from_slice(&data);
            return;
        }
        self.messages.push_back(Waiting::Data { ext, data: BytesMut::from(&data[..]) });
    }

    fn pop(&mut self) -> Option<ChannelMsg> {
        let msg = self.messages.pop_front()?.into_msg();
        self.bytes -= data_len(&msg) as usize;
        Some(msg)
    }

    fn push_front(&mut self, msg: ChannelMsg) {
        self.bytes += data_len(&msg) as usize;
        self.messages.push_front(Waiting::Message(msg));
    }

    fn full(&self) -> bool {
        self.messages.len() >= OVERFLOW_MESSAGES || self.bytes >= OVERFLOW_BYTES
    }
}

impl ChannelRef {
    pub fn new(sender: Sender<ChannelMsg>) -> Self {
        Self::with_window(sender, WindowSizeRef::new(0))
    }

    pub(crate) fn with_window(sender: Sender<ChannelMsg>, window_size: WindowSizeRef) -> Self {
        Self {
            sender,
            window_size,
            flow: Arc::default(),
            overflow: Mutex::default(),
        }
    }

    pub(crate) fn window_size(&self) -> &WindowSizeRef {
        &self.window_size
    }

    pub(crate) fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// Lets the channel's reader wake the session (`wake`) when it takes a message,
    /// which makes [`ChannelRef::send`] hold what the reader's queue has no room for.
    pub(crate) fn attach(&self, wake: &Arc<Notify>) {
        let _ = self.flow.wake.set(wake.clone());
    }

    /// Gives `msg` to the channel's reader. Once the channel is attached to its
    /// session this does not wait for the reader to read; what its queue has no room
    /// for waits in the overflow, and past the overflow's caps (a peer that floods a
    /// channel nobody reads with requests) the channel is `flooded` and the session
    /// ends. Shadows `Sender::send`, so every message to the reader keeps its order.
    pub async fn send(&self, msg: ChannelMsg) -> Result<(), SendError<ChannelMsg>> {
        // Empty data carries nothing, takes no window and would read as end of file
        // to a stream reader: a flood of it must cost nothing.
        if matches!(&msg, ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } if data.is_empty()) {
            return Ok(());
        }
        if self.flow.wake.get().is_none() {
            return self.sender.send(msg).await;
        }
        let len = data_len(&msg);
        {
            let mut overflow = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
            let msg = match overflow.messages.is_empty() {
                true => match self.sender.try_send(msg) {
                    Ok(()) => {
                        self.flow.add_unread(len);
                        return Ok(());
                    }
                    Err(TrySendError::Closed(msg)) => return Err(SendError(msg)),
                    Err(TrySendError::Full(msg)) => msg,
                },
                false => msg,
            };
            self.flow.add_unread(len);
            self.flow.overflowing.store(true, Ordering::Release);
            overflow.push(msg);
            if !overflow.full() {
                return Ok(());
            }
        }
        // Over the caps: the peer sent more than the window allows, or floods a
        // channel that is not read with requests. Waiting here would stall every
        // channel of the session (and stop it noticing the peer leave), so the session
        // ends instead (`Flow::flooded`).
        self.flow.flooded.store(true, Ordering::Release);
        if let Some(wake) = self.flow.wake.get() {
            wake.notify_one();
        }
        Err(SendError(ChannelMsg::Close))
    }

    /// Moves what waits in the overflow into the reader's queue, as far as it has room.
    pub(crate) fn refill(&self) {
        let mut overflow = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(msg) = overflow.pop() {
            match self.sender.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    overflow.push_front(msg);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    overflow.messages.clear();
                    overflow.bytes = 0;
                    break;
                }
            }
        }
        self.flow.overflowing.store(false, Ordering::Release);
    }
}

impl Drop for ChannelRef {
    /// Writers waiting for window are told the channel is gone. What still waits for
    /// the reader when the session lets the channel go (closed by the peer, say, right
    /// after its last output) is delivered after it, in order.
    fn drop(&mut self) {
        // The session lets the channel go: writers waiting for window must not wait.
        self.window_size.close();
        let overflow = std::mem::take(self.overflow.get_mut().unwrap_or_else(|e| e.into_inner()));
        if overflow.messages.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sender = self.sender.clone();
        runtime.spawn(async move {
            for waiting in overflow.messages {
                if sender.send(waiting.into_msg()).await.is_err() {
                    break;
                }
            }
        });
    }
}

impl std::ops::Deref for ChannelRef {
    type Target = Sender<ChannelMsg>;

    fn deref(&self) -> &Self::Target {
        &self.sender
    }
}
