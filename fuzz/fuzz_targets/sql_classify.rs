//! The SQL classifier (`airlock_postgres::sql::classify`) and the readers that work on
//! its tokens (`copy_source`, `simple_select`, `written_relation`, `calls_only_reads`),
//! on every statement of the input, under both dialects.
//!
//! - Fail closed: every statement gets at least one class, and one with a token that
//!   never ends is exactly `unknown`.
//! - A catalog only vouches: classifying with one that trusts every function gives a
//!   subset of the classes without one, differing at most by `unknown`; classifying
//!   with the empty catalog is `classify` itself.
//! - What the SSH gateway hands psql's SQL to (`judge::classify_sql`) is never empty.
#![no_main]

use airlock_classes::{Class, Classes};
use airlock_postgres::sql::lexer::{Dialect, TokenKind};
use airlock_postgres::sql::{self, NoCatalog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = airlock_fuzz::text(data);
    let text = text.as_ref();
    let trust_all = |_: Option<&str>, _: &str| true;
    for dialect in [Dialect::STANDARD, Dialect::BACKSLASH_QUOTES] {
        for statement in sql::split_with(text, dialect) {
            let classes = sql::classify(&statement);
            assert!(!classes.is_empty(), "{:?} has no class", statement.text);
            if statement.tokens.iter().any(|t| t.kind == TokenKind::Unterminated) {
                assert_eq!(classes, Classes::of(&[Class::Unknown]));
            }
            assert_eq!(sql::classify_trusting(&statement, &NoCatalog), classes);
            let trusted = sql::classify_trusting(&statement, &trust_all);
            assert_eq!(
                trusted.without(Class::Unknown),
                classes.without(Class::Unknown),
                "trusting functions changed more than `unknown` for {:?}",
                statement.text
            );
            assert!(
                classes.contains(Class::Unknown) || trusted == classes,
                "trusting functions added a class to {:?}",
                statement.text
            );
            let _ = sql::select::simple_select(&statement.tokens);
            let _ = sql::written_relation(&statement.tokens);
        }
    }
    let _ = airlock_postgres::copy::copy_source(text);
    let _ = sql::calls_only_reads(text);
    assert!(!airlock::plugins::ssh::judge::classify_sql(text).is_empty());
});
