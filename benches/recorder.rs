//! Recorder throughput: MB/s of frames in, and the compression ratio, on realistic
//! frames (PostgreSQL result rows and terminal output), at the default zstd level and
//! fsync policy (`every_batch`) and group-commit window, with 8 sessions recording concurrently.
//!
//! `cargo bench --bench recorder` (env `BENCH_MB`, default 256 per kind; `BENCH_LEVEL`).
#![allow(clippy::unwrap_used)]

#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::time::{Duration, Instant};

use airlock::recording::format::{Direction, Kind, SessionEnd, SessionStart};
use airlock::recording::{FsyncPolicy, Recorder, RecordingSettings};
use bytes::{BufMut, Bytes, BytesMut};

const SESSIONS: usize = 8;

/// A run of DataRow messages like a `SELECT * FROM customers` result, ~8 KiB.
fn result_rows(seed: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(9000);
    let mut i = seed;
    while b.len() < 8000 {
        i += 1;
        let cols = [
            i.to_string(),
            format!("Customer {} {}", ["Ada", "Alan", "Grace", "Linus", "Barbara"][(i % 5) as usize], i * 7919 % 10007),
            format!("user{}@example.{}", i * 31 % 100_003, ["com", "org", "net"][(i % 3) as usize]),
            format!(
                "2026-11-{:02} {:02}:{:02}:{:02}.{:06}+00",
                1 + i % 28,
                i % 24,
                i * 7 % 60,
                i * 13 % 60,
                i * 7919 % 1_000_000
            ),
            format!("{}.{:02}", i * 37 % 10_000, i % 100),
            ["active", "suspended", "pending"][(i % 3) as usize].to_owned(),
        ];
        let len: usize = 4 + 2 + cols.iter().map(|c| 4 + c.len()).sum::<usize>();
        b.put_u8(b'D');
        b.put_i32(len as i32);
        b.put_i16(cols.len() as i16);
        for c in &cols {
            b.put_i32(c.len() as i32);
            b.put_slice(c.as_bytes());
        }
    }
    b.freeze()
}

/// Terminal output like a build log, ~4 KiB.
fn terminal(seed: u64) -> Bytes {
    let mut s = String::with_capacity(4200);
    let mut i = seed;
    while s.len() < 4000 {
        i += 1;
        s.push_str(&match i % 4 {
            0 => format!("   Compiling crate-{} v0.{}.{} (/work/src/crate-{})\r\n", i % 97, i % 13, i % 7, i % 97),
            1 => format!(
                "-rw-r--r-- 1 agent agent {:>8} Nov {:>2} {:02}:{:02} file_{:05}.log\r\n",
                i * 7919 % 1_000_000,
                1 + i % 28,
                i % 24,
                i % 60,
                i
            ),
            2 => format!(
                "\x1b[32mINFO\x1b[0m request id={:016x} path=/api/v1/items/{} status=200 {}ms\r\n",
                i.wrapping_mul(0x9E37_79B9),
                i % 5000,
                i % 250
            ),
            _ => format!("test suite::case_{} ... ok\r\n", i),
        });
    }
    Bytes::from(s)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum()
}

fn run(kind: &str, make: fn(u64) -> Bytes, total: usize) {
    let dir = std::env::temp_dir().join(format!("airlock-bench-rec-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = RecordingSettings {
        dir: dir.clone(),
        segment_size: 64 << 20,
        segment_age: Duration::from_secs(3600),
        retention: None,
        fsync: FsyncPolicy::EveryBatch,
        zstd_level: std::env::var("BENCH_LEVEL").ok().and_then(|l| l.parse().ok()).unwrap_or(1),
        flush_interval: Duration::from_millis(25),
        block_size: 1 << 20,
        queue_bytes: 64 << 20,
        signing_key: None,
        metrics: Default::default(),
        faults: None,
        replica: "bench".into(),
        notes: Default::default(),
        resume: None,
    };
    // Pre-built payloads, so the measurement is the recorder, not the generator.
    let payloads: Vec<Bytes> = (0..512).map(|i| make(i * 1000)).collect();
    let per_session = total / SESSIONS;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let recorder = rt.block_on(async { Recorder::start(settings).unwrap() });
    let cpu0 = proc_stat::cpu_seconds(None);
    let start = Instant::now();
    let sent: usize = rt.block_on(async {
        let mut tasks = Vec::new();
        for s in 0..SESSIONS {
            let recorder = recorder.clone();
            let payloads = payloads.clone();
            tasks.push(tokio::spawn(async move {
                let session = recorder
                    .session(&SessionStart {
                        subject: "bench".into(),
                        protocol: "postgres".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let mut sent = 0;
                let mut i = s;
                while sent < per_session {
                    let p = payloads[i % payloads.len()].clone();
                    sent += p.len();
                    i += 7;
                    session.record(Direction::ToAgent, Kind::PgBackend, p).await.unwrap();
                }
                session.finish(&SessionEnd { reason: "done".into(), ..Default::default() }).await.unwrap();
                sent
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = proc_stat::cpu_seconds(None) - cpu0;
    let on_disk = dir_size(&dir);
    println!(
        "| {kind} | {:.0} MB | {:.0} MB/s | {:.0} MB/s per CPU-second | {:.1}x |",
        sent as f64 / 1e6,
        sent as f64 / 1e6 / elapsed,
        sent as f64 / 1e6 / cpu,
        sent as f64 / on_disk as f64
    );
    drop(recorder);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let mb: usize = std::env::var("BENCH_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    let level = std::env::var("BENCH_LEVEL").unwrap_or_else(|_| "1 (default)".into());
    println!("{SESSIONS} sessions, zstd level {level}, fsync every_batch, 25 ms group commit\n");
    println!("| frames | recorded | throughput | per CPU | compression |");
    println!("|---|---:|---:|---:|---:|");
    run("result rows", result_rows, mb << 20);
    run("terminal output", terminal, mb << 20);
}
