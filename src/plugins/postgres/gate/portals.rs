//! The gate's bookkeeping, as opposed to its decisions: which statement each portal
//! was bound from and with what result formats and taint, which descriptions masking
//! has, when each statement name was last parsed, and what the server has confirmed
//! of the session's prepared statements (see
//! [`Statements`](crate::plugins::postgres::statements::Statements)).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use airlock_postgres::ProtocolError;
use airlock_postgres::message::{self, CloseTarget, tag};
use airlock_postgres::sql;

use super::{HeldKind, SessionGate, Step};
use crate::plugins::postgres::judge::{self, MAX_PREPARED_NAMES, PreparedChange};
use crate::plugins::postgres::mask::{Expect, Taint};
use crate::plugins::postgres::statements::Effect;
use crate::policy::Decision;

/// A bound portal: its statement's decision, and for result masking the statement
/// and Bind's result formats.
#[derive(Debug, Clone)]
pub(super) struct Portal {
    pub(super) decision: Arc<Decision>,
    pub(super) statement: String,
    pub(super) formats: Vec<i16>,
    /// `parses` when it was bound.
    bound_at: u64,
    pub(super) taint: Taint,
    /// A Describe of it went upstream: its rows are planned by that description.
    pub(super) described: bool,
}

impl SessionGate<'_> {
    /// Notes that statement `name` was (maybe) given `text` by a Parse or a PREPARE;
    /// returns the text's taint.
    pub(super) fn parsed(&mut self, name: &str, text: &str) -> Taint {
        let taint = self.taint(text);
        self.parses += 1;
        if self.last_parse.len() >= MAX_PREPARED_NAMES && !self.last_parse.contains_key(name) {
            self.last_parse.clear();
            self.forgotten_before = self.parses;
        }
        // A named statement's old meaning may survive a failed Parse; the unnamed one
        // is always replaced.
        let kept = match self.last_parse.get(name) {
            Some((_, old)) if !name.is_empty() => taint.max(*old),
            _ => taint,
        };
        self.last_parse.insert(name.to_owned(), (self.parses, kept));
        taint
    }

    /// Whether `portal`'s statement still has the description Airlock saw for it.
    pub(super) fn fresh(&self, portal: &Portal) -> bool {
        match self.last_parse.get(&portal.statement) {
            Some(&(at, _)) => at <= portal.bound_at,
            None => portal.bound_at >= self.forgotten_before,
        }
    }

    /// Notes a Bind: the portal it names runs its statement's decision (or an
    /// `unknown` one, for a statement Airlock did not see prepared), with the Bind's
    /// result formats and the statement's taint.
    pub(super) fn bind(&mut self, body: &[u8]) -> Result<(), ProtocolError> {
        let (portal, statement) = message::parse_bind(body)?;
        let statement = name_of(statement);
        let decision = match self.statements.lookup(statement.as_ref()) {
            Some(d) => d,
            None => Arc::new(self.opaque(&format!("EXECUTE {statement} (prepared before Airlock saw it)"))),
        };
        let (formats, taint) = if self.masking.is_some() {
            let taint = match self.last_parse.get(statement.as_ref()) {
                Some((_, taint)) => *taint,
                // Prepared with SQL PREPARE, or forgotten: read it again.
                None => {
                    let texts: Vec<&str> = decision.statements.iter().map(|s| s.text.as_str()).collect();
                    self.taint(&texts.join(";\n"))
                }
            };
            (airlock_postgres::describe::bind(body)?.result_formats, taint)
        } else {
            (Vec::new(), Taint::Clean)
        };
        let portal_state = Portal {
            decision,
            statement: statement.into_owned(),
            formats,
            bound_at: self.parses,
            taint,
            described: false,
        };
        remember(&mut self.portals, name_of(portal), portal_state);
        Ok(())
    }

    /// Notes a Describe: which statements masking will know the columns of, and
    /// what the answer describes.
    pub(super) fn describe(&mut self, body: &[u8]) -> Result<Step, ProtocolError> {
        let (target, name) = message::parse_describe(body)?;
        if self.masking.is_some() {
            let statement = match target {
                CloseTarget::Statement => Some(name_of(name).into_owned()),
                CloseTarget::Portal => self.portals.get_mut(name_of(name).as_ref()).map(|p| {
                    p.described = true;
                    p.statement.clone()
                }),
            };
            let fresh = match target {
                CloseTarget::Statement => true,
                CloseTarget::Portal => self.portals.get(name_of(name).as_ref()).is_some_and(|p| self.fresh(p)),
            };
            // A portal's description is kept for its statement when that is
            // named (masking does the same).
            let keep = |s: &String| fresh && (target == CloseTarget::Statement || !s.is_empty());
            if let Some(statement) = statement.filter(keep)
                && !self.described.contains(&statement)
                && self.described.len() < MAX_PREPARED_NAMES
            {
                self.described.insert(statement);
            }
        }
        let expect = self.announce(|| match target {
            CloseTarget::Statement => Expect::DescribeStatement(name_of(name).into_owned()),
            // A portal Airlock did not see bound may show anything.
            CloseTarget::Portal => match self.portals.get(name_of(name).as_ref()) {
                Some(p) => {
                    Expect::DescribePortal { statement: self.fresh(p).then(|| p.statement.clone()), taint: p.taint }
                }
                None => Expect::DescribePortal { statement: None, taint: Taint::Column },
            },
        });
        Ok(Step::Forward { statement: false, expect })
    }

    /// `ROLLBACK TO SAVEPOINT` revives the portals that existed at the savepoint, also
    /// one a later Bind failed to replace (the server refuses a Bind to a name in use,
    /// or one with bad parameters, and keeps the old portal): from then on Airlock
    /// cannot tell which portal a name runs, so it forgets them all (executing one is
    /// `unknown`).
    pub(super) fn forget_portals_on_rollback_to(&mut self, decision: &Decision) {
        if !decision.classes().contains(sql::Class::Transaction) {
            return;
        }
        let named = |w: &[u8]| s_contains(decision, w);
        if !named(b"rollback") && !named(b"abort") {
            return;
        }
        let rolls_back_to = decision.statements.iter().any(|s| {
            let t = sql::lexer::tokens(&s.text);
            t.first().is_some_and(|w| w.is("rollback") || w.is("abort")) && t.iter().any(|w| w.is("to"))
        });
        if rolls_back_to {
            self.portals.clear();
        }
    }

    /// Records a query string that is going upstream, with what each of its statements
    /// will prepare or deallocate once the server confirms it ran.
    pub fn ran(&mut self, query: &str) {
        const WORDS: [&[u8]; 3] = [b"prepare", b"deallocate", b"discard"];
        let bytes = query.as_bytes();
        if !WORDS.iter().any(|w| bytes.windows(w.len()).any(|win| win.eq_ignore_ascii_case(w))) {
            return self.statements.query(Vec::new());
        }
        let statements = sql::split(query);
        // Replies pair with statements by count; when the server's setting could cut
        // the string differently, no effect is trusted (names stay as they were).
        if sql::lexer::depends_on_dialect(query)
            && sql::split_with(query, sql::lexer::Dialect::BACKSLASH_QUOTES).len() != statements.len()
        {
            return self.statements.query(Vec::new());
        }
        let effects = statements
            .iter()
            .map(|s| match judge::prepared_change(&s.tokens)? {
                PreparedChange::Prepared(name) => {
                    self.parsed(&name, s.text);
                    Some(Effect::Prepared(name, self.decide(s.text, false)))
                }
                PreparedChange::Deallocated(name) => Some(Effect::Deallocated(name)),
                PreparedChange::DeallocatedAll => Some(Effect::DeallocatedAll),
            })
            .collect();
        self.statements.query(effects);
    }

    /// A held Execute or FunctionCall was approved and goes upstream.
    pub fn released(&mut self, kind: HeldKind) {
        match kind {
            HeldKind::Execute => self.statements.execute(),
            HeldKind::FunctionCall => self.statements.ready(),
            // `ran` records an approved query with its effects.
            HeldKind::Query => {}
        }
    }

    /// Airlock sent a message of its own upstream (the rows guard's): a Query, Sync or
    /// Execute, whose replies are then paired with it. Such a Query never prepares or
    /// deallocates (it is transaction control, or a bulk change).
    pub fn sent_own(&mut self, tag: u8) {
        match tag {
            // Airlock's own describe: the unnamed statement runs nothing of the agent's.
            tag::PARSE => self.statements.parse(
                "",
                Arc::new(Decision::refused("(Airlock's own statement)", "the unnamed statement is Airlock's")),
            ),
            tag::QUERY => self.statements.query(Vec::new()),
            tag::SYNC => self.statements.ready(),
            tag::EXECUTE => self.statements.execute(),
            _ => {}
        }
    }

    /// A held message was refused: Airlock sent a Sync upstream in its place.
    pub fn refused(&mut self) {
        self.statements.ready();
    }

    /// Replies from the server, by tag, in order (see
    /// [`Statements`](crate::plugins::postgres::statements::Statements)).
    pub fn replies(&mut self, tags: &[u8]) {
        tags.iter().for_each(|t| self.statements.reply(*t));
    }
}

/// Whether any of a decision's statements holds `word` (ASCII, any case).
fn s_contains(decision: &Decision, word: &[u8]) -> bool {
    decision.statements.iter().any(|s| s.text.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word)))
}

/// A statement or portal name as the server keys it: its first 63 bytes
/// (NAMEDATALEN - 1), so `a...a` and `a...azzz` past that length are one name. The
/// cut may split a character, and the server compares bytes: names that are not
/// UTF-8 are kept as a NUL (which no name holds) and their bytes in hex, so two names
/// are one key only if the server takes them for one.
pub(super) fn name_of(bytes: &[u8]) -> Cow<'_, str> {
    const MAX_NAME: usize = 63;
    let bytes = bytes.get(..MAX_NAME).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(name) => Cow::Borrowed(name),
        Err(_) => {
            Cow::Owned(std::iter::once('\0'.to_string()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect())
        }
    }
}

/// Remembers a name's decision. Past the cap new names are forgotten, which fails
/// closed: executing a forgotten statement is `unknown`.
fn remember<T>(map: &mut HashMap<String, T>, name: Cow<'_, str>, decision: T) {
    if let Some(slot) = map.get_mut(name.as_ref()) {
        *slot = decision;
    } else if map.len() < MAX_PREPARED_NAMES || name.is_empty() {
        map.insert(name.into_owned(), decision);
    }
}
