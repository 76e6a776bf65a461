//! A fleet of Airlock replicas sharing state in PostgreSQL (`[state]`): real psql
//! sessions held on one replica and decided through another, grants shared, a replica
//! killed, the state database taken away and given back, and schema upgrades.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use support::{Airlock, FIXTURES, cli, cluster, http_get, ok, pending, token};

const STATE_PASSWORD: &str = "state-Pa55word";

/// A fresh state database on the shared cluster, owned by a role of its own.
fn state_db() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("state_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let c = cluster();
    // Several tests create the role; the first one wins.
    let _ = c.psql("postgres", &format!("CREATE ROLE airlock_state LOGIN PASSWORD '{STATE_PASSWORD}'"));
    c.psql("postgres", &format!("CREATE DATABASE {name} OWNER airlock_state")).unwrap();
    name
}

/// The `[state]` section for replica `replica` on database `db`, over verified TLS.
fn state_section(db: &str, replica: &str) -> String {
    let ca = cluster().dir.join("data/server.crt");
    format!(
        r#"
[approvals]
timeout = "30s"

[state]
url = "host=127.0.0.1 port={port} dbname={db} user=airlock_state password={STATE_PASSWORD} sslmode=require"
ca_file = "{ca}"
replica = "{replica}"
heartbeat = "200ms"
"#,
        port = cluster().port,
        ca = ca.display(),
    )
}

fn replica(db: &str, name: &str) -> Airlock {
    Airlock::start_with("", &state_section(db, name))
}

/// Runs SQL on the state database as its owner.
fn state_sql(db: &str, sql: &str) -> String {
    cluster().psql(db, sql).unwrap().trim().to_owned()
}

fn fixture(airlock: &Airlock, sql: &str) {
    ok(&airlock.psql(&token("fixture-bot", FIXTURES), "app-db", &["-c", sql], None));
}

/// Runs psql as an agent in the background.
fn agent_psql(airlock: &Airlock, subject: &str, groups: &[&str], sql: &str) -> std::thread::JoinHandle<Output> {
    let (conninfo, tok) = (airlock.conninfo("app-db", "require"), token(subject, groups));
    let sql = sql.to_owned();
    std::thread::spawn(move || support::psql_cmd(&conninfo, &tok, &["-c", &sql], None))
}

fn table_exists(name: &str) -> bool {
    cluster().psql("app", &format!("SELECT to_regclass('{name}') IS NOT NULL")).unwrap().trim() == "t"
}

/// Runs the CLI against `airlock`'s admin API as approver `subject`.
fn cli_as(airlock: &Airlock, subject: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .args(["--admin", &format!("http://{}", airlock.admin)])
        .env("AIRLOCK_TOKEN", token(subject, &["sre", "agents"]))
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .unwrap()
}

/// Runs `airlock serve` as replica `name` on state database `db`, expecting it to refuse
/// to start; returns what it said.
fn refused_start(db: &str, name: &str, tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("airlock-fleet-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("airlock.toml");
    std::fs::write(&path, support::config(&dir, "", &state_section(db, name))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("AIRLOCK_TEST_APP_PASSWORD", support::APP_PASSWORD)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_statement_held_on_one_replica_is_decided_on_another() {
    let db = state_db();
    let (a, b) = (replica(&db, "a"), replica(&db, "b"));
    fixture(&a, "CREATE TABLE fleet_drop (id int); CREATE TABLE fleet_keep (id int)");

    // Approved through B: the DROP held on A runs, and the table is really gone.
    let held = agent_psql(&a, "agent-1", &["agents"], "DROP TABLE fleet_drop");
    let list = pending(&b, 1);
    assert_eq!(list[0]["subject"], "agent-1");
    assert_eq!(list[0]["statement"], "DROP TABLE fleet_drop");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(pending(&a, 1)[0]["id"], id.as_str(), "every replica lists every pending request");
    let approved_at = Instant::now();
    ok(&cli(&b, &["approve", &id]));
    let out = held.join().unwrap();
    let woke_in = approved_at.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!table_exists("fleet_drop"));
    eprintln!("approval on B reached the session on A in {woke_in:?} (including psql's exit)");

    // Denied through B: the agent on A gets the reason, and the table stays.
    let held = agent_psql(&a, "agent-1", &["agents"], "DROP TABLE fleet_keep");
    let id = pending(&b, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&b, &["deny", &id, "--reason", "keep it, it feeds the dashboard"]));
    let out = held.join().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keep it, it feeds the dashboard"), "{stderr}");
    assert!(table_exists("fleet_keep"));

    // Nobody decides their own request, through any replica.
    let held = agent_psql(&a, "oncall-2", &["agents", "sre"], "DROP TABLE fleet_keep");
    let id = pending(&b, 1)[0]["id"].as_str().unwrap().to_owned();
    let own = cli_as(&b, "oncall-2", &["approve", &id]);
    assert!(!own.status.success());
    assert!(String::from_utf8_lossy(&own.stderr).contains("cannot approve or deny their own request"));
    ok(&cli(&a, &["deny", &id, "--reason", "no"]));
    assert!(!held.join().unwrap().status.success());
    assert!(table_exists("fleet_keep"));
    ok(&a.psql(&token("fixture-bot", FIXTURES), "app-db", &["-c", "DROP TABLE fleet_keep"], None));
}

/// `path` of `airlock`'s console as a browser signed in with `token` sees it (curl
/// with a cookie jar, through the sign-in form).
fn console_page(airlock: &Airlock, token: &str, path: &str) -> String {
    let base = format!("http://{}", airlock.admin);
    let jar = airlock.dir.join("console-cookies");
    let curl = |args: &[&str]| {
        let out = Command::new("curl").args(["-sS", "-c"]).arg(&jar).arg("-b").arg(&jar).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let login = curl(&[&format!("{base}/console/login")]);
    let marker = "name=\"binding\" value=\"";
    let binding = login[login.find(marker).unwrap() + marker.len()..].split('"').next().unwrap().to_owned();
    curl(&[
        "--data-urlencode",
        &format!("token={token}"),
        "--data-urlencode",
        &format!("binding={binding}"),
        &format!("{base}/console/login"),
    ]);
    curl(&[&format!("{base}{path}")])
}

#[test]
fn the_console_lists_every_replicas_sessions() {
    let db = state_db();
    let console = "\n[console]\nauditor_groups = [\"sre\"]\n";
    let a = Airlock::start_with("", &format!("{}{console}", state_section(&db, "a")));
    let b = Airlock::start_with("", &format!("{}{console}", state_section(&db, "b")));
    ok(&a.psql(&token("console-agent-a", &["agents"]), "app-db", &["-c", "SELECT 1"], None));
    let auditor = token("auditor-1", &["sre"]);
    // A's index reaches the shared state on A's own clock.
    let mut page = String::new();
    wait_for("A's session on B's console", Duration::from_secs(20), || {
        page = console_page(&b, &auditor, "/console/sessions");
        page.contains("console-agent-a")
    });
    assert!(page.contains("<th>Replica</th>") && page.contains("<td class=\"replica\">a</td>"), "{page}");
    assert!(page.contains("verified by its replica"), "{page}");
    let id = page.split("href=\"/console/sessions/").nth(1).unwrap().split('"').next().unwrap().to_owned();
    // B does not hold A's recording: its replay page says where it is.
    let replay = console_page(&b, &auditor, &format!("/console/sessions/{id}"));
    assert!(replay.contains("was recorded by replica a"), "{replay}");
    // A shows its own, with its replay.
    let replay = console_page(&a, &auditor, &format!("/console/sessions/{id}"));
    assert!(replay.contains("SELECT 1"), "{replay}");
}

#[test]
fn a_grant_made_on_one_replica_applies_on_every_replica() {
    let db = state_db();
    let (a, b) = (replica(&db, "a"), replica(&db, "b"));
    fixture(&a, "CREATE TABLE fleet_grant (id int); INSERT INTO fleet_grant VALUES (1)");

    let held = agent_psql(&a, "agent-2", &["agents"], "TRUNCATE fleet_grant");
    let id = pending(&b, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&b, &["approve", &id, "--for", "10m"]));
    ok(&held.join().unwrap());

    // The same statement through B's own endpoint runs at once: the grant is shared.
    fixture(&b, "INSERT INTO fleet_grant VALUES (2)");
    let started = Instant::now();
    let out = b.psql(&token("agent-2", &["agents"]), "app-db", &["-c", "TRUNCATE fleet_grant"], None);
    ok(&out);
    assert!(started.elapsed() < Duration::from_secs(20), "the grant did not apply: the statement was held");
    assert_eq!(cluster().psql("app", "SELECT count(*) FROM fleet_grant").unwrap().trim(), "0");
    // Another identity is not covered.
    let other = agent_psql(&b, "agent-3", &["agents"], "TRUNCATE fleet_grant");
    let id = pending(&a, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&a, &["deny", &id, "--reason", "not yours"]));
    assert!(!other.join().unwrap().status.success());
    fixture(&a, "DROP TABLE fleet_grant");

    // Every replica's sessions are listed from the shared index, ended and counted.
    wait_for("both replicas' sessions in the shared index", Duration::from_secs(10), || {
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&support::local_cli(&a, &["sessions", "--json", "--subject", "agent-2"])))
                .unwrap();
        let on = |r: &str| list.iter().filter(|s| s["replica"] == r && s["statements"] == 1).count();
        on("a") == 1 && on("b") == 1
    });
    let table = ok(&support::local_cli(&b, &["sessions", "--subject", "agent-3"]));
    assert!(table.lines().next().unwrap().ends_with("REPLICA"), "{table}");
    assert!(table.lines().nth(1).unwrap().ends_with("  b"), "{table}");
}

#[test]
fn an_http_request_parked_on_one_replica_is_redeemed_once_on_another() {
    let db = state_db();
    let root = std::env::temp_dir().join(format!("airlock-fleet-http-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let api = support::http_api::Api::start(&root);
    let config = |name: &str| {
        let section = state_section(&db, name).replace("[approvals]\n", "[approvals]\nhttp_hold = \"1s\"\n");
        format!(
            "{section}\n[[connections]]\nname = \"api\"\nprotocol = \"http\"\nurl = \"http://127.0.0.1:{}\"\nallow_groups = [\"agents\"]\n",
            api.plain.port()
        )
    };
    let (a, b) = (Airlock::start_with("", &config("a")), Airlock::start_with("", &config("b")));
    let agent = token("agent-7", &["agents"]);
    let delete = |via: &Airlock, approval: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-X", "DELETE"]).args([
            "-H",
            &format!("Authorization: Bearer {agent}"),
            "-d",
            "{\"why\":\"cleanup\"}",
        ]);
        if let Some(id) = approval {
            cmd.args(["-H", &format!("Airlock-Approval: {id}")]);
        }
        ok(&cmd.arg(format!("http://{}/api/api/items/9", via.http.unwrap())).output().unwrap()).trim().to_owned()
    };
    // Held on A past the agent's 1 s: parked, 403 with the id.
    assert_eq!(delete(&a, None), "403");
    let id = pending(&b, 1)[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(delete(&b, Some(&id)), "403", "not approved yet");
    ok(&cli(&b, &["approve", &id]));
    // Redeemed on B (not the replica that parked it), once; A's replica may be gone.
    drop(a);
    assert_eq!(delete(&b, Some(&id)), "200");
    assert_eq!(api.seen_at("/api/items/9").len(), 1);
    assert_eq!(delete(&b, Some(&id)), "403", "an approval is used once");
    assert_eq!(api.seen_at("/api/items/9").len(), 1);
    drop(b);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_second_process_under_a_live_replica_name_is_refused() {
    let db = state_db();
    let _a = replica(&db, "a");
    let stderr = refused_start(&db, "a", "twin");
    assert!(stderr.contains("replica name \"a\" is in use by another running Airlock"), "{stderr}");
}

#[test]
fn a_killed_replica_leaves_no_request_pending() {
    let db = state_db();
    let (a, b) = (replica(&db, "a"), replica(&db, "b"));
    fixture(&a, "CREATE TABLE fleet_orphan (id int)");
    let held = agent_psql(&a, "agent-4", &["agents"], "DROP TABLE fleet_orphan");
    let id = pending(&b, 1)[0]["id"].as_str().unwrap().to_owned();

    Command::new("kill").args(["-KILL", &a.pid().to_string()]).status().unwrap();
    assert!(!held.join().unwrap().status.success());
    // Three missed heartbeats (200 ms each) later, B withdraws it.
    wait_for("the dead replica's request to be withdrawn", Duration::from_secs(10), || {
        state_sql(&db, &format!("SELECT state FROM airlock_approvals WHERE id = '{id}'")) == "withdrawn"
    });
    pending(&b, 0);
    let approve = cli(&b, &["approve", &id]);
    assert!(!approve.status.success(), "a withdrawn request cannot be approved");
    assert!(table_exists("fleet_orphan"));
    drop(a);
    fixture(&b, "DROP TABLE fleet_orphan");
}

#[test]
fn losing_the_state_database_fails_holds_closed_and_lets_allowed_traffic_flow() {
    let db = state_db();
    let a = replica(&db, "a");
    assert!(http_get(a.admin, "/readyz").starts_with("HTTP/1.1 200"));
    fixture(&a, "CREATE TABLE fleet_outage (id int)");

    // Take the state database away: no new connections, and Airlock's is ended.
    cluster()
        .psql(
            "postgres",
            &format!(
                "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
            ),
        )
        .unwrap();
    wait_for("/readyz to report the outage", Duration::from_secs(10), || {
        http_get(a.admin, "/readyz").starts_with("HTTP/1.1 503")
    });
    assert!(http_get(a.admin, "/readyz").contains("state database is unreachable"));
    assert!(http_get(a.admin, "/healthz").starts_with("HTTP/1.1 200"), "alive, only not ready");

    // Allowed statements flow; one that needs approval is refused at once, clearly.
    let tok = token("agent-5", &["agents"]);
    let read = a.psql(&tok, "app-db", &["-At", "-c", "SELECT count(*) FROM fleet_outage"], None);
    assert_eq!(ok(&read).trim(), "0");
    let started = Instant::now();
    let refused = a.psql(&tok, "app-db", &["-c", "DROP TABLE fleet_outage"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("approvals are unavailable") && stderr.contains("nothing was run"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(table_exists("fleet_outage"));
    let list = cli(&a, &["approvals"]);
    assert!(!list.status.success());
    assert!(String::from_utf8_lossy(&list.stderr).contains("shared state store is unavailable"));

    // Give it back: the replica reconnects by itself and holds work again.
    cluster().psql("postgres", &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).unwrap();
    wait_for("/readyz to recover", Duration::from_secs(30), || {
        http_get(a.admin, "/readyz").starts_with("HTTP/1.1 200")
    });
    let held = agent_psql(&a, "agent-5", &["agents"], "DROP TABLE fleet_outage");
    let id = pending(&a, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&a, &["approve", &id]));
    ok(&held.join().unwrap());
    assert!(!table_exists("fleet_outage"));
}

#[tokio::test]
async fn the_schema_upgrades_from_its_first_version_and_refuses_a_newer_one() {
    let db = state_db();
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster().port)
        .dbname(&db)
        .user("airlock_state")
        .password(STATE_PASSWORD)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client;
    // A database a first-version Airlock left, with a request still pending.
    assert_eq!(airlock::state::schema::migrate(&mut client, 1).await.unwrap(), 0);
    client
        .batch_execute(
            "INSERT INTO airlock_approvals (id, replica, subject, groups, connection, protocol, statement,
                    classes, rule, reason, fingerprints, expires_at)
             VALUES ('v1keptme', 'old', 'agent-6', '{agents}', 'app-db', 'postgres', 'DROP TABLE t',
                    '{destructive}', 'default', 'destructive statements need approval', '{fp}',
                    now() + interval '10 minutes')",
        )
        .await
        .unwrap();

    let a = tokio::task::spawn_blocking({
        let db = db.clone();
        move || replica(&db, "a")
    })
    .await
    .unwrap();
    let versions = state_sql(&db, "SELECT string_agg(version::text, ',' ORDER BY version) FROM airlock_schema");
    assert_eq!(versions, format!("1,{}", airlock::state::schema::LATEST));
    let list = tokio::task::spawn_blocking(move || {
        let list = pending(&a, 1);
        drop(a);
        list
    })
    .await
    .unwrap();
    assert_eq!(list[0]["id"], "v1keptme", "a request filed before the upgrade is still served");
    assert_eq!(list[0]["classes"][0], "destructive");

    // A schema newer than this binary knows: refuse to start, and say why.
    client.batch_execute("INSERT INTO airlock_schema (version) VALUES (99)").await.unwrap();
    let stderr = refused_start(&db, "a", "newer");
    assert!(stderr.contains("schema version 99, newer than this Airlock knows"), "{stderr}");
    assert!(!stderr.contains(STATE_PASSWORD), "the state URL's password leaked: {stderr}");
}
