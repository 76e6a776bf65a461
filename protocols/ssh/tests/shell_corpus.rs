//! Runs every case of `fixtures/shell/corpus.txt` through the shell classifier and
//! reports all mismatches at once. The format is described at the top of the corpus.
//! An evasion case (`!!`) must come out held: something besides `read` and `write`.

use airlock_classes::{Class, Classes};
use airlock_ssh::shell::{analyze, classify};

/// A stand-in for the Postgres classifier: enough to see that psql's SQL reaches it.
fn sql(text: &str) -> Classes {
    let t = text.to_ascii_lowercase();
    let mut c = Classes::NONE;
    if t.contains("drop ") {
        c |= Classes::of(&[Class::Ddl, Class::Destructive]);
    }
    if t.contains("truncate") {
        c |= Class::Destructive.into();
    }
    if t.contains("insert") || t.contains("update") || t.contains("delete") {
        c |= Class::Write.into();
    }
    if t.contains("grant") {
        c |= Class::Privilege.into();
    }
    if t.contains("select") {
        c |= Class::Read.into();
    }
    if c.is_empty() { Class::Unknown.into() } else { c }
}

struct Case {
    line: usize,
    expect: String,
    evasion: bool,
    command: String,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut cs = s.chars();
    while let Some(c) = cs.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match cs.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = cs.by_ref().skip(1).take_while(|c| *c != '}').collect();
                out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('?'));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/shell/corpus.txt");
    let text = std::fs::read_to_string(path).expect("corpus file");
    let mut cases = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let (evasion, rest) = if let Some(r) = line.strip_prefix("== ") {
            (false, r)
        } else if let Some(r) = line.strip_prefix("!! ") {
            (true, r)
        } else {
            assert!(line.is_empty() || line.starts_with(";;"), "corpus line {}: stray {line:?}", i + 1);
            continue;
        };
        let (expect, escaped) = match rest.strip_suffix(" | escaped") {
            Some(e) => (e, true),
            None => (rest, false),
        };
        let mut body = Vec::new();
        while let Some((_, l)) = lines.next_if(|(_, l)| !l.is_empty()) {
            body.push(l);
        }
        let command = body.join("\n");
        let command = if escaped { unescape(&command) } else { command };
        cases.push(Case { line: i + 1, expect: expect.trim().to_string(), evasion, command });
    }
    cases
}

#[test]
fn corpus() {
    let cases = cases();
    let evasions = cases.iter().filter(|c| c.evasion).count();
    assert!(cases.len() >= 250, "only {} cases", cases.len());
    assert!(evasions >= 60, "only {evasions} evasion cases");
    let mut failures = Vec::new();
    for case in &cases {
        let analysis = analyze(&case.command, &sql);
        let got = analysis.classes.to_string();
        if got != case.expect {
            failures.push(format!(
                "line {}: {:?}\n    expected {}, got {got} ({:?}; {:?})",
                case.line,
                case.command,
                case.expect,
                analysis
                    .commands
                    .iter()
                    .map(|f| format!("{:?}: {} {}", f.argv, f.classes, f.reason))
                    .collect::<Vec<_>>(),
                analysis.error
            ));
        }
        // Only read and write run without approval: an evasion must be held.
        let held = |classes: &str| classes.split(',').any(|c| !matches!(c, "read" | "write"));
        if case.evasion && !(held(&case.expect) && held(&got)) {
            failures.push(format!("line {}: evasion {:?} would run unapproved", case.line, case.command));
        }
        assert_eq!(classify(&case.command, &sql), analysis.classes);
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
