//! The SQL lexer and statement splitter (`airlock_postgres::sql::lexer`, `split`),
//! under both settings of `standard_conforming_strings`.
//!
//! Lexer: tokens are non-empty, in order, non-overlapping, each the input's own text
//! at its offset; what lies between two tokens lexes to nothing (white space and
//! comments only); an `Unterminated` token can only be the last and runs to the end.
//! When `depends_on_dialect` says no, both dialects cut alike.
//!
//! Splitter (`split_with`): it drops only what separates statements. Exactly:
//! - each statement's `text` is `sql[offset..offset + text.len()]`, from its first
//!   token to the end of its last; statements are in order and never overlap;
//! - the statements' tokens, concatenated, are the lexer's tokens of the whole input
//!   with some `;` tokens removed: every token that is not a `;` lands in exactly
//!   one statement, in order;
//! - every gap between statements (and before the first, after the last) lexes to
//!   `;` tokens only; so `sql` is the gaps and statement texts concatenated, and the
//!   gaps hold nothing but white space, comments and semicolons;
//! - no statement is empty, and a statement's text splits again into itself.
#![no_main]

use airlock_postgres::sql::lexer::{self, Dialect, Token, TokenKind};
use airlock_postgres::sql::split_with;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sql = airlock_fuzz::text(data);
    let sql = sql.as_ref();
    let standard = check_lexer(sql, Dialect::STANDARD);
    let backslash = check_lexer(sql, Dialect::BACKSLASH_QUOTES);
    if !lexer::depends_on_dialect(sql) {
        assert_eq!(standard, backslash, "the dialects cut differently, but depends_on_dialect says no");
    }
    for dialect in [Dialect::STANDARD, Dialect::BACKSLASH_QUOTES] {
        check_split(sql, dialect);
    }
});

fn check_lexer(sql: &str, dialect: Dialect) -> Vec<Token<'_>> {
    let tokens = lexer::tokens_with(sql, dialect);
    let mut end = 0;
    for (i, t) in tokens.iter().enumerate() {
        assert!(!t.text.is_empty(), "empty token at {}", t.offset);
        assert!(t.offset >= end, "tokens overlap at {}", t.offset);
        assert_eq!(sql.get(t.offset..t.offset + t.text.len()), Some(t.text), "token text is not the input's");
        let between = &sql[end..t.offset];
        assert!(lexer::tokens_with(between, dialect).is_empty(), "{between:?} between tokens holds a token");
        if t.kind == TokenKind::Unterminated {
            assert_eq!(i, tokens.len() - 1, "a token after an unterminated one");
            assert_eq!(t.offset + t.text.len(), sql.len(), "an unterminated token stops before the end");
        }
        end = t.offset + t.text.len();
    }
    assert!(lexer::tokens_with(&sql[end..], dialect).is_empty(), "the tail holds a token");
    tokens
}

fn check_split(sql: &str, dialect: Dialect) {
    let all = lexer::tokens_with(sql, dialect);
    let statements = split_with(sql, dialect);
    let mut end = 0;
    let mut next = 0; // index into `all`
    for s in &statements {
        assert!(!s.tokens.is_empty() && !s.text.is_empty(), "an empty statement");
        assert!(s.offset >= end, "statements overlap or are out of order");
        assert_eq!(sql.get(s.offset..s.offset + s.text.len()), Some(s.text));
        let (first, last) = (s.tokens[0], s.tokens[s.tokens.len() - 1]);
        assert_eq!(first.offset, s.offset);
        assert_eq!(last.offset + last.text.len(), s.offset + s.text.len());
        let gap = &sql[end..s.offset];
        assert!(only_semicolons(gap, dialect), "gap {gap:?} holds more than `;`");
        for t in &s.tokens {
            // Skip the separators the split dropped; anything else must be this token.
            while all.get(next).is_some_and(|a| a.kind == TokenKind::Semicolon && a.offset < t.offset) {
                next += 1;
            }
            assert_eq!(all.get(next), Some(t), "a token was lost or reordered");
            next += 1;
        }
        let again = split_with(s.text, dialect);
        assert_eq!(again.len(), 1, "{:?} splits again into {} statements", s.text, again.len());
        assert_eq!(again[0].text, s.text);
        assert_eq!(texts(&again[0].tokens), texts(&s.tokens));
        end = s.offset + s.text.len();
    }
    assert!(all[next..].iter().all(|t| t.kind == TokenKind::Semicolon), "tokens after the last statement");
    assert!(only_semicolons(&sql[end..], dialect), "the tail holds more than `;`");
}

/// Tokens without their offsets.
fn texts<'a>(tokens: &[Token<'a>]) -> Vec<(TokenKind, &'a str)> {
    tokens.iter().map(|t| (t.kind, t.text)).collect()
}

fn only_semicolons(text: &str, dialect: Dialect) -> bool {
    lexer::tokens_with(text, dialect).iter().all(|t| t.kind == TokenKind::Semicolon)
}
