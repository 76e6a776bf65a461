//! Where credentials come from: `{ env = "X" }`, `{ file = "path" }` or a literal.
//!
//! A [`Secret`] never shows its bytes in `Debug`, `Display`, logs or errors: every
//! message names the *source* (the variable or the file), never the value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How a secret is named in the config file.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    /// Read from an environment variable when Airlock starts.
    Env {
        /// Variable name.
        env: String,
    },
    /// Read from a file (trailing newline removed); relative paths are relative to the
    /// config file.
    File {
        /// Path to the file.
        file: PathBuf,
    },
    /// Written in the config itself (development only).
    Literal(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { env } => write!(f, "env {env}"),
            SecretSource::File { file } => write!(f, "file {}", file.display()),
            SecretSource::Literal(_) => f.write_str("literal (redacted)"),
        }
    }
}

/// Why a secret could not be loaded. Names where it was looked for, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is missing or not UTF-8.
    #[error("environment variable {0} is not set (export it before starting Airlock)")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong (in the message, so not also a source: said once).
        error: std::io::Error,
    },
    /// The value is empty.
    #[error("secret from {0} is empty")]
    Empty(String),
}

impl SecretSource {
    /// Loads the secret; relative file paths are resolved against `base`.
    pub fn load(&self, base: &Path) -> Result<Secret, SecretError> {
        let bytes = match self {
            SecretSource::Env { env } => {
                std::env::var(env).map_err(|_| SecretError::MissingEnv(env.clone()))?.into_bytes()
            }
            SecretSource::File { file } => {
                let path = base.join(file);
                let mut bytes =
                    std::fs::read(&path).map_err(|error| SecretError::File { path: path.clone(), error })?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                bytes
            }
            SecretSource::Literal(s) => s.clone().into_bytes(),
        };
        if bytes.is_empty() {
            return Err(SecretError::Empty(format!("{self:?}")));
        }
        Ok(Secret(bytes.into_boxed_slice()))
    }
}

/// Secret bytes. Deliberately not `Display`, and `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps bytes that must not be shown.
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret bytes, for the one place that needs them (an upstream handshake).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: do not leave the bytes in freed memory.
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let lit: SecretSource =
            toml::from_str::<toml::Table>("p = \"hunter2\"").unwrap().get("p").unwrap().clone().try_into().unwrap();
        assert!(!format!("{lit:?}").contains("hunter2"));
        let s = lit.load(Path::new(".")).unwrap();
        assert_eq!(s.expose(), b"hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn sources() {
        let env: SecretSource = serde_json::from_str(r#"{"env":"AIRLOCK_TEST_SURELY_UNSET"}"#).unwrap();
        let err = env.load(Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("AIRLOCK_TEST_SURELY_UNSET"), "{err}");
        let dir = std::env::temp_dir().join(format!("airlock-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
        let file: SecretSource = serde_json::from_str(r#"{"file":"pw"}"#).unwrap();
        assert_eq!(file.load(&dir).unwrap().expose(), b"s3cret");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
