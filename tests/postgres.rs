//! The Postgres endpoint against a real PostgreSQL and real clients (psql, pgbench,
//! tokio-postgres, and a hand-rolled raw client for hostile input).
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

#[test]
fn psql_queries_copy_and_notify() {
    let airlock = Airlock::start();
    let t = token("agent-1", FIXTURES);
    ok(&airlock.psql(
        &t,
        "app-db",
        &["-c", "DROP TABLE IF EXISTS copy_t; CREATE TABLE copy_t (id int, name text)"],
        None,
    ));

    let rows: String = (1..=500).map(|i| format!("{i}\tname {i}\n")).collect();
    let out = ok(&airlock.psql(&t, "app-db", &["-c", "\\copy copy_t from stdin"], Some(&rows)));
    assert_eq!(out.trim(), "COPY 500");
    let out = ok(&airlock.psql(&t, "app-db", &["-c", "\\copy (select * from copy_t order by id) to stdout"], None));
    assert_eq!(out, rows);

    let out = ok(&airlock.psql(&t, "app-db", &["-At", "-c", "select count(*), sum(id) from copy_t"], None));
    assert_eq!(out.trim(), "500|125250");

    // Multi-statement string, notices and errors relayed; the session survives an error.
    let out = airlock.psql(
        &t,
        "app-db",
        &[
            "-v",
            "ON_ERROR_STOP=0",
            "-At",
            "-c",
            "select 1/0",
            "-c",
            "DO $$ BEGIN RAISE NOTICE 'hello from upstream'; END $$",
            "-c",
            "select 'still here'",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("division by zero"), "{stderr}");
    assert!(stderr.contains("NOTICE:  hello from upstream"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "DO\nstill here");

    let out = airlock.psql(&t, "app-db", &["-c", "LISTEN chan", "-c", "NOTIFY chan, 'ping'"], None);
    let stdout = ok(&out);
    assert!(stdout.contains("Asynchronous notification \"chan\" with payload \"ping\""), "{stdout}");

    // The upstream sees who is behind Airlock.
    let out = ok(&airlock.psql(
        &t,
        "app-db",
        &["-At", "-c", "select current_user, application_name from pg_stat_activity where pid = pg_backend_pid()"],
        None,
    ));
    assert_eq!(out.trim(), "app_rw|airlock:agent-1:psql");
}

/// A `[[connections]]` entry on the shared cluster.
fn connection(name: &str, user: &str, tls: &str, password: bool) -> String {
    let password = if password { r#"password = { env = "AIRLOCK_TEST_APP_PASSWORD" }"# } else { "" };
    format!(
        "\n[[connections]]\nname = \"{name}\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:{}\"\n\
         database = \"app\"\nuser = \"{user}\"\n{password}\nallow_groups = [\"agents\"]\ntls = \"{tls}\"\n",
        cluster().port
    )
}

#[test]
fn upstream_tls_modes_and_auth_methods() {
    let extra = [
        connection("wrong-ca-db", "app_rw", "verify-full", true),
        connection("require-db", "app_rw", "require", true),
        connection("md5-db", "md5_user", "disable", true),
        connection("clear-db", "clear_user", "require", true),
        connection("trust-db", "trust_user", "prefer", false),
    ]
    .concat();
    let airlock = Airlock::start_with("", &extra);
    let t = token("agent-1", &["agents"]);
    let query = "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()";
    for (db, expected) in [
        ("app-db", "app_rw true"),
        ("ops-db", "app_rw false"),
        ("require-db", "app_rw true"),
        ("md5-db", "md5_user false"),
        ("clear-db", "clear_user true"),
        ("trust-db", "trust_user true"),
    ] {
        let t = if db == "ops-db" { token("op", &["ops"]) } else { t.clone() };
        let out = ok(&airlock.psql(&t, db, &["-At", "-c", query], None));
        assert_eq!(out.trim(), expected, "{db}");
    }
    // The self-signed upstream certificate is not in the web PKI: refuse, and tell the
    // agent nothing about why or where.
    let out = airlock.psql(&t, "wrong-ca-db", &["-c", "select 1"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the upstream database is unavailable"), "{stderr}");
    assert!(!stderr.contains(&cluster().port.to_string()), "{stderr}");
    assert!(airlock.log().contains("TLS"), "the operator's log says why");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_pipelines_and_transactions() {
    let airlock = Airlock::start();
    let client = airlock.connect(&token("agent-2", FIXTURES), "app-db").await.unwrap();
    client.batch_execute("DROP TABLE IF EXISTS ext_t; CREATE TABLE ext_t (id int primary key, v text)").await.unwrap();
    let insert = client.prepare("INSERT INTO ext_t VALUES ($1, $2)").await.unwrap();
    // Pipelined: many Parse/Bind/Execute/Sync in flight at once.
    let futures: Vec<_> = (0..200)
        .map(|i| {
            let client = &client;
            let insert = &insert;
            async move { client.execute(insert, &[&i, &format!("v{i}")]).await }
        })
        .collect();
    for r in futures_join(futures).await {
        assert_eq!(r.unwrap(), 1);
    }
    let row = client.query_one("SELECT count(*), max(v) FROM ext_t WHERE id >= $1", &[&0i32]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 200);
    assert_eq!(row.get::<_, String>(1), "v99");

    // Binary results and a transaction rolled back.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.execute("DELETE FROM ext_t", &[]).await.unwrap();
    let n: i64 = tx.query_one("SELECT count(*) FROM ext_t", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    tx.rollback().await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM ext_t", &[]).await.unwrap().get(0);
    assert_eq!(n, 200);

    // An error inside a pipeline skips to Sync and the session goes on.
    let err = client.query_one("SELECT 1/$1::int", &[&0i32]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    let one: i32 = client.query_one("SELECT $1::int", &[&1i32]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut handles = Vec::new();
    // Poll them all concurrently on this task so their messages are pipelined.
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..futures.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    handles.extend(outputs.into_iter().map(Option::unwrap));
    handles
}

#[test]
fn pgbench_extended_through_airlock() {
    let airlock = Airlock::start();
    let t = token("bench", FIXTURES);
    let pgbench = cluster().bin_dir().join("pgbench");
    let conninfo = airlock.conninfo("app-db", "require");
    let run = |args: &[&str]| {
        std::process::Command::new(&pgbench).args(args).arg(&conninfo).env("PGPASSWORD", &t).output().unwrap()
    };
    let init = run(&["-i", "-s", "1", "-q"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    for mode in ["extended", "prepared", "simple"] {
        let out = run(&["-M", mode, "-c", "4", "-t", "50", "-n"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("number of transactions actually processed: 200/200"), "{mode}: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_upstream() {
    let airlock = Airlock::start();
    let client = airlock.connect(&token("agent-3", &["agents"]), "app-db").await.unwrap();
    let cancel = client.cancel_token();
    let started = std::time::Instant::now();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await.map(|_| client) });
    // Cancel only once the sleep is running upstream, however slow the machine.
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'";
    for _ in 0..200 {
        if cluster().psql("app", running).unwrap().trim() == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let Err(err) = sleeper.await.unwrap() else { panic!("query was not cancelled") };
    assert_eq!(sqlstate(&err), "57014");
    assert!(started.elapsed() < Duration::from_secs(20));

    // A cancel with a wrong key is ignored and harms nothing.
    let client = airlock.connect(&token("agent-3", &["agents"]), "app-db").await.unwrap();
    let mut raw = TcpStream::connect(airlock.pg).unwrap();
    raw.write_all(&airlock_postgres::startup::encode_cancel_request(1, &[0, 0, 0, 1])).unwrap();
    drop(raw);
    let v: i32 = client.query_one("SELECT 7", &[]).await.unwrap().get(0);
    assert_eq!(v, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_sqlstate() {
    let airlock = Airlock::start();
    let cases = [
        ("garbage", token("x", &["agents"]).replace('.', "_"), "app-db", "28P01"),
        ("bad signature", format!("{}x", token("x", &["agents"])), "app-db", "28P01"),
        ("expired", token_with("x", &["agents"], -3600, "airlock"), "app-db", "28P01"),
        ("wrong audience", token_with("x", &["agents"], 3600, "someone-else"), "app-db", "28P01"),
        ("unknown connection", token("x", &["agents"]), "no-such-db", "3D000"),
        ("group not allowed", token("x", &["agents"]), "ops-db", "28000"),
        ("upstream down", token("x", &["agents"]), "down-db", "08006"),
    ];
    for (what, tok, db, code) in cases {
        let err = airlock.connect(&tok, db).await.err().unwrap_or_else(|| panic!("{what}: connected"));
        assert_eq!(sqlstate(&err), code, "{what}: {err}");
        let msg = err.as_db_error().unwrap().message().to_owned();
        assert!(!msg.contains(APP_PASSWORD), "{what}: {msg}");
        if what == "upstream down" {
            assert!(!msg.contains("127.0.0.1"), "upstream address leaked: {msg}");
        }
        if what == "expired" {
            assert!(msg.contains("expired"), "{msg}");
        }
    }
    // The ops group gets in where agents may not; API keys work too.
    let c = airlock.connect(&token("op", &["ops"]), "ops-db").await.unwrap();
    assert_eq!(c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    let c = airlock.connect(API_KEY, "app-db").await.unwrap();
    let app: String = c
        .query_one("SELECT application_name::text FROM pg_stat_activity WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, "airlock:ci-bot");
    let metrics = http_get(airlock.admin, "/metrics");
    assert!(metrics.contains(r#"airlock_auth_failures_total{protocol="postgres",reason="expired"} 1"#), "{metrics}");
}

/// A minimal raw client, to see every byte the agent receives.
struct Raw {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Raw {
    fn connect(airlock: &Airlock) -> Raw {
        let stream = TcpStream::connect(airlock.pg).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { stream, received: Vec::new() }
    }

    /// Connects and authenticates with `token`, up to the first ReadyForQuery.
    fn session(airlock: &Airlock, token: &str) -> Raw {
        let mut raw = Raw::connect(airlock);
        raw.send(&airlock_postgres::startup::encode_startup([("user", "a"), ("database", "app-db")]));
        assert_eq!(raw.message().unwrap().0, b'R');
        let mut pw = token.as_bytes().to_vec();
        pw.push(0);
        raw.send(&frontend(b'p', &pw));
        raw.until_ready();
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one tagged message.
    fn message(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).ok()?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0; len - 4];
        self.stream.read_exact(&mut body).ok()?;
        self.received.extend_from_slice(&head);
        self.received.extend_from_slice(&body);
        Some((head[0], body))
    }

    fn until_ready(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(m) = self.message() {
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                break;
            }
        }
        out
    }

    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).is_ok()
    }
}

fn frontend(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn agent_never_sees_upstream_credentials() {
    let airlock = Airlock::start();
    let mut raw = Raw::connect(&airlock);
    // Ask for protocol 3.2 with an extension option: Airlock negotiates down to 3.0.
    let mut startup =
        airlock_postgres::startup::encode_startup([("user", "agent"), ("database", "app-db"), ("_pq_.test", "1")])
            .to_vec();
    startup[7] = 2;
    raw.send(&startup);
    let (tag, body) = raw.message().unwrap();
    assert_eq!(tag, b'v');
    assert_eq!(&body[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
    let (tag, body) = raw.message().unwrap();
    assert_eq!((tag, body), (b'R', vec![0, 0, 0, 3]), "cleartext password request");
    let mut pw = token("raw", &["agents"]).into_bytes();
    pw.push(0);
    raw.send(&frontend(b'p', &pw));
    let greeting = raw.until_ready();
    let auth: Vec<_> = greeting.iter().filter(|(t, _)| *t == b'R').map(|(_, b)| b.clone()).collect();
    assert_eq!(auth, vec![vec![0, 0, 0, 0]], "only AuthenticationOk, no SASL exchange");
    assert!(greeting.iter().any(|(t, _)| *t == b'K'));
    raw.send(&frontend(b'Q', b"SELECT current_setting('server_version'), current_user\0"));
    let reply = raw.until_ready();
    assert!(reply.iter().any(|(t, _)| *t == b'D'));
    raw.send(&frontend(b'X', b""));
    assert!(raw.closed());
    let seen = String::from_utf8_lossy(&raw.received);
    assert!(!seen.contains(APP_PASSWORD));
    assert!(seen.contains("app_rw"), "the query result came back");
    assert!(!airlock.log().contains(APP_PASSWORD), "password in Airlock's debug log");
}

#[test]
fn hostile_clients_only_hurt_themselves() {
    let airlock = Airlock::start();
    // Garbage instead of a startup packet.
    let mut raw = Raw::connect(&airlock);
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.closed());
    // A startup length far over the cap.
    let mut raw = Raw::connect(&airlock);
    raw.send(&[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0]);
    assert!(raw.closed());
    // Negative message length after authentication.
    let pw = token("raw", &["agents"]);
    let mut raw = Raw::session(&airlock, &pw);
    raw.send(&[b'Q', 0xff, 0xff, 0xff, 0xf0]);
    let (tag, body) = raw.message().unwrap();
    assert_eq!(tag, b'E');
    assert!(String::from_utf8_lossy(&body).contains("08P01"));
    assert!(raw.closed());
    // A statement over limits.max_message_size.
    let mut raw = Raw::session(&airlock, &pw);
    raw.send(&[b'Q', 0x10, 0, 0, 0]);
    let (tag, body) = raw.message().unwrap();
    assert_eq!(tag, b'E');
    assert!(String::from_utf8_lossy(&body).contains("exceeds the limit"), "{}", String::from_utf8_lossy(&body));
    // Disconnect in the middle of a message, and in the middle of the handshake.
    let mut raw = Raw::session(&airlock, &pw);
    raw.send(&frontend(b'Q', b"SELECT 1\0")[..7]);
    drop(raw);
    let mut raw = Raw::connect(&airlock);
    raw.send(&[0, 0, 0, 40, 0, 3]);
    drop(raw);
    // Everyone else is fine.
    let out = ok(&airlock.psql(&token("ok", &["agents"]), "app-db", &["-At", "-c", "select 42"], None));
    assert_eq!(out.trim(), "42");
    assert!(http_get(airlock.admin, "/healthz").ends_with("ok\n"));
}

#[test]
fn connection_limit_refuses_politely() {
    let airlock = Airlock::start_with("max_connections = 1", "");
    let mut first = Raw::connect(&airlock);
    first.send(&airlock_postgres::startup::encode_startup([("user", "a"), ("database", "app-db")]));
    first.message().unwrap();
    let out = airlock.psql(&token("x", &["agents"]), "app-db", &["-c", "select 1"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("too many clients"), "{stderr}");
    drop(first);
}

#[test]
fn silent_clients_time_out_in_the_handshake() {
    let airlock = Airlock::start_with("handshake_timeout = \"1s\"", "");
    let mut silent = Raw::connect(&airlock);
    assert!(silent.closed(), "a client that never sends a startup packet is dropped");
    // A client that stops after the password request is dropped too.
    let mut stalled = Raw::connect(&airlock);
    stalled.send(&airlock_postgres::startup::encode_startup([("user", "a"), ("database", "app-db")]));
    assert_eq!(stalled.message().unwrap().0, b'R');
    let (tag, body) = stalled.message().unwrap();
    assert_eq!(tag, b'E');
    assert!(String::from_utf8_lossy(&body).contains("timed out"));
    let metrics = http_get(airlock.admin, "/metrics");
    assert!(metrics.contains(r#"reason="handshake_timeout"} 2"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_open_transactions() {
    let mut airlock = Airlock::start();
    let client = airlock.connect(&token("agent-4", &["agents"]), "app-db").await.unwrap();
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    airlock.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused; the open transaction still works.
    assert!(airlock.connect(&token("late", &["agents"]), "app-db").await.is_err());
    let v: i32 = client.query_one("SELECT 5", &[]).await.unwrap().get(0);
    assert_eq!(v, 5);
    assert!(airlock.wait_exit(Duration::from_millis(200)).is_none(), "exited mid-transaction");
    // At COMMIT the session is idle: Airlock closes it and exits well before the grace period.
    client.batch_execute("COMMIT").await.unwrap();
    let status = airlock.wait_exit(Duration::from_secs(8)).expect("airlock exited");
    assert!(status.success());
    assert!(client.is_closed() || client.simple_query("SELECT 1").await.is_err());
    assert!(airlock.log().contains("Drained"), "{}", airlock.log());
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("airlock-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[auth]\ndev_tokens = true\n\n[[connections]]\nname = \"x\"\nprotocol = \"postgres\"\naddress = \"nohost\"\n",
    )
    .unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_airlock")).arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:7: connections[0].address: \"nohost\": expected host:port", path.display())),
        "{stderr}"
    );
    // A secret `serve` could not read fails the check too, naming it.
    std::fs::write(
        &path,
        "[auth]\ndev_tokens = true\n\n[[connections]]\nname = \"x\"\nprotocol = \"postgres\"\naddress = \"h:1\"\n\
         password = { file = \"no-such.password\" }\nallow_groups = [\"agents\"]\nuser = \"u\"\ndatabase = \"d\"\n",
    )
    .unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_airlock")).arg("check-config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("connections[0].password") && stderr.contains("no-such.password"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn token_command_mints_accepted_tokens() {
    let dir = std::env::temp_dir().join(format!("airlock-tok-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("airlock.toml");
    let text = config(&dir, "", "").replace(&format!("hs256_secret = \"{HS256_SECRET}\""), "dev_tokens = true");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["token", "--sub", "cli-agent", "--groups", "agents", "--ttl", "5m", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let t = ok(&out).trim().to_owned();
    let airlock = Airlock::start_config(dir.clone(), path);
    let out = ok(&airlock.psql(&t, "app-db", &["-At", "-c", "select 'minted'"], None));
    assert_eq!(out.trim(), "minted");
}

#[test]
fn check_config_connect_warns_about_powerful_upstream_roles() {
    let dir = std::env::temp_dir().join(format!("airlock-ccc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("airlock.toml");
    let su = format!(
        "\n[[connections]]\nname = \"as-superuser\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:{}\"\n\
         database = \"app\"\nuser = \"{}\"\npassword = \"{}\"\ntls = \"disable\"\nallow_groups = [\"ops\"]\n",
        cluster().port,
        airlock::demo::SUPERUSER,
        cluster().superuser_password
    );
    // Without the unreachable connection, which would fail the check.
    let text = config(&dir, "", &su);
    let text = text.split("[[connections]]\nname = \"down-db\"").next().unwrap().to_owned()
        + "# Tests that set up tables"
        + text.split("# Tests that set up tables").nth(1).unwrap();
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["check-config", "--connect"])
        .arg(&path)
        .env("AIRLOCK_TEST_APP_PASSWORD", APP_PASSWORD)
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("upstream     app-db: ok, least-privileged"), "{stdout}");
    assert!(
        stdout
            .contains("upstream     as-superuser: WARNING: the role has SUPERUSER, BYPASSRLS, CREATEROLE, REPLICATION"),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A CancelRequest over TLS is answered with a TLS close_notify before the connection
/// closes: libpq 17's `PQcancelBlocking` (psycopg's `cancel_safe()`) reports a bare EOF
/// as a failed cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_over_tls_ends_with_close_notify() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let airlock = Airlock::start();
    let mut tcp = tokio::net::TcpStream::connect(airlock.pg).await.unwrap();
    tcp.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"S");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    // CancelRequest for a session that does not exist: answered by closing.
    tls.write_all(&[0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 48, 57, 0, 1, 9, 50]).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest)).await.unwrap();
    assert!(read.is_ok(), "the connection ended without a close_notify: {read:?}");
}

/// Accepts any server certificate (the test only looks at how the connection ends).
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
