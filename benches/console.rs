//! The web console's speed, as a browser sees it over loopback: page loads with
//! 1,000 sessions in the index, and how long an approval click takes to reach the
//! held session, against the admin API's approve call in the same interleaved run.
//!
//! `cargo bench --bench console` starts a throwaway PostgreSQL and a release Airlock,
//! records `CONSOLE_SESSIONS` sessions (default 1,000) through it, signs in to the
//! console with a token as a browser does (cookie and CSRF token), then reports the
//! median and p99 over `CONSOLE_N` rounds (default 100) of:
//! - `GET /console/approvals`, `/console/sessions` and one session's replay;
//! - an approval: an agent's `DROP TABLE IF EXISTS` is held; the approver's click is
//!   the console's `POST /console/approvals/{id}/approve` (as the page's script sends
//!   it), timed from sending it to the agent's result arriving. Rounds alternate with
//!   the same through `POST /approvals/{id}/approve` (the CLI's path).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/airlock.rs"]
#[allow(dead_code)]
mod airlock_bench;

use std::time::{Duration, Instant};

use airlock::admin::AdminClient;
use airlock::demo::{ClusterOptions, PgCluster, free_port};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};

const APP_PASSWORD: &str = "bench-password";
const HS256: &str = "bench-hs256-secret";

fn token(subject: &str, groups: &[&str]) -> String {
    airlock_bench::token(HS256, subject, groups)
}

/// A browser: one keep-alive client, the console's cookies and CSRF token.
struct Browser {
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    base: String,
    cookies: Vec<String>,
    csrf: String,
}

impl Browser {
    async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> (u16, String) {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookies.join("; "));
        }
        if form.is_some() {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-requested-with", "fetch")
                .header("origin", self.base.as_str());
        }
        let request = request.body(Full::new(Bytes::from(form.unwrap_or_default()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Signs in with a token through the form, as a person pasting it would.
    async fn sign_in(&mut self, token: &str) {
        let (_, page) = self.send(Method::GET, "/console/login", None).await;
        let binding = field(&page, "binding");
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("token", token), ("binding", &binding), ("next", "/console/")])
            .finish();
        let (status, _) = self.send(Method::POST, "/console/login", Some(form)).await;
        assert_eq!(status, 303, "the token sign-in failed");
        let (_, page) = self.send(Method::GET, "/console/approvals", None).await;
        self.csrf = field(&page, "csrf");
    }
}

/// The value of the hidden input `name` in `page`.
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("no {name} field in {page}")) + marker.len();
    page[at..].split('"').next().unwrap().to_owned()
}

fn main() {
    let sessions: usize = std::env::var("CONSOLE_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let n: usize = std::env::var("CONSOLE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = PgCluster::start(ClusterOptions::default()).expect("PostgreSQL");
    cluster.psql("postgres", &format!("CREATE ROLE app_rw LOGIN PASSWORD '{APP_PASSWORD}'")).unwrap();
    cluster.psql("postgres", "CREATE DATABASE app OWNER app_rw").unwrap();
    let dir = cluster.dir.join("console-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (pg, admin) = (free_port().unwrap(), free_port().unwrap());
    std::fs::write(
        dir.join("airlock.toml"),
        format!(
            r#"data_dir = "{data}"
[listen]
postgres = "127.0.0.1:{pg}"
admin = "127.0.0.1:{admin}"
[postgres]
allow_plaintext_loopback = true
[auth]
hs256_secret = "{HS256}"
approver_groups = ["sre"]
[console]
auditor_groups = ["sre"]
[[connections]]
name = "app"
protocol = "postgres"
address = "127.0.0.1:{port}"
database = "app"
user = "app_rw"
password = "{APP_PASSWORD}"
allow_groups = ["agents"]
tls = "disable"
"#,
            data = dir.join("data").display(),
            port = cluster.port,
        ),
    )
    .unwrap();
    let (_airlock, _) = airlock_bench::start(&dir, "postgres");
    let agent = token("agent", &["agents"]);
    let approver = token("oncall", &["sre"]);
    let base = format!("http://127.0.0.1:{admin}");
    let api = AdminClient::new(&base, &approver);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let connect = || {
            let mut config = tokio_postgres::Config::new();
            config.host("127.0.0.1").port(pg).user("agent").dbname("app").password(&agent);
            async move {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client
            }
        };
        let started = Instant::now();
        for i in 0..sessions {
            let client = connect().await;
            client.simple_query(&format!("SELECT {i} AS session")).await.unwrap();
        }
        eprintln!("recorded {sessions} sessions in {:.1}s", started.elapsed().as_secs_f64());

        let mut browser = Browser {
            client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
            base: base.clone(),
            cookies: Vec::new(),
            csrf: String::new(),
        };
        browser.sign_in(&approver).await;
        let (_, list) = browser.send(Method::GET, "/console/sessions", None).await;
        assert!(list.contains(&format!("{sessions} of ")), "the index does not list {sessions} sessions");
        let session = list.split("href=\"/console/sessions/").nth(1).unwrap().split('"').next().unwrap().to_owned();

        // One agent waits on a held statement while the pages load, as in real use.
        let waiting = connect().await;
        let held = tokio::spawn(async move { waiting.simple_query("DROP TABLE IF EXISTS bench_waiting").await });
        while api.get("/approvals").await.unwrap().as_array().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let pages = ["/console/approvals", "/console/sessions", &format!("/console/sessions/{session}")];
        let mut loads: Vec<Vec<f64>> = vec![Vec::new(); pages.len()];
        for round in 0..=n {
            for (i, page) in pages.iter().enumerate() {
                let t = Instant::now();
                let (status, _) = browser.send(Method::GET, page, None).await;
                assert_eq!(status, 200, "{page}");
                if round > 0 {
                    loads[i].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let id = api.get("/approvals").await.unwrap()[0]["id"].as_str().unwrap().to_owned();
        api.post(&format!("/approvals/{id}/approve"), &serde_json::json!({})).await.unwrap();
        held.await.unwrap().unwrap();

        // Approvals: the console's click against the API call, alternating.
        let (mut click, mut call) = (Vec::new(), Vec::new());
        for round in 0..=n {
            for through_console in [true, false] {
                let client = connect().await;
                let held = tokio::spawn(async move {
                    client.simple_query(&format!("DROP TABLE IF EXISTS bench_nothing_{round}")).await
                });
                let id = loop {
                    let list = api.get("/approvals").await.unwrap();
                    if let Some(id) = list.as_array().and_then(|a| a.first()).and_then(|r| r["id"].as_str()) {
                        break id.to_owned();
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                };
                let sent = Instant::now();
                if through_console {
                    let form = format!("csrf={}", browser.csrf);
                    let (status, body) =
                        browser.send(Method::POST, &format!("/console/approvals/{id}/approve"), Some(form)).await;
                    assert_eq!(status, 200, "{body}");
                } else {
                    api.post(&format!("/approvals/{id}/approve"), &serde_json::json!({})).await.unwrap();
                }
                held.await.unwrap().unwrap();
                let ms = sent.elapsed().as_secs_f64() * 1e3;
                if round > 0 {
                    if through_console { click.push(ms) } else { call.push(ms) }
                }
            }
        }

        println!("console, {sessions} sessions in the index, {n} rounds (ms, loopback):");
        println!("{:<44} {:>10} {:>10}", "", "p50", "p99");
        for (page, v) in pages.iter().zip(loads) {
            let name = match page.strip_prefix("/console/sessions/") {
                Some(_) => "GET /console/sessions/{id} (a replay)".to_owned(),
                None => format!("GET {page}"),
            };
            println!(
                "{:<44} {:>10.2} {:>10.2}",
                name,
                airlock_bench::percentile(v.clone(), 0.5),
                airlock_bench::percentile(v, 0.99)
            );
        }
        println!(
            "{:<44} {:>10.2} {:>10.2}",
            "approve click -> held session's result",
            airlock_bench::percentile(click.clone(), 0.5),
            airlock_bench::percentile(click, 0.99)
        );
        println!(
            "{:<44} {:>10.2} {:>10.2}",
            "approve API call -> held session's result",
            airlock_bench::percentile(call.clone(), 0.5),
            airlock_bench::percentile(call, 0.99)
        );
    });
}
