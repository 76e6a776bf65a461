//! HTTP requests/s, latency and streaming throughput: direct vs through Airlock vs
//! through nginx as a reverse proxy (the hop people otherwise put in front of an API).
//!
//! `cargo bench --bench http_proxy` starts an origin nginx serving a 1 KB JSON file
//! and 10 MB bodies, a proxy nginx (one worker, its own process) and a release Airlock
//! (policy, masking with every built-in detector plus a JSON path rule, recording on)
//! on loopback. In rounds that interleave the three paths it runs `wrk` (32
//! connections, then one connection for the latency a request adds on a machine that
//! is not saturated) on the JSON file and downloads a 10 MB binary and a 10 MB text body
//! with `curl`. Prints medians, ratios to direct, and Airlock's CPU per request.
//!
//! Environment: `BENCH_ROUNDS` (default 3), `BENCH_SECONDS` (wrk run, default 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/proc_stat.rs"]
mod proc_stat;
#[path = "support/airlock.rs"]
mod support;

use nginx::nginx;

use support::{Running, median};

use std::path::Path;
use std::process::Command;

use airlock::demo::free_port;

struct Target {
    name: &'static str,
    /// The URL prefix the paths go under.
    base: String,
    /// Extra wrk/curl header (the agent's token).
    header: Option<String>,
    pid: Option<u32>,
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    for tool in ["wrk", "nginx", "curl"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool} || test -x /usr/sbin/{tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is needed: apt-get install wrk nginx-light curl"
        );
    }
    let root = std::env::temp_dir().join(format!("airlock-http-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("www")).unwrap();
    let json: String = {
        let mut items = Vec::new();
        while items.join(",").len() < 960 {
            items.push(format!("{{\"id\":{},\"name\":\"item-{}\",\"ok\":true}}", items.len(), items.len()));
        }
        format!("{{\"items\":[{}]}}", items.join(","))
    };
    std::fs::write(root.join("www/item.json"), &json).unwrap();
    let binary: Vec<u8> = (0..10u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(root.join("www/big.bin"), binary).unwrap();
    std::fs::write(
        root.join("www/big.txt"),
        "a line of plain log text, nothing secret in it\n".repeat((10 << 20) / 47),
    )
    .unwrap();

    let origin_port = free_port().unwrap();
    let proxy_port = free_port().unwrap();
    let origin = nginx(&root, "origin", origin_port, &format!("root {};", root.join("www").display()));
    let proxy = nginx(
        &root,
        "proxy",
        proxy_port,
        &format!(
            "proxy_pass http://127.0.0.1:{origin_port}; proxy_http_version 1.1; proxy_set_header Connection \"\";"
        ),
    );
    let _ = &origin;
    let (airlock, airlock_port, token) = start_airlock(&root, origin_port);
    let targets = [
        Target { name: "direct", base: format!("http://127.0.0.1:{origin_port}"), header: None, pid: None },
        Target {
            name: "airlock",
            base: format!("http://127.0.0.1:{airlock_port}/api"),
            header: Some(format!("Authorization: Bearer {token}")),
            pid: Some(airlock.id()),
        },
        Target { name: "nginx", base: format!("http://127.0.0.1:{proxy_port}"), header: None, pid: Some(proxy.id()) },
    ];
    // Each target answers before timing starts.
    for t in &targets {
        let out = curl(t, "/item.json");
        assert_eq!(out.0, json.len() as f64, "{}: wrong body", t.name);
    }
    let mut rps = vec![Vec::new(); 3];
    let mut p99 = vec![Vec::new(); 3];
    let mut p50_one = vec![Vec::new(); 3];
    let mut p99_one = vec![Vec::new(); 3];
    let mut bin = vec![Vec::new(); 3];
    let mut txt = vec![Vec::new(); 3];
    let mut cpu_per_req = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for (i, t) in targets.iter().enumerate() {
            let before = proc_stat::cpu_seconds(t.pid);
            let (r, _, p) = wrk(t, seconds, 32);
            if t.name == "airlock" {
                cpu_per_req.push((proc_stat::cpu_seconds(t.pid) - before) / (r * seconds as f64) * 1e6);
            }
            rps[i].push(r);
            p99[i].push(p);
            // The latency a request adds when the machine is not saturated.
            let (_, p50, p99) = wrk(t, seconds.div_ceil(2), 1);
            p50_one[i].push(p50);
            p99_one[i].push(p99);
            bin[i].push(curl(t, "/big.bin").1);
            txt[i].push(curl(t, "/big.txt").1);
        }
    }
    println!(
        "\nmedian of {rounds} interleaved rounds; wrk -t2 -c32 -d{seconds}s (and -t1 -c1 for half as long) on a {} B JSON file; origin and proxies share this machine's cores\n",
        json.len()
    );
    println!("| | direct | airlock | nginx | airlock/direct | nginx/direct | airlock/nginx |");
    println!("|---|---|---|---|---|---|---|");
    let row = |label: &str, v: &[Vec<f64>], fmt: &dyn Fn(f64) -> String| {
        let [d, a, n] = [median(v[0].clone()), median(v[1].clone()), median(v[2].clone())];
        println!("| {label} | {} | {} | {} | {:.2}x | {:.2}x | {:.2}x |", fmt(d), fmt(a), fmt(n), a / d, n / d, a / n);
    };
    row("requests/s", &rps, &|x| format!("{x:.0}"));
    row("p99 latency (ms)", &p99, &|x| format!("{x:.2}"));
    row("p50 latency, 1 connection (ms)", &p50_one, &|x| format!("{x:.3}"));
    row("p99 latency, 1 connection (ms)", &p99_one, &|x| format!("{x:.3}"));
    row("10 MB binary (MB/s)", &bin, &|x| format!("{x:.0}"));
    row("10 MB text, masked (MB/s)", &txt, &|x| format!("{x:.0}"));
    println!("\nAirlock CPU per request: {:.1} µs", median(cpu_per_req));
    drop(airlock);
    let _ = std::fs::remove_dir_all(&root);
}

/// Requests/s, median and p99 latency (ms) from one wrk run over `connections`.
fn wrk(t: &Target, seconds: u64, connections: u32) -> (f64, f64, f64) {
    let mut cmd = Command::new("wrk");
    let threads = connections.min(2);
    cmd.args([format!("-t{threads}"), format!("-c{connections}"), format!("-d{seconds}s"), "--latency".into()]);
    if let Some(h) = &t.header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("{}/item.json", t.base)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "{}: {text}", t.name);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: {text}", t.name));
    let quantile = |q: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(q))
            .map(|v| parse_ms(v.trim()))
            .unwrap_or_else(|| panic!("{}: {text}", t.name))
    };
    (rps, quantile("50%"), quantile("99%"))
}

fn parse_ms(v: &str) -> f64 {
    let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// Bytes downloaded and MB/s.
fn curl(t: &Target, path: &str) -> (f64, f64) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}"]);
    if let Some(h) = &t.header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("{}{path}", t.base)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().map(|p| p.parse::<f64>().unwrap_or(f64::NAN));
    let (size, speed) = (parts.next().unwrap_or(f64::NAN), parts.next().unwrap_or(f64::NAN));
    (size, speed / 1e6)
}

/// A release Airlock with policy, masking and recording on, serving connection `api`.
fn start_airlock(root: &Path, origin_port: u16) -> (Running, u16, String) {
    let dir = root.join("airlock");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "data_dir = \"{d}\"\n[listen]\npostgres = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\
         [auth]\ndev_tokens = true\n\
         [[connections]]\nname = \"api\"\nprotocol = \"http\"\nurl = \"http://127.0.0.1:{origin_port}\"\nallow_groups = [\"agents\"]\n\
         headers = {{ Authorization = {{ value = \"bench-upstream-secret\", prefix = \"Bearer \" }} }}\n\
         [[masking]]\njson = [\"$..password\"]\nkeys = [\"*token*\"]\n",
        d = dir.display(),
    );
    std::fs::write(dir.join("airlock.toml"), config).unwrap();
    let token = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["token", "--config"])
        .arg(dir.join("airlock.toml"))
        .args(["--sub", "bench", "--groups", "agents"])
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    assert!(!token.is_empty(), "airlock token failed");
    let (airlock, port) = support::start(&dir, "http");
    (airlock, port, token)
}
