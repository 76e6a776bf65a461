//! Test harness: one throwaway PostgreSQL per test binary, one Airlock process per test,
//! both on ephemeral ports, and helpers to drive real clients against them.
#![allow(dead_code)]

pub mod http_api;
pub mod link;
pub mod sshd;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use airlock::demo::{ClusterOptions, PgCluster, RunAs, spawn_tied, tied_command};
use sha2::Digest;

/// Shared HS256 secret of every test Airlock.
pub const HS256_SECRET: &str = "test-hs256-secret-not-for-production";
/// Password of the upstream role Airlock logs in as.
pub const APP_PASSWORD: &str = "upstream-Pa55word-never-shown";
/// A configured API key.
pub const API_KEY: &str = "ak_test_0123456789abcdef";

/// The shared upstream cluster, with role `app_rw` owning database `app`.
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Roles for each upstream authentication method Airlock speaks; app_rw uses
        // the cluster default, SCRAM-SHA-256.
        let hba = [
            "host app md5_user 127.0.0.1/32 md5",
            "host app clear_user 127.0.0.1/32 password",
            "host app trust_user 127.0.0.1/32 trust",
        ];
        let options = ClusterOptions { ssl: true, hba: hba.map(String::from).to_vec(), ..Default::default() };
        let c = PgCluster::start(options).expect("start PostgreSQL");
        let setup = [
            ("postgres", format!("CREATE ROLE app_rw LOGIN PASSWORD '{APP_PASSWORD}'")),
            ("postgres", "CREATE DATABASE app OWNER app_rw".to_owned()),
            (
                "postgres",
                format!("SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD '{APP_PASSWORD}'"),
            ),
            ("postgres", format!("CREATE ROLE clear_user LOGIN PASSWORD '{APP_PASSWORD}'")),
            ("postgres", "CREATE ROLE trust_user LOGIN".to_owned()),
        ];
        for (db, sql) in setup {
            c.psql(db, &sql).unwrap();
        }
        c
    })
}

/// Groups of a test agent that may also create and drop its fixtures.
pub const FIXTURES: &[&str] = &["agents", "fixtures"];

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    airlock::demo::free_port().unwrap()
}

/// A running Airlock.
pub struct Airlock {
    child: Child,
    /// Postgres endpoint.
    pub pg: SocketAddr,
    /// Admin endpoint.
    pub admin: SocketAddr,
    /// SSH endpoint, when an SSH connection is configured.
    pub ssh: Option<SocketAddr>,
    /// HTTP endpoint, when an HTTP connection is configured.
    pub http: Option<SocketAddr>,
    /// Its data directory (config, log).
    pub dir: PathBuf,
}

static N: AtomicU32 = AtomicU32::new(0);

/// The standard test config; `extra` is appended (more `[[connections]]` etc.).
pub fn config(dir: &std::path::Path, settings: &str, extra: &str) -> String {
    let port = cluster().port;
    let ca = cluster().dir.join("data/server.crt");
    let key_hash = hex::encode(sha2::Sha256::digest(API_KEY.as_bytes()));
    let down = closed_port();
    // `settings` may override the defaults below: a later duplicate key would be an error.
    let mut settings = settings.to_owned();
    if !settings.contains("handshake_timeout") {
        settings.push_str("\nhandshake_timeout = \"5s\"");
    }
    format!(
        r#"
data_dir = "{dir}"

[listen]
postgres = "127.0.0.1:0"
admin = "127.0.0.1:0"
ssh = "127.0.0.1:0"
http = "127.0.0.1:0"

[limits]
shutdown_grace = "10s"
{settings}

[postgres]
allow_plaintext_loopback = true

[auth]
hs256_secret = "{HS256_SECRET}"
approver_groups = ["sre"]

[[auth.api_keys]]
subject = "ci-bot"
groups = ["agents"]
sha256 = "{key_hash}"

[[connections]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "app"
user = "app_rw"
password = {{ env = "AIRLOCK_TEST_APP_PASSWORD" }}
allow_groups = ["agents"]
tls = "verify-full"
ca_file = "{ca}"

[[connections]]
name = "ops-db"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "app"
user = "app_rw"
password = {{ env = "AIRLOCK_TEST_APP_PASSWORD" }}
allow_groups = ["ops"]
tls = "disable"

[[connections]]
name = "down-db"
protocol = "postgres"
address = "127.0.0.1:{down}"
database = "app"
user = "app_rw"
allow_groups = ["agents"]

# Tests that set up tables use tokens with this group; the policy tests use others.
[[rules]]
name = "test-fixtures"
groups = ["fixtures"]
action = "allow"
max_rows = "unlimited"
{extra}
"#,
        dir = dir.display(),
        ca = ca.display(),
    )
}

impl Airlock {
    /// Starts Airlock with the standard config.
    pub fn start() -> Airlock {
        Self::start_with("", "")
    }

    /// Starts Airlock with `[limits]` additions and extra config.
    pub fn start_with(limits: &str, extra: &str) -> Airlock {
        let dir = std::env::temp_dir().join(format!(
            "airlock-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("airlock.toml");
        std::fs::write(&path, config(&dir, limits, extra)).unwrap();
        Self::start_config(dir, path)
    }

    /// Starts Airlock on an existing config file.
    pub fn start_config(dir: PathBuf, config: PathBuf) -> Airlock {
        Self::start_logged(dir, config, "debug,rustls=info")
    }

    /// Starts Airlock on an existing config file, logging at `rust_log`.
    pub fn start_logged(dir: PathBuf, config: PathBuf, rust_log: &str) -> Airlock {
        let mut cmd = tied_command(env!("CARGO_BIN_EXE_airlock"), RunAs::Me, "KILL");
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", rust_log)
            .env("AIRLOCK_TEST_APP_PASSWORD", APP_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("airlock.log")).unwrap());
        let mut child = spawn_tied(cmd).expect("spawn airlock");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let text = std::fs::read_to_string(&config).unwrap_or_default();
        let wants_ssh = text.contains("protocol = \"ssh\"");
        let wants_http = text.contains("protocol = \"http\"");
        let (mut pg, mut admin, mut ssh, mut http) = (None, None, None, None);
        while pg.is_none() || admin.is_none() || (wants_ssh && ssh.is_none()) || (wants_http && http.is_none()) {
            let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
                panic!(
                    "airlock did not start: {}",
                    std::fs::read_to_string(dir.join("airlock.log")).unwrap_or_default()
                )
            });
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some("listening"), Some("postgres"), Some(a)) => pg = a.parse().ok(),
                (Some("listening"), Some("admin"), Some(a)) => admin = a.parse().ok(),
                (Some("listening"), Some("ssh"), Some(a)) => ssh = a.parse().ok(),
                (Some("listening"), Some("http"), Some(a)) => http = a.parse().ok(),
                _ => {}
            }
        }
        Airlock { child, pg: pg.unwrap(), admin: admin.unwrap(), ssh, http, dir }
    }

    /// Airlock's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("airlock.log")).unwrap_or_default()
    }

    /// libpq connection string for `dbname`.
    pub fn conninfo(&self, dbname: &str, sslmode: &str) -> String {
        format!("host=127.0.0.1 port={} dbname={dbname} user=agent sslmode={sslmode}", self.pg.port())
    }

    /// Runs `psql` against Airlock with `token` as the password.
    pub fn psql(&self, token: &str, dbname: &str, args: &[&str], stdin: Option<&str>) -> Output {
        psql_cmd(&self.conninfo(dbname, "require"), token, args, stdin)
    }

    /// A tokio-postgres config for `dbname` (plaintext: allowed on loopback by the test config).
    pub fn pg_config(&self, token: &str, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1").port(self.pg.port()).user("agent").dbname(dbname).password(token);
        c.connect_timeout(Duration::from_secs(10));
        c
    }

    /// Connects with tokio-postgres and drives the connection in the background.
    pub async fn connect(&self, token: &str, dbname: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self.pg_config(token, dbname).connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a new Airlock on the same config and data directory (after this one died).
    pub fn restart(mut self) -> Airlock {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = self.dir.clone();
        // The old handle must not delete the directory the new one uses.
        self.dir = PathBuf::new();
        std::fs::rename(dir.join("airlock.log"), dir.join("airlock.log.1")).unwrap();
        Airlock::start_config(dir.clone(), dir.join("airlock.toml"))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Airlock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.dir.as_os_str().is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("--- airlock log ({}) ---\n{}", self.dir.display(), self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the cluster's `psql` with a connection string and password.
pub fn psql_cmd(conninfo: &str, password: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(cluster().bin_dir().join("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Text of stdout, asserting success.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A token for `sub` in `groups`, valid for `ttl_secs` (negative: already expired).
pub fn token(sub: &str, groups: &[&str]) -> String {
    token_with(sub, groups, 3600, "airlock")
}

/// A token with explicit lifetime and audience.
pub fn token_with(sub: &str, groups: &[&str], ttl_secs: i64, audience: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = serde_json::json!({
        "iss": "airlock", "aud": audience, "sub": sub, "groups": groups,
        "iat": now, "exp": now + ttl_secs,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The SQLSTATE of a connection or query error.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.code().code().to_owned()).unwrap_or_else(|| format!("no db error: {e}"))
}

/// Runs one simple-protocol session over a raw socket: authenticate with `token`, run
/// `sql`, send Terminate, then wait for the server to close the connection. Returns
/// the messages received as `(tag, body)`; an error if anything came after Terminate.
pub async fn raw_session(addr: SocketAddr, token: &str, sql: &str) -> std::io::Result<Vec<(u8, Vec<u8>)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }
    async fn read(s: &mut tokio::net::TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0; len.saturating_sub(4)];
        s.read_exact(&mut body).await?;
        Ok((head[0], body))
    }
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(&airlock_postgres::startup::encode_startup([("user", "agent"), ("database", "app-db")])).await?;
    read(&mut s).await?;
    let mut pw = token.as_bytes().to_vec();
    pw.push(0);
    s.write_all(&msg(b'p', &pw)).await?;
    let mut received = Vec::new();
    for round in 0..2 {
        loop {
            let m = read(&mut s).await?;
            let (tag, done) = (m.0, m.0 == b'Z');
            received.push(m);
            if tag == b'E' && round == 0 {
                return Err(std::io::Error::other("refused"));
            }
            if done {
                break;
            }
        }
        if round == 0 {
            let mut q = sql.as_bytes().to_vec();
            q.push(0);
            s.write_all(&msg(b'Q', &q)).await?;
        }
    }
    s.write_all(&msg(b'X', b"")).await?;
    // Anything after Terminate is an error: the session did not end cleanly.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(std::io::Error::other(format!("ended with {:?}", String::from_utf8_lossy(&rest))));
    }
    Ok(received)
}

/// A plain HTTP GET, returning the whole response (head and body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Every recorded session of `subject`, as JSON lines.
pub fn recorded(airlock: &Airlock, subject: &str) -> String {
    let list = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["sessions", "--json", "--subject", subject, "--data-dir"])
        .arg(&airlock.dir)
        .output()
        .unwrap();
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&ok(&list)).unwrap();
    assert!(!sessions.is_empty());
    let mut all = String::new();
    for s in sessions {
        let replay = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["replay", s["id"].as_str().unwrap(), "--format", "jsonl", "--data-dir"])
            .arg(&airlock.dir)
            .output()
            .unwrap();
        all.push_str(&ok(&replay));
    }
    all
}

/// Runs the `airlock` CLI against this Airlock's admin API as an approver.
pub fn cli(airlock: &Airlock, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .args(["--admin", &format!("http://{}", airlock.admin)])
        .env("AIRLOCK_TOKEN", token("oncall", &["sre"]))
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .unwrap()
}

/// Resident memory of process `pid`, KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs an offline `airlock` command (`sessions`, `replay`, `verify`) on this Airlock's
/// config.
pub fn local_cli(airlock: &Airlock, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .arg("--config")
        .arg(airlock.dir.join("airlock.toml"))
        .output()
        .unwrap()
}

/// The recorded sessions, as `sessions --json` lists them.
pub fn sessions(airlock: &Airlock) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(&local_cli(airlock, &["sessions", "--json"]))).unwrap()
}

/// Waits until `n` approvals are pending and returns them.
pub fn pending(airlock: &Airlock, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Vec<serde_json::Value> = serde_json::from_str(&ok(&cli(airlock, &["approvals", "--json"]))).unwrap();
        if list.len() == n {
            return list;
        }
        assert!(Instant::now() < deadline, "expected {n} pending approvals, have {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Python interpreter `.ci/peers` installs the drivers into (or
/// `AIRLOCK_DRIVERS_PYTHON`), checked to import `modules`.
pub fn drivers_python(modules: &str) -> String {
    let python = std::env::var("AIRLOCK_DRIVERS_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/drivers/venv/bin/python").to_owned());
    let check = Command::new(&python).args(["-c", &format!("import {modules}")]).output();
    match check {
        Ok(out) if out.status.success() => python,
        _ => {
            panic!("{python} cannot import {modules}: run .ci/peers (or point AIRLOCK_DRIVERS_PYTHON at one that can)")
        }
    }
}

/// The `node_modules` folder `.ci/peers` installs into (or `AIRLOCK_DRIVERS_NODE_PATH`),
/// checked to hold `module`.
pub fn drivers_node_path(module: &str) -> PathBuf {
    let path = std::env::var("AIRLOCK_DRIVERS_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/drivers/node/node_modules")));
    assert!(path.join(module).exists(), "{} has no {module}: run .ci/peers", path.display());
    path
}

/// A small tmpfs for a data dir, to fill: mounted by root, unmounted (and removed)
/// when dropped.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    /// Mounts one of `size` (`4m`); `None`, with a message saying why the test is
    /// skipped, where this user or machine cannot mount.
    pub fn mount(name: &str, size: &str) -> Option<SmallDisk> {
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
        if !root {
            eprintln!("skipped: mounting a small tmpfs for the recordings needs root");
            return None;
        }
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let options = format!("size={size}");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&path).status();
        if !mounted.is_ok_and(|s| s.success()) {
            eprintln!("skipped: this machine does not let root mount a tmpfs");
            let _ = std::fs::remove_dir_all(&path);
            return None;
        }
        Some(SmallDisk { path })
    }

    /// Makes room: the disk becomes `size`.
    pub fn grow(&self, size: &str) {
        let options = format!("remount,size={size}");
        let grown = Command::new("mount").args(["-o", &options]).arg(&self.path).status().unwrap();
        assert!(grown.success(), "remounting the tmpfs failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
