//! The shape of the simplest SELECT: `SELECT columns FROM table ...`, one table and
//! plain column references, which can be read without asking the server what the
//! result's columns are.

use super::lexer::{Token, TokenKind};

/// A statement of the shape `SELECT columns FROM table [[AS] alias] [clause ...]`,
/// where each clause after the table adds no relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSelect<'a> {
    /// The table's schema, lower-cased, if the statement names one.
    pub schema: Option<String>,
    /// The table, lower-cased.
    pub table: String,
    /// The select-list items that are plain column references or `*`, in order;
    /// expressions are left out.
    pub items: Vec<SelectItem<'a>>,
}

/// One select-list item of a [`SimpleSelect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem<'a> {
    /// `*` or `qualifier.*`: every column of the table.
    All,
    /// `col` or `qualifier.col`, optionally `[AS] label`.
    Column {
        /// The column, lower-cased.
        name: String,
        /// The result column's name as written: the label, or else the column.
        label: &'a str,
    },
}

/// Clauses that may follow the table without adding a relation.
const AFTER_TABLE: [&str; 6] = ["where", "order", "limit", "offset", "group", "fetch"];

/// The statement `t` (one statement's tokens) read as a [`SimpleSelect`], or `None` if
/// it is not one: not a SELECT, more than one relation, a quoted or three-part table
/// name. Only unquoted names are read; a qualifier other than the alias (when there
/// is one) leaves the item out.
pub fn simple_select<'a>(t: &[Token<'a>]) -> Option<SimpleSelect<'a>> {
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
    if let Some(x) = t.get(i).filter(|x| x.kind == TokenKind::Word && !AFTER_TABLE.iter().any(|k| x.is(k))) {
        alias = Some(x.text.to_ascii_lowercase());
        i += 1;
    }
    if let Some(x) = t.get(i)
        && !AFTER_TABLE.iter().any(|k| x.is(k))
    {
        return None;
    }
    let (schema, table) = match name.as_slice() {
        [table] if table.kind == TokenKind::Word => (None, table),
        [schema, table] if schema.kind == TokenKind::Word && table.kind == TokenKind::Word => {
            (Some(schema.text.to_ascii_lowercase()), table)
        }
        _ => return None,
    };
    let mut items = Vec::new();
    // Each select-list item: `*`, `col`, `qualifier.col`, optionally `AS name`.
    for item in t.get(1..from)?.split(|x| x.kind == TokenKind::Comma) {
        let (expr, label) = match item {
            [e @ .., a, n] if a.is("as") => (e, Some(n.text)),
            [e @ .., n] if e.len() == 1 && n.kind == TokenKind::Word => (e, Some(n.text)),
            e => (e, None),
        };
        let column = match expr {
            [c] => c,
            [q, d, c]
                if d.kind == TokenKind::Dot && alias.as_deref().is_none_or(|a| q.text.eq_ignore_ascii_case(a)) =>
            {
                c
            }
            _ => continue,
        };
        if column.text == "*" {
            items.push(SelectItem::All);
        } else if column.kind == TokenKind::Word {
            items.push(SelectItem::Column {
                name: column.text.to_ascii_lowercase(),
                label: label.unwrap_or(column.text),
            });
        }
    }
    Some(SimpleSelect { schema, table: table.text.to_ascii_lowercase(), items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lexer::tokens;

    fn column<'a>(name: &str, label: &'a str) -> SelectItem<'a> {
        SelectItem::Column { name: name.into(), label }
    }

    #[test]
    fn simple_selects_are_read() {
        let t =
            tokens("SELECT id, Email Mail, u.Name AS n, u.*, lower(x), \"Q\", u.x y FROM Public.Users u WHERE id = 1");
        let s = simple_select(&t).expect("simple");
        assert_eq!(s.schema.as_deref(), Some("public"));
        assert_eq!(s.table, "users");
        // Expressions, quoted names and a qualified column with a bare label are left out.
        assert_eq!(s.items, vec![column("id", "id"), column("email", "Mail"), column("name", "n"), SelectItem::All]);
        let t = tokens("select * from t");
        let s = simple_select(&t).expect("simple");
        assert_eq!((s.schema, s.table.as_str(), s.items), (None, "t", vec![SelectItem::All]));
        // With an alias, the table's own name no longer qualifies its columns.
        let t = tokens("select t.a, x.b from t as x limit 1");
        assert_eq!(simple_select(&t).expect("simple").items, vec![column("b", "b")]);
    }

    #[test]
    fn other_statements_are_not_simple() {
        for sql in [
            "insert into t values (1)",
            "select 1",
            "select a from t join u on true",
            "select a from t, u",
            "select a from a.b.c",
            "select a from \"T\"",
            "select a from (select 1) s",
            "select a from",
        ] {
            assert_eq!(simple_select(&tokens(sql)), None, "{sql}");
        }
    }
}
