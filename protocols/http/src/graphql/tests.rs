use proptest::prelude::*;

use super::*;

fn op(kind: OperationKind, name: Option<&str>) -> Operation {
    Operation { kind, name: name.map(str::to_string), fields: Vec::new(), aliased: false }
}

/// The tests below compare kinds and names; fields and aliases have their own.
fn bare(op: Operation) -> Operation {
    Operation { fields: Vec::new(), aliased: false, ..op }
}

fn select(document: &str, operation_name: Option<&str>) -> Result<Operation, GraphqlError> {
    super::select(document, operation_name).map(bare)
}

fn from_json_body(body: &[u8]) -> Result<Vec<Operation>, GraphqlError> {
    super::from_json_body(body).map(|ops| ops.into_iter().map(bare).collect())
}

fn from_query_string(query: &str) -> Result<Vec<Operation>, GraphqlError> {
    super::from_query_string(query).map(|ops| ops.into_iter().map(bare).collect())
}

#[test]
fn an_operation_names_the_fields_it_runs_whatever_it_is_called() {
    let op = super::select("mutation cleanup { d: deleteRepository(id: 1) { id } ...F ... on Mutation { other } } fragment F on Mutation { viaFragment }", None).unwrap();
    assert_eq!(op.fields, ["deleteRepository", "other", "viaFragment"]);
    assert!(op.aliased);
    let plain = super::select("query { viewer { login } }", None).unwrap();
    assert_eq!((plain.fields.as_slice(), plain.aliased), (&["viewer".to_owned()][..], false));
    assert_eq!(super::select("{ ...Missing }", None), Err(GraphqlError::UnknownFragment("Missing".into())));
}

fn query(name: Option<&str>) -> Operation {
    op(OperationKind::Query, name)
}

fn mutation(name: Option<&str>) -> Operation {
    op(OperationKind::Mutation, name)
}

#[track_caller]
fn syntax_error(document: &str) {
    match select(document, None) {
        Err(GraphqlError::Syntax { .. }) => {}
        other => panic!("{document:?}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn kinds_name_their_keyword_and_class() {
    assert_eq!(OperationKind::Query.as_str(), "query");
    assert_eq!(OperationKind::Mutation.as_str(), "mutation");
    assert_eq!(OperationKind::Subscription.as_str(), "subscription");
    assert_eq!(OperationKind::Query.class(), Class::Read);
    assert_eq!(OperationKind::Subscription.class(), Class::Read);
    assert_eq!(OperationKind::Mutation.class(), Class::Write);
}

#[test]
fn a_shorthand_selection_set_is_an_anonymous_query() {
    assert_eq!(select("{ me { id } }", None), Ok(query(None)));
}

#[test]
fn each_operation_type_is_read_with_its_name() {
    assert_eq!(select("query Q { a }", None), Ok(query(Some("Q"))));
    assert_eq!(select("mutation M { a }", None), Ok(mutation(Some("M"))));
    assert_eq!(select("subscription { a }", None), Ok(op(OperationKind::Subscription, None)));
    assert_eq!(select("query query { a }", None), Ok(query(Some("query"))));
}

#[test]
fn a_full_operation_with_every_construct_parses() {
    let document = r#"
        query Feed($first: Int! = 10, $after: [String!]! @deprecated(reason: "x"), $f: Float = -1.5e3)
            @live(if: true) {
          viewer { ...User }
          alias: feed(first: $first, after: $after, filter: {tags: ["a", "b"], any: null, kind: ENUM}) @include(if: $f) {
            edges { node { id ... on Post { title } ... @skip(if: false) { body } } }
          }
        }
        fragment User on User @dir { id, name }
    "#;
    assert_eq!(select(document, None), Ok(query(Some("Feed"))));
}

#[test]
fn operation_name_picks_a_mutation_among_queries() {
    let document = "query A { a } mutation B { drop } query C { c }";
    assert_eq!(select(document, Some("B")), Ok(mutation(Some("B"))));
    assert_eq!(select(document, Some("A")), Ok(query(Some("A"))));
}

#[test]
fn several_operations_without_operation_name_are_an_error() {
    assert_eq!(select("query A { a } mutation B { b }", None), Err(GraphqlError::OperationNameRequired));
}

#[test]
fn operation_name_must_match_an_operation() {
    assert_eq!(select("query A { a }", Some("B")), Err(GraphqlError::UnknownOperation("B".into())));
    assert_eq!(select("{ a }", Some("A")), Err(GraphqlError::UnknownOperation("A".into())));
    assert_eq!(select("query A { a }", Some("")), Err(GraphqlError::UnknownOperation("".into())));
    assert_eq!(select("query A { a }", Some("a")), Err(GraphqlError::UnknownOperation("a".into())));
}

#[test]
fn two_operations_with_one_name_are_an_error() {
    let document = "query A { a } mutation A { drop }";
    assert_eq!(select(document, Some("A")), Err(GraphqlError::DuplicateOperation("A".into())));
    assert_eq!(select(document, None), Err(GraphqlError::DuplicateOperation("A".into())));
}

#[test]
fn an_anonymous_operation_beside_another_is_an_error() {
    for document in
        ["{ a } mutation M { drop }", "mutation M { drop } { a }", "{ a } { b }", "query { a } query B { b }"]
    {
        assert_eq!(select(document, Some("M")), Err(GraphqlError::AnonymousNotAlone), "{document}");
        assert_eq!(select(document, None), Err(GraphqlError::AnonymousNotAlone), "{document}");
    }
}

#[test]
fn fragments_are_not_operations() {
    assert_eq!(select("fragment F on T { a }", None), Err(GraphqlError::NoOperation));
    assert_eq!(select("fragment F on T { a } mutation { ...F }", None), Ok(mutation(None)));
    syntax_error("fragment on on T { a } { a }");
    syntax_error("fragment F { a } { a }");
}

#[test]
fn keywords_are_case_sensitive() {
    syntax_error("Mutation { drop }");
    syntax_error("MUTATION M { drop }");
    syntax_error("Query { a }");
}

#[test]
fn brackets_inside_strings_do_not_count() {
    let document = r#"query Q { a(s: "} } mutation M { drop } {") b(t: "]\"[)") }"#;
    assert_eq!(select(document, None), Ok(query(Some("Q"))));
}

#[test]
fn brackets_inside_block_strings_do_not_count_and_escaped_quotes_do_not_end_them() {
    let document = "query Q { a(s: \"\"\"\n } \\\"\"\" mutation { drop } \" \"\" \n\"\"\") }";
    assert_eq!(select(document, None), Ok(query(Some("Q"))));
    syntax_error("query Q { a(s: \"\"\" \\\"\"\" ) }");
}

#[test]
fn brackets_inside_comments_do_not_count() {
    assert_eq!(select("query Q { a # } mutation M { drop }\n }", None), Ok(query(Some("Q"))));
}

#[test]
fn a_comment_ends_at_a_lone_carriage_return() {
    // `\r` alone is a line terminator: what follows it is not part of the comment.
    assert_eq!(select("# query\rmutation { drop }", None), Ok(mutation(None)));
    assert_eq!(select("# query\r\nmutation { drop }", None), Ok(mutation(None)));
    assert_eq!(select("query Q { a # }\r}", None), Ok(query(Some("Q"))));
}

#[test]
fn a_mutation_after_a_comment_is_still_a_mutation() {
    assert_eq!(select("# query\nmutation { drop }", None), Ok(mutation(None)));
    assert_eq!(select("#query {a}\nmutation M { drop }", Some("M")), Ok(mutation(Some("M"))));
}

#[test]
fn a_byte_order_mark_commas_and_tabs_are_ignored() {
    assert_eq!(select("\u{FEFF}mutation M { drop }", None), Ok(mutation(Some("M"))));
    assert_eq!(select(",,mutation,M,{,a,b\t}\u{FEFF},", None), Ok(mutation(Some("M"))));
}

#[test]
fn other_unicode_white_space_is_not_ignored() {
    for document in ["\u{A0}{ a }", "{ a\u{2028}}", "{ a \u{3000} }", "\u{B}{ a }", "{ a }\0"] {
        syntax_error(document);
    }
}

#[test]
fn unicode_escapes_in_strings_are_checked() {
    let ok = [r#"\u0041"#, r#"\u{1F600}"#, r#"\u{0}"#, r#"\u{10FFFF}"#, r#"\u{0000041}"#, r#"\uD83D\uDE00"#, "é\u{1}"];
    for s in ok {
        let document = format!("{{ a(s: \"{s}\") }}");
        assert_eq!(select(&document, None), Ok(query(None)), "{document}");
    }
    let bad = [
        r#"\u004"#,
        r#"\u{}"#,
        r#"\u{110000}"#,
        r#"\u{FFFFFFFFFFFF}"#,
        r#"\u{D800}"#,
        r#"\uD83D"#,
        r#"\uD83Dx"#,
        r#"\uD83D\u0041"#,
        r#"\uDE00"#,
        r#"\u{D83D}\u{DE00}"#,
        r#"\x41"#,
        r#"\'"#,
        r#"\u{41"#,
    ];
    for s in bad {
        syntax_error(&format!("{{ a(s: \"{s}\") }}"));
    }
}

#[test]
fn strings_must_end_on_their_line() {
    syntax_error("{ a(s: \"open\n\") }");
    syntax_error("{ a(s: \"open\r\") }");
    syntax_error("{ a(s: \"never closed) }");
    syntax_error("{ a(s: \"\"\"never closed) }");
    syntax_error("{ a(s: \"ends in a backslash\\");
}

#[test]
fn numbers_follow_the_spec_lexical_rules() {
    for value in ["0", "-0", "123", "-1.5", "1e10", "1.5E-3", "2e+2"] {
        assert_eq!(select(&format!("{{ a(n: {value}) }}"), None), Ok(query(None)), "{value}");
    }
    for value in ["0123", "00", "1.", ".5", "1.e5", "1e", "1e+", "-", "--1", "1x", "1.5.3", "1_000", "0x10", "1.5e3e"] {
        syntax_error(&format!("{{ a(n: {value}) }}"));
    }
}

#[test]
fn type_system_definitions_are_refused() {
    for document in [
        "type Query { a: Int }",
        "schema { query: Q }",
        "extend type Query { b: Int }",
        "directive @d on FIELD",
        "\"description\" type T { a: Int }",
        "{ a } scalar Date",
    ] {
        assert!(matches!(select(document, None), Err(GraphqlError::TypeSystem(_))), "{document}");
    }
}

#[test]
fn damaged_documents_are_syntax_errors() {
    for document in [
        "",
        "   # only a comment",
        "{ }",
        "{ a",
        "{ a } }",
        "{ a ] }",
        "query Q ( ) { a }",
        "query Q($v) { a }",
        "query Q($v: ) { a }",
        "query Q($v: [Int) { a }",
        "query Q($v: Int!!) { a }",
        "query Q($v: Int = $w) { a }",
        "query Q($v: Int @d(x: $w)) { a }",
        "query Q { a() }",
        "query Q { a(x) }",
        "query Q { a(x: ) }",
        "query Q { a(x: {y}) }",
        "query Q { b: }",
        "query Q { ... }",
        "query Q { ... on { a } }",
        "query Q { a @ }",
        "query Q { a } extra",
        "query Q",
        "mutation",
        "{ a } 5",
        "..{ a }",
        "{ a . b }",
        "{ a & b }",
        "{ a | b }",
        "query Q { a(x: 1 2) } }",
        "{ a(x: [1, {b: $c}]) } ]",
    ] {
        match select(document, None) {
            Err(GraphqlError::Syntax { .. }) => {}
            other => panic!("{document:?}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn syntax_errors_name_the_line_and_column() {
    let err = select("query Q {\r\n  a(x: 0123)\r  b\n}", None).unwrap_err();
    assert_eq!(
        err,
        GraphqlError::Syntax {
            at: Pos { line: 2, column: 9 },
            what: "a number must not be followed by a digit, `.` or a name"
        }
    );
    assert_eq!(
        err.to_string(),
        "GraphQL syntax error at line 2, column 9: a number must not be followed by a digit, `.` or a name"
    );
    let err = select("{ é: x }", None).unwrap_err();
    assert!(matches!(err, GraphqlError::Syntax { at: Pos { line: 1, column: 3 }, .. }), "{err:?}");
}

#[test]
fn nesting_is_capped() {
    let deep = |n: usize| format!("{}a{}", "{ a ".repeat(n), " }".repeat(n));
    assert_eq!(select(&deep(MAX_DEPTH), None), Ok(query(None)));
    assert!(matches!(select(&deep(MAX_DEPTH + 1), None), Err(GraphqlError::TooDeep(_))));
    let list = |n: usize| format!("{{ a(x: {}1{}) }}", "[".repeat(n), "]".repeat(n));
    assert_eq!(select(&list(MAX_DEPTH - 2), None), Ok(query(None)));
    assert!(matches!(select(&list(MAX_DEPTH), None), Err(GraphqlError::TooDeep(_))));
    for unclosed in ["{ a ".repeat(100_000), format!("{{ a(x: {}", "[".repeat(100_000))] {
        assert!(matches!(select(&unclosed, None), Err(GraphqlError::TooDeep(_))));
    }
}

#[test]
fn long_documents_are_refused() {
    let long = format!("{{ a }}{}", " ".repeat(MAX_DOCUMENT));
    assert_eq!(select(&long, None), Err(GraphqlError::TooLong(MAX_DOCUMENT + 5)));
}

#[test]
fn a_json_body_names_its_operation() {
    let body =
        br#"{"query": "query A { a } mutation B { b }", "operationName": "B", "variables": {"x": [1, {"y": null}]}}"#;
    assert_eq!(from_json_body(body), Ok(vec![mutation(Some("B"))]));
    let body = br#"{"query": "mutation { b }", "operationName": null, "extensions": {}, "other": 1}"#;
    assert_eq!(from_json_body(body), Ok(vec![mutation(None)]));
}

#[test]
fn a_batch_gives_one_operation_per_request() {
    let body = br#"[{"query": "{ a }"}, {"query": "mutation M { b }", "operationName": "M"}]"#;
    assert_eq!(from_json_body(body), Ok(vec![query(None), mutation(Some("M"))]));
}

#[test]
fn batches_must_hold_one_to_a_hundred_requests() {
    assert_eq!(from_json_body(b"[]"), Err(GraphqlError::EmptyBatch));
    let batch = |n: usize| format!("[{}]", vec![r#"{"query": "{ a }"}"#; n].join(","));
    assert_eq!(from_json_body(batch(MAX_BATCH).as_bytes()).map(|ops| ops.len()), Ok(MAX_BATCH));
    assert_eq!(from_json_body(batch(MAX_BATCH + 1).as_bytes()), Err(GraphqlError::BatchTooLarge));
    let broken = format!("{}, oops]", batch(MAX_BATCH + 1).trim_end_matches(']'));
    assert!(matches!(from_json_body(broken.as_bytes()), Err(GraphqlError::Json(_))));
}

#[test]
fn a_key_given_twice_is_refused_however_it_is_spelled() {
    let body = br#"{"query": "{ a }", "query": "mutation { b }"}"#;
    assert_eq!(from_json_body(body), Err(GraphqlError::DuplicateKey("query".into())));
    let body = br#"{"query": "{ a }", "qu\u0065ry": "mutation { b }"}"#;
    assert_eq!(from_json_body(body), Err(GraphqlError::DuplicateKey("query".into())));
    let body = br#"{"query": "query A { a } mutation B { b }", "operationName": "A", "operationName": "B"}"#;
    assert_eq!(from_json_body(body), Err(GraphqlError::DuplicateKey("operationName".into())));
    let body = br#"[{"query": "{ a }"}, {"query": "{ a }", "variables": 1, "variables": 2}]"#;
    assert_eq!(from_json_body(body), Err(GraphqlError::DuplicateKey("variables".into())));
}

#[test]
fn the_query_must_be_a_string() {
    assert_eq!(from_json_body(br#"{"query": 1}"#), Err(GraphqlError::QueryNotString));
    assert_eq!(from_json_body(br#"{"query": ["{ a }"]}"#), Err(GraphqlError::QueryNotString));
    assert_eq!(from_json_body(br#"{"query": null}"#), Err(GraphqlError::NoQuery));
    assert_eq!(from_json_body(br#"{"variables": {}}"#), Err(GraphqlError::NoQuery));
    assert_eq!(from_json_body(br#"{"query": "{ a }", "operationName": 5}"#), Err(GraphqlError::OperationNameNotString));
}

#[test]
fn persisted_queries_without_a_document_are_refused() {
    let body = br#"{"operationName": "Q", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}"#;
    assert_eq!(from_json_body(body), Err(GraphqlError::PersistedQuery));
    let body = br#"{"query": "{ a }", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}"#;
    assert_eq!(from_json_body(body), Ok(vec![query(None)]));
}

#[test]
fn bodies_that_are_not_json_requests_are_refused() {
    for body in [
        &b""[..],
        b"query { a }",
        b"\"{ a }\"",
        b"{\"query\": \"{ a }\",}",
        b"{\"query\": \"{ a }\"} x",
        b"[{\"query\": \"{ a }\"}, 1]",
        b"{\"query\": \"\\ud800\"}",
        b"{\"query\": \"\xff\"}",
        b"\xef\xbb\xbf{\"query\": \"{ a }\"}",
    ] {
        assert!(matches!(from_json_body(body), Err(GraphqlError::Json(_))), "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn a_body_document_error_is_the_document_error() {
    assert!(matches!(from_json_body(br#"{"query": "{ a "}"#), Err(GraphqlError::Syntax { .. })));
}

#[test]
fn a_query_string_is_form_decoded() {
    let q = "query=query+A+%7B+a+%7D+mutation+B%7Bb%7D&operationName=B&variables=%7B%7D";
    assert_eq!(from_query_string(q), Ok(vec![mutation(Some("B"))]));
    assert_eq!(from_query_string("query=%7Ba%7D"), Ok(vec![query(None)]));
    // `+` is a space, so `a+b` is two fields, not a name with a `+`.
    assert_eq!(from_query_string("query={a+b}&&"), Ok(vec![query(None)]));
}

#[test]
fn a_query_string_without_query_says_so() {
    assert_eq!(from_query_string(""), Err(GraphqlError::NoQuery));
    assert_eq!(from_query_string("operationName=A"), Err(GraphqlError::NoQuery));
    assert_eq!(from_query_string("extensions=%7B%22persistedQuery%22%3A%7B%7D%7D"), Err(GraphqlError::PersistedQuery));
}

#[test]
fn a_parameter_given_twice_is_refused_however_it_is_spelled() {
    let cases = [
        ("query=%7Ba%7D&query=mutation%7Bb%7D", "query"),
        ("query=%7Ba%7D&%71uery=mutation%7Bb%7D", "query"),
        ("query=query+A%7Ba%7Dmutation+B%7Bb%7D&operationName=A&operationName=B", "operationName"),
        ("query=%7Ba%7D&x=1&x=2", "x"),
    ];
    for (q, name) in cases {
        assert_eq!(from_query_string(q), Err(GraphqlError::DuplicateParameter(name.into())), "{q}");
    }
}

#[test]
fn a_query_string_with_bad_encoding_or_separators_is_refused() {
    for q in ["query=%7Ba%7", "query=%zz", "query=%ff", "x=%c3&query=%7Ba%7D"] {
        assert_eq!(from_query_string(q), Err(GraphqlError::BadEncoding), "{q}");
    }
    assert_eq!(from_query_string("query=%7Ba%7D;query=mutation%7Bb%7D"), Err(GraphqlError::AmbiguousSeparator(';')));
    assert_eq!(from_query_string("query=%7Ba%7D#x"), Err(GraphqlError::AmbiguousSeparator('#')));
    assert_eq!(
        GraphqlError::AmbiguousSeparator(';').to_string(),
        "GraphQL query string contains ';'; encode it as %3B"
    );
}

proptest! {
    #[test]
    fn any_text_is_read_without_panicking(document in "\\PC{0,200}", name in proptest::option::of("[A-Za-z]{0,3}")) {
        let _ = select(&document, name.as_deref());
    }

    #[test]
    fn any_graphql_like_text_is_read_without_panicking(
        document in proptest::collection::vec(
            prop_oneof![
                Just("{"), Just("}"), Just("("), Just(")"), Just("["), Just("]"), Just("\""), Just("\"\"\""),
                Just("\\"), Just("\\u"), Just("#"), Just("\r"), Just("\n"), Just("..."), Just("."), Just("$"),
                Just(":"), Just("@"), Just("!"), Just("="), Just("query"), Just("mutation"), Just("on"),
                Just("fragment"), Just("a"), Just("0"), Just("-1.5e3"), Just(" "), Just(","), Just("\u{FEFF}"),
            ],
            0..60,
        )
    ) {
        let _ = select(&document.concat(), None);
    }

    #[test]
    fn any_bytes_as_a_body_or_query_string_are_read_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = from_json_body(&body);
        let _ = from_query_string(&String::from_utf8_lossy(&body));
    }
}
