//! The reply side: what the agent may see of a response, and what is recorded of it.
//!
//! - JSON bodies are read whole (up to `max_body`) and masked value by value: JSON
//!   paths and key globs mask values whole, the value detectors look at every other
//!   string. Everything else is copied byte for byte.
//! - Text bodies stream through the detectors; where JSON rules apply they are read
//!   whole and JSON is found in them wherever a reader would find it.
//! - Compressed bodies that must be masked are decoded first (gzip, deflate, br, zstd)
//!   and sent decoded; an encoding Airlock cannot decode is refused, not passed.
//! - Binary bodies pass untouched.
//! - Headers: `Set-Cookie` values, secret-looking query values in `Location`, and
//!   anything a detector finds in any header value are masked.
//!
//! Nothing is ever sent that could not be masked: JSON that does not parse where it
//! names a key the rules mask, a masked key in YAML, XML or `key=value` text, an
//! escaped secret, or binary data hiding either is refused (502, a 1011 close, or a
//! cut stream).

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use airlock_http::json::{self, JsonMasker, JsonRules, Why};
use airlock_http::record::Event;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, SET_COOKIE};

use super::error::{AgentBody, Reply};
use super::session::{Session, body_end};
use super::upstream::BoxError;
use crate::masking::{Masker, Style};

/// A connection's response masking.
pub struct Masking {
    /// Value detectors (none: nothing is detected).
    pub masker: Option<Arc<Masker>>,
    /// JSON paths and key globs masked whole.
    pub json: JsonRules,
    /// How whole values are replaced.
    pub style: Style,
}

impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masking").finish_non_exhaustive()
    }
}

impl Masking {
    /// Nothing masked.
    pub const NONE: Masking =
        Masking { masker: None, json: JsonRules { paths: Vec::new(), keys: Vec::new() }, style: Style::Redact };

    /// Whether JSON paths or keys are masked here.
    pub fn keys_masked(&self) -> bool {
        !self.json.paths.is_empty() || !self.json.keys.is_empty()
    }

    /// Whether anything is masked on this connection.
    pub fn active(&self) -> bool {
        self.masker.is_some() || !self.json.paths.is_empty() || !self.json.keys.is_empty()
    }
}

/// How a body reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Json,
    /// Text; `lines`: a stream of events or records, let out line by line.
    Text {
        lines: bool,
    },
    Binary,
}

fn shape(headers: &HeaderMap) -> Shape {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return Shape::Text { lines: false } };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    match (kind, sub) {
        (_, "json") => Shape::Json,
        (_, s) if s.ends_with("+json") => Shape::Json,
        ("text", "event-stream") | ("application", "x-ndjson" | "jsonl" | "x-jsonlines") => Shape::Text { lines: true },
        ("text", _) => Shape::Text { lines: false },
        ("application", "xml" | "javascript" | "x-www-form-urlencoded" | "graphql" | "yaml" | "x-yaml" | "toml") => {
            Shape::Text { lines: false }
        }
        (_, s) if s.ends_with("+xml") => Shape::Text { lines: false },
        _ => Shape::Binary,
    }
}

/// The encodings Airlock can decode, in the order it offers them upstream.
const DECODABLE: [&str; 5] = ["gzip", "x-gzip", "deflate", "br", "zstd"];

/// Narrows the agent's `Accept-Encoding` to what Airlock can decode.
pub fn narrow_accept_encoding(headers: &mut HeaderMap) {
    let Some(value) = headers.get(hyper::header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else { return };
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|t| {
            let coding = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            DECODABLE.contains(&coding.as_str()) || coding == "identity"
        })
        .collect();
    match HeaderValue::from_str(&kept.join(", ")) {
        Ok(v) if !kept.is_empty() => {
            headers.insert(hyper::header::ACCEPT_ENCODING, v);
        }
        _ => {
            headers.remove(hyper::header::ACCEPT_ENCODING);
        }
    }
}

/// Refuses a response whose body two readers may decode differently: two content
/// types or encodings, or a transfer coding other than `chunked` (which hyper would
/// leave applied to the body it hands on).
pub fn check_response_head(headers: &HeaderMap) -> Result<(), String> {
    let count = |name| headers.get_all(name).iter().count();
    if count(CONTENT_TYPE) > 1 || count(CONTENT_ENCODING) > 1 {
        return Err("the response names more than one content type or encoding, so Airlock cannot mask it".into());
    }
    let coding = headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if coding {
        return Err("the response has a transfer coding Airlock cannot decode to mask".into());
    }
    if headers.get(CONTENT_ENCODING).is_some_and(|v| v.as_bytes().contains(&b',')) {
        return Err("the response is encoded more than once, so Airlock cannot mask it".into());
    }
    Ok(())
}

/// Masks response headers in place.
pub fn mask_headers(headers: &mut HeaderMap, masking: &Masking) {
    let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for value in cookies {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let (pair, attributes) = text.split_once(';').map_or((text.as_str(), ""), |(p, a)| (p, a));
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let masked = match attributes.is_empty() {
            true => format!("{name}=[MASKED]"),
            false => format!("{name}=[MASKED];{attributes}"),
        };
        if let Ok(v) = HeaderValue::from_str(&masked) {
            headers.append(SET_COOKIE, v);
        }
    }
    if let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok())
        && let Some((base, query)) = location.split_once('?')
    {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if secret_name(name) => format!("{name}=[MASKED]"),
                _ => pair.to_owned(),
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("{base}?{}", masked.join("&"))) {
            headers.insert(LOCATION, v);
        }
    }
    if let Some(masker) = &masking.masker {
        // A header whose very name carries a secret cannot be masked in place.
        let named: Vec<_> =
            headers.keys().filter(|n| !masker.find(n.as_str().as_bytes(), 0).is_empty()).cloned().collect();
        for name in named {
            headers.remove(name);
        }
        for value in headers.values_mut() {
            if let std::borrow::Cow::Owned(masked) = masker.mask(value.as_bytes())
                && let Ok(v) = HeaderValue::from_bytes(&masked)
            {
                *value = v;
            }
        }
    }
}

/// Whether a query parameter's name says it carries a secret.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "passwd", "key", "sig", "code", "auth", "session", "credential"]
        .iter()
        .any(|s| name.contains(s))
}

/// The response body the agent gets, masked as the connection asks, recorded up to
/// `record_body`. `Err` when it cannot be made safe to show.
///
/// A body labelled binary is looked at all the same: one that reads as text (no NUL
/// byte, valid UTF-8) is masked as text, since an API can be asked for a file's raw
/// bytes under any media type. Text in an encoding the detectors cannot read (UTF-16,
/// UTF-32) is refused.
pub async fn response_body(
    headers: &mut HeaderMap,
    body: Incoming,
    masking: &Masking,
    max_body: usize,
    record: Recorded,
) -> Result<AgentBody, Reply> {
    let shape = shape(headers);
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e != "identity");
    if !masking.active() {
        return Ok(record.wrap(body.map_err(BoxError::from).boxed()));
    }
    if let Some(charset) = charset(headers).filter(|c| !readable_charset(c)) {
        return Err(Reply::BadGateway(format!(
            "the response is in charset {charset:?}, which Airlock cannot read to mask"
        )));
    }
    if let Some(e) = &encoding
        && !DECODABLE.contains(&e.as_str())
    {
        return Err(Reply::BadGateway(format!(
            "the response is encoded as {e:?}, which Airlock cannot decode to mask"
        )));
    }
    // Where rules mask JSON by path or key, JSON under any other label (a JSON
    // document, JSON lines, server-sent events carrying JSON) must be found: such
    // bodies are read whole.
    let keys_masked = masking.keys_masked();
    let streamed = match shape {
        Shape::Json => false,
        Shape::Text { .. } => !keys_masked,
        // Large downloads stream; one that turns out to be JSON is refused below.
        Shape::Binary => true,
    };
    if encoding.is_none() && streamed {
        let mut body = body.map_err(BoxError::from).boxed();
        if shape == Shape::Binary && keys_masked {
            // Decided before the agent hears anything: JSON under a binary label is refused.
            let first = match body.frame().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(Reply::BadGateway(format!("reading the body failed: {e}"))),
                None => return Ok(record.wrap(super::error::full(Bytes::new()))),
            };
            if let Some(data) = first.data_ref()
                && !looks_binary(data)
                && matches!(data.iter().find(|c| !c.is_ascii_whitespace()), Some(b'{' | b'['))
            {
                return Err(Reply::BadGateway(
                    "a response labelled binary carries JSON, which Airlock masks by path only when it is labelled as JSON".into(),
                ));
            }
            body = Prefixed { first: Some(first), rest: body }.boxed();
        }
        headers.remove(CONTENT_LENGTH);
        let Some(masker) = masking.masker.clone() else {
            return Ok(record.wrap(body));
        };
        let mode = match shape {
            Shape::Binary => Mode::Sniff,
            _ => Mode::Text,
        };
        let lines = matches!(shape, Shape::Text { lines: true });
        let masked = MaskedText {
            inner: body,
            masker: crate::masking::StreamMasker::new(masker),
            lines,
            done: false,
            mode,
            seen: false,
            shown: Vec::new(),
            pending: Vec::new(),
            hold: None,
        };
        return Ok(record.wrap(masked.boxed()));
    }
    let raw = read_capped(body, max_body, false).await?;
    let plain = match &encoding {
        Some(e) => decode(e, &raw, max_body)?,
        None => raw.to_vec(),
    };
    let masked = match shape {
        Shape::Json => mask_json(&plain, masking)?,
        Shape::Binary if looks_binary(&plain) => plain,
        _ if unreadable_text(&plain) => {
            return Err(Reply::BadGateway(
                "the response is text Airlock cannot read (UTF-16 or UTF-32) to mask".into(),
            ));
        }
        _ if keys_masked => mask_text_holding_json(&plain, masking)?,
        _ => match &masking.masker {
            Some(m) => m.mask(&plain).into_owned(),
            None => plain,
        },
    };
    headers.remove(CONTENT_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(masked.len()));
    Ok(record.wrap(super::error::full(masked)))
}

/// A WebSocket message's data as the agent may see it, masked as a body would be:
/// a text message as text, a binary one as text when it reads as text. `Err` when it
/// cannot be made safe to show: JSON the rules apply to that does not parse, text
/// the detectors cannot read (a NUL in it: UTF-16), or binary data in which a secret
/// or a key the rules mask shows (in the bytes themselves, read as UTF-16, or
/// compressed), since binary data cannot be masked in place. `max` caps what a compressed
/// message may inflate to.
pub fn message<'a>(
    data: &'a [u8],
    text: bool,
    masking: &Masking,
    max: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, Reply> {
    use std::borrow::Cow;
    if !masking.active() {
        return Ok(Cow::Borrowed(data));
    }
    if !text && looks_binary(data) {
        return binary_shows_nothing(data, masking, max, 0).map(|()| Cow::Borrowed(data));
    }
    if memchr::memchr(0, data.strip_suffix(b"\0").unwrap_or(data)).is_some() {
        return Err(Reply::BadGateway("the message is text Airlock cannot read (UTF-16 or UTF-32) to mask".into()));
    }
    // JSON is read as JSON even without rules for it, so that the detectors see
    // strings as the agent's parser will (`\u0041KIA...` is `AKIA...`).
    let masked = mask_text_holding_json(data, masking)?;
    // Binary data that reads as text may still be a binary format's strings, glued
    // to their length bytes; a token left there cannot be masked in place.
    if !text && masking.masker.as_ref().is_some_and(|m| m.finds_glued(&masked)) {
        return Err(Reply::BadGateway(
            "the binary message holds a token glued to the bytes around it, which Airlock cannot mask in place".into(),
        ));
    }
    Ok(Cow::Owned(masked))
}

/// `Ok` when nothing in binary data would be masked: no key the JSON rules mask named
/// in it, no secret in its bytes or in them read as UTF-16, and none in what any
/// compressed stream in it inflates to ([`compressed_streams`]; `depth` layers down
/// already, a third is refused).
fn binary_shows_nothing(data: &[u8], masking: &Masking, max: usize, depth: u8) -> Result<(), Reply> {
    let shows = |why: &str| {
        Err(Reply::BadGateway(format!("the binary message holds {why}, which Airlock cannot mask in place")))
    };
    if masking.keys_masked() && key_named(data, &masking.json) {
        return shows("a key the JSON rules mask");
    }
    if let Some(m) = &masking.masker {
        if !m.find(data, 0).is_empty() {
            return shows("a secret");
        }
        if m.finds_glued(data) {
            return shows("a token glued to the bytes around it");
        }
        if shows_escaped(m, data) {
            return shows("an escaped secret");
        }
        let narrow: Vec<u8> = data.iter().copied().filter(|b| *b != 0).collect();
        if narrow.len() < data.len() && !m.find(&narrow, 0).is_empty() {
            return shows("a secret in UTF-16");
        }
    }
    let streams = compressed_streams(data);
    if streams.is_empty() {
        return Ok(());
    }
    if streams.len() > MAX_STREAMS {
        return shows(&format!("more than {MAX_STREAMS} compressed streams"));
    }
    if depth >= 2 {
        return shows("compressed data three layers deep");
    }
    // What a lenient reader gets out of each stream, even a cut or damaged one, all
    // of them within `max`.
    let mut budget = max;
    for (codec, at) in streams {
        let (inflated, whole) = inflate(codec, &data[at..], budget);
        if inflated.len() > budget {
            return shows(&format!("{} data that inflates past max_body", codec.name()));
        }
        budget -= inflated.len();
        // A gzip stream at the start or a zstd frame that breaks is refused; the
        // magic bytes of the others turn up in ordinary binary data now and then,
        // which inflates to little before it breaks.
        if !whole && (codec == Codec::Gzip && at == 0 || codec == Codec::Zstd) {
            return shows(&format!("{} data Airlock cannot inflate to check", codec.name()));
        }
        let clean = match looks_binary(&inflated) {
            true => binary_shows_nothing(&inflated, masking, budget, depth + 1).is_ok(),
            false => message(&inflated, true, masking, budget).is_ok_and(|same| same.as_ref() == inflated.as_slice()),
        };
        if !clean {
            return shows(&format!("{} data with something to mask in it", codec.name()));
        }
    }
    Ok(())
}

/// Compressed streams looked into in one binary message; more are refused.
const MAX_STREAMS: usize = 64;

/// A compression format found in binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Gzip,
    Zlib,
    /// Raw deflate, as in a zip entry.
    Deflate,
    Zstd,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Deflate => "zip",
            Codec::Zstd => "zstd",
        }
    }
}

/// Where compressed streams may start in binary data: zlib within its first 16 bytes
/// (after a length prefix; its two bytes of header are too common to look for
/// further on); gzip members and zstd frames anywhere (their magic numbers); and zip
/// entries, after their local headers, read as deflated whatever method the header
/// names (a reader may go by the central directory instead). Brotli and bare
/// deflate carry no mark, so they cannot be found.
fn compressed_streams(data: &[u8]) -> Vec<(Codec, usize)> {
    let mut found = Vec::new();
    for at in 0..data.len().min(16) {
        if let [first, second, ..] = data[at..]
            && first & 0x0f == 8
            && first >> 4 <= 7
            && (u16::from(first) << 8 | u16::from(second)) % 31 == 0
        {
            found.push((Codec::Zlib, at));
        }
    }
    found.extend(memchr::memmem::find_iter(data, b"\x1f\x8b\x08").map(|at| (Codec::Gzip, at)));
    found.extend(memchr::memmem::find_iter(data, b"\x28\xb5\x2f\xfd").map(|at| (Codec::Zstd, at)));
    for at in memchr::memmem::find_iter(data, b"PK\x03\x04") {
        let field = |i: usize| data.get(at + i..at + i + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
        // The data follows the name and the extra field.
        if let (Some(name), Some(extra)) = (field(26), field(28)) {
            found.push((Codec::Deflate, (at + 30 + name + extra).min(data.len())));
        }
    }
    found
}

/// The `charset` parameter of the content type, lower-case.
fn charset(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    })
}

/// Charsets in which ASCII secrets are ASCII bytes.
fn readable_charset(c: &str) -> bool {
    matches!(c, "utf-8" | "utf8" | "us-ascii" | "ascii" | "iso-8859-1" | "latin1" | "windows-1252")
}

/// Whether bytes are binary data rather than text: a NUL byte early on, or not UTF-8
/// (a character cut at the end aside).
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if memchr::memchr(0, head).is_some() {
        return true;
    }
    match std::str::from_utf8(head) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    }
}

/// Text in UTF-16 or UTF-32, which byte-oriented detectors cannot read.
fn unreadable_text(bytes: &[u8]) -> bool {
    let bom = bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]);
    bom || memchr::memchr(0, &bytes[..bytes.len().min(8192)]).is_some()
}

/// Text that may hold JSON (a body not labelled JSON, a WebSocket message), masked:
/// a whole JSON document, and on each line JSON that starts the line or follows a
/// prefix (`data: {...}`, Socket.IO's `42[...]`), are masked as JSON; the rest goes
/// to the detectors. Lines end where any reader might end them (LF, CR, RS, NEL, LS,
/// PS); a byte-order mark is skipped. On a connection with JSON path or key rules,
/// a line that starts like JSON but does not parse is refused: the rules could not
/// be applied to it. Text the detectors find a secret in once its escapes are decoded
/// (`\u0041KIA...`) is refused too: it cannot be masked where it stands.
fn mask_text_holding_json(body: &[u8], masking: &Masking) -> Result<Vec<u8>, Reply> {
    text_holding_json_at(body, masking, 0)
}

/// [`mask_text_holding_json`] for text `depth` strings deep in a JSON document.
fn text_holding_json_at(body: &[u8], masking: &Masking, depth: u8) -> Result<Vec<u8>, Reply> {
    /// Brackets tried on one line before the rest of it is judged at once.
    const ATTEMPTS: usize = 16;
    let refused = || Reply::BadGateway("the response carries JSON Airlock cannot parse to mask its fields".into());
    let (bom, text) = match body.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (&body[..3], rest),
        None => (&body[..0], body),
    };
    let lead = |b: &[u8]| b.iter().position(|c| !c.is_ascii_whitespace());
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(bom);
    if lead(text).is_some_and(|i| matches!(text[i], b'{' | b'[' | b'"'))
        && json::check(text).is_ok()
        && let Ok(masked) = json_strict_at(text, masking, depth)
    {
        out.extend(masked);
        return Ok(out);
    }
    let mut broken = BrokenJson::new(text.len(), &masking.json);
    // Text around the JSON: where it holds a masked key as YAML, XML or `key=value`
    // would, the value cannot be masked in place.
    let plain = |part: &[u8], out: &mut Vec<u8>| {
        if masking.keys_masked() && key_in_text(part, &masking.json) {
            return Err(Reply::BadGateway(
                "the response names a key the JSON rules mask outside JSON (YAML, XML or key=value), which Airlock cannot mask in place".into(),
            ));
        }
        detect(part, masking, out)
    };
    // Runs of lines without JSON go to the detectors whole, one scan per run.
    let mut run = 0;
    for (start, line) in lines(text) {
        // What may follow a JSON value on its line: white space, and a NUL (STOMP).
        let content_end = line.iter().rposition(|b| !b.is_ascii_whitespace() && *b != 0).map_or(0, |i| i + 1);
        let content = &line[..content_end];
        // Each bracket in turn: `[INFO] {...}` holds JSON after a bracket that is not.
        let brackets = memchr::memchr2_iter(b'{', b'[', content);
        for (attempt, at) in brackets.enumerate() {
            // Validated first: a failed attempt must not have masked (and recursed
            // into) the strings it passed.
            if json::check(&content[at..]).is_ok()
                && let Ok(masked) = json_strict_at(&content[at..], masking, depth)
            {
                plain(&text[run..start + at], &mut out)?;
                out.extend(masked);
                run = start + content_end;
                break;
            }
            // JSON that cannot be read where rules would apply to it.
            if masking.keys_masked() {
                let hides = match attempt + 1 < ATTEMPTS {
                    true => broken.may_hide(&text[start + at..]),
                    false => broken.rest_may_hide(&text[start + at..]),
                };
                if hides {
                    return Err(refused());
                }
            }
            if attempt + 1 == ATTEMPTS {
                break;
            }
        }
    }
    plain(&text[run..], &mut out)?;
    Ok(out)
}

/// Whether text that is not JSON names a key the JSON rules mask where the formats an
/// API may answer in instead put a key: the word before a `:` or `=` (YAML, INI, TOML,
/// env files, logfmt, form keys `user[password]=`, `Key: value` lines) or an
/// element's name (`<password>`, `<m:password>`, XML), its escapes decoded. A key
/// pattern must match the word or its last dotted part; a path's last member name
/// must equal one of them, ignoring ASCII case.
fn key_in_text(text: &[u8], rules: &JsonRules) -> bool {
    const LONGEST: usize = 256;
    let decoded = unescaped(text);
    let text = decoded.as_deref().unwrap_or(text);
    let word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$' | b'@') || *b >= 0x80;
    // `db.password`, `--password`, `$password` name `password`.
    let selects = |w: &[u8]| {
        let w = String::from_utf8_lossy(w);
        let last = w.rsplit('.').next().unwrap_or(&w).trim_start_matches(['-', '$', '@']);
        [&*w, last].iter().any(|w| {
            rules.keys.iter().any(|k| k.matches(w))
                || rules.paths.iter().filter_map(|p| p.names().last()).any(|n| n.eq_ignore_ascii_case(w))
        })
    };
    let word_at = |rest: &[u8]| rest.iter().position(|b| !word(b)).unwrap_or(rest.len());
    for at in memchr::memchr3_iter(b':', b'=', b'<', text) {
        let named = match text[at] {
            b'<' => {
                // An element's name, past a closing `/` and a namespace prefix.
                let rest = &text[at + 1..text.len().min(at + 2 + 2 * LONGEST)];
                let rest = rest.strip_prefix(b"/").unwrap_or(rest);
                let name = &rest[..word_at(rest)];
                match rest.get(name.len()) {
                    Some(b':') => &rest[name.len() + 1..][..word_at(&rest[name.len() + 1..])],
                    _ => name,
                }
            }
            // A label's text (`Password:</label>`) is not a key.
            b':' if text.get(at + 1) == Some(&b'<') => continue,
            _ => {
                // The word before, past the quotes, blanks and `]` that may close it
                // (`user[password]=`).
                let before = &text[at.saturating_sub(LONGEST)..at];
                let close =
                    before.iter().rposition(|b| !matches!(b, b' ' | b'\t' | b'"' | b'\'' | b']')).map_or(0, |i| i + 1);
                let before = &before[..close];
                let start = before.iter().rposition(|b| !word(b)).map_or(0, |i| i + 1);
                // `#password:focus` is a CSS selector.
                if start > 0 && before[start - 1] == b'#' {
                    continue;
                }
                &before[start..]
            }
        };
        if !named.is_empty() && selects(named) {
            return true;
        }
    }
    false
}

/// Judges text that starts like JSON at a bracket but does not parse: whether a
/// lenient reader (JavaScript, JSON5, Python, an event stream joining its `data:`
/// lines) could read from it a value the JSON rules would mask. It could when the
/// bracket's extent (to its closing bracket, or to the end of the text when it never
/// closes: pretty-printed JSON, JSON spread over lines) has a `:` or `=` in it (or a
/// path selects by position) and names a key the rules mask ([`key_named`]). The work is bounded by a budget of a
/// few times the text's length; once it is spent, the rest of the text is judged
/// at once, and every later bracket, lying in that rest, with it.
struct BrokenJson<'r> {
    rules: &'r JsonRules,
    /// A path selects by position alone (`$[0]`): an array can hide a value too.
    positional: bool,
    budget: usize,
    /// The judgement of the rest of the text once the budget ran out.
    rest: Option<bool>,
}

impl<'r> BrokenJson<'r> {
    fn new(len: usize, rules: &'r JsonRules) -> Self {
        let positional = rules.paths.iter().any(|p| p.names().next().is_none());
        BrokenJson { rules, positional, budget: len.saturating_mul(4).max(1 << 16), rest: None }
    }

    /// Whether the broken JSON that starts `from` (at its bracket) may hide a value.
    fn may_hide(&mut self, from: &[u8]) -> bool {
        if self.rest.is_some() {
            return self.rest_may_hide(from);
        }
        // `#` starts a comment in Python and YAML and a colour in CSS: the extent is
        // the longer of the two readings, so a bracket hidden either way counts.
        let ends = (bracket_extent(from, &mut self.budget, false), bracket_extent(from, &mut self.budget, true));
        let (Some(plain), Some(hashed)) = ends else { return self.rest_may_hide(from) };
        let end = plain.max(hashed);
        let scope = &from[..end];
        if scope.len() > self.budget {
            return self.rest_may_hide(from);
        }
        self.budget -= scope.len();
        self.members(scope) && key_named(scope, self.rules)
    }

    /// The same judgement over everything from `from` to the end, made once: a later
    /// call is for a suffix of the first one's text, which cannot name more.
    fn rest_may_hide(&mut self, from: &[u8]) -> bool {
        if let Some(hides) = self.rest {
            return hides;
        }
        let hides = self.members(from) && key_named(from, self.rules);
        self.rest = Some(hides);
        hides
    }

    /// Whether broken JSON may hold what the rules select: members (`key:`,
    /// `key=`), or anything at all where a path selects by position.
    fn members(&self, scope: &[u8]) -> bool {
        self.positional || memchr::memchr2(b':', b'=', scope).is_some()
    }
}

/// Where a bracketed value starting at `text[0]` ends: just after its closing
/// bracket, strings in any quote and comments (`//`, `/* */`, and with `hash`, `#` to
/// the end of the line) skipped (a string up to an unescaped end of line), or the end
/// of the text when it never closes. `None` when that takes more than `budget` bytes
/// (which it spends).
fn bracket_extent(text: &[u8], budget: &mut usize, hash: bool) -> Option<usize> {
    let (mut depth, mut quote, mut i) = (0usize, None, 0);
    while i < text.len() {
        *budget = budget.checked_sub(1)?;
        let b = text[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(_) if b == b'\n' || b == b'\r' => quote = None,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                // Comments (JSON5, JavaScript, CSS; Python and YAML with `hash`): a
                // bracket in one counts for nothing.
                b'/' | b'#' => {
                    let rest = &text[i..];
                    let skip = match rest {
                        [b'/', b'*', ..] => memchr::memmem::find(&rest[2..], b"*/").map_or(rest.len(), |e| e + 4),
                        [b'/', b'/', ..] => memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len()),
                        [b'#', ..] if hash => memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len()),
                        _ => 1,
                    };
                    *budget = budget.checked_sub(skip)?;
                    i += skip;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    Some(text.len())
}

/// Whether `text` names a key the JSON rules mask, however it is spelled: its escapes
/// decoded ([`unescaped`]), then only its letters and digits kept, lower-cased, so
/// that quotes, comments, white space, HTML entities, concatenated literals and
/// binary length bytes around or inside a key cannot hide it. A path's member name,
/// or a key pattern's literal pieces in order, found anywhere in that counts. A path
/// that names no member (`$`, `$[0]`, `$..*`) selects by position alone, so it
/// counts for any text.
fn key_named(text: &[u8], rules: &JsonRules) -> bool {
    if rules.paths.iter().any(|p| p.names().next().is_none()) {
        return true;
    }
    let letters =
        |s: &str| -> String { s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect() };
    let decoded = unescaped(text);
    let view = letters(&String::from_utf8_lossy(decoded.as_deref().unwrap_or(text)));
    let names = rules.paths.iter().flat_map(|p| p.names());
    if names.map(letters).any(|n| view.contains(&n)) {
        return true;
    }
    rules.keys.iter().any(|k| {
        let mut at = 0;
        k.as_str().split('*').map(letters).filter(|p| !p.is_empty()).all(|piece| match view[at..].find(&piece) {
            Some(i) => {
                at += i + piece.len();
                true
            }
            None => false,
        })
    })
}

/// Each line of `text` with where it starts, its end of line left out. Lines end at
/// LF, CR, RS (JSON text sequences), and NEL, LS and PS in UTF-8.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = text.get(at..).filter(|r| !r.is_empty())?;
        let (end, next) = line_break(rest).unwrap_or((rest.len(), rest.len()));
        let start = at;
        at += next;
        Some((start, &rest[..end]))
    })
}

/// The first line break in `text` (LF, CR, RS, NEL, LS, PS): where it starts and ends.
/// The one-byte ones are found first; a NEL, LS or PS can only come before them.
fn line_break(text: &[u8]) -> Option<(usize, usize)> {
    let ascii = memchr::memchr3(b'\n', b'\r', 0x1e, text);
    let before = &text[..ascii.unwrap_or(text.len())];
    for i in memchr::memchr2_iter(0xc2, 0xe2, before) {
        let len = match text[i..] {
            [0xc2, 0x85, ..] => 2,
            [0xe2, 0x80, 0xa8 | 0xa9, ..] => 3,
            _ => continue,
        };
        return Some((i, i + len));
    }
    ascii.map(|i| (i, i + 1))
}

/// Text through the detectors, onto `out`; `Err` when, with its escapes decoded, the
/// masked text still shows a secret.
fn detect(text: &[u8], masking: &Masking, out: &mut Vec<u8>) -> Result<(), Reply> {
    let Some(m) = &masking.masker else {
        out.extend_from_slice(text);
        return Ok(());
    };
    let masked = m.mask(text);
    if shows_escaped(m, &masked) {
        return Err(Reply::BadGateway(
            "the response holds an escaped secret (\\u0041...) that Airlock cannot mask where it stands".into(),
        ));
    }
    out.extend_from_slice(&masked);
    Ok(())
}

/// HTML's named references for the characters that frame keys and values.
const ENTITIES: [(&str, char); 8] = [
    ("lt;", '<'),
    ("gt;", '>'),
    ("quot;", '"'),
    ("apos;", '\''),
    ("amp;", '&'),
    ("colon;", ':'),
    ("equals;", '='),
    ("period;", '.'),
];

/// The character a Unicode name such as `LATIN SMALL LETTER W` names (Latin letters,
/// digits and the punctuation secrets are made of), or the replacement character for
/// any other name.
fn letter_named(name: &[u8]) -> Option<char> {
    const DIGITS: [&str; 10] = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"];
    const PUNCTUATION: [(&str, char); 8] = [
        ("FULL STOP", '.'),
        ("HYPHEN-MINUS", '-'),
        ("LOW LINE", '_'),
        ("SOLIDUS", '/'),
        ("PLUS SIGN", '+'),
        ("EQUALS SIGN", '='),
        ("COLON", ':'),
        ("SPACE", ' '),
    ];
    let name = std::str::from_utf8(name).ok()?.to_ascii_uppercase();
    let letter = |rest: &str| (rest.len() == 1).then(|| rest.chars().next()).flatten();
    let c = match () {
        _ if name.starts_with("LATIN SMALL LETTER ") => letter(&name[19..]).map(|c| c.to_ascii_lowercase()),
        _ if name.starts_with("LATIN CAPITAL LETTER ") => letter(&name[21..]),
        _ if name.starts_with("DIGIT ") => {
            DIGITS.iter().position(|d| *d == &name[6..]).map(|d| char::from(b'0' + d as u8))
        }
        _ => PUNCTUATION.iter().find(|(n, _)| *n == name).map(|(_, c)| *c),
    };
    Some(c.unwrap_or(char::REPLACEMENT_CHARACTER))
}

/// Whether masked text still shows a secret once its escapes are decoded.
fn shows_escaped(m: &Masker, masked: &[u8]) -> bool {
    unescaped(masked).is_some_and(|decoded| {
        !m.find(&decoded, 0).is_empty()
            // A private key's header that only its escapes spell: the key would go
            // out line by line before the whole of it could be found.
            || m.private_key_headers(&decoded) > m.private_key_headers(masked)
    })
}

/// `text` with the escapes a reader might decode (JSON and JavaScript `\uXXXX` with
/// surrogate pairs, `\u{...}`, `\xHH`, the one-letter ones and identity escapes such
/// as `\w`; line continuations; `\UXXXXXXXX`, octal `\101` and Python's `\N{...}`;
/// HTML `&#65;` and `&#x41;`, with or without their `;`; percent `%41`) decoded;
/// `None` when it has none. Linear in the text's length.
fn unescaped(text: &[u8]) -> Option<Vec<u8>> {
    memchr::memchr3(b'\\', b'&', b'%', text)?;
    let hex = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|h| u32::from_str_radix(h, 16).ok());
    let digits = |b: &[u8], radix: u32| std::str::from_utf8(b).ok().and_then(|h| u32::from_str_radix(h, radix).ok());
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    let mut decoded = false;
    while i < text.len() {
        let rest = &text[i..];
        let (c, len) = match rest {
            // Any number of leading zeros (JavaScript allows them).
            [b'\\', b'u', b'{', ..] => match rest[3..rest.len().min(64)].iter().position(|b| *b == b'}') {
                Some(close) => (hex(&rest[3..3 + close]).and_then(char::from_u32), close + 4),
                None => (None, 1),
            },
            [b'\\', b'u', ..] if rest.len() >= 6 => match hex(&rest[2..6]) {
                Some(high @ 0xd800..=0xdbff) => match (rest.get(6..8), rest.get(8..12).and_then(hex)) {
                    (Some(b"\\u"), Some(low @ 0xdc00..=0xdfff)) => {
                        (char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)), 12)
                    }
                    _ => (Some(char::REPLACEMENT_CHARACTER), 6),
                },
                Some(code) => (Some(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)), 6),
                None => (None, 1),
            },
            [b'\\', b'U', ..] if rest.len() >= 10 => (hex(&rest[2..10]).and_then(char::from_u32), 10),
            [b'\\', b'x', ..] if rest.len() >= 4 => (hex(&rest[2..4]).and_then(char::from_u32), 4),
            // Octal, one to three digits (`\67` is `7`).
            [b'\\', b'0'..=b'7', ..] => {
                let run = rest[1..rest.len().min(4)].iter().take_while(|b| (b'0'..=b'7').contains(b)).count();
                (digits(&rest[1..1 + run], 8).and_then(char::from_u32), 1 + run)
            }
            // Python's `\N{LATIN SMALL LETTER W}`.
            [b'\\', b'N', b'{', ..] => match rest[3..rest.len().min(48)].iter().position(|b| *b == b'}') {
                Some(close) => (letter_named(&rest[3..3 + close]), close + 4),
                None => (None, 1),
            },
            // A line continuation reads as nothing.
            [b'\\', b'\r', b'\n', ..] => (Some('\0'), 3),
            [b'\\', b'\n', ..] => (Some('\0'), 2),
            [b'\\', e, ..] => match e {
                b'n' => (Some('\n'), 2),
                b't' => (Some('\t'), 2),
                b'r' => (Some('\r'), 2),
                // Any other character escaped is itself (JavaScript's identity escapes).
                e if e.is_ascii_graphic() => (Some(*e as char), 2),
                _ => (None, 1),
            },
            [b'&', b'#', ..] => {
                let (radix, at) = if matches!(rest.get(2), Some(b'x' | b'X')) { (16, 3) } else { (10, 2) };
                // Browsers end a numeric reference at its first non-digit, `;` or not.
                let run = rest[at..rest.len().min(at + 32)].iter().take_while(|b| b.is_ascii_hexdigit()).count();
                let run = if radix == 10 {
                    rest[at..at + run].iter().take_while(|b| b.is_ascii_digit()).count()
                } else {
                    run
                };
                match run {
                    0 => (None, 1),
                    _ => {
                        let semicolon = usize::from(rest.get(at + run) == Some(&b';'));
                        (digits(&rest[at..at + run], radix).and_then(char::from_u32), at + run + semicolon)
                    }
                }
            }
            [b'&', ..] => match ENTITIES.iter().find(|(name, _)| rest[1..].starts_with(name.as_bytes())) {
                Some((name, c)) => (Some(*c), 1 + name.len()),
                None => (None, 1),
            },
            [b'%', ..] if rest.len() >= 3 => match hex(&rest[1..3]) {
                Some(code) if code < 0x80 => (char::from_u32(code), 3),
                _ => (None, 1),
            },
            _ => (None, 1),
        };
        match c {
            Some(c) => {
                decoded = true;
                // A decoded NUL (and a line continuation) adds nothing a detector reads.
                if c != '\0' {
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                i += len;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    decoded.then_some(out)
}

/// A JSON body, masked; `Err` when it does not parse and rules could apply to it.
fn mask_json(body: &[u8], masking: &Masking) -> Result<Vec<u8>, Reply> {
    match json_strict(body, masking) {
        Ok(masked) => Ok(masked),
        Err(e) => {
            // Not JSON after all: read as text, which is refused where broken JSON in
            // it names a key the rules mask.
            tracing::debug!(error = %e, "a JSON response does not parse; masked as text");
            mask_text_holding_json(body, masking).map_err(|_| {
                Reply::BadGateway(format!(
                    "the upstream's JSON response does not parse ({e}), so Airlock cannot mask its fields"
                ))
            })
        }
    }
}

/// A JSON document, masked; `Err` when it is not one.
fn json_strict(body: &[u8], masking: &Masking) -> Result<Vec<u8>, String> {
    json_strict_at(body, masking, 0)
}

/// [`json_strict`] for a document `depth` strings deep in another.
fn json_strict_at(body: &[u8], masking: &Masking, depth: u8) -> Result<Vec<u8>, String> {
    /// Masks by the rules, and with the detectors where they may find something.
    struct ByRules<'a> {
        masking: &'a Masking,
        detect: Option<&'a Masker>,
        depth: u8,
    }
    impl ByRules<'_> {
        /// A string's text masked whole.
        fn whole_text(&self, text: &str) -> String {
            let mut whole = Vec::new();
            match &self.masking.masker {
                Some(m) => m.mask_column(self.masking.style, text.as_bytes(), &mut whole),
                None => whole.extend_from_slice(b"[MASKED]"),
            }
            String::from_utf8_lossy(&whole).into_owned()
        }
    }
    impl JsonMasker for ByRules<'_> {
        fn whole(&mut self, raw: &[u8], _why: Why<'_>) -> Vec<u8> {
            let mut out = Vec::new();
            let value = raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")).unwrap_or(raw);
            match &self.masking.masker {
                Some(m) => m.mask_column(self.masking.style, value, &mut out),
                None => out.extend_from_slice(b"[MASKED]"),
            }
            serde_json::to_vec(&String::from_utf8_lossy(&out)).unwrap_or_else(|_| b"\"[MASKED]\"".to_vec())
        }
        fn text(&mut self, text: &str) -> Option<String> {
            // JSON in a string (an event's `body`, a logged request after a prefix) is
            // masked by the same rules, read as text would be; where that text cannot
            // be masked, the string is masked whole.
            let bracketed = memchr::memchr2(b'{', b'[', text.as_bytes()).is_some();
            if self.depth < 4 && bracketed {
                return match text_holding_json_at(text.as_bytes(), self.masking, self.depth + 1) {
                    Ok(masked) => (masked != text.as_bytes()).then(|| String::from_utf8_lossy(&masked).into_owned()),
                    Err(_) => Some(self.whole_text(text)),
                };
            }
            // A string naming a masked key as YAML or `key=value` would (a config
            // file's text), or holding JSON nested too deep to read, is masked whole.
            if self.masking.keys_masked()
                && (key_in_text(text.as_bytes(), &self.masking.json)
                    || bracketed
                        && memchr::memchr2(b':', b'=', text.as_bytes()).is_some()
                        && key_named(text.as_bytes(), &self.masking.json))
            {
                return Some(self.whole_text(text));
            }
            let m = self.detect?;
            let masked = m.mask(text.as_bytes());
            // A secret still escaped inside the string (`\\u0041KIA...` in the
            // document): the value is masked whole.
            if shows_escaped(m, &masked) {
                return Some(self.whole_text(text));
            }
            match masked {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(masked) => Some(String::from_utf8_lossy(&masked).into_owned()),
            }
        }
    }
    // Without escapes (JSON's, or the entities and percent escapes a reader may
    // decode after it) every string's text is a run of the body's own bytes, so
    // detectors that find nothing in the whole body find nothing in any string: one
    // scan instead of one per string.
    let escaped = memchr::memchr3(b'\\', b'&', b'%', body).is_some();
    let detect = masking.masker.as_deref().filter(|m| escaped || !m.find(body, 0).is_empty());
    let mut by_rules = ByRules { masking, detect, depth };
    json::mask(body, &masking.json, &mut by_rules).map(|masked| masked.bytes).map_err(|e| e.to_string())
}

/// Decompresses data as far as it goes, up to `max + 1` bytes; `true` with it when the
/// stream was whole.
fn inflate(codec: Codec, data: &[u8], max: usize) -> (Vec<u8>, bool) {
    let reader: Box<dyn Read + '_> = match codec {
        // One member (each member's own magic is a stream of its own), its header
        // CRC unchecked, as lenient readers leave it.
        Codec::Gzip => match gzip_body(data) {
            Some(body) => Box::new(flate2::read::DeflateDecoder::new(body)),
            None => return (Vec::new(), false),
        },
        Codec::Zlib => Box::new(flate2::read::ZlibDecoder::new(data)),
        Codec::Deflate => Box::new(flate2::read::DeflateDecoder::new(data)),
        // A window over 16 MiB is not decoded (and so refused): it would be allocated.
        Codec::Zstd => match zstd::stream::read::Decoder::with_buffer(data).and_then(|mut d| {
            d.window_log_max(24)?;
            Ok(d)
        }) {
            Ok(decoder) => Box::new(decoder.single_frame()),
            Err(_) => return (Vec::new(), false),
        },
    };
    let mut reader = reader.take(max as u64 + 1);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// The deflate data of a gzip member: what follows its header and the optional
/// fields the header's flags announce.
fn gzip_body(data: &[u8]) -> Option<&[u8]> {
    let flags = *data.get(3)?;
    let mut at = 10;
    if flags & 0x04 != 0 {
        at += 2 + usize::from(u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]));
    }
    for field in [0x08, 0x10] {
        if flags & field != 0 {
            at += memchr::memchr(0, data.get(at..)?)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        at += 2;
    }
    data.get(at..)
}

/// Reads a body whole, refusing one over `max` bytes. A body that fails to read is
/// the agent's fault (`from_agent`: 400) or the upstream's (502).
pub async fn read_capped<B>(body: B, max: usize, from_agent: bool) -> Result<Bytes, Reply>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(Reply::TooLarge(format!("the body is larger than this connection's max_body ({max} bytes)")))
        }
        Err(e) if from_agent => Err(Reply::BadRequest(format!("the request body is malformed: {e}"))),
        Err(e) => Err(Reply::BadGateway(format!("reading the body failed: {e}"))),
    }
}

/// Decodes a body, refusing one that decodes to more than `max` bytes.
fn decode(encoding: &str, raw: &[u8], max: usize) -> Result<Vec<u8>, Reply> {
    let reader: Box<dyn Read + '_> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        "deflate" if raw.first().is_some_and(|b| b & 0x0f == 8) => Box::new(flate2::read::ZlibDecoder::new(raw)),
        "deflate" => Box::new(flate2::read::DeflateDecoder::new(raw)),
        "br" => Box::new(brotli_decompressor::Decompressor::new(raw, 4096)),
        "zstd" => {
            Box::new(zstd::stream::read::Decoder::new(raw).map_err(|e| Reply::BadGateway(format!("zstd body: {e}")))?)
        }
        other => return Err(Reply::BadGateway(format!("cannot decode {other:?}"))),
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Reply::BadGateway(format!("the {encoding} body does not decode: {e}")))?;
    if out.len() > max {
        return Err(Reply::BadGateway(format!("the body decodes to more than max_body ({max} bytes)")));
    }
    Ok(out)
}

/// A text body masked as it streams.
struct MaskedText {
    inner: AgentBody,
    masker: crate::masking::StreamMasker<Arc<Masker>>,
    lines: bool,
    done: bool,
    mode: Mode,
    /// Whether any data has come yet (the first bytes decide the mode).
    seen: bool,
    /// The end of what the agent has been sent: where an escaped secret cut across
    /// frames began.
    shown: Vec<u8>,
    /// Masked text waiting to go out with what comes right after it.
    pending: Vec<u8>,
    /// How long text the escape check reads may wait for more.
    hold: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Text the escape check reads goes out once this much has gathered, or [`HOLD`]
/// after the upstream went quiet.
const CHECKED_BATCH: usize = 8 << 10;
const HOLD: std::time::Duration = std::time::Duration::from_millis(10);

/// Whether text has a byte that may start an escape ([`unescaped`]).
fn escapes(text: &[u8]) -> bool {
    memchr::memchr3(b'\\', b'&', b'%', text).is_some()
}

/// How much masked text a streamed body gathers before it goes out without waiting
/// for the upstream to pause.
const COALESCE: usize = 64 << 10;

/// How a streamed body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Masked as text.
    Text,
    /// Labelled binary: its first bytes decide.
    Sniff,
    /// Binary: passed as it is.
    Binary,
}

impl Body for MaskedText {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                // What has come so far goes out while the upstream is quiet; text that
                // the escape check must read (with its window) waits a moment for
                // more, so that a trickle of small frames is not read over and over.
                Poll::Pending if !this.pending.is_empty() => {
                    if this.pending.len() < CHECKED_BATCH && (escapes(&this.pending) || escapes(&this.shown)) {
                        let hold = this.hold.get_or_insert_with(|| Box::pin(tokio::time::sleep(HOLD)));
                        if hold.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    let out = std::mem::take(&mut this.pending);
                    return Poll::Ready(Some(this.release(out)));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if this.mode == Mode::Sniff && !data.is_empty() {
                        this.mode = if looks_binary(&data) { Mode::Binary } else { Mode::Text };
                    }
                    if this.mode == Mode::Binary {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let first = !this.seen && !data.is_empty();
                    this.seen |= first;
                    if this.mode == Mode::Text && first && unreadable_text(&data) {
                        let refused = "the response is text Airlock cannot read (UTF-16 or UTF-32) to mask";
                        this.done = true;
                        return Poll::Ready(Some(Err(BoxError::from(
                            Box::<dyn std::error::Error + Send + Sync>::from(refused),
                        ))));
                    }
                    let out = this.masker.push(&data);
                    this.pending.extend_from_slice(&out);
                    if this.lines {
                        this.pending.extend(this.masker.flush_lines());
                    }
                    // Frames that come together go out together: the escape check
                    // then reads its window once for all of them.
                    if this.pending.len() >= COALESCE {
                        let out = std::mem::take(&mut this.pending);
                        return Poll::Ready(Some(this.release(out)));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let mut rest = std::mem::take(&mut this.pending);
                    rest.extend(this.masker.flush());
                    if !rest.is_empty() {
                        return Poll::Ready(Some(this.release(rest)));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl MaskedText {
    /// Masked text on its way to the agent, unless, with its escapes decoded, it
    /// shows a secret (`\u0041KIA...`): that cannot be masked where it stands, so the
    /// body ends there with an error and the agent gets a cut response.
    fn release(&mut self, out: Vec<u8>) -> Result<Frame<Bytes>, BoxError> {
        self.hold = None;
        let masker = self.masker.masker();
        // Escaped text runs up to ten bytes a character (`\u{10FFFF}`).
        let window = masker.longest_match().saturating_mul(10).min(1 << 20);
        if escapes(&out) || escapes(&self.shown) {
            // What was sent before was checked, so a secret found now is one this
            // frame completes.
            self.shown.extend_from_slice(&out);
            if shows_escaped(masker, &self.shown) {
                self.done = true;
                tracing::info!("a streamed response holds an escaped secret; the body was cut");
                return Err(BoxError::from(Box::<dyn std::error::Error + Send + Sync>::from(
                    "the response holds an escaped secret (\\u0041...) that Airlock cannot mask where it stands",
                )));
            }
        } else {
            self.shown.extend_from_slice(&out[out.len().saturating_sub(window)..]);
        }
        // Without an escape in it, only a secret's plain start matters.
        let keep = if escapes(&self.shown) { window } else { masker.longest_match() };
        let cut = self.shown.len().saturating_sub(keep);
        self.shown.drain(..cut);
        Ok(Frame::data(out.into()))
    }
}

/// A body whose first frame was read ahead.
struct Prefixed {
    first: Option<Frame<Bytes>>,
    rest: AgentBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.first.take() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }
}

/// Records a body as it passes, up to a cap, then its end.
pub struct Recorded {
    pub session: Arc<Session>,
    pub exchange: u64,
    pub from_agent: bool,
    pub cap: usize,
}

impl Recorded {
    /// `body`, recorded as it goes.
    pub fn wrap(self, body: AgentBody) -> AgentBody {
        if !self.session.recording() {
            return counted(body, self.session, self.from_agent);
        }
        Tee { inner: body, record: self, kept: Vec::new(), seen: 0, ended: false }.boxed()
    }
}

fn counted(body: AgentBody, session: Arc<Session>, from_agent: bool) -> AgentBody {
    body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            let counter = if from_agent { &session.to_upstream } else { &session.to_agent };
            counter.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let metric = if from_agent { &session.metrics.to_upstream } else { &session.metrics.to_agent };
            metric.inc_by(data.len() as u64);
        }
        frame
    })
    .boxed()
}

struct Tee {
    inner: AgentBody,
    record: Recorded,
    kept: Vec<u8>,
    seen: u64,
    ended: bool,
}

impl Tee {
    fn end(&mut self, note: Option<String>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let Recorded { session, exchange, from_agent, .. } = &self.record;
        if !self.kept.is_empty() {
            session.record(*from_agent, &Event::Body(*exchange, &self.kept));
        }
        let end = body_end(self.seen, self.kept.len() as u64, note);
        session.record(*from_agent, &Event::End(*exchange, end));
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    this.seen += n as u64;
                    let room = this.record.cap.saturating_sub(this.kept.len());
                    this.kept.extend_from_slice(&data[..n.min(room)]);
                    let s = &this.record.session;
                    let (counter, metric) = match this.record.from_agent {
                        true => (&s.to_upstream, &s.metrics.to_upstream),
                        false => (&s.to_agent, &s.metrics.to_agent),
                    };
                    counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    metric.inc_by(n as u64);
                }
                // hyper stops polling a body that says it has ended.
                if this.inner.is_end_stream() {
                    this.end(None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.end(Some(format!("the body failed: {e}")));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.end(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.end(Some("the body was not read to its end".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_pick_how_a_body_is_masked() {
        let shape_of = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            shape(&h)
        };
        assert_eq!(shape_of("application/json; charset=utf-8"), Shape::Json);
        assert_eq!(shape_of("application/vnd.github+json"), Shape::Json);
        assert_eq!(shape_of("text/plain"), Shape::Text { lines: false });
        assert_eq!(shape_of("text/event-stream"), Shape::Text { lines: true });
        assert_eq!(shape_of("image/png"), Shape::Binary);
        assert_eq!(shape(&HeaderMap::new()), Shape::Text { lines: false });
    }

    #[test]
    fn accept_encoding_is_narrowed_to_what_airlock_decodes() {
        let mut h = HeaderMap::new();
        h.insert(hyper::header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=1.0, compress, sdch, br"));
        narrow_accept_encoding(&mut h);
        assert_eq!(h[hyper::header::ACCEPT_ENCODING], "gzip;q=1.0, br");
        h.insert(hyper::header::ACCEPT_ENCODING, HeaderValue::from_static("sdch"));
        narrow_accept_encoding(&mut h);
        assert!(!h.contains_key(hyper::header::ACCEPT_ENCODING));
    }

    #[test]
    fn cookies_and_location_secrets_are_masked() {
        let masking = Masking { masker: None, json: JsonRules::default(), style: Style::Redact };
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("sid=abc123; Path=/; HttpOnly"));
        h.insert(LOCATION, HeaderValue::from_static("https://x/cb?code=s3cr3t&state=1"));
        mask_headers(&mut h, &masking);
        assert_eq!(h[SET_COOKIE], "sid=[MASKED]; Path=/; HttpOnly");
        assert_eq!(h[LOCATION], "https://x/cb?code=[MASKED]&state=1");
    }

    #[test]
    fn json_lines_and_events_carrying_json_are_masked_by_path_and_broken_json_refused() {
        let json = JsonRules { paths: vec![json::JsonPath::parse("$..password").unwrap()], keys: Vec::new() };
        let masking = Masking { masker: None, json, style: Style::Redact };
        let body = b"event: x\ndata: {\"password\":\"p1\"}\n\nplain line\n{\"password\":\"p2\"}\n";
        let out = String::from_utf8(mask_text_holding_json(body, &masking).unwrap()).unwrap();
        assert!(!out.contains("p1") && !out.contains("p2"), "{out}");
        assert!(out.starts_with("event: x\ndata: {\"password\":") && out.contains("\n\nplain line\n{"), "{out}");
        assert!(mask_text_holding_json(b"ok\ndata: {\"password\": }\n", &masking).is_err());
        assert!(mask_text_holding_json(b"42[\"login\",{\"password\":\"x\"\n", &masking).is_err());
        let plain = b"see {foo} and [1, 2\n";
        assert_eq!(mask_text_holding_json(plain, &masking).unwrap(), plain);
    }

    #[test]
    fn json_anywhere_a_reader_would_find_it_is_masked() {
        let json = JsonRules { paths: vec![json::JsonPath::parse("$..password").unwrap()], keys: Vec::new() };
        let detectors = Arc::new(Masker::new(None, Style::Redact, b"k"));
        let masking = Masking { masker: Some(detectors), json, style: Style::Redact };
        let secret = "\\u0041KIAIOSFODNN7EXAMPLE";
        for (what, text) in [
            ("socket.io", format!("42[\"login\",{{\"password\":\"hunter2\",\"note\":\"{secret}\"}}]")),
            ("byte-order mark", format!("\u{feff}{{\"password\":\"hunter2\",\"note\":\"{secret}\"}}")),
            ("CR", format!("ok\r{{\"password\":\"hunter2\",\"note\":\"{secret}\"}}")),
            ("line separator", format!("ok\u{2028}{{\"password\":\"hunter2\",\"note\":\"{secret}\"}}")),
            ("record separator", "{\"a\":1}\u{1e}{\"password\":\"hunter2\"}\u{1e}".to_owned()),
            ("STOMP", "MESSAGE\n\n{\"password\":\"hunter2\"}\0".to_owned()),
            ("top-level string", format!("\"{secret}\"")),
        ] {
            let out = mask_text_holding_json(text.as_bytes(), &masking).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("hunter2") && !out.contains("0041KIA"), "{what}: {out}");
        }
        // An escaped secret in text that is not JSON cannot be masked in place.
        for text in [
            "key \\u0041KIAIOSFODNN7EXAMPLE here",
            "key \\x41KIAIOSFODNN7EXAMPLE",
            "{not json \\u0041KIAIOSFODNN7EXAMPLE",
        ] {
            assert!(mask_text_holding_json(text.as_bytes(), &masking).is_err(), "{text}");
        }
        assert_eq!(unescaped(b"a\\ud83d\\ude00\\u{41}\\/").unwrap(), "a\u{1f600}A/".as_bytes());
        assert_eq!(unescaped(b"no escapes"), None);
        assert_eq!(unescaped(b"\\101 \\U00000042 &#67; &#x44; %45 100%").unwrap(), b"A B C D E 100%");
        // Linear: a megabyte of openings that never close.
        assert!(unescaped("\\u{".repeat(1 << 18).as_bytes()).is_none());
        for text in ["key &#65;KIAIOSFODNN7EXAMPLE", "key %41KIAIOSFODNN7EXAMPLE", "key \\101KIAIOSFODNN7EXAMPLE"] {
            assert!(mask_text_holding_json(text.as_bytes(), &masking).is_err(), "{text}");
        }
        // JSON in a JSON string is masked by the same rules, and a secret still
        // escaped in a string masks the string.
        let nested = br#"{"body":"{\"password\":[\"hunter2\"],\"k\":\"\\u0041KIAIOSFODNN7EXAMPLE\"}"}"#;
        let out = String::from_utf8(mask_text_holding_json(nested, &masking).unwrap()).unwrap();
        assert!(!out.contains("hunter2") && !out.contains("0041KIA"), "{out}");
        // Compressed binary: cut short, or inflating past the cap, it is still read.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, b"secret AKIAIOSFODNN7EXAMPLE here").unwrap();
        let z = z.finish().unwrap();
        assert!(message(&z, false, &masking, 1 << 20).is_err());
        assert!(message(&z[..z.len() - 6], false, &masking, 1 << 20).is_err());
        let mut big = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut big, &[b' '; 4 << 20]).unwrap();
        assert!(message(&big.finish().unwrap(), false, &masking, 1 << 20).is_err());
        assert!(message(b"\x78\x9c\xff\x00\x01", false, &masking, 1 << 20).is_ok(), "zlib's magic by chance");
        assert_eq!(
            lines(b"a\rb\xc2\x85c").map(|(at, l)| (at, l.to_vec())).collect::<Vec<_>>(),
            [(0, b"a".to_vec()), (2, b"b".to_vec()), (5, b"c".to_vec())]
        );
    }

    proptest::proptest! {
        /// `lines` breaks where a byte-by-byte reading of the six line breaks does.
        #[test]
        fn lines_break_at_every_line_break(
            text in proptest::collection::vec(proptest::sample::select(b"a\n\r\x1e\xc2\x85\xe2\x80\xa8\xa9".to_vec()), 0..40),
        ) {
            let mut want = Vec::new();
            let mut at = 0;
            while at < text.len() {
                let rest = &text[at..];
                let (mut end, mut next) = (rest.len(), rest.len());
                for i in 0..rest.len() {
                    let len = match rest[i..] {
                        [b'\n' | b'\r' | 0x1e, ..] => 1,
                        [0xc2, 0x85, ..] => 2,
                        [0xe2, 0x80, 0xa8 | 0xa9, ..] => 3,
                        _ => continue,
                    };
                    (end, next) = (i, i + len);
                    break;
                }
                want.push((at, rest[..end].to_vec()));
                at += next;
            }
            let got: Vec<_> = lines(&text).map(|(at, l)| (at, l.to_vec())).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn broken_json_is_refused_only_where_a_key_the_rules_mask_is_named() {
        let json = JsonRules {
            paths: vec![json::JsonPath::parse("$..password").unwrap()],
            keys: vec![json::KeyGlob::parse("*token*").unwrap()],
        };
        let masking = Masking { masker: None, json, style: Style::Redact };
        // Ordinary text with braces and colons that is not JSON passes as it is.
        for text in ["json={\"name\": name}\n", "log: {user: ada} done\n", "{\n  \"name\": \"x\",\n}\n"] {
            assert_eq!(mask_text_holding_json(text.as_bytes(), &masking).unwrap(), text.as_bytes(), "{text}");
        }
        // Where such text names a masked key in any spelling a lenient reader takes,
        // it is refused.
        for text in [
            "json={\"password\": pw}",
            "{password: 'hunter2'}",
            "data: {'api_token': 'x'",
            "{\n  \"password\": \"hunter2\",\n}\n",
            "{\"pass\\u0077ord\": \"hunter2\",}",
            "data: {\"a\":\ndata: {\"refresh_TOKEN\": \"t\"",
        ] {
            assert!(mask_text_holding_json(text.as_bytes(), &masking).is_err(), "{text}");
        }
        // A JSON body that does not parse is read as text when no rule could apply.
        assert_eq!(mask_json(b"{\"name\": NaN}", &masking).unwrap(), b"{\"name\": NaN}");
        assert!(mask_json(b"{\"password\": NaN}", &masking).is_err());
        // A path that names no member selects by position: any broken JSON is refused.
        let by_position = JsonRules { paths: vec![json::JsonPath::parse("$[0]").unwrap()], keys: Vec::new() };
        let masking = Masking { masker: None, json: by_position, style: Style::Redact };
        assert!(mask_text_holding_json(b"[\"hunter2\",]", &masking).is_err());
    }

    #[test]
    fn binary_messages_naming_masked_keys_or_hiding_compressed_secrets_are_refused() {
        let json = JsonRules { paths: Vec::new(), keys: vec![json::KeyGlob::parse("password").unwrap()] };
        let detectors = Arc::new(Masker::new(None, Style::Redact, b"k"));
        let masking = Masking { masker: Some(detectors), json, style: Style::Redact };
        let max = 1 << 20;
        // MessagePack `{"password": "hunter2"}`, and JSON behind a binary length prefix.
        assert!(message(b"\x81\xa8password\xa7hunter2", false, &masking, max).is_err());
        assert!(message(b"\x00\x00\x00\x16{\"password\":\"hunter2\"}", false, &masking, max).is_err());
        assert!(message(b"\x81\xa4name\xa3ada\xff", false, &masking, max).is_ok());
        // Tokens glued to the length byte before them and the field after them: CBOR
        // `{"key": "AKIA...", "a": 1}` (`t` is a 20-byte string's header), MessagePack
        // str8 with a letter for its length, protobuf with a length of 93 (`]`) and 37.
        let pat = format!("github_pat_{}", "A1b2".repeat(20) + "C3");
        let glued: [&[u8]; 4] = [
            b"\xa2\x63keytAKIAIOSFODNN7EXAMPLEaa\x01",
            b"\x81\xa1k\xd9\x28eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXBhcnQtZXhhbXBsZQ\x01",
            &[b"\x0a]".as_slice(), pat.as_bytes(), b"\x12\x01z"].concat(),
            b"\x0a%ghp_abcdefghijklmnopqrstuvwxyz0123456789x\x10\x01",
        ];
        for data in glued {
            // Refused, or read as text and masked: never passed as it is.
            let passed = message(data, false, &masking, max).is_ok_and(|out| out.as_ref() == data);
            assert!(!passed, "{}", String::from_utf8_lossy(data));
        }
        // The same fields holding nothing secret pass.
        assert!(message(b"\xa2\x63keytAKIA-is-not-a-keyaa\x01\xff", false, &masking, max).is_ok());
        let secret = b"key AKIAIOSFODNN7EXAMPLE here".as_slice();
        let gzip = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut e, secret).unwrap();
            e.finish().unwrap()
        };
        let deflated = {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut e, secret).unwrap();
            e.finish().unwrap()
        };
        let zstd = zstd::encode_all(secret, 3).unwrap();
        // A zip entry: its local header, the name, the deflated data.
        let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
        zip.extend_from_slice(&[0; 16]);
        zip.extend_from_slice(&5u16.to_le_bytes());
        zip.extend_from_slice(&0u16.to_le_bytes());
        zip.extend_from_slice(b"a.txt");
        zip.extend_from_slice(&deflated);
        for (what, data) in [
            ("gzip behind a prefix", [b"\x00\x01\xfe".as_slice(), &gzip].concat()),
            ("zstd behind a prefix", [b"\x00\x01\xfe".as_slice(), &zstd].concat()),
            ("zstd cut short", [b"\x00\xfe".as_slice(), &zstd[..zstd.len() - 3]].concat()),
            ("zip entry", zip),
        ] {
            assert!(message(&data, false, &masking, max).is_err(), "{what}");
        }
        let clean = zstd::encode_all(b"nothing to see".as_slice(), 3).unwrap();
        assert!(message(&[b"\x00\xfe".as_slice(), &clean].concat(), false, &masking, max).is_ok());
    }

    #[test]
    fn decoding_is_capped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[b'a'; 10_000]).unwrap();
        let raw = gz.finish().unwrap();
        assert_eq!(decode("gzip", &raw, 10_000).unwrap().len(), 10_000);
        assert!(decode("gzip", &raw, 9_999).is_err());
    }
    fn rules(paths: &[&str], keys: &[&str]) -> JsonRules {
        JsonRules {
            paths: paths.iter().map(|p| json::JsonPath::parse(p).unwrap()).collect(),
            keys: keys.iter().map(|k| json::KeyGlob::parse(k).unwrap()).collect(),
        }
    }

    fn detectors() -> Option<Arc<Masker>> {
        Some(Arc::new(Masker::new(None, Style::Redact, b"k")))
    }

    #[test]
    fn broken_or_spread_json_naming_a_masked_key_is_refused_however_the_key_is_spelled() {
        for (json, text) in [
            // An event stream joins an event's `data:` lines; JSON spread over lines.
            (rules(&["$..password"], &[]), "data: {\"password\"\ndata: :\"hunter2\"}\n\n"),
            (rules(&["$..password"], &[]), "event: user\ndata: {\ndata:   \"password\": \"hunter2xyz\"\ndata: }\n\n"),
            (rules(&[], &["*credential*"]), "result: {\n  \"client_credential\": \"hunter2xyz\"\n}\n"),
            // Escapes a lenient reader decodes in a key.
            (rules(&["$..password"], &[]), r"{'pass\word': 'hunter2'}"),
            (rules(&[], &["*token*"]), r"{'api_to\ken': 'hunter2'}"),
            (rules(&["$..password"], &[]), "{'pass\\\nword': 'hunter2'}"),
            (rules(&["$..password"], &[]), r"{'pass\N{LATIN SMALL LETTER W}ord': 'hunter2'}"),
            (rules(&["$..password"], &[]), "<pre>{\"pass&#119ord\": \"hunter2\"}</pre>"),
            // Keys glued to what surrounds them.
            (rules(&["$..password"], &[]), "{'pass' 'word': 'hunter2'}"),
            (rules(&[], &["password"]), "{password/**/: 'hunter2'}"),
            (rules(&[], &["password"]), "{/* c */password// c\n: 'hunter2'}"),
            (rules(&[], &["password"]), "{password\u{feff}: 'hunter2'}"),
            (rules(&[], &["password"]), "<div data-props=\"{&quot;password&quot;:&quot;hunter2&quot;}\"></div>"),
        ] {
            let masking = Masking { masker: detectors(), json, style: Style::Redact };
            let r = mask_text_holding_json(text.as_bytes(), &masking);
            assert!(r.is_err(), "{text:?} passed as {:?}", r.map(|o| String::from_utf8_lossy(&o).into_owned()));
            assert!(mask_json(text.as_bytes(), &masking).is_err(), "as a JSON body: {text:?}");
        }
        // CBOR `{"password": "hunter2"}`: length bytes are letters.
        let masking = Masking { masker: None, json: rules(&[], &["password"]), style: Style::Redact };
        assert!(message(b"\xa1\x68password\x67hunter2", false, &masking, 1 << 20).is_err());
    }

    #[test]
    fn the_same_data_as_yaml_xml_or_key_value_text_is_refused() {
        let masking =
            Masking { masker: detectors(), json: rules(&["$..password"], &["*token*"]), style: Style::Redact };
        for text in [
            "user:\n  name: ada\n  password: hunter2\n",
            "- \"api_token\": t-1\n",
            "<user><password>hunter2</password></user>",
            "level=info user=ada access_token=t-1\n",
            "PASSWORD = hunter2\n",
            "data: {\"a\":1}\npass\\u0077ord: hunter2\n",
        ] {
            assert!(mask_text_holding_json(text.as_bytes(), &masking).is_err(), "{text:?}");
        }
        for text in
            ["user:\n  name: ada\n", "<p>Forgot your password? Reset it: here</p>", "event: tick\ndata: {\"n\":1}\n"]
        {
            assert_eq!(mask_text_holding_json(text.as_bytes(), &masking).unwrap(), text.as_bytes(), "{text:?}");
        }
    }

    #[test]
    fn json_in_a_string_is_masked_behind_a_prefix_and_masked_whole_when_broken() {
        let cred = Masking { masker: detectors(), json: rules(&[], &["*credential*"]), style: Style::Redact };
        for doc in [
            r#"{"msg":"request body: {\"client_credential\":\"hunter2xyz\"}"}"#,
            r#"{"msg":"{'client_credential': 'hunter2xyz'}"}"#,
            r#"{"msg":"{\"client_credential\": \"hunter2xyz\",}"}"#,
            "{\"msg\":\"\\u000b{\\\"client_credential\\\":\\\"hunter2xyz\\\"}\"}",
        ] {
            for (how, r) in
                [("json", mask_json(doc.as_bytes(), &cred)), ("text", mask_text_holding_json(doc.as_bytes(), &cred))]
            {
                let out = String::from_utf8(r.unwrap_or_else(|e| panic!("{how}: {doc}: {e:?}"))).unwrap();
                assert!(
                    !out.contains("hunter2xyz") && serde_json::from_str::<serde_json::Value>(&out).is_ok(),
                    "{how}: {out}"
                );
            }
        }
        let pw = Masking { masker: None, json: rules(&["$..password"], &[]), style: Style::Redact };
        let out = mask_json(br#"{"msg":"login {\"password\":\"hunter2\"}","n":1}"#, &pw).unwrap();
        assert_eq!(out, br#"{"msg":"login {\"password\":\"[MASKED]\"}","n":1}"#);
    }

    #[test]
    fn ordinary_html_css_markdown_and_logs_pass_and_json_after_a_bracket_is_masked() {
        for (json, text) in [
            (
                rules(&["$..password"], &[]),
                "<style>body { margin: 0 }</style>\n<form><input type=\"password\" name=\"password\"></form>\n",
            ),
            (
                rules(&[], &["*token*"]),
                "<meta name=\"csrf-token\" content=\"abc\">\n<script>var cfg = {debug: false};</script>\n",
            ),
            (rules(&["$..password"], &[]), "[Reset guide](https://example.com/help): how to change your password\n"),
            (rules(&[], &["*token*"]), "json={\"name\": name} and a token\n"),
        ] {
            let masking = Masking { masker: detectors(), json, style: Style::Redact };
            assert_eq!(mask_text_holding_json(text.as_bytes(), &masking).unwrap(), text.as_bytes(), "{text:?}");
        }
        let masking = Masking { masker: detectors(), json: rules(&[], &["*token*"]), style: Style::Redact };
        let out = mask_text_holding_json(b"[INFO] issued {\"user\":\"ada\",\"token_ttl\":3600}\n", &masking).unwrap();
        assert_eq!(out, b"[INFO] issued {\"user\":\"ada\",\"token_ttl\":\"[MASKED]\"}\n");
        // Many brackets on a line, or many lines opening one, stay linear.
        let many = "{ a [ b ".repeat(50_000) + "password: x";
        assert!(mask_text_holding_json(many.as_bytes(), &masking).is_ok());
        let many = "{\n".repeat(100_000) + "\"api_token\": 1";
        assert!(mask_text_holding_json(many.as_bytes(), &masking).is_err());
    }

    #[test]
    fn binary_messages_hiding_escaped_or_compressed_secrets_are_refused_in_linear_time() {
        let masking = Masking { masker: detectors(), json: JsonRules::default(), style: Style::Redact };
        let max = 1 << 20;
        for data in [
            b"\x00\x00\x00\x2c{\"k\":\"\\u0041KIAIOSFODNN7EXAMPLE\"}".as_slice(),
            b"\x00\x00\x00\x2c{\"k\":\"%41KIAIOSFODNN7EXAMPLE\"}".as_slice(),
        ] {
            assert!(message(data, false, &masking, max).is_err(), "{:?}", String::from_utf8_lossy(data));
        }
        let secret = b"key AKIAIOSFODNN7EXAMPLE here".as_slice();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut zlib, secret).unwrap();
        let zlib = zlib.finish().unwrap();
        assert!(message(&[b"\x00\x00\x00\x25".as_slice(), &zlib].concat(), false, &masking, max).is_err());
        // A zip whose local header says stored and whose central directory says
        // deflated (a reader may go by either).
        let zip = hex::decode("504b0304140000000000573a835db5246f7a1f0000001d00000005000000612e747874cb4ead5470f4f674f4f40f76f377f1f333778d70f40df07155c8482d4a0500504b01021403140000000800573a835db5246f7a1f0000001d000000050000000000000000000000800100000000612e747874504b0506000000000100010033000000420000000000").unwrap();
        assert!(message(&zip, false, &masking, max).is_err());
        // A gzip member whose header CRC is wrong, which lenient readers ignore.
        let bad_crc = hex::decode(
            "1f8b0802010203040203deadcb4ead5470f4f674f4f40f76f377f1f333778d70f40df07155c8482d4a0500b5246f7a1d000000",
        )
        .unwrap();
        assert!(message(&[b"\x00\x01".as_slice(), &bad_crc].concat(), false, &masking, max).is_err());
        // Thousands of empty gzip members: refused, at once.
        let empty = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()).finish().unwrap();
        assert!(message(&empty.repeat(20_000), false, &masking, 64 << 20).is_err());
        assert!(message(&empty.repeat(40), false, &masking, 64 << 20).is_ok());
    }

    #[tokio::test]
    async fn a_streamed_body_in_small_frames_with_an_early_escape_streams_in_linear_time() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = [b"a\\b ".as_slice(), &b"lorem ipsum ".repeat(1 << 17)]
            .concat()
            .chunks(64)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let len: usize = frames.iter().map(|f| f.as_ref().unwrap().data_ref().unwrap().len()).sum();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let masked = MaskedText {
            inner: body,
            masker: crate::masking::StreamMasker::new(detectors().unwrap()),
            lines: false,
            done: false,
            mode: Mode::Text,
            seen: false,
            shown: Vec::new(),
            pending: Vec::new(),
            hold: None,
        };
        let out = masked.collect().await.unwrap().to_bytes();
        assert_eq!(out.len(), len);
    }

    /// The masked texts that still show `secret`.
    fn leaks(masking: &Masking, secret: &str, texts: &[&str]) -> Vec<String> {
        texts.iter().filter_map(|t| leaked_past(mask_text_holding_json(t.as_bytes(), masking), secret)).collect()
    }

    /// The masked output when it still shows `secret` (`None` when refused or hidden).
    fn leaked_past(r: Result<Vec<u8>, Reply>, secret: &str) -> Option<String> {
        match r {
            Err(_) => None,
            Ok(out) => {
                let out = String::from_utf8_lossy(&out).into_owned();
                out.contains(secret).then_some(out)
            }
        }
    }

    #[test]
    fn yaml_or_key_value_text_in_a_json_string_is_masked_whole() {
        // A Kubernetes ConfigMap: a config file's YAML inside a JSON string.
        let masking = Masking { masker: detectors(), json: rules(&[], &["*credential*"]), style: Style::Redact };
        let mut passed = Vec::new();
        for doc in [
            r#"{"data":{"app.yaml":"db:\n  client_credential: hunter2xyz\n"}}"#,
            r#"{"data":{".env":"CLIENT_CREDENTIAL=hunter2xyz\n"}}"#,
            r#"{"log":"<client_credential>hunter2xyz</client_credential>"}"#,
        ] {
            if let Some(out) = leaked_past(mask_json(doc.as_bytes(), &masking), "hunter2xyz") {
                passed.push(out);
            }
        }
        assert!(passed.is_empty(), "{passed:#?}");
    }

    #[test]
    fn bracketed_form_keys_are_keys() {
        // Rails/PHP/qs form encoding: `user[password]=...` is {"user":{"password":...}}.
        let masking = Masking { masker: detectors(), json: rules(&["$..password"], &[]), style: Style::Redact };
        let leaked =
            leaks(&masking, "hunter2", &["user[password]=hunter2&user[name]=ada", "user%5Bpassword%5D=hunter2&x=1"]);
        assert!(leaked.is_empty(), "{leaked:#?}");
    }

    #[test]
    fn dotted_sigil_and_flag_keys_are_keys() {
        let masking = Masking { masker: None, json: rules(&["$..password"], &["credential"]), style: Style::Redact };
        let leaked = leaks(
            &masking,
            "hunter2",
            &[
                // TOML dotted keys and Java properties: {"db": {"password": ...}}.
                "db.password = \"hunter2\"\n",
                "spring.datasource.password=hunter2\n",
                // PHP and shell variables, CLI flags.
                "$credential = 'hunter2';\n",
                "mysql --password=hunter2\n",
            ],
        );
        assert!(leaked.is_empty(), "{leaked:#?}");
    }

    #[test]
    fn namespaced_or_html_escaped_xml_elements_are_keys() {
        let masking = Masking { masker: None, json: rules(&["$..password"], &[]), style: Style::Redact };
        let leaked = leaks(
            &masking,
            "hunter2",
            &[
                "<soap:Body><m:password>hunter2</m:password></soap:Body>",
                "<pre>&lt;user&gt;&lt;password&gt;hunter2&lt;/password&gt;&lt;/user&gt;</pre>",
            ],
        );
        assert!(leaked.is_empty(), "{leaked:#?}");
    }

    #[test]
    fn a_bracket_in_a_comment_does_not_close_broken_json() {
        let masking = Masking { masker: None, json: rules(&["$..password"], &[]), style: Style::Redact };
        let leaked = leaks(
            &masking,
            "hunter2",
            &[
                // JSON5 / JavaScript: `{password: 'hunter2'}`.
                "{ // }\n  password /* db */ : 'hunter2'\n}\n",
                "{ /* } */ password : 'hunter2' }\n",
                // Python and YAML flow mappings: `#` starts a comment.
                "{'a': 1,  # }\n 'password': 'hunter2'}\n",
                "{'a': 1, # }\n 'pass' 'word' : 'hunter2'}\n",
                "{a: 1, # ] }\n password\n : hunter2}\n",
                "[1, # ]\n {'password': 'hunter2'}]\n",
            ],
        );
        assert!(leaked.is_empty(), "{leaked:#?}");
    }

    #[test]
    fn percent_or_entity_escaped_secrets_in_json_strings_are_masked() {
        // Refused in text, and behind a binary prefix; a JSON body without a backslash skips the check.
        let masking = Masking { masker: detectors(), json: JsonRules::default(), style: Style::Redact };
        let mut passed = Vec::new();
        for doc in [r#"{"k":"%41KIAIOSFODNN7EXAMPLE"}"#, r#"{"k":"&#65;KIAIOSFODNN7EXAMPLE"}"#] {
            let r = mask_json(doc.as_bytes(), &masking);
            passed.extend(leaked_past(r, "KIAIOSFODNN7EXAMPLE"));
            let r = message(doc.as_bytes(), true, &masking, 1 << 20).map(|c| c.into_owned());
            passed.extend(leaked_past(r, "KIAIOSFODNN7EXAMPLE").map(|o| format!("message: {o}")));
        }
        assert!(passed.is_empty(), "{passed:#?}");
    }

    #[test]
    fn zero_padded_octal_and_named_escapes_are_decoded() {
        let masking = Masking { masker: detectors(), json: JsonRules::default(), style: Style::Redact };
        let mut passed = Vec::new();
        for text in [
            // JavaScript: any number of leading zeros in `\u{...}`.
            r"key \u{000000000041}KIAIOSFODNN7EXAMPLE here",
            // Browsers: any number of leading zeros in a numeric reference.
            "key &#x0000000041;KIAIOSFODNN7EXAMPLE here",
            "key &#0000000065;KIAIOSFODNN7EXAMPLE here",
            // Python and JavaScript: one- and two-digit octal (`\67` is `7`).
            r"key AKIAIOSFODNN\67EXAMPLE here",
            // Python: `\N{...}` names digits and punctuation too.
            r"key AKIAIOSFODNN\N{DIGIT SEVEN}EXAMPLE here",
            r"eyJhbGciOiJIUzI1NiJ9\N{FULL STOP}eyJzdWIiOiIxMjM0NTY3ODkwIn0\N{FULL STOP}dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ] {
            if mask_text_holding_json(text.as_bytes(), &masking).is_ok() {
                passed.push(text);
            }
        }
        assert!(passed.is_empty(), "{passed:#?}");
    }

    #[test]
    fn json_nested_past_the_depth_limit_is_masked_whole() {
        let masking = Masking { masker: None, json: rules(&["$..password"], &[]), style: Style::Redact };
        let mut doc = r#"{"password":"hunter2"}"#.to_owned();
        for _ in 0..5 {
            doc = format!("{{\"m\":{}}}", serde_json::to_string(&doc).unwrap());
        }
        let leaked = leaked_past(mask_json(doc.as_bytes(), &masking), "hunter2");
        assert!(leaked.is_none(), "{doc} passed as {leaked:?}");
    }

    #[test]
    fn brackets_in_nested_strings_stay_linear() {
        // Each level: 16 brackets (16 parse attempts), each attempt re-reading the string
        // that holds the next level; five levels deep that was 17^5 times the payload
        // (minutes), where validating before masking keeps it linear.
        let masking = Masking { masker: detectors(), json: JsonRules::default(), style: Style::Redact };
        let mut text = format!("{}\"{}", "[".repeat(16), "a".repeat(400));
        for _ in 0..5 {
            text = format!("{}{}", "[".repeat(16), serde_json::to_string(&text).unwrap());
        }
        assert!(text.len() < 2000, "{}", text.len());
        assert!(message(text.as_bytes(), true, &masking, 1 << 20).is_ok());
    }

    #[tokio::test]
    async fn a_trickle_of_small_frames_with_escapes_stays_linear() {
        // An upstream that goes quiet between lines (`kubectl logs -f`): every frame is
        // released alone, and each release decodes the whole 160 kB escape window.
        struct Paused {
            frames: std::collections::VecDeque<Bytes>,
            pause: bool,
        }
        impl Body for Paused {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                if self.pause {
                    self.pause = false;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                self.pause = true;
                Poll::Ready(self.frames.pop_front().map(|f| Ok(Frame::data(f))))
            }
        }
        let line = b"GET /a%20b 200 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\n";
        let frames: std::collections::VecDeque<Bytes> = (0..4000).map(|_| Bytes::from_static(line)).collect();
        let len = frames.len() * line.len();
        let masked = MaskedText {
            inner: Paused { frames, pause: false }.boxed(),
            masker: crate::masking::StreamMasker::new(detectors().unwrap()),
            lines: true,
            done: false,
            mode: Mode::Text,
            seen: false,
            shown: Vec::new(),
            pending: Vec::new(),
            hold: None,
        };
        let out = masked.collect().await.unwrap().to_bytes();
        assert_eq!(out.len(), len);
    }

    #[test]
    fn ordinary_login_pages_pass() {
        let masking = Masking { masker: detectors(), json: rules(&["$..password"], &[]), style: Style::Redact };
        let mut refused = Vec::new();
        for text in [
            "<form><label for=\"password\">Password:</label><input type=\"password\" name=\"password\"></form>\n",
            "<style>#password:focus { outline: 1px solid blue }</style>\n",
        ] {
            if mask_text_holding_json(text.as_bytes(), &masking).is_err() {
                refused.push(text);
            }
        }
        assert!(refused.is_empty(), "{refused:#?}");
    }
}
