//! A recorded SSH session as asciicast v2 (<https://docs.asciinema.org/manual/asciicast/v2/>),
//! so `asciinema play` shows what the agent saw.

use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::record::{Event, Stream};

/// Writes one channel of a session as asciicast v2: a header line, then one event line
/// per output chunk (`"o"`), input chunk (`"i"`) and resize (`"r"`).
///
/// `events` are `(ts_us, from_agent, payload)` in order, `start_us` the session's start
/// (µs since the epoch). The channel cast is the first with a `Pty` event, else the
/// first shell or exec channel; its size is the pseudo-terminal's (default 80x24). An
/// exec channel without a pseudo-terminal has its bare LFs played as CRLF, as a
/// terminal would have shown them. Damaged payloads are skipped.
pub fn asciicast<'a>(
    start_us: u64,
    events: impl IntoIterator<Item = (u64, bool, &'a [u8])>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let events: Vec<(u64, Event<'a>)> =
        events.into_iter().filter_map(|(ts, _, payload)| Event::decode(payload).ok().map(|e| (ts, e))).collect();
    let pty = events.iter().find_map(|(_, e)| match *e {
        Event::Pty { channel, cols, rows, term } => Some((channel, cols, rows, term)),
        _ => None,
    });
    let channel = pty.map(|p| p.0).or_else(|| {
        events.iter().find_map(|(_, e)| matches!(e, Event::Shell { .. } | Event::Exec { .. }).then(|| e.channel()))
    });

    let mut header = Map::new();
    header.insert("version".into(), 2.into());
    header.insert("width".into(), pty.map_or(80, |p| p.1).into());
    header.insert("height".into(), pty.map_or(24, |p| p.2).into());
    header.insert("timestamp".into(), (start_us / 1_000_000).into());
    if let Some((_, _, _, term)) = pty {
        header.insert("env".into(), json!({"TERM": term}));
    }
    let command = events.iter().find_map(|(_, e)| match *e {
        Event::Exec { channel: c, command } if Some(c) == channel => Some(command),
        _ => None,
    });
    if let Some(command) = command {
        header.insert("command".into(), command.into());
    }
    writeln!(out, "{}", Value::Object(header))?;

    let Some(channel) = channel else { return Ok(()) };
    let crlf = pty.is_none();
    let (mut stdout, mut stderr, mut stdin) = (Carry::default(), Carry::default(), Carry::default());
    let mut last = 0.0f64;
    for (ts, event) in &events {
        if event.channel() != channel {
            continue;
        }
        // Times never run backwards, even if the recorder's clock did.
        let t = (ts.saturating_sub(start_us) as f64 / 1e6).max(last);
        let (code, data) = match *event {
            Event::Data { stream: Stream::Out, bytes, .. } => ("o", stdout.decode(bytes, crlf)),
            Event::Data { stream: Stream::Err, bytes, .. } => ("o", stderr.decode(bytes, crlf)),
            Event::Data { stream: Stream::In, bytes, .. } => ("i", stdin.decode(bytes, false)),
            Event::Resize { cols, rows, .. } => ("r", format!("{cols}x{rows}")),
            _ => continue,
        };
        if !data.is_empty() {
            writeln!(out, "{}", json!([t, code, data]))?;
            last = t;
        }
    }
    // Bytes of a character the session never finished.
    for (code, carry) in [("o", &mut stdout), ("o", &mut stderr), ("i", &mut stdin)] {
        if !carry.held.is_empty() {
            writeln!(out, "{}", json!([last, code, String::from_utf8_lossy(&carry.held)]))?;
        }
    }
    Ok(())
}

/// Decodes one stream's chunks as UTF-8, carrying a character split between chunks
/// to the next one; only truly invalid bytes become U+FFFD.
#[derive(Debug, Default)]
struct Carry {
    held: Vec<u8>,
    /// The last character written was CR (for LF to CRLF).
    after_cr: bool,
}

impl Carry {
    fn decode(&mut self, bytes: &[u8], crlf: bool) -> String {
        self.held.extend_from_slice(bytes);
        let mut text = String::with_capacity(self.held.len());
        let mut rest: &[u8] = &self.held;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            text.push('\u{fffd}');
                            rest = after.get(bad..).unwrap_or_default();
                        }
                        // An incomplete character at the end: wait for the rest.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.held = rest.to_vec();
        if !crlf {
            return text;
        }
        let mut out = String::with_capacity(text.len() + text.len() / 16);
        for c in text.chars() {
            if c == '\n' && !self.after_cr {
                out.push('\r');
            }
            self.after_cr = c == '\r';
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast(events: &[(u64, bool, Event)]) -> Vec<Value> {
        let payloads: Vec<(u64, bool, Vec<u8>)> = events.iter().map(|(t, a, e)| (*t, *a, e.encode())).collect();
        let mut out = Vec::new();
        asciicast(1_700_000_000_000_000, payloads.iter().map(|(t, a, p)| (*t, *a, &p[..])), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    const T0: u64 = 1_700_000_000_000_000;

    #[test]
    fn casts_the_pty_channel() {
        let lines = cast(&[
            (T0, true, Event::Exec { channel: 0, command: "true" }),
            (T0 + 1, false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"other channel" }),
            (T0 + 10, true, Event::Pty { channel: 1, cols: 120, rows: 40, term: "xterm-256color" }),
            (T0 + 20, true, Event::Shell { channel: 1 }),
            (T0 + 500_000, false, Event::Data { channel: 1, stream: Stream::Out, bytes: b"$ \xe2\x82" }),
            (T0 + 600_000, true, Event::Data { channel: 1, stream: Stream::In, bytes: b"ls\r" }),
            (T0 + 700_000, false, Event::Data { channel: 1, stream: Stream::Out, bytes: b"\xac\xff\n" }),
            (T0 + 800_000, false, Event::Data { channel: 1, stream: Stream::Err, bytes: b"oops\n" }),
            (T0 + 1_250_000, true, Event::Resize { channel: 1, cols: 100, rows: 30 }),
            (T0 + 1_300_000, true, Event::Line { channel: 1, line: "ls" }),
        ]);
        assert_eq!(
            lines,
            vec![
                json!({"version": 2, "width": 120, "height": 40, "timestamp": 1_700_000_000, "env": {"TERM": "xterm-256color"}}),
                json!([0.5, "o", "$ "]),
                json!([0.6, "i", "ls\r"]),
                json!([0.7, "o", "€\u{fffd}\n"]),
                json!([0.8, "o", "oops\n"]),
                json!([1.25, "r", "100x30"]),
            ]
        );
    }

    #[test]
    fn an_exec_session_plays_with_crlf() {
        let lines = cast(&[
            (T0, true, Event::Exec { channel: 0, command: "printf 'a\\nb\\r\\n'" }),
            (T0 + 1000, false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"a\nb\r" }),
            (T0 + 2000, false, Event::Data { channel: 0, stream: Stream::Out, bytes: b"\n\xe6" }),
            (T0 + 3000, false, Event::Exit { channel: 0, status: 0 }),
        ]);
        assert_eq!(
            lines,
            vec![
                json!({"version": 2, "width": 80, "height": 24, "timestamp": 1_700_000_000, "command": "printf 'a\\nb\\r\\n'"}),
                json!([0.001, "o", "a\r\nb\r"]),
                json!([0.002, "o", "\n"]),
                json!([0.002, "o", "\u{fffd}"]),
            ]
        );
    }

    #[test]
    fn no_session_gives_a_header_only_and_damage_is_skipped() {
        let mut out = Vec::new();
        asciicast(T0, [(T0, true, &b"\xff"[..]), (T0, false, &b""[..])], &mut out).unwrap();
        let header: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(header, json!({"version": 2, "width": 80, "height": 24, "timestamp": 1_700_000_000}));
    }

    #[test]
    fn carry_keeps_split_characters_whole() {
        let mut c = Carry::default();
        let s = "日本語 🦀".as_bytes();
        let mut text = String::new();
        for b in s {
            text.push_str(&c.decode(std::slice::from_ref(b), false));
        }
        assert_eq!(text, "日本語 🦀");
        assert_eq!(c.decode(b"\xc3(\xf0\x9f", false), "\u{fffd}(");
        assert_eq!(c.held, b"\xf0\x9f");
    }

    /// Plays the cast with `asciinema cat` when it is installed. `asciinema cat` needs a
    /// terminal, so it runs under `script`, which gives it one; it puts that terminal in
    /// raw mode, so the bytes come back untranslated.
    #[test]
    fn asciinema_reads_it() {
        let found =
            |bin: &str| std::process::Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success());
        if !found("asciinema") || !found("script") {
            eprintln!("skipped: asciinema or script is not installed");
            return;
        }
        let events = [
            Event::Pty { channel: 0, cols: 80, rows: 24, term: "xterm" },
            Event::Shell { channel: 0 },
            Event::Data { channel: 0, stream: Stream::Out, bytes: b"h\xc3" },
            Event::Data { channel: 0, stream: Stream::Out, bytes: b"\xa9llo \"w\"\r\n\x1b[1mb\x1b[0m\r\n" },
            Event::Data { channel: 0, stream: Stream::In, bytes: b"typed" },
        ];
        let payloads: Vec<Vec<u8>> = events.iter().map(Event::encode).collect();
        let mut cast = Vec::new();
        asciicast(T0, payloads.iter().enumerate().map(|(i, p)| (T0 + i as u64 * 1000, false, &p[..])), &mut cast)
            .unwrap();
        let path = std::env::temp_dir().join(format!("airlock-cast-{}.cast", std::process::id()));
        std::fs::write(&path, &cast).unwrap();
        let out = std::process::Command::new("script")
            .args(["-qec", &format!("asciinema cat '{}'", path.display()), "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "héllo \"w\"\r\n\x1b[1mb\x1b[0m\r\n");
    }
}
