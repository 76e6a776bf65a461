//! The admin endpoint: `/healthz` and `/metrics` (Prometheus text format).
//!
//! It runs on the same accept loop as the protocol endpoints; each connection is served
//! by `hyper`. Later the approvals and recordings API live here too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::listener::{Incoming, Plugin};
use crate::metrics::Metrics;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the admin API.
#[derive(Debug)]
pub struct Admin {
    metrics: Arc<Metrics>,
}

impl Admin {
    /// An admin endpoint reporting `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Admin {
        Admin { metrics }
    }

    fn route(&self, req: &Request<Body>) -> Response<Full<Bytes>> {
        let reply = |status, ctype: &str, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", ctype)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        };
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            (&Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.render(),
            ),
            (_, "/healthz" | "/metrics") => reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".into()),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: try /healthz or /metrics\n".into()),
        }
    }
}

impl Plugin for Admin {
    fn endpoint(&self) -> &'static str {
        "admin"
    }

    async fn serve(self: Arc<Self>, conn: Incoming) {
        let this = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let resp = this.route(&req);
            async move { Ok::<_, Infallible>(resp) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
        let connection = builder.serve_connection(TokioIo::new(conn.stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
            }
            _ = conn.shutdown.drain.fired() => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
            }
        }
    }
}
