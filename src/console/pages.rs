//! The console's pages, rendered with `maud` (which escapes every value it is given:
//! recorded text, subjects and reasons can hold anything).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::Verification;
use super::login::Viewer;
use super::replay::{Exchange, Item, Replay, Statement};
use crate::approvals::Request;
use crate::recording::format::PolicyEvent;
use crate::recording::index::SessionSummary;

pub const APP_CSS: &str = include_str!("assets/app.css");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const PLAYER_CSS: &str = include_str!("assets/player.css");
pub const PLAYER_JS: &str = include_str!("assets/player.js");

/// Asset URLs carry the version, so a new build is never served stale files.
const V: &str = env!("CARGO_PKG_VERSION");

/// A rendered page with every character that could make text read other than it is
/// shown as a marker (`⟨U+202E⟩`): bidirectional overrides that reorder a command,
/// zero-width and other invisible characters, controls (a CR too). Recorded text and
/// names can hold anything; nothing the console renders itself uses them.
pub fn reveal(html: String) -> String {
    use crate::recording::replay::hides_text;
    if !html.chars().any(hides_text) {
        return html;
    }
    let mut out = String::with_capacity(html.len() + 64);
    for c in html.chars() {
        if hides_text(c) {
            out.push_str(&format!("⟨U+{:04X}⟩", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Sessions listed at most per page.
const PAGE: usize = 200;

fn layout(title: &str, viewer: Option<&Viewer>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Airlock" }
                link rel="stylesheet" href={ "/console/static/app.css?v=" (V) };
                script src={ "/console/static/app.js?v=" (V) } defer {}
            }
            body {
                header.top {
                    a.brand href="/console/" { span.mark { "◆" } " Airlock" }
                    @if let Some(v) = viewer {
                        nav {
                            a href="/console/approvals" aria-current=[(current == "approvals").then_some("page")] { "Approvals" }
                            @if v.auditor {
                                a href="/console/sessions" aria-current=[(current == "sessions").then_some("page")] { "Sessions" }
                                a href="/console/verify" aria-current=[(current == "verify").then_some("page")] { "Verify" }
                            }
                        }
                        div.who {
                            span.subject { (v.identity.subject) }
                            span.roles { (roles(v)) }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn roles(v: &Viewer) -> &'static str {
    match (v.approver, v.auditor) {
        (true, true) => "approver · auditor",
        (true, false) => "approver",
        (false, true) => "auditor",
        (false, false) => "no role",
    }
}

/// The sign-in page.
pub fn login(oidc: bool, binding: &str, next: &str, problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        "",
        html! {
            section.signin {
                h1 { "Sign in" }
                @if let Some(p) = problem { p.error role="alert" { (p) } }
                @if oidc {
                    a.button.primary href={ "/console/oidc/start?" (super::query(&[("next", next)])) } { "Sign in with your identity provider" }
                    p.or { "or" }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="binding" value=(binding);
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Token or API key" }
                    input #token type="password" name="token" autocomplete="off" required placeholder="eyJ… or an API key";
                    button.button type="submit" { "Sign in with a token" }
                }
                p.hint { "Approvers are in " code { "auth.approver_groups" } ", auditors in " code { "console.auditor_groups" } "." }
            }
        },
    )
}

/// The page a sign-in through the IdP ends on: it moves on to `next` by itself.
pub fn continue_to(next: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={ "0;url=" (next) };
                title { "Signed in · Airlock" }
                link rel="stylesheet" href={ "/console/static/app.css?v=" (V) };
            }
            body { main { p { "Signed in. " a href=(next) { "Continue" } } } }
        }
    }
}

/// An error page.
pub fn error_page(viewer: Option<&Viewer>, status: hyper::StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        viewer,
        "",
        html! {
            section.problem {
                h1 { (status.as_u16()) " · " (status.canonical_reason().unwrap_or("Error")) }
                p role="alert" { (message) }
                @if viewer.is_none() { p { a href="/console/login" { "Sign in" } } }
            }
        },
    )
}

/// 403 for a signed-in person.
pub fn forbidden(viewer: &Viewer, message: &str) -> super::Reply {
    super::html(hyper::StatusCode::FORBIDDEN, error_page(Some(viewer), hyper::StatusCode::FORBIDDEN, message))
}

/// 404 for a signed-in person.
pub fn not_found(viewer: &Viewer) -> super::Reply {
    super::html(hyper::StatusCode::NOT_FOUND, error_page(Some(viewer), hyper::StatusCode::NOT_FOUND, "No such page."))
}

/// A page saying the approvals cannot be listed now.
pub fn unavailable(viewer: &Viewer, why: &str) -> Markup {
    layout("Approvals", Some(viewer), "approvals", notice(&format!("Approvals are unavailable: {why}")))
}

/// A short notice.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// The pending approvals, live.
pub fn approvals(viewer: &Viewer, pending: &[Request], grants: Vec<&'static str>) -> Markup {
    layout(
        "Approvals",
        Some(viewer),
        "approvals",
        html! {
            div.heading {
                h1 { "Pending approvals" }
                span.live #live-status data-state="connecting" { "connecting…" }
            }
            @if !viewer.approver {
                p.notice { "You can see what is waiting; only approvers (" code { "auth.approver_groups" } ") decide." }
            }
            div #pending data-live="/console/approvals/events" data-csrf=(viewer.csrf) {
                (pending_list(viewer, pending, &grants))
            }
            div #toast role="status" aria-live="polite" {}
        },
    )
}

/// The list inside the approvals page (also what the live stream sends).
pub fn pending_list(viewer: &Viewer, pending: &[Request], grants: &[&'static str]) -> Markup {
    html! {
        @if pending.is_empty() {
            p.empty { "Nothing is waiting for a decision." }
        }
        @for r in pending {
            (request_card(viewer, r, grants))
        }
    }
}

fn request_card(viewer: &Viewer, r: &Request, grants: &[&'static str]) -> Markup {
    let own = crate::identity::same_person(&r.asked.subject, &viewer.identity.subject);
    let id = &r.id;
    html! {
        article.card.request id={ "request-" (id) } data-id=(id) {
            header {
                span.protocol { (r.asked.protocol) }
                span { b.subject { (r.asked.subject) } " on " b { (r.asked.connection) } }
                time.left datetime=(r.expires_at) data-expires=(r.expires_at) { "expires " (r.expires_at) }
            }
            pre.statement { code { (highlight(r.asked.protocol, &r.asked.statement)) } }
            p.classes {
                @for c in &r.asked.classes { span.class data-class=(c) { (c) } " " }
            }
            p.reason { "Rule " code { (r.asked.rule) } ": " (r.asked.reason) }
            p.meta { "Request " code.id { (id) } " · asked " time datetime=(r.created_at) { (r.created_at) } }
            @if own {
                p.own role="note" { "You asked for this: another approver must decide." }
            } @else if viewer.approver {
                div.decide {
                    form.approve method="post" action={ "/console/approvals/" (id) "/approve" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button.button.approve type="submit" { "Approve once" }
                    }
                    @if !grants.is_empty() {
                        form.approve.grant method="post" action={ "/console/approvals/" (id) "/approve" } {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            label { span.sr { "Grant length" }
                                select name="for" {
                                    @for g in grants { option value=(g) { (g) } }
                                }
                            }
                            button.button.approve.secondary type="submit" { "Approve for" }
                        }
                    }
                    form.deny method="post" action={ "/console/approvals/" (id) "/deny" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label { span.sr { "Reason" }
                            input type="text" name="reason" required maxlength="500" placeholder="Reason (the agent sees it)";
                        }
                        button.button.deny type="submit" { "Deny" }
                    }
                }
                p.error.decision role="alert" hidden {}
            }
        }
    }
}

/// SQL with keywords, strings, numbers and comments marked (by the Postgres lexer);
/// other protocols' text as it is.
fn highlight(protocol: &str, text: &str) -> Markup {
    use airlock_postgres::sql::lexer::{TokenKind, tokens};
    if protocol != "postgres" {
        return html! { (text) };
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut at = 0;
    let escape = |s: &str, out: &mut String| {
        for c in s.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
    };
    let span = |class: &str, s: &str, out: &mut String| {
        out.push_str("<span class=\"");
        out.push_str(class);
        out.push_str("\">");
        escape(s, out);
        out.push_str("</span>");
    };
    for t in tokens(text) {
        let gap = text.get(at..t.offset).unwrap_or_default();
        if gap.trim().is_empty() {
            escape(gap, &mut out)
        } else {
            span("c", gap, &mut out)
        }
        let class = match t.kind {
            TokenKind::Word if KEYWORDS.iter().any(|k| t.text.eq_ignore_ascii_case(k)) => Some("k"),
            TokenKind::String | TokenKind::DollarString => Some("s"),
            TokenKind::Number | TokenKind::Param => Some("n"),
            TokenKind::QuotedIdent => Some("q"),
            TokenKind::Unterminated => Some("u"),
            _ => None,
        };
        match class {
            Some(c) => span(c, t.text, &mut out),
            None => escape(t.text, &mut out),
        }
        at = t.offset + t.text.len();
    }
    let tail = text.get(at..).unwrap_or_default();
    if tail.trim().is_empty() {
        escape(tail, &mut out)
    } else {
        span("c", tail, &mut out)
    }
    PreEscaped(out)
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "insert",
    "into",
    "values",
    "update",
    "set",
    "delete",
    "drop",
    "table",
    "create",
    "alter",
    "truncate",
    "grant",
    "revoke",
    "begin",
    "commit",
    "rollback",
    "with",
    "as",
    "join",
    "left",
    "right",
    "inner",
    "outer",
    "on",
    "group",
    "by",
    "order",
    "limit",
    "offset",
    "having",
    "union",
    "all",
    "distinct",
    "returning",
    "cascade",
    "if",
    "exists",
    "index",
    "view",
    "function",
    "do",
    "copy",
    "to",
    "null",
    "is",
    "in",
    "like",
    "case",
    "when",
    "then",
    "else",
    "end",
    "schema",
    "database",
    "role",
    "user",
    "execute",
    "prepare",
    "vacuum",
    "analyze",
    "explain",
    "call",
    "language",
    "security",
    "definer",
    "lock",
    "listen",
    "notify",
    "set",
    "reset",
    "show",
    "primary",
    "key",
    "references",
    "default",
];

/// Session list filters, from the query string.
#[derive(Debug, Default)]
pub struct SessionFilter {
    subject: String,
    connection: String,
    protocol: String,
    verdict: String,
    from: String,
    to: String,
    /// Sessions started before this (µs), for the next page.
    before: Option<u64>,
}

impl SessionFilter {
    /// Reads `subject`, `connection`, `protocol`, `verdict`, `from`, `to` (UTC,
    /// `YYYY-MM-DDTHH:MM`) and `before`.
    pub fn from_query(query: &str) -> SessionFilter {
        let f = super::query_fields(query);
        let get = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        SessionFilter {
            subject: get("subject"),
            connection: get("connection"),
            protocol: get("protocol"),
            verdict: get("verdict"),
            from: get("from"),
            to: get("to"),
            before: f.get("before").and_then(|b| b.parse().ok()),
        }
    }

    fn time(value: &str) -> Option<u64> {
        let t = humantime::parse_rfc3339_weak(&format!("{value}:00"))
            .or_else(|_| humantime::parse_rfc3339_weak(value))
            .ok()?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros() as u64)
    }

    fn matches(&self, s: &SessionSummary) -> bool {
        let field = |want: &str, have: &str| want.is_empty() || want == have;
        let verdict = match self.verdict.as_str() {
            "" => true,
            "clean" => !s.verdicts.keys().any(|k| k != PolicyEvent::Counted.as_str()),
            v => s.verdicts.get(v).is_some_and(|n| *n > 0),
        };
        field(&self.subject, &s.subject)
            && field(&self.connection, &s.connection)
            && field(&self.protocol, &s.protocol)
            && verdict
            && Self::time(&self.from).is_none_or(|t| s.start_us >= t)
            && Self::time(&self.to).is_none_or(|t| s.start_us < t)
            && self.before.is_none_or(|b| s.start_us < b)
    }

    fn query_before(&self, before: u64) -> String {
        super::query(&[
            ("subject", &self.subject),
            ("connection", &self.connection),
            ("protocol", &self.protocol),
            ("verdict", &self.verdict),
            ("from", &self.from),
            ("to", &self.to),
            ("before", &before.to_string()),
        ])
    }
}

fn time_us(us: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// Whether a session's recording verified in the last run: its segments did, and it
/// had ended (every block of it written) before the run began.
fn chain_status(s: &SessionSummary, verified: Option<&Verification>) -> (&'static str, &'static str) {
    const UNCHECKED: (&str, &str) = ("unknown", "not checked yet");
    let Some(v) = verified else { return UNCHECKED };
    let last = s.end_at.map(|e| e.0).or_else(|| v.segments.last().map(|x| x.0)).unwrap_or(s.start_at.0);
    let states: Vec<Option<bool>> = (s.start_at.0..=last.max(s.start_at.0)).map(|n| v.segment(n)).collect();
    // Blocks are written within `recording.flush_interval`; a second covers it.
    let ended_before = s.duration_ms.is_some_and(|d| s.start_us + d * 1000 + 1_000_000 < v.at_us);
    if states.contains(&Some(false)) {
        ("bad", "does not verify")
    } else if ended_before && states.iter().all(|s| *s == Some(true)) {
        ("ok", "verified")
    } else {
        UNCHECKED
    }
}

/// The sessions list, newest first.
pub fn sessions(
    viewer: &Viewer,
    all: &[SessionSummary],
    filter: &SessionFilter,
    verified: Option<&Verification>,
    fleet: Option<(&str, Option<&str>)>,
) -> Markup {
    let matching: Vec<&SessionSummary> = all.iter().rev().filter(|s| filter.matches(s)).collect();
    let shown = &matching[..matching.len().min(PAGE)];
    let distinct = |f: fn(&SessionSummary) -> &str| {
        let mut v: Vec<&str> = all.iter().map(f).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    layout(
        "Sessions",
        Some(viewer),
        "sessions",
        html! {
            div.heading { h1 { "Sessions" } span.count { (matching.len()) " of " (all.len()) } }
            form.filters method="get" action="/console/sessions" {
                label { "Subject" select name="subject" { option value="" { "any" }
                    @for x in distinct(|s| &s.subject) { option value=(x) selected[x == filter.subject] { (x) } } } }
                label { "Connection" select name="connection" { option value="" { "any" }
                    @for x in distinct(|s| &s.connection) { option value=(x) selected[x == filter.connection] { (x) } } } }
                label { "Protocol" select name="protocol" { option value="" { "any" }
                    @for x in ["postgres", "ssh", "http"] { option value=(x) selected[x == filter.protocol] { (x) } } } }
                label { "Verdict" select name="verdict" { option value="" { "any" }
                    @for (x, name) in [("held", "held for approval"), ("approved", "approved"), ("denied", "denied"), ("expired", "expired"), ("granted", "ran under a grant"), ("clean", "no policy events")] {
                        option value=(x) selected[x == filter.verdict] { (name) } } } }
                label { "From (UTC)" input type="datetime-local" name="from" value=(filter.from); }
                label { "To (UTC)" input type="datetime-local" name="to" value=(filter.to); }
                button.button type="submit" { "Filter" }
                a.link href="/console/sessions" { "Clear" }
            }
            @if let Some((_, Some(notice))) = fleet { p.notice role="status" { (notice) } }
            @if let Some(v) = verified {
                p.meta { "Chain last verified " time datetime=(time_us(v.at_us)) { (time_us(v.at_us)) } " · " a href="/console/verify" { "verify now" } }
            }
            div.scroll {
                table.sessions {
                    thead { tr {
                        th { "Start (UTC)" } th { "Duration" } th { "Subject" } th { "Connection" } th { "Protocol" }
                        th.num { "Statements" } th.num { "Bytes in/out" } th { "Ended" } th { "Policy" } th { "Chain" }
                        @if fleet.is_some() { th { "Replica" } }
                    } }
                    tbody {
                        @for s in shown {
                            @let elsewhere = fleet.is_some_and(|(me, _)| s.replica.as_deref() != Some(me));
                            @let (state, label) = if elsewhere { ("unknown", "verified by its replica") } else { chain_status(s, verified) };
                            tr {
                                td { a href={ "/console/sessions/" (s.id) } { time datetime=(time_us(s.start_us)) { (time_us(s.start_us)) } } }
                                td { @match s.duration_ms { Some(d) => (format!("{:.1} s", d as f64 / 1000.0)), None => span.open { "open" } } }
                                td { (s.subject) }
                                td { (s.connection) }
                                td { span.protocol { (s.protocol) } }
                                td.num { @if let Some(n) = s.statements { (n) } @else { "–" } }
                                td.num { @if let (Some(up), Some(down)) = (s.bytes_to_upstream, s.bytes_to_agent) { (bytes(up)) " / " (bytes(down)) } @else { "–" } }
                                td { (s.end_reason.as_deref().unwrap_or("–")) }
                                td { @for (event, n) in &s.verdicts { @if event != "counted" { span.class data-class=(event) { (event) " " (n) } " " } } }
                                td { span.chain data-state=(state) { (label) } }
                                @if fleet.is_some() { td.replica { (s.replica.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
            @if let Some(last) = shown.last().filter(|_| matching.len() > shown.len()) {
                p { a.button.secondary href={ "/console/sessions?" (filter.query_before(last.start_us)) } { "Older sessions" } }
            }
        },
    )
}

/// A session's replay page.
pub fn replay(viewer: &Viewer, r: &Replay, verified: Option<&Verification>) -> Markup {
    let s = &r.summary;
    let (state, label) = chain_status(s, verified);
    layout(
        &format!("Session {}", s.id),
        Some(viewer),
        "sessions",
        html! {
            @if s.protocol == "ssh" {
                link rel="stylesheet" href={ "/console/static/player.css?v=" (V) };
                script src={ "/console/static/player.js?v=" (V) } defer {}
            }
            div.heading {
                h1 { "Session " code { (s.id) } }
                span.chain data-state=(state) { (label) }
            }
            dl.facts {
                dt { "Who" } dd { (s.subject) }
                dt { "Connection" } dd { (s.connection) " (" (s.protocol) ")" }
                dt { "From" } dd { (s.client) }
                dt { "Started" } dd { time datetime=(time_us(s.start_us)) { (time_us(s.start_us)) } }
                dt { "Duration" } dd { @match s.duration_ms { Some(d) => (format!("{:.1} s", d as f64 / 1000.0)), None => "still open" } }
                dt { "Segments" } dd { (r.segments.0) "–" (r.segments.1) }
            }
            @if !r.ended() {
                p.live-note { span.live #replay-live data-state="connecting" { "live" } " This session is still open; what it records appears below." }
            }
            div #transcript data-live=[(!r.ended()).then(|| format!("/console/sessions/{}/events", s.id))] {
                (transcript(r))
            }
            details.raw {
                summary { "Plain transcript" }
                pre { (r.text) }
            }
        },
    )
}

/// The transcript part of a replay (also what the live stream sends).
pub fn transcript(r: &Replay) -> Markup {
    html! {
        @if let Some(cast) = &r.cast {
            div.player data-cast="cast" {}
            script #cast type="application/json" { (PreEscaped(script_json(cast))) }
        }
        ol.items {
            @for item in &r.items {
                li { (item_markup(item)) }
            }
        }
        @if r.more > 0 { p.notice { (r.more) " more items are in the plain transcript below." } }
    }
}

fn item_markup(item: &Item) -> Markup {
    match item {
        Item::Statement(s) => statement(s),
        Item::Policy { at_ms, verdict } => html! {
            div.policy data-event=(verdict.event.as_str()) {
                span.at { (at(*at_ms)) }
                span.class data-class=(verdict.event.as_str()) { "POLICY " (verdict.event.as_str()) }
                @if let Some(id) = &verdict.approval { " " code { (id) } }
                @if let Some(by) = &verdict.by { " by " b { (by) } }
                @match verdict.event {
                    PolicyEvent::Counted => {
                        " " (verdict.rows.map_or("?".into(), |r| r.to_string())) " rows (max "
                        (verdict.max_rows.map_or("?".into(), |r| r.to_string())) "), "
                        (verdict.outcome.as_deref().unwrap_or("?"))
                    }
                    _ => {
                        @if let Some(why) = &verdict.approver_reason { ": " q.approver-reason { (why) } " · held by" } @else { ":" }
                        " " (verdict.reason) @if !verdict.rule.is_empty() { " (rule " code { (verdict.rule) } ")" }
                    }
                }
                @if !verdict.statement.is_empty() { pre.statement { code { (verdict.statement) } } }
            }
        },
        Item::Exchange(x) => exchange(x),
        Item::Command { at_ms, kind, text } => html! {
            div.command data-kind=(kind) {
                span.at { (at(*at_ms)) } span.tag { (kind) } " "
                @if *kind == "exit" { (text) } @else { code { (text) } }
            }
        },
        Item::End { at_ms, end } => html! {
            div.end {
                span.at { (at(*at_ms)) } "Session ended: " (end.reason) " · " (end.statements)
                @if end.statements == 1 { " statement" } @else { " statements" }
            }
        },
    }
}

fn at(ms: u64) -> String {
    format!("+{:.3}s", ms as f64 / 1000.0)
}

fn statement(s: &Statement) -> Markup {
    html! {
        div.stmt {
            div.stmt-head {
                span.at { (at(s.at_ms)) }
                @for tag in &s.tags { span.tag { (tag) } }
                @if let Some(ms) = s.latency_ms { span.latency { (format!("{ms:.1} ms")) } }
            }
            pre.statement { code { (highlight("postgres", &s.text)) } }
            @if !s.params.is_empty() {
                p.params { "Parameters: "
                    @for (i, p) in s.params.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { "$" (i + 1) "=" } @match p { Some(v) => code { (v) }, None => em { "NULL" } }
                    }
                }
            }
            @for result in &s.results {
                div.scroll {
                    table.result {
                        thead { tr { @for c in &result.columns { th { (c) } } } }
                        tbody {
                            @for row in &result.rows {
                                tr { @for v in row { @match v { Some(v) => td { (v) }, None => td.null { "NULL" } } } }
                            }
                        }
                    }
                }
                @if result.more > 0 { p.meta { "… " (result.more) " more rows" } }
            }
            @if let Some(e) = &s.error { p.error { "ERROR " (e) } }
        }
    }
}

fn exchange(x: &Exchange) -> Markup {
    html! {
        details.exchange open {
            summary {
                span.at { (at(x.at_ms)) }
                span.method { (x.method) } " " span.url { (x.url) }
                @if let Some(status) = x.status { " " span.status data-class=(status / 100) { (status) } }
                @if let Some(ms) = x.time_ms { span.latency { (format!("{ms:.1} ms")) } }
            }
            div.heads {
                div { h3 { "Request" } (header_table(&x.request_headers))
                    @if let Some(b) = &x.request_body { pre.body { (b) } } }
                div { h3 { "Response" } (header_table(&x.response_headers))
                    @if let Some((b, mime)) = &x.response_body { p.meta { (mime) } pre.body { (b) } } }
            }
            @if !x.messages.is_empty() {
                h3 { "WebSocket messages" }
                ol.messages {
                    @for m in &x.messages {
                        li data-sent=(m.sent) {
                            span.at { (at(m.at_ms)) }
                            span.way { @if m.sent { "→ " } @else { "← " } (m.kind) }
                            pre.body { (m.text) }
                        }
                    }
                }
                @if x.messages_left_out > 0 { p.meta { (x.messages_left_out) " more messages: see airlock replay" } }
            }
        }
    }
}

fn header_table(headers: &[(String, String)]) -> Markup {
    html! {
        table.headers { @for (k, v) in headers { tr { th { (k) } td { (v) } } } }
    }
}

/// JSON safe inside a `<script>` element: nothing in it can close the element or
/// start a comment.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The verification page.
pub fn verify(viewer: &Viewer, verified: Option<&Verification>) -> Markup {
    layout(
        "Verify",
        Some(viewer),
        "verify",
        html! {
            div.heading { h1 { "Recording chain" } }
            form method="post" action="/console/verify" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button.button.primary type="submit" { "Run verify" }
            }
            @match verified {
                None => p.notice { "Not verified yet: run it." },
                Some(v) => {
                    @match &v.result {
                        Ok(report) => p.verdict data-state="ok" role="status" {
                            "Verified " (report.segments) " segments (" (report.sealed) " sealed), "
                            (report.blocks) " blocks, " (report.frames) " frames"
                            @if report.retired > 0 { ", " (report.retired) " retired by retention" }
                            " in " (format!("{:.0} ms", v.took.as_secs_f64() * 1000.0)) "."
                        },
                        Err(p) => p.verdict data-state="bad" role="alert" { "Verification failed: " (p) },
                    }
                    p.meta { "Ran " time datetime=(time_us(v.at_us)) { (time_us(v.at_us)) } }
                    div.scroll {
                        table.segments {
                            thead { tr { th { "Segment" } th { "State" } th.num { "Size" } th { "Chain" } } }
                            tbody {
                                @for (n, sealed, size) in &v.segments {
                                    @let state = v.segment(*n);
                                    tr {
                                        td { (n) }
                                        td { @if *sealed { "sealed" } @else { "open" } }
                                        td.num { (bytes(*size)) }
                                        td { span.chain data-state=(match state { Some(true) => "ok", Some(false) => "bad", None => "unknown" }) {
                                            (match state { Some(true) => "verified", Some(false) => "does not verify", None => "not checked" }) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_that_disguise_text_are_shown() {
        let shown = reveal("echo ok \u{2067}; rm -rf / \u{2066}# \u{2069}\u{2069}\r".to_owned());
        assert_eq!(shown, "echo ok ⟨U+2067⟩; rm -rf / ⟨U+2066⟩# ⟨U+2069⟩⟨U+2069⟩⟨U+000D⟩");
        assert_eq!(reveal("plain\ttext\n".to_owned()), "plain\ttext\n");
    }
}
