//! Which GraphQL operation a request runs, so that policy can judge a mutation sent
//! to `/graphql` as a write although it arrives as a POST like every query does.
//!
//! [`from_json_body`] and [`from_query_string`] read the GraphQL-over-HTTP request
//! (a JSON body, or `query=` and `operationName=` URL parameters); [`select`] reads
//! the document with a lexer (`lex.rs`) and parser (`parse.rs`) for the executable
//! grammar of the October 2021 specification and picks the operation the server
//! executes, by the spec's `GetOperation` and the validation rules that decide it
//! (operation name uniqueness, lone anonymous operation).
//!
//! Everything is refused that a server might read differently: a document that is not
//! exactly the grammar, a JSON body with a key given twice, a URL parameter given
//! twice, a persisted query Airlock cannot see. The caller decides what an error
//! means (refuse, or hold the request as [`airlock_classes::Class::Unknown`]).
//!
//! Not handled here: a server that also reads `query` from the URL of a POST (some
//! do, and prefer it to the body), and `application/graphql` bodies, which are a bare
//! document for [`select`]. The gateway must check both places it routes to a server.

mod lex;
mod parse;
mod request;

use std::collections::HashSet;
use std::fmt;

use airlock_classes::Class;
use thiserror::Error;

pub use request::{MAX_BATCH, from_json_body, from_query_string};

/// The longest document read, in bytes.
pub const MAX_DOCUMENT: usize = 1 << 20;

/// The deepest nesting of `{`, `(`, `[` read.
pub const MAX_DEPTH: usize = 256;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// A read-only fetch.
    Query,
    /// A write followed by a fetch.
    Mutation,
    /// A long-lived request for events.
    Subscription,
}

impl OperationKind {
    /// The keyword: `query`, `mutation` or `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        }
    }

    /// The class policy judges it by: queries and subscriptions read, mutations write.
    pub fn class(self) -> Class {
        match self {
            OperationKind::Query | OperationKind::Subscription => Class::Read,
            OperationKind::Mutation => Class::Write,
        }
    }
}

/// The operation a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Query, mutation or subscription.
    pub kind: OperationKind,
    /// Its name; `None` for an anonymous operation. The client chooses it freely.
    pub name: Option<String>,
    /// The fields its top-level selection set runs (`deleteRepository`), by field
    /// name, never alias, fragment spreads followed: what the operation does.
    pub fields: Vec<String>,
    /// Whether the document renames a field anywhere (`e: email`), which changes the
    /// keys of the response.
    pub aliased: bool,
}

/// A line and column (both from 1; the column counts characters) in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, counted by `\n`, `\r\n` and lone `\r` as the spec's line terminators.
    pub line: usize,
    /// Character within the line.
    pub column: usize,
}

impl Pos {
    /// The position of byte offset `at` in `src`.
    fn of(src: &str, at: usize) -> Pos {
        let at = (0..=at.min(src.len())).rev().find(|&i| src.is_char_boundary(i)).unwrap_or(0);
        let before = src.get(..at).unwrap_or_default();
        let mut line = 1;
        let mut line_start = 0;
        let bytes = before.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let ends_line = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if ends_line {
                line += 1;
                line_start = i + 1;
            }
        }
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why Airlock cannot tell which operation a request runs. All are the client's doing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphqlError {
    /// A fragment spread names no fragment of the document.
    #[error("GraphQL fragment {0:?} is spread but not defined")]
    UnknownFragment(String),
    /// The document is longer than [`MAX_DOCUMENT`].
    #[error("GraphQL document of {0} bytes is longer than the limit of {MAX_DOCUMENT}")]
    TooLong(usize),
    /// Brackets nest deeper than [`MAX_DEPTH`].
    #[error("GraphQL document nests deeper than {MAX_DEPTH} levels at {0}")]
    TooDeep(Pos),
    /// The document is not in the GraphQL grammar.
    #[error("GraphQL syntax error at {at}: {what}")]
    Syntax {
        /// Where.
        at: Pos,
        /// What was wrong.
        what: &'static str,
    },
    /// The document defines types or a schema, which no server executes.
    #[error("GraphQL document defines a type or schema at {0}; only operations and fragments can be sent")]
    TypeSystem(Pos),
    /// The document has fragments but no operation.
    #[error("GraphQL document has no operation to run")]
    NoOperation,
    /// Several operations and no `operationName`.
    #[error("GraphQL document has several operations; operationName must say which one runs")]
    OperationNameRequired,
    /// `operationName` names no operation of the document.
    #[error("GraphQL document has no operation named {0:?}")]
    UnknownOperation(String),
    /// Two operations share a name.
    #[error("GraphQL document has two operations named {0:?}")]
    DuplicateOperation(String),
    /// An anonymous operation is not the document's only one.
    #[error("GraphQL document has an anonymous operation beside other operations")]
    AnonymousNotAlone,
    /// The body is not JSON, or not a request object or a batch of them.
    #[error("GraphQL request body is not a JSON request object or batch: {0}")]
    Json(String),
    /// A key appears twice in a request object; servers differ in which they use.
    #[error("GraphQL request has the key {0:?} twice")]
    DuplicateKey(String),
    /// A batch with no requests.
    #[error("GraphQL batch is empty")]
    EmptyBatch,
    /// A batch of more than [`MAX_BATCH`] requests.
    #[error("GraphQL batch has more than {MAX_BATCH} requests")]
    BatchTooLarge,
    /// `query` is there but is not a string.
    #[error("GraphQL request's query is not a string")]
    QueryNotString,
    /// `operationName` is neither a string nor null.
    #[error("GraphQL request's operationName is neither a string nor null")]
    OperationNameNotString,
    /// No `query` at all.
    #[error("GraphQL request has no query")]
    NoQuery,
    /// A persisted query: the server runs a document stored under a hash, which
    /// Airlock cannot see.
    #[error("GraphQL request is a persisted query without its document; send the query text")]
    PersistedQuery,
    /// Bad URL encoding in the query string: a `%` not followed by two hex digits,
    /// or bytes that are not UTF-8.
    #[error("GraphQL query string is not valid URL encoding or not UTF-8")]
    BadEncoding,
    /// A `;` or `#` in the query string, which servers split or cut differently.
    #[error("GraphQL query string contains {0:?}; encode it as {encoded}", encoded = percent_encoded(*.0))]
    AmbiguousSeparator(char),
    /// A URL parameter is given twice.
    #[error("GraphQL query string has the parameter {0:?} twice")]
    DuplicateParameter(String),
}

/// `c` as `%HH`, for error messages.
fn percent_encoded(c: char) -> String {
    let mut buf = [0; 4];
    c.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The operation a server executes for `document` with this `operationName`.
///
/// With a name, it is the one operation of that name; without, the document must hold
/// exactly one operation. The document must be an executable document in the
/// grammar, no longer than [`MAX_DOCUMENT`] and no deeper than [`MAX_DEPTH`].
pub fn select(document: &str, operation_name: Option<&str>) -> Result<Operation, GraphqlError> {
    if document.len() > MAX_DOCUMENT {
        return Err(GraphqlError::TooLong(document.len()));
    }
    let parsed = parse::document(document)?;
    let fragments: std::collections::HashMap<&str, &parse::Top<'_>> = parsed
        .definitions
        .iter()
        .filter_map(|d| match d {
            parse::Definition::Fragment { name, top } => Some((*name, top)),
            parse::Definition::Operation { .. } => None,
        })
        .collect();
    let operations: Vec<(OperationKind, Option<&str>, &parse::Top<'_>)> = parsed
        .definitions
        .iter()
        .filter_map(|d| match d {
            parse::Definition::Operation { kind, name, top } => Some((*kind, *name, top)),
            parse::Definition::Fragment { .. } => None,
        })
        .collect();
    if operations.len() > 1 && operations.iter().any(|(_, name, _)| name.is_none()) {
        return Err(GraphqlError::AnonymousNotAlone);
    }
    let mut names = HashSet::new();
    for name in operations.iter().filter_map(|(_, name, _)| *name) {
        if !names.insert(name) {
            return Err(GraphqlError::DuplicateOperation(name.to_string()));
        }
    }
    let (kind, name, top) = match (operation_name, operations.as_slice()) {
        (None, []) => return Err(GraphqlError::NoOperation),
        (None, [only]) => *only,
        (None, _) => return Err(GraphqlError::OperationNameRequired),
        (Some(wanted), _) => *operations
            .iter()
            .find(|(_, name, _)| *name == Some(wanted))
            .ok_or_else(|| GraphqlError::UnknownOperation(wanted.to_string()))?,
    };
    // The fields it runs, through top-level fragment spreads (each followed once).
    let mut fields: Vec<String> = Vec::new();
    let mut pending: Vec<&parse::Top<'_>> = vec![top];
    let mut followed = HashSet::new();
    while let Some(top) = pending.pop() {
        fields.extend(top.fields.iter().map(|f| f.to_string()));
        for spread in &top.spreads {
            let fragment = fragments.get(spread).ok_or_else(|| GraphqlError::UnknownFragment(spread.to_string()))?;
            if followed.insert(*spread) {
                pending.push(fragment);
            }
        }
    }
    Ok(Operation { kind, name: name.map(str::to_string), fields, aliased: parsed.aliased })
}

#[cfg(test)]
mod tests;
