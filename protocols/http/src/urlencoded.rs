//! `application/x-www-form-urlencoded` (the WHATWG URL standard's parser), which is
//! how URL query strings carry parameters: `&` between pairs, `=` between name and
//! value, `+` for a space, `%HH` for a byte.

/// The raw `(name, value)` pairs of a query string, still encoded: empty pairs are
/// skipped, and a pair without `=` has an empty value.
pub fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// `s` decoded, or `None` if a `%` is not followed by two hex digits or the bytes
/// are not UTF-8. (The WHATWG parser keeps a bad `%` as it is; a gateway deciding
/// what a server reads must not guess, so it is an error here.)
pub fn decode_strict(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(hex)?;
                let lo = bytes.next().and_then(hex)?;
                out.push(hi << 4 | lo);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// `s` decoded for display: a bad `%` is kept as it is and bytes that are not UTF-8
/// become U+FFFD, as the WHATWG parser does.
pub fn decode_lossy(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let raw = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escaped = match (b, raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => Some(hi << 4 | lo),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    // A hex digit's value is below 16, so it fits a byte.
    char::from(b).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_on_ampersands_and_the_first_equals_sign() {
        let got: Vec<_> = pairs("a=1&&b&c=x=y&=z&").collect();
        assert_eq!(got, [("a", "1"), ("b", ""), ("c", "x=y"), ("", "z")]);
    }

    #[test]
    fn strict_decoding_refuses_what_lossy_decoding_keeps() {
        assert_eq!(decode_strict("a+b%20c%2B%c3%A9").as_deref(), Some("a b c+é"));
        for bad in ["%", "%2", "%zz", "%ff", "%c3"] {
            assert_eq!(decode_strict(bad), None, "{bad}");
        }
        assert_eq!(decode_lossy("100%+sure%2"), "100% sure%2");
        assert_eq!(decode_lossy("%ff"), "\u{FFFD}");
    }
}
