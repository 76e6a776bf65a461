//! Relations that run code of the database's own when they are read: views whose
//! definitions call functions that are not built in (directly, or through other views),
//! and tables whose row-level security policies do. `SELECT * FROM v` looks like a
//! read, but if `v` calls a function that deletes, reading it deletes. Airlock cannot
//! see into those functions, so a statement that names such a relation is `unknown`.
//!
//! The same read lists the functions that are not built in ([`UserFunctions`]): a call
//! of one that cannot change anything (not volatile, not `SECURITY DEFINER`, and, for
//! SQL and PL/pgSQL, a body that calls only built-in functions that read) is no more
//! than the statement around it; any other is `unknown`.
//!
//! The set comes from the upstream's catalog (`pg_depend`, `pg_proc`), read on the
//! agent's own upstream session just before it is handed over. What DDL changes later
//! in the session (it needs approval by default) is not in it.

use std::collections::{HashMap, HashSet};

use airlock_postgres::message::{self, tag};
use airlock_postgres::{describe, sql};

use super::upstream::Upstream;

/// What runs code of the database's own when a statement merely reads or computes:
/// views and tables (row-level security) that call functions that are not built in,
/// directly or through operators, domains and other views; operators backed by such
/// functions; and types whose checks or casts call them. Functions in `pg_catalog`
/// and `information_schema` are the server's own.
const QUERY: &str = "\
WITH RECURSIVE
user_fn AS (
  SELECT oid FROM pg_proc
   WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)),
user_op AS (
  SELECT oid, oprname FROM pg_operator
   WHERE oprcode::oid IN (SELECT oid FROM user_fn)
      OR oprnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)),
user_type AS (
  SELECT con.contypid AS oid FROM pg_constraint con
    JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid
                    AND d.refclassid = 'pg_proc'::regclass
   WHERE con.contypid <> 0 AND d.refobjid IN (SELECT oid FROM user_fn)
  UNION
  SELECT casttarget FROM pg_cast WHERE castfunc IN (SELECT oid FROM user_fn)),
runs_code(oid) AS (
  SELECT r.ev_class FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
   WHERE (d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM user_fn))
      OR (d.refclassid = 'pg_operator'::regclass AND d.refobjid IN (SELECT oid FROM user_op))
      OR (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT oid FROM user_type))
  UNION
  SELECT pol.polrelid FROM pg_policy pol
    JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
   WHERE (d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM user_fn))
      OR (d.refclassid = 'pg_operator'::regclass AND d.refobjid IN (SELECT oid FROM user_op))
  UNION
  SELECT r.ev_class FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
    JOIN runs_code c ON c.oid = d.refobjid)
SELECT 'name', c.relname FROM runs_code r JOIN pg_class c ON c.oid = r.oid
UNION SELECT 'name', t.typname FROM user_type u JOIN pg_type t ON t.oid = u.oid
UNION SELECT 'operator', oprname FROM user_op;
SELECT n.nspname, p.proname, p.prokind = 'f' AND p.provolatile <> 'v' AND NOT p.prosecdef, l.lanname,
       CASE WHEN l.lanname IN ('sql', 'plpgsql') THEN p.prosrc END
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace);
SELECT 'key', n.nspname, c.relname, json_agg(a.attname ORDER BY k.ord)::text
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
 WHERE i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
   AND k.ord <= i.indnkeyatts AND NOT (c.relkind = 'r' AND c.relhassubclass)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
 GROUP BY i.indexrelid, n.nspname, c.relname;
SELECT 'relation', n.nspname, c.relname, c.relkind::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND c.relname IN (SELECT k.relname FROM pg_index i JOIN pg_class k ON k.oid = i.indrelid WHERE i.indisunique);
SELECT 'cascades', n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.oid
                 AND (f.confdeltype IN ('c', 'n', 'd') OR f.confupdtype IN ('c', 'n', 'd')))
    OR EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal);
SELECT 'rewrites', n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1')
    OR EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgtype & 64 <> 0)";

/// What the session's catalog says: what runs code of the database's own, its
/// functions and its relations' unique keys and rules.
#[derive(Debug, Default)]
pub struct SessionCatalog {
    /// Relations and types that run code when read, by name.
    pub names: HashSet<String>,
    /// Operators that run code, by symbol.
    pub operators: Vec<String>,
    /// Functions that are not built in.
    pub functions: UserFunctions,
    /// Relations, by name: each one's schema, unique keys, and whether writes to it run
    /// rules or INSTEAD OF triggers.
    relations: HashMap<String, Vec<Relation>>,
}

#[derive(Debug, Default)]
struct Relation {
    schema: String,
    keys: Vec<Vec<String>>,
    rewrites: bool,
    /// Deleting or updating its rows changes others: foreign keys that cascade (or set
    /// null or a default) reference it, or it has triggers of the database's own.
    cascades: bool,
}

impl SessionCatalog {
    fn relation(&mut self, schema: String, name: String) -> &mut Relation {
        let all = self.relations.entry(name).or_default();
        match all.iter().position(|r| r.schema == schema) {
            Some(i) => &mut all[i],
            None => {
                all.push(Relation { schema, ..Relation::default() });
                all.last_mut().expect("just pushed")
            }
        }
    }

    /// The relations a name may mean: in its schema if written, else any by that name.
    fn candidates<'a>(&'a self, schema: Option<&'a str>, name: &str) -> impl Iterator<Item = &'a Relation> + 'a {
        self.relations.get(name).into_iter().flatten().filter(move |r| schema.is_none_or(|s| s == r.schema))
    }
}

impl sql::Catalog for SessionCatalog {
    fn trusted(&self, schema: Option<&str>, name: &str) -> bool {
        self.functions.trusted(schema, name)
    }

    fn shadows(&self, name: &str) -> bool {
        self.functions.shadows(name)
    }

    /// Every relation the name may mean has a unique key within `columns`.
    fn pins(&self, schema: Option<&str>, name: &str, columns: &[String]) -> bool {
        let mut candidates = self.candidates(schema, name).peekable();
        candidates.peek().is_some()
            && candidates.all(|r| r.keys.iter().any(|key| key.iter().all(|c| columns.contains(c))))
    }

    fn rewrites(&self, schema: Option<&str>, name: &str) -> bool {
        self.candidates(schema, name).any(|r| r.rewrites)
    }

    fn cascades(&self, schema: Option<&str>, name: &str) -> bool {
        self.candidates(schema, name).any(|r| r.cascades)
    }
}

/// The functions that are not built in, as the catalog shows them.
#[derive(Debug, Default)]
pub struct UserFunctions {
    /// By name: each one's schema and whether it can change nothing.
    by_name: HashMap<String, Vec<(String, bool)>>,
    /// Bodies of those that look safe, until what runs code is known: (name, index in
    /// its `by_name` entry, body).
    bodies: Vec<(String, usize, String)>,
}

impl UserFunctions {
    /// Notes function `schema.name`. It can change nothing when it is a plain
    /// function, not volatile and not `SECURITY DEFINER` (`plain_stable`), written in
    /// C (an extension's, trusted to its volatility) or in SQL or PL/pgSQL with a body
    /// that calls only built-in functions that read and names nothing that runs code of
    /// the database's own (see [`UserFunctions::check_bodies`]); any other language
    /// may do anything. A volatile function it reaches could write even so.
    pub fn add(&mut self, schema: &str, name: &str, plain_stable: bool, language: &str, body: Option<&str>) {
        let safe = plain_stable
            && match language {
                "c" | "internal" => true,
                "sql" | "plpgsql" => body.is_some_and(|b| !b.trim().is_empty() && sql::calls_only_reads(b)),
                _ => false,
            };
        let all = self.by_name.entry(name.to_owned()).or_default();
        if let (true, Some(body)) = (safe, body) {
            self.bodies.push((name.to_owned(), all.len(), body.to_owned()));
        }
        all.push((schema.to_owned(), safe));
    }

    /// Withdraws trust from functions whose bodies name what `runs_code` finds (a view,
    /// operator, cast or domain that calls other functions).
    pub fn check_bodies(&mut self, runs_code: impl Fn(&str) -> bool) {
        for (name, i, body) in std::mem::take(&mut self.bodies) {
            if runs_code(&body)
                && let Some(entry) = self.by_name.get_mut(&name).and_then(|all| all.get_mut(i))
            {
                entry.1 = false;
            }
        }
    }
}

impl sql::Catalog for UserFunctions {
    /// Every function the call may resolve to (by name, in its schema if written) can
    /// change nothing.
    fn trusted(&self, schema: Option<&str>, name: &str) -> bool {
        let Some(all) = self.by_name.get(name) else { return false };
        let mut candidates = all.iter().filter(|(s, _)| schema.is_none_or(|w| w == s)).peekable();
        candidates.peek().is_some() && candidates.all(|&(_, safe)| safe)
    }

    fn shadows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

impl SessionCatalog {
    /// What in `text` runs code of the database's own: a relation, type or operator
    /// named anywhere in it, also inside strings (SQL passed to functions).
    pub fn runs_code_in(&self, text: &str) -> Option<String> {
        runs_code_in(&self.names, &self.operators, text)
    }
}

fn runs_code_in(names: &HashSet<String>, operators: &[String], text: &str) -> Option<String> {
    use sql::lexer::TokenKind;
    if names.is_empty() && operators.is_empty() {
        return None;
    }
    // An operator anywhere in the text, even in a string: only a false alarm.
    if let Some(op) = operators.iter().find(|op| text.contains(op.as_str())) {
        return Some(format!("operator {op}"));
    }
    let t = sql::lexer::tokens(text);
    (0..t.len()).find_map(|i| match t[i].kind {
        TokenKind::String | TokenKind::DollarString => runs_code_in(names, operators, &sql::lexer::literal_text(&t[i])),
        _ => {
            let (name, _) = sql::lexer::ident_at(&t, i)?;
            names.contains(&name).then_some(name)
        }
    })
}

/// What runs code of the database's own when read, asked on the session that is
/// about to become the agent's (one round trip before its first statement, and
/// always current for it).
pub async fn read_catalog(up: &mut Upstream, max_message: usize) -> anyhow::Result<SessionCatalog> {
    let mut out = SessionCatalog::default();
    up.exchange(message::query(QUERY), max_message, |t, body| {
        if t != tag::DATA_ROW {
            return Ok(());
        }
        let text = |v: &Option<&[u8]>| v.map(|b| String::from_utf8_lossy(b).into_owned());
        match describe::data_row(body)?.as_slice() {
            [Some(b"operator"), Some(name)] => out.operators.push(String::from_utf8_lossy(name).into_owned()),
            [Some(b"cascades"), schema, name] => {
                out.relation(text(schema).unwrap_or_default(), text(name).unwrap_or_default()).cascades = true;
            }
            [Some(b"rewrites"), schema, name] => {
                out.relation(text(schema).unwrap_or_default(), text(name).unwrap_or_default()).rewrites = true;
            }
            // Every relation by a keyed one's name: an unqualified name may mean any.
            [Some(b"relation"), schema, name, _] => {
                out.relation(text(schema).unwrap_or_default(), text(name).unwrap_or_default());
            }
            [Some(b"key"), schema, name, Some(columns)] => {
                let key: Vec<String> = serde_json::from_slice(columns)?;
                out.relation(text(schema).unwrap_or_default(), text(name).unwrap_or_default()).keys.push(key);
            }
            [Some(_), Some(name)] => drop(out.names.insert(String::from_utf8_lossy(name).into_owned())),
            [schema, name, plain_stable, language, body] => out.functions.add(
                &text(schema).unwrap_or_default(),
                &text(name).unwrap_or_default(),
                *plain_stable == Some(b"t"),
                &text(language).unwrap_or_default(),
                text(body).as_deref(),
            ),
            _ => {}
        }
        Ok(())
    })
    .await?;
    let SessionCatalog { names, operators, functions, .. } = &mut out;
    functions.check_bodies(|body| runs_code_in(names, operators, body).is_some());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_postgres::sql::Catalog;

    #[test]
    fn a_call_is_trusted_only_if_every_function_it_may_run_changes_nothing() {
        let mut f = UserFunctions::default();
        f.add("public", "total", true, "sql", Some("select sum(x) from t"));
        f.add("public", "pick", true, "plpgsql", Some("begin if (x > 0) then return abs(x); end if; return 0; end"));
        f.add("public", "dyn", true, "plpgsql", Some("begin execute q; return 1; end"));
        f.add("public", "kill", true, "sql", Some("select pg_terminate_backend(1)"));
        f.add("public", "py", true, "plpython3u", Some("return 1"));
        f.add("public", "vol", false, "sql", Some("select 1"));
        f.add("public", "ext", true, "c", None);
        f.add("public", "empty", true, "sql", Some(" "));
        f.add("public", "twin", true, "sql", Some("select 1"));
        f.add("other", "twin", false, "sql", Some("select 1"));
        for name in ["total", "pick", "ext"] {
            assert!(f.trusted(None, name) && f.trusted(Some("public"), name), "{name}");
        }
        for name in ["dyn", "kill", "py", "vol", "empty", "twin", "missing"] {
            assert!(!f.trusted(None, name), "{name}");
        }
        assert!(f.trusted(Some("public"), "twin") && !f.trusted(Some("other"), "twin"));
        assert!(!f.trusted(Some("other"), "total"));
        assert!(f.shadows("twin") && !f.shadows("lower"));
        // A body naming what runs code (a view calling another function) is not trusted.
        f.add("public", "via_view", true, "sql", Some("select count(*) from deleting_view"));
        assert!(f.trusted(None, "via_view"));
        f.check_bodies(|body| body.contains("deleting_view"));
        assert!(!f.trusted(None, "via_view") && f.trusted(None, "total"));
    }
}
