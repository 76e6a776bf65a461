use proptest::prelude::*;
use serde_json::Value;

use super::*;

/// Masks selected values as `"[MASKED]"`, `sk_live_...` tokens inside strings as
/// `[SECRET]` and the number 4111111111111111 as `[CARD]`, and remembers what it was
/// asked.
#[derive(Default)]
struct Detector {
    wholes: Vec<(String, String)>,
    texts: Vec<String>,
}

impl JsonMasker for Detector {
    fn whole(&mut self, raw: &[u8], why: Why<'_>) -> Vec<u8> {
        let why = match why {
            Why::Path(p) => format!("path {p}"),
            Why::Key(k) => format!("key {k}"),
        };
        self.wholes.push((String::from_utf8_lossy(raw).into_owned(), why));
        b"\"[MASKED]\"".to_vec()
    }

    fn text(&mut self, text: &str) -> Option<String> {
        self.texts.push(text.to_string());
        if text == "4111111111111111" {
            return Some("[CARD]".into());
        }
        let at = text.find("sk_live_")?;
        let end = text[at + 8..].find(|c: char| !c.is_ascii_alphanumeric()).map_or(text.len(), |n| at + 8 + n);
        Some(format!("{}[SECRET]{}", &text[..at], &text[end..]))
    }
}

fn rules(paths: &[&str], keys: &[&str]) -> JsonRules {
    JsonRules {
        paths: paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect(),
        keys: keys.iter().map(|k| KeyGlob::parse(k).unwrap()).collect(),
    }
}

/// The masked text of `input` and the detector that masked it.
fn masked(input: &str, rules: &JsonRules) -> (String, Detector) {
    let mut d = Detector::default();
    let out = mask(input.as_bytes(), rules, &mut d).unwrap();
    (String::from_utf8(out.bytes).unwrap(), d)
}

#[test]
fn with_nothing_to_mask_the_output_is_the_input() {
    let input =
        "\r\n {\"b\" :1.0E+2,\"a\":[ -0, 0.5e-3, true,false ,null],\n\t\"b\": \"dup \\/ \\u00e9 é\\n\", \"\":{}}\n ";
    let mut d = Detector::default();
    let out = mask(input.as_bytes(), &rules(&["$.zzz", "$..nothing"], &["*token*"]), &mut d).unwrap();
    assert_eq!(out, Masked { bytes: input.as_bytes().to_vec(), masked: 0 });
    assert_eq!(d.texts, ["b", "1.0E+2", "a", "-0", "0.5e-3", "b", "dup / é é\n", ""]);
}

#[test]
fn keys_spelled_with_escapes_are_still_matched() {
    let input = r#"{"pass\u0077ord": "hunter2", "a": {"PASSWORD": 1, "x": "pass\u0077ord"}}"#;
    let (out, d) = masked(input, &rules(&[], &["password"]));
    assert_eq!(out, r#"{"pass\u0077ord": "[MASKED]", "a": {"PASSWORD": "[MASKED]", "x": "pass\u0077ord"}}"#);
    assert_eq!(d.wholes, [("\"hunter2\"".into(), "key password".into()), ("1".into(), "key password".into())]);
    let (out, _) = masked(input, &rules(&["$['password']"], &[]));
    assert_eq!(out, r#"{"pass\u0077ord": "[MASKED]", "a": {"PASSWORD": 1, "x": "pass\u0077ord"}}"#);
}

#[test]
fn a_descendant_path_masks_at_every_depth() {
    let input =
        r#"{"password": "a", "user": {"password": "b", "list": [{"password": {"old": "c"}}, [{"password": null}]]}}"#;
    let (out, d) = masked(input, &rules(&["$..password"], &[]));
    assert_eq!(
        out,
        r#"{"password": "[MASKED]", "user": {"password": "[MASKED]", "list": [{"password": "[MASKED]"}, [{"password": "[MASKED]"}]]}}"#
    );
    assert_eq!(d.wholes.len(), 4);
    assert!(!d.texts.contains(&"old".to_string()), "nothing inside a masked value is looked at");
}

#[test]
fn array_paths_select_elements() {
    let input = r#"{"users": [{"ssn": "1", "n": "a"}, {"ssn": "2", "n": "b"}], "ids": [10, 20, 30]}"#;
    let (out, _) = masked(input, &rules(&["$.users[*].ssn", "$.ids[1]"], &[]));
    assert_eq!(
        out,
        r#"{"users": [{"ssn": "[MASKED]", "n": "a"}, {"ssn": "[MASKED]", "n": "b"}], "ids": [10, "[MASKED]", 30]}"#
    );
    let (out, _) = masked(input, &rules(&["$.users[1]", "$.*[0]"], &[]));
    assert_eq!(out, r#"{"users": ["[MASKED]", "[MASKED]"], "ids": ["[MASKED]", 20, 30]}"#);
    let (out, _) = masked("[1, [2, 3]]", &rules(&["$[1][0]"], &[]));
    assert_eq!(out, "[1, [\"[MASKED]\", 3]]");
}

#[test]
fn a_selected_object_is_replaced_whole_with_its_raw_bytes() {
    let input = "{\"card\" : {\n  \"number\": 4111111111111111,\n  \"exp\": \"12/30\" } , \"ok\": 1}";
    let (out, d) = masked(input, &rules(&["$.card"], &["*secret*"]));
    assert_eq!(out, "{\"card\" : \"[MASKED]\" , \"ok\": 1}");
    assert_eq!(d.wholes, [("{\n  \"number\": 4111111111111111,\n  \"exp\": \"12/30\" }".into(), "path $.card".into())]);
    let (out, _) = masked(r#"{"my_secret": [1, {"a": 2}]}"#, &rules(&[], &["*secret*"]));
    assert_eq!(out, r#"{"my_secret": "[MASKED]"}"#);
    let (out, _) = masked(" [1] ", &rules(&["$"], &[]));
    assert_eq!(out, " \"[MASKED]\" ");
}

#[test]
fn a_path_wins_over_a_key_rule() {
    let (_, d) = masked(r#"{"token": 1}"#, &rules(&["$.token"], &["token"]));
    assert_eq!(d.wholes, [("1".into(), "path $.token".into())]);
}

#[test]
fn duplicate_keys_are_copied_and_each_is_masked() {
    let (out, _) = masked(r#"{"token": "a", "token": "b", "token": "c"}"#, &rules(&[], &["token"]));
    assert_eq!(out, r#"{"token": "[MASKED]", "token": "[MASKED]", "token": "[MASKED]"}"#);
}

#[test]
fn numbers_are_offered_as_written_and_masked_as_strings() {
    let input = r#"{"n": 4111111111111111, "m": [4111111111111111.0, 1e2, -4111111111111111]}"#;
    let mut d = Detector::default();
    let out = mask(input.as_bytes(), &JsonRules::default(), &mut d).unwrap();
    assert_eq!(out.masked, 1);
    assert_eq!(
        String::from_utf8(out.bytes).unwrap(),
        r#"{"n": "[CARD]", "m": [4111111111111111.0, 1e2, -4111111111111111]}"#
    );
    assert_eq!(d.texts, ["n", "4111111111111111", "m", "4111111111111111.0", "1e2", "-4111111111111111"]);
}

#[test]
fn detected_secrets_are_masked_inside_strings_and_keys() {
    let input = r#"{"sk_live_abc123": "use sk_live_XyZ9 now", "note": "sk\u005flive_esc", "ok": "sk_test_1"}"#;
    let mut d = Detector::default();
    let out = mask(input.as_bytes(), &JsonRules::default(), &mut d).unwrap();
    assert_eq!(out.masked, 3);
    assert_eq!(
        String::from_utf8(out.bytes).unwrap(),
        r#"{"[SECRET]": "use [SECRET] now", "note": "[SECRET]", "ok": "sk_test_1"}"#
    );
}

#[test]
fn replacement_text_is_escaped() {
    struct Quote;
    impl JsonMasker for Quote {
        fn whole(&mut self, _: &[u8], _: Why<'_>) -> Vec<u8> {
            b"null".to_vec()
        }
        fn text(&mut self, text: &str) -> Option<String> {
            (text == "x").then(|| "a\"b\\c\n\u{1}\u{7f}é".to_string())
        }
    }
    let out = mask(br#"["x", "y"]"#, &JsonRules::default(), &mut Quote).unwrap();
    assert_eq!(String::from_utf8(out.bytes.clone()).unwrap(), "[\"a\\\"b\\\\c\\n\\u0001\u{7f}é\", \"y\"]");
    let parsed: Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(parsed[0], "a\"b\\c\n\u{1}\u{7f}é");
}

#[test]
fn a_replacement_that_is_not_json_is_an_error() {
    struct Broken;
    impl JsonMasker for Broken {
        fn whole(&mut self, _: &[u8], _: Why<'_>) -> Vec<u8> {
            b"[MASKED]".to_vec()
        }
        fn text(&mut self, _: &str) -> Option<String> {
            None
        }
    }
    let err = mask(br#"{"a": 1}"#, &rules(&["$.a"], &[]), &mut Broken).unwrap_err();
    assert_eq!(err, JsonError::BadReplacement(6));
}

#[test]
fn anything_but_strict_json_is_an_error() {
    let bad: &[&[u8]] = &[
        b"",
        b"   ",
        b"[1,]",
        b"{\"a\":1,}",
        b"[,1]",
        b"{'a': 1}",
        b"['a']",
        b"NaN",
        b"[Infinity]",
        b"[-]",
        b"[01]",
        b"[-01]",
        b"[1.]",
        b"[.5]",
        b"[1e]",
        b"[+1]",
        b"[0x10]",
        b"[\"a\tb\"]",
        b"[\"a\nb\"]",
        b"[\"\\ud800\"]",
        b"[\"\\udc00\\ud800\"]",
        b"[\"\\ud800\\u0041\"]",
        b"[\"\\x41\"]",
        b"[\"\\u12\"]",
        b"[\"\xff\"]",
        b"[\"\xc3\"]",
        b"[\"\xed\xa0\x80\"]",
        b"\xef\xbb\xbf[]",
        b"[] []",
        b"{} x",
        b"[1] \0",
        b"[tru]",
        b"[nulll]",
        b"[True]",
        b"{\"a\" 1}",
        b"{\"a\":}",
        b"{1: 2}",
        b"{\"a\":1 \"b\":2}",
        b"[1 2]",
        b"[\"unterminated]",
        b"[",
        b"{",
        b"{\"a\"",
        b"]",
        b"\x0b[]",
    ];
    for input in bad {
        let mut d = Detector::default();
        assert!(mask(input, &JsonRules::default(), &mut d).is_err(), "{:?}", String::from_utf8_lossy(input));
        // Also when the bad part is inside a value masked whole.
        let wrapped = [&b"{\"s\": "[..], input, b"}"].concat();
        assert!(mask(&wrapped, &rules(&["$.s"], &[]), &mut d).is_err(), "{:?}", String::from_utf8_lossy(&wrapped));
    }
}

#[test]
fn errors_say_where() {
    let mut d = Detector::default();
    assert_eq!(
        mask(b"[1, 02]", &JsonRules::default(), &mut d),
        Err(JsonError::Syntax { at: 5, what: "number with a leading zero" })
    );
    assert_eq!(
        mask(b"[\"ok\", \"\xff\"]", &JsonRules::default(), &mut d),
        Err(JsonError::Syntax { at: 8, what: "string is not UTF-8" })
    );
}

#[test]
fn nesting_is_capped() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let mut d = Detector::default();
    assert!(mask(nested(MAX_DEPTH).as_bytes(), &JsonRules::default(), &mut d).is_ok());
    assert_eq!(
        mask(nested(MAX_DEPTH + 1).as_bytes(), &JsonRules::default(), &mut d),
        Err(JsonError::TooDeep(MAX_DEPTH))
    );
    // Inside a value masked whole too.
    let wrapped = format!("{{\"s\": {}}}", nested(MAX_DEPTH));
    assert_eq!(mask(wrapped.as_bytes(), &rules(&["$.s"], &[]), &mut d), Err(JsonError::TooDeep(6 + MAX_DEPTH - 1)));
    assert!(matches!(
        mask("[".repeat(1_000_000).as_bytes(), &JsonRules::default(), &mut d),
        Err(JsonError::TooDeep(_))
    ));
}

/// Any JSON value serde_json can write.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinities", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Masks every string, key and number.
struct Everything;

impl JsonMasker for Everything {
    fn whole(&mut self, _: &[u8], _: Why<'_>) -> Vec<u8> {
        b"\"[MASKED]\"".to_vec()
    }
    fn text(&mut self, text: &str) -> Option<String> {
        Some(format!("<{}>", text.len()))
    }
}

proptest! {
    #[test]
    fn json_with_nothing_masked_comes_back_byte_for_byte(value in json_value()) {
        for bytes in [serde_json::to_vec(&value).unwrap(), serde_json::to_vec_pretty(&value).unwrap()] {
            let out = mask(&bytes, &JsonRules::default(), &mut Unchanged).unwrap();
            prop_assert_eq!(out.masked, 0);
            prop_assert_eq!(&out.bytes, &bytes);
        }
    }

    #[test]
    fn masked_json_is_still_json(value in json_value()) {
        let bytes = serde_json::to_vec_pretty(&value).unwrap();
        let out = mask(&bytes, &rules(&["$..*[1]"], &["*a*"]), &mut Everything).unwrap();
        prop_assert!(serde_json::from_slice::<Value>(&out.bytes).is_ok());
    }

    #[test]
    fn any_bytes_are_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = mask(&bytes, &rules(&["$..a", "$[0]"], &["*b*"]), &mut Everything);
        let _ = mask(&bytes, &JsonRules::default(), &mut Unchanged);
    }

    #[test]
    fn json_like_bytes_are_read_without_panicking(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"), Just("\""), Just("\\"),
                Just("\\u"), Just("d800"), Just("0"), Just("-1.5e3"), Just("true"), Just("a"), Just(" "),
            ],
            0..60,
        )
    ) {
        let input = parts.concat();
        let _ = mask(input.as_bytes(), &rules(&["$..a"], &["a"]), &mut Everything);
    }
}
