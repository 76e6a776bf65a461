//! The email detector's pattern, hand-written: emails are the secrets result rows hold
//! most, and a general regex engine spends more setting up a search than this spends
//! finding one. It matches exactly what the `email` pattern in `detectors.rs` matches
//! (leftmost first, same bounds; the `same_as_the_pattern` property checks it):
//!
//! `[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,4}\.[A-Za-z]{2,24}\b`
//!
//! The local part needs no word boundary before it: an address glued to a longer run
//! of word characters (`xxxx...alice@example.com`, `user_alice@example.com`) is still
//! found, up to 64 local characters with it, from a letter or digit.

use std::ops::Range;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_label(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// A word boundary at `i`, looking at the whole text (as the pattern's `\b` does).
fn boundary(text: &[u8], i: usize) -> bool {
    let before = i.checked_sub(1).and_then(|j| text.get(j)).is_some_and(|b| is_word(*b));
    let after = text.get(i).is_some_and(|b| is_word(*b));
    before != after
}

/// The leftmost email lying within `span` of `text`.
pub(super) fn find(text: &[u8], span: Range<usize>) -> Option<Range<usize>> {
    let end = span.end.min(text.len());
    let mut search = span.start;
    while let Some(at) = text.get(search..end).and_then(|t| memchr::memchr(b'@', t)).map(|i| search + i) {
        search = at + 1;
        let Some(domain_end) = domain(text, at + 1, end) else { continue };
        // The local part cannot hold an `@`, so it ends here; it starts at the first
        // letter or digit as far back as local characters reach, up to 64 of them.
        let mut first = at;
        while first > span.start && at - first < 64 && text.get(first - 1).is_some_and(|b| is_local(*b)) {
            first -= 1;
        }
        if let Some(start) = (first..at).find(|i| text[*i].is_ascii_alphanumeric()) {
            return Some(start..domain_end);
        }
    }
    None
}

/// Where the domain starting at `from` ends: labels of 1 to 63 characters joined by
/// dots, then a dot and 2 to 24 letters ending at a word boundary. As the pattern's
/// greedy repetitions do, the most middle labels (up to 4) that still leave such an
/// ending win.
fn domain(text: &[u8], from: usize, end: usize) -> Option<usize> {
    let label = |at: usize| text.get(at..end).unwrap_or_default().iter().take_while(|b| is_label(**b)).count();
    let dot = |at: usize| at < end && text.get(at) == Some(&b'.');
    let first = label(from);
    if !(1..=63).contains(&first) || !dot(from + first) {
        return None;
    }
    // Starts of the labels after each dot: the top-level domain candidate is the
    // label after `k` middle labels.
    let mut starts = [from + first + 1; 5];
    let mut n = 1;
    while n < starts.len() {
        let at = starts[n - 1];
        let len = label(at);
        if !(1..=63).contains(&len) || !dot(at + len) {
            break;
        }
        starts[n] = at + len + 1;
        n += 1;
    }
    starts[..n].iter().rev().find_map(|&at| {
        let letters = text.get(at..end).unwrap_or_default().iter().take_while(|b| b.is_ascii_alphabetic()).count();
        ((2..=24).contains(&letters) && boundary(text, at + letters)).then_some(at + letters)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern() -> regex_automata::meta::Regex {
        let email = crate::masking::detectors::builtin().into_iter().find(|d| d.name == "email").unwrap();
        email.regex().clone()
    }

    #[test]
    fn examples() {
        fn find(t: &str) -> Option<&str> {
            super::find(t.as_bytes(), 0..t.len()).map(|r| &t[r])
        }
        assert_eq!(find("mail ada@example.com now"), Some("ada@example.com"));
        assert_eq!(find("a@b.com.x"), Some("a@b.com"));
        assert_eq!(find("a@b.com-x"), Some("a@b.com"));
        assert_eq!(find("a@b.com_x"), None);
        assert_eq!(find("x@y@b.co.uk"), Some("y@b.co.uk"));
        assert_eq!(find("éada@example.com"), Some("ada@example.com"));
        assert_eq!(find(".ada@example.com"), Some("ada@example.com"));
        assert_eq!(find("a@b.c.d.e.f.gh"), Some("a@b.c.d.e.f.gh"));
        // Glued to a longer run of word characters: still found.
        let glued = format!("{}alice@example.com", "x".repeat(70));
        assert_eq!(find(&glued), Some(&glued[70 + 5 - 64..]));
        assert_eq!(find("id:user_alice@example.com"), Some("user_alice@example.com"));
        assert_eq!(find("a@b.c.d.e.f.g.hi"), None, "at most four middle labels... and no start after");
    }

    proptest! {
        /// Whatever the text and span, the same match as the pattern.
        #[test]
        fn same_as_the_pattern(
            pieces in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(b"ab9Z._%+-@ \xc3\xa9".to_vec()).prop_map(|b| vec![b]),
                    (1usize..70).prop_map(|n| vec![b'a'; n]),
                ],
                0..40,
            ),
            start in 0usize..80,
            len in 0usize..400,
        ) {
            let text: Vec<u8> = pieces.concat();
            let start = start.min(text.len());
            let span = start..(start + len).min(text.len());
            let want = pattern().search(&regex_automata::Input::new(&text).span(span.clone())).map(|m| m.range());
            prop_assert_eq!(find(&text, span), want);
        }
    }
}
