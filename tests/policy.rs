//! `airlock explain`: users dry-run their policy.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const CONFIG: &str = r#"
[auth]
dev_tokens = true

[[connections]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app_rw"
allow_groups = ["agents", "ops"]

[[masking]]
columns = ["*.users.email", "public.*.password*"]
style = "hash"

[[rules]]
name = "ops-ddl"
groups = ["ops"]
classes = ["ddl"]
action = "allow"

[[rules]]
name = "never-drop-users"
statement = "^drop table (if exists )?users"
action = "deny"
message = "the users table stays"
"#;

fn explain(dir: &std::path::Path, groups: &str, sql: &str) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["explain", "--connection", "app-db", "--groups", groups, "--config"])
        .arg(dir.join("airlock.toml"))
        .arg(sql)
        .output()
        .unwrap();
    (out.status.success(), serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null))
}

#[test]
fn explain_prints_each_statements_decision() {
    let dir = std::env::temp_dir().join(format!("airlock-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("airlock.toml"), CONFIG).unwrap();

    let (ok, v) = explain(&dir, "agents", "SELECT 'drop table users'; DROP TABLE users; DELETE FROM t");
    assert!(ok);
    assert_eq!(v["decision"], "deny");
    let s = v["statements"].as_array().unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!((s[0]["decision"].as_str(), s[0]["classes"].clone()), (Some("allow"), serde_json::json!(["read"])));
    assert_eq!((s[1]["decision"].as_str(), s[1]["rule"].as_str()), (Some("deny"), Some("never-drop-users")));
    assert_eq!(s[1]["message"], "the users table stays");
    assert_eq!((s[2]["decision"].as_str(), s[2]["rule"].as_str()), (Some("approve"), Some("default")));
    assert_eq!(s[2]["classes"], serde_json::json!(["write", "destructive"]));

    let (_, v) = explain(&dir, "ops", "CREATE INDEX i ON t (x)");
    assert_eq!((v["decision"].as_str(), v["statements"][0]["rule"].as_str()), (Some("allow"), Some("ops-ddl")));
    let (_, v) = explain(&dir, "agents", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
    assert_eq!(v["decision"], "approve");

    // Masked result columns, where the query alone tells.
    let (_, v) = explain(
        &dir,
        "agents",
        "SELECT id, u.email AS contact FROM users u WHERE id = 1; SELECT * FROM app.users; SELECT a.x FROM users a JOIN t ON true",
    );
    let s = v["statements"].as_array().unwrap();
    assert_eq!(
        s[0]["masked_by_column_rules"],
        serde_json::json!([{"column": "contact", "source": "public.users.email", "rule": "*.users.email", "style": "hash"}])
    );
    assert_eq!(s[1]["masked_by_column_rules"][0]["source"], "app.users.email");
    assert_eq!(s[2]["masked_by_column_rules"], serde_json::Value::Null, "a join needs the catalog");
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- Enforcement, against a real PostgreSQL, psql, tokio-postgres and the CLI ----

mod support;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Approvals wait long enough for any test machine, unless a test wants a timeout;
/// privilege changes are refused outright.
const APPROVALS: &str = r#"
[approvals]
timeout = "60s"

[[rules]]
name = "no-privilege-changes"
classes = ["privilege"]
action = "deny"
message = "privilege changes are never made by agents"
"#;

fn sre() -> String {
    token("oncall", &["sre"])
}

fn agent() -> String {
    token("agent-7", &["agents"])
}

/// Runs the `airlock` CLI against this Airlock's admin API.
fn cli(airlock: &Airlock, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .args(["--admin", &format!("http://{}", airlock.admin)])
        .env("AIRLOCK_TOKEN", token)
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .unwrap()
}

/// psql running `sql` in the background.
fn psql_background(airlock: &Airlock, token: &str, sql: &str) -> Child {
    Command::new(cluster().bin_dir().join("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &airlock.conninfo("app-db", "require"), "-c", sql])
        .env("PGPASSWORD", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `n` approvals are pending and returns them.
fn pending(airlock: &Airlock, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cli(airlock, &sre(), &["approvals", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&ok(&out)).unwrap();
        if list.len() == n {
            return list;
        }
        assert!(Instant::now() < deadline, "expected {n} pending approvals, have {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn upstream(sql: &str) -> String {
    cluster().psql("app", sql).unwrap().trim().to_owned()
}

fn exists(table: &str) -> bool {
    upstream(&format!("SELECT to_regclass('{table}') IS NOT NULL")) == "t"
}

fn fixture(airlock: &Airlock, sql: &str) {
    ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-c", sql], None));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_held_drop_runs_once_approved_through_the_cli() {
    let airlock = Airlock::start_with("", APPROVALS);
    fixture(&airlock, "DROP TABLE IF EXISTS pol_approved; CREATE TABLE pol_approved (id int)");
    let waiting = psql_background(&airlock, &agent(), "DROP TABLE pol_approved");
    let list = pending(&airlock, 1);
    let a = &list[0];
    assert_eq!(a["subject"], "agent-7");
    assert_eq!(a["connection"], "app-db");
    assert_eq!(a["statement"], "DROP TABLE pol_approved");
    assert_eq!(a["classes"], serde_json::json!(["ddl", "destructive"]));
    assert!(a["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(exists("pol_approved"), "nothing runs while held");
    // The table view names it too.
    let id = a["id"].as_str().unwrap();
    assert!(ok(&cli(&airlock, &sre(), &["approvals"])).contains(id));

    // The agent cannot approve its own request, even as an approver; a non-approver
    // cannot approve at all.
    let own = token("agent-7", &["agents", "sre"]);
    let out = cli(&airlock, &own, &["approve", id]);
    assert!(!out.status.success() && stderr(&out).contains("own request"), "{}", stderr(&out));
    let out = cli(&airlock, &agent(), &["approve", id]);
    assert!(!out.status.success() && stderr(&out).contains("not in an approver group"), "{}", stderr(&out));
    let out = cli(&airlock, "not-a-token", &["approvals"]);
    assert!(!out.status.success() && stderr(&out).contains("401"), "{}", stderr(&out));

    assert!(ok(&cli(&airlock, &sre(), &["approve", id])).contains("approved"));
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("holding this statement for approval (id {id})")), "{}", stderr(&out));
    assert!(!exists("pol_approved"));
    assert!(pending(&airlock, 0).is_empty());
    // Deciding twice is an error.
    let out = cli(&airlock, &sre(), &["deny", id, "--reason", "late"]);
    assert!(!out.status.success() && stderr(&out).contains("no pending approval"));

    // The recording tells the story.
    let replay = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["sessions", "--json", "--subject", "agent-7", "--data-dir"])
        .arg(&airlock.dir)
        .output()
        .unwrap();
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&ok(&replay)).unwrap();
    let session = sessions[0]["id"].as_str().unwrap();
    let replay = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["replay", session, "--data-dir"])
        .arg(&airlock.dir)
        .output()
        .unwrap();
    let text = ok(&replay);
    assert!(text.contains(&format!("POLICY held [{id}]")), "{text}");
    assert!(text.contains(&format!("POLICY approved [{id}] by oncall")), "{text}");
}

#[test]
fn denied_timed_out_and_multi_statement_requests_run_nothing() {
    let airlock = Airlock::start_with("", APPROVALS);
    fixture(&airlock, "DROP TABLE IF EXISTS pol_kept; CREATE TABLE pol_kept (id int)");

    // Denied: the agent sees the reason, the table stays, the session goes on.
    let waiting = psql_background(&airlock, &agent(), "DROP TABLE pol_kept");
    let id = pending(&airlock, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&airlock, &sre(), &["deny", &id, "--reason", "we still need it"]));
    let out = waiting.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("approval {id} was denied by oncall: we still need it")),
        "{}",
        stderr(&out)
    );
    assert!(exists("pol_kept"));

    // Several statements, one dangerous: none runs before the decision, none after a denial.
    let waiting = psql_background(&airlock, &agent(), "INSERT INTO pol_kept VALUES (1); DROP TABLE pol_kept");
    let list = pending(&airlock, 1);
    assert_eq!(upstream("SELECT count(*) FROM pol_kept"), "0");
    let id = list[0]["id"].as_str().unwrap();
    ok(&cli(&airlock, &sre(), &["deny", id, "--reason", "no"]));
    assert!(!waiting.wait_with_output().unwrap().status.success());
    assert_eq!(upstream("SELECT count(*) FROM pol_kept"), "0");

    // The same session: refused statements leave it usable, in and out of a transaction.
    let out = airlock.psql(
        &agent(),
        "app-db",
        &["-v", "ON_ERROR_STOP=0", "-At"],
        Some("GRANT ALL ON pol_kept TO PUBLIC;\nSELECT 'after';\nBEGIN;\nINSERT INTO pol_kept VALUES (2);\nREVOKE ALL ON pol_kept FROM PUBLIC;\nCOMMIT;\n"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("after"), "{text}");
    assert!(stderr(&out).contains("privilege changes are never made by agents"), "{}", stderr(&out));
    // Both the GRANT and the REVOKE were refused.
    assert_eq!(stderr(&out).matches("ERROR:  Airlock policy denies this statement").count(), 2, "{}", stderr(&out));
    assert_eq!(upstream("SELECT count(*) FROM pol_kept"), "1", "the transaction went on and committed");
    drop(airlock);

    // Nobody decides: the statement is refused after approvals.timeout.
    let airlock = Airlock::start_with("", "\n[approvals]\ntimeout = \"1s\"\n");
    let out = airlock.psql(&agent(), "app-db", &["-c", "DROP TABLE pol_kept"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timed out: no approver decided in time"), "{}", stderr(&out));
    assert!(exists("pol_kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_clients_are_held_refused_and_stay_consistent() {
    let airlock = std::sync::Arc::new(Airlock::start_with("", APPROVALS));
    fixture(&airlock, "DROP TABLE IF EXISTS pol_ext; CREATE TABLE pol_ext (id int primary key, v text)");
    let client = airlock.connect(&agent(), "app-db").await.unwrap();

    // Preparing a dangerous statement is harmless; executing it is held, every time.
    let drop_stmt = client.prepare("DELETE FROM pol_ext").await.unwrap();
    let insert = client.prepare("INSERT INTO pol_ext VALUES ($1, $2)").await.unwrap();
    client.execute(&insert, &[&1i32, &"one"]).await.unwrap();
    let held = {
        let client_fut = client.execute(&drop_stmt, &[]);
        let a = airlock.clone();
        let decide = tokio::task::spawn_blocking(move || {
            let id = pending(&a, 1)[0]["id"].as_str().unwrap().to_owned();
            ok(&cli(&a, &sre(), &["deny", &id, "--reason", "keep the rows"]));
        });
        let (r, d) = tokio::join!(client_fut, decide);
        d.unwrap();
        r
    };
    let err = held.unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(db.message().contains("keep the rows"), "{}", db.message());

    // A pipeline with a refused statement in the middle: what came before ran, the
    // refused one did not, and the client gets every answer in order.
    let (a, b, c) = tokio::join!(
        client.execute(&insert, &[&2i32, &"two"]),
        client.execute("GRANT ALL ON pol_ext TO PUBLIC", &[]),
        client.query_one("SELECT count(*) FROM pol_ext", &[]),
    );
    assert_eq!(a.unwrap(), 1);
    assert_eq!(b.unwrap_err().code().unwrap().code(), "42501");
    assert_eq!(c.unwrap().get::<_, i64>(0), 2);

    // Approved with a grant: the next run of the same statement needs nobody.
    let approve = {
        let a = airlock.clone();
        tokio::task::spawn_blocking(move || {
            let id = pending(&a, 1)[0]["id"].as_str().unwrap().to_owned();
            ok(&cli(&a, &sre(), &["approve", &id, "--for", "10m"]));
        })
    };
    let (r, d) = tokio::join!(client.execute(&drop_stmt, &[]), approve);
    d.unwrap();
    assert_eq!(r.unwrap(), 2);
    client.execute(&insert, &[&3i32, &"three"]).await.unwrap();
    assert_eq!(client.execute(&drop_stmt, &[]).await.unwrap(), 1, "granted: runs at once");
    assert_eq!(client.execute("DELETE FROM pol_ext", &[]).await.unwrap(), 0, "same fingerprint, new statement");

    // A cancel gives up the wait.
    let cancel = client.cancel_token();
    let a = airlock.clone();
    let canceller = tokio::spawn(async move {
        // Once the statement is held, not before.
        tokio::task::spawn_blocking(move || pending(&a, 1)).await.unwrap();
        cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let err = client.batch_execute("TRUNCATE pol_ext").await.unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.code().unwrap().code(), "57014");
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    let a = airlock.clone();
    assert!(tokio::task::spawn_blocking(move || pending(&a, 0)).await.unwrap().is_empty(), "withdrawn");
}

/// A read-only connection: the database itself refuses writes, even ones Airlock lets
/// through or cannot see (a function that deletes), and the ways to lift the guard are
/// held.
#[test]
fn read_only_connections_are_enforced_by_the_database() {
    let port = cluster().port;
    let extra = format!(
        r#"
[[connections]]
name = "ro-db"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "app"
user = "app_rw"
password = {{ env = "AIRLOCK_TEST_APP_PASSWORD" }}
allow_groups = ["agents", "fixtures"]
tls = "disable"
read_only = true

[approvals]
timeout = "1s"
"#
    );
    let airlock = Airlock::start_with("", &extra);
    fixture(
        &airlock,
        "DROP TABLE IF EXISTS ro_t CASCADE; CREATE TABLE ro_t (id int primary key); \
         INSERT INTO ro_t SELECT generate_series(1, 10); \
         CREATE OR REPLACE FUNCTION ro_del() RETURNS int LANGUAGE sql AS 'DELETE FROM ro_t; SELECT 1'",
    );
    let run = |token: &str, sql: &str| airlock.psql(token, "ro-db", &["-v", "ON_ERROR_STOP=0", "-At", "-c", sql], None);
    // Allowed by policy (the fixtures rule allows everything), refused by PostgreSQL.
    for sql in ["DELETE FROM ro_t WHERE id = 1", "SELECT ro_del()", "RESET ALL; DELETE FROM ro_t WHERE id = 2"] {
        let out = run(&token("setup", FIXTURES), sql);
        assert!(stderr(&out).contains("cannot execute DELETE in a read-only transaction"), "{sql}: {}", stderr(&out));
    }
    // Lifting the guard is privilege: held, and nobody approves.
    for sql in [
        "SET default_transaction_read_only = off; DELETE FROM ro_t WHERE id = 3",
        "BEGIN READ WRITE; DELETE FROM ro_t WHERE id = 3; COMMIT",
        "SELECT set_config('transaction_read_only', 'off', false); DELETE FROM ro_t WHERE id = 3",
    ] {
        let out = run(&agent(), sql);
        assert!(stderr(&out).contains("no approver decided in time"), "{sql}: {}", stderr(&out));
    }
    assert_eq!(upstream("SELECT count(*) FROM ro_t"), "10");
    // Reads work as usual.
    assert_eq!(ok(&run(&agent(), "SELECT count(*) FROM ro_t")), "10\n");
}

/// Code of the database's own that a read would run, through a view, an operator, a
/// domain's check or a cast: the statement is held, and the function never runs.
#[test]
fn reads_that_would_run_the_databases_own_code_are_held() {
    let airlock = Airlock::start_with("", "[approvals]\ntimeout = \"1s\"\n");
    fixture(
        &airlock,
        "DROP TABLE IF EXISTS hid_victim CASCADE; DROP DOMAIN IF EXISTS hid_dom CASCADE; \
         DROP OPERATOR IF EXISTS <%> (int, int); DROP FUNCTION IF EXISTS hid_del(int, int), hid_chk(int) CASCADE; \
         CREATE TABLE hid_victim (id int); INSERT INTO hid_victim SELECT generate_series(1, 100); \
         CREATE FUNCTION hid_del(int, int) RETURNS bool LANGUAGE sql AS 'DELETE FROM hid_victim; SELECT true'; \
         CREATE FUNCTION hid_chk(int) RETURNS bool LANGUAGE sql AS 'DELETE FROM hid_victim; SELECT true'; \
         CREATE OPERATOR <%> (LEFTARG = int, RIGHTARG = int, FUNCTION = hid_del); \
         CREATE DOMAIN hid_dom AS int CHECK (hid_chk(VALUE)); \
         CREATE VIEW hid_view_fn AS SELECT hid_del(1, 2) AS x; \
         CREATE VIEW hid_view_op AS SELECT 1 <%> 2 AS x; \
         CREATE VIEW hid_view_of_view AS SELECT * FROM hid_view_op",
    );
    let held = [
        "SELECT * FROM hid_view_fn",
        "SELECT * FROM hid_view_op",
        "SELECT * FROM hid_view_of_view",
        "SELECT 1 <%> 2",
        "SELECT 1::hid_dom",
        "SELECT query_to_xml('select * from hid_view_fn', true, true, '')",
    ];
    for sql in held {
        let out = airlock.psql(&agent(), "app-db", &["-v", "ON_ERROR_STOP=0", "-At", "-c", sql], None);
        assert!(stderr(&out).contains("no approver decided in time"), "{sql}: {}", stderr(&out));
        assert_eq!(upstream("SELECT count(*) FROM hid_victim"), "100", "{sql} ran the function");
    }
    // Reading the table itself is a plain read.
    let out = airlock.psql(&agent(), "app-db", &["-At", "-c", "SELECT count(*) FROM hid_victim"], None);
    assert_eq!(ok(&out), "100\n");
}

/// A connection `guarded-db` with `max_rows = 10`, and `approvals` config.
fn guarded_config(approvals: &str) -> String {
    let port = cluster().port;
    format!(
        r#"
[[connections]]
name = "guarded-db"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "app"
user = "app_rw"
password = {{ env = "AIRLOCK_TEST_APP_PASSWORD" }}
allow_groups = ["agents", "fixtures", "sre"]
tls = "disable"
max_rows = 10
{approvals}"#
    )
}

/// The rows-affected guard: a DELETE or UPDATE that does not pin its rows runs, is
/// counted by the database, and stands only within `max_rows`; over it, it is rolled
/// back and held, inside the agent's transaction or outside one.
#[test]
fn bulk_changes_stand_within_max_rows_and_are_held_over_it() {
    let airlock = Airlock::start_with("", &guarded_config("[approvals]\ntimeout = \"1s\"\n"));
    fixture(
        &airlock,
        "DROP TABLE IF EXISTS guard_t; CREATE TABLE guard_t (id int primary key, v text); \
         INSERT INTO guard_t SELECT g, 'row ' || g FROM generate_series(1, 100) g",
    );
    let count = || upstream("SELECT count(*) FROM guard_t");
    let run = |sql: &str| {
        airlock.psql(&agent(), "guarded-db", &["-X", "-q", "-v", "ON_ERROR_STOP=0", "-At", "-c", sql], None)
    };
    // Within the limit: it stands, and the agent sees its answer as the server gave it.
    let out = run("DELETE FROM guard_t WHERE id > 95");
    assert_eq!(ok(&out), "", "{}", stderr(&out));
    assert_eq!(count(), "95");
    let out = run("UPDATE guard_t SET v = 'x' WHERE id > 85 RETURNING id");
    assert_eq!(ok(&out), "86\n87\n88\n89\n90\n91\n92\n93\n94\n95\n");
    // Over it, however the WHERE is written: rolled back, held, and nobody approves.
    for sql in [
        "DELETE FROM guard_t WHERE id > 50",
        "DELETE FROM guard_t WHERE true",
        "UPDATE guard_t SET v = 'y' WHERE id = id",
    ] {
        let out = run(sql);
        let err = stderr(&out);
        assert!(err.contains("holding this statement") && err.contains("more than the 10 allowed"), "{sql}: {err}");
        assert!(err.contains("no approver decided in time"), "{sql}: {err}");
    }
    assert_eq!(count(), "95");
    assert_eq!(upstream("SELECT count(*) FROM guard_t WHERE v <> 'x' AND id <= 85"), "85");
    // Inside the agent's transaction: only the held statement is undone, the rest commits.
    let out = airlock.psql(
        &agent(),
        "guarded-db",
        &["-X", "-q", "-v", "ON_ERROR_STOP=0", "-At"],
        Some("BEGIN;\nDELETE FROM guard_t WHERE id > 93;\nDELETE FROM guard_t WHERE id > 0;\nSELECT count(*) FROM guard_t;\nCOMMIT;\n"),
    );
    assert_eq!(ok(&out), "93\n", "{}", stderr(&out));
    assert_eq!(count(), "93");
    // Rows a foreign key cascades to are counted too (the server's own count of what the
    // transaction changed), even when the statement pins one row.
    fixture(
        &airlock,
        "DROP TABLE IF EXISTS guard_child, guard_parent; CREATE TABLE guard_parent (id int PRIMARY KEY); \
         INSERT INTO guard_parent VALUES (1), (2); \
         CREATE TABLE guard_child (id serial PRIMARY KEY, pid int REFERENCES guard_parent ON DELETE CASCADE); \
         INSERT INTO guard_child (pid) SELECT 1 FROM generate_series(1, 20); INSERT INTO guard_child (pid) VALUES (2), (2)",
    );
    let out = run("DELETE FROM guard_parent WHERE id = 1");
    assert!(stderr(&out).contains("it would change 21 rows"), "{}", stderr(&out));
    assert_eq!(upstream("SELECT count(*) FROM guard_child"), "22");
    let out = run("DELETE FROM guard_parent WHERE id = 2");
    assert_eq!(ok(&out), "", "{}", stderr(&out));
    assert_eq!(upstream("SELECT count(*) FROM guard_child"), "20");
    // A failing bulk statement fails as it would without Airlock: outside a
    // transaction the session goes on, inside one the transaction is aborted.
    let out = run("DELETE FROM guard_t WHERE 1 / (id - id) > 0");
    assert!(stderr(&out).contains("division by zero"), "{}", stderr(&out));
    let out = airlock.psql(
        &agent(),
        "guarded-db",
        &["-X", "-q", "-v", "ON_ERROR_STOP=0", "-At"],
        Some("BEGIN;\nDELETE FROM guard_t WHERE 1 / (id - id) > 0;\nSELECT 1;\nROLLBACK;\nSELECT 2;\n"),
    );
    let err = stderr(&out);
    assert!(err.contains("division by zero") && err.contains("current transaction is aborted"), "{err}");
    assert_eq!(ok(&out), "2\n");
    assert_eq!(count(), "93");
    // Approved, it runs.
    let airlock = Airlock::start_with("", &guarded_config(APPROVALS));
    let waiting = Command::new(cluster().bin_dir().join("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &airlock.conninfo("guarded-db", "require"), "-c"])
        .arg("DELETE FROM guard_t WHERE id > 20")
        .env("PGPASSWORD", agent())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let list = pending(&airlock, 1);
    assert_eq!(list[0]["statement"], "DELETE FROM guard_t WHERE id > 20");
    assert!(list[0]["reason"].as_str().unwrap().contains("it would change 73 rows"), "{list:?}");
    assert_eq!(count(), "93", "rolled back while it waits");
    assert!(ok(&cli(&airlock, &sre(), &["approve", list[0]["id"].as_str().unwrap()])).contains("approved"));
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(), "20");
    // The recording holds the agent's statements and what the guard counted, not the
    // guard's own transaction control.
    let recorded = recorded(&airlock, "agent-7");
    assert!(recorded.contains("DELETE FROM guard_t WHERE id > 20") && recorded.contains("\"counted\""), "{recorded}");
    assert!(!recorded.contains("airlock:") && !recorded.contains("airlock_rows"), "{recorded}");
}

/// The rows-affected guard in the extended protocol: the Execute runs once, ahead of the
/// agent's Sync; within `max_rows` its answer goes on, over it the agent waits with the
/// transaction open, and a refusal aborts that transaction as any error would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_executes_stand_within_max_rows_and_wait_open_over_it() {
    let airlock = std::sync::Arc::new(Airlock::start_with("", &guarded_config(APPROVALS)));
    fixture(
        &airlock,
        "DROP TABLE IF EXISTS guard_x; CREATE TABLE guard_x (id int primary key, v text); \
         INSERT INTO guard_x SELECT g, 'row ' || g FROM generate_series(1, 100) g",
    );
    let count = || upstream("SELECT count(*) FROM guard_x");
    let mut client = airlock.connect(&agent(), "guarded-db").await.unwrap();
    let delete = client.prepare("DELETE FROM guard_x WHERE id > $1").await.unwrap();
    // Within the limit: the driver sees the server's own answer.
    assert_eq!(client.execute(&delete, &[&95i32]).await.unwrap(), 5);
    let rows = client.query("UPDATE guard_x SET v = 'x' WHERE id > $1 RETURNING id", &[&90i32]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i32>(0)).sum::<i32>(), (91..=95).sum::<i32>());
    assert_eq!(count(), "95");
    // Over it: held while the transaction waits open; denied, nothing stands.
    let denied = {
        let a = airlock.clone();
        let decide = tokio::task::spawn_blocking(move || {
            let list = pending(&a, 1);
            assert!(list[0]["reason"].as_str().unwrap().contains("it changed 45 rows"), "{list:?}");
            ok(&cli(&a, &sre(), &["deny", list[0]["id"].as_str().unwrap(), "--reason", "too many"]));
        });
        let (r, d) = tokio::join!(client.execute(&delete, &[&50i32]), decide);
        d.unwrap();
        r
    };
    assert!(denied.unwrap_err().as_db_error().unwrap().message().contains("too many"));
    assert_eq!(count(), "95");
    assert_eq!(client.query_one("SELECT count(*) FROM guard_x", &[]).await.unwrap().get::<_, i64>(0), 95);
    // Inside a transaction, a refusal after the statement ran aborts the transaction,
    // as an error from the server would: what ran before it is undone too.
    {
        let tx = client.transaction().await.unwrap();
        assert_eq!(tx.execute(&delete, &[&93i32]).await.unwrap(), 2);
        let a = airlock.clone();
        let deny = tokio::task::spawn_blocking(move || {
            let id = pending(&a, 1)[0]["id"].as_str().unwrap().to_owned();
            ok(&cli(&a, &sre(), &["deny", &id, "--reason", "no"]));
        });
        let (r, d) = tokio::join!(tx.execute("UPDATE guard_x SET v = 'y' WHERE v <> $1", &[&"z"]), deny);
        d.unwrap();
        assert_eq!(r.unwrap_err().code().unwrap().code(), "42501");
        let after = tx.query_one("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(after.code().unwrap().code(), "25P02", "{after}");
        drop(tx);
    }
    assert_eq!(count(), "95");
    assert_eq!(upstream("SELECT count(*) FROM guard_x WHERE v = 'y'"), "0");
    // Pipelined around a guarded Execute: every answer in order.
    let count_stmt = client.prepare("SELECT count(*) FROM guard_x").await.unwrap();
    let (a, b, c) = tokio::join!(
        client.query_one(&count_stmt, &[]),
        client.execute(&delete, &[&91i32]),
        client.query_one(&count_stmt, &[]),
    );
    assert_eq!((a.unwrap().get::<_, i64>(0), b.unwrap(), c.unwrap().get::<_, i64>(0)), (95, 4, 91));
    // Approved: the answer it already has goes on, and the change stands.
    let approve = {
        let a = airlock.clone();
        tokio::task::spawn_blocking(move || {
            let id = pending(&a, 1)[0]["id"].as_str().unwrap().to_owned();
            ok(&cli(&a, &sre(), &["approve", &id]));
        })
    };
    let (r, d) = tokio::join!(client.execute(&delete, &[&20i32]), approve);
    d.unwrap();
    assert_eq!(r.unwrap(), 71);
    assert_eq!(count(), "20");
    assert_eq!(client.query_one("SELECT count(*) FROM guard_x", &[]).await.unwrap().get::<_, i64>(0), 20);
}

/// Functions of the database's own, judged by its catalog: one that cannot change
/// anything (not volatile, not SECURITY DEFINER, a body calling only built-ins that
/// read) is called like a built-in read; any other is held, and so is a call by a
/// built-in's name that one of them may answer.
#[test]
fn functions_of_the_databases_own_are_judged_by_the_catalog() {
    let airlock = Airlock::start_with("", "[approvals]\ntimeout = \"1s\"\n");
    fixture(
        &airlock,
        "DROP TABLE IF EXISTS fn_t CASCADE; CREATE TABLE fn_t (id int); INSERT INTO fn_t SELECT generate_series(1, 10); \
         CREATE OR REPLACE FUNCTION fn_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM fn_t'; \
         CREATE OR REPLACE FUNCTION fn_twice(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN IF (x > 0) THEN RETURN x * 2; END IF; RETURN abs(x); END$$; \
         CREATE OR REPLACE FUNCTION fn_kill() RETURNS bool LANGUAGE sql STABLE AS 'SELECT pg_cancel_backend(0)'; \
         CREATE OR REPLACE FUNCTION fn_dyn(q text) RETURNS int LANGUAGE plpgsql STABLE AS $$BEGIN EXECUTE q; RETURN 1; END$$; \
         CREATE OR REPLACE FUNCTION fn_definer() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER AS 'SELECT count(*) FROM fn_t'; \
         CREATE OR REPLACE FUNCTION fn_vol() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM fn_t'; \
         CREATE OR REPLACE FUNCTION fn_nested() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT fn_count()'; \
         CREATE OR REPLACE VIEW fn_view AS SELECT fn_vol() AS x; \
         CREATE OR REPLACE FUNCTION fn_via_view() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT x FROM fn_view'; \
         CREATE OR REPLACE FUNCTION lower(int) RETURNS int LANGUAGE sql AS 'DELETE FROM fn_t; SELECT 1'",
    );
    let run = |sql: &str| airlock.psql(&agent(), "app-db", &["-X", "-v", "ON_ERROR_STOP=0", "-At", "-c", sql], None);
    assert_eq!(ok(&run("SELECT fn_count(), public.fn_twice(2), \"fn_twice\"(-3)")), "10|4|3\n");
    for sql in [
        "SELECT fn_kill()",
        "SELECT fn_dyn('select 1')",
        "SELECT fn_definer()",
        "SELECT fn_vol()",
        "SELECT fn_nested()",
        "SELECT fn_via_view()",
        "SELECT lower(1)",
        "SELECT lower('X')",
    ] {
        let out = run(sql);
        assert!(stderr(&out).contains("no approver decided in time"), "{sql}: {}", stderr(&out));
    }
    assert_eq!(upstream("SELECT count(*) FROM fn_t"), "10");
    // After DDL in the session (even held), only rules vouch for functions.
    let out = airlock.psql(
        &agent(),
        "app-db",
        &["-X", "-q", "-v", "ON_ERROR_STOP=0", "-At"],
        Some("SELECT fn_count();\nCREATE OR REPLACE FUNCTION fn_count() RETURNS bigint LANGUAGE sql AS 'DELETE FROM fn_t; SELECT 1';\nSELECT fn_count();\n"),
    );
    assert_eq!(ok(&out), "10\n");
    assert_eq!(stderr(&out).matches("no approver decided in time").count(), 2, "{}", stderr(&out));
    fixture(
        &airlock,
        "DROP VIEW fn_view; DROP FUNCTION fn_count(), fn_twice(int), fn_kill(), fn_dyn(text), fn_definer(), fn_vol(), \
         fn_nested(), fn_via_view(), lower(int); DROP TABLE fn_t",
    );
}
