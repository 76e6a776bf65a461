//! The recording reader (`airlock::recording`: `format`, `store::scan_bytes`, and the
//! replay renderers), as `airlock verify`, `sessions` and `replay` use it on segment
//! files. Any bytes give frames or an error, never a panic; allocation stays within
//! the format's caps (libFuzzer's `-malloc_limit_mb` catches one that does not).
//!
//! The first input byte picks how the rest is read:
//! - 0: as a segment file, bytes as they are (few get past the CRCs, so this
//!   exercises the framing checks);
//! - 1: as instructions to write a valid segment (header, blocks of frames with any
//!   payloads, footer), then maybe cut or flip one bit. Intact, it reads back exactly
//!   as written: header, frames, hash chain, footer. Cut anywhere, it reads as the
//!   blocks before the cut and a torn tail. With a bit flipped, it is never read
//!   back without an error;
//! - 2: as one block whose CRC the target fixes up, so the fuzzer reaches the
//!   length caps, zstd and the frame decoder. Frames that decode re-encode and
//!   decode to the same frames.
//!
//! Whatever frames come out are rendered by `replay::render_text` and
//! `render_jsonl` through each protocol's transcript: the output is UTF-8, JSON
//! lines are JSON, and nothing that moves a terminal's cursor or hides text (ESC,
//! CR, C1 controls, bidirectional overrides) reaches the reader's terminal.
#![no_main]

use airlock::recording::format::{
    self, BLOCK_MAGIC, Direction, Footer, FormatError, Frame, Hash, Item, Kind, MAX_BLOCK_LEN, SegmentHeader,
    SessionStart,
};
use airlock::recording::index::SessionSummary;
use airlock::recording::{replay, store};
use airlock_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => raw_segment(input.rest()),
        1 => built_segment(input),
        _ => fixed_crc_block(input),
    }
});

fn raw_segment(bytes: &[u8]) {
    let scan = store::scan_bytes(bytes, true);
    check_scan(bytes, &scan);
    let quick = store::scan_bytes(bytes, false);
    if scan.error.is_none() {
        // Decoding frames can only add errors, never change the structure.
        assert_eq!(quick.good_len, scan.good_len);
        assert_eq!(quick.footer, scan.footer);
        assert_eq!(quick.blocks.len(), scan.blocks.len());
    }
    let _ = format::decode_item(bytes);
    let frames: Vec<Frame> = scan.blocks.into_iter().flat_map(|b| b.frames).collect();
    render(&frames);
}

/// What holds for any scan of `bytes`.
fn check_scan(bytes: &[u8], scan: &store::Scan) {
    assert_eq!(scan.file_len, bytes.len() as u64);
    assert!(scan.good_len <= scan.file_len);
    match &scan.header {
        None => {
            assert!(scan.blocks.is_empty() && scan.footer.is_none() && scan.good_len == 0);
            assert!(scan.error.is_some());
        }
        Some(_) => assert!(scan.header_len <= scan.good_len),
    }
    let mut last = None;
    for b in &scan.blocks {
        assert!(b.offset >= scan.header_len && b.offset < scan.good_len);
        assert!(last.is_none_or(|l| b.offset > l), "blocks out of order");
        last = Some(b.offset);
    }
    if scan.error.is_none() {
        assert_eq!(scan.good_len, scan.file_len, "no error, yet not all of the file was read");
    }
    if scan.torn_tail() {
        assert!(scan.footer.is_none());
    }
}

/// A segment written as the recorder writes it, from input-chosen contents.
struct Built {
    bytes: Vec<u8>,
    header: SegmentHeader,
    header_len: usize,
    /// Each block: offset, hash, its frames, and whether its raw run is damaged.
    blocks: Vec<(usize, Hash, Vec<Frame>, bool)>,
    footer: Option<Footer>,
}

const KINDS: [Kind; 9] = [
    Kind::SessionStart,
    Kind::SessionEnd,
    Kind::PgFrontend,
    Kind::PgBackend,
    Kind::SshAgent,
    Kind::SshHost,
    Kind::HttpAgent,
    Kind::HttpUpstream,
    Kind::Verdict,
];

fn build(input: &mut Input<'_>) -> Built {
    let mut header = SegmentHeader {
        segment: u64::from(input.byte()),
        created_us: 1_700_000_000_000_000,
        prev_hash: [input.byte(); 32],
        ..SegmentHeader::default()
    };
    for _ in 0..input.byte() % 3 {
        header.retired.push((u64::from(input.byte()), [input.byte(); 32]));
    }
    header.replica = String::from_utf8_lossy(input.until(0xfe, 64)).into_owned();
    for _ in 0..input.byte() % 3 {
        header.uploaded.push((u64::from(input.byte()), [input.byte(); 32]));
    }
    let mut bytes = header.encode();
    let header_len = bytes.len();
    // The first block names the header's hash.
    let mut prev = header.chain_start(&bytes);
    let mut blocks = Vec::new();
    for _ in 0..input.byte() % 4 {
        let mut frames = Vec::new();
        let mut raw = Vec::new();
        for seq in 0..u64::from(input.byte() % 5) {
            let direction = [Direction::None, Direction::ToUpstream, Direction::ToAgent][usize::from(input.byte() % 3)];
            let frame = Frame {
                session: u64::from(input.byte() % 2),
                seq,
                ts_us: 1_700_000_000_000_000 + u64::from(input.byte()) * 1000,
                direction,
                kind: KINDS[usize::from(input.byte()) % KINDS.len()],
                payload: bytes::Bytes::copy_from_slice(input.until(0xfe, 512)),
            };
            format::encode_frame(&mut raw, &frame);
            frames.push(frame);
        }
        // Now and then a raw run whose frames do not parse, or a wrong frame count.
        let flaw = input.byte();
        let damaged = flaw % 16 == 1 || (flaw % 16 == 2 && !raw.is_empty());
        match flaw % 16 {
            1 => raw.extend_from_slice(b"garbage"),
            2 => raw.truncate(raw.len().saturating_sub(1)),
            _ => {}
        }
        let count = frames.len() as u32 + u32::from(flaw % 16 == 3);
        let (block, hash) = format::encode_block(&raw, count, &prev, 1).expect("zstd compresses");
        blocks.push((bytes.len(), hash, frames, damaged || flaw % 16 == 3));
        bytes.extend_from_slice(&block);
        prev = hash;
    }
    let sealed = input.byte();
    // Unsigned, or an Ed25519-sized signature (the reader looks for both at the end).
    let signature = input.take(usize::from(sealed / 2 % 2) * 64).to_vec();
    let footer = (sealed % 2 == 1).then_some(Footer { blocks: blocks.len() as u64, final_hash: prev, signature });
    if let Some(f) = &footer {
        bytes.extend_from_slice(&f.encode());
    }
    Built { bytes, header, header_len, blocks, footer }
}

fn built_segment(mut input: Input<'_>) {
    let built = build(&mut input);
    let bytes = &built.bytes;
    let damage = input.byte();
    let at = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % bytes.len();
    match damage % 3 {
        0 => {
            let scan = store::scan_bytes(bytes, true);
            check_scan(bytes, &scan);
            assert_eq!(scan.header.as_ref(), Some(&built.header));
            assert_eq!(scan.header_len, built.header_len as u64);
            let bad = built.blocks.iter().position(|b| b.3);
            let good = &built.blocks[..bad.unwrap_or(built.blocks.len())];
            assert_eq!(scan.blocks.len(), good.len(), "{:?}", scan.error);
            let mut chain = built.header.chain_start(&bytes[..built.header_len]);
            for (read, (offset, hash, frames, _)) in scan.blocks.iter().zip(good) {
                assert_eq!((read.offset, read.hash, read.prev_hash), (*offset as u64, *hash, chain));
                assert_eq!(&read.frames, frames);
                chain = read.hash;
            }
            match bad {
                Some(i) => {
                    assert!(scan.error.is_some());
                    assert_eq!(scan.good_len, built.blocks[i].0 as u64);
                }
                None => {
                    assert_eq!(scan.error, None);
                    assert_eq!(scan.footer, built.footer);
                    assert!(!scan.torn_tail());
                    if let Some(f) = &scan.footer {
                        assert_eq!(f.final_hash, chain);
                    }
                }
            }
            let frames: Vec<Frame> = scan.blocks.into_iter().flat_map(|b| b.frames).collect();
            render(&frames);
        }
        1 => {
            // Cut short, as by a crash while appending.
            let cut = &bytes[..at];
            let scan = store::scan_bytes(cut, false);
            check_scan(cut, &scan);
            let whole_items = built.blocks.iter().filter(|b| b.0 + block_len(bytes, b.0) <= at).count();
            if at < built.header_len {
                assert!(scan.header.is_none());
                assert!(matches!(scan.error, Some(FormatError::Truncated(_))));
            } else {
                assert_eq!(scan.blocks.len(), whole_items, "a cut lost whole blocks: {:?}", scan.error);
                let at_boundary =
                    at == built.header_len || built.blocks.iter().any(|b| b.0 + block_len(bytes, b.0) == at);
                if at_boundary {
                    assert_eq!(scan.error, None, "a cut between blocks is a valid unsealed segment");
                } else if !scan.damaged_sealed {
                    assert!(scan.torn_tail(), "a cut inside a block is not seen as torn: {:?}", scan.error);
                }
            }
        }
        _ => {
            // One bit flipped: every byte is under a CRC.
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << (input.byte() % 8);
            let scan = store::scan_bytes(&flipped, false);
            check_scan(&flipped, &scan);
            assert!(scan.error.is_some(), "a flipped bit at {at} went unnoticed");
        }
    }
}

/// The length of the block at `offset` of `bytes`.
fn block_len(bytes: &[u8], offset: usize) -> usize {
    match format::decode_item(&bytes[offset..]) {
        Ok(Item::Block { len, .. }) => len,
        other => panic!("no block at {offset}: {other:?}"),
    }
}

fn fixed_crc_block(mut input: Input<'_>) {
    let raw_len = u32::from_le_bytes([input.byte(), input.byte(), input.byte(), input.byte()]);
    let frames = u32::from(input.byte());
    let prev_hash = [input.byte(); 32];
    let payload = input.rest();
    let mut bytes = BLOCK_MAGIC.to_vec();
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&raw_len.to_le_bytes());
    bytes.extend_from_slice(&frames.to_le_bytes());
    bytes.extend_from_slice(&prev_hash);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes), payload);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(payload);

    let item = format::decode_item(&bytes);
    if raw_len as usize > MAX_BLOCK_LEN {
        assert!(matches!(item, Err(FormatError::TooLarge(..))), "{item:?}");
        return;
    }
    let Ok(Item::Block { header, payload: read, len, .. }) = item else { panic!("a well-formed block: {item:?}") };
    assert_eq!((read, len, header.raw_len, header.frames), (payload, bytes.len(), raw_len as usize, frames));
    let Ok(decoded) = format::decode_frames(&header, read) else { return };
    assert_eq!(decoded.len(), frames as usize);
    let mut raw = Vec::new();
    decoded.iter().for_each(|f| format::encode_frame(&mut raw, f));
    assert_eq!(raw.len(), raw_len as usize, "frames re-encode to another length");
    let (block, _) = format::encode_block(&raw, frames, &prev_hash, 1).expect("zstd compresses");
    let Ok(Item::Block { header, payload, .. }) = format::decode_item(&block) else { panic!("our own block") };
    assert_eq!(format::decode_frames(&header, payload).as_ref(), Ok(&decoded));
    render(&decoded);
}

/// Renders `frames` as `airlock replay` does, for every protocol's transcript.
fn render(frames: &[Frame]) {
    // The session's names, as `airlock sessions` reads them from its first frame.
    let start: SessionStart = frames
        .iter()
        .find(|f| f.kind == Kind::SessionStart)
        .and_then(|f| serde_json::from_slice(&f.payload).ok())
        .unwrap_or_default();
    for protocol in ["postgres", "ssh", "http", "none"] {
        let mut summary = SessionSummary::started(
            "0000000000000001".into(),
            frames.first().map_or(0, |f| f.ts_us),
            start.clone(),
            (0, 0),
        );
        summary.protocol = protocol.into();
        let mut out = Vec::new();
        replay::render_text(&summary, frames, &mut *airlock::plugins::transcript(protocol, 3), &mut out)
            .expect("writing to memory");
        airlock_fuzz::assert_terminal_safe(&out, &format!("{protocol} replay"));
        let mut out = Vec::new();
        replay::render_jsonl(frames, &mut *airlock::plugins::transcript(protocol, 3), &mut out)
            .expect("writing to memory");
        airlock_fuzz::assert_terminal_safe(&out, &format!("{protocol} replay"));
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            assert!(serde_json::from_slice::<serde_json::Value>(line).is_ok(), "a JSON line that is not JSON");
        }
        // The console's page of it: recorded bytes never become markup or script.
        let html = airlock::console::transcript_html(&airlock::console::replay::Replay::from_frames(summary, frames));
        assert_markup_is_ours(&html);
    }
}

/// Every element in the console's transcript is one the page renders itself: a
/// recording can put text in it, never a tag, an attribute or a script.
fn assert_markup_is_ours(html: &str) {
    const TAGS: &[&str] = &[
        "div", "span", "pre", "code", "ol", "li", "p", "table", "thead", "tbody", "tr", "th", "td", "details",
        "summary", "h3", "em", "b", "q", "script",
    ];
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let name: String = rest.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(TAGS.contains(&name.as_str()), "markup <{name}> in the console's transcript: {html}");
        if name == "script" && !rest.starts_with('/') {
            assert!(rest.starts_with("script id=\"cast\" type=\"application/json\">"), "a script element: {html}");
            let body = &rest[rest.find('>').map_or(0, |i| i + 1)..];
            let end = body.find("</script>").expect("the cast's script element ends");
            assert!(!body[..end].contains('<'), "a '<' inside the cast's JSON: {html}");
        }
    }
}
