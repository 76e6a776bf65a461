//! Running Airlock: bind every endpoint, serve until a signal, shut down in two phases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::approvals::Broker;
use crate::config::Config;
use crate::identity::Authenticator;
use crate::listener::Listeners;
use crate::metrics::Metrics;
use crate::plugins::postgres::PostgresPlugin;
use crate::plugins::ssh::SshPlugin;
use crate::policy::Policy;
use crate::recording::remote::{Remote, Uploader};
use crate::recording::{Recorder, RecordingSettings};

/// An endpoint that is listening.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Endpoint name.
    pub endpoint: &'static str,
    /// Actual address (port 0 in the config becomes the port the OS chose).
    pub addr: SocketAddr,
}

/// A running gateway.
pub struct Server {
    listeners: Arc<Listeners>,
    bound: Vec<Bound>,
    grace: Duration,
    ssh_host_key: Option<String>,
    recorder: Option<Recorder>,
    shipper: Option<(Remote, Uploader)>,
    state: Option<Arc<crate::state::StateStore>>,
}

/// How long shutdown waits for the last segment's upload.
const FINAL_UPLOAD: Duration = Duration::from_secs(10);

impl Server {
    /// Loads credentials and keys, binds all endpoints and starts accepting.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        let data_dir = config.data_dir();
        crate::private::dir(&data_dir).with_context(|| format!("data_dir {}", data_dir.display()))?;
        let metrics = Arc::new(Metrics::new());
        let auth = Arc::new(Authenticator::from_config(config).await?);
        let tls = crate::tls::agent_server_config(config)?;
        let listeners = Listeners::new(&config.limits, metrics.clone());
        let state = match &config.state {
            Some(settings) => Some(crate::state::StateStore::start(config, settings).await?),
            None => None,
        };
        let mut shipper = None;
        let recorder = if config.recording.enabled {
            let mut settings = RecordingSettings::from_config(config)?;
            settings.metrics = metrics.recorder();
            let uploader = match &config.recording.remote {
                Some(r) => Some((
                    Remote::from_config(config, r)?,
                    Uploader {
                        dir: settings.dir.clone(),
                        replica: settings.replica.clone(),
                        notes: settings.notes.clone(),
                        retention: settings.retention,
                        interval: r.upload_interval,
                        metrics: settings.metrics.clone(),
                        busy: Default::default(),
                        fleet: state.clone(),
                    },
                )),
                None => None,
            };
            if let Some((remote, uploader)) = &uploader
                && crate::recording::store::list_segments(&uploader.dir)?.is_empty()
            {
                settings.resume = crate::recording::remote::resume_point(remote, &uploader.replica)
                    .await
                    .context("continuing this replica's recording chain from object storage")?;
            }
            let recorder = Recorder::start(settings)?;
            if let Some((remote, uploader)) = uploader {
                tracing::info!(remote = %remote.url, replica = %uploader.replica, "sealed recording segments ship to object storage");
                tokio::spawn(crate::recording::remote::ship(remote.clone(), uploader.clone()));
                shipper = Some((remote, uploader));
            }
            Some(recorder)
        } else {
            tracing::warn!("recording.enabled = false: sessions are not recorded");
            None
        };
        let policy = if config.policy.enforce {
            Some(Arc::new(Policy::new(&config.rules)?))
        } else {
            tracing::warn!("policy.enforce = false: statements are forwarded without a policy check");
            None
        };
        let broker = match &state {
            None => Arc::new(Broker::new(&config.approvals, metrics.approvals_pending())?),
            Some(store) => Broker::shared(&config.approvals, metrics.approvals_pending(), store.clone())?,
        };
        let recorder_failed = recorder.as_ref().map(|r| r.failed().clone());
        let recorder_handle = recorder.clone();
        let ssh = match config.connections.iter().any(|c| c.protocol == crate::config::Protocol::Ssh) {
            true => Some(Arc::new(SshPlugin::new(
                config,
                auth.clone(),
                metrics.clone(),
                recorder.clone(),
                policy.clone(),
                broker.clone(),
            )?)),
            false => None,
        };
        let http = match config.connections.iter().any(|c| c.protocol == crate::config::Protocol::Http) {
            true => Some(Arc::new(crate::plugins::http::HttpPlugin::new(
                config,
                auth.clone(),
                metrics.clone(),
                tls.clone(),
                recorder.clone(),
                policy.clone(),
                broker.clone(),
            )?)),
            false => None,
        };
        let postgres = Arc::new(PostgresPlugin::new(
            config,
            auth.clone(),
            metrics.clone(),
            tls,
            recorder,
            policy,
            broker.clone(),
        )?);
        let mut bound = Vec::new();
        let pg = bind("listen.postgres", config.listen.postgres).await?;
        let admin_listener = bind("listen.admin", config.listen.admin).await?;
        let console = match config.console.enabled {
            true => {
                // The console's own address (for the IdP to send browsers back to) is the
                // bound one unless `console.public_url` says otherwise.
                let mut config = config.clone();
                config.listen.admin = admin_listener.local_addr()?;
                let drain = listeners.shutdown.drain.clone();
                Some(crate::console::Console::new(&config, auth.clone(), broker.clone(), drain).await?)
            }
            false => None,
        };
        let admin =
            Arc::new(Admin::new(metrics, auth, broker, config.auth.approver_groups.clone(), recorder_failed, console));
        bound.push(Bound { endpoint: "postgres", addr: pg.local_addr()? });
        bound.push(Bound { endpoint: "admin", addr: admin_listener.local_addr()? });
        tokio::spawn(listeners.clone().run(pg, postgres));
        tokio::spawn(listeners.clone().run(admin_listener, admin));
        let ssh_host_key = ssh.as_ref().map(|s| s.fingerprint().to_owned());
        if let Some(ssh) = ssh {
            let listener = bind("listen.ssh", config.listen.ssh).await?;
            bound.push(Bound { endpoint: "ssh", addr: listener.local_addr()? });
            tracing::info!(fingerprint = ssh.fingerprint(), "SSH host key");
            tokio::spawn(listeners.clone().run(listener, ssh));
        }
        if let Some(http) = http {
            let listener = bind("listen.http", config.listen.http).await?;
            bound.push(Bound { endpoint: "http", addr: listener.local_addr()? });
            tokio::spawn(listeners.clone().run(listener, http));
        }
        for b in &bound {
            tracing::info!(endpoint = b.endpoint, addr = %b.addr, "listening");
        }
        Ok(Server {
            listeners,
            bound,
            grace: config.limits.shutdown_grace,
            ssh_host_key,
            recorder: recorder_handle,
            shipper,
            state,
        })
    }

    /// Where each endpoint listens.
    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    /// The SSH host key's fingerprint, when the SSH endpoint listens.
    pub fn ssh_host_key(&self) -> Option<&str> {
        self.ssh_host_key.as_deref()
    }

    /// Stops accepting, lets sessions reach a safe point for up to the grace period,
    /// then ends the rest.
    pub async fn shutdown(self) {
        let open = self.listeners.tracker.len();
        tracing::info!(open_connections = open, grace_s = self.grace.as_secs(), "shutting down: no new connections");
        self.listeners.shutdown.drain.fire();
        self.listeners.tracker.close();
        if tokio::time::timeout(self.grace, self.listeners.tracker.wait()).await.is_err() {
            tracing::warn!(
                open_connections = self.listeners.tracker.len(),
                "grace period over; closing the remaining sessions"
            );
            self.listeners.shutdown.abort.fire();
            let _ = tokio::time::timeout(Duration::from_secs(2), self.listeners.tracker.wait()).await;
        }
        // Seal the open segment and ship it: a replica's disk may not outlive it.
        if let Some(recorder) = &self.recorder
            && recorder.seal().await.is_ok()
            && let Some((remote, uploader)) = &self.shipper
        {
            match tokio::time::timeout(FINAL_UPLOAD, crate::recording::remote::round(remote, uploader)).await {
                Ok(Ok(n)) => tracing::info!(uploaded = n, "final recording upload done"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "final recording upload failed; the segments stay on disk")
                }
                Err(_) => {
                    tracing::warn!("final recording upload unfinished after {FINAL_UPLOAD:?}; the rest stays on disk")
                }
            }
        }
        if let Some(state) = &self.state {
            state.release().await;
        }
        tracing::info!("stopped");
    }
}

async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key} = \"{addr}\": cannot listen (is another process using the port?)"))
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
