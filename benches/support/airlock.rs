//! What the proxy benchmarks share: a child process killed with the bench, a release
//! Airlock started on a config, and the median.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use airlock::demo::{RunAs, spawn_tied, tied_command};

/// A child process, killed when dropped.
pub struct Running(pub Child);

impl Running {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the bench's Airlock on `dir/airlock.toml` (logging to `dir/airlock.log`)
/// and returns it with the port it printed for `endpoint`.
pub fn start(dir: &Path, endpoint: &str) -> (Running, u16) {
    let mut cmd = tied_command(env!("CARGO_BIN_EXE_airlock"), RunAs::Me, "KILL");
    cmd.args(["serve", "--config"])
        .arg(dir.join("airlock.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("airlock.log")).unwrap());
    let mut child = spawn_tied(cmd).unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let prefix = format!("listening {endpoint} ");
    let port = loop {
        let line = lines.next().expect("airlock exited").unwrap();
        if let Some(addr) = line.strip_prefix(&prefix) {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Running(child), port)
}

/// The median of `v` (NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `p` quantile of `v` (0.5 the median, 0.99 the p99; NaN when empty).
#[allow(dead_code)] // not every bench reports quantiles
pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// An HS256 token for the benches' Airlocks (`auth.hs256_secret = secret`), valid for
/// an hour.
#[allow(dead_code)] // not every bench signs its own tokens
pub fn token(secret: &str, subject: &str, groups: &[&str]) -> String {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    airlock::identity::mint_token(
        secret.as_bytes(),
        "airlock",
        "airlock",
        "groups",
        subject,
        &groups,
        std::time::Duration::from_secs(3600),
    )
    .unwrap()
}
