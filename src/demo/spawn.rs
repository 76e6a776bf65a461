//! Child processes that die with us.
//!
//! Throwaway servers (a demo PostgreSQL, Airlock under test) must not outlive the
//! process that started them, even when it is killed. `setpriv --pdeathsig` asks the
//! kernel to signal the child when its parent *thread* exits, so every such child is
//! started from one long-lived thread.

use std::ffi::OsString;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = OnceLock::new();

/// Who a tied child runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// The current user.
    Me,
    /// The `postgres` system user (PostgreSQL refuses to run as root).
    Postgres,
}

/// Builds a command that runs `program` as `user` and receives `signal` (e.g. `INT`,
/// `KILL`) when this process exits.
pub fn tied_command(program: impl Into<OsString>, user: RunAs, signal: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--pdeathsig={signal}"));
    if user == RunAs::Postgres && is_root() {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.arg("--").arg(program.into());
    cmd
}

/// Spawns `cmd` from the long-lived spawner thread.
pub fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("airlock-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok();
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    rx.recv().map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}
