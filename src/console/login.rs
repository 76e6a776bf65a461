//! Signing in and out: console logins (a cookie naming a server-side login with its
//! CSRF token), the token form, and the OIDC round trip's handlers.
//!
//! Logins live in this process: behind a load balancer, pin a browser to one replica
//! (the approvals and recordings it shows are the fleet's either way for approvals).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::body::Incoming as Body;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use sha2::{Digest, Sha256};

use super::{Console, Reply, cookie, html, page_error, pages, query_fields, read_form, redirect};
use crate::identity::Identity;

/// The login cookie.
pub const SESSION_COOKIE: &str = "airlock_console";
/// Binds a sign-in (the token form, or the trip through the IdP) to the browser that
/// started it, so that nobody can sign a victim in as themselves.
const BINDING_COOKIE: &str = "airlock_signin";
/// Logins kept at most; past that, sign-ins are refused until some end.
const MAX_LOGINS: usize = 10_000;
/// Logins one subject keeps at most; a new one ends that subject's oldest.
const MAX_LOGINS_PER_SUBJECT: usize = 20;
/// Sign-ins in progress (at the IdP) kept at most, and from one address.
const MAX_SIGNINS: usize = 1_000;
const MAX_SIGNINS_PER_SOURCE: usize = 20;
/// How long a sign-in at the IdP may take.
const SIGNIN_TTL: Duration = Duration::from_secs(600);

/// Who is looking, and what they may do.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The login's cookie value (never rendered).
    pub login: String,
    /// The signed-in identity.
    pub identity: Identity,
    /// In `auth.approver_groups`: decides approvals.
    pub approver: bool,
    /// In `console.auditor_groups`: reads sessions, replays and verification.
    pub auditor: bool,
    /// The token every state-changing request must carry.
    pub csrf: String,
}

struct Login {
    identity: Identity,
    csrf: String,
    until: Instant,
}

/// A sign-in waiting for the IdP to send the browser back.
pub struct SignIn {
    /// The ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The binding cookie's value in the browser that started it.
    pub browser: String,
    /// Where to go afterwards.
    pub next: String,
    /// Where the browser came from.
    source: std::net::IpAddr,
    until: Instant,
}

/// Logins and sign-ins in progress.
pub struct Logins {
    ttl: Duration,
    secure: bool,
    logins: Mutex<HashMap<[u8; 32], Login>>,
    signins: Mutex<HashMap<String, SignIn>>,
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Compares secrets in time independent of where they differ.
/// An empty secret matches nothing (a missing cookie and a missing field are not a match).
pub fn same_secret(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Logins {
    /// Logins lasting `ttl`; `secure` marks the cookies `Secure` (served over TLS).
    pub fn new(ttl: Duration, secure: bool) -> Logins {
        Logins { ttl, secure, logins: Mutex::default(), signins: Mutex::default() }
    }

    /// A new login for `identity`, ending by `expires` at the latest (the token's own
    /// expiry); returns the cookie's value, or `None` when too many are open.
    fn create(&self, identity: Identity, expires: Option<Instant>) -> Option<String> {
        let id = random_token();
        let now = Instant::now();
        let until = expires.map_or(now + self.ttl, |e| e.min(now + self.ttl));
        let mut logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        logins.retain(|_, l| l.until > now);
        let mine: Vec<([u8; 32], Instant)> =
            logins.iter().filter(|(_, l)| l.identity.subject == identity.subject).map(|(k, l)| (*k, l.until)).collect();
        if mine.len() >= MAX_LOGINS_PER_SUBJECT
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, until)| *until)
        {
            logins.remove(oldest);
        }
        if logins.len() >= MAX_LOGINS {
            return None;
        }
        logins.insert(key(&id), Login { identity, csrf: random_token(), until });
        Some(id)
    }

    /// The identity and CSRF token of a live login.
    pub fn get(&self, id: &str) -> Option<(Identity, String)> {
        let logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        let login = logins.get(&key(id)).filter(|l| l.until > Instant::now())?;
        Some((login.identity.clone(), login.csrf.clone()))
    }

    fn end(&self, id: &str) {
        self.logins.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(id));
    }

    /// Keeps a sign-in under `state` until the IdP sends the browser back; `false`
    /// when too many are in progress (from `source`, or at all). Sign-ins in progress
    /// are never pushed out by newer ones, so a flood cannot break a person's.
    pub fn begin(&self, state: String, signin: SignIn) -> bool {
        let now = Instant::now();
        let mut signins = self.signins.lock().unwrap_or_else(|p| p.into_inner());
        signins.retain(|_, s| s.until > now);
        let from_source = signins.values().filter(|s| s.source == signin.source).count();
        if signins.len() >= MAX_SIGNINS || from_source >= MAX_SIGNINS_PER_SOURCE {
            return false;
        }
        signins.insert(state, signin);
        true
    }

    /// The sign-in `state` names, once.
    pub fn take(&self, state: &str) -> Option<SignIn> {
        let signin = self.signins.lock().unwrap_or_else(|p| p.into_inner()).remove(state)?;
        (signin.until > Instant::now()).then_some(signin)
    }

    /// A `Set-Cookie` value. Logins are `SameSite=Strict`; the binding cookie must
    /// survive the top-level trip back from the IdP, so it is `Lax`.
    fn set_cookie(&self, name: &str, value: &str, max_age: Duration, same_site: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{name}={value}; Path=/console; HttpOnly; SameSite={same_site}; Max-Age={}{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
    }
}

/// When a JWT's `exp` comes, if it is one (the token was verified already); API keys
/// do not expire.
fn token_expiry(token: &str) -> Option<Instant> {
    let claims = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    let exp = std::time::UNIX_EPOCH + Duration::from_secs(claims.get("exp")?.as_u64()?);
    let left = exp.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    Some(Instant::now() + left)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.clone()
        }
        _ => "/console/".into(),
    }
}

impl Console {
    /// The sign-in page, going on to `next`; a fresh binding cookie goes with it.
    pub(super) fn login_page(&self, next: &str, problem: Option<&str>) -> Reply {
        let binding = random_token();
        let status = if problem.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
        let mut reply = html(status, pages::login(self.oidc.is_some(), &binding, next, problem));
        reply
            .headers_mut()
            .append(header::SET_COOKIE, self.logins.set_cookie(BINDING_COOKIE, &binding, SIGNIN_TTL, "Lax"));
        reply
    }

    /// `GET /console/login?next=...`.
    pub(super) fn login_request(&self, req: &Request<Body>) -> Reply {
        let fields = query_fields(req.uri().query().unwrap_or(""));
        self.login_page(&safe_next(fields.get("next")), None)
    }

    /// The token form: a JWT or API key, checked like an agent's.
    pub(super) async fn token_login(&self, req: Request<Body>) -> Reply {
        let browser = cookie(&req, BINDING_COOKIE).unwrap_or_default();
        let form = match read_form(req).await {
            Ok(form) => form,
            Err(refused) => return refused.reply(),
        };
        let next = safe_next(form.get("next"));
        if !same_secret(form.get("binding").map(String::as_str).unwrap_or_default(), &browser) {
            return page_error(
                StatusCode::FORBIDDEN,
                "This sign-in did not start on this page: open the sign-in page and try again.",
            );
        }
        let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
        match self.auth.authenticate(token).await {
            // A pasted token's login ends when the token does.
            Ok(identity) => self.signed_in(identity, &next, false, token_expiry(token)),
            Err(e) => {
                tracing::info!(error = %e, "console sign-in refused");
                self.login_page(&next, Some(&format!("That token was refused: {e}")))
            }
        }
    }

    /// Starts a login for `identity` if their groups give them a role, ending by
    /// `expires` at the latest.
    fn signed_in(&self, identity: Identity, next: &str, via_idp: bool, expires: Option<Instant>) -> Reply {
        let viewer = self.viewer_of(identity.clone(), String::new());
        if !viewer.approver && !viewer.auditor {
            tracing::info!(subject = %identity.subject, "console sign-in refused: no console role");
            return html(
                StatusCode::FORBIDDEN,
                pages::error_page(
                    None,
                    StatusCode::FORBIDDEN,
                    &format!(
                        "{} signed in, but their groups give them no role in the console: approvers are in \
                         auth.approver_groups, auditors in console.auditor_groups.",
                        identity.subject
                    ),
                ),
            );
        }
        tracing::info!(subject = %identity.subject, approver = viewer.approver, auditor = viewer.auditor, "console sign-in");
        let Some(id) = self.logins.create(identity, expires) else {
            return page_error(StatusCode::SERVICE_UNAVAILABLE, "Too many people are signed in; try again later.");
        };
        // Back from the IdP, a redirect would still count as cross-site, and the
        // browser would hold back the `SameSite=Strict` cookie just set: a page that
        // moves on by itself starts a same-site navigation.
        let mut reply = if via_idp { html(StatusCode::OK, pages::continue_to(next)) } else { redirect(next) };
        let headers = reply.headers_mut();
        headers.append(header::SET_COOKIE, self.logins.set_cookie(SESSION_COOKIE, &id, self.logins.ttl, "Strict"));
        headers.append(header::SET_COOKIE, self.logins.set_cookie(BINDING_COOKIE, "", Duration::ZERO, "Lax"));
        reply
    }

    pub(super) async fn logout(&self, req: Request<Body>, viewer: &Viewer) -> Reply {
        let id = cookie(&req, SESSION_COOKIE).unwrap_or_default();
        if let Err(refused) = self.check_csrf_form(req, viewer).await {
            return refused.reply();
        }
        self.logins.end(&id);
        let mut reply = redirect("/console/login");
        reply
            .headers_mut()
            .append(header::SET_COOKIE, self.logins.set_cookie(SESSION_COOKIE, "", Duration::ZERO, "Strict"));
        reply
    }

    /// Sends the browser to the IdP with a fresh state, nonce and PKCE challenge.
    pub(super) async fn oidc_start(&self, req: &Request<Body>, source: std::net::IpAddr) -> Reply {
        let Some(oidc) = &self.oidc else {
            return page_error(StatusCode::NOT_FOUND, "Signing in through the IdP is not configured ([console.oidc]).");
        };
        let Some(browser) = cookie(req, BINDING_COOKIE).filter(|b| !b.is_empty()) else {
            return redirect("/console/login");
        };
        let fields = query_fields(req.uri().query().unwrap_or(""));
        let (state, nonce) = (random_token(), random_token());
        let (verifier, challenge) = super::oidc::pkce();
        match oidc.authorize_url(&state, &nonce, &challenge).await {
            Ok(url) => {
                let next = safe_next(fields.get("next"));
                let signin = SignIn { nonce, verifier, browser, next, source, until: Instant::now() + SIGNIN_TTL };
                if !self.logins.begin(state, signin) {
                    return page_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many sign-ins are in progress; try again later.",
                    );
                }
                redirect(&url)
            }
            Err(e) => page_error(StatusCode::BAD_GATEWAY, &format!("The IdP cannot be reached: {e:#}")),
        }
    }

    /// The IdP sent the browser back: trade the code for an ID token and check it.
    pub(super) async fn oidc_callback(&self, req: &Request<Body>) -> Reply {
        let Some(oidc) = &self.oidc else {
            return page_error(StatusCode::NOT_FOUND, "Signing in through the IdP is not configured ([console.oidc]).");
        };
        let fields = query_fields(req.uri().query().unwrap_or(""));
        // Only the error code is shown: the description is anyone's text on this origin.
        if let Some(error) = fields.get("error") {
            let code: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return page_error(StatusCode::UNAUTHORIZED, &format!("The IdP did not sign you in ({code})."));
        }
        let state = fields.get("state").map(String::as_str).unwrap_or_default();
        let Some(signin) = self.logins.take(state) else {
            return page_error(StatusCode::BAD_REQUEST, "This sign-in is unknown or too old: start again.");
        };
        let browser = cookie(req, BINDING_COOKIE).unwrap_or_default();
        if !same_secret(&browser, &signin.browser) {
            return page_error(StatusCode::FORBIDDEN, "This sign-in was started in another browser: start again.");
        }
        let Some(code) = fields.get("code") else {
            return page_error(StatusCode::BAD_REQUEST, "The IdP sent no code back.");
        };
        let id_token = match oidc.exchange(code, &signin.verifier).await {
            Ok(token) => token,
            Err(e) => return page_error(StatusCode::BAD_GATEWAY, &format!("The IdP did not give an ID token: {e:#}")),
        };
        match self.auth.verify_id_token(&id_token, oidc.client_id(), &signin.nonce).await {
            // Signed in at the IdP just now: the login lasts `console.login_ttl`.
            Ok(identity) => self.signed_in(identity, &signin.next, true, None),
            Err(e) => {
                tracing::warn!(error = %e, "console sign-in: ID token refused");
                page_error(StatusCode::UNAUTHORIZED, &format!("The IdP's ID token was refused: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_secret_matches_nothing() {
        assert!(!same_secret("", ""));
        assert!(!same_secret("a", ""));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
    }

    #[test]
    fn a_pasted_jwt_login_ends_with_the_token() {
        let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60;
        let claims = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
        let until = token_expiry(&format!("e30.{claims}.sig")).unwrap();
        assert!(until <= Instant::now() + Duration::from_secs(61));
        assert!(token_expiry("ak_not_a_jwt").is_none());
    }

    #[test]
    fn next_stays_on_the_console() {
        for bad in ["//evil.example", "/console//evil", "https://evil", "/console\\x", "/other", "/console/\r\nx"] {
            assert_eq!(safe_next(Some(&bad.to_owned())), "/console/", "{bad:?}");
        }
        assert_eq!(safe_next(Some(&"/console/sessions?x=1".to_owned())), "/console/sessions?x=1");
    }
}
