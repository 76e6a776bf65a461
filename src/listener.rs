//! The accept loop every endpoint shares.
//!
//! Take a connection, give it a permit from the process-wide connection limit and a
//! [`HandshakeSlot`] (or a polite refusal in its own protocol), and run the plugin's
//! session in its own task, inside a `tracing` span that names the connection id, the
//! peer and the endpoint. Accept errors (EMFILE included) back off instead of spinning.
//!
//! Connections that have not authenticated yet have a budget of their own, smaller
//! than the connection limit and capped per source address: the plugin gives its slot
//! back once the agent has proven who it is. So idle or slow unauthenticated
//! connections, however many, cannot take every permit and lock agents out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::signal::Signal;

/// The two phases of shutdown a session watches.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop accepting; sessions end at their next safe point.
    pub drain: Arc<Signal>,
    /// The grace period is over; sessions end now.
    pub abort: Arc<Signal>,
}

/// One accepted agent connection, handed to a plugin.
#[derive(Debug)]
pub struct Incoming {
    /// The socket (TCP_NODELAY already set).
    pub stream: TcpStream,
    /// The agent's address.
    pub peer: SocketAddr,
    /// Process-unique connection id (also in the tracing span).
    pub id: u64,
    /// Shutdown signals.
    pub shutdown: Shutdown,
    /// Held until the agent has authenticated; drop it then.
    pub handshake: HandshakeSlot,
}

/// A connection's place in the handshake budget, given back when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    _permit: OwnedSemaphorePermit,
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
    source: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let Ok(mut sources) = self.sources.lock() else { return };
        if let Some(n) = sources.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sources.remove(&self.source);
            }
        }
    }
}

/// Why a connection was turned away before a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections` reached.
    TooManyConnections,
    /// Too many connections still in their handshake, overall or from this address.
    TooManyHandshakes,
    /// Airlock is shutting down.
    ShuttingDown,
}

/// A protocol endpoint: one session per accepted connection.
pub trait Plugin: Send + Sync + 'static {
    /// Endpoint name for logs and metrics (`postgres`, `admin`, ...).
    fn endpoint(&self) -> &'static str;

    /// Runs one connection to its end. Errors are the plugin's to report, in its
    /// protocol and in the log.
    fn serve(self: Arc<Self>, conn: Incoming) -> impl Future<Output = ()> + Send;

    /// Tells a turned-away client why, in its own protocol. The default just closes.
    fn refuse(self: Arc<Self>, stream: TcpStream, why: Refusal) -> impl Future<Output = ()> + Send {
        let _ = (stream, why);
        async {}
    }
}

/// What all accept loops of a process share.
#[derive(Debug)]
pub struct Listeners {
    permits: Arc<Semaphore>,
    /// Connections not yet authenticated.
    handshakes: Arc<Semaphore>,
    /// How many of them each source address has.
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_source: usize,
    /// Refusals are bounded too, so a flood cannot spawn unbounded tasks.
    refusals: Arc<Semaphore>,
    max_connections: usize,
    next_id: AtomicU64,
    /// Shutdown signals for every session.
    pub shutdown: Shutdown,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    metrics: Arc<Metrics>,
}

const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_CONCURRENT_REFUSALS: usize = 64;

impl Listeners {
    /// Shared state for a process allowing `limits.max_connections` open agent
    /// connections, of which `limits.max_handshakes` (and per source address
    /// `limits.max_handshakes_per_source`) still in their handshake.
    pub fn new(limits: &crate::config::Limits, metrics: Arc<Metrics>) -> Arc<Listeners> {
        let max_connections = limits.max_connections;
        Arc::new(Listeners {
            permits: Arc::new(Semaphore::new(max_connections)),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes.min(max_connections))),
            sources: Arc::default(),
            max_per_source: limits.max_handshakes_per_source,
            refusals: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
            max_connections,
            next_id: AtomicU64::new(1),
            shutdown: Shutdown::default(),
            tracker: TaskTracker::new(),
            metrics,
        })
    }

    /// The configured connection limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// A place in the handshake budget for a connection from `peer`, if there is one.
    fn handshake_slot(&self, peer: IpAddr) -> Option<HandshakeSlot> {
        let permit = self.handshakes.clone().try_acquire_owned().ok()?;
        let mut sources = self.sources.lock().ok()?;
        let n = sources.entry(peer).or_insert(0);
        if *n >= self.max_per_source {
            return None;
        }
        *n += 1;
        Some(HandshakeSlot { _permit: permit, sources: self.sources.clone(), source: peer })
    }

    /// Accepts on `listener` until drain starts.
    pub async fn run<P: Plugin>(self: Arc<Self>, listener: TcpListener, plugin: Arc<P>) {
        let endpoint = plugin.endpoint();
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = self.shutdown.drain.fired() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(5);
                    pair
                }
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: wait for descriptors to free up.
                    tracing::warn!(endpoint, error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(endpoint, error = %e, "TCP_NODELAY not set");
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!("conn", id, %peer, endpoint);
            let admitted = match self.permits.clone().try_acquire_owned() {
                Err(_) => Err(Refusal::TooManyConnections),
                Ok(permit) => {
                    self.handshake_slot(peer.ip()).map(|slot| (permit, slot)).ok_or(Refusal::TooManyHandshakes)
                }
            };
            match admitted {
                Ok((permit, handshake)) => {
                    let guard = self.metrics.connection_opened(endpoint);
                    let conn = Incoming { stream, peer, id, shutdown: self.shutdown.clone(), handshake };
                    let plugin = plugin.clone();
                    self.tracker.spawn(
                        async move {
                            tracing::debug!("accepted");
                            plugin.serve(conn).await;
                            tracing::debug!("closed");
                            drop((permit, guard));
                        }
                        .instrument(span),
                    );
                }
                Err(why) => {
                    match why {
                        Refusal::TooManyHandshakes => {
                            self.metrics.connection_refused(endpoint, "handshakes");
                            tracing::warn!(parent: &span, "too many connections in their handshake (limits.max_handshakes, max_handshakes_per_source); refusing");
                        }
                        _ => {
                            self.metrics.connection_refused(endpoint, "limit");
                            tracing::warn!(parent: &span, limit = self.max_connections, "connection limit reached; refusing (raise limits.max_connections)");
                        }
                    }
                    if let Ok(slot) = self.refusals.clone().try_acquire_owned() {
                        let plugin = plugin.clone();
                        self.tracker.spawn(
                            async move {
                                let _ = tokio::time::timeout(REFUSAL_TIMEOUT, plugin.refuse(stream, why)).await;
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                }
            }
        }
        tracing::info!(endpoint, "stopped accepting");
    }
}
