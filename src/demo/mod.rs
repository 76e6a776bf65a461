//! `airlock demo`: a throwaway PostgreSQL with sample data, Airlock in front of it on
//! the default ports, and a ready-to-paste `psql` line with a fresh token.

mod cluster;
mod spawn;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

pub use cluster::{ClusterOptions, PgCluster, SUPERUSER, find_bin_dir, free_port};
pub use spawn::{RunAs, is_root, spawn_tied, tied_command};

use crate::config::Config;
use crate::identity::{DevKey, mint_token};
use crate::server::{Server, shutdown_signal};

const DEMO_SQL: &str = "
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, card text, created_at timestamptz DEFAULT now());
INSERT INTO customers (name, email, card) VALUES
  ('Ada Lovelace', 'ada@example.com', '4111 1111 1111 1111'),
  ('Alan Turing', 'alan@example.org', '5500 0000 0000 0004'),
  ('Grace Hopper', 'grace@example.net', '3400 0000 0000 009');
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2));
INSERT INTO orders (customer_id, total) SELECT 1 + (g % 3), g * 1.5 FROM generate_series(1, 100) g;
";

/// Runs the demo until Ctrl-C. Files go to `data_dir` (config, keys, certificate).
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    println!("Starting a throwaway PostgreSQL...");
    let cluster = tokio::task::spawn_blocking(|| PgCluster::start(ClusterOptions::default())).await??;
    let app_password = hex::encode(rand::random::<[u8; 16]>());
    cluster.psql("postgres", &format!("CREATE ROLE app_rw LOGIN PASSWORD '{app_password}'"))?;
    cluster.psql("postgres", "CREATE DATABASE demo OWNER app_rw")?;
    cluster.psql("demo", &format!("SET ROLE app_rw; {DEMO_SQL}"))?;

    let password_file = data_dir.join("demo-db.password");
    std::fs::write(&password_file, &app_password)?;
    let config_path = data_dir.join("demo.toml");
    std::fs::write(&config_path, demo_config(cluster.port))?;
    let config = Config::load(&config_path)?;

    let server = Server::start(&config).await?;
    let key = DevKey::load_or_create(&config.data_dir())?;
    let mint = |subject: &str, group: &str| {
        mint_token(
            key.secret().expose(),
            &config.auth.issuer,
            &config.auth.audience,
            &config.auth.groups_claim,
            subject,
            &[group.to_owned()],
            Duration::from_secs(12 * 3600),
        )
    };
    let token = mint("demo-agent", "agents")?;
    let approver = mint("demo-approver", "sre")?;
    let pg = config.listen.postgres;
    println!(
        "
Airlock demo is running.
  throwaway PostgreSQL  127.0.0.1:{db_port}, database \"demo\" (its password is known only to Airlock)
  Airlock Postgres      {pg}   connection name: demo-db
  Airlock admin         http://{admin}/metrics
  config                {config}

Connect as an agent (token: subject demo-agent, group agents, valid 12h):

  export TOKEN={token}
  PGPASSWORD=$TOKEN psql \"host={host} port={port} dbname=demo-db user=agent sslmode=require\" -c 'select * from customers'

Emails and cards come back masked. Try `-c 'drop table customers'`: Airlock holds it and
tells the agent the approval id. As the approver (token: subject demo-approver, group sre):

  export AIRLOCK_TOKEN={approver}
  airlock approvals --config {config}
  airlock approve <id> --config {config}      # or: airlock deny <id> --reason '...'

See what the agent did (every session is recorded):
  airlock sessions --config {config}
  airlock replay <session id> --config {config}

Mint another token:
  airlock token --config {config} --sub agent-2 --groups agents --ttl 1h

Ctrl-C stops Airlock and deletes the throwaway database.",
        db_port = cluster.port,
        admin = config.listen.admin,
        config = config_path.display(),
        host = pg.ip(),
        port = pg.port(),
    );
    shutdown_signal().await;
    server.shutdown().await;
    drop(cluster);
    Ok(())
}

fn demo_config(db_port: u16) -> String {
    format!(
        r#"# Written by `airlock demo`; see the README for every key.
data_dir = "."

[auth]
dev_tokens = true
approver_groups = ["sre"]

[[connections]]
name = "demo-db"
protocol = "postgres"
address = "127.0.0.1:{db_port}"
database = "demo"
user = "app_rw"
password = {{ file = "demo-db.password" }}
allow_groups = ["agents"]
tls = "disable"
"#
    )
}
