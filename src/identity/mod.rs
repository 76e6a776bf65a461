//! Who is on the other end: tokens and keys in, an [`Identity`] out.
//!
//! An agent presents one string (a JWT or an API key) through whatever its protocol
//! offers (a Postgres password, an SSH password, an HTTP bearer token). The
//! [`Authenticator`] tries API keys first (an exact hash lookup), then JWT
//! verification. Protocol plugins never look inside tokens.

mod dev;
mod jwt;

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

pub use dev::{DevKey, load_or_create_key, mint_token};
pub use jwt::{JwtVerifier, MAX_TOKEN_BYTES};

use crate::config::Config;

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable subject (`sub` claim or the API key's subject).
    pub subject: String,
    /// Groups, used by `allow_groups`, rules and approvals.
    pub groups: Vec<String>,
    /// How the identity was proven.
    pub method: AuthMethod,
}

impl Identity {
    /// Whether the identity belongs to any of `groups`.
    pub fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

/// How an identity was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A verified JWT.
    Jwt,
    /// A configured API key.
    ApiKey,
    /// An SSH public key registered in `[[auth.ssh_keys]]`.
    SshKey,
}

/// Why a token was rejected. The text is safe to show to the agent: it names the
/// problem, never the token or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("no token presented: send an identity token (JWT or API key) as the password")]
    Missing,
    /// Not a JWT and not a known API key.
    #[error("token is neither a known API key nor a well-formed JWT")]
    Malformed,
    /// Signature did not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is past.
    #[error("token has expired: get a fresh one")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet (nbf in the future; check clocks)")]
    NotYetValid,
    /// Wrong `iss`.
    #[error("token issuer is not the one Airlock trusts")]
    WrongIssuer,
    /// Wrong `aud`.
    #[error("token audience is not {0:?}")]
    WrongAudience(String),
    /// A required claim is missing.
    #[error("token lacks the {0:?} claim")]
    MissingClaim(String),
    /// The header `kid` names no known key.
    #[error("token is signed by an unknown key (kid {0:?})")]
    UnknownKey(String),
    /// `alg` does not fit the key (HS/RS confusion, `none`...).
    #[error("token algorithm {0} is not allowed for its key")]
    AlgorithmMismatch(String),
    /// Longer than any real token.
    #[error("token is longer than {0} bytes")]
    Oversized(usize),
    /// The header asks for an extension Airlock does not implement.
    #[error("token header uses {0:?}, which is not supported")]
    Unsupported(&'static str),
    /// The header or the claims name a member twice.
    #[error("token names a member twice ({0})")]
    DuplicateMember(String),
    /// No verifier is configured for this kind of token.
    #[error("tokens of this kind are not accepted here ({0})")]
    NotAccepted(&'static str),
}

impl AuthError {
    /// Short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience(_) => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::AlgorithmMismatch(_) => "algorithm_mismatch",
            AuthError::NotAccepted(_) => "not_accepted",
            AuthError::Oversized(_) => "oversized",
            AuthError::Unsupported(_) => "unsupported",
            AuthError::DuplicateMember(_) => "duplicate_member",
        }
    }
}

struct ApiKeyEntry {
    subject: String,
    groups: Vec<String>,
}

/// Whether two subjects could name the same person: equal once Unicode compatibility
/// forms are folded (NFKC: fullwidth letters and the like), case is folded, and
/// whitespace and characters that draw nothing are dropped. Self-approval is refused
/// on this, so a near miss counts as the same person.
pub fn same_person(a: &str, b: &str) -> bool {
    fn key(s: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        s.nfkc()
            .flat_map(char::to_lowercase)
            .filter(|c| !c.is_whitespace() && !crate::recording::replay::hides_text(*c))
            .collect()
    }
    a == b || key(a) == key(b)
}

/// Turns presented tokens into identities.
pub struct Authenticator {
    api_keys: HashMap<[u8; 32], ApiKeyEntry>,
    jwt: Option<JwtVerifier>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.api_keys.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Builds the verifiers the config names. Loads key material now, so a bad JWKS file
    /// or secret fails at start-up, not at the first agent.
    pub async fn from_config(config: &Config) -> anyhow::Result<Authenticator> {
        let mut api_keys = HashMap::new();
        for key in &config.auth.api_keys {
            let mut hash = [0u8; 32];
            // Validated as 64 hex digits by config validation.
            hex::decode_to_slice(&key.sha256, &mut hash)?;
            api_keys.insert(hash, ApiKeyEntry { subject: key.subject.clone(), groups: key.groups.clone() });
        }
        let jwt = JwtVerifier::from_config(config).await?;
        Ok(Authenticator { api_keys, jwt })
    }

    /// Verifies an OIDC ID token for the web console (see
    /// [`JwtVerifier::verify_id_token`]).
    pub async fn verify_id_token(&self, token: &str, client_id: &str, nonce: &str) -> Result<Identity, AuthError> {
        match &self.jwt {
            Some(jwt) => jwt.verify_id_token(token, client_id, nonce).await,
            None => Err(AuthError::NotAccepted("no JWT verifier is configured")),
        }
    }

    /// Verifies `token` and returns who it names.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(entry) = self.api_keys.get(&hash) {
            return Ok(Identity {
                subject: entry.subject.clone(),
                groups: entry.groups.clone(),
                method: AuthMethod::ApiKey,
            });
        }
        match &self.jwt {
            Some(jwt) => jwt.verify(token).await,
            None if token.matches('.').count() == 2 => Err(AuthError::NotAccepted("no JWT verifier is configured")),
            None => Err(AuthError::Malformed),
        }
    }
}

#[cfg(test)]
mod person_tests {
    use super::same_person;

    #[test]
    fn near_identical_subjects_are_the_same_person() {
        for other in ["demo-approver", "Demo-Approver", " demo-approver ", "ｄｅｍｏ-approver", "demo\u{200b}-approver"]
        {
            assert!(same_person("demo-approver", other), "{other:?}");
        }
        assert!(!same_person("demo-approver", "demo-approver2"));
        assert!(!same_person("alice", "bob"));
    }
}
