//! The accept loop every endpoint shares.
//!
//! Take a connection, give it a permit from the process-wide connection limit (or a
//! polite refusal in its own protocol), and run the plugin's session in its own task,
//! inside a `tracing` span that names the connection id, the peer and the endpoint.
//! Accept errors (EMFILE included) back off instead of spinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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
}

/// Why a connection was turned away before a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections` reached.
    TooManyConnections,
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
    /// Shared state for a process allowing `max_connections` open agent connections.
    pub fn new(max_connections: usize, metrics: Arc<Metrics>) -> Arc<Listeners> {
        Arc::new(Listeners {
            permits: Arc::new(Semaphore::new(max_connections)),
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
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let guard = self.metrics.connection_opened(endpoint);
                    let conn = Incoming { stream, peer, id, shutdown: self.shutdown.clone() };
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
                Err(_) => {
                    self.metrics.connection_refused(endpoint, "limit");
                    tracing::warn!(parent: &span, limit = self.max_connections, "connection limit reached; refusing (raise limits.max_connections)");
                    if let Ok(slot) = self.refusals.clone().try_acquire_owned() {
                        let plugin = plugin.clone();
                        self.tracker.spawn(
                            async move {
                                let _ = tokio::time::timeout(
                                    REFUSAL_TIMEOUT,
                                    plugin.refuse(stream, Refusal::TooManyConnections),
                                )
                                .await;
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
