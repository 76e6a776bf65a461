//! Development tokens: HS256 with a key Airlock keeps in its data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::secrets::Secret;

/// The development signing key, `data_dir/dev-token.key` (hex, mode 0600).
#[derive(Debug)]
pub struct DevKey {
    secret: Secret,
}

impl DevKey {
    const FILE: &'static str = "dev-token.key";

    /// Path of the key inside `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE)
    }

    /// Loads the key, creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<DevKey> {
        Ok(DevKey { secret: load_or_create_key(&Self::path(data_dir))? })
    }

    /// The HMAC key.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

/// A 32-byte random key kept hex-encoded in `path` (mode 0600), created on first use.
pub fn load_or_create_key(path: &Path) -> std::io::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|e| {
                std::io::Error::other(format!("{}: not a hex key ({e}); delete it to regenerate", path.display()))
            })?;
            Ok(Secret::new(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::private::dir(dir)?;
            }
            let bytes: [u8; 32] = rand::random();
            let mut file = crate::private::create(path)?;
            writeln!(file, "{}", hex::encode(bytes))?;
            Ok(Secret::new(bytes.to_vec()))
        }
        Err(e) => Err(e),
    }
}

/// Mints an HS256 token for `subject` in `groups`, valid for `ttl`.
pub fn mint_token(
    key: &[u8],
    issuer: &str,
    audience: &str,
    groups_claim: &str,
    subject: &str,
    groups: &[String],
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs(),
    });
    // A dotted claim path becomes nested objects, as an IdP would send it.
    let mut slot = &mut claims;
    let mut parts = groups_claim.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            slot[part] = json!(groups);
        } else {
            if slot.get(part).is_none() {
                slot[part] = json!({});
            }
            slot = &mut slot[part];
        }
    }
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key)?)?)
}
