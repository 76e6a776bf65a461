//! What a statement may do, as a set of [`Class`]es.
//!
//! The classifier reads tokens, not text, so keywords in strings, comments and
//! identifiers never count. It looks inside what hides statements (data-modifying
//! CTEs, `EXPLAIN ANALYZE`, `PREPARE ... AS`, `COPY (query)`, `DECLARE ... FOR`),
//! flags functions that act on the server (`pg_terminate_backend`, `lo_export`,
//! `dblink`...), and answers `unknown` for anything it does not understand.

use std::fmt;

use super::lexer::{Token, TokenKind};
use super::split::Statement;

/// One thing a statement may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Reads data without side effects.
    Read,
    /// Changes rows.
    Write,
    /// Changes the schema.
    Ddl,
    /// Removes data or objects wholesale (DROP, TRUNCATE, DELETE/UPDATE without WHERE).
    Destructive,
    /// Changes who may do what (GRANT, roles, SET ROLE, ALTER SYSTEM).
    Privilege,
    /// Acts on the server itself (kill backends, files, programs, maintenance).
    Admin,
    /// Transaction control.
    Transaction,
    /// Session settings and notifications.
    Session,
    /// Not understood: treated as the strictest case by policy.
    Unknown,
}

impl Class {
    /// Every class, in display order.
    pub const ALL: [Class; 9] = [
        Class::Read,
        Class::Write,
        Class::Ddl,
        Class::Destructive,
        Class::Privilege,
        Class::Admin,
        Class::Transaction,
        Class::Session,
        Class::Unknown,
    ];

    /// The name used in configs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Ddl => "ddl",
            Class::Destructive => "destructive",
            Class::Privilege => "privilege",
            Class::Admin => "admin",
            Class::Transaction => "transaction",
            Class::Session => "session",
            Class::Unknown => "unknown",
        }
    }

    /// Parses a class name.
    pub fn parse(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of classes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Classes(u16);

impl Classes {
    /// The empty set.
    pub const NONE: Classes = Classes(0);

    /// A set of the given classes.
    pub fn of(classes: &[Class]) -> Classes {
        Classes(classes.iter().fold(0, |acc, c| acc | c.bit()))
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Class) -> bool {
        self.0 & c.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The classes in display order.
    pub fn iter(self) -> impl Iterator<Item = Class> {
        Class::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl std::ops::BitOr for Classes {
    type Output = Classes;
    fn bitor(self, rhs: Classes) -> Classes {
        Classes(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Classes {
    fn bitor_assign(&mut self, rhs: Classes) {
        self.0 |= rhs.0;
    }
}

impl From<Class> for Classes {
    fn from(c: Class) -> Classes {
        Classes(c.bit())
    }
}

impl fmt::Display for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Class::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Classes({self})")
    }
}

use Class::*;

/// Classifies one statement.
pub fn classify(statement: &Statement<'_>) -> Classes {
    classify_tokens(&statement.tokens)
}

/// Functions that act on the server or its files, whatever statement calls them.
const ADMIN_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_unlink",
    "pg_file_rename",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "pg_drop_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_logical_emit_message",
    "pg_replication_origin_create",
];

/// Functions that change privileges or the session's identity.
const PRIVILEGE_FUNCTIONS: &[&str] = &["set_config"];

/// Functions that write.
const WRITE_FUNCTIONS: &[&str] = &["nextval", "setval", "lo_unlink", "lo_create", "lo_from_bytea", "lo_put"];

fn word<'a>(t: &[Token<'a>], i: usize) -> Option<&'a str> {
    t.get(i).filter(|t| t.kind == TokenKind::Word).map(|t| t.text)
}

fn is_word(t: &[Token<'_>], i: usize, kw: &str) -> bool {
    t.get(i).is_some_and(|t| t.is(kw))
}

/// Index just past the parenthesised group opening at `open`, if it closes.
fn skip_parens(t: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Indexes of the words at parenthesis depth 0.
fn top_level(t: &[Token<'_>]) -> Vec<usize> {
    let mut depth = 0i32;
    let mut out = Vec::new();
    for (i, tok) in t.iter().enumerate() {
        match tok.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth -= 1,
            TokenKind::Word if depth == 0 => out.push(i),
            _ => {}
        }
    }
    out
}

fn has_top_level(t: &[Token<'_>], kw: &str) -> bool {
    top_level(t).into_iter().any(|i| t[i].is(kw))
}

/// Classes contributed by function calls anywhere in the statement.
fn function_classes(t: &[Token<'_>]) -> Classes {
    let mut out = Classes::NONE;
    for (i, tok) in t.iter().enumerate() {
        if tok.kind != TokenKind::Word || t.get(i + 1).map(|n| n.kind) != Some(TokenKind::LParen) {
            continue;
        }
        let name = tok.text.to_ascii_lowercase();
        if ADMIN_FUNCTIONS.contains(&name.as_str()) {
            out |= Admin.into();
        } else if PRIVILEGE_FUNCTIONS.contains(&name.as_str()) {
            out |= Classes::of(&[Privilege, Session]);
        } else if WRITE_FUNCTIONS.contains(&name.as_str()) {
            out |= Write.into();
        }
    }
    out
}

/// Classifies a statement given as tokens.
pub fn classify_tokens(t: &[Token<'_>]) -> Classes {
    if t.is_empty() {
        return Classes::NONE;
    }
    if t.iter().any(|tok| tok.kind == TokenKind::Unterminated) {
        return Unknown.into();
    }
    // `(SELECT ...)` and `((SELECT ...)) UNION ...`: classify as a query.
    if t[0].kind == TokenKind::LParen {
        return query(t) | function_classes(t);
    }
    let Some(first) = word(t, 0) else { return Unknown.into() };
    let main = match first.to_ascii_lowercase().as_str() {
        "select" | "values" | "table" => query(t),
        "with" => with(t),
        "show" | "fetch" | "move" | "close" => Read.into(),
        "explain" => explain(t),
        "insert" | "merge" | "lock" | "refresh" => Write.into(),
        "update" | "delete" => update_delete(t),
        "copy" => copy(t),
        "truncate" => Classes::of(&[Write, Destructive]),
        "drop" => drop(t),
        "create" => create(t),
        "alter" => alter(t),
        "grant" | "revoke" | "security" | "reassign" => Privilege.into(),
        "set" => set(t),
        "reset" => reset(t),
        "begin" | "start" | "commit" | "end" | "rollback" | "savepoint" | "release" | "abort" => Transaction.into(),
        "prepare" => prepare(t),
        "declare" => declare(t),
        "execute" | "call" => Unknown.into(),
        "do" => Classes::of(&[Ddl, Unknown]),
        "deallocate" | "discard" | "listen" | "unlisten" | "notify" => Session.into(),
        "vacuum" => vacuum(t),
        "analyze" | "analyse" | "cluster" | "reindex" | "checkpoint" | "load" => Admin.into(),
        "comment" | "import" => Ddl.into(),
        _ => Unknown.into(),
    };
    main | function_classes(t)
}

/// SELECT / VALUES / TABLE: a read, unless it creates a table (`SELECT ... INTO t`) or
/// locks rows (`FOR UPDATE`).
fn query(t: &[Token<'_>]) -> Classes {
    let mut out: Classes = Read.into();
    let top = top_level(t);
    if top.iter().any(|&i| t[i].is("into")) {
        out |= Classes::of(&[Ddl, Write]);
    }
    if top.iter().any(|&i| {
        t[i].is("for")
            && (is_word(t, i + 1, "update")
                || is_word(t, i + 1, "no")
                || is_word(t, i + 1, "share")
                || is_word(t, i + 1, "key"))
    }) {
        out |= Write.into();
    }
    // Set operations combine queries; data-modifying statements cannot appear there.
    out
}

/// `UPDATE`/`DELETE`: a write; destructive without a WHERE or with a trivially true one.
fn update_delete(t: &[Token<'_>]) -> Classes {
    let top = top_level(t);
    let Some(&w) = top.iter().find(|&&i| t[i].is("where")) else {
        return Classes::of(&[Write, Destructive]);
    };
    if is_word(t, w + 1, "current") && is_word(t, w + 2, "of") {
        return Write.into();
    }
    // The condition runs to RETURNING or the end.
    let end = top.iter().copied().find(|&i| i > w && t[i].is("returning")).unwrap_or(t.len());
    let cond = &t[w + 1..end];
    let trivially_true = match cond {
        [one] => one.is("true"),
        [a, eq, b] => eq.text == "=" && a.kind == b.kind && a.text == b.text && a.kind != TokenKind::Word,
        [not, f] => not.is("not") && f.is("false"),
        _ => false,
    };
    if trivially_true { Classes::of(&[Write, Destructive]) } else { Write.into() }
}

/// `WITH [RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] (stmt) [, ...] main`: the
/// union of every CTE body and the main statement.
fn with(t: &[Token<'_>]) -> Classes {
    let mut out = Classes::NONE;
    let mut i = 1;
    if is_word(t, i, "recursive") {
        i += 1;
    }
    loop {
        // Name.
        match t.get(i).map(|x| x.kind) {
            Some(TokenKind::Word | TokenKind::QuotedIdent) => i += 1,
            _ => return Unknown.into(),
        }
        if t.get(i).map(|x| x.kind) == Some(TokenKind::LParen) {
            let Some(next) = skip_parens(t, i) else { return Unknown.into() };
            i = next;
        }
        if !is_word(t, i, "as") {
            return Unknown.into();
        }
        i += 1;
        if is_word(t, i, "not") {
            i += 1;
        }
        if is_word(t, i, "materialized") {
            i += 1;
        }
        if t.get(i).map(|x| x.kind) != Some(TokenKind::LParen) {
            return Unknown.into();
        }
        let Some(close) = skip_parens(t, i) else { return Unknown.into() };
        // A CTE body is a query or a data-modifying statement, nothing else.
        if !starts_statement(t, i + 1) {
            out |= Unknown.into();
        }
        out |= classify_tokens(&t[i + 1..close - 1]);
        i = close;
        // SEARCH / CYCLE clauses run to the next comma or the main statement.
        while i < t.len() && (is_word(t, i, "search") || is_word(t, i, "cycle")) {
            while i < t.len() && t[i].kind != TokenKind::Comma && !starts_statement(t, i) {
                i += 1;
            }
        }
        if t.get(i).map(|x| x.kind) == Some(TokenKind::Comma) {
            i += 1;
            continue;
        }
        break;
    }
    let main = t.get(i..).unwrap_or_default();
    if main.is_empty() || !starts_statement(t, i) {
        return out | Unknown.into();
    }
    out | classify_tokens(main)
}

fn starts_statement(t: &[Token<'_>], i: usize) -> bool {
    ["select", "insert", "update", "delete", "merge", "values", "table"].iter().any(|kw| is_word(t, i, kw))
        || t.get(i).map(|x| x.kind) == Some(TokenKind::LParen)
}

/// `EXPLAIN` reads the plan; with ANALYZE it also runs the statement.
fn explain(t: &[Token<'_>]) -> Classes {
    let mut i = 1;
    let mut analyze = false;
    if t.get(i).map(|x| x.kind) == Some(TokenKind::LParen) {
        let Some(close) = skip_parens(t, i) else { return Unknown.into() };
        let opts = &t[i + 1..close - 1];
        for (k, tok) in opts.iter().enumerate() {
            if tok.is("analyze") || tok.is("analyse") {
                let off = opts.get(k + 1).is_some_and(|v| v.is("false") || v.is("off") || v.text == "0");
                analyze |= !off;
            }
        }
        i = close;
    } else {
        while is_word(t, i, "analyze") || is_word(t, i, "analyse") || is_word(t, i, "verbose") {
            analyze |= !is_word(t, i, "verbose");
            i += 1;
        }
    }
    let inner = classify_tokens(t.get(i..).unwrap_or_default());
    if inner.is_empty() {
        return Unknown.into();
    }
    if analyze { inner | Read.into() } else { Read.into() }
}

/// `COPY`: from STDIN writes, to STDOUT reads (and runs its query); a server file or
/// PROGRAM is admin.
fn copy(t: &[Token<'_>]) -> Classes {
    let mut out = Classes::NONE;
    let mut i = 1;
    if t.get(i).map(|x| x.kind) == Some(TokenKind::LParen) {
        let Some(close) = skip_parens(t, i) else { return Unknown.into() };
        out |= classify_tokens(&t[i + 1..close - 1]);
        i = close;
    }
    let Some(dir) = t.iter().enumerate().skip(i).find(|(_, x)| x.is("from") || x.is("to")).map(|(k, _)| k) else {
        return Unknown.into();
    };
    let target = t.get(dir + 1);
    let from = t[dir].is("from");
    out |= match target {
        Some(x) if x.is("stdin") && from => Write.into(),
        Some(x) if x.is("stdout") && !from => Read.into(),
        Some(x) if x.is("program") || x.kind == TokenKind::String => {
            Classes::of(&[Admin, if from { Write } else { Read }])
        }
        _ => Unknown.into(),
    };
    out
}

fn drop(t: &[Token<'_>]) -> Classes {
    if ["role", "user", "group", "owned"].iter().any(|kw| is_word(t, 1, kw)) {
        Classes::of(&[Privilege, Destructive])
    } else {
        Classes::of(&[Ddl, Destructive])
    }
}

fn create(t: &[Token<'_>]) -> Classes {
    let mut i = 1;
    while [
        "or",
        "replace",
        "temp",
        "temporary",
        "unlogged",
        "global",
        "local",
        "trusted",
        "procedural",
        "recursive",
        "unique",
        "constraint",
        "default",
    ]
    .iter()
    .any(|kw| is_word(t, i, kw))
    {
        i += 1;
    }
    match word(t, i).map(str::to_ascii_lowercase).as_deref() {
        Some("role" | "user" | "group") => Privilege.into(),
        Some("function" | "procedure" | "trigger" | "rule" | "event" | "aggregate" | "language") => {
            Classes::of(&[Ddl, Unknown])
        }
        Some("extension" | "server" | "subscription" | "publication") => Classes::of(&[Ddl, Admin]),
        Some("table") if has_top_level(t, "as") => Classes::of(&[Ddl, Write]),
        Some(_) => Ddl.into(),
        None => Unknown.into(),
    }
}

fn alter(t: &[Token<'_>]) -> Classes {
    match word(t, 1).map(str::to_ascii_lowercase).as_deref() {
        Some("role" | "user" | "group") => return Privilege.into(),
        Some("default") if is_word(t, 2, "privileges") => return Privilege.into(),
        Some("system") => return Classes::of(&[Privilege, Admin]),
        None => return Unknown.into(),
        _ => {}
    }
    let top = top_level(t);
    let mut out: Classes = Ddl.into();
    if top.iter().any(|&i| t[i].is("drop")) {
        out |= Destructive.into();
    }
    if top.iter().any(|&i| t[i].is("owner") && is_word(t, i + 1, "to")) {
        out |= Privilege.into();
    }
    out
}

fn set(t: &[Token<'_>]) -> Classes {
    let mut i = 1;
    if is_word(t, i, "session") && is_word(t, i + 1, "authorization") {
        return Privilege.into();
    }
    if is_word(t, i, "session") && is_word(t, i + 1, "characteristics") {
        return Transaction.into();
    }
    if is_word(t, i, "local") || is_word(t, i, "session") {
        i += 1;
    }
    if is_word(t, i, "role") || (is_word(t, i, "session") && is_word(t, i + 1, "authorization")) {
        return Privilege.into();
    }
    if is_word(t, i, "transaction") || is_word(t, i, "constraints") {
        return Transaction.into();
    }
    if word(t, i).is_some() || t.get(i).map(|x| x.kind) == Some(TokenKind::QuotedIdent) {
        Session.into()
    } else {
        Unknown.into()
    }
}

fn reset(t: &[Token<'_>]) -> Classes {
    if is_word(t, 1, "role") || is_word(t, 1, "session") || is_word(t, 1, "all") {
        Privilege.into()
    } else {
        Session.into()
    }
}

/// `PREPARE name [(types)] AS stmt` classifies as the statement it prepares.
fn prepare(t: &[Token<'_>]) -> Classes {
    if is_word(t, 1, "transaction") {
        return Transaction.into();
    }
    let Some(as_) = top_level(t).into_iter().find(|&i| t[i].is("as")) else { return Unknown.into() };
    let inner = classify_tokens(&t[as_ + 1..]);
    if inner.is_empty() { Unknown.into() } else { inner }
}

/// `DECLARE c CURSOR FOR query`.
fn declare(t: &[Token<'_>]) -> Classes {
    let Some(for_) = top_level(t).into_iter().find(|&i| t[i].is("for")) else { return Unknown.into() };
    let inner = classify_tokens(&t[for_ + 1..]);
    if inner.is_empty() { Unknown.into() } else { inner }
}

fn vacuum(t: &[Token<'_>]) -> Classes {
    let full = is_word(t, 1, "full")
        || (t.get(1).map(|x| x.kind) == Some(TokenKind::LParen)
            && skip_parens(t, 1).is_some_and(|close| t[2..close - 1].iter().any(|x| x.is("full"))));
    if full { Classes::of(&[Admin, Destructive]) } else { Admin.into() }
}
