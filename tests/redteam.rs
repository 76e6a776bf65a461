//! Red team: a hostile agent against the DEFAULT policy, judged by effect on a real
//! PostgreSQL (DESIGN.md, "Threat model").
//!
//! Every attack sets up its own victim (a 5000-row table owned by the upstream role Airlock
//! logs in as, so the upstream WOULD do the damage if asked), runs as `attacker` (group
//! `agents`) through Airlock with a 1s approvals timeout (nobody approves), and is then
//! judged on the database itself, as the superuser: the table is still there with every
//! row unchanged, role attributes, role/database settings and grants are unchanged, no
//! file was written, no file or masked secret reached the agent's bytes, and the agent's
//! connection still answers (or was closed with an error). Held, denied and refused are
//! all passes; nothing here looks at Airlock's classification.
//!
//! One test per category; each runs every variant, prints one line per variant and fails
//! at the end listing every variant that got through and what the agent saw.
//!
//! Categories whose attacks need rights a plain role lacks (server files, programs,
//! signalling, settings, stats) or that change role/database-wide settings run on their
//! own upstream role and database (`rt_<category>`, reached through an extra
//! `[[connections]]` entry `rt-<category>`), granted exactly those rights, so the tests
//! cannot disturb each other or the other test binaries' `app_rw`.
//!
//! `REDTEAM_CONTROL=1` runs every attack with an allow-everything token instead (the
//! harness's `fixtures` group) and lists the attacks that did NO damage even then: a
//! check that each attack is real, not a dud.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use support::*;

/// Rows in every victim table: more than any plausible rows-affected guard.
const ROWS: u32 = 5000;
/// Held statements are refused after this, as nobody approves in these tests.
const APPROVALS: &str = "\n[approvals]\ntimeout = \"1s\"\n";
/// Content of a server-side file the agent must never read.
const FILE_SECRET: &str = "ZebraQuartz7731kiwi";
/// Masked column values (no built-in detector matches them: only column rules protect them).
const HASH_SECRET: &str = "Zq8Rw3Lk5Tn9Vb2Xc7Mj";
const TOKEN_SECRET: &str = "Pt4Gh8Ws2Ny6Qd1Fu9Ke";

const VICTIM: &str = "create table {t} (id int primary key, v text not null);
insert into {t} select g, 'row ' || g from generate_series(1, 5000) g;
alter table {t} owner to {role};";

fn control() -> bool {
    std::env::var_os("REDTEAM_CONTROL").is_some()
}

// ---------------------------------------------------------------------------------------
// Frontend messages
// ---------------------------------------------------------------------------------------

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(v: &mut Vec<u8>, s: &[u8]) {
    v.extend_from_slice(s);
    v.push(0);
}

/// One frontend message; templates in names and SQL are filled in when it is sent.
#[derive(Clone)]
enum M {
    Parse(String, Vec<u8>),
    /// portal, statement, text parameters, binary results
    Bind(String, String, Vec<String>, bool),
    Describe(u8, String),
    Execute(String, i32),
    Close(u8, String),
    Sync,
    Query(Vec<u8>),
    /// Any message: tag and body.
    Raw(u8, Vec<u8>),
}

fn pa(name: &str, sql: &str) -> M {
    M::Parse(name.into(), sql.as_bytes().to_vec())
}
fn bi(portal: &str, stmt: &str) -> M {
    M::Bind(portal.into(), stmt.into(), vec![], false)
}
fn bip(portal: &str, stmt: &str, params: &[&str]) -> M {
    M::Bind(portal.into(), stmt.into(), params.iter().map(|p| p.to_string()).collect(), false)
}
fn ex(portal: &str) -> M {
    M::Execute(portal.into(), 0)
}
fn sy() -> M {
    M::Sync
}
fn qm(sql: &str) -> M {
    M::Query(sql.as_bytes().to_vec())
}

impl M {
    fn encode(&self, cx: &Ctx) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            M::Parse(name, sql) => {
                cstr(&mut b, cx.fill(name).as_bytes());
                cstr(&mut b, &cx.fill_bytes(sql));
                b.extend_from_slice(&0i16.to_be_bytes());
                msg(b'P', &b)
            }
            M::Bind(portal, stmt, params, binary) => {
                cstr(&mut b, cx.fill(portal).as_bytes());
                cstr(&mut b, cx.fill(stmt).as_bytes());
                b.extend_from_slice(&0i16.to_be_bytes());
                b.extend_from_slice(&(params.len() as i16).to_be_bytes());
                for p in params {
                    let p = cx.fill(p);
                    b.extend_from_slice(&(p.len() as i32).to_be_bytes());
                    b.extend_from_slice(p.as_bytes());
                }
                if *binary {
                    b.extend_from_slice(&1i16.to_be_bytes());
                    b.extend_from_slice(&1i16.to_be_bytes());
                } else {
                    b.extend_from_slice(&0i16.to_be_bytes());
                }
                msg(b'B', &b)
            }
            M::Describe(kind, name) => {
                b.push(*kind);
                cstr(&mut b, cx.fill(name).as_bytes());
                msg(b'D', &b)
            }
            M::Execute(portal, max) => {
                cstr(&mut b, cx.fill(portal).as_bytes());
                b.extend_from_slice(&max.to_be_bytes());
                msg(b'E', &b)
            }
            M::Close(kind, name) => {
                b.push(*kind);
                cstr(&mut b, cx.fill(name).as_bytes());
                msg(b'C', &b)
            }
            M::Sync => msg(b'S', b""),
            M::Query(sql) => {
                cstr(&mut b, &cx.fill_bytes(sql));
                msg(b'Q', &b)
            }
            M::Raw(tag, body) => msg(*tag, &cx.fill_bytes(body)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A raw client that keeps every byte the agent receives
// ---------------------------------------------------------------------------------------

struct Wire {
    s: TcpStream,
    got: Vec<u8>,
    open: bool,
    hung: bool,
    errors: usize,
}

fn error_fields(body: &[u8]) -> (String, String) {
    match airlock_postgres::message::Fields::parse(body) {
        Ok(f) => (f.code().to_owned(), f.message().to_owned()),
        Err(e) => (String::new(), format!("malformed ErrorResponse: {e}")),
    }
}

impl Wire {
    fn connect(addr: SocketAddr, token: &str, db: &str, params: &[(String, String)]) -> Result<Wire, String> {
        let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut w = Wire { s, got: Vec::new(), open: true, hung: false, errors: 0 };
        let mut body = 196608i32.to_be_bytes().to_vec();
        let fixed = [("user".to_owned(), "agent".to_owned()), ("database".to_owned(), db.to_owned())];
        for (k, v) in fixed.iter().chain(params) {
            cstr(&mut body, k.as_bytes());
            cstr(&mut body, v.as_bytes());
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend(body);
        w.send(&packet);
        loop {
            match w.read() {
                Some((b'R', body)) if body == [0, 0, 0, 3] => {
                    let mut pw = token.as_bytes().to_vec();
                    pw.push(0);
                    w.send(&msg(b'p', &pw));
                }
                Some((b'E', body)) => {
                    let (code, text) = error_fields(&body);
                    return Err(format!("{code} {text}"));
                }
                Some((b'Z', _)) => return Ok(w),
                Some(_) => {}
                None => return Err(if w.hung { "no answer".into() } else { "closed".into() }),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        if self.open && self.s.write_all(bytes).is_err() {
            self.open = false;
        }
    }

    fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        if !self.open {
            return None;
        }
        let mut head = [0u8; 5];
        if let Err(e) = self.s.read_exact(&mut head) {
            self.hung = matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
            self.open = false;
            return None;
        }
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len < 4 {
            self.open = false;
            return None;
        }
        let mut body = vec![0; len as usize - 4];
        if let Err(e) = self.s.read_exact(&mut body) {
            self.hung = matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
            self.open = false;
            return None;
        }
        self.got.extend_from_slice(&head);
        self.got.extend_from_slice(&body);
        if head[0] == b'E' {
            self.errors += 1;
        }
        Some((head[0], body))
    }

    /// Reads until `n` ReadyForQuery; answers COPY FROM STDIN with CopyFail.
    fn until_ready(&mut self, n: usize) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut seen = 0;
        while seen < n {
            let Some(m) = self.read() else { break };
            match m.0 {
                b'G' | b'W' => self.send(&msg(b'f', b"redteam\0")),
                b'Z' => seen += 1,
                _ => {}
            }
            out.push(m);
        }
        out
    }

    /// First column of the first row of `sql`.
    fn value(&mut self, sql: &str) -> Option<String> {
        self.send(&msg(b'Q', format!("{sql}\0").as_bytes()));
        let replies = self.until_ready(1);
        let (_, body) = replies.iter().find(|(t, _)| *t == b'D')?;
        let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
        Some(String::from_utf8_lossy(&body[6..6 + len.max(0) as usize]).into_owned())
    }

    fn close(mut self) {
        self.send(&msg(b'X', b""));
    }
}

/// What the agent was told, briefly.
fn summarize(replies: &[(u8, Vec<u8>)], w: &Wire) -> String {
    let held = replies.iter().any(|(t, b)| *t == b'N' && String::from_utf8_lossy(b).contains("holding"));
    let rows = replies.iter().filter(|(t, _)| *t == b'D').count();
    let mut parts = Vec::new();
    for (t, b) in replies {
        if *t == b'E' {
            let (code, text) = error_fields(b);
            let text: String = if text.contains("Airlock") || text.contains("approval") {
                "airlock".into()
            } else {
                text.chars().take(60).collect()
            };
            parts.push(format!("{code} {text}"));
        }
    }
    let mut s = if parts.is_empty() { format!("ok({rows} rows)") } else { parts.join(", ") };
    if held {
        s.push_str(" [held]");
    }
    if w.hung {
        s.push_str(" [NO ANSWER]");
    } else if !w.open {
        s.push_str(" [closed]");
    }
    s
}

// ---------------------------------------------------------------------------------------
// Targets: which upstream role and database the attacker's connection reaches
// ---------------------------------------------------------------------------------------

struct Target {
    conn: String,
    role: String,
    db: String,
    config: String,
}

impl Target {
    /// Runs `sql` as the superuser; the output without the command tags of leading SETs.
    fn sql(&self, sql: &str) -> Result<String, String> {
        cluster()
            .psql(&self.db, sql)
            .map(|s| s.lines().skip_while(|l| *l == "SET").collect::<Vec<_>>().join("\n").trim().to_owned())
            .map_err(|e| e.to_string().trim().to_owned())
    }
}

/// The harness's own `app-db` connection: role `app_rw`, database `app`.
fn app() -> Target {
    Target { conn: "app-db".into(), role: "app_rw".into(), db: "app".into(), config: String::new() }
}

/// A dedicated upstream role and database for one category, with `grants` (templated with
/// `{role}`) run as the superuser in it.
fn isolated(name: &str, grants: &str) -> Target {
    let role = format!("rt_{name}");
    let c = cluster();
    c.psql("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD '{APP_PASSWORD}'")).unwrap();
    c.psql("postgres", &format!("CREATE DATABASE {role} OWNER {role}")).unwrap();
    if !grants.is_empty() {
        c.psql(&role, &grants.replace("{role}", &role)).unwrap();
    }
    let config = format!(
        "\n[[connections]]\nname = \"rt-{name}\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:{}\"\n\
         database = \"{role}\"\nuser = \"{role}\"\npassword = {{ env = \"AIRLOCK_TEST_APP_PASSWORD\" }}\n\
         allow_groups = [\"agents\"]\ntls = \"disable\"\n",
        c.port
    );
    Target { conn: format!("rt-{name}"), role: role.clone(), db: role, config }
}

const FILE_GRANTS: &str = "GRANT pg_read_server_files, pg_write_server_files, pg_execute_server_program TO {role};
GRANT EXECUTE ON FUNCTION pg_read_file(text), pg_read_file(text, bigint, bigint), pg_read_binary_file(text),
  pg_ls_dir(text), lo_import(text), lo_import(text, oid), lo_export(oid, text) TO {role};";

/// A file only the server can read, holding FILE_SECRET.
fn secret_file() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = cluster().dir.join("rt-secret.txt");
        std::fs::write(&path, format!("{FILE_SECRET}\n")).unwrap();
        path.display().to_string()
    })
}

// ---------------------------------------------------------------------------------------
// Attacks as data
// ---------------------------------------------------------------------------------------

enum Step {
    /// Sent in one write (pipelined); waits for one ReadyForQuery per Sync or Query.
    Send(Vec<M>),
    /// A new attacker session (for settings that apply to the next connection).
    Reconnect,
    /// A `psql -f` session with extra environment and a script of exact bytes.
    Psql(Vec<(String, String)>, Vec<u8>),
}

enum Check {
    /// The table exists with all ROWS rows, unchanged, and is readable within 3s.
    Intact(String),
    /// A superuser query returns this.
    Eq(String, String),
    /// A superuser query returns after the attack what it returned before.
    Same(String),
    /// This text (case-insensitive) never reaches the agent.
    Unseen(String),
    /// This secret never reaches the agent in any recognisable form.
    Secret(String),
    /// This server-side file was not created.
    NoFile(String),
    /// The victim session still answers.
    VictimAlive,
}

struct Attack {
    name: String,
    setup: Vec<String>,
    params: Vec<(String, String)>,
    steps: Vec<Step>,
    checks: Vec<Check>,
    teardown: Vec<String>,
    victim: bool,
    /// A misuse of the protocol that Airlock refuses whoever sends it: no damage is
    /// expected in the control run either.
    misuse: bool,
}

/// An attack on a fresh victim table `{t}`.
fn attack(name: &str) -> Attack {
    Attack {
        name: name.into(),
        setup: vec![VICTIM.into()],
        params: Vec::new(),
        steps: Vec::new(),
        checks: vec![Check::Intact("{t}".into())],
        teardown: Vec::new(),
        victim: false,
        misuse: false,
    }
}

impl Attack {
    /// No victim table (and no Intact check).
    fn bare(mut self) -> Self {
        self.setup.clear();
        self.checks.clear();
        self
    }
    fn setup(mut self, sql: &str) -> Self {
        self.setup.push(sql.into());
        self
    }
    fn param(mut self, k: &str, v: &str) -> Self {
        self.params.push((k.into(), v.into()));
        self
    }
    fn q(self, sql: &str) -> Self {
        self.qb(sql.as_bytes())
    }
    fn qb(mut self, sql: &[u8]) -> Self {
        self.steps.push(Step::Send(vec![M::Query(sql.to_vec())]));
        self
    }
    fn send(mut self, msgs: Vec<M>) -> Self {
        self.steps.push(Step::Send(msgs));
        self
    }
    fn reconnect(mut self) -> Self {
        self.steps.push(Step::Reconnect);
        self
    }
    fn psql(mut self, env: &[(&str, &str)], script: &[u8]) -> Self {
        self.steps.push(Step::Psql(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), script.to_vec()));
        self
    }
    fn check(mut self, c: Check) -> Self {
        self.checks.push(c);
        self
    }
    fn same(self, sql: &str) -> Self {
        self.check(Check::Same(sql.into()))
    }
    fn eq(self, sql: &str, expect: &str) -> Self {
        self.check(Check::Eq(sql.into(), expect.into()))
    }
    fn unseen(self, text: &str) -> Self {
        self.check(Check::Unseen(text.into()))
    }
    fn no_file(self, path: &str) -> Self {
        self.check(Check::NoFile(path.into()))
    }
    fn teardown(mut self, sql: &str) -> Self {
        self.teardown.push(sql.into());
        self
    }
    fn misuse(mut self) -> Self {
        self.misuse = true;
        self
    }
    fn victim_session(mut self) -> Self {
        self.victim = true;
        self.check(Check::VictimAlive)
    }
}

/// Names and values an attack's templates refer to.
struct Ctx {
    vars: Vec<(&'static str, String)>,
}

impl Ctx {
    fn fill(&self, s: &str) -> String {
        let mut s = s.to_owned();
        for (k, v) in &self.vars {
            s = s.replace(k, v);
        }
        s
    }

    fn fill_bytes(&self, s: &[u8]) -> Vec<u8> {
        let mut s = s.to_vec();
        for (k, v) in &self.vars {
            s = replace_bytes(&s, k.as_bytes(), v.as_bytes());
        }
        s
    }
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// What must never change, whatever the attack: the upstream roles' attributes, settings,
/// passwords and memberships, and the database's settings and connection rights.
const INVARIANTS: &str = "select format('roles[%s] settings[%s] db[%s] members[%s]',
 (select string_agg(format('%s:%s%s%s%s%s:%s:%s:%s', r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
   r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolconfig, md5(coalesce(a.rolpassword, ''))), ',' order by r.rolname)
  from pg_roles r join pg_authid a on a.oid = r.oid where r.rolname in ('{role}', 'app_rw')),
 (select string_agg(format('%s/%s=%s', setdatabase, setrole, setconfig), ',' order by setdatabase, setrole)
  from pg_db_role_setting
  where (setrole = 0 and setdatabase = (select oid from pg_database where datname = '{db}'))
     or setrole in (select oid from pg_roles where rolname in ('{role}', 'app_rw'))),
 (select format('%s:%s:%s:%s', datconnlimit, datallowconn, datacl, pg_get_userbyid(datdba))
  from pg_database where datname = '{db}'),
 (select string_agg(roleid::regrole::text, ',' order by roleid::regrole::text)
  from pg_auth_members where member = '{role}'::regrole))";

/// Limits for the judge's own queries, so a lock held by the attacker shows as damage
/// instead of hanging the test.
const JUDGE: &str = "set role none; set lock_timeout = '3s'; set statement_timeout = '20s'; ";
/// Setup and teardown run as the superuser even if an attack made a database default
/// `role` setting.
fn as_superuser(sql: &str) -> String {
    // CREATE/DROP DATABASE cannot share a query string with anything.
    if ["create database", "drop database", "alter system"].iter().any(|p| sql.starts_with(p)) {
        sql.to_owned()
    } else {
        format!("set role none; {sql}")
    }
}

struct Outcome {
    damage: Vec<String>,
    saw: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn run_one(airlock: &Airlock, target: &Target, tok: &str, cat: &str, a: &Attack) -> Outcome {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = cluster().dir.display().to_string();
    let mut cx = Ctx {
        vars: vec![
            ("{t}", format!("rt_{cat}_{n}")),
            ("{n}", n.to_string()),
            ("{role}", target.role.clone()),
            ("{db}", target.db.clone()),
            ("{file}", secret_file().to_owned()),
            ("{dir}", dir.clone()),
            ("{marker}", format!("{dir}/rt-marker-{n}")),
            ("{app_password}", APP_PASSWORD.to_owned()),
        ],
    };
    let mut damage = Vec::new();
    let mut saw = Vec::new();
    for s in &a.setup {
        if let Err(e) = target.sql(&as_superuser(&cx.fill(s))) {
            return Outcome { damage: vec![format!("SETUP FAILED (a bug in this test): {e}")], saw: String::new() };
        }
    }
    let mut victim = None;
    if a.victim {
        let mut v = Wire::connect(airlock.pg, &token("victim", FIXTURES), &target.conn, &[]).unwrap();
        let pid = v.value("select pg_backend_pid()").unwrap();
        cx.vars.push(("{victim_pid}", pid));
        victim = Some(v);
    }
    let judge = |sql: &str| target.sql(&format!("{JUDGE}{}", cx.fill(sql)));
    let mut before = vec![(INVARIANTS.to_owned(), judge(INVARIANTS))];
    for c in &a.checks {
        if let Check::Same(q) = c {
            before.push((q.clone(), judge(q)));
        }
    }
    if let Some((q, Err(e))) = before.iter().find(|(_, r)| r.is_err()) {
        return Outcome { damage: vec![format!("JUDGE FAILED (a bug in this test): {q}: {e}")], saw: String::new() };
    }

    // The attack.
    let connect = || Wire::connect(airlock.pg, tok, &target.conn, &a.params);
    let mut got: Vec<u8> = Vec::new();
    let mut errors_seen = 0;
    let mut wire = match connect() {
        Ok(w) => Some(w),
        Err(e) => {
            saw.push(format!("connection refused: {e}"));
            None
        }
    };
    for step in &a.steps {
        match step {
            Step::Send(msgs) => {
                let Some(w) = wire.as_mut() else {
                    saw.push("(no session)".into());
                    continue;
                };
                let bytes: Vec<u8> = msgs.iter().flat_map(|m| m.encode(&cx)).collect();
                let readies = msgs.iter().filter(|m| matches!(m, M::Sync | M::Query(_))).count();
                w.send(&bytes);
                let replies = w.until_ready(readies);
                saw.push(summarize(&replies, w));
            }
            Step::Reconnect => {
                if let Some(w) = wire.take() {
                    got.extend_from_slice(&w.got);
                    errors_seen += w.errors;
                    w.close();
                }
                std::thread::sleep(Duration::from_millis(100));
                wire = match connect() {
                    Ok(w) => Some(w),
                    Err(e) => {
                        saw.push(format!("reconnect refused: {e}"));
                        None
                    }
                };
            }
            Step::Psql(env, script) => {
                let path = airlock.dir.join(format!("rt-script-{n}.sql"));
                std::fs::write(&path, cx.fill_bytes(script)).unwrap();
                let out = std::process::Command::new(cluster().bin_dir().join("psql"))
                    .args(["-X", "-v", "ON_ERROR_STOP=0", "-d", &airlock.conninfo(&target.conn, "require"), "-f"])
                    .arg(&path)
                    .env("PGPASSWORD", tok)
                    .env("PGCONNECT_TIMEOUT", "10")
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .output()
                    .unwrap();
                got.extend_from_slice(&out.stdout);
                got.extend_from_slice(&out.stderr);
                let err = String::from_utf8_lossy(&out.stderr);
                let first = err.lines().find(|l| l.contains("ERROR") || l.contains("FATAL")).unwrap_or("ok");
                saw.push(format!("psql: {}", first.chars().take(80).collect::<String>()));
            }
        }
    }

    // The judgement, while the attacker's session is still open (a lock it holds counts).
    let mut agent_bytes = got.clone();
    if let Some(w) = wire.as_ref() {
        agent_bytes.extend_from_slice(&w.got);
    }
    let agent_text = String::from_utf8_lossy(&agent_bytes).to_lowercase();
    for c in &a.checks {
        match c {
            Check::Intact(t) => {
                let t = cx.fill(t);
                match judge(&format!("select count(*) || '/' || count(*) filter (where v = 'row ' || id) from {t}")) {
                    Ok(v) if v == format!("{ROWS}/{ROWS}") => {}
                    Ok(v) => damage.push(format!("{t}: rows total/unchanged {v}, expected {ROWS}/{ROWS}")),
                    Err(e) if e.contains("does not exist") => damage.push(format!("{t} was dropped")),
                    Err(e) if e.contains("lock timeout") => damage.push(format!("{t} is locked against readers")),
                    Err(e) => damage.push(format!("{t} unreadable: {e}")),
                }
            }
            Check::Eq(q, expect) => match judge(q) {
                Ok(v) if &v == expect => {}
                other => damage.push(format!("`{}` gave {other:?}, expected {expect:?}", cx.fill(q))),
            },
            Check::Same(_) => {}
            Check::Unseen(text) => {
                let text = cx.fill(text);
                if agent_text.contains(&text.to_lowercase()) {
                    damage.push(format!("the agent received {text:?}"));
                }
            }
            Check::Secret(secret) => {
                if let Some(how) = leaks(&agent_bytes, secret) {
                    damage.push(format!("the agent received the secret {secret} ({how})"));
                }
            }
            Check::NoFile(path) => {
                let path = cx.fill(path);
                if std::path::Path::new(&path).exists() {
                    damage.push(format!("the server wrote {path}"));
                }
            }
            Check::VictimAlive => {
                let alive = victim.as_mut().and_then(|v| v.value("select 'victim-alive'"));
                if alive.as_deref() != Some("victim-alive") {
                    damage.push("the victim session was killed".into());
                }
            }
        }
    }
    for (q, was) in &before {
        let now = judge(q);
        if &now != was {
            let name = if q == INVARIANTS { "roles/settings/grants".to_owned() } else { format!("`{}`", cx.fill(q)) };
            damage.push(format!("{name} changed: {was:?} -> {now:?}"));
        }
    }

    // The agent's session still answers, or was closed with an error.
    if let Some(mut w) = wire.take() {
        if w.open {
            w.send(&msg(b'Q', b"select 'rt-alive'\0"));
            w.until_ready(1);
        }
        errors_seen += w.errors;
        if w.hung {
            damage.push("the agent's session hung (no answer in 20s)".into());
        } else if !w.open && errors_seen == 0 {
            damage.push("the agent's session was closed without an error".into());
        }
        w.close();
    }
    if let Some(v) = victim {
        v.close();
    }
    for s in &a.teardown {
        if let Err(e) = target.sql(&as_superuser(&cx.fill(s))) {
            saw.push(format!("teardown failed: {e}"));
        }
    }
    Outcome { damage, saw: saw.join(" | ") }
}

/// How `secret` shows in `got`, if it does: whole or in fragments, spaced out, reversed,
/// hex or base64.
fn leaks(got: &[u8], secret: &str) -> Option<String> {
    use base64::Engine;
    let raw = String::from_utf8_lossy(got);
    let text = raw.to_lowercase();
    let s = secret.to_lowercase();
    let chars: Vec<char> = s.chars().collect();
    for w in chars.windows(8) {
        let w: String = w.iter().collect();
        if text.contains(&w) {
            return Some(format!("fragment {w:?}"));
        }
    }
    let squeezed: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if squeezed.contains(&s) {
        return Some("spelled out".into());
    }
    if squeezed.contains(&s.chars().rev().collect::<String>()) {
        return Some("reversed".into());
    }
    if text.contains(&hex::encode(secret)) {
        return Some("hex".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    if raw.contains(&b64[..b64.len() - 4]) {
        return Some("base64".into());
    }
    None
}

fn run_category(cat: &str, target: &Target, extra: &str, attacks: Vec<Attack>) {
    let airlock = Airlock::start_with("", &format!("{APPROVALS}{}{extra}", target.config));
    let tok = if control() { token("control", FIXTURES) } else { token("attacker", &["agents"]) };
    let total = attacks.len();
    let mut lines = Vec::new();
    let mut through = Vec::new();
    let mut duds = Vec::new();
    for a in &attacks {
        let o = run_one(&airlock, target, &tok, cat, a);
        let verdict = if o.damage.is_empty() { "held   " } else { "THROUGH" };
        let line = format!("[{cat}] {verdict} {} -- agent saw: {}", a.name, o.saw);
        eprintln!("{line}");
        if !o.damage.is_empty() {
            eprintln!("         damage: {}", o.damage.join("; "));
            through.push(format!("  - {}: {}\n      agent saw: {}", a.name, o.damage.join("; "), o.saw));
        } else if !a.misuse {
            duds.push(format!("  - {}: {}", a.name, o.saw));
        }
        lines.push(format!("{line}\n    damage: {}", o.damage.join("; ")));
    }
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("redteam");
    std::fs::create_dir_all(&report).unwrap();
    let suffix = if control() { "-control" } else { "" };
    std::fs::write(report.join(format!("{cat}{suffix}.txt")), lines.join("\n") + "\n").unwrap();
    if control() {
        assert!(
            duds.is_empty(),
            "[{cat}] control run: {}/{total} attacks did no damage even with everything allowed:\n{}",
            duds.len(),
            duds.join("\n")
        );
        return;
    }
    assert!(through.is_empty(), "[{cat}] {}/{total} attacks got through:\n{}", through.len(), through.join("\n"));
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------
// 1. Comment tricks
// ---------------------------------------------------------------------------------------

fn comments() -> Vec<Attack> {
    let simple = |name: &str, sql: &str| attack(name).q(sql);
    vec![
        simple("-- ended by \\r, then ; drop", "select 1 --x\r; drop table {t}"),
        simple("-- ended by \\r at the start", "--x\rdrop table {t}"),
        simple("-- ended by \\r, then ; delete", "select 1 --\r;delete from {t}"),
        simple("-- ended by \\r widens a WHERE", "delete from {t} where id = -1 --x\r or true"),
        simple("/* inside a -- comment", "select 1 -- /*\n; drop table {t}; -- */"),
        simple("-- inside a /* comment", "select 1 /* -- */ ; drop table {t}"),
        simple("quote inside a /* comment", "select 1 /* ' */ ; drop table {t}; -- '"),
        simple("dollar quote inside a /* comment", "select 1 /* $$ */ ; drop table {t}; -- $$"),
        simple("nested /* /* */ */ then drop", "select 1 /* /* */ */ ; drop table {t}"),
        simple("nested /* /* */ ; drop */ (all comment)", "select 1 /* /* */ ; drop table {t}; */"),
        simple("nested comment hides WHERE widening", "delete from {t} where id = -1 /* /* */ */ or true"),
        simple("-- /* in WHERE, widening on next line", "delete from {t} where id = -1 -- /*\n or true -- */"),
        simple("/* -- */ in WHERE", "delete from {t} where id = -1 /* -- */ or true"),
        simple("drop/**/table", "drop/**/table {t}"),
        simple("drop/*x*/table/*y*/name", "DROP/*x*/TABLE/*y*/{t}"),
        simple("select 1;/**/drop", "select 1;/**/drop table {t}"),
        simple("\\f as whitespace", "select 1;\x0cdrop\x0ctable\x0c{t}"),
        simple("\\f inside delete ... where", "delete\x0cfrom\x0c{t}\x0cwhere\x0cid=-1\x0cor\x0ctrue"),
        simple("tabs and bare \\r as whitespace", "delete\tfrom\r{t}\rwhere\tid = -1\ror true"),
        simple("comments as whitespace around WHERE", "delete from {t}/**/where/**/id=-1/**/or/**/true"),
        simple("schema/**/./**/table", "drop table public/**/./**/{t}"),
        simple("E-string quote then -- ended by \\r", "select E'\\'' --'\r; drop table {t}"),
        attack("-- ended by \\r in an extended-protocol Parse").send(vec![
            pa("", "delete from {t} where id = -1 --x\r or true"),
            bi("", ""),
            ex(""),
            sy(),
        ]),
    ]
}

#[test]
fn c01_comment_tricks() {
    run_category("comments", &app(), "", comments());
}

// ---------------------------------------------------------------------------------------
// 2. standard_conforming_strings
// ---------------------------------------------------------------------------------------

const SCS_DROP: &str = "select 'x\\''; drop table {t}; --'";

fn scs() -> Vec<Attack> {
    let then = |name: &str, set: &str| attack(name).q(set).q(SCS_DROP);
    vec![
        then("set scs = off, then a later message", "set standard_conforming_strings = off"),
        attack("set scs = off pipelined with the attack")
            .send(vec![qm("set standard_conforming_strings = off"), qm(SCS_DROP)]),
        then("set scs to 'off'", "set standard_conforming_strings to 'off'"),
        then("set \"standard_conforming_strings\" to off", "set \"standard_conforming_strings\" to off"),
        then("set session scs = false", "set session standard_conforming_strings = false"),
        then("SET SCS=0", "SET STANDARD_CONFORMING_STRINGS=0"),
        then("set scs = 'OF' (prefix)", "set standard_conforming_strings = 'OF'"),
        then(
            "set_config('standard_conforming_strings')",
            "select set_config('standard_conforming_strings', 'off', false)",
        ),
        then(
            "pg_catalog.set_config quoted",
            "select pg_catalog.\"set_config\"('standard_conforming_strings', 'off', false)",
        ),
        then("update pg_settings", "update pg_settings set setting = 'off' where name = 'standard_conforming_strings'"),
        attack("begin; set local scs off")
            .q("begin; set local standard_conforming_strings = off")
            .q(SCS_DROP)
            .q("commit"),
        attack("startup options -c scs=off").param("options", "-c standard_conforming_strings=off").q(SCS_DROP),
        attack("startup options --scs=off").param("options", "--standard_conforming_strings=off").q(SCS_DROP),
        attack("startup parameter scs=off").param("standard_conforming_strings", "off").q(SCS_DROP),
        attack("alter role set scs off, next session")
            .q("alter role {role} set standard_conforming_strings = off")
            .reconnect()
            .q(SCS_DROP)
            .teardown("alter role {role} reset all"),
        attack("alter database set scs off, next session")
            .q("alter database {db} set standard_conforming_strings = off")
            .reconnect()
            .q(SCS_DROP)
            .teardown("alter database {db} reset all"),
        attack("extended-protocol SET, then simple query")
            .send(vec![pa("", "set standard_conforming_strings = off"), bi("", ""), ex(""), sy()])
            .q(SCS_DROP),
        attack("extended-protocol SET pipelined with the attack").send(vec![
            pa("", "set standard_conforming_strings = off"),
            bi("", ""),
            ex(""),
            sy(),
            qm(SCS_DROP),
        ]),
        attack("E'' string (no setting needed)").q("select E'x\\''; drop table {t}; --'"),
        attack("scs off widens a DELETE's WHERE")
            .q("set standard_conforming_strings = off")
            .q("delete from {t} where v = 'a\\' or v = ' or true --'"),
        attack("scs off, WHERE widening via Parse").q("set standard_conforming_strings = off").send(vec![
            pa("", "delete from {t} where v = 'a\\' or v = ' or true --'"),
            bi("", ""),
            ex(""),
            sy(),
        ]),
    ]
}

#[test]
fn c02_standard_conforming_strings() {
    run_category("scs", &isolated("scs", ""), "", scs());
}

// ---------------------------------------------------------------------------------------
// 3. Client encodings whose characters can end in 0x5C (backslash)
// ---------------------------------------------------------------------------------------

/// `select E'<lead 0x5C>'; drop table {t}; --'`: in the client encoding, lead+0x5C is one
/// character and the quote after it closes the string.
fn enc_drop(lead: u8) -> Vec<u8> {
    cat(&[b"select E'", &[lead, 0x5c], b"'; drop table {t}; --'"])
}

fn encodings() -> Vec<Attack> {
    let mut v = Vec::new();
    for (enc, lead) in [
        ("SJIS", 0x95),
        ("BIG5", 0xa5),
        ("GBK", 0x95),
        ("GB18030", 0x95),
        ("UHC", 0x95),
        ("JOHAB", 0x95),
        ("SHIFT_JIS_2004", 0x95),
    ] {
        v.push(attack(&format!("startup client_encoding={enc}")).param("client_encoding", enc).qb(&enc_drop(lead)));
    }
    let then = |name: &str, set: &str, lead: u8| attack(name).q(set).qb(&enc_drop(lead));
    v.extend([
        then("SET client_encoding = 'SJIS'", "SET client_encoding = 'SJIS'", 0x95),
        then("SET NAMES 'BIG5'", "SET NAMES 'BIG5'", 0xa5),
        then("set_config('client_encoding','GBK')", "select set_config('client_encoding', 'GBK', false)", 0x95),
        then("set client_encoding to \"sjis\" (identifier)", "set client_encoding to \"sjis\"", 0x95),
        then("set \"client_encoding\" = 'MSKANJI' (alias)", "set \"client_encoding\" = 'MSKANJI'", 0x95),
        then("set client_encoding = 's-j-i-s' (punctuation ignored)", "set client_encoding = 's-j-i-s'", 0x95),
        then("set client_encoding = 'WIN950' (BIG5 alias)", "set client_encoding = 'WIN950'", 0xa5),
        then("set client_encoding = 'windows936' (GBK alias)", "set client_encoding = 'windows936'", 0x95),
        then(
            "update pg_settings client_encoding",
            "update pg_settings set setting = 'SJIS' where name = 'client_encoding'",
            0x95,
        ),
        then("set session client_encoding", "set session client_encoding = sjis", 0x95),
    ]);
    v.push(
        attack("SET client_encoding pipelined with the attack")
            .send(vec![qm("SET client_encoding = 'SJIS'"), M::Query(enc_drop(0x95))]),
    );
    v.push(
        attack("startup options -c client_encoding=SJIS")
            .param("options", "-c client_encoding=SJIS")
            .qb(&enc_drop(0x95)),
    );
    v.push(
        attack("psql with PGCLIENTENCODING=SJIS")
            .psql(&[("PGCLIENTENCODING", "SJIS")], &cat(&[&enc_drop(0x95), b"\n"])),
    );
    v.push(attack("psql \\encoding SJIS").psql(&[], &cat(&[b"\\encoding SJIS\n", &enc_drop(0x95), b"\n"])));
    v.push(
        attack("SJIS plus scs off, plain '' string")
            .param("client_encoding", "SJIS")
            .q("set standard_conforming_strings = off")
            .qb(&cat(&[b"select '", &[0x95, 0x5c], b"'; drop table {t}; --'"])),
    );
    let widen = cat(&[b"delete from {t} where v = E'", &[0x95, 0x5c], b"' or true --'"]);
    v.push(attack("SJIS widens a DELETE's WHERE").param("client_encoding", "SJIS").qb(&widen));
    v.push(attack("SJIS widens a WHERE in a Parse").param("client_encoding", "SJIS").send(vec![
        M::Parse(String::new(), widen.clone()),
        bi("", ""),
        ex(""),
        sy(),
    ]));
    v.push(
        attack("alter role set client_encoding, next session")
            .q("alter role {role} set client_encoding = 'SJIS'")
            .reconnect()
            .qb(&enc_drop(0x95))
            .teardown("alter role {role} reset all"),
    );
    v.push(
        attack("alter database set client_encoding, next session")
            .q("alter database {db} set client_encoding = 'SJIS'")
            .reconnect()
            .qb(&enc_drop(0x95))
            .teardown("alter database {db} reset all"),
    );
    v
}

#[test]
fn c03_client_encodings() {
    run_category("enc", &isolated("enc", ""), "", encodings());
}

// ---------------------------------------------------------------------------------------
// 4. Extended-protocol name games
// ---------------------------------------------------------------------------------------

fn extended() -> Vec<Attack> {
    let d = "delete from {t}";
    let long = "q".repeat(63);
    let long_a = format!("{}a", "x".repeat(64));
    let long_b = format!("{}b", "x".repeat(64));
    vec![
        attack("re-Parse of a named statement fails (42P05), then Bind/Execute")
            .send(vec![pa("s", d), sy()])
            .send(vec![pa("s", "select 1"), sy()])
            .send(vec![bi("", "s"), ex(""), sy()]),
        attack("same, pipelined in one write").send(vec![
            pa("s", d),
            sy(),
            pa("s", "select 1"),
            sy(),
            bi("", "s"),
            ex(""),
            sy(),
        ]),
        attack("SQL PREPARE fails after protocol Parse of the same name")
            .send(vec![pa("p", d), sy()])
            .q("PREPARE p AS select 1")
            .q("EXECUTE p"),
        attack("SQL PREPARE P (folded to p) fails after Parse p")
            .send(vec![pa("p", d), sy()])
            .q("PREPARE P AS select 1")
            .q("EXECUTE P"),
        attack("SQL PREPARE name truncated to 63 bytes")
            .send(vec![pa(&long, d), sy()])
            .q(&format!("PREPARE {long}zzz AS select 1"))
            .q(&format!("EXECUTE {long}zzz")),
        attack("protocol names over 63 bytes (the server truncates them): re-Parse fails, Bind the other")
            .send(vec![pa(&long_a, d), sy()])
            .send(vec![pa(&long_b, "select 1"), sy()])
            .send(vec![bi("", &long_b), ex(""), sy()]),
        attack("names differing only by a trailing space").send(vec![
            pa("s ", d),
            pa("s", "select 1"),
            bi("", "s "),
            ex(""),
            sy(),
        ]),
        attack("names differing only by case").send(vec![pa("S", d), pa("s", "select 1"), bi("", "S"), ex(""), sy()]),
        attack("Close skipped after an error, then re-Parse (42P05)")
            .send(vec![pa("s", d), sy()])
            .send(vec![pa("", "selec broken"), M::Close(b'S', "s".into()), sy()])
            .send(vec![pa("s", "select 1"), sy()])
            .send(vec![bi("", "s"), ex(""), sy()]),
        attack("Close skipped after a refused Execute, then re-Parse")
            .send(vec![pa("s", d), sy()])
            .send(vec![bi("", "s"), ex(""), M::Close(b'S', "s".into()), sy()])
            .send(vec![pa("s", "select 1"), sy()])
            .send(vec![bi("", "s"), ex(""), sy()]),
        attack("unnamed statement re-parsed between Bind and Execute").send(vec![
            pa("", d),
            bi("", ""),
            pa("", "select 1"),
            ex(""),
            sy(),
        ]),
        attack("named portal from the unnamed statement, then re-parsed").send(vec![
            pa("", d),
            bi("pp", ""),
            pa("", "select 1"),
            bi("", ""),
            ex("pp"),
            sy(),
        ]),
        attack("portal outlives its closed and re-parsed statement").send(vec![
            pa("s", d),
            bi("pp", "s"),
            M::Close(b'S', "s".into()),
            pa("s", "select 1"),
            M::Describe(b'P', "pp".into()),
            ex("pp"),
            sy(),
        ]),
        attack("portal kept across Syncs in a transaction, statement re-parsed")
            .q("begin")
            .send(vec![pa("s", d), bi("pp", "s"), sy()])
            .send(vec![M::Close(b'S', "s".into()), pa("s", "select 1"), sy()])
            .send(vec![ex("pp"), sy()])
            .q("commit"),
        attack("SQL FETCH of a protocol-bound portal")
            .q("begin")
            .send(vec![pa("", "delete from {t} returning id"), bi("c", ""), sy()])
            .q("fetch all from c")
            .q("commit"),
        attack("SQL MOVE of a protocol-bound portal")
            .q("begin")
            .send(vec![pa("", "delete from {t} returning id"), bi("c", ""), sy()])
            .q("move all in c")
            .q("commit"),
        attack("cursor_to_xml of a protocol-bound portal")
            .q("begin")
            .send(vec![pa("", "delete from {t} returning id"), bi("c", ""), sy()])
            .q("select cursor_to_xml('c', 10000, true, false, '')")
            .q("commit"),
        attack("DECLARE of a name already bound as a portal, then FETCH")
            .q("begin")
            .send(vec![pa("", "delete from {t} returning id"), bi("c", ""), sy()])
            .q("declare c cursor for select 1")
            .q("rollback; begin")
            .send(vec![pa("", "delete from {t} returning id"), bi("c", ""), sy()])
            .q("fetch all from c")
            .q("commit"),
        attack("DEALLOCATE, then protocol Parse, then SQL EXECUTE")
            .q("PREPARE p AS select 1")
            .q("DEALLOCATE p")
            .send(vec![pa("p", d), sy()])
            .q("EXECUTE p"),
        attack("DEALLOCATE ALL, then protocol Parse, then SQL EXECUTE")
            .q("PREPARE p AS select 1")
            .q("DEALLOCATE ALL")
            .send(vec![pa("p", d), sy()])
            .q("EXECUTE p"),
        attack("DISCARD ALL, then protocol Parse, then SQL EXECUTE")
            .q("PREPARE p AS select 1")
            .q("DISCARD ALL")
            .send(vec![pa("p", d), sy()])
            .q("EXECUTE p"),
        attack("protocol Close of an SQL-prepared statement, re-Parse, SQL EXECUTE")
            .q("PREPARE p AS select 1")
            .send(vec![M::Close(b'S', "p".into()), sy()])
            .send(vec![pa("p", d), sy()])
            .q("EXECUTE p"),
        attack("quoted upper-case name: Parse \"P\", EXECUTE \"P\" after PREPARE p")
            .q("PREPARE p AS select 1")
            .send(vec![pa("P", d), sy()])
            .q("EXECUTE \"P\""),
        attack("SQL PREPARE of a failed statement, then Parse, then EXECUTE")
            .q("PREPARE p AS selec 1")
            .send(vec![pa("p", d), sy()])
            .q("EXECUTE p"),
        attack("protocol Bind/Execute of an SQL-prepared DELETE").q("PREPARE p AS delete from {t}").send(vec![
            bi("", "p"),
            ex(""),
            sy(),
        ]),
        attack("Execute with a row limit, then again").send(vec![
            pa("", "delete from {t} returning id"),
            bi("", ""),
            M::Execute(String::new(), 1),
            M::Execute(String::new(), 0),
            sy(),
        ]),
    ]
}

#[test]
fn c04_extended_protocol_names() {
    run_category("ext", &app(), "", extended());
}

// ---------------------------------------------------------------------------------------
// 5. Quoted, U&, schema-qualified function names (server files, signals)
// ---------------------------------------------------------------------------------------

fn quoted_functions() -> Vec<Attack> {
    let read = |name: &str, sql: &str| attack(name).bare().q(sql).unseen(FILE_SECRET);
    let lo_setup = "do $$declare o oid; begin o := lo_from_bytea(0, convert_to('exported', 'UTF8'));
        execute format('alter large object %s owner to {role}', o); end$$";
    let export = |name: &str, sql: &str| attack(name).bare().setup(lo_setup).q(sql).no_file("{marker}");
    let kill = |name: &str, sql: &str| attack(name).bare().victim_session().q(sql);
    vec![
        read("pg_read_file", "select pg_read_file('{file}')"),
        read("\"pg_read_file\"", "select \"pg_read_file\"('{file}')"),
        read("pg_catalog.\"pg_read_file\"", "select pg_catalog.\"pg_read_file\"('{file}')"),
        read("\"pg_catalog\".\"pg_read_file\"", "select \"pg_catalog\".\"pg_read_file\"('{file}')"),
        read("U&\"pg\\005fread_file\"", "select U&\"pg\\005fread_file\"('{file}')"),
        read("U&\"...\" UESCAPE '!'", "select U&\"pg!005fread!005ffile\" UESCAPE '!' ('{file}')"),
        read("pg_catalog . pg_read_file (spaces)", "select pg_catalog . pg_read_file ('{file}')"),
        read("comments between name parts", "select pg_catalog/**/./**/pg_read_file/**/('{file}')"),
        read("-- ended by \\r between name parts", "select pg_catalog --x\r.pg_read_file('{file}')"),
        read("in FROM", "select * from pg_read_file('{file}') f"),
        read("pg_read_binary_file", "select convert_from(pg_read_binary_file('{file}'), 'UTF8')"),
        read("pg_read_file with offset", "select pg_read_file('{file}', 0, 200)"),
        read("path from a VALUES list", "select pg_read_file(f) from (values ('{file}')) t(f)"),
        read("path built by concat", "select pg_read_file(concat('{dir}', '/rt-', 'secret.txt'))"),
        read("extended protocol, path as a parameter", "select 1")
            .send(vec![pa("", "select pg_read_file($1)"), bip("", "", &["{file}"]), ex(""), sy()]),
        read("lo_import then lo_get", "select lo_import('{file}')")
            .q("select convert_from(lo_get(oid), 'UTF8') from pg_largeobject_metadata where lomowner = '{role}'::regrole")
            .same("select count(*) from pg_largeobject_metadata"),
        read("\"lo_import\" with an oid", "select \"lo_import\"('{file}', 424200 + {n})")
            .q("select convert_from(lo_get(424200 + {n}), 'UTF8')")
            .same("select count(*) from pg_largeobject_metadata"),
        export("lo_export", "select lo_export(oid, '{marker}') from pg_largeobject_metadata where lomowner = '{role}'::regrole"),
        export(
            "pg_catalog.\"lo_export\"",
            "select pg_catalog.\"lo_export\"(oid, '{marker}') from pg_largeobject_metadata where lomowner = '{role}'::regrole",
        ),
        export(
            "U&\"lo\\005fexport\"",
            "select U&\"lo\\005fexport\"(oid, '{marker}') from pg_largeobject_metadata where lomowner = '{role}'::regrole",
        ),
        attack("pg_ls_dir").bare().q("select pg_ls_dir('{dir}')").unseen("pwfile"),
        attack("\"pg_ls_dir\"").bare().q("select \"pg_ls_dir\"('{dir}')").unseen("pwfile"),
        kill("\"pg_terminate_backend\"(victim)", "select \"pg_terminate_backend\"({victim_pid})"),
        kill("pg_catalog.pg_terminate_backend(victim)", "select pg_catalog . pg_terminate_backend ( {victim_pid} )"),
        kill("U&\"pg_terminate\\005fbackend\"", "select U&\"pg_terminate\\005fbackend\"({victim_pid})"),
        kill(
            "pg_terminate_backend over pg_stat_activity",
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = current_user and pid <> pg_backend_pid()",
        ),
    ]
}

#[test]
fn c05_quoted_function_names() {
    let grants = format!("{FILE_GRANTS} GRANT pg_signal_backend TO {{role}};");
    run_category("files", &isolated("files", &grants), "", quoted_functions());
}

// ---------------------------------------------------------------------------------------
// 6. SQL inside functions
// ---------------------------------------------------------------------------------------

fn sql_in_functions() -> Vec<Attack> {
    let read = |name: &str, sql: &str| attack(name).bare().q(sql).unseen(FILE_SECRET);
    let hex_query = hex::encode(format!("select pg_read_file('{}')", secret_file()));
    vec![
        read("query_to_xml(pg_read_file)", "select query_to_xml('select pg_read_file(''{file}'')', true, false, '')"),
        read(
            "query_to_xml($$ pg_read_file $$)",
            "select query_to_xml($$select pg_read_file('{file}')$$, true, false, '')",
        ),
        read("query_to_xml(E'...')", "select query_to_xml(E'select pg_read_file(\\'{file}\\')', true, false, '')"),
        read(
            "query_to_xml(\"pg_read_file\")",
            "select query_to_xml('select \"pg_read_file\"(''{file}'')', true, false, '')",
        ),
        read(
            "query_to_xml(FROM pg_read_file)",
            "select query_to_xml('select * from pg_read_file(''{file}'')', true, false, '')",
        ),
        read(
            "query_to_xml(chr() built query)",
            "select query_to_xml(chr(115) || 'elect pg_read_file(' || quote_literal('{file}') || ')', true, false, '')",
        ),
        attack("query_to_xml(hex-decoded query)")
            .bare()
            .unseen(FILE_SECRET)
            .q(&format!("select query_to_xml(convert_from(decode('{hex_query}', 'hex'), 'UTF8'), true, false, '')")),
        read(
            "xpath over query_to_xml",
            "select xpath('//text()', query_to_xml('select pg_read_file(''{file}'') as x', true, false, ''))",
        ),
        read("ts_stat(pg_read_file)", "select * from ts_stat('select to_tsvector(pg_read_file(''{file}''))')"),
        attack("query_to_xml(lo_import) then read it back")
            .bare()
            .q("select query_to_xml('select lo_import(''{file}'', 434300 + {n})', true, false, '')")
            .q("select convert_from(lo_get(434300 + {n}), 'UTF8')")
            .unseen(FILE_SECRET)
            .same("select count(*) from pg_largeobject_metadata"),
        attack("query_to_xml(delete ... returning)")
            .q("select query_to_xml('delete from {t} returning 1', true, false, '')"),
        attack("query_to_xml(with delete)").q(
            "select query_to_xml('with d as (delete from {t} returning 1) select count(*) from d', true, false, '')",
        ),
        attack("ts_stat(delete ... returning)").q("select * from ts_stat('delete from {t} returning to_tsvector(v)')"),
        attack("DECLARE over pg_read_file, then cursor_to_xml")
            .bare()
            .q("begin")
            .q("declare c cursor for select pg_read_file('{file}')")
            .q("select cursor_to_xml('c', 10, true, false, '')")
            .q("commit")
            .unseen(FILE_SECRET),
    ]
}

#[test]
fn c06_sql_inside_functions() {
    run_category("xml", &isolated("xml", FILE_GRANTS), "", sql_in_functions());
}

// ---------------------------------------------------------------------------------------
// 7. Role and identity
// ---------------------------------------------------------------------------------------

/// A role `rt_owner_{n}` owning the victim; the upstream role may SET ROLE to it (through a
/// NOINHERIT role in between) but has only SELECT itself.
const OWNED_VICTIM: &str = "create role rt_owner_{n} nologin; create role rt_mid_{n} nologin noinherit;
grant rt_owner_{n} to rt_mid_{n}; grant rt_mid_{n} to {role};
alter table {t} owner to rt_owner_{n}; grant select on {t} to {role};";

/// A write the upstream role may not do, but the victim's owner may.
const OWNER_WRITE: &str = "update {t} set v = 'pwned' where id = 1";

fn roles() -> Vec<Attack> {
    let then = |name: &str, set: &str| attack(name).setup(OWNED_VICTIM).q(set).q(OWNER_WRITE).q("drop table {t}");
    vec![
        then("set role", "set role rt_owner_{n}"),
        attack("set role; update (one string)")
            .setup(OWNED_VICTIM)
            .q(&format!("set role rt_owner_{{n}}; {OWNER_WRITE}")),
        then("set \"role\" = 'x'", "set \"role\" = 'rt_owner_{n}'"),
        then("set role = \"x\"", "set role = \"rt_owner_{n}\""),
        then("set role to 'x'", "set role to 'rt_owner_{n}'"),
        then("set role 'x' (string)", "set role 'rt_owner_{n}'"),
        then("set session role", "set session role rt_owner_{n}"),
        then("SeT rOlE", "SeT rOlE rt_owner_{n}"),
        attack("begin; set local role")
            .setup(OWNED_VICTIM)
            .q("begin")
            .q("set local role rt_owner_{n}")
            .q(OWNER_WRITE)
            .q("commit"),
        then("set_config('role')", "select set_config('role', 'rt_owner_{n}', false)"),
        then("\"set_config\"('role')", "select \"set_config\"('role', 'rt_owner_{n}', false)"),
        then("pg_catalog.set_config('role')", "select pg_catalog.set_config('role', 'rt_owner_{n}', false)"),
        then("set_config('ro'||'le')", "select set_config('ro' || 'le', 'rt_owner_{n}', false)"),
        then("set_config(lower('ROLE'))", "select set_config(lower('ROLE'), 'rt_owner_{n}', false)"),
        then("set_config in FROM", "select * from set_config('role', 'rt_owner_{n}', false)"),
        then("set_config in a CTE", "with x as (select set_config('role', 'rt_owner_{n}', false)) select * from x"),
        then(
            "set_config over pg_roles",
            "select set_config('role', rolname, false) from pg_roles where rolname = 'rt_owner_{n}'",
        ),
        then("update pg_settings set role", "update pg_settings set setting = 'rt_owner_{n}' where name = 'role'"),
        then("set session_authorization", "set session_authorization = 'rt_owner_{n}'"),
        then("set session authorization", "set session authorization rt_owner_{n}"),
        attack("startup options -c role=x").setup(OWNED_VICTIM).param("options", "-c role=rt_owner_{n}").q(OWNER_WRITE),
        attack("startup parameter role=x").setup(OWNED_VICTIM).param("role", "rt_owner_{n}").q(OWNER_WRITE),
        attack("alter role set role = x, next session, reset role")
            .setup(OWNED_VICTIM)
            .q("alter role {role} set role = 'rt_owner_{n}'")
            .reconnect()
            .q("reset role")
            .q(OWNER_WRITE)
            .teardown("alter role {role} reset all"),
        attack("alter database set role = x, next session")
            .setup(OWNED_VICTIM)
            .q("alter database {db} set role = 'rt_owner_{n}'")
            .reconnect()
            .q(OWNER_WRITE)
            .teardown("alter database {db} reset all"),
        attack("extended-protocol SET ROLE, then the write").setup(OWNED_VICTIM).send(vec![
            pa("", "set role rt_owner_{n}"),
            bi("", ""),
            ex(""),
            sy(),
            pa("", OWNER_WRITE),
            bi("", ""),
            ex(""),
            sy(),
        ]),
        attack("SET ROLE pipelined with the write")
            .setup(OWNED_VICTIM)
            .send(vec![qm("set role rt_owner_{n}"), qm(OWNER_WRITE)]),
    ]
}

#[test]
fn c07_role_and_identity() {
    run_category("ident", &isolated("ident", ""), "", roles());
}

// ---------------------------------------------------------------------------------------
// 8. session_replication_role: triggers and foreign keys switched off
// ---------------------------------------------------------------------------------------

const GUARDED: &str = "create function {t}_guard() returns trigger language plpgsql as
  $$begin raise exception 'rows of {t} are never deleted'; end$$;
create trigger {t}_tg before delete on {t} for each row execute function {t}_guard();
create table {t}_p (id int primary key); insert into {t}_p select generate_series(1, 10);
create table {t}_c (id int primary key, pid int not null references {t}_p (id));
insert into {t}_c select g, g from generate_series(1, 10) g;
alter table {t}_p owner to {role}; alter table {t}_c owner to {role};";

fn replication_role() -> Vec<Attack> {
    let guarded = |name: &str| {
        attack(name)
            .setup(GUARDED)
            .eq("select count(*) from {t}_c where pid not in (select id from {t}_p)", "0")
            .eq("select count(*) from {t}_p", "10")
    };
    let dml = |a: Attack| a.q("delete from {t} where id = 1").q("delete from {t}_p where id = 1");
    let then = |name: &str, set: &str| dml(guarded(name).q(set));
    vec![
        then("set session_replication_role = replica", "set session_replication_role = replica"),
        then("set ... to 'replica'", "set session_replication_role to 'replica'"),
        then("set \"session_replication_role\"", "set \"session_replication_role\" = replica"),
        then("SET SESSION ... = 'RePlica'", "SET SESSION session_replication_role = 'RePlica'"),
        then("set_config", "select set_config('session_replication_role', 'replica', false)"),
        then("pg_catalog.set_config", "select pg_catalog.set_config('session_replication_role', 'replica', false)"),
        then(
            "update pg_settings",
            "update pg_settings set setting = 'replica' where name = 'session_replication_role'",
        ),
        then(
            "update pg_catalog.pg_settings with LIKE",
            "update pg_catalog.pg_settings set setting = 'replica' where name like 'session_repl%'",
        ),
        dml(guarded("begin; set local").q("begin").q("set local session_replication_role = replica")).q("commit"),
        guarded("set and deletes in one string")
            .q("set session_replication_role = replica; delete from {t} where id = 1; delete from {t}_p where id = 1"),
        dml(guarded("startup options -c").param("options", "-c session_replication_role=replica")),
        dml(guarded("startup parameter").param("session_replication_role", "replica")),
        dml(guarded("alter role set, next session")
            .q("alter role {role} set session_replication_role = replica")
            .reconnect())
        .teardown("alter role {role} reset all"),
        dml(guarded("alter database set, next session")
            .q("alter database {db} set session_replication_role = replica")
            .reconnect())
        .teardown("alter database {db} reset all"),
        dml(guarded("extended-protocol SET").send(vec![
            pa("", "set session_replication_role = replica"),
            bi("", ""),
            ex(""),
            sy(),
        ])),
        then("alter table disable trigger user", "alter table {t} disable trigger user"),
        then("alter table disable trigger by name", "alter table {t} disable trigger {t}_tg"),
        then("alter table drop the foreign key", "alter table {t}_c drop constraint {t}_c_pid_fkey"),
    ]
}

#[test]
fn c08_session_replication_role() {
    run_category(
        "repl",
        &isolated("repl", "GRANT SET ON PARAMETER session_replication_role TO {role}"),
        "",
        replication_role(),
    );
}

// ---------------------------------------------------------------------------------------
// 9. Catalog writes (the upstream refuses most; judged by the catalog being unchanged)
// ---------------------------------------------------------------------------------------

fn catalog_writes() -> Vec<Attack> {
    let trig = "create function {t}_f() returns trigger language plpgsql as $$begin return old; end$$;
        create trigger {t}_tg before delete on {t} for each row execute function {t}_f()";
    let class = "select relname, relhastriggers, relowner from pg_class where oid = '{t}'::regclass";
    let w = |name: &str, sql: &str| attack(name).setup(trig).q(sql).same(class);
    vec![
        w("update pg_class rename", "update pg_class set relname = 'rt_renamed_{n}' where relname = '{t}'"),
        w("update pg_catalog.pg_class flags", "update pg_catalog.pg_class set relhastriggers = false where oid = '{t}'::regclass"),
        w("update \"pg_class\"", "update \"pg_class\" set relname = 'rt_renamed_{n}' where oid = '{t}'::regclass"),
        w("update pg_catalog . \"pg_class\"", "update pg_catalog . \"pg_class\" set relowner = 10 where oid = '{t}'::regclass"),
        w("delete from pg_trigger", "delete from pg_trigger where tgrelid = '{t}'::regclass")
            .same("select count(*) from pg_trigger where tgrelid = '{t}'::regclass"),
        w("delete from pg_catalog.pg_trigger by name", "delete from pg_catalog.pg_trigger where tgname = '{t}_tg'")
            .same("select count(*) from pg_trigger where tgname = '{t}_tg'"),
        w("insert into pg_catalog.pg_namespace", "insert into pg_catalog.pg_namespace (oid, nspname, nspowner) values (99000 + {n}, 'rt_evil_{n}', 10)")
            .same("select count(*) from pg_namespace where nspname = 'rt_evil_{n}'"),
        w("update pg_authid rolsuper", "update pg_authid set rolsuper = true where rolname = current_user"),
        w("update pg_roles rolsuper", "update pg_catalog.pg_roles set rolsuper = true where rolname = current_user"),
        w("update pg_database datallowconn", "update pg_database set datallowconn = false where datname = current_database()"),
        w("update pg_attribute attnotnull", "update pg_attribute set attnotnull = false where attrelid = '{t}'::regclass")
            .same("select string_agg(attname || attnotnull, ',' order by attnum) from pg_attribute where attrelid = '{t}'::regclass"),
        w("delete from pg_depend", "delete from pg_catalog.pg_depend where objid = '{t}'::regclass")
            .same("select count(*) from pg_depend where objid = '{t}'::regclass"),
        w("delete from pg_class", "delete from pg_class where oid = '{t}'::regclass"),
        w("update pg_proc prosrc", "update pg_proc set prosrc = 'begin return null; end' where proname = '{t}_f'")
            .same("select prosrc from pg_proc where proname = '{t}_f'"),
        w("catalog update in a CTE", "with x as (update pg_class set relname = 'rt_renamed_{n}' where oid = '{t}'::regclass returning 1) select * from x"),
        w("update pg_largeobject", "update pg_largeobject set data = 'x' where loid > 0")
            .same("select count(*) from pg_largeobject"),
    ]
}

#[test]
fn c09_catalog_writes() {
    run_category("cat", &isolated("cat", ""), "", catalog_writes());
}

// ---------------------------------------------------------------------------------------
// 10. Tautological WHERE on DELETE / UPDATE
// ---------------------------------------------------------------------------------------

fn tautologies() -> Vec<Attack> {
    let mut v: Vec<Attack> = [
        "(true)",
        "true and true",
        "'t'",
        "'on'",
        "'yes'",
        "1::bool",
        "2 > 1",
        "1 = 1",
        "'a' = 'a'",
        "not false",
        "null is null",
        "id = id",
        "v = v",
        "id is not null",
        "not (id is null)",
        "id > 0",
        "id <> -1",
        "id between -1 and 99999999",
        "v like '%'",
        "id = -1 or true",
        "true or id = -1",
        "coalesce(null, true)",
        "exists (select 1)",
        "(select true)",
        "id in (select id from {t})",
        "id = any (select id from {t})",
        "random() >= 0",
        "current_user = current_user",
        "$$t$$::boolean",
    ]
    .iter()
    .map(|w| attack(&format!("delete where {w}")).q(&format!("delete from {{t}} where {w}")))
    .collect();
    v.extend([
        attack("update where true").q("update {t} set v = 'x' where true"),
        attack("update where id = id").q("update {t} set v = 'x' where id = id"),
        attack("update where id > 0").q("update {t} set v = 'x' where id > 0"),
        attack("delete from only ... where true").q("delete from only {t} where true"),
        attack("delete using a self join").q("delete from {t} using {t} t2 where {t}.id = t2.id"),
        attack("merge ... on true ... then delete")
            .q("merge into {t} using (select 1) s on true when matched then delete"),
        attack("merge on matching ids then delete")
            .q("merge into {t} t using {t} s on t.id = s.id when matched then delete"),
        attack("merge ... then update")
            .q("merge into {t} using (select 1) s on true when matched then update set v = 'x'"),
        attack("tautology as a Bind parameter ($1 = -1)").send(vec![
            pa("", "delete from {t} where id > $1"),
            bip("", "", &["-1"]),
            ex(""),
            sy(),
        ]),
        attack("tautology as a boolean Bind parameter").send(vec![
            pa("", "delete from {t} where id = $1 or $2"),
            bip("", "", &["-1", "true"]),
            ex(""),
            sy(),
        ]),
        attack("WHERE $1 bound to true").send(vec![
            pa("", "delete from {t} where $1"),
            bip("", "", &["true"]),
            ex(""),
            sy(),
        ]),
        attack("truncate only").q("truncate only {t}"),
        attack("TRUNCATE \"t\" restart identity").q("TRUNCATE \"{t}\" RESTART IDENTITY"),
        attack("prepared tautology (PREPARE ... EXECUTE)")
            .q("prepare p_{n} (int) as delete from {t} where id > $1")
            .q("execute p_{n}(0)"),
    ]);
    v
}

#[test]
fn c10_tautological_where() {
    run_category("taut", &app(), "", tautologies());
}

// ---------------------------------------------------------------------------------------
// 11. User functions that delete
// ---------------------------------------------------------------------------------------

const DELETERS: &str = "create function {t}_del() returns void language sql as 'delete from {t}';
alter function {t}_del() owner to {role};
create function {t}_run(q text) returns void language plpgsql as $$begin execute q; end$$;
alter function {t}_run(text) owner to {role};
create procedure {t}_proc() language sql as $$delete from {t}$$;
alter procedure {t}_proc() owner to {role};
create view {t}_view as select {t}_del()::text as x; alter view {t}_view owner to {role};";

fn user_functions() -> Vec<Attack> {
    let f = |name: &str, sql: &str| attack(name).setup(DELETERS).q(sql);
    vec![
        f("select del()", "select {t}_del()"),
        f("select * from del()", "select * from {t}_del()"),
        f("select \"del\"()", "select \"{t}_del\"()"),
        f("select public.del()", "select public.{t}_del()"),
        f("values (del())", "values ({t}_del())"),
        f("del() in WHERE", "select 1 where {t}_del() is null"),
        f("del() over generate_series", "select count(*) from generate_series(1, 1) where {t}_del() is null"),
        f("select from a view that calls del()", "select * from {t}_view"),
        f("TABLE view", "table {t}_view"),
        f("call proc()", "call {t}_proc()"),
        f("run('drop table')", "select {t}_run('drop table {t}')"),
        f("run(chr() || 'rop table')", "select {t}_run(chr(100) || 'rop table {t}')"),
        f("run('delete')", "select {t}_run('delete from {t}')"),
        f("explain analyze select del()", "explain analyze select {t}_del()"),
        f("copy (select del()) to stdout", "copy (select {t}_del()) to stdout"),
        f("del() in a CTE", "with x as (select {t}_del()) select * from x"),
        attack("cursor over del(), fetched")
            .setup(DELETERS)
            .q("begin")
            .q("declare c cursor for select {t}_del()")
            .q("fetch all from c")
            .q("commit"),
        f("query_to_xml('select del()')", "select query_to_xml('select {t}_del()', true, false, '')"),
        attack("extended protocol select del()").setup(DELETERS).send(vec![
            pa("", "select {t}_del()"),
            bi("", ""),
            ex(""),
            sy(),
        ]),
        f("lower(del()::text)", "select lower({t}_del()::text)"),
        f("case when true then del()", "select case when true then {t}_del() end"),
        f("array[del()::text]", "select array[{t}_del()::text]"),
    ]
}

#[test]
fn c11_user_functions() {
    run_category("fn", &app(), "", user_functions());
}

// ---------------------------------------------------------------------------------------
// 12. Statistics, locks, server configuration, other sessions
// ---------------------------------------------------------------------------------------

fn admin() -> Vec<Attack> {
    let reset = |name: &str, sql: &str| {
        attack(name).bare().q(sql).same("select stats_reset from pg_stat_database where datname = current_database()")
    };
    let lock = |name: &str, sql: &str| attack(name).q("begin").q(sql);
    let hba = |name: &str, sql: &str| attack(name).bare().q(sql).unseen("md5_user");
    vec![
        reset("pg_stat_reset()", "select pg_stat_reset()"),
        reset("\"pg_stat_reset\"()", "select \"pg_stat_reset\"()"),
        reset("pg_catalog.pg_stat_reset()", "select pg_catalog.pg_stat_reset()"),
        reset("from pg_stat_reset()", "select * from pg_stat_reset()"),
        attack("pg_stat_reset_shared('bgwriter')")
            .bare()
            .q("select pg_stat_reset_shared('bgwriter')")
            .same("select stats_reset from pg_stat_bgwriter"),
        attack("pg_stat_reset_single_table_counters")
            .q("select pg_stat_reset_single_table_counters('{t}'::regclass)")
            .same("select n_tup_ins from pg_stat_user_tables where relname = '{t}'"),
        lock("lock table in access exclusive mode", "lock table {t} in access exclusive mode"),
        lock("lock (default mode)", "lock {t}"),
        lock("lock table only ... nowait", "lock table only {t} in access exclusive mode nowait"),
        lock("lock \"t\"", "lock table \"{t}\""),
        attack("begin; lock in one string").q("begin; lock table {t} in access exclusive mode"),
        lock("begin; alter table add column (lock held)", "alter table {t} add column x int"),
        lock("begin; truncate (lock held)", "truncate {t}"),
        hba("select * from pg_hba_file_rules", "select * from pg_hba_file_rules"),
        hba("pg_catalog.\"pg_hba_file_rules\"", "select * from pg_catalog.\"pg_hba_file_rules\""),
        hba("pg_hba_file_rules() function", "select * from pg_catalog.pg_hba_file_rules()"),
        hba("TABLE pg_hba_file_rules", "table pg_hba_file_rules"),
        attack("pg_terminate_backend(victim)").bare().victim_session().q("select pg_terminate_backend({victim_pid})"),
        attack("pg_terminate_backend over pg_stat_activity").bare().victim_session().q(
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = current_user and pid <> pg_backend_pid()",
        ),
    ]
}

#[test]
fn c12_admin_functions_and_locks() {
    let grants = "GRANT EXECUTE ON FUNCTION pg_stat_reset(), pg_stat_reset_shared(text),
        pg_stat_reset_single_table_counters(oid), pg_hba_file_rules() TO {role};
        GRANT SELECT ON pg_hba_file_rules TO {role}; GRANT pg_read_all_settings TO {role};";
    run_category("admin", &isolated("admin", grants), "", admin());
}

// ---------------------------------------------------------------------------------------
// 13. COPY PROGRAM / files, DO, RULE, ALTER ROLE, GRANT, CTEs, EXPLAIN ANALYZE, PREPARE
// ---------------------------------------------------------------------------------------

fn misc() -> Vec<Attack> {
    let side = "create table {t}_s (line text); alter table {t}_s owner to {role};";
    let prog = |name: &str, sql: &str| attack(name).q(sql).no_file("{marker}");
    let simple = |name: &str, sql: &str| attack(name).q(sql);
    let acl = "select relacl from pg_class where oid = '{t}'::regclass";
    vec![
        prog("copy to program", "copy {t} to program 'touch {marker}'"),
        prog("copy (query) to program", "COPY (select 1) TO PROGRAM 'touch {marker}'"),
        prog("copy \"t\" to program $$...$$", "copy \"{t}\" to program $$touch {marker}$$"),
        prog("copy to program E'...'", "copy {t} to program E'touch {marker}'"),
        prog("copy to program U&'...'", "copy {t} to program U&'touch {marker}'"),
        prog("copy/**/to/**/program", "copy/**/{t}/**/to/**/program/**/'touch {marker}'"),
        prog("copy to -- ended by \\r program", "copy {t} to --x\rprogram 'touch {marker}'"),
        prog("-- ended by \\r, then copy program", "select 1 --x\r; copy {t} to program 'touch {marker}'"),
        prog("copy to program with (format csv)", "copy (select 1) to program 'touch {marker}' with (format csv)"),
        prog("copy from program", "copy {t} from program 'touch {marker}; printf \"9999999\\tinjected\\n\"'"),
        attack("scs off hides copy program")
            .q("set standard_conforming_strings = off")
            .q("select 'x\\''; copy (select 1) to program 'touch {marker}'; --'")
            .no_file("{marker}"),
        attack("SJIS hides copy program")
            .param("client_encoding", "SJIS")
            .qb(&cat(&[b"select E'", &[0x95, 0x5c], b"'; copy (select 1) to program 'touch {marker}'; --'"]))
            .no_file("{marker}"),
        attack("statement name reuse hides copy program")
            .send(vec![pa("s", "copy (select 1) to program 'touch {marker}'"), sy()])
            .send(vec![pa("s", "select 1"), sy()])
            .send(vec![bi("", "s"), ex(""), sy()])
            .no_file("{marker}"),
        prog("copy to a server file", "copy {t} to '{marker}'"),
        prog("copy (query) to a server file", "copy (select * from {t}) to '{marker}' (format csv)"),
        attack("copy from a server file, then read it")
            .setup(side)
            .q("copy {t}_s from '{file}'")
            .q("select * from {t}_s")
            .unseen(FILE_SECRET)
            .eq("select count(*) from {t}_s", "0"),
        simple("DO $$ drop $$", "DO $$ begin drop table {t}; end $$"),
        simple("do '...' with execute", "do 'begin execute ''drop table {t}''; end'"),
        simple("DO LANGUAGE plpgsql $x$ delete $x$", "DO LANGUAGE plpgsql $x$ begin delete from {t}; end $x$"),
        simple("do E'...'", "do E'begin delete from {t}; end'"),
        attack("create rule on insert, then insert")
            .setup(side)
            .q("create rule {t}_r as on insert to {t}_s do also delete from {t}")
            .q("insert into {t}_s values ('x')")
            .eq("select count(*) from pg_rules where rulename = '{t}_r'", "0"),
        attack("create or replace rule (quoted), then insert")
            .setup(side)
            .q("CREATE OR REPLACE RULE \"{t}_r\" AS ON INSERT TO \"{t}_s\" DO INSTEAD DELETE FROM \"{t}\"")
            .q("insert into {t}_s values ('x')")
            .eq("select count(*) from pg_rules where rulename = '{t}_r'", "0"),
        attack("alter role superuser").bare().q("alter role {role} superuser"),
        attack("alter user current_user with superuser createrole")
            .bare()
            .q("alter user current_user with superuser createrole"),
        attack("alter role \"x\" with createdb").bare().q("alter role \"{role}\" with createdb"),
        attack("alter role current_user password (locks Airlock out)")
            .bare()
            .q("alter role current_user password 'pwned'")
            .teardown("alter role {role} password '{app_password}'"),
        attack("alter user encrypted password (locks Airlock out)")
            .bare()
            .q("alter user {role} with encrypted password 'pwned'")
            .teardown("alter role {role} password '{app_password}'"),
        attack("alter database connection limit 0")
            .bare()
            .q("alter database {db} connection limit 0")
            .teardown("alter database {db} connection limit -1"),
        attack("alter database allow_connections false (owned spare)")
            .bare()
            .setup("create database rt_spare_{n} owner {role}")
            .q("alter database rt_spare_{n} with allow_connections false")
            .eq("select datallowconn from pg_database where datname = 'rt_spare_{n}'", "t")
            .teardown("alter database rt_spare_{n} with allow_connections true")
            .teardown("drop database if exists rt_spare_{n}"),
        attack("drop owned by current_user").q("drop owned by current_user").teardown(&misc_grants()),
        attack("drop database (owned spare)")
            .bare()
            .setup("create database rt_spare_{n} owner {role}")
            .q("drop database rt_spare_{n}")
            .eq("select count(*) from pg_database where datname = 'rt_spare_{n}'", "1")
            .teardown("drop database if exists rt_spare_{n}"),
        attack("drop database with (force)")
            .bare()
            .setup("create database rt_spare_{n} owner {role}")
            .q("drop database rt_spare_{n} with (force)")
            .eq("select count(*) from pg_database where datname = 'rt_spare_{n}'", "1")
            .teardown("drop database if exists rt_spare_{n}"),
        simple("grant all to public", "grant all on {t} to public").same(acl),
        simple("grant select on all tables to public", "grant select on all tables in schema public to public")
            .same(acl),
        attack("alter default privileges")
            .bare()
            .q("alter default privileges grant all on tables to public")
            .same("select count(*) from pg_default_acl"),
        simple("revoke the owner's own rights", "revoke all on {t} from {role}").same(acl),
        simple("with x as (delete) select 1", "with x as (delete from {t} returning 1) select 1"),
        simple("with x as (delete) select count(*)", "with x as (delete from {t} returning 1) select count(*) from x"),
        simple("second CTE deletes", "with a as (select 1), b as (delete from {t} returning 1) select * from a"),
        simple("with x as (update) select 1", "with x as (update {t} set v = 'x' returning 1) select 1"),
        simple("materialized CTE delete", "WITH x AS MATERIALIZED (delete from {t} returning 1) select 1"),
        simple(
            "with recursive + delete",
            "with recursive x as (select 1), y as (delete from {t} returning 1) select * from x",
        ),
        attack("with delete ... insert")
            .setup(side)
            .q("with d as (delete from {t} returning v) insert into {t}_s select v from d"),
        simple("explain analyze delete", "explain analyze delete from {t}"),
        simple("explain (analyze) delete", "explain (analyze) delete from {t}"),
        simple("explain (analyze true, format json)", "explain (analyze true, format json) delete from {t}"),
        simple("explain (analyse on, costs off)", "explain (analyse on, costs off) delete from {t}"),
        simple("EXPLAIN ANALYZE VERBOSE", "EXPLAIN ANALYZE VERBOSE delete from {t}"),
        simple("explain analyze with delete", "explain analyze with x as (delete from {t} returning 1) select 1"),
        attack("prepare delete; execute").q("prepare p as delete from {t}").q("execute p"),
        attack("prepare \"p\"(int); execute p(0)")
            .q("prepare \"p\" (int) as delete from {t} where id > $1")
            .q("execute p(0)"),
        attack("prepare select; deallocate; prepare delete; execute")
            .q("prepare p as select 1")
            .q("deallocate p")
            .q("prepare p as delete from {t}")
            .q("execute p"),
        attack("setval() is a write in a select")
            .setup("create sequence {t}_seq; alter sequence {t}_seq owner to {role}; select setval('{t}_seq', 100)")
            .q("select setval('{t}_seq', 1)")
            .same("select last_value from {t}_seq"),
        attack("lo_unlink() in a select")
            .bare()
            .setup(
                "do $$declare o oid; begin o := lo_from_bytea(0, convert_to('keep me', 'UTF8'));
                execute format('alter large object %s owner to {role}', o); end$$",
            )
            .q("select lo_unlink(oid) from pg_largeobject_metadata where lomowner = '{role}'::regrole")
            .same("select count(*) from pg_largeobject_metadata where lomowner = '{role}'::regrole"),
        attack("alter system set")
            .bare()
            .q("alter system set work_mem = '1GB'")
            .same("select count(*) from pg_file_settings where sourcefile like '%auto.conf'")
            .teardown("alter system reset work_mem"),
        attack("ALTER SYSTEM SET \"work_mem\"")
            .bare()
            .q("ALTER SYSTEM SET \"work_mem\" TO '1GB'")
            .same("select count(*) from pg_file_settings where sourcefile like '%auto.conf'")
            .teardown("alter system reset work_mem"),
    ]
}

fn misc_grants() -> String {
    format!("{FILE_GRANTS} GRANT ALTER SYSTEM ON PARAMETER work_mem TO {{role}};")
}

#[test]
fn c13_copy_do_rules_roles_grants_ctes() {
    run_category("misc", &isolated("misc", &misc_grants()), "", misc());
}

// ---------------------------------------------------------------------------------------
// 14. Masking: what bytes reach the agent
// ---------------------------------------------------------------------------------------

const MASKING: &str = r#"
[[masking]]
connections = ["app-db"]
columns = ["*.rt_users.password_hash", "*.rt_config.v"]
"#;

fn masking() -> Vec<Attack> {
    let m = |name: &str, sql: &str| attack(name).bare().q(sql);
    let mut v = vec![
        m("baseline: select password_hash", "select password_hash from rt_users"),
        m("baseline: select *", "select * from rt_users"),
        m("password_hash || ''", "select password_hash || '' from rt_users"),
        m("::varchar", "select password_hash::varchar from rt_users"),
        m("::text with alias", "select password_hash::text as x from rt_users"),
        m("coalesce", "select coalesce(password_hash, '') from rt_users"),
        m("lower", "select lower(password_hash) from rt_users"),
        m("reverse", "select reverse(password_hash) from rt_users"),
        m("substr", "select substr(password_hash, 3) from rt_users"),
        m("spaced out by regexp_replace", "select regexp_replace(password_hash, '(.)', '\\1 ', 'g') from rt_users"),
        m("hex", "select encode(convert_to(password_hash, 'UTF8'), 'hex') from rt_users"),
        m("base64", "select encode(convert_to(password_hash, 'UTF8'), 'base64') from rt_users"),
        m("row_to_json(u)", "select row_to_json(u) from rt_users u"),
        m("to_jsonb(u)", "select to_jsonb(u) from rt_users u"),
        m("json_agg(u)", "select json_agg(u) from rt_users u"),
        m("jsonb_build_object", "select jsonb_build_object('h', password_hash) from rt_users"),
        m("array_agg", "select array_agg(password_hash) from rt_users"),
        m("string_agg", "select string_agg(password_hash, ',') from rt_users"),
        m("whole-row u", "select u from rt_users u"),
        m("(u).password_hash", "select (u).password_hash from rt_users u"),
        m("row(password_hash)", "select row(password_hash) from rt_users"),
        m("union all", "select password_hash from rt_users union all select 'x'"),
        m("union", "select 'x' union select password_hash from rt_users"),
        m("scalar subquery", "select (select password_hash from rt_users limit 1)"),
        m("values (subquery)", "values ((select v from rt_config limit 1))"),
        m("format('%s')", "select format('%s', password_hash) from rt_users"),
        m("concat", "select concat('h:', password_hash) from rt_users"),
        m("xmlelement", "select xmlelement(name x, password_hash) from rt_users"),
        m("table_to_xml", "select table_to_xml('rt_users', true, false, '')"),
        m("query_to_xml", "select query_to_xml('select * from rt_users', true, false, '')"),
        m("to_tsvector", "select to_tsvector('simple', password_hash) from rt_users"),
        m("ts_stat", "select * from ts_stat('select to_tsvector(''simple'', password_hash) from rt_users')"),
        m("copy (password_hash || '') to stdout", "copy (select password_hash || '' from rt_users) to stdout"),
        m("copy table to stdout csv", "copy rt_users to stdout with (format csv)"),
        m("error echo: v::int", "select v::int from rt_config"),
        m("error echo: password_hash::int", "select password_hash::int from rt_users"),
        m("error echo: ::json", "select v::json from rt_config"),
        m("error echo: ::regclass", "select password_hash::regclass from rt_users"),
        m("error echo: ::bool", "select v::bool from rt_config"),
        m("error echo: xmlparse", "select xmlparse(document v) from rt_config"),
        m(
            "raise notice from a DO block",
            "do $$declare s text; begin select password_hash into s from rt_users limit 1; raise notice '%', s; end$$",
        ),
        attack("pg_notify payload").bare().q("listen rt_c").q("select pg_notify('rt_c', password_hash) from rt_users"),
        attack("secret copied into a setting, then current_setting")
            .bare()
            .q("select set_config('rt.secret', v, false) from rt_config")
            .q("select current_setting('rt.secret')"),
        attack("cursor FETCH")
            .bare()
            .q("begin")
            .q("declare c cursor for select password_hash from rt_users")
            .q("fetch all from c")
            .q("commit"),
        attack("extended protocol without Describe").bare().send(vec![
            pa("", "select password_hash from rt_users"),
            bi("", ""),
            ex(""),
            sy(),
        ]),
        attack("extended protocol, binary results, expression").bare().send(vec![
            pa("", "select password_hash || '' from rt_users"),
            M::Bind(String::new(), String::new(), vec![], true),
            ex(""),
            sy(),
        ]),
        attack("extended protocol, portal suspended").bare().send(vec![
            pa("", "select password_hash from rt_users"),
            bi("", ""),
            M::Execute(String::new(), 1),
            sy(),
        ]),
    ];
    for a in &mut v {
        a.checks.push(Check::Secret(HASH_SECRET.into()));
        a.checks.push(Check::Secret(TOKEN_SECRET.into()));
    }
    v
}

#[test]
fn c14_masking() {
    let setup = format!(
        "drop table if exists rt_users, rt_config;
         create table rt_users (id int primary key, name text, password_hash text);
         insert into rt_users values (1, 'alice', '{HASH_SECRET}');
         create table rt_config (k text primary key, v text);
         insert into rt_config values ('api', '{TOKEN_SECRET}');
         alter table rt_users owner to app_rw; alter table rt_config owner to app_rw;"
    );
    app().sql(&setup).unwrap();
    run_category("mask", &app(), MASKING, masking());
}

// ---------------------------------------------------------------------------------------
// 15. Found by attacking: statement names over 63 bytes, EXPLAIN options spelled oddly,
//     WHERE clauses pinned to nothing, upserts, large-object writes, masking via aliases
// ---------------------------------------------------------------------------------------

/// Masking rules for category 15's own connection (its `rt_users` / `rt_config` live in
/// database `rt_found`, so they cannot collide with category 14's in `app`).
const FOUND_MASKING: &str = r#"
[[masking]]
connections = ["rt-found"]
columns = ["*.rt_users.password_hash", "*.rt_config.v"]
"#;

/// `users_oid`: the OID of `rt_users` in the category's database.
fn found_by_attacking(users_oid: &str) -> Vec<Attack> {
    let simple = |name: &str, sql: &str| attack(name).q(sql);
    let a63 = "a".repeat(63);
    let q63 = "q".repeat(63);
    let lo_setup = "do $$declare o oid; begin o := lo_from_bytea(0, convert_to('lo-original', 'UTF8'));
        execute format('alter large object %s owner to {role}', o); end$$";
    let lo_content = "select string_agg(convert_from(lo_get(oid), 'UTF8'), ',') from pg_largeobject_metadata
        where lomowner = '{role}'::regrole";
    let lo_unlink = "select lo_unlink(oid) from pg_largeobject_metadata where lomowner = '{role}'::regrole";
    let lo = |name: &str, sql: &str| {
        attack(name).bare().setup(lo_setup).q(sql).eq(lo_content, "lo-original").teardown(lo_unlink)
    };
    let m = |name: &str, sql: &str| {
        attack(name).bare().q(sql).check(Check::Secret(HASH_SECRET.into())).check(Check::Secret(TOKEN_SECRET.into()))
    };
    // The masking attacks come first, while the schema holds only the masked tables (every
    // attack below leaves a 5000-row victim table behind, which schema_to_xml would dump).
    vec![
        // Found by the fifth attack round: a row longer than one read, and a COPY the
        // extended protocol carries (whose refusal once let the next result through).
        m("a row wider than one read", "select password_hash, repeat('x', 100000) from rt_users"),
        m(
            "a COPY line wider than one read",
            "copy (select password_hash, repeat('x', 100000) from rt_users) to stdout",
        ),
        attack("an extended COPY, then a described select in the same pipeline")
            .bare()
            .send(vec![
                pa("sc", "copy rt_users to stdout"),
                pa("sa", "select id, password_hash from rt_users"),
                M::Raw(b'D', b"Ssa\0".to_vec()),
                sy(),
                bi("pc", "sc"),
                ex("pc"),
                bi("pa", "sa"),
                ex("pa"),
                sy(),
            ])
            .check(Check::Secret(HASH_SECRET.into())),
        // Found by the sixth attack round: in LATIN1 two names Airlock told apart became
        // one on the server (converted to UTF-8, then cut at 63 bytes).
        attack("LATIN1 statement names that meet once converted")
            .bare()
            .send({
                let name = |last: u8| [&[b'a'; 62][..], &[last, 0]].concat();
                let parse =
                    |last: u8, sql: &str| M::Raw(b'P', [name(last), sql.as_bytes().to_vec(), vec![0, 0, 0]].concat());
                vec![
                    qm("set client_encoding to 'LATIN1'"),
                    parse(0xe9, "select 'x'::text as a, 'y'::text as b"),
                    M::Raw(b'D', [&b"S"[..], &name(0xe9)].concat()),
                    sy(),
                    M::Raw(b'C', [&b"S"[..], &name(0xe8)].concat()),
                    parse(0xe8, "select password_hash, 'q'::text from rt_users"),
                    sy(),
                    M::Raw(b'B', [&[0][..], &name(0xe9), &[0, 0, 0, 0, 0, 0]].concat()),
                    ex(""),
                    sy(),
                ]
            })
            .check(Check::Secret(HASH_SECRET.into())),
        m("reverse(x) from rt_users as u(a,b,x) (column alias list)", "select reverse(x) from rt_users as u(a, b, x)"),
        m("reverse(x) from a view over rt_users with an alias list", "select reverse(x) from rt_users_v as v(a, b, x)"),
        m(
            "with w(a,b,x) as (select * from rt_users) select reverse(x)",
            "with w(a, b, x) as (select * from rt_users) select reverse(x) from w",
        ),
        m("reverse(x) from (table rt_users) as s(a,b,x)", "select reverse(x) from (table rt_users) as s(a, b, x)"),
        m(
            "reverse(value) from json_each_text(row_to_json(u))",
            "select reverse(value) from rt_users u, json_each_text(row_to_json(u)) where key like 'pass%'",
        ),
        m("table_to_xml(<oid of rt_users>)", &format!("select table_to_xml({users_oid}, true, false, '')")),
        // Found by the third attack round: text the statement does not show.
        attack("a cursor's computed column, fetched")
            .bare()
            .q("begin")
            .q("declare c cursor for select password_hash || '' from rt_users")
            .q("fetch all c")
            .q("commit")
            .check(Check::Secret(HASH_SECRET.into())),
        attack("a cursor's cast error, fetched")
            .bare()
            .q("begin")
            .q("declare c cursor for select password_hash::int from rt_users")
            .q("fetch 1 c")
            .q("rollback")
            .check(Check::Secret(HASH_SECRET.into())),
        attack("PREPARE then EXECUTE a computed column")
            .bare()
            .q("prepare p as select password_hash || '' from rt_users")
            .q("execute p")
            .check(Check::Secret(HASH_SECRET.into())),
        attack("a stable function of the database's own returning the hash")
            .bare()
            .setup(
                "create or replace function rt_hash_of(int) returns text language sql stable
                 as 'select password_hash from rt_users where id = $1';",
            )
            .q("select rt_hash_of(1)")
            .check(Check::Secret(HASH_SECRET.into()))
            .teardown("drop function rt_hash_of(int)"),
        attack("a view computing from the hash")
            .bare()
            .setup("create or replace view rt_upper as select id, coalesce(password_hash, '') as h from rt_users;")
            .q("select h from rt_upper")
            .check(Check::Secret(HASH_SECRET.into()))
            .teardown("drop view rt_upper"),
        // reverse() takes text, not xml.
        m("reverse(schema_to_xml('public')::text)", "select reverse(schema_to_xml('public', true, false, '')::text)"),
        m("copy rt_users to stdout (\"delimiter\" '|')", "copy rt_users to stdout (\"delimiter\" '|')"),
        m("copy rt_users to stdout (format \"csv\")", "copy rt_users to stdout (format \"csv\")"),
        attack("protocol names over 63 bytes: Close a63+zzz closes a63, Parse a63+yyy replaces it, Bind a63")
            .send(vec![pa(&a63, "select 1"), sy()])
            .send(vec![M::Close(b'S', format!("{a63}zzz")), sy()])
            .send(vec![pa(&format!("{a63}yyy"), "delete from {t}"), sy()])
            .send(vec![bi("", &a63), ex(""), sy()]),
        attack("SQL names over 63 bytes: prepare q63, deallocate q63_anything, Parse q63_x, execute q63")
            .q(&format!("prepare {q63} as select 1"))
            .q(&format!("deallocate {q63}_anything"))
            .send(vec![pa(&format!("{q63}_x"), "update {t} set v = 'pwned'"), sy()])
            .q(&format!("execute {q63}")),
        simple("explain (\"analyze\") delete", "explain (\"analyze\") delete from {t}"),
        simple(
            "explain (U&\"analyz\\0065\", costs off) update",
            "explain (U&\"analyz\\0065\", costs off) update {t} set v = 'pwned'",
        ),
        simple("delete where true = 't'", "delete from {t} where true = 't'"),
        simple("delete where current_user = '<role>'", "delete from {t} where current_user = '{role}'"),
        simple("delete where '<role>' = current_user", "delete from {t} where '{role}' = current_user"),
        simple("delete where current_date = current_date", "delete from {t} where current_date = current_date"),
        simple("delete using (select 1 as k) s where s.k = 1", "delete from {t} using (select 1 as k) s where s.k = 1"),
        simple(
            "update from (values (1)) s(k) where s.k = 1",
            "update {t} set v = 'pwned' from (values (1)) s(k) where s.k = 1",
        ),
        simple(
            "insert select * from itself on conflict (id) do update",
            "insert into {t} select * from {t} on conflict (id) do update set v = 'pwned2'",
        ),
        lo(
            "lo_put over pg_largeobject_metadata",
            "select lo_put(oid, 0, convert_to('XXXX', 'UTF8')) from pg_largeobject_metadata",
        ),
        lo(
            "lowrite(lo_open(oid, INV_WRITE))",
            "select lowrite(lo_open(oid, 131072), convert_to('XXXX', 'UTF8')) from pg_largeobject_metadata",
        ),
        // Found by the fifth attack round: names cut at 63 bytes inside a character.
        attack("statement names cut inside a character").send(vec![
            pa(&format!("{}é", "a".repeat(62)), "drop table {t}"),
            pa(&format!("{}ę", "a".repeat(62)), "select 1"),
            sy(),
            bi("", &format!("{}é", "a".repeat(62))),
            ex(""),
            sy(),
        ]),
        attack("portal names cut inside a character").send(vec![
            pa("d", "drop table {t}"),
            pa("s", "select 1"),
            M::Raw(b'D', b"Ss\0".to_vec()),
            bi(&format!("{}é", "p".repeat(62)), "d"),
            bi(&format!("{}ę", "p".repeat(62)), "s"),
            ex(&format!("{}é", "p".repeat(62))),
            sy(),
        ]),
    ]
}

#[test]
fn c15_found_by_attacking() {
    let target = isolated("found", "");
    let setup = format!(
        "create table rt_users (id int primary key, name text, password_hash text);
         insert into rt_users values (1, 'alice', '{HASH_SECRET}');
         create table rt_config (k text primary key, v text);
         insert into rt_config values ('api', '{TOKEN_SECRET}');
         alter table rt_users owner to {role}; alter table rt_config owner to {role};
         create view rt_users_v as select * from rt_users; grant select on rt_users_v to {role};",
        role = target.role
    );
    target.sql(&setup).unwrap();
    let users_oid = target.sql("select 'rt_users'::regclass::oid").unwrap();
    run_category("found", &target, FOUND_MASKING, found_by_attacking(&users_oid));
}

// ---------------------------------------------------------------------------------------
// 16. Getting past the rows-affected guard
// ---------------------------------------------------------------------------------------

/// Bulk changes run under the guard (default `max_rows` 1000; every victim has 5000
/// rows): each attack tries to make one stand anyway, or to commit it before it is
/// counted.
fn rows_guard() -> Vec<Attack> {
    let simple = |name: &str, sql: &str| attack(name).q(sql);
    let every_id = format!("{{{}}}", (1..=ROWS).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    vec![
        simple("tautology", "delete from {t} where true"),
        simple("range", "delete from {t} where id > 0"),
        simple("update id = id", "update {t} set v = 'x' where id = id"),
        simple("upsert from itself", "insert into {t} select * from {t} on conflict (id) do update set v = 'x'"),
        simple("merge matched delete", "merge into {t} using {t} s on s.id = {t}.id when matched then delete"),
        simple("delete ... returning everything", "delete from {t} where id > 0 returning *"),
        simple("in a CTE", "with d as (delete from {t} where id > 0 returning 1) select count(*) from d"),
        simple("begin; bulk; commit in one string", "begin; delete from {t} where true; commit"),
        simple("bulk; commit in one string", "delete from {t} where true; commit"),
        attack("bulk, then COMMIT pipelined behind it").send(vec![
            qm("begin"),
            qm("delete from {t} where true"),
            qm("commit"),
        ]),
        attack("the guard's savepoint name, taken first")
            .q("begin")
            .q("savepoint airlock_rows")
            .q("delete from {t} where true")
            .q("release savepoint airlock_rows")
            .q("commit"),
        attack("extended: tautology").send(vec![pa("", "delete from {t} where true"), bi("", ""), ex(""), sy()]),
        attack("extended: COMMIT executed behind it before the Sync").send(vec![
            pa("d", "delete from {t} where id > $1"),
            bip("p1", "d", &["0"]),
            ex("p1"),
            pa("c", "commit"),
            bi("p2", "c"),
            ex("p2"),
            sy(),
        ]),
        attack("extended: inside BEGIN, then COMMIT")
            .q("begin")
            .send(vec![pa("", "delete from {t} where true"), bi("", ""), ex(""), sy()])
            .q("commit"),
        attack("extended: RETURNING fetched one row at a time").send(vec![
            pa("", "delete from {t} where id > 0 returning id"),
            bi("", ""),
            M::Execute("".into(), 1),
            M::Execute("".into(), 1),
            sy(),
        ]),
        attack("extended: two bulk portals, one pipeline").send(vec![
            pa("", "delete from {t} where id > 2500"),
            bi("a", ""),
            pa("s2", "delete from {t} where id <= 2500"),
            bi("b", "s2"),
            ex("a"),
            ex("b"),
            sy(),
        ]),
        // Found by attacking the guard.
        simple("pinned by a system column", "delete from {t} where tableoid = '{t}'::regclass"),
        simple("pinned by xmax", "update {t} set v = 'x' where xmax = 0"),
        simple("= any(array literal)", "delete from {t} where id = any(array(select generate_series(1, 5000)))"),
        attack("= a non-unique column")
            .setup("alter table {t} add column g int default 1")
            .q("delete from {t} where g = 1"),
        attack("= any($1) with every id").send(vec![
            pa("", "delete from {t} where id = any($1::int[])"),
            bip("", "", &[&every_id]),
            ex(""),
            sy(),
        ]),
        attack("view with an INSTEAD rule that deletes")
            .setup(
                "create view {t}_vq as select * from {t}; alter view {t}_vq owner to {role};
                 create rule {t}_r as on update to {t}_vq do instead delete from {t} where id = old.id;",
            )
            .q("update {t}_vq set v = 'x' where id > 10"),
        attack("view with an INSTEAD rule, pinned")
            .setup(
                "create view {t}_vi as select * from {t}; alter view {t}_vi owner to {role};
             create rule {t}_r as on delete to {t}_vi do instead delete from {t} where id >= old.id;",
            )
            .q("delete from {t}_vi where id = 1"),
        attack("stale status: an unsynced ROLLBACK before the bulk query")
            .misuse()
            .q("begin")
            .q("select 1/0")
            .send(vec![pa("", "rollback"), bi("", ""), ex(""), qm("delete from {t} where id > 10")]),
        attack("stale status: an unsynced COMMIT before the bulk query").misuse().q("begin").send(vec![
            pa("", "commit"),
            bi("", ""),
            ex(""),
            qm("delete from {t} where id > 10"),
        ]),
        attack("an unsynced BEGIN before the bulk query")
            .misuse()
            .send(vec![pa("", "begin"), bi("", ""), ex(""), qm("delete from {t} where id > 10")])
            .q("rollback"),
        attack("a query the server skips after an extended error, then a held one")
            .misuse()
            .send(vec![pa("", "select 1/0"), bi("", ""), ex(""), qm("select 111"), sy()])
            .q("drop table {t}")
            .q("select 333"),
        // The server ignores a Sync among COPY data (and the duplicate key fails the
        // COPY): Airlock must not wait for its answer.
        attack("a Sync inside COPY data, then bulk")
            .send(vec![
                qm("copy {t} (id, v) from stdin"),
                M::Raw(b'S', Vec::new()),
                M::Raw(b'd', b"1\tx\n".to_vec()),
                M::Raw(b'c', Vec::new()),
            ])
            .q("delete from {t} where id > 10"),
        // Found by attacking the guard again.
        simple("an OR hidden behind `AS end`", "delete from {t} where id = 1 and exists (select 1 as end) or true"),
        simple("an OR hidden behind `AS case`", "update {t} set v = 'x' where id = 1 and (select true as case) or true"),
        simple(
            "upsert from a query UNION ALL VALUES",
            "insert into {t} select g, 'x' from generate_series(1, 5000) g union all values (0, 'z') \
             on conflict (id) do update set v = excluded.v",
        ),
        attack("same name in another schema, no key, found by search_path")
            .setup(
                "create schema {t}_s authorization {role};
                 create table {t}_s.{t} (id int, v text); alter table {t}_s.{t} owner to {role};
                 insert into {t}_s.{t} select 1, 'dup' from generate_series(1, 2000);",
            )
            .q("set search_path = {t}_s")
            .q("delete from {t} where id = 1")
            .eq("select count(*) from {t}_s.{t}", "2000")
            .teardown("drop schema {t}_s cascade"),
        attack("a function called as rel.f")
            .setup(
                "create function {t}_purge({t}) returns int language sql as 'delete from {t} where id = $1.id returning 1';
                 alter function {t}_purge({t}) owner to {role};",
            )
            .q("select count(v.{t}_purge) from {t} v"),
        attack("a portal revived by ROLLBACK TO after a failed re-bind")
            .q("begin")
            .send(vec![pa("d", "delete from {t} where id > $1"), bip("p", "d", &["0"]), sy()])
            .q("savepoint s")
            .send(vec![pa("s1", "select 1"), bi("p", "s1"), sy()])
            .q("rollback to savepoint s")
            .send(vec![ex("p"), sy()])
            .q("commit"),
        // Found by the third attack round: rows a foreign key cascades to.
        attack("ON DELETE CASCADE from a one-row parent")
            .setup(
                "create table {t}_p (id int primary key); insert into {t}_p values (1); alter table {t}_p owner to {role};
                 alter table {t} add column pid int default 1 references {t}_p on delete cascade;",
            )
            .q("delete from {t}_p where id = 1"),
        attack("ON DELETE CASCADE through the extended protocol")
            .setup(
                "create table {t}_p (id int primary key); insert into {t}_p values (1); alter table {t}_p owner to {role};
                 alter table {t} add column pid int default 1 references {t}_p on delete cascade;",
            )
            .send(vec![pa("", "delete from {t}_p where id = $1"), bip("", "", &["1"]), ex(""), sy()]),
        // Found by the fourth attack round: a refusal in a pipeline aborts it, as an
        // error would, so what ran before it in the same transaction does not stand.
        attack("a pinned delete, then a refused statement, one pipeline").send(vec![
            pa("d1", "delete from {t} where id = $1"),
            bip("", "d1", &["1"]),
            ex(""),
            pa("s", "do $$begin raise notice 'hi'; end$$"),
            bi("", "s"),
            ex(""),
            sy(),
        ]),
        attack("extended: the abort statement's name taken first").send(vec![
            pa("airlock_refused", "select 1"),
            pa("", "delete from {t} where true"),
            bi("", ""),
            ex(""),
            sy(),
        ]),
    ]
}

#[test]
fn c16_rows_guard() {
    let only = std::env::var("REDTEAM_ONLY").ok();
    let attacks =
        rows_guard().into_iter().filter(|a| only.as_ref().is_none_or(|o| a.name.contains(o.as_str()))).collect();
    run_category("rows", &app(), "", attacks);
}
