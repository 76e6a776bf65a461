//! The approvals webhook: Slack-compatible JSON (`text` plus structured fields) posted
//! on every new and resolved request.
//!
//! Deliveries run on their own tasks with a per-attempt timeout and a few retries, so a
//! slow or failing webhook never delays a decision or a session.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Request;

/// Attempts per event, with exponential backoff between them.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A configured webhook.
#[derive(Clone)]
pub struct Webhook {
    url: hyper::Uri,
    timeout: Duration,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Webhook {
    /// A webhook posting to `url`, each attempt limited to `timeout`.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Webhook> {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Webhook { url: url.parse()?, timeout, client })
    }

    /// Posts `event` about `request` in the background. `by` is the approver and their
    /// reason or grant, for decisions.
    pub fn send(&self, event: &'static str, request: &Request, by: Option<(&str, &str)>) {
        let text = match by {
            None if event == "requested" => format!(
                "Airlock: {} wants to run on {}: `{}` ({}). Approve: `airlock approve {}` or deny: `airlock deny {} --reason ...`",
                request.asked.subject,
                request.asked.connection,
                request.asked.statement,
                request.asked.reason,
                request.id,
                request.id
            ),
            None => format!("Airlock: approval {} for {} {event}", request.id, request.asked.subject),
            Some((approver, detail)) => {
                format!("Airlock: approval {} for {} {event} by {approver} {detail}", request.id, request.asked.subject)
            }
        };
        let body = serde_json::json!({
            "text": text,
            "event": event,
            "approval": request,
            "by": by.map(|(who, _)| who),
            "detail": by.map(|(_, detail)| detail),
        });
        let body = Bytes::from(body.to_string());
        let hook = self.clone();
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            for attempt in 1..=ATTEMPTS {
                match hook.post(body.clone()).await {
                    Ok(()) => return,
                    Err(e) if attempt == ATTEMPTS => {
                        tracing::warn!(event, error = %e, attempts = ATTEMPTS, "approvals webhook failed; giving up")
                    }
                    Err(e) => {
                        tracing::debug!(event, error = %e, attempt, "approvals webhook failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        });
    }

    async fn post(&self, body: Bytes) -> anyhow::Result<()> {
        let request = hyper::Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {:?}", self.timeout))??;
        anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one HTTP request (headers and a content-length body) from `stream`.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len || n == 0 {
                    return body.to_owned();
                }
            }
        }
    }

    #[tokio::test]
    async fn failed_deliveries_are_retried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for status in ["500 Internal Server Error", "200 OK"] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let body = read_request(&mut stream).await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                stream.write_all(reply.as_bytes()).await.unwrap();
                tx.send(body).unwrap();
            }
        });
        let hook = Webhook::new(&url, Duration::from_secs(5)).unwrap();
        let request = Request {
            id: "abcd2345".into(),
            asked: crate::approvals::Asked {
                subject: "agent".into(),
                groups: vec![],
                connection: "db".into(),
                protocol: "postgres",
                statement: "DROP TABLE t".into(),
                classes: vec!["ddl", "destructive"],
                rule: "default".into(),
                reason: "needs approval".into(),
                fingerprints: vec![],
            },
            created_at: String::new(),
            expires_at: String::new(),
        };
        hook.send("requested", &request, None);
        let first: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        let second: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(first, second, "the same event, delivered again");
        assert_eq!(first["event"], "requested");
        assert_eq!(first["approval"]["id"], "abcd2345");
        let text = first["text"].as_str().unwrap();
        assert!(text.contains("airlock approve abcd2345") && text.contains("DROP TABLE t"), "{text}");
    }
}
