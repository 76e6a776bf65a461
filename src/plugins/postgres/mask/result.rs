//! The backend messages of one session: rows paired with the statement and formats
//! the agent side announced ([`Expect`]), and values that come back in other messages
//! (errors, notices, notifications, settings).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use airlock_postgres::describe::{self, Column};
use airlock_postgres::message::{self, tag};
use airlock_postgres::{Disposition, Header, ProtocolError};
use bytes::{Bytes, BytesMut};

use super::ConnectionMasking;
use super::copy::{CopyOut, CopyQuery};
use super::plan::Plan;
use super::taint::Taint;
use crate::masking::Masker;

/// Statement descriptions a session's result masking remembers; rows of statements
/// past the cap are masked blind (fail closed).
const MAX_DESCRIBED: usize = 10_000;

/// What the upstream will answer next, as told by the agent side.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A Simple Query (with its text if it may hold a COPY): its RowDescriptions carry
    /// the real formats; ends at ReadyForQuery.
    Query {
        /// The query text, if it may hold a COPY.
        copy: Option<Arc<str>>,
        /// The columns of its COPY's query, as the agent's session described them just
        /// before it ran (with column rules on).
        described: Option<Arc<Vec<Column>>>,
        /// What its computed results may carry.
        taint: Taint,
    },
    /// Describe of a prepared statement: its RowDescription (formats not yet known)
    /// or NoData describes the statement.
    DescribeStatement(String),
    /// Describe of a portal: its RowDescription carries the real formats, and
    /// describes `statement`, the statement it was bound from (when Airlock knows it is
    /// still that statement's description), for later Executes that do not describe.
    DescribePortal {
        /// The statement the portal was bound from.
        statement: Option<String>,
        /// What its computed results may carry.
        taint: Taint,
    },
    /// Execute of a portal bound from `statement` with these result formats.
    Execute {
        /// The statement the portal runs, when its description is known to be that
        /// statement's (`None`: a cursor, or a name parsed again since the Bind).
        statement: Option<String>,
        /// Bind's result format codes.
        formats: Vec<i16>,
        /// What its computed results may carry.
        taint: Taint,
    },
    /// A Sync: ends at ReadyForQuery; an error skips everything before it.
    Sync,
}

/// The result side's state for one session.
pub struct ResultMasking<'a> {
    conn: &'a ConnectionMasking,
    expect: VecDeque<Expect>,
    /// Statement columns learned from Describe (by statement name).
    statements: HashMap<String, Arc<Vec<Column>>>,
    /// The taint of the request the last ErrorResponse or NoticeResponse answers.
    text_taint: Taint,
    /// The plan rows use now.
    plan: Option<Arc<Plan>>,
    /// A row rewritten while it was still in the read buffer.
    rewritten: Option<Bytes>,
    /// A COPY TO STDOUT in progress.
    copy: Option<CopyOut>,
}

impl<'a> ResultMasking<'a> {
    /// A session's result masking.
    pub fn new(conn: &'a ConnectionMasking) -> Self {
        ResultMasking {
            conn,
            expect: VecDeque::new(),
            statements: HashMap::new(),
            text_taint: Taint::Clean,
            plan: None,
            rewritten: None,
            copy: None,
        }
    }

    /// Takes what the agent side announced.
    pub fn expect(&mut self, more: impl IntoIterator<Item = Expect>) {
        self.expect.extend(more);
        self.plan_execute();
    }

    /// When an Execute is next, its rows use its statement's columns.
    fn plan_execute(&mut self) {
        if self.plan.is_some() {
            return;
        }
        if let Some(Expect::Execute { statement, formats, taint }) = self.expect.front() {
            self.plan = Some(Arc::new(match statement.as_ref().and_then(|s| self.statements.get(s)) {
                // Planned without catalog identities here (this runs in the scanner's
                // callback); RowDescriptions seen whole get the full plan.
                Some(cols) => self.conn.plan_now(cols, Some(formats), *taint),
                None => self.conn.blind_plan(formats),
            }));
        }
    }

    fn pop(&mut self) {
        self.expect.pop_front();
        self.plan = None;
        self.plan_execute();
    }

    /// Called for every backend message header. Returns `Whole` for what the caller
    /// must hand to [`ResultMasking::frame`]: RowDescriptions, and rows that change
    /// (already rewritten, parked) or are still arriving.
    pub fn classify(&mut self, h: Header<'_>) -> Disposition {
        if matches!(h.tag, tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE) {
            // Before the error moves the expectations on: whose error this is.
            self.text_taint = match self.expect.front() {
                Some(
                    Expect::Query { taint, .. } | Expect::Execute { taint, .. } | Expect::DescribePortal { taint, .. },
                ) => *taint,
                _ => Taint::Clean,
            };
        }
        match h.tag {
            tag::ROW_DESCRIPTION => return Disposition::Whole,
            tag::DATA_ROW => {
                // Rows nobody announced (a client bypassing Describe): read them blind.
                let plan = self.plan.get_or_insert_with(|| Arc::new(self.conn.blind_plan(&[]))).clone();
                if plan.passthrough {
                    return Disposition::Pass;
                }
                return match h.complete_body().map(|b| self.conn.mask_row(&plan, b)) {
                    Some(Ok(None)) => Disposition::Pass,
                    Some(Ok(Some(row))) => {
                        self.rewritten = Some(row);
                        Disposition::Whole
                    }
                    Some(Err(_)) | None => Disposition::Whole,
                };
            }
            tag::COPY_OUT => return Disposition::Whole,
            tag::COPY_DATA | tag::COPY_DONE if self.copy.is_some() => return Disposition::Whole,
            tag::NO_DATA => {
                if let Some(Expect::DescribeStatement(name) | Expect::DescribePortal { statement: Some(name), .. }) =
                    self.expect.front()
                    && (self.statements.len() < MAX_DESCRIBED || self.statements.contains_key(name))
                {
                    self.statements.insert(name.clone(), Arc::new(Vec::new()));
                }
                if matches!(self.expect.front(), Some(Expect::DescribeStatement(_) | Expect::DescribePortal { .. })) {
                    self.pop();
                }
            }
            tag::COMMAND_COMPLETE | tag::EMPTY_QUERY | tag::PORTAL_SUSPENDED => {
                if matches!(self.copy.take(), Some(CopyOut::Refused)) {
                    // The refused COPY's completion goes with its rows.
                    return Disposition::Whole;
                }
                match self.expect.front() {
                    Some(Expect::Execute { .. }) => self.pop(),
                    _ => self.plan = None,
                }
            }
            tag::ERROR_RESPONSE => {
                self.copy = None;
                // After an error the server skips to the Sync; a Query goes on to its end.
                if !matches!(self.expect.front(), Some(Expect::Query { .. })) {
                    while self.expect.front().is_some_and(|e| !matches!(e, Expect::Sync)) {
                        self.expect.pop_front();
                    }
                }
                self.plan = None;
            }
            tag::READY_FOR_QUERY => {
                while let Some(e) = self.expect.pop_front() {
                    if matches!(e, Expect::Sync | Expect::Query { .. }) {
                        break;
                    }
                }
                self.plan = None;
                self.plan_execute();
            }
            _ => {}
        }
        // Values come back in more than rows: an error echoing a bad value, a notice a
        // function raised, a notification's payload, a setting's new value.
        match h.tag {
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE | tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS => {
                Disposition::Whole
            }
            _ => Disposition::Pass,
        }
    }

    /// A message asked for whole: returns what to send in its place.
    pub async fn frame(&mut self, tag: u8, raw: Bytes) -> Result<Bytes, ProtocolError> {
        let body = raw.get(5..).unwrap_or_default();
        match tag {
            tag::ROW_DESCRIPTION => {
                let columns = describe::row_description(body)?;
                match self.expect.front().cloned() {
                    Some(Expect::DescribeStatement(name)) => {
                        // Its rows are planned without waiting (in the scanner's
                        // callback), so the catalog must know these tables by then.
                        self.conn.learn(&columns).await;
                        if self.statements.len() < MAX_DESCRIBED || self.statements.contains_key(&name) {
                            self.statements.insert(name, Arc::new(columns));
                        }
                        self.pop();
                    }
                    Some(Expect::DescribePortal { statement, taint }) => {
                        // Drivers describe a named statement's first portal, then only
                        // bind and execute it (pgjdbc past its prepare threshold). The
                        // unnamed statement is parsed again before it is reused.
                        if let Some(name) = statement.filter(|n| !n.is_empty())
                            && (self.statements.len() < MAX_DESCRIBED || self.statements.contains_key(&name))
                        {
                            self.conn.learn(&columns).await;
                            self.statements.insert(name, Arc::new(columns.clone()));
                        }
                        let plan = self.conn.plan(&columns, None, taint).await;
                        self.expect.pop_front();
                        self.plan = Some(Arc::new(plan));
                    }
                    front => {
                        let taint = match front {
                            Some(Expect::Query { taint, .. }) => taint,
                            _ => Taint::Clean,
                        };
                        self.plan = Some(Arc::new(self.conn.plan(&columns, None, taint).await));
                    }
                }
                Ok(raw)
            }
            tag::COPY_OUT => {
                let query = match self.expect.front() {
                    Some(Expect::Query { copy: Some(text), described, taint }) => {
                        Some(CopyQuery { text: text.clone(), described: described.clone(), taint: *taint })
                    }
                    _ => None,
                };
                let (copy, reply) = CopyOut::begin(self.conn, raw, query).await;
                if copy.is_some() {
                    self.copy = copy;
                }
                Ok(reply)
            }
            tag::COPY_DATA => match &mut self.copy {
                Some(copy) => copy.data(self.conn, raw),
                None => Ok(raw),
            },
            // A refused COPY's CopyDone goes with its rows; so does its CommandComplete,
            // the only one ever asked for whole (`classify` has already ended the COPY).
            tag::COPY_DONE if matches!(self.copy, Some(CopyOut::Refused)) => Ok(Bytes::new()),
            tag::COMMAND_COMPLETE => Ok(Bytes::new()),
            tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE | tag::NOTIFICATION_RESPONSE | tag::PARAMETER_STATUS => {
                Ok(mask_text_fields(&self.conn.masker, tag, body, self.text_taint).unwrap_or(raw))
            }
            tag::DATA_ROW => {
                if let Some(row) = self.rewritten.take() {
                    return Ok(row);
                }
                let plan = self.plan.get_or_insert_with(|| Arc::new(self.conn.blind_plan(&[]))).clone();
                Ok(self.conn.mask_row(&plan, body)?.unwrap_or(raw))
            }
            _ => Ok(raw),
        }
    }
}

/// An ErrorResponse or NoticeResponse (code byte and text per field), a
/// NotificationResponse (pid, channel, payload) or a ParameterStatus (name, value) with
/// the detected secrets in its texts masked; `None` when nothing changed or the body is
/// malformed (the client then gets the server's own bytes, as for any other message).
fn mask_text_fields(masker: &Masker, tag: u8, body: &[u8], taint: Taint) -> Option<Bytes> {
    let fielded = matches!(tag, tag::ERROR_RESPONSE | tag::NOTICE_RESPONSE);
    let (head, mut rest) = if tag == tag::NOTIFICATION_RESPONSE { body.split_at_checked(4)? } else { (&[][..], body) };
    let mut out = BytesMut::with_capacity(body.len() + 64);
    out.extend_from_slice(&[tag, 0, 0, 0, 0]);
    out.extend_from_slice(head);
    let mut changed = false;
    for index in 0.. {
        let mut code = 0;
        if fielded {
            let (&c, after) = rest.split_first()?;
            out.extend_from_slice(&[c]);
            if c == 0 {
                break;
            }
            code = c;
            rest = after;
        } else if rest.is_empty() {
            break;
        }
        let end = memchr::memchr(0, rest)?;
        let text = &rest[..end];
        let masked = match code {
            // A setting's name is the server's, not data.
            _ if tag == tag::PARAMETER_STATUS && index == 0 => Cow::Borrowed(text),
            // An error in a statement that reads masked data may quote a masked value
            // (`invalid input syntax for type integer: "..."`): quoted text, details,
            // context and the internal query are withheld.
            b'M' if taint != Taint::Clean => Cow::Owned(masker.mask(&redact_quoted(text)).into_owned()),
            b'D' | b'W' | b'q' if taint != Taint::Clean => Cow::Borrowed(WITHHELD),
            _ => masker.mask(text),
        };
        changed |= *masked != *text;
        out.extend_from_slice(&masked);
        out.extend_from_slice(&[0]);
        rest = &rest[end + 1..];
    }
    if !changed {
        return None;
    }
    message::set_length(&mut out);
    Some(out.freeze())
}

/// What replaces error details that may quote masked data.
const WITHHELD: &[u8] = b"[withheld by Airlock: the statement reads masked data]";

/// `text` with every double-quoted span replaced by `"[MASKED]"`.
fn redact_quoted(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut parts = text.split(|b| *b == b'"');
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    for (i, part) in parts.enumerate() {
        out.push(b'"');
        // Odd parts are inside quotes; an unclosed quote withholds the rest.
        out.extend_from_slice(if i % 2 == 0 { b"[MASKED]" } else { part });
    }
    out
}
