//! The SSH endpoint end to end: the real `ssh`, `scp`, `sftp` and `rsync` through
//! Airlock to a throwaway OpenSSH server, judged by what really happened on the host.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;
use std::time::Instant;

use support::sshd::{AgentKey, Sshd, run, ssh_cmd, ssh_token_cmd, transfer_cmd};
use support::{Airlock, ok, token};

/// An Airlock with one SSH connection `box` to a fresh sshd, and an agent key.
struct Rig {
    airlock: Airlock,
    sshd: Sshd,
    /// Groups agents, fixtures: every command allowed by the test rule.
    trusted: AgentKey,
    /// Group agents: the default policy applies.
    agent: AgentKey,
    root: std::path::PathBuf,
}

impl Rig {
    fn start(connection_extra: &str, extra: &str) -> Rig {
        let root = std::env::temp_dir().join(format!("airlock-ssh-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&root).unwrap();
        let sshd = Sshd::start(&root);
        let trusted = AgentKey::new(&root, "trusted_key", "trusted-agent", &["agents", "fixtures"]);
        let agent = AgentKey::new(&root, "agent_key", "agent-7", &["agents"]);
        let config = format!(
            "{}{}{}{extra}",
            sshd.connection("box", r#"["agents"]"#, connection_extra),
            trusted.config,
            agent.config
        );
        let airlock = Airlock::start_with("", &config);
        Rig { airlock, sshd, trusted, agent, root }
    }

    fn port(&self) -> u16 {
        self.airlock.ssh.expect("ssh endpoint").port()
    }

    fn ssh(&self, key: &AgentKey, command: &str) -> std::process::Output {
        run(ssh_cmd(self.port(), &key.path, "box").arg(command), Duration::from_secs(60))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- sshd log ---\n{}", self.sshd.log());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn exec_carries_stdout_stderr_and_the_exit_status() {
    let rig = Rig::start("", "");
    let out = rig.ssh(&rig.trusted, "echo out; echo err >&2; exit 3");
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    // A token works as the password too.
    let out = run(
        ssh_token_cmd(rig.port(), &token("tok-agent", &["agents", "fixtures"]), "box", &rig.root).arg("uname -s"),
        Duration::from_secs(60),
    );
    assert_eq!(text(&out.stdout), "Linux\n", "stderr: {}", text(&out.stderr));
}

/// Runs the `airlock` CLI against this Airlock's admin API as an approver.
fn cli(airlock: &Airlock, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .args(["--admin", &format!("http://{}", airlock.admin)])
        .env("AIRLOCK_TOKEN", token("oncall", &["sre"]))
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .unwrap()
}

/// Waits until `n` approvals are pending and returns them.
fn pending(airlock: &Airlock, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Vec<serde_json::Value> = serde_json::from_str(&ok(&cli(airlock, &["approvals", "--json"]))).unwrap();
        if list.len() == n {
            return list;
        }
        assert!(Instant::now() < deadline, "expected {n} pending approvals, have {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(cmd: &mut Command) -> std::process::Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn a_held_rm_runs_once_approved_and_a_denied_one_exits_126() {
    let rig = Rig::start("", "");
    let victim = rig.root.join("victim");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("sub/file"), "data").unwrap();
    let command = format!("rm -rf {}", victim.display());

    // Denied: exit 126, the reason on stderr, the files still there.
    let waiting = spawn(ssh_cmd(rig.port(), &rig.agent.path, "box").arg(&command));
    let list = pending(&rig.airlock, 1);
    assert_eq!(list[0]["statement"], command.as_str());
    assert_eq!(list[0]["connection"], "box");
    assert_eq!(list[0]["subject"], "agent-7");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(victim.join("sub/file").exists(), "nothing runs while held");
    ok(&cli(&rig.airlock, &["deny", &id, "--reason", "not today"]));
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(126), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("holding this command for approval (id {id})")), "{stderr}");
    assert!(stderr.contains("not today"), "{stderr}");
    assert!(victim.join("sub/file").exists());

    // Approved: it runs.
    let waiting = spawn(ssh_cmd(rig.port(), &rig.agent.path, "box").arg(&command));
    let id = pending(&rig.airlock, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&rig.airlock, &["approve", &id]));
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(!victim.exists(), "the approved rm ran");

    // The recording has both commands and their verdicts.
    let recorded = support::recorded(&rig.airlock, "agent-7");
    for needle in ["\"held\"", "\"denied\"", "\"approved\"", "not today"] {
        assert!(recorded.contains(needle), "{needle} not in {recorded}");
    }
}

#[test]
fn forwarding_is_refused_and_a_wrong_pinned_host_key_stops_the_session() {
    let rig = Rig::start("", "");
    // -L to the sshd itself: Airlock refuses the direct-tcpip channel.
    let local = airlock::demo::free_port().unwrap();
    let mut fwd = ssh_cmd(rig.port(), &rig.trusted.path, "box");
    fwd.args(["-o", "ExitOnForwardFailure=yes", "-N", "-L", &format!("{local}:127.0.0.1:{}", rig.sshd.port)]);
    let mut child = spawn(&mut fwd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", local)).is_err() {
        assert!(Instant::now() < deadline, "ssh -L did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut banner = [0u8; 64];
    let n = std::io::Read::read(&mut s, &mut banner).unwrap_or(0);
    assert!(!text(&banner[..n]).starts_with("SSH-"), "the forward reached sshd: {:?}", text(&banner[..n]));
    let _ = child.kill();
    let _ = child.wait();
    assert!(rig.airlock.log().contains("port forwarding refused"));
    // -R too.
    let out = run(
        ssh_cmd(rig.port(), &rig.trusted.path, "box").args([
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "0:127.0.0.1:1",
            "true",
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "remote forwarding was accepted");

    // An Airlock whose pinned key is another host's refuses, saying why.
    let other = support::sshd::keygen(&rig.root.join("other_host"));
    let wrong = rig
        .sshd
        .connection("wrong", r#"["agents"]"#, "")
        .replace(&rig.sshd.host_key, &other)
        .replace("name = \"wrong\"", "name = \"wrong\"");
    let root2 = rig.root.join("second");
    std::fs::create_dir_all(&root2).unwrap();
    let airlock = Airlock::start_with("", &format!("{wrong}{}", rig.trusted.config));
    let out = run(
        ssh_cmd(airlock.ssh.unwrap().port(), &rig.trusted.path, "wrong").arg("touch /tmp/should-not"),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not match the key pinned"), "{stderr}");
}

#[test]
fn secrets_printed_by_cat_are_masked_on_stdout_and_in_the_recording() {
    let rig = Rig::start("", "");
    let file = rig.root.join("env");
    let secret = "AKIAIOSFODNN7EXAMPLE";
    std::fs::write(&file, format!("aws_access_key_id = {secret}\nuser=ok\n")).unwrap();
    let out = rig.ssh(&rig.trusted, &format!("cat {}", file.display()));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(stdout.contains("user=ok"), "{stdout}");
    let recorded = support::recorded(&rig.airlock, "trusted-agent");
    assert!(!recorded.contains(secret));
}

#[test]
fn a_pty_shell_is_held_then_approved_and_typed_lines_are_recorded() {
    let rig = Rig::start("", "");
    let mut cmd = ssh_cmd(rig.port(), &rig.agent.path, "box");
    cmd.arg("-tt").stdin(Stdio::piped());
    let mut child = spawn(&mut cmd);
    let id = pending(&rig.airlock, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&rig.airlock, &["approve", &id]));
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"echo pty-$((6*7))\nexit 5\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pty-42"), "{stdout}");
    assert_eq!(out.status.code(), Some(5), "{stdout} {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("holding this command for approval"), "{}", text(&out.stderr));
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_slow_reader_makes_the_host_wait_and_memory_stays_bounded() {
    let rig = Rig::start("", "");
    let before = rss_kib(rig.airlock.pid());
    let ssh_line = format!(
        "ssh -p {} -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
         -o BatchMode=yes -o IdentitiesOnly=yes -i {} box@127.0.0.1 'head -c 1G /dev/zero'",
        rig.port(),
        rig.trusted.path.display()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{ssh_line} | (sleep 5; wc -c)"));
    let child = spawn(&mut cmd);
    let pid = rig.airlock.pid();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        for _ in 0..400 {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(25));
        }
        peak
    });
    let out = child.wait_with_output().unwrap();
    let peak = watcher.join().unwrap();
    assert_eq!(text(&out.stdout).trim(), "1073741824", "{}", text(&out.stderr));
    let grew = peak.saturating_sub(before);
    eprintln!("Airlock RSS {before} KiB before, {peak} KiB at peak");
    assert!(grew < 96 * 1024, "Airlock grew by {grew} KiB while the agent did not read");
}
