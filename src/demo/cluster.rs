//! A throwaway PostgreSQL cluster: `initdb` into a temporary directory, `postgres` on a
//! free loopback port, removed on drop. Used by `airlock demo`, the integration tests
//! and the benchmarks.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::spawn::{RunAs, is_root, spawn_tied, tied_command};

/// Superuser of every throwaway cluster.
pub const SUPERUSER: &str = "postgres";

/// Options for [`PgCluster::start`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Serve TLS with a generated self-signed certificate.
    pub ssl: bool,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
    /// Lines put before the generated `pg_hba.conf` rules (first match wins there).
    pub hba: Vec<String>,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Superuser password.
    pub superuser_password: String,
    /// The cluster's directory (data, socket, password file).
    pub dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Finds the directory holding `initdb` and `postgres`: `$AIRLOCK_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or `PATH`.
pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("AIRLOCK_PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists()))
        .context("PostgreSQL server binaries (initdb, postgres) not found: install postgresql or set AIRLOCK_PG_BIN")
}

/// Deletes the directories of clusters whose process is gone (a test binary keeps its
/// shared cluster until it exits, and then cannot clean up after itself).
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("airlock-pg-")).and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A loopback port that was free a moment ago (bind to port 0, then release it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn postgres_ids() -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, SUPERUSER]).output()?;
        if !out.status.success() {
            bail!("running as root needs a `postgres` system user (apt-get install postgresql creates it)");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

impl PgCluster {
    /// Initialises and starts a cluster; returns once it accepts connections.
    pub fn start(options: ClusterOptions) -> anyhow::Result<PgCluster> {
        let bin = find_bin_dir()?;
        remove_stale_clusters();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("airlock-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // A cluster kept in a static (a test binary's shared one) is never dropped: a
        // janitor tied to this process removes its directory once the process is gone
        // and the server has stopped.
        let janitor =
            "trap 'kill $! 2>/dev/null; sleep 3; rm -rf \"$0\"; exit 0' TERM; while :; do sleep 3600 & wait $!; done";
        let mut cleanup = tied_command("sh", RunAs::Me, "TERM");
        cleanup.args(["-c", janitor]).arg(&dir);
        drop(spawn_tied(cleanup));
        let superuser_password = hex::encode(rand::random::<[u8; 12]>());
        std::fs::write(dir.join("pwfile"), &superuser_password)?;
        if is_root() {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
            std::os::unix::fs::chown(dir.join("pwfile"), Some(uid), Some(gid))?;
        }
        let data = dir.join("data");
        let out = tied_command(bin.join("initdb"), RunAs::Postgres, "KILL")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()))
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        if !options.hba.is_empty() {
            let hba = data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba)?;
            std::fs::write(&hba, format!("{}\n{rest}", options.hba.join("\n")))?;
        }
        let mut settings = vec![
            ("listen_addresses".to_owned(), "127.0.0.1".to_owned()),
            ("unix_socket_directories".to_owned(), dir.display().to_string()),
            ("fsync".to_owned(), "off".to_owned()),
            ("full_page_writes".to_owned(), "off".to_owned()),
            ("max_connections".to_owned(), "200".to_owned()),
        ];
        if options.ssl {
            write_server_cert(&data)?;
            settings.push(("ssl".into(), "on".into()));
        }
        settings.extend(options.settings);

        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut cmd = tied_command(bin.join("postgres"), RunAs::Postgres, "INT");
            cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string());
            for (k, v) in &settings {
                cmd.arg("-c").arg(format!("{k}={v}"));
            }
            cmd.stdout(Stdio::null()).stderr(std::fs::File::create(dir.join("postgres.log"))?);
            let child = spawn_tied(cmd).context("starting postgres")?;
            let mut cluster = PgCluster {
                port,
                superuser_password: superuser_password.clone(),
                dir: dir.clone(),
                bin: bin.clone(),
                child: Some(child),
            };
            match cluster.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    last_err = e.to_string();
                    cluster.stop();
                    cluster.dir = PathBuf::new(); // keep the data dir for the next attempt
                }
            }
        }
        bail!("postgres did not start: {last_err}")
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
                bail!("postgres exited with {status}: {}", log.lines().last().unwrap_or(""));
            }
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("postgres not ready after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The directory holding `psql`, `pgbench` and friends for this server version.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Runs SQL as the superuser through `psql`; returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", SUPERUSER])
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .env("PGPASSWORD", &self.superuser_password)
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn write_server_cert(data: &Path) -> anyhow::Result<()> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert = data.join("server.crt");
    let key = data.join("server.key");
    std::fs::write(&cert, generated.cert.pem())?;
    std::fs::write(&key, generated.signing_key.serialize_pem())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    if is_root() {
        let (uid, gid) = postgres_ids()?;
        std::os::unix::fs::chown(&cert, Some(uid), Some(gid))?;
        std::os::unix::fs::chown(&key, Some(uid), Some(gid))?;
    }
    Ok(())
}
