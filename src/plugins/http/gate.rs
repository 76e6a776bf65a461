//! A request under policy: its head checked, its classes found, its decision made.
//!
//! The method gives the class (`read`, `write`, `destructive`, else `unknown`). On the
//! connection's GraphQL paths the operations the body (or the query string) runs
//! decide instead: a query is `read`, a mutation `write`, and a document Airlock
//! cannot read is `unknown`. A path a server may read otherwise than Airlock does
//! (dot segments, empty names, encoded slashes or dots, `;` parameters) is `unknown`
//! too, so no rule is dodged by spelling.

use airlock_classes::{Class, Classes};
use airlock_http::graphql::{self, Operation};
use hyper::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, Version};

use crate::policy::{Attr, Command, Decision, Policy, StatementDecision};

/// Refuses request heads whose meaning depends on who reads them (the shapes request
/// smuggling uses); hyper's parser has already refused malformed syntax.
pub fn check_head(parts: &Parts) -> Result<(), String> {
    let headers = &parts.headers;
    let count = |name| headers.get_all(name).iter().count();
    if parts.version <= Version::HTTP_11 {
        let te = count(TRANSFER_ENCODING);
        if te > 0 {
            if parts.version < Version::HTTP_11 {
                return Err("Transfer-Encoding in an HTTP/1.0 request".into());
            }
            if headers.contains_key(CONTENT_LENGTH) {
                return Err("both Content-Length and Transfer-Encoding".into());
            }
            let value = headers.get(TRANSFER_ENCODING).map(|v| v.as_bytes()).unwrap_or_default();
            if te > 1 || !value.eq_ignore_ascii_case(b"chunked") {
                return Err("Transfer-Encoding other than exactly `chunked`".into());
            }
        }
        if count(CONTENT_LENGTH) > 1 {
            return Err("more than one Content-Length".into());
        }
        let hosts = count(HOST);
        if hosts > 1 || (hosts == 0 && parts.version == Version::HTTP_11) {
            return Err("an HTTP/1.1 request has exactly one Host header".into());
        }
        if let Some(host) = headers.get(HOST) {
            let host = host.to_str().map_err(|_| "the Host header is not ASCII".to_owned())?;
            let authority: hyper::http::uri::Authority =
                host.parse().map_err(|_| format!("the Host header {host:?} is not a host"))?;
            if authority.as_str().contains('@') {
                return Err("the Host header carries user information".into());
            }
            let port = authority.as_str().strip_prefix(authority.host()).unwrap_or("");
            if !port.is_empty() && authority.port_u16().is_none() {
                return Err(format!("the Host header {host:?} has a port that is not a number"));
            }
            if let Some(target) = parts.uri.authority()
                && parts.method != Method::CONNECT
                && !target.as_str().eq_ignore_ascii_case(authority.as_str())
            {
                return Err("the Host header differs from the request target's host".into());
            }
        }
    }
    if parts.uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("the request target carries user information".into());
    }
    Ok(())
}

/// Whether every server reads `path` as Airlock does: no dot segments, no empty
/// names, no encoded slash, backslash, dot or other unreserved character, no `;`.
pub fn canonical_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') || path.contains(';') {
        return false;
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
            else {
                return false;
            };
            let decoded = (h * 16 + l) as u8;
            // Unreserved characters and separators servers may decode before routing;
            // spaces, controls and non-ASCII bytes some trim or normalise away.
            if decoded.is_ascii_alphanumeric() || b"-._~/\\?#".contains(&decoded) || decoded <= b' ' || decoded >= 0x7f
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let names: Vec<&str> = path[1..].split('/').collect();
    let last = names.len() - 1;
    names.iter().enumerate().all(|(i, n)| !matches!(*n, "." | "..") && (!n.is_empty() || i == last))
}

/// What a request asks, as policy sees it.
#[derive(Debug)]
pub struct Asked<'a> {
    pub method: &'a str,
    /// The path under the connection (what rules match).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// For a GraphQL endpoint: the operations it runs, or why Airlock cannot tell.
    pub graphql: Option<Result<Vec<Operation>, String>>,
    /// The body's SHA-256, when Airlock has read it whole.
    pub body_sha256: Option<[u8; 32]>,
    /// Methods the request asks a server to use instead of its own
    /// (`X-HTTP-Method-Override`, `_method`): each is judged as if it were the method.
    pub overrides: Vec<String>,
    /// The body's content type, which says how the server reads it.
    pub content_type: Option<&'a str>,
    /// Whether masking rules match response keys here, which GraphQL aliases rename.
    pub keys_masked: bool,
}

impl Asked<'_> {
    /// The request line as approvers and the record show it.
    pub fn text(&self) -> String {
        match self.query {
            Some(q) if !q.is_empty() => format!("{} {}?{q}", self.method, self.path),
            _ => format!("{} {}", self.method, self.path),
        }
    }

    /// What an approval of this request covers: the method (and any override of
    /// it), path, query, content type and body.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let parts = [self.method, self.path, self.query.unwrap_or(""), self.content_type.unwrap_or("")];
        for part in parts.into_iter().chain(self.overrides.iter().map(String::as_str)) {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(self.body_sha256.unwrap_or_default());
        hex::encode(&h.finalize()[..16])
    }

    /// Its classes, before GraphQL operations are looked at.
    fn base_classes(&self) -> Classes {
        let mut classes = Classes::of(&[airlock_http::classify::method_class(self.method)]);
        for method in &self.overrides {
            // A server reads an override in any case; judged by its upper-case form.
            classes |= Classes::of(&[airlock_http::classify::method_class(&method.to_ascii_uppercase())]);
        }
        if !canonical_path(self.path) {
            classes |= Classes::of(&[Class::Unknown]);
        }
        classes
    }
}

/// Decides a request: one command per GraphQL operation (the strictest wins), or one
/// for the request.
pub fn decide(policy: Option<&Policy>, connection: &str, groups: &[String], asked: &Asked<'_>) -> Decision {
    let text = asked.text();
    let fingerprint = asked.fingerprint();
    let upper: Vec<String> = asked.overrides.iter().map(|m| m.to_ascii_uppercase()).collect();
    let mut requests = vec![Attr::Request { method: asked.method, path: asked.path }];
    requests.extend(upper.iter().map(|method| Attr::Request { method, path: asked.path }));
    let one = |text: &str, classes: Classes, attrs: &[Attr<'_>]| {
        let lower = text.to_lowercase();
        let command = Command {
            connection,
            groups,
            text,
            classes,
            normalized: &|| lower.clone(),
            fingerprint: &|| fingerprint.clone(),
            attrs,
        };
        policy.map_or_else(|| StatementDecision::unenforced(&command), |p| p.decide(&command))
    };
    let base = asked.base_classes();
    let decisions = match &asked.graphql {
        None => vec![one(&text, base, &requests)],
        Some(Err(why)) => {
            let text = format!("{text} (GraphQL Airlock cannot read: {why})");
            vec![one(&text, base | Classes::of(&[Class::Unknown]), &requests)]
        }
        Some(Ok(operations)) => operations
            .iter()
            .map(|op| {
                let kind = op.kind.as_str();
                let name = op.name.as_deref();
                let mut text = format!("{text} ({kind} {}: {})", name.unwrap_or("(anonymous)"), op.fields.join(", "));
                // The method's own class stays only if it says more than `write`.
                let method = base.without(Class::Read).without(Class::Write);
                let mut classes = method | Classes::of(&[op.kind.class()]);
                if op.aliased && asked.keys_masked {
                    // Aliases rename the response keys that masking rules match.
                    classes |= Classes::of(&[Class::Unknown]);
                    text.push_str(" [aliases rename masked keys]");
                }
                let mut attrs = requests.clone();
                attrs.push(Attr::Graphql { kind, name, fields: &op.fields });
                one(&text, classes, &attrs)
            })
            .collect(),
    };
    Decision::of(decisions)
}

/// The GraphQL operations of a request to a GraphQL path: from the query string of a
/// GET, from a POST's JSON body (or bare document, `application/graphql`). Some
/// servers read a POST's query string before its body, so a POST that carries a
/// query in its URL too is read both ways and runs what both say.
pub fn graphql_of(
    method: &Method,
    query: Option<&str>,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Vec<Operation>, String> {
    let bare = content_type.is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/graphql"));
    let in_url = || graphql::from_query_string(query.unwrap_or("")).map_err(|e| e.to_string());
    let mut ops = match (method, body) {
        (&Method::GET, _) => return in_url(),
        (&Method::POST, Some(body)) if bare => {
            let document = std::str::from_utf8(body).map_err(|_| "the document is not UTF-8".to_owned())?;
            vec![graphql::select(document, None).map_err(|e| e.to_string())?]
        }
        (&Method::POST, Some(body)) => graphql::from_json_body(body).map_err(|e| e.to_string())?,
        _ => return Err(format!("a {method} request to a GraphQL endpoint")),
    };
    let url_names_query = query.is_some_and(|q| {
        airlock_http::urlencoded::pairs(q).any(|(n, _)| airlock_http::urlencoded::decode_lossy(n) == "query")
    });
    if url_names_query {
        ops.extend(in_url()?);
    }
    Ok(ops)
}

/// Headers and parameters by which common server frameworks let a request name
/// another method than its own (Express `method-override`, Rails and Laravel
/// `_method`, Google's `X-HTTP-Method-Override`).
const OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// The methods a request asks to be read as, from override headers, `_method` in
/// its query, or `_method` in a form body Airlock has read.
pub fn method_overrides(headers: &HeaderMap, query: Option<&str>, form: Option<&[u8]>) -> Vec<String> {
    let mut methods: Vec<String> = OVERRIDE_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .collect();
    let params = |text: &str| -> Vec<String> {
        airlock_http::urlencoded::pairs(text)
            .filter(|(n, _)| airlock_http::urlencoded::decode_lossy(n).eq_ignore_ascii_case("_method"))
            .map(|(_, v)| airlock_http::urlencoded::decode_lossy(v).trim().to_owned())
            .collect()
    };
    methods.extend(params(query.unwrap_or("")));
    if let Some(form) = form {
        methods.extend(params(&String::from_utf8_lossy(form)));
        // A multipart form names its fields in quotes; any `_method` field is unknown.
        if memchr::memmem::find(&form.to_ascii_lowercase(), b"name=\"_method\"").is_some() {
            methods.push("(multipart _method)".into());
        }
    }
    methods
}

/// Whether a request's body is a form a framework may read `_method` from.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let ct = ct.trim().to_ascii_lowercase();
        ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("multipart/form-data")
    })
}

/// Whether `path` is one of the connection's GraphQL endpoints (ignoring case and a
/// trailing slash, as servers commonly route them).
pub fn is_graphql(globs: &[String], path: &str) -> bool {
    globs.iter().any(|g| crate::policy::request_path_matches(g, path))
}

/// Headers that are the agent's own business with Airlock, never the upstream's.
pub fn strip_agent_headers(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Hop-by-hop headers, and those the Connection header names.
    let named: Vec<String> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for name in named {
        if keep_upgrade && name == "upgrade" {
            continue;
        }
        headers.remove(name.as_str());
    }
    for name in ["keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "host"] {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(hyper::header::UPGRADE);
        headers.remove(hyper::header::CONNECTION);
    }
    // The agent's credentials, anything addressed to Airlock, and claims about where
    // the request came from that only Airlock may make.
    headers.remove(hyper::header::AUTHORIZATION);
    headers.remove(hyper::header::PROXY_AUTHORIZATION);
    for name in ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"] {
        headers.remove(name);
    }
    let own: Vec<_> = headers.keys().filter(|k| k.as_str().starts_with("airlock-")).cloned().collect();
    for name in own {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_a_server_may_read_differently_are_not_canonical() {
        for ok in ["/", "/repos/a/b", "/repos/a/b/", "/files/a%22b.txt", "/x%25y"] {
            assert!(canonical_path(ok), "{ok}");
        }
        for odd in [
            "/repos/../admin",
            "/repos/./a",
            "//repos",
            "/repos//a",
            "/repos/%2e%2e/admin",
            "/repos%2fa",
            "/a%5cb",
            "/%61dmin",
            "/admin;jsessionid=1",
            "/a\\b",
            "/bad%zz",
            "/trunc%2",
            "/admin%20/x",
            "/admin%00/x",
            "/admin%3f/x",
            "/admin%ef%bc%8f",
            "relative",
        ] {
            assert!(!canonical_path(odd), "{odd}");
        }
    }

    fn asked<'a>(method: &'a str, path: &'a str) -> Asked<'a> {
        Asked {
            method,
            path,
            query: None,
            graphql: None,
            body_sha256: None,
            overrides: Vec::new(),
            content_type: None,
            keys_masked: false,
        }
    }

    #[test]
    fn methods_and_odd_paths_give_classes_and_the_default_holds_deletes() {
        let policy = Policy::new(&[]).unwrap();
        let groups = vec!["agents".to_owned()];
        let verdict = |a: &Asked<'_>| decide(Some(&policy), "api", &groups, a).verdict().as_str();
        assert_eq!(verdict(&asked("GET", "/repos/a")), "allow");
        assert_eq!(verdict(&asked("POST", "/repos/a")), "allow");
        assert_eq!(verdict(&asked("DELETE", "/repos/a")), "approve");
        assert_eq!(verdict(&asked("GET", "/repos/../admin")), "approve");
        assert_eq!(verdict(&asked("PROPFIND", "/")), "approve");
    }

    #[test]
    fn graphql_operations_are_decided_one_by_one() {
        let config = crate::config::Config::parse(
            "[auth]\ndev_tokens = true\n[[rules]]\ngraphql = \"mutation deleteRepository\"\naction = \"deny\"\n",
            std::path::PathBuf::new(),
        )
        .unwrap();
        let policy = Policy::new(&config.rules).unwrap();
        let groups = vec!["agents".to_owned()];
        let with = |ops| Asked { graphql: Some(ops), ..asked("POST", "/graphql") };
        let read = with(graphql_of(&Method::POST, None, None, Some(br#"{"query":"{ viewer { login } }"}"#)));
        assert_eq!(decide(Some(&policy), "gh", &groups, &read).verdict().as_str(), "allow");
        let body = br#"{"query":"mutation deleteRepository { deleteRepository(input: {}) { x } }"}"#;
        let delete = with(graphql_of(&Method::POST, None, None, Some(body)));
        assert_eq!(decide(Some(&policy), "gh", &groups, &delete).verdict().as_str(), "deny");
        // Named otherwise, or not at all, it runs the same field.
        let body = br#"{"query":"mutation cleanup { gone: deleteRepository(input: {}) { x } }"}"#;
        let renamed = with(graphql_of(&Method::POST, None, None, Some(body)));
        assert_eq!(decide(Some(&policy), "gh", &groups, &renamed).verdict().as_str(), "deny");
        assert!(is_graphql(&["/graphql".into()], "/GraphQL/"));
        let aliased = Asked {
            keys_masked: true,
            ..with(graphql_of(&Method::POST, None, None, Some(br#"{"query":"{ user { p: password } }"}"#)))
        };
        assert_eq!(decide(Some(&policy), "gh", &groups, &aliased).verdict().as_str(), "approve");
        let unreadable = with(graphql_of(&Method::POST, None, None, Some(b"query { x }")));
        assert_eq!(decide(Some(&policy), "gh", &groups, &unreadable).verdict().as_str(), "approve");
        // A mutation in the URL of a POST whose body holds a query is still seen.
        let both = with(graphql_of(
            &Method::POST,
            Some("query=mutation%20deleteRepository%20%7B%20x%20%7D"),
            None,
            Some(br#"{"query":"{ viewer { login } }"}"#),
        ));
        assert_eq!(decide(Some(&policy), "gh", &groups, &both).verdict().as_str(), "deny");
        let bare = with(graphql_of(
            &Method::POST,
            None,
            Some("application/graphql"),
            Some(b"mutation deleteRepository { x }"),
        ));
        assert_eq!(decide(Some(&policy), "gh", &groups, &bare).verdict().as_str(), "deny");
    }

    #[test]
    fn method_overrides_are_judged_as_the_method_they_name() {
        let policy = Policy::new(&[]).unwrap();
        let groups = vec!["agents".to_owned()];
        let mut headers = HeaderMap::new();
        headers.insert("x-http-method-override", "delete".parse().unwrap());
        let overrides = method_overrides(&headers, Some("_method=PUT"), Some(b"a=1&_method=DELETE"));
        assert_eq!(overrides, ["delete", "PUT", "DELETE"]);
        let post = Asked { overrides, ..asked("POST", "/repos/a") };
        assert_eq!(decide(Some(&policy), "api", &groups, &post).verdict().as_str(), "approve");
        let multipart = method_overrides(
            &HeaderMap::new(),
            None,
            Some(b"--x\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE"),
        );
        assert_eq!(multipart.len(), 1);
    }

    #[test]
    fn fingerprints_cover_method_path_query_and_body() {
        let a = asked("DELETE", "/x");
        let b = Asked { body_sha256: Some([1; 32]), ..asked("DELETE", "/x") };
        assert_eq!(b.overrides.len(), 0);
        let c = Asked { query: Some("force=1"), ..asked("DELETE", "/x") };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        let d = Asked { overrides: vec!["DELETE".into()], ..asked("DELETE", "/x") };
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_eq!(a.fingerprint(), asked("DELETE", "/x").fingerprint());
    }
}
