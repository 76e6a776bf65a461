//! Real drivers through Airlock against a real PostgreSQL, with a `[[masking]]` column
//! rule on: each test runs one program from `tests/drivers/`, which exits non-zero with
//! a `WRONG: ...` line on the first wrong value and prints `ok` at the end.
//!
//! Runtimes (`.ci/run` installs them all; a missing one fails its test, naming it):
//! - pgjdbc and a JDK from Debian packages;
//! - Python packages in a venv: `AIRLOCK_DRIVERS_PYTHON` names its interpreter,
//!   default `target/drivers/venv/bin/python` under the workspace root;
//! - Node packages in a `node_modules` folder: `AIRLOCK_DRIVERS_NODE_PATH`, default
//!   `target/drivers/node/node_modules` under the workspace root, run by the `node`
//!   on `PATH`.
//!
//! A program learns where to connect from `DRV_*` variables (see `Target::env`). It
//! drops two tables the agent's policy holds, approving one and denying the other
//! through the admin API, and fails at once, naming the statement, when Airlock holds
//! anything else. With
//! `AIRLOCK_DRIVERS_DIRECT=1` the programs connect straight to the upstream cluster
//! instead of through Airlock (no masking, nothing held): what fails only through
//! Airlock is Airlock's fault, not the program's.
//!
//! Tests share the upstream database and run in parallel, so each driver owns its
//! fixtures under its own prefix (`<prefix>_people`, ...).
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Masks one column of every driver's people table; held statements wait long enough
/// for a loaded machine.
const CONFIG: &str = r#"
[approvals]
timeout = "60s"

[[masking]]
connections = ["app-db"]
columns = ["*.*_people.password_hash"]
"#;

/// Longest a driver program may run.
const DEADLINE: Duration = Duration::from_secs(120);

/// A driver's fixtures: people with a masked column, types to round-trip, a table for
/// COPY, two tables the program tries to drop (one approved, one denied).
fn fixtures(p: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {p}_people, {p}_items, {p}_held_a, {p}_held_b; \
         DROP TYPE IF EXISTS {p}_mood, {p}_pair; \
         CREATE TYPE {p}_mood AS ENUM ('sad', 'ok', 'happy'); \
         CREATE TYPE {p}_pair AS (n int, label text); \
         CREATE TABLE {p}_people (id int primary key, name text, password_hash text); \
         INSERT INTO {p}_people VALUES (1, 'alice', 'bcrypt-secret-alice'), (2, 'bob', 'bcrypt-secret-bob'); \
         CREATE TABLE {p}_items (id int, name text, amount numeric, at timestamptz, data bytea); \
         CREATE TABLE {p}_held_a (id int); \
         CREATE TABLE {p}_held_b (id int)"
    )
}

/// Where the programs connect.
enum Target {
    /// A test Airlock in front of the cluster.
    Airlock(Airlock),
    /// The cluster itself, as the role Airlock logs in as.
    Direct,
}

impl Target {
    /// A target with `prefix`'s fixtures in place.
    fn with_fixtures(prefix: &str) -> Target {
        let sql = fixtures(prefix);
        if std::env::var("AIRLOCK_DRIVERS_DIRECT").is_ok_and(|v| v == "1") {
            let conninfo = format!("host=127.0.0.1 port={} dbname=app user=app_rw sslmode=require", cluster().port);
            ok(&psql_cmd(&conninfo, APP_PASSWORD, &["-q", "-c", &sql], None));
            return Target::Direct;
        }
        let airlock = Airlock::start_with("", CONFIG);
        ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-q", "-c", &sql], None));
        Target::Airlock(airlock)
    }

    /// Everything a program needs to connect, as `DRV_*` variables.
    fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        let (through, port, dbname, user, password, ca, admin) = match self {
            Target::Airlock(a) => (
                "airlock",
                a.pg.port(),
                "app-db",
                "agent",
                token("agent-7", &["agents"]),
                a.dir.join("tls/server.crt"),
                format!("http://{}", a.admin),
            ),
            Target::Direct => (
                "direct",
                cluster().port,
                "app",
                "app_rw",
                APP_PASSWORD.to_owned(),
                cluster().dir.join("data/server.crt"),
                String::new(),
            ),
        };
        vec![
            ("DRV_THROUGH", through.to_owned()),
            ("DRV_HOST", "127.0.0.1".to_owned()),
            ("DRV_PORT", port.to_string()),
            ("DRV_DBNAME", dbname.to_owned()),
            ("DRV_USER", user.to_owned()),
            ("DRV_PASSWORD", password),
            ("DRV_CA", ca.display().to_string()),
            ("DRV_ADMIN", admin),
            ("DRV_APPROVER", token("oncall", &["sre"])),
            ("DRV_PREFIX", prefix.to_owned()),
        ]
    }

    /// Runs `cmd` against this target and fails the test unless it prints `ok` and
    /// exits 0 within the deadline.
    fn run(&self, prefix: &str, mut cmd: Command) {
        let started = Instant::now();
        cmd.envs(self.env(prefix)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let readers = [child.stdout.take().map(read_all), child.stderr.take().map(read_all)];
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let [stdout, stderr] = readers.map(|r| r.map(|h| h.join().unwrap()).unwrap_or_default());
        let through = if matches!(self, Target::Direct) { "directly" } else { "through Airlock" };
        eprintln!("{prefix} {through}: {:.1}s\n{stdout}{stderr}", started.elapsed().as_secs_f64());
        match status {
            Some(s) => assert!(s.success() && stdout.ends_with("ok\n"), "{prefix} {through}: {s}\n{stdout}{stderr}"),
            None => panic!("{prefix} {through}: still running after {DEADLINE:?}\n{stdout}{stderr}"),
        }
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = from.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn program(name: &str) -> PathBuf {
    root().join("tests/drivers").join(name)
}

/// The first of `candidates` that exists, or a failure naming what to install.
fn require(candidates: &[&str], install: &str) -> String {
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| panic!("missing {}: install {install}", candidates.join(" or ")))
}

/// What `.ci/run` does to make the Python drivers available.
const PYTHON_INSTALL: &str = "python3 -m venv target/drivers/venv && target/drivers/venv/bin/pip install \
    'psycopg[binary]>=3.2,<4' 'psycopg2-binary>=2.9,<3' 'asyncpg>=0.29,<1' 'SQLAlchemy[asyncio]>=2,<3' \
    (apt-get install python3-venv; or point AIRLOCK_DRIVERS_PYTHON at an interpreter that has them)";

/// What `.ci/run` does to make the Node drivers available.
const NODE_INSTALL: &str = "mkdir -p target/drivers/node && npm install --prefix target/drivers/node \
    pg@8 pg-copy-streams@7 postgres@3 (apt-get install nodejs npm; or point AIRLOCK_DRIVERS_NODE_PATH at a \
    node_modules folder that has them)";

/// A Python interpreter that can import `modules`, or a failure saying how to get one.
fn python(modules: &str) -> Command {
    let python = std::env::var("AIRLOCK_DRIVERS_PYTHON")
        .unwrap_or_else(|_| root().join("target/drivers/venv/bin/python").display().to_string());
    let check = Command::new(&python).args(["-c", &format!("import {modules}")]).output();
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{python} cannot import {modules} ({}); to install the drivers run {PYTHON_INSTALL}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("no Python at {python} ({e}); to install the drivers run {PYTHON_INSTALL}"),
    }
    let mut cmd = Command::new(python);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1").env("PYTHONUNBUFFERED", "1");
    cmd
}

/// `node` with a `NODE_PATH` that resolves `modules`, or a failure saying how to get them.
fn node(modules: &[&str]) -> Command {
    let path = std::env::var("AIRLOCK_DRIVERS_NODE_PATH")
        .unwrap_or_else(|_| root().join("target/drivers/node/node_modules").display().to_string());
    let requires: String = modules.iter().map(|m| format!("require({m:?});")).collect();
    let check = Command::new("node").args(["-e", &requires]).env("NODE_PATH", &path).output();
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "node cannot load {} from {path} ({}); to install the drivers run {NODE_INSTALL}",
            modules.join(", "),
            String::from_utf8_lossy(&out.stderr).lines().find(|l| l.starts_with("Error")).unwrap_or("")
        ),
        Err(e) => panic!("no node on PATH ({e}); to install it and the drivers run {NODE_INSTALL}"),
    }
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", path);
    cmd
}

#[test]
fn pgjdbc_prepare_threshold_batch_and_held_statements() {
    let java = require(&["/usr/bin/java"], "a JDK (apt-get install default-jdk-headless)");
    let jar = require(&["/usr/share/java/postgresql.jar"], "pgjdbc (apt-get install libpostgresql-jdbc-java)");
    let target = Target::with_fixtures("jdbc");
    let mut cmd = Command::new(java);
    cmd.args(["-cp", &jar]).arg(program("Jdbc.java"));
    target.run("jdbc", cmd);
}

#[test]
fn psycopg3_text_binary_pipeline_copy_and_cancel() {
    let mut cmd = python("psycopg");
    cmd.arg(program("py_psycopg3.py"));
    Target::with_fixtures("pg3").run("pg3", cmd);
}

#[test]
fn psycopg2_text_batches_copy_and_cancel() {
    let mut cmd = python("psycopg2");
    cmd.arg(program("py_psycopg2.py"));
    Target::with_fixtures("pg2").run("pg2", cmd);
}

#[test]
fn asyncpg_introspection_statement_cache_binary_copy_and_pool() {
    let mut cmd = python("asyncpg");
    cmd.arg(program("py_asyncpg.py"));
    Target::with_fixtures("apg").run("apg", cmd);
}

#[test]
fn sqlalchemy_pools_over_psycopg_psycopg2_and_asyncpg() {
    let mut cmd = python("sqlalchemy.ext.asyncio, psycopg, psycopg2, asyncpg");
    cmd.arg(program("py_sqlalchemy.py"));
    Target::with_fixtures("sa").run("sa", cmd);
}

#[test]
fn node_postgres_named_statements_copy_streams_and_pool() {
    let mut cmd = node(&["pg", "pg-copy-streams"]);
    cmd.arg(program("node_pg.cjs"));
    Target::with_fixtures("npg").run("npg", cmd);
}

#[test]
fn postgres_js_prepared_pipelined_copy_and_cancel() {
    let mut cmd = node(&["postgres"]);
    cmd.arg(program("node_postgres_js.cjs"));
    Target::with_fixtures("pjs").run("pjs", cmd);
}
