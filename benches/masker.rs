//! Masker throughput on realistic text (build logs, query output, config dumps with
//! the occasional secret), whole-text and streamed in 4 KiB chunks; single values in
//! cache; and 100k customer rows value by value, as result masking sees them:
//! `cargo bench --bench masker`. Each figure is the median of 7 runs, timed in this
//! thread's CPU time.

use std::hint::black_box;
use std::time::Instant;

use airlock::masking::{Masker, Style};

fn corpus() -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < 16 << 20 {
        i += 1;
        s.push_str(&match i % 10 {
            0 => format!("   Compiling crate-{} v0.{}.{} (/work/src/crate-{})\n", i % 97, i % 13, i % 7, i % 97),
            1 => format!(
                " {:>6} | Customer {} | 2026-11-{:02} 10:{:02}:00+00 | active\n",
                i,
                i * 7919 % 10007,
                1 + i % 28,
                i % 60
            ),
            2 => format!(
                "INFO request id={:016x} path=/api/v1/items/{} status=200 {}ms\n",
                i.wrapping_mul(0x9E37_79B9),
                i % 5000,
                i % 250
            ),
            3 => format!("commit {:040x}\n", u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            4 => format!("test suite::case_{i} ... ok\n"),
            5 if i % 100 == 5 => format!("contact: user{i}@example.com\n"),
            6 if i % 200 == 6 => "DATABASE_URL=postgres://app:hunter2@db:5432/app\n".to_owned(),
            _ => format!(
                "-rw-r--r-- 1 agent agent {:>8} Nov 28 12:{:02} file_{:05}.log\n",
                i * 7919 % 1_000_000,
                i % 60,
                i
            ),
        });
    }
    s.into_bytes()
}

/// CPU seconds this thread has run, from `/proc/thread-self/schedstat` (nanoseconds):
/// unlike the wall clock, it leaves out the time this machine's neighbours take.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).map_or(f64::NAN, |ns| ns / 1e9)
}

/// The median of `runs` measurements of `f`, in CPU seconds of one core (wall-clock
/// seconds where schedstat is missing): a single run here can swing by half.
fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let (cpu, wall) = (thread_cpu_seconds(), Instant::now());
            f();
            let cpu = thread_cpu_seconds() - cpu;
            if cpu.is_finite() { cpu } else { wall.elapsed().as_secs_f64() }
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

const RUNS: usize = 7;

fn main() {
    let text = corpus();
    let masker = Masker::new(None, Style::Redact, b"bench");
    let mb = text.len() as f64 / 1e6;
    let masked = masker.mask(&text).len();
    let whole = mb
        / median_seconds(RUNS, || {
            black_box(masker.mask(black_box(&text)));
        });
    let streamed = mb
        / median_seconds(RUNS, || {
            let mut stream = masker.stream();
            let mut out = 0;
            for chunk in text.chunks(4096) {
                out += black_box(stream.push(chunk)).len();
            }
            out += stream.flush().len();
            assert_eq!(out, masked);
        });
    println!(
        "{mb:.0} MB of mixed text, all {} detectors, median of {RUNS}, per CPU second of one core: whole text {whole:.0} MB/s, streamed in 4 KiB chunks {streamed:.0} MB/s",
        airlock::masking::detectors::NAMES.len()
    );

    // Column values as result masking sees them: the bench's customer rows (a name,
    // an email on every other row, a note), one value at a time.
    let rows: Vec<[String; 3]> = (1..=100_000u64)
        .map(|g| {
            [
                format!("customer {g}"),
                if g % 2 == 0 { format!("user{g}@example.com") } else { String::new() },
                format!(
                    "order {} shipped on 2024-{:02}-{:02}, ref {:032x}",
                    g * 7919,
                    1 + g % 12,
                    1 + g % 28,
                    u128::from(g).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ),
            ]
        })
        .collect();
    let mut changed = 0;
    let seconds = median_seconds(RUNS, || {
        changed = 0;
        for row in &rows {
            for v in row {
                if let std::borrow::Cow::Owned(_) = black_box(masker.mask(v.as_bytes())) {
                    changed += 1;
                }
            }
        }
    });
    let per_row = seconds * 1e9 / rows.len() as f64;
    // One value at a time, in cache, as a row just read off the socket is.
    for v in [
        "customer 12345",
        "user12@example.com",
        "order 97743 shipped on 2024-03-15, ref 5d41402abc4b2a76b9719d911017c592",
    ] {
        let seconds = median_seconds(RUNS, || {
            for _ in 0..1_000_000 {
                black_box(masker.mask(black_box(v.as_bytes())));
            }
        });
        println!("one value, in cache, median of {RUNS}: {:>4.0} ns of CPU for {v:?}", seconds * 1e3);
    }
    println!(
        "100k customer rows, value by value, median of {RUNS}: {per_row:.0} ns of CPU per row ({changed} values masked)"
    );
}
