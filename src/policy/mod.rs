//! Policy: what happens to each statement (and later each command and request).
//!
//! `[[rules]]` are tried in order and the first that matches decides. A rule matches
//! when every condition it sets holds: the connection, one of the identity's groups,
//! one of the statement's classes, a regex on the normalised statement. When no rule
//! matches, the default policy applies (fail closed): `read`, `write`, `transaction`
//! and `session` are allowed, anything else (including `unknown`) needs approval. A
//! query string with several statements takes the strictest verdict of its parts.

use std::fmt;

use airlock_postgres::sql::{self, Class, Classes};
use regex::Regex;
use serde::Serialize;

use crate::config::{Action, RuleConfig};

/// What to do with a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Refuse it, with a reason for the agent.
    Deny(String),
    /// Hold it until a human approves, naming the rule (or the default policy).
    Approve(String),
}

impl Verdict {
    fn strictness(&self) -> u8 {
        match self {
            Verdict::Allow => 0,
            Verdict::Approve(_) => 1,
            Verdict::Deny(_) => 2,
        }
    }

    /// The decision's name: `allow`, `deny` or `approve`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny(_) => "deny",
            Verdict::Approve(_) => "approve",
        }
    }
}

/// Classes the default policy lets through without asking.
/// `bulk` statements run under the rows-affected guard.
const ALLOWED_BY_DEFAULT: [Class; 5] = [Class::Read, Class::Write, Class::Bulk, Class::Transaction, Class::Session];

struct Rule {
    name: String,
    connections: Vec<String>,
    groups: Vec<String>,
    classes: Classes,
    statement: Option<Regex>,
    /// `schema.name` globs of functions this rule vouches for (an allow rule).
    functions: Vec<String>,
    action: Action,
    message: Option<String>,
    max_rows: Option<u64>,
}

impl Rule {
    /// Whether its connection and group conditions hold.
    fn applies(&self, connection: &str, groups: &[String]) -> bool {
        (self.connections.is_empty() || self.connections.iter().any(|c| c == connection))
            && (self.groups.is_empty() || self.groups.iter().any(|g| groups.contains(g)))
    }
}

/// The compiled rules.
pub struct Policy {
    rules: Vec<Rule>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy").field("rules", &self.rules.len()).finish()
    }
}

/// One statement's decision, for logs, `airlock explain` and recordings.
#[derive(Debug, Clone, Serialize)]
pub struct StatementDecision {
    /// The statement as written.
    pub text: String,
    /// Its classes.
    pub classes: Vec<&'static str>,
    /// `allow`, `deny` or `approve`.
    pub decision: &'static str,
    /// The rule that decided (`default` for the default policy).
    pub rule: String,
    /// The rule's message, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The statement with its literals blanked out, hashed: what a grant covers (only
    /// computed for statements that need approval).
    #[serde(skip)]
    pub fingerprint: String,
    /// For an allowed `bulk` statement, the rows-affected limit its rule sets (else
    /// the connection's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    #[serde(skip)]
    verdict: Verdict,
    #[serde(skip)]
    class_set: Classes,
}

/// The decision for a whole query string.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The strictest statement decision.
    pub decision: &'static str,
    /// Each statement's decision.
    pub statements: Vec<StatementDecision>,
}

impl StatementDecision {
    /// This statement's verdict.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }
}

impl Decision {
    fn of(statements: Vec<StatementDecision>) -> Decision {
        let decision =
            statements.iter().map(|s| &s.verdict).max_by_key(|v| v.strictness()).map_or("allow", Verdict::as_str);
        Decision { decision, statements }
    }

    /// Both decisions' statements: what may run when either may.
    pub fn merged(&self, other: &Decision) -> Decision {
        Decision::of(self.statements.iter().chain(&other.statements).cloned().collect())
    }

    /// The strictest verdict.
    pub fn verdict(&self) -> Verdict {
        self.statements.iter().map(|s| s.verdict.clone()).max_by_key(Verdict::strictness).unwrap_or(Verdict::Allow)
    }

    /// Whether every statement is allowed outright.
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }

    /// The statements that need approval.
    pub fn held(&self) -> impl Iterator<Item = &StatementDecision> {
        self.statements.iter().filter(|s| matches!(s.verdict, Verdict::Approve(_)))
    }

    /// The union of every statement's classes.
    pub fn classes(&self) -> Classes {
        self.statements.iter().fold(Classes::default(), |acc, s| acc | s.class_set)
    }

    /// For an allowed decision with `bulk` statements, the most rows one may change
    /// before a human is asked: the strictest of their rules' `max_rows`, else
    /// `default` (the connection's). `None` when there is no limit (`"unlimited"`).
    pub fn row_limit(&self, default: u64) -> Option<u64> {
        if !self.allowed() {
            return None;
        }
        let bulk = self.statements.iter().filter(|s| s.class_set.contains(Class::Bulk));
        bulk.map(|s| s.max_rows.unwrap_or(default)).min().filter(|&limit| limit != u64::MAX)
    }

    /// A refusal of `what` that no rule can lift (a protocol misuse), for `reason`.
    pub fn refused(what: &str, reason: &str) -> Decision {
        let verdict = Verdict::Deny(reason.to_owned());
        Decision::of(vec![StatementDecision {
            text: what.to_owned(),
            classes: Vec::new(),
            decision: verdict.as_str(),
            rule: "protocol".into(),
            message: None,
            fingerprint: String::new(),
            max_rows: None,
            verdict,
            class_set: Classes::NONE,
        }])
    }

    /// This decision with its `bulk` statements held for approval, for `reason`: the
    /// guard found they change more rows than allowed.
    pub fn held_for_rows(&self, reason: &str) -> Decision {
        let statements = self
            .statements
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if s.class_set.contains(Class::Bulk) {
                    s.verdict = Verdict::Approve(reason.to_owned());
                    s.decision = s.verdict.as_str();
                    s.rule = "max_rows".into();
                    s.max_rows = None;
                    s.fingerprint = fingerprint(&sql::lexer::tokens(&s.text));
                }
                s
            })
            .collect();
        Decision::of(statements)
    }
}

/// The literal-free shape of a statement, hashed: `DELETE FROM t WHERE id = 1` and
/// `... id = 2` share it, `DELETE FROM u ...` does not.
pub fn fingerprint(tokens: &[sql::lexer::Token<'_>]) -> String {
    use sha2::Digest;
    use sql::lexer::TokenKind;
    let mut hasher = sha2::Sha256::new();
    for t in tokens {
        match t.kind {
            TokenKind::String | TokenKind::DollarString | TokenKind::Number => hasher.update(b"?"),
            TokenKind::Word => hasher.update(t.text.to_ascii_lowercase()),
            _ => hasher.update(t.text),
        }
        hasher.update(b" ");
    }
    hex::encode(&hasher.finalize()[..12])
}

/// The name a `PREPARE name AS ...` or `EXECUTE name` statement refers to.
fn statement_name<'a>(tokens: &'a [sql::lexer::Token<'a>], verb: &str) -> Option<String> {
    // As the server resolves it: quoted or not, `U&`, truncated to 63 bytes.
    if !tokens.first()?.is(verb) {
        return None;
    }
    sql::lexer::ident_at(tokens, 1).map(|(name, _)| name)
}

/// A name a statement may refer to, in its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named<'a> {
    /// A prepared statement (`EXECUTE name`).
    Statement(&'a str),
    /// A portal or cursor (`FETCH ... name`, `MOVE ... name`).
    Portal(&'a str),
}

/// The cursor a `FETCH` or `MOVE` reads: its last token.
fn cursor_name(tokens: &[sql::lexer::Token<'_>]) -> Option<String> {
    let first = tokens.first()?;
    if !(first.is("fetch") || first.is("move")) {
        return None;
    }
    let last = tokens.len().checked_sub(1)?;
    sql::lexer::ident_at(tokens, last).map(|(name, _)| name)
}

/// How a statement changes a session's prepared statements once it has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedChange {
    /// `PREPARE name AS ...`: the name now runs a statement of these classes.
    Prepared(String),
    /// `DEALLOCATE name`.
    Deallocated(String),
    /// `DEALLOCATE ALL` (or `DISCARD ALL`).
    DeallocatedAll,
}

/// The change a statement makes to the session's prepared statements, if any.
pub fn prepared_change(tokens: &[sql::lexer::Token<'_>]) -> Option<PreparedChange> {
    let first = tokens.first()?;
    if let Some(name) = statement_name(tokens, "prepare") {
        return Some(PreparedChange::Prepared(name));
    }
    if first.is("discard") && tokens.get(1).is_some_and(|t| t.is("all")) {
        return Some(PreparedChange::DeallocatedAll);
    }
    if !first.is("deallocate") {
        return None;
    }
    let name_at = if tokens.get(1).is_some_and(|t| t.is("prepare")) { 2 } else { 1 };
    match tokens.get(name_at) {
        Some(t) if t.is("all") => Some(PreparedChange::DeallocatedAll),
        Some(_) => sql::lexer::ident_at(tokens, name_at).map(|(name, _)| PreparedChange::Deallocated(name)),
        None => None,
    }
}

/// Cap on the prepared statements a session's policy remembers; beyond it, executing an
/// unremembered statement is `unknown` (held), never allowed.
pub const MAX_PREPARED_NAMES: usize = 10_000;

/// A statement normalised for rule regexes: comments dropped, words lower-cased,
/// tokens separated by single spaces; strings and quoted identifiers as written.
pub fn normalize(tokens: &[sql::lexer::Token<'_>]) -> String {
    let mut out = String::new();
    for t in tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        match t.kind {
            sql::lexer::TokenKind::Word => out.push_str(&t.text.to_ascii_lowercase()),
            _ => out.push_str(t.text),
        }
    }
    out
}

/// What a session's statements are judged by: its catalog, and the rules that vouch
/// for functions (their calls stop being `unknown` too).
struct Vouched<'a> {
    policy: &'a Policy,
    connection: &'a str,
    groups: &'a [String],
    catalog: &'a dyn sql::Catalog,
}

impl sql::Catalog for Vouched<'_> {
    fn trusted(&self, schema: Option<&str>, name: &str) -> bool {
        self.catalog.trusted(schema, name) || self.policy.vouched_for(self.connection, self.groups, schema, name)
    }

    fn shadows(&self, name: &str) -> bool {
        self.catalog.shadows(name)
    }

    fn pins(&self, schema: Option<&str>, name: &str, columns: &[String]) -> bool {
        self.catalog.pins(schema, name, columns)
    }

    fn rewrites(&self, schema: Option<&str>, name: &str) -> bool {
        self.catalog.rewrites(schema, name)
    }

    fn cascades(&self, schema: Option<&str>, name: &str) -> bool {
        self.catalog.cascades(schema, name)
    }
}

impl Policy {
    /// Compiles `[[rules]]`; regexes were checked by config validation.
    pub fn new(rules: &[RuleConfig]) -> Result<Policy, regex::Error> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Rule {
                    name: r.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
                    connections: r.connections.clone(),
                    groups: r.groups.clone(),
                    classes: Classes::of(&r.classes),
                    statement: r.statement.as_deref().map(Regex::new).transpose()?,
                    functions: r.functions.clone(),
                    action: r.action,
                    message: r.message.clone(),
                    max_rows: r.max_rows,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(Policy { rules })
    }

    /// A policy that allows everything (result masking still needs the statement
    /// bookkeeping when `policy.enforce = false`).
    pub fn allow_all() -> Policy {
        let rule = Rule {
            name: "policy.enforce = false".into(),
            connections: Vec::new(),
            groups: Vec::new(),
            classes: Classes::NONE,
            statement: None,
            functions: Vec::new(),
            action: Action::Allow,
            message: None,
            max_rows: None,
        };
        Policy { rules: vec![rule] }
    }

    /// Decides every statement of a Simple Query string.
    pub fn decide_query(&self, connection: &str, groups: &[String], query: &str) -> Decision {
        self.decide_in_session(connection, groups, query, &|_| None, &sql::NoCatalog)
    }

    /// Decides every statement of a query string in a session where `names` gives the
    /// classes of what a prepared statement or a portal runs: `EXECUTE name` takes its
    /// statement's, and `FETCH`/`MOVE` of a portal bound in the extended protocol (a
    /// portal is a cursor too) take that portal's. `catalog` tells what the session's
    /// database says of its functions that are not built in.
    pub fn decide_in_session(
        &self,
        connection: &str,
        groups: &[String],
        query: &str,
        names: &dyn Fn(Named<'_>) -> Option<Classes>,
        catalog: &dyn sql::Catalog,
    ) -> Decision {
        let functions = Vouched { policy: self, connection, groups, catalog };
        let classify = |s: &sql::Statement<'_>| sql::classify_trusting(s, &functions);
        let decide = |s: &sql::Statement<'_>| {
            let classes = match statement_name(&s.tokens, "execute") {
                Some(name) => names(Named::Statement(&name)).unwrap_or_else(|| classify(s)),
                None => {
                    let own = classify(s);
                    match cursor_name(&s.tokens).and_then(|name| names(Named::Portal(&name))) {
                        Some(portal) => own | portal,
                        None => own,
                    }
                }
            };
            self.decide(connection, groups, s.text, &s.tokens, classes)
        };
        let standard = sql::split(query);
        let mut statements: Vec<StatementDecision> = standard.iter().map(decide).collect();
        // Whether the server reads backslashes in plain strings as escapes is its
        // setting, which the agent may change at any moment (and pipeline behind the
        // change). Where the two readings differ, both are decided: the stricter wins.
        if sql::lexer::depends_on_dialect(query) {
            let other = sql::split_with(query, sql::lexer::Dialect::BACKSLASH_QUOTES);
            let differs = |s: &&sql::Statement<'_>| !standard.iter().any(|t| t.offset == s.offset && t.text == s.text);
            statements.extend(other.iter().filter(differs).map(decide));
        }
        Decision::of(statements)
    }

    /// Decides a request whose text is not SQL (a FunctionCall): it is `unknown`.
    pub fn decide_opaque(&self, connection: &str, groups: &[String], what: &str) -> Decision {
        Decision::of(vec![self.decide(connection, groups, what, &[], Classes::of(&[Class::Unknown]))])
    }

    /// Whether a rule that applies here vouches for the function `schema.name` (an
    /// unqualified call is matched by its name against each glob's last part).
    fn vouched_for(&self, connection: &str, groups: &[String], schema: Option<&str>, name: &str) -> bool {
        self.rules.iter().filter(|r| !r.functions.is_empty() && r.applies(connection, groups)).any(|r| {
            r.functions.iter().any(|glob| match (schema, glob.rsplit_once('.')) {
                (Some(schema), Some((gs, gn))) => crate::glob::matches(gs, schema) && crate::glob::matches(gn, name),
                (None, Some((_, gn))) => crate::glob::matches(gn, name),
                (_, None) => crate::glob::matches(glob, name),
            })
        })
    }

    fn decide(
        &self,
        connection: &str,
        groups: &[String],
        text: &str,
        tokens: &[sql::lexer::Token<'_>],
        classes: Classes,
    ) -> StatementDecision {
        // Normalised once, and only if a rule's regex gets that far.
        let mut normalized: Option<String> = None;
        // Rules that vouch for functions did their part in classification.
        let matched = self.rules.iter().filter(|r| r.functions.is_empty()).find(|r| {
            r.applies(connection, groups)
                && (r.classes.is_empty() || classes.iter().any(|c| r.classes.contains(c)))
                && r.statement
                    .as_ref()
                    .is_none_or(|re| re.is_match(normalized.get_or_insert_with(|| normalize(tokens))))
        });
        let (verdict, rule, message, max_rows) = match matched {
            Some(r) => {
                let why = r.message.clone().unwrap_or_else(|| format!("rule {}", r.name));
                let verdict = match r.action {
                    Action::Allow => Verdict::Allow,
                    Action::Deny => Verdict::Deny(why),
                    Action::Approve => Verdict::Approve(why),
                };
                (verdict, r.name.clone(), r.message.clone(), r.max_rows)
            }
            None if classes.iter().all(|c| ALLOWED_BY_DEFAULT.contains(&c)) => {
                (Verdict::Allow, "default".into(), None, None)
            }
            None => {
                let needs: Vec<&str> =
                    classes.iter().filter(|c| !ALLOWED_BY_DEFAULT.contains(c)).map(Class::as_str).collect();
                (
                    Verdict::Approve(format!("default policy: {} statements need approval", needs.join("/"))),
                    "default".into(),
                    None,
                    None,
                )
            }
        };
        let max_rows = if verdict == Verdict::Allow && classes.contains(Class::Bulk) { max_rows } else { None };
        StatementDecision {
            text: text.to_owned(),
            classes: classes.iter().map(Class::as_str).collect(),
            decision: verdict.as_str(),
            rule,
            message,
            // Only held statements can be granted.
            fingerprint: if matches!(verdict, Verdict::Approve(_)) { fingerprint(tokens) } else { String::new() },
            max_rows,
            verdict,
            class_set: classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy(rules: &str) -> Policy {
        let config = Config::parse(rules, std::path::PathBuf::new()).unwrap();
        Policy::new(&config.rules).unwrap()
    }

    const RULES: &str = include_str!("../../fixtures/policy/rules.toml");

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let p = policy(RULES);
        let agents = vec!["agents".to_string()];
        let ops = vec!["ops".to_string()];
        let d = p.decide_query("prod", &agents, "DROP TABLE users");
        assert_eq!((d.decision, d.statements[0].rule.as_str()), ("deny", "no-drops-on-prod"));
        let d = p.decide_query("staging", &agents, "DROP TABLE users");
        assert_eq!((d.decision, d.statements[0].rule.as_str()), ("approve", "default"));
        let d = p.decide_query("staging", &ops, "CREATE INDEX i ON t (x)");
        assert_eq!((d.decision, d.statements[0].rule.as_str()), ("allow", "ops-may-ddl"));
        let d = p.decide_query("staging", &agents, "COPY   users TO STDOUT");
        assert_eq!((d.decision, d.statements[0].rule.as_str()), ("approve", "no-pii-export"));
        let d = p.decide_query("staging", &agents, "select * from t; update t set x = 1 where id = 2");
        assert_eq!(d.decision, "allow");
    }

    #[test]
    fn a_query_string_takes_its_strictest_verdict() {
        let p = policy(RULES);
        let agents = vec!["agents".to_string()];
        let d = p.decide_query("prod", &agents, "SELECT 1; TRUNCATE t; CREATE TABLE x (i int)");
        assert_eq!(d.decision, "deny");
        let decisions: Vec<&str> = d.statements.iter().map(|s| s.decision).collect();
        assert_eq!(decisions, ["allow", "deny", "approve"]);
        assert!(matches!(d.verdict(), Verdict::Deny(m) if m.contains("never allowed on prod")));
        // Unknown is never allowed by default.
        assert_eq!(p.decide_query("x", &agents, "CALL p()").decision, "approve");
    }

    #[test]
    fn execute_takes_the_classes_of_what_was_prepared() {
        let p = policy(RULES);
        let agents = vec!["agents".to_string()];
        let mut names = std::collections::HashMap::new();
        let track = |q: &str, names: &mut std::collections::HashMap<String, Classes>| {
            for s in sql::split(q) {
                match prepared_change(&s.tokens) {
                    Some(PreparedChange::Prepared(n)) => drop(names.insert(n, sql::classify(&s))),
                    Some(PreparedChange::Deallocated(n)) => drop(names.remove(&n)),
                    Some(PreparedChange::DeallocatedAll) => names.clear(),
                    None => {}
                }
            }
        };
        track("PREPARE q (int) AS SELECT * FROM t WHERE id = $1; PREPARE \"D\" AS DROP TABLE t", &mut names);
        let decide = |q: &str, names: &std::collections::HashMap<String, Classes>| {
            p.decide_in_session(
                "x",
                &agents,
                q,
                &|n| match n {
                    Named::Statement(n) => names.get(n).copied(),
                    Named::Portal(_) => None,
                },
                &sql::NoCatalog,
            )
            .decision
        };
        assert_eq!(decide("EXECUTE q(1)", &names), "allow");
        assert_eq!(decide("execute \"D\"", &names), "approve");
        // Unknown names stay unknown.
        assert_eq!(decide("EXECUTE other", &names), "approve");
        track("DEALLOCATE PREPARE q", &mut names);
        assert_eq!(decide("EXECUTE q(1)", &names), "approve");
        track("DEALLOCATE ALL", &mut names);
        assert!(names.is_empty());
    }

    #[test]
    fn rules_vouch_for_named_functions_and_nothing_else() {
        let p = policy(
            "[auth]\ndev_tokens = true\n[[connections]]\nname = \"x\"\nprotocol = \"postgres\"\naddress = \"h:1\"\n\
             database = \"d\"\nuser = \"u\"\nallow_groups = [\"agents\"]\n\
             [[rules]]\nname = \"safe-functions\"\nfunctions = [\"public.safe_*\"]\naction = \"allow\"\n",
        );
        let agents = vec!["agents".to_string()];
        let verdict = |q: &str| p.decide_query("x", &agents, q).decision;
        assert_eq!(verdict("select safe_count()"), "allow");
        assert_eq!(verdict("select public.\"safe_count\"(1) from t"), "allow");
        assert_eq!(verdict("select other.safe_count()"), "approve");
        assert_eq!(verdict("select del_all()"), "approve");
        assert_eq!(verdict("select safe_count(), pg_read_file('/etc/passwd')"), "approve");
        // A bulk change: allowed under the rows-affected guard.
        let d = p.decide_query("x", &agents, "delete from t where safe_pick(id)");
        assert_eq!((d.decision, d.row_limit(1000)), ("allow", Some(1000)));
        // Without a catalog no key is known unique: any WHERE is bulk.
        let d = p.decide_query("x", &agents, "delete from t where id = 1");
        assert_eq!((d.decision, d.row_limit(1000)), ("allow", Some(1000)));
        let config = "[auth]\ndev_tokens = true\n[[rules]]\nfunctions = [\"f\"]\naction = \"deny\"\n";
        let e = Config::parse(config, std::path::PathBuf::new()).unwrap_err();
        assert_eq!(e.key, "rules[0].functions");
    }

    #[test]
    fn bulk_statements_take_their_rules_row_limit_and_are_held_over_it() {
        let p = policy(
            "[auth]\ndev_tokens = true\n\
             [[rules]]\nname = \"archive\"\nclasses = [\"bulk\"]\nstatement = \"^delete from archive \"\naction = \"allow\"\nmax_rows = 100000\n\
             [[rules]]\nname = \"no-bulk-on-users\"\nclasses = [\"bulk\"]\nstatement = \" users \"\naction = \"approve\"\n",
        );
        let agents = vec!["agents".to_string()];
        let d = p.decide_query("x", &agents, "DELETE FROM archive WHERE at < now() - interval '1 year'");
        assert_eq!(d.row_limit(1000), Some(100_000));
        let d = p.decide_query("x", &agents, "DELETE FROM logs WHERE at < now()");
        assert_eq!(d.row_limit(1000), Some(1000));
        let d = p.decide_query("x", &agents, "UPDATE users SET x = 1 WHERE x > 1");
        assert_eq!((d.decision, d.row_limit(1000)), ("approve", None));
        let held =
            p.decide_query("x", &agents, "DELETE FROM logs WHERE at < now()").held_for_rows("it would change 5 rows");
        assert_eq!(held.decision, "approve");
        assert_eq!(held.statements[0].rule, "max_rows");
        assert!(!held.statements[0].fingerprint.is_empty());
    }

    #[test]
    fn fingerprints_ignore_literals_only() {
        let fp = |q: &str| p_fingerprint(q);
        assert_eq!(fp("DELETE FROM t WHERE id = 1"), fp("delete from t where id = 42"));
        assert_eq!(fp("DROP TABLE t"), fp("drop  table t"));
        assert_ne!(fp("DROP TABLE t"), fp("DROP TABLE u"));
        assert_ne!(fp("DELETE FROM t WHERE id = 1"), fp("DELETE FROM t WHERE id = '1' OR true"));
    }

    fn p_fingerprint(q: &str) -> String {
        fingerprint(&sql::lexer::tokens(q))
    }
}
