//! The request corpora in `fixtures/http/` are well-formed and as large as promised.

use std::collections::HashSet;

use airlock_http::corpus::{check_corpus, unescape_corpus};

fn fixture(name: &str) -> String {
    let path = format!("{}/../../fixtures/http/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_smuggling_corpus_has_at_least_45_well_formed_cases() {
    let text = fixture("smuggling.txt");
    assert_eq!(check_corpus(&text), Ok(()));
    let cases = unescape_corpus(&text);
    assert!(cases.len() >= 45, "{} cases", cases.len());
    for (name, request) in &cases {
        assert!(
            name == "request-line-target-not-a-path" || contains(request, b"/api/echo"),
            "{name} goes to /api/echo"
        );
        assert!(name.starts_with("host-") || contains(request, b": upstream"), "{name} has Host: upstream");
    }
}

#[test]
fn a_case_is_exactly_the_bytes_its_escapes_spell() {
    let cases = unescape_corpus(&fixture("smuggling.txt"));
    let bytes = |name: &str| cases.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone());
    assert_eq!(
        bytes("chunk-line-bare-cr").as_deref(),
        Some(&b"POST /api/echo HTTP/1.1\r\nHost: upstream\r\nTransfer-Encoding: chunked\r\n\r\n2\r\r;a\r\nxx\r\n0\r\n\r\n"[..])
    );
    assert_eq!(
        bytes("host-non-ascii").as_deref(),
        Some(&b"GET /api/echo HTTP/1.1\r\nHost: \xffupstream\xff\r\n\r\n"[..])
    );
}

#[test]
fn the_benign_corpus_has_10_well_formed_cases() {
    let text = fixture("benign.txt");
    assert_eq!(check_corpus(&text), Ok(()));
    let cases = unescape_corpus(&text);
    assert_eq!(cases.len(), 10);
    for (name, request) in &cases {
        assert!(contains(request, b" /api/echo"), "{name}");
        assert!(contains(request, b"\r\n\r\n"), "{name} ends its head");
        assert!(!request.iter().any(|&b| b == 0 || b >= 0x7f), "{name} is plain ASCII");
    }
}

#[test]
fn case_names_are_unique_across_both_corpora() {
    let mut names = HashSet::new();
    for file in ["smuggling.txt", "benign.txt"] {
        for (name, _) in unescape_corpus(&fixture(file)) {
            assert!(names.insert(name.clone()), "{name} appears twice");
        }
    }
}
