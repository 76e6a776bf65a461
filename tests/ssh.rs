//! The SSH endpoint end to end: the real `ssh`, `scp`, `sftp` and `rsync` through
//! Airlock to a throwaway OpenSSH server, judged by what really happened on the host.

mod support;

use std::path::Path;
use std::time::Duration;

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
