//! The HTTP endpoint end to end: `curl`, Python `requests` and `httpx`, and a
//! WebSocket client through Airlock to a throwaway API, in both modes, judged by what
//! the API really received and what the agent really got back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::time::Duration;

use support::http_api::Api;
use support::{Airlock, cli, ok, pending, token};

/// The credential Airlock adds upstream; the agent must never see it.
const UPSTREAM_SECRET: &str = "real-upstream-secret-8d2f";
/// The one in a file.
const FILE_SECRET: &str = "file-api-key-77c1";

struct Rig {
    airlock: Airlock,
    api: Api,
    root: std::path::PathBuf,
    agent: String,
}

impl Rig {
    fn start(settings: &str) -> Rig {
        let root = std::env::temp_dir().join(format!("airlock-http-{}-{}", std::process::id(), next()));
        std::fs::create_dir_all(&root).unwrap();
        let api = Api::start(&root);
        let key_file = root.join("api-key");
        std::fs::write(&key_file, format!("{FILE_SECRET}\n")).unwrap();
        let config = format!(
            r#"
[[connections]]
name = "api"
protocol = "http"
url = "http://127.0.0.1:{plain}"
allow_groups = ["agents"]
headers = {{ Authorization = {{ value = "{UPSTREAM_SECRET}", prefix = "Bearer " }}, X-Api-Key = {{ file = "{key}" }} }}

[[connections]]
name = "secure"
protocol = "http"
url = "https://localhost:{tls}"
ca_file = "{cert}"
allow_groups = ["agents"]
websocket = true
headers = {{ Authorization = {{ value = "{UPSTREAM_SECRET}", prefix = "token " }} }}

[[connections]]
name = "basic"
protocol = "http"
url = "http://localhost:{plain}/api"
allow_groups = ["agents"]
basic_auth = {{ user = "ci", password = {{ value = "basic-pass-5521" }} }}

[[masking]]
connections = ["api", "secure"]
json = ["$.user.email", "$..password"]
keys = ["*token*"]

[[rules]]
name = "no-forbidden"
request = "POST /api/forbidden"
action = "deny"
message = "posting to forbidden is not allowed"

[approvals]
{settings}
"#,
            plain = api.plain.port(),
            tls = api.tls.port(),
            cert = api.cert.display(),
            key = key_file.display(),
        );
        let airlock = Airlock::start_with("", &config);
        Rig { airlock, api, root, agent: token("agent-h", &["agents"]) }
    }

    fn http(&self) -> std::net::SocketAddr {
        self.airlock.http.expect("http endpoint")
    }

    /// `curl` in reverse mode: `/<connection>/<path>` with the agent's Bearer token.
    fn curl(&self, args: &[&str], path: &str) -> Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-H", &format!("Authorization: Bearer {}", self.agent)])
            .args(args)
            .arg(format!("http://{}{path}", self.http()))
            .output()
            .unwrap()
    }

    /// The agent's recorded sessions, as `sessions --json` lists them.
    fn sessions(&self) -> Vec<serde_json::Value> {
        let list = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["sessions", "--json", "--subject", "agent-h", "--data-dir"])
            .arg(&self.airlock.dir)
            .output()
            .unwrap();
        serde_json::from_str(&ok(&list)).unwrap()
    }

    /// A session's replay as HAR.
    fn har(&self, id: &str) -> String {
        let har = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["replay", id, "--format", "har", "--data-dir"])
            .arg(&self.airlock.dir)
            .output()
            .unwrap();
        ok(&har)
    }

    fn ca(&self) -> std::path::PathBuf {
        let path = self.root.join("airlock-ca.pem");
        let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["ca", "export", "--config"])
            .arg(self.airlock.dir.join("airlock.toml"))
            .output()
            .unwrap();
        std::fs::write(&path, ok(&out)).unwrap();
        path
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- airlock log ---\n{}", self.airlock.log());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn next() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The status line's code and the body of a `curl -i` output.
fn split(out: &Output) -> (u16, String, String) {
    let all = text(&out.stdout);
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, head.to_owned(), body.to_owned())
}

#[test]
fn credentials_are_injected_and_replies_are_masked_before_the_agent_sees_them() {
    let rig = Rig::start("");
    // The upstream gets the connection's credentials, never the agent's token.
    let out = rig.curl(&["-i"], "/api/api/echo?x=1");
    let (code, head, body) = split(&out);
    assert_eq!(code, 200, "{head}\n{body}\n{}", text(&out.stderr));
    let seen = rig.api.seen_at("/api/echo");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {UPSTREAM_SECRET}").as_str()));
    assert_eq!(seen[0].header("x-api-key"), Some(FILE_SECRET));
    assert_eq!(seen[0].query, "x=1");
    assert!(seen[0].headers.iter().all(|(_, v)| !v.contains(&rig.agent)), "the agent's token went upstream");
    // The API echoed the credential back: the agent does not get it.
    for secret in [UPSTREAM_SECRET, FILE_SECRET] {
        assert!(!body.contains(secret), "{body}");
    }
    assert!(body.contains("[MASKED:credential]"), "{body}");

    // Basic authentication, under a base path.
    let out = rig.curl(&[], "/basic/echo");
    let seen = rig.api.seen_at("/api/echo");
    assert_eq!(seen.last().unwrap().header("authorization"), Some("Basic Y2k6YmFzaWMtcGFzcy01NTIx"));
    let body = text(&out.stdout);
    assert!(
        !body.contains("Y2k6YmFzaWMtcGFzcy01NTIx") && !body.contains("basic-pass-5521") && body.contains("/api/echo"),
        "{body}"
    );

    // JSON: paths, key globs and detectors; everything else byte for byte.
    let out = rig.curl(&[], "/api/api/json");
    let body = text(&out.stdout);
    for leaked in ["alice@example.com", "hunter2", "swordfish", "tok-live-123", "AKIAIOSFODNN7EXAMPLE", "escaped-key"] {
        assert!(!body.contains(leaked), "{leaked} in {body}");
    }
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["user"]["name"], "Alice");
    assert!(body.contains("\"big\":12345678901234567890123"), "a big number changed: {body}");
    // zstd, brotli and deflate (zlib-wrapped and raw) bodies are decoded and masked.
    for (path, encoding) in [
        ("/api/api/zstd", "zstd"),
        ("/api/api/br", "br"),
        ("/api/api/deflate", "deflate"),
        ("/api/api/deflate-raw", "deflate"),
    ] {
        let out = rig.curl(&["-i", "-H", &format!("Accept-Encoding: {encoding}")], path);
        let (code, head, body) = split(&out);
        assert_eq!(code, 200, "{path}: {head}");
        assert!(body.contains("Alice") && !body.contains("hunter2"), "{path}: {body}");
        assert!(
            !head.to_ascii_lowercase().contains("content-encoding"),
            "{path}: sent decoded, labelled encoded: {head}"
        );
    }
    // Text, chunked and gzip bodies.
    for (path, args) in
        [("/api/api/text", &[][..]), ("/api/api/chunked", &[][..]), ("/api/api/gzip", &["--compressed"][..])]
    {
        let out = rig.curl(args, path);
        let body = text(&out.stdout);
        assert!(out.status.success() && !body.is_empty(), "{path}: {}", text(&out.stderr));
        assert!(!body.contains("AKIAIOSFODNN7EXAMPLE") && !body.contains("hunter2"), "{path}: {body}");
    }
    // A streamed text body (the `basic` connection has no JSON rules) with a secret
    // escaped across its chunks is cut before the secret completes.
    let out = rig.curl(&[], "/basic/escaped-text");
    let body = text(&out.stdout);
    assert!(!out.status.success() && !body.contains("EXAMPLE"), "{body}: {}", text(&out.stderr));
    // So is one whose private key header only its escapes spell, before a line of the key.
    let out = rig.curl(&[], "/basic/escaped-pem");
    let body = text(&out.stdout);
    assert!(!out.status.success() && !body.contains("MIIBVQ") && !body.contains("Yoh8s9"), "{body}");
    // Redirects go back to the agent, never followed, with their secrets masked.
    let (code, head, _) = split(&rig.curl(&["-i"], "/api/api/redirect"));
    assert_eq!(code, 302);
    assert!(head.contains("token=[MASKED") && !head.contains("leaked-token"), "{head}");
    assert!(rig.api.seen().iter().all(|s| !s.path.contains("cb")));
    let (_, head, _) = split(&rig.curl(&["-i"], "/api/api/cookie"));
    assert!(head.contains("session=[MASKED]") && !head.contains("very-secret-cookie"), "{head}");
    // Text labelled binary is still read as text; text the detectors cannot read is refused.
    let body = text(&rig.curl(&[], "/api/api/raw").stdout);
    assert!(body.contains("line three") && !body.contains("AKIAIOSFODNN7EXAMPLE"), "{body}");
    assert_eq!(split(&rig.curl(&["-i"], "/api/api/utf16")).0, 502);
    // JSON under a binary label, or under two labels, is refused rather than passed.
    for path in ["/api/api/raw-json", "/api/api/two-types"] {
        let (code, _, body) = split(&rig.curl(&["-i"], path));
        assert_eq!(code, 502, "{path}: {body}");
        assert!(!body.contains("hunter2"), "{body}");
    }
    // A large binary body passes untouched.
    let out = rig.curl(&[], "/api/api/large?mb=10");
    assert_eq!(out.stdout.len(), 10 << 20);
    assert!(out.stdout.iter().all(|b| *b == b'x'));
    // The recording holds what the agent saw.
    let recorded = support::recorded(&rig.airlock, "agent-h");
    for secret in [UPSTREAM_SECRET, FILE_SECRET, "hunter2", "AKIAIOSFODNN7EXAMPLE", &rig.agent] {
        assert!(!recorded.contains(secret), "{secret} recorded");
    }
    assert!(recorded.contains("/api/json"), "{recorded}");
}

#[test]
fn bad_tokens_unknown_connections_and_denials_get_clear_answers() {
    let rig = Rig::start("");
    let out =
        Command::new("curl").args(["-s", "-i"]).arg(format!("http://{}/api/api/json", rig.http())).output().unwrap();
    let (code, head, _) = split(&out);
    assert_eq!(code, 401, "{head}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    let bad = Command::new("curl")
        .args(["-s", "-i", "-H", "Authorization: Bearer nope"])
        .arg(format!("http://{}/api/api/json", rig.http()))
        .output()
        .unwrap();
    assert_eq!(split(&bad).0, 401);
    // TLS on the same port, with the Postgres endpoint's certificate, and HTTP/2 over it.
    let cert = rig.airlock.dir.join("tls/server.crt");
    for version in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args(["-sS", "-i", version, "--cacert"])
            .arg(&cert)
            .args(["-H", &format!("Authorization: Bearer {}", rig.agent)])
            .arg(format!("https://127.0.0.1:{}/api/api/json", rig.http().port()))
            .output()
            .unwrap();
        let (code, head, body) = split(&out);
        assert_eq!(code, 200, "{version}: {head} {}", text(&out.stderr));
        assert!(body.contains("Alice") && !body.contains("hunter2"), "{body}");
    }
    let (code, _, body) = split(&rig.curl(&["-i"], "/nosuch/x"));
    assert_eq!(code, 404);
    assert!(body.contains("api") && body.contains("secure"), "{body}");
    let (code, _, body) = split(&rig.curl(&["-i", "-X", "POST", "-d", "x"], "/api/api/forbidden"));
    assert_eq!(code, 403);
    assert!(body.contains("posting to forbidden is not allowed"), "{body}");
    assert!(rig.api.seen_at("/api/forbidden").is_empty(), "a denied request reached the API");
    // A spelling the server may read otherwise is held, not matched around.
    let (code, _, body) = split(&rig.curl(&["-i", "-X", "POST", "-d", "x", "--path-as-is"], "/api/api/x/../forbidden"));
    assert_eq!(code, 403, "{body}");
    assert!(rig.api.seen_at("/api/forbidden").is_empty());
}

#[test]
fn a_held_delete_goes_ahead_once_approved_and_a_denied_one_gets_the_reason() {
    let rig = Rig::start("http_hold = \"60s\"");
    let http = rig.http();
    let agent = rig.agent.clone();
    let delete = |path: &str| {
        let (agent, url) = (agent.clone(), format!("http://{http}{path}"));
        std::thread::spawn(move || {
            Command::new("curl")
                .args(["-sS", "-i", "-X", "DELETE", "-H", &format!("Authorization: Bearer {agent}"), &url])
                .output()
                .unwrap()
        })
    };
    let waiting = delete("/api/api/items/1");
    let held = pending(&rig.airlock, 1);
    assert_eq!(held[0]["protocol"], "http");
    assert_eq!(held[0]["statement"], "DELETE /api/items/1");
    assert!(rig.api.seen_at("/api/items/1").is_empty(), "it went upstream before approval");
    ok(&cli(&rig.airlock, &["approve", held[0]["id"].as_str().unwrap()]));
    let (code, head, _) = split(&waiting.join().unwrap());
    assert_eq!(code, 200, "{head}");
    assert_eq!(rig.api.seen_at("/api/items/1")[0].method, "DELETE");

    let waiting = delete("/api/api/items/2");
    let held = pending(&rig.airlock, 1);
    ok(&cli(&rig.airlock, &["deny", held[0]["id"].as_str().unwrap(), "--reason", "not that one"]));
    let (code, _, body) = split(&waiting.join().unwrap());
    assert_eq!(code, 403);
    assert!(body.contains("not that one"), "{body}");
    assert!(rig.api.seen_at("/api/items/2").is_empty());
}

#[test]
fn a_request_held_past_the_agents_wait_is_retried_with_its_approval_id_once() {
    let rig = Rig::start("http_hold = \"1s\"");
    let delete = |extra: &[&str], body: &str| {
        let mut args = vec!["-i", "-X", "DELETE", "-d", body];
        args.extend_from_slice(extra);
        split(&rig.curl(&args, "/api/api/items/9"))
    };
    // A POST that asks the server to read it as a DELETE is judged as one.
    let (code, _, body) =
        split(&rig.curl(&["-i", "-X", "POST", "-H", "X-HTTP-Method-Override: DELETE", "-d", "x"], "/api/api/items/8"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("approval_pending"), "{body}");
    let (code, _, body) = split(&rig.curl(&["-i", "-X", "POST", "-d", "_method=delete&a=1"], "/api/api/items/8"));
    assert_eq!(code, 403, "{body}");
    assert!(rig.api.seen_at("/api/items/8").is_empty());
    let (code, head, body) = delete(&[], "{\"why\":\"cleanup\"}");
    assert_eq!(code, 403, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["error"], "approval_pending");
    let id = answer["approval"].as_str().unwrap().to_owned();
    // Not yet approved: still pending, nothing sent.
    let header = format!("Airlock-Approval: {id}");
    let (code, _, body) = delete(&["-H", &header], "{\"why\":\"cleanup\"}");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("approval_pending"), "{body}");
    ok(&cli(&rig.airlock, &["approve", &id]));
    // Another body is another request: the approval does not cover it.
    let (code, _, body) = delete(&["-H", &header], "{\"why\":\"everything\"}");
    assert_eq!(code, 403, "{body}");
    assert!(rig.api.seen_at("/api/items/9").is_empty());
    let _ = pending(&rig.airlock, 3);
    // The same request goes, once.
    let (code, head, _) = delete(&["-H", &header], "{\"why\":\"cleanup\"}");
    assert_eq!(code, 200, "{head}");
    let seen = rig.api.seen_at("/api/items/9");
    assert_eq!(seen.len(), 1);
    assert_eq!(text(&seen[0].body), "{\"why\":\"cleanup\"}");
    assert!(seen[0].header("airlock-approval").is_none());
    let (code, _, body) = delete(&["-H", &header], "{\"why\":\"cleanup\"}");
    assert_eq!(code, 403, "an approval is used once: {body}");
    assert_eq!(rig.api.seen_at("/api/items/9").len(), 1);
}

#[test]
fn forward_proxy_mode_serves_http_and_connect_and_is_never_an_open_proxy() {
    let rig = Rig::start("");
    let proxy = format!("http://{}", rig.http());
    let user = format!("agent:{}", rig.agent);
    // Plain http:// through the proxy.
    let out = Command::new("curl")
        .args(["-sS", "-i", "-x", &proxy, "--proxy-user", &user])
        .arg(format!("http://127.0.0.1:{}/api/json", rig.api.plain.port()))
        .output()
        .unwrap();
    let (code, head, body) = split(&out);
    assert_eq!(code, 200, "{head} {}", text(&out.stderr));
    assert!(!body.contains("hunter2"), "{body}");
    // A host with no connection.
    let out = Command::new("curl")
        .args(["-sS", "-i", "-x", &proxy, "--proxy-user", &user, "http://example.invalid/"])
        .output()
        .unwrap();
    assert_eq!(split(&out).0, 403, "{}", text(&out.stdout));
    let out = Command::new("curl")
        .args(["-sS", "-x", &proxy, "--proxy-user", &user, "https://example.invalid/"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "CONNECT to an unknown host must fail");
    // No token: 407.
    let out = Command::new("curl")
        .args(["-sS", "-i", "-x", &proxy])
        .arg(format!("http://127.0.0.1:{}/api/json", rig.api.plain.port()))
        .output()
        .unwrap();
    assert_eq!(split(&out).0, 407);
    // HTTPS through CONNECT, trusting Airlock's CA.
    let ca = rig.ca();
    let out = Command::new("curl")
        .args(["-sS", "-i", "-x", &proxy, "--proxy-user", &user, "--cacert"])
        .arg(&ca)
        .arg(format!("https://localhost:{}/api/echo", rig.api.tls.port()))
        .output()
        .unwrap();
    let (code, head, body) = split(&out);
    assert_eq!(code, 200, "{head} {}", text(&out.stderr));
    assert!(!body.contains(UPSTREAM_SECRET), "{body}");
    let seen = rig.api.seen_at("/api/echo");
    assert_eq!(seen.last().unwrap().header("authorization"), Some(format!("token {UPSTREAM_SECRET}").as_str()));
    // The TLS upstream offers HTTP/2, and Airlock speaks it there.
    assert_eq!(seen.last().unwrap().version, "HTTP/2.0");
    // Without the CA, curl refuses Airlock's certificate: nothing is sent.
    let before = rig.api.seen().len();
    let out = Command::new("curl")
        .args(["-sS", "-x", &proxy, "--proxy-user", &user])
        .arg(format!("https://localhost:{}/api/echo", rig.api.tls.port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(rig.api.seen().len(), before);
}

#[test]
fn python_requests_and_httpx_honour_https_proxy_through_airlock() {
    let rig = Rig::start("");
    let ca = rig.ca();
    let python = support::drivers_python("requests, httpx");
    let script = r#"
import os, sys, requests, httpx
url = sys.argv[1]
r = requests.get(url, timeout=30)
assert r.status_code == 200, (r.status_code, r.text)
assert "hunter2" not in r.text and "alice@example.com" not in r.text, r.text
with httpx.Client(timeout=30, verify=os.environ["SSL_CERT_FILE"]) as c:
    h = c.get(url)
assert h.status_code == 200, (h.status_code, h.text)
assert h.json()["user"]["name"] == "Alice"
print("ok")
"#;
    let out = Command::new(python)
        .args(["-c", script, &format!("https://localhost:{}/api/json", rig.api.tls.port())])
        .env("HTTPS_PROXY", format!("http://agent:{}@{}", rig.agent, rig.http()))
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("SSL_CERT_FILE", &ca)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "ok", "{}", text(&out.stderr));
}

/// An upstream that answers each request head at once and never reads a body, as
/// some static handlers do: a body on a reused connection would be read as a request.
fn body_ignoring_upstream() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = pending.drain(..end + 4).collect();
                        let first = text(&head).lines().next().unwrap_or("").to_owned();
                        seen.lock().unwrap().push(first);
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok");
                        // Like most servers, it honours the client's `Connection: close`.
                        if text(&head).to_ascii_lowercase().contains("\r\nconnection: close") {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, lines)
}

#[test]
fn idle_and_slow_connections_are_closed_after_the_handshake_timeout() {
    let rig = Rig::start("");
    let idle_for = |first: &str| {
        let mut s = std::net::TcpStream::connect(rig.http()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(first.as_bytes()).unwrap();
        let started = std::time::Instant::now();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        (started.elapsed(), text(&all))
    };
    // A keep-alive connection that goes quiet after a request, and one that never
    // finishes its head: both closed by Airlock (the test config's timeout is 5 s).
    let request = format!("GET /api/api/json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", rig.agent);
    let (waited, reply) = idle_for(&request);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(waited < Duration::from_secs(15), "an idle keep-alive connection stayed open {waited:?}");
    let (waited, _) = idle_for("GET /api/api/json HTTP/1.1\r\nHost: x\r\n");
    assert!(waited < Duration::from_secs(15), "a half-sent head kept the connection open {waited:?}");
}

#[test]
fn a_body_the_upstream_does_not_read_never_becomes_a_request() {
    let (port, lines) = body_ignoring_upstream();
    let config = format!(
        "[[connections]]\nname = \"static\"\nprotocol = \"http\"\nurl = \"http://127.0.0.1:{port}\"\nallow_groups = [\"agents\"]\n"
    );
    let airlock = Airlock::start_with("", &config);
    let agent = token("agent-h", &["agents"]);
    let smuggled = "DELETE /items/8 HTTP/1.1\r\nHost: x\r\n\r\n";
    let url = format!("http://{}/static/logo.png", airlock.http.unwrap());
    for _ in 0..2 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-X",
                "GET",
                "-H",
                &format!("Authorization: Bearer {agent}"),
                "--data-binary",
                smuggled,
                &url,
            ])
            .args(["--next", "-sS", "-H", &format!("Authorization: Bearer {agent}"), &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let lines = lines.lock().unwrap().clone();
    assert!(lines.iter().all(|l| l.starts_with("GET /logo.png")), "{lines:?}");
}

#[test]
fn request_smuggling_shapes_are_refused_with_400_before_anything_reaches_the_api() {
    let rig = Rig::start("");
    let corpus = |name: &str| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/http/").to_owned() + name;
        airlock_http::corpus::unescape_corpus(&std::fs::read_to_string(path).unwrap())
    };
    // Each request goes to connection `api` with a valid token, so that only its
    // shape can stop it.
    let authorized = |raw: &[u8]| -> Vec<u8> {
        let raw = String::from_utf8_lossy(raw).replacen(" /api/echo", " /api/api/echo", 1).into_bytes();
        let at = raw.iter().position(|b| *b == b'\n').map_or(raw.len(), |i| i + 1);
        let auth = format!("Authorization: Bearer {}\r\n", rig.agent);
        [&raw[..at], auth.as_bytes(), &raw[at..]].concat()
    };
    let send = |raw: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(rig.http()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let raw = authorized(raw);
        let _ = s.write_all(&raw);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        text(&out)
    };
    let attacks = corpus("smuggling.txt");
    assert!(attacks.len() >= 40, "{}", attacks.len());
    let mut failures = Vec::new();
    for (name, raw) in &attacks {
        let reply = send(raw);
        let status = reply.split_whitespace().nth(1).unwrap_or("(closed)");
        if status != "400" {
            failures.push(format!("{name}: {}", reply.lines().next().unwrap_or("(no reply)")));
        }
    }
    assert!(failures.is_empty(), "not refused with 400:\n{}", failures.join("\n"));
    assert!(rig.api.seen().is_empty(), "reached the API: {:?}", rig.api.seen());
    for (name, raw) in corpus("benign.txt") {
        let reply = send(&raw);
        assert!(reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"), "{name}: {reply}");
    }
}

#[test]
fn websocket_messages_are_masked_recorded_and_refused_when_they_cannot_be() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    let rig = Rig::start("");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let connect = |connection: &str, path: &str| {
            let mut request = format!("ws://{}/{connection}{path}", rig.http()).into_client_request().unwrap();
            let headers = request.headers_mut();
            headers.insert("authorization", format!("Bearer {}", rig.agent).parse().unwrap());
            // Asked for, and never passed on: a compressed message could not be masked.
            headers.insert("sec-websocket-extensions", "permessage-deflate".parse().unwrap());
            let addr = rig.http();
            async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                tokio_tungstenite::client_async(request, stream).await
            }
        };
        let (mut ws, response) = connect("secure", "/ws").await.expect("upgrade through Airlock");
        assert!(response.headers().get("sec-websocket-extensions").is_none());
        let mut ask = async |message: &str| {
            ws.send(Message::text(message)).await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap()
        };
        let echoed = ask("hello through the airlock").await;
        assert_eq!(echoed.into_text().unwrap().as_str(), "hello through the airlock");
        // Secrets from the upstream, as text, as text in a binary message, and split
        // across the frames of one message, reach the agent masked.
        for (what, asked) in [("text", "send text"), ("binary", "send binary text"), ("fragments", "send fragments")] {
            let got = ask(asked).await;
            assert_eq!(got.is_binary(), what == "binary", "{what}: {got:?}");
            let got = String::from_utf8(got.into_data().to_vec()).unwrap();
            assert!(!got.contains(KEY) && got.contains("[MASKED") && got.contains("line three"), "{what}: {got}");
        }
        // JSON by path, key and detector.
        let json: serde_json::Value = serde_json::from_str(ask("send json").await.to_text().unwrap()).unwrap();
        let shown = json.to_string();
        for secret in ["alice@example.com", "hunter2", "swordfish", "tok-live-123", KEY] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(json["user"]["name"], "Alice");
        let escaped = ask("send escaped json").await;
        let escaped: serde_json::Value = serde_json::from_str(escaped.to_text().unwrap()).unwrap();
        assert!(!escaped.to_string().contains(KEY), "an escaped key passed: {escaped}");
        // Data that is not text passes untouched.
        assert_eq!(ask("send binary").await.into_data().as_ref(), b"\0\x01\x02\xff");
        // JSON behind a prefix is masked as JSON.
        let socketio = ask("send socketio").await.into_text().unwrap();
        for secret in ["alice@example.com", "hunter2", "tok-live-123", KEY] {
            assert!(!socketio.contains(secret), "{secret} in {socketio}");
        }
        // Text the detectors cannot read is not sent: the agent is told why, and the
        // connection ends.
        match ask("send nul text").await {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::Error);
                assert!(frame.reason.contains("cannot mask"), "{}", frame.reason);
            }
            other => panic!("a message that cannot be masked was passed: {other:?}"),
        }
        // What cannot be masked where it stands is not sent: a key cut across two
        // messages, an escaped key in plain text, a key in binary data (as it is, in
        // UTF-16, gzipped). Each ends its connection with 1011.
        for asked in [
            "send split",
            "send jwt split",
            "send escaped text",
            "send binary key",
            "send utf16 binary",
            "send gzip json",
        ] {
            let (mut ws, _) = connect("secure", "/ws").await.unwrap();
            ws.send(Message::text(asked)).await.unwrap();
            loop {
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
                    Message::Close(Some(frame)) => {
                        assert_eq!(frame.code, CloseCode::Error, "{asked}: {frame:?}");
                        break;
                    }
                    Message::Text(t) => assert!(!t.contains("ODNN7EXAMPLE"), "{asked}: {t}"),
                    other => panic!("{asked}: passed {other:?}"),
                }
            }
        }
        // A close's reason cannot finish a key the message before it began.
        let (mut ws, _) = connect("secure", "/ws").await.unwrap();
        ws.send(Message::text("send close split")).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Close(Some(frame)) => {
                    assert!(!frame.reason.contains("ODNN7"), "{frame:?}");
                    break;
                }
                Message::Close(None) => break,
                _ => {}
            }
        }
        // A close's reason is masked too.
        let (mut ws, _) = connect("secure", "/ws").await.unwrap();
        ws.send(Message::text("send close")).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Close(Some(frame)) => assert!(!frame.reason.contains(KEY), "{}", frame.reason),
            other => panic!("expected the upstream's close: {other:?}"),
        }
        // JSON the rules apply to that does not parse: the same.
        let (mut ws, _) = connect("secure", "/ws").await.unwrap();
        ws.send(Message::text("send broken json")).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(&got, Message::Close(Some(f)) if f.code == CloseCode::Error), "{got:?}");
        // An upstream that compresses anyway is refused before the agent is upgraded.
        match connect("secure", "/ws-deflate").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 502),
            other => panic!("an upstream using extensions was relayed: {other:?}"),
        }
        assert!(connect("api", "/ws").await.is_err(), "websocket = false must refuse the upgrade");
    });
    let upgrades = rig.api.seen_at("/ws");
    assert_eq!(upgrades.len(), 10, "only the allowed upgrades reached the API");
    for seen in &upgrades {
        assert!(seen.headers.iter().all(|(n, _)| n != "sec-websocket-extensions"), "{:?}", seen.headers);
    }
    // A session with a WebSocket stays open while it runs: every message is in the
    // recording, masked as the agent got it.
    let replays: Vec<String> = rig.sessions().iter().map(|s| rig.har(s["id"].as_str().unwrap())).collect();
    let all = replays.join("\n");
    for secret in ["alice@example.com", "hunter2", "tok-live-123", KEY, "\\u0041KIA"] {
        assert!(!all.contains(secret), "{secret} is in the recording");
    }
    let har: serde_json::Value = serde_json::from_str(&replays[0]).unwrap();
    let messages = har["log"]["entries"][0]["_webSocketMessages"].as_array().expect("messages in the HAR").clone();
    let data: Vec<&str> = messages.iter().map(|m| m["data"].as_str().unwrap()).collect();
    assert_eq!(messages[0]["type"], "send");
    assert_eq!(data[0], "hello through the airlock");
    assert_eq!(data[1], "hello through the airlock");
    assert!(data.contains(&"send fragments") && data.iter().any(|d| d.contains("[MASKED")), "{data:?}");
    let refused = messages.iter().find(|m| m["opcode"] == 8).expect("the close");
    assert_eq!((&refused["type"], &refused["_code"]), (&"receive".into(), &1011.into()), "{messages:?}");
    assert!(refused["data"].as_str().unwrap().contains("cannot mask"), "{refused}");
}

#[test]
fn sessions_replay_as_har_that_a_validator_accepts() {
    let rig = Rig::start("");
    // One connection, three exchanges: one session.
    let base = format!("http://{}/api/api", rig.http());
    let auth = format!("Authorization: Bearer {}", rig.agent);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-H",
            &auth,
            &format!("{base}/json"),
            "--next",
            "-o",
            "/dev/null",
            "-H",
            &auth,
        ])
        .args(["-H", "content-type: application/json", "-d", "{\"a\":1}", &format!("{base}/echo"), "--next"])
        .args(["-o", "/dev/null", "-H", &auth, &format!("{base}/large?mb=1")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sessions = rig.sessions();
    let har_text = rig.har(sessions[0]["id"].as_str().unwrap());
    let parsed: serde_json::Value = serde_json::from_str(&har_text).unwrap();
    let entries = parsed["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{har_text}");
    assert!(!har_text.contains("hunter2"));
    let file = rig.root.join("session.har");
    std::fs::write(&file, &har_text).unwrap();
    let node_path = support::drivers_node_path("har-validator");
    let check = "const v = require('har-validator'); const fs = require('fs');\
        v.har(JSON.parse(fs.readFileSync(process.argv[1], 'utf8'))).then(() => console.log('valid'))\
        .catch(e => { console.error(JSON.stringify(e.errors || e.message)); process.exit(1); });";
    let out = Command::new("node").args(["-e", check]).arg(&file).env("NODE_PATH", node_path).output().unwrap();
    assert_eq!(text(&out.stdout).trim(), "valid", "{}", text(&out.stderr));
}

#[test]
fn a_websocket_peer_that_pings_and_never_reads_cannot_grow_airlocks_memory() {
    let rig = Rig::start("");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&rig.http().into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    let upgrade = format!(
        "GET /secure/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        rig.agent
    );
    stream.write_all(upgrade.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", text(&head));
    // Masked pings with 125-byte payloads, as fast as Airlock takes them; nothing read.
    let mut ping = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    ping.extend(std::iter::repeat_n(b'p' ^ 1, 125));
    let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 1000).collect();
    let pid = rig.airlock.pid();
    let before = support::rss_kib(pid);
    stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    while sent < 200 << 20 && started.elapsed() < Duration::from_secs(20) {
        match stream.write_all(&burst) {
            Ok(()) => sent += burst.len(),
            Err(_) => break,
        }
    }
    let grown = support::rss_kib(pid).saturating_sub(before);
    eprintln!("sent {} MB of pings; Airlock grew {grown} KiB", sent >> 20);
    assert!(grown < 64 << 10, "Airlock grew {grown} KiB on {} MB of unread pongs", sent >> 20);
}
