//! Value masking (`airlock::masking`): the streaming masker against whole-text masking.
//!
//! - For any chunking (taken from the input), `StreamMasker::push` for each chunk
//!   then `flush` gives exactly `Masker::mask` of the whole text: no secret leaks
//!   across a chunk boundary and nothing else changes. Checked in all three styles,
//!   with and without a config pattern.
//! - The trigger scan is only an optimisation: `find` equals every detector searching
//!   everywhere (`find_unscanned`), from any start.
//! - UTF-8 in, UTF-8 out.
#![no_main]

use std::sync::LazyLock;

use airlock::masking::{Detector, Masker, Style};
use airlock_fuzz::{Input, chunks, cuts};
use libfuzzer_sys::fuzz_target;

/// Building a masker compiles every pattern: once per process.
static MASKERS: LazyLock<Vec<Masker>> = LazyLock::new(|| {
    let mut out: Vec<Masker> =
        [Style::Redact, Style::Partial, Style::Hash].into_iter().map(|s| Masker::new(None, s, b"fuzz-key")).collect();
    // A config pattern, which runs over all the text and sets its own holdback.
    let mut custom = Masker::new(Some(&["email".to_owned(), "jwt".to_owned()]), Style::Redact, b"fuzz-key");
    custom.add(Detector::custom("order", r"(?i)\bord-[0-9]{4,12}\b", 16).expect("the pattern compiles"));
    out.push(custom);
    out
});

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let masker = &MASKERS[usize::from(input.byte()) % MASKERS.len()];
    let from = usize::from(input.byte());
    let cuts = cuts(input.take(4));
    let text = input.rest();

    let whole = masker.mask(text).into_owned();
    let mut stream = masker.stream();
    let mut out = Vec::new();
    for piece in chunks(text, &cuts) {
        out.extend(stream.push(piece));
    }
    out.extend(stream.flush());
    assert_eq!(stream.pending(), 0);
    if out != whole {
        panic!(
            "streaming differs from whole-text masking\n  stream: {:?}\n  whole:  {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&whole)
        );
    }

    assert_eq!(masker.find(text, 0), masker.find_unscanned(text, 0), "the scan missed a match");
    assert_eq!(masker.find(text, from), masker.find_unscanned(text, from), "the scan missed a match after {from}");

    if std::str::from_utf8(text).is_ok() {
        assert!(std::str::from_utf8(&whole).is_ok(), "masking broke UTF-8");
    }
});
