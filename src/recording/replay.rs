//! `airlock replay`: a session's frames back as a readable transcript or JSON lines.

use std::io::Write;
use std::path::Path;

use airlock_postgres::describe::{self, Described};
use airlock_postgres::{Chunk, Disposition, Scanner};
use bytes::BytesMut;
use serde_json::{Value, json};

use super::format::{Direction, Frame, Kind};
use super::index::{self, SessionSummary};
use super::store;

/// Finds a session by id (or unique id prefix) and loads its frames in order.
pub fn load(dir: &Path, id: &str) -> anyhow::Result<(SessionSummary, Vec<Frame>)> {
    let sessions = index::sessions(dir)?;
    let matching: Vec<&SessionSummary> = sessions.iter().filter(|s| s.id.starts_with(id)).collect();
    let summary = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => anyhow::bail!("no session {id:?} in {} (see `airlock sessions`)", dir.display()),
        _ => anyhow::bail!("{id:?} matches {} sessions; give more of the id", matching.len()),
    };
    let session = u64::from_str_radix(&summary.id, 16)?;
    let (first_segment, first_offset) = summary.start_at;
    let last_segment = match summary.end_at {
        Some((s, _)) => s,
        None => store::list_segments(dir)?.last().copied().unwrap_or(first_segment),
    };
    let mut frames = Vec::new();
    for n in store::list_segments(dir)?.into_iter().filter(|n| (first_segment..=last_segment).contains(n)) {
        let scan = store::scan(&store::segment_path(dir, n), true)?;
        for block in scan.blocks.into_iter().filter(|b| n > first_segment || b.offset >= first_offset) {
            frames.extend(block.frames.into_iter().filter(|f| f.session == session));
        }
    }
    frames.sort_by_key(|f| f.seq);
    Ok((summary, frames))
}

/// Splits a direction's recorded bytes into decoded messages, carrying partial
/// messages across frames.
struct Decoder {
    buf: BytesMut,
    scanner: Scanner,
    frontend: bool,
}

impl Decoder {
    fn new(frontend: bool) -> Self {
        Decoder { buf: BytesMut::new(), scanner: Scanner::new(airlock_postgres::frame::MAX_MESSAGE_LEN), frontend }
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Described> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Ok(Some(Chunk::Frame(f))) = self.scanner.next(&mut self.buf, &mut |_| Disposition::Whole) {
            let d = if self.frontend {
                describe::frontend(f.tag(), f.body())
            } else {
                describe::backend(f.tag(), f.body())
            };
            out.push(d.unwrap_or(Described::Other(f.tag() as char, f.body().len())));
        }
        out
    }
}

fn text(v: &Option<Vec<u8>>) -> String {
    match v {
        None => "NULL".into(),
        Some(b) => String::from_utf8(b.clone()).unwrap_or_else(|_| format!("\\x{}", hex::encode(b))),
    }
}

fn time(us: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
}

/// Writes a psql-like transcript of a Postgres session.
pub fn render_text(
    summary: &SessionSummary,
    frames: &[Frame],
    max_rows: usize,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "session {} · {} via {} ({}) from {} · started {}{}",
        summary.id,
        summary.subject,
        summary.connection,
        summary.protocol,
        summary.client,
        time(summary.start_us),
        summary.duration_ms.map(|d| format!(" · {d} ms")).unwrap_or_else(|| " · still open or cut short".into())
    )?;
    let start = summary.start_us;
    let (mut front, mut back) = (Decoder::new(true), Decoder::new(false));
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut shown_rows = 0usize;
    let mut sent_at = start;
    for f in frames {
        let at = format!("[+{:.3}s]", f.ts_us.saturating_sub(start) as f64 / 1e6);
        match f.kind {
            Kind::PgFrontend => {
                for m in front.feed(&f.payload) {
                    match m {
                        Described::Query(q) => {
                            sent_at = f.ts_us;
                            writeln!(out, "{at} {}", q.trim())?;
                        }
                        Described::Parse { name, query } => {
                            sent_at = f.ts_us;
                            let label = if name.is_empty() { String::new() } else { format!(" [{name}]") };
                            writeln!(out, "{at} PARSE{label} {}", query.trim())?;
                        }
                        Described::Bind { params, .. } if !params.is_empty() => {
                            writeln!(
                                out,
                                "           params: {}",
                                params.iter().map(text).collect::<Vec<_>>().join(", ")
                            )?;
                        }
                        Described::CopyData(d) => writeln!(out, "           copy in: {} bytes", d.len())?,
                        _ => {}
                    }
                }
            }
            Kind::PgBackend => {
                for m in back.feed(&f.payload) {
                    match m {
                        Described::RowDescription(cols) => {
                            columns = cols.into_iter().map(|c| c.name).collect();
                            rows.clear();
                            shown_rows = 0;
                        }
                        Described::DataRow(values) => {
                            if shown_rows < max_rows {
                                rows.push(values.iter().map(text).collect());
                            }
                            shown_rows += 1;
                        }
                        Described::CommandComplete(tag) => {
                            if !columns.is_empty() {
                                table(out, &columns, &rows)?;
                                if shown_rows > rows.len() {
                                    writeln!(out, "           ... {} more rows", shown_rows - rows.len())?;
                                }
                            }
                            let ms = f.ts_us.saturating_sub(sent_at) as f64 / 1000.0;
                            writeln!(out, "           {tag} ({ms:.1} ms)")?;
                            columns.clear();
                            rows.clear();
                        }
                        Described::Error(fields) => {
                            writeln!(out, "{at} ERROR {}: {}", fields.code(), fields.message())?;
                        }
                        Described::Notice(fields) => writeln!(out, "           NOTICE: {}", fields.message())?,
                        _ => {}
                    }
                }
            }
            Kind::SessionEnd => {
                let v: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
                let reason = match v.get("reason").and_then(Value::as_str).unwrap_or("?") {
                    "Terminated" => "the agent said goodbye (Terminate)",
                    "AgentClosed" => "the agent closed its connection",
                    "UpstreamClosed" => "the upstream closed its connection",
                    "Drained" => "Airlock drained the session for shutdown",
                    "Aborted" => "Airlock's shutdown grace period ran out",
                    other => other,
                };
                writeln!(out, "{at} session ended: {reason}")?;
            }
            Kind::Verdict => {
                let v: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let id = v.get("approval").and_then(Value::as_str).map(|id| format!(" [{id}]")).unwrap_or_default();
                let by = v.get("by").and_then(Value::as_str).map(|b| format!(" by {b}")).unwrap_or_default();
                let detail = match field("event").as_str() {
                    "counted" => format!("{} rows (max {}), {}", v["rows"], v["max_rows"], field("outcome")),
                    _ => format!("{} (rule {})", field("reason"), field("rule")),
                };
                writeln!(out, "{at} POLICY {}{id}{by}: {detail}", field("event"))?;
                if let Some(statement) = v.get("statement").and_then(Value::as_str) {
                    writeln!(out, "           statement: {statement}")?;
                }
            }
            Kind::SessionStart => {}
        }
    }
    Ok(())
}

fn table(out: &mut impl Write, columns: &[String], rows: &[Vec<String>]) -> std::io::Result<()> {
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
    writeln!(out, "           {}", line(columns.iter().map(String::as_str).collect()))?;
    writeln!(out, "           {}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"))?;
    for r in rows {
        writeln!(out, "           {}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn message_json(m: &Described) -> Value {
    match m {
        Described::Query(q) => json!({"type": "query", "text": q}),
        Described::Parse { name, query } => json!({"type": "parse", "name": name, "text": query}),
        Described::Bind { portal, statement, params } => {
            json!({"type": "bind", "portal": portal, "statement": statement, "params": params.iter().map(|p| p.as_ref().map(|_| text(p))).collect::<Vec<_>>()})
        }
        Described::Execute { portal } => json!({"type": "execute", "portal": portal}),
        Described::Sync => json!({"type": "sync"}),
        Described::CopyData(d) => json!({"type": "copy_data", "bytes": d.len()}),
        Described::CopyDone => json!({"type": "copy_done"}),
        Described::Terminate => json!({"type": "terminate"}),
        Described::RowDescription(cols) => json!({"type": "row_description", "columns": cols.iter().map(|c| json!({
            "name": c.name, "table_oid": c.table_oid, "attnum": c.attnum, "type_oid": c.type_oid, "format": c.format})).collect::<Vec<_>>()}),
        Described::DataRow(values) => {
            json!({"type": "data_row", "values": values.iter().map(|v| v.as_ref().map(|_| text(v))).collect::<Vec<_>>()})
        }
        Described::CommandComplete(tag) => json!({"type": "command_complete", "tag": tag}),
        Described::Error(f) => json!({"type": "error", "code": f.code(), "message": f.message()}),
        Described::Notice(f) => json!({"type": "notice", "code": f.code(), "message": f.message()}),
        Described::Ready(s) => json!({"type": "ready_for_query", "status": format!("{s:?}")}),
        Described::Other(tag, len) => json!({"type": "other", "tag": tag.to_string(), "bytes": len}),
    }
}

/// Writes one JSON object per frame.
pub fn render_jsonl(frames: &[Frame], out: &mut impl Write) -> std::io::Result<()> {
    let (mut front, mut back) = (Decoder::new(true), Decoder::new(false));
    for f in frames {
        let mut v = json!({
            "session": index::session_name(f.session),
            "seq": f.seq,
            "ts_us": f.ts_us,
            "direction": f.direction.as_str(),
            "kind": f.kind.as_str(),
        });
        match f.kind {
            Kind::PgFrontend => v["messages"] = front.feed(&f.payload).iter().map(message_json).collect(),
            Kind::PgBackend => v["messages"] = back.feed(&f.payload).iter().map(message_json).collect(),
            Kind::SessionStart | Kind::SessionEnd | Kind::Verdict => {
                v["info"] = serde_json::from_slice(&f.payload).unwrap_or(Value::Null)
            }
        }
        debug_assert!(
            f.direction != Direction::None || matches!(f.kind, Kind::SessionStart | Kind::SessionEnd | Kind::Verdict)
        );
        writeln!(out, "{v}")?;
    }
    Ok(())
}
