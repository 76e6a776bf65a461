//! TLS on both legs: the certificate agents see, and how Airlock dials upstreams.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::config::{Config, Connection, UpstreamTls};

/// Builds the agent-facing TLS config: the configured certificate, or a self-signed
/// one generated into `data_dir/tls/` on first start and reused afterwards.
pub fn agent_server_config(config: &Config) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert_path, key_path) = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(c), Some(k)) => (config.resolve(c), config.resolve(k)),
        _ => ensure_self_signed(&config.data_dir().join("tls"))?,
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("tls.cert_file {}: cannot read PEM certificates", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("tls.key_file {}: cannot read a PEM private key", key_path.display()))?;
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: certificate and key do not match")?;
    Ok(Arc::new(server))
}

fn ensure_self_signed(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    crate::private::dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    std::fs::write(&cert, generated.cert.pem())?;
    let _ = std::fs::remove_file(&key);
    let mut file = crate::private::create(&key)?;
    std::io::Write::write_all(&mut file, generated.signing_key.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate for agents");
    Ok((cert, key))
}

/// How to wrap an upstream connection in TLS, prepared once per connection config.
#[derive(Debug, Clone)]
pub struct UpstreamTlsPlan {
    /// The mode from the config.
    pub mode: UpstreamTls,
    /// Client config, unless the mode is `disable`.
    pub client: Option<Arc<ClientConfig>>,
    /// Name sent in SNI and (for `verify-full`) checked in the certificate.
    pub server_name: ServerName<'static>,
}

impl UpstreamTlsPlan {
    /// Prepares TLS for `conn`; `verify-full` loads its CA bundle now so a bad file is
    /// reported at start-up.
    pub fn new(config: &Config, conn: &Connection) -> anyhow::Result<UpstreamTlsPlan> {
        let name = conn.tls_server_name.clone().unwrap_or_else(|| conn.host().to_owned());
        let server_name = ServerName::try_from(name.clone())
            .with_context(|| format!("connection {:?}: {name:?} is not a valid TLS server name", conn.name))?;
        let client = match conn.tls {
            UpstreamTls::Disable => None,
            UpstreamTls::Prefer | UpstreamTls::Require => Some(
                ClientConfig::builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoCertificateCheck::new()))
                    .with_no_client_auth(),
            ),
            UpstreamTls::VerifyFull => {
                let ca = conn.ca_file.as_ref().map(|ca| config.resolve(ca));
                Some(verifying_client(ca.as_deref()).with_context(|| format!("connection {:?}", conn.name))?)
            }
        };
        Ok(UpstreamTlsPlan { mode: conn.tls, client: client.map(Arc::new), server_name })
    }
}

/// A client config that checks the server's certificate chain against `ca_file` (a PEM
/// bundle) or, without one, the web PKI roots.
pub fn verifying_client(ca_file: Option<&std::path::Path>) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).with_context(|| format!("ca_file {}", path.display()))? {
                roots.add(cert.with_context(|| format!("ca_file {}", path.display()))?)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// Encrypts without authenticating the server: libpq's `sslmode=prefer/require`.
/// Signatures are still checked so the handshake itself is sound.
#[derive(Debug)]
struct NoCertificateCheck(Arc<rustls::crypto::CryptoProvider>);

impl NoCertificateCheck {
    fn new() -> Self {
        NoCertificateCheck(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
