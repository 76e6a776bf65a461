//! The shell lexer and classifier for SSH exec requests (`airlock_ssh::shell::analyze`,
//! with psql's SQL judged by the gateway's `judge::classify_sql`).
//!
//! - Fail closed: a line always gets a class; a line that could not be fully read
//!   (`error` set) is `unknown`; the line's classes include every command's own.
//! - No evasion by wrapping: a line the lexer reads, run by `sh -c '...'` or in a
//!   subshell `( ... )`, keeps every class it had (bar the `read` an empty line gets),
//!   unless it comes out `unknown`, which holds it anyway.
#![no_main]

use airlock::plugins::ssh::judge::classify_sql;
use airlock_classes::{Class, Classes};
use airlock_ssh::shell::{Analysis, analyze};
use libfuzzer_sys::fuzz_target;

fn check(line: &str) -> Analysis {
    let a = analyze(line, &classify_sql);
    assert!(!a.classes.is_empty(), "{line:?} has no class");
    if let Some(why) = &a.error {
        assert!(a.classes.contains(Class::Unknown), "{line:?} not understood ({why}) but not unknown");
    }
    for found in &a.commands {
        let missing = found.classes.iter().find(|c| !a.classes.contains(*c));
        assert!(missing.is_none(), "{line:?}: command {:?} is {:?}, the line lacks it", found.argv, missing);
    }
    a
}

/// Whether `wrapped` judges at least as strictly as `plain`.
fn at_least(wrapped: Classes, plain: Classes) -> bool {
    wrapped.contains(Class::Unknown) || plain.without(Class::Read).iter().all(|c| wrapped.contains(c))
}

fuzz_target!(|data: &[u8]| {
    let line = airlock_fuzz::text(data);
    let plain = check(&line);
    if plain.error.is_some() {
        // Wrapping text the lexer refused can make another, well-formed line of it
        // (`a \` then `\n)` is a line continuation): nothing to compare.
        return;
    }

    let quoted = format!("sh -c '{}'", line.replace('\'', r"'\''"));
    let by_sh = check(&quoted);
    assert!(
        at_least(by_sh.classes, plain.classes),
        "{line:?} is {:?}, but {quoted:?} is {:?}",
        plain.classes,
        by_sh.classes
    );

    if line.ends_with('\\') {
        // `gzip\` then `\n)` would be a line continuation: another command.
        return;
    }
    let grouped = format!("( {line}\n)");
    let in_subshell = check(&grouped);
    assert!(
        at_least(in_subshell.classes, plain.classes),
        "{line:?} is {:?}, but {grouped:?} is {:?}",
        plain.classes,
        in_subshell.classes
    );
});
