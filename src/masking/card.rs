//! The payment card detector's pattern and validation, hand-written: digits are
//! everywhere in output (ids, timestamps, counters), and a candidate that fails the
//! checksum has its shorter matches tried too, which costs a regex engine a search
//! each. It finds exactly what the `credit_card` pattern in `detectors.rs` finds with
//! the Luhn and issuer check applied to it, shorter matches from a failed start tried
//! longest first (the `card_matcher_is_the_pattern_validated` property checks it):
//!
//! `\b\d(?:[ -]?\d){12,18}\b`

use std::ops::Range;

/// Most digits a card has.
const LONGEST: usize = 19;
/// Fewest.
const SHORTEST: usize = 13;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The leftmost valid card lying within `span` of `text`, the longest from its start.
pub(super) fn find(text: &[u8], span: Range<usize>) -> Option<Range<usize>> {
    let end = span.end.min(text.len());
    let mut at = span.start;
    while at < end {
        let Some(i) = text.get(at..end).and_then(|t| t.iter().position(u8::is_ascii_digit)) else { break };
        let start = at + i;
        at = start + 1;
        // A match starts at a word boundary.
        if start > 0 && text.get(start - 1).is_some_and(|b| is_word(*b)) {
            continue;
        }
        if let Some(card_end) = longest_from(text, start, end) {
            return Some(start..card_end);
        }
    }
    None
}

/// Where the longest valid card starting at the digit at `start` ends, if one ends by
/// `end`: digits joined by at most one space or dash each, ending at a word boundary.
fn longest_from(text: &[u8], start: usize, end: usize) -> Option<usize> {
    let mut digits = [0u8; LONGEST];
    // Where the match would end after each digit.
    let mut ends = [0usize; LONGEST];
    let mut n = 0;
    let mut i = start;
    loop {
        digits[n] = text[i] - b'0';
        ends[n] = i + 1;
        n += 1;
        if n == LONGEST {
            break;
        }
        let next = |k: usize| text.get(i + k).copied().unwrap_or(0);
        i += match (next(1), next(2)) {
            (d, _) if d.is_ascii_digit() => 1,
            (b' ' | b'-', d) if d.is_ascii_digit() => 2,
            _ => break,
        };
    }
    (SHORTEST..=n).rev().find_map(|count| {
        let card_end = ends[count - 1];
        let boundary = !text.get(card_end).is_some_and(|b| is_word(*b));
        (card_end <= end && boundary && valid(&digits[..count])).then_some(card_end)
    })
}

/// Luhn check plus issuer prefixes, so 16-digit order numbers are not cards.
pub(super) fn valid(d: &[u8]) -> bool {
    if !(SHORTEST..=LONGEST).contains(&d.len()) {
        return false;
    }
    let n = |k: usize| d.iter().take(k).fold(0u32, |acc, x| acc * 10 + *x as u32);
    let issuer = d[0] == 4
        || (51..=55).contains(&n(2))
        || (2221..=2720).contains(&n(4))
        || n(2) == 34
        || n(2) == 37
        || n(4) == 6011
        || n(2) == 65
        || (644..=649).contains(&n(3))
        || (3528..=3589).contains(&n(4))
        || (300..=305).contains(&n(3))
        || n(2) == 36
        || n(2) == 38;
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = x as u32;
            if i % 2 == 1 { if x * 2 > 9 { x * 2 - 9 } else { x * 2 } } else { x }
        })
        .sum();
    issuer && sum.is_multiple_of(10)
}
