//! The web console against real peers: a test OIDC provider (tests/console/idp.py),
//! PostgreSQL, psql, and Debian's Chromium driven by Playwright
//! (tests/console/browser.py). The browser decides; the effect is checked here, on
//! the database itself.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airlock::demo::{RunAs, spawn_tied, tied_command};
use sha2::Digest;
use support::http_api::Api;
use support::sshd::{AgentKey, Sshd, run, ssh_cmd};
use support::{API_KEY, APP_PASSWORD, Airlock, cluster};

/// The agent key whose subject is also an approver's (self-approval).
const ADA_AGENT_KEY: &str = "ak_console_ada_agent_000000000000";
/// An approver's API key, for the token sign-in.
const BOB_KEY: &str = "ak_console_bob_approver_0000000000";

const CHROMIUM: &str = "/usr/bin/chromium";

/// The test IdP, killed when dropped.
struct Idp {
    child: Child,
    issuer: String,
}

impl Idp {
    fn start(python: &str, redirect_uri: &str) -> Idp {
        let users = r#"{"ada": ["sre"], "carol": ["audit"], "dave": ["dev"]}"#;
        let mut cmd = tied_command(python, RunAs::Me, "KILL");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/idp.py"))
            .args(["--client-id", "airlock-console", "--redirect-uri", redirect_uri, "--users", users])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = spawn_tied(cmd).expect("start the test IdP");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("IdP's first line");
        let issuer = line.trim().strip_prefix("issuer ").unwrap_or_else(|| panic!("IdP said {line:?}")).to_owned();
        Idp { child, issuer }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn write_config(dir: &Path, admin_port: u16, issuer: &str, ssh: &str) -> PathBuf {
    let pg_port = cluster().port;
    let config = format!(
        r#"
data_dir = "{dir}"

[listen]
postgres = "127.0.0.1:0"
admin = "127.0.0.1:{admin_port}"
ssh = "127.0.0.1:0"
http = "127.0.0.1:0"

[postgres]
allow_plaintext_loopback = true

[auth]
issuer = "{issuer}"
jwks_url = "{issuer}/jwks.json"
approver_groups = ["sre"]

[[auth.api_keys]]
subject = "ci-bot"
groups = ["agents"]
sha256 = "{agent}"

[[auth.api_keys]]
subject = "ada"
groups = ["agents"]
sha256 = "{ada}"

[[auth.api_keys]]
subject = "bob"
groups = ["sre"]
sha256 = "{bob}"

[console]
auditor_groups = ["audit"]

[console.oidc]
client_id = "airlock-console"

[[connections]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:{pg_port}"
database = "app"
user = "app_rw"
password = {{ env = "AIRLOCK_TEST_APP_PASSWORD" }}
allow_groups = ["agents"]
tls = "disable"
{ssh}"#,
        dir = dir.display(),
        agent = sha256_hex(API_KEY),
        ada = sha256_hex(ADA_AGENT_KEY),
        bob = sha256_hex(BOB_KEY),
    );
    let path = dir.join("airlock.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn table_exists(name: &str) -> bool {
    let out = cluster().psql("app", &format!("SELECT to_regclass('public.{name}') IS NOT NULL")).unwrap();
    out.trim() == "t"
}

#[test]
fn approvers_decide_and_auditors_replay_in_a_real_browser() {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: run .ci/peers (Debian's chromium package)");
    let python = support::drivers_python("playwright, jwt");
    let dir = std::env::temp_dir().join(format!("airlock-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let admin_port = airlock::demo::free_port().unwrap();
    let idp = Idp::start(&python, &format!("http://127.0.0.1:{admin_port}/console/oidc/callback"));
    let sshd = Sshd::start(&dir);
    let agent_key = AgentKey::new(&dir, "agent_key", "ci-bot", &["agents"]);
    let api = Api::start(&dir);
    let http = format!(
        "\n[[connections]]\nname = \"tickets\"\nprotocol = \"http\"\nurl = \"http://{}\"\nallow_groups = [\"agents\"]\n",
        api.plain
    );
    let ssh = format!("{}{}{http}", agent_key.config, sshd.connection("build-box", r#"["agents"]"#, ""));
    let config = write_config(&dir, admin_port, &idp.issuer, &ssh);
    let airlock = Airlock::start_config(dir.clone(), config);

    // An SSH session, for the replay's terminal player.
    let ssh_port = airlock.ssh.expect("the SSH endpoint listens").port();
    let out = run(
        ssh_cmd(ssh_port, &agent_key.path, "build-box").arg("echo player-marker; uname -s"),
        std::time::Duration::from_secs(30),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("player-marker"), "{out:?}");
    // An HTTP session, for the replay's exchanges (its JSON comes back masked).
    let out = Command::new("curl")
        .args(["-sS", "-H", &format!("Authorization: Bearer {API_KEY}")])
        .arg(format!("http://{}/tickets/api/json", airlock.http.expect("the HTTP endpoint listens")))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"user\"") && !body.contains("alice@example.com"), "{body}");

    cluster()
        .psql(
            "app",
            "DROP TABLE IF EXISTS console_approve, console_deny, console_self, console_people;
             CREATE TABLE console_approve (id int); CREATE TABLE console_deny (id int);
             CREATE TABLE console_self (id int);
             CREATE TABLE console_people (id int, email text);
             INSERT INTO console_people VALUES (1, 'grace@example.com'), (2, 'alan@example.com');
             ALTER TABLE console_approve OWNER TO app_rw; ALTER TABLE console_deny OWNER TO app_rw;
             ALTER TABLE console_self OWNER TO app_rw; ALTER TABLE console_people OWNER TO app_rw;",
        )
        .unwrap();

    // Screenshots go to docs/console when asked (to refresh the README's), else beside the test.
    let shots = std::env::var("AIRLOCK_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| dir.join("screenshots"));
    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/browser.py"))
        .env("CONSOLE", format!("http://{}", airlock.admin))
        .env("PG_CONNINFO", airlock.conninfo("app-db", "disable"))
        .env("AGENT_KEY", API_KEY)
        .env("ADA_AGENT_KEY", ADA_AGENT_KEY)
        .env("BOB_KEY", BOB_KEY)
        .env("SHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .env("IDP", &idp.issuer)
        .env("AIRLOCK_TEST_APP_PASSWORD", APP_PASSWORD)
        .output()
        .expect("run the browser scenarios");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser scenarios failed (screenshots in {}):\n{stdout}\n{stderr}\n--- airlock log tail ---\n{}",
        shots.display(),
        airlock.log().lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{stdout}");

    // Judged on the database: the approved DROP ran, the denied and the self-approved
    // ones did not.
    assert!(!table_exists("console_approve"), "the approved DROP did not run");
    assert!(table_exists("console_deny"), "the denied DROP ran");
    assert!(table_exists("console_self"), "a self-approved DROP ran");
    // Nothing of the sign-ins or the masked value leaked into the log.
    let log = airlock.log();
    assert!(!log.contains("grace@example.com"), "the unmasked email is in the log");
    drop(airlock);
    drop(idp);
    drop(sshd);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The replay page's terminal player: its emulator and controls, under Node's own
/// test runner (tests/console/player.test.mjs).
#[test]
fn the_terminal_player_passes_its_own_tests() {
    let out = Command::new("node")
        .args(["--test", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/player.test.mjs")])
        .output()
        .expect("run node (installed by .ci/peers)");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
