//! SSH throughput and setup time: direct vs through Airlock vs through OpenSSH
//! ProxyJump (the hop people otherwise put between an agent and a host).
//!
//! `cargo bench --bench ssh_proxy` starts a throwaway `sshd` and a release Airlock
//! (recording on, output masking with every built-in detector) on loopback, then, in
//! rounds that interleave the three paths: streams `head -c 1G /dev/zero` over exec,
//! downloads a 1 GB file with `scp` (SFTP), and times 20 sequential `ssh ... true`.
//! Every path uses the same cipher (`BENCH_CIPHER`, default aes128-gcm@openssh.com).
//! Prints the median of each, its ratio to direct, and Airlock's CPU per MB.
//!
//! Environment: `BENCH_ROUNDS` (default 3), `BENCH_MB` (bulk size, default 1024),
//! `BENCH_ONLY` (comma-separated: exec, scp, setup).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/proc_stat.rs"]
mod proc_stat;
#[path = "support/airlock.rs"]
mod support;

use support::{Running, median};
#[path = "../tests/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One way to reach the host.
struct Path3 {
    name: &'static str,
    /// `ssh` options and destination.
    args: Vec<String>,
    /// `scp`'s, where they differ (`-P`).
    scp_args: Vec<String>,
    /// The destination host spec (`user@host`).
    dest: String,
    /// The proxy's pid, whose CPU is measured.
    pid: Option<u32>,
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mb: u64 = std::env::var("BENCH_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let cipher = std::env::var("BENCH_CIPHER").unwrap_or_else(|_| "aes128-gcm@openssh.com".into());
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == name));

    let root = std::env::temp_dir().join(format!("airlock-ssh-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let sshd = sshd::Sshd::start(&root);
    let agent = sshd::AgentKey::new(&root, "agent_key", "bench", &["agents"]);
    // The agent key logs in directly and through the jump too.
    let public = std::fs::read_to_string(root.join("agent_key.pub")).unwrap();
    let mut authorized = std::fs::read_to_string(sshd.dir.join("authorized_keys")).unwrap();
    authorized.push_str(&public);
    std::fs::write(sshd.dir.join("authorized_keys"), authorized).unwrap();
    let big = root.join("big.bin");
    let status = Command::new("head")
        .args(["-c", &format!("{}", mb << 20), "/dev/urandom"])
        .stdout(std::fs::File::create(&big).unwrap())
        .status()
        .unwrap();
    assert!(status.success());

    let (airlock, airlock_port) = start_airlock(&root, &sshd, &agent.config);
    let common = |flag: &str, port: u16| -> Vec<String> {
        let mut args = sshd::client_options(port, flag);
        let key = agent.path.display().to_string();
        args.extend(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", &key, "-c", &cipher].map(String::from));
        args
    };
    let jump = |flag: &str| {
        let mut a = common(flag, sshd.port);
        let proxy = format!(
            "ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
             -o BatchMode=yes -o IdentitiesOnly=yes -i {} -c {cipher} -p {} -W %h:%p root@127.0.0.1",
            agent.path.display(),
            sshd.port
        );
        a.extend(["-o".into(), format!("ProxyCommand={proxy}")]);
        a
    };
    let paths = [
        Path3 {
            name: "direct",
            args: common("-p", sshd.port),
            scp_args: common("-P", sshd.port),
            dest: "root@127.0.0.1".into(),
            pid: None,
        },
        Path3 {
            name: "airlock",
            args: common("-p", airlock_port),
            scp_args: common("-P", airlock_port),
            dest: "box@127.0.0.1".into(),
            pid: Some(airlock.id()),
        },
        Path3 { name: "proxyjump", args: jump("-p"), scp_args: jump("-P"), dest: "root@127.0.0.1".into(), pid: None },
    ];

    let labels = [
        ("exec", format!("exec `head -c {mb}M /dev/zero` (MB/s)")),
        ("scp", format!("scp download of {mb} MB (MB/s)")),
        ("setup", "20 sequential `ssh true` (ms each)".to_owned()),
    ];
    let mut results: Vec<[Vec<f64>; 3]> = vec![Default::default(); 3];
    let mut airlock_cpu: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for round in 0..rounds {
        for k in 0..3 {
            let i = (k + round) % 3;
            let p = &paths[i];
            let cpu0 = proc_stat::cpu_seconds(Some(airlock.id()));
            if wanted("exec") {
                let start = Instant::now();
                let out = Command::new("ssh")
                    .args(&p.args)
                    .arg(&p.dest)
                    .arg(format!("head -c {mb}M /dev/zero"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .unwrap();
                let secs = start.elapsed().as_secs_f64();
                assert_eq!(out.stdout.len() as u64, mb << 20, "{}: {}", p.name, String::from_utf8_lossy(&out.stderr));
                results[0][i].push(mb as f64 / secs);
                eprintln!("round {round} exec  {:<10} {:>8.1} MB/s", p.name, mb as f64 / secs);
                if p.pid.is_some() {
                    airlock_cpu[0].push((proc_stat::cpu_seconds(Some(airlock.id())) - cpu0) * 1e3 / mb as f64);
                }
            }
            let cpu0 = proc_stat::cpu_seconds(Some(airlock.id()));
            if wanted("scp") {
                let start = Instant::now();
                let out = Command::new("scp")
                    .args(&p.scp_args)
                    .arg(format!("{}:{}", p.dest, big.display()))
                    .arg("/dev/null")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let secs = start.elapsed().as_secs_f64();
                assert!(out.status.success(), "{}: {}", p.name, String::from_utf8_lossy(&out.stderr));
                results[1][i].push(mb as f64 / secs);
                eprintln!("round {round} scp   {:<10} {:>8.1} MB/s", p.name, mb as f64 / secs);
                if p.pid.is_some() {
                    airlock_cpu[1].push((proc_stat::cpu_seconds(Some(airlock.id())) - cpu0) * 1e3 / mb as f64);
                }
            }
            if wanted("setup") {
                let start = Instant::now();
                for _ in 0..20 {
                    let out = Command::new("ssh")
                        .args(&p.args)
                        .arg(&p.dest)
                        .arg("true")
                        .stdin(Stdio::null())
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}: {}", p.name, String::from_utf8_lossy(&out.stderr));
                }
                let ms = start.elapsed().as_secs_f64() * 1e3 / 20.0;
                results[2][i].push(ms);
                eprintln!("round {round} setup {:<10} {:>8.1} ms", p.name, ms);
            }
        }
    }
    println!(
        "\nmedian of {rounds} interleaved rounds; cipher {cipher}; sshd, the clients and the proxy share this machine's cores\n"
    );
    println!(
        "| scenario | direct | airlock | proxyjump | airlock/direct | proxyjump/direct | airlock/proxyjump | Airlock CPU ms/MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (row, (name, label)) in labels.iter().enumerate() {
        if !wanted(name) {
            continue;
        }
        let [d, a, j] = results[row].clone().map(median);
        let cpu = if row < 2 { format!("{:.2}", median(airlock_cpu[row].clone())) } else { "-".into() };
        println!("| {label} | {d:.1} | {a:.1} | {j:.1} | {:.2}x | {:.2}x | {:.2}x | {cpu} |", a / d, j / d, a / j);
    }
    drop(airlock);
    let _ = std::fs::remove_dir_all(&root);
}

/// A release Airlock with recording and masking on, serving connection `box`.
fn start_airlock(root: &Path, sshd: &sshd::Sshd, keys: &str) -> (Running, u16) {
    let dir = root.join("airlock");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "data_dir = \"{d}\"\n[listen]\npostgres = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nssh = \"127.0.0.1:0\"\n\
         [auth]\ndev_tokens = true\n{keys}\n[[rules]]\naction = \"allow\"\ngroups = [\"agents\"]\n{conn}",
        d = dir.display(),
        conn = sshd.connection("box", r#"["agents"]"#, "sftp = \"read-write\""),
    );
    std::fs::write(dir.join("airlock.toml"), config).unwrap();
    support::start(&dir, "ssh")
}
