//! The lexer against PostgreSQL itself: for every tricky form, the statements Airlock
//! splits a query string into are the statements the server runs (counted by its
//! CommandCompletes), with `standard_conforming_strings` on and off.
#![allow(clippy::unwrap_used)]

mod support;
use airlock_postgres::sql::lexer::Dialect;
use airlock_postgres::sql::split_with;
use support::*;
use tokio_postgres::SimpleQueryMessage;

/// Harmless query strings whose statement count a lexer that is wrong about one
/// construct would get wrong.
const CASES: &[&str] = &[
    "select 1 --x\r; select 2",
    "select 1 --x\n; select 2",
    "select 1 --x\r\n; select 2",
    "select 1 /* a /* b */ ; */; select 2",
    "select 1 /*/ ; */; select 2",
    "select 1 /* ** ; **/; select 2",
    "select 'a''b;c'; select 2",
    "select E'a\\'; select 2'; select 3",
    "select e'\\\\'; select 2",
    "select 'a'\n'b;'; select 2",
    "select 'a'\r'b;'; select 2",
    "select 'a' -- c\n 'b;'; select 2",
    "select E'a'\n'\\'; select 2'; select 3",
    "select x'0F'\n'F0'; select 1",
    "select B'01'; select X'0F'",
    "select n'a;b'; select 2",
    "select $$;$$; select $a$ ; $a$",
    "select $a$ $b$ ; $a$; select 2",
    "select $a$ $ab$ ; $a$; select 2",
    "select U&'d\\0061t;a'; select 2",
    "select U&'d!0061t;a' uescape '!'; select 2",
    "select \"a;b\" from (select 1 as \"a;b\") s; select 2",
    "select 1\x0c; select 2",
    "select 1\t;\x0bselect 2",
    "select 1; -- ; select 2",
    "select 1 +-- x\n 1; select 2",
    "select 1 */* x */ 1; select 2",
    "select 'x\\'; select 2; --'",
    "select 'x\\''; select 2; --'",
    "select N'x\\'; select 2; --'",
    "select 1 as a$b$c; select 2",
    "select 1;;; select 2;",
];

#[tokio::test]
async fn statements_split_as_the_server_splits_them() {
    let c = cluster();
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(c.port)
        .user(airlock::demo::SUPERUSER)
        .password(&c.superuser_password)
        .dbname("app")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut failures = Vec::new();
    let mut compared = 0;
    for (setting, dialect) in [("on", Dialect::STANDARD), ("off", Dialect::BACKSLASH_QUOTES)] {
        client.simple_query(&format!("set standard_conforming_strings = {setting}")).await.unwrap();
        for sql in CASES {
            let ours = split_with(sql, dialect).len();
            let theirs = match client.simple_query(sql).await {
                Ok(messages) => messages.iter().filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))).count(),
                // The server refused the whole string: nothing ran, nothing to compare.
                Err(_) => continue,
            };
            compared += 1;
            if ours != theirs {
                failures
                    .push(format!("standard_conforming_strings={setting}: {sql:?}: Airlock {ours}, server {theirs}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Refused whole: `U&` strings without standard strings, and `\v` before
    // PostgreSQL 16 (where it is no white space).
    assert!(compared >= 2 * CASES.len() - 4, "only {compared} cases ran");
}
