//! Masking what PostgreSQL sends back.
//!
//! A RowDescription becomes a [`Plan`]: for each column, whether a `[[masking]]`
//! column rule covers it (by identity: the table OID and attribute number the server
//! reports, resolved to `schema.table.column` through the upstream's catalog), whether
//! its values are text the value detectors must read, or whether it can pass. DataRows
//! are then checked where they lie in the read buffer and rewritten only when a value
//! changes; binary values of rule-masked columns become NULL.
//!
//! In the extended protocol, rows often arrive without a RowDescription of their own:
//! the driver described the statement earlier and chose result formats at Bind. The
//! agent side therefore tells the result side, in order, what each Describe, Execute,
//! Query and Sync will be answered with ([`Expect`]); the result side pairs rows with
//! the statement's columns and the Bind's formats.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_postgres::describe::{self, Column};
use airlock_postgres::message::{self, tag};
use airlock_postgres::{Chunk, Disposition, Header, ProtocolError, Scanner};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::upstream::UpstreamTarget;
use crate::config::{Config, MaskStyle};
use crate::masking::{Detector, Masker, Style};

/// How long a table's column names are trusted before they are looked up again.
const CATALOG_TTL: Duration = Duration::from_secs(300);
/// Time allowed for one catalog lookup, connection included.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(10);

/// What one connection masks, built at start-up.
pub struct ConnectionMasking {
    masker: Masker,
    columns: Vec<(Vec<String>, Style)>,
    catalog: Catalog,
}

impl std::fmt::Debug for ConnectionMasking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionMasking").field("masker", &self.masker).field("columns", &self.columns).finish()
    }
}

fn style(s: MaskStyle) -> Style {
    match s {
        MaskStyle::Redact => Style::Redact,
        MaskStyle::Partial => Style::Partial,
        MaskStyle::Hash => Style::Hash,
    }
}

impl ConnectionMasking {
    /// The masking of connection `name` under `config`, or `None` when nothing is ever
    /// masked there (no detectors, no patterns, no column rules).
    pub fn new(config: &Config, target: Arc<UpstreamTarget>, key: &[u8]) -> anyhow::Result<Option<ConnectionMasking>> {
        let name = target.conn.name.as_str();
        let rules: Vec<_> = config
            .masking
            .iter()
            .filter(|r| r.connections.is_empty() || r.connections.iter().any(|c| c == name))
            .collect();
        let chooser = rules.iter().find(|r| r.detectors.is_some());
        let detectors = chooser.and_then(|r| r.detectors.as_deref());
        let mut masker = Masker::new(detectors, chooser.map_or(Style::Redact, |r| style(r.style)), key);
        for p in rules.iter().flat_map(|r| &r.patterns) {
            masker.add(Detector::custom(&p.name, &p.regex, p.max_len)?);
        }
        let columns: Vec<(Vec<String>, Style)> = rules
            .iter()
            .flat_map(|r| r.columns.iter().map(|c| (c.split('.').map(str::to_owned).collect(), style(r.style))))
            .collect();
        if masker.is_empty() && columns.is_empty() {
            return Ok(None);
        }
        Ok(Some(ConnectionMasking { masker, columns, catalog: Catalog { target, tables: Mutex::default() } }))
    }

    fn rule_for(&self, identity: &str) -> Option<Style> {
        let parts: Vec<&str> = identity.split('.').collect();
        self.columns
            .iter()
            .find(|(glob, _)| glob.len() == parts.len() && glob.iter().zip(&parts).all(|(g, p)| glob_match(g, p)))
            .map(|(_, s)| *s)
    }

    /// The plan for `columns` with the given result formats (`None`: the formats the
    /// RowDescription carries; one code applies to all; none means text), looking up
    /// the catalog first if column rules need names it has not cached.
    async fn plan(&self, columns: &[Column], formats: Option<&[i16]>) -> Plan {
        if !self.columns.is_empty() {
            let oids: Vec<u32> = columns.iter().map(|c| c.table_oid).filter(|o| *o != 0).collect();
            self.catalog.ensure(&oids).await;
        }
        self.plan_now(columns, formats)
    }

    /// The action for a column given its rule (if any), type and format.
    fn action(&self, rule: Option<Style>, type_oid: Option<u32>, binary: bool) -> Action {
        match (rule, type_oid) {
            (Some(_), _) if binary => Action::Null,
            (Some(style), _) => Action::Mask(style),
            (None, _) if self.masker.is_empty() => Action::Pass,
            (None, Some(t)) if binary => {
                if raw_text(t) {
                    Action::Scan
                } else {
                    Action::Pass
                }
            }
            (None, Some(t)) if !may_hold_secrets(t) => Action::Pass,
            // Unknown type in binary: its bytes are not text.
            (None, None) if binary => Action::Pass,
            (None, _) => Action::Scan,
        }
    }

    /// A plan for rows whose columns are unknown (a statement Airlock never saw
    /// described): text values are scanned; with column rules on this connection every
    /// value could belong to a masked column, so all are masked (fail closed).
    fn blind_plan(&self, formats: &[i16]) -> Plan {
        let rule = (!self.columns.is_empty()).then_some(Style::Redact);
        let actions: Vec<Action> = if formats.len() > 1 {
            formats.iter().map(|f| self.action(rule, None, *f == 1)).collect()
        } else {
            Vec::new()
        };
        let rest = self.action(rule, None, formats.first().is_some_and(|f| *f == 1));
        Plan::new(actions, rest)
    }

    /// The rewritten DataRow for `body`, or `None` if nothing changes.
    fn mask_row(&self, plan: &Plan, body: &[u8]) -> Result<Option<Bytes>, ProtocolError> {
        let values = describe::data_row(body)?;
        let mut replaced: Vec<Option<Vec<u8>>> = vec![None; values.len()];
        let mut nulled = vec![false; values.len()];
        let mut changed = false;
        for (i, value) in values.iter().enumerate() {
            let Some(v) = value else { continue };
            match plan.actions.get(i).copied().unwrap_or(plan.rest) {
                Action::Pass => {}
                Action::Null => {
                    nulled[i] = true;
                    changed = true;
                }
                Action::Mask(style) => {
                    let mut out = Vec::new();
                    self.masker.mask_column(style, v, &mut out);
                    replaced[i] = Some(out);
                    changed = true;
                }
                Action::Scan => {
                    if let std::borrow::Cow::Owned(out) = self.masker.mask(v) {
                        replaced[i] = Some(out);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return Ok(None);
        }
        let row = values.iter().enumerate().map(|(i, v)| match (&replaced[i], nulled[i]) {
            (_, true) => None,
            (Some(r), _) => Some(r.as_slice()),
            (None, _) => *v,
        });
        Ok(Some(describe::encode_data_row(row)))
    }
}

/// What happens to one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pass,
    /// Run the value detectors.
    Scan,
    /// A column rule: replace the whole value.
    Mask(Style),
    /// A column rule on a binary value: send NULL.
    Null,
}

/// The per-column actions for one result.
#[derive(Debug, Clone)]
pub struct Plan {
    actions: Vec<Action>,
    /// For columns past `actions` (a row wider than its description, or unknown columns).
    rest: Action,
    passthrough: bool,
}

impl Plan {
    fn new(actions: Vec<Action>, rest: Action) -> Plan {
        let passthrough = rest == Action::Pass && actions.iter().all(|a| *a == Action::Pass);
        Plan { actions, rest, passthrough }
    }
}

/// Types whose text form can carry a secret: everything but a few fixed-format types
/// too short or too structured to hold one. Unknown (user-defined) types are read.
fn may_hold_secrets(type_oid: u32) -> bool {
    const SAFE: [u32; 16] = [
        16,   // bool
        21,   // int2
        23,   // int4
        26,   // oid
        700,  // float4
        701,  // float8
        1082, // date
        1083, // time
        1114, // timestamp
        1184, // timestamptz
        1186, // interval
        1266, // timetz
        2950, // uuid
        28,   // xid
        3220, // pg_lsn
        17,   // bytea (hex text of binary data)
    ];
    !SAFE.contains(&type_oid)
}

/// Types whose binary form is their text.
fn raw_text(type_oid: u32) -> bool {
    matches!(type_oid, 25 | 1043 | 1042 | 19 | 114 | 142 | 18 | 705)
}

/// `*` matches any run of characters.
fn glob_match(glob: &str, text: &str) -> bool {
    let Some((first, rest)) = glob.split_once('*') else { return glob == text };
    let Some(mut text) = text.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = rest.split('*').collect();
    let last = parts.pop().unwrap_or_default();
    for p in parts {
        match text.find(p) {
            Some(at) => text = &text[at + p.len()..],
            None => return false,
        }
    }
    text.len() >= last.len() && text.ends_with(last)
}

/// Table OIDs to `schema.table.column` names, looked up on the upstream with the
/// connection's own credentials (a separate, short-lived session) and cached.
struct Catalog {
    target: Arc<UpstreamTarget>,
    tables: Mutex<HashMap<u32, (Instant, Arc<TableColumns>)>>,
}

/// A table's `schema.table.column` names by attribute number.
type TableColumns = HashMap<i16, String>;

impl Catalog {
    /// Makes sure the names of these tables are cached (and fresh). A failed lookup
    /// leaves them unknown, which masks their columns (fail closed).
    async fn ensure(&self, oids: &[u32]) {
        let missing: Vec<u32> = {
            let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            let mut missing: Vec<u32> = oids
                .iter()
                .copied()
                .filter(|o| tables.get(o).is_none_or(|(at, _)| at.elapsed() >= CATALOG_TTL))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if missing.is_empty() {
            return;
        }
        match tokio::time::timeout(CATALOG_TIMEOUT, self.lookup(&missing)).await {
            Ok(Ok(mut found)) => {
                let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
                for oid in missing {
                    tables.insert(oid, (Instant::now(), Arc::new(found.remove(&oid).unwrap_or_default())));
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "catalog lookup for column masking failed"),
            Err(_) => tracing::warn!("catalog lookup for column masking timed out"),
        }
    }

    async fn lookup(&self, oids: &[u32]) -> anyhow::Result<HashMap<u32, HashMap<i16, String>>> {
        let list = oids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT c.oid, a.attnum, n.nspname || '.' || c.relname || '.' || a.attname \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
             WHERE c.oid IN ({list}) AND a.attnum > 0 AND NOT a.attisdropped"
        );
        let mut up = self.target.open(&[], "catalog").await?;
        up.stream.write_all(&message::query(&sql)).await?;
        let mut scanner = Scanner::new(16 << 20);
        let mut out: HashMap<u32, HashMap<i16, String>> = HashMap::new();
        loop {
            let frame = loop {
                if let Some(Chunk::Frame(f)) = scanner.next(&mut up.buf, &mut |_: Header<'_>| Disposition::Whole)? {
                    break f;
                }
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    anyhow::bail!("the upstream closed the catalog session");
                }
            };
            match frame.tag() {
                tag::DATA_ROW => {
                    let v = describe::data_row(frame.body())?;
                    let text = |i: usize| v.get(i).copied().flatten().map(String::from_utf8_lossy);
                    if let (Some(oid), Some(attnum), Some(name)) = (text(0), text(1), text(2)) {
                        out.entry(oid.parse()?).or_default().insert(attnum.parse()?, name.into_owned());
                    }
                }
                tag::ERROR_RESPONSE => {
                    anyhow::bail!("{}", message::Fields::parse(frame.body())?.message());
                }
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        let _ = up.stream.write_all(&message::terminate()).await;
        Ok(out)
    }
}

/// What the upstream will answer next, as told by the agent side.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A Simple Query: its RowDescriptions carry the real formats; ends at ReadyForQuery.
    Query,
    /// Describe of a prepared statement: its RowDescription (formats not yet known)
    /// or NoData describes the statement.
    DescribeStatement(String),
    /// Describe of a portal: its RowDescription carries the real formats.
    DescribePortal,
    /// Execute of a portal bound from `statement` with these result formats.
    Execute {
        /// The statement the portal runs.
        statement: String,
        /// Bind's result format codes.
        formats: Vec<i16>,
    },
    /// A Sync: ends at ReadyForQuery; an error skips everything before it.
    Sync,
}

/// The result side's state for one session.
pub struct ResultMasking<'a> {
    conn: &'a ConnectionMasking,
    expect: VecDeque<Expect>,
    /// Statement columns learned from Describe (by statement name).
    statements: HashMap<String, Arc<Vec<Column>>>,
    /// The plan rows use now.
    plan: Option<Arc<Plan>>,
    /// A row rewritten while it was still in the read buffer.
    rewritten: Option<Bytes>,
}

impl<'a> ResultMasking<'a> {
    /// A session's result masking.
    pub fn new(conn: &'a ConnectionMasking) -> Self {
        ResultMasking { conn, expect: VecDeque::new(), statements: HashMap::new(), plan: None, rewritten: None }
    }

    /// Takes what the agent side announced.
    pub fn expect(&mut self, more: impl IntoIterator<Item = Expect>) {
        self.expect.extend(more);
        self.plan_execute();
    }

    /// When an Execute is next, its rows use its statement's columns.
    fn plan_execute(&mut self) {
        if self.plan.is_some() {
            return;
        }
        if let Some(Expect::Execute { statement, formats }) = self.expect.front() {
            self.plan = Some(Arc::new(match self.statements.get(statement) {
                // Planned without catalog identities here (this runs in the scanner's
                // callback); RowDescriptions seen whole get the full plan.
                Some(cols) => self.conn.plan_now(cols, Some(formats)),
                None => self.conn.blind_plan(formats),
            }));
        }
    }

    fn pop(&mut self) {
        self.expect.pop_front();
        self.plan = None;
        self.plan_execute();
    }

    /// Called for every backend message header. Returns `Whole` for what the caller
    /// must hand to [`ResultMasking::frame`]: RowDescriptions, and rows that change
    /// (already rewritten, parked) or are still arriving.
    pub fn classify(&mut self, h: Header<'_>) -> Disposition {
        match h.tag {
            tag::ROW_DESCRIPTION => return Disposition::Whole,
            tag::DATA_ROW => {
                // Rows nobody announced (a client bypassing Describe): read them blind.
                let plan = self.plan.get_or_insert_with(|| Arc::new(self.conn.blind_plan(&[]))).clone();
                if plan.passthrough {
                    return Disposition::Pass;
                }
                return match h.complete_body().map(|b| self.conn.mask_row(&plan, b)) {
                    Some(Ok(None)) => Disposition::Pass,
                    Some(Ok(Some(row))) => {
                        self.rewritten = Some(row);
                        Disposition::Whole
                    }
                    Some(Err(_)) | None => Disposition::Whole,
                };
            }
            tag::NO_DATA => {
                if let Some(Expect::DescribeStatement(name)) = self.expect.front() {
                    self.statements.insert(name.clone(), Arc::new(Vec::new()));
                }
                if matches!(self.expect.front(), Some(Expect::DescribeStatement(_) | Expect::DescribePortal)) {
                    self.pop();
                }
            }
            tag::COMMAND_COMPLETE | tag::EMPTY_QUERY | tag::PORTAL_SUSPENDED => match self.expect.front() {
                Some(Expect::Execute { .. }) => self.pop(),
                _ => self.plan = None,
            },
            tag::ERROR_RESPONSE => {
                // After an error the server skips to the Sync; a Query goes on to its end.
                if !matches!(self.expect.front(), Some(Expect::Query)) {
                    while self.expect.front().is_some_and(|e| !matches!(e, Expect::Sync)) {
                        self.expect.pop_front();
                    }
                }
                self.plan = None;
            }
            tag::READY_FOR_QUERY => {
                while let Some(e) = self.expect.pop_front() {
                    if matches!(e, Expect::Sync | Expect::Query) {
                        break;
                    }
                }
                self.plan = None;
                self.plan_execute();
            }
            _ => {}
        }
        Disposition::Pass
    }

    /// A message asked for whole: returns what to send in its place.
    pub async fn frame(&mut self, tag: u8, raw: Bytes) -> Result<Bytes, ProtocolError> {
        let body = raw.get(5..).unwrap_or_default();
        match tag {
            tag::ROW_DESCRIPTION => {
                let columns = describe::row_description(body)?;
                match self.expect.front().cloned() {
                    Some(Expect::DescribeStatement(name)) => {
                        self.statements.insert(name, Arc::new(columns));
                        self.pop();
                    }
                    Some(Expect::DescribePortal) => {
                        let plan = self.conn.plan(&columns, None).await;
                        self.expect.pop_front();
                        self.plan = Some(Arc::new(plan));
                    }
                    _ => self.plan = Some(Arc::new(self.conn.plan(&columns, None).await)),
                }
                Ok(raw)
            }
            tag::DATA_ROW => {
                if let Some(row) = self.rewritten.take() {
                    return Ok(row);
                }
                let plan = self.plan.get_or_insert_with(|| Arc::new(self.conn.blind_plan(&[]))).clone();
                Ok(self.conn.mask_row(&plan, body)?.unwrap_or(raw))
            }
            _ => Ok(raw),
        }
    }
}

impl ConnectionMasking {
    /// A plan from known columns without a catalog lookup: rule identities come from
    /// the cache only (a miss is looked up when the next RowDescription is seen whole).
    fn plan_now(&self, columns: &[Column], formats: Option<&[i16]>) -> Plan {
        let cached: HashMap<(u32, i16), String> = if self.columns.is_empty() {
            HashMap::new()
        } else {
            let tables = self.catalog.tables.lock().unwrap_or_else(|p| p.into_inner());
            columns
                .iter()
                .filter_map(|c| {
                    let (_, cols) = tables.get(&c.table_oid)?;
                    Some(((c.table_oid, c.attnum), cols.get(&c.attnum)?.clone()))
                })
                .collect()
        };
        let unknown_origin = |c: &Column| c.table_oid != 0 && !cached.contains_key(&(c.table_oid, c.attnum));
        let actions = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let binary = match formats {
                    None => c.format == 1,
                    Some([]) => false,
                    Some([one]) => *one == 1,
                    Some(all) => all.get(i).is_some_and(|f| *f == 1),
                };
                let rule = cached.get(&(c.table_oid, c.attnum)).and_then(|id| self.rule_for(id));
                // Fail closed: a column from a table whose names are not known (the
                // lookup failed) may be covered by a rule.
                let rule = rule.or_else(|| (!self.columns.is_empty() && unknown_origin(c)).then_some(Style::Redact));
                self.action(rule, Some(c.type_oid), binary)
            })
            .collect::<Vec<_>>();
        Plan::new(actions, Action::Pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "users"));
        assert!(glob_match("password*", "password_hash"));
        assert!(glob_match("*email*", "work_email_addr"));
        assert!(!glob_match("users", "users2"));
        assert!(glob_match("a*b*c", "aXbYc") && !glob_match("a*b*c", "aXbY"));
    }
}
