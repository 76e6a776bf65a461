//! The real API: its base URL, the credentials Airlock adds, and a pooled client.
//!
//! One `hyper` client per connection (HTTP/1.1 keep-alive, and HTTP/2 where the
//! upstream offers it over TLS), verifying the upstream with the web PKI roots plus the
//! connection's `ca_file`. Redirects are never followed: a 3xx goes back to the agent,
//! so a redirect cannot carry Airlock's credential to a host nobody configured.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::{Config, Connection};
use crate::secrets::Secret;

/// A request body on its way upstream.
pub type UpBody = BoxBody<Bytes, BoxError>;

/// A body that failed: the upstream's, the agent's, or one over its cap.
#[derive(Debug)]
pub struct BoxError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BoxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<hyper::Error> for BoxError {
    fn from(e: hyper::Error) -> BoxError {
        BoxError(Box::new(e))
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for BoxError {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> BoxError {
        BoxError(e)
    }
}

/// Why a connection's `url` is not usable, if it is not.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("use an http:// or https:// URL".into());
    }
    let Some(authority) = uri.authority() else { return Err("the URL names no host".into()) };
    if authority.as_str().contains('@') {
        return Err("put credentials in headers or query, not in the URL".into());
    }
    if uri.query().is_some() {
        return Err("a base URL has no query; put fixed parameters in query".into());
    }
    Ok(())
}

/// One HTTP connection's upstream.
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`, as in the URL.
    pub authority: String,
    /// The host, lower-case, without brackets.
    pub host: String,
    /// The port, explicit or the scheme's.
    pub port: u16,
    /// The base path, without a trailing slash (`""` for the root).
    pub base_path: String,
    /// Headers added to every request, secrets resolved.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Query parameters added to every request, percent-encoded.
    pub query: Vec<(String, Secret)>,
    /// The secrets themselves, without prefixes: masked wherever a response shows
    /// them (an API that echoes its request must not hand the credential on).
    pub secrets: Vec<Secret>,
    /// The pooled client (HTTP/2 where the upstream offers it).
    pub client: Client<hyper_rustls::HttpsConnector<HttpConnector>, UpBody>,
    /// An HTTP/1.1-only client, for upgrades (WebSocket needs HTTP/1.1's Upgrade).
    pub client_h1: Client<hyper_rustls::HttpsConnector<HttpConnector>, UpBody>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("authority", &self.authority).finish_non_exhaustive()
    }
}

impl Upstream {
    /// Prepares the upstream of HTTP connection `conn`, loading its secrets now.
    pub fn new(config: &Config, conn: &Connection) -> anyhow::Result<Arc<Upstream>> {
        let url = conn.url.as_deref().unwrap_or_default();
        let uri: Uri = url.parse().with_context(|| format!("connection {:?}: url", conn.name))?;
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']).to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let mut secrets = Vec::new();
        let mut secret = |name: &str, credential: &crate::config::Credential| -> anyhow::Result<Secret> {
            let source = credential.source().with_context(|| format!("connection {:?}: {name}", conn.name))?;
            let secret =
                source.load(&config.base_dir).with_context(|| format!("connection {:?}: {name}", conn.name))?;
            secrets.push(secret.clone());
            let mut value = credential.prefix.as_bytes().to_vec();
            value.extend_from_slice(secret.expose());
            Ok(Secret::new(value))
        };
        let mut headers = Vec::new();
        for (name, credential) in &conn.headers {
            let value = secret(&format!("headers.{name}"), credential)?;
            let mut value = HeaderValue::from_bytes(value.expose())
                .with_context(|| format!("connection {:?}: headers.{name} is not a valid header value", conn.name))?;
            value.set_sensitive(true);
            headers.push((HeaderName::try_from(name.as_str())?, value));
        }
        // The encoded pair is masked too: an echo shows it, not the password.
        let mut basic_encoded = None;
        if let Some(basic) = &conn.basic_auth {
            use base64::Engine;
            let password = secret("basic_auth.password", &basic.password)?;
            let mut pair = format!("{}:", basic.user).into_bytes();
            pair.extend_from_slice(password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))?;
            value.set_sensitive(true);
            headers.push((hyper::header::AUTHORIZATION, value));
            basic_encoded = Some(Secret::new(encoded.into_bytes()));
        }
        let query = conn
            .query
            .iter()
            .map(|(name, credential)| Ok((name.clone(), secret(&format!("query.{name}"), credential)?)))
            .collect::<anyhow::Result<_>>()?;
        secrets.extend(basic_encoded);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &conn.ca_file {
            let path = config.resolve(ca);
            for cert in CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("connection {:?}: ca_file {}", conn.name, path.display()))?
            {
                roots.add(cert).with_context(|| format!("connection {:?}: ca_file {}", conn.name, path.display()))?;
            }
        }
        let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let client_h1 = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Arc::new(Upstream { scheme, authority, host, port, base_path, headers, query, secrets, client, client_h1 }))
    }

    /// The upstream URI for `path_and_query` (origin-form, as the agent asked under
    /// this connection), with the connection's query parameters added.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, hyper::http::Error> {
        let mut target = format!("{}://{}{}{}", self.scheme, self.authority, self.base_path, path);
        let mut sep = '?';
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            target.push('?');
            target.push_str(q);
            sep = '&';
        }
        for (name, value) in &self.query {
            target.push(sep);
            target.push_str(&percent_encode(name.as_bytes()));
            target.push('=');
            target.push_str(&percent_encode(value.expose()));
            sep = '&';
        }
        Ok(Uri::try_from(target)?)
    }

    /// The URL as the agent may see it (without the connection's query secrets).
    pub fn shown_url(&self, path: &str, query: Option<&str>) -> String {
        let query = query.filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default();
        format!("{}://{}{}{}{}", self.scheme, self.authority, self.base_path, path, query)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_plain_http_or_https_with_a_host() {
        assert!(check_base_url("https://api.github.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:8000/base/").is_ok());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("https://user:pw@x").is_err());
        assert!(check_base_url("https://x/?token=1").is_err());
        assert!(check_base_url("/relative").is_err());
    }

    #[test]
    fn query_secrets_are_percent_encoded() {
        assert_eq!(percent_encode(b"a b&c=d~"), "a%20b%26c%3Dd~");
    }
}
