//! SQL under policy: a query string split into statements, each classified (with what
//! the session knows of its prepared statements, portals and catalog) and decided as
//! one [`Command`]; and the SQL forms policy asks for (normalised text, fingerprint).

use airlock_classes::{Class, Classes};
use airlock_postgres::sql;

use crate::policy::{Command, Decision, Policy, StatementDecision};

/// Decides every statement of a Simple Query string (`airlock explain`: no session).
pub fn decide_query(policy: &Policy, connection: &str, groups: &[String], query: &str) -> Decision {
    decide_in_session(Some(policy), connection, groups, query, &|_| None, &sql::NoCatalog)
}

/// Decides every statement of a query string in a session where `names` gives the
/// classes of what a prepared statement or a portal runs: `EXECUTE name` takes its
/// statement's, and `FETCH`/`MOVE` of a portal bound in the extended protocol (a
/// portal is a cursor too) take that portal's. `catalog` tells what the session's
/// database says of its functions that are not built in.
pub fn decide_in_session(
    policy: Option<&Policy>,
    connection: &str,
    groups: &[String],
    query: &str,
    names: &dyn Fn(Named<'_>) -> Option<Classes>,
    catalog: &dyn sql::Catalog,
) -> Decision {
    let functions = Vouched { policy, connection, groups, catalog };
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
        let command = Command {
            connection,
            groups,
            text: s.text,
            classes,
            normalized: &|| normalize(&s.tokens),
            fingerprint: &|| fingerprint(&s.tokens),
            attrs: &[],
        };
        policy.map_or_else(|| StatementDecision::unenforced(&command), |p| p.decide(&command))
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
pub fn decide_opaque(policy: Option<&Policy>, connection: &str, groups: &[String], what: &str) -> Decision {
    let classes = Classes::of(&[Class::Unknown]);
    let unknown = || String::new();
    let command =
        Command { connection, groups, text: what, classes, normalized: &unknown, fingerprint: &unknown, attrs: &[] };
    Decision::of(vec![policy.map_or_else(|| StatementDecision::unenforced(&command), |p| p.decide(&command))])
}

/// The fingerprint of a statement's text.
pub fn text_fingerprint(text: &str) -> String {
    fingerprint(&sql::lexer::tokens(text))
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
    // Only ASCII names are tracked: the server reads others in the client encoding
    // (two spellings Airlock reads alike may be two names to it, and the reverse).
    sql::lexer::ident_at(tokens, 1).map(|(name, _)| name).filter(|name| name.is_ascii())
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
    sql::lexer::ident_at(tokens, last).map(|(name, _)| name).filter(|name| name.is_ascii())
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
    policy: Option<&'a Policy>,
    connection: &'a str,
    groups: &'a [String],
    catalog: &'a dyn sql::Catalog,
}

impl sql::Catalog for Vouched<'_> {
    fn trusted(&self, schema: Option<&str>, name: &str) -> bool {
        self.catalog.trusted(schema, name)
            || self.policy.is_some_and(|p| p.vouched_for(self.connection, self.groups, schema, name))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::Verdict;

    fn policy(rules: &str) -> Policy {
        let config = Config::parse(rules, std::path::PathBuf::new()).unwrap();
        Policy::new(&config.rules).unwrap()
    }

    const RULES: &str = include_str!("../../../fixtures/policy/rules.toml");

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let p = policy(RULES);
        let agents = vec!["agents".to_string()];
        let ops = vec!["ops".to_string()];
        let d = decide_query(&p, "prod", &agents, "DROP TABLE users");
        assert_eq!((d.verdict().as_str(), d.statements[0].rule.as_str()), ("deny", "no-drops-on-prod"));
        let d = decide_query(&p, "staging", &agents, "DROP TABLE users");
        assert_eq!((d.verdict().as_str(), d.statements[0].rule.as_str()), ("approve", "default"));
        let d = decide_query(&p, "staging", &ops, "CREATE INDEX i ON t (x)");
        assert_eq!((d.verdict().as_str(), d.statements[0].rule.as_str()), ("allow", "ops-may-ddl"));
        let d = decide_query(&p, "staging", &agents, "COPY   users TO STDOUT");
        assert_eq!((d.verdict().as_str(), d.statements[0].rule.as_str()), ("approve", "no-pii-export"));
        let d = decide_query(&p, "staging", &agents, "select * from t; update t set x = 1 where id = 2");
        assert_eq!(d.verdict().as_str(), "allow");
    }

    #[test]
    fn a_query_string_takes_its_strictest_verdict() {
        let p = policy(RULES);
        let agents = vec!["agents".to_string()];
        let d = decide_query(&p, "prod", &agents, "SELECT 1; TRUNCATE t; CREATE TABLE x (i int)");
        assert_eq!(d.verdict().as_str(), "deny");
        let decisions: Vec<&str> = d.statements.iter().map(|s| s.verdict.as_str()).collect();
        assert_eq!(decisions, ["allow", "deny", "approve"]);
        assert!(matches!(d.verdict(), Verdict::Deny(m) if m.contains("never allowed on prod")));
        // Unknown is never allowed by default.
        assert_eq!(decide_query(&p, "x", &agents, "CALL p()").verdict().as_str(), "approve");
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
            decide_in_session(
                Some(&p),
                "x",
                &agents,
                q,
                &|n| match n {
                    Named::Statement(n) => names.get(n).copied(),
                    Named::Portal(_) => None,
                },
                &sql::NoCatalog,
            )
            .verdict()
            .as_str()
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
        let verdict = |q: &str| decide_query(&p, "x", &agents, q).verdict().as_str();
        assert_eq!(verdict("select safe_count()"), "allow");
        assert_eq!(verdict("select public.\"safe_count\"(1) from t"), "allow");
        assert_eq!(verdict("select other.safe_count()"), "approve");
        assert_eq!(verdict("select del_all()"), "approve");
        assert_eq!(verdict("select safe_count(), pg_read_file('/etc/passwd')"), "approve");
        // A bulk change: allowed under the rows-affected guard.
        let d = decide_query(&p, "x", &agents, "delete from t where safe_pick(id)");
        assert_eq!((d.verdict().as_str(), d.row_limit(1000)), ("allow", Some(1000)));
        // Without a catalog no key is known unique: any WHERE is bulk.
        let d = decide_query(&p, "x", &agents, "delete from t where id = 1");
        assert_eq!((d.verdict().as_str(), d.row_limit(1000)), ("allow", Some(1000)));
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
        let d = decide_query(&p, "x", &agents, "DELETE FROM archive WHERE at < now() - interval '1 year'");
        assert_eq!(d.row_limit(1000), Some(100_000));
        let d = decide_query(&p, "x", &agents, "DELETE FROM logs WHERE at < now()");
        assert_eq!(d.row_limit(1000), Some(1000));
        let d = decide_query(&p, "x", &agents, "UPDATE users SET x = 1 WHERE x > 1");
        assert_eq!((d.verdict().as_str(), d.row_limit(1000)), ("approve", None));
        let held = decide_query(&p, "x", &agents, "DELETE FROM logs WHERE at < now()")
            .held_for_rows("it would change 5 rows", text_fingerprint);
        assert_eq!(held.verdict().as_str(), "approve");
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
