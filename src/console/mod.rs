//! The web console, served by the admin listener under `/console/`.
//!
//! Approvers (`auth.approver_groups`) see pending approvals live and decide them;
//! auditors (`console.auditor_groups`) list sessions, replay them and verify the
//! recording chain. People sign in through the IdP (OIDC authorization code with
//! PKCE, [`oidc`]) or, for development, by pasting a token or API key; either way
//! the identity is checked exactly like an agent's, and the groups decide the role.
//!
//! Pages are rendered on the server ([`pages`]); a little JavaScript, embedded in
//! the binary, adds the live list (Server-Sent Events), countdowns and the terminal
//! player. Everything works without it but the live parts. The pages forbid inline
//! script and any other origin (`Content-Security-Policy`), and every state-changing
//! request carries the login's CSRF token besides its `SameSite=Strict` cookie.

mod login;
mod oidc;
mod pages;
pub mod replay;
mod sse;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::approvals::{Broker, DecideError};
use crate::config::Config;
use crate::identity::{Authenticator, Identity};
use crate::recording::index::SessionSummary;
use crate::recording::verify;
use crate::signal::Signal;
use login::{Logins, Viewer};

/// A replay's transcript as the page shows it (HTML).
pub fn transcript_html(replay: &replay::Replay) -> String {
    pages::reveal(pages::transcript(replay).into_string())
}

/// A response body: whole, or streamed (the live views).
pub type ReplyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;
/// A response.
pub type Reply = Response<ReplyBody>;

/// The sessions list starts a new verification when the last is older than this.
const STALE_VERIFICATION: Duration = Duration::from_secs(30);

/// Largest form the console reads (a decision, a token, filters).
const MAX_FORM: usize = 64 * 1024;
/// Time allowed to send a form's body.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);
/// Replays decoded at once (each reads the whole session).
const MAX_REPLAY_LOADS: usize = 2;

/// The console's state: who is signed in, and the last verification.
pub struct Console {
    auth: Arc<Authenticator>,
    broker: Arc<Broker>,
    approver_groups: Vec<String>,
    auditor_groups: Vec<String>,
    recordings: PathBuf,
    logins: Logins,
    oidc: Option<oidc::Client>,
    max_grant: Duration,
    verified: Mutex<Option<Arc<Verification>>>,
    /// Replays loading at once, at most.
    replays: Arc<tokio::sync::Semaphore>,
    /// A background verification is running.
    verifying: std::sync::atomic::AtomicBool,
    drain: Arc<Signal>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("recordings", &self.recordings).finish_non_exhaustive()
    }
}

/// The outcome of the last `verify` run over this replica's recordings.
#[derive(Debug)]
pub struct Verification {
    /// When it ran (µs since the epoch).
    pub at_us: u64,
    /// How long it took.
    pub took: Duration,
    /// The segments present then, with whether each was sealed and its size.
    pub segments: Vec<(u64, bool, u64)>,
    /// The counts, or the first problem.
    pub result: Result<verify::Report, verify::Problem>,
}

impl Verification {
    /// How segment `n` fared: `Some(true)` verified, `Some(false)` broken or after a
    /// break, `None` not checked by this run.
    pub fn segment(&self, n: u64) -> Option<bool> {
        match &self.result {
            Ok(_) => self.segments.iter().any(|s| s.0 == n).then_some(true),
            Err(p) if n >= p.segment => Some(false),
            Err(_) => self.segments.iter().any(|s| s.0 == n).then_some(true),
        }
    }
}

impl Console {
    /// The console for `config`, deciding through `broker`. `drain` ends the live
    /// views when the process shuts down.
    pub async fn new(
        config: &Config,
        auth: Arc<Authenticator>,
        broker: Arc<Broker>,
        drain: Arc<Signal>,
    ) -> anyhow::Result<Arc<Console>> {
        let settings = &config.console;
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen.admin));
        let public_url = public_url.trim_end_matches('/').to_owned();
        let oidc = match &settings.oidc {
            Some(o) => Some(oidc::Client::new(config, o, &public_url)?),
            None => None,
        };
        let console = Arc::new(Console {
            auth,
            broker,
            approver_groups: config.auth.approver_groups.clone(),
            auditor_groups: settings.auditor_groups.clone(),
            recordings: crate::recording::store::recordings_dir(&config.data_dir()),
            logins: Logins::new(settings.login_ttl, public_url.starts_with("https://")),
            oidc,
            max_grant: config.approvals.max_grant,
            verified: Mutex::default(),
            replays: Arc::new(tokio::sync::Semaphore::new(MAX_REPLAY_LOADS)),
            verifying: Default::default(),
            drain,
        });
        // A first verification in the background, so the sessions list can say.
        console.verify_if_older_than(&None, STALE_VERIFICATION);
        Ok(console)
    }

    /// Serves `req` (a `/console...` path) from `peer`.
    pub async fn route(self: &Arc<Self>, req: Request<Body>, peer: std::net::IpAddr) -> Reply {
        let path = req.uri().path().to_owned();
        let mut reply = self.dispatch(req, &path, peer).await;
        secure_headers(reply.headers_mut());
        reply
    }

    async fn dispatch(self: &Arc<Self>, req: Request<Body>, path: &str, peer: std::net::IpAddr) -> Reply {
        let rest = path.strip_prefix("/console").unwrap_or(path);
        let method = req.method().clone();
        // Whatever changes state must come from the console's own pages.
        if method == Method::POST
            && let Err(refused) = check_origin(&req)
        {
            return refused.reply();
        }
        // Pages anyone may reach.
        match (&method, rest) {
            (&Method::GET, "/static/app.css") => return asset(pages::APP_CSS, "text/css"),
            (&Method::GET, "/static/app.js") => return asset(pages::APP_JS, "text/javascript"),
            (&Method::GET, "/static/player.css") => return asset(pages::PLAYER_CSS, "text/css"),
            (&Method::GET, "/static/player.js") => return asset(pages::PLAYER_JS, "text/javascript"),
            (&Method::GET, "/login") => return self.login_request(&req),
            (&Method::POST, "/login") => return self.token_login(req).await,
            (&Method::GET, "/oidc/start") => return self.oidc_start(&req, peer).await,
            (&Method::GET, "/oidc/callback") => return self.oidc_callback(&req).await,
            _ => {}
        }
        let Some(viewer) = self.viewer(&req) else {
            return if method == Method::GET {
                let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/console/");
                redirect(&format!("/console/login?{}", query(&[("next", next)])))
            } else {
                page_error(StatusCode::UNAUTHORIZED, "Your sign-in has ended; sign in again.")
            };
        };
        if !viewer.approver && !viewer.auditor {
            return pages::forbidden(
                &viewer,
                "Your groups give you no role in the console: approvers are in auth.approver_groups, auditors in console.auditor_groups.",
            );
        }
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (&method, parts.as_slice()) {
            (&Method::GET, [""]) => redirect(if viewer.approver { "/console/approvals" } else { "/console/sessions" }),
            (&Method::POST, ["logout"]) => self.logout(req, &viewer).await,
            (&Method::GET, ["approvals"]) => self.approvals_page(&viewer).await,
            (&Method::GET, ["approvals", "events"]) => self.approvals_events(viewer),
            (&Method::POST, ["approvals", id, decision @ ("approve" | "deny")]) => {
                let (id, decision) = (id.to_string(), *decision);
                self.decide(req, &viewer, &id, decision).await
            }
            (&Method::GET, ["sessions"]) if viewer.auditor => self.sessions_page(&req, &viewer).await,
            (&Method::GET, ["sessions", id]) if viewer.auditor => self.replay_page(&viewer, id).await,
            (&Method::GET, ["sessions", id, "events"]) if viewer.auditor => self.replay_events(id, &viewer),
            (&Method::GET, ["verify"]) if viewer.auditor => self.verify_page(&viewer),
            (&Method::POST, ["verify"]) if viewer.auditor => {
                if let Err(refused) = self.check_csrf_form(req, &viewer).await {
                    return refused.reply();
                }
                self.verify().await;
                redirect("/console/verify")
            }
            (_, ["sessions", ..] | ["verify"]) => pages::forbidden(
                &viewer,
                "Sessions, replays and verification are for auditors (console.auditor_groups).",
            ),
            _ => pages::not_found(&viewer),
        }
    }

    /// The signed-in person behind `req`, with their roles.
    fn viewer(&self, req: &Request<Body>) -> Option<Viewer> {
        let id = cookie(req, login::SESSION_COOKIE)?;
        let (identity, csrf) = self.logins.get(&id)?;
        Some(Viewer { login: id, ..self.viewer_of(identity, csrf) })
    }

    fn viewer_of(&self, identity: Identity, csrf: String) -> Viewer {
        Viewer {
            login: String::new(),
            approver: identity.in_any(&self.approver_groups),
            auditor: identity.in_any(&self.auditor_groups),
            identity,
            csrf,
        }
    }

    async fn approvals_page(&self, viewer: &Viewer) -> Reply {
        match self.broker.pending().await {
            Ok(pending) => html(StatusCode::OK, pages::approvals(viewer, &pending, self.grant_choices())),
            Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(viewer, &e.to_string())),
        }
    }

    /// The grant lengths offered: the usual ones up to `approvals.max_grant`.
    fn grant_choices(&self) -> Vec<&'static str> {
        [("15m", 15 * 60), ("1h", 3600), ("4h", 4 * 3600), ("1d", 86_400)]
            .into_iter()
            .filter(|(_, secs)| Duration::from_secs(*secs) <= self.max_grant)
            .map(|(name, _)| name)
            .collect()
    }

    /// The pending list, again each time it changes.
    fn approvals_events(self: &Arc<Self>, viewer: Viewer) -> Reply {
        let this = self.clone();
        let changes = self.broker.changes();
        sse::stream(changes, self.drain.clone(), move || {
            let this = this.clone();
            let viewer = viewer.clone();
            async move {
                // A stream lives no longer than the sign-in it was opened under.
                this.logins.get(&viewer.login)?;
                let fragment = match this.broker.pending().await {
                    Ok(pending) => pages::pending_list(&viewer, &pending, &this.grant_choices()),
                    Err(e) => pages::notice(&format!("Approvals are unavailable: {e}")),
                };
                Some(("pending", pages::reveal(fragment.into_string())))
            }
        })
    }

    async fn decide(&self, req: Request<Body>, viewer: &Viewer, id: &str, decision: &str) -> Reply {
        let wants_json = req.headers().get("x-requested-with").is_some_and(|v| v == "fetch");
        let form = match self.csrf_form(req, viewer).await {
            Ok(form) => form,
            Err(Refused(status, why)) if wants_json => return json(status, &serde_json::json!({ "error": why })),
            Err(refused) => return refused.reply(),
        };
        let outcome = if !viewer.approver {
            Err((
                StatusCode::FORBIDDEN,
                format!("{} is not an approver (auth.approver_groups)", viewer.identity.subject),
            ))
        } else if decision == "approve" {
            let grant = form.get("for").filter(|d| !d.is_empty());
            match grant.map(|d| humantime::parse_duration(d).map_err(|e| format!("for: {d:?}: {e}"))).transpose() {
                Err(e) => Err((StatusCode::BAD_REQUEST, e)),
                Ok(grant) => self
                    .broker
                    .approve(id, &viewer.identity, grant)
                    .await
                    .map(|r| match grant {
                        Some(_) => format!("Approved {} for {}", r.id, form.get("for").cloned().unwrap_or_default()),
                        None => format!("Approved {}", r.id),
                    })
                    .map_err(decide_error),
            }
        } else {
            let reason = form.get("reason").map(|r| r.trim()).unwrap_or_default();
            if reason.is_empty() {
                Err((StatusCode::BAD_REQUEST, "Say why: the agent sees the reason.".to_owned()))
            } else {
                self.broker
                    .deny(id, &viewer.identity, reason)
                    .await
                    .map(|r| format!("Denied {}", r.id))
                    .map_err(decide_error)
            }
        };
        match (outcome, wants_json) {
            (Ok(message), true) => json(StatusCode::OK, &serde_json::json!({ "message": message })),
            (Err((status, message)), true) => json(status, &serde_json::json!({ "error": message })),
            (Ok(_), false) => redirect("/console/approvals"),
            (Err((status, message)), false) => html(status, pages::error_page(Some(viewer), status, &message)),
        }
    }

    async fn sessions_page(self: &Arc<Self>, req: &Request<Body>, viewer: &Viewer) -> Reply {
        let filter = pages::SessionFilter::from_query(req.uri().query().unwrap_or(""));
        match self.sessions().await {
            Ok((sessions, notice)) => {
                let verified = self.last_verification();
                self.verify_if_older_than(&verified, STALE_VERIFICATION);
                let fleet = self.broker.store().map(|store| (store.replica(), notice.as_deref()));
                let page = pages::sessions(viewer, &sessions, &filter, verified.as_deref(), fleet);
                html(StatusCode::OK, page)
            }
            Err(e) => html(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::error_page(Some(viewer), StatusCode::INTERNAL_SERVER_ERROR, &e),
            ),
        }
    }

    /// This replica's sessions from its own index (the freshest), and with `[state]`
    /// every other replica's as shipped to the shared index, oldest first; with a
    /// notice when the others cannot be listed.
    async fn sessions(&self) -> Result<(Vec<SessionSummary>, Option<String>), String> {
        let dir = self.recordings.clone();
        let local = tokio::task::spawn_blocking(move || crate::recording::index::sessions(&dir))
            .await
            .map_err(|_| "the index could not be read".to_owned())?
            .map_err(|e| format!("reading the index: {e}"))?;
        let Some(store) = self.broker.store() else { return Ok((local, None)) };
        let me = store.replica().to_owned();
        let (mut all, notice) = match store.sessions(0).await {
            Ok(list) => (list.into_iter().filter(|s| s.replica.as_deref() != Some(&me)).collect(), None),
            Err(e) => (Vec::new(), Some(format!("Only this replica's sessions are listed: {e}"))),
        };
        all.extend(local.into_iter().map(|s| SessionSummary { replica: Some(me.clone()), ..s }));
        all.sort_by_key(|s| s.start_us);
        Ok((all, notice))
    }

    async fn replay_page(&self, viewer: &Viewer, id: &str) -> Reply {
        match self.load(id).await {
            Ok(replay) => {
                let verified = self.last_verification();
                html(StatusCode::OK, pages::replay(viewer, &replay, verified.as_deref()))
            }
            Err(e) => {
                let elsewhere = match self.broker.store() {
                    Some(store) => store
                        .sessions(0)
                        .await
                        .ok()
                        .and_then(|all| {
                            all.into_iter().find(|s| s.id == id && s.replica.as_deref() != Some(store.replica()))
                        })
                        .and_then(|s| s.replica),
                    None => None,
                };
                let message = match elsewhere {
                    Some(replica) => format!(
                        "Session {id} was recorded by replica {replica}: open that replica's console, or replay it \
                         with `airlock replay --config` (with [recording.remote], any replica's recordings are read)."
                    ),
                    None => e,
                };
                html(StatusCode::NOT_FOUND, pages::error_page(Some(viewer), StatusCode::NOT_FOUND, &message))
            }
        }
    }

    /// Loads a session off the runtime's threads, a few at a time: a replay reads and
    /// decodes every block of the session.
    async fn load(&self, id: &str) -> Result<replay::Replay, String> {
        load_replay(&self.replays, &self.recordings, id).await
    }

    /// A session's transcript, again each time it grows, until it ends or the viewer's
    /// sign-in does. Nothing is read again while the recordings have not changed.
    fn replay_events(self: &Arc<Self>, id: &str, viewer: &Viewer) -> Reply {
        let (this, id, login) = (self.clone(), id.to_owned(), viewer.login.clone());
        let ticks = sse::ticker(Duration::from_millis(500));
        let seen = Arc::new(tokio::sync::Mutex::new(Followed::default()));
        sse::stream(ticks, self.drain.clone(), move || {
            let (this, id, login, seen) = (this.clone(), id.clone(), login.clone(), seen.clone());
            async move {
                this.logins.get(&login)?;
                let mut seen = seen.lock().await;
                if seen.ended {
                    return None;
                }
                let mark = recordings_mark(&this.recordings);
                if mark.is_some() && mark == seen.mark {
                    return Some(("", String::new()));
                }
                let replay = this.load(&id).await.ok()?;
                let frames = replay.frames();
                seen.mark = mark;
                if frames == seen.frames && !replay.ended() {
                    return Some(("", String::new()));
                }
                (seen.frames, seen.ended) = (frames, replay.ended());
                let event = if replay.ended() { "ended" } else { "transcript" };
                Some((event, transcript_html(&replay)))
            }
        })
    }

    fn verify_page(&self, viewer: &Viewer) -> Reply {
        html(StatusCode::OK, pages::verify(viewer, self.last_verification().as_deref()))
    }

    /// Verifies again in the background when the last run is older than `age`, so
    /// that the next look sees newer sessions checked.
    fn verify_if_older_than(self: &Arc<Self>, last: &Option<Arc<Verification>>, age: Duration) {
        let age_us = age.as_micros() as u64;
        if last.as_ref().is_some_and(|v| v.at_us + age_us > crate::recording::now_us()) {
            return;
        }
        if self.verifying.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.verify().await });
    }

    fn last_verification(&self) -> Option<Arc<Verification>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `verify` over this replica's recordings and keeps the outcome.
    async fn verify(&self) {
        let dir = self.recordings.clone();
        let run = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let segments = crate::recording::store::list_segments(&dir)
                .unwrap_or_default()
                .into_iter()
                .map(|n| {
                    let path = crate::recording::store::segment_path(&dir, n);
                    let sealed = matches!(crate::recording::store::read_footer(&path), Ok(Some(_)));
                    (n, sealed, std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
                })
                .collect();
            let result = verify::verify(&dir, None);
            Verification { at_us: crate::recording::now_us(), took: started.elapsed(), segments, result }
        })
        .await;
        if let Ok(v) = run {
            *self.verified.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(v));
        }
        self.verifying.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Reads a form whose `csrf` field must be the login's token.
    async fn csrf_form(&self, req: Request<Body>, viewer: &Viewer) -> Result<Form, Refused> {
        let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let form = read_form(req).await?;
        let token = header_token.or_else(|| form.get("csrf").cloned()).unwrap_or_default();
        if !login::same_secret(&token, &viewer.csrf) {
            return Err(Refused(
                StatusCode::FORBIDDEN,
                "The form's CSRF token does not match your sign-in: reload the page.",
            ));
        }
        Ok(form)
    }

    async fn check_csrf_form(&self, req: Request<Body>, viewer: &Viewer) -> Result<(), Refused> {
        self.csrf_form(req, viewer).await.map(drop)
    }
}

/// What a live replay has sent so far.
#[derive(Default)]
struct Followed {
    mark: Option<(u64, u64, u64)>,
    frames: usize,
    ended: bool,
}

/// The last segment, its length and the index's: while they stand still, no session
/// in `dir` has changed.
fn recordings_mark(dir: &std::path::Path) -> Option<(u64, u64, u64)> {
    let last = *crate::recording::store::list_segments(dir).ok()?.last()?;
    let len = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).ok();
    Some((last, len(crate::recording::store::segment_path(dir, last))?, len(dir.join("index.jsonl"))?))
}

/// Loads session `id` from `dir` on a blocking thread, holding one of `permits`. The
/// error names what went wrong, not where the recordings live.
async fn load_replay(
    permits: &Arc<tokio::sync::Semaphore>,
    dir: &std::path::Path,
    id: &str,
) -> Result<replay::Replay, String> {
    let _permit = permits.acquire().await.map_err(|_| "shutting down".to_owned())?;
    let (owned, id) = (dir.to_owned(), id.to_owned());
    let loaded = tokio::task::spawn_blocking(move || replay::Replay::load(&owned, &id))
        .await
        .map_err(|_| "the replay could not be loaded".to_owned())?;
    loaded.map_err(|e| format!("{e:#}").replace(&dir.display().to_string(), "the recordings directory"))
}

/// A form's fields, first value wins.
type Form = std::collections::HashMap<String, String>;

/// A request refused before it did anything.
#[derive(Debug)]
struct Refused(StatusCode, &'static str);

impl Refused {
    fn reply(self) -> Reply {
        page_error(self.0, self.1)
    }
}

fn decide_error(e: DecideError) -> (StatusCode, String) {
    (e.http_status(), e.to_string())
}

/// A state-changing request must come from the console's own pages: a browser names
/// the page's origin, which must be the host the request went to.
fn check_origin(req: &Request<Body>) -> Result<(), Refused> {
    let fetch_site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
        return Err(Refused(StatusCode::FORBIDDEN, "This request came from another site; it was refused."));
    }
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or_default();
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Refused(StatusCode::FORBIDDEN, "This request came from another site; it was refused."))
    }
}

/// Headers on every console response: no framing, no sniffing, no inline script,
/// no other origins, no referrer (with its ids) sent to other sites (same-origin
/// requests keep theirs, and their `Origin`), and pages are not cached.
fn secure_headers(headers: &mut hyper::HeaderMap) {
    const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

fn full(body: impl Into<Bytes>) -> ReplyBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html(status: StatusCode, markup: maud::Markup) -> Reply {
    reply(status, "text/html; charset=utf-8", pages::reveal(markup.into_string()))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

fn page_error(status: StatusCode, message: &str) -> Reply {
    html(status, pages::error_page(None, status, message))
}

fn asset(body: &'static str, content_type: &'static str) -> Reply {
    let mut r = reply(StatusCode::OK, content_type, body);
    // The URLs carry the build's version, so they may be cached for long.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    r
}

fn redirect(location: &str) -> Reply {
    let mut r = reply(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `key=value&...`, form-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// The value of cookie `name`.
fn cookie(req: &Request<Body>, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A form-encoded body, bounded; later fields do not override earlier ones.
async fn read_form(req: Request<Body>) -> Result<Form, Refused> {
    let body = tokio::time::timeout(FORM_TIMEOUT, Limited::new(req.into_body(), MAX_FORM).collect())
        .await
        .map_err(|_| Refused(StatusCode::REQUEST_TIMEOUT, "The form did not arrive in time."))?
        .map_err(|_| Refused(StatusCode::BAD_REQUEST, "The form could not be read (at most 64 KiB)."))?
        .to_bytes();
    let mut form = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        form.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    Ok(form)
}

/// A query string's fields, first value wins.
fn query_fields(query: &str) -> std::collections::HashMap<String, String> {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    fields
}
