//! Load and soak on loopback, bounded in time, for each endpoint: Airlock's memory per
//! idle session, then an active soak (throughput, p99 latency, memory and descriptors
//! sampled from start to end, every session in a recording that verifies).
//!
//! `cargo bench --bench soak` runs, each against a release Airlock on its defaults
//! (TLS for Postgres, recording, policy, masking) and a throwaway peer:
//! - **postgres**: opens `SOAK_IDLE` (default 2,000) agent sessions through TLS, each
//!   logged in and idle, and reports Airlock's RSS growth per session; then runs
//!   `pgbench -S -c SOAK_CLIENTS` (default 200) through Airlock;
//! - **ssh**: `SOAK_SSH_CLIENTS` (default 32) OpenSSH clients, each running exec after
//!   exec (a new connection each, 64 KiB of output) through Airlock to a throwaway sshd;
//! - **http**: `SOAK_IDLE` idle keep-alive sessions (memory per session), then
//!   `wrk -c SOAK_CLIENTS` on a JSON API through Airlock (masking rules on) to nginx,
//!   while another client opens a new connection for every request.
//!
//! Each active phase lasts `SOAK_SECONDS` (default 60; the figures in
//! docs/hardening.md use 600), sampling Airlock's RSS and descriptors every 10 s, and
//! ends by checking that every session is in the recording, ended, and that
//! `airlock verify` passes. `SOAK_ONLY` (comma-separated: postgres, ssh, http) picks
//! phases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/proc_stat.rs"]
#[allow(dead_code)]
mod proc_stat;
#[path = "../tests/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;
#[path = "support/airlock.rs"]
#[allow(dead_code)]
mod support;

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
    let ssh_clients: usize = env_or("SOAK_SSH_CLIENTS", 32);
    let seconds: u64 = env_or("SOAK_SECONDS", 60);
    let only = std::env::var("SOAK_ONLY").unwrap_or_else(|_| "postgres,ssh,http".into());
    let wanted = |phase: &str| only.split(',').any(|p| p.trim() == phase);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if wanted("postgres") {
        postgres(idle, clients, seconds);
    }
    if wanted("ssh") {
        ssh(ssh_clients, seconds);
    }
    if wanted("http") {
        http(idle, clients, seconds);
    }
}

/// RSS (KiB) and open descriptors of a process every 10 s, from a thread of its own.
struct Sampler {
    samples: Arc<std::sync::Mutex<Vec<(u64, u64, usize)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                'sampling: while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    samples.lock().unwrap().push((t0.elapsed().as_secs(), rss_kib(pid), fds(pid)));
                    for _ in 0..100 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break 'sampling;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        Sampler { samples, stop, thread }
    }

    /// `(seconds, RSS KiB, descriptors)` from the first sample to the last.
    fn stop(self) -> Vec<(u64, u64, usize)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// RSS samples as `seconds: MiB` for the report.
fn rss_trace(samples: &[(u64, u64, usize)]) -> String {
    let parts: Vec<String> =
        samples.iter().map(|(t, rss, fds)| format!("{t} s: {:.1} MiB/{fds} fds", *rss as f64 / 1024.0)).collect();
    parts.join(", ")
}

fn postgres(idle: usize, clients: usize, seconds: u64) {
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
    let (airlock, port) = support::start(&dir, "postgres");
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
    let sampler = Sampler::start(pid);
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
    let samples = sampler.stop();
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
    let (recorded, _) = recorded_sessions(&dir);
    let verified = verify(&dir);

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
    let first = samples.first().copied().unwrap_or_default();
    println!(
        "| {tps:.0} | {p99_ms:.2} ms | {} MiB | {} MiB | {} | {fds_end} | {recorded} of {expected} | {} |",
        first.1 / 1024,
        rss_end / 1024,
        fds_after_idle,
        if verified { "passes" } else { "FAILS" }
    );
    println!("\nRSS and descriptors every 10 s: {}", rss_trace(&samples));
    assert_eq!(recorded, expected, "sessions missing from the recording");
    assert!(verified, "airlock verify failed");
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

/// Sessions in the recording of the Airlock configured in `dir`: those that ended, and
/// all of them.
fn recorded_sessions(dir: &Path) -> (usize, usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["sessions", "--json", "--config"])
        .arg(dir.join("airlock.toml"))
        .output()
        .unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (list.iter().filter(|s| !s["end_reason"].is_null()).count(), list.len())
}

/// Whether `airlock verify` passes on the recording of the Airlock configured in `dir`.
fn verify(dir: &Path) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["verify", "--config"])
        .arg(dir.join("airlock.toml"))
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("airlock verify: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// How an active phase ended: Airlock's samples to 3 s after the load stopped, and
/// its recording (sessions that ended, all sessions, whether `airlock verify` passes)
/// against the sessions the phase opened.
struct Ending {
    samples: Vec<(u64, u64, usize)>,
    ended: usize,
    recorded: usize,
    expected: usize,
    verified: bool,
}

impl Ending {
    /// The report columns [`Ending::cells`] fills, and their alignment.
    const HEADER: &str =
        "RSS at start | RSS at end | fds at start | fds at end | sessions recorded and ended | verify |";
    const ALIGN: &str = "---:|---:|---:|---:|---:|---|";

    fn take(sampler: Sampler, pid: u32, dir: &Path, expected: usize) -> Ending {
        std::thread::sleep(Duration::from_secs(3));
        let mut samples = sampler.stop();
        samples.push((samples.last().map_or(0, |s| s.0) + 3, rss_kib(pid), fds(pid)));
        let (ended, recorded) = recorded_sessions(dir);
        Ending { samples, ended, recorded, expected, verified: verify(dir) }
    }

    fn cells(&self) -> String {
        let first = self.samples.first().copied().unwrap_or_default();
        let last = self.samples.last().copied().unwrap_or_default();
        format!(
            "{:.1} MiB | {:.1} MiB | {} | {} | {} of {} | {} |",
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            first.2,
            last.2,
            self.ended,
            self.expected,
            if self.verified { "passes" } else { "FAILS" }
        )
    }

    /// Prints the samples; fails the bench unless every session is recorded, ended,
    /// and verifies.
    fn check(&self) {
        println!("\nRSS and descriptors every 10 s: {}", rss_trace(&self.samples));
        assert_eq!((self.ended, self.recorded), (self.expected, self.expected), "sessions missing or not ended");
        assert!(self.verified, "airlock verify failed");
    }
}

/// Tallies of an active soak's operations: how many, how many failed, and each one's
/// latency (ms).
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    latencies: Vec<f64>,
    first_failure: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies.extend(other.latencies);
        self.first_failure = self.first_failure.take().or(other.first_failure);
    }
}

/// SSH exec through Airlock to a throwaway sshd: `clients` OpenSSH clients, each running
/// one exec per connection, for `seconds`.
fn ssh(clients: usize, seconds: u64) {
    let root = std::env::temp_dir().join(format!("airlock-ssh-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let sshd = sshd::Sshd::start(&root);
    let agent = sshd::AgentKey::new(&root, "agent_key", "soak", &["agents"]);
    let dir = root.join("airlock");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("airlock.toml"),
        format!(
            "data_dir = \"{d}\"\n[listen]\npostgres = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nssh = \"127.0.0.1:0\"\n\
             [limits]\nmax_connections = {max}\n[auth]\ndev_tokens = true\n{keys}\n{conn}",
            d = dir.join("data").display(),
            max = clients * 2 + 50,
            keys = agent.config,
            conn = sshd.connection("box", r#"["agents"]"#, ""),
        ),
    )
    .unwrap();
    let (airlock, port) = support::start(&dir, "ssh");
    let pid = airlock.id();
    // One exec: a new connection, a read-only command under the default policy, 64 KiB
    // of output through the masker.
    let exec = |tally: &mut Tally| {
        let started = Instant::now();
        let out = sshd::run(
            sshd::ssh_cmd(port, &agent.path, "box")
                .args(["-o", "ServerAliveInterval=0"])
                .arg("head -c 65536 /dev/zero"),
            Duration::from_secs(60),
        );
        if out.status.success() && out.stdout.len() == 65_536 {
            tally.ok += 1;
            tally.latencies.push(started.elapsed().as_secs_f64() * 1e3);
        } else {
            tally.failed += 1;
            tally.first_failure.get_or_insert_with(|| {
                format!("{:?}, {} bytes: {}", out.status, out.stdout.len(), String::from_utf8_lossy(&out.stderr))
            });
        }
    };
    exec(&mut Tally::default());
    std::thread::sleep(Duration::from_secs(1));

    eprintln!("{clients} SSH clients running exec after exec for {seconds}s...");
    let sampler = Sampler::start(pid);
    let cpu0 = proc_stat::cpu_seconds(Some(pid));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        exec(&mut tally);
                    }
                    tally
                })
            })
            .collect();
        for w in workers {
            tally.merge(w.join().unwrap());
        }
    });
    let elapsed = seconds as f64;
    let cpu_ms = (proc_stat::cpu_seconds(Some(pid)) - cpu0) * 1e3 / tally.ok.max(1) as f64;
    let ending = Ending::take(sampler, pid, &dir, 1 + tally.ok + tally.failed);

    println!("\n## SSH exec soak: {clients} OpenSSH clients, a connection per exec, {seconds} s\n");
    println!("| execs/s | failed | p50 | p99 | Airlock CPU per exec | {}", Ending::HEADER);
    println!("|---:|---:|---:|---:|---:|{}", Ending::ALIGN);
    println!(
        "| {:.1} | {} | {:.1} ms | {:.1} ms | {cpu_ms:.1} ms | {}",
        tally.ok as f64 / elapsed,
        tally.failed,
        support::percentile(tally.latencies.clone(), 0.5),
        support::percentile(tally.latencies.clone(), 0.99),
        ending.cells(),
    );
    assert_eq!(tally.failed, 0, "execs failed; the first: {}", tally.first_failure.unwrap_or_default());
    ending.check();
    drop(airlock);
    drop(sshd);
    let _ = std::fs::remove_dir_all(&root);
}

/// HTTP through Airlock to nginx: `idle` idle keep-alive sessions (memory per session),
/// then `wrk -c clients` for `seconds` on a JSON API with masking rules on, while another
/// client opens a new connection for every request.
fn http(idle: usize, clients: usize, seconds: u64) {
    let root = std::env::temp_dir().join(format!("airlock-http-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("www")).unwrap();
    let json = r#"{"items":[{"id":1,"name":"one","password":"hunter2","api_token":"t-1"},{"id":2,"name":"two"}]}"#;
    std::fs::write(root.join("www/item.json"), json).unwrap();
    let origin_port = airlock::demo::free_port().unwrap();
    let origin = nginx::nginx(&root, "origin", origin_port, &format!("root {};", root.join("www").display()));
    let dir = root.join("airlock");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("airlock.toml"),
        format!(
            "data_dir = \"{d}\"\n[listen]\npostgres = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\
             [limits]\nmax_connections = {max}\nmax_handshakes_per_source = {starting}\n[auth]\nhs256_secret = \"{HS256}\"\n\
             [[connections]]\nname = \"api\"\nprotocol = \"http\"\nurl = \"http://127.0.0.1:{origin_port}\"\nallow_groups = [\"soak\"]\n\
             headers = {{ Authorization = {{ value = \"soak-upstream-secret\", prefix = \"Bearer \" }} }}\n\
             [[masking]]\njson = [\"$..password\"]\nkeys = [\"*token*\"]\n",
            d = dir.join("data").display(),
            max = idle + clients + 50,
            // wrk opens all its connections at once, from the one loopback address.
            starting = clients + 16,
        ),
    )
    .unwrap();
    let (airlock, port) = support::start(&dir, "http");
    let pid = airlock.id();
    let token = support::token(HS256, "soak", &["soak"]);
    let request = format!("GET /api/item.json HTTP/1.1\r\nHost: airlock\r\nAuthorization: Bearer {token}\r\n\r\n");
    // One request on a connection of its own; the body must come back masked.
    let once = |tally: &mut Tally| {
        let started = Instant::now();
        let answer = http_once(port, &request);
        match answer {
            Ok(body) if body.contains("\"id\":1") && !body.contains("hunter2") && !body.contains("t-1") => {
                tally.ok += 1;
                tally.latencies.push(started.elapsed().as_secs_f64() * 1e3);
            }
            other => {
                tally.failed += 1;
                tally.first_failure.get_or_insert_with(|| format!("{other:?}"));
            }
        }
    };
    let mut warm = Tally::default();
    once(&mut warm);
    assert_eq!(warm.ok, 1, "the first request failed: {:?}", warm.first_failure);
    std::thread::sleep(Duration::from_secs(1));
    let (rss0, fds0) = (rss_kib(pid), fds(pid));

    eprintln!("opening {idle} idle HTTP sessions...");
    let mut held = Vec::with_capacity(idle);
    while held.len() < idle {
        // Each answers one request and then waits on keep-alive; 32 start at a time.
        let batch: Vec<_> = (held.len()..idle.min(held.len() + 32))
            .map(|_| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
                s
            })
            .collect();
        for mut s in batch {
            read_response(&mut s).unwrap();
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let (rss_idle, fds_idle) = (rss_kib(pid), fds(pid));
    let per_conn = rss_idle.saturating_sub(rss0) as f64 / idle as f64;
    drop(held);
    std::thread::sleep(Duration::from_secs(3));
    let (rss_after_idle, fds_after_idle) = (rss_kib(pid), fds(pid));

    eprintln!("wrk -c {clients} for {seconds}s, and a new connection per request beside it...");
    let sampler = Sampler::start(pid);
    let cpu0 = proc_stat::cpu_seconds(Some(pid));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (wrk, churn) = std::thread::scope(|scope| {
        let churn = scope.spawn(|| {
            let mut tally = Tally::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                once(&mut tally);
                std::thread::sleep(Duration::from_millis(20));
            }
            tally
        });
        let wrk = Command::new("wrk")
            .args(["-t2", &format!("-c{clients}"), &format!("-d{seconds}s"), "--latency", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("http://127.0.0.1:{port}/api/item.json"))
            .output()
            .expect("wrk is needed: apt-get install wrk");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (wrk, churn.join().unwrap())
    });
    let text = String::from_utf8_lossy(&wrk.stdout).into_owned();
    assert!(wrk.status.success() && !text.contains("Non-2xx") && !text.contains("Socket errors"), "wrk: {text}");
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()));
    let rps = field("Requests/sec:").unwrap_or_default();
    let requests: f64 = rps.parse::<f64>().unwrap_or(f64::NAN) * seconds as f64 + churn.ok as f64;
    let cpu_us = (proc_stat::cpu_seconds(Some(pid)) - cpu0) * 1e6 / requests;
    let p99 = field("99%").unwrap_or_default();
    // The warm-up, the idle sessions, wrk's connections and the churning client's.
    let ending = Ending::take(sampler, pid, &dir, 1 + idle + clients + churn.ok + churn.failed);
    // Idle upstream connections stay in the client's pool for 90 s.
    eprintln!("waiting out the upstream pool's idle timeout...");
    std::thread::sleep(Duration::from_secs(92));
    let (rss_idle_end, fds_idle_end) = (rss_kib(pid), fds(pid));

    println!("\n## HTTP idle keep-alive sessions\n");
    println!(
        "| sessions | Airlock RSS before | with all open | per session | after closing | fds before | open | after |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {idle} | {:.1} MiB | {:.1} MiB | {per_conn:.1} KiB | {:.1} MiB | {fds0} | {fds_idle} | {fds_after_idle} |",
        rss0 as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        rss_after_idle as f64 / 1024.0,
    );
    println!(
        "\n## HTTP soak: wrk -t2 -c{clients} keep-alive plus a new connection per request, {seconds} s, masking on\n"
    );
    println!(
        "| requests/s (wrk) | p99 (wrk) | new-connection requests | their p99 | Airlock CPU per request | {}",
        Ending::HEADER
    );
    println!("|---:|---:|---:|---:|---:|{}", Ending::ALIGN);
    println!(
        "| {rps} | {p99} | {} ({} failed) | {:.1} ms | {cpu_us:.0} µs | {}",
        churn.ok,
        churn.failed,
        support::percentile(churn.latencies.clone(), 0.99),
        ending.cells(),
    );
    println!(
        "\n95 s after the run (the upstream pool's idle connections closed): RSS {:.1} MiB, {fds_idle_end} fds (before the idle sessions: {fds0})",
        rss_idle_end as f64 / 1024.0
    );
    assert_eq!(churn.failed, 0, "requests failed; the first: {}", churn.first_failure.unwrap_or_default());
    // wrk reconnects a connection that failed, which would add sessions.
    ending.check();
    drop(airlock);
    drop(origin);
    let _ = std::fs::remove_dir_all(&root);
}

/// One request on a new connection (`Connection: close` added); the response body.
fn http_once(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = request.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    std::io::Write::write_all(&mut s, request.as_bytes())?;
    read_response(&mut s)
}

/// Reads one response with a `Content-Length` (what nginx sends for a file); its body
/// if the status is 200.
fn read_response(s: &mut std::net::TcpStream) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                String::from_utf8_lossy(&buf).into_owned(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no content-length: {head}")))?;
        if buf.len() >= end + 4 + length {
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
            return if head.starts_with("http/1.1 200") {
                Ok(body)
            } else {
                Err(std::io::Error::other(format!("{head}\n{body}")))
            };
        }
    }
}
