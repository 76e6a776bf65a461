//! The JSON masker for API responses (`airlock_http::json::mask`), with path and key
//! rules parsed from the input (`JsonPath::parse`, `KeyGlob::parse`).
//!
//! What `mask` promises, checked:
//! - strict JSON in, same verdict as serde_json: it accepts exactly what serde_json
//!   accepts (bar serde_json's own nesting limit of 128 and its refusal of numbers
//!   too large for an f64, which RFC 8259 allows);
//! - with nothing masked, the output is the input, byte for byte;
//! - masked output is JSON again, with the input's shape: the same arrays and
//!   objects with the same number of members, each value the input's kind except
//!   where a masked string stands;
//! - nothing the masker wanted hidden survives: here it hides every string (and key)
//!   holding an input-chosen letter, and that letter then appears nowhere in the
//!   output.
#![no_main]

use std::fmt;

use airlock_fuzz::Input;
use airlock_http::json::{self, JsonError, JsonMasker, JsonPath, JsonRules, KeyGlob, Why};
use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Hides values selected by rules as `"[MASKED]"`, and any string holding `letter`
/// as that string without it, starred.
struct Hider {
    letter: char,
}

impl JsonMasker for Hider {
    fn whole(&mut self, _raw: &[u8], _why: Why<'_>) -> Vec<u8> {
        b"\"[MASKED]\"".to_vec()
    }

    fn text(&mut self, text: &str) -> Option<String> {
        text.contains(self.letter).then(|| format!("{}*", text.replace(self.letter, "")))
    }
}

/// The shape of a JSON document, duplicate keys kept.
#[derive(Debug, PartialEq)]
enum Shape {
    String,
    Other,
    Array(Vec<Shape>),
    Object(Vec<Shape>),
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::String)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Shape::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut members = Vec::new();
        while let Some((_, value)) = map.next_entry::<String, Shape>()? {
            members.push(value);
        }
        Ok(Shape::Object(members))
    }
}

/// Whether `out` is `input` with some values replaced by strings.
fn same_shape(input: &Shape, out: &Shape) -> bool {
    match (input, out) {
        (_, Shape::String) => true,
        (Shape::Array(a), Shape::Array(b)) | (Shape::Object(a), Shape::Object(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y))
        }
        (a, b) => a == b,
    }
}

/// serde_json's reading, or `None` where it refuses what RFC 8259 allows.
fn serde_shape(bytes: &[u8]) -> Option<Result<Shape, String>> {
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(shape) => Some(Ok(shape)),
        Err(e) if e.to_string().contains("recursion limit") || e.to_string().contains("out of range") => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

/// Letters that are in no JSON keyword, number, escape or `[MASKED]`.
const LETTERS: &[u8] = b"ghijkopqvwxyzGHIJLOPQRTUVWXYZ";

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let letter = char::from(LETTERS[usize::from(input.byte()) % LETTERS.len()]);
    let selectors = input.until(0xff, 512);
    let document = input.rest();
    let mut rules = JsonRules::default();
    for selector in airlock_fuzz::text(selectors).split('\n').filter(|s| !s.is_empty()) {
        if selector.starts_with('$') {
            rules.paths.extend(JsonPath::parse(selector).ok());
        } else {
            rules.keys.extend(KeyGlob::parse(selector).ok());
        }
    }

    let plain = json::mask(document, &JsonRules::default(), &mut json::Unchanged);
    if let Ok(m) = &plain {
        assert_eq!(m.masked, 0);
        assert_eq!(m.bytes, document, "with nothing masked the output differs");
    }
    let serde = serde_shape(document);
    match (&plain, &serde) {
        (Ok(_), Some(Err(e))) => panic!("masked a document serde_json refuses: {e}"),
        (Err(JsonError::TooDeep(_)), _) => assert!(serde.as_ref().is_none_or(Result::is_err)),
        (Err(e), Some(Ok(_))) => panic!("refused a document serde_json reads: {e}"),
        _ => {}
    }

    let Ok(masked) = json::mask(document, &rules, &mut Hider { letter }) else {
        assert!(plain.is_err(), "rules made a readable document unreadable");
        return;
    };
    assert!(plain.is_ok());
    if masked.masked == 0 {
        assert_eq!(masked.bytes, document);
    }
    assert!(
        !masked.bytes.contains(&(letter as u8)),
        "{letter:?} survived masking: {:?}",
        String::from_utf8_lossy(&masked.bytes)
    );
    match (serde_shape(document), serde_shape(&masked.bytes)) {
        (Some(Ok(before)), Some(Ok(after))) => assert!(same_shape(&before, &after), "{before:?} became {after:?}"),
        (_, Some(Err(e))) => panic!("masked output is not JSON ({e}): {:?}", String::from_utf8_lossy(&masked.bytes)),
        _ => {}
    }
});
