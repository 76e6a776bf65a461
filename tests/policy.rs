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
    std::fs::remove_dir_all(dir).unwrap();
}
