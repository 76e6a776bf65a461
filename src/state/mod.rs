//! Shared state for a fleet of replicas, in PostgreSQL (`[state]`).
//!
//! Replicas share pending approvals, grants and the session index through a few tables
//! that Airlock creates and upgrades itself ([`schema`]). A decision made on any replica
//! reaches the replica holding the session through `LISTEN`/`NOTIFY`: a trigger on
//! `airlock_approvals` announces every change, and each replica looks up only the
//! requests its own sessions wait on. Nobody polls for decisions.
//!
//! Every replica says it is alive every `heartbeat`; one silent for three heartbeats is
//! taken for dead, and the requests its sessions were waiting on are withdrawn by
//! whichever replica notices first. Requests nobody decided expire the same way.
//!
//! The state connection is Airlock's own, apart from agent traffic. While it is down,
//! traffic that policy allows flows as before, and everything that would need the
//! shared state (a new hold, a grant check, a decision) fails closed with a clear error
//! until the connection is back.

mod approvals;
pub mod schema;
pub mod sessions;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Client};

use crate::config::{Config, StateSettings};

/// The channel the approvals trigger notifies.
const CHANNEL: &str = "airlock_approvals";
/// The longest wait for the state server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long decided requests and dead replicas are kept for the record.
const KEEP_DECIDED: Duration = Duration::from_secs(7 * 86_400);

/// What changed in the shared state, as the replica hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Approval request `id` was filed or changed state.
    Approval(String),
    /// The connection was (re)established: anything may have changed unheard.
    Reconnected,
}

/// Why the shared state could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the shared state store is unavailable: {0}")]
pub struct Unavailable(String);

impl From<tokio_postgres::Error> for Unavailable {
    fn from(e: tokio_postgres::Error) -> Self {
        Unavailable(e.to_string())
    }
}

/// The connection to the state database, kept open by a background task.
pub struct StateStore {
    replica: String,
    /// This process, among processes that may use the same replica name over time.
    instance: String,
    heartbeat: Duration,
    /// `recording.retention`: sessions older than this leave the shared index too.
    retention: Option<Duration>,
    client: RwLock<Option<Arc<Client>>>,
    changes: broadcast::Sender<Change>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("replica", &self.replica).finish_non_exhaustive()
    }
}

/// How to reach the state database (never printed: the URL may hold a password).
struct Target {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Target {
    fn new(config: &Config, settings: &StateSettings) -> anyhow::Result<Target> {
        let url = settings.url.load(&config.base_dir).context("state.url")?;
        let url = std::str::from_utf8(url.expose()).map_err(|_| anyhow::anyhow!("state.url is not UTF-8"))?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e| {
            // The parser's message may quote the URL; say what is wrong without it.
            anyhow::anyhow!("state.url is not a PostgreSQL URL or key=value string ({})", redact(&e))
        })?;
        pg.connect_timeout(CONNECT_TIMEOUT).application_name("airlock");
        // The state database decides what runs: without an explicit `sslmode=disable`,
        // TLS is required (and its certificate checked), never merely preferred.
        if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Prefer {
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let ca = settings.ca_file.as_ref().map(|p| config.resolve(p));
        let tls = crate::tls::verifying_client(ca.as_deref()).context("state.ca_file")?;
        Ok(Target { config: pg, tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls) })
    }

    async fn connect(&self) -> anyhow::Result<(Client, Connection)> {
        self.config
            .connect(self.tls.clone())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the state database: {}", redact(&e)))
    }
}

/// A connection for the command line (`airlock sessions`), driven in the background;
/// it neither migrates nor listens.
pub async fn connect(config: &Config, settings: &StateSettings) -> anyhow::Result<Client> {
    let (client, connection) = Target::new(config, settings)?.connect().await?;
    tokio::spawn(connection);
    Ok(client)
}

impl StateStore {
    /// Connects to the state database, brings its schema up to date and starts the
    /// task that keeps the connection, listens for changes, sends heartbeats and ships
    /// the session index. Fails if the first connection fails: a replica does not
    /// start without its state.
    pub async fn start(config: &Config, settings: &StateSettings) -> anyhow::Result<Arc<StateStore>> {
        let target = Target::new(config, settings)?;
        let index = config
            .recording
            .enabled
            .then(|| crate::recording::store::recordings_dir(&config.data_dir()).join("index.jsonl"));
        let replica = config.replica();
        let (changes, _) = broadcast::channel(1024);
        let instance = format!("{:016x}", rand::random::<u64>());
        let store = Arc::new(StateStore {
            replica,
            instance,
            heartbeat: settings.heartbeat,
            retention: config.recording.retention,
            client: RwLock::new(None),
            changes,
        });
        let connection = store.connect(&target, true).await?;
        tokio::spawn(store.clone().keep(target, connection));
        store.claim().await?;
        store.withdraw_orphans().await.context("withdrawing this replica's requests from before a restart")?;
        tracing::info!(replica = %store.replica, schema = schema::LATEST, "shared state connected");
        tokio::spawn(store.clone().sweep());
        if let Some(index) = index {
            tokio::spawn(store.clone().ship(index));
        }
        Ok(store)
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether the state database is connected now.
    pub fn ready(&self) -> bool {
        self.current().is_ok_and(|c| !c.is_closed())
    }

    /// Changes other replicas (and this one) make, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn current(&self) -> Result<Arc<Client>, Unavailable> {
        let guard = self.client.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => Err(Unavailable("not connected (reconnecting)".into())),
        }
    }

    /// Opens a connection, migrates the schema and listens; returns the connection's
    /// message stream for [`StateStore::keep`] to drive.
    async fn connect(&self, target: &Target, first: bool) -> anyhow::Result<Connection> {
        let (mut client, mut connection) = target.connect().await?;
        // The connection must be driven while the client works.
        let (ready, mut messages) = {
            let setup = async {
                schema::migrate(&mut client, schema::LATEST).await?;
                client.batch_execute(&format!("LISTEN {CHANNEL}")).await.context("LISTEN")?;
                anyhow::Ok(())
            };
            tokio::pin!(setup);
            let mut buffered = Vec::new();
            let ready = loop {
                tokio::select! {
                    r = &mut setup => break r,
                    m = std::future::poll_fn(|cx| connection.poll_message(cx)) => match m {
                        Some(Ok(m)) => buffered.push(m),
                        Some(Err(e)) => break Err(anyhow::anyhow!("state connection: {}", redact(&e))),
                        None => break Err(anyhow::anyhow!("the state database closed the connection")),
                    }
                }
            };
            (ready, buffered)
        };
        ready?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(client));
        for m in messages.drain(..) {
            self.dispatch(m);
        }
        if !first {
            let _ = self.changes.send(Change::Reconnected);
        }
        Ok(connection)
    }

    /// Drives the connection, dispatches notifications, and reconnects with backoff
    /// when it breaks.
    async fn keep(self: Arc<Self>, target: Target, mut connection: Connection) {
        loop {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(m)) => self.dispatch(m),
                    Some(Err(e)) => {
                        tracing::warn!(error = %redact(&e), "state connection lost; holds fail closed until it is back");
                        break;
                    }
                    None => {
                        tracing::warn!("state connection closed; holds fail closed until it is back");
                        break;
                    }
                }
            }
            *self.client.write().unwrap_or_else(|p| p.into_inner()) = None;
            let mut backoff = Duration::from_millis(250);
            connection = loop {
                tokio::time::sleep(backoff).await;
                match self.connect(&target, false).await {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "state database unreachable");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            };
            tracing::info!(replica = %self.replica, "state connection restored");
        }
    }

    fn dispatch(&self, message: AsyncMessage) {
        match message {
            AsyncMessage::Notification(n) if n.channel() == CHANNEL => {
                let _ = self.changes.send(Change::Approval(n.payload().to_owned()));
            }
            AsyncMessage::Notice(n) => tracing::debug!(notice = %n.message(), "state database notice"),
            _ => {}
        }
    }

    /// Takes this replica's name for this process. A name another process still
    /// heartbeats under is refused: two processes under one name would withdraw each
    /// other's requests and write over each other's recordings.
    async fn claim(&self) -> anyhow::Result<()> {
        let heartbeat_ms = i32::try_from(self.heartbeat.as_millis()).unwrap_or(i32::MAX);
        let claimed = self
            .current()?
            .query_opt(
                "INSERT INTO airlock_replicas AS r (id, instance, heartbeat_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE
                    SET instance = EXCLUDED.instance, heartbeat_ms = EXCLUDED.heartbeat_ms,
                        started_at = now(), seen_at = now()
                  WHERE r.seen_at < now() - make_interval(secs => 3 * r.heartbeat_ms / 1000.0)
                 RETURNING id",
                &[&self.replica, &self.instance, &heartbeat_ms],
            )
            .await
            .map_err(Unavailable::from)?;
        anyhow::ensure!(
            claimed.is_some(),
            "replica name {:?} is in use by another running Airlock (it sent a heartbeat within three \
             heartbeats): give each replica its own state.replica, or wait for the old process to stop",
            self.replica
        );
        Ok(())
    }

    /// Replicas that sent a heartbeat within three of their heartbeats.
    pub async fn live_replicas(&self) -> Result<Vec<String>, Unavailable> {
        let rows = self
            .current()?
            .query(
                "SELECT id FROM airlock_replicas WHERE seen_at >= now() - make_interval(secs => 3 * heartbeat_ms / 1000.0)",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Gives up this replica's name at shutdown, so that its successor may start at
    /// once (requests still pending are withdrawn by the next sweep: their sessions
    /// ended with this process).
    pub async fn release(&self) {
        let released = match self.current() {
            Ok(client) => client
                .execute(
                    "UPDATE airlock_replicas SET seen_at = '-infinity' WHERE id = $1 AND instance = $2",
                    &[&self.replica, &self.instance],
                )
                .await
                .map_err(Unavailable::from),
            Err(e) => Err(e),
        };
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release the replica name; a successor waits three heartbeats");
        }
    }

    /// Heartbeats and the fleet's housekeeping: requests of dead replicas withdrawn,
    /// undecided ones expired, spent grants and old records dropped.
    async fn sweep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.beat().await {
                tracing::debug!(error = %e, "state heartbeat skipped");
            }
        }
    }

    /// Ships the session index, on its own clock so that a long catch-up never delays
    /// a heartbeat.
    async fn ship(self: Arc<Self>, index: PathBuf) {
        let mut shipped = sessions::Shipped::default();
        loop {
            tokio::time::sleep(self.heartbeat).await;
            if let Err(e) = self.ship_index(&index, &mut shipped).await {
                tracing::debug!(error = %e, "session index not shipped this round");
            }
        }
    }

    async fn beat(&self) -> Result<(), Unavailable> {
        let client = self.current()?;
        let keep = KEEP_DECIDED.as_secs_f64();
        let mine = client
            .execute(
                "UPDATE airlock_replicas SET seen_at = now() WHERE id = $1 AND instance = $2",
                &[&self.replica, &self.instance],
            )
            .await?;
        if mine == 0 {
            tracing::error!(replica = %self.replica, "another process took this replica's name after missed heartbeats");
        }
        // Each replica is judged by its own heartbeat.
        let withdrawn = client
            .execute(
                "UPDATE airlock_approvals a SET state = 'withdrawn', decided_at = now(),
                        decided_reason = 'the replica holding the session stopped'
                   FROM airlock_replicas r
                  WHERE a.state = 'pending' AND NOT a.parked AND a.replica = r.id
                    AND r.seen_at < now() - make_interval(secs => 3 * r.heartbeat_ms / 1000.0)",
                &[],
            )
            .await?;
        if withdrawn > 0 {
            tracing::info!(withdrawn, "withdrew requests of replicas that stopped");
        }
        client
            .execute(
                "UPDATE airlock_approvals SET state = 'expired', decided_at = now()
                  WHERE state = 'pending' AND expires_at <= now()",
                &[],
            )
            .await?;
        client.execute("DELETE FROM airlock_grants WHERE until <= now()", &[]).await?;
        if let Some(retention) = self.retention {
            // Their recordings are retired (by whichever replica recorded them).
            client
                .execute(
                    "DELETE FROM airlock_sessions
                      WHERE coalesce(ended_at, started_at) < now() - make_interval(secs => $1)",
                    &[&retention.as_secs_f64()],
                )
                .await?;
        }
        client
            .execute(
                "DELETE FROM airlock_approvals
                  WHERE state <> 'pending' AND decided_at < now() - make_interval(secs => $1)",
                &[&keep],
            )
            .await?;
        client
            .execute(
                "DELETE FROM airlock_replicas r WHERE seen_at < now() - make_interval(secs => $1)
                    AND NOT EXISTS (SELECT 1 FROM airlock_approvals a WHERE a.replica = r.id)",
                &[&keep],
            )
            .await?;
        Ok(())
    }

    /// A replica that restarts under the same name lost the sessions its pending
    /// requests belonged to.
    async fn withdraw_orphans(&self) -> Result<u64, Unavailable> {
        let n = self
            .current()?
            .execute(
                "UPDATE airlock_approvals SET state = 'withdrawn', decided_at = now(),
                        decided_reason = 'the replica holding the session restarted'
                  WHERE replica = $1 AND state = 'pending' AND NOT parked",
                &[&self.replica],
            )
            .await?;
        Ok(n)
    }
}

type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// The host name (cut to a header's 255 bytes), or, without one, a random name that
/// stays the same for the life of the process.
pub fn default_replica() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().chars().take(crate::recording::format::MAX_REPLICA_LEN).collect::<String>())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("airlock-{:08x}", rand::random::<u32>()))
    })
    .clone()
}

/// An error's message without what the server or parser may have echoed of the URL.
fn redact(e: &tokio_postgres::Error) -> String {
    let text = e.to_string();
    if text.contains("password") || text.contains("://") { "invalid connection settings".into() } else { text }
}
