//! HTTP request heads as the HTTP plugin judges them: the framing audit
//! (`plugins::http::audit::Audited`) over the raw agent stream, then for the first
//! head, parsed as hyper parses it, `gate::check_head`, `gate::canonical_path`,
//! `airlock_http::classify::method_class`, the method overrides and the GraphQL
//! operation reader.
//!
//! - The audit files the same verdicts whether the stream arrives in one read or in
//!   input-chosen reads, and once framing is lost every later request is refused.
//! - A head with both `Content-Length` and `Transfer-Encoding` is refused by the
//!   audit and by `check_head` alike.
//! - `canonical_path` holds only for a path whose percent-decoding has the same
//!   segments, none of them `.` or `..` (nothing a server could route otherwise).
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use airlock::plugins::http::audit::{Audited, Verdicts};
use airlock::plugins::http::gate;
use airlock_fuzz::{Input, cuts};
use hyper::http::request::Parts;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

/// Reads `stream` through the audit in reads of the given sizes; returns the first
/// `heads` verdicts and the framing verdict.
fn audit(stream: &[u8], reads: &[usize], heads: usize) -> (Vec<Result<(), String>>, Result<(), String>) {
    let verdicts = Verdicts::default();
    let mut audited = Audited::new(stream, verdicts.clone());
    let mut cx = Context::from_waker(Waker::noop());
    let mut buf = vec![0u8; stream.len().max(1)];
    let mut seen = 0;
    for size in reads.iter().cycle() {
        let size = (*size).min(buf.len());
        let mut read = ReadBuf::new(&mut buf[..size]);
        match Pin::new(&mut audited).poll_read(&mut cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => break,
            Poll::Ready(Ok(())) => seen += read.filled().len(),
            other => panic!("reading memory gave {other:?}"),
        }
    }
    assert_eq!(seen, stream.len(), "the audit lost bytes of the stream");
    let heads: Vec<_> = (0..heads).map(|_| verdicts.next()).collect();
    (heads, verdicts.framing())
}

/// `%HH` decoded (only that: a path has no `+` for space).
fn percent_decoded(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |k: usize| b.get(k).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn check_path(path: &str) {
    if !gate::canonical_path(path) {
        return;
    }
    assert!(path.starts_with('/') && !path.contains(';') && !path.contains('\\'), "{path:?}");
    let raw: Vec<&[u8]> = path.as_bytes().split(|b| *b == b'/').collect();
    let decoded = percent_decoded(path);
    let segments: Vec<&[u8]> = decoded.split(|b| *b == b'/').collect();
    assert_eq!(segments.len(), raw.len(), "{path:?} decodes to other segments");
    for s in segments.iter().skip(1) {
        assert!(!matches!(*s, b"." | b".."), "{path:?} decodes to a dot segment");
    }
}

/// The first head as hyper would hand it to the plugin, if httparse reads one.
fn first_head(stream: &[u8]) -> Option<(Parts, usize, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(stream).ok()? else { return None };
    let named = |n: &str| req.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
    let ambiguous = req.version == Some(1) && named("content-length") && named("transfer-encoding");
    let version = if req.version == Some(0) { hyper::Version::HTTP_10 } else { hyper::Version::HTTP_11 };
    let mut builder = hyper::Request::builder().method(req.method?).uri(req.path?).version(version);
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some((parts, len, ambiguous))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let reads = cuts(input.take(3));
    let stream = input.rest();

    let heads = stream.len() / 16 + 2;
    let whole = audit(stream, &[usize::MAX], heads);
    let cut = audit(stream, &reads, heads);
    assert_eq!(whole, cut, "the audit depends on how the stream was read");
    if whole.1.is_err() {
        assert!(
            whole.0.iter().skip_while(|v| v.is_ok()).all(Result::is_err),
            "a request after framing was lost passed"
        );
    }

    let Some((parts, len, ambiguous)) = first_head(stream) else { return };
    let checked = gate::check_head(&parts);
    if ambiguous {
        assert!(checked.is_err(), "check_head passed both Content-Length and Transfer-Encoding");
        assert!(whole.0[0].is_err(), "the audit passed both Content-Length and Transfer-Encoding");
    }
    check_path(parts.uri.path());
    let _ = airlock_http::classify::method_class(parts.method.as_str());
    let body = &stream[len..];
    let query = parts.uri.query();
    let form = gate::is_form(&parts.headers).then_some(body);
    let _ = gate::method_overrides(&parts.headers, query, form);
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let _ = gate::graphql_of(&parts.method, query, content_type, Some(body));
    let _ = gate::is_graphql(&["/graphql".to_owned(), "/api/*/graphql".to_owned()], parts.uri.path());
});
