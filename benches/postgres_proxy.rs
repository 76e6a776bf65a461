//! Postgres throughput: direct vs through Airlock vs through PgBouncer (session mode),
//! both proxies serving their clients TLS (`sslmode=require`) with the same certificate,
//! as an agent's session through Airlock always is.
//!
//! `cargo bench --bench postgres_proxy` starts a throwaway PostgreSQL, PgBouncer and a
//! release Airlock on loopback, then runs `pgbench` scenarios and a 1M-row
//! `COPY ... TO STDOUT`, interleaving the three targets round by round so that machine
//! noise hits them alike. Prints the median of each and its ratio to direct.
//!
//! Environment: `BENCH_SECONDS` (per run, default 10), `BENCH_ROUNDS` (default 3),
//! `BENCH_ONLY` (comma-separated scenario names), `BENCH_AIRLOCK_THREADS` (Airlock's
//! `runtime.worker_threads`, default 0 = one per core), `BENCH_FSYNC` (Airlock's
//! `recording.fsync`, default `every_batch`), `BENCH_FLUSH` (`recording.flush_interval`),
//! `BENCH_VARIANT` (the fourth target: `recording-off`, the default, `policy-off`
//! (`policy.enforce = false`) or `masking-off` (no detectors, no column rules), to
//! measure what each costs), `threads-N` (`runtime.worker_threads = N`), or `baseline`: the same config run by another build of
//! Airlock, named by `BENCH_BASELINE_BIN` (e.g. the last commit's, to measure a
//! change in one interleaved run). `BENCH_ONLY=select100k` runs the 100k-row SELECT of
//! customer-like rows, `copy` the 1M-row COPY.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock::demo::{ClusterOptions, PgCluster, RunAs, free_port, is_root, spawn_tied, tied_command};

const APP_PASSWORD: &str = "bench-password";
const HS256: &str = "bench-hs256-secret";

struct Target {
    name: &'static str,
    port: u16,
    password: String,
    /// The proxy process, whose CPU time is charged to each run.
    pid: Option<u32>,
    /// The client's `sslmode`.
    sslmode: &'static str,
}

impl Target {
    /// The proxy's CPU seconds so far (0 for direct connections: no proxy).
    fn cpu_seconds(&self) -> f64 {
        self.pid.map_or(0.0, |p| proc_stat::cpu_seconds(Some(p)))
    }
}

struct Scenario {
    name: &'static str,
    args: &'static [&'static str],
}

const SCENARIOS: &[Scenario] = &[
    Scenario { name: "select-only simple -c1", args: &["-S", "-M", "simple", "-c", "1", "-j", "1"] },
    Scenario { name: "select-only simple -c16", args: &["-S", "-M", "simple", "-c", "16", "-j", "2"] },
    Scenario { name: "select-only extended -c1", args: &["-S", "-M", "extended", "-c", "1", "-j", "1"] },
    Scenario { name: "select-only extended -c16", args: &["-S", "-M", "extended", "-c", "16", "-j", "2"] },
    Scenario { name: "tpc-b simple -c8", args: &["-M", "simple", "-c", "8", "-j", "2"] },
];

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    eprintln!("starting PostgreSQL...");
    let cluster = PgCluster::start(ClusterOptions::default()).expect("PostgreSQL");
    cluster.psql("postgres", &format!("CREATE ROLE app_rw LOGIN PASSWORD '{APP_PASSWORD}'")).unwrap();
    cluster.psql("postgres", "CREATE DATABASE bench OWNER app_rw").unwrap();
    let bin = cluster.bin_dir().to_owned();
    let direct =
        Target { name: "direct", port: cluster.port, password: APP_PASSWORD.into(), pid: None, sslmode: "disable" };

    let work = cluster.dir.join("bench");
    std::fs::create_dir_all(&work).unwrap();
    let this_build = env!("CARGO_BIN_EXE_airlock").to_owned();
    let threads = std::env::var("BENCH_AIRLOCK_THREADS").unwrap_or_else(|_| "0".into());
    let (airlock, airlock_port) = start_airlock(&this_build, &work.join("airlock"), cluster.port, true, &threads, "");
    // PgBouncer serves the certificate Airlock generated for itself.
    let tls = work.join("airlock/airlock-data/tls");
    let (bouncer, bouncer_port) = start_pgbouncer(&work, cluster.port, &tls);
    let variant = std::env::var("BENCH_VARIANT").unwrap_or_else(|_| "recording-off".into());
    let (recording, variant_config, variant_bin, variant_threads) = match variant.as_str() {
        "recording-off" => (false, "", this_build, threads),
        "policy-off" => (true, "[policy]\nenforce = false\n", this_build, threads),
        "masking-off" => (true, "[[masking]]\ndetectors = []\n", this_build, threads),
        "baseline" => {
            let bin = std::env::var("BENCH_BASELINE_BIN").expect("BENCH_VARIANT=baseline needs BENCH_BASELINE_BIN");
            (true, "", bin, threads)
        }
        other => match other.strip_prefix("threads-") {
            Some(n) => (true, "", this_build, n.to_owned()),
            None => panic!("BENCH_VARIANT={other}: use recording-off, policy-off, masking-off, threads-N or baseline"),
        },
    };
    let (variant_airlock, variant_port) = start_airlock(
        &variant_bin,
        &work.join("airlock-variant"),
        cluster.port,
        recording,
        &variant_threads,
        variant_config,
    );
    let token = mint(HS256);
    let targets = [
        direct,
        Target {
            name: "pgbouncer",
            port: bouncer_port,
            password: APP_PASSWORD.into(),
            pid: Some(bouncer.id()),
            sslmode: "require",
        },
        Target {
            name: "airlock",
            port: airlock_port,
            password: token.clone(),
            pid: Some(airlock.id()),
            sslmode: "require",
        },
        Target {
            name: "airlock-variant",
            port: variant_port,
            password: token,
            pid: Some(variant_airlock.id()),
            sslmode: "require",
        },
    ];

    eprintln!("initialising pgbench (scale 10)...");
    let init = pgbench(&bin, &targets[0], &["-i", "-s", "10", "-q"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    cluster.psql("bench", "CREATE TABLE copy_src AS SELECT g AS id, md5(g::text) AS a, now() AS t FROM generate_series(1, 1000000) g; ALTER TABLE copy_src OWNER TO app_rw").unwrap();
    // Rows like a customers table: names, half with an email, free-text notes.
    cluster
        .psql(
            "bench",
            "CREATE TABLE people_src AS SELECT g AS id, 'customer ' || g AS name, \
             CASE WHEN g % 2 = 0 THEN 'user' || g || '@example.com' END AS email, \
             'order ' || (g * 7919) || ' shipped on ' || (date '2024-01-01' + g % 365) || ', ref ' || md5(g::text) AS note, \
             now() AS created FROM generate_series(1, 100000) g; ALTER TABLE people_src OWNER TO app_rw",
        )
        .unwrap();

    let mut results: Vec<(String, [Vec<f64>; 4])> = Vec::new();
    // Proxy CPU microseconds per transaction (or per row for COPY), by row.
    let mut cpu: Vec<[Vec<f64>; 4]> = Vec::new();
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| name.contains(w.as_str())));
    for s in SCENARIOS.iter().filter(|s| wanted(s.name)) {
        results.push((format!("{} (tps)", s.name), Default::default()));
        cpu.push(Default::default());
    }
    // Bulk reads: (filter name, row label, statement, rows).
    let bulk: Vec<(&str, &str, &str, f64)> = [
        ("copy", "COPY 1M rows TO STDOUT (rows/s)", "COPY copy_src TO STDOUT", 1_000_000.0),
        ("select100k", "SELECT 100k customer rows (rows/s)", "SELECT * FROM people_src", 100_000.0),
    ]
    .into_iter()
    .filter(|(name, ..)| wanted(name))
    .collect();
    let first_bulk_row = results.len();
    for (_, label, ..) in &bulk {
        results.push((label.to_string(), Default::default()));
        cpu.push(Default::default());
    }
    let duration = seconds.to_string();
    for round in 0..rounds {
        for (row, s) in SCENARIOS.iter().filter(|s| wanted(s.name)).enumerate() {
            for (i, t) in rotated(&targets, round + row) {
                let mut args = s.args.to_vec();
                args.extend(["-T", &duration, "-n"]);
                let cpu0 = t.cpu_seconds();
                let out = pgbench(&bin, t, &args);
                let used = t.cpu_seconds() - cpu0;
                let tps = parse_tps(&String::from_utf8_lossy(&out.stdout))
                    .unwrap_or_else(|| panic!("{} via {}: {}", s.name, t.name, String::from_utf8_lossy(&out.stderr)));
                eprintln!("round {round} {:<28} {:<10} {tps:>10.0} tps", s.name, t.name);
                results[row].1[i].push(tps);
                cpu[row][i].push(used * 1e6 / (tps * seconds as f64));
            }
        }
        for (k, (name, _, sql, rows)) in bulk.iter().enumerate() {
            let row = first_bulk_row + k;
            for (i, t) in rotated(&targets, round + k) {
                let start = Instant::now();
                let cpu0 = t.cpu_seconds();
                let out = Command::new(bin.join("psql"))
                    .args(["-X", "-q", "-At", "-c", sql])
                    .arg(conninfo(t))
                    .env("PGPASSWORD", &t.password)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let rate = rows / start.elapsed().as_secs_f64();
                eprintln!("round {round} {name:<28} {:<10} {rate:>10.0} rows/s", t.name);
                results[row].1[i].push(rate);
                cpu[row][i].push((t.cpu_seconds() - cpu0) * 1e6 / rows);
            }
        }
    }

    println!(
        "\nmedian of {rounds} interleaved runs, {seconds}s each; PostgreSQL, pgbench and the proxy share this machine's cores\n"
    );
    println!(
        "| scenario | direct | pgbouncer | airlock | airlock, {variant} | pgbouncer/direct | airlock/direct | airlock/pgbouncer | cost of what {variant} turns off | proxy CPU µs/op pgbouncer | airlock | airlock, {variant} |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((name, samples), cpu) in results.iter().zip(&cpu) {
        let [d, b, a, n] = samples.clone().map(median);
        let [_, cb, ca, cn] = cpu.clone().map(median);
        println!(
            "| {name} | {d:.0} | {b:.0} | {a:.0} | {n:.0} | {:.2}x | {:.2}x | {:.2}x | {:.1}% | {cb:.2} | {ca:.2} | {cn:.2} |",
            b / d,
            a / d,
            a / b,
            (1.0 - a / n) * 100.0
        );
    }
}

/// Targets in a different order each round, with their original index.
fn rotated(targets: &[Target; 4], by: usize) -> impl Iterator<Item = (usize, &Target)> {
    (0..4).map(move |k| {
        let i = (k + by) % 4;
        (i, &targets[i])
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn conninfo(t: &Target) -> String {
    format!("host=127.0.0.1 port={} dbname=bench user=app_rw sslmode={}", t.port, t.sslmode)
}

fn pgbench(bin: &Path, t: &Target, args: &[&str]) -> std::process::Output {
    Command::new(bin.join("pgbench")).args(args).arg(conninfo(t)).env("PGPASSWORD", &t.password).output().unwrap()
}

fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// PgBouncer in session mode, requiring TLS of its clients with the certificate and key
/// in `tls` (`server.crt`, `server.key`).
fn start_pgbouncer(work: &Path, pg_port: u16, tls: &Path) -> (Child, u16) {
    // setpriv starts whatever it is given, so a missing binary would only show as a
    // port that never opens.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let installed = std::env::split_paths(&path).any(|dir| dir.join("pgbouncer").is_file());
    assert!(installed, "pgbouncer is not on PATH: apt-get install pgbouncer");
    let port = free_port().unwrap();
    let ini = work.join("pgbouncer.ini");
    let users = work.join("userlist.txt");
    std::fs::write(&users, format!("\"app_rw\" \"{APP_PASSWORD}\"\n")).unwrap();
    let (cert, key) = (work.join("pgbouncer.crt"), work.join("pgbouncer.key"));
    std::fs::copy(tls.join("server.crt"), &cert).unwrap();
    std::fs::copy(tls.join("server.key"), &key).unwrap();
    std::fs::write(
        &ini,
        format!(
            "[databases]\nbench = host=127.0.0.1 port={pg_port} dbname=bench\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {}\npool_mode = session\nmax_client_conn = 200\ndefault_pool_size = 40\nlogfile = {}\n\
             client_tls_sslmode = require\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n",
            users.display(),
            work.join("pgbouncer.log").display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    if is_root() {
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(work).status().unwrap();
    }
    let mut cmd = tied_command("pgbouncer", RunAs::Postgres, "TERM");
    cmd.arg(&ini).stdout(Stdio::null()).stderr(Stdio::null());
    let child = spawn_tied(cmd).expect("pgbouncer (apt-get install pgbouncer)");
    wait_port(port);
    (child, port)
}

/// Starts Airlock with the bench config plus `extra` (a variant's settings).
fn start_airlock(bin: &str, work: &Path, pg_port: u16, recording: bool, threads: &str, extra: &str) -> (Child, u16) {
    std::fs::create_dir_all(work).unwrap();
    let config = work.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{}"
[listen]
postgres = "127.0.0.1:0"
admin = "127.0.0.1:0"
[runtime]
worker_threads = {threads}
[recording]
enabled = {recording}
fsync = "{fsync}"
flush_interval = "{flush}"
[auth]
hs256_secret = "{HS256}"
[[connections]]
name = "bench"
protocol = "postgres"
address = "127.0.0.1:{pg_port}"
database = "bench"
user = "app_rw"
password = "{APP_PASSWORD}"
allow_groups = ["bench"]
tls = "disable"
{extra}
"#,
            work.join("airlock-data").display(),
            fsync = std::env::var("BENCH_FSYNC").unwrap_or_else(|_| "every_batch".into()),
            flush = std::env::var("BENCH_FLUSH").unwrap_or_else(|_| "25ms".into()),
        ),
    )
    .unwrap();
    let mut cmd = tied_command(bin, RunAs::Me, "TERM");
    cmd.args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = spawn_tied(cmd).expect("airlock");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut port = 0;
    for line in (&mut stdout).lines().map_while(Result::ok) {
        if let Some(addr) = line.strip_prefix("listening postgres ") {
            port = addr.rsplit(':').next().unwrap().parse().unwrap();
            break;
        }
    }
    assert!(port != 0, "airlock did not start");
    std::thread::spawn(move || for _ in stdout.lines() {});
    (child, port)
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mint(secret: &str) -> String {
    airlock::identity::mint_token(
        secret.as_bytes(),
        "airlock",
        "airlock",
        "groups",
        "bench",
        &["bench".into()],
        Duration::from_secs(24 * 3600),
    )
    .unwrap()
}
