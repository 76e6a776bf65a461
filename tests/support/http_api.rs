//! A throwaway upstream API for the HTTP tests, plain and TLS, on ephemeral ports:
//! JSON, text, gzip, chunked, large and streaming bodies, redirects, cookies, an echo
//! of what it received, and a WebSocket echo. It remembers every request it saw.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the API was asked.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The running API.
pub struct Api {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    /// The TLS listener's certificate (for `localhost`), PEM.
    pub cert: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    _runtime: tokio::runtime::Runtime,
}

/// A JSON body with values the masking rules and detectors must catch.
pub const JSON: &str = r#"{"user":{"email":"alice@example.com","name":"Alice"},"items":[{"id":1,"password":"hunter2"},{"id":2,"nested":{"password":"swordfish"}}],"api_token":"tok-live-123","note":"key AKIAIOSFODNN7EXAMPLE here","big":12345678901234567890123,"pass\u0077ord":"escaped-key"}"#;
/// A text body with a secret in it.
pub const TEXT: &str = "line one\naws key AKIAIOSFODNN7EXAMPLE in the log\nline three\n";

impl Api {
    pub fn start(dir: &Path) -> Api {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.join("api-cert.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let chain = vec![generated.cert.der().clone()];
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut server = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let (plain, tls) = runtime.block_on(async {
            let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (plain, tls)
        });
        let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
        let s = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = plain.accept().await else { continue };
                tokio::spawn(serve(TokioIo::new(stream), s.clone()));
            }
        });
        let s = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = tls.accept().await else { continue };
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(TokioIo::new(stream), s).await;
                    }
                });
            }
        });
        Api { plain: plain_addr, tls: tls_addr, cert, seen, _runtime: runtime }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests seen for `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn serve<I>(io: TokioIo<I>, seen: Arc<Mutex<Vec<Seen>>>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(req, seen.clone()));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await;
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn reply(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", content_type.parse().unwrap());
    r
}

async fn handle(mut req: Request<Incoming>, seen: Arc<Mutex<Vec<Seen>>>) -> Result<Response<Body>, Infallible> {
    let version = format!("{:?}", req.version());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().as_str().to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    if path == "/ws" || path == "/ws-deflate" {
        seen.lock().unwrap().push(Seen { version, method, path, query, headers, body: Vec::new() });
        return Ok(websocket(&mut req));
    }
    let body = req.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        version,
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let response = match path.as_str() {
        "/api/echo" => {
            let echoed = serde_json::json!({
                "method": method,
                "path": path,
                "query": query,
                "headers": headers.iter().map(|(n, v)| serde_json::json!([n, v])).collect::<Vec<_>>(),
                "body": String::from_utf8_lossy(&body),
            });
            reply(StatusCode::OK, "application/json", full(echoed.to_string()))
        }
        "/api/json" => reply(StatusCode::OK, "application/json", full(JSON)),
        "/api/text" => reply(StatusCode::OK, "text/plain; charset=utf-8", full(TEXT)),
        "/api/gzip" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, JSON.as_bytes()).unwrap();
            let mut r = reply(StatusCode::OK, "application/json", full(gz.finish().unwrap()));
            r.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
            r
        }
        "/api/chunked" => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
                TEXT.lines().map(|l| Ok(Frame::data(Bytes::from(format!("{l}\n"))))).collect();
            reply(StatusCode::OK, "text/plain", StreamBody::new(futures_stream(chunks)).boxed())
        }
        "/api/escaped-text" => {
            // An access key with its first letter escaped, cut across two chunks.
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
                ["a log line\nkey=\\u0041KIAIOSF", "ODNN7EXAMPLE\nmore\n"]
                    .into_iter()
                    .map(|c| Ok(Frame::data(Bytes::from(c))))
                    .collect();
            reply(StatusCode::OK, "text/plain", StreamBody::new(futures_stream(chunks)).boxed())
        }
        "/api/escaped-pem" => {
            // A private key whose header escapes its dashes, a line at a time.
            let dashes = "\\u002d".repeat(5);
            // On one line, as a JSON string writes it: the stream holds back only its
            // longest match, so a line of over a kilobyte goes out as it comes.
            let lines = |first: &str| {
                format!("{first}{}", "q7BFUpkGp3+LQmlQYoh8s9X9rkdD0m3hT+6yKz1IqBWlm0Jz3MfSgTxE2YtV8kLk\\n".repeat(16))
            };
            let frames = [
                format!("a log line\n{{\"key\": \"{dashes}BEGIN RSA PRIVATE KEY{dashes}\\n"),
                lines("MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+LQmlQ\\n"),
                lines("Yoh8s9X9rkdD0m3hT+6yKz1IqBWlm0Jz3MfSgTxE2YtV8kLkqAV9GnqBCVxCm1Jq\\n"),
                format!("{dashes}END RSA PRIVATE KEY{dashes}\"}}\n"),
            ];
            let paced = futures_util::StreamExt::then(futures_stream(frames.to_vec()), |frame| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from(frame)))
            });
            reply(StatusCode::OK, "text/plain", StreamBody::new(paced).boxed())
        }
        "/api/large" => {
            let mb: usize = query.strip_prefix("mb=").and_then(|n| n.parse().ok()).unwrap_or(10);
            reply(StatusCode::OK, "application/octet-stream", full(vec![b'x'; mb << 20]))
        }
        "/api/redirect" => {
            let mut r = reply(StatusCode::FOUND, "text/plain", full("moved"));
            r.headers_mut()
                .insert("location", "http://elsewhere.invalid/cb?token=leaked-token&state=1".parse().unwrap());
            r
        }
        "/api/cookie" => {
            let mut r = reply(StatusCode::OK, "text/plain", full("ok"));
            r.headers_mut().insert("set-cookie", "session=very-secret-cookie; Path=/; HttpOnly".parse().unwrap());
            r
        }
        // Brotli, and deflate both as HTTP means it (zlib-wrapped) and as some servers
        // send it (raw).
        "/api/br" => {
            let mut out = Vec::new();
            let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            std::io::Write::write_all(&mut enc, JSON.as_bytes()).unwrap();
            drop(enc);
            let mut r = reply(StatusCode::OK, "application/json", full(out));
            r.headers_mut().insert("content-encoding", "br".parse().unwrap());
            r
        }
        "/api/deflate" | "/api/deflate-raw" => {
            let body = if path == "/api/deflate" {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut z, JSON.as_bytes()).unwrap();
                z.finish().unwrap()
            } else {
                let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut z, JSON.as_bytes()).unwrap();
                z.finish().unwrap()
            };
            let mut r = reply(StatusCode::OK, "application/json", full(body));
            r.headers_mut().insert("content-encoding", "deflate".parse().unwrap());
            r
        }
        "/api/zstd" => {
            let mut r = reply(StatusCode::OK, "application/json", full(zstd::encode_all(JSON.as_bytes(), 3).unwrap()));
            r.headers_mut().insert("content-encoding", "zstd".parse().unwrap());
            r
        }
        "/api/raw" => reply(StatusCode::OK, "application/octet-stream", full(TEXT)),
        "/api/raw-json" => reply(StatusCode::OK, "application/octet-stream", full(JSON)),
        "/api/two-types" => {
            let mut r = reply(StatusCode::OK, "application/octet-stream", full(JSON));
            r.headers_mut().append("content-type", "application/json".parse().unwrap());
            r
        }
        "/api/utf16" => {
            let utf16: Vec<u8> = TEXT.encode_utf16().flat_map(u16::to_le_bytes).collect();
            reply(StatusCode::OK, "text/plain; charset=utf-16le", full(utf16))
        }
        "/api/slow" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            reply(StatusCode::OK, "text/plain", full("slow"))
        }
        _ if path.starts_with("/api/") => reply(StatusCode::OK, "application/json", full(r#"{"ok":true}"#)),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", full("not found")),
    };
    Ok(response)
}

fn futures_stream<T: Send + 'static>(items: Vec<T>) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::iter(items)
}

/// Answers a WebSocket upgrade (at `/ws-deflate` claiming `permessage-deflate`,
/// asked or not) and echoes every message, except these text messages:
/// - `send json`: [`JSON`] as text; `send text`: [`TEXT`] as text;
/// - `send binary text`: [`TEXT`] as a binary message; `send binary`: 4 bytes
///   that are not text;
/// - `send nul text`: a NUL, then [`TEXT`], as text;
/// - `send broken json`: `{"password": "hunter2"` as text; `send escaped json`: a
///   JSON string escaping a key's first letter;
/// - `send close`: a close whose reason holds a key;
/// - `send socketio`: [`JSON`] in a Socket.IO event (`42["login",{...}]`);
/// - `send split`, `send jwt split`: a key, a JWT cut across two text messages;
///   `send close split`: a key cut between a message and a close's reason; `send escaped text`: a key
///   with its first letter escaped, in text that is not JSON;
/// - `send binary key`, `send utf16 binary`, `send gzip json`: a key in binary data
///   as it is, in UTF-16, and [`JSON`] gzipped;
/// - `send fragments`: [`TEXT`] as a text message in three frames, the key split.
fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return reply(StatusCode::BAD_REQUEST, "text/plain", full("no key"));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let deflate = req.uri().path() == "/ws-deflate";
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            let replies = match msg.to_text().unwrap_or("") {
                "send json" => vec![Message::text(JSON)],
                "send text" => vec![Message::text(TEXT)],
                "send binary text" => vec![Message::binary(TEXT.as_bytes().to_vec())],
                "send binary" => vec![Message::binary(b"\0\x01\x02\xff".to_vec())],
                "send nul text" => vec![Message::text(format!("\0{TEXT}"))],
                "send broken json" => vec![Message::text(r#"{"password": "hunter2""#)],
                "send escaped json" => vec![Message::text(r#"{"note": "\u0041KIAIOSFODNN7EXAMPLE"}"#)],
                "send socketio" => vec![Message::text(format!(r#"42["login",{}]"#, JSON))],
                "send split" => vec![Message::text("aws key AKIAIOSF"), Message::text("ODNN7EXAMPLE in the log")],
                "send jwt split" => vec![
                    Message::text(format!("session eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}", "A".repeat(600))),
                    Message::text(".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c end"),
                ],
                "send close split" => vec![
                    Message::text("aws key AKIAIOSF"),
                    Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "ODNN7EXAMPLE".into() })),
                ],
                "send escaped text" => vec![Message::text(r"key \u0041KIAIOSFODNN7EXAMPLE")],
                "send binary key" => vec![Message::binary([b"\0\x82".as_slice(), b"AKIAIOSFODNN7EXAMPLE"].concat())],
                "send utf16 binary" => {
                    vec![Message::binary(TEXT.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>())]
                }
                "send gzip json" => {
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    std::io::Write::write_all(&mut gz, JSON.as_bytes()).unwrap();
                    vec![Message::binary(gz.finish().unwrap())]
                }
                "send close" => vec![Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "done with AKIAIOSFODNN7EXAMPLE".into(),
                }))],
                "send fragments" => {
                    let (a, rest) = TEXT.split_at(TEXT.find("AKIA").unwrap() + 6);
                    let (b, c) = rest.split_at(5);
                    vec![
                        Message::Frame(Frame::message(a.as_bytes().to_vec(), OpCode::Data(Data::Text), false)),
                        Message::Frame(Frame::message(b.as_bytes().to_vec(), OpCode::Data(Data::Continue), false)),
                        Message::Frame(Frame::message(c.as_bytes().to_vec(), OpCode::Data(Data::Continue), true)),
                    ]
                }
                _ => vec![msg],
            };
            for reply in replies {
                if ws.send(reply).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert("upgrade", "websocket".parse().unwrap());
    r.headers_mut().insert("connection", "upgrade".parse().unwrap());
    r.headers_mut().insert("sec-websocket-accept", accept.parse().unwrap());
    if deflate {
        r.headers_mut().insert("sec-websocket-extensions", "permessage-deflate".parse().unwrap());
    }
    r
}
