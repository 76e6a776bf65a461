//! Real drivers through Airlock against a real PostgreSQL, with a `[[masking]]` column
//! rule on: each runs its program from `tests/drivers/` and must get every value right.
//! A driver whose runtime is missing fails its test with a message saying what to
//! install (`.ci/run` installs them all).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const MASKING: &str = r#"
[[masking]]
connections = ["app-db"]
columns = ["*.drv_people.password_hash"]
"#;

const SETUP: &str = "DROP TABLE IF EXISTS drv_people; \
    CREATE TABLE drv_people (id int primary key, name text, password_hash text); \
    INSERT INTO drv_people VALUES (1, 'alice', 'bcrypt-secret-alice'), (2, 'bob', 'bcrypt-secret-bob')";

fn airlock() -> Airlock {
    let airlock = Airlock::start_with("", MASKING);
    ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-q", "-c", SETUP], None));
    airlock
}

/// The first of `candidates` that exists, or a failure naming what to install.
fn require(candidates: &[&str], install: &str) -> String {
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| panic!("missing {}: install {install}", candidates.join(" or ")))
}

#[test]
fn pgjdbc_keeps_every_value_past_its_prepare_threshold() {
    let java = require(&["/usr/bin/java"], "a JDK (apt-get install default-jdk-headless)");
    let jar = require(&["/usr/share/java/postgresql.jar"], "pgjdbc (apt-get install libpostgresql-jdbc-java)");
    let airlock = airlock();
    let url = format!("jdbc:postgresql://127.0.0.1:{}/app-db", airlock.pg.port());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/Jdbc.java");
    let out = Command::new(java)
        .args(["-cp", &jar])
        .arg(source)
        .args([&url, &token("agent-7", &["agents"])])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
