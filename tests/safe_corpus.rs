//! What real clients send must stay allowed: every case of fixtures/sql/safe.sql runs, in
//! order on one session, through Airlock with the DEFAULT policy (and a 1s approvals
//! timeout, so a held statement fails fast) against the real database, and must succeed:
//! not held, not refused, and no error from PostgreSQL either.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

const SETUP: &str = "
DROP TABLE IF EXISTS safe_orders, safe_items, django_migrations, schema_migrations, _prisma_migrations,
  pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history;
CREATE TABLE safe_items (id serial PRIMARY KEY, name text NOT NULL, price numeric);
CREATE TABLE safe_orders (id serial PRIMARY KEY, item_id int REFERENCES safe_items (id), qty int);
CREATE TABLE django_migrations (id bigserial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL,
  applied timestamptz NOT NULL);
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20240101000000');
CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, finished_at timestamptz,
  migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
  applied_steps_count int NOT NULL DEFAULT 0);
CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
INSERT INTO pgbench_branches VALUES (1, 0);
INSERT INTO pgbench_tellers SELECT g, 1, 0 FROM generate_series(1, 10) g;
INSERT INTO pgbench_accounts SELECT g, 1, 0 FROM generate_series(1, 100) g;
";

struct Case {
    name: String,
    sql: String,
    /// Extended protocol with these text parameters.
    params: Option<Vec<String>>,
}

fn cases(items_oid: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sql/safe.sql")).unwrap();
    let mut out: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- case:") {
            out.push(Case { name: name.trim().to_owned(), sql: String::new(), params: None });
        } else if let Some(c) = out.last_mut() {
            if let Some(p) = line.strip_prefix("-- params:") {
                let p = p.trim();
                c.params =
                    Some(if p.is_empty() { vec![] } else { p.split(" | ").map(|s| s.trim().to_owned()).collect() });
            } else {
                c.sql.push_str(line);
                c.sql.push('\n');
            }
        }
    }
    for c in &mut out {
        c.sql = c.sql.trim().replace("{items_oid}", items_oid);
    }
    out
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}

struct Session(TcpStream);

impl Session {
    fn open(airlock: &Airlock, token: &str) -> Session {
        let s = TcpStream::connect(airlock.pg).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut session = Session(s);
        let startup = airlock_postgres::startup::encode_startup([("user", "agent"), ("database", "app-db")]);
        session.0.write_all(&startup).unwrap();
        assert_eq!(session.read().unwrap().0, b'R');
        let mut pw = token.as_bytes().to_vec();
        pw.push(0);
        session.0.write_all(&msg(b'p', &pw)).unwrap();
        session.until_ready();
        session
    }

    fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.0.read_exact(&mut head).ok()?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0; len - 4];
        self.0.read_exact(&mut body).ok()?;
        Some((head[0], body))
    }

    fn until_ready(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(m) = self.read() {
            if m.0 == b'G' {
                self.0.write_all(&msg(b'f', b"unexpected COPY FROM STDIN\0")).unwrap();
            }
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                break;
            }
        }
        out
    }

    fn run(&mut self, case: &Case) -> Vec<(u8, Vec<u8>)> {
        let bytes = match &case.params {
            None => {
                let mut b = Vec::new();
                cstr(&mut b, &case.sql);
                msg(b'Q', &b)
            }
            Some(params) => {
                let mut parse = Vec::new();
                cstr(&mut parse, "");
                cstr(&mut parse, &case.sql);
                parse.extend_from_slice(&0i16.to_be_bytes());
                let mut bind = Vec::new();
                cstr(&mut bind, "");
                cstr(&mut bind, "");
                bind.extend_from_slice(&0i16.to_be_bytes());
                bind.extend_from_slice(&(params.len() as i16).to_be_bytes());
                for p in params {
                    bind.extend_from_slice(&(p.len() as i32).to_be_bytes());
                    bind.extend_from_slice(p.as_bytes());
                }
                bind.extend_from_slice(&0i16.to_be_bytes());
                let mut execute = Vec::new();
                cstr(&mut execute, "");
                execute.extend_from_slice(&0i32.to_be_bytes());
                [msg(b'P', &parse), msg(b'B', &bind), msg(b'D', b"P\0"), msg(b'E', &execute), msg(b'S', b"")].concat()
            }
        };
        self.0.write_all(&bytes).unwrap();
        self.until_ready()
    }
}

fn error_text(body: &[u8]) -> String {
    match airlock_postgres::message::Fields::parse(body) {
        Ok(f) => format!("{} {}", f.code(), f.message()),
        Err(e) => format!("malformed ErrorResponse: {e}"),
    }
}

#[test]
fn real_clients_statements_stay_allowed() {
    let airlock = Airlock::start_with("", "\n[approvals]\ntimeout = \"1s\"\n");
    ok(&airlock.psql(&token("setup", FIXTURES), "app-db", &["-q", "-c", SETUP], None));
    let oid = cluster().psql("app", "select 'safe_items'::regclass::oid").unwrap().trim().to_owned();
    let cases = cases(&oid);
    assert!(cases.len() >= 100, "only {} cases", cases.len());

    let mut session = Session::open(&airlock, &token("client", &["agents"]));
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let replies = session.run(case);
        let mut problems: Vec<String> = replies
            .iter()
            .filter(|(t, b)| *t == b'N' && String::from_utf8_lossy(b).contains("holding"))
            .map(|_| "held for approval".to_owned())
            .collect();
        problems.extend(replies.iter().filter(|(t, _)| *t == b'E').map(|(_, b)| error_text(b)));
        if !replies.iter().any(|(t, _)| *t == b'Z') {
            problems.push("no ReadyForQuery (session lost)".into());
        }
        if !problems.is_empty() {
            let first_line = case.sql.lines().next().unwrap_or("");
            failures.push(format!("  #{} {}: {}\n      {first_line}", i + 1, case.name, problems.join("; ")));
        }
        if replies.iter().any(|(t, _)| *t == b'Z') {
            continue;
        }
        session = Session::open(&airlock, &token("client", &["agents"]));
    }
    assert!(
        failures.is_empty(),
        "{}/{} safe statements were not allowed to run:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
