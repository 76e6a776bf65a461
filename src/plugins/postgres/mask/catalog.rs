//! Table OIDs to `schema.table.column` names, looked up on the upstream and cached,
//! with view columns followed to the base columns they show.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_postgres::describe::{self, Column};
use airlock_postgres::message::{self, tag};
use airlock_postgres::node_tree;

use super::ConnectionMasking;
use crate::plugins::postgres::upstream::{Upstream, UpstreamTarget};

/// How long a table's column names are trusted before they are looked up again.
const CATALOG_TTL: Duration = Duration::from_secs(300);
/// How soon a failed catalog lookup is tried again.
const CATALOG_RETRY: Duration = Duration::from_secs(30);
/// Time allowed for one catalog lookup, connection included.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(10);

/// Table OIDs to `schema.table.column` names, looked up on the upstream with the
/// connection's own credentials (a separate, short-lived session) and cached.
pub(super) struct Catalog {
    target: Arc<UpstreamTarget>,
    tables: Mutex<HashMap<u32, (Instant, Arc<TableColumns>)>>,
}

/// A relation's column identities by attribute number: `schema.table.column`, and for
/// a view column also the identities of the column it shows.
type TableColumns = HashMap<i16, Vec<String>>;

/// One column as the catalog describes it: its name and, for a view column that is a
/// plain reference, the relation and column it comes from.
struct CatalogColumn {
    name: String,
    origin: Option<(u32, i16)>,
    /// A view's column computed in the view (no column of another relation).
    computed: bool,
}

/// The last identity of a view column computed in the view: like a computed column of
/// the statement itself, masked when the statement may carry masked values.
pub(super) const COMPUTED_IN_VIEW: &str = "(computed in a view)";

/// How deep views over views are followed.
const MAX_VIEW_DEPTH: usize = 4;

impl Catalog {
    /// A catalog looked up on `target`, with nothing cached yet.
    pub(super) fn new(target: Arc<UpstreamTarget>) -> Catalog {
        Catalog { target, tables: Mutex::default() }
    }

    /// The cached identities of these columns, by table OID and attribute number; columns
    /// of tables not cached are left out.
    pub(super) fn identities(&self, columns: &[Column]) -> HashMap<(u32, i16), Vec<String>> {
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        columns
            .iter()
            .filter_map(|c| {
                let (_, cols) = tables.get(&c.table_oid)?;
                Some(((c.table_oid, c.attnum), cols.get(&c.attnum)?.clone()))
            })
            .collect()
    }

    /// Makes sure the names of these relations are cached (and fresh), following views
    /// to their base columns. A failed lookup leaves them unknown, which masks their
    /// columns (fail closed).
    async fn ensure(&self, oids: &[u32]) {
        let stale = |tables: &HashMap<u32, (Instant, Arc<TableColumns>)>, o: &u32| {
            tables.get(o).is_none_or(|(at, _)| at.elapsed() >= CATALOG_TTL)
        };
        let mut missing: Vec<u32> = {
            let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            oids.iter().copied().filter(|o| stale(&tables, o)).collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return;
        }
        let mut found: HashMap<u32, HashMap<i16, CatalogColumn>> = HashMap::new();
        for _ in 0..=MAX_VIEW_DEPTH {
            let round = match tokio::time::timeout(CATALOG_TIMEOUT, self.lookup(&missing)).await {
                Ok(Ok(round)) => round,
                failed => {
                    match failed {
                        Ok(Err(e)) => tracing::warn!(error = %e, "catalog lookup for column masking failed"),
                        _ => tracing::warn!("catalog lookup for column masking timed out"),
                    }
                    // Remember the failure for a while: their columns stay masked (fail
                    // closed) without every result waiting on another lookup.
                    let retry_at = Instant::now().checked_sub(CATALOG_TTL - CATALOG_RETRY).unwrap_or_else(Instant::now);
                    let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
                    for oid in missing {
                        tables.entry(oid).or_insert_with(|| (retry_at, Arc::default()));
                    }
                    return;
                }
            };
            found.extend(round);
            for oid in &missing {
                found.entry(*oid).or_default();
            }
            // Views lead to their base relations, looked up in the next round.
            missing = found
                .values()
                .flat_map(|cols| cols.values().filter_map(|c| c.origin.map(|(o, _)| o)))
                .filter(|o| !found.contains_key(o))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            if missing.is_empty() {
                break;
            }
        }
        let identities = |oid: u32, attnum: i16| {
            let mut out = Vec::new();
            let mut at = Some((oid, attnum));
            while let Some((o, a)) = at.take() {
                if let Some(col) = found.get(&o).and_then(|cols| cols.get(&a))
                    && out.len() <= MAX_VIEW_DEPTH
                {
                    out.push(col.name.clone());
                    if col.computed {
                        out.push(COMPUTED_IN_VIEW.to_owned());
                    }
                    at = col.origin;
                }
            }
            out
        };
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        for (oid, cols) in &found {
            let columns: TableColumns = cols.keys().map(|a| (*a, identities(*oid, *a))).collect();
            tables.insert(*oid, (Instant::now(), Arc::new(columns)));
        }
    }

    async fn lookup(&self, oids: &[u32]) -> anyhow::Result<HashMap<u32, HashMap<i16, CatalogColumn>>> {
        let list = oids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT c.oid, a.attnum, n.nspname || '.' || c.relname || '.' || a.attname, \
             CASE WHEN c.relkind IN ('v', 'm') AND a.attnum = 1 THEN (SELECT r.ev_action::text \
               FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename = '_RETURN') END \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
             WHERE c.oid IN ({list}) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2"
        );
        let mut out: HashMap<u32, HashMap<i16, CatalogColumn>> = HashMap::new();
        let mut origins: HashMap<u32, HashMap<i16, (u32, i16)>> = HashMap::new();
        self.target
            .exchange(message::query(&sql), |tag, body| {
                if tag != tag::DATA_ROW {
                    return Ok(());
                }
                let v = describe::data_row(body)?;
                let text = |i: usize| v.get(i).copied().flatten().map(String::from_utf8_lossy);
                if let (Some(oid), Some(attnum), Some(name)) = (text(0), text(1), text(2)) {
                    let oid: u32 = oid.parse()?;
                    if let Some(rule) = text(3) {
                        origins.insert(oid, node_tree::view_origins(&rule));
                    }
                    let attnum: i16 = attnum.parse()?;
                    let view = origins.get(&oid);
                    let origin = view.and_then(|o| o.get(&attnum)).copied();
                    let computed = view.is_some() && origin.is_none();
                    out.entry(oid)
                        .or_default()
                        .insert(attnum, CatalogColumn { name: name.into_owned(), origin, computed });
                }
                Ok(())
            })
            .await?;
        Ok(out)
    }
}

impl ConnectionMasking {
    /// Forgets every table's column names: a statement about to run may rename or
    /// replace them (DDL), and a stale name could let a masked column through.
    pub fn forget_catalog(&self) {
        self.catalog.tables.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The views that show a rule-masked column, directly or through other views, by
    /// name: a statement naming one is read as naming the column. Asked on the
    /// session that is about to become the agent's.
    pub async fn views_showing_masked_columns(
        &self,
        up: &mut Upstream,
        max_message: usize,
    ) -> anyhow::Result<HashSet<String>> {
        const QUERY: &str = "\
SELECT DISTINCT r.ev_class::int8, v.relname, d.refobjid::int8, n.nspname, c.relname, a.attname
  FROM pg_rewrite r
  JOIN pg_class v ON v.oid = r.ev_class
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
  JOIN pg_class c ON c.oid = d.refobjid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
 WHERE v.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)";
        // (view, its name, what it reads, and that relation's column if one).
        let mut edges: Vec<(i64, String, i64, Option<String>)> = Vec::new();
        up.exchange(message::query(QUERY), max_message, |t, body| {
            if t != tag::DATA_ROW {
                return Ok(());
            }
            let row = describe::data_row(body)?;
            let text = |i: usize| row.get(i).copied().flatten().map(|v| String::from_utf8_lossy(v).into_owned());
            let number = |i: usize| text(i).and_then(|v| v.parse::<i64>().ok());
            if let (Some(view), Some(name), Some(read), Some(schema), Some(table)) =
                (number(0), text(1), number(2), text(3), text(4))
            {
                let masked = text(5).map(|column| format!("{schema}.{table}.{column}"));
                edges.push((view, name, read, masked));
            }
            Ok(())
        })
        .await?;
        // Views reading a masked column, then views reading those, to a fixed point.
        let mut showing: HashMap<i64, String> = HashMap::new();
        loop {
            let before = showing.len();
            for (view, name, read, column) in &edges {
                let direct = column.as_ref().is_some_and(|c| self.rule_for(std::slice::from_ref(c)).is_some());
                if direct || showing.contains_key(read) {
                    showing.insert(*view, name.clone());
                }
            }
            if showing.len() == before {
                break;
            }
        }
        Ok(showing.into_values().collect())
    }

    /// Looks up the names of the tables `columns` come from, if column rules need them.
    pub(super) async fn learn(&self, columns: &[Column]) {
        if !self.columns.is_empty() {
            let oids: Vec<u32> = columns.iter().map(|c| c.table_oid).filter(|o| *o != 0).collect();
            self.catalog.ensure(&oids).await;
        }
    }
}
