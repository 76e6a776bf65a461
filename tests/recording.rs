//! Session recording end to end: real psql and tokio-postgres sessions through Airlock,
//! listed, replayed and verified with the CLI, and a kill -9 under load.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn a_psql_session_is_listed_replayed_and_verified() {
    let airlock = Airlock::start();
    let t = token("recorded-agent", FIXTURES);
    let sql = "DROP TABLE IF EXISTS rec_t; CREATE TABLE rec_t (id int, name text); \
               INSERT INTO rec_t VALUES (1, 'alpha'), (2, 'beta'), (3, NULL)";
    ok(&airlock.psql(&t, "app-db", &["-c", sql], None));
    ok(&airlock.psql(&t, "app-db", &["-c", "SELECT * FROM rec_t ORDER BY id"], None));

    let list = sessions(&airlock);
    let mine: Vec<_> = list.iter().filter(|s| s["subject"] == "recorded-agent").collect();
    assert_eq!(mine.len(), 2, "{list:?}");
    assert!(mine.iter().all(|s| s["connection"] == "app-db" && s["protocol"] == "postgres"));
    assert_eq!(mine[1]["statements"], 1);
    assert_eq!(mine[1]["end_reason"], "Terminated");

    let id = mine[1]["id"].as_str().unwrap();
    let text = ok(&local_cli(&airlock, &["replay", id]));
    assert!(text.contains("SELECT * FROM rec_t ORDER BY id"), "{text}");
    assert!(text.contains("alpha") && text.contains("beta") && text.contains("NULL"), "{text}");
    assert!(text.contains("SELECT 3"), "{text}");
    assert!(text.contains("session ended: the agent said goodbye (Terminate)"), "{text}");

    let jsonl = ok(&local_cli(&airlock, &["replay", &id[..8], "--format", "jsonl"]));
    let frames: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.first().unwrap()["kind"], "session_start");
    assert_eq!(frames.last().unwrap()["kind"], "session_end");
    let messages: Vec<&serde_json::Value> = frames.iter().filter_map(|f| f["messages"].as_array()).flatten().collect();
    assert!(messages.iter().any(|m| m["type"] == "query" && m["text"] == "SELECT * FROM rec_t ORDER BY id"));
    assert!(messages.iter().any(|m| m["type"] == "data_row" && m["values"] == serde_json::json!(["2", "beta"])));
    // The token never reaches the recording.
    assert!(!jsonl.contains(&t));

    let out = ok(&local_cli(&airlock, &["verify"]));
    assert!(out.starts_with("ok: "), "{out}");
}

/// A mistyped data directory is an error, not an empty history; an empty one verifies
/// only when that is expected.
#[test]
fn missing_or_empty_recordings_are_errors() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_airlock")).args(args).output().unwrap();
    for cmd in ["verify", "sessions"] {
        let out = run(&[cmd, "--data-dir", "/no/such/dir"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("no recordings in /no/such/dir"), "{cmd}: {err}");
    }
    let dir = std::env::temp_dir().join(format!("airlock-empty-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("recordings")).unwrap();
    let data_dir = dir.to_str().unwrap();
    let out = run(&["verify", "--data-dir", data_dir]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nothing to verify"));
    let out = run(&["verify", "--data-dir", data_dir, "--allow-empty"]);
    assert!(ok(&out).starts_with("ok: 0 segments"), "{}", ok(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_keeps_every_completed_session() {
    let airlock = Airlock::start();
    let completed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (completed, stop) = (completed.clone(), stop.clone());
        let addr = airlock.pg;
        workers.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let subject = format!("load-{w}-{n}");
                let sql = format!("SELECT 'marker {subject}', generate_series(1, 50)");
                // Returns once Airlock closed the connection, which it does only after
                // the session's end is durable.
                match raw_session(addr, &token(&subject, &["agents"]), &sql).await {
                    Ok(_) => completed.lock().unwrap().push((subject, std::time::Instant::now())),
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A close seen after this instant may be the kill itself, not a finished session.
    let killed_at = std::time::Instant::now();
    Command::new("kill").args(["-KILL", &airlock.pid().to_string()]).status().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let completed: Vec<String> =
        completed.lock().unwrap().iter().filter(|(_, at)| *at < killed_at).map(|(s, _)| s.clone()).collect();
    assert!(completed.len() > 5, "load too light to mean anything: {}", completed.len());

    let restarted = airlock.restart();
    let out = ok(&local_cli(&restarted, &["verify"]));
    assert!(out.starts_with("ok: "), "{out}");
    let list = sessions(&restarted);
    for subject in &completed {
        let s = list.iter().find(|s| s["subject"] == *subject).unwrap_or_else(|| panic!("{subject} missing"));
        assert_eq!(s["end_reason"], "Terminated", "{s}");
        let text = ok(&local_cli(&restarted, &["replay", s["id"].as_str().unwrap(), "--max-rows", "100"]));
        assert!(text.contains(&format!("marker {subject}")) && text.contains("SELECT 50"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_recording_fails_sessions_are_closed_and_refused() {
    let airlock = Airlock::start_with("", "[recording]\nsegment_size = \"1MiB\"\n");
    let idle = airlock.connect(&token("idle", &["agents"]), "app-db").await.unwrap();
    let busy = airlock.connect(&token("busy", &["agents"]), "app-db").await.unwrap();
    assert_eq!(idle.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);

    // The next segment cannot be created: the recordings directory is gone and a file
    // stands in its way. The open segment keeps accepting writes until it fills up.
    let recordings = airlock.dir.join("recordings");
    std::fs::rename(&recordings, airlock.dir.join("recordings.moved")).unwrap();
    std::fs::write(&recordings, b"not a directory").unwrap();
    let mut result =
        busy.simple_query("SELECT md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 40000) g").await;
    // The failure closes the session, mid-result or at the next statement.
    for _ in 0..100 {
        if result.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        result = busy.simple_query("SELECT 1").await;
    }
    let Err(err) = result else { panic!("the busy session was not closed") };
    assert!(sqlstate(&err) == "58030" || busy.is_closed(), "{err}");
    // The idle session is closed too, and nobody new gets in.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(idle.query_one("SELECT 1", &[]).await.is_err());
    let refused = airlock.connect(&token("late", &["agents"]), "app-db").await.err().unwrap();
    assert_eq!(sqlstate(&refused), "58030", "{refused}");
    assert!(airlock.log().contains("cannot write recordings"), "{}", airlock.log());
    let metrics = http_get(airlock.admin, "/metrics");
    assert!(metrics.contains("airlock_recording_failures_total 1"), "{metrics}");
    // Only the late session was refused; the two open ones were closed.
    assert!(
        metrics.contains(r#"airlock_connections_refused_total{endpoint="postgres",reason="recorder"} 1"#),
        "{metrics}"
    );
}
