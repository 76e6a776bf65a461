//! What a statement may do, as a set of [`Class`]es.
//!
//! The classifier reads tokens, not text, so keywords in strings, comments and
//! identifiers never count. It looks inside what hides statements (data-modifying
//! CTEs, `EXPLAIN ANALYZE`, `PREPARE ... AS`, `COPY (query)`, `DECLARE ... FOR`),
//! flags functions that act on the server (`pg_terminate_backend`, `lo_export`,
//! `dblink`...), and answers `unknown` for anything it does not understand.

use super::builtins::{self, Builtin};
use super::lexer::{Token, TokenKind, ident_at, skip_parens, string_value};
use super::settings;
use super::split::Statement;

pub use airlock_classes::{Class, Classes};

use Class::*;

/// Classifies one statement.
pub fn classify(statement: &Statement<'_>) -> Classes {
    classify_tokens(&statement.tokens)
}

fn word<'a>(t: &[Token<'a>], i: usize) -> Option<&'a str> {
    t.get(i).filter(|t| t.kind == TokenKind::Word).map(|t| t.text)
}

fn is_word(t: &[Token<'_>], i: usize, kw: &str) -> bool {
    t.get(i).is_some_and(|t| t.is(kw))
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

/// How deep SQL passed to SQL-running functions is followed before it counts as not
/// understood.
const MAX_DEPTH: usize = 4;

/// Words before a name that make `name (` a relation, alias or statement name with a
/// column list, not a call.
const NOT_A_CALL_AFTER: &[&str] = &["into", "as", "prepare", "execute", "copy", "references", "only", "table"];

/// A call found in a statement: the function's name as the server resolves it, its
/// schema if written, and the index of its `(`.
struct Call {
    schema: Option<String>,
    name: String,
    open: usize,
}

/// The function calls in `t`. A name followed by `(` is a call unless the grammar
/// makes it something else: a keyword's clause (`exists (`, `over (`), a type modifier
/// (`::varchar(10)`), a relation's column list (`insert into t (a)`), an alias's
/// (`as t(a)`), or a CTE's name (`with x (a) as (`).
fn calls(t: &[Token<'_>]) -> Vec<Call> {
    let mut out = Vec::new();
    let ctes = cte_names(t);
    let mut i = 0;
    while i < t.len() {
        // Only a name followed by `(` (after `UESCAPE 'c'` for a `U&` name) can be a
        // call: look for that before normalising the name.
        let span = match t[i].kind {
            TokenKind::Word => 1,
            TokenKind::QuotedIdent if is_word(t, i + 1, "uescape") => 3,
            TokenKind::QuotedIdent => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        let open = i + span;
        if t.get(open).map(|x| x.kind) != Some(TokenKind::LParen) {
            i += 1;
            continue;
        }
        let Some((name, _)) = ident_at(t, i) else {
            i += 1;
            continue;
        };
        // A qualified name: walk back over `schema .` (and `catalog . schema .`).
        let mut start = i;
        let mut schema = None;
        while start >= 2 && t[start - 1].kind == TokenKind::Dot && ident_at(t, start - 2).is_some_and(|(_, s)| s == 1) {
            if schema.is_none() {
                schema = ident_at(t, start - 2).map(|(n, _)| n);
            }
            start -= 2;
        }
        let prev = start.checked_sub(1).and_then(|p| t.get(p));
        let keyword = schema.is_none()
            && t[i].kind == TokenKind::Word
            && builtins::function(&name).is_none()
            && (builtins::is_syntax_keyword(&name) || builtins::CLAUSE_WORDS.contains(&name.as_str()));
        // A statement never starts with a call (`COPY (`, `VACUUM (`, `EXPLAIN (`).
        let relation = start == 0
            || prev.is_some_and(|p| NOT_A_CALL_AFTER.iter().any(|w| p.is(w)) || p.is("ordinality") || p.text == "::")
            || (prev.is_some_and(|p| p.kind == TokenKind::RParen) && !after_distinct_on(t, start - 1));
        let cte = ctes.contains(&i);
        if !(keyword || relation || cte) {
            out.push(Call { schema, name, open });
        }
        i = open;
    }
    out
}

/// Where the names of common table expressions start, at any depth: each `name
/// [(columns)] AS [NOT] [MATERIALIZED] (` of a `WITH [RECURSIVE]` list, the first after
/// the `WITH`, each next one after the `,` that follows the previous one's body. A
/// list this does not follow to its end (a `SEARCH` or `CYCLE` clause) leaves the
/// names after it read as calls, which fails closed.
fn cte_names(t: &[Token<'_>]) -> Vec<usize> {
    let mut out = Vec::new();
    for with in (0..t.len()).filter(|&w| t[w].is("with")) {
        let mut k = with + 1 + usize::from(is_word(t, with + 1, "recursive"));
        while let Some((_, span)) = ident_at(t, k) {
            let mut at = k + span;
            if t.get(at).map(|x| x.kind) == Some(TokenKind::LParen) {
                let Some(close) = skip_parens(t, at) else { break };
                at = close;
            }
            if !is_word(t, at, "as") {
                break;
            }
            at += 1;
            while is_word(t, at, "not") || is_word(t, at, "materialized") {
                at += 1;
            }
            if t.get(at).map(|x| x.kind) != Some(TokenKind::LParen) {
                break;
            }
            let Some(close) = skip_parens(t, at) else { break };
            out.push(k);
            if t.get(close).map(|x| x.kind) != Some(TokenKind::Comma) {
                break;
            }
            k = close + 1;
        }
    }
    out
}

/// Whether the `)` at `close` ends `DISTINCT ON (...)`, after which a call may follow.
/// After any other `)` a name with a column list is an alias (`FROM f(x) g(i)`,
/// `FROM (SELECT ...) s(a)`): no expression can follow a `)` directly.
fn after_distinct_on(t: &[Token<'_>], close: usize) -> bool {
    let mut depth = 0usize;
    for k in (0..=close).rev() {
        match t[k].kind {
            TokenKind::RParen => depth += 1,
            TokenKind::LParen => {
                depth -= 1;
                if depth == 0 {
                    return k >= 2 && t[k - 1].is("on") && t[k - 2].is("distinct");
                }
            }
            _ => {}
        }
    }
    false
}

/// The arguments of the call whose `(` is at `open`, each as its tokens.
fn arguments<'t, 'a>(t: &'t [Token<'a>], open: usize) -> Vec<&'t [Token<'a>]> {
    let Some(close) = skip_parens(t, open) else { return Vec::new() };
    let inner = &t[open + 1..close - 1];
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (k, tok) in inner.iter().enumerate() {
        match tok.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth = depth.saturating_sub(1),
            TokenKind::Comma if depth == 0 => {
                out.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    if !inner.is_empty() {
        out.push(&inner[start..]);
    }
    out
}

/// The value of an argument that is one string literal, possibly cast to text.
fn literal(arg: Option<&&[Token<'_>]>) -> Option<String> {
    match arg? {
        [s] => string_value(s),
        [s, cast, _] if cast.text == "::" => string_value(s),
        _ => None,
    }
}

/// Classes contributed by function calls anywhere in the statement. Built-in functions
/// take their class from PostgreSQL's own catalog (see [`builtins`]); any other
/// function may do anything, so it is `unknown`, except inside statements that need
/// approval anyway (DDL, privileges).
fn function_classes(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    let mut out = Classes::NONE;
    let defines = ["create", "alter", "drop", "comment", "grant", "revoke", "security", "reassign"]
        .iter()
        .any(|kw| is_word(t, 0, kw));
    // `rel.f` is `f(rel)` when `f` is a function (PostgreSQL's functional notation):
    // one of the database's own named so after a dot is a call, unless trusted.
    for i in 1..t.len() {
        if t[i - 1].kind == TokenKind::Dot
            && t.get(i + 1).is_none_or(|n| n.kind != TokenKind::LParen && n.kind != TokenKind::Dot)
            && let Some((name, _)) = ident_at(t, i)
            && scope.catalog.shadows(&name)
            && !scope.catalog.trusted(None, &name)
        {
            out |= Unknown.into();
        }
    }
    for call in calls(t) {
        let builtin = match call.schema.as_deref() {
            None | Some("pg_catalog") => builtins::function(&call.name),
            Some(_) => None,
        };
        // A function of the database's own by a built-in's name may be what an
        // unqualified call resolves to (its argument types, the search path): both
        // are judged.
        if builtin.is_some() && call.schema.is_none() && scope.catalog.shadows(&call.name) {
            out |= if scope.catalog.trusted(None, &call.name) { Classes::NONE } else { Unknown.into() };
        }
        let args = || arguments(t, call.open);
        out |= match builtin {
            // A statement's own class says it reads.
            Some(Builtin::Read) => Classes::NONE,
            Some(Builtin::Session) => Session.into(),
            Some(Builtin::Write) => Write.into(),
            Some(Builtin::Destructive) => Classes::of(&[Write, Destructive]),
            Some(Builtin::Unknown) => Unknown.into(),
            Some(Builtin::Admin) => Admin.into(),
            Some(Builtin::Setting) => {
                let args = args();
                match literal(args.first()) {
                    Some(name) => settings::setting(&name.to_ascii_lowercase(), literal(args.get(1)).as_deref()).into(),
                    None => Privilege.into(),
                }
            }
            Some(Builtin::RunsSql(n)) => match literal(args().get(n)) {
                Some(sql) if scope.depth < MAX_DEPTH => {
                    let inner = super::split(&sql)
                        .iter()
                        .fold(Classes::NONE, |acc, s| acc | classify_at(&s.tokens, scope.deeper()));
                    if inner.is_empty() { Unknown.into() } else { inner }
                }
                _ => Unknown.into(),
            },
            None if defines => Classes::NONE,
            // A rule vouches for it (`functions = [...]`), or the catalog shows it
            // cannot change anything.
            None if scope.catalog.trusted(call.schema.as_deref(), &call.name) => Classes::NONE,
            None => Unknown.into(),
        };
    }
    out
}

/// The relation named at `t[i]` (`name`, `schema.name` or `catalog.schema.name`): its
/// schema if written, its name, and the index after it.
fn relation_at(t: &[Token<'_>], i: usize) -> Option<(Option<String>, String, usize)> {
    let (mut name, span) = ident_at(t, i)?;
    let mut schema = None;
    let mut k = i + span;
    while t.get(k).map(|x| x.kind) == Some(TokenKind::Dot) {
        let (next, span) = ident_at(t, k + 1)?;
        schema = Some(std::mem::replace(&mut name, next));
        k += 1 + span;
    }
    Some((schema, name, k))
}

/// Whether a relation is one of the server's catalogs. Unqualified `pg_*` names resolve
/// to `pg_catalog` first unless the search path says otherwise; either way, writing to
/// one is no agent's business.
fn is_catalog(schema: Option<&str>, name: &str) -> bool {
    match schema {
        Some(s) => matches!(s, "pg_catalog" | "information_schema" | "pg_toast"),
        None => name.starts_with("pg_"),
    }
}

/// The relation a write targets: the first after `t[i]`, past `ONLY`/`TABLE`.
fn target_at(t: &[Token<'_>], mut i: usize) -> Option<(Option<String>, String)> {
    while is_word(t, i, "only") || is_word(t, i, "table") {
        i += 1;
    }
    relation_at(t, i).map(|(schema, name, _)| (schema, name))
}

/// The relation a DELETE, UPDATE, MERGE or INSERT writes to, as written (schema if
/// given, name).
pub fn written_relation(t: &[Token<'_>]) -> Option<(Option<String>, String)> {
    let first = word(t, 0)?.to_ascii_lowercase();
    match first.as_str() {
        "update" => target_at(t, 1),
        "delete" | "merge" | "insert" => target_at(t, 2),
        _ => None,
    }
}

/// `privilege` if the relation a write targets (see [`target_at`]) is a system
/// catalog; `unknown` if writing to it runs rules or INSTEAD OF triggers, whose
/// changes are not the statement's own.
fn write_target(t: &[Token<'_>], i: usize, scope: Scope<'_>) -> Classes {
    match target_at(t, i) {
        Some((schema, name)) if is_catalog(schema.as_deref(), &name) => Privilege.into(),
        Some((schema, name)) if scope.catalog.rewrites(schema.as_deref(), &name) => Unknown.into(),
        Some(_) => Classes::NONE,
        None => Unknown.into(),
    }
}

/// `admin` if the statement names a relation holding the server's secrets.
fn sensitive_relations(t: &[Token<'_>]) -> Classes {
    // Every such name starts with `pg_`, which rules out almost every token unread.
    let may_name = |tok: &Token<'_>| {
        let text = tok.text.trim_start_matches(['u', 'U', '&', '"']);
        match tok.kind {
            TokenKind::Word => text.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("pg_")),
            TokenKind::QuotedIdent => true,
            _ => false,
        }
    };
    let named = (0..t.len()).any(|i| {
        may_name(&t[i]) && ident_at(t, i).is_some_and(|(n, _)| builtins::SENSITIVE_RELATIONS.contains(&n.as_str()))
    });
    if named { Admin.into() } else { Classes::NONE }
}

/// What the session's database says of the objects a statement names: its functions
/// that are not built in and its relations. Without it (see [`NoCatalog`]) every such
/// call is `unknown` and no write pins its rows.
pub trait Catalog {
    /// Whether calling `name` (in `schema`, if written) can change nothing: a rule
    /// vouches for it, or the database's catalog shows it. Other calls are `unknown`.
    fn trusted(&self, schema: Option<&str>, name: &str) -> bool;

    /// Whether a function that is not built in bears `name`, so that an unqualified
    /// call by a built-in's name may run it instead.
    fn shadows(&self, _name: &str) -> bool {
        false
    }

    /// Whether equality on `columns` identifies at most one row of relation `name` (in
    /// `schema`, if written; otherwise of every relation by that name): they cover a
    /// unique key.
    fn pins(&self, _schema: Option<&str>, _name: &str, _columns: &[String]) -> bool {
        false
    }

    /// Whether a write to relation `name` runs rules or INSTEAD OF triggers, so that
    /// what it changes is not what its command tag counts.
    fn rewrites(&self, _schema: Option<&str>, _name: &str) -> bool {
        false
    }

    /// Whether deleting or updating rows of relation `name` changes other rows too
    /// (foreign keys that cascade, triggers): pinning its rows bounds nothing.
    fn cascades(&self, _schema: Option<&str>, _name: &str) -> bool {
        false
    }
}

/// Nothing is known: every call of a function that is not built in is `unknown`, and
/// every DELETE or UPDATE with a WHERE is `bulk`.
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn trusted(&self, _: Option<&str>, _: &str) -> bool {
        false
    }
}

impl<F: Fn(Option<&str>, &str) -> bool> Catalog for F {
    fn trusted(&self, schema: Option<&str>, name: &str) -> bool {
        self(schema, name)
    }
}

/// Classifies a statement given as tokens.
pub fn classify_tokens(t: &[Token<'_>]) -> Classes {
    classify_at(t, Scope { depth: 0, catalog: &NoCatalog })
}

/// Classifies a statement knowing what `catalog` says of what it names.
pub fn classify_trusting(statement: &Statement<'_>, catalog: &dyn Catalog) -> Classes {
    classify_at(&statement.tokens, Scope { depth: 0, catalog })
}

/// Whether SQL text (a function's body) calls only built-in functions that read, and
/// runs no SQL built at run time (`EXECUTE`).
pub fn calls_only_reads(text: &str) -> bool {
    let t = super::lexer::tokens(text);
    if t.iter().any(|tok| tok.kind == TokenKind::Unterminated || tok.is("execute")) {
        return false;
    }
    // PL/pgSQL's own words before a parenthesis are no calls.
    const PLPGSQL: [&str; 6] = ["if", "elsif", "return", "while", "foreach", "query"];
    calls(&t).iter().all(|call| match call.schema.as_deref() {
        None if PLPGSQL.contains(&call.name.as_str()) => true,
        None | Some("pg_catalog") => builtins::function(&call.name) == Some(Builtin::Read),
        Some(_) => false,
    })
}

/// What classification carries down into nested statements.
#[derive(Clone, Copy)]
struct Scope<'a> {
    /// How deep in SQL text passed to functions.
    depth: usize,
    /// What the database says of what statements name.
    catalog: &'a dyn Catalog,
}

impl Scope<'_> {
    fn deeper(self) -> Self {
        Scope { depth: self.depth + 1, ..self }
    }
}

/// Classifies a statement found `depth` levels down in SQL text passed to functions.
fn classify_at(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    if t.is_empty() {
        return Classes::NONE;
    }
    if t.iter().any(|tok| tok.kind == TokenKind::Unterminated) {
        return Unknown.into();
    }
    // `(SELECT ...)` and `((SELECT ...)) UNION ...`: classify as a query.
    if t[0].kind == TokenKind::LParen {
        return query(t) | function_classes(t, scope) | sensitive_relations(t);
    }
    let Some(first) = word(t, 0) else { return Unknown.into() };
    let main = match first.to_ascii_lowercase().as_str() {
        "select" | "values" | "table" => query(t),
        "with" => with(t, scope),
        "show" | "fetch" | "move" | "close" => Read.into(),
        "explain" => explain(t, scope),
        "insert" => insert(t, scope),
        // A MERGE may touch every row its join finds.
        "merge" => Classes::of(&[Write, Bulk]) | write_target(t, 2, scope),
        "update" => update_delete(t, 1, scope) | write_target(t, 1, scope),
        "delete" => update_delete(t, 2, scope) | write_target(t, 2, scope),
        // Holding locks blocks everyone else: the server's business, not an agent's.
        "lock" => Admin.into(),
        "refresh" => Write.into(),
        "copy" => copy(t, scope),
        "truncate" => Classes::of(&[Write, Destructive]) | write_target(t, 1, scope),
        "drop" => drop(t),
        "create" => create(t),
        "alter" => alter(t),
        "grant" | "revoke" | "security" | "reassign" => Privilege.into(),
        "set" => set(t),
        "reset" => reset(t),
        "begin" | "start" => transaction(t),
        "commit" | "end" | "rollback" | "savepoint" | "release" | "abort" => Transaction.into(),
        "prepare" => prepare(t, scope),
        "declare" => declare(t, scope),
        "execute" | "call" => Unknown.into(),
        "do" => Classes::of(&[Ddl, Unknown]),
        "deallocate" | "discard" | "listen" | "unlisten" | "notify" => Session.into(),
        "vacuum" => vacuum(t),
        "analyze" | "analyse" | "cluster" | "reindex" | "checkpoint" | "load" => Admin.into(),
        "comment" | "import" => Ddl.into(),
        _ => Unknown.into(),
    };
    // COPY's own syntax has no calls (`TO STDOUT (FORMAT csv)`); its query was
    // classified with its calls above.
    let calls = if first.eq_ignore_ascii_case("copy") { Classes::NONE } else { function_classes(t, scope) };
    let out = main | calls | sensitive_relations(t);
    // The guard counts rows by the command tag, which speaks for the statement the
    // server was sent: a bulk change inside another (a CTE, EXPLAIN ANALYZE, PREPARE,
    // SQL text passed to a function) is counted by no tag, so it is held.
    let tagged =
        scope.depth == 0 && ["delete", "update", "merge", "insert"].iter().any(|v| first.eq_ignore_ascii_case(v));
    if out.contains(Bulk) && !tagged { out.without(Bulk) | Destructive.into() } else { out }
}

/// `INSERT`: adds rows, unless `ON CONFLICT DO UPDATE` turns it into an update of
/// every row its source collides with; from anything but a single row of `VALUES` that
/// is not bounded by the statement, so it is `bulk` like an unpinned UPDATE.
fn insert(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    let out = Classes::from(Write) | write_target(t, 2, scope);
    let top = top_level(t);
    let upsert =
        top.iter().any(|&i| t[i].is("conflict")) && top.iter().any(|&i| t[i].is("do") && is_word(t, i + 1, "update"));
    // Bounded only by a single row of VALUES, followed directly by `ON CONFLICT`.
    let one_row = top.iter().find(|&&i| t[i].is("values")).is_some_and(|&v| {
        t.get(v + 1).is_some_and(|x| x.kind == TokenKind::LParen)
            && skip_parens(t, v + 1).is_some_and(|after| is_word(t, after, "on"))
            && !top.iter().any(|&i| ["select", "union", "intersect", "except", "table"].iter().any(|w| t[i].is(w)))
    });
    if upsert && !one_row { out | Bulk.into() } else { out }
}

/// `BEGIN`/`START TRANSACTION`, which may say `READ WRITE`: on a read-only connection
/// that lifts the database's own guard, so it is `privilege`.
fn transaction(t: &[Token<'_>]) -> Classes {
    let read_write = (1..t.len()).any(|i| t[i - 1].is("read") && t[i].is("write"));
    if read_write { Classes::of(&[Transaction, Privilege]) } else { Transaction.into() }
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

/// `UPDATE`/`DELETE` of the relation at `t[target]`: a write; destructive without a
/// WHERE; bulk unless the WHERE pins the rows it touches (the rows-affected guard then
/// counts them).
fn update_delete(t: &[Token<'_>], target: usize, scope: Scope<'_>) -> Classes {
    let top = top_level(t);
    let Some(&w) = top.iter().find(|&&i| t[i].is("where")) else {
        return Classes::of(&[Write, Destructive]);
    };
    if is_word(t, w + 1, "current") && is_word(t, w + 2, "of") {
        return Write.into();
    }
    // With other relations joined in (`DELETE ... USING`, `UPDATE ... FROM`) the pinned
    // column may be theirs, not the target's.
    let joins = if t[0].is("delete") { "using" } else { "from" };
    if top.iter().any(|&i| i < w && t[i].is(joins)) {
        return Classes::of(&[Write, Bulk]);
    }
    // The condition runs to RETURNING or the end.
    let end = top.iter().copied().find(|&i| i > w && t[i].is("returning")).unwrap_or(t.len());
    let pinned = match (target_at(t, target), pinned_columns(&t[w + 1..end])) {
        (Some((schema, name)), Some(columns)) => {
            scope.catalog.pins(schema.as_deref(), &name, &columns) && !scope.catalog.cascades(schema.as_deref(), &name)
        }
        _ => false,
    };
    if pinned { Write.into() } else { Classes::of(&[Write, Bulk]) }
}

/// The columns a WHERE condition sets equal to values given in the statement, in its
/// top-level `AND`ed terms (`id = $1`, `t.id = 42`, `'7' = "Id"`): whether they pin
/// rows, only the relation's unique keys can say. `None` when the condition is an `OR`
/// at the top: then it may touch every row.
fn pinned_columns(cond: &[Token<'_>]) -> Option<Vec<String>> {
    // A CASE at the top holds its own ANDs and ORs; where it ends only the grammar
    // knows (`end` may be an alias), so a condition with one pins nothing.
    if cond.iter().any(|t| t.is("case")) {
        return None;
    }
    let mut terms = Vec::new();
    // Depth in parentheses and brackets; an AND that belongs to a BETWEEN is no split
    // (`id BETWEEN 0 AND id = 't'` is one term).
    let (mut depth, mut start, mut between) = (0i32, 0usize, false);
    for (i, tok) in cond.iter().enumerate() {
        match tok.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth -= 1,
            TokenKind::Op if tok.text == "[" => depth += 1,
            TokenKind::Op if tok.text == "]" => depth -= 1,
            _ if depth == 0 && tok.is("or") => return None,
            _ if depth == 0 && tok.is("between") => between = true,
            _ if depth == 0 && tok.is("and") && between => between = false,
            _ if depth == 0 && tok.is("and") => {
                terms.push(&cond[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&cond[start..]);
    Some(terms.into_iter().filter_map(equal_to_value).collect())
}

/// The column a term sets equal to a value given in the statement: `column = value` or
/// `value = column`, a value being a parameter or a literal, optionally cast.
fn equal_to_value(term: &[Token<'_>]) -> Option<String> {
    let is_value = |t: &Token<'_>| matches!(t.kind, TokenKind::Param | TokenKind::Number | TokenKind::String);
    let value = |v: &[Token<'_>]| match v {
        [x] => is_value(x),
        [x, cast, ty] => is_value(x) && cast.text == "::" && ty.kind == TokenKind::Word,
        _ => false,
    };
    // A column, the whole of `c`: `id`, `t.id`, `"Id"`; never a keyword (`true`,
    // `current_user`).
    let column = |c: &[Token<'_>]| {
        let ident = |i: usize| {
            c.get(i).is_some_and(|t| match t.kind {
                TokenKind::Word => !builtins::is_syntax_keyword(&t.text.to_ascii_lowercase()),
                TokenKind::QuotedIdent => true,
                _ => false,
            })
        };
        let last = match c.len() {
            1 if ident(0) => 0,
            3 if ident(0) && c[1].kind == TokenKind::Dot && ident(2) => 2,
            _ => return None,
        };
        ident_at(c, last).map(|(name, _)| name)
    };
    let eq = term.iter().position(|t| t.text == "=")?;
    let (left, right) = (&term[..eq], &term[eq + 1..]);
    if value(right) {
        column(left)
    } else if value(left) {
        column(right)
    } else {
        None
    }
}

/// `WITH [RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] (stmt) [, ...] main`: the
/// union of every CTE body and the main statement.
fn with(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
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
        out |= classify_at(&t[i + 1..close - 1], scope);
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
    out | classify_at(main, scope)
}

fn starts_statement(t: &[Token<'_>], i: usize) -> bool {
    ["select", "insert", "update", "delete", "merge", "values", "table"].iter().any(|kw| is_word(t, i, kw))
        || t.get(i).map(|x| x.kind) == Some(TokenKind::LParen)
}

/// `EXPLAIN` reads the plan; with ANALYZE it also runs the statement.
fn explain(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    let mut i = 1;
    let mut analyze = false;
    if t.get(i).map(|x| x.kind) == Some(TokenKind::LParen) {
        let Some(close) = skip_parens(t, i) else { return Unknown.into() };
        // Option names are identifiers: `("analyze")` and `(U&"analyz\0065")` count.
        // Any ANALYZE option is taken to run the statement, whatever its value says.
        let opts = &t[i + 1..close - 1];
        analyze =
            (0..opts.len()).any(|k| ident_at(opts, k).is_some_and(|(name, _)| name == "analyze" || name == "analyse"));
        i = close;
    } else {
        while is_word(t, i, "analyze") || is_word(t, i, "analyse") || is_word(t, i, "verbose") {
            analyze |= !is_word(t, i, "verbose");
            i += 1;
        }
    }
    let inner = classify_at(t.get(i..).unwrap_or_default(), scope);
    if inner.is_empty() {
        return Unknown.into();
    }
    if analyze { inner | Read.into() } else { Read.into() }
}

/// `COPY`: from STDIN writes, to STDOUT reads (and runs its query); a server file or
/// PROGRAM is admin.
fn copy(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    let mut out = Classes::NONE;
    let mut i = 1;
    if t.get(i).map(|x| x.kind) == Some(TokenKind::LParen) {
        let Some(close) = skip_parens(t, i) else { return Unknown.into() };
        out |= classify_at(&t[i + 1..close - 1], scope);
        i = close;
    }
    let Some(dir) = t.iter().enumerate().skip(i).find(|(_, x)| x.is("from") || x.is("to")).map(|(k, _)| k) else {
        return Unknown.into();
    };
    let target = t.get(dir + 1);
    let from = t[dir].is("from");
    out |= match target {
        Some(x) if x.is("stdin") && from => Classes::from(Write) | write_target(t, i, scope),
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
        // Per-database settings apply to every later session, the guards' too.
        Some("database") if has_top_level(t, "set") || has_top_level(t, "reset") => {
            return Classes::of(&[Ddl, Privilege]);
        }
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

/// `SET`, judged by the setting and, where it matters, the value.
fn set(t: &[Token<'_>]) -> Classes {
    let mut i = 1;
    if is_word(t, i, "session") && is_word(t, i + 1, "characteristics") {
        return transaction(t);
    }
    if is_word(t, i, "local") || (is_word(t, i, "session") && !is_word(t, i + 1, "authorization")) {
        i += 1;
    }
    if (is_word(t, i, "session") && is_word(t, i + 1, "authorization")) || is_word(t, i, "role") {
        return Privilege.into();
    }
    if is_word(t, i, "transaction") {
        return transaction(t);
    }
    if is_word(t, i, "constraints") || (is_word(t, i, "time") && is_word(t, i + 1, "zone")) {
        return if is_word(t, i, "constraints") { Transaction.into() } else { Session.into() };
    }
    if is_word(t, i, "names") {
        return settings::setting("names", set_value(t.get(i + 1..).unwrap_or_default()).as_deref()).into();
    }
    if is_word(t, i, "schema") || (is_word(t, i, "xml") && is_word(t, i + 1, "option")) {
        return Session.into();
    }
    let Some((name, k)) = setting_name(t, i) else { return Unknown.into() };
    if !(is_word(t, k, "to") || t.get(k).is_some_and(|x| x.text == "=")) {
        return Unknown.into();
    }
    settings::setting(&name, set_value(t.get(k + 1..).unwrap_or_default()).as_deref()).into()
}

/// A setting's name at `t[i]` (`name` or `prefix.name`, quoted or not), normalised, and
/// the index after it.
fn setting_name(t: &[Token<'_>], i: usize) -> Option<(String, usize)> {
    let (schema, name, k) = relation_at(t, i)?;
    Some((schema.map_or_else(|| name.clone(), |s| format!("{s}.{name}")), k))
}

/// The value of `SET x TO value` when it is one literal or word.
fn set_value(t: &[Token<'_>]) -> Option<String> {
    match t {
        [v] if v.kind == TokenKind::Word || v.kind == TokenKind::Number => Some(v.text.to_ascii_lowercase()),
        [v] => string_value(v),
        _ => None,
    }
}

/// `RESET`: back to the session's defaults, which include what the gateway put in the
/// startup packet, so `RESET ALL` lifts no guard.
fn reset(t: &[Token<'_>]) -> Classes {
    if is_word(t, 1, "all") || is_word(t, 1, "client_encoding") {
        return Session.into();
    }
    if is_word(t, 1, "session") && is_word(t, 2, "authorization") {
        return Privilege.into();
    }
    match setting_name(t, 1) {
        Some((name, _)) => settings::setting(&name, None).into(),
        None => Unknown.into(),
    }
}

/// `PREPARE name [(types)] AS stmt` classifies as the statement it prepares.
fn prepare(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    if is_word(t, 1, "transaction") {
        return Transaction.into();
    }
    let Some(as_) = top_level(t).into_iter().find(|&i| t[i].is("as")) else { return Unknown.into() };
    let inner = classify_at(&t[as_ + 1..], scope);
    if inner.is_empty() { Unknown.into() } else { inner }
}

/// `DECLARE c CURSOR FOR query`.
fn declare(t: &[Token<'_>], scope: Scope<'_>) -> Classes {
    let Some(for_) = top_level(t).into_iter().find(|&i| t[i].is("for")) else { return Unknown.into() };
    let inner = classify_at(&t[for_ + 1..], scope);
    if inner.is_empty() { Unknown.into() } else { inner }
}

fn vacuum(t: &[Token<'_>]) -> Classes {
    let full = is_word(t, 1, "full")
        || (t.get(1).map(|x| x.kind) == Some(TokenKind::LParen)
            && skip_parens(t, 1).is_some_and(|close| {
                let opts = &t[2..close - 1];
                (0..opts.len()).any(|k| ident_at(opts, k).is_some_and(|(name, _)| name == "full"))
            }));
    if full { Classes::of(&[Admin, Destructive]) } else { Admin.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lexer::Dialect;
    use crate::sql::{split, split_with};

    fn classes(sql: &str) -> Classes {
        split(sql).iter().fold(Classes::NONE, |acc, s| acc | classify(s))
    }

    fn has(sql: &str, c: Class) -> bool {
        classes(sql).contains(c)
    }

    #[test]
    fn statements_hidden_from_a_weaker_lexer_are_seen() {
        assert!(has("select 1 --x\r; drop table v", Destructive));
        assert!(has("select 1 --x\r\n; drop table v", Destructive));
        assert!(has("select 1 /* /* */ ; drop table v; */ ; drop table w", Destructive));
        assert!(has("select 1;\x0cdrop\ttable v", Destructive));
        // Without standard strings the server sees a DROP; with them, one string.
        let off = split_with("select 'x\\''; drop table v; --'", Dialect::BACKSLASH_QUOTES);
        assert!(off.iter().any(|s| classify(s).contains(Destructive)));
        assert_eq!(split("select 'x\\''; drop table v; --'").len(), 1);
        // E'' always escapes; a continued string keeps its state.
        assert_eq!(split("select E'a'\n'\\'; drop table v; --'").len(), 1);
        assert!(
            has("select B'01''; drop table v; --'", Destructive)
                || split("select B'01''; drop table v; --'").len() == 1
        );
    }

    #[test]
    fn functions_are_named_as_the_server_resolves_them() {
        for sql in [
            "select \"pg_read_file\"('/etc/hostname')",
            "select pg_catalog.\"lo_export\"(1, '/tmp/x')",
            "select U&\"pg\\005fread_file\"('/etc/hostname')",
            "select U&\"pg!005fread_file\" UESCAPE '!' ('/etc/hostname')",
            "select \"pg_terminate_backend\"(42)",
            "select pg_catalog . /* c */ pg_read_file ('/x')",
            "select \"pg_create_physical_replication_slot\"('s')",
            "select \"pg_reload_conf\"()",
            "select pg_stat_reset()",
            "select * from pg_hba_file_rules",
            "select passwd from \"pg_shadow\"",
            "lock table v in access exclusive mode",
        ] {
            assert!(has(sql, Admin), "{sql}: {}", classes(sql));
        }
        assert!(has("select \"set_config\"('role', 'x', false)", Privilege));
        assert!(has("select set_config('ROLE', 'x', false)", Privilege));
        assert!(has("select set_config(name, 'x', false) from t", Privilege));
        assert!(has("select set_config('client_encoding', 'SJIS', false)", Privilege));
    }

    #[test]
    fn sql_passed_to_functions_is_classified() {
        assert!(has("select query_to_xml('select pg_read_file(''/etc/passwd'') as f', true, true, '')", Admin));
        assert!(has("select query_to_xml($$delete from v returning 1$$, true, true, '')", Write));
        assert!(has("select query_to_xml(q, true, true, '') from t", Unknown));
        assert!(has("select ts_stat('select pg_ls_dir(''.'')')", Admin));
        assert!(has("select ts_rewrite('a'::tsquery, 'select pg_read_file(''x'')')", Admin));
        assert!(has("select query_to_xml(E'select pg_read_file(\\'x\\')', true, true, '')", Admin));
        assert!(has("select query_to_xml('select 1' || '', true, true, '')", Unknown));
    }

    #[test]
    fn settings_are_judged_by_name_and_value() {
        for sql in [
            "set \"role\" = 'nobody'",
            "set role nobody",
            "set session_authorization = 'nobody'",
            "set session authorization nobody",
            "set session_replication_role = replica",
            "set local session_replication_role to replica",
            "set standard_conforming_strings = off",
            "set \"standard_conforming_strings\" to off",
            "set default_transaction_read_only = off",
            "set transaction read write",
            "begin read write",
            "start transaction isolation level serializable, read write",
            "set session characteristics as transaction read write",
            "set client_encoding = 'SJIS'",
            "set client_encoding to big5",
            "set names 'gbk'",
            "reset role",
            "reset session authorization",
            "alter database app set default_transaction_read_only = off",
        ] {
            assert!(has(sql, Privilege), "{sql}: {}", classes(sql));
        }
        for sql in [
            "set extra_float_digits = 3",
            "SET application_name = 'x'",
            "set client_encoding = 'UTF8'",
            "set names 'utf8'",
            "set my.var = 'x'",
            "set time zone 'UTC'",
            "RESET ALL",
            "reset client_encoding",
            "DISCARD ALL",
            "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new",
            "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
            "begin read only",
        ] {
            let c = classes(sql);
            assert!(c.iter().all(|c| matches!(c, Read | Session | Transaction)), "{sql}: {c}");
        }
    }

    #[test]
    fn catalog_writes_are_privilege() {
        for sql in [
            "update pg_settings set setting = 'replica' where name = 'session_replication_role'",
            "update pg_authid set rolsuper = true where rolname = 'app'",
            "update \"pg_catalog\".\"pg_class\" set relname = 'x' where relname = 'v'",
            "delete from pg_trigger",
            "delete from only pg_catalog.pg_trigger where true",
            "insert into pg_catalog.pg_proc select * from pg_proc",
            "truncate pg_largeobject",
            "merge into pg_class c using (select 1) s on true when matched then delete",
            "with x as (update pg_class set relname = 'y' returning 1) select 1",
            "copy pg_catalog.pg_description from stdin",
        ] {
            assert!(has(sql, Privilege), "{sql}: {}", classes(sql));
        }
        assert!(!has("update pgx set a = 1 where id = 2", Privilege));
    }

    #[test]
    fn user_functions_are_unknown_and_syntax_is_not_a_call() {
        for sql in [
            "select del_all()",
            "select public.lower('x')",
            "select * from t where myschema.f(x)",
            "select \"coalesce\"(1)",
            // A call in a FROM list after a CTE is a call, column definition list or not.
            "with q as (select 1) select * from q, del_all(1) as (a text)",
            "with q as (select 1) select * from q, del_all(1)",
            "select (with q as (select 1) select 1), del_all(1) as (a int)",
            // Past a SEARCH clause the CTE list is not followed: what comes after is read as a call.
            "with recursive r(n) as (select 1) search depth first by n set o, s(x) as (select 1) select 1",
        ] {
            assert!(has(sql, Unknown), "{sql}: {}", classes(sql));
        }
        for sql in [
            "insert into t (a, b) values (1, 2)",
            "insert into s.t(a) select 1 on conflict (a) do update set (a) = (select 1)",
            "with x (a) as (select 1), y (b) as materialized (select 2) select * from x, y",
            // CTEs at any depth (asyncpg's type introspection nests one in a CASE).
            "select (with b(x) as (select 1) select x from b)",
            "select * from (with recursive b(x, d) as (select 1, 0), c (y) as not materialized (select 2) select x from b, c) s",
            "select case when true then (with recursive t(o) as (select 1 union all select o from t) select o from t) end",
            "select cast(x as varchar(10)), x::numeric(10, 2) from t",
            "select exists (select 1), coalesce(a, b), greatest(1, 2), extract(year from now()) from t",
            "select * from a join (b join c on true) on true",
            "select count(*) filter (where a) over (partition by b order by c) from t group by (a)",
            "select trim(both from x), substring(x from 1 for 2), position('a' in x) from t",
            "select * from t where id in (1, 2) and not (a) and id = any ($1)",
            "select array(select 1), row(1, 2), left(x, 1) from t",
            "update t set a = 1 where id = $1",
            "prepare q (int) as select * from t where id = $1",
            "select * from unnest(array[1]) with ordinality",
            "copy t (a, b) from stdin",
            "copy t to stdout (format binary)",
            "select * from generate_series(1, 3) g(i), (select 1) s(a), unnest(x) with ordinality u(v, n)",
            "select c.oid from pg_class c where c.relname OPERATOR(pg_catalog.~) '^(t)$'",
            "copy (select 1) to stdout with (format csv, header)",
        ] {
            assert!(!has(sql, Unknown), "{sql}: {}", classes(sql));
        }
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;
    use crate::sql::split;

    /// `v` is keyed by `id`, `w` by `(a, b)`; `r` is a view with rules; `twin` is keyed
    /// in one schema and not in another.
    struct Keys;

    impl Catalog for Keys {
        fn trusted(&self, _: Option<&str>, _: &str) -> bool {
            false
        }
        fn pins(&self, schema: Option<&str>, name: &str, columns: &[String]) -> bool {
            let has = |c: &str| columns.iter().any(|x| x == c);
            match (schema, name) {
                (None | Some("public"), "v") => has("id"),
                (None | Some("public"), "w") => has("a") && has("b"),
                (Some("public"), "twin") => has("id"),
                _ => false,
            }
        }
        fn rewrites(&self, _: Option<&str>, name: &str) -> bool {
            name == "r"
        }
        fn shadows(&self, name: &str) -> bool {
            name == "purge"
        }
    }

    /// Held or guarded: not a plain write.
    fn unpinned(sql: &str) -> bool {
        split(sql).iter().any(|s| {
            let c = classify_trusting(s, &Keys);
            c.contains(Destructive) || c.contains(Bulk)
        })
    }

    #[test]
    fn rows_are_pinned_only_by_a_unique_key_and_rules_are_unknown() {
        let c = |sql: &str| classify_trusting(&split(sql)[0], &Keys).to_string();
        assert_eq!(c("delete from v where id = 1"), "write");
        assert_eq!(c("delete from v where v = 'x'"), "write,bulk");
        assert_eq!(c("delete from v where tableoid = 'v'::regclass"), "write,bulk");
        assert_eq!(c("delete from v where xmax = 0"), "write,bulk");
        assert_eq!(c("delete from v where id = any('{1,2,3}')"), "write,bulk");
        assert_eq!(c("delete from v where id in (1, 2)"), "write,bulk");
        assert_eq!(c("update w set x = 1 where a = $1"), "write,bulk");
        assert_eq!(c("update w set x = 1 where a = $1 and b = $2 and x > 0"), "write");
        assert_eq!(c("delete from twin where id = 1"), "write,bulk");
        assert_eq!(c("delete from public.twin where id = 1"), "write");
        assert_eq!(c("delete from r where id = 1"), "write,bulk,unknown");
        assert_eq!(c("insert into r values (1)"), "write,unknown");
        assert_eq!(classes("delete from v where id = 1"), "write,bulk");
        // Found by attacking: keywords as aliases, upserts from more than one row,
        // functions called as `rel.f`.
        assert_eq!(c("delete from v where id = 1 and exists (select 1 as end) or true"), "write,bulk");
        assert_eq!(c("update v set a = 1 where id = 1 and (select true as case) or true"), "write,bulk");
        assert_eq!(
            c(
                "insert into v select g from generate_series(1, 9) g union all values (0) on conflict (id) do update set a = 1"
            ),
            "write,bulk"
        );
        assert_eq!(c("insert into v values (1), (2) on conflict (id) do update set a = 1"), "write,bulk");
        assert_eq!(c("insert into v values (1, 'x') on conflict (id) do update set a = excluded.a"), "write");
        assert_eq!(c("select count(x.purge) from v x"), "read,unknown");
        assert_eq!(c("select count(x.id) from v x"), "read");
    }

    fn classes(sql: &str) -> String {
        classify(&split(sql)[0]).to_string()
    }

    #[test]
    fn only_a_bulk_change_the_server_tags_is_left_to_the_guard() {
        assert_eq!(classes("delete from v where id > 1"), "write,bulk");
        assert_eq!(classes("MERGE into v using w on v.id = w.id when matched then delete"), "write,bulk");
        assert_eq!(classes("with x as (select 1) update v set a = 1 where a > 1"), "read,write,destructive");
        assert_eq!(
            classes("with d as (delete from v where id > 1 returning *) select * from d"),
            "read,write,destructive"
        );
        assert_eq!(classes("explain analyze delete from v where id > 1"), "read,write,destructive");
        assert_eq!(classes("prepare p as delete from v where id > $1"), "write,destructive");
        assert_eq!(
            classes("select query_to_xml('delete from v where id > 1', true, true, '')"),
            "read,write,destructive"
        );
        assert_eq!(classes("delete from v"), "write,destructive");
    }

    #[test]
    fn only_pinned_rows_are_plain_writes() {
        for sql in [
            "delete from v where (true)",
            "delete from v where true and true",
            "delete from v where 't'",
            "delete from v where 1::bool",
            "delete from v where 2 > 1",
            "delete from v where id = id",
            "delete from v where id is not null",
            "delete from v where exists (select 1)",
            "delete from v where id = 1 or true",
            "delete from v where id in (1, 2, 3)",
            "delete from v where id = any ($1)",
            "update v set a = 1 where a = a",
            "update v set a = 1 where id > 0",
            "delete from v where id = (select id from v)",
            "merge into v using (select 1) s on true when matched then delete",
            "delete from v where id in (select id from v)",
            "delete from v where id = any (select id from v)",
            "delete from v where true = 't'",
            "delete from v where current_user = 'app_rw'",
            "delete from v where 'x' = current_user",
            "delete from v using (select 1 as k) s where s.k = 1",
            "update v set a = 'x' from (values (1)) s(k) where s.k = 1",
            "insert into v select * from v on conflict (id) do update set a = 'x'",
            "explain (\"analyze\") delete from v where id = 1 or true",
            "explain (U&\"analyz\\0065\", costs off) update v set a = 1",
            "vacuum (\"full\") v",
            "delete from v where id between 0 and id = 't'",
            "delete from v where case when true and id = 1 and true then true else true end",
            "delete from v where array[true and id = 1 and true, true][2]",
        ] {
            assert!(unpinned(sql), "{sql}");
        }
        for sql in [
            "delete from v where id = $1",
            "delete from v where v.id = 42 and a > 1",
            "update v set a = 1 where id = '7'::uuid",
            "update v set a = $2 where id = $1 and (a > 1 or b)",
            "delete from v where 5 = id",
            "delete from v where current of c",
            "insert into v values (1, 'a') on conflict (id) do update set a = excluded.a",
            "insert into v select * from w on conflict do nothing",
        ] {
            assert!(!unpinned(sql), "{sql}");
        }
    }
}
