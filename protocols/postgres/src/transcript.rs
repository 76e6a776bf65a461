//! A recorded Postgres session read back for people and tools: a psql-like text
//! transcript (statements, parameters, result tables, tags, errors) or one JSON
//! object per message. Values are shown decoded by type where the type is known
//! (binary parameters and results included) and escaped otherwise, so no control
//! character in a recording ever reaches the reader's terminal.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};

use bytes::BytesMut;
use serde_json::{Value, json};

use crate::describe::{self, Column, Described};
use crate::frame::{Chunk, Disposition, MAX_MESSAGE_LEN, Scanner};
use crate::types;

/// Splits one direction's recorded bytes into decoded messages, carrying partial
/// messages across frames.
struct Decoder {
    buf: BytesMut,
    scanner: Scanner,
    from_agent: bool,
}

impl Decoder {
    fn new(from_agent: bool) -> Self {
        Decoder { buf: BytesMut::new(), scanner: Scanner::new(MAX_MESSAGE_LEN), from_agent }
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Described> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Ok(Some(Chunk::Frame(f))) = self.scanner.next(&mut self.buf, &mut |_| Disposition::Whole) {
            let d = if self.from_agent {
                describe::frontend(f.tag(), f.body())
            } else {
                describe::backend(f.tag(), f.body())
            };
            out.push(d.unwrap_or(Described::Other(f.tag() as char, f.body().len())));
        }
        out
    }
}

/// One session's transcript, fed its recorded traffic in order.
pub struct Transcript {
    front: Decoder,
    back: Decoder,
    /// Parameter types of each prepared statement, as Parse gave them or a
    /// ParameterDescription told.
    parameter_types: HashMap<String, Vec<u32>>,
    /// Statements described and not yet answered, oldest first.
    describing: VecDeque<String>,
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    shown_rows: usize,
    max_rows: usize,
    /// When the statement now answering was sent, µs since the epoch.
    sent_at: u64,
}

/// The indent of lines under a statement.
const INDENT: &str = "           ";

impl Transcript {
    /// A transcript that shows at most `max_rows` rows of each result.
    pub fn new(max_rows: usize) -> Transcript {
        Transcript {
            front: Decoder::new(true),
            back: Decoder::new(false),
            parameter_types: HashMap::new(),
            describing: VecDeque::new(),
            columns: Vec::new(),
            rows: Vec::new(),
            shown_rows: 0,
            max_rows,
            sent_at: 0,
        }
    }

    /// Writes the lines for `bytes` recorded at `ts_us` (µs since the epoch), sent by
    /// the agent or to it; `at` labels the time of statement and error lines.
    pub fn text(
        &mut self,
        from_agent: bool,
        bytes: &[u8],
        ts_us: u64,
        at: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let messages = if from_agent { self.front.feed(bytes) } else { self.back.feed(bytes) };
        for m in messages {
            self.learn(&m);
            match m {
                Described::Query(q) => {
                    self.sent_at = ts_us;
                    writeln!(out, "{at} {}", escaped(q.trim()))?;
                }
                Described::Parse { name, query, .. } => {
                    self.sent_at = ts_us;
                    let label = if name.is_empty() { String::new() } else { format!(" [{}]", escaped(&name)) };
                    writeln!(out, "{at} PARSE{label} {}", escaped(query.trim()))?;
                }
                Described::Bind { statement, formats, params, .. } if !params.is_empty() => {
                    let shown = self.parameters(&statement, &formats, &params);
                    writeln!(out, "{INDENT}params: {}", shown.join(", "))?;
                }
                Described::CopyData(d) if from_agent => writeln!(out, "{INDENT}copy in: {} bytes", d.len())?,
                Described::RowDescription(columns) => {
                    self.columns = columns;
                    self.rows.clear();
                    self.shown_rows = 0;
                }
                Described::DataRow(values) => {
                    if self.shown_rows < self.max_rows {
                        let row = values.iter().enumerate().map(|(i, v)| self.column_value(i, v)).collect();
                        self.rows.push(row);
                    }
                    self.shown_rows += 1;
                }
                Described::CommandComplete(tag) => {
                    if !self.columns.is_empty() {
                        let names: Vec<String> = self.columns.iter().map(|c| escaped(&c.name)).collect();
                        table(out, &names, &self.rows)?;
                        if self.shown_rows > self.rows.len() {
                            writeln!(out, "{INDENT}... {} more rows", self.shown_rows - self.rows.len())?;
                        }
                    }
                    let ms = ts_us.saturating_sub(self.sent_at) as f64 / 1000.0;
                    writeln!(out, "{INDENT}{} ({ms:.1} ms)", escaped(&tag))?;
                    self.columns.clear();
                    self.rows.clear();
                }
                Described::Error(fields) => {
                    writeln!(out, "{at} ERROR {}: {}", escaped(fields.code()), escaped(fields.message()))?
                }
                Described::Notice(fields) => writeln!(out, "{INDENT}NOTICE: {}", escaped(fields.message()))?,
                _ => {}
            }
        }
        Ok(())
    }

    /// One JSON object per message in `bytes`, sent by the agent or to it.
    pub fn json(&mut self, from_agent: bool, bytes: &[u8]) -> Vec<Value> {
        let messages = if from_agent { self.front.feed(bytes) } else { self.back.feed(bytes) };
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            self.learn(&m);
            out.push(match &m {
                Described::Bind { portal, statement, formats, params } => json!({
                    "type": "bind",
                    "portal": portal,
                    "statement": statement,
                    "params": self.parameters(statement, formats, params).into_iter().zip(params)
                        .map(|(shown, v)| v.as_ref().map(|_| shown)).collect::<Vec<_>>(),
                }),
                Described::RowDescription(columns) => {
                    self.columns = columns.clone();
                    message_json(&m)
                }
                Described::DataRow(values) => json!({
                    "type": "data_row",
                    "values": values.iter().enumerate()
                        .map(|(i, v)| v.as_ref().map(|_| self.column_value(i, v))).collect::<Vec<_>>(),
                }),
                _ => message_json(&m),
            });
        }
        out
    }

    /// Keeps what later messages are read by: parameter types per statement.
    fn learn(&mut self, m: &Described) {
        const MAX_STATEMENTS: usize = 10_000;
        let mut remember = |name: &str, types: &[u32]| {
            if self.parameter_types.len() < MAX_STATEMENTS || self.parameter_types.contains_key(name) {
                self.parameter_types.insert(name.to_owned(), types.to_vec());
            }
        };
        match m {
            Described::Parse { name, types, .. } => remember(name, types),
            Described::Describe { kind: 'S', name } if self.describing.len() < MAX_STATEMENTS => {
                self.describing.push_back(name.clone())
            }
            Described::ParameterDescription(types) => {
                if let Some(name) = self.describing.pop_front() {
                    remember(&name, types);
                }
            }
            // After an error the server skips to the Sync: its Describes go unanswered.
            Described::Ready(_) => self.describing.clear(),
            _ => {}
        }
    }

    /// A Bind's parameters as shown, by the statement's parameter types.
    fn parameters(&self, statement: &str, formats: &[i16], params: &[Option<Vec<u8>>]) -> Vec<String> {
        let types = self.parameter_types.get(statement);
        params
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let binary = match formats {
                    [] => false,
                    [one] => *one == 1,
                    all => all.get(i) == Some(&1),
                };
                let type_oid = types.and_then(|t| t.get(i)).copied().filter(|t| *t != 0);
                shown(v, type_oid, binary)
            })
            .collect()
    }

    /// A value of the result column `i`, as shown.
    fn column_value(&self, i: usize, v: &Option<Vec<u8>>) -> String {
        let column = self.columns.get(i);
        shown(v, column.map(|c| c.type_oid), column.is_some_and(|c| c.format == 1))
    }
}

/// A value as shown: `NULL`, text with control characters escaped, or a binary value
/// decoded by its type (`\x` and hex where the type is unknown).
fn shown(v: &Option<Vec<u8>>, type_oid: Option<u32>, binary: bool) -> String {
    let Some(b) = v else { return "NULL".into() };
    if !binary {
        return match std::str::from_utf8(b) {
            Ok(text) => escaped(text),
            Err(_) => format!("\\x{}", hex(b)),
        };
    }
    type_oid.and_then(|t| types::decode_binary(t, b)).map_or_else(|| format!("\\x{}", hex(b)), |text| escaped(&text))
}

/// `text` with control characters (and backslashes) escaped, so that a recorded value
/// cannot move the cursor or recolour the terminal it is shown on.
fn escaped(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() || c == '\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn table(out: &mut dyn Write, columns: &[String], rows: &[Vec<String>]) -> io::Result<()> {
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|v| v.chars().count())
                .chain([columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let row = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join(" | ");
        row.trim_end().to_owned()
    };
    writeln!(out, "{INDENT}{}", line(columns.iter().map(String::as_str).collect()))?;
    writeln!(out, "{INDENT}{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"))?;
    for r in rows {
        writeln!(out, "{INDENT}{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn message_json(m: &Described) -> Value {
    match m {
        Described::Query(q) => json!({"type": "query", "text": q}),
        Described::Parse { name, query, types } => {
            json!({"type": "parse", "name": name, "text": query, "types": types})
        }
        Described::Bind { portal, statement, .. } => json!({"type": "bind", "portal": portal, "statement": statement}),
        Described::Describe { kind, name } => json!({"type": "describe", "kind": kind.to_string(), "name": name}),
        Described::ParameterDescription(types) => json!({"type": "parameter_description", "types": types}),
        Described::Execute { portal } => json!({"type": "execute", "portal": portal}),
        Described::Sync => json!({"type": "sync"}),
        Described::CopyData(d) => json!({"type": "copy_data", "bytes": d.len()}),
        Described::CopyDone => json!({"type": "copy_done"}),
        Described::Terminate => json!({"type": "terminate"}),
        Described::RowDescription(cols) => json!({"type": "row_description", "columns": cols.iter().map(|c| json!({
            "name": c.name, "table_oid": c.table_oid, "attnum": c.attnum, "type_oid": c.type_oid, "format": c.format})).collect::<Vec<_>>()}),
        Described::DataRow(values) => {
            json!({"type": "data_row", "values": values.iter().map(|v| shown(v, None, false)).collect::<Vec<_>>()})
        }
        Described::CommandComplete(tag) => json!({"type": "command_complete", "tag": tag}),
        Described::Error(f) => json!({"type": "error", "code": f.code(), "message": f.message()}),
        Described::Notice(f) => json!({"type": "notice", "code": f.code(), "message": f.message()}),
        Described::Ready(s) => json!({"type": "ready_for_query", "status": format!("{s:?}")}),
        Described::Other(tag, len) => json!({"type": "other", "tag": tag.to_string(), "bytes": len}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn binary_parameters_are_decoded_by_type_and_unknown_bytes_escaped() {
        let mut t = Transcript::new(10);
        // Parse "s" with types int4 and unknown (0); Bind: both binary.
        let mut parse = b"s\0select $1, $2\0".to_vec();
        parse.extend([0, 2, 0, 0, 0, 23, 0, 0, 0, 0]);
        let mut bind = b"\0s\0".to_vec();
        bind.extend([0, 1, 0, 1, 0, 2, 0, 0, 0, 4, 0, 0, 0, 42, 0, 0, 0, 2, 0, 1, 0, 0]);
        let mut agent = message(b'P', &parse);
        agent.extend(message(b'B', &bind));
        let mut out = Vec::new();
        t.text(true, &agent, 0, "[+0.000s]", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("params: 42, \\x0001"), "{text}");
        assert!(!text.contains('\0'), "{text:?}");
        // A ParameterDescription answering a Describe gives the types too.
        let mut t = Transcript::new(10);
        let mut describe = message(b'P', b"q\0select $1\0\0\0");
        describe.extend(message(b'D', b"Sq\0"));
        t.json(true, &describe);
        t.json(false, &message(b't', &[0, 1, 0, 0, 0, 20]));
        let mut bind = b"\0q\0".to_vec();
        bind.extend([0, 1, 0, 1, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0]);
        let json = t.json(true, &message(b'B', &bind));
        assert_eq!(json[0]["params"], json!(["7"]));
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut t = Transcript::new(10);
        let mut out = Vec::new();
        t.text(true, &message(b'Q', b"select '\x1b[31mred'\0"), 0, "[+0.000s]", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b') && text.contains("\\u{1b}[31mred"), "{text:?}");
    }
}
