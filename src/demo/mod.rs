//! `airlock demo`: a throwaway PostgreSQL with sample data and, where OpenSSH's server
//! is installed, a throwaway SSH host; Airlock in front of both on the default ports,
//! and ready-to-paste `psql` and `ssh` lines with a fresh token and key.

mod api;
mod cluster;
mod host;
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
CREATE TABLE scratch (id int PRIMARY KEY, note text);
INSERT INTO scratch SELECT g, 'note ' || g FROM generate_series(1, 2000) g;
";

/// The demo's ports on 127.0.0.1 (0: any free port).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Airlock's Postgres endpoint.
    pub postgres: u16,
    /// The admin API.
    pub admin: u16,
    /// Airlock's SSH endpoint.
    pub ssh: u16,
    /// Airlock's HTTP endpoint.
    pub http: u16,
}

/// Runs the demo until Ctrl-C, Airlock listening on 127.0.0.1 at `ports`. Files go to
/// `data_dir` (config, keys, certificate).
pub async fn run(data_dir: &Path, ports: Ports) -> anyhow::Result<()> {
    crate::private::dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    println!("Starting a throwaway PostgreSQL...");
    let cluster = tokio::task::spawn_blocking(|| PgCluster::start(ClusterOptions::default())).await??;
    let app_password = hex::encode(rand::random::<[u8; 16]>());
    cluster.psql("postgres", &format!("CREATE ROLE app_rw LOGIN PASSWORD '{app_password}'"))?;
    cluster.psql("postgres", "CREATE DATABASE demo OWNER app_rw")?;
    cluster.psql("demo", &format!("SET ROLE app_rw; {DEMO_SQL}"))?;

    let password_file = data_dir.join("demo-db.password");
    write_secret(&password_file, &app_password)?;
    let host_dir = data_dir.join("demo-host");
    let host = tokio::task::spawn_blocking(move || host::start(&host_dir)).await??;
    let agent_key = data_dir.join("demo-agent.key");
    let ssh = match &host {
        Some(h) => Some((h, host::new_key(&agent_key)?)),
        None => None,
    };
    let api_key = hex::encode(rand::random::<[u8; 16]>());
    write_secret(&data_dir.join("demo-api.key"), &api_key)?;
    let api = api::start(api_key).await?;
    let config_path = data_dir.join("demo.toml");
    std::fs::write(&config_path, demo_config(cluster.port, api.port, ports, ssh.as_ref()))?;
    let config = Config::load(&config_path)?;

    let server = Server::start(&config).await?;
    // The ports actually used, also in the config the printed commands read.
    let port = |endpoint: &str| server.bound().iter().find(|b| b.endpoint == endpoint).map(|b| b.addr.port());
    let bound = Ports {
        postgres: port("postgres").unwrap_or(ports.postgres),
        admin: port("admin").unwrap_or(ports.admin),
        ssh: port("ssh").unwrap_or(ports.ssh),
        http: port("http").unwrap_or(ports.http),
    };
    let (pg_port, admin_port) = (bound.postgres, bound.admin);
    std::fs::write(&config_path, demo_config(cluster.port, api.port, bound, ssh.as_ref()))?;
    let ssh_lines = match &host {
        Some(h) => ssh_lines(&data_dir, h, &agent_key, bound.ssh)?,
        None => "\nSSH: skipped (no sshd here; install openssh-server to try the SSH endpoint too).\n".to_owned(),
    };
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
    let pg = std::net::SocketAddr::from(([127, 0, 0, 1], pg_port));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin_port));
    // Printed lines must work when pasted, also where `airlock` is not on the PATH.
    let airlock = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "airlock".into());
    println!(
        "
Airlock demo is running.
  throwaway PostgreSQL  127.0.0.1:{db_port}, database \"demo\" (its password is known only to Airlock)
  Airlock Postgres      {pg}   connection name: demo-db
  Airlock HTTP          {http}    connection name: demo-api
  Airlock admin         http://{admin}/metrics
  web console           http://{admin}/console/   (sign in with the approver token below)
  config                {config}

Connect as an agent (token: subject demo-agent, group agents, valid 12h):

  export TOKEN={token}
  PGPASSWORD=$TOKEN psql \"host={host} port={port} dbname=demo-db user=agent sslmode=require\" -c 'select * from customers'

Emails and cards come back masked. Try `-c 'drop table scratch'`: Airlock holds it and
tells the agent the approval id; `-c 'delete from scratch where id > 500'` changes more
rows than the default 1000-row limit allows, so it is rolled back and held too.
{ssh_lines}
HTTP: a throwaway ticket API on 127.0.0.1:{api_port} wants a key only Airlock holds.

  curl -s -H \"Authorization: Bearer $TOKEN\" http://{http}/demo-api/tickets

Reporters and tokens come back masked. A DELETE is held: within 10 s an approval lets
it through; after that the answer names the approval id, and once it is approved the
same request sent with `-H 'Airlock-Approval: <id>'` goes through, once.

  curl -s -X DELETE -H \"Authorization: Bearer $TOKEN\" http://{http}/demo-api/tickets/1

As the approver (token: subject demo-approver, group sre), in another shell:

  export AIRLOCK_CONFIG={config}
  export AIRLOCK_TOKEN={approver}
  {airlock} approvals
  {airlock} approve <id>        # or: {airlock} deny <id> --reason '...'

or in the browser: http://{admin}/console/ with that token pasted (it is an approver
and an auditor, so it also lists sessions and replays them).

See what the agent did (every session is recorded):
  {airlock} sessions
  {airlock} replay <session id>

Mint another token:
  {airlock} token --sub agent-2 --groups agents --ttl 1h

Ctrl-C stops Airlock and deletes the throwaway database.",
        db_port = cluster.port,
        api_port = api.port,
        http = std::net::SocketAddr::from(([127, 0, 0, 1], bound.http)),
        admin = admin,
        config = config_path.display(),
        host = pg.ip(),
        port = pg.port(),
    );
    shutdown_signal().await;
    server.shutdown().await;
    drop(host);
    drop(api);
    drop(cluster);
    Ok(())
}

/// Writes a file only its owner may read.
fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    crate::private::write_new(path, contents.as_bytes())
}

/// What the demo prints about SSH, after writing a known_hosts file for Airlock's key.
fn ssh_lines(data_dir: &Path, host: &host::DemoHost, agent_key: &Path, port: u16) -> anyhow::Result<String> {
    let key = crate::plugins::ssh::load_or_create_host_key(data_dir)?;
    let public = key.public_key().to_openssh().map_err(|e| anyhow::anyhow!("{e}"))?;
    let known_hosts = data_dir.join("demo-known-hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {public}\n"))?;
    let scratch = std::env::temp_dir().join("airlock-demo-scratch");
    std::fs::create_dir_all(&scratch)?;
    std::fs::write(scratch.join("notes.txt"), "nothing important\n")?;
    Ok(format!(
        "
SSH: a throwaway sshd on 127.0.0.1:{host_port} lets in only the key Airlock holds, as {user}.
Connect as the agent (the key stands for subject demo-agent, group agents):

  export AIRLOCK_SSH=\"ssh -p {port} -i {agent_key} -o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts} demo-box@127.0.0.1\"
  $AIRLOCK_SSH 'uname -a; ls /tmp'
  $AIRLOCK_SSH 'cat {secrets}'

The access key and the database password come back masked. `$AIRLOCK_SSH 'rm -rf {scratch}'`
is held until an approver decides (denied: exit status 126); an interactive shell
(`$AIRLOCK_SSH`) waits for approval too.
",
        host_port = host.port,
        user = host.user,
        agent_key = agent_key.display(),
        known_hosts = known_hosts.display(),
        secrets = host.secrets.display(),
        scratch = scratch.display(),
    ))
}

fn demo_config(db_port: u16, api_port: u16, ports: Ports, ssh: Option<&(&host::DemoHost, String)>) -> String {
    let Ports { postgres: postgres_port, admin: admin_port, ssh: ssh_port, http: http_port } = ports;
    let ssh = match ssh {
        None => String::new(),
        Some((host, agent_key)) => format!(
            r#"
[[auth.ssh_keys]]
subject = "demo-agent"
groups = ["agents"]
key = "{agent_key}"

[[connections]]
name = "demo-box"
protocol = "ssh"
address = "127.0.0.1:{host_port}"
user = "{user}"
private_key = {{ file = "{client_key}" }}
host_key = "{host_key}"
allow_groups = ["agents"]
"#,
            host_port = host.port,
            user = host.user,
            client_key = host.client_key.display(),
            host_key = host.host_key,
        ),
    };
    format!(
        r#"# Written by `airlock demo`; see the README for every key.
data_dir = "."

[listen]
postgres = "127.0.0.1:{postgres_port}"
admin = "127.0.0.1:{admin_port}"
ssh = "127.0.0.1:{ssh_port}"
http = "127.0.0.1:{http_port}"

[approvals]
http_hold = "10s"

[auth]
dev_tokens = true
approver_groups = ["sre"]

[console]
auditor_groups = ["sre"]
{ssh}
[[connections]]
name = "demo-db"
protocol = "postgres"
address = "127.0.0.1:{db_port}"
database = "demo"
user = "app_rw"
password = {{ file = "demo-db.password" }}
allow_groups = ["agents"]
tls = "disable"

[[connections]]
name = "demo-api"
protocol = "http"
url = "http://127.0.0.1:{api_port}"
headers = {{ Authorization = {{ file = "demo-api.key", prefix = "Bearer " }} }}
allow_groups = ["agents"]

[[masking]]
connections = ["demo-api"]
keys = ["*token*"]
"#
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_written_for_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("airlock-demo-secret-{}", std::process::id()));
        std::fs::write(&path, "old").unwrap();
        super::write_secret(&path, "s3cret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode, std::fs::read_to_string(&path).unwrap()), (0o600, "s3cret".to_owned()));
        std::fs::remove_file(&path).unwrap();
    }
}
