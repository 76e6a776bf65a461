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

/// Views and tables whose reading runs functions that are not built in. Functions in
/// `pg_catalog` and `information_schema` are the server's own.
const QUERY: &str = "\
WITH RECURSIVE runs_code(oid) AS (
  SELECT r.ev_class FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_proc'::regclass
    JOIN pg_proc p ON p.oid = d.refobjid
   WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION
  SELECT pol.polrelid FROM pg_policy pol
    JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid AND d.refclassid = 'pg_proc'::regclass
    JOIN pg_proc p ON p.oid = d.refobjid
   WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION
  SELECT r.ev_class FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
    JOIN runs_code c ON c.oid = d.refobjid
)
SELECT DISTINCT c.relname FROM runs_code r JOIN pg_class c ON c.oid = r.oid";

/// The names of the relations that run code of the database's own when read, asked
/// on the session that is about to become the agent's (one round trip before its
/// first statement, and always current for it).
pub async fn relations_running_code(up: &mut Upstream, max_message: usize) -> anyhow::Result<HashSet<String>> {
    let mut names = HashSet::new();
    up.exchange(message::query(QUERY), max_message, |t, body| {
        if t == tag::DATA_ROW
            && let Some(Some(name)) = describe::data_row(body)?.first()
        {
            names.insert(String::from_utf8_lossy(name).into_owned());
        }
        Ok(())
    })
    .await?;
    Ok(names)
}
