//! Policy: what happens to each statement, command or request.
//!
//! Policy knows no protocol. A plugin reads its protocol, classifies what the agent
//! asks into shared [`Classes`], and asks [`Policy::decide`] about one [`Command`] at
//! a time; its own code (for Postgres, `plugins::postgres::judge`) splits a query
//! string into statements and combines their decisions into one [`Decision`].
//!
//! `[[rules]]` are tried in order and the first that matches decides. A rule matches
//! when every condition it sets holds: the connection, one of the identity's groups,
//! one of the command's classes, a regex on the normalised command. When no rule
//! matches, the default policy applies (fail closed): `read`, `write`, `bulk`,
//! `transaction` and `session` are allowed, anything else (including `unknown`) needs
//! approval. A request of several commands takes the strictest verdict of its parts.

use std::fmt;

use airlock_classes::{Class, Classes};
use regex::Regex;
use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::config::{Action, RuleConfig};

/// What to do with a command.
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

/// A verdict serializes as its name; its reason is the rule's, said elsewhere.
impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One thing an agent asks for, as its plugin understood it: a SQL statement, a
/// shell command, an HTTP request.
pub struct Command<'a> {
    /// The connection it goes to.
    pub connection: &'a str,
    /// The asking identity's groups.
    pub groups: &'a [String],
    /// As the agent wrote it.
    pub text: &'a str,
    /// What it may do.
    pub classes: Classes,
    /// The form rule regexes match (for SQL: comments dropped, words lower-cased);
    /// computed only when a rule's regex gets that far.
    pub normalized: &'a dyn Fn() -> String,
    /// Its shape with literal values left out, hashed: what a grant covers; computed
    /// only for a command that needs approval.
    pub fingerprint: &'a dyn Fn() -> String,
    /// Facts only its protocol gives, for the rule conditions that ask for them.
    pub attrs: &'a [Attr<'a>],
}

/// A protocol-specific fact about a command. A rule condition on a fact matches only
/// commands that carry it: `request = "DELETE /repos/*"` never matches SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr<'a> {
    /// An HTTP request's method and path (without the query).
    Request {
        /// As sent, case and all.
        method: &'a str,
        /// The path as the upstream receives it.
        path: &'a str,
    },
    /// A GraphQL operation the request runs.
    Graphql {
        /// `query`, `mutation` or `subscription`.
        kind: &'a str,
        /// Its name, if it has one (the client's choice).
        name: Option<&'a str>,
        /// The fields its top level runs (`deleteRepository`).
        fields: &'a [String],
    },
}

/// Splits a two-part condition (`POST /repos/*`, `mutation delete*`).
fn split_condition(text: &str, key: &str) -> anyhow::Result<(String, String)> {
    match text.trim().split_once(char::is_whitespace) {
        Some((first, rest)) if !rest.trim().is_empty() => Ok((first.to_owned(), rest.trim().to_owned())),
        _ => anyhow::bail!("rule {key} = {text:?}: expected two parts, like \"POST /repos/*\" or \"mutation delete*\""),
    }
}

/// Whether an HTTP request path matches a rule's path glob: name by name (`*` within
/// one name, `**` across names), ignoring ASCII case and one trailing slash, since
/// servers commonly route `/Repos/x/` as `/repos/x`. Forms a server may read
/// differently (dot segments, empty names, encoded slashes) are the plugin's to
/// refuse or hold before this.
pub(crate) fn request_path_matches(glob: &str, path: &str) -> bool {
    let path = path.to_ascii_lowercase();
    let glob = glob.to_ascii_lowercase();
    let trimmed = match path.len() > 1 {
        true => path.strip_suffix('/').unwrap_or(&path),
        false => &path,
    };
    crate::glob::matches_path(&glob, trimmed)
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
    /// `METHOD /path/glob`: HTTP requests only.
    request: Option<(String, String)>,
    /// `kind name-glob`: GraphQL operations only.
    graphql: Option<(String, String)>,
}

impl Rule {
    /// Whether its protocol-specific conditions hold for `attrs`.
    fn matches_attrs(&self, attrs: &[Attr<'_>]) -> bool {
        let request = self.request.as_ref().is_none_or(|(method, glob)| {
            attrs.iter().any(|a| match a {
                Attr::Request { method: m, path } => (method == "*" || method == m) && request_path_matches(glob, path),
                Attr::Graphql { .. } => false,
            })
        });
        let graphql = self.graphql.as_ref().is_none_or(|(kind, glob)| {
            attrs.iter().any(|a| match a {
                // The name is the client's to choose; the fields are what runs.
                Attr::Graphql { kind: k, name, fields } => {
                    (kind == "*" || kind == k)
                        && (crate::glob::matches(glob, name.unwrap_or(""))
                            || fields.iter().any(|f| crate::glob::matches(glob, f)))
                }
                Attr::Request { .. } => false,
            })
        });
        request && graphql
    }

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

/// One command's decision, for logs, `airlock explain` and recordings.
#[derive(Debug, Clone, Serialize)]
pub struct StatementDecision {
    /// The command as written.
    pub text: String,
    /// Its classes.
    pub classes: Classes,
    /// What to do with it.
    #[serde(rename = "decision")]
    pub verdict: Verdict,
    /// The rule that decided (`default` for the default policy).
    pub rule: String,
    /// The rule's message, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What a grant covers (see [`Command::fingerprint`]); only computed for commands
    /// that need approval.
    #[serde(skip)]
    pub fingerprint: String,
    /// For an allowed `bulk` command, the rows-affected limit its rule sets (else
    /// the connection's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
}

impl StatementDecision {
    /// The decision when `policy.enforce = false`: allowed, and only watched (the
    /// plugin still follows what each command does, for masking and the record).
    pub fn unenforced(command: &Command<'_>) -> StatementDecision {
        StatementDecision {
            text: command.text.to_owned(),
            classes: command.classes,
            verdict: Verdict::Allow,
            rule: "policy.enforce = false".into(),
            message: None,
            fingerprint: String::new(),
            max_rows: None,
        }
    }
}

/// The decision for a whole request (a query string of several statements): the
/// strictest of its commands' verdicts.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Each command's decision.
    pub statements: Vec<StatementDecision>,
}

/// `{"decision": <the strictest verdict>, "statements": [...]}`.
impl Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Decision", 2)?;
        out.serialize_field("decision", &self.verdict())?;
        out.serialize_field("statements", &self.statements)?;
        out.end()
    }
}

impl Decision {
    /// The decision of these commands together.
    pub fn of(statements: Vec<StatementDecision>) -> Decision {
        Decision { statements }
    }

    /// Both decisions' statements: what may run when either may.
    pub fn merged(&self, other: &Decision) -> Decision {
        Decision::of(self.statements.iter().chain(&other.statements).cloned().collect())
    }

    /// The strictest verdict.
    pub fn verdict(&self) -> &Verdict {
        self.statements.iter().map(|s| &s.verdict).max_by_key(|v| v.strictness()).unwrap_or(&Verdict::Allow)
    }

    /// Whether every statement is allowed outright.
    pub fn allowed(&self) -> bool {
        self.statements.iter().all(|s| s.verdict == Verdict::Allow)
    }

    /// The statements that need approval.
    pub fn held(&self) -> impl Iterator<Item = &StatementDecision> {
        self.statements.iter().filter(|s| matches!(s.verdict, Verdict::Approve(_)))
    }

    /// The union of every statement's classes.
    pub fn classes(&self) -> Classes {
        self.statements.iter().fold(Classes::default(), |acc, s| acc | s.classes)
    }

    /// For an allowed decision with `bulk` statements, the most rows one may change
    /// before a human is asked: the strictest of their rules' `max_rows`, else
    /// `default` (the connection's). `None` when there is no limit (`"unlimited"`).
    pub fn row_limit(&self, default: u64) -> Option<u64> {
        if !self.allowed() {
            return None;
        }
        let bulk = self.statements.iter().filter(|s| s.classes.contains(Class::Bulk));
        bulk.map(|s| s.max_rows.unwrap_or(default)).min().filter(|&limit| limit != u64::MAX)
    }

    /// A refusal of `what` that no rule can lift (a protocol misuse), for `reason`.
    pub fn refused(what: &str, reason: &str) -> Decision {
        Decision::of(vec![StatementDecision {
            text: what.to_owned(),
            classes: Classes::NONE,
            verdict: Verdict::Deny(reason.to_owned()),
            rule: "protocol".into(),
            message: None,
            fingerprint: String::new(),
            max_rows: None,
        }])
    }

    /// This decision with its `bulk` statements held for approval, for `reason`: the
    /// guard found they change more rows than allowed. `fingerprint` gives a command's
    /// fingerprint from its text.
    pub fn held_for_rows(&self, reason: &str, fingerprint: impl Fn(&str) -> String) -> Decision {
        let statements = self
            .statements
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if s.classes.contains(Class::Bulk) {
                    s.verdict = Verdict::Approve(reason.to_owned());
                    s.rule = "max_rows".into();
                    s.max_rows = None;
                    s.fingerprint = fingerprint(&s.text);
                }
                s
            })
            .collect();
        Decision::of(statements)
    }
}

impl Policy {
    /// Compiles `[[rules]]`; regexes were checked by config validation.
    pub fn new(rules: &[RuleConfig]) -> anyhow::Result<Policy> {
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
                    request: r.request.as_deref().map(|s| split_condition(s, "request")).transpose()?,
                    graphql: r.graphql.as_deref().map(|s| split_condition(s, "graphql")).transpose()?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Policy { rules })
    }

    /// Whether a rule that applies here vouches for the function `schema.name` (an
    /// unqualified call is matched by its name against each glob's last part).
    pub fn vouched_for(&self, connection: &str, groups: &[String], schema: Option<&str>, name: &str) -> bool {
        self.rules.iter().filter(|r| !r.functions.is_empty() && r.applies(connection, groups)).any(|r| {
            r.functions.iter().any(|glob| match (schema, glob.rsplit_once('.')) {
                (Some(schema), Some((gs, gn))) => crate::glob::matches(gs, schema) && crate::glob::matches(gn, name),
                (None, Some((_, gn))) => crate::glob::matches(gn, name),
                (_, None) => crate::glob::matches(glob, name),
            })
        })
    }

    /// Decides one command: the first rule that matches, else the default policy.
    pub fn decide(&self, command: &Command<'_>) -> StatementDecision {
        let Command { connection, groups, text, classes, .. } = *command;
        // Normalised once, and only if a rule's regex gets that far.
        let mut normalized: Option<String> = None;
        // Rules that vouch for functions did their part in classification.
        let matched = self.rules.iter().filter(|r| r.functions.is_empty()).find(|r| {
            r.applies(connection, groups)
                && (r.classes.is_empty() || classes.iter().any(|c| r.classes.contains(c)))
                && r.matches_attrs(command.attrs)
                && r.statement
                    .as_ref()
                    .is_none_or(|re| re.is_match(normalized.get_or_insert_with(|| (command.normalized)())))
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
            classes,
            rule,
            message,
            // Only held commands can be granted.
            fingerprint: if matches!(verdict, Verdict::Approve(_)) { (command.fingerprint)() } else { String::new() },
            max_rows,
            verdict,
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

    fn decide(p: &Policy, connection: &str, groups: &[&str], text: &str, classes: &[Class]) -> StatementDecision {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let command = Command {
            connection,
            groups: &groups,
            text,
            classes: Classes::of(classes),
            normalized: &|| text.to_lowercase(),
            fingerprint: &|| format!("fp:{text}"),
            attrs: &[],
        };
        p.decide(&command)
    }

    #[test]
    fn rules_match_on_connection_group_class_and_text_then_the_default_decides() {
        let p = policy(include_str!("../../fixtures/policy/rules.toml"));
        let d = decide(&p, "prod", &["agents"], "DROP TABLE users", &[Class::Destructive]);
        assert_eq!(
            (&d.verdict, d.rule.as_str()),
            (&Verdict::Deny("destructive statements are never allowed on prod".into()), "no-drops-on-prod")
        );
        let d = decide(&p, "staging", &["agents"], "DROP TABLE users", &[Class::Destructive]);
        assert_eq!(
            (d.verdict.as_str(), d.rule.as_str(), d.fingerprint.as_str()),
            ("approve", "default", "fp:DROP TABLE users")
        );
        let d = decide(&p, "staging", &["ops"], "create index", &[Class::Ddl]);
        assert_eq!((d.verdict.as_str(), d.rule.as_str(), d.fingerprint.as_str()), ("allow", "ops-may-ddl", ""));
        // The default lets these through and holds the rest, `unknown` included.
        for class in Class::ALL {
            let d = decide(&p, "x", &["agents"], "x", &[class]);
            let allowed =
                matches!(class, Class::Read | Class::Write | Class::Bulk | Class::Transaction | Class::Session);
            assert_eq!(d.verdict == Verdict::Allow, allowed, "{class:?}");
        }
    }

    #[test]
    fn a_decision_is_its_strictest_verdict_and_serializes_it_once() {
        let p = policy(include_str!("../../fixtures/policy/rules.toml"));
        let d = Decision::of(vec![
            decide(&p, "prod", &["agents"], "select", &[Class::Read]),
            decide(&p, "prod", &["agents"], "truncate", &[Class::Destructive]),
            decide(&p, "prod", &["agents"], "create", &[Class::Ddl]),
        ]);
        assert!(matches!(d.verdict(), Verdict::Deny(_)) && !d.allowed());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["decision"], "deny");
        assert_eq!(json["statements"][1]["classes"], serde_json::json!(["destructive"]));
        let verdicts: Vec<&str> = d.statements.iter().map(|s| s.verdict.as_str()).collect();
        assert_eq!(verdicts, ["allow", "deny", "approve"]);
        let refused = Decision::refused("FunctionCall", "no");
        assert_eq!((refused.verdict().as_str(), refused.statements[0].rule.as_str()), ("deny", "protocol"));
    }

    #[test]
    fn bulk_commands_take_their_rules_row_limit_and_are_held_over_it() {
        let p = policy(
            "[auth]\ndev_tokens = true\n\
             [[rules]]\nname = \"archive\"\nclasses = [\"bulk\"]\nstatement = \"^delete from archive \"\naction = \"allow\"\nmax_rows = 100000\n",
        );
        let archive = decide(&p, "x", &["a"], "DELETE FROM archive WHERE old", &[Class::Bulk]);
        let logs = decide(&p, "x", &["a"], "DELETE FROM logs WHERE old", &[Class::Bulk]);
        let read = decide(&p, "x", &["a"], "SELECT 1", &[Class::Read]);
        assert_eq!(Decision::of(vec![archive.clone()]).row_limit(1000), Some(100_000));
        assert_eq!(Decision::of(vec![logs.clone(), archive]).row_limit(1000), Some(1000));
        assert_eq!(Decision::of(vec![read.clone()]).row_limit(1000), None);
        let held = Decision::of(vec![read, logs]).held_for_rows("it would change 5 rows", |t| format!("fp:{t}"));
        assert_eq!(held.verdict().as_str(), "approve");
        assert_eq!(held.statements[0].verdict, Verdict::Allow);
        assert_eq!(
            (held.statements[1].rule.as_str(), held.statements[1].fingerprint.as_str()),
            ("max_rows", "fp:DELETE FROM logs WHERE old")
        );
    }
}
