//! The demo's throwaway HTTP API: a ticket tracker on loopback that wants an API key
//! only Airlock holds, and whose answers carry an email and a token to mask.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A running demo API; it stops when dropped.
pub struct DemoApi {
    /// Its port on 127.0.0.1.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the API, which answers only requests carrying `Bearer <key>`.
pub async fn start(key: String) -> std::io::Result<DemoApi> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let key = Arc::new(format!("Bearer {key}"));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let key = key.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(req, key.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(DemoApi { port, task })
}

async fn answer(req: Request<hyper::body::Incoming>, key: Arc<String>) -> Result<Response<Full<Bytes>>, Infallible> {
    let authorized = req.headers().get("authorization").is_some_and(|v| v.as_bytes() == key.as_bytes());
    let (status, body) = match (authorized, req.method(), req.uri().path()) {
        (false, _, _) => (StatusCode::UNAUTHORIZED, r#"{"error":"a valid API key is required"}"#.to_owned()),
        (true, &Method::GET, "/tickets") => (
            StatusCode::OK,
            r#"[{"id":1,"title":"Printer on fire","reporter":"ada@example.com","api_token":"tk_live_4f9a1c"},{"id":2,"title":"VPN flaky","reporter":"alan@example.com","api_token":"tk_live_77b2e0"}]"#.to_owned(),
        ),
        (true, &Method::DELETE, path) if path.starts_with("/tickets/") => {
            (StatusCode::OK, format!(r#"{{"deleted":"{}"}}"#, &path["/tickets/".len()..]))
        }
        (true, _, _) => (StatusCode::NOT_FOUND, r#"{"error":"no such resource"}"#.to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}
