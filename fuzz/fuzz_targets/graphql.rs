//! The GraphQL reader (`airlock_http::graphql`): the document lexer and parser behind
//! `select`, and the two request encodings `from_json_body` and `from_query_string`.
//!
//! - Never a panic, for documents, JSON bodies and query strings alike.
//! - One document, three encodings, one answer: the document sent as `{"query": D}`
//!   or as `query=D` (percent-encoded) runs exactly the operation `select(D, None)`
//!   names, or both are refused.
//! - An operation found by name is the one `select` found without it, and white
//!   space after a document changes nothing.
#![no_main]

use airlock_fuzz::Input;
use airlock_http::graphql::{self, Operation};
use libfuzzer_sys::fuzz_target;

fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => {
            let Ok(document) = std::str::from_utf8(input.rest()) else { return };
            let selected = graphql::select(document, None);
            let as_json = graphql::from_json_body(serde_json::json!({ "query": document }).to_string().as_bytes());
            let as_url = graphql::from_query_string(&format!("query={}", percent_encoded(document)));
            let one = |r: Result<Vec<Operation>, graphql::GraphqlError>| r.ok().and_then(|v| v.into_iter().next());
            assert_eq!(one(as_json), selected.clone().ok(), "the JSON body reads {document:?} otherwise");
            assert_eq!(one(as_url), selected.clone().ok(), "the query string reads {document:?} otherwise");
            if let Ok(op) = &selected {
                if let Some(name) = &op.name {
                    assert_eq!(graphql::select(document, Some(name)).as_ref(), Ok(op));
                }
                assert_eq!(graphql::select(&format!("{document} \n\t"), None).as_ref(), Ok(op));
                let _ = op.kind.class();
            }
        }
        1 => {
            let _ = graphql::from_json_body(input.rest());
        }
        _ => {
            let _ = graphql::from_query_string(&airlock_fuzz::text(input.rest()));
        }
    }
});
