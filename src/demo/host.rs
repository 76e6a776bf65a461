//! The demo's SSH host: a throwaway OpenSSH server on loopback that lets in only the
//! key Airlock holds, as the user running the demo. Skipped when `sshd` is not
//! installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::{RunAs, free_port, is_root, spawn_tied, tied_command};

/// Where OpenSSH's server usually is.
const SSHD: [&str; 2] = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"];

/// A running throwaway `sshd`.
pub struct DemoHost {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The account it lets Airlock in as (the demo's user).
    pub user: String,
    /// Its host key, to pin.
    pub host_key: String,
    /// The key Airlock logs in with.
    pub client_key: PathBuf,
    /// A file with fake secrets, to show masking.
    pub secrets: PathBuf,
}

impl Drop for DemoHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new Ed25519 key written to `path` (mode 0600), and its public line.
pub fn new_key(path: &Path) -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness for an SSH key"))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key.to_openssh(LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))?;
    super::write_secret(path, &text).with_context(|| format!("writing {}", path.display()))?;
    key.public_key().to_openssh().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Starts the host in `dir`, or `None` when there is no `sshd` to run.
pub fn start(dir: &Path) -> anyhow::Result<Option<DemoHost>> {
    let Some(sshd) = SSHD.into_iter().find(|p| Path::new(p).exists()) else { return Ok(None) };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if is_root() {
        // OpenSSH's privilege separation needs it when started as root.
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let user = Command::new("id").arg("-un").output().context("id -un")?;
    let user = String::from_utf8_lossy(&user.stdout).trim().to_owned();
    let host_key = new_key(&dir.join("host_key"))?;
    let client_key = dir.join("airlock_key");
    let authorized = new_key(&client_key)?;
    std::fs::write(dir.join("authorized_keys"), format!("{authorized}\n"))?;
    let secrets = dir.join("app.env");
    std::fs::write(
        &secrets,
        "APP_ENV=staging\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n\
         DATABASE_URL=postgres://app:s3cr3t-Passw0rd@db.internal:5432/app\nLOG_LEVEL=info\n",
    )?;
    let port = free_port()?;
    let d = dir.display();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nAllowUsers {user}\nUsePAM no\nStrictModes no\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         Subsystem sftp internal-sftp\n"
    );
    std::fs::write(dir.join("sshd_config"), config)?;
    let mut cmd = tied_command(sshd, RunAs::Me, "KILL");
    cmd.args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log"))?);
    let child = spawn_tied(cmd).context("starting sshd")?;
    let mut host = DemoHost { child, port, user, host_key, client_key, secrets };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline || matches!(host.child.try_wait(), Ok(Some(_))) {
            let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            anyhow::bail!("the demo's sshd did not start: {}", log.trim());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(host))
}
