//! Server-Sent Events: a live view re-rendered whenever its source changes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::Reply;
use crate::signal::Signal;

/// A comment every so often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What a view waits on between renders.
pub trait Changes: Send + 'static {
    /// Resolves at the next change; `false` when there will be none.
    fn next(&mut self) -> impl Future<Output = bool> + Send;
}

impl Changes for tokio::sync::watch::Receiver<u64> {
    async fn next(&mut self) -> bool {
        self.changed().await.is_ok()
    }
}

/// A change every `period`.
pub struct Ticker(tokio::time::Interval);

/// Changes every `period`.
pub fn ticker(period: Duration) -> Ticker {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Ticker(interval)
}

impl Changes for Ticker {
    async fn next(&mut self) -> bool {
        self.0.tick().await;
        true
    }
}

/// An event stream: `render` at once and after every change, each result sent as an
/// event of its name (an empty name sends nothing this time; `None` ends the stream).
/// The stream ends when the process drains.
pub fn stream<C, F, Fut>(changes: C, drain: Arc<Signal>, render: F) -> Reply
where
    C: Changes,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Option<(&'static str, String)>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut changes = changes;
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    more = changes.next() => if !more { return },
                    _ = tokio::time::sleep(KEEPALIVE) => {
                        if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    _ = drain.fired() => return,
                }
            }
            first = false;
            let Some((name, data)) = render().await else { return };
            if name.is_empty() {
                continue;
            }
            if tx.send(event(name, &data)).await.is_err() {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    let mut reply = Response::new(StreamBody::new(body).boxed_unsync());
    *reply.status_mut() = StatusCode::OK;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    reply
}

/// One event: each line of `data` (HTML) on a `data:` line of its own. A CR ends a
/// line for the browser too, so any CR in the data (recorded text can hold one) goes
/// as its character reference: it could otherwise end the event early and start one
/// of the recording's making.
fn event(name: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(&line.replace('\r', "&#13;"));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_data_is_a_data_line() {
        let e = event("pending", "<a>\n<b>\r\n");
        assert_eq!(&e[..], b"event: pending\ndata: <a>\ndata: <b>&#13;\ndata: \n\n");
    }

    #[test]
    fn a_lone_cr_cannot_start_an_event() {
        let e = event("pending", "<p>x\r\revent: ended\rdata: fake\r\r</p>");
        let text = String::from_utf8(e.to_vec()).unwrap();
        assert!(!text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().filter(|l| l.starts_with("event:")).count(), 1, "{text:?}");
    }
}
