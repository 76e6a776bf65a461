//! A result's columns to what happens to each one's values ([`Action`]), and rows and
//! values masked by that [`Plan`].

use std::collections::HashMap;

use airlock_postgres::ProtocolError;
use airlock_postgres::describe::Column;
use airlock_postgres::message::{self, tag};
use airlock_postgres::types::{BYTEA, carries_text, may_hold_secrets, readable_binary, short_fixed, text_in_binary};
use bytes::Bytes;

use super::ConnectionMasking;
use super::catalog::COMPUTED_IN_VIEW;
use super::taint::Taint;
use crate::masking::Style;

/// What happens to one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Pass,
    /// Run the value detectors.
    Scan,
    /// A `bytea` in text form (`\x` and hex): the detectors read the bytes it encodes,
    /// and a masked value is sent as the hex of the masked bytes.
    ScanHex,
    /// A binary value with framing of its own (an array, a record): the detectors
    /// read it, and if they find a secret the value is sent as NULL, since masking in
    /// place would break its framing.
    ScanOrNull,
    /// A binary value of another type (numbers that may hold a card number's digits,
    /// arrays, records, ranges, types of the database's own): the detectors read it
    /// as text where its type or framing says how (else its bytes), and if they find
    /// a secret it is sent as NULL.
    ScanDecoded(u32),
    /// A column rule: replace the whole value.
    Mask(Style),
    /// A column rule on a binary value: send NULL.
    Null,
}

/// The per-column actions for one result.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) actions: Vec<Action>,
    /// For columns past `actions` (a row wider than its description, or unknown columns).
    pub(super) rest: Action,
    /// Every value passes: rows need not be read.
    pub(super) passthrough: bool,
}

impl Plan {
    fn new(actions: Vec<Action>, rest: Action) -> Plan {
        let passthrough = rest == Action::Pass && actions.iter().all(|a| *a == Action::Pass);
        Plan { actions, rest, passthrough }
    }
}

/// How a binary value of this type is read: text types, `bytea` and `jsonb` (a version
/// byte, then text) are their text; small numbers, times and fixed structures pass;
/// anything else (wide numbers, arrays, records, ranges, types of the database's own,
/// types Airlock does not know) is read as text where Airlock can, as bytes where not.
fn binary_action(type_oid: u32) -> Action {
    match type_oid {
        t if text_in_binary(t) => Action::Scan,
        t if short_fixed(t) => Action::Pass,
        t => Action::ScanDecoded(t),
    }
}

impl ConnectionMasking {
    /// The plan for `columns` with the given result formats (`None`: the formats the
    /// RowDescription carries; one code applies to all; none means text), looking up
    /// the catalog first if column rules need names it has not cached.
    pub(super) async fn plan(&self, columns: &[Column], formats: Option<&[i16]>, taint: Taint) -> Plan {
        self.learn(columns).await;
        self.plan_now(columns, formats, taint)
    }

    /// A plan from known columns without a catalog lookup: rule identities come from
    /// the cache only (a miss is looked up when the next RowDescription is seen whole).
    pub(super) fn plan_now(&self, columns: &[Column], formats: Option<&[i16]>, taint: Taint) -> Plan {
        let cached: HashMap<(u32, i16), Vec<String>> =
            if self.columns.is_empty() { HashMap::new() } else { self.catalog.identities(columns) };
        let unknown_origin = |c: &Column| c.table_oid != 0 && !cached.contains_key(&(c.table_oid, c.attnum));
        let actions = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let binary = match formats {
                    None => c.format == 1,
                    Some([]) => false,
                    Some([one]) => *one == 1,
                    Some(all) => all.get(i).is_some_and(|f| *f == 1),
                };
                let rule = cached.get(&(c.table_oid, c.attnum)).and_then(|id| self.rule_for(id));
                // Fail closed: a column from a table whose names are not known (the
                // lookup failed) may be covered by a rule.
                let rule = rule.or_else(|| (!self.columns.is_empty() && unknown_origin(c)).then_some(Style::Redact));
                // Fail closed: a computed value in a statement that names what is
                // masked may be that value, transformed.
                let in_view = || {
                    cached.get(&(c.table_oid, c.attnum)).is_some_and(|ids| ids.iter().any(|i| i == COMPUTED_IN_VIEW))
                };
                let computed = (c.table_oid == 0 || in_view())
                    && match taint {
                        Taint::Column => true,
                        Taint::Table => carries_text(c.type_oid),
                        Taint::Clean => false,
                    };
                let rule = rule.or_else(|| computed.then_some(Style::Redact));
                self.action(rule, Some(c.type_oid), binary)
            })
            .collect::<Vec<_>>();
        Plan::new(actions, Action::Pass)
    }

    /// The action for a column given its rule (if any), type and format.
    fn action(&self, rule: Option<Style>, type_oid: Option<u32>, binary: bool) -> Action {
        match (rule, type_oid) {
            (Some(_), _) if binary => Action::Null,
            (Some(style), _) => Action::Mask(style),
            (None, _) if self.masker.is_empty() => Action::Pass,
            (None, Some(t)) if binary => binary_action(t),
            (None, Some(BYTEA)) => Action::ScanHex,
            (None, Some(t)) if !may_hold_secrets(t) => Action::Pass,
            // Unknown type in binary: its bytes are not text.
            (None, None) if binary => Action::Pass,
            (None, _) => Action::Scan,
        }
    }

    /// A plan for rows whose columns are unknown (a statement Airlock never saw
    /// described): text values are scanned; with column rules on this connection every
    /// value could belong to a masked column, so all are masked (fail closed).
    pub(super) fn blind_plan(&self, formats: &[i16]) -> Plan {
        let rule = (!self.columns.is_empty()).then_some(Style::Redact);
        let actions: Vec<Action> = if formats.len() > 1 {
            formats.iter().map(|f| self.action(rule, None, *f == 1)).collect()
        } else {
            Vec::new()
        };
        let rest = self.action(rule, None, formats.first().is_some_and(|f| *f == 1));
        Plan::new(actions, rest)
    }

    /// The rewritten DataRow for `body`, or `None` if nothing changes (the common
    /// case, which allocates nothing).
    pub(super) fn mask_row(&self, plan: &Plan, body: &[u8]) -> Result<Option<Bytes>, ProtocolError> {
        let Some(mut row) = self.mask_fields(plan, body, &[tag::DATA_ROW, 0, 0, 0, 0], "DataRow")? else {
            return Ok(None);
        };
        message::set_length(&mut row);
        Ok(Some(Bytes::from(row)))
    }

    /// `prefix`, then `body` (a field count, then each field's length and bytes: a
    /// DataRow's body, or a binary COPY tuple) with its values masked; `None` if
    /// nothing changes. One pass: values are checked in place, and a row that changes
    /// is copied into its new bytes around the values replaced.
    pub(super) fn mask_fields(
        &self,
        plan: &Plan,
        body: &[u8],
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        let mut c = airlock_postgres::cursor::Cursor::new(body, what);
        let width = c.i16()?.max(0) as usize;
        let mut row: Option<Vec<u8>> = None;
        // Bytes of `body` before this offset are already in `row`.
        let mut copied = 0;
        for i in 0..width {
            let field = body.len() - c.remaining().len();
            let len = c.i32()?;
            if len < 0 {
                continue;
            }
            let v = c.take(len as usize)?;
            let Some(new) = self.mask_value(plan.actions.get(i).copied().unwrap_or(plan.rest), v) else { continue };
            let row = row.get_or_insert_with(|| {
                let mut row = Vec::with_capacity(prefix.len() + body.len() + 64);
                row.extend_from_slice(prefix);
                row
            });
            row.extend_from_slice(body.get(copied..field).unwrap_or_default());
            match new {
                None => row.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(new) => {
                    row.extend_from_slice(&(new.len() as i32).to_be_bytes());
                    row.extend_from_slice(&new);
                }
            }
            copied = field + 4 + v.len();
        }
        let Some(mut row) = row else { return Ok(None) };
        row.extend_from_slice(body.get(copied..).unwrap_or_default());
        Ok(Some(row))
    }

    /// A value's replacement (`Some(None)` for NULL), or `None` if it stays.
    fn mask_value(&self, action: Action, v: &[u8]) -> Option<Option<Vec<u8>>> {
        match action {
            Action::Pass => None,
            Action::Null => Some(None),
            Action::Mask(style) => {
                let mut out = Vec::new();
                self.masker.mask_column(style, v, &mut out);
                Some(Some(out))
            }
            Action::Scan => match self.masker.mask(v) {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(out) => Some(Some(out)),
            },
            Action::ScanOrNull => match self.masker.mask(v) {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(_) => Some(None),
            },
            Action::ScanDecoded(type_oid) => match readable_binary(type_oid, v) {
                Some(text) => match self.masker.mask(text.as_bytes()) {
                    std::borrow::Cow::Borrowed(_) => self.mask_value(Action::ScanOrNull, v),
                    std::borrow::Cow::Owned(_) => Some(None),
                },
                None => self.mask_value(Action::ScanOrNull, v),
            },
            Action::ScanHex => {
                // Anything but well-formed hex is scanned as it is.
                let Some(bytes) = v.strip_prefix(b"\\x").and_then(|h| hex::decode(h).ok()) else {
                    return self.mask_value(Action::Scan, v);
                };
                match self.masker.mask(&bytes) {
                    std::borrow::Cow::Borrowed(_) => None,
                    std::borrow::Cow::Owned(out) => Some(Some(format!("\\x{}", hex::encode(out)).into_bytes())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_postgres::types::{INT4, TEXT, TEXT_ARRAY};

    #[test]
    fn binary_values_are_read_by_type() {
        assert_eq!(binary_action(TEXT), Action::Scan);
        assert_eq!(binary_action(BYTEA), Action::Scan);
        assert_eq!(binary_action(TEXT_ARRAY), Action::ScanDecoded(TEXT_ARRAY));
        assert_eq!(binary_action(20), Action::ScanDecoded(20), "int8 can hold a card number");
        assert_eq!(binary_action(INT4), Action::Pass);
    }

    #[test]
    fn rows_of_unknown_columns_are_masked_whole_under_column_rules() {
        let masking = ConnectionMasking::for_tests(&["*.users.password_hash"]);
        // Two fields, `ab` and NULL, in binary: every value could be the masked column.
        let body = [0, 2, 0, 0, 0, 2, b'a', b'b', 255, 255, 255, 255];
        let plan = masking.blind_plan(&[1]);
        let row = masking.mask_row(&plan, &body).expect("well formed").expect("changed");
        assert_eq!(&row[..], &[tag::DATA_ROW, 0, 0, 0, 14, 0, 2, 255, 255, 255, 255, 255, 255, 255, 255]);
        assert!(masking.mask_row(&plan, &body[..7]).is_err());
    }
}
