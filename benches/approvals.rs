//! How long an approval takes to reach the held session: one process (approvals in
//! memory) against a fleet of two replicas sharing state in PostgreSQL (the statement
//! held on replica A, approved through replica B's admin API), interleaved in one run.
//!
//! `cargo bench --bench approvals` starts a throwaway PostgreSQL (the target and the
//! state database) and three release Airlocks. Each round, an agent's `DROP TABLE IF
//! EXISTS` is held; the approver polls `GET /approvals` until it appears, then
//! `POST /approvals/{id}/approve`. Reported per mode, median and p99 over
//! `APPROVALS_N` rounds (default 60):
//! - `approve API`: the approve call's round trip;
//! - `to result`: from sending the approval to the agent's result arriving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/airlock.rs"]
#[allow(dead_code)]
mod airlock_bench;

use std::time::{Duration, Instant};

use airlock::admin::AdminClient;
use airlock::demo::{ClusterOptions, PgCluster, free_port};

const APP_PASSWORD: &str = "bench-password";
const HS256: &str = "bench-hs256-secret";

fn token(subject: &str, groups: &[&str]) -> String {
    airlock_bench::token(HS256, subject, groups)
}

/// An Airlock with `extra` config; returns it with its Postgres and admin ports.
fn start(cluster: &PgCluster, name: &str, extra: &str) -> (airlock_bench::Running, u16, u16) {
    let dir = cluster.dir.join(format!("approvals-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (pg, admin) = (free_port().unwrap(), free_port().unwrap());
    std::fs::write(
        dir.join("airlock.toml"),
        format!(
            r#"data_dir = "{data}"
[listen]
postgres = "127.0.0.1:{pg}"
admin = "127.0.0.1:{admin}"
[postgres]
allow_plaintext_loopback = true
[auth]
hs256_secret = "{HS256}"
approver_groups = ["sre"]
[[connections]]
name = "app"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "app"
user = "app_rw"
password = "{APP_PASSWORD}"
allow_groups = ["agents"]
tls = "disable"
{extra}
"#,
            data = dir.join("data").display(),
            port = cluster.port,
        ),
    )
    .unwrap();
    let (running, _) = airlock_bench::start(&dir, "postgres");
    (running, pg, admin)
}

struct Mode {
    name: &'static str,
    agent_port: u16,
    approver: AdminClient,
    api_ms: Vec<f64>,
    result_ms: Vec<f64>,
}

async fn round(mode: &mut Mode, agent: &str, i: usize) {
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(mode.agent_port).user("agent").dbname("app").password(agent);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let held =
        tokio::spawn(async move { client.simple_query(&format!("DROP TABLE IF EXISTS bench_nothing_{i}")).await });
    let id = loop {
        let list = mode.approver.get("/approvals").await.unwrap();
        if let Some(id) = list.as_array().and_then(|a| a.first()).and_then(|r| r["id"].as_str()) {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let sent = Instant::now();
    mode.approver.post(&format!("/approvals/{id}/approve"), &serde_json::json!({})).await.unwrap();
    mode.api_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    held.await.unwrap().unwrap();
    mode.result_ms.push(sent.elapsed().as_secs_f64() * 1e3);
}

fn main() {
    let n: usize = std::env::var("APPROVALS_N").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = PgCluster::start(ClusterOptions::default()).expect("PostgreSQL");
    cluster.psql("postgres", &format!("CREATE ROLE app_rw LOGIN PASSWORD '{APP_PASSWORD}'")).unwrap();
    cluster.psql("postgres", "CREATE DATABASE app OWNER app_rw").unwrap();
    cluster.psql("postgres", "CREATE DATABASE state OWNER app_rw").unwrap();
    let state = |replica: &str| {
        format!(
            "[state]\nurl = \"host=127.0.0.1 port={} dbname=state user=app_rw password={APP_PASSWORD} sslmode=disable\"\nreplica = \"{replica}\"\n",
            cluster.port
        )
    };
    let (_solo, solo_pg, solo_admin) = start(&cluster, "memory", "");
    let (_a, a_pg, _) = start(&cluster, "fleet-a", &state("a"));
    let (_b, _, b_admin) = start(&cluster, "fleet-b", &state("b"));
    let approver = token("oncall", &["sre"]);
    let agent = token("agent", &["agents"]);
    let mut modes = [
        Mode {
            name: "one process (memory)",
            agent_port: solo_pg,
            approver: AdminClient::new(&format!("http://127.0.0.1:{solo_admin}"), &approver),
            api_ms: Vec::new(),
            result_ms: Vec::new(),
        },
        Mode {
            name: "fleet: held on A, approved on B",
            agent_port: a_pg,
            approver: AdminClient::new(&format!("http://127.0.0.1:{b_admin}"), &approver),
            api_ms: Vec::new(),
            result_ms: Vec::new(),
        },
    ];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // One warm-up round each, then interleaved rounds.
        for mode in modes.iter_mut() {
            round(mode, &agent, 0).await;
            mode.api_ms.clear();
            mode.result_ms.clear();
        }
        for i in 1..=n {
            for mode in modes.iter_mut() {
                round(mode, &agent, i).await;
            }
        }
    });
    println!("approvals, {n} interleaved rounds per mode (ms):");
    println!("{:<34} {:>12} {:>12} {:>12} {:>12}", "mode", "API p50", "API p99", "result p50", "result p99");
    for m in &modes {
        println!(
            "{:<34} {:>12.2} {:>12.2} {:>12.2} {:>12.2}",
            m.name,
            airlock_bench::percentile(m.api_ms.clone(), 0.5),
            airlock_bench::percentile(m.api_ms.clone(), 0.99),
            airlock_bench::percentile(m.result_ms.clone(), 0.5),
            airlock_bench::percentile(m.result_ms.clone(), 0.99)
        );
    }
}
