//! The GraphQL-over-HTTP request: a JSON body (one request object or a batch of
//! them) for POST, URL parameters for GET.
//!
//! The JSON is read with a visitor of our own rather than into a map, because a map
//! keeps one of two equal keys and servers differ in which: `{"query": "{ a }",
//! "query": "mutation { b }"}` is refused here, not read as either.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{GraphqlError, Operation, select};
use crate::urlencoded;

/// The most requests a batch may hold.
pub const MAX_BATCH: usize = 100;

/// The operations a JSON GraphQL request body runs: one for a request object, one
/// per request, in order, for a batch (a JSON array of 1 to [`MAX_BATCH`] objects).
///
/// Each object needs `query` as a string; `operationName` may be a string, null or
/// absent; other keys (`variables`, `extensions`, anything else) are allowed and not
/// read, except that a persisted query (`extensions.persistedQuery` without
/// `query`) is refused with its own error.
pub fn from_json_body(body: &[u8]) -> Result<Vec<Operation>, GraphqlError> {
    let Body { requests, more } =
        serde_json::from_slice(body).map_err(|e: serde_json::Error| GraphqlError::Json(e.to_string()))?;
    if more {
        return Err(GraphqlError::BatchTooLarge);
    }
    if requests.is_empty() {
        return Err(GraphqlError::EmptyBatch);
    }
    requests.into_iter().map(Request::operation).collect()
}

/// The operation a GraphQL GET request runs, from its URL query string (after the
/// `?`): the parameters `query` and `operationName`, form-urlencoded.
///
/// Refused, because servers would not all read them alike: a parameter given twice
/// (names compared after decoding), a bad `%` escape or non-UTF-8 bytes, a literal `;`
/// (some servers split pairs on it) or `#`. No `query` is [`GraphqlError::NoQuery`]
/// ([`GraphqlError::PersistedQuery`] if there are `extensions`), for the caller to
/// judge. The vector holds one operation: GET has no batches.
pub fn from_query_string(query: &str) -> Result<Vec<Operation>, GraphqlError> {
    if let Some(c) = query.chars().find(|&c| c == ';' || c == '#') {
        return Err(GraphqlError::AmbiguousSeparator(c));
    }
    let mut seen = HashSet::new();
    let (mut document, mut operation_name, mut extensions) = (None, None, false);
    for (name, value) in urlencoded::pairs(query) {
        let name = urlencoded::decode_strict(name).ok_or(GraphqlError::BadEncoding)?;
        let value = urlencoded::decode_strict(value).ok_or(GraphqlError::BadEncoding)?;
        match name.as_str() {
            "query" => document = Some(value),
            "operationName" => operation_name = Some(value),
            "extensions" => extensions = true,
            _ => {}
        }
        if !seen.insert(name.clone()) {
            return Err(GraphqlError::DuplicateParameter(name));
        }
    }
    match document {
        Some(document) => Ok(vec![select(&document, operation_name.as_deref())?]),
        None if extensions => Err(GraphqlError::PersistedQuery),
        None => Err(GraphqlError::NoQuery),
    }
}

/// One request object, as read: what it says and what was wrong with it, judged
/// once the whole body is known to be JSON.
#[derive(Debug, Default)]
struct Request {
    query: Option<Value>,
    operation_name: Option<Value>,
    persisted: bool,
    duplicate: Option<String>,
}

impl Request {
    fn operation(self) -> Result<Operation, GraphqlError> {
        if let Some(key) = self.duplicate {
            return Err(GraphqlError::DuplicateKey(key));
        }
        let operation_name = match self.operation_name {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name),
            Some(_) => return Err(GraphqlError::OperationNameNotString),
        };
        match self.query {
            Some(Value::String(document)) => select(&document, operation_name.as_deref()),
            Some(Value::Null) | None if self.persisted => Err(GraphqlError::PersistedQuery),
            Some(Value::Null) | None => Err(GraphqlError::NoQuery),
            Some(_) => Err(GraphqlError::QueryNotString),
        }
    }
}

impl<'de> de::Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Request, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GraphQL request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let mut request = Request::default();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "query" => request.query = Some(map.next_value()?),
                "operationName" => request.operation_name = Some(map.next_value()?),
                "extensions" => {
                    let extensions: Value = map.next_value()?;
                    request.persisted = extensions.get("persistedQuery").is_some();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if !seen.insert(key.clone()) && request.duplicate.is_none() {
                request.duplicate = Some(key);
            }
        }
        Ok(request)
    }
}

/// A request object or a batch. `more` says the batch went on past [`MAX_BATCH`].
struct Body {
    requests: Vec<Request>,
    more: bool,
}

impl<'de> de::Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GraphQL request object or an array of them")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body, A::Error> {
        Ok(Body { requests: vec![RequestVisitor.visit_map(map)?], more: false })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        let mut requests = Vec::new();
        while requests.len() < MAX_BATCH {
            match seq.next_element()? {
                Some(request) => requests.push(request),
                None => return Ok(Body { requests, more: false }),
            }
        }
        // The rest is still read, so that a body which is not JSON after the limit
        // is reported as such.
        let more = seq.next_element::<IgnoredAny>()?.is_some();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body { requests, more })
    }
}
