//! Where a built-in detector could match: one pass over the bytes that marks, for each
//! detector, the spans its pattern could match in.
//!
//! Every span rule is a necessary condition of its detector's pattern: each match
//! contains a trigger (an `@` for an email, `://` for a URL password, a run of digits
//! for a card, a `$` and a crypt id for a password hash...) and lies within the
//! detector's reach of it. So running a pattern only inside its spans, merged, finds
//! exactly what running it over the whole text finds (the
//! `spans_find_what_whole_text_search_finds` property in `mod.rs` checks this), and
//! most text, which holds no trigger at all, costs one table lookup a byte.

use std::ops::Range;

/// How many built-in detectors there are (each has a bit in a `u16`).
const DETECTORS: usize = super::detectors::NAMES.len();
const _: () = assert!(DETECTORS <= 16);

/// Indices into [`super::detectors::NAMES`].
pub(super) mod id {
    pub const PRIVATE_KEY: usize = 0;
    pub const JWT: usize = 1;
    pub const AWS_ACCESS_KEY: usize = 2;
    pub const AWS_SECRET_KEY: usize = 3;
    pub const GITHUB_TOKEN: usize = 4;
    pub const GITLAB_TOKEN: usize = 5;
    pub const SLACK_TOKEN: usize = 6;
    pub const STRIPE_KEY: usize = 7;
    pub const PASSWORD_HASH: usize = 8;
    pub const URL_PASSWORD: usize = 9;
    pub const SECRET_ASSIGNMENT: usize = 10;
    pub const EMAIL: usize = 11;
    pub const CREDIT_CARD: usize = 12;
    pub const IBAN: usize = 13;
    pub const US_SSN: usize = 14;
    pub const PHONE: usize = 15;
}

/// How far each detector's match can reach around its trigger. These follow the
/// patterns in `detectors.rs`; change both together.
mod reach {
    /// Local part, before the `@`.
    pub const EMAIL_BEFORE: usize = 64;
    /// `@`, a label, four more, the top-level domain.
    pub const EMAIL_AFTER: usize = 1 + 63 + 4 * 64 + 1 + 24;
    /// The scheme before `://`.
    pub const URL_BEFORE: usize = 21;
    /// `://`, user, `:`, password, `@`.
    pub const URL_AFTER: usize = 3 + 64 + 1 + 128 + 1;
    /// `://hooks.slack.com/services/` and the path.
    pub const SLACK_HOOK_AFTER: usize = 28 + 100;
    /// What a keyword suffix can be preceded by (`access_` in `access_key`).
    pub const KEYWORD_PREFIX: usize = 7;
    /// Whitespace the assignment patterns allow around `=`/`:`.
    pub const SPACES: usize = 16;
    /// `=`, spaces, a quote, the value, a character's UTF-8 tail.
    pub const ASSIGNED_AFTER: usize = 1 + SPACES + 1 + 128 + 3;
    /// `aws`, then secret/key, then the key itself.
    pub const AWS_SECRET_AFTER: usize = 140;
    /// `SCRAM-SHA-256` or `pbkdf2_sha256`, before the `$` that triggers the span.
    pub const HASH_BEFORE: usize = 13;
    /// The longest password hash (argon2), from the `$` on: longer than any form
    /// reaches from its trigger.
    pub const HASH_AFTER: usize = 245;
    /// `md5` and 32 hex digits.
    pub const MD5_ROLE: usize = 35;
}

/// Bytes that trigger a look at their neighbours. Digits are not among them: cards,
/// SSNs and IBANs are found by [`runs`].
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < SPECIALS.len() {
        t[SPECIALS[i] as usize] = true;
        i += 1;
    }
    t
};
const SPECIALS: &[u8; 12] = b"@+:=-_JAwW$m";

/// Bytes a card, an SSN or an IBAN is made of.
fn in_run(b: u8) -> bool {
    RUN[b as usize]
}
const RUN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_digit() || c.is_ascii_uppercase() || c == b' ' || c == b'-';
        b += 1;
    }
    t
};

/// The shortest card, SSN or IBAN match: an SSN's `ddd-dd-dddd`.
const SHORTEST_RUN: usize = 11;
/// Run sampling stride: any run of `SHORTEST_RUN` bytes holds a sampled byte.
const STRIDE: usize = 11;
const _: () = assert!(STRIDE <= SHORTEST_RUN);

const KEYWORDS: [&[u8]; 6] = [b"password", b"passwd", b"pwd", b"secret", b"token", b"key"];

/// Calls `search(detector id, span)` for each span of `text[from..]` where one of the
/// detectors in `enabled` (a bit per id) could match, merged per detector, once the
/// span is whole. Bytes before `from` are context only.
pub(super) fn spans(text: &[u8], from: usize, enabled: u16, search: &mut dyn FnMut(usize, Range<usize>)) {
    let mut scan = Scan { text, from, enabled, search, open: 0, spans: [(0, 0); DETECTORS] };
    runs(text, from, &mut |id, span| scan.add(id, span.start, span.end));
    // A block's special bytes as a bit mask, built without branches, then visited bit
    // by bit: text is full of specials at irregular places (dashes, colons), and a
    // branch per byte would be mispredicted at each.
    let mut block = from;
    for bytes in text.get(from..).unwrap_or_default().chunks(64) {
        let mut mask = 0u64;
        for (k, &b) in bytes.iter().enumerate() {
            mask |= u64::from(SPECIAL[b as usize]) << k;
        }
        while mask != 0 {
            scan.special(block + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
        block += bytes.len();
    }
    for (id, &(start, end)) in scan.spans.iter().enumerate() {
        if scan.open & (1 << id) != 0 {
            (scan.search)(id, start..end);
        }
    }
}

struct Scan<'t> {
    text: &'t [u8],
    from: usize,
    enabled: u16,
    search: &'t mut dyn FnMut(usize, Range<usize>),
    /// Each detector's span still open to merging, where its bit in `open` is set.
    spans: [(usize, usize); DETECTORS],
    open: u16,
}

impl Scan<'_> {
    fn on(&self, id: usize) -> bool {
        self.enabled & (1 << id) != 0
    }

    /// A span around a trigger, clipped to what may be searched and merged into the
    /// detector's previous span when they meet.
    fn add(&mut self, id: usize, start: usize, end: usize) {
        if !self.on(id) {
            return;
        }
        let (start, end) = (start.max(self.from), end.min(self.text.len()));
        let Some(open) = self.spans.get_mut(id) else { return };
        if self.open & (1 << id) != 0 {
            if start <= open.1 {
                *open = (open.0.min(start), open.1.max(end));
                return;
            }
            // Triggers come in order, so no later span can reach back into this one.
            (self.search)(id, open.0..open.1);
        }
        *open = (start, end);
        self.open |= 1 << id;
    }

    fn at(&self, i: usize) -> u8 {
        self.text.get(i).copied().unwrap_or(0)
    }

    // Literal checks look at one telling byte before comparing slices, which are calls.
    fn before(&self, p: usize, s: &[u8]) -> bool {
        p >= s.len() && self.text.get(p - 1) == s.last() && self.text.get(p - s.len()..p) == Some(s)
    }

    fn starts(&self, p: usize, s: &[u8]) -> bool {
        self.text.get(p + 1) == s.get(1) && self.text.get(p..).is_some_and(|t| t.starts_with(s))
    }

    /// Whether the `$` at `p` starts a password hash's id (`$2b$`, `$argon2id$`, `$6$`,
    /// `$scrypt$`...) or ends the prefix of one (`SCRAM-SHA-256$`, `pbkdf2_sha256$`).
    /// Out of line: `$` is rare, and inlined these checks slow the dispatch of every
    /// other special byte.
    #[cold]
    #[inline(never)]
    fn hash_dollar(&self, p: usize) -> bool {
        if self.before(p, b"SCRAM-SHA-256") || self.before(p, b"pbkdf2_sha256") || self.before(p, b"pbkdf2_sha1") {
            return true;
        }
        let after = self.text.get(p + 1..).unwrap_or_default();
        match after.first() {
            Some(b'1' | b'5' | b'6' | b'7' | b'y') => after.get(1) == Some(&b'$'),
            Some(b'2') => matches!(after.get(1), Some(b'a' | b'b' | b'x' | b'y')) && after.get(2) == Some(&b'$'),
            Some(b'a') => after.starts_with(b"argon2") || after.starts_with(b"apr1$"),
            Some(b's') => after.starts_with(b"scrypt$"),
            Some(b'p') => after.starts_with(b"pbkdf2"),
            _ => false,
        }
    }

    /// The spans a special byte at `p` opens.
    fn special(&mut self, p: usize) {
        let len = self.text.len();
        let b = self.at(p);
        match b {
            b'@' => self.add(id::EMAIL, p.saturating_sub(reach::EMAIL_BEFORE), p + reach::EMAIL_AFTER + 1),
            b'+' => self.add(id::PHONE, p, p + 16),
            b'A' => {
                let word = self.text.get(p..p + 4).unwrap_or_default();
                if [&b"AKIA"[..], b"ASIA", b"ABIA", b"ACCA"].contains(&word) {
                    self.add(id::AWS_ACCESS_KEY, p, p + 20);
                }
            }
            b'J' if self.before(p, b"ey") => self.add(id::JWT, p - 2, len),
            b'$' if self.on(id::PASSWORD_HASH) && self.hash_dollar(p) => {
                self.add(id::PASSWORD_HASH, p.saturating_sub(reach::HASH_BEFORE), p + reach::HASH_AFTER)
            }
            b'm' if self.starts(p, b"md5") => self.add(id::PASSWORD_HASH, p, p + reach::MD5_ROLE),
            b'w' | b'W'
                if p >= 1
                    && self.at(p - 1).eq_ignore_ascii_case(&b'a')
                    && self.at(p + 1).eq_ignore_ascii_case(&b's') =>
            {
                self.add(id::AWS_SECRET_KEY, p - 1, p - 1 + reach::AWS_SECRET_AFTER)
            }
            b'_' => {
                if p >= 3 && self.before(p - 1, b"gh") && b"pousr".contains(&self.at(p - 1)) {
                    self.add(id::GITHUB_TOKEN, p - 3, p + 37);
                }
                if self.before(p, b"github") && self.starts(p, b"_pat_") {
                    self.add(id::GITHUB_TOKEN, p - 6, p + 5 + 82);
                }
                if (self.before(p, b"sk") || self.before(p, b"rk") || self.before(p, b"pk"))
                    && (self.starts(p, b"_live_") || self.starts(p, b"_test_"))
                {
                    self.add(id::STRIPE_KEY, p - 2, p + 6 + 99);
                }
            }
            b'-' => {
                if self.starts(p, b"-----BEGIN ") {
                    self.add(id::PRIVATE_KEY, p, len);
                }
                if self.before(p, b"glpat") {
                    self.add(id::GITLAB_TOKEN, p - 5, p + 21);
                }
                if p >= 4 && self.before(p - 1, b"xox") && b"baprs".contains(&self.at(p - 1)) {
                    self.add(id::SLACK_TOKEN, p - 4, p + 1 + 250);
                }
            }
            _ => {}
        }
        if b == b':' && self.starts(p, b"://") {
            self.add(id::URL_PASSWORD, p.saturating_sub(reach::URL_BEFORE), p + reach::URL_AFTER);
            if self.starts(p, b"://hooks.slack.com/services/") {
                self.add(id::SLACK_TOKEN, p.saturating_sub(5), p + reach::SLACK_HOOK_AFTER);
            }
        }
        if (b == b'=' || b == b':')
            && self.on(id::SECRET_ASSIGNMENT)
            && let Some(start) = keyword_before(self.text, p)
        {
            self.add(id::SECRET_ASSIGNMENT, start, p + reach::ASSIGNED_AFTER);
        }
    }
}

/// Runs of digits, capitals, spaces and dashes long enough to hold a card, an SSN or
/// an IBAN (each is such a run, at least [`SHORTEST_RUN`] bytes long), found by
/// sampling every [`STRIDE`]th byte, each with the detectors whose digit and capital
/// counts it meets.
fn runs(text: &[u8], from: usize, span: &mut impl FnMut(usize, Range<usize>)) {
    let run_byte = |i: usize| text.get(i).is_some_and(|b| in_run(*b));
    let mut p = from;
    while let Some(&b) = text.get(p) {
        // Most samples miss; a space or a dash only matters between run bytes.
        let digit_or_capital = b.is_ascii_digit() || b.is_ascii_uppercase();
        if !digit_or_capital && !((b == b' ' || b == b'-') && (run_byte(p + 1) || (p > from && run_byte(p - 1)))) {
            p += STRIDE;
            continue;
        }
        let head = text.get(from..p).unwrap_or_default();
        let start = p - head.iter().rev().take_while(|b| in_run(**b)).count();
        let end = p + text.get(p..).unwrap_or_default().iter().take_while(|b| in_run(**b)).count();
        let run = text.get(start..end).unwrap_or_default();
        if run.len() >= SHORTEST_RUN {
            let (mut digits, mut capitals, mut dashed) = (0usize, 0usize, false);
            for &b in run {
                digits += usize::from(b.is_ascii_digit());
                capitals += usize::from(b.is_ascii_uppercase());
                dashed |= b == b'-';
            }
            if digits >= 13 {
                span(id::CREDIT_CARD, start..end);
            }
            // Dates and times make many dashed runs; only the SSN shape is worth a search.
            if digits >= 9 && dashed && run.windows(11).any(ssn_shaped) {
                span(id::US_SSN, start..end);
            }
            if digits >= 2 && capitals >= 2 {
                span(id::IBAN, start..end);
            }
        }
        // The next sample after the run: the run ends at a byte outside it.
        p = end + STRIDE;
    }
}

/// `ddd-dd-dddd`.
fn ssn_shaped(w: &[u8]) -> bool {
    w.iter().enumerate().all(|(i, b)| if i == 3 || i == 6 { *b == b'-' } else { b.is_ascii_digit() })
}

/// Where a `password`/`secret`/`token`/`...key` keyword ends before the assignment at
/// `op`, past spaces and a quote: the start of the span that could hold the match.
fn keyword_before(text: &[u8], op: usize) -> Option<usize> {
    let mut end = op;
    let floor = op.saturating_sub(reach::SPACES);
    // The patterns' ASCII `\s`, which unlike `is_ascii_whitespace` includes `\x0b`.
    let space = |b: &u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
    while end > floor && text.get(end - 1).is_some_and(space) {
        end -= 1;
    }
    if end > 0 && matches!(text.get(end - 1), Some(b'"' | b'\'')) {
        end -= 1;
    }
    let head = text.get(..end)?;
    // Every keyword ends in one of these.
    if !matches!(head.last()?.to_ascii_lowercase(), b'd' | b't' | b'n' | b'y') {
        return None;
    }
    KEYWORDS.iter().find_map(|k| {
        let start = end.checked_sub(k.len())?;
        head.get(start..)?.eq_ignore_ascii_case(k).then(|| start.saturating_sub(reach::KEYWORD_PREFIX))
    })
}
