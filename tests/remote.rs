//! Recordings shipped to S3-compatible object storage (`[recording.remote]`), against a
//! real S3 server (moto's, from `.ci/peers`) behind a link the test can take down: two
//! replicas each keep their own chain, sealed segments are uploaded, read back and only
//! then deleted locally, the header after records it, a lost replica's sessions replay
//! from the bucket, `verify` checks every replica's chain, uploads wait out an outage,
//! and retention deletes remote segments as it does local ones.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use airlock::recording::store;
use support::link::Link;
use support::{Airlock, cluster, ok, token};

/// A throwaway S3 server with one bucket, `recordings`.
struct S3 {
    child: Child,
    addr: SocketAddr,
}

impl S3 {
    fn start() -> S3 {
        let server = PathBuf::from(support::drivers_python("moto")).with_file_name("moto_server");
        let port = airlock::demo::free_port().unwrap();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run .ci/peers)", server.display()));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for("the S3 server", Duration::from_secs(30), || std::net::TcpStream::connect(addr).is_ok());
        let made = Command::new("curl").args(["-sf", "-X", "PUT"]).arg(format!("http://{addr}/recordings")).output();
        ok(&made.unwrap());
        S3 { child, addr }
    }

    /// Object keys under `prefix`.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out =
            Command::new("curl").arg(format!("http://{}/recordings?list-type=2&prefix={prefix}", self.addr)).output();
        let xml = ok(&out.unwrap());
        xml.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_owned).collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state_db() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("remote_state_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let _ = cluster().psql("postgres", "CREATE ROLE airlock_state LOGIN PASSWORD 'state-pw'");
    cluster().psql("postgres", &format!("CREATE DATABASE {name} OWNER airlock_state")).unwrap();
    name
}

/// A replica with shared state and recordings shipped through `link`.
fn replica(name: &str, db: &str, link: &Link, retention: Option<&str>) -> Airlock {
    let retention = retention.map(|r| format!("retention = \"{r}\"")).unwrap_or_default();
    let extra = format!(
        r#"
[recording]
segment_age = "1s"
{retention}

[recording.remote]
url = "s3://recordings/fleet"
endpoint = "http://{link}"
allow_http = true
access_key_id = "test-key"
secret_access_key = "test-secret"
upload_interval = "200ms"

[state]
url = "host=127.0.0.1 port={port} dbname={db} user=airlock_state password=state-pw sslmode=disable"
replica = "{name}"
heartbeat = "200ms"
"#,
        link = link.addr,
        port = cluster().port,
    );
    Airlock::start_with("", &extra)
}

fn recordings(airlock: &Airlock) -> PathBuf {
    store::recordings_dir(&airlock.dir)
}

/// Runs one psql session that leaves `marker` in the recording.
fn session(airlock: &Airlock, subject: &str, marker: &str) {
    let sql = format!("SELECT '{marker}' AS marker");
    let out = airlock.psql(&token(subject, &["agents"]), "app-db", &["-At", "-c", &sql], None);
    assert_eq!(ok(&out).trim(), marker);
}

/// Sessions until segment `n` is sealed (segments seal on write once 1 s old).
fn seal_through(airlock: &Airlock, subject: &str, n: u64) {
    wait_for("a sealed segment", Duration::from_secs(30), || {
        session(airlock, subject, "tick");
        let dir = recordings(airlock);
        store::list_segments(&dir).unwrap().last().is_some_and(|&last| last > n)
    });
}

fn uploaded(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("uploaded.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["segment"].as_u64().unwrap())
        .collect()
}

fn cli_config(airlock: &Airlock, args: &[&str]) -> std::process::Output {
    support::local_cli(airlock, args)
}

#[test]
fn sealed_segments_ship_to_object_storage_and_read_back_from_any_replica() {
    let s3 = S3::start();
    let link = Link::to(s3.addr);
    let db = state_db();
    let (a, b) = (replica("a", &db, &link, None), replica("b", &db, &link, None));
    session(&a, "agent-r1", "only-on-a-7731");
    session(&b, "agent-r2", "only-on-b-5519");
    seal_through(&a, "agent-r1", 0);
    seal_through(&b, "agent-r2", 0);

    // Uploaded, read back, then deleted locally; the next header records the upload.
    for (name, airlock) in [("a", &a), ("b", &b)] {
        let dir = recordings(airlock);
        wait_for("the first segment's upload", Duration::from_secs(30), || uploaded(&dir).contains(&0));
        assert!(!store::segment_path(&dir, 0).exists(), "{name}: the local copy of an uploaded segment stays");
        assert!(s3.keys(&format!("fleet/{name}/")).contains(&format!("fleet/{name}/{:020}.seg", 0)));
        seal_through(airlock, "tick", *store::list_segments(&dir).unwrap().last().unwrap());
        let headers: Vec<_> = store::list_segments(&dir)
            .unwrap()
            .into_iter()
            .map(|n| store::read_header(&store::segment_path(&dir, n)).unwrap().unwrap())
            .collect();
        assert!(headers.iter().all(|h| h.replica == name));
        assert!(headers.iter().any(|h| h.uploaded.iter().any(|(n, _)| *n == 0)), "{name}: upload not recorded");
    }

    // A is lost with its disk; its sealed sessions replay from the bucket through B.
    let first_of_a = support::sessions(&b)
        .into_iter()
        .find(|s| s["subject"] == "agent-r1" && s["replica"] == "a")
        .expect("A's session in the shared index");
    let a_dir = a.dir.clone();
    drop(a);
    assert!(!a_dir.exists());
    let replay = cli_config(&b, &["replay", first_of_a["id"].as_str().unwrap(), "--format", "jsonl"]);
    assert!(ok(&replay).contains("only-on-a-7731"));
    let verify = ok(&cli_config(&b, &["verify"]));
    assert!(verify.contains("replica a: ok") && verify.contains("replica b: ok"), "{verify}");

    // The store goes away: segments stay local and uploads wait, then catch up.
    link.set_down(true);
    let dir = recordings(&b);
    let before = uploaded(&dir).len();
    let last = *store::list_segments(&dir).unwrap().last().unwrap();
    seal_through(&b, "agent-r2", last + 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(uploaded(&dir).len(), before, "nothing can be uploaded while the store is down");
    assert!(store::segment_path(&dir, last).exists(), "a segment not uploaded was deleted");
    link.set_down(false);
    wait_for("uploads to catch up", Duration::from_secs(120), || uploaded(&dir).contains(&(last + 1)));
    assert!(!store::segment_path(&dir, last).exists());
    let verify = ok(&cli_config(&b, &["verify"]));
    assert!(verify.contains("replica b: ok"), "{verify}");
    assert!(b.log().contains("recording upload failed; will retry"));
}

#[test]
fn a_replica_that_loses_its_disk_continues_its_chain_and_tampering_is_caught() {
    let s3 = S3::start();
    let link = Link::to(s3.addr);
    let db = state_db();
    let mut r = replica("r", &db, &link, None);
    session(&r, "agent-r4", "before-the-disk-went-7001");
    seal_through(&r, "agent-r4", 0);
    // A graceful stop seals the open segment and ships it.
    r.terminate();
    assert!(r.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()));
    assert!(r.log().contains("final recording upload done"), "{}", r.log());
    let dir = recordings(&r);
    let shipped = uploaded(&dir);
    let left: Vec<u64> = store::list_segments(&dir).unwrap();
    assert!(left.iter().all(|n| store::read_footer(&store::segment_path(&dir, *n)).unwrap().is_none()));
    let config = std::fs::read_to_string(r.dir.join("airlock.toml")).unwrap();

    // The disk is gone; the same replica starts afresh and continues after the bucket.
    std::fs::remove_dir_all(&r.dir).unwrap();
    std::fs::create_dir_all(&r.dir).unwrap();
    std::fs::write(r.dir.join("airlock.toml"), config).unwrap();
    let r = Airlock::start_config(r.dir.clone(), r.dir.join("airlock.toml"));
    let listed = store::list_segments(&recordings(&r)).unwrap();
    let first = *listed.first().unwrap_or_else(|| panic!("no segments in {}: {}", recordings(&r).display(), r.log()));
    assert_eq!(first, shipped.iter().max().unwrap() + 1, "the chain did not continue");
    seal_through(&r, "agent-r4", first);
    wait_for("the new chain's upload", Duration::from_secs(30), || uploaded(&recordings(&r)).contains(&first));
    let verify = ok(&cli_config(&r, &["verify"]));
    assert!(verify.contains("replica r: ok"), "{verify}");
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&ok(&cli_config(&r, &["sessions", "--json"]))).unwrap();
    let old = sessions.iter().find(|s| s["subject"] == "agent-r4").unwrap();
    assert!(
        ok(&cli_config(&r, &["replay", old["id"].as_str().unwrap(), "--format", "jsonl"]))
            .contains("before-the-disk-went-7001")
    );

    // One byte changed in the bucket, same size: verify downloads afresh and fails.
    let tamper = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test-key",
                  aws_secret_access_key="test-secret", region_name="us-east-1")
key = "fleet/r/%020d.seg" % 0
body = bytearray(s3.get_object(Bucket="recordings", Key=key)["Body"].read())
body[len(body) // 2] ^= 0x40
s3.put_object(Bucket="recordings", Key=key, Body=bytes(body))
"#;
    let python = support::drivers_python("boto3");
    ok(&Command::new(python).args(["-c", tamper, &format!("http://{}", s3.addr)]).output().unwrap());
    let verify = cli_config(&r, &["verify"]);
    assert!(!verify.status.success(), "a tampered remote segment verified");
    assert!(String::from_utf8_lossy(&verify.stderr).contains("replica r: verification failed: segment 0"));
}

#[test]
fn retention_deletes_remote_segments_and_records_it() {
    let s3 = S3::start();
    let link = Link::to(s3.addr);
    let db = state_db();
    // A replica that is gone for good (a Deployment's old pod) leaves a chain behind.
    let old = replica("old", &db, &link, Some("2s"));
    seal_through(&old, "agent-r5", 0);
    wait_for("the old replica's upload", Duration::from_secs(30), || uploaded(&recordings(&old)).contains(&0));
    Command::new("kill").args(["-KILL", &old.pid().to_string()]).status().unwrap();
    let r = replica("r", &db, &link, Some("2s"));
    let dir = recordings(&r);
    seal_through(&r, "agent-r3", 0);
    wait_for("an upload", Duration::from_secs(30), || uploaded(&dir).contains(&0));
    // Two seconds on, segment 0 is deleted remotely and the next header says so.
    wait_for("remote retention", Duration::from_secs(60), || {
        session(&r, "agent-r3", "tick");
        !s3.keys("fleet/r/").contains(&format!("fleet/r/{:020}.seg", 0))
    });
    seal_through(&r, "agent-r3", *store::list_segments(&dir).unwrap().last().unwrap());
    let verify = ok(&cli_config(&r, &["verify"]));
    assert!(verify.contains("replica r: ok") && !verify.contains(" 0 retired"), "{verify}");
    // The record is in a later header, local or remote (verify gathered them all).
    let every = r.dir.join("remote-cache/r");
    let recorded = store::list_segments(&every)
        .unwrap()
        .into_iter()
        .filter_map(|n| store::read_header(&store::segment_path(&every, n)).ok()?.ok())
        .any(|h| !h.retired.is_empty());
    assert!(recorded, "no header records a retired segment");
    // The gone replica's chain goes whole once all of it is past retention.
    wait_for("the gone replica's chain to be deleted", Duration::from_secs(60), || s3.keys("fleet/old/").is_empty());
    assert!(r.log().contains("deleted the recordings of a replica that is gone"));
    let verify = ok(&cli_config(&r, &["verify"]));
    assert!(!verify.contains("replica old"), "{verify}");
    drop(old);
}
