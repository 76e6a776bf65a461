//! JWT verification: JWKS (file or URL) for RS/PS/ES/EdDSA, a shared secret for HS256.
//!
//! The header's `alg` is never trusted on its own: the key is chosen first (by `kid`,
//! from the configured source), and the token's algorithm must belong to that key's
//! family, and equal the key's declared `alg` when the JWKS gives one. That closes the
//! classic HS256-signed-with-the-RSA-public-key confusion and `alg: none`.
//!
//! Before any of that, [`precheck`] refuses what the JWT library would let through:
//! oversized tokens, `crit` extensions (Airlock implements none), and a header or claims
//! object that names a member twice (parsers disagree on which copy wins). Header fields
//! that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never read: keys come only from the
//! configured source.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{AuthError, AuthMethod, DevKey, Identity};
use crate::config::Config;

/// Least time between two JWKS fetches triggered by unknown `kid`s.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const JWKS_MAX_BYTES: usize = 1 << 20;
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest token considered. IdP tokens with many groups run to a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

struct PublicKey {
    kid: Option<String>,
    /// `alg` the JWKS pins for this key, as its JOSE name.
    alg: Option<String>,
    key: DecodingKey,
}

enum JwksSource {
    File(PathBuf),
    Url(String),
}

struct Jwks {
    source: JwksSource,
    keys: RwLock<Arc<Vec<PublicKey>>>,
    last_fetch: Mutex<Option<Instant>>,
}

/// Verifies JWTs against the configured keys and claims.
pub struct JwtVerifier {
    hmac: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: String,
    audience: String,
    groups_claim: String,
    leeway: Duration,
}

impl JwtVerifier {
    /// Builds the verifier, or `None` when the config names no JWT key source.
    pub async fn from_config(config: &Config) -> anyhow::Result<Option<JwtVerifier>> {
        let auth = &config.auth;
        let hmac = match (&auth.hs256_secret, auth.dev_tokens) {
            (Some(src), _) => Some(
                src.load(&config.base_dir).map_err(|e| anyhow::anyhow!("auth.hs256_secret: {e}"))?.expose().to_vec(),
            ),
            (None, true) => Some(DevKey::load_or_create(&config.data_dir())?.secret().expose().to_vec()),
            (None, false) => None,
        }
        .map(|key| DecodingKey::from_secret(&key))
        .transpose()?;
        let source = match (&auth.jwks_file, &auth.jwks_url) {
            (Some(file), _) => Some(JwksSource::File(config.resolve(file))),
            (None, Some(url)) => Some(JwksSource::Url(url.clone())),
            (None, None) => None,
        };
        let jwks = match source {
            Some(source) => {
                let jwks = Jwks { source, keys: RwLock::default(), last_fetch: Mutex::new(None) };
                match jwks.reload().await {
                    Ok(n) => tracing::info!(keys = n, "loaded JWKS"),
                    // A file is under the operator's control: fail now. An IdP may be
                    // briefly down: start anyway and retry when a token arrives.
                    Err(e) if matches!(jwks.source, JwksSource::File(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "JWKS fetch failed; will retry on the first token")
                    }
                }
                Some(jwks)
            }
            None => None,
        };
        if hmac.is_none() && jwks.is_none() {
            return Ok(None);
        }
        Ok(Some(JwtVerifier {
            hmac,
            jwks,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            groups_claim: auth.groups_claim.clone(),
            leeway: auth.leeway,
        }))
    }

    /// Verifies a token and extracts the identity.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let claims = self.claims(token, &self.audience).await?;
        self.identity(&claims)
    }

    /// Verifies an OIDC ID token: issued by `auth.issuer` to `client_id` (its
    /// audience) for the sign-in that sent `nonce`.
    pub async fn verify_id_token(&self, token: &str, client_id: &str, nonce: &str) -> Result<Identity, AuthError> {
        let claims = self.claims(token, client_id).await?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(AuthError::MissingClaim("nonce (of this sign-in)".into()));
        }
        self.identity(&claims)
    }

    /// The claims of a token with a valid signature, issuer and times, for `audience`.
    async fn claims(&self, token: &str, audience: &str) -> Result<Value, AuthError> {
        precheck(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let alg = header.alg;
        let claims = if alg == Algorithm::HS256 {
            let key = self
                .hmac
                .as_ref()
                .ok_or(AuthError::NotAccepted("HS256 tokens need auth.hs256_secret or auth.dev_tokens"))?;
            self.decode(token, alg, key, audience)?
        } else if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            return Err(AuthError::AlgorithmMismatch(format!("{alg:?}")));
        } else {
            let jwks = self
                .jwks
                .as_ref()
                .ok_or(AuthError::NotAccepted("asymmetric tokens need auth.jwks_file or auth.jwks_url"))?;
            let keys = jwks.keys_for(header.kid.as_deref()).await?;
            let key = select(&keys, header.kid.as_deref())?;
            if key.key.family() != alg.family() || key.alg.as_ref().is_some_and(|a| *a != format!("{alg:?}")) {
                return Err(AuthError::AlgorithmMismatch(format!("{alg:?}")));
            }
            self.decode(token, alg, &key.key, audience)?
        };
        Ok(claims)
    }

    fn identity(&self, claims: &Value) -> Result<Identity, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::MissingClaim("sub".into()))?
            .to_owned();
        let groups = lookup(claims, &self.groups_claim).map(groups_of).unwrap_or_default();
        Ok(Identity { subject, groups, method: AuthMethod::Jwt })
    }

    fn decode(&self, token: &str, alg: Algorithm, key: &DecodingKey, audience: &str) -> Result<Value, AuthError> {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, key, &v).map(|t| t.claims).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience(audience.to_owned()),
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm => AuthError::AlgorithmMismatch(format!("{alg:?}")),
            _ => AuthError::Malformed,
        })
    }
}

/// Refuses what the JWT library accepts but Airlock must not: see the module docs.
fn precheck(token: &str) -> Result<(), AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Oversized(MAX_TOKEN_BYTES));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    for (i, part) in [header, claims].into_iter().enumerate() {
        let json = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed)?;
        let value: Value = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        // Valid JSON that fails here names some member twice.
        if let Err(e) = serde_json::from_slice::<Unique>(&json) {
            return Err(AuthError::DuplicateMember(e.to_string()));
        }
        if i == 0 && value.get("crit").is_some() {
            return Err(AuthError::Unsupported("crit"));
        }
    }
    Ok(())
}

/// Any JSON value; deserializing fails when an object names a member twice.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<Unique>()?;
            if !seen.insert(name.clone()) {
                return Err(serde::de::Error::custom(format!("{name:?}")));
            }
        }
        Ok(Unique)
    }
}

fn select<'a>(keys: &'a [PublicKey], kid: Option<&str>) -> Result<&'a PublicKey, AuthError> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        // Without a kid, only an unambiguous set will do.
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
    .ok_or_else(|| AuthError::UnknownKey(kid.unwrap_or("").to_owned()))
}

impl Jwks {
    /// The current keys, refreshed first (rate-limited) when `kid` is unknown.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<Vec<PublicKey>>, AuthError> {
        let keys = self.current();
        if select(&keys, kid).is_ok() || matches!(self.source, JwksSource::File(_)) {
            return Ok(keys);
        }
        let due = {
            let mut last = self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= JWKS_REFRESH_INTERVAL);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
        }
        Ok(self.current())
    }

    fn current(&self) -> Arc<Vec<PublicKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn reload(&self) -> anyhow::Result<usize> {
        let set: JwkSet = match &self.source {
            JwksSource::File(path) => {
                let text =
                    std::fs::read(path).map_err(|e| anyhow::anyhow!("auth.jwks_file {}: {e}", path.display()))?;
                serde_json::from_slice(&text)
                    .map_err(|e| anyhow::anyhow!("auth.jwks_file {}: not a JWKS: {e}", path.display()))?
            }
            JwksSource::Url(url) => fetch(url).await.map_err(|e| anyhow::anyhow!("auth.jwks_url {url}: {e}"))?,
        };
        let mut keys = Vec::new();
        for jwk in &set.keys {
            match DecodingKey::from_jwk(jwk) {
                // Symmetric keys in a JWKS would let anyone holding it mint tokens.
                Ok(key) if key.family() == jsonwebtoken::AlgorithmFamily::Hmac => {
                    tracing::warn!(kid = ?jwk.common.key_id, "ignoring symmetric key in JWKS");
                }
                Ok(key) => keys.push(PublicKey {
                    kid: jwk.common.key_id.clone(),
                    // KeyAlgorithm and Algorithm share JOSE variant names.
                    alg: jwk.common.key_algorithm.map(|a| format!("{a:?}")),
                    key,
                }),
                Err(e) => {
                    tracing::warn!(kid = ?jwk.common.key_id, error = %e, "ignoring unusable JWKS key")
                }
            }
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(n)
    }
}

async fn fetch(url: &str) -> anyhow::Result<JwkSet> {
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(https);
    let response = tokio::time::timeout(JWKS_FETCH_TIMEOUT, client.get(url.parse()?)).await??;
    if !response.status().is_success() {
        anyhow::bail!("HTTP {}", response.status());
    }
    let body = tokio::time::timeout(JWKS_FETCH_TIMEOUT, Limited::new(response.into_body(), JWKS_MAX_BYTES).collect())
        .await?
        .map_err(|e| anyhow::anyhow!("reading body: {e}"))?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    // An exact top-level name wins (some IdPs use URLs with dots as claim names).
    claims.get(path).or_else(|| path.split('.').try_fold(claims, |v, part| v.get(part)))
}

fn groups_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::mint_token;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn verifier(dir: &std::path::Path, extra: &str) -> JwtVerifier {
        let text = format!("data_dir = \"{}\"\n[auth]\nhs256_secret = \"dev-secret\"\n{extra}", dir.display());
        let config = Config::parse(&text, PathBuf::new()).unwrap();
        tokio_test_block(JwtVerifier::from_config(&config)).unwrap().unwrap()
    }

    fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    /// A directory of its own for one test, removed when it is dropped (also when the
    /// test fails).
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("airlock-jwt-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn hs(claims: Value, key: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn hs256_claims_are_checked() {
        let dir = temp_dir("hs");
        let v = verifier(&dir, "");
        let good = mint_token(
            b"dev-secret",
            "airlock",
            "airlock",
            "groups",
            "agent-1",
            &["agents".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let id = tokio_test_block(v.verify(&good)).unwrap();
        assert_eq!(id.subject, "agent-1");
        assert_eq!(id.groups, vec!["agents".to_string()]);

        let base = json!({"iss": "airlock", "aud": "airlock", "sub": "a", "exp": now() + 60});
        let mut expired = base.clone();
        expired["exp"] = json!(now() - 3600);
        assert_eq!(tokio_test_block(v.verify(&hs(expired, b"dev-secret"))), Err(AuthError::Expired));
        let mut aud = base.clone();
        aud["aud"] = json!("other");
        assert!(matches!(tokio_test_block(v.verify(&hs(aud, b"dev-secret"))), Err(AuthError::WrongAudience(_))));
        let mut iss = base.clone();
        iss["iss"] = json!("evil");
        assert_eq!(tokio_test_block(v.verify(&hs(iss, b"dev-secret"))), Err(AuthError::WrongIssuer));
        let mut nbf = base.clone();
        nbf["nbf"] = json!(now() + 3600);
        assert_eq!(tokio_test_block(v.verify(&hs(nbf, b"dev-secret"))), Err(AuthError::NotYetValid));
        assert_eq!(tokio_test_block(v.verify(&hs(base.clone(), b"wrong"))), Err(AuthError::BadSignature));
        let mut nosub = base;
        nosub.as_object_mut().unwrap().remove("sub");
        assert!(matches!(tokio_test_block(v.verify(&hs(nosub, b"dev-secret"))), Err(AuthError::MissingClaim(_))));
        assert_eq!(tokio_test_block(v.verify("not.a.jwt")), Err(AuthError::Malformed));
    }

    #[test]
    fn none_algorithm_is_rejected() {
        let dir = temp_dir("none");
        let v = verifier(&dir, "");
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims =
            URL_SAFE_NO_PAD.encode(json!({"iss":"airlock","aud":"airlock","sub":"a","exp":now()+60}).to_string());
        assert!(tokio_test_block(v.verify(&format!("{header}.{claims}."))).is_err());
    }

    #[test]
    fn es256_from_jwks_and_no_algorithm_confusion() {
        let dir = temp_dir("es");
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        let (x, y) = raw[1..].split_at(32);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
        let v = verifier(
            &dir,
            &format!("jwks_file = \"{}\"\ngroups_claim = \"realm.roles\"", dir.join("jwks.json").display()),
        );

        let claims =
            json!({"iss":"airlock","aud":"airlock","sub":"svc","exp":now()+60,"realm":{"roles":["agents","ops"]}});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let id = tokio_test_block(v.verify(&token)).unwrap();
        assert_eq!(id.groups, vec!["agents".to_string(), "ops".to_string()]);

        header.kid = Some("k2".into());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert!(matches!(tokio_test_block(v.verify(&token)), Err(AuthError::UnknownKey(_))));

        // HS256 "signed" with the public key, naming the EC key: must not verify.
        let mut header = Header::new(Algorithm::HS384);
        header.kid = Some("k1".into());
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(raw).unwrap()).unwrap();
        assert!(matches!(tokio_test_block(v.verify(&forged)), Err(AuthError::AlgorithmMismatch(_))));
    }

    /// An EC P-256 key pair and its JWK.
    fn ec_key(kid: &str) -> (EncodingKey, Value) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        let (x, y) = raw[1..].split_at(32);
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
        (EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(), jwk)
    }

    fn es256(key: &EncodingKey, kid: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        let claims = json!({"iss":"airlock","aud":"airlock","sub":"svc","exp":now()+60});
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwks_url_is_fetched_and_refreshed_on_key_rotation() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (key1, jwk1) = ec_key("k1");
        let (key2, jwk2) = ec_key("k2");
        let served = Arc::new(Mutex::new(json!({"keys": [jwk1.clone()]}).to_string()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = served.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req).await;
                let body = body.lock().unwrap().clone();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let dir = temp_dir("url");
        let text = format!("data_dir = \"{}\"\n[auth]\njwks_url = \"http://{addr}/jwks.json\"\n", dir.display());
        let config = Config::parse(&text, PathBuf::new()).unwrap();
        let v = JwtVerifier::from_config(&config).await.unwrap().unwrap();
        assert_eq!(v.verify(&es256(&key1, "k1")).await.unwrap().subject, "svc");
        // The IdP rotates in a new key: the unknown kid triggers one refresh.
        *served.lock().unwrap() = json!({"keys": [jwk1, jwk2]}).to_string();
        assert_eq!(v.verify(&es256(&key2, "k2")).await.unwrap().subject, "svc");
        // HS256 is not accepted when only a JWKS is configured.
        let hs = mint_token(b"x", "airlock", "airlock", "groups", "a", &[], Duration::from_secs(60)).unwrap();
        assert!(matches!(v.verify(&hs).await, Err(AuthError::NotAccepted(_))));
    }

    #[test]
    fn eddsa_from_jwks() {
        let dir = temp_dir("ed");
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw())});
        std::fs::write(dir.join("jwks.json"), json!({"keys": [jwk]}).to_string()).unwrap();
        let v = verifier(&dir, &format!("jwks_file = \"{}\"", dir.join("jwks.json").display()));
        let key = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("ed1".into());
        let claims = json!({"iss":"airlock","aud":"airlock","sub":"ed-agent","exp":now()+60,"groups":["agents"]});
        let id = tokio_test_block(v.verify(&jsonwebtoken::encode(&header, &claims, &key).unwrap())).unwrap();
        assert_eq!((id.subject.as_str(), id.groups.clone()), ("ed-agent", vec!["agents".to_string()]));
        // The same key cannot be named by an ES256 header.
        header.alg = Algorithm::ES256;
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert!(matches!(tokio_test_block(v.verify(&token)), Err(AuthError::AlgorithmMismatch(_))));
    }
}
