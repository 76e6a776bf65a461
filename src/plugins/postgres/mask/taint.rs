//! How far a statement's computed results may carry values that column rules mask:
//! read from the names it uses, before it runs.

use std::collections::HashSet;

use airlock_postgres::sql::builtins::{self, is_syntax_keyword};
use airlock_postgres::sql::lexer::{Token, TokenKind, ident_at, literal_text, tokens};

use super::ConnectionMasking;

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

impl ConnectionMasking {
    /// How far a statement's computed results may carry rule-masked values: it names a
    /// masked column, one of `views` (views that show one), a function that dumps
    /// tables whole, or calls a function `own` says is the database's own, which may
    /// read a masked column the statement never names (`Column`); or it names a table
    /// holding a masked column (`Table`). Names are read as the server resolves them,
    /// also inside string literals (SQL passed to `query_to_xml`, a table name passed
    /// to `table_to_xml`).
    pub fn taint(&self, sql: &str, views: &HashSet<String>, own: &dyn Fn(&str) -> bool) -> Taint {
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
}

/// Whether the relation named at `t[at]` is used as a value elsewhere in the statement:
/// its name or alias (`users u`, `users AS u`) appears neither qualifying a column
/// (`u.email`) nor where it was named.
fn whole_row_used(t: &[Token<'_>], at: usize) -> bool {
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
            && ident_at(t, j + 2).is_some_and(|(f, _)| builtins::function(&f).is_some())
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
