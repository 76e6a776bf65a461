//! Faults with real peers: upstreams that stop, go silent or reset mid-row; agents that
//! vanish mid-statement, mid-COPY and mid-approval, trickle their handshake, never read,
//! or come in a burst of ten thousand; a recorder whose disk fills up. Each must leave
//! the gateway up, other sessions untouched, the agent with a clear error, and every
//! acknowledged session in a recording that verifies.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::demo::{ClusterOptions, PgCluster};
use bytes::Bytes;
use futures_util::SinkExt;
use support::link::Link;
use support::*;

/// A `postgres` connection entry named `name` at `address`.
fn pg_connection(name: &str, address: &str, database: &str, user: &str, password: &str) -> String {
    format!(
        "\n[[connections]]\nname = \"{name}\"\nprotocol = \"postgres\"\naddress = \"{address}\"\ndatabase = \"{database}\"\n\
         user = \"{user}\"\npassword = \"{password}\"\nallow_groups = [\"agents\"]\ntls = \"disable\"\n"
    )
}

/// Runs `sql` on the shared cluster as the superuser; its single value.
fn upstream(sql: &str) -> String {
    cluster().psql("app", sql).unwrap().trim().to_owned()
}

/// Polls `f` until it holds, for up to `secs` seconds.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The error a fault gave the agent: it must be a PostgreSQL error message Airlock (or
/// the upstream, through Airlock) sent, not a silently dropped socket. Its SQLSTATE.
fn clear_error(what: &str, result: Result<impl std::fmt::Debug, tokio_postgres::Error>) -> String {
    let err = result.err().unwrap_or_else(|| panic!("{what}: no error"));
    let db = err.as_db_error().unwrap_or_else(|| panic!("{what}: no error message, only {err:?}"));
    assert!(!db.message().is_empty(), "{what}");
    db.code().code().to_owned()
}

/// Checks the gateway after a fault: healthy, serving a new session, and its recording
/// verifies.
async fn still_serving(airlock: &Airlock) {
    assert!(http_get(airlock.admin, "/healthz").ends_with("ok\n"));
    let client = airlock.connect(&token("after", &["agents"]), "app-db").await.unwrap();
    assert_eq!(client.query_one("SELECT 7", &[]).await.unwrap().get::<_, i32>(0), 7);
    let out = local_cli(airlock, &["verify"]);
    assert!(out.status.success(), "verify: {}", String::from_utf8_lossy(&out.stdout));
}

/// Waits until the recording lists a finished session of `subject`; its summary.
fn recorded_end(airlock: &Airlock, subject: &str) -> serde_json::Value {
    let mut found = serde_json::Value::Null;
    eventually(10, &format!("{subject}'s session in the recording"), || {
        found = sessions(airlock)
            .into_iter()
            .find(|s| s["subject"] == subject && !s["end_reason"].is_null())
            .unwrap_or_default();
        !found.is_null()
    });
    found
}

/// A raw PostgreSQL client, to see exactly what the agent receives.
struct RawPg {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawPg {
    /// Logs in to `database` with `token`; returns after the first ReadyForQuery.
    async fn login(airlock: &Airlock, subject: &str, groups: &[&str], database: &str) -> RawPg {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(airlock.pg).await.unwrap();
        s.write_all(&airlock_postgres::startup::encode_startup([("user", "agent"), ("database", database)]))
            .await
            .unwrap();
        let mut raw = RawPg { s, buf: Vec::new() };
        assert_eq!(raw.next().await.unwrap().0, b'R');
        let mut password = token(subject, groups).into_bytes();
        password.push(0);
        raw.send(b'p', &password).await;
        while raw.next().await.unwrap().0 != b'Z' {}
        raw
    }

    async fn send(&mut self, tag: u8, body: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        self.s.write_all(&m).await.unwrap();
    }

    async fn query(&mut self, sql: &str) {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(b'Q', &body).await;
    }

    /// The next message, or `None` once the connection is closed or reset.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                if self.buf.len() > len {
                    let body = self.buf[5..len + 1].to_vec();
                    let tag = self.buf[0];
                    self.buf.drain(..len + 1);
                    return Some((tag, body));
                }
            }
            let mut chunk = [0u8; 8192];
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads to the end of the connection; the SQLSTATE of the last ErrorResponse.
    async fn final_error(&mut self) -> Option<String> {
        let mut code = None;
        while let Some((tag, body)) = self.next().await {
            if tag == b'E' {
                code = body
                    .split(|b| *b == 0)
                    .find_map(|f| f.strip_prefix(b"C"))
                    .map(|c| String::from_utf8_lossy(c).into_owned());
            }
        }
        code
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stopped_mid_query_mid_copy_and_mid_hold_ends_only_its_sessions() {
    let mut doomed = PgCluster::start(ClusterOptions::default()).unwrap();
    doomed.psql("postgres", "CREATE TABLE copied (line text)").unwrap();
    let extra = pg_connection(
        "doomed",
        &format!("127.0.0.1:{}", doomed.port),
        "postgres",
        "postgres",
        &doomed.superuser_password,
    );
    let airlock = Arc::new(Airlock::start_with("", &extra));

    // A bystander on the healthy upstream, inside a transaction throughout.
    let bystander = airlock.connect(&token("bystander", &["agents"]), "app-db").await.unwrap();
    bystander.batch_execute("BEGIN; SELECT 1").await.unwrap();

    let querying = airlock.connect(&token("mid-query", &["agents"]), "doomed").await.unwrap();
    let query = tokio::spawn(async move { querying.simple_query("SELECT pg_sleep(60)").await.map(|_| ()) });
    let mut copying = RawPg::login(&airlock, "mid-copy", &["agents"], "doomed").await;
    copying.query("COPY copied FROM STDIN").await;
    assert_eq!(copying.next().await.unwrap().0, b'G');
    copying.send(b'd', b"one\ntwo\n").await;
    let holding = airlock.connect(&token("mid-hold", &["agents"]), "doomed").await.unwrap();
    let hold = tokio::spawn(async move { holding.batch_execute("DROP TABLE copied").await });
    let a = airlock.clone();
    tokio::task::spawn_blocking(move || pending(&a, 1)).await.unwrap();
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'";
    let d = &doomed;
    eventually(10, "the query running upstream", || d.psql("postgres", sleeping).unwrap().trim() == "1");

    let stopped = Instant::now();
    doomed.stop();
    let code = clear_error("mid-query", tokio::time::timeout(Duration::from_secs(10), query).await.unwrap().unwrap());
    assert!(["57P01", "08006"].contains(&code.as_str()), "mid-query: {code}");
    let code = tokio::time::timeout(Duration::from_secs(10), copying.final_error()).await.unwrap();
    assert!(matches!(code.as_deref(), Some("57P01" | "08006")), "mid-copy: {code:?}");
    let code = clear_error("mid-hold", tokio::time::timeout(Duration::from_secs(10), hold).await.unwrap().unwrap());
    assert!(["57P01", "08006"].contains(&code.as_str()), "mid-hold: {code}");
    assert!(stopped.elapsed() < Duration::from_secs(10), "took {:?}", stopped.elapsed());
    let a = airlock.clone();
    assert!(tokio::task::spawn_blocking(move || pending(&a, 0)).await.unwrap().is_empty(), "the hold is withdrawn");

    // The bystander's transaction never noticed.
    assert_eq!(bystander.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0), 2);
    bystander.batch_execute("COMMIT").await.unwrap();
    still_serving(&airlock).await;
    for subject in ["mid-query", "mid-copy", "mid-hold"] {
        let s = recorded_end(&airlock, subject);
        assert_eq!(s["connection"], "doomed", "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_or_resets_mid_row_gives_a_clear_error() {
    let silent = Link::silent();
    let flaky = Link::to(std::net::SocketAddr::from(([127, 0, 0, 1], cluster().port)));
    let extra = format!(
        "{}{}",
        pg_connection("silent", &silent.addr.to_string(), "app", "app_rw", APP_PASSWORD),
        pg_connection("flaky", &flaky.addr.to_string(), "app", "app_rw", APP_PASSWORD)
    );
    let airlock = Airlock::start_with("connect_timeout = \"2s\"", &extra);
    let bystander = airlock.connect(&token("bystander", &["agents"]), "app-db").await.unwrap();

    let started = Instant::now();
    let code = clear_error("silent upstream", airlock.connect(&token("to-silent", &["agents"]), "silent").await);
    assert_eq!(code, "08006");
    assert!(started.elapsed() < Duration::from_secs(8), "waited {:?}", started.elapsed());
    // (Airlock's start-up check of the upstream role was the first to be left waiting.)
    assert!(silent.accepted() >= 1);

    let client = airlock.connect(&token("mid-row", &["fixtures", "agents"]), "flaky").await.unwrap();
    flaky.cut_next_read();
    let result = client.simple_query("SELECT repeat('x', 300) FROM generate_series(1, 100000)").await;
    assert_eq!(flaky.cuts(), 1);
    assert_eq!(clear_error("reset mid-row", result), "08006");
    // The next session through the same link is fine.
    let again = airlock.connect(&token("after-reset", &["agents"]), "flaky").await.unwrap();
    assert_eq!(again.query_one("SELECT 3", &[]).await.unwrap().get::<_, i32>(0), 3);
    assert_eq!(bystander.query_one("SELECT 4", &[]).await.unwrap().get::<_, i32>(0), 4);
    still_serving(&airlock).await;
    assert_eq!(recorded_end(&airlock, "mid-row")["connection"], "flaky");
}

/// A connection whose socket the test can drop at any moment, the way an agent that
/// crashes or loses its network leaves.
async fn vanishing(
    airlock: &Airlock,
    subject: &str,
    groups: &[&str],
) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let (client, conn) =
        airlock.pg_config(&token(subject, groups), "app-db").connect(tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_that_vanish_mid_statement_mid_copy_and_mid_hold_leave_nothing_running() {
    let airlock = Arc::new(Airlock::start());
    let setup = airlock.connect(&token("setup", FIXTURES), "app-db").await.unwrap();
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS vanish_copy, vanish_keep; CREATE TABLE vanish_copy (line text); \
             CREATE TABLE vanish_keep (id int)",
        )
        .await
        .unwrap();
    let bystander = airlock.connect(&token("bystander", &["agents"]), "app-db").await.unwrap();

    // Mid-statement: the query must not run on upstream for its full minute.
    let (client, conn) = vanishing(&airlock, "vanish-query", FIXTURES).await;
    let running = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60) -- vanish-marker").await });
    let marker = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%vanish-marker' AND pid <> pg_backend_pid()";
    eventually(10, "the query running upstream", || upstream(marker) == "1");
    conn.abort();
    let _ = running.await;
    eventually(5, "the abandoned query ended upstream", || upstream(marker) == "0");

    // Mid-COPY: nothing of the unfinished COPY lands.
    let (client, conn) = vanishing(&airlock, "vanish-copy", FIXTURES).await;
    let sink = client.copy_in::<_, Bytes>("COPY vanish_copy FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    for i in 0..1000 {
        sink.send(Bytes::from(format!("line {i}\n"))).await.unwrap();
    }
    let copying = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY vanish_copy%'";
    eventually(10, "the COPY running upstream", || upstream(copying) == "1");
    conn.abort();
    eventually(5, "the abandoned COPY ended upstream", || upstream(copying) == "0");
    assert_eq!(upstream("SELECT count(*) FROM vanish_copy"), "0");

    // Mid-hold: the approval is withdrawn, and approving it later runs nothing.
    let (client, conn) = vanishing(&airlock, "vanish-hold", &["agents"]).await;
    let held = tokio::spawn(async move { client.batch_execute("DROP TABLE vanish_keep").await });
    let a = airlock.clone();
    let list = tokio::task::spawn_blocking(move || pending(&a, 1)).await.unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    conn.abort();
    let _ = held.await;
    let a = airlock.clone();
    assert!(tokio::task::spawn_blocking(move || pending(&a, 0)).await.unwrap().is_empty(), "withdrawn");
    let approve = cli(&airlock, &["approve", &id]);
    assert!(!approve.status.success(), "a withdrawn request cannot be approved");
    assert_eq!(upstream("SELECT count(*) FROM pg_tables WHERE tablename = 'vanish_keep'"), "1");

    assert_eq!(bystander.query_one("SELECT 5", &[]).await.unwrap().get::<_, i32>(0), 5);
    still_serving(&airlock).await;
    for subject in ["vanish-query", "vanish-copy", "vanish-hold"] {
        recorded_end(&airlock, subject);
    }
}

#[test]
fn slow_handshakes_are_cut_off_at_the_handshake_timeout_however_they_trickle() {
    let airlock = Airlock::start_with("handshake_timeout = \"1s\"", "");
    let startup = airlock_postgres::startup::encode_startup([("user", "agent"), ("database", "app-db")]);
    // One byte at a time of the startup packet, and, after an accepted SSLRequest, of a
    // TLS ClientHello.
    let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let client_hello_start = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    for (what, prelude, trickle) in
        [("startup packet", &[][..], &startup[..]), ("TLS handshake", &ssl_request[..], &client_hello_start[..])]
    {
        let mut s = std::net::TcpStream::connect(airlock.pg).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let started = Instant::now();
        if !prelude.is_empty() {
            s.write_all(prelude).unwrap();
            let mut answer = [0u8; 1];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"S");
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        }
        let mut closed = false;
        for byte in trickle.iter().cycle().take(60) {
            if s.write_all(&[*byte]).is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        assert!(closed, "{what}: still open after {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(4), "{what}: closed only after {:?}", started.elapsed());
    }
    let out = airlock.psql(&token("ok", &["agents"]), "app-db", &["-At", "-c", "select 1"], None);
    assert_eq!(ok(&out).trim(), "1");
}

/// How many file descriptors the process holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_costs_bounded_memory() {
    let airlock = Airlock::start();
    let bystander = airlock.connect(&token("bystander", &["agents"]), "app-db").await.unwrap();
    let before = rss_kib(airlock.pid());

    // Ask for ~800 MB of rows, then never read again.
    let mut reader = RawPg::login(&airlock, "never-reads", &["agents", "fixtures"], "app-db").await;
    reader.query("SELECT repeat('x', 8000) FROM generate_series(1, 100000)").await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled = rss_kib(airlock.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = rss_kib(airlock.pid());
    assert!(later.saturating_sub(before) < 64 * 1024, "RSS grew from {before} KiB to {later} KiB");
    assert!(later.saturating_sub(stalled) < 8 * 1024, "RSS still growing: {stalled} KiB then {later} KiB");
    assert_eq!(bystander.query_one("SELECT 6", &[]).await.unwrap().get::<_, i32>(0), 6);
    drop(reader);
    let rows = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(''x'', 8000)%'";
    eventually(10, "the unread query ended upstream", || upstream(rows) == "0");
    still_serving(&airlock).await;
}

#[test]
fn ten_thousand_connections_opened_and_dropped_in_a_burst() {
    let extra = "\n[[connections]]\nname = \"api\"\nprotocol = \"http\"\nurl = \"http://127.0.0.1:9\"\nallow_groups = [\"agents\"]\n";
    let airlock = Airlock::start_with("", extra);
    let http = airlock.http.unwrap();
    // Settle, then take the baseline.
    ok(&airlock.psql(&token("warm", &["agents"]), "app-db", &["-At", "-c", "select 1"], None));
    let baseline = open_fds(airlock.pid());
    let started = Instant::now();
    let workers: Vec<_> = [airlock.pg, http, airlock.pg, http]
        .into_iter()
        .map(|addr| {
            std::thread::spawn(move || {
                let mut opened = 0;
                for _ in 0..2500 {
                    if let Ok(s) = std::net::TcpStream::connect(addr) {
                        opened += 1;
                        drop(s);
                    }
                }
                opened
            })
        })
        .collect();
    let opened: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let burst = started.elapsed();
    assert!(opened >= 9_900, "only {opened} of 10,000 connections opened");
    // Agents get in at once, and the descriptors are given back.
    let out = airlock.psql(&token("after-burst", &["agents"]), "app-db", &["-At", "-c", "select 8"], None);
    assert_eq!(ok(&out).trim(), "8");
    let pid = airlock.pid();
    eventually(10, "descriptors back to the baseline", || open_fds(pid) <= baseline + 2);
    assert!(http_get(airlock.admin, "/healthz").ends_with("ok\n"));
    eprintln!("burst of {opened} connections in {burst:?}; fds {baseline} -> {}", open_fds(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_closes_sessions_with_a_clear_error_and_loses_nothing_acknowledged() {
    let Some(disk) = support::SmallDisk::mount("airlock-full", "4m") else { return };
    let root = disk.path.clone();
    let config_path = root.join("airlock.toml");
    std::fs::write(&config_path, config(&root, "", "[recording]\nsegment_size = \"1MiB\"\n")).unwrap();
    let mut airlock = Airlock::start_config(root.clone(), config_path.clone());

    // Sessions that finish are acknowledged: Airlock closes the connection only once
    // their end is durable. Fill the disk with them.
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..400 {
        let subject = format!("fill-{n}");
        let sql = format!("SELECT '{subject}', md5(g::text) FROM generate_series(1, 2000) g");
        match raw_session(airlock.pg, &token(&subject, &["agents"]), &sql).await {
            Ok(messages) if messages.iter().any(|(tag, _)| *tag == b'E') => {
                refusal = Some(String::from_utf8_lossy(&messages.last().unwrap().1).into_owned());
                break;
            }
            Ok(_) => acknowledged.push(subject),
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    assert!(acknowledged.len() > 3, "the disk filled too soon to mean anything");
    let Err(refused) = airlock.connect(&token("late", &["agents"]), "app-db").await else {
        panic!("a new session got in on a full disk");
    };
    assert_eq!(sqlstate(&refused), "58030", "{refused}");
    assert!(http_get(airlock.admin, "/healthz").ends_with("ok\n"), "the gateway stays up");
    eprintln!("{} sessions acknowledged before the disk filled ({refusal:?})", acknowledged.len());

    // Free space, restart: every acknowledged session is there and the chain verifies.
    airlock.terminate();
    airlock.wait_exit(Duration::from_secs(20));
    disk.grow("64m");
    let restarted = Airlock::start_config(root.clone(), config_path);
    let out = local_cli(&restarted, &["verify"]);
    assert!(out.status.success(), "verify: {}", String::from_utf8_lossy(&out.stdout));
    let listed = sessions(&restarted);
    for subject in &acknowledged {
        assert!(listed.iter().any(|s| s["subject"] == *subject), "{subject} is missing from the recording");
    }
    drop(restarted);
    drop(airlock);
}
