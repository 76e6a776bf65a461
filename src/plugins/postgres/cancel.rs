//! Query cancellation across the gateway.
//!
//! Agents get Airlock's own BackendKeyData, never the upstream's. A CancelRequest
//! arrives on a fresh, unauthenticated connection; if its key matches a live session,
//! Airlock sends the upstream's key to the upstream's address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_postgres::startup;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

const CANCEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a cancel for one session must go.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    /// The upstream server's address.
    pub addr: SocketAddr,
    /// The upstream backend's pid.
    pub pid: i32,
    /// The upstream backend's secret.
    pub secret: Bytes,
    /// Wakes the session if it is holding a statement for approval: a cancel gives up
    /// the wait.
    pub hold: Arc<Notify>,
}

#[derive(Debug)]
struct Entry {
    secret: i32,
    target: CancelTarget,
}

/// Live sessions by the key Airlock handed out.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<i32, Entry>>,
}

/// A registered key; dropping it unregisters the session.
#[derive(Debug)]
pub struct CancelKey {
    /// Pid shown to the agent.
    pub pid: i32,
    /// Secret shown to the agent.
    pub secret: i32,
    /// Notified when a cancel for this session arrives.
    pub hold: Arc<Notify>,
    registry: Arc<CancelRegistry>,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Entry>> {
        // A panic elsewhere cannot leave the map half-updated: every update is one call.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session and returns the key to give its agent.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> CancelKey {
        let mut sessions = self.lock();
        let pid = loop {
            let pid = rand::random::<i32>() & 0x7fff_ffff;
            if pid != 0 && !sessions.contains_key(&pid) {
                break pid;
            }
        };
        let secret = rand::random::<i32>();
        let hold = target.hold.clone();
        sessions.insert(pid, Entry { secret, target });
        CancelKey { pid, secret, hold, registry: self.clone() }
    }

    /// The upstream target for an agent's cancel key, if it names a live session.
    pub fn lookup(&self, pid: i32, secret: &[u8]) -> Option<CancelTarget> {
        let sessions = self.lock();
        let entry = sessions.get(&pid)?;
        constant_time_eq(&entry.secret.to_be_bytes(), secret).then(|| entry.target.clone())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends the upstream CancelRequest. Cancels are best effort, as in PostgreSQL: the
/// requester never learns the outcome.
pub async fn send_cancel(target: &CancelTarget) -> std::io::Result<()> {
    let mut stream = tokio::time::timeout(CANCEL_CONNECT_TIMEOUT, TcpStream::connect(target.addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.write_all(&startup::encode_cancel_request(target.pid, &target.secret)).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_unregister_on_drop() {
        let registry = Arc::new(CancelRegistry::default());
        let target = CancelTarget {
            addr: "127.0.0.1:5432".parse().unwrap(),
            pid: 7,
            secret: Bytes::from_static(b"abcd"),
            hold: Arc::default(),
        };
        let key = registry.register(target);
        let secret = key.secret.to_be_bytes();
        assert_eq!(registry.lookup(key.pid, &secret).unwrap().pid, 7);
        let mut wrong = secret;
        wrong[3] ^= 1;
        assert!(registry.lookup(key.pid, &wrong).is_none());
        assert!(registry.lookup(key.pid, &secret[..3]).is_none());
        let pid = key.pid;
        drop(key);
        assert!(registry.lookup(pid, &secret).is_none());
    }
}
