//! Security checks against a running Airlock: a JWT attack corpus, secrets kept out of
//! logs at every level, and the modes of the files that hold secrets.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use support::*;

/// Signs `header` and `claims`, given as raw JSON text so that a test can write what no
/// JSON library would (a member named twice).
fn sign_raw(header: &str, claims: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// A server that counts the connections it is sent and answers each with `body`: it
/// stands for an attacker's key host named in a token's `jku` or `x5u`.
fn key_host(body: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_attack_corpus_is_refused() {
    // The trusted issuer signs with RSA (kid "idp-1") from a JWKS file; HS256 is on too
    // (the test config's shared secret), which is what algorithm confusion aims at.
    let idp = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let idp_key = EncodingKey::from_rsa_pem(idp.serialize_pem().as_bytes()).unwrap();
    let mut idp_jwk = Jwk::from_encoding_key(&idp_key, Algorithm::RS256).unwrap();
    idp_jwk.common.key_id = Some("idp-1".into());
    let idp_public_pem = idp.public_key_pem();
    let idp_public_der = rcgen::PublicKeyData::subject_public_key_info(&idp);

    // The attacker's own key, offered through every header that can point at a key.
    let evil = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let evil_key = EncodingKey::from_rsa_pem(evil.serialize_pem().as_bytes()).unwrap();
    let mut evil_jwk = Jwk::from_encoding_key(&evil_key, Algorithm::RS256).unwrap();
    evil_jwk.common.key_id = Some("idp-1".into());
    let evil_jwks = json!({ "keys": [evil_jwk] }).to_string();
    let (evil_port, evil_hits) = key_host(evil_jwks);

    let dir = std::env::temp_dir().join(format!("airlock-jwt-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, json!({ "keys": [idp_jwk] }).to_string()).unwrap();
    let text =
        config(&dir, "", "").replacen("[auth]\n", &format!("[auth]\njwks_file = \"{}\"\n", jwks_path.display()), 1);
    let config_path = dir.join("airlock.toml");
    std::fs::write(&config_path, text).unwrap();
    let airlock = Airlock::start_config(dir.clone(), config_path);

    let exp = now() + 600;
    let claims = |extra: &str| {
        format!(r#"{{"iss":"airlock","aud":"airlock","sub":"mallory","groups":["agents"],"exp":{exp}{extra}}}"#)
    };
    let rs = |header: &str, claims: &str| sign_raw(header, claims, &idp_key, Algorithm::RS256);
    let good_header = r#"{"alg":"RS256","typ":"JWT","kid":"idp-1"}"#;
    let good = rs(good_header, &claims(""));

    // The control: the same shape, honestly signed, gets in.
    let client = airlock.connect(&good, "app-db").await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    drop(client);

    let unsigned = |header: &str| format!("{}.{}.", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims("")));
    let hs_with = |secret: &[u8]| {
        sign_raw(
            r#"{"alg":"HS256","typ":"JWT","kid":"idp-1"}"#,
            &claims(""),
            &EncodingKey::from_secret(secret).unwrap(),
            Algorithm::HS256,
        )
    };
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims("").replace("mallory", "admin").replace("agents", "sre"));
        parts.join(".")
    };
    let big_groups: Vec<String> = (0..2_000).map(|i| format!("group-{i}")).collect();
    let oversized = rs(good_header, &claims(&format!(r#","extra":{}"#, json!(big_groups))));
    assert!(oversized.len() > 16 * 1024);

    let corpus: Vec<(&str, String)> = vec![
        ("alg none", unsigned(r#"{"alg":"none","typ":"JWT"}"#)),
        ("alg None", unsigned(r#"{"alg":"None","typ":"JWT"}"#)),
        ("alg none keeping the good signature", {
            let sig = good.rsplit('.').next().unwrap().to_owned();
            format!("{}{sig}", unsigned(r#"{"alg":"none","typ":"JWT","kid":"idp-1"}"#))
        }),
        ("RS256 header, signature stripped", {
            let (message, _) = good.rsplit_once('.').unwrap();
            format!("{message}.")
        }),
        ("HS256 signed with the RSA public key (PEM)", hs_with(idp_public_pem.as_bytes())),
        ("HS256 signed with the RSA public key (DER)", hs_with(&idp_public_der)),
        ("HS512 naming the RSA key", {
            let key = EncodingKey::from_secret(idp_public_pem.as_bytes()).unwrap();
            sign_raw(r#"{"alg":"HS512","typ":"JWT","kid":"idp-1"}"#, &claims(""), &key, Algorithm::HS512)
        }),
        ("expired", rs(good_header, &claims("").replace(&exp.to_string(), &(now() - 3600).to_string()))),
        ("not yet valid", rs(good_header, &claims(&format!(r#","nbf":{}"#, now() + 3600)))),
        ("wrong issuer", rs(good_header, &claims("").replace(r#""iss":"airlock""#, r#""iss":"evil""#))),
        ("wrong audience", rs(good_header, &claims("").replace(r#""aud":"airlock""#, r#""aud":"other""#))),
        (
            "audience list without ours",
            rs(good_header, &claims("").replace(r#""aud":"airlock""#, r#""aud":["a","b"]"#)),
        ),
        ("no exp", rs(good_header, &claims("").replace(&format!(r#","exp":{exp}"#), ""))),
        ("unknown kid", rs(r#"{"alg":"RS256","typ":"JWT","kid":"idp-2"}"#, &claims(""))),
        ("tampered payload", tampered),
        ("oversized", oversized),
        ("crit naming an extension", rs(r#"{"alg":"RS256","kid":"idp-1","crit":["exp"],"exp":1}"#, &claims(""))),
        ("crit b64", rs(r#"{"alg":"RS256","kid":"idp-1","crit":["b64"],"b64":true}"#, &claims(""))),
        ("empty crit", rs(r#"{"alg":"RS256","kid":"idp-1","crit":[]}"#, &claims(""))),
        (
            "jku pointing at the attacker's keys",
            sign_raw(
                &format!(r#"{{"alg":"RS256","kid":"idp-1","jku":"http://127.0.0.1:{evil_port}/jwks.json"}}"#),
                &claims(""),
                &evil_key,
                Algorithm::RS256,
            ),
        ),
        (
            "x5u pointing at the attacker",
            sign_raw(
                &format!(r#"{{"alg":"RS256","kid":"idp-1","x5u":"http://127.0.0.1:{evil_port}/cert.pem"}}"#),
                &claims(""),
                &evil_key,
                Algorithm::RS256,
            ),
        ),
        (
            "embedded jwk of the attacker",
            sign_raw(
                &format!(r#"{{"alg":"RS256","kid":"idp-1","jwk":{}}}"#, json!(evil_jwk)),
                &claims(""),
                &evil_key,
                Algorithm::RS256,
            ),
        ),
        (
            "signed by the attacker, naming the IdP's kid",
            sign_raw(good_header, &claims(""), &evil_key, Algorithm::RS256),
        ),
        ("duplicate sub", rs(good_header, &claims(r#","sub":"admin""#))),
        ("duplicate groups", rs(good_header, &claims(r#","groups":["sre"]"#))),
        ("duplicate exp", rs(good_header, &claims(&format!(r#","exp":{}"#, now() + 10 * 365 * 86400)))),
        ("duplicate alg in the header", rs(r#"{"alg":"RS256","kid":"idp-1","alg":"none"}"#, &claims(""))),
        ("duplicate kid in the header", rs(r#"{"alg":"RS256","kid":"idp-2","kid":"idp-1"}"#, &claims(""))),
        ("four parts", format!("{good}.{}", good.split('.').nth(1).unwrap())),
        ("padding in the signature", format!("{good}==")),
        ("claims not an object", rs(good_header, r#"["mallory"]"#)),
        ("empty sub", rs(good_header, &claims("").replace(r#""sub":"mallory""#, r#""sub":"""#))),
        ("sub not a string", rs(good_header, &claims("").replace(r#""sub":"mallory""#, r#""sub":7"#))),
    ];
    for (what, token) in &corpus {
        let err = match airlock.connect(token, "app-db").await {
            Ok(_) => panic!("{what}: the token was accepted"),
            Err(e) => e,
        };
        let code = sqlstate(&err);
        assert!(code == "28P01" || code == "28000", "{what}: {err}");
    }
    assert_eq!(evil_hits.load(Ordering::SeqCst), 0, "a token's header made Airlock fetch a key");

    // Every refusal was counted as an authentication failure, and none let a session in.
    let metrics = http_get(airlock.admin, "/metrics");
    let failures: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("airlock_auth_failures_total{protocol=\"postgres\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(failures, corpus.len() as u64, "{metrics}");
}

/// What the log test configures as secrets Airlock holds for upstreams.
const HEADER_SECRET: &str = "hdr-secret-6e1f0b";
const BASIC_PASSWORD: &str = "basic-pass-93d7";

#[test]
fn no_secret_or_token_reaches_the_logs_at_trace_level() {
    let root = std::env::temp_dir().join(format!("airlock-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let sshd = support::sshd::Sshd::start(&root);
    let api = support::http_api::Api::start(&root);
    let extra = format!(
        r#"{ssh}
[[connections]]
name = "api"
protocol = "http"
url = "http://127.0.0.1:{port}"
allow_groups = ["agents"]
headers = {{ X-Api-Key = {{ value = "{HEADER_SECRET}" }} }}

[[connections]]
name = "basic"
protocol = "http"
url = "http://localhost:{port}/api"
allow_groups = ["agents"]
basic_auth = {{ user = "ci", password = {{ value = "{BASIC_PASSWORD}" }} }}
"#,
        ssh = sshd.connection("box", r#"["agents"]"#, ""),
        port = api.plain.port(),
    );
    let dir = root.join("airlock");
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("airlock.toml");
    std::fs::write(&config_path, config(&dir, "", &extra)).unwrap();
    let airlock = Airlock::start_logged(dir.clone(), config_path, "trace");

    let jwt = token("agent-trace", &["agents"]);
    let refused = token_with("agent-trace", &["agents"], -3600, "airlock");
    // Postgres over TLS, upstream SCRAM with the configured password; an API key; a refusal.
    ok(&airlock.psql(&jwt, "app-db", &["-At", "-c", "select 1"], None));
    ok(&airlock.psql(API_KEY, "app-db", &["-At", "-c", "select 2"], None));
    assert!(!airlock.psql(&refused, "app-db", &["-c", "select 3"], None).status.success());
    // SSH with the token as the password; Airlock logs in upstream with its private key.
    let ssh_port = airlock.ssh.unwrap().port();
    let out = support::sshd::run(
        support::sshd::ssh_token_cmd(ssh_port, &jwt, "box", &root).arg("echo through-ssh"),
        std::time::Duration::from_secs(60),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("through-ssh"), "{out:?}");
    // HTTP in both modes: a Bearer token, and the token as a proxy password.
    let http = airlock.http.unwrap();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl").args(["-sS", "--max-time", "30"]).args(args).output().unwrap();
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bearer = format!("Authorization: Bearer {jwt}");
    curl(&["-H", &bearer, &format!("http://{http}/api/api/echo")]);
    curl(&["-H", &bearer, &format!("http://{http}/basic/echo")]);
    curl(&[
        "-x",
        &format!("http://{http}"),
        "-U",
        &format!("agent:{jwt}"),
        &format!("http://localhost:{}/api/echo", api.plain.port()),
    ]);
    // The upstream really was handed the credentials the log must not show.
    let seen = api.seen();
    assert!(seen.iter().any(|s| s.header("x-api-key") == Some(HEADER_SECRET)));
    let mut airlock = airlock;
    airlock.terminate();
    airlock.wait_exit(std::time::Duration::from_secs(20));

    let log = airlock.log();
    assert!(log.lines().count() > 100 && log.contains("TRACE"), "the log is not at trace level");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{BASIC_PASSWORD}"));
    let private_key = std::fs::read_to_string(&sshd.client_key).unwrap();
    let mut secrets: Vec<(&str, String)> = vec![
        ("the upstream Postgres password", APP_PASSWORD.into()),
        ("the HS256 secret", HS256_SECRET.into()),
        ("the API key", API_KEY.into()),
        ("a header secret", HEADER_SECRET.into()),
        ("a basic-auth password", BASIC_PASSWORD.into()),
        ("a basic-auth pair, encoded", basic),
        ("an accepted JWT", jwt.clone()),
        ("an accepted JWT's signature", jwt.rsplit('.').next().unwrap().into()),
        ("a refused JWT", refused.clone()),
        ("a refused JWT's signature", refused.rsplit('.').next().unwrap().into()),
    ];
    for line in private_key.lines().filter(|l| !l.starts_with("-----")) {
        secrets.push(("a line of the upstream SSH private key", line.into()));
    }
    for (what, secret) in &secrets {
        assert!(!log.contains(secret.as_str()), "{what} is in the log");
    }

    // What Airlock wrote holding keys or recordings is its owner's alone.
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&dir), 0o700, "the data dir");
    let mut private = vec![dir.join("ssh_host_ed25519_key"), dir.join("http_ca_key.pem"), dir.join("tls/server.key")];
    let recordings = dir.join("recordings");
    assert_eq!(mode(&recordings), 0o700, "the recordings dir");
    private.extend(std::fs::read_dir(&recordings).unwrap().map(|e| e.unwrap().path()));
    assert!(private.len() > 4, "no recording: {private:?}");
    for path in &private {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    drop(airlock);
    let _ = std::fs::remove_dir_all(&root);
}
