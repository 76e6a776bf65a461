//! Every statement in `fixtures/sql/corpus.sql` gets exactly its expected classes.
#![allow(clippy::unwrap_used)]

use airlock_postgres::sql::{Class, Classes, classify, split};

const CORPUS: &str = include_str!("../../../fixtures/sql/corpus.sql");

fn cases() -> Vec<(Classes, String)> {
    let mut out: Vec<(Classes, String)> = Vec::new();
    for line in CORPUS.lines() {
        if let Some(expect) = line.strip_prefix("-- expect: ") {
            let classes =
                expect.split(',').map(|c| Class::parse(c.trim()).unwrap_or_else(|| panic!("unknown class {c}")));
            out.push((Classes::of(&classes.collect::<Vec<_>>()), String::new()));
        } else if let Some((_, text)) = out.last_mut()
            && !line.trim().is_empty()
        {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

#[test]
fn corpus_classifies_exactly() {
    let cases = cases();
    assert!(cases.len() >= 200, "corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for (expected, sql) in &cases {
        let got = split(sql).iter().fold(Classes::NONE, |acc, s| acc | classify(s));
        if got != *expected {
            failures.push(format!("{}\n    expected {expected}, got {got}", sql.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of {} misclassified:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
