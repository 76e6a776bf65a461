//! What Airlock knows about HTTP, with no I/O: the class of a request by its method
//! ([`classify`]), which GraphQL operation a request runs ([`graphql`]: the request
//! body or URL parameters, then a lexer and parser for executable documents), the
//! masking of JSON responses that changes nothing but the masked values ([`json`]:
//! a strict streaming scanner, path and key-pattern rules), the recorded event
//! format for both directions of an exchange ([`record`]), and the transcript,
//! JSON events and HAR document `airlock replay` makes of a session
//! ([`transcript`], with reason phrases from [`status`]).
//!
//! A request flows through the gateway as: head checks, then [`classify`] and
//! [`graphql`] to judge it, then [`record`] events for what passed; a response's
//! JSON body goes through [`json`] before the agent sees it. The gateway's head
//! checks are tested against the request corpora in `fixtures/http/`, which
//! [`corpus`] reads.

pub mod classify;
pub mod corpus;
pub mod graphql;
pub mod json;
pub mod record;
pub mod status;
pub mod transcript;
pub mod urlencoded;
