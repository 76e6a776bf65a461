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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_postgres::describe::{self, Column};
use airlock_postgres::message::{self, Severity, tag};
use airlock_postgres::{Disposition, Header, ProtocolError};
use bytes::{Bytes, BytesMut};

use super::upstream::UpstreamTarget;
use crate::config::{Config, MaskStyle};
use crate::masking::{Detector, Masker, Style};

/// How long a table's column names are trusted before they are looked up again.
const CATALOG_TTL: Duration = Duration::from_secs(300);
/// How soon a failed catalog lookup is tried again.
const CATALOG_RETRY: Duration = Duration::from_secs(30);
/// Statement descriptions a session's result masking remembers; rows of statements
/// past the cap are masked blind (fail closed).
const MAX_DESCRIBED: usize = 10_000;
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
        let columns = column_rules(config, name);
        if masker.is_empty() && columns.is_empty() {
            return Ok(None);
        }
        Ok(Some(ConnectionMasking { masker, columns, catalog: Catalog { target, tables: Mutex::default() } }))
    }

    /// The style of the first column rule matching any of a column's identities (its
    /// own name, and for a view column the base columns it shows).
    fn rule_for(&self, identities: &[String]) -> Option<Style> {
        identities.iter().find_map(|identity| {
            self.columns.iter().find(|(glob, _)| glob_parts_match(glob, identity)).map(|(_, s)| *s)
        })
    }

    /// The plan for `columns` with the given result formats (`None`: the formats the
    /// RowDescription carries; one code applies to all; none means text), looking up
    /// the catalog first if column rules need names it has not cached.
    async fn plan(&self, columns: &[Column], formats: Option<&[i16]>, taint: Taint) -> Plan {
        self.learn(columns).await;
        self.plan_now(columns, formats, taint)
    }

    /// Masking for a test connection `db` with these column rules (no upstream).
    #[cfg(test)]
    pub fn for_tests(columns: &[&str]) -> ConnectionMasking {
        let toml = format!(
            "[auth]\ndev_tokens = true\n[[connections]]\nname = \"db\"\nprotocol = \"postgres\"\n\
             address = \"127.0.0.1:1\"\ndatabase = \"d\"\nuser = \"u\"\nallow_groups = [\"a\"]\n[[masking]]\ncolumns = {columns:?}\n"
        );
        let config = Config::parse(&toml, std::path::PathBuf::new()).expect("test config");
        let conn = config.connections[0].clone();
        let target = UpstreamTarget {
            tls: crate::tls::UpstreamTlsPlan::new(&config, &conn).expect("tls plan"),
            conn,
            password: None,
            connect_timeout: Duration::from_secs(1),
            max_message: 1 << 20,
        };
        ConnectionMasking::new(&config, Arc::new(target), b"key").expect("masking").expect("something masked")
    }

    /// How far a statement's computed results may carry rule-masked values: it names a
    /// masked column, one of `views` (views that show one), a function that dumps
    /// tables whole, or calls a function `own` says is the database's own, which may
    /// read a masked column the statement never names (`Column`); or it names a table
    /// holding a masked column (`Table`). Names are read as the server resolves them,
    /// also inside string literals (SQL passed to `query_to_xml`, a table name passed
    /// to `table_to_xml`).
    pub fn taint(&self, sql: &str, views: &HashSet<String>, own: &dyn Fn(&str) -> bool) -> Taint {
        use airlock_postgres::sql::lexer::{TokenKind, ident_at, literal_text, tokens};
        /// Functions that dump tables, schemas or query results they may not name.
        const DUMPS: [&str; 9] = [
            "table_to_xml",
            "table_to_xml_and_xmlschema",
            "schema_to_xml",
            "schema_to_xml_and_xmlschema",
            "database_to_xml",
            "database_to_xml_and_xmlschema",
            "query_to_xml",
            "query_to_xml_and_xmlschema",
            "cursor_to_xml",
        ];
        if self.columns.is_empty() {
            return Taint::Clean;
        }
        let t = tokens(sql);
        // A cursor's or a prepared statement's rows come from text this one does not
        // show (`FETCH ALL c`, `EXECUTE p`): what they compute may be masked values.
        if t.first().is_some_and(|w| w.is("fetch") || w.is("move") || w.is("execute")) {
            return Taint::Column;
        }
        let mut taint = Taint::Clean;
        for i in 0..t.len() {
            if matches!(t[i].kind, TokenKind::String | TokenKind::DollarString) {
                match self.taint(&literal_text(&t[i]), views, own) {
                    Taint::Column => return Taint::Column,
                    Taint::Table => taint = Taint::Table,
                    Taint::Clean => {}
                }
                continue;
            }
            if !matches!(t[i].kind, TokenKind::Word | TokenKind::QuotedIdent) {
                continue;
            }
            let Some((name, _)) = ident_at(&t, i) else { continue };
            if views.contains(&name) || DUMPS.contains(&name.as_str()) {
                return Taint::Column;
            }
            let called = t.get(i + 1).is_some_and(|n| n.kind == TokenKind::LParen)
                || i.checked_sub(1).is_some_and(|p| t[p].kind == TokenKind::Dot);
            if called && own(&name) {
                return Taint::Column;
            }
            for (glob, _) in &self.columns {
                let named = |part: Option<&String>| part.is_some_and(|g| g != "*" && crate::glob::matches(g, &name));
                if named(glob.get(2)) {
                    return Taint::Column;
                }
                if named(glob.get(1)) {
                    taint = Taint::Table;
                    // The table (or its alias) used as a value is the whole row, masked
                    // column included, in any shape: `u::text`, `row_to_json(u)`.
                    if whole_row_used(&t, i) {
                        return Taint::Column;
                    }
                }
            }
        }
        taint
    }

    /// Forgets every table's column names: a statement about to run may rename or
    /// replace them (DDL), and a stale name could let a masked column through.
    pub fn forget_catalog(&self) {
        self.catalog.tables.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether column rules apply on this connection.
    pub fn has_column_rules(&self) -> bool {
        !self.columns.is_empty()
    }

    /// The views that show a rule-masked column, directly or through other views, by
    /// name: a statement naming one is read as naming the column. Asked on the
    /// session that is about to become the agent's.
    pub async fn views_showing_masked_columns(
        &self,
        up: &mut super::upstream::Upstream,
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
    async fn learn(&self, columns: &[Column]) {
        if !self.columns.is_empty() {
            let oids: Vec<u32> = columns.iter().map(|c| c.table_oid).filter(|o| *o != 0).collect();
            self.catalog.ensure(&oids).await;
        }
    }

    /// The action for a column given its rule (if any), type and format.
    fn action(&self, rule: Option<Style>, type_oid: Option<u32>, binary: bool) -> Action {
        match (rule, type_oid) {
            (Some(_), _) if binary => Action::Null,
            (Some(style), _) => Action::Mask(style),
            (None, _) if self.masker.is_empty() => Action::Pass,
            (None, Some(t)) if binary => binary_action(t),
            (None, Some(BYTEA)) => Action::ScanHex,
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

    /// The rewritten DataRow for `body`, or `None` if nothing changes (the common
    /// case, which allocates nothing).
    fn mask_row(&self, plan: &Plan, body: &[u8]) -> Result<Option<Bytes>, ProtocolError> {
        let Some(mut row) = self.mask_fields(plan, body, &[tag::DATA_ROW, 0, 0, 0, 0], "DataRow")? else {
            return Ok(None);
        };
        message::set_length(&mut row);
        Ok(Some(Bytes::from(row)))
    }

    /// `prefix`, then `body` (a field count, then each field's length and bytes: a
    /// DataRow's body, or a binary COPY tuple) with its values masked; `None` if
    /// nothing changes. One pass: values are checked in place, and a row that changes
    /// is copied into its new bytes around the values replaced.
    fn mask_fields(
        &self,
        plan: &Plan,
        body: &[u8],
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        let mut c = airlock_postgres::cursor::Cursor::new(body, what);
        let width = c.i16()?.max(0) as usize;
        let mut row: Option<Vec<u8>> = None;
        // Bytes of `body` before this offset are already in `row`.
        let mut copied = 0;
        for i in 0..width {
            let field = body.len() - c.remaining().len();
            let len = c.i32()?;
            if len < 0 {
                continue;
            }
            let v = c.take(len as usize)?;
            let Some(new) = self.mask_value(plan.actions.get(i).copied().unwrap_or(plan.rest), v) else { continue };
            let row = row.get_or_insert_with(|| {
                let mut row = Vec::with_capacity(prefix.len() + body.len() + 64);
                row.extend_from_slice(prefix);
                row
            });
            row.extend_from_slice(body.get(copied..field).unwrap_or_default());
            match new {
                None => row.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(new) => {
                    row.extend_from_slice(&(new.len() as i32).to_be_bytes());
                    row.extend_from_slice(&new);
                }
            }
            copied = field + 4 + v.len();
        }
        let Some(mut row) = row else { return Ok(None) };
        row.extend_from_slice(body.get(copied..).unwrap_or_default());
        Ok(Some(row))
    }

    /// A value's replacement (`Some(None)` for NULL), or `None` if it stays.
    fn mask_value(&self, action: Action, v: &[u8]) -> Option<Option<Vec<u8>>> {
        match action {
            Action::Pass => None,
            Action::Null => Some(None),
            Action::Mask(style) => {
                let mut out = Vec::new();
                self.masker.mask_column(style, v, &mut out);
                Some(Some(out))
            }
            Action::Scan => match self.masker.mask(v) {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(out) => Some(Some(out)),
            },
            Action::ScanOrNull => match self.masker.mask(v) {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(_) => Some(None),
            },
            Action::ScanHex => {
                // Anything but well-formed hex is scanned as it is.
                let Some(bytes) = v.strip_prefix(b"\\x").and_then(|h| hex::decode(h).ok()) else {
                    return self.mask_value(Action::Scan, v);
                };
                match self.masker.mask(&bytes) {
                    std::borrow::Cow::Borrowed(_) => None,
                    std::borrow::Cow::Owned(out) => Some(Some(format!("\\x{}", hex::encode(out)).into_bytes())),
                }
            }
        }
    }
}

/// The column rules that apply to connection `name`: globs split into their three
/// parts, with their style.
/// With any column rule, the SQL text other sessions are running is masked too: the
/// same upstream role serves every agent of a connection, so `pg_stat_activity.query`
/// shows one agent the literals another typed.
const QUERY_TEXTS: [&str; 2] = ["pg_catalog.pg_stat_activity.query", "public.pg_stat_statements.query"];

fn column_rules(config: &Config, name: &str) -> Vec<(Vec<String>, Style)> {
    let mut rules: Vec<(Vec<String>, Style)> = config
        .masking
        .iter()
        .filter(|r| r.connections.is_empty() || r.connections.iter().any(|c| c == name))
        .flat_map(|r| r.columns.iter().map(|c| (c.split('.').map(str::to_owned).collect(), style(r.style))))
        .collect();
    if !rules.is_empty() {
        rules.extend(QUERY_TEXTS.map(|c| (c.split('.').map(str::to_owned).collect(), Style::Redact)));
    }
    rules
}

fn glob_parts_match(glob: &[String], identity: &str) -> bool {
    let parts: Vec<&str> = identity.split('.').collect();
    glob.len() == parts.len() && glob.iter().zip(&parts).all(|(g, p)| crate::glob::matches(g, p))
}

/// What `airlock explain` can say about masking without a database: for each statement
/// of the simple shape `SELECT columns FROM table ...` (one table, plain column
/// references or `*`), the result columns column rules cover; `None` where only the
/// upstream's catalog could tell. Unqualified tables are taken to be in `public`.
/// Value detectors apply to every text value whatever this says.
pub fn static_masks(config: &Config, connection: &str, query: &str) -> Vec<Option<Vec<serde_json::Value>>> {
    use airlock_postgres::sql::{self, lexer::TokenKind};
    let rules = column_rules(config, connection);
    sql::split(query)
        .iter()
        .map(|s| {
            let t = &s.tokens;
            if !t.first()?.is("select") {
                return None;
            }
            let from = t.iter().position(|x| x.is("from"))?;
            // The relation: name or schema.name, then an optional alias, then the end or a
            // clause that does not add relations.
            let mut i = from + 1;
            let mut name = vec![t.get(i)?];
            while t.get(i + 1).is_some_and(|x| x.kind == TokenKind::Dot) {
                name.push(t.get(i + 2)?);
                i += 2;
            }
            i += 1;
            let mut alias = None;
            if t.get(i).is_some_and(|x| x.is("as")) {
                i += 1;
            }
            if let Some(x) = t.get(i).filter(|x| {
                x.kind == TokenKind::Word && !["where", "order", "limit", "offset", "group", "fetch"].iter().any(|k| x.is(k))
            }) {
                alias = Some(x.text.to_ascii_lowercase());
                i += 1;
            }
            if let Some(x) = t.get(i)
                && !["where", "order", "limit", "offset", "group", "fetch"].iter().any(|k| x.is(k))
            {
                return None;
            }
            if name.iter().any(|n| n.kind != TokenKind::Word) || name.len() > 2 {
                return None;
            }
            let table = name.last()?.text.to_ascii_lowercase();
            let schema = if name.len() == 2 { name[0].text.to_ascii_lowercase() } else { "public".into() };
            let mut masked = Vec::new();
            // Each select-list item: `*`, `col`, `qualifier.col`, optionally `AS name`.
            for item in t[1..from].split(|x| x.kind == TokenKind::Comma) {
                let (expr, out_name) = match item {
                    [e @ .., a, n] if a.is("as") => (e, Some(n.text)),
                    [e @ .., n] if e.len() == 1 && n.kind == TokenKind::Word => (e, Some(n.text)),
                    e => (e, None),
                };
                let column = match expr {
                    [c] => c,
                    [q, d, c] if d.kind == TokenKind::Dot && alias.as_deref().is_none_or(|a| q.text.eq_ignore_ascii_case(a)) => c,
                    _ => continue,
                };
                if column.text == "*" {
                    let prefix = format!("{schema}.{table}.");
                    for (glob, style) in &rules {
                        if glob.len() == 3 && crate::glob::matches(&glob[0], &schema) && crate::glob::matches(&glob[1], &table) {
                            masked.push(serde_json::json!({"column": "*", "rule": glob.join("."), "style": format!("{style:?}").to_lowercase(), "source": format!("{prefix}{}", glob[2])}));
                        }
                    }
                    continue;
                }
                if column.kind != TokenKind::Word {
                    continue;
                }
                let identity = format!("{schema}.{table}.{}", column.text.to_ascii_lowercase());
                if let Some((glob, style)) = rules.iter().find(|(g, _)| glob_parts_match(g, &identity)) {
                    masked.push(serde_json::json!({
                        "column": out_name.unwrap_or(column.text),
                        "source": identity,
                        "rule": glob.join("."),
                        "style": format!("{style:?}").to_lowercase(),
                    }));
                }
            }
            Some(masked)
        })
        .collect()
}

/// What happens to one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pass,
    /// Run the value detectors.
    Scan,
    /// A `bytea` in text form (`\x` and hex): the detectors read the bytes it encodes,
    /// and a masked value is sent as the hex of the masked bytes.
    ScanHex,
    /// A binary value with framing of its own (an array, a record): the detectors
    /// read it, and if they find a secret the value is sent as NULL, since masking in
    /// place would break its framing.
    ScanOrNull,
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

const BYTEA: u32 = 17;

/// How a binary value of this type is read: text types, `bytea` and `jsonb` (a version
/// byte, then text) are their text; arrays, records and types of the database's own
/// (OIDs from 16384: composites, domains, enums) carry text inside framing.
fn binary_action(type_oid: u32) -> Action {
    match type_oid {
        25 | 1043 | 1042 | 19 | 114 | 142 | 18 | 705 | BYTEA | 3802 => Action::Scan,
        t if carries_text(t) => Action::ScanOrNull,
        _ => Action::Pass,
    }
}

/// Whether values of this type can carry text taken from another column: text, JSON,
/// XML, bytea, records and arrays of them, and the database's own types.
fn carries_text(type_oid: u32) -> bool {
    matches!(
        type_oid,
        17 | 18
            | 19
            | 25
            | 114
            | 142
            | 194
            | 705
            | 1042
            | 1043
            | 2249
            | 3614
            | 3802
            | 199
            | 1001
            | 1002
            | 1003
            | 1009
            | 1014
            | 1015
            | 143
            | 2287
            | 3643
            | 3807
    ) || type_oid >= 16384
}

/// Table OIDs to `schema.table.column` names, looked up on the upstream with the
/// connection's own credentials (a separate, short-lived session) and cached.
struct Catalog {
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
const COMPUTED_IN_VIEW: &str = "(computed in a view)";

/// How deep views over views are followed.
const MAX_VIEW_DEPTH: usize = 4;

impl Catalog {
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
                        origins.insert(oid, view_origins(&rule));
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

    /// The columns a query would return, described (not run) on the upstream.
    async fn describe(&self, sql: &str) -> anyhow::Result<Vec<Column>> {
        let mut request = BytesMut::new();
        for part in [message::parse(sql), message::describe_unnamed_statement(), message::sync()] {
            request.extend_from_slice(&part);
        }
        let mut columns = Vec::new();
        self.target
            .exchange(request.freeze(), |tag, body| {
                if tag == tag::ROW_DESCRIPTION {
                    columns = describe::row_description(body)?;
                }
                Ok(())
            })
            .await?;
        Ok(columns)
    }
}

/// Where each column of a view comes from, read from its `_RETURN` rule (the stored
/// query tree): the top-level target list's `resno`, `resorigtbl` and `resorigcol`.
/// Columns that are expressions have no origin.
fn view_origins(tree: &str) -> HashMap<i16, (u32, i16)> {
    let bytes = tree.as_bytes();
    // Depth of each byte, skipping backslash-escaped characters.
    let mut depth = 0i32;
    let mut list_start = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' | b'(' => depth += 1,
            b'}' | b')' => depth -= 1,
            // Inside the outermost list and its QUERY node.
            b':' if depth == 2 && tree[i..].starts_with(":targetList (") => {
                list_start = Some(i + ":targetList (".len());
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = HashMap::new();
    let Some(start) = list_start else { return out };
    // Each top-level {TARGETENTRY ...} of that list.
    let (mut level, mut entry_start, mut i) = (0i32, None, start);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' | b'(' => {
                if level == 0 {
                    entry_start = Some(i);
                }
                level += 1;
            }
            b'}' | b')' => {
                level -= 1;
                if level < 0 {
                    break;
                }
                if level == 0
                    && let Some(s) = entry_start.take()
                {
                    let entry = &tree[s..=i];
                    // The entry's own fields follow its expression, so the last ones count.
                    let field = |name: &str| -> Option<i64> {
                        let at = entry.rfind(name)? + name.len();
                        entry[at..].split_whitespace().next()?.trim_end_matches('}').parse().ok()
                    };
                    if entry.starts_with("{TARGETENTRY")
                        && let (Some(resno), Some(tbl), Some(col)) =
                            (field(":resno "), field(":resorigtbl "), field(":resorigcol "))
                        && tbl != 0
                    {
                        out.insert(resno as i16, (tbl as u32, col as i16));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Where a `COPY ... TO STDOUT` reads from, as a query Airlock can describe.
#[derive(Debug, PartialEq, Eq)]
struct CopySource {
    select: String,
    csv: bool,
    header: bool,
    /// `FORMAT binary` (or the older `BINARY`): tuples of typed fields.
    binary: bool,
    /// Delimiter, quote, escape or NULL options: not parsed, so not masked by column.
    custom_format: bool,
}

/// The source of the one COPY TO STDOUT in `query`.
fn copy_source(query: &str) -> Option<CopySource> {
    use airlock_postgres::sql::{self, lexer::TokenKind};
    let statements = sql::split(query);
    let mut copies = statements.iter().filter(|s| s.tokens.first().is_some_and(|t| t.is("copy")));
    let (Some(s), None) = (copies.next(), copies.next()) else { return None };
    let t = &s.tokens;
    // The index of the `)` closing the `(` at `open`.
    let closing = |open: usize| {
        let mut depth = 0;
        t.iter().enumerate().skip(open).find_map(|(i, tok)| {
            match tok.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i)
        })
    };
    let between = |a: usize, b: usize| query.get(t.get(a)?.offset..t.get(b)?.offset);
    let (select, rest) = if t.get(1)?.kind == TokenKind::LParen {
        let close = closing(1)?;
        (between(2, close)?.trim().to_owned(), t.get(close + 1..)?)
    } else {
        let mut i = 1;
        while i < t.len() && !t[i].is("to") && t[i].kind != TokenKind::LParen {
            i += 1;
        }
        let last = t.get(i.checked_sub(1)?)?;
        let table = query.get(t.get(1)?.offset..last.offset + last.text.len())?;
        let (columns, after) = if t.get(i)?.kind == TokenKind::LParen {
            let close = closing(i)?;
            (between(i + 1, close)?.trim(), close + 1)
        } else {
            ("*", i)
        };
        (format!("SELECT {columns} FROM {table}"), t.get(after..)?)
    };
    if !(rest.first()?.is("to") && rest.get(1)?.is("stdout")) {
        return None;
    }
    // Options as the server reads them: names quoted or not, values as words or
    // strings. Anything but the default text or CSV layout is a custom format; a
    // layout option set to its default (psycopg2 sends `DELIMITER AS '\t' NULL AS
    // '\N'`) is no change.
    let opts = &rest[2..];
    let words: Vec<(String, bool)> = (0..opts.len())
        .filter_map(|i| match opts[i].kind {
            TokenKind::Word | TokenKind::QuotedIdent => sql::lexer::ident_at(opts, i).map(|(name, _)| (name, false)),
            TokenKind::String | TokenKind::DollarString => copy_option_value(&opts[i]).map(|v| (v, true)),
            _ => None,
        })
        .collect();
    let has = |w: &str| words.iter().any(|(x, string)| !string && x == w || *string && x.eq_ignore_ascii_case(w));
    let csv = has("csv");
    let default = |option: &str| match (option, csv) {
        ("delimiter", false) => Some("\t"),
        ("delimiter", true) => Some(","),
        ("null", false) => Some("\\N"),
        ("null", true) => Some(""),
        ("quote" | "escape", true) => Some("\""),
        _ => None,
    };
    const PLAIN: [&str; 12] =
        ["with", "as", "format", "text", "csv", "binary", "header", "true", "false", "on", "off", "match"];
    let mut custom_format = false;
    let mut i = 0;
    while i < words.len() {
        let (word, string) = &words[i];
        match default(word).filter(|_| !string) {
            // The option's value is the next string (after an optional AS).
            Some(expected) => {
                let value = words[i + 1..].iter().find(|(w, s)| *s || w != "as");
                custom_format |= !matches!(value, Some((v, true)) if v == expected);
                i += 1 + words[i + 1..].iter().position(|(_, s)| *s).unwrap_or(0);
            }
            None => custom_format |= !PLAIN.contains(&word.to_ascii_lowercase().as_str()),
        }
        i += 1;
    }
    Some(CopySource { select, csv, header: has("header"), binary: has("binary"), custom_format })
}

/// A COPY option's string as the server reads it with `standard_conforming_strings`
/// on (Airlock holds turning it off): a plain string's backslashes are literal, an
/// `E''` string's `\t`, `\n`, `\\` and `\'` are escapes; anything else is `None`.
fn copy_option_value(tok: &airlock_postgres::sql::lexer::Token<'_>) -> Option<String> {
    let text = tok.text;
    if let Some(body) = text.strip_prefix('\'').and_then(|b| b.strip_suffix('\'')) {
        return (!body.replace("''", "").contains('\'')).then(|| body.replace("''", "'"));
    }
    let body = text.strip_prefix(['e', 'E'])?.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next()? {
                't' => '\t',
                'n' => '\n',
                c @ ('\\' | '\'') => c,
                _ => return None,
            },
            '\'' => match chars.next()? {
                '\'' => '\'',
                _ => return None,
            },
            c => c,
        });
    }
    Some(out)
}

/// A CopyData message.
fn copy_data(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 5);
    b.extend_from_slice(&[tag::COPY_DATA]);
    b.extend_from_slice(&((payload.len() + 4) as i32).to_be_bytes());
    b.extend_from_slice(payload);
    b.freeze()
}

/// Splits one COPY line into fields: tab-separated text format (where tabs inside
/// values are escaped), or CSV with `"` quotes.
fn copy_fields(line: &[u8], csv: bool) -> Vec<&[u8]> {
    if !csv {
        return line.split(|b| *b == b'\t').collect();
    }
    let mut fields = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, b) in line.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

impl ConnectionMasking {
    /// Masks one COPY line: column rules by position, then the value detectors over
    /// the whole line (markers contain no delimiters, quotes or escapes).
    fn mask_line(&self, plan: &Plan, line: &[u8], csv: bool) -> Vec<u8> {
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        let null: &[u8] = if csv { b"" } else { b"\\N" };
        let mut out = Vec::with_capacity(line.len());
        for (i, field) in copy_fields(body, csv).into_iter().enumerate() {
            if i > 0 {
                out.push(if csv { b',' } else { b'\t' });
            }
            match plan.actions.get(i).copied().unwrap_or(plan.rest) {
                _ if field == null => out.extend_from_slice(field),
                Action::Mask(style) => self.masker.mask_column(style, field, &mut out),
                Action::Null => out.extend_from_slice(null),
                Action::Pass | Action::Scan | Action::ScanHex | Action::ScanOrNull => out.extend_from_slice(field),
            }
        }
        let mut out = match self.masker.mask(&out) {
            std::borrow::Cow::Borrowed(_) => out,
            std::borrow::Cow::Owned(masked) => masked,
        };
        if newline {
            out.push(b'\n');
        }
        out
    }
}

/// Masks what is recorded of the agent's side: Query and Parse text and Bind
/// parameters go through the value detectors (the upstream still gets them as sent).
/// Other messages are recorded as they are.
pub struct FrontendMasking<'a> {
    masker: &'a Masker,
    /// Bytes of a message begun in an earlier batch, still to come.
    carry: usize,
}

impl<'a> FrontendMasking<'a> {
    /// Masking with this connection's detectors.
    pub fn new(conn: &'a ConnectionMasking) -> Self {
        FrontendMasking { masker: &conn.masker, carry: 0 }
    }

    /// What to record for a batch of frontend bytes.
    pub fn apply(&mut self, bytes: &Bytes) -> Bytes {
        let mut out: Option<BytesMut> = None;
        let mut at = self.carry.min(bytes.len());
        self.carry -= at;
        while let Some(header) = bytes.get(at..at + 5) {
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]).max(4) as usize + 1;
            let end = at + len;
            if end > bytes.len() {
                // Statements always arrive whole (the gate reads them); what is split
                // across batches is data, recorded as is.
                self.carry = end - bytes.len();
                break;
            }
            if let Some(masked) = self.mask_message(header[0], &bytes[at + 5..end]) {
                let out = out.get_or_insert_with(|| BytesMut::from(&bytes[..at]));
                out.extend_from_slice(&masked);
            } else if let Some(out) = out.as_mut() {
                out.extend_from_slice(&bytes[at..end]);
            }
            at = end;
        }
        match out {
            None => bytes.clone(),
            Some(mut out) => {
                out.extend_from_slice(bytes.get(at..).unwrap_or_default());
                out.freeze()
            }
        }
    }

    /// The message rebuilt with its secrets masked, if it has any.
    fn mask_message(&self, tag: u8, body: &[u8]) -> Option<Bytes> {
        let mask = |v: &[u8]| match self.masker.mask(v) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(m) => Some(m),
        };
        let message = |tag: u8, parts: &[&[u8]]| {
            let mut b = BytesMut::new();
            b.extend_from_slice(&[tag, 0, 0, 0, 0]);
            parts.iter().for_each(|p| b.extend_from_slice(p));
            message::set_length(&mut b);
            b.freeze()
        };
        match tag {
            tag::QUERY => {
                let text = message::parse_query(body).ok()?;
                Some(message(tag, &[&mask(text)?, b"\0"]))
            }
            tag::PARSE => {
                let (name, text) = message::parse_parse(body).ok()?;
                let rest = body.get(name.len() + text.len() + 2..)?;
                Some(message(tag, &[name, b"\0", &mask(text)?, b"\0", rest]))
            }
            tag::BIND => {
                let values = describe::bind(body).ok()?.params;
                let masked: Vec<Option<Vec<u8>>> = values.iter().map(|(_, v)| v.and_then(mask)).collect();
                if masked.iter().all(Option::is_none) {
                    return None;
                }
                let mut b = BytesMut::new();
                let mut last = 0;
                for ((range, _), m) in values.iter().zip(&masked) {
                    let Some(m) = m else { continue };
                    // Each value is its i32 length then its bytes.
                    b.extend_from_slice(&body[last..range.start - 4]);
                    b.extend_from_slice(&(m.len() as i32).to_be_bytes());
                    b.extend_from_slice(m);
                    last = range.end;
                }
                b.extend_from_slice(&body[last..]);
                Some(message(tag, &[&b]))
            }
            _ => None,
        }
    }
}

/// What the upstream will answer next, as told by the agent side.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A Simple Query (with its text if it may hold a COPY): its RowDescriptions carry
    /// the real formats; ends at ReadyForQuery.
    Query {
        /// The query text, if it may hold a COPY.
        copy: Option<Arc<str>>,
        /// What its computed results may carry.
        taint: Taint,
    },
    /// Describe of a prepared statement: its RowDescription (formats not yet known)
    /// or NoData describes the statement.
    DescribeStatement(String),
    /// Describe of a portal: its RowDescription carries the real formats, and
    /// describes `statement`, the statement it was bound from (when Airlock knows it is
    /// still that statement's description), for later Executes that do not describe.
    DescribePortal {
        /// The statement the portal was bound from.
        statement: Option<String>,
        /// What its computed results may carry.
        taint: Taint,
    },
    /// Execute of a portal bound from `statement` with these result formats.
    Execute {
        /// The statement the portal runs, when its description is known to be that
        /// statement's (`None`: a cursor, or a name parsed again since the Bind).
        statement: Option<String>,
        /// Bind's result format codes.
        formats: Vec<i16>,
        /// What its computed results may carry.
        taint: Taint,
    },
    /// A Sync: ends at ReadyForQuery; an error skips everything before it.
    Sync,
}

/// Whether a statement may bring a rule-masked value out in a computed column, where
/// column identity no longer follows it (`password_hash || ''`, `row_to_json(u)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Taint {
    /// It names nothing masked.
    #[default]
    Clean,
    /// It names a table holding a masked column: computed values that can carry text
    /// (`reverse(x)` over a renamed column, a whole row as JSON) are masked.
    Table,
    /// It names a masked column: every computed value is masked, whatever its type
    /// (`ascii(substr(password_hash, 1, 1))` is a number).
    Column,
}

/// The result side's state for one session.
pub struct ResultMasking<'a> {
    conn: &'a ConnectionMasking,
    expect: VecDeque<Expect>,
    /// Statement columns learned from Describe (by statement name).
    statements: HashMap<String, Arc<Vec<Column>>>,
    /// The taint of the request the last ErrorResponse or NoticeResponse answers.
    text_taint: Taint,
    /// The plan rows use now.
    plan: Option<Arc<Plan>>,
    /// A row rewritten while it was still in the read buffer.
    rewritten: Option<Bytes>,
    /// A COPY TO STDOUT in progress.
    copy: Option<CopyOut>,
}

/// How the rows of a COPY TO STDOUT are masked.
#[derive(Debug, Clone)]
enum CopyOut {
    /// Value detectors over each whole line (no column rules apply).
    Lines,
    /// Per-column actions over text-format lines (tab-separated), or CSV lines.
    Columns { plan: Arc<Plan>, csv: bool, header: bool },
    /// Per-column actions over binary tuples.
    Binary { plan: Arc<Plan>, tuples: BinaryTuples },
    /// Refused: Airlock sent an error in place of the CopyOutResponse and drops the
    /// rows until the COPY's CommandComplete.
    Refused,
}

/// Reads a binary COPY stream (the `PGCOPY` header, tuples, then a `-1` trailer) tuple
/// by tuple. The server sends each tuple in a CopyData of its own; a tuple split across
/// messages is carried to the next, up to `MAX_CARRY` bytes.
#[derive(Debug, Clone, Default)]
struct BinaryTuples {
    header_read: bool,
    ended: bool,
    carry: Vec<u8>,
}

/// The signature opening a binary COPY stream.
const PGCOPY: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl BinaryTuples {
    /// The most bytes of an unfinished tuple (or header) held back.
    const MAX_CARRY: usize = 64 << 20;

    /// The payload to send for one CopyData's `body`, each whole tuple passed through
    /// `mask` (which returns `None` when it changes nothing), or `None` when the body
    /// goes as it came.
    fn mask(
        &mut self,
        body: &[u8],
        mask: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, ProtocolError>,
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        let malformed = ProtocolError::Malformed("binary COPY");
        let carried = !self.carry.is_empty();
        let joined = if carried { [std::mem::take(&mut self.carry).as_slice(), body].concat() } else { Vec::new() };
        let mut data: &[u8] = if carried { &joined } else { body };
        let mut out: Option<Vec<u8>> = carried.then(Vec::new);
        // Bytes of `data` before this offset are in `out` (or unchanged, with no `out`).
        let mut kept = 0;
        let start = data;
        loop {
            if self.ended {
                if !data.is_empty() {
                    return Err(malformed);
                }
                break;
            }
            let Some(len) = self.next_len(data)? else { break };
            let (item, rest) = data.split_at(len);
            let is_tuple = std::mem::replace(&mut self.header_read, true);
            if let Some(new) = if is_tuple && !self.ended { mask(item)? } else { None } {
                let offset = start.len() - data.len();
                let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 64));
                out.extend_from_slice(&start[kept..offset]);
                out.extend_from_slice(&new);
                kept = offset + len;
            }
            data = rest;
        }
        if data.len() > Self::MAX_CARRY {
            return Err(ProtocolError::TooLarge { tag: 'd', len: data.len(), max: Self::MAX_CARRY });
        }
        let done = start.len() - data.len();
        self.carry = data.to_vec();
        match out {
            Some(mut out) => {
                out.extend_from_slice(&start[kept..done]);
                Ok(Some(out))
            }
            None if !data.is_empty() => Ok(Some(start[..done].to_vec())),
            None => Ok(None),
        }
    }

    /// The length of the header or tuple `data` starts with, `None` if it is not all
    /// there yet. Marks the trailer.
    fn next_len(&mut self, data: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let malformed = ProtocolError::Malformed("binary COPY");
        let be32 = |at: usize| data.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if !self.header_read {
            let Some(extension) = be32(15) else { return Ok(None) };
            if !data.starts_with(PGCOPY) || extension < 0 {
                return Err(malformed);
            }
            let len = 19 + extension as usize;
            return Ok((data.len() >= len).then_some(len));
        }
        let Some(count) = data.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else { return Ok(None) };
        if count == -1 {
            self.ended = true;
            return Ok(Some(2));
        }
        if count < 0 {
            return Err(malformed);
        }
        let mut len = 2;
        for _ in 0..count {
            let Some(field) = be32(len) else { return Ok(None) };
            len += 4 + field.max(0) as usize;
            if field < -1 {
                return Err(malformed);
            }
        }
        Ok((data.len() >= len).then_some(len))
    }
}

impl<'a> ResultMasking<'a> {
    /// A session's result masking.
    pub fn new(conn: &'a ConnectionMasking) -> Self {
        ResultMasking {
            conn,
            expect: VecDeque::new(),
            statements: HashMap::new(),
            text_taint: Taint::Clean,
            plan: None,
            rewritten: None,
            copy: None,
        }
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
        if let Some(Expect::Execute { statement, formats, taint }) = self.expect.front() {
            self.plan = Some(Arc::new(match statement.as_ref().and_then(|s| self.statements.get(s)) {
                // Planned without catalog identities here (this runs in the scanner's
                // callback); RowDescriptions seen whole get the full plan.
                Some(cols) => self.conn.plan_now(cols, Some(formats), *taint),
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
        if matches!(h.tag, tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE) {
            // Before the error moves the expectations on: whose error this is.
            self.text_taint = match self.expect.front() {
                Some(
                    Expect::Query { taint, .. } | Expect::Execute { taint, .. } | Expect::DescribePortal { taint, .. },
                ) => *taint,
                _ => Taint::Clean,
            };
        }
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
            tag::COPY_OUT => return Disposition::Whole,
            tag::COPY_DATA | tag::COPY_DONE if self.copy.is_some() => return Disposition::Whole,
            tag::NO_DATA => {
                if let Some(Expect::DescribeStatement(name) | Expect::DescribePortal { statement: Some(name), .. }) =
                    self.expect.front()
                    && (self.statements.len() < MAX_DESCRIBED || self.statements.contains_key(name))
                {
                    self.statements.insert(name.clone(), Arc::new(Vec::new()));
                }
                if matches!(self.expect.front(), Some(Expect::DescribeStatement(_) | Expect::DescribePortal { .. })) {
                    self.pop();
                }
            }
            tag::COMMAND_COMPLETE | tag::EMPTY_QUERY | tag::PORTAL_SUSPENDED => {
                if matches!(self.copy.take(), Some(CopyOut::Refused)) {
                    // The refused COPY's completion goes with its rows.
                    return Disposition::Whole;
                }
                match self.expect.front() {
                    Some(Expect::Execute { .. }) => self.pop(),
                    _ => self.plan = None,
                }
            }
            tag::ERROR_RESPONSE => {
                self.copy = None;
                // After an error the server skips to the Sync; a Query goes on to its end.
                if !matches!(self.expect.front(), Some(Expect::Query { .. })) {
                    while self.expect.front().is_some_and(|e| !matches!(e, Expect::Sync)) {
                        self.expect.pop_front();
                    }
                }
                self.plan = None;
            }
            tag::READY_FOR_QUERY => {
                while let Some(e) = self.expect.pop_front() {
                    if matches!(e, Expect::Sync | Expect::Query { .. }) {
                        break;
                    }
                }
                self.plan = None;
                self.plan_execute();
            }
            _ => {}
        }
        // Values come back in more than rows: an error echoing a bad value, a notice a
        // function raised, a notification's payload, a setting's new value.
        match h.tag {
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE | tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS => {
                Disposition::Whole
            }
            _ => Disposition::Pass,
        }
    }

    /// A CopyOutResponse: decides how the rows are masked, or refuses the COPY (the
    /// error goes to the agent in place of the CopyOutResponse).
    async fn copy_out(&mut self, raw: Bytes) -> Result<Bytes, ProtocolError> {
        let binary = raw.get(5) == Some(&1);
        let mut refuse = |why: &str| {
            self.copy = Some(CopyOut::Refused);
            let hint = "run the same query with SELECT: its results are masked column by column";
            Ok(message::error_response(Severity::Error, "0A000", why, Some(hint)))
        };
        if self.conn.columns.is_empty() && !binary {
            self.copy = Some(CopyOut::Lines);
            return Ok(raw);
        }
        if self.conn.columns.is_empty() && self.conn.masker.is_empty() {
            // Nothing could be masked: the rows pass as they come.
            return Ok(raw);
        }
        let (text, taint) = match self.expect.front() {
            Some(Expect::Query { copy: Some(text), taint }) => (text.clone(), *taint),
            _ => return refuse("Airlock cannot tell which columns this COPY returns, so it cannot mask them"),
        };
        let Some(source) = copy_source(&text) else {
            return refuse("Airlock cannot tell which columns this COPY returns, so it cannot mask them");
        };
        if source.custom_format || source.binary != binary {
            return refuse("Airlock masks COPY TO STDOUT only in the default text, CSV or binary formats");
        }
        match self.conn.catalog.describe(&source.select).await {
            Ok(columns) => {
                let formats: &[i16] = if binary { &[1] } else { &[] };
                let plan = Arc::new(self.conn.plan(&columns, Some(formats), taint).await);
                self.copy = Some(if binary {
                    CopyOut::Binary { plan, tuples: BinaryTuples::default() }
                } else {
                    CopyOut::Columns { plan, csv: source.csv, header: source.header }
                });
                Ok(raw)
            }
            Err(e) => {
                tracing::warn!(error = %e, "describing a COPY's columns failed");
                refuse("Airlock could not look up this COPY's columns, so it cannot mask them")
            }
        }
    }

    /// A message asked for whole: returns what to send in its place.
    pub async fn frame(&mut self, tag: u8, raw: Bytes) -> Result<Bytes, ProtocolError> {
        let body = raw.get(5..).unwrap_or_default();
        match tag {
            tag::ROW_DESCRIPTION => {
                let columns = describe::row_description(body)?;
                match self.expect.front().cloned() {
                    Some(Expect::DescribeStatement(name)) => {
                        // Its rows are planned without waiting (in the scanner's
                        // callback), so the catalog must know these tables by then.
                        self.conn.learn(&columns).await;
                        if self.statements.len() < MAX_DESCRIBED || self.statements.contains_key(&name) {
                            self.statements.insert(name, Arc::new(columns));
                        }
                        self.pop();
                    }
                    Some(Expect::DescribePortal { statement, taint }) => {
                        // Drivers describe a named statement's first portal, then only
                        // bind and execute it (pgjdbc past its prepare threshold). The
                        // unnamed statement is parsed again before it is reused.
                        if let Some(name) = statement.filter(|n| !n.is_empty())
                            && (self.statements.len() < MAX_DESCRIBED || self.statements.contains_key(&name))
                        {
                            self.conn.learn(&columns).await;
                            self.statements.insert(name, Arc::new(columns.clone()));
                        }
                        let plan = self.conn.plan(&columns, None, taint).await;
                        self.expect.pop_front();
                        self.plan = Some(Arc::new(plan));
                    }
                    front => {
                        let taint = match front {
                            Some(Expect::Query { taint, .. }) => taint,
                            _ => Taint::Clean,
                        };
                        self.plan = Some(Arc::new(self.conn.plan(&columns, None, taint).await));
                    }
                }
                Ok(raw)
            }
            tag::COPY_OUT => self.copy_out(raw).await,
            tag::COPY_DATA => Ok(match &mut self.copy {
                Some(CopyOut::Refused) => Bytes::new(),
                Some(CopyOut::Lines) => match self.conn.masker.mask(body) {
                    std::borrow::Cow::Borrowed(_) => raw,
                    std::borrow::Cow::Owned(line) => copy_data(&line),
                },
                Some(CopyOut::Columns { header, .. }) if *header => {
                    *header = false;
                    raw
                }
                Some(CopyOut::Columns { plan, csv, .. }) => copy_data(&self.conn.mask_line(plan, body, *csv)),
                Some(CopyOut::Binary { plan, tuples }) => {
                    let conn = self.conn;
                    let masked = tuples.mask(body, |tuple| conn.mask_fields(plan, tuple, &[], "COPY tuple"))?;
                    match masked {
                        None => raw,
                        // All of it is carried to the next CopyData.
                        Some(payload) if payload.is_empty() => Bytes::new(),
                        Some(payload) => copy_data(&payload),
                    }
                }
                None => raw,
            }),
            // A refused COPY's CopyDone goes with its rows; so does its CommandComplete,
            // the only one ever asked for whole (`classify` has already ended the COPY).
            tag::COPY_DONE if matches!(self.copy, Some(CopyOut::Refused)) => Ok(Bytes::new()),
            tag::COMMAND_COMPLETE => Ok(Bytes::new()),
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE | tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS => {
                Ok(mask_text_fields(&self.conn.masker, tag, body, self.text_taint).unwrap_or(raw))
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

/// An ErrorResponse or NoticeResponse (code byte and text per field), a
/// NotificationResponse (pid, channel, payload) or a ParameterStatus (name, value) with
/// the detected secrets in its texts masked; `None` when nothing changed or the body is
/// malformed (the client then gets the server's own bytes, as for any other message).
fn mask_text_fields(masker: &Masker, tag: u8, body: &[u8], taint: Taint) -> Option<Bytes> {
    let fielded = matches!(tag, tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE);
    let (head, mut rest) = if tag == tag::NOTIFICATION_RESPONSE { body.split_at_checked(4)? } else { (&[][..], body) };
    let mut out = BytesMut::with_capacity(body.len() + 64);
    out.extend_from_slice(&[tag, 0, 0, 0, 0]);
    out.extend_from_slice(head);
    let mut changed = false;
    for index in 0.. {
        let mut code = 0;
        if fielded {
            let (&c, after) = rest.split_first()?;
            out.extend_from_slice(&[c]);
            if c == 0 {
                break;
            }
            code = c;
            rest = after;
        } else if rest.is_empty() {
            break;
        }
        let end = memchr::memchr(0, rest)?;
        let text = &rest[..end];
        let masked = match code {
            // A setting's name is the server's, not data.
            _ if tag == tag::PARAMETER_STATUS && index == 0 => Cow::Borrowed(text),
            // An error in a statement that reads masked data may quote a masked value
            // (`invalid input syntax for type integer: "..."`): quoted text, details,
            // context and the internal query are withheld.
            b'M' if taint != Taint::Clean => Cow::Owned(masker.mask(&redact_quoted(text)).into_owned()),
            b'D' | b'W' | b'q' if taint != Taint::Clean => Cow::Borrowed(WITHHELD),
            _ => masker.mask(text),
        };
        changed |= *masked != *text;
        out.extend_from_slice(&masked);
        out.extend_from_slice(&[0]);
        rest = &rest[end + 1..];
    }
    if !changed {
        return None;
    }
    message::set_length(&mut out);
    Some(out.freeze())
}

/// Whether the relation named at `t[at]` is used as a value elsewhere in the statement:
/// its name or alias (`users u`, `users AS u`) appears neither qualifying a column
/// (`u.email`) nor where it was named.
fn whole_row_used(t: &[airlock_postgres::sql::lexer::Token<'_>], at: usize) -> bool {
    use airlock_postgres::sql::builtins::is_syntax_keyword;
    use airlock_postgres::sql::lexer::{TokenKind, ident_at};
    let Some((table, _)) = ident_at(t, at) else { return false };
    let alias_at = match t.get(at + 1) {
        Some(a) if a.is("as") => Some(at + 2),
        Some(a) if a.kind == TokenKind::QuotedIdent => Some(at + 1),
        Some(a) if a.kind == TokenKind::Word && !is_syntax_keyword(&a.text.to_ascii_lowercase()) => Some(at + 1),
        _ => None,
    };
    let alias = alias_at.and_then(|k| ident_at(t, k)).map(|(a, _)| a);
    // `u.row_to_json` is `row_to_json(u)` (functional notation): the whole row too.
    let function_after = |j: usize| {
        t.get(j + 1).is_some_and(|n| n.kind == TokenKind::Dot)
            && ident_at(t, j + 2).is_some_and(|(f, _)| airlock_postgres::sql::builtins::function(&f).is_some())
            && t.get(j + 3).is_none_or(|n| n.kind != TokenKind::LParen && n.kind != TokenKind::Dot)
    };
    (0..t.len()).any(|j| {
        j != at
            && Some(j) != alias_at
            && matches!(t[j].kind, TokenKind::Word | TokenKind::QuotedIdent)
            && (t.get(j + 1).is_none_or(|n| n.kind != TokenKind::Dot) || function_after(j))
            && j.checked_sub(1).and_then(|p| t.get(p)).is_none_or(|p| p.kind != TokenKind::Dot)
            && ident_at(t, j).is_some_and(|(n, _)| n == table || alias.as_ref() == Some(&n))
    })
}

/// What replaces error details that may quote masked data.
const WITHHELD: &[u8] = b"[withheld by Airlock: the statement reads masked data]";

/// `text` with every double-quoted span replaced by `"[MASKED]"`.
fn redact_quoted(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut parts = text.split(|b| *b == b'"');
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    for (i, part) in parts.enumerate() {
        out.push(b'"');
        // Odd parts are inside quotes; an unclosed quote withholds the rest.
        out.extend_from_slice(if i % 2 == 0 { b"[MASKED]" } else { part });
    }
    out
}

impl ConnectionMasking {
    /// A plan from known columns without a catalog lookup: rule identities come from
    /// the cache only (a miss is looked up when the next RowDescription is seen whole).
    fn plan_now(&self, columns: &[Column], formats: Option<&[i16]>, taint: Taint) -> Plan {
        let cached: HashMap<(u32, i16), Vec<String>> = if self.columns.is_empty() {
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
                // Fail closed: a computed value in a statement that names what is
                // masked may be that value, transformed.
                let in_view = || {
                    cached.get(&(c.table_oid, c.attnum)).is_some_and(|ids| ids.iter().any(|i| i == COMPUTED_IN_VIEW))
                };
                let computed = (c.table_oid == 0 || in_view())
                    && match taint {
                        Taint::Column => true,
                        Taint::Table => carries_text(c.type_oid),
                        Taint::Clean => false,
                    };
                let rule = rule.or_else(|| computed.then_some(Style::Redact));
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
    fn view_columns_lead_to_their_base_columns() {
        // Shape of a PostgreSQL 15 `_RETURN` rule (trimmed): a subquery in the range
        // table has its own target list, which must not be confused with the view's.
        let tree = "({QUERY :commandType 1 :rtable ({RANGETBLENTRY :subquery {QUERY :targetList \
            ({TARGETENTRY :expr {VAR :varno 1} :resno 1 :resname x :resorigtbl 999 :resorigcol 9 :resjunk false})}}) \
            :targetList ({TARGETENTRY :expr {VAR :varno 1 :varattno 1} :resno 1 :resname id :ressortgroupref 0 \
            :resorigtbl 16390 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {FUNCEXPR :args ({VAR :varattno 2})} \
            :resno 2 :resname lower :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false} \
            {TARGETENTRY :expr {VAR :varattno 3} :resno 3 :resname se\\ cret :ressortgroupref 0 :resorigtbl 16390 \
            :resorigcol 5 :resjunk false}) :override 0})";
        let origins = view_origins(tree);
        assert_eq!(origins.len(), 2, "{origins:?}");
        assert_eq!(origins[&1], (16390, 1));
        assert_eq!(origins[&3], (16390, 5));
        assert!(view_origins("garbage {{{").is_empty());
    }

    #[test]
    fn copy_sources() {
        let src = |q: &str| copy_source(q).map(|s| (s.select, s.csv, s.header, s.custom_format));
        let binary = |q: &str| copy_source(q).map(|s| (s.binary, s.custom_format));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT binary)"), Some((true, false)));
        assert_eq!(binary("copy t to stdout with binary"), Some((true, false)));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT \"binary\")"), Some((true, false)));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT text)"), Some((false, false)));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT binary, ENCODING 'latin1')"), Some((true, true)));
        assert_eq!(
            src("COPY (select email from t) TO STDOUT"),
            Some(("select email from t".into(), false, false, false))
        );
        assert_eq!(
            src("copy public.t (a, b) to stdout with csv header"),
            Some(("SELECT a, b FROM public.t".into(), true, true, false))
        );
        assert_eq!(src("COPY t TO STDOUT (FORMAT csv, DELIMITER ';')").map(|s| s.3), Some(true));
        assert_eq!(src("copy t to stdout (\"delimiter\" '|')").map(|s| s.3), Some(true));
        assert_eq!(src("copy t to stdout (format \"csv\", header)").map(|s| (s.1, s.3)), Some((true, false)));
        assert_eq!(src("copy t to stdout (encoding 'latin1')").map(|s| s.3), Some(true));
        // Options set to their defaults are none (psycopg2's copy_to).
        assert_eq!(src("COPY t TO stdout WITH DELIMITER AS '\t' NULL AS E'\\\\N'").map(|s| s.3), Some(false));
        assert_eq!(src("COPY t TO stdout WITH DELIMITER AS E'\\t' NULL AS '\\N'").map(|s| s.3), Some(false));
        assert_eq!(src("COPY t TO stdout (FORMAT csv, DELIMITER ',', NULL '', QUOTE '\"')").map(|s| s.3), Some(false));
        assert_eq!(src("COPY t TO stdout WITH DELIMITER AS '|'").map(|s| s.3), Some(true));
        assert_eq!(src("COPY t TO stdout WITH NULL AS 'x'").map(|s| s.3), Some(true));
        assert_eq!(src("COPY t FROM STDIN"), None);
        assert_eq!(src("COPY t TO STDOUT; COPY u TO STDOUT"), None);
        assert_eq!(copy_fields(b"a,\"b,c\",d", true), vec![&b"a"[..], &b"\"b,c\""[..], &b"d"[..]]);
        assert_eq!(copy_fields(b"a\tb", false), vec![&b"a"[..], &b"b"[..]]);
    }

    /// A binary COPY stream of these tuples (`None`: a NULL field).
    fn binary_copy(tuples: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = PGCOPY.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2, 0xab, 0xcd]);
        for tuple in tuples {
            out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in *tuple {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// Replaces a tuple holding `secret` with a one-NULL tuple.
    fn hide_secrets(tuple: &[u8]) -> Result<Option<Vec<u8>>, ProtocolError> {
        Ok(tuple.windows(6).any(|w| w == b"secret").then(|| vec![0, 1, 255, 255, 255, 255]))
    }

    /// Feeds `stream` to a reader in chunks cut at `cuts`; returns what goes out.
    fn through(stream: &[u8], cuts: &[usize]) -> Result<Vec<u8>, ProtocolError> {
        let mut tuples = BinaryTuples::default();
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([stream.len()].iter()) {
            let body = &stream[from..to];
            out.extend_from_slice(&tuples.mask(body, hide_secrets)?.unwrap_or_else(|| body.to_vec()));
            from = to;
        }
        Ok(out)
    }

    #[test]
    fn binary_copy_tuples_are_masked_whatever_the_chunking() {
        let stream = binary_copy(&[&[Some(b"1"), Some(b"plain")], &[Some(b"2"), Some(b"a secret"), None], &[]]);
        let expected = binary_copy(&[&[Some(b"1"), Some(b"plain")], &[None], &[]]);
        assert_eq!(through(&stream, &[]).unwrap(), expected);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                assert_eq!(through(&stream, &[a, b]).unwrap(), expected, "cut at {a} and {b}");
            }
        }
        // Nothing to mask: each CopyData goes as it came.
        let plain = binary_copy(&[&[Some(b"x")]]);
        assert_eq!(BinaryTuples::default().mask(&plain, hide_secrets).unwrap(), None);
    }

    #[test]
    fn malformed_binary_copy_is_an_error() {
        let stream = binary_copy(&[&[Some(b"1")]]);
        let mut bad_signature = stream.clone();
        bad_signature[0] = b'X';
        assert!(through(&bad_signature, &[]).is_err());
        let mut after_trailer = stream.clone();
        after_trailer.push(0);
        assert!(through(&after_trailer, &[]).is_err());
        let mut negative_count = stream[..21].to_vec();
        negative_count.extend_from_slice(&(-2i16).to_be_bytes());
        assert!(through(&negative_count, &[]).is_err());
        let mut bad_length = stream[..21].to_vec();
        bad_length.extend_from_slice(&[0, 1, 0xff, 0xff, 0xff, 0xfe]);
        assert!(through(&bad_length, &[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn binary_copy_reader_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), cut in 0usize..64) {
            let mut stream = PGCOPY.to_vec();
            stream.extend_from_slice(&[0; 8]);
            stream.extend_from_slice(&bytes);
            let _ = through(&stream, &[cut.min(stream.len())]);
        }
    }

    #[test]
    fn globs() {
        assert!(crate::glob::matches("*", "users"));
        assert!(crate::glob::matches("password*", "password_hash"));
        assert!(crate::glob::matches("*email*", "work_email_addr"));
        assert!(!crate::glob::matches("users", "users2"));
        assert!(crate::glob::matches("a*b*c", "aXbYc") && !crate::glob::matches("a*b*c", "aXbY"));
    }
}
