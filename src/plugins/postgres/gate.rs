//! The policy seen from one Postgres session: what each frontend message asks for.
//!
//! Simple Query strings are decided as they arrive. In the extended protocol a
//! statement is decided at Parse, the decision follows it to the portal at Bind, and
//! it is enforced at Execute, so every execution of a named statement is checked. SQL
//! `PREPARE`/`EXECUTE` share the same names. A FunctionCall is `unknown`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use airlock_postgres::ProtocolError;
use airlock_postgres::message::{self, CloseTarget, tag};
use airlock_postgres::{Frame, sql};

use crate::identity::Identity;
use crate::policy::{self, Decision, MAX_PREPARED_NAMES, Policy, PreparedChange};

/// What the relay does with one frontend message.
#[derive(Debug)]
pub enum Step {
    /// Forward it. `request`: a ReadyForQuery will answer it; `statement`: it carries
    /// SQL (for the session's statement count).
    Forward {
        /// Answered by a ReadyForQuery.
        request: bool,
        /// Carries a statement.
        statement: bool,
    },
    /// It needs a verdict other than allow before it may go upstream.
    Decide(Held),
}

/// A message held for a verdict.
#[derive(Debug)]
pub struct Held {
    /// What the policy said.
    pub decision: Arc<Decision>,
    /// Which message is held.
    pub kind: HeldKind,
}

/// The kind of a held message, which decides how a refusal is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldKind {
    /// A Simple Query: refusing it answers with an error and ReadyForQuery.
    Query,
    /// An Execute: refusing it answers with an error and skips to the agent's Sync.
    Execute,
    /// A FunctionCall: answered like a Simple Query.
    FunctionCall,
}

impl Held {
    /// The held statements' text, for approvers.
    pub fn text(&self) -> String {
        self.decision.statements.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; ")
    }
}

/// One session's view of the policy.
pub struct SessionGate<'a> {
    policy: &'a Policy,
    identity: &'a Identity,
    connection: &'a str,
    /// Prepared statements (protocol Parse and SQL PREPARE) by name.
    prepared: HashMap<String, Arc<Decision>>,
    /// Bound portals by name.
    portals: HashMap<String, Arc<Decision>>,
}

impl<'a> SessionGate<'a> {
    /// A gate for `identity` on `connection`.
    pub fn new(policy: &'a Policy, identity: &'a Identity, connection: &'a str) -> Self {
        SessionGate { policy, identity, connection, prepared: HashMap::new(), portals: HashMap::new() }
    }

    /// Looks at one whole frontend message.
    pub fn inspect(&mut self, frame: &Frame) -> Result<Step, ProtocolError> {
        let body = frame.body();
        let forward = |request, statement| Ok(Step::Forward { request, statement });
        match frame.tag() {
            tag::QUERY => {
                let text = String::from_utf8_lossy(message::parse_query(body)?);
                let decision = self.decide(&text);
                if decision.allowed() {
                    self.ran(&text);
                    return forward(true, true);
                }
                Ok(Step::Decide(Held { decision: Arc::new(decision), kind: HeldKind::Query }))
            }
            tag::PARSE => {
                let (name, text) = message::parse_parse(body)?;
                let decision = Arc::new(self.decide(&String::from_utf8_lossy(text)));
                remember(&mut self.prepared, name_of(name), decision);
                forward(false, true)
            }
            tag::BIND => {
                let (portal, statement) = message::parse_bind(body)?;
                let statement = name_of(statement);
                let decision = match self.prepared.get(statement.as_ref()) {
                    Some(d) => d.clone(),
                    None => Arc::new(self.opaque(&format!("EXECUTE {statement} (prepared before Airlock saw it)"))),
                };
                remember(&mut self.portals, name_of(portal), decision);
                forward(false, false)
            }
            tag::EXECUTE => {
                let portal = name_of(message::parse_execute(body)?);
                let decision = match self.portals.get(portal.as_ref()) {
                    Some(d) => d.clone(),
                    None => Arc::new(self.opaque(&format!("execute portal {portal:?} (not bound through Airlock)"))),
                };
                if decision.allowed() {
                    return forward(false, false);
                }
                Ok(Step::Decide(Held { decision, kind: HeldKind::Execute }))
            }
            tag::CLOSE => {
                let (target, name) = message::parse_close(body)?;
                let name = name_of(name);
                match target {
                    CloseTarget::Statement => self.prepared.remove(name.as_ref()),
                    CloseTarget::Portal => self.portals.remove(name.as_ref()),
                };
                forward(false, false)
            }
            tag::SYNC => {
                // The unnamed portal and every portal die at the end of a transaction;
                // named ones outside a transaction block end at Sync too. Keeping them is
                // harmless: a stale entry is replaced by the next Bind of that name.
                forward(true, false)
            }
            tag::FUNCTION_CALL => {
                let decision = self.opaque("fast-path function call");
                if decision.allowed() {
                    return forward(true, false);
                }
                Ok(Step::Decide(Held { decision: Arc::new(decision), kind: HeldKind::FunctionCall }))
            }
            _ => forward(false, false),
        }
    }

    /// Records what a query string that is going upstream prepares or deallocates.
    pub fn ran(&mut self, query: &str) {
        const WORDS: [&str; 3] = ["prepare", "deallocate", "discard"];
        let lower = query.to_ascii_lowercase();
        if !WORDS.iter().any(|w| lower.contains(w)) {
            return;
        }
        for s in sql::split(query) {
            match policy::prepared_change(&s.tokens) {
                Some(PreparedChange::Prepared(name)) => {
                    let decision = Arc::new(self.decide(s.text));
                    remember(&mut self.prepared, Cow::Owned(name), decision);
                }
                Some(PreparedChange::Deallocated(name)) => {
                    self.prepared.remove(&name);
                }
                Some(PreparedChange::DeallocatedAll) => self.prepared.clear(),
                None => {}
            }
        }
    }

    fn decide(&self, text: &str) -> Decision {
        let prepared = |name: &str| self.prepared.get(name).map(|d| d.classes());
        self.policy.decide_in_session(self.connection, &self.identity.groups, text, &prepared)
    }

    fn opaque(&self, what: &str) -> Decision {
        self.policy.decide_opaque(self.connection, &self.identity.groups, what)
    }
}

fn name_of(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Remembers a name's decision. Past the cap new names are forgotten, which fails
/// closed: executing a forgotten statement is `unknown`.
fn remember(map: &mut HashMap<String, Arc<Decision>>, name: Cow<'_, str>, decision: Arc<Decision>) {
    if let Some(slot) = map.get_mut(name.as_ref()) {
        *slot = decision;
    } else if map.len() < MAX_PREPARED_NAMES || name.is_empty() {
        map.insert(name.into_owned(), decision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use bytes::{BufMut, BytesMut};

    fn frame(tag: u8, parts: &[&[u8]]) -> Frame {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(0);
        for p in parts {
            b.put_slice(p);
        }
        let len = (b.len() - 1) as i32;
        b[1..5].copy_from_slice(&len.to_be_bytes());
        Frame::from_raw(b.freeze())
    }

    fn is_held(step: Step) -> bool {
        matches!(step, Step::Decide(_))
    }

    #[test]
    fn extended_protocol_is_enforced_at_execute() {
        let policy = Policy::new(&[]).unwrap();
        let identity = Identity { subject: "a".into(), groups: vec![], method: AuthMethod::Jwt };
        let mut gate = SessionGate::new(&policy, &identity, "db");
        let mut step = |f: Frame| gate.inspect(&f).unwrap();
        assert!(!is_held(step(frame(b'P', &[b"drop\0", b"DROP TABLE t\0", &[0, 0]]))));
        assert!(!is_held(step(frame(b'P', &[b"\0", b"SELECT 1\0", &[0, 0]]))));
        // Bound and executed: only the dangerous statement is held, at Execute.
        assert!(!is_held(step(frame(b'B', &[b"\0", b"\0", &[0, 0, 0, 0, 0, 0]]))));
        assert!(!is_held(step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
        assert!(!is_held(step(frame(b'B', &[b"p1\0", b"drop\0", &[0, 0, 0, 0, 0, 0]]))));
        let held = step(frame(b'E', &[b"p1\0", &[0, 0, 0, 0]]));
        assert!(matches!(&held, Step::Decide(h) if h.kind == HeldKind::Execute && h.text() == "DROP TABLE t"));
        // Closed statements and portals are forgotten: unknown, so held.
        assert!(!is_held(step(frame(b'C', &[b"Pp1\0"]))));
        assert!(is_held(step(frame(b'E', &[b"p1\0", &[0, 0, 0, 0]]))));
        // SQL PREPARE names are shared with the protocol's.
        assert!(!is_held(step(frame(b'Q', &[b"PREPARE q AS SELECT 1\0"]))));
        assert!(!is_held(step(frame(b'B', &[b"\0", b"q\0", &[0, 0, 0, 0, 0, 0]]))));
        assert!(!is_held(step(frame(b'E', &[b"\0", &[0, 0, 0, 0]]))));
        assert!(!is_held(step(frame(b'Q', &[b"EXECUTE q\0"]))));
        assert!(is_held(step(frame(b'Q', &[b"EXECUTE unknown_name\0"]))));
        assert!(is_held(step(frame(b'F', &[&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]))));
        assert!(step(frame(b'Q', &[b"SELECT 1\0"])).is_forward_request());
    }

    impl Step {
        fn is_forward_request(&self) -> bool {
            matches!(self, Step::Forward { request: true, statement: true })
        }
    }
}
