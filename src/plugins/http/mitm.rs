//! The certificate authority that lets Airlock read `HTTPS_PROXY` traffic.
//!
//! An agent that only honours `HTTPS_PROXY` sends `CONNECT host:443` and then TLS for
//! that host. Airlock answers the TLS itself, with a certificate for the host minted
//! from its own CA, so it sees (and judges, masks, records) every request. The agent
//! trusts the CA because its operator put `airlock ca export`'s output in the agent's
//! trust store. The CA key lives in the data dir (0600) and never leaves it; minted
//! certificates live in memory, one per host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Hosts whose certificates are kept; past it the cache starts over.
const MAX_CACHED: usize = 1024;

/// Airlock's CA and the server configs it minted, by host.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    minted: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// Where the CA's key and certificate are kept.
pub fn paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("http_ca_key.pem"), data_dir.join("http_ca.pem"))
}

/// The CA's own parameters: the same every time, so that certificates minted after a
/// restart chain to the certificate agents already trust.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Airlock");
    name.push(DnType::CommonName, "Airlock HTTPS proxy CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = time_now();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl Authority {
    /// Loads the CA from the data dir, creating it (key 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Authority> {
        let (key_path, cert_path) = paths(data_dir);
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => KeyPair::from_pem(&pem).with_context(|| format!("reading {}", key_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::private::dir(data_dir)?;
                let key = KeyPair::generate().context("generating the HTTPS proxy CA key")?;
                crate::private::write_new(&key_path, key.serialize_pem().as_bytes())
                    .with_context(|| format!("creating {}", key_path.display()))?;
                let _ = std::fs::remove_file(&cert_path);
                key
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", key_path.display())),
        };
        let cert_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => pem,
            Err(_) => {
                let cert = ca_params().self_signed(&key).context("signing the HTTPS proxy CA certificate")?;
                std::fs::write(&cert_path, cert.pem())?;
                cert.pem()
            }
        };
        Ok(Authority { issuer: Issuer::new(ca_params(), key), cert_pem, minted: Mutex::default() })
    }

    /// The CA certificate, PEM, for agents' trust stores.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A TLS server config presenting a certificate for `host`, minted on first use.
    pub fn server_config(&self, host: &str) -> anyhow::Result<Arc<ServerConfig>> {
        let host = host.to_ascii_lowercase();
        if let Some(config) = self.minted.lock().unwrap_or_else(|p| p.into_inner()).get(&host) {
            return Ok(config.clone());
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![host.clone()])?;
        params.distinguished_name.push(DnType::CommonName, host.as_str());
        let now = time_now();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let mut minted = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        if minted.len() >= MAX_CACHED {
            minted.clear();
        }
        minted.insert(host, config.clone());
        Ok(config)
    }
}
