//! Relations that run code of the database's own when they are read: views whose
//! definitions call functions that are not built in (directly, or through other views),
//! and tables whose row-level security policies do. `SELECT * FROM v` looks like a
//! read, but if `v` calls a function that deletes, reading it deletes. Airlock cannot
//! see into those functions, so a statement that names such a relation is `unknown`.
//!
//! The set comes from the upstream's catalog (`pg_depend`), read on the agent's own
//! upstream session just before it is handed over. A relation created later in the
//! session (DDL, which needs approval by default) is not in it.

use std::collections::HashSet;

use airlock_postgres::describe;
use airlock_postgres::message::{self, tag};

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
UNION SELECT 'operator', oprname FROM user_op";

/// What the catalog says runs code of the database's own.
#[derive(Debug, Default)]
pub struct RunsCode {
    /// Relations and types, by name.
    pub names: HashSet<String>,
    /// Operators, by symbol.
    pub operators: Vec<String>,
}

impl RunsCode {
    /// Whether there is anything at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.operators.is_empty()
    }
}

/// What runs code of the database's own when read, asked on the session that is
/// about to become the agent's (one round trip before its first statement, and
/// always current for it).
pub async fn relations_running_code(up: &mut Upstream, max_message: usize) -> anyhow::Result<RunsCode> {
    let mut out = RunsCode::default();
    up.exchange(message::query(QUERY), max_message, |t, body| {
        if t == tag::DATA_ROW
            && let [Some(kind), Some(name)] = describe::data_row(body)?.as_slice()
        {
            let name = String::from_utf8_lossy(name).into_owned();
            match *kind {
                b"operator" => out.operators.push(name),
                _ => drop(out.names.insert(name)),
            }
        }
        Ok(())
    })
    .await?;
    Ok(out)
}
