//! JWT verification (`airlock::identity::JwtVerifier::verify`) with an HS256 secret,
//! built from config as the server builds it.
//!
//! The first input byte picks what the rest is:
//! - 0: the token itself. Never a panic, and never accepted: a token is only ever
//!   accepted if its signature is the secret's HMAC of its first two parts (checked
//!   here independently), which random bytes are not.
//! - 1: a header and a claims document (any bytes) that the target signs with the
//!   secret, so the fuzzer reaches the claim checks behind the signature. A token
//!   accepted this way has `alg` HS256, a non-empty string `sub` that is the
//!   identity's subject, `iss` and `aud` as configured, and an `exp` (and any `nbf`)
//!   that allows now, within the leeway.
//! - 2: a well-signed, valid token from the input's claims, then changed at one
//!   input-chosen byte: the changed token is refused.
#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use airlock::config::Config;
use airlock::identity::{JwtVerifier, MAX_TOKEN_BYTES};
use airlock_fuzz::{Input, ready};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SECRET: &[u8] = b"fuzz-secret";
const LEEWAY: u64 = 30;

static VERIFIER: LazyLock<JwtVerifier> = LazyLock::new(|| {
    let text =
        "[auth]\nhs256_secret = \"fuzz-secret\"\nissuer = \"airlock\"\naudience = \"airlock\"\nleeway = \"30s\"\n";
    let config = Config::parse(text, std::path::PathBuf::new()).expect("the fixed config parses");
    // With only an HS256 secret, building the verifier does no I/O and never waits.
    ready(JwtVerifier::from_config(&config)).expect("no await").expect("builds").expect("an HS256 verifier")
});

static KEY: LazyLock<hmac::Key> = LazyLock::new(|| hmac::Key::new(hmac::HMAC_SHA256, SECRET));

fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let tag = hmac::sign(&KEY, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn verify(token: &str) -> Result<airlock::identity::Identity, airlock::identity::AuthError> {
    ready(VERIFIER.verify(token)).expect("HS256 verification never waits")
}

/// Whether `token` carries the secret's signature over its first two parts.
fn signed_by_secret(token: &str) -> bool {
    let Some((input, signature)) = token.rsplit_once('.') else { return false };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    hmac::verify(&KEY, input.as_bytes(), &signature).is_ok()
}

/// The checks an accepted token must have passed, done here without jsonwebtoken.
fn check_accepted(token: &str, identity: &airlock::identity::Identity) {
    assert!(signed_by_secret(token), "accepted a token the secret did not sign: {token:?}");
    let mut parts = token.split('.');
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else { panic!("accepted {token:?}") };
    let decode = |part: &str| -> Value {
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("an accepted part decodes");
        serde_json::from_slice(&bytes).expect("an accepted part is JSON")
    };
    let (header, claims) = (decode(header), decode(claims));
    assert_eq!(header["alg"], "HS256", "accepted with alg {}", header["alg"]);
    let sub = claims["sub"].as_str().expect("an accepted token has a string sub");
    assert!(!sub.is_empty());
    assert_eq!(sub, identity.subject);
    assert_eq!(claims["iss"], "airlock", "accepted iss {}", claims["iss"]);
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == "airlock",
        Value::Array(items) => items.iter().any(|a| a == "airlock"),
        _ => false,
    };
    assert!(aud_ok, "accepted aud {}", claims["aud"]);
    let exp = claims["exp"].as_f64().expect("an accepted token has a numeric exp");
    // A second of slack for the clock moving between the two reads.
    assert!(exp + (LEEWAY as f64) + 1.0 >= now() as f64, "accepted exp {exp}, now {}", now());
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("an accepted nbf is a number");
        assert!(nbf <= (now() + LEEWAY + 1) as f64, "accepted nbf {nbf}, now {}", now());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => {
            let token = airlock_fuzz::text(input.rest());
            if let Ok(identity) = verify(&token) {
                check_accepted(&token, &identity);
            }
        }
        1 => {
            let header = input.until(0xff, 4096);
            let claims = input.rest();
            let token = sign(header, claims);
            if let Ok(identity) = verify(&token) {
                check_accepted(&token, &identity);
            }
        }
        _ => {
            let at = usize::from(input.byte());
            let with = input.byte();
            let sub = airlock_fuzz::text(input.rest());
            let claims = serde_json::json!({
                "iss": "airlock", "aud": "airlock", "sub": sub, "exp": now() + 600, "groups": ["agents"],
            });
            let token = sign(br#"{"alg":"HS256","typ":"JWT"}"#, claims.to_string().as_bytes());
            let verdict = verify(&token);
            if token.len() > MAX_TOKEN_BYTES {
                // The subject's escapes can make a valid token longer than any is read.
                assert!(verdict.is_err(), "a token over MAX_TOKEN_BYTES is refused");
            } else if !sub.is_empty() {
                let identity = verdict.expect("a valid token is accepted");
                assert_eq!(identity.subject, sub);
                assert_eq!(identity.groups, ["agents"]);
            }
            let mut changed = token.clone().into_bytes();
            let at = at % changed.len();
            if changed[at] == with {
                return;
            }
            changed[at] = with;
            let changed = String::from_utf8_lossy(&changed);
            if let Ok(identity) = verify(&changed) {
                panic!("accepted a changed token {changed:?} as {identity:?}");
            }
        }
    }
});
