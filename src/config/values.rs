//! How values are written in the config file: durations ("30s"), sizes ("64MiB"),
//! statement classes, and the defaults of every key.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

pub(super) fn de_classes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<airlock_classes::Class>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|name| {
            airlock_classes::Class::parse(&name).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown class {name:?}: use read, write, bulk, ddl, destructive, privilege, admin, transaction, session or unknown"
                ))
            })
        })
        .collect()
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration like \"30s\" or \"5m\": {e}")))
}

pub(super) fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A row count, or `"unlimited"` (`u64::MAX`).
pub(super) fn de_max_rows<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rows {
        Count(u64),
        Word(String),
    }
    match Rows::deserialize(d)? {
        Rows::Count(n) => Ok(n),
        Rows::Word(w) if w == "unlimited" => Ok(u64::MAX),
        Rows::Word(w) => Err(serde::de::Error::custom(format!("{w:?} is not a row count or \"unlimited\""))),
    }
}

pub(super) fn de_opt_max_rows<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_max_rows(d).map(Some)
}

pub(super) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let s = String::deserialize(d)?;
    parse_size(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a size like \"64MiB\"")))
}

/// Parses `"64MiB"`, `"512KiB"`, `"1GiB"`, `"1000"` (bytes).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) mod defaults {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn data_dir() -> PathBuf {
        "airlock-data".into()
    }
    pub fn postgres_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 15432))
    }
    pub fn admin_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8081))
    }
    pub fn ssh_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 2222))
    }
    pub fn http_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn http_hold() -> Duration {
        Duration::from_secs(30)
    }
    pub fn http_max_body() -> usize {
        16 << 20
    }
    pub fn http_record_body() -> usize {
        1 << 20
    }
    pub fn graphql_paths() -> Vec<String> {
        vec!["/graphql".into()]
    }
    pub fn ssh_env() -> Vec<String> {
        vec!["LANG".into(), "LC_*".into()]
    }
    pub fn max_connections() -> usize {
        1024
    }
    pub fn max_handshakes() -> usize {
        256
    }
    pub fn max_handshakes_per_source() -> usize {
        64
    }
    pub fn handshake_timeout() -> Duration {
        Duration::from_secs(15)
    }
    pub fn shutdown_grace() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_message_size() -> usize {
        64 << 20
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn issuer() -> String {
        "airlock".into()
    }
    pub fn audience() -> String {
        "airlock".into()
    }
    pub fn groups_claim() -> String {
        "groups".into()
    }
    pub fn leeway() -> Duration {
        Duration::from_secs(30)
    }
    pub fn pattern_max_len() -> usize {
        256
    }
    pub fn max_rows() -> u64 {
        crate::config::DEFAULT_MAX_ROWS
    }
    pub fn approval_timeout() -> Duration {
        Duration::from_secs(300)
    }
    pub fn webhook_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn state_heartbeat() -> Duration {
        Duration::from_secs(5)
    }
    pub fn s3_region() -> String {
        "us-east-1".into()
    }
    pub fn upload_interval() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_grant() -> Duration {
        Duration::from_secs(24 * 3600)
    }
    pub fn console_login() -> Duration {
        Duration::from_secs(8 * 3600)
    }
    pub fn oidc_scopes() -> Vec<String> {
        vec!["profile".into(), "groups".into()]
    }
    pub fn yes() -> bool {
        true
    }
    pub fn segment_size() -> usize {
        64 << 20
    }
    pub fn segment_age() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn fsync_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn zstd_level() -> i32 {
        // Level 1 keeps up with a busy gateway on a small machine and still compresses
        // result rows about 6x (see benches/recorder.rs).
        1
    }
    pub fn flush_interval() -> Duration {
        // Each block costs a compression context pass and an fsync; at 25 ms those
        // fixed costs stay a small share even for a single busy session.
        Duration::from_millis(25)
    }
    pub fn queue_size() -> usize {
        64 << 20
    }
}
