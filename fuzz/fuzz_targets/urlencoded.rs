//! `application/x-www-form-urlencoded` (`airlock_http::urlencoded`), which the gate
//! reads `_method` overrides and GraphQL parameters with.
//!
//! - `pairs` splits at every `&` and the first `=` of each pair, dropping only empty
//!   pairs: no name holds `&` or `=`, no value holds `&`, and name, `=` and value
//!   rebuild each non-empty piece.
//! - Where strict decoding succeeds, lossy decoding agrees with it; text without `%`
//!   or `+` decodes to itself.
//! - Any text encoded (`%HH`, `+` for space) decodes strictly back to itself.
#![no_main]

use airlock_http::urlencoded::{decode_lossy, decode_strict, pairs};
use libfuzzer_sys::fuzz_target;

fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b if b.is_ascii_alphanumeric() || b"-._*".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02x}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let text = airlock_fuzz::text(data);
    let text = text.as_ref();

    let pieces: Vec<&str> = text.split('&').filter(|p| !p.is_empty()).collect();
    let got: Vec<(&str, &str)> = pairs(text).collect();
    assert_eq!(got.len(), pieces.len());
    for ((name, value), piece) in got.iter().zip(&pieces) {
        assert!(!name.contains(['&', '=']) && !value.contains('&'), "{name:?}={value:?}");
        let rebuilt = if piece.contains('=') { format!("{name}={value}") } else { name.to_string() };
        assert_eq!(&rebuilt, piece);
    }

    let lossy = decode_lossy(text);
    if let Some(strict) = decode_strict(text) {
        assert_eq!(strict, lossy, "strict and lossy decoding disagree on {text:?}");
    }
    if !text.contains(['%', '+']) {
        assert_eq!(lossy, text);
    }

    let e = encoded(text);
    assert_eq!(decode_strict(&e).as_deref(), Some(text), "{text:?} encoded as {e:?}");
    assert_eq!(decode_lossy(&e), text);
});
