//! The console as an OIDC client: authorization code flow with PKCE (S256), a nonce
//! bound to the sign-in, and the ID token checked with the agents' JWT verifier
//! (issuer `auth.issuer`, audience the client id).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::{Config, OidcSettings};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents and token responses are small.
const MAX_RESPONSE: usize = 256 * 1024;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The IdP's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

/// Talks to the IdP.
pub struct Client {
    issuer: String,
    client_id: String,
    secret: Option<String>,
    scopes: Vec<String>,
    redirect_uri: String,
    endpoints: Mutex<Option<Endpoints>>,
    http: HttpClient,
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = super::login::random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl Client {
    /// The client `settings` describe, coming back to `public_url`.
    pub fn new(config: &Config, settings: &OidcSettings, public_url: &str) -> anyhow::Result<Client> {
        let secret = settings
            .client_secret
            .as_ref()
            .map(|s| {
                let secret =
                    s.load(&config.base_dir).map_err(|e| anyhow::anyhow!("console.oidc.client_secret: {e}"))?;
                String::from_utf8(secret.expose().to_vec())
                    .map_err(|_| anyhow::anyhow!("console.oidc.client_secret: not UTF-8"))
            })
            .transpose()?;
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
        Ok(Client {
            issuer: config.auth.issuer.trim_end_matches('/').to_owned(),
            client_id: settings.client_id.clone(),
            secret,
            scopes: settings.scopes.clone(),
            redirect_uri: format!("{public_url}/console/oidc/callback"),
            endpoints: Mutex::new(None),
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https),
        })
    }

    /// The client id (the ID token's audience).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Where to send the browser to sign in.
    pub async fn authorize_url(&self, state: &str, nonce: &str, challenge: &str) -> anyhow::Result<String> {
        let endpoints = self.endpoints().await?;
        let scope =
            std::iter::once("openid").chain(self.scopes.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        let query = super::query(&[
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]);
        let sep = if endpoints.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{}{sep}{query}", endpoints.authorization_endpoint))
    }

    /// Trades an authorization code for the ID token.
    pub async fn exchange(&self, code: &str, verifier: &str) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let endpoints = self.endpoints().await?;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("client_id", &self.client_id),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = &self.secret {
            fields.push(("client_secret", secret));
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(&endpoints.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(super::query(&fields))))?;
        let (status, body) = self.send(request).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("token endpoint answered {status}, not JSON: {e}"))?;
        if let Some(error) = parsed.error {
            anyhow::bail!("{error}: {}", parsed.error_description.unwrap_or_default());
        }
        parsed.id_token.ok_or_else(|| anyhow::anyhow!("the token endpoint answered {status} without an id_token"))
    }

    /// The endpoints, discovered once (again after a failure).
    async fn endpoints(&self) -> anyhow::Result<Endpoints> {
        let mut cached = self.endpoints.lock().await;
        if let Some(e) = cached.as_ref() {
            return Ok(e.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let request = Request::builder().uri(&url).body(Full::new(Bytes::new()))?;
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            anyhow::bail!("{url}: HTTP {status}");
        }
        let found: Endpoints = serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        // The document must be the issuer's own (OpenID Connect Discovery 4.3).
        if found.issuer.trim_end_matches('/') != self.issuer {
            anyhow::bail!("{url} names issuer {:?}, not auth.issuer {:?}", found.issuer, self.issuer);
        }
        *cached = Some(found.clone());
        Ok(found)
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        let response = tokio::time::timeout(TIMEOUT, self.http.request(request)).await??;
        let status = response.status();
        let body = tokio::time::timeout(TIMEOUT, Limited::new(response.into_body(), MAX_RESPONSE).collect())
            .await?
            .map_err(|e| anyhow::anyhow!("reading the IdP's answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}
