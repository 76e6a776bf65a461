//! The `[[masking]]` column rules of a connection: `schema.table.column` globs with
//! the style that replaces a matching column's values.

use airlock_postgres::sql::{
    self,
    select::{SelectItem, simple_select},
};

use super::ConnectionMasking;
use crate::config::{Config, MaskStyle};
use crate::masking::Style;

/// The masking style a configured style names.
pub(super) fn style(s: MaskStyle) -> Style {
    match s {
        MaskStyle::Redact => Style::Redact,
        MaskStyle::Partial => Style::Partial,
        MaskStyle::Hash => Style::Hash,
    }
}

/// With any column rule, the SQL text other sessions are running is masked too: the
/// same upstream role serves every agent of a connection, so `pg_stat_activity.query`
/// shows one agent the literals another typed.
const QUERY_TEXTS: [&str; 2] = ["pg_catalog.pg_stat_activity.query", "public.pg_stat_statements.query"];

/// The column rules that apply to connection `name`: globs split into their three
/// parts, with their style.
pub(super) fn column_rules(config: &Config, name: &str) -> Vec<(Vec<String>, Style)> {
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

/// Whether `identity` (`schema.table.column`) matches a glob split into its parts.
fn glob_parts_match(glob: &[String], identity: &str) -> bool {
    let parts: Vec<&str> = identity.split('.').collect();
    glob.len() == parts.len() && glob.iter().zip(&parts).all(|(g, p)| crate::glob::matches(g, p))
}

impl ConnectionMasking {
    /// The style of the first column rule matching any of a column's identities (its
    /// own name, and for a view column the base columns it shows).
    pub(super) fn rule_for(&self, identities: &[String]) -> Option<Style> {
        identities.iter().find_map(|identity| {
            self.columns.iter().find(|(glob, _)| glob_parts_match(glob, identity)).map(|(_, s)| *s)
        })
    }
}

/// What `airlock explain` can say about masking without a database: for each statement
/// of the simple shape `SELECT columns FROM table ...` (one table, plain column
/// references or `*`), the result columns column rules cover; `None` where only the
/// upstream's catalog could tell. Unqualified tables are taken to be in `public`.
/// Value detectors apply to every text value whatever this says.
pub fn static_masks(config: &Config, connection: &str, query: &str) -> Vec<Option<Vec<serde_json::Value>>> {
    let rules = column_rules(config, connection);
    sql::split(query)
        .iter()
        .map(|s| {
            let select = simple_select(&s.tokens)?;
            let table = select.table;
            let schema = select.schema.unwrap_or_else(|| "public".into());
            let mut masked = Vec::new();
            for item in select.items {
                let (name, label) = match item {
                    SelectItem::All => {
                        let prefix = format!("{schema}.{table}.");
                        for (glob, style) in &rules {
                            if glob.len() == 3 && crate::glob::matches(&glob[0], &schema) && crate::glob::matches(&glob[1], &table) {
                                masked.push(serde_json::json!({"column": "*", "rule": glob.join("."), "style": format!("{style:?}").to_lowercase(), "source": format!("{prefix}{}", glob[2])}));
                            }
                        }
                        continue;
                    }
                    SelectItem::Column { name, label } => (name, label),
                };
                let identity = format!("{schema}.{table}.{name}");
                if let Some((glob, style)) = rules.iter().find(|(g, _)| glob_parts_match(g, &identity)) {
                    masked.push(serde_json::json!({
                        "column": label,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(crate::glob::matches("*", "users"));
        assert!(crate::glob::matches("password*", "password_hash"));
        assert!(crate::glob::matches("*email*", "work_email_addr"));
        assert!(!crate::glob::matches("users", "users2"));
        assert!(crate::glob::matches("a*b*c", "aXbYc") && !crate::glob::matches("a*b*c", "aXbY"));
    }

    #[test]
    fn static_masks_name_the_covered_columns() {
        let toml = "[auth]\ndev_tokens = true\n[[connections]]\nname = \"db\"\nprotocol = \"postgres\"\n\
                    address = \"127.0.0.1:1\"\ndatabase = \"d\"\nuser = \"u\"\nallow_groups = [\"a\"]\n\
                    [[masking]]\ncolumns = [\"public.users.pass*\"]\n";
        let config = Config::parse(toml, std::path::PathBuf::new()).expect("test config");
        let masks = static_masks(&config, "db", "SELECT id, password AS p FROM users; SELECT * FROM users u; SELECT 1");
        assert_eq!(
            serde_json::json!(masks),
            serde_json::json!([
                [{"column": "p", "source": "public.users.password", "rule": "public.users.pass*", "style": "redact"}],
                [{"column": "*", "source": "public.users.pass*", "rule": "public.users.pass*", "style": "redact"}],
                null,
            ])
        );
    }
}
