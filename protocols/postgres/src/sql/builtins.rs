//! What PostgreSQL itself defines, as data generated from a real server: its built-in
//! functions by what a call may do (`data/functions.sql`), its keywords that can never
//! name a function (`data/keywords.sql`), and the relations whose contents are the
//! server's secrets.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// What calling a built-in function may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Computes or reads.
    Read,
    /// Session state: advisory locks, notifications, the random seed.
    Session,
    /// Changes data: sequences, large objects.
    Write,
    /// Removes data for good or rewinds what others rely on: `lo_unlink`, `setval`.
    Destructive,
    /// Its effect depends on session state Airlock does not follow (a cursor's query).
    Unknown,
    /// Acts on the server: files, programs, signals, replication, configuration,
    /// statistics resets.
    Admin,
    /// `set_config(name, value, is_local)`: judged by the setting it names.
    Setting,
    /// Runs the SQL text passed as its argument number `.0` (0-based).
    RunsSql(usize),
}

static FUNCTIONS: LazyLock<HashMap<&'static str, Builtin>> = LazyLock::new(|| {
    include_str!("../../data/functions.tsv")
        .lines()
        .filter_map(|line| {
            let (name, class) = line.split_once('\t')?;
            let class = match class {
                "admin" => Builtin::Admin,
                "write" => Builtin::Write,
                "destructive" => Builtin::Destructive,
                "unknown" => Builtin::Unknown,
                "session" => Builtin::Session,
                "setting" => Builtin::Setting,
                "sql1" => Builtin::RunsSql(0),
                "sql2" => Builtin::RunsSql(1),
                _ => Builtin::Read,
            };
            Some((name, class))
        })
        .collect()
});

static SYNTAX_KEYWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("../../data/keywords.txt").lines().collect());

/// The built-in function of this (normalised) name, if there is one.
pub fn function(name: &str) -> Option<Builtin> {
    FUNCTIONS.get(name).copied()
}

/// Whether an unquoted word is a reserved or column-name keyword: followed by `(` it is
/// syntax (`exists (`, `coalesce(`), never a call of a function of that name.
pub fn is_syntax_keyword(lowercase: &str) -> bool {
    SYNTAX_KEYWORDS.contains(lowercase)
}

/// Unreserved keywords that open a parenthesised clause rather than call a function.
pub const CLAUSE_WORDS: &[&str] = &[
    "over",
    "filter",
    "cube",
    "rollup",
    "sets",
    "conflict",
    "key",
    "include",
    "materialized",
    "by",
    "set",
    "zone",
    "first",
    "next",
    "repeatable",
    "passing",
    "escape",
    "operator",
];

/// Catalog relations whose contents are the server's own secrets or configuration, or
/// samples of every column's values (statistics): reading them is `admin`.
pub const SENSITIVE_RELATIONS: &[&str] = &[
    "pg_authid",
    "pg_shadow",
    "pg_user_mapping",
    "pg_user_mappings",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_file_settings",
    "pg_largeobject",
    "pg_statistic",
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic_ext_data",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_tables_know_the_dangerous_functions() {
        for name in ["pg_read_file", "lo_export", "pg_terminate_backend", "pg_stat_reset", "pg_reload_conf"] {
            assert_eq!(function(name), Some(Builtin::Admin), "{name}");
        }
        assert_eq!(function("create_physical_replication_slot"), None);
        assert_eq!(function("pg_create_physical_replication_slot"), Some(Builtin::Admin));
        assert_eq!(function("query_to_xml"), Some(Builtin::RunsSql(0)));
        assert_eq!(function("ts_rewrite"), Some(Builtin::RunsSql(1)));
        assert_eq!(function("set_config"), Some(Builtin::Setting));
        assert_eq!(function("nextval"), Some(Builtin::Write));
        assert_eq!(function("setval"), Some(Builtin::Destructive));
        assert_eq!(function("lo_unlink"), Some(Builtin::Destructive));
        assert_eq!(function("cursor_to_xml"), Some(Builtin::Unknown));
        assert_eq!(function("lower"), Some(Builtin::Read));
        assert_eq!(function("del_all"), None);
        assert!(is_syntax_keyword("exists") && is_syntax_keyword("coalesce") && !is_syntax_keyword("lower"));
    }
}
