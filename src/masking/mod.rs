//! Masking: sensitive values never reach the agent, or the recording.
//!
//! - [`detectors`]: the built-in value detectors (email, payment card with Luhn, SSN,
//!   IBAN, E.164 phone, AWS keys, GitHub/GitLab/Slack/Stripe tokens, JWTs, PEM private
//!   keys, password hashes (bcrypt, argon2, scrypt, crypt, SCRAM, PBKDF2), passwords
//!   in URLs, `password=`-style assignments).
//! - `scan`: one pass over the bytes that finds where each built-in detector could
//!   match (its triggers: an `@`, a `://`, a run of digits, a `$`...), so the patterns run
//!   only there.
//! - [`Masker`]: finds and replaces secrets in a whole text, in one of three [`Style`]s.
//! - [`StreamMasker`]: the same over a byte stream cut into arbitrary chunks: it holds
//!   back only the bytes a secret could still be growing into, so that for any chunking
//!   its output equals masking the whole text at once.

mod card;
pub mod detectors;
mod email;
mod scan;

use std::borrow::Cow;
use std::ops::Deref;

use aws_lc_rs::hmac;

pub use detectors::{Detector, Found};

/// How a detected value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `[MASKED:email]`.
    Redact,
    /// Keep a harmless part: an email's domain, a card's last four.
    Partial,
    /// `[MASKED:email:1a2b3c4d5e6f]`: keyed HMAC-SHA256, so equal values mask equally.
    Hash,
}

/// Finds and replaces secrets.
pub struct Masker {
    detectors: Vec<Detector>,
    style: Style,
    key: hmac::Key,
    /// Bytes a stream must hold back: the longest possible match, plus one byte of
    /// lookahead for a word boundary.
    holdback: usize,
    /// The built-in detectors in use, a bit per index in [`detectors::NAMES`].
    enabled: u16,
    /// Where each built-in detector (by index in [`detectors::NAMES`]) is in `detectors`.
    slot: [Option<usize>; detectors::NAMES.len()],
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("detectors", &self.detectors).field("style", &self.style).finish()
    }
}

/// The value masker of connection `name`: the detectors chosen by the first
/// `[[masking]]` rule that applies there and names some (all built-ins when none
/// does), in that rule's style, plus every applying rule's own patterns. Column rules
/// are the Postgres plugin's.
pub fn for_connection(config: &crate::config::Config, name: &str, hash_key: &[u8]) -> anyhow::Result<Masker> {
    use crate::config::MaskStyle;
    let rules: Vec<_> =
        config.masking.iter().filter(|r| r.connections.is_empty() || r.connections.iter().any(|c| c == name)).collect();
    let chooser = rules.iter().find(|r| r.detectors.is_some());
    let style = match chooser.map(|r| r.style) {
        None | Some(MaskStyle::Redact) => Style::Redact,
        Some(MaskStyle::Partial) => Style::Partial,
        Some(MaskStyle::Hash) => Style::Hash,
    };
    let mut masker = Masker::new(chooser.and_then(|r| r.detectors.as_deref()), style, hash_key);
    for p in rules.iter().flat_map(|r| &r.patterns) {
        masker.add(Detector::custom(&p.name, &p.regex, p.max_len)?);
    }
    Ok(masker)
}

/// Bytes of already-emitted text kept as context for word boundaries.
const CONTEXT: usize = 64;

impl Masker {
    /// A masker with `detectors` (all built-ins when `None`), a style and the HMAC key
    /// used by [`Style::Hash`].
    pub fn new(detectors: Option<&[String]>, style: Style, hash_key: &[u8]) -> Masker {
        let detectors: Vec<Detector> = detectors::builtin()
            .into_iter()
            .filter(|d| detectors.is_none_or(|names| names.iter().any(|n| *n == d.name)))
            .collect();
        let holdback = detectors.iter().filter(|d| d.anchor.is_none()).map(|d| d.max_len).max().unwrap_or(0) + 1;
        let mut slot = [None; detectors::NAMES.len()];
        let mut enabled = 0u16;
        for (i, id) in detectors.iter().enumerate().filter_map(|(i, d)| Some((i, d.builtin?))) {
            slot[id] = Some(i);
            enabled |= 1 << id;
        }
        Masker { detectors, style, key: hmac::Key::new(hmac::HMAC_SHA256, hash_key), holdback, enabled, slot }
    }

    /// How it replaces values.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Adds a detector after the others (lowest priority on overlaps).
    pub fn add(&mut self, detector: Detector) {
        if detector.anchor.is_none() {
            self.holdback = self.holdback.max(detector.max_len + 1);
        }
        self.detectors.push(detector);
    }

    /// Whether the masker has no detectors (and so never changes anything).
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// The replacement for a whole value of a column masked by a column rule.
    pub fn mask_column(&self, style: Style, value: &[u8], out: &mut Vec<u8>) {
        match style {
            Style::Redact => out.extend_from_slice(b"[MASKED]"),
            Style::Hash => {
                let tag = hmac::sign(&self.key, value);
                out.extend_from_slice(format!("[MASKED:{}]", hex::encode(&tag.as_ref()[..6])).as_bytes());
            }
            Style::Partial => {
                out.extend_from_slice(b"[MASKED]");
                if let Some(at) = value.iter().rposition(|b| *b == b'@') {
                    out.extend_from_slice(&value[at..]);
                } else if value.len() >= 12 && value.is_ascii() {
                    out.extend_from_slice(&value[value.len() - 4..]);
                }
            }
        }
    }

    /// Non-overlapping secrets in `text[from..]`, by position. Specific detectors go
    /// first: on overlap the earlier match wins, then the longer, then the detector
    /// listed first. Generic ones (`password=...`) fill in where nothing specific matched.
    pub fn find(&self, text: &[u8], from: usize) -> Vec<Found> {
        self.resolve(self.candidates(text, from))
    }

    /// Whether a token detector in use finds a token in `text` with no word boundary
    /// required around it ([`detectors::glued`]): for binary data, which cannot be
    /// masked in place, only searched.
    pub fn finds_glued(&self, text: &[u8]) -> bool {
        static GLUED: std::sync::OnceLock<Vec<Detector>> = std::sync::OnceLock::new();
        let mut found = Vec::new();
        GLUED.get_or_init(detectors::glued).iter().any(|d| {
            let in_use = d.builtin.is_some_and(|id| self.enabled & (1 << id) != 0);
            in_use && {
                d.find(0, text, 0..text.len(), &mut found);
                !found.is_empty()
            }
        })
    }

    /// What [`Masker::find`] finds when every detector searches all of `text[from..]`,
    /// triggers ignored: the reference the `scan` pass must agree with. For tests and
    /// the fuzz targets; far slower than `find`.
    #[doc(hidden)]
    pub fn find_unscanned(&self, text: &[u8], from: usize) -> Vec<Found> {
        let from = from.min(text.len());
        let mut all = Vec::new();
        for (i, d) in self.detectors.iter().enumerate() {
            d.find(i, text, from..text.len(), &mut all);
        }
        self.resolve(all)
    }

    /// Every validated match of every detector, overlaps included.
    fn candidates(&self, text: &[u8], from: usize) -> Vec<Found> {
        let mut all = Vec::new();
        let from = from.min(text.len());
        // Built-in patterns run only where the scan saw their triggers (for most text,
        // nowhere); config patterns, whose triggers nobody knows, over all of it.
        scan::spans(text, from, self.enabled, &mut |id, span| {
            if let Some(&Some(i)) = self.slot.get(id)
                && let Some(d) = self.detectors.get(i)
                && span.start <= span.end
            {
                d.find(i, text, span, &mut all);
            }
        });
        // Config patterns: whatever is not a built-in.
        if self.detectors.len() > self.enabled.count_ones() as usize {
            for (i, d) in self.detectors.iter().enumerate().filter(|(_, d)| d.builtin.is_none()) {
                d.find(i, text, from..text.len(), &mut all);
            }
        }
        all
    }

    fn resolve(&self, mut all: Vec<Found>) -> Vec<Found> {
        if all.len() <= 1 {
            return all;
        }
        all.sort_by_key(|f| (f.claim.0, std::cmp::Reverse(f.claim.1), f.detector));
        let (generic, specific): (Vec<Found>, Vec<Found>) =
            all.into_iter().partition(|f| self.detectors[f.detector].generic);
        let mut out: Vec<Found> = Vec::with_capacity(specific.len());
        for f in specific {
            if out.last().is_none_or(|last| f.claim.0 >= last.claim.1) {
                out.push(f);
            }
        }
        let mut taken: Vec<Found> = Vec::new();
        for g in generic {
            let clashes = |f: &Found| g.start < f.end && f.start < g.end;
            if !out.iter().any(clashes) && taken.last().is_none_or(|last| g.claim.0 >= last.claim.1) {
                taken.push(g);
            }
        }
        out.extend(taken);
        out.sort_by_key(|f| f.start);
        out
    }

    /// How many PEM private key headers (`-----BEGIN ... PRIVATE KEY-----`) `text`
    /// holds, where the `private_key` detector is in use (else 0). A key's header
    /// that only appears once escapes are decoded marks a key a stream would send most
    /// of before it could be found whole.
    pub fn private_key_headers(&self, text: &[u8]) -> usize {
        // The pattern is a constant the detector tests compile too.
        #[allow(clippy::expect_used)]
        static HEADER: std::sync::LazyLock<regex_automata::meta::Regex> =
            std::sync::LazyLock::new(|| detectors::compile(detectors::PEM_HEADER).expect("the PEM header pattern"));
        match self.enabled & (1 << scan::id::PRIVATE_KEY) {
            0 => 0,
            _ => HEADER.find_iter(text).count(),
        }
    }

    /// The longest match any detector can make, anchored ones (a PEM block, a JWT)
    /// included: the bytes before a cut that a match running across it can start in.
    pub fn longest_match(&self) -> usize {
        self.detectors.iter().map(|d| d.max_len).max().unwrap_or(0) + 1
    }

    /// Masks a whole text; borrows it back unchanged when nothing is found.
    pub fn mask<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let found = self.find(text, 0);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(self.replace(text, 0, text.len(), &found))
    }

    fn replace(&self, text: &[u8], from: usize, to: usize, found: &[Found]) -> Vec<u8> {
        let mut out = Vec::with_capacity(to - from + 32);
        let mut at = from;
        for f in found.iter().filter(|f| f.start >= from && f.end <= to) {
            out.extend_from_slice(&text[at..f.start]);
            self.replacement(&self.detectors[f.detector], &text[f.start..f.end], &mut out);
            at = f.end;
        }
        out.extend_from_slice(&text[at..to]);
        out
    }

    fn replacement(&self, d: &Detector, value: &[u8], out: &mut Vec<u8>) {
        match self.style {
            Style::Redact => {
                out.extend_from_slice(b"[MASKED:");
                out.extend_from_slice(d.name.as_bytes());
                out.push(b']');
            }
            Style::Hash => {
                let tag = hmac::sign(&self.key, value);
                out.extend_from_slice(format!("[MASKED:{}:{}]", d.name, hex::encode(&tag.as_ref()[..6])).as_bytes());
            }
            Style::Partial => {
                let keep: &[u8] = match &*d.name {
                    "email" => value.iter().position(|b| *b == b'@').map_or(&[][..], |at| &value[at..]),
                    "credit_card" | "iban" | "phone" => {
                        let digits: Vec<u8> = value.iter().copied().filter(u8::is_ascii_alphanumeric).collect();
                        let last = digits.len().saturating_sub(4);
                        out.extend_from_slice(format!("[MASKED:{}…", d.name).as_bytes());
                        out.extend_from_slice(&digits[last..]);
                        out.push(b']');
                        return;
                    }
                    _ => &[],
                };
                out.extend_from_slice(format!("[MASKED:{}]", d.name).as_bytes());
                out.extend_from_slice(keep);
            }
        }
    }

    /// A streaming masker over this one.
    pub fn stream(&self) -> StreamMasker<&Masker> {
        StreamMasker::new(self)
    }
}

/// Masks a byte stream chunk by chunk.
#[derive(Debug)]
pub struct StreamMasker<M: Deref<Target = Masker>> {
    masker: M,
    /// Context already emitted (at most [`CONTEXT`] bytes), then pending bytes.
    buf: Vec<u8>,
    /// How many bytes at the front of `buf` were already emitted.
    emitted: usize,
}

impl<M: Deref<Target = Masker>> StreamMasker<M> {
    /// A stream over `masker`: a reference, or an `Arc` for a stream that outlives
    /// the borrow (a session's).
    pub fn new(masker: M) -> Self {
        StreamMasker { masker, buf: Vec::new(), emitted: 0 }
    }

    /// The masker the stream runs.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Adds a chunk; returns what can be sent now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(chunk);
        let safe = self.buf.len().saturating_sub(self.masker.holdback);
        self.emit(safe.min(self.growing()))
    }

    /// Where a long secret (a PEM key, a JWT) that may still be growing from its
    /// anchor starts, or the end of the buffer.
    fn growing(&self) -> usize {
        let len = self.buf.len();
        let mut safe = len;
        for d in &self.masker.detectors {
            let Some(anchor) = d.anchor else { continue };
            let from = len.saturating_sub(d.max_len).max(self.emitted);
            if let Some(at) = memchr::memmem::find(&self.buf[from..], anchor) {
                safe = safe.min(from + at);
            }
        }
        safe
    }

    /// What a quiet stream may let out and still mask a secret whose pieces arrive
    /// apart in time: whole lines only, and nothing from a growing secret's anchor on.
    /// A secret split across lines is a transformation no pattern sees.
    pub fn flush_lines(&mut self) -> Vec<u8> {
        let pending = self.buf.get(self.emitted..).unwrap_or_default();
        let line_end = memchr::memrchr(b'\n', pending).map_or(self.emitted, |i| self.emitted + i + 1);
        self.emit(line_end.min(self.growing()))
    }

    /// Everything still held back (end of stream, or a flush timer firing: waiting
    /// longer could only help a secret that has not finished arriving).
    pub fn flush(&mut self) -> Vec<u8> {
        let len = self.buf.len();
        self.emit(len)
    }

    /// Bytes held back right now.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.emitted
    }

    fn emit(&mut self, limit: usize) -> Vec<u8> {
        if limit <= self.emitted {
            return Vec::new();
        }
        let all = self.masker.candidates(&self.buf, self.emitted);
        // Never cut through a match: stop before any (context included) crossing the limit.
        let cut = all
            .iter()
            .filter(|f| f.claim.1 > limit)
            .map(|f| f.claim.0)
            .min()
            .map_or(limit, |c| c.min(limit))
            .max(self.emitted);
        let found = self.masker.resolve(all);
        // Nor through a secret that won its overlap: its head would go out unmasked.
        let mut cut = cut;
        while let Some(start) =
            found.iter().filter(|f| f.claim.0 < cut && f.claim.1 > cut).map(|f| f.claim.0.min(f.start)).min()
        {
            cut = start.max(self.emitted);
            if cut == self.emitted {
                break;
            }
        }
        let out = self.masker.replace(&self.buf, self.emitted, cut, &found);
        // Keep a little context for word boundaries, drop the rest.
        let drop = cut.saturating_sub(CONTEXT);
        self.buf.drain(..drop);
        self.emitted = cut - drop;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masker(style: Style) -> Masker {
        Masker::new(None, style, b"test-key")
    }

    /// Compiled once: building a masker compiles every pattern.
    static REDACT: std::sync::LazyLock<Masker> = std::sync::LazyLock::new(|| masker(Style::Redact));

    #[test]
    fn styles() {
        let text = b"mail ada@example.com card 4111 1111 1111 1111 ok";
        let m = masker(Style::Redact);
        assert_eq!(m.mask(text).as_ref(), b"mail [MASKED:email] card [MASKED:credit_card] ok");
        let p = masker(Style::Partial);
        assert_eq!(
            String::from_utf8_lossy(&p.mask(text)),
            "mail [MASKED:email]@example.com card [MASKED:credit_card…1111] ok"
        );
        let h = masker(Style::Hash);
        let once = h.mask(b"x ada@example.com").into_owned();
        assert_eq!(once, h.mask(b"x ada@example.com").into_owned(), "same value, same mask");
        assert_ne!(once, h.mask(b"x bob@example.com").into_owned());
        assert!(matches!(m.mask(b"nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_value_cut_inside_a_character_takes_the_whole_character() {
        // The value's pattern stops after 128 bytes: inside the 2-byte `é`.
        let text = format!("password={}é rest", "a".repeat(127));
        let masked = REDACT.mask(text.as_bytes()).into_owned();
        assert_eq!(String::from_utf8(masked).unwrap(), "password=[MASKED:secret_assignment] rest");
    }

    const SAMPLES: &[&str] = &[
        "ada@example.com",
        "4111 1111 1111 1111",
        "AKIAIOSFODNN7EXAMPLE",
        "postgres://app:hunter2@db:5432/app",
        "password=s3cr3t-value",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0B",
        "GB82 WEST 1234 5698 7654 32",
        "+441632960961",
        "order 1234567812345670",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "glpat-abcdefghij0123456789",
        "xoxb-1234567890-abcdefghij",
        "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXX",
        "sk_live_abcdefghijklmnopqrstuvwx",
        "ssn 123-45-6789",
        "api_key: 'abcd1234é'",
        "DE89370400440532013000",
        "éada@exämple.com",
        "$2b$12$lfrdJVPP8jVS6d/0uaNgbuh9IfnZ5J48IfRnlDDkwmsdmH4HyHR3K",
        "$argon2id$v=19$m=65536,t=3,p=4$g2Lty8UduDnSNyurHSsPaA$1G+zx8nv515KTQfHFcOzSSeaYz05qwnCeTSZJl3Nl/w",
        "$6$rounds=656000$Mk2uQx7i$sHweZbnvyYRRmq3ElMFmB7F7AUkgfyq1LrFNUS40pse1VwHk89LRk8UVdCEli7LwFYEY13JhReRtsT2riKtBt1",
        "$1$63iaNj.s$QIUnzFShdIdqRVLz.Lgn60",
        "SCRAM-SHA-256$4096:ofrZXExYkeA/3Pr78y0zNA==$hH0H/Pc4V4Lr5gIAVdBmf7WlTWvCGVvgefPjCuScxPM=:u9D3VsExQUkMxPuKOPwlGCzWTz6fSTb4gOE+ZN4A7iU=",
        "md5ae683e9e3a46c249efd75afd69dd69d3",
        "pbkdf2_sha256$870000$ZcXbbzQ0x8C1pV1ej7TXmH$b+2V4/qGi9/TOFiA2E3InlzsDZ+sAr892eSPCHBXdB4=",
        "price $5 $6$ md5 d41d8cd9 $2",
    ];

    /// What every detector finds searching the whole text, triggers ignored.
    fn find_everywhere(m: &Masker, text: &[u8]) -> Vec<Found> {
        m.find_unscanned(text, 0)
    }

    #[test]
    fn spans_find_what_whole_text_search_finds_in_the_corpus() {
        let corpus = include_str!("../../fixtures/masking/corpus.tsv");
        let m = &*REDACT;
        for line in corpus.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let text = line.replace("\\n", "\n");
            assert_eq!(m.find(text.as_bytes(), 0), find_everywhere(m, text.as_bytes()), "{line}");
        }
    }

    #[test]
    fn a_stream_never_cuts_through_a_secret_that_won_its_overlap() {
        // The email claims "ada@example.compostgres"; the URL starting inside it loses.
        let m = &*REDACT;
        let text = format!("ada@example.compostgres://app:hunter2@db:5432/app {}", "x ".repeat(400));
        let whole = m.mask(text.as_bytes()).into_owned();
        let mut s = m.stream();
        let mut out = Vec::new();
        for b in text.as_bytes() {
            out.extend(s.push(std::slice::from_ref(b)));
        }
        out.extend(s.flush());
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&whole));
        assert!(whole.starts_with(b"[MASKED:email]://"));
    }

    /// A PEM key as a JSON string or a shell's `$'...'` writes it (`\n` for each line
    /// break, `\/` for a slash) is masked whole, in place, streamed too: its anchor
    /// holds the stream back, so no line of it goes out first.
    #[test]
    fn an_escaped_pem_key_is_masked_whole() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\\nMIIBVQIBADANBgkqhkiG9w0B\\/AQEFAASCAT8wggE7AgEAAkEA\\r\\n-----END RSA PRIVATE KEY-----";
        let text = format!("{{\"key\": \"{key}\", \"n\": 1}}\n");
        let want = "{\"key\": \"[MASKED:private_key]\", \"n\": 1}\n";
        assert_eq!(String::from_utf8_lossy(&REDACT.mask(text.as_bytes())), want);
        let mut s = REDACT.stream();
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(7) {
            out.extend(s.push(piece));
            out.extend(s.flush_lines());
        }
        out.extend(s.flush());
        assert_eq!(String::from_utf8_lossy(&out), want);
    }

    /// A candidate that fails its checksum can hold a valid secret: a card after
    /// another group of digits, or followed by one. Found whole, and the same in a
    /// stream cut anywhere (which starts its search where it last emitted).
    #[test]
    fn a_secret_inside_a_candidate_that_fails_its_checksum_is_still_masked() {
        let m = &*REDACT;
        for (text, masked) in [
            ("id 747-2-48475-432319-487 ok", "id 747-[MASKED:credit_card] ok"),
            ("card 4111 1111 1111 1111 2 ok", "card [MASKED:credit_card] 2 ok"),
            ("ref 9-4111-1111-1111-1111-2", "ref 9-[MASKED:credit_card]-2"),
            ("ssn 1-123-45-6789-1", "ssn 1-[MASKED:us_ssn]-1"),
        ] {
            assert_eq!(String::from_utf8_lossy(&m.mask(text.as_bytes())), masked, "{text}");
            for cut in 1..text.len() {
                let mut s = m.stream();
                let mut out = s.push(&text.as_bytes()[..cut]);
                out.extend(s.flush_lines());
                out.extend(s.push(&text.as_bytes()[cut..]));
                out.extend(s.flush());
                assert_eq!(String::from_utf8_lossy(&out), masked, "{text} cut at {cut}");
            }
        }
    }

    proptest! {
        /// Running the patterns only where the scan saw triggers finds exactly what
        /// running them everywhere finds, whatever surrounds the secrets.
        #[test]
        fn spans_find_what_whole_text_search_finds(
            parts in proptest::collection::vec((0usize..SAMPLES.len(), "[ a-zA-Z0-9.@:=_+$/\n\"'-]{0,12}"), 0..10),
            from in 0usize..40,
        ) {
            let m = &*REDACT;
            let text: Vec<u8> = parts.iter().flat_map(|(i, filler)| [filler.as_bytes(), SAMPLES[*i].as_bytes()].concat()).collect();
            prop_assert_eq!(m.find(&text, 0), find_everywhere(m, &text));
            prop_assert_eq!(m.find(&text, from), m.find_unscanned(&text, from));
        }

        /// Any bytes at all: no panic, the scan still agrees with searching everywhere,
        /// and streaming them in any cuts equals masking them whole.
        #[test]
        fn arbitrary_bytes(
            text in proptest::collection::vec(proptest::sample::select(b"@+:=-_JAwWaes 0123459.\n\xc3\xa9\xff/GBKI$md5y".to_vec()), 0..300),
            cut in 1usize..64,
        ) {
            let m = &*REDACT;
            prop_assert_eq!(m.find(&text, 0), find_everywhere(m, &text));
            let whole = m.mask(&text).into_owned();
            let mut s = m.stream();
            let mut out = Vec::new();
            for chunk in text.chunks(cut) {
                out.extend(s.push(chunk));
            }
            out.extend(s.flush());
            prop_assert_eq!(out, whole);
        }

        /// Masked UTF-8 is still UTF-8, even where a value ends inside a character.
        #[test]
        fn masked_text_stays_utf8(
            parts in proptest::collection::vec((0usize..SAMPLES.len(), "[a-zé€ 0-9=:@.-]{0,8}"), 0..8),
        ) {
            let m = &*REDACT;
            let text: String = parts.iter().map(|(i, filler)| format!("{}{filler}", SAMPLES[*i])).collect();
            let masked = m.mask(text.as_bytes()).into_owned();
            prop_assert!(String::from_utf8(masked).is_ok());
        }

        /// For any text and any chunking, streaming equals masking the whole at once.
        #[test]
        fn streaming_equals_whole_text(
            parts in proptest::collection::vec((0usize..SAMPLES.len(), "[ a-z.@:=\\n-]{0,12}"), 0..12),
            cuts in proptest::collection::vec(1usize..40, 1..20),
        ) {
            let m = &*REDACT;
            let text: Vec<u8> = parts.iter().flat_map(|(i, filler)| [SAMPLES[*i].as_bytes(), filler.as_bytes()].concat()).collect();
            let whole = m.mask(&text).into_owned();
            let mut s = m.stream();
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= text.len() { break; }
                let end = (at + c).min(text.len());
                out.extend(s.push(&text[at..end]));
                at = end;
            }
            out.extend(s.flush());
            prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&whole));
        }
    }

    /// Precision and recall per detector over `fixtures/masking/corpus.tsv`.
    #[test]
    fn corpus_precision_and_recall() {
        let m = &*REDACT;
        let corpus = include_str!("../../fixtures/masking/corpus.tsv");
        let mut stats: std::collections::BTreeMap<&str, (u32, u32, u32)> = Default::default(); // tp, fp, fn
        let mut misses = Vec::new();
        for line in corpus.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (label, text) = line.split_once('\t').unwrap();
            let text = text.replace("\\n", "\n");
            let fired: Vec<&str> = m.find(text.as_bytes(), 0).iter().map(|f| &*m.detectors[f.detector].name).collect();
            if label != "none" {
                if fired.contains(&label) {
                    stats.entry(label).or_default().0 += 1;
                } else {
                    stats.entry(label).or_default().2 += 1;
                    misses.push(format!("missed {label}: {text}"));
                }
            }
            for d in fired.iter().filter(|d| **d != label) {
                stats.entry(d).or_default().1 += 1;
                misses.push(format!("false {d}: {text}"));
            }
        }
        for (name, (tp, fp, fneg)) in &stats {
            let precision = *tp as f64 / (*tp + *fp).max(1) as f64;
            let recall = *tp as f64 / (*tp + *fneg).max(1) as f64;
            println!("{name:<18} precision {precision:.3} recall {recall:.3} ({tp} found, {fp} false, {fneg} missed)");
            assert!(recall == 1.0 && precision >= 0.99, "{name}: {misses:#?}");
        }
        assert!(corpus.lines().count() > 300);
    }
}
