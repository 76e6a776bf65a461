//! Parsing, validation and error locations.

use super::*;

const GOOD: &str = r#"
data_dir = "d"

[auth]
dev_tokens = true

[[connections]]
name = "app-db"
protocol = "postgres"
address = "127.0.0.1:5432"
database = "app"
user = "app_rw"
password = { env = "APP_DB_PASSWORD" }
allow_groups = ["agents"]

[[connections]]
name = "other"
protocol = "postgres"
address = "db.internal:5432"
database = "x"
user = "y"
allow_groups = []
"#;

#[test]
fn validation_error_names_key_and_line() {
    let err = Config::parse(GOOD, PathBuf::new()).unwrap_err();
    assert_eq!(err.key, "connections[1].allow_groups");
    assert_eq!(err.line, Some(22));
    assert!(err.to_string().starts_with("line 22: connections[1].allow_groups: is empty"), "{err}");
}

#[test]
fn parse_error_names_line() {
    let err = Config::parse("[listen]\npostgres = \"nope\"\n", PathBuf::new()).unwrap_err();
    assert_eq!((err.line, err.key.as_str()), (Some(2), "listen.postgres"));
    let err = Config::parse(
        "[auth]\ndev_tokens = true\n[[connections]]\nname = \"a\"\nprotocol = \"postgres\"\naddress = \"h:1\"\n\
         [[connections]]\nname = \"b\"\nprotocol = \"nope\"\naddress = \"h:1\"\n",
        PathBuf::new(),
    )
    .unwrap_err();
    assert_eq!((err.line, err.key.as_str()), (Some(9), "connections[1].protocol"), "{err}");
    let err = Config::parse("[limits]\nhandshake_timeout = \"soon\"\n", PathBuf::new()).unwrap_err();
    assert!(err.message.contains("not a duration"), "{err}");
    let err = Config::parse("[auth]\nisuer = \"x\"\n", PathBuf::new()).unwrap_err();
    assert!(err.message.contains("unknown field `isuer`"), "{err}");
    assert_eq!(err.line, Some(2));
}

#[test]
fn good_config_loads_with_defaults() {
    let text = GOOD.replace("allow_groups = []", "allow_groups = [\"ops\"]");
    let c = Config::parse(&text, PathBuf::from("/etc/airlock")).unwrap();
    assert_eq!(c.data_dir(), PathBuf::from("/etc/airlock/d"));
    assert_eq!(c.listen.postgres.port(), 15432);
    assert_eq!(c.connections[1].host(), "db.internal");
    assert_eq!(c.connections[0].tls, UpstreamTls::Prefer);
    assert_eq!(c.limits.max_message_size, 64 << 20);
}

#[test]
fn sizes_and_addresses() {
    assert_eq!(parse_size("64MiB"), Some(64 << 20));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("1x"), None);
    assert_eq!(split_host_port("[::1]:5432"), Some(("::1", 5432)));
    assert_eq!(split_host_port("db:x"), None);
}
