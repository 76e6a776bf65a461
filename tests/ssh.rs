//! The SSH endpoint end to end: the real `ssh`, `scp`, `sftp` and `rsync` through
//! Airlock to a throwaway OpenSSH server, judged by what really happened on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use std::time::Instant;

use support::sshd::{AgentKey, Sshd, run, ssh_cmd, ssh_token_cmd, transfer_cmd};
use support::{Airlock, cli, ok, pending, rss_kib, token};

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
        Rig::with_limits("", connection_extra, extra)
    }

    fn with_limits(limits: &str, connection_extra: &str, extra: &str) -> Rig {
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
        let airlock = Airlock::start_with(limits, &config);
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
    let wrong = rig.sshd.connection("wrong", r#"["agents"]"#, "").replace(&rig.sshd.host_key, &other);
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
    let rig = Rig::start("shell = \"allow\"", "");
    let file = rig.root.join("env");
    let secret = "AKIAIOSFODNN7EXAMPLE";
    std::fs::write(&file, format!("aws_access_key_id = {secret}\nuser=ok\n")).unwrap();
    let out = rig.ssh(&rig.trusted, &format!("cat {}", file.display()));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(stdout.contains("user=ok"), "{stdout}");
    // Printed in pieces with pauses between them, it is still masked whole.
    let ghp = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    std::fs::write(&file, format!("token {ghp}\n")).unwrap();
    let f = file.display();
    let out = rig.ssh(
        &rig.trusted,
        &format!("head -c 16 {f}; sleep 0.4; tail -c +17 {f} | head -c 10; sleep 0.4; tail -c +27 {f}"),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stdout.contains("ghp_0123"), "{stdout}");
    assert!(stdout.starts_with("token [MASKED:"), "{stdout}");
    // With a terminal asked for the command, too.
    let slow = format!("head -c 16 {f}; sleep 0.4; tail -c +17 {f} | head -c 10; sleep 0.4; tail -c +27 {f}");
    let out = run(ssh_cmd(rig.port(), &rig.trusted.path, "box").arg("-tt").arg(&slow), Duration::from_secs(60));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("ghp_0123") && stdout.contains("[MASKED:"), "{stdout}");
    let recorded = support::recorded(&rig.airlock, "trusted-agent");
    assert!(!recorded.contains(secret));
    assert!(!recorded.contains("ghp_0123"));
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

    // A command run with a terminal is interactive too (a pager's `!cmd` runs
    // anything): even a read needs what a shell needs.
    let mut cmd = ssh_cmd(rig.port(), &rig.agent.path, "box");
    cmd.args(["-tt", "ls /"]);
    let waiting = spawn(&mut cmd);
    let id = pending(&rig.airlock, 1)[0]["id"].as_str().unwrap().to_owned();
    ok(&cli(&rig.airlock, &["deny", &id, "--reason", "no terminals today"]));
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stdout));
    // Without one, the same read runs at once.
    assert!(rig.ssh(&rig.agent, "ls /").status.success());
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

fn sha256_file(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    text(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}

/// A file of `mb` MiB of random bytes.
fn random_file(path: &std::path::Path, mb: u64) {
    let status = Command::new("head")
        .args(["-c", &(mb << 20).to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn scp_sftp_and_rsync_move_50mb_files_intact_and_each_operation_is_recorded() {
    let rig = Rig::start("", "");
    let src = rig.root.join("src.bin");
    random_file(&src, 50);
    let sum = sha256_file(&src);
    let remote = rig.root.join("remote");
    std::fs::create_dir_all(&remote).unwrap();

    // scp (SFTP mode) up, then down.
    let up = remote.join("scp.bin");
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path).arg(&src).arg(format!("box@127.0.0.1:{}", up.display())),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "scp up: {}", text(&out.stderr));
    assert_eq!(sha256_file(&up), sum);
    let down = rig.root.join("scp-down.bin");
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path).arg(format!("box@127.0.0.1:{}", up.display())).arg(&down),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "scp down: {}", text(&out.stderr));
    assert_eq!(sha256_file(&down), sum);

    // sftp put and get in batch mode.
    let batch = rig.root.join("batch");
    let got = rig.root.join("sftp-down.bin");
    std::fs::write(
        &batch,
        format!(
            "put {} {}/sftp.bin\nget {}/sftp.bin {}\nmkdir {}/made\nrename {}/sftp.bin {}/moved.bin\n",
            src.display(),
            remote.display(),
            remote.display(),
            got.display(),
            remote.display(),
            remote.display(),
            remote.display()
        ),
    )
    .unwrap();
    let out = run(
        transfer_cmd("sftp", rig.port(), &rig.trusted.path).arg("-b").arg(&batch).arg("box@127.0.0.1"),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(sha256_file(&got), sum);
    assert_eq!(sha256_file(&remote.join("moved.bin")), sum);
    assert!(remote.join("made").is_dir());

    // scp -O: the legacy protocol, through exec.
    let legacy = remote.join("legacy.bin");
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path)
            .arg("-O")
            .arg(&src)
            .arg(format!("box@127.0.0.1:{}", legacy.display())),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "scp -O: {}", text(&out.stderr));
    assert_eq!(sha256_file(&legacy), sum);
    // Files come back unchanged, even when they hold what the masker would mask
    // in a command's output.
    let contacts = remote.join("contacts.csv");
    std::fs::write(&contacts, "name,email\nAda,ada@example.com\n").unwrap();
    let back = rig.root.join("contacts-back.csv");
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path)
            .arg("-O")
            .arg(format!("box@127.0.0.1:{}", contacts.display()))
            .arg(&back),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "scp -O down: {}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "name,email\nAda,ada@example.com\n");

    // rsync over ssh.
    let synced = remote.join("rsync");
    let rsh = format!(
        "ssh -p {} -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes -i {}",
        rig.port(),
        rig.trusted.path.display()
    );
    let out = run(
        Command::new("rsync").args(["-a", "-e", &rsh]).arg(&src).arg(format!("box@127.0.0.1:{}/", synced.display())),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "rsync: {}", text(&out.stderr));
    assert_eq!(sha256_file(&synced.join("src.bin")), sum);

    // The recording names each SFTP operation with its bytes and the file's SHA-256.
    let recorded = support::recorded(&rig.airlock, "trusted-agent");
    for needle in [
        format!("\"op\":\"write\",\"path\":\"{}\"", up.display()),
        format!("\"sha256\":\"{sum}\""),
        format!("\"op\":\"rename\",\"path\":\"{}/sftp.bin\"", remote.display()),
        format!("\"op\":\"mkdir\",\"path\":\"{}/made\"", remote.display()),
    ] {
        assert!(recorded.contains(&needle), "{needle} not recorded");
    }
}

#[test]
fn a_read_only_connection_refuses_sftp_writes_and_legacy_scp_uploads() {
    let rig = Rig::start("sftp = \"read-only\"", "");
    let src = rig.root.join("small.txt");
    std::fs::write(&src, "hello").unwrap();
    let remote = rig.root.join("ro");
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::write(remote.join("existing.txt"), "keep me").unwrap();
    let batch = rig.root.join("batch");
    std::fs::write(&batch, format!("put {} {}/new.txt\n", src.display(), remote.display())).unwrap();
    let out = run(
        transfer_cmd("sftp", rig.port(), &rig.trusted.path).arg("-b").arg(&batch).arg("box@127.0.0.1"),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ermission denied") || text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(!remote.join("new.txt").exists());
    for batch_line in
        [format!("rm {}/existing.txt", remote.display()), format!("rename {0}/existing.txt {0}/x", remote.display())]
    {
        std::fs::write(&batch, batch_line).unwrap();
        let out = run(
            transfer_cmd("sftp", rig.port(), &rig.trusted.path).arg("-b").arg(&batch).arg("box@127.0.0.1"),
            Duration::from_secs(60),
        );
        assert!(!out.status.success());
    }
    assert_eq!(std::fs::read_to_string(remote.join("existing.txt")).unwrap(), "keep me");
    // Reading still works.
    let got = rig.root.join("got.txt");
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path)
            .arg(format!("box@127.0.0.1:{}/existing.txt", remote.display()))
            .arg(&got),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "keep me");
    // The legacy protocol cannot go around it.
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path)
            .arg("-O")
            .arg(&src)
            .arg(format!("box@127.0.0.1:{}/legacy.txt", remote.display())),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(!remote.join("legacy.txt").exists());
}

#[test]
fn the_recording_replays_as_text_and_its_asciicast_plays() {
    let rig = Rig::start("shell = \"allow\"", "");
    let out = rig.ssh(&rig.trusted, "echo replay-me; echo oops >&2; exit 4");
    assert_eq!(out.status.code(), Some(4));
    let mut cmd = ssh_cmd(rig.port(), &rig.trusted.path, "box");
    cmd.arg("-tt").stdin(Stdio::piped());
    let mut child = spawn(&mut cmd);
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"echo typed-$((2+3))\nexit\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("typed-5"));

    let sessions = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["sessions", "--json", "--subject", "trusted-agent", "--data-dir"])
        .arg(&rig.airlock.dir)
        .output()
        .unwrap();
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&ok(&sessions)).unwrap();
    assert_eq!(sessions.len(), 2);
    let replay = |id: &str, format: &str| {
        ok(&Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["replay", id, "--format", format, "--data-dir"])
            .arg(&rig.airlock.dir)
            .output()
            .unwrap())
    };
    let ids: Vec<String> = sessions.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    let all: String = ids.iter().map(|id| replay(id, "text")).collect();
    for needle in ["$ echo replay-me; echo oops >&2; exit 4", "replay-me", "oops", "exit 4", "> echo typed-$((2+3))"] {
        assert!(all.contains(needle), "{needle} not in\n{all}");
    }
    let pty = ids.iter().find(|id| replay(id, "text").contains("typed")).unwrap();
    let cast = replay(pty, "asciicast");
    let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let path = rig.root.join("session.cast");
    std::fs::write(&path, &cast).unwrap();
    // asciinema wants a terminal: `script` gives it one.
    let out = Command::new("script")
        .args(["-qec", &format!("asciinema cat {}", path.display()), "/dev/null"])
        .output()
        .expect("script (util-linux) and asciinema (.ci/peers)");
    assert!(out.status.success(), "asciinema cat: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("typed-5"), "{}", text(&out.stdout));
}

/// The drivers' Python (see tests/drivers.rs), which has paramiko, asyncssh and ssh-audit.
fn python_bin(name: &str) -> std::path::PathBuf {
    let python = std::env::var("AIRLOCK_DRIVERS_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/drivers/venv/bin/python"));
    let bin = python.with_file_name(name);
    assert!(bin.exists(), "{} is missing: run .ci/peers (pip install paramiko asyncssh ssh-audit)", bin.display());
    bin
}

/// Runs `tests/ssh_clients/SCRIPT` with the driver venv's Python against the rig as
/// the trusted agent (environment: SSH_PORT, SSH_KEY, SSH_CONN, WORK, a fresh directory
/// of the rig's), and checks that it succeeds.
fn run_client_script(rig: &Rig, script: &str, timeout: Duration) {
    let work = rig.root.join(script.trim_end_matches(".py"));
    std::fs::create_dir_all(&work).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_clients").join(script);
    let out = run(
        Command::new(python_bin("python"))
            .arg(path)
            .env("SSH_PORT", rig.port().to_string())
            .env("SSH_KEY", &rig.trusted.path)
            .env("SSH_CONN", "box")
            .env("WORK", &work),
        timeout,
    );
    assert!(out.status.success(), "{script}: {}\n{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn paramiko_and_asyncssh_run_exec_and_sftp_as_libraries() {
    let rig = Rig::start("", "");
    for script in ["paramiko_client.py", "asyncssh_client.py"] {
        run_client_script(&rig, script, Duration::from_secs(120));
    }
}

#[test]
fn a_channel_that_stops_moving_does_not_stall_the_others_on_its_connection() {
    let rig = Rig::start("", "");
    run_client_script(&rig, "stuck_channel.py", Duration::from_secs(240));
}

#[test]
fn input_before_a_close_arrives_whole_and_a_flooded_channel_ends_only_its_connection() {
    let rig = Rig::start("", "");
    run_client_script(&rig, "channel_ends.py", Duration::from_secs(180));
}

#[test]
fn agents_killed_while_their_output_is_unread_leave_nothing_behind() {
    // Three connection places: three killed agents that held on to them would lock
    // every agent out.
    let rig = Rig::with_limits("max_connections = 3", "", "");
    let killed: Vec<_> = (0..3)
        .map(|_| {
            let line = format!(
                "timeout -s KILL 3 ssh -p {} -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
                 -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes -i {} box@127.0.0.1 yes | sleep 5",
                rig.port(),
                rig.trusted.path.display()
            );
            spawn(Command::new("sh").arg("-c").arg(line))
        })
        .collect();
    for child in killed {
        child.wait_with_output().unwrap();
    }
    // Each session ends (its upstream connection and command with it) and gives its
    // place back: another agent gets in.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = rig.ssh(&rig.agent, "echo hello");
        if out.status.success() {
            assert_eq!(text(&out.stdout), "hello\n");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still locked out: {}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    let ended = |s: &serde_json::Value| s["end_reason"].as_str().is_some_and(|r| !r.is_empty());
    let sessions = support::sessions(&rig.airlock);
    let killed: Vec<_> = sessions.iter().filter(|s| s["subject"] == "trusted-agent").collect();
    assert_eq!(killed.len(), 3, "{sessions:?}");
    assert!(killed.iter().all(|s| ended(s)), "a killed agent's session never ended: {killed:?}");
}

#[test]
fn ssh_audit_finds_no_weak_algorithm() {
    let rig = Rig::start("", "");
    let out = run(
        // The connection-rate probe (DHEat) is about throttling, not algorithms.
        Command::new(python_bin("ssh-audit")).args([
            "-n",
            "--skip-rate-test",
            "-p",
            &rig.port().to_string(),
            "127.0.0.1",
        ]),
        Duration::from_secs(60),
    );
    let report = text(&out.stdout);
    // curve25519 stays for clients without ML-KEM (OpenSSH before 9.9, Debian 12's
    // among them); ssh-audit notes it is not post-quantum, and nothing else.
    let flagged: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("[fail]") || l.contains("[warn]"))
        .filter(|l| !(l.contains("curve25519-sha256") && l.contains("post-quantum")))
        .collect();
    assert!(flagged.is_empty(), "ssh-audit flags:\n{}\n\n{report}", flagged.join("\n"));
    assert!(report.contains("mlkem768x25519-sha256"), "{report}");
    assert!(report.contains("kex-strict-s-v00@openssh.com"), "{report}");
    // Its exit status counts the post-quantum notes too; the lines above are the verdict.
    assert!(report.contains("# fingerprints"), "ssh-audit did not finish: {report}{}", text(&out.stderr));
}

/// `n` TCP connections from `source` (a loopback address) to `port` that send nothing.
fn idle_flood(source: [u8; 4], port: u16, n: usize) -> Vec<std::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&std::net::SocketAddr::from((source, 0)).into()).unwrap();
        if socket.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).is_ok() {
            held.push(socket.into());
        }
    }
    held
}

#[test]
fn a_flood_of_idle_unauthenticated_connections_cannot_lock_agents_out() {
    // Without the handshake budget, the flood below takes every one of the 40 permits.
    let limits = "max_connections = 40\nmax_handshakes = 12\nmax_handshakes_per_source = 6";
    let rig = Rig::with_limits(limits, "", "");
    // An agent already in keeps working whatever happens next.
    let mut shell = ssh_cmd(rig.port(), &rig.trusted.path, "box");
    shell.arg("cat").stdin(Stdio::piped());
    let mut inside = spawn(&mut shell);
    std::thread::sleep(Duration::from_millis(500));
    // More idle connections than the connection limit, from another address, to both
    // endpoints: they get no more than their address's share of the handshake budget.
    let mut flood = idle_flood([127, 0, 0, 2], rig.port(), 60);
    flood.extend(idle_flood([127, 0, 0, 2], rig.airlock.pg.port(), 60));
    std::thread::sleep(Duration::from_millis(300));
    // The one inside still works.
    {
        use std::io::Write;
        let stdin = inside.stdin.as_mut().unwrap();
        stdin.write_all(b"still here\n").unwrap();
    }
    drop(inside.stdin.take());
    let out = inside.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "still here\n", "{}", text(&out.stderr));
    // And new agents log in at once, on both endpoints, while the flood is held.
    let out = rig.ssh(&rig.trusted, "echo alive");
    assert_eq!(text(&out.stdout), "alive\n", "{}", text(&out.stderr));
    let psql = rig.airlock.psql(&token("flood-agent", &["agents"]), "app-db", &["-At", "-c", "select 1"], None);
    assert_eq!(ok(&psql).trim(), "1");
    assert!(rig.airlock.log().contains("too many connections in their handshake"));
    drop(flood);
}

#[test]
fn sftp_path_globs_hold_where_paths_really_lead_not_just_as_written() {
    let base = std::env::temp_dir().join(format!("airlock-sftp-globs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let share = base.join("share");
    let private = base.join("private");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(share.join("public.txt"), "public").unwrap();
    std::fs::write(share.join("secret.txt"), "in the share but denied").unwrap();
    std::fs::write(private.join("keys.txt"), "private").unwrap();
    // Planted on the host earlier (by an exec command, say): links out of the share.
    std::os::unix::fs::symlink(&private, share.join("door")).unwrap();
    std::os::unix::fs::symlink(share.join("secret.txt"), share.join("innocent.txt")).unwrap();
    let globs = format!(
        "sftp = \"read-only\"\nsftp_paths = {{ allow = [\"{}/**\"], deny = [\"**/secret*\"] }}",
        share.display()
    );
    let rig = Rig::start(&globs, "");
    let get = |remote: &std::path::Path| {
        let local = rig.root.join("got");
        let _ = std::fs::remove_file(&local);
        let out = run(
            transfer_cmd("scp", rig.port(), &rig.trusted.path)
                .arg(format!("box@127.0.0.1:{}", remote.display()))
                .arg(&local),
            Duration::from_secs(60),
        );
        (out.status.success(), std::fs::read_to_string(&local).ok())
    };
    assert_eq!(get(&share.join("public.txt")), (true, Some("public".into())));
    for refused in [
        share.join("secret.txt"),
        private.join("keys.txt"),
        share.join("../private/keys.txt"),
        share.join("door/keys.txt"),
        share.join("innocent.txt"),
    ] {
        let (ok, got) = get(&refused);
        assert!(!ok && got.is_none(), "{} was read: {got:?}", refused.display());
    }
    // Legacy scp and rsync run by exec are not decoded, so they are refused here.
    let out = run(
        transfer_cmd("scp", rig.port(), &rig.trusted.path)
            .arg("-O")
            .arg(format!("box@127.0.0.1:{}", share.join("secret.txt").display()))
            .arg(rig.root.join("legacy")),
        Duration::from_secs(60),
    );
    assert!(!out.status.success() && !rig.root.join("legacy").exists(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("sftp_paths"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn forwarding_works_both_ways_where_a_connection_allows_it() {
    let rig = Rig::start("allow_forwarding = true", "");
    // -L: a local port reaches the sshd through the host.
    let local = airlock::demo::free_port().unwrap();
    let mut fwd = ssh_cmd(rig.port(), &rig.trusted.path, "box");
    fwd.args(["-o", "ExitOnForwardFailure=yes", "-N", "-L", &format!("{local}:127.0.0.1:{}", rig.sshd.port)]);
    let mut child = spawn(&mut fwd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut banner = String::new();
    while !banner.starts_with("SSH-") {
        assert!(Instant::now() < deadline, "no banner through -L: {banner:?}");
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", local)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
            banner = text(&buf[..n]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();

    // -R: a port on the host reaches a listener on the agent's side.
    let agent_side = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_port = agent_side.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = agent_side.accept() {
            let _ = std::io::Write::write_all(&mut s, b"hello from the agent side\n");
        }
    });
    let remote = airlock::demo::free_port().unwrap();
    let mut rev = ssh_cmd(rig.port(), &rig.trusted.path, "box");
    rev.args(["-o", "ExitOnForwardFailure=yes", "-N", "-R", &format!("127.0.0.1:{remote}:127.0.0.1:{agent_port}")]);
    let mut child = spawn(&mut rev);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = String::new();
    while got.is_empty() {
        assert!(Instant::now() < deadline, "nothing through -R");
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", remote)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = std::io::Read::read_to_string(&mut s, &mut got);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got, "hello from the agent side\n");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_forwarded_connection_still_connecting_does_not_hold_up_the_others() {
    let rig = Rig::start("allow_forwarding = true", "");
    run_client_script(&rig, "slow_forward.py", Duration::from_secs(180));
}

#[test]
fn keyscan_prints_the_line_to_pin_and_explain_reads_command_lines() {
    let rig = Rig::start("", "");
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["ssh-keyscan", &format!("127.0.0.1:{}", rig.sshd.port)])
        .output()
        .unwrap();
    assert_eq!(ok(&out).trim(), rig.sshd.host_key);
    let explain = |command: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["explain", "--connection", "box", "--groups", "agents", "--config"])
            .arg(rig.airlock.dir.join("airlock.toml"))
            .arg(command)
            .env("AIRLOCK_TEST_APP_PASSWORD", support::APP_PASSWORD)
            .output()
            .unwrap();
        serde_json::from_str(&ok(&out)).unwrap()
    };
    let read = explain("ls -l /var/log | grep syslog");
    assert_eq!(read["decision"], "allow", "{read}");
    let held = explain("X=-delete; find /tmp $X");
    assert_eq!(held["decision"], "approve", "{held}");
    assert!(held["commands"].as_array().is_some_and(|c| !c.is_empty()), "{held}");
}

#[test]
fn identities_outside_allow_groups_and_unknown_connections_are_refused_like_bad_passwords() {
    let rig = Rig::start("", "");
    for (token, conn) in [
        (token("ops-agent", &["ops"]), "box"),
        (token("agent-9", &["agents"]), "no-such-box"),
        ("not-a-token".to_owned(), "box"),
    ] {
        let out =
            run(ssh_token_cmd(rig.port(), &token, conn, &rig.root).arg("touch /tmp/never"), Duration::from_secs(30));
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("Permission denied"), "{}", text(&out.stderr));
    }
}

#[test]
fn env_requests_pass_only_allowed_names_and_signals_end_commands() {
    let rig = Rig::start("env = [\"LC_*\"]", "");
    let out = run(
        ssh_cmd(rig.port(), &rig.trusted.path, "box")
            .args(["-o", "SetEnv=LC_AIRLOCK_TEST=passed AIRLOCK_BLOCKED=leaked"])
            .arg("echo \"[$LC_AIRLOCK_TEST] [$AIRLOCK_BLOCKED]\""),
        Duration::from_secs(30),
    );
    assert_eq!(text(&out.stdout), "[passed] []\n", "{}", text(&out.stderr));
    // A command killed by a signal reports it, as ssh shows it.
    let out = rig.ssh(&rig.trusted, "kill -TERM $$");
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
}

#[test]
fn a_full_disk_withholds_the_exit_status_of_what_could_not_be_recorded() {
    let Some(disk) = support::SmallDisk::mount("airlock-ssh-full", "4m") else { return };
    let root = std::env::temp_dir().join(format!("airlock-ssh-full-peers-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let sshd = Sshd::start(&root);
    let trusted = AgentKey::new(&root, "trusted_key", "trusted-agent", &["agents", "fixtures"]);
    let extra = format!(
        "{}{}\n[recording]\nsegment_size = \"1MiB\"\n",
        sshd.connection("box", r#"["agents"]"#, ""),
        trusted.config
    );
    let config_path = disk.path.join("airlock.toml");
    std::fs::write(&config_path, support::config(&disk.path, "", &extra)).unwrap();
    let mut airlock = Airlock::start_config(disk.path.clone(), config_path.clone());
    let port = airlock.ssh.unwrap().port();

    // A command's exit status says its output is on record: fill the disk with them.
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..400 {
        let command = format!("echo run-{n}; head -c 150000 /dev/urandom | base64");
        let out = run(ssh_cmd(port, &trusted.path, "box").arg(&command), Duration::from_secs(60));
        match out.status.code() {
            Some(0) => acknowledged.push(format!("run-{n}")),
            code => {
                refused = Some((code, text(&out.stderr)));
                break;
            }
        }
    }
    let (code, stderr) = refused.expect("the disk never filled");
    assert!(acknowledged.len() > 3, "the disk filled too soon to mean anything");
    // The command that could not be recorded does not look like it succeeded.
    assert_eq!(code, Some(255), "{stderr}");
    assert!(stderr.contains("could not be recorded") || stderr.contains("cannot record"), "{stderr}");
    assert!(support::http_get(airlock.admin, "/healthz").ends_with("ok\n"), "the gateway stays up");
    eprintln!("{} commands acknowledged before the disk filled: {stderr}", acknowledged.len());

    // Free space, restart: every acknowledged command is on record, exit status and
    // all, and the chain verifies.
    airlock.terminate();
    airlock.wait_exit(Duration::from_secs(20));
    disk.grow("64m");
    let restarted = Airlock::start_config(disk.path.clone(), config_path);
    let out = support::local_cli(&restarted, &["verify"]);
    assert!(out.status.success(), "verify: {}", text(&out.stdout));
    let replays: Vec<String> = support::sessions(&restarted)
        .iter()
        .map(|s| ok(&support::local_cli(&restarted, &["replay", s["id"].as_str().unwrap()])))
        .collect();
    for run in &acknowledged {
        let replay = replays
            .iter()
            .find(|r| r.contains(&format!("echo {run};")))
            .unwrap_or_else(|| panic!("{run} is missing from the recording"));
        assert!(replay.contains(&format!("{run}\n")), "{run}'s output is missing from the recording:\n{replay}");
        assert!(replay.contains("exit 0\n"), "{run}'s exit is missing from the recording:\n{replay}");
    }
    drop(restarted);
    drop(airlock);
    let _ = std::fs::remove_dir_all(&root);
}
