//! The policy seen from one Postgres session: what each frontend message asks for.
//!
//! Simple Query strings are decided as they arrive. In the extended protocol a
//! statement is decided at Parse, the decision follows it to the portal at Bind, and
//! it is enforced at Execute, so every execution of a named statement is checked. SQL
//! `PREPARE`/`EXECUTE` share the same names. A FunctionCall is `unknown`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use airlock_postgres::ProtocolError;
use airlock_postgres::message::{self, CloseTarget, tag};
use airlock_postgres::sql;

use super::hidden::SessionCatalog;
use super::judge::{self, Named};
use super::mask::{ConnectionMasking, Expect, Taint};
use super::statements::Statements;
use crate::identity::Identity;
use crate::policy::{Decision, Policy};

mod portals;

use portals::{Portal, name_of};

/// What the relay does with one frontend message.
#[derive(Debug)]
pub enum Step {
    /// Forward it. `statement`: it carries SQL (for the session's statement count);
    /// `expect`: what its answer will carry, for result masking.
    Forward {
        /// Carries a statement.
        statement: bool,
        /// What the upstream's answer holds, when results are masked.
        expect: Option<Expect>,
    },
    /// It needs a verdict other than allow before it may go upstream.
    Decide(Held),
}

/// A message held for a verdict.
#[derive(Debug)]
pub struct Held {
    /// What the policy said.
    pub decision: Arc<Decision>,
    /// Which message is held.
    pub kind: HeldKind,
    /// What its answer will hold if it goes upstream, when results are masked.
    pub expect: Option<Expect>,
    /// An allowed `bulk` statement: it runs under the rows-affected guard, which holds
    /// it if it changes more than this many rows.
    pub max_rows: Option<u64>,
    /// The query a COPY TO STDOUT reads, which Airlock describes in the agent's
    /// session right before the COPY runs: its lines are masked by those columns.
    pub describe: Option<String>,
}

/// The kind of a held message, which decides how a refusal is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldKind {
    /// A Simple Query: refusing it answers with an error and ReadyForQuery.
    Query,
    /// An Execute: refusing it answers with an error and skips to the agent's Sync.
    Execute,
    /// A FunctionCall: answered like a Simple Query.
    FunctionCall,
}

impl Held {
    /// A message refused outright, for `reason`.
    pub fn refused(what: &str, reason: &str, kind: HeldKind) -> Held {
        Held { decision: Arc::new(Decision::refused(what, reason)), kind, expect: None, max_rows: None, describe: None }
    }

    /// The held statements' text, for approvers.
    pub fn text(&self) -> String {
        self.decision.statements.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; ")
    }
}

/// One session's view of the policy.
pub struct SessionGate<'a> {
    /// The rules; `None` when `policy.enforce = false` (results are masked, so the
    /// gate still follows statements and portals, and allows everything).
    policy: Option<&'a Policy>,
    identity: &'a Identity,
    connection: &'a str,
    /// Prepared statements (protocol Parse and SQL PREPARE), as the server confirms them.
    statements: Statements,
    /// Bound portals by name.
    portals: HashMap<String, Portal>,
    /// Result masking on this connection, when anything is masked there: answers
    /// must then be announced ([`Expect`]).
    masking: Option<&'a ConnectionMasking>,
    /// Recent decisions by query text.
    cache: HashMap<Box<str>, Arc<Decision>>,
    /// Parse messages seen so far, and when each statement name was last parsed (a
    /// portal bound before its statement's name was parsed again has a description
    /// Airlock no longer knows), with the strictest taint of what it may run, so Binds
    /// do not read the statement again.
    parses: u64,
    last_parse: HashMap<String, (u64, Taint)>,
    /// Names parsed before this were forgotten (the map's cap).
    forgotten_before: u64,
    /// Relations that run the database's own code when read.
    runs_code: Arc<SessionCatalog>,
    /// Views that show a rule-masked column.
    showing_masked: Arc<HashSet<String>>,
    /// The connection's rows-affected limit.
    max_rows: u64,
    /// Statements whose description masking has (a Describe of them, or of a portal
    /// bound from them), to plan the rows of later Executes that do not describe.
    described: HashSet<String>,
    /// DDL went upstream in this session: the catalog read at its start may no longer
    /// tell which functions can change nothing, nor which keys are unique.
    functions_changed: bool,
}

/// Decisions cached per session, and the longest text cached.
const MAX_CACHED: usize = 256;
const MAX_CACHED_TEXT: usize = 4096;

impl<'a> SessionGate<'a> {
    /// A gate for `identity` on `connection`, with its result masking if any.
    pub fn new(
        policy: Option<&'a Policy>,
        identity: &'a Identity,
        connection: &'a str,
        masking: Option<&'a ConnectionMasking>,
    ) -> Self {
        SessionGate {
            policy,
            identity,
            connection,
            statements: Statements::default(),
            portals: HashMap::new(),
            masking,
            cache: HashMap::new(),
            parses: 0,
            last_parse: HashMap::new(),
            forgotten_before: 0,
            runs_code: Arc::default(),
            showing_masked: Arc::default(),
            max_rows: crate::config::DEFAULT_MAX_ROWS,
            functions_changed: false,
            described: HashSet::new(),
        }
    }

    /// The connection's rows-affected limit for `bulk` statements (`max_rows`).
    pub fn with_max_rows(mut self, max_rows: u64) -> Self {
        self.max_rows = max_rows;
        self
    }

    /// A held message for `decision`: if allowed but `bulk`, to run under the
    /// rows-affected guard, which counts one statement's rows by its command tag.
    fn held(&self, decision: Arc<Decision>, kind: HeldKind, expect: Option<Expect>) -> Held {
        let max_rows = decision.row_limit(self.max_rows);
        let decision = match max_rows {
            Some(_) if decision.statements.len() > 1 => Arc::new(decision.held_for_rows(
                "a bulk statement sent with others in one query string: Airlock counts a bulk statement's rows when it comes alone",
                judge::text_fingerprint,
            )),
            _ => decision,
        };
        let max_rows = max_rows.filter(|_| decision.allowed());
        Held { decision, kind, expect, max_rows, describe: None }
    }

    /// What this session's catalog says: statements naming one of `runs_code` are
    /// `unknown` (see `hidden.rs`), and naming one of `showing_masked` is naming a
    /// masked column.
    pub fn with_catalog(mut self, runs_code: Arc<SessionCatalog>, showing_masked: Arc<HashSet<String>>) -> Self {
        self.runs_code = runs_code;
        self.showing_masked = showing_masked;
        self
    }

    /// Adds `unknown` to a decision whose statement reads a relation, uses a type or an
    /// operator that runs code of the database's own (see `hidden.rs`), also inside SQL
    /// text passed to functions.
    fn hidden_code(&self, text: &str, decision: Arc<Decision>) -> Arc<Decision> {
        match self.runs_code(text) {
            Some(what) => {
                let why = self.opaque(&format!("{text} ({what} runs functions Airlock cannot see into)"));
                Arc::new(decision.merged(&why))
            }
            None => decision,
        }
    }

    fn runs_code(&self, text: &str) -> Option<String> {
        self.runs_code.runs_code_in(text)
    }

    fn announce(&self, expect: impl FnOnce() -> Expect) -> Option<Expect> {
        self.masking.is_some().then(expect)
    }

    fn taint(&self, sql: &str) -> Taint {
        let own = |name: &str| sql::Catalog::shadows(&self.runs_code.functions, name);
        self.masking.map_or(Taint::Clean, |m| m.taint(sql, &self.showing_masked, &own))
    }

    /// DDL may rename what column rules match: the connection's catalog cache is read
    /// again before the next result is planned (for every session on the connection).
    /// It may also replace functions: from then on only rules vouch for any.
    fn schema_may_change(&mut self, decision: &Decision) {
        if !decision.classes().contains(sql::Class::Ddl) {
            return;
        }
        if let Some(m) = self.masking {
            m.forget_catalog();
        }
        if !self.functions_changed {
            self.functions_changed = true;
            self.cache.clear();
        }
    }

    /// A statement that names a masked column and writes (to a table, or to session
    /// state with `set_config`) can carry the value somewhere its column rule does not
    /// follow: it is `unknown`.
    fn launders(&self, text: &str, taint: Taint, decision: Arc<Decision>) -> Arc<Decision> {
        let classes = decision.classes();
        if taint != Taint::Column || !(classes.contains(sql::Class::Write) || classes.contains(sql::Class::Session)) {
            return decision;
        }
        let why = self.opaque(&format!("{text} (writes a value read from a masked column)"));
        Arc::new(decision.merged(&why))
    }

    /// Whether messages with this tag need [`SessionGate::inspect`].
    pub fn wants(tag: u8) -> bool {
        matches!(
            tag,
            tag::QUERY
                | tag::COPY_DONE
                | tag::COPY_FAIL
                | tag::PARSE
                | tag::BIND
                | tag::EXECUTE
                | tag::CLOSE
                | tag::SYNC
                | tag::FUNCTION_CALL
                | tag::DESCRIBE
        )
    }

    /// Looks at one whole frontend message: its tag and body.
    pub fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<Step, ProtocolError> {
        let forward = |statement| Ok(Step::Forward { statement, expect: None });
        if !names_are_ascii(tag, body)? {
            let reason = "Airlock tracks statement and portal names in ASCII only (the server reads others in \
                          the client encoding): use an ASCII name";
            return Ok(Step::Decide(Held::refused("(a statement or portal name)", reason, HeldKind::Execute)));
        }
        match tag {
            tag::QUERY => {
                let text = String::from_utf8_lossy(message::parse_query(body)?);
                // Simple queries usually carry their literals inline, so their texts
                // rarely repeat: not worth caching.
                let decision = self.decide(&text, false);
                let mut decision = self.hidden_code(&text, decision);
                self.schema_may_change(&decision);
                let mut expect = None;
                let mut describe = None;
                if let Some(masking) = self.masking {
                    let taint = self.taint(&text);
                    decision = self.launders(&text, taint, decision);
                    // A COPY's rows carry no column descriptions: keep the text to find
                    // out, and have its query described where it runs.
                    let copy = copy_text(&text);
                    describe = copy.as_deref().and_then(|text| copy_to_describe(text, masking.has_column_rules()));
                    expect = Some(Expect::Query { copy, described: None, taint });
                }
                self.forget_portals_on_rollback_to(&decision);
                if decision.allowed() && decision.row_limit(self.max_rows).is_none() && describe.is_none() {
                    self.ran(&text);
                    return Ok(Step::Forward { statement: true, expect });
                }
                Ok(Step::Decide(Held { describe, ..self.held(decision, HeldKind::Query, expect) }))
            }
            tag::PARSE => {
                let (name, text) = message::parse_parse(body)?;
                let text = String::from_utf8_lossy(text);
                let decision = self.decide(&text, true);
                let mut decision = self.hidden_code(&text, decision);
                let name = name_of(name);
                self.schema_may_change(&decision);
                if self.masking.is_some() {
                    let taint = self.parsed(&name, &text);
                    decision = self.launders(&text, taint, decision);
                    self.described.remove(name.as_ref());
                }
                self.statements.parse(&name, decision);
                forward(true)
            }
            tag::BIND => {
                self.bind(body)?;
                forward(false)
            }
            tag::DESCRIBE => self.describe(body),
            tag::EXECUTE => {
                let portal = name_of(message::parse_execute(body)?);
                let (decision, expect) = match self.portals.get(portal.as_ref()) {
                    Some(p) => (
                        p.decision.clone(),
                        self.announce(|| Expect::Execute {
                            statement: self.fresh(p).then(|| p.statement.clone()),
                            formats: p.formats.clone(),
                            taint: p.taint,
                        }),
                    ),
                    None => (
                        Arc::new(self.opaque(&format!("execute portal {portal:?} (not bound through Airlock)"))),
                        // A cursor's portal: unknown columns, read blind.
                        self.announce(|| Expect::Execute {
                            statement: None,
                            formats: Vec::new(),
                            taint: Taint::Column,
                        }),
                    ),
                };
                // Rows of a statement whose columns Airlock does not know would be masked
                // blind; a value nothing says to mask must not come back changed.
                let blind = self.masking.is_some_and(|m| m.has_column_rules())
                    && self.portals.get(portal.as_ref()).is_some_and(|p| {
                        let known = p.described || (self.fresh(p) && self.described.contains(&p.statement));
                        !known && p.decision.statements.iter().any(|s| may_return_rows(&s.text))
                    });
                if blind {
                    let reason = "Airlock masks columns on this connection and does not know this statement's columns: \
                                  Describe the statement or the portal before executing it";
                    return Ok(Step::Decide(Held::refused(
                        &format!("execute portal {portal:?}"),
                        reason,
                        HeldKind::Execute,
                    )));
                }
                // A COPY's rows are masked by its query text (with column rules, by a
                // description of its query too), which only a Simple Query carries, and
                // a refusal in place of its CopyOutResponse would not stop the server
                // running the rest of the pipeline: one that needs them is refused here,
                // before it runs.
                let column_rules = self.masking.is_some_and(|m| m.has_column_rules());
                let unmaskable_copy = self.masking.is_some()
                    && self.portals.get(portal.as_ref()).is_some_and(|p| {
                        p.decision.statements.iter().any(|s| copy_needs_a_query(&s.text, column_rules))
                    });
                if unmaskable_copy {
                    let reason = "Airlock masks COPY TO STDOUT here only when sent as a simple query (or, with no \
                                  column rules, in text or CSV format): send it with the simple query protocol";
                    return Ok(Step::Decide(Held::refused(
                        &format!("execute portal {portal:?}"),
                        reason,
                        HeldKind::Execute,
                    )));
                }
                self.forget_portals_on_rollback_to(&decision);
                if decision.allowed() && decision.row_limit(self.max_rows).is_none() {
                    self.statements.execute();
                    return Ok(Step::Forward { statement: false, expect });
                }
                let mut held = self.held(decision, HeldKind::Execute, expect);
                if held.max_rows.is_some() && self.cascades(&held.decision) {
                    let reason = "its changes cascade to other tables, and through the extended protocol Airlock counts only a statement's own rows";
                    held.decision = Arc::new(held.decision.held_for_rows(reason, judge::text_fingerprint));
                    held.max_rows = None;
                }
                Ok(Step::Decide(held))
            }
            tag::CLOSE => {
                let (target, name) = message::parse_close(body)?;
                let name = name_of(name);
                match target {
                    CloseTarget::Statement => self.statements.close(&name),
                    CloseTarget::Portal => drop(self.portals.remove(name.as_ref())),
                }
                forward(false)
            }
            tag::SYNC => {
                // Portals die at the end of a transaction. Keeping them is harmless: a
                // stale entry is replaced by the next Bind of that name, and a Bind that
                // fails aborts the transaction, which takes every portal with it.
                self.statements.ready();
                Ok(Step::Forward { statement: false, expect: self.announce(|| Expect::Sync) })
            }
            tag::FUNCTION_CALL => {
                let decision = self.opaque("fast-path function call");
                // Its answer ends at ReadyForQuery, like a Simple Query's.
                let expect = self.announce(|| Expect::Query { copy: None, described: None, taint: Taint::Clean });
                if decision.allowed() {
                    self.statements.ready();
                    return Ok(Step::Forward { statement: false, expect });
                }
                Ok(Step::Decide(self.held(Arc::new(decision), HeldKind::FunctionCall, expect)))
            }
            tag::COPY_DONE | tag::COPY_FAIL => {
                self.statements.copy_end();
                forward(false)
            }
            _ => forward(false),
        }
    }

    /// Whether a statement of `decision` writes to a relation whose changes cascade
    /// (foreign keys, triggers).
    fn cascades(&self, decision: &Decision) -> bool {
        decision.statements.iter().any(|s| {
            let t = sql::lexer::tokens(&s.text);
            sql::written_relation(&t)
                .is_some_and(|(schema, name)| sql::Catalog::cascades(&*self.runs_code, schema.as_deref(), &name))
        })
    }

    /// The decision for a query string. Drivers re-parse the same parameterised text
    /// over and over, so `cacheable` decisions are cached by text, except those that
    /// depend on the session's prepared statements.
    fn decide(&mut self, text: &str, cacheable: bool) -> Arc<Decision> {
        if cacheable && let Some(d) = self.cache.get(text) {
            return d.clone();
        }
        let consulted = std::cell::Cell::new(false);
        let names = |name: Named<'_>| {
            consulted.set(true);
            match name {
                Named::Statement(name) => self.statements.lookup(name).map(|d| d.classes()),
                Named::Portal(name) => self.portals.get(name).map(|p| p.decision.classes()),
            }
        };
        let stale = Stale(&self.runs_code);
        let catalog: &dyn sql::Catalog = if self.functions_changed { &stale } else { &*self.runs_code };
        let decision = Arc::new(judge::decide_in_session(
            self.policy,
            self.connection,
            &self.identity.groups,
            text,
            &names,
            catalog,
        ));
        if cacheable && !consulted.get() && text.len() <= MAX_CACHED_TEXT {
            if self.cache.len() >= MAX_CACHED {
                self.cache.clear();
            }
            self.cache.insert(text.into(), decision.clone());
        }
        decision
    }

    fn opaque(&self, what: &str) -> Decision {
        judge::decide_opaque(self.policy, self.connection, &self.identity.groups, what)
    }
}

/// The catalog after DDL in the session: it may have dropped a unique key or replaced a
/// function, so it vouches for neither; what it knew to run code still does.
struct Stale<'a>(&'a SessionCatalog);

impl sql::Catalog for Stale<'_> {
    fn trusted(&self, _: Option<&str>, _: &str) -> bool {
        false
    }

    fn shadows(&self, name: &str) -> bool {
        self.0.shadows(name)
    }

    fn rewrites(&self, schema: Option<&str>, name: &str) -> bool {
        self.0.rewrites(schema, name)
    }

    fn cascades(&self, schema: Option<&str>, name: &str) -> bool {
        self.0.cascades(schema, name)
    }
}

/// Whether a statement may answer with rows: a query, or a write with RETURNING.
fn may_return_rows(text: &str) -> bool {
    let t = sql::lexer::tokens(text);
    let first = t.first().map(|w| w.text.to_ascii_lowercase()).unwrap_or_default();
    matches!(first.as_str(), "select" | "values" | "table" | "with" | "show" | "fetch" | "explain" | "call" | "(")
        || t.iter().any(|w| w.is("returning"))
}

/// Whether `text` is a COPY TO STDOUT whose rows can be masked only from a Simple
/// Query: any with column rules on, else one in binary or a layout Airlock does not
/// read (or cannot parse).
fn copy_needs_a_query(text: &str, column_rules: bool) -> bool {
    let t = sql::lexer::tokens(text);
    let to_stdout = t.first().is_some_and(|w| w.is("copy")) && t.windows(2).any(|w| w[0].is("to") && w[1].is("stdout"));
    to_stdout
        && (column_rules
            || airlock_postgres::copy::copy_source(text).is_none_or(|source| source.binary || source.custom_format))
}

/// For a query string that is one COPY TO STDOUT whose rows are masked column by
/// column (with column rules on, or in binary), the query it reads: Airlock
/// describes it in the agent's session. `None` otherwise (a COPY among other
/// statements is then refused when its rows arrive).
fn copy_to_describe(text: &str, column_rules: bool) -> Option<String> {
    let source = airlock_postgres::copy::copy_source(text)?;
    let alone = sql::split(text).len() == 1;
    (alone && (column_rules || source.binary)).then_some(source.select)
}

/// Whether the statement and portal names an extended-protocol message carries are
/// ASCII where the server keys them (their first 63 bytes). Past those, any byte: the
/// server cuts it off, as `name_of` does.
fn names_are_ascii(tag: u8, body: &[u8]) -> Result<bool, ProtocolError> {
    let ascii = |name: &[u8]| name.iter().take(63).all(u8::is_ascii);
    Ok(match tag {
        tag::PARSE => ascii(message::parse_parse(body)?.0),
        tag::BIND => {
            let (portal, statement) = message::parse_bind(body)?;
            ascii(portal) && ascii(statement)
        }
        tag::EXECUTE => ascii(message::parse_execute(body)?),
        tag::DESCRIBE => ascii(message::parse_describe(body)?.1),
        tag::CLOSE => ascii(message::parse_close(body)?.1),
        _ => true,
    })
}

/// The query text, if it may contain a COPY.
fn copy_text(query: &str) -> Option<Arc<str>> {
    query.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"copy")).then(|| Arc::from(query))
}

#[cfg(test)]
mod tests;
