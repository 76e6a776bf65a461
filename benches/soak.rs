//! Load and soak on loopback, bounded in time: idle TLS sessions (Airlock's memory per
//! connection) and an active `pgbench` soak (TPS, p99 latency, memory and descriptors
//! at start and end, every session in a recording that verifies).
//!
//! `cargo bench --bench soak` starts a throwaway PostgreSQL (`max_connections` raised)
//! and a release Airlock on its defaults (TLS, recording, policy, masking), then:
//! 1. opens `SOAK_IDLE` (default 2,000) agent sessions through TLS, each logged in and
//!    idle, and reports Airlock's RSS growth per session; closes them;
//! 2. runs `pgbench -S -c SOAK_CLIENTS` (default 200) through Airlock for
//!    `SOAK_SECONDS` (default 60; the figures in docs/hardening.md use 600), sampling
//!    Airlock's RSS and descriptors every 10 s;
//! 3. checks that every session of both phases is in the recording, ended, and that
//!    `airlock verify` passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/airlock.rs"]
#[allow(dead_code)]
mod airlock_bench;
#[path = "support/proc_stat.rs"]
#[allow(dead_code)]
mod proc_stat;

use proc_stat::rss_kib;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::demo::{ClusterOptions, PgCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP_PASSWORD: &str = "soak-password";
const HS256: &str = "soak-hs256-secret";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Open descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn main() {
    let idle: usize = env_or("SOAK_IDLE", 2_000);
    let clients: usize = env_or("SOAK_CLIENTS", 200);
    let seconds: u64 = env_or("SOAK_SECONDS", 60);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    eprintln!("starting PostgreSQL (max_connections {})...", idle + clients + 50);
    let settings = vec![
        ("max_connections".to_owned(), (idle + clients + 50).to_string()),
        ("shared_buffers".to_owned(), "128MB".to_owned()),
    ];
    let cluster = PgCluster::start(ClusterOptions { settings, ..Default::default() }).expect("PostgreSQL");
    cluster.psql("postgres", &format!("CREATE ROLE app_rw LOGIN PASSWORD '{APP_PASSWORD}'")).unwrap();
    cluster.psql("postgres", "CREATE DATABASE soak OWNER app_rw").unwrap();
    let bin = cluster.bin_dir().to_owned();
    let init = Command::new(bin.join("pgbench"))
        .args(["-i", "-s", "10", "-q"])
        .arg(format!("host=127.0.0.1 port={} dbname=soak user=app_rw", cluster.port))
        .env("PGPASSWORD", APP_PASSWORD)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));

    let dir = cluster.dir.join("soak-airlock");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("airlock.toml"),
        format!(
            r#"data_dir = "{data}"
[listen]
postgres = "127.0.0.1:0"
admin = "127.0.0.1:0"
[limits]
max_connections = {max}
[auth]
hs256_secret = "{HS256}"
[[connections]]
name = "soak"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "soak"
user = "app_rw"
password = "{APP_PASSWORD}"
allow_groups = ["soak"]
tls = "disable"
"#,
            data = dir.join("data").display(),
            max = idle + clients + 50,
            port = cluster.port,
        ),
    )
    .unwrap();
    let (airlock, port) = airlock_bench::start(&dir, "postgres");
    let pid = airlock.id();
    let token = airlock::identity::mint_token(
        HS256.as_bytes(),
        "airlock",
        "airlock",
        "groups",
        "soak",
        &["soak".into()],
        Duration::from_secs(24 * 3600),
    )
    .unwrap();
    let cert = std::fs::read(dir.join("data/tls/server.crt")).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Warm up (one session), then the baseline.
    drop(rt.block_on(session(port, &token, &cert)));
    std::thread::sleep(Duration::from_secs(1));
    let (rss0, fds0) = (rss_kib(pid), fds(pid));

    eprintln!("opening {idle} idle TLS sessions...");
    let started = Instant::now();
    let held = rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(32));
        let tasks: Vec<_> = (0..idle)
            .map(|_| {
                let (gate, token, cert) = (gate.clone(), token.clone(), cert.clone());
                tokio::spawn(async move {
                    let _permit = gate.acquire().await.unwrap();
                    session(port, &token, &cert).await
                })
            })
            .collect();
        let mut held = Vec::with_capacity(idle);
        for t in tasks {
            held.push(t.await.unwrap());
        }
        held
    });
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (rss_idle, fds_idle) = (rss_kib(pid), fds(pid));
    let per_conn = (rss_idle.saturating_sub(rss0)) as f64 / idle as f64;
    drop(held);
    std::thread::sleep(Duration::from_secs(3));
    let (rss_after_idle, fds_after_idle) = (rss_kib(pid), fds(pid));

    eprintln!("pgbench -S -c {clients} for {seconds}s...");
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (samples, stop) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                samples.lock().unwrap().push((t0.elapsed().as_secs(), rss_kib(pid), fds(pid)));
                std::thread::sleep(Duration::from_secs(10));
            }
        })
    };
    let logs = dir.join("pgbench-log");
    std::fs::create_dir_all(&logs).unwrap();
    let soak = Command::new(bin.join("pgbench"))
        .args(["-S", "-M", "simple", "-n", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string()])
        .args(["-l", "--sampling-rate", "0.05", "--log-prefix"])
        .arg(logs.join("tx"))
        .arg(format!("host=127.0.0.1 port={port} dbname=soak user=app_rw sslmode=require"))
        .env("PGPASSWORD", &token)
        .current_dir(&logs)
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let stdout = String::from_utf8_lossy(&soak.stdout);
    assert!(soak.status.success(), "pgbench: {stdout}{}", String::from_utf8_lossy(&soak.stderr));
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let p99_ms = p99(&logs);
    std::thread::sleep(Duration::from_secs(3));
    let (rss_end, fds_end) = (rss_kib(pid), fds(pid));

    // Every session ended and is on record: the warm-up, the idle ones, pgbench's own
    // first connection (it reads the scale) and its clients.
    let expected = 1 + idle + 1 + clients;
    let recorded = recorded_sessions(&dir);
    let verify = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["verify", "--config"])
        .arg(dir.join("airlock.toml"))
        .output()
        .unwrap();
    let verified = verify.status.success();

    println!("\n## Idle sessions through TLS\n");
    println!(
        "| sessions | opened in | Airlock RSS before | with all open | per session | after closing | fds before | open | after |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {idle} | {:.1} s | {} MiB | {} MiB | {per_conn:.1} KiB | {} MiB | {fds0} | {fds_idle} | {fds_after_idle} |",
        opened.as_secs_f64(),
        rss0 / 1024,
        rss_idle / 1024,
        rss_after_idle / 1024,
    );
    println!("\n## Active soak: pgbench -S -M simple -c {clients}, {seconds} s, through TLS\n");
    println!(
        "| TPS | p99 latency | RSS at start | RSS at end | fds at start | fds at end | sessions recorded | verify |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    let first = samples.lock().unwrap().first().copied().unwrap_or_default();
    println!(
        "| {tps:.0} | {p99_ms:.2} ms | {} MiB | {} MiB | {} | {fds_end} | {recorded} of {expected} | {} |",
        first.1 / 1024,
        rss_end / 1024,
        fds_after_idle,
        if verified { "passes" } else { "FAILS" }
    );
    println!("\nRSS and descriptors every 10 s: {:?}", samples.lock().unwrap());
    assert_eq!(recorded, expected, "sessions missing from the recording");
    assert!(verified, "verify: {}", String::from_utf8_lossy(&verify.stdout));
    drop(airlock);
}

/// One agent session through TLS, logged in and idle.
async fn session(port: u16, token: &str, cert_pem: &[u8]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(&airlock_postgres::startup::encode_ssl_request()).await.unwrap();
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(&airlock_postgres::startup::encode_startup([("user", "agent"), ("database", "soak")])).await.unwrap();
    let mut password = token.as_bytes().to_vec();
    password.push(0);
    let mut m = vec![b'p'];
    m.extend_from_slice(&(password.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(&password);
    // The authentication request comes first; the password answers it.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(n > 0 && buf[0] == b'R', "no authentication request");
    tls.write_all(&m).await.unwrap();
    while !seen.ends_with(b"Z\0\0\0\x05I") {
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed during login: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    tls
}

/// The 99th percentile of the sampled transaction latencies pgbench logged, ms.
fn p99(logs: &Path) -> f64 {
    let mut latencies: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(logs).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        // client_id transaction_no time_us script_no time_epoch time_us
        latencies.extend(text.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()));
    }
    latencies.sort_unstable();
    latencies.get(latencies.len() * 99 / 100).map_or(f64::NAN, |us| *us as f64 / 1000.0)
}

/// Sessions in the recording that ended.
fn recorded_sessions(dir: &Path) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["sessions", "--json", "--config"])
        .arg(dir.join("airlock.toml"))
        .output()
        .unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.iter().filter(|s| !s["end_reason"].is_null()).count()
}
