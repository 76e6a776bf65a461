//! A small client for the admin API, used by `airlock approvals`, `approve` and `deny`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(15);
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Talks to one admin endpoint as one identity.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: String,
}

impl AdminClient {
    /// A client for `base` (`http://127.0.0.1:8081`) authenticating with `token`.
    pub fn new(base: &str, token: &str) -> AdminClient {
        AdminClient { base: base.trim_end_matches('/').to_owned(), token: token.trim().to_owned() }
    }

    /// `GET path`, returning the JSON body.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body, returning the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body.to_string())).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<String>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let (status, bytes) = send(method, &url, Some(&self.token), body).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status != StatusCode::OK {
            let message =
                value.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
            anyhow::bail!("{message} (HTTP {})", status.as_u16());
        }
        Ok(value)
    }
}

/// `GET url` without credentials (`/healthz`, `/readyz`): the body when the answer is
/// 200, an error naming the status and body otherwise. For health checks in images
/// that have no curl.
pub async fn probe(url: &str) -> anyhow::Result<String> {
    let (status, bytes) = send(Method::GET, url, None, None).await?;
    let body = String::from_utf8_lossy(&bytes).trim().to_owned();
    anyhow::ensure!(status == StatusCode::OK, "{url}: HTTP {}: {body}", status.as_u16());
    Ok(body)
}

async fn send(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
    let mut request = hyper::Request::builder().method(method).uri(url).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {TIMEOUT:?}"))?
        .map_err(|e| anyhow::anyhow!("{url}: {e} (is Airlock running, and is this its admin address?)"))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: reading the response: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}
