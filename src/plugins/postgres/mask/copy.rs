//! Masking the rows of a COPY TO STDOUT: text or CSV lines column by column (or
//! whole, with no column rules), binary tuples field by field.

use std::sync::Arc;

use airlock_postgres::ProtocolError;
use airlock_postgres::copy::{copy_fields, copy_source};
use airlock_postgres::cursor::Cursor;
use airlock_postgres::describe::Column;
use airlock_postgres::message::{self, Severity, tag};
use bytes::{Bytes, BytesMut};

use super::ConnectionMasking;
use super::plan::{Action, Plan};
use super::taint::Taint;

/// How the rows of a COPY TO STDOUT are masked.
#[derive(Debug, Clone)]
pub(super) enum CopyOut {
    /// Value detectors over each whole line (no column rules apply).
    Lines,
    /// Per-column actions over text-format lines (tab-separated), or CSV lines.
    Columns { plan: Arc<Plan>, csv: bool, header: bool },
    /// Per-column actions over binary tuples.
    Binary { plan: Arc<Plan>, tuples: BinaryTuples },
    /// Refused: Airlock sent an error in place of the CopyOutResponse and drops the
    /// rows until the COPY's CommandComplete.
    Refused,
}

/// What the Simple Query that ran a COPY said of it.
pub(super) struct CopyQuery {
    /// The query string.
    pub(super) text: Arc<str>,
    /// Its query's columns, as the agent's session described them.
    pub(super) described: Option<Arc<Vec<Column>>>,
    /// What its computed results may carry.
    pub(super) taint: Taint,
}

impl CopyOut {
    /// How the rows of the COPY that a CopyOutResponse (`raw`) opens are masked, and
    /// what goes to the agent in its place: the response, or an error refusing the COPY.
    /// `query` is the text and taint of the Simple Query the COPY is in, when it may
    /// hold one. No `CopyOut` when nothing could be masked: the rows pass as they come.
    pub(super) async fn begin(
        conn: &ConnectionMasking,
        raw: Bytes,
        query: Option<CopyQuery>,
    ) -> (Option<CopyOut>, Bytes) {
        let binary = raw.get(5) == Some(&1);
        let refuse = |why: &str| {
            let hint = "run the same query with SELECT: its results are masked column by column";
            (Some(CopyOut::Refused), message::error_response(Severity::Error, "0A000", why, Some(hint)))
        };
        if conn.columns.is_empty() && !binary {
            return (Some(CopyOut::Lines), raw);
        }
        if conn.columns.is_empty() && conn.masker.is_empty() {
            // Nothing could be masked: the rows pass as they come.
            return (None, raw);
        }
        let Some(CopyQuery { text, described, taint }) = query else {
            return refuse("Airlock cannot tell which columns this COPY returns, so it cannot mask them");
        };
        let Some(source) = copy_source(&text) else {
            return refuse("Airlock cannot tell which columns this COPY returns, so it cannot mask them");
        };
        if source.custom_format || source.binary != binary {
            return refuse("Airlock masks COPY TO STDOUT only in the default text, CSV or binary formats");
        }
        // Described in the agent's own session (its search_path, its temporary
        // tables), just before the COPY: the statement alone in its query string.
        let Some(columns) = described else {
            return refuse(
                "Airlock masks this COPY only when it is alone in its query string and its query can be described",
            );
        };
        // A table's generated columns are in `SELECT *` but not in its COPY.
        let width = raw.get(6..8).map(|w| i16::from_be_bytes([w[0], w[1]]));
        if width != Some(columns.len() as i16) {
            return refuse(
                "this COPY's columns are not its query's (a generated column?), so Airlock cannot mask them",
            );
        }
        let formats: &[i16] = if binary { &[1] } else { &[] };
        let plan = Arc::new(conn.plan(&columns, Some(formats), taint).await);
        let copy = if binary {
            CopyOut::Binary { plan, tuples: BinaryTuples::default() }
        } else {
            CopyOut::Columns { plan, csv: source.csv, header: source.header }
        };
        (Some(copy), raw)
    }

    /// What to send in place of one CopyData (`raw`) of this COPY.
    pub(super) fn data(&mut self, conn: &ConnectionMasking, raw: Bytes) -> Result<Bytes, ProtocolError> {
        let body = raw.get(5..).unwrap_or_default();
        Ok(match self {
            CopyOut::Refused => Bytes::new(),
            CopyOut::Lines => match conn.masker.mask(body) {
                std::borrow::Cow::Borrowed(_) => raw,
                std::borrow::Cow::Owned(line) => copy_data(&line),
            },
            CopyOut::Columns { header, .. } if *header => {
                *header = false;
                raw
            }
            CopyOut::Columns { plan, csv, .. } => copy_data(&conn.mask_line(plan, body, *csv)),
            CopyOut::Binary { plan, tuples } => {
                let masked = tuples.mask(body, |tuple| conn.mask_fields(plan, tuple, &[], "COPY tuple"))?;
                match masked {
                    None => raw,
                    // All of it is carried to the next CopyData.
                    Some(payload) if payload.is_empty() => Bytes::new(),
                    Some(payload) => copy_data(&payload),
                }
            }
        })
    }
}

/// Reads a binary COPY stream (the `PGCOPY` header, tuples, then a `-1` trailer) tuple
/// by tuple. The server sends each tuple in a CopyData of its own; a tuple split across
/// messages is carried to the next, up to `MAX_CARRY` bytes.
#[derive(Debug, Clone, Default)]
pub(super) struct BinaryTuples {
    header_read: bool,
    ended: bool,
    carry: Vec<u8>,
}

/// The signature opening a binary COPY stream.
const PGCOPY: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl BinaryTuples {
    /// The most bytes of an unfinished tuple (or header) held back.
    const MAX_CARRY: usize = 64 << 20;

    /// The payload to send for one CopyData's `body`, each whole tuple passed through
    /// `mask` (which returns `None` when it changes nothing), or `None` when the body
    /// goes as it came.
    fn mask(
        &mut self,
        body: &[u8],
        mask: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, ProtocolError>,
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        let malformed = ProtocolError::Malformed("binary COPY");
        let carried = !self.carry.is_empty();
        let joined = if carried { [std::mem::take(&mut self.carry).as_slice(), body].concat() } else { Vec::new() };
        let mut data: &[u8] = if carried { &joined } else { body };
        let mut out: Option<Vec<u8>> = carried.then(Vec::new);
        // Bytes of `data` before this offset are in `out` (or unchanged, with no `out`).
        let mut kept = 0;
        let start = data;
        loop {
            if self.ended {
                if !data.is_empty() {
                    return Err(malformed);
                }
                break;
            }
            let Some(len) = self.next_len(data)? else { break };
            let (item, rest) = data.split_at(len);
            let is_tuple = std::mem::replace(&mut self.header_read, true);
            if let Some(new) = if is_tuple && !self.ended { mask(item)? } else { None } {
                let offset = start.len() - data.len();
                let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 64));
                out.extend_from_slice(&start[kept..offset]);
                out.extend_from_slice(&new);
                kept = offset + len;
            }
            data = rest;
        }
        if data.len() > Self::MAX_CARRY {
            return Err(ProtocolError::TooLarge { tag: 'd', len: data.len(), max: Self::MAX_CARRY });
        }
        let done = start.len() - data.len();
        self.carry = data.to_vec();
        match out {
            Some(mut out) => {
                out.extend_from_slice(&start[kept..done]);
                Ok(Some(out))
            }
            None if !data.is_empty() => Ok(Some(start[..done].to_vec())),
            None => Ok(None),
        }
    }

    /// The length of the header or tuple `data` starts with, `None` if it is not all
    /// there yet. Marks the trailer.
    fn next_len(&mut self, data: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let malformed = ProtocolError::Malformed("binary COPY");
        // A short read is a header or tuple still arriving.
        let mut c = Cursor::new(data, "binary COPY");
        if !self.header_read {
            let (Ok(signature), Ok(_flags), Ok(extension)) = (c.take(PGCOPY.len()), c.i32(), c.i32()) else {
                return Ok(None);
            };
            if signature != PGCOPY || extension < 0 {
                return Err(malformed);
            }
            // `extension` is not negative, so the cast is lossless.
            return Ok(c.take(extension as usize).is_ok().then(|| data.len() - c.remaining().len()));
        }
        let Ok(count) = c.i16() else { return Ok(None) };
        if count == -1 {
            self.ended = true;
            return Ok(Some(2));
        }
        if count < 0 {
            return Err(malformed);
        }
        for _ in 0..count {
            let Ok(field) = c.i32() else { return Ok(None) };
            if field < -1 {
                return Err(malformed);
            }
            if c.take(field.max(0) as usize).is_err() {
                return Ok(None);
            }
        }
        Ok(Some(data.len() - c.remaining().len()))
    }
}

/// A CopyData message.
fn copy_data(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 5);
    b.extend_from_slice(&[tag::COPY_DATA]);
    b.extend_from_slice(&((payload.len() + 4) as i32).to_be_bytes());
    b.extend_from_slice(payload);
    b.freeze()
}

impl ConnectionMasking {
    /// Masks one COPY line: column rules by position, then the value detectors over
    /// the whole line (markers contain no delimiters, quotes or escapes).
    pub(super) fn mask_line(&self, plan: &Plan, line: &[u8], csv: bool) -> Vec<u8> {
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        let null: &[u8] = if csv { b"" } else { b"\\N" };
        let mut out = Vec::with_capacity(line.len());
        for (i, field) in copy_fields(body, csv).into_iter().enumerate() {
            if i > 0 {
                out.push(if csv { b',' } else { b'\t' });
            }
            match plan.actions.get(i).copied().unwrap_or(plan.rest) {
                _ if field == null => out.extend_from_slice(field),
                Action::Mask(style) => self.masker.mask_column(style, field, &mut out),
                Action::Null => out.extend_from_slice(null),
                Action::Pass | Action::Scan | Action::ScanHex | Action::ScanOrNull | Action::ScanDecoded(_) => {
                    out.extend_from_slice(field)
                }
            }
        }
        let mut out = match self.masker.mask(&out) {
            std::borrow::Cow::Borrowed(_) => out,
            std::borrow::Cow::Owned(masked) => masked,
        };
        if newline {
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary COPY stream of these tuples (`None`: a NULL field).
    fn binary_copy(tuples: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = PGCOPY.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2, 0xab, 0xcd]);
        for tuple in tuples {
            out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in *tuple {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// Replaces a tuple holding `secret` with a one-NULL tuple.
    fn hide_secrets(tuple: &[u8]) -> Result<Option<Vec<u8>>, ProtocolError> {
        Ok(tuple.windows(6).any(|w| w == b"secret").then(|| vec![0, 1, 255, 255, 255, 255]))
    }

    /// Feeds `stream` to a reader in chunks cut at `cuts`; returns what goes out.
    fn through(stream: &[u8], cuts: &[usize]) -> Result<Vec<u8>, ProtocolError> {
        let mut tuples = BinaryTuples::default();
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([stream.len()].iter()) {
            let body = &stream[from..to];
            out.extend_from_slice(&tuples.mask(body, hide_secrets)?.unwrap_or_else(|| body.to_vec()));
            from = to;
        }
        Ok(out)
    }

    #[test]
    fn binary_copy_tuples_are_masked_whatever_the_chunking() {
        let stream = binary_copy(&[&[Some(b"1"), Some(b"plain")], &[Some(b"2"), Some(b"a secret"), None], &[]]);
        let expected = binary_copy(&[&[Some(b"1"), Some(b"plain")], &[None], &[]]);
        assert_eq!(through(&stream, &[]).unwrap(), expected);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                assert_eq!(through(&stream, &[a, b]).unwrap(), expected, "cut at {a} and {b}");
            }
        }
        // Nothing to mask: each CopyData goes as it came.
        let plain = binary_copy(&[&[Some(b"x")]]);
        assert_eq!(BinaryTuples::default().mask(&plain, hide_secrets).unwrap(), None);
    }

    #[test]
    fn malformed_binary_copy_is_an_error() {
        let stream = binary_copy(&[&[Some(b"1")]]);
        let mut bad_signature = stream.clone();
        bad_signature[0] = b'X';
        assert!(through(&bad_signature, &[]).is_err());
        let mut after_trailer = stream.clone();
        after_trailer.push(0);
        assert!(through(&after_trailer, &[]).is_err());
        let mut negative_count = stream[..21].to_vec();
        negative_count.extend_from_slice(&(-2i16).to_be_bytes());
        assert!(through(&negative_count, &[]).is_err());
        let mut bad_length = stream[..21].to_vec();
        bad_length.extend_from_slice(&[0, 1, 0xff, 0xff, 0xff, 0xfe]);
        assert!(through(&bad_length, &[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn binary_copy_reader_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), cut in 0usize..64) {
            let mut stream = PGCOPY.to_vec();
            stream.extend_from_slice(&[0; 8]);
            stream.extend_from_slice(&bytes);
            let _ = through(&stream, &[cut.min(stream.len())]);
        }
    }
}
