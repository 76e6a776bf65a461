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
const ALLOWED_BY_DEFAULT: [Class; 4] = [Class::Read, Class::Write, Class::Transaction, Class::Session];

struct Rule {
    name: String,
    connections: Vec<String>,
    groups: Vec<String>,
    classes: Classes,
    statement: Option<Regex>,
    action: Action,
    message: Option<String>,
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
    #[serde(skip)]
    verdict: Verdict,
}

/// The decision for a whole query string.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The strictest statement decision.
    pub decision: &'static str,
    /// Each statement's decision.
    pub statements: Vec<StatementDecision>,
}

impl Decision {
    /// The strictest verdict.
    pub fn verdict(&self) -> Verdict {
        self.statements.iter().map(|s| s.verdict.clone()).max_by_key(Verdict::strictness).unwrap_or(Verdict::Allow)
    }
}

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
                    action: r.action,
                    message: r.message.clone(),
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(Policy { rules })
    }

    /// Decides every statement of a Simple Query string.
    pub fn decide_query(&self, connection: &str, groups: &[String], query: &str) -> Decision {
        let statements: Vec<StatementDecision> = sql::split(query)
            .iter()
            .map(|s| self.decide(connection, groups, s.text, &s.tokens, sql::classify(s)))
            .collect();
        let decision =
            statements.iter().map(|s| &s.verdict).max_by_key(|v| v.strictness()).map_or("allow", Verdict::as_str);
        Decision { decision, statements }
    }

    fn decide(
        &self,
        connection: &str,
        groups: &[String],
        text: &str,
        tokens: &[sql::lexer::Token<'_>],
        classes: Classes,
    ) -> StatementDecision {
        let normalized = normalize(tokens);
        let matched = self.rules.iter().find(|r| {
            (r.connections.is_empty() || r.connections.iter().any(|c| c == connection))
                && (r.groups.is_empty() || r.groups.iter().any(|g| groups.contains(g)))
                && (r.classes.is_empty() || classes.iter().any(|c| r.classes.contains(c)))
                && r.statement.as_ref().is_none_or(|re| re.is_match(&normalized))
        });
        let (verdict, rule, message) = match matched {
            Some(r) => {
                let why = r.message.clone().unwrap_or_else(|| format!("rule {}", r.name));
                let verdict = match r.action {
                    Action::Allow => Verdict::Allow,
                    Action::Deny => Verdict::Deny(why),
                    Action::Approve => Verdict::Approve(why),
                };
                (verdict, r.name.clone(), r.message.clone())
            }
            None if classes.iter().all(|c| ALLOWED_BY_DEFAULT.contains(&c)) => (Verdict::Allow, "default".into(), None),
            None => {
                let needs: Vec<&str> =
                    classes.iter().filter(|c| !ALLOWED_BY_DEFAULT.contains(c)).map(Class::as_str).collect();
                (
                    Verdict::Approve(format!("default policy: {} statements need approval", needs.join("/"))),
                    "default".into(),
                    None,
                )
            }
        };
        StatementDecision {
            text: text.to_owned(),
            classes: classes.iter().map(Class::as_str).collect(),
            decision: verdict.as_str(),
            rule,
            message,
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

    const RULES: &str = r#"
[auth]
dev_tokens = true

[[connections]]
name = "prod"
protocol = "postgres"
address = "db:5432"
database = "app"
user = "u"
allow_groups = ["agents"]

[[rules]]
name = "no-drops-on-prod"
connections = ["prod"]
classes = ["destructive"]
action = "deny"
message = "destructive statements are never allowed on prod"

[[rules]]
name = "ops-may-ddl"
groups = ["ops"]
classes = ["ddl"]
action = "allow"

[[rules]]
name = "no-pii-export"
statement = "^copy .* to stdout"
action = "approve"
"#;

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
}
