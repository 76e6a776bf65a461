//! Value detectors: a pattern that finds candidates and, where a checksum or a
//! structure rule exists, a validator that keeps false positives out (Luhn for cards,
//! mod-97 for IBANs, area/group rules for SSNs).

use std::borrow::Cow;
use std::ops::Range;

use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

/// Names of the built-in detectors, in priority order.
pub const NAMES: [&str; 16] = [
    "private_key",
    "jwt",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "stripe_key",
    "password_hash",
    "url_password",
    "secret_assignment",
    "email",
    "credit_card",
    "iban",
    "us_ssn",
    "phone",
];

/// One detector.
pub struct Detector {
    /// Name used in config and in the mask marker.
    pub name: Cow<'static, str>,
    pattern: Regex,
    /// Capture group holding the secret (0 = the whole match).
    group: usize,
    /// A checksum or structure rule a match must pass (its whole match is the value).
    validate: Option<Validator>,
    /// Longest match the pattern can produce, which bounds how much a stream holds back.
    pub max_len: usize,
    /// A catch-all (like `password=...`) that yields to any specific detector it overlaps.
    pub generic: bool,
    /// A literal every match starts with, for long detectors: a stream holds back from
    /// an anchor it has seen instead of always holding back `max_len` bytes.
    pub anchor: Option<&'static [u8]>,
    /// Index in [`NAMES`] of a built-in detector, whose triggers the `scan` module knows;
    /// a config pattern (`None`) searches the whole text.
    pub builtin: Option<usize>,
    /// A hand-written matcher equal to `pattern` (and `validate`, which it applies
    /// itself), used in their place.
    fast: Option<Matcher>,
    /// The pattern's text, for tests that look at its syntax.
    #[cfg(test)]
    source: String,
}

/// A hand-written pattern: the leftmost match within a span of a text (validated, for
/// a detector with a validator).
type Matcher = fn(&[u8], Range<usize>) -> Option<Range<usize>>;

/// Whether a candidate is really a secret of its kind (a card passes Luhn).
type Validator = fn(&[u8]) -> bool;

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A detected secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Start of the value to mask.
    pub start: usize,
    /// End of the value (exclusive).
    pub end: usize,
    /// The whole match, context included (`postgres://u:` ... `@`), which decides
    /// overlaps: the match that starts first owns its span.
    pub claim: (usize, usize),
    /// Index of the detector in its list.
    pub detector: usize,
}

/// Compiles a pattern over bytes (as `regex::bytes::Regex` does), so a search can be
/// confined to a span while word boundaries still see the bytes around it.
pub(super) fn compile(pattern: &str) -> Result<Regex, Box<regex_automata::meta::BuildError>> {
    Regex::builder()
        .configure(Regex::config().utf8_empty(false))
        .syntax(syntax::Config::new().utf8(false))
        .build(pattern)
        .map_err(Box::new)
}

fn digits(s: &[u8]) -> Vec<u8> {
    s.iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0').collect()
}

/// Luhn check plus issuer prefixes, so 16-digit order numbers are not cards.
#[cfg(test)]
fn card(s: &[u8]) -> bool {
    super::card::valid(&digits(s))
}

fn ssn(s: &[u8]) -> bool {
    let d = digits(s);
    let (area, group, serial) = (&d[0..3], &d[3..5], &d[5..9]);
    area != [0, 0, 0] && area != [6, 6, 6] && area[0] != 9 && group != [0, 0] && serial != [0, 0, 0, 0]
}

fn iban(s: &[u8]) -> bool {
    let compact: Vec<u8> = s.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder = 0u32;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => (b - b'0') as u32,
            b'A'..=b'Z' => (b - b'A') as u32 + 10,
            _ => return false,
        };
        remainder = if v >= 10 { (remainder * 100 + v) % 97 } else { (remainder * 10 + v) % 97 };
    }
    remainder == 1
}

fn detector(name: &'static str, pattern: &str, group: usize, validate: Option<Validator>, max_len: usize) -> Detector {
    debug_assert!(group == 0 || validate.is_none(), "{name}: a validated match is its own value");
    // The built-in patterns are constants checked by the tests below.
    #[allow(clippy::expect_used)]
    let compiled = compile(pattern).expect("built-in detector pattern");
    let anchor: Option<&'static [u8]> = match name {
        "private_key" => Some(b"-----BEGIN"),
        "jwt" => Some(b"eyJ"),
        _ => None,
    };
    Detector {
        name: Cow::Borrowed(name),
        pattern: compiled,
        group,
        validate,
        max_len,
        generic: name == "secret_assignment",
        anchor,
        builtin: NAMES.iter().position(|n| *n == name),
        fast: match name {
            "email" => Some(super::email::find),
            "credit_card" => Some(super::card::find),
            _ => None,
        },
        #[cfg(test)]
        source: pattern.to_owned(),
    }
}

impl Detector {
    /// The compiled pattern.
    #[cfg(test)]
    pub(super) fn regex(&self) -> &Regex {
        &self.pattern
    }

    /// The pattern's text.
    #[cfg(test)]
    fn regex_source(&self) -> &str {
        &self.source
    }

    /// A detector from the config: the whole match of `pattern` is the secret.
    pub fn custom(
        name: &str,
        pattern: &str,
        max_len: usize,
    ) -> Result<Detector, Box<regex_automata::meta::BuildError>> {
        Ok(Detector {
            name: Cow::Owned(name.to_owned()),
            pattern: compile(pattern)?,
            group: 0,
            validate: None,
            max_len,
            generic: false,
            anchor: None,
            builtin: None,
            fast: None,
            #[cfg(test)]
            source: pattern.to_owned(),
        })
    }
}

/// Password hashes and verifiers, each form bounded (salts and hashes by generous
/// lengths) and starting at a trigger the `scan` module looks for: a `$` followed by a
/// crypt id, a `$` after `SCRAM-SHA-256` or `pbkdf2_sha256`/`pbkdf2_sha1`, or `md5`.
/// A Django prefix (`argon2$`, `bcrypt_sha256$`) stays visible: the hash after it is
/// masked.
const PASSWORD_HASH: &str = concat!(
    "(?-u)",
    // bcrypt: cost and 22 characters of salt then 31 of hash, in crypt's base64.
    r"\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}",
    // argon2 (PHC string): version, memory, time, parallelism, salt, hash.
    r"|\$argon2(?:id|i|d)\$(?:v=\d{1,3}\$)?m=\d{1,10},t=\d{1,10},p=\d{1,3}\$[A-Za-z0-9+/]{8,64}={0,2}\$[A-Za-z0-9+/]{16,128}={0,2}",
    // scrypt (passlib): log2 N, r, p, salt, hash.
    r"|\$scrypt\$ln=\d{1,2},r=\d{1,3},p=\d{1,3}\$[A-Za-z0-9+./]{4,64}={0,2}\$[A-Za-z0-9+./]{16,128}={0,2}",
    // scrypt and yescrypt (crypt): parameters and salt, then a 32-byte hash.
    r"|\$7\$[./A-Za-z0-9]{11,96}\$[./A-Za-z0-9]{43}",
    r"|\$y\$[./A-Za-z0-9]{1,32}\$[./A-Za-z0-9]{1,86}\$[./A-Za-z0-9]{43}",
    // sha256-crypt, sha512-crypt: optional rounds, a salt of up to 16 characters.
    r"|\$5\$(?:rounds=\d{1,9}\$)?[./A-Za-z0-9]{0,16}\$[./A-Za-z0-9]{43}",
    r"|\$6\$(?:rounds=\d{1,9}\$)?[./A-Za-z0-9]{0,16}\$[./A-Za-z0-9]{86}",
    // md5-crypt and Apache's variant: a salt of up to 8 characters.
    r"|\$(?:1|apr1)\$[./A-Za-z0-9]{0,8}\$[./A-Za-z0-9]{22}",
    // PBKDF2 (passlib): iterations, salt, hash in adapted base64.
    r"|\$pbkdf2(?:-sha256|-sha512)?\$\d{1,10}\$[./A-Za-z0-9]{1,64}\$[./A-Za-z0-9]{27,86}",
    // PostgreSQL SCRAM verifier: iterations, salt, StoredKey, ServerKey.
    r"|\bSCRAM-SHA-256\$\d{1,10}:[A-Za-z0-9+/]{4,64}={0,2}\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=",
    // PostgreSQL md5 role password: md5 of password and user name, in hex.
    r"|\bmd5[0-9a-f]{32}\b",
    // Django PBKDF2: iterations, salt, hash in standard base64.
    r"|\bpbkdf2_sha(?:256|1)\$\d{1,10}\$[A-Za-z0-9./+]{1,64}\$[A-Za-z0-9+/]{27,86}={0,2}",
);

/// The detectors of tokens, whose matches begin with a literal of their own: name,
/// pattern, longest match.
const TOKENS: [(&str, &str, usize); 6] = [
    ("jwt", r"(?-u)\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}", 8 * 1024),
    ("aws_access_key", r"(?-u)\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", 20),
    ("github_token", r"(?-u)\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b", 93),
    ("gitlab_token", r"(?-u)\bglpat-[A-Za-z0-9_-]{20}\b", 26),
    (
        "slack_token",
        r"(?-u)\bxox[baprs]-[A-Za-z0-9-]{10,250}|https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,100}",
        260,
    ),
    ("stripe_key", r"(?-u)\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{24,99}\b", 110),
];

/// The token detector named `name` in [`TOKENS`].
fn token(name: &str) -> Detector {
    // The names are constants; `validators` checks every one is built.
    #[allow(clippy::expect_used)]
    let &(name, pattern, max_len) = TOKENS.iter().find(|t| t.0 == name).expect("a token detector");
    detector(name, pattern, 0, None, max_len)
}

/// A PEM private key's first line, where the `private_key` pattern starts.
pub(super) const PEM_HEADER: &str = r"(?-u)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----";

/// Payment card numbers, found (and validated) by `card.rs`.
const CARD: &str = r"(?-u)\b\d(?:[ -]?\d){12,18}\b";

/// The token detectors without the word boundaries around their matches, for binary
/// data: formats such as CBOR, MessagePack and protobuf put a length byte (often a
/// letter or digit) right before a string and the next field right after it, which
/// hides the string from a pattern that wants a boundary there. The literal each
/// match begins with keeps chance matches rare.
pub fn glued() -> Vec<Detector> {
    TOKENS
        .iter()
        .map(|(name, pattern, max_len)| detector(name, &pattern.replace(r"\b", ""), 0, None, *max_len))
        .collect()
}

/// The built-in detectors, in priority order (earlier wins an overlap).
///
/// Every pattern is ASCII-only (`(?-u)`: a word boundary next to `é` still counts, and
/// case folding stays within ASCII). Each is bounded, so `max_len` is a true bound and
/// a stream that holds back that much never splits a match; the two anchored ones (PEM
/// keys, JWTs) hold a stream back from their anchor, up to `max_len`. Each match
/// contains a trigger that the `scan` module looks for, within the reach it assumes.
pub fn builtin() -> Vec<Detector> {
    vec![
        detector(
            "private_key",
            &format!(r"{PEM_HEADER}[A-Za-z0-9+/=\s:,\\-]{{16,}}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
            0,
            None,
            16 * 1024,
        ),
        token("jwt"),
        token("aws_access_key"),
        detector(
            "aws_secret_key",
            r#"(?i-u)aws.{0,24}?(?:secret|key).{0,24}?[=:"' ]\s{0,16}["']?([A-Za-z0-9/+]{40})\b"#,
            1,
            None,
            140,
        ),
        token("github_token"),
        token("gitlab_token"),
        token("slack_token"),
        token("stripe_key"),
        detector(
            "password_hash",
            PASSWORD_HASH,
            0,
            None,
            // The longest form, argon2: `$argon2id$`, `v=19$`, the three parameters,
            // `$`, the salt, `$`, the hash.
            10 + 6 + (2 + 10 + 3 + 10 + 3 + 3) + (1 + 64 + 2) + (1 + 128 + 2),
        ),
        detector(
            "url_password",
            r"(?-u)\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@]{1,64}:([^\s@/]{1,128})@",
            1,
            None,
            220,
        ),
        detector(
            "secret_assignment",
            r#"(?i-u)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)["']?\s{0,16}[=:]\s{0,16}["']?([^\s"',;&]{4,128})"#,
            1,
            None,
            // The longest keyword, a quote, spaces, `=`, spaces, a quote, the value,
            // and a character's UTF-8 tail.
            14 + 1 + 16 + 1 + 16 + 1 + 128 + 3,
        ),
        detector(
            "email",
            r"(?-u)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,4}\.[A-Za-z]{2,24}\b",
            0,
            None,
            64 + 1 + 63 + 4 * 64 + 1 + 24,
        ),
        // Validated by its matcher (`card.rs`).
        detector("credit_card", CARD, 0, None, 40),
        detector("iban", r"(?-u)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", 0, Some(iban), 44),
        detector("us_ssn", r"(?-u)\b\d{3}-\d{2}-\d{4}\b", 0, Some(ssn), 11),
        detector("phone", r"(?-u)\+[1-9]\d{7,14}\b", 0, None, 16),
    ]
}

impl Detector {
    /// Every validated secret that starts and ends within `span` of `text` (the bytes
    /// around it are context for word boundaries only).
    ///
    /// A candidate that fails its validator does not hide the secrets inside it: the
    /// shorter matches from its start are tried, longest first, then the search goes
    /// on from the next byte. What is found is then the same from any starting point
    /// (a stream starts where it last emitted), and `747-4111 1111 1111 1111` or a
    /// card followed by another group of digits is still a card.
    pub fn find(&self, index: usize, text: &[u8], span: Range<usize>, out: &mut Vec<Found>) {
        let mut input = Input::new(text).span(span.clone());
        let mut caps = (self.group != 0).then(|| self.pattern.create_captures());
        loop {
            // Capture groups cost; most detectors mask their whole match.
            let (whole, value) = match caps.as_mut() {
                None if let Some(fast) = self.fast => {
                    let Some(m) = fast(text, input.start()..input.end()) else { break };
                    (m.clone(), m)
                }
                None => {
                    let Some(m) = self.pattern.search(&input) else { break };
                    (m.range(), m.range())
                }
                Some(caps) => {
                    self.pattern.search_captures(&input, caps);
                    let (Some(whole), Some(value)) = (caps.get_group(0), caps.get_group(self.group)) else { break };
                    (whole.range(), value.range())
                }
            };
            let found = match self.validate {
                None => Some((whole.clone(), value)),
                Some(valid) => self.longest_valid(text, whole.clone(), valid).map(|m| (m.clone(), m)),
            };
            let next = match found {
                Some((whole, value)) => {
                    // A value cut inside a character (its pattern counts bytes) takes the
                    // rest of the character, so the masked text stays valid UTF-8.
                    let tail = text
                        .get(value.end..)
                        .unwrap_or_default()
                        .iter()
                        .take(3)
                        .take_while(|b| (0x80..0xc0).contains(*b))
                        .count();
                    out.push(Found {
                        start: value.start,
                        end: value.end + tail,
                        claim: (whole.start, whole.end.max(value.end + tail)),
                        detector: index,
                    });
                    whole.end.max(whole.start + 1)
                }
                None => whole.start + 1,
            };
            if next > span.end {
                break;
            }
            input.set_start(next);
        }
    }

    /// The longest match from where `first` starts (`first` included) that passes
    /// `valid`. Each try is an anchored search in a span one byte shorter than the
    /// last match, so there are at most `max_len` of them.
    fn longest_valid(&self, text: &[u8], first: Range<usize>, valid: Validator) -> Option<Range<usize>> {
        let mut m = first;
        loop {
            if text.get(m.clone()).is_some_and(valid) {
                return Some(m);
            }
            if m.end <= m.start + 1 {
                return None;
            }
            let shorter = Input::new(text).span(m.start..m.end - 1).anchored(Anchored::Yes);
            m = self.pattern.search(&shorter)?.range();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(card(b"4111 1111 1111 1111"));
        assert!(card(b"5500-0000-0000-0004"));
        assert!(card(b"4222222222222") && card(b"378282246310005"), "13 and 15 digits");
        assert!(!card(b"4111 1111 1111 1112"), "Luhn");
        assert!(!card(b"1234567812345670"), "passes Luhn, no issuer");
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(!iban(b"GB82 WEST 1234 5698 7654 33"));
        assert!(ssn(b"123-45-6789"));
        assert!(!ssn(b"000-45-6789") && !ssn(b"666-45-6789") && !ssn(b"923-45-6789"));
        let names: Vec<_> = builtin().into_iter().map(|d| d.name).collect();
        assert_eq!(names, NAMES);
    }

    use proptest::prelude::*;

    proptest! {
        /// The card matcher finds what the card pattern finds with its validator, the
        /// shorter matches from a failed start tried: whatever the text and span.
        #[test]
        fn card_matcher_is_the_pattern_validated(
            pieces in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(b"0123456789  --a_.\xc3\xa9".to_vec()).prop_map(|b| vec![b]),
                    proptest::sample::select(vec![&b"4111 1111 1111 1111"[..], b"2-48475-432319-487", b"378282246310005", b"4222222222222"])
                        .prop_map(<[u8]>::to_vec),
                ],
                0..30,
            ),
            start in 0usize..40,
            len in 0usize..300,
        ) {
            let text: Vec<u8> = pieces.concat();
            let start = start.min(text.len());
            let span = start..(start + len).min(text.len());
            let fast = builtin().into_iter().find(|d| d.name == "credit_card").unwrap();
            let mut reference = detector("credit_card", CARD, 0, Some(card), 40);
            reference.fast = None;
            let (mut want, mut got) = (Vec::new(), Vec::new());
            reference.find(0, &text, span.clone(), &mut want);
            fast.find(0, &text, span, &mut got);
            prop_assert_eq!(got, want);
        }
    }

    /// `max_len` is a true bound: no match of a pattern is longer, except the anchored
    /// detectors', whose streams hold back from their anchor.
    #[test]
    fn max_len_bounds_every_match() {
        for d in builtin() {
            let hir = syntax::parse_with(d.regex_source(), &syntax::Config::new().utf8(false)).unwrap();
            match hir.properties().maximum_len() {
                Some(longest) => assert!(longest <= d.max_len, "{}: {longest} > {}", d.name, d.max_len),
                None => assert!(d.anchor.is_some(), "{} is unbounded", d.name),
            }
        }
    }

    /// What the `password_hash` detector masks in `text`.
    fn hashes(text: &str) -> Vec<&str> {
        let d = builtin().into_iter().find(|d| d.name == "password_hash").unwrap();
        let mut found = Vec::new();
        d.find(0, text.as_bytes(), 0..text.len(), &mut found);
        found.iter().map(|f| &text[f.start..f.end]).collect()
    }

    #[test]
    fn password_hashes() {
        for hash in [
            "$2b$12$lfrdJVPP8jVS6d/0uaNgbuh9IfnZ5J48IfRnlDDkwmsdmH4HyHR3K",
            "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
            "$argon2id$v=19$m=65536,t=3,p=4$g2Lty8UduDnSNyurHSsPaA$1G+zx8nv515KTQfHFcOzSSeaYz05qwnCeTSZJl3Nl/w",
            "$argon2i$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A",
            "$scrypt$ln=16,r=8,p=1$g2Lty8UduDnSNyurHSsPaA$MRTk.Euu/IDwoGUOuUH/32m5NOFHEF7YRL6Sxzko9FM",
            "$7$CU..../....SodiumChloride$2d867YNSDEHb2rAMf/tuVMIGtXb0H5126IbCaC57IT4",
            "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$PmNgGTLMFjJn.URBv11CpTEm5RwlKtPjRtztKe6.b33",
            "$5$lfqIyHjFAfo4PSc9$5SYjEkXm79yLr5xw5.6bfDuhmAoMAM2zlT6KtrfQnj2",
            "$5$rounds=10000$saltstringsaltst$tAXkYN130cFCU5dLDabuq9IJB8iffMbJ2m2GvsJ8HJ8",
            "$6$rounds=656000$Mk2uQx7i$sHweZbnvyYRRmq3ElMFmB7F7AUkgfyq1LrFNUS40pse1VwHk89LRk8UVdCEli7LwFYEY13JhReRtsT2riKtBt1",
            "$1$63iaNj.s$QIUnzFShdIdqRVLz.Lgn60",
            "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
            "$pbkdf2-sha256$29000$g2Lty8UduDnSNyurHSsPaA$3RCgHK5K9prosgEDuERdw0lB.LD6romGK85C63Ifejo",
            "SCRAM-SHA-256$4096:ofrZXExYkeA/3Pr78y0zNA==$hH0H/Pc4V4Lr5gIAVdBmf7WlTWvCGVvgefPjCuScxPM=:u9D3VsExQUkMxPuKOPwlGCzWTz6fSTb4gOE+ZN4A7iU=",
            "md5ae683e9e3a46c249efd75afd69dd69d3",
            "pbkdf2_sha256$870000$ZcXbbzQ0x8C1pV1ej7TXmH$b+2V4/qGi9/TOFiA2E3InlzsDZ+sAr892eSPCHBXdB4=",
            "pbkdf2_sha1$260000$ZcXbbzQ0x8C1$yDzurNcMvcayWn+V46YLnJdAm0M=",
        ] {
            assert_eq!(hashes(hash), [hash]);
            assert_eq!(hashes(&format!("'{hash}',")), [hash], "in context");
        }
        // Django's algorithm prefix stays: the hash after it is masked.
        let bcrypt = "$2b$12$lfrdJVPP8jVS6d/0uaNgbuh9IfnZ5J48IfRnlDDkwmsdmH4HyHR3K";
        assert_eq!(hashes(&format!("bcrypt_sha256${bcrypt}")), [bcrypt]);
        let argon2 = "$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHQxMjM0NTY$d2hhdGV2ZXJ0aGVoYXNoaXNsb25nZW5vdWdo";
        assert_eq!(hashes(&format!("argon2{argon2}")), [argon2]);
        for text in [
            "total $5 and $6 each",
            "echo $2 $6$ $1$ $y$",
            "$2b$12$tooshort",
            "$6$salt$hash",
            "$argon2id$v=19$m=65536,t=3,p=4$",
            "SCRAM-SHA-256 is the default",
            "SCRAM-SHA-256$4096:c2FsdA==$short:short",
            "md5 d41d8cd98f00b204e9800998ecf8427e",
            "md5d41d8cd9",
            "md5d41d8cd98f00b204e9800998ecf8427e0",
            "xmd5d41d8cd98f00b204e9800998ecf8427e",
            "md5D41D8CD98F00B204E9800998ECF8427E",
            "pbkdf2_sha256$870000$",
            "use pbkdf2_sha256 with 870000 iterations",
        ] {
            assert_eq!(hashes(text), Vec::<&str>::new(), "{text}");
        }
    }
}
