//! A throwaway OpenSSH server as the upstream of SSH tests, on an ephemeral port, and
//! helpers to drive the real `ssh`, `scp`, `sftp` and `rsync` through Airlock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use airlock::demo::{RunAs, spawn_tied, tied_command};

/// A running `sshd`.
pub struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory: config, keys, log.
    pub dir: PathBuf,
    /// Its host key, as a line to pin.
    pub host_key: String,
    /// The private key Airlock logs in with (authorized for root).
    pub client_key: PathBuf,
}

/// Makes an Ed25519 key pair at `path` (and `path.pub`); returns the public line.
pub fn keygen(path: &Path) -> String {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (install openssh-client: .ci/peers)");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

impl Sshd {
    /// Starts sshd in a fresh directory under `parent`.
    pub fn start(parent: &Path) -> Sshd {
        let dir = parent.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let host_key = keygen(&dir.join("host_key"));
        let client_key = dir.join("client_key");
        let client_pub = keygen(&client_key);
        std::fs::write(dir.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
        let port = airlock::demo::free_port().unwrap();
        let sftp_server = ["/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("internal-sftp");
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding yes\n\
             AcceptEnv LANG LC_* AIRLOCK_*\nSubsystem sftp {sftp_server}\nLogLevel VERBOSE\nMaxStartups 100:30:200\nMaxSessions 64\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let mut cmd = tied_command("/usr/sbin/sshd", RunAs::Me, "KILL");
        cmd.args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap());
        let child = spawn_tied(cmd).expect("spawn sshd (install openssh-server: .ci/peers)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd { child, port, dir, host_key, client_key }
    }

    /// `[[connections]]` entries for this sshd: `name`, for `groups`, plus `extra` keys.
    pub fn connection(&self, name: &str, groups: &str, extra: &str) -> String {
        format!(
            "\n[[connections]]\nname = \"{name}\"\nprotocol = \"ssh\"\naddress = \"127.0.0.1:{port}\"\nuser = \"root\"\n\
             private_key = {{ file = \"{key}\" }}\nhost_key = \"{host}\"\nallow_groups = {groups}\n{extra}\n",
            port = self.port,
            key = self.client_key.display(),
            host = self.host_key,
        )
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent's SSH identity registered in Airlock's config.
pub struct AgentKey {
    /// Private key file.
    pub path: PathBuf,
    /// `[[auth.ssh_keys]]` entry for it.
    pub config: String,
}

impl AgentKey {
    /// A new key at `dir/name` standing for `subject` in `groups`.
    pub fn new(dir: &Path, name: &str, subject: &str, groups: &[&str]) -> AgentKey {
        let path = dir.join(name);
        let public = keygen(&path);
        let config = format!("\n[[auth.ssh_keys]]\nsubject = \"{subject}\"\ngroups = {groups:?}\nkey = \"{public}\"\n");
        AgentKey { path, config }
    }
}

/// Options every client uses against Airlock: no known_hosts, no agent, no config.
pub fn client_options(port: u16, flag: &str) -> Vec<String> {
    [
        flag,
        &port.to_string(),
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=5",
    ]
    .map(String::from)
    .to_vec()
}

/// `ssh` with a key (batch mode) to `conn` through Airlock at `port`.
pub fn ssh_cmd(port: u16, key: &Path, conn: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(client_options(port, "-p"))
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(key)
        .arg(format!("{conn}@127.0.0.1"))
        .stdin(Stdio::null());
    cmd
}

/// `ssh` with the token as the password (through `SSH_ASKPASS`).
pub fn ssh_token_cmd(port: u16, token: &str, conn: &str, dir: &Path) -> Command {
    let askpass = dir.join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\nprintf '%s\\n' \"$AIRLOCK_TEST_TOKEN\"\n").unwrap();
    Command::new("chmod").arg("700").arg(&askpass).status().unwrap();
    let mut cmd = Command::new("setsid");
    cmd.arg("-w")
        .arg("ssh")
        .args(client_options(port, "-p"))
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .arg(format!("{conn}@127.0.0.1"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("AIRLOCK_TEST_TOKEN", token)
        .stdin(Stdio::null());
    cmd
}

/// `scp` or `sftp` (`program`) with a key through Airlock.
pub fn transfer_cmd(program: &str, port: u16, key: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(client_options(port, "-P"))
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(key)
        .stdin(Stdio::null());
    cmd
}

/// Runs with a timeout; the output.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    }
}
