//! Prepared statements as the server knows them.
//!
//! A statement name takes a new meaning only when the server confirms it: a Parse by
//! its ParseComplete, an SQL `PREPARE` by its CommandComplete, a Close or `DEALLOCATE`
//! likewise. A Parse that fails (a named statement that already exists answers 42P05)
//! or that the server skips after an earlier error leaves the old meaning. Until a
//! reply arrives, a name may run its confirmed statement or any of its unanswered
//! Parses, so it takes the strictest of them.
//!
//! Replies are paired with requests by order. Only the messages whose replies say
//! something about names, and those that bound a batch, are tracked: Parse (`1`), Close
//! (`3`), Execute (`C`, `I`, `s`), Sync and FunctionCall (`Z`), Query (one `C` per
//! statement, then `Z`). After an `E`, the server skips everything up to the next Sync.
//! In copy-in mode (after `G`) the server ignores Sync until the agent's CopyDone or
//! CopyFail (libpq sends one right after the COPY's Execute), so those Syncs are
//! struck from the queue when `G` arrives.
//! A reply that fits no request means the pairing is lost: from then on no name is
//! trusted (every execution of a prepared statement is held), which fails closed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::judge::MAX_PREPARED_NAMES;
use crate::policy::Decision;

/// Unanswered requests tracked at most; past this the pairing is given up (closed).
const MAX_PENDING: usize = 65_536;

/// What a statement of a Simple Query does to the names once it has run.
#[derive(Debug, Clone)]
pub enum Effect {
    /// `PREPARE name AS ...`.
    Prepared(String, Arc<Decision>),
    /// `DEALLOCATE name`.
    Deallocated(String),
    /// `DEALLOCATE ALL`, `DISCARD ALL`.
    DeallocatedAll,
}

#[derive(Debug)]
enum Request {
    Parse {
        name: String,
        decision: Arc<Decision>,
    },
    Close {
        name: String,
    },
    Execute,
    /// Sync or FunctionCall: answered by ReadyForQuery.
    Ready,
    /// A Simple Query: one effect slot per statement, in order.
    Query {
        effects: VecDeque<Option<Effect>>,
    },
    /// The agent ended a COPY's data (CopyDone or CopyFail): Syncs before it, sent
    /// while the server was copying in, were ignored. Answered by nothing.
    CopyEnd,
}

/// The session's prepared statements.
#[derive(Debug, Default)]
pub struct Statements {
    confirmed: HashMap<String, Arc<Decision>>,
    pending: VecDeque<Request>,
    /// The pairing of replies to requests was lost.
    lost: bool,
    /// The server is copying in and the agent has not ended the COPY yet.
    copying: bool,
    /// An extended-protocol message failed and no Sync has been sent since: the server
    /// skips what the agent sends until its Sync, so none of it is queued.
    skipping: bool,
}

impl Statements {
    /// A Parse of `name` went upstream.
    pub fn parse(&mut self, name: &str, decision: Arc<Decision>) {
        self.push(Request::Parse { name: name.to_owned(), decision });
    }

    /// A Close of statement `name` went upstream.
    pub fn close(&mut self, name: &str) {
        self.push(Request::Close { name: name.to_owned() });
    }

    /// An Execute went upstream.
    pub fn execute(&mut self) {
        self.push(Request::Execute);
    }

    /// A Sync or FunctionCall went upstream (Airlock's own Sync included).
    pub fn ready(&mut self) {
        self.push(Request::Ready);
    }

    /// A Simple Query went upstream; `effects` has one slot per statement.
    pub fn query(&mut self, effects: Vec<Option<Effect>>) {
        self.push(Request::Query { effects: effects.into() });
    }

    /// A CopyDone or CopyFail went upstream.
    pub fn copy_end(&mut self) {
        self.push(Request::CopyEnd);
    }

    fn push(&mut self, request: Request) {
        if self.lost {
            return;
        }
        if self.skipping {
            match request {
                Request::Ready => self.skipping = false,
                // Skipped by the server: no answer comes.
                Request::Parse { .. } | Request::Close { .. } | Request::Execute | Request::CopyEnd => return,
                // The relay sends no Query into a pipeline the server is skipping.
                Request::Query { .. } => {
                    tracing::warn!("a Query while the server skips to a Sync: prepared names are no longer trusted");
                    return self.lose();
                }
            }
        }
        if self.copying {
            match request {
                // Ignored by the server while it copies in.
                Request::Ready => return,
                Request::CopyEnd => {
                    self.copying = false;
                    return;
                }
                // Nothing else belongs in a COPY's data: trust no name from here on.
                _ => {
                    tracing::warn!(?request, "a request during COPY data: prepared names are no longer trusted");
                    return self.lose();
                }
            }
        }
        if self.pending.len() >= MAX_PENDING {
            return self.lose();
        }
        self.pending.push_back(request);
    }

    fn lose(&mut self) {
        self.lost = true;
        self.copying = false;
        self.skipping = false;
        self.confirmed.clear();
        self.pending.clear();
    }

    /// What `name` may run now: the strictest of its confirmed statement and its
    /// unanswered Parses. When its last Parse is in the batch now being sent (no
    /// Sync since), that Parse alone: a message using the name runs what that Parse
    /// made, or is skipped with it after an error (the server skips to the Sync), and
    /// a Parse of the unnamed statement drops the old one before it parses. `None`
    /// when Airlock knows of none (or no longer trusts what it knows).
    pub fn lookup(&self, name: &str) -> Option<Arc<Decision>> {
        let parses_of = |r: &Request| matches!(r, Request::Parse { name: n, .. } if n == name);
        if let Some(last) = self.pending.iter().rposition(parses_of)
            && !self.pending.iter().skip(last).any(|r| matches!(r, Request::Ready | Request::Query { .. }))
            && let Some(Request::Parse { decision, .. }) = self.pending.get(last)
        {
            return Some(decision.clone());
        }
        let parsed = self.pending.iter().filter_map(|r| match r {
            Request::Parse { name: n, decision } if n == name => Some(decision),
            _ => None,
        });
        let mut candidates = self.confirmed.get(name).into_iter().chain(parsed);
        let first = candidates.next()?.clone();
        Some(candidates.fold(first, |acc, d| if Arc::ptr_eq(&acc, d) { acc } else { Arc::new(acc.merged(d)) }))
    }

    /// One reply from the server, by its tag.
    pub fn reply(&mut self, tag: u8) {
        if self.lost {
            return;
        }
        // A CopyEnd at the head belongs to a COPY that already ended (or never began).
        while matches!(self.pending.front(), Some(Request::CopyEnd)) {
            self.pending.pop_front();
        }
        let fits = match (tag, self.pending.front_mut()) {
            (b'1', Some(Request::Parse { .. })) => {
                if let Some(Request::Parse { name, decision }) = self.pending.pop_front() {
                    remember(&mut self.confirmed, name, decision);
                }
                true
            }
            (b'3', Some(Request::Close { .. })) => {
                if let Some(Request::Close { name }) = self.pending.pop_front() {
                    self.confirmed.remove(&name);
                }
                true
            }
            (b'C' | b'I' | b's', Some(Request::Execute)) => {
                self.pending.pop_front();
                true
            }
            (b'C' | b'I', Some(Request::Query { effects })) => {
                if let Some(Some(effect)) = effects.pop_front() {
                    self.apply(effect);
                }
                true
            }
            (b'E', Some(Request::Query { effects })) => {
                effects.clear();
                true
            }
            (b'E', Some(Request::Ready)) => true,
            // An untracked message (a Bind, a Describe) failed before the agent's Sync
            // was sent: what comes until then is skipped.
            (b'E', None) => {
                self.skipping = true;
                true
            }
            (b'E', Some(_)) => {
                // The request at the head failed, or was skipped after an untracked
                // one failed; the server skips the rest up to the Sync. A failed
                // unnamed Parse leaves no unnamed statement.
                if let Some(Request::Parse { name, .. }) = self.pending.pop_front()
                    && name.is_empty()
                {
                    self.confirmed.remove("");
                }
                while matches!(
                    self.pending.front(),
                    Some(Request::Parse { .. } | Request::Close { .. } | Request::Execute)
                ) {
                    self.pending.pop_front();
                }
                // The agent's Sync is not sent yet: what it sends until then is skipped.
                self.skipping = self.pending.is_empty();
                true
            }
            (b'Z', Some(Request::Ready | Request::Query { .. })) => {
                self.pending.pop_front();
                // CopyEnd markers with no COPY in progress mean nothing.
                while matches!(self.pending.front(), Some(Request::CopyEnd)) {
                    self.pending.pop_front();
                }
                true
            }
            // Copy-in begins for the Execute or Query at the head: the Syncs the agent
            // sends until its CopyDone or CopyFail are ignored by the server. Those
            // already queued go now; later ones are not queued (`copying`).
            (b'G', Some(Request::Execute | Request::Query { .. })) => {
                let mut k = 1;
                loop {
                    match self.pending.get(k) {
                        Some(Request::Ready) => drop(self.pending.remove(k)),
                        Some(Request::CopyEnd) => {
                            self.pending.remove(k);
                            break;
                        }
                        Some(_) => k += 1,
                        None => {
                            self.copying = true;
                            break;
                        }
                    }
                }
                true
            }
            (b'G' | b'W', _) => false,
            // Replies to untracked requests (Bind, Describe) and asynchronous ones.
            (b'1' | b'3' | b'C' | b'I' | b's' | b'Z', _) => false,
            _ => true,
        };
        if !fits {
            tracing::warn!(reply = %(tag as char), pending = ?self.pending.front(), "a reply fits no request: prepared names are no longer trusted");
            self.lose();
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Prepared(name, decision) => remember(&mut self.confirmed, name, decision),
            Effect::Deallocated(name) => drop(self.confirmed.remove(&name)),
            Effect::DeallocatedAll => self.confirmed.clear(),
        }
    }
}

/// Past the cap new names are forgotten, which fails closed: executing a forgotten
/// statement is `unknown`.
fn remember(map: &mut HashMap<String, Arc<Decision>>, name: String, decision: Arc<Decision>) {
    if map.len() < MAX_PREPARED_NAMES || map.contains_key(&name) || name.is_empty() {
        map.insert(name, decision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn decision(sql: &str) -> Arc<Decision> {
        Arc::new(super::super::judge::decide_query(&Policy::new(&[]).unwrap(), "db", &[], sql))
    }

    fn allowed(s: &Statements, name: &str) -> Option<bool> {
        s.lookup(name).map(|d| d.allowed())
    }

    #[test]
    fn a_failed_parse_keeps_the_old_meaning() {
        let mut s = Statements::default();
        s.parse("s", decision("delete from v"));
        s.ready();
        for tag in *b"1Z" {
            s.reply(tag);
        }
        s.parse("s", decision("select 1"));
        s.ready();
        // Before the answer: either may run, so the stricter.
        assert_eq!(allowed(&s, "s"), Some(false));
        assert!(s.lookup("s").unwrap().statements.iter().any(|d| d.text == "delete from v"));
        for tag in *b"EZ" {
            s.reply(tag);
        }
        assert_eq!(s.lookup("s").unwrap().statements[0].text, "delete from v");
        assert_eq!(s.lookup("s").unwrap().statements.len(), 1);
    }

    #[test]
    fn an_error_answered_before_the_rest_of_its_pipeline_is_sent_skips_that_rest() {
        // psycopg's pipeline: the failing statement's error comes back before the next
        // statement's messages reach Airlock; the server skips them up to the Sync.
        let mut s = Statements::default();
        s.parse("", decision("select 1/0"));
        s.execute();
        for tag in *b"1E" {
            s.reply(tag);
        }
        s.parse("", decision("insert into t values (1)"));
        s.execute();
        s.ready();
        s.reply(b'Z');
        assert!(!s.lost, "the skipped Parse and Execute are not awaited");
        assert_eq!(s.lookup("").unwrap().statements[0].text, "select 1/0", "the server kept the first");
        s.parse("", decision("select 2"));
        assert_eq!(allowed(&s, ""), Some(true));
    }

    #[test]
    fn a_parse_in_the_batch_being_sent_is_what_its_name_runs() {
        let mut s = Statements::default();
        s.parse("", decision("drop table t"));
        s.ready();
        for tag in *b"1Z" {
            s.reply(tag);
        }
        // Parse, then Bind in the same batch: the new statement or nothing.
        s.parse("", decision("select 1"));
        assert_eq!(allowed(&s, ""), Some(true));
        assert_eq!(s.lookup("").unwrap().statements.len(), 1);
        // Across a Sync the Parse may have been skipped: either may run.
        s.ready();
        assert_eq!(allowed(&s, ""), Some(false));
        // A stricter Parse in the batch is the one that counts, too.
        s.parse("", decision("drop table u"));
        assert_eq!(s.lookup("").unwrap().statements[0].text, "drop table u");
    }

    #[test]
    fn skipped_requests_change_nothing_and_confirmed_ones_do() {
        let mut s = Statements::default();
        s.parse("a", decision("drop table t"));
        s.ready();
        for tag in *b"1Z" {
            s.reply(tag);
        }
        // Parse x fails; the Close of a after it is skipped; a keeps its meaning.
        s.parse("x", decision("select ("));
        s.close("a");
        s.ready();
        for tag in *b"EZ" {
            s.reply(tag);
        }
        assert!(s.lookup("a").is_some_and(|d| !d.allowed()));
        s.close("a");
        s.ready();
        for tag in *b"3Z" {
            s.reply(tag);
        }
        assert!(s.lookup("a").is_none());
        s.query(vec![Some(Effect::Prepared("p".into(), decision("select 1"))), None]);
        for tag in *b"CEZ" {
            s.reply(tag);
        }
        assert_eq!(allowed(&s, "p"), Some(true));
    }

    #[test]
    fn syncs_sent_while_copying_in_are_not_answered() {
        // libpq: Parse/Bind/Execute(COPY FROM STDIN), Sync (ignored), CopyData,
        // CopyDone, Sync; then a failed re-Parse of `s` must not be confirmed by the
        // next Parse's ParseComplete.
        let mut s = Statements::default();
        s.parse("s", decision("drop table t"));
        s.ready();
        for tag in *b"1Z" {
            s.reply(tag);
        }
        s.parse("", decision("copy v from stdin"));
        s.execute();
        s.ready();
        s.reply(b'1');
        s.reply(b'G');
        s.copy_end();
        s.ready();
        for tag in *b"CZ" {
            s.reply(tag);
        }
        s.parse("s", decision("select 1"));
        s.ready();
        s.parse("u", decision("select 2"));
        s.ready();
        for tag in *b"EZ1Z" {
            s.reply(tag);
        }
        assert!(s.lookup("s").is_some_and(|d| !d.allowed()), "the failed Parse kept the old meaning");
        assert_eq!(allowed(&s, "u"), Some(true));
        // A statement sent in the middle of a COPY's data: trust nothing.
        s.parse("", decision("copy v from stdin"));
        s.execute();
        s.reply(b'1');
        s.reply(b'G');
        s.parse("x", decision("select 1"));
        assert!(s.lookup("u").is_none());
    }

    #[test]
    fn a_reply_that_fits_nothing_trusts_no_name() {
        let mut s = Statements::default();
        s.parse("a", decision("select 1"));
        s.reply(b'3');
        assert!(s.lookup("a").is_none());
        s.parse("b", decision("select 1"));
        s.reply(b'1');
        assert!(s.lookup("b").is_none());
    }
}
