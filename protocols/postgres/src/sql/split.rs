//! Splitting a Simple Query string into statements at top-level semicolons.
//!
//! Semicolons inside strings, comments, quoted identifiers and dollar quotes do not
//! count (the lexer keeps those whole), nor do those inside SQL-standard function
//! bodies (`BEGIN ATOMIC ... END`), which the server parses as one statement.

#[cfg(test)]
use super::lexer::tokens;
use super::lexer::{Dialect, Token, TokenKind, tokens_with};

/// One statement of a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement's text, from its first token to its last (no `;`).
    pub text: &'a str,
    /// Byte offset of `text` in the query string.
    pub offset: usize,
    /// Its tokens.
    pub tokens: Vec<Token<'a>>,
}

/// Splits `sql` into its statements; empty statements (`;;`) are dropped.
pub fn split(sql: &str) -> Vec<Statement<'_>> {
    split_with(sql, Dialect::STANDARD)
}

/// Splits `sql` as a server with these settings would.
pub fn split_with(sql: &str, dialect: Dialect) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    let mut current: Vec<Token<'_>> = Vec::new();
    // Depth of BEGIN ATOMIC bodies, and CASE ... END within them.
    let mut atomic = 0usize;
    let all = tokens_with(sql, dialect);
    for (i, t) in all.iter().enumerate() {
        if t.kind == TokenKind::Semicolon && atomic == 0 {
            flush(sql, &mut current, &mut out);
            continue;
        }
        let opens_body = t.is("atomic") && i > 0 && all[i - 1].is("begin");
        if opens_body || (atomic > 0 && t.is("case")) {
            atomic += 1;
        } else if atomic > 0 && t.is("end") {
            atomic -= 1;
        }
        current.push(*t);
    }
    flush(sql, &mut current, &mut out);
    out
}

fn flush<'a>(sql: &'a str, current: &mut Vec<Token<'a>>, out: &mut Vec<Statement<'a>>) {
    if let (Some(first), Some(last)) = (current.first(), current.last()) {
        let (start, end) = (first.offset, last.offset + last.text.len());
        out.push(Statement { text: &sql[start..end], offset: start, tokens: std::mem::take(current) });
    }
    current.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_like_the_server() {
        assert_eq!(texts("select 1; select 2;"), vec!["select 1", "select 2"]);
        assert_eq!(
            texts("select ';'; select $$;$$ ;; -- x;\n select /* ; */ 3"),
            vec!["select ';'", "select $$;$$", "select /* ; */ 3"]
        );
        assert_eq!(
            texts(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END; DROP TABLE t"
            ),
            vec![
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END",
                "DROP TABLE t"
            ]
        );
        assert!(split(" ; -- nothing\n").is_empty());
    }

    proptest! {
        /// Statements come out in order, never overlap, and everything between them is
        /// whitespace, comments or semicolons: no text is lost or reordered.
        #[test]
        fn splitting_never_loses_or_reorders_text(parts in proptest::collection::vec(
            prop_oneof![
                Just("select 1"), Just("'a;b'"), Just("$$;$$"), Just("/* ; */"), Just("-- ;\n"),
                Just(";"), Just(" "), Just("drop table t"), Just("\"x;\""), Just("E'\\\\';'"),
            ], 0..20)) {
            let sql: String = parts.concat();
            let mut end = 0;
            for s in split(&sql) {
                prop_assert!(s.offset >= end);
                let gap = &sql[end..s.offset];
                prop_assert!(gap_is_insignificant(gap), "gap {gap:?} in {sql:?}");
                prop_assert_eq!(&sql[s.offset..s.offset + s.text.len()], s.text);
                end = s.offset + s.text.len();
            }
            prop_assert!(gap_is_insignificant(&sql[end..]), "tail in {sql:?}");
        }
    }

    fn gap_is_insignificant(gap: &str) -> bool {
        tokens(gap).iter().all(|t| t.kind == TokenKind::Semicolon)
    }
}
