//! `airlock replay`: a session's frames back as a readable transcript or JSON lines.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::format::{Direction, Frame, Kind, PolicyEvent, SessionEnd, VerdictEvent};
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
    let here = store::list_segments(dir)?;
    // A session read from part of its segments would look shorter than it was.
    if let Some(gone) = (first_segment..=last_segment).find(|n| !here.contains(n)) {
        anyhow::bail!(
            "session {} spans segments {first_segment} to {last_segment}, and segment {gone} is not in {} \
             (retired, or uploaded to object storage: replay with a --config that has [recording.remote])",
            summary.id,
            dir.display()
        );
    }
    let mut frames = Vec::new();
    for n in here.into_iter().filter(|n| (first_segment..=last_segment).contains(n)) {
        let scan = store::scan(&store::segment_path(dir, n), true)?;
        for block in scan.blocks.into_iter().filter(|b| n > first_segment || b.offset >= first_offset) {
            frames.extend(block.frames.into_iter().filter(|f| f.session == session));
        }
    }
    frames.sort_by_key(|f| f.seq);
    Ok((summary, frames))
}

/// How a protocol's recorded traffic reads. Each protocol crate has its transcript;
/// [`crate::plugins::transcript`] picks it by the session's protocol.
pub trait Transcript {
    /// Writes the text lines for `bytes` recorded at `ts_us` (µs since the epoch),
    /// sent by the agent or to it; `at` labels the time.
    fn text(
        &mut self,
        from_agent: bool,
        bytes: &[u8],
        ts_us: u64,
        at: &str,
        out: &mut dyn Write,
    ) -> std::io::Result<()>;
    /// One JSON object per message in `bytes`.
    fn json(&mut self, from_agent: bool, bytes: &[u8]) -> Vec<Value>;
    /// Writes what is still held back at the end of the session (`at` labels it).
    fn finish(&mut self, at: &str, out: &mut dyn Write) -> std::io::Result<()> {
        let _ = (at, out);
        Ok(())
    }
}

/// Traffic of a protocol this Airlock has no transcript for: sizes only.
pub struct Opaque;

impl Transcript for Opaque {
    fn text(&mut self, from_agent: bool, bytes: &[u8], _: u64, at: &str, out: &mut dyn Write) -> std::io::Result<()> {
        let way = if from_agent { "from the agent" } else { "to the agent" };
        writeln!(out, "{at} {} bytes {way}", bytes.len())
    }

    fn json(&mut self, _: bool, bytes: &[u8]) -> Vec<Value> {
        vec![json!({"type": "bytes", "bytes": bytes.len()})]
    }
}

/// Recorded text for a line of its own: control characters escaped (`\u{1b}`, `\n`),
/// so that it cannot steer the reader's terminal or start a line of its own. (The
/// subject, a reason or an approver's name can hold anything the recording holds.)
fn shown(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

fn time(us: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us)).to_string()
}

/// Writes a psql-like transcript of a Postgres session.
pub fn render_text(
    summary: &SessionSummary,
    frames: &[Frame],
    traffic: &mut dyn Transcript,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let out = &mut TerminalSafe(out);
    writeln!(
        out,
        "session {} · {} via {} ({}) from {} · started {}{}",
        shown(&summary.id),
        shown(&summary.subject),
        shown(&summary.connection),
        shown(&summary.protocol),
        shown(&summary.client),
        time(summary.start_us),
        summary.duration_ms.map(|d| format!(" · {d} ms")).unwrap_or_else(|| " · still open or cut short".into())
    )?;
    let start = summary.start_us;
    for f in frames {
        let at = format!("[+{:.3}s]", f.ts_us.saturating_sub(start) as f64 / 1e6);
        match f.kind {
            kind if kind.is_traffic() => {
                traffic.text(f.direction == Direction::ToUpstream, &f.payload, f.ts_us, &at, out)?
            }
            Kind::SessionEnd => {
                let end: SessionEnd = serde_json::from_slice(&f.payload).unwrap_or_default();
                let reason = match end.reason.as_str() {
                    "Terminated" => "the agent said goodbye (Terminate)",
                    "AgentClosed" => "the agent closed its connection",
                    "UpstreamClosed" => "the upstream closed its connection",
                    "Drained" => "Airlock drained the session for shutdown",
                    "Aborted" => "Airlock's shutdown grace period ran out",
                    other => other,
                };
                writeln!(out, "{at} session ended: {}", shown(reason))?;
            }
            Kind::Verdict => {
                let v: VerdictEvent = serde_json::from_slice(&f.payload).unwrap_or_default();
                let id = v.approval.as_ref().map(|id| format!(" [{id}]")).unwrap_or_default();
                let by = v.by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default();
                let detail = match v.event {
                    PolicyEvent::Counted => format!(
                        "{} rows (max {}), {}",
                        v.rows.map_or("?".into(), |r| r.to_string()),
                        v.max_rows.map_or("?".into(), |r| r.to_string()),
                        v.outcome.as_deref().unwrap_or("?")
                    ),
                    _ => match &v.approver_reason {
                        Some(why) => format!("{why} (held by rule {}: {})", v.rule, v.reason),
                        None => format!("{} (rule {})", v.reason, v.rule),
                    },
                };
                writeln!(out, "{at} POLICY {}{}{}: {}", v.event.as_str(), shown(&id), shown(&by), shown(&detail))?;
                if !v.statement.is_empty() {
                    writeln!(out, "           statement: {}", v.statement.escape_debug())?;
                }
            }
            // The session's start is the header line above; traffic is handled first.
            _ => {}
        }
    }
    let end = frames.last().map_or(start, |f| f.ts_us);
    traffic.finish(&format!("[+{:.3}s]", end.saturating_sub(start) as f64 / 1e6), out)
}

/// Writes one JSON object per frame.
pub fn render_jsonl(frames: &[Frame], traffic: &mut dyn Transcript, out: &mut impl Write) -> std::io::Result<()> {
    let out = &mut TerminalSafe(out);
    for f in frames {
        let mut v = json!({
            "session": index::session_name(f.session),
            "seq": f.seq,
            "ts_us": f.ts_us,
            "direction": f.direction.as_str(),
            "kind": f.kind.as_str(),
        });
        if f.kind.is_traffic() {
            v["messages"] = traffic.json(f.direction == Direction::ToUpstream, &f.payload).into();
        } else {
            v["info"] = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
        }
        // A recording is read as found: a frame whose direction does not fit its kind
        // (Airlock writes none) is shown as it is, not asserted away.
        writeln!(out, "{v}")?;
    }
    Ok(())
}

/// Output a terminal shows as it is: characters that steer, reorder or hide text (see
/// [`hides_text`]) are written as JSON escapes (`\uXXXX`, a surrogate pair past the
/// first plane), which inside a JSON string read back as the same character. In text
/// output they show where the recording held them. The SSH and HTTP transcripts
/// write recorded output raw and rely on this; the Postgres one escapes its own.
struct TerminalSafe<W>(W);

/// Whether a terminal could be made to show something other than what was recorded:
/// C0 controls but line feed and tab (ESC starts the sequences that move the cursor,
/// recolour, retitle or write the clipboard; CR and BS overwrite), DEL and C1
/// controls, bidirectional and other format controls, line and paragraph separators,
/// characters that draw nothing (default-ignorable, fillers and blanks) or over their
/// neighbours, and private-use characters.
pub fn hides_text(c: char) -> bool {
    matches!(
        c,
        '\0'..='\u{8}'
            | '\u{b}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
            // Signs that draw over or around what follows them, and format controls.
            | '\u{600}'..='\u{605}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1345f}'
            // Private use: what they draw is up to the terminal's font.
            | '\u{e000}'..='\u{f8ff}'
            | '\u{f0000}'..='\u{10ffff}'
    )
}

/// `c` as a JSON escape: `\uXXXX`, or a surrogate pair past the first plane.
fn escape(c: char) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04x}")).collect()
}

impl<W: Write> Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) if text.chars().any(hides_text) => {
                let mut safe = String::with_capacity(text.len() + 16);
                for c in text.chars() {
                    if hides_text(c) {
                        safe.push_str(&escape(c));
                    } else {
                        safe.push(c);
                    }
                }
                self.0.write_all(safe.as_bytes())?;
                Ok(buf.len())
            }
            _ => self.0.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_names_and_reasons_cannot_steer_the_terminal() {
        // Found by the `recording` fuzz target: the header line and policy lines wrote
        // the recorded subject, reasons and approver as they were, escapes included.
        let summary = SessionSummary {
            id: "0000000000000001".into(),
            start_us: 0,
            duration_ms: None,
            subject: "agent\u{1b}[2J".into(),
            connection: "app-db".into(),
            protocol: "postgres".into(),
            client: "127.0.0.1:5000".into(),
            statements: None,
            end_reason: None,
            bytes_to_upstream: None,
            bytes_to_agent: None,
            verdicts: Default::default(),
            start_at: (0, 0),
            end_at: None,
            replica: None,
        };
        let verdict = VerdictEvent {
            event: PolicyEvent::Held,
            reason: "held\r\n[+0.000s] POLICY approved".into(),
            by: Some("ops\u{1b}]0;pwned\u{7}".into()),
            ..VerdictEvent::default()
        };
        let end = SessionEnd { reason: "upstream said \u{1b}[31mno".into(), ..SessionEnd::default() };
        let frame = |kind, payload: Vec<u8>| Frame {
            session: 1,
            seq: 0,
            ts_us: 0,
            direction: Direction::None,
            kind,
            payload: payload.into(),
        };
        let frames = [
            frame(Kind::Verdict, serde_json::to_vec(&verdict).unwrap()),
            frame(Kind::SessionEnd, serde_json::to_vec(&end).unwrap()),
        ];
        let mut out = Vec::new();
        render_text(&summary, &frames, &mut Opaque, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "session 0000000000000001 · agent\\u{1b}[2J via app-db (postgres) from 127.0.0.1:5000 \
             · started 1970-01-01T00:00:00.000Z · still open or cut short\n\
             [+0.000s] POLICY held by ops\\u{1b}]0;pwned\\u{7}: held\\r\\n[+0.000s] POLICY approved (rule )\n\
             [+0.000s] session ended: upstream said \\u{1b}[31mno\n"
        );
    }

    /// A transcript that writes recorded bytes as they are, as the SSH and HTTP
    /// transcripts do with output.
    struct Raw;

    impl Transcript for Raw {
        fn text(&mut self, _: bool, bytes: &[u8], _: u64, at: &str, out: &mut dyn Write) -> std::io::Result<()> {
            write!(out, "{at} ")?;
            out.write_all(bytes)?;
            writeln!(out)
        }

        fn json(&mut self, _: bool, _: &[u8]) -> Vec<Value> {
            Vec::new()
        }
    }

    #[test]
    fn recorded_output_cannot_steer_the_terminal() {
        // Found by the `recording` fuzz target: SSH output reached the terminal with
        // its control characters, since the transcript leaves escaping to the caller.
        let summary = SessionSummary {
            id: "0000000000000002".into(),
            start_us: 0,
            duration_ms: Some(1),
            subject: "agent".into(),
            connection: "host".into(),
            protocol: "ssh".into(),
            client: "127.0.0.1:5000".into(),
            statements: None,
            end_reason: None,
            bytes_to_upstream: None,
            bytes_to_agent: None,
            verdicts: Default::default(),
            start_at: (0, 0),
            end_at: None,
            replica: None,
        };
        let frame = Frame {
            session: 2,
            seq: 0,
            ts_us: 0,
            direction: Direction::ToAgent,
            kind: Kind::SshHost,
            payload: bytes::Bytes::from_static(b"\x1b]52;c;cHduZWQ=\x07ok\r\tdone\0"),
        };
        let mut out = Vec::new();
        render_text(&summary, &[frame], &mut Raw, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().nth(1), Some("[+0.000s] \\u001b]52;c;cHduZWQ=\\u0007ok\\u000d\tdone\\u0000"));
    }

    #[test]
    fn a_frame_whose_direction_does_not_fit_its_kind_is_shown() {
        // Found by the `recording` fuzz target: a debug assertion on the file's
        // contents panicked `airlock replay --json` in debug builds.
        let frame = Frame {
            session: 1,
            seq: 0,
            ts_us: 0,
            direction: Direction::None,
            kind: Kind::PgFrontend,
            payload: bytes::Bytes::from_static(b"x"),
        };
        let mut out = Vec::new();
        render_jsonl(&[frame], &mut Opaque, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!((v["direction"].as_str(), v["kind"].as_str()), (Some("none"), Some("pg_frontend")));
        assert_eq!(v["messages"], json!([{"type": "bytes", "bytes": 1}]));
    }

    #[test]
    fn what_would_reorder_or_hide_text_is_escaped() {
        let mut out = Vec::new();
        TerminalSafe(&mut out).write_all("a\u{202e}b\u{9b}c\u{2028}d é".as_bytes()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\\u202eb\\u009bc\\u2028d é");
        let line = serde_json::json!({"v": "x\u{202e}y\u{e0041}\u{7f}z"}).to_string();
        let mut out = Vec::new();
        TerminalSafe(&mut out).write_all(line.as_bytes()).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["v"], "x\u{202e}y\u{e0041}\u{7f}z", "the same value in JSON");
        assert!(out.iter().all(|b| b.is_ascii_graphic() || *b == b' '), "{}", String::from_utf8_lossy(&out));
    }
}
