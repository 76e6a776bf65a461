//! The `airlock` command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use airlock::config::Config;
use airlock::identity::{DevKey, mint_token};
use airlock::server::{Server, shutdown_signal};

/// A wire-level gateway that puts AI agents on a leash for PostgreSQL.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Airlock with a config file.
    Serve {
        /// Config file.
        #[arg(long, short, default_value = "airlock.toml", env = "AIRLOCK_CONFIG")]
        config: PathBuf,
    },
    /// Start a throwaway PostgreSQL with sample data and Airlock in front of it.
    Demo {
        /// Where the demo keeps its config, keys and certificate.
        #[arg(long, default_value = "airlock-data")]
        data_dir: PathBuf,
        /// Port of Airlock's Postgres endpoint on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 15432)]
        postgres: u16,
        /// Port of the admin API on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8081)]
        admin: u16,
        /// Port of Airlock's SSH endpoint on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 2222)]
        ssh: u16,
        /// Port of Airlock's HTTP endpoint on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8080)]
        http: u16,
    },
    /// Mint a development token (needs `auth.dev_tokens = true` or `auth.hs256_secret`).
    Token {
        /// Config file.
        #[arg(long, short, default_value = "airlock.toml", env = "AIRLOCK_CONFIG")]
        config: PathBuf,
        /// Subject (`sub` claim).
        #[arg(long)]
        sub: String,
        /// Comma-separated groups.
        #[arg(long, value_delimiter = ',', default_value = "agents")]
        groups: Vec<String>,
        /// Lifetime, e.g. `1h`, `30m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Validate a config file and print a summary.
    CheckConfig {
        /// Config file.
        config: PathBuf,
        /// Also log in to every Postgres upstream and report a role that is too
        /// powerful for an agent (superuser, BYPASSRLS, CREATEROLE, REPLICATION).
        #[arg(long)]
        connect: bool,
    },
    /// Show what the policy would decide for a query or, on an SSH connection, a
    /// command line (JSON), without running it.
    Explain {
        /// Config file.
        #[arg(long, short, default_value = "airlock.toml", env = "AIRLOCK_CONFIG")]
        config: PathBuf,
        /// Connection the query or command would run on.
        #[arg(long)]
        connection: String,
        /// Groups of the identity asking (comma-separated).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The query string (one or more statements), or the command line.
        sql: String,
    },
    /// Print the SSH host key's fingerprint (generating the key on first use).
    SshHostkey {
        /// Config file whose data_dir holds the key.
        #[arg(long, short, default_value = "airlock.toml", env = "AIRLOCK_CONFIG")]
        config: PathBuf,
    },
    /// The HTTPS proxy's certificate authority.
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
    /// Print the host key line to pin in an SSH connection's `host_key`.
    SshKeyscan {
        /// The upstream's `host:port`.
        address: String,
    },
    /// List statements waiting for approval.
    Approvals {
        #[command(flatten)]
        admin: AdminArgs,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve a held statement: it runs and the agent gets its result.
    Approve {
        /// Approval id, as shown to the agent and by `airlock approvals`.
        id: String,
        /// Also let the same identity run the same statements (any literals) on the same
        /// connection for this long without asking, e.g. `30m`.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        grant: Option<Duration>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Deny a held statement: the agent gets an error with the reason.
    Deny {
        /// Approval id.
        id: String,
        /// Why; the agent sees it.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List recorded sessions.
    Sessions {
        #[command(flatten)]
        source: DataSource,
        /// Only sessions started within this long, e.g. `1h`.
        #[arg(long, value_parser = parse_since)]
        since: Option<Duration>,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Only this subject.
        #[arg(long)]
        subject: Option<String>,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a recorded session.
    Replay {
        /// Session id (a unique prefix is enough).
        session: String,
        #[command(flatten)]
        source: DataSource,
        /// `text` (a transcript), `jsonl` (one frame per line) or, for SSH sessions,
        /// `asciicast` (v2, for `asciinema play`); for HTTP sessions, `har` (HAR 1.2).
        #[arg(long, default_value = "text")]
        format: ReplayFormat,
        /// Rows shown per result in `text`.
        #[arg(long, default_value_t = 20)]
        max_rows: usize,
    },
    /// Check every recording segment: CRCs, the hash chain, footers, signatures.
    Verify {
        #[command(flatten)]
        source: DataSource,
        /// Ed25519 public key (hex, as in data_dir/recording-signing.pub): also check signatures.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Succeed when there is nothing to verify (otherwise no segments is an error).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Rebuild the session index from the segments.
    Reindex {
        #[command(flatten)]
        source: DataSource,
    },
    /// GET a health URL and exit 0 only on 200 (for container health checks), e.g.
    /// `airlock probe http://127.0.0.1:8081/readyz`.
    Probe {
        /// The URL.
        url: String,
    },
}

/// How to reach the admin API.
#[derive(clap::Args)]
struct AdminArgs {
    /// Config file whose `listen.admin` is the admin address.
    #[arg(long, short, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// The admin API's base URL, e.g. `http://127.0.0.1:8081`.
    #[arg(long, conflicts_with = "config")]
    admin: Option<String>,
    /// An approver's token (JWT or API key); default: the AIRLOCK_TOKEN variable.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl AdminArgs {
    fn client(&self) -> anyhow::Result<airlock::admin::AdminClient> {
        let base = match (&self.admin, &self.config) {
            (Some(url), _) => url.clone(),
            (None, config) => {
                let path = config.clone().unwrap_or_else(|| PathBuf::from("airlock.toml"));
                let config =
                    Config::load(&path).map_err(|e| anyhow::anyhow!("{e} (or pass --admin URL or --config FILE)"))?;
                let mut addr = config.listen.admin;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let token =
            self.token.as_deref().context("no token: pass --token or set AIRLOCK_TOKEN to an approver's token")?;
        Ok(airlock::admin::AdminClient::new(&base, token))
    }
}

/// Where recordings are read from.
#[derive(clap::Args)]
struct DataSource {
    /// Config file whose data_dir holds the recordings.
    #[arg(long, short, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory itself.
    #[arg(long, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
}

impl DataSource {
    /// The recordings directory, which must exist: a mistyped `--data-dir` is an error,
    /// not an empty history.
    fn recordings(&self) -> anyhow::Result<PathBuf> {
        let data_dir = match (&self.data_dir, &self.config) {
            (Some(d), _) => d.clone(),
            (None, Some(c)) => Config::load(c)?.data_dir(),
            (None, None) => Config::load(Path::new("airlock.toml"))
                .map_err(|e| anyhow::anyhow!("{e} (or pass --config FILE or --data-dir DIR)"))?
                .data_dir(),
        };
        let dir = airlock::recording::store::recordings_dir(&data_dir);
        if !dir.is_dir() {
            anyhow::bail!("no recordings in {}: {} does not exist", data_dir.display(), dir.display());
        }
        Ok(dir)
    }

    /// The config, unless a data directory was given instead.
    fn config(&self) -> anyhow::Result<Option<Config>> {
        match (&self.data_dir, &self.config) {
            (Some(_), _) => Ok(None),
            (None, Some(path)) => Ok(Some(Config::load(path)?)),
            (None, None) => Ok(Config::load(Path::new("airlock.toml")).ok()),
        }
    }

    /// With `[recording.remote]` in the config: one directory per replica holding all its
    /// segments, local and remote (see `airlock::recording::remote::materialize`). With
    /// `fresh`, every remote segment is downloaded again (for `verify`).
    async fn replica_dirs(&self, fresh: bool) -> anyhow::Result<Option<Vec<(String, PathBuf)>>> {
        let Some(config) = self.config()? else { return Ok(None) };
        let Some(r) = &config.recording.remote else { return Ok(None) };
        let remote = airlock::recording::remote::Remote::from_config(&config, r)?;
        let local = airlock::recording::store::recordings_dir(&config.data_dir());
        let cache = config.data_dir().join("remote-cache");
        let local = local.is_dir().then_some(&*local);
        let dirs = airlock::recording::remote::materialize(&remote, local, &config.replica(), &cache, fresh).await?;
        Ok(Some(dirs))
    }

    /// Recorded sessions: every replica's from the shared state when the config has
    /// `[state]`, or from local and remote segments with `[recording.remote]`,
    /// otherwise this data directory's.
    async fn sessions(&self, since_us: u64) -> anyhow::Result<Vec<airlock::recording::index::SessionSummary>> {
        if let Some(config) = self.config()?
            && let Some(state) = &config.state
        {
            let client = airlock::state::connect(&config, state).await?;
            return airlock::state::sessions::list(&client, since_us).await;
        }
        if let Some(dirs) = self.replica_dirs(false).await? {
            let mut all = Vec::new();
            for (replica, dir) in dirs {
                all.extend(airlock::recording::index::sessions(&dir)?.into_iter().map(|mut s| {
                    s.replica = Some(replica.clone());
                    s
                }));
            }
            all.sort_by_key(|s| s.start_us);
            return Ok(all);
        }
        Ok(airlock::recording::index::sessions(&self.recordings()?)?)
    }

    /// A session's summary and frames, from whichever replica recorded it.
    async fn session(
        &self,
        id: &str,
    ) -> anyhow::Result<(airlock::recording::index::SessionSummary, Vec<airlock::recording::format::Frame>)> {
        let Some(dirs) = self.replica_dirs(false).await? else {
            return airlock::recording::replay::load(&self.recordings()?, id);
        };
        let mut found = Vec::new();
        for (_, dir) in &dirs {
            if airlock::recording::index::sessions(dir)?.iter().any(|s| s.id.starts_with(id)) {
                found.push(dir);
            }
        }
        match found.as_slice() {
            [dir] => airlock::recording::replay::load(dir, id),
            [] => anyhow::bail!("no session {id:?} in any replica's recordings (see `airlock sessions`)"),
            _ => anyhow::bail!("{id:?} matches sessions of {} replicas; give more of the id", found.len()),
        }
    }
}

/// A duration back from now (`--since`).
fn parse_since(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|_| format!("{text:?} is not a duration: use e.g. 30m, 1h, 2days"))
}

/// `n` and `thing`, plural when `n` is not 1.
fn count(n: u64, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplayFormat {
    Text,
    Jsonl,
    Asciicast,
    Har,
}

#[derive(Subcommand)]
enum CaAction {
    /// Print the CA certificate (PEM) for agents' trust stores, creating the CA on
    /// first use: `airlock ca export > airlock-ca.pem`.
    Export {
        /// Config file whose data_dir holds the CA.
        #[arg(long, short, default_value = "airlock.toml", env = "AIRLOCK_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // One crypto provider for every TLS user in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let threads = match &cli.command {
        // Errors surface in `serve` itself; here only the runtime shape matters.
        Command::Serve { config } => Config::load(config).map(|c| c.runtime.worker_threads).unwrap_or(0),
        _ => 0,
    };
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AIRLOCK_LOG_FORMAT").is_ok_and(|f| f == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log that cannot be written (stderr to a full disk) is dropped: reporting that on
    // stderr would panic, and with it the whole process.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => serve(&config).await,
        Command::Demo { data_dir, postgres, admin, ssh, http } => {
            airlock::demo::run(&data_dir, airlock::demo::Ports { postgres, admin, ssh, http }).await
        }
        Command::Token { config, sub, groups, ttl } => {
            let config = Config::load(&config)?;
            let key = signing_key(&config)?;
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            println!(
                "{}",
                mint_token(
                    &key,
                    &config.auth.issuer,
                    &config.auth.audience,
                    &config.auth.groups_claim,
                    &sub,
                    &groups,
                    ttl
                )?
            );
            Ok(())
        }
        Command::Approvals { admin, json } => {
            let list = admin.client()?.get("/approvals").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let items = list.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no pending approvals");
                return Ok(());
            }
            println!(
                "{:<8}  {:<20}  {:<16}  {:<16}  {:<20}  STATEMENT",
                "ID", "EXPIRES (UTC)", "SUBJECT", "CONNECTION", "CLASSES"
            );
            for a in items {
                let field = |k: &str| a.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
                let classes: Vec<&str> = a
                    .get("classes")
                    .and_then(serde_json::Value::as_array)
                    .map(|c| c.iter().filter_map(serde_json::Value::as_str).collect())
                    .unwrap_or_default();
                let statement: String = field("statement").split_whitespace().collect::<Vec<_>>().join(" ");
                let statement = match statement.char_indices().nth(80) {
                    Some((i, _)) => format!("{}...", &statement[..i]),
                    None => statement,
                };
                println!(
                    "{:<8}  {:<20}  {:<16}  {:<16}  {:<20}  {statement}",
                    field("id"),
                    field("expires_at"),
                    field("subject"),
                    field("connection"),
                    classes.join(",")
                );
            }
            Ok(())
        }
        Command::Approve { id, grant, admin } => {
            let body = match grant {
                Some(d) => serde_json::json!({ "for": humantime::format_duration(d).to_string() }),
                None => serde_json::json!({}),
            };
            let request = admin.client()?.post(&format!("/approvals/{id}/approve"), &body).await?;
            let grant = grant.map(|d| format!("; granted for {}", humantime::format_duration(d))).unwrap_or_default();
            println!(
                "approved {id}: {} on {}{grant}",
                request["subject"].as_str().unwrap_or("?"),
                request["connection"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Command::Deny { id, reason, admin } => {
            let request = admin
                .client()?
                .post(&format!("/approvals/{id}/deny"), &serde_json::json!({ "reason": reason }))
                .await?;
            println!(
                "denied {id}: {} on {}",
                request["subject"].as_str().unwrap_or("?"),
                request["connection"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Command::Sessions { source, since, connection, subject, json } => {
            let cutoff = since.map(|d| airlock::recording::now_us().saturating_sub(d.as_micros() as u64));
            let sessions: Vec<_> = source
                .sessions(cutoff.unwrap_or(0))
                .await?
                .into_iter()
                .filter(|s| cutoff.is_none_or(|c| s.start_us >= c))
                .filter(|s| connection.as_ref().is_none_or(|c| &s.connection == c))
                .filter(|s| subject.as_ref().is_none_or(|x| &s.subject == x))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&sessions)?);
                return Ok(());
            }
            // Listed from the shared state, sessions say which replica recorded them.
            let fleet = sessions.iter().any(|s| s.replica.is_some());
            println!(
                "{:<16}  {:<24}  {:>10}  {:<16}  {:<16}  {:<8}  {:>10}{}",
                "ID",
                "START (UTC)",
                "DURATION",
                "SUBJECT",
                "CONNECTION",
                "PROTOCOL",
                "STATEMENTS",
                if fleet { "  REPLICA" } else { "" }
            );
            for s in sessions {
                let start =
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_micros(s.start_us));
                let duration =
                    s.duration_ms.map(|d| format!("{:.1}s", d as f64 / 1000.0)).unwrap_or_else(|| "open".into());
                let statements = s.statements.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                let replica = s.replica.as_deref().map(|r| format!("  {r}")).unwrap_or_default();
                println!(
                    "{:<16}  {:<24}  {:>10}  {:<16}  {:<16}  {:<8}  {:>10}{replica}",
                    s.id,
                    start.to_string(),
                    duration,
                    s.subject,
                    s.connection,
                    s.protocol,
                    statements
                );
            }
            Ok(())
        }
        Command::Replay { session, source, format, max_rows } => {
            let (summary, frames) = source.session(&session).await?;
            let mut out = std::io::stdout().lock();
            let mut transcript = airlock::plugins::transcript(&summary.protocol, max_rows);
            match format {
                ReplayFormat::Text => {
                    airlock::recording::replay::render_text(&summary, &frames, transcript.as_mut(), &mut out)?
                }
                ReplayFormat::Jsonl => {
                    airlock::recording::replay::render_jsonl(&frames, transcript.as_mut(), &mut out)?
                }
                ReplayFormat::Asciicast => {
                    if summary.protocol != "ssh" {
                        anyhow::bail!("asciicast is for SSH sessions; session {} is {}", summary.id, summary.protocol);
                    }
                    use airlock::recording::format::Kind;
                    let events = frames
                        .iter()
                        .filter(|f| matches!(f.kind, Kind::SshAgent | Kind::SshHost))
                        .map(|f| (f.ts_us, f.kind == Kind::SshAgent, &f.payload[..]));
                    airlock_ssh::transcript::asciicast(summary.start_us, events, &mut out)?;
                }
                ReplayFormat::Har => {
                    if summary.protocol != "http" {
                        anyhow::bail!("HAR is for HTTP sessions; session {} is {}", summary.id, summary.protocol);
                    }
                    use airlock::recording::format::Kind;
                    let events = frames
                        .iter()
                        .filter(|f| matches!(f.kind, Kind::HttpAgent | Kind::HttpUpstream))
                        .map(|f| (f.kind == Kind::HttpAgent, f.ts_us, f.payload.to_vec()));
                    let har = airlock_http::transcript::har(summary.start_us, events);
                    serde_json::to_writer_pretty(&mut out, &har)?;
                    std::io::Write::write_all(&mut out, b"\n")?;
                }
            }
            Ok(())
        }
        Command::Verify { source, public_key, allow_empty } => {
            let key = match public_key {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    Some(
                        hex::decode(text.trim())
                            .with_context(|| format!("{}: not a hex Ed25519 public key", path.display()))?,
                    )
                }
                None => None,
            };
            // With object storage, every replica's chain; otherwise the local one.
            let chains = match source.replica_dirs(true).await? {
                Some(dirs) => dirs.into_iter().map(|(replica, dir)| (Some(replica), dir)).collect(),
                None => vec![(None, source.recordings()?)],
            };
            for (replica, dir) in chains {
                let whose = replica.as_ref().map(|r| format!("replica {r}: ")).unwrap_or_default();
                let report = airlock::recording::verify::verify(&dir, key.as_deref())
                    .and_then(|report| match &replica {
                        Some(r) => airlock::recording::verify::check_replica(&dir, r).map(|()| report),
                        None => Ok(report),
                    })
                    .map_err(|p| anyhow::anyhow!("{whose}verification failed: {p}"))?;
                if report.segments == 0 && !allow_empty {
                    anyhow::bail!(
                        "{whose}nothing to verify: no segments in {} (pass --allow-empty if none are expected)",
                        dir.display()
                    );
                }
                println!(
                    "{whose}ok: {}, {} sealed, {}, {}, {}, {} checked",
                    count(report.segments as u64, "segment"),
                    report.sealed,
                    count(report.blocks as u64, "block"),
                    count(report.frames as u64, "frame"),
                    count(report.retired as u64, "retired segment"),
                    count(report.signatures as u64, "signature"),
                );
            }
            Ok(())
        }
        Command::Probe { url } => {
            println!("{}", airlock::admin::probe(&url).await?);
            Ok(())
        }
        Command::Reindex { source } => {
            let dir = source.recordings()?;
            let n = airlock::recording::index::reindex(&dir)?;
            println!("index rebuilt: {n} sessions");
            Ok(())
        }
        Command::Explain { config, connection, groups, sql } => {
            let config = Config::load(&config)?;
            if config.connection(&connection).is_none() {
                let names: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
                anyhow::bail!("no connection named {connection:?} in the config (it has: {})", names.join(", "));
            }
            let policy = airlock::policy::Policy::new(&config.rules)?;
            if let Some(conn) = config.connection(&connection).filter(|c| c.protocol == airlock::config::Protocol::Ssh)
            {
                let (decision, analysis) = airlock::plugins::ssh::judge::exec(&policy, conn, &groups, &sql);
                let mut out = serde_json::to_value(&decision)?;
                out["commands"] = analysis
                    .commands
                    .iter()
                    .map(|c| serde_json::json!({"argv": c.argv, "classes": c.classes, "reason": c.reason}))
                    .collect();
                if let Some(error) = &analysis.error {
                    out["not_understood"] = error.clone().into();
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            let decision = airlock::plugins::postgres::judge::decide_query(&policy, &connection, &groups, &sql);
            let mut out = serde_json::to_value(&decision)?;
            // Which result columns column rules mask, where the query alone tells.
            let masks = airlock::plugins::postgres::static_masks(&config, &connection, &sql);
            if let Some(statements) = out["statements"].as_array_mut() {
                for (s, masked) in statements.iter_mut().zip(masks) {
                    s["masked_by_column_rules"] = serde_json::to_value(masked)?;
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::SshHostkey { config } => {
            let config = Config::load(&config)?;
            let key = airlock::plugins::ssh::load_or_create_host_key(&config.data_dir())?;
            println!("{}", airlock::plugins::ssh::host_key_fingerprint(&key));
            println!("{}", key.public_key().to_openssh().map_err(|e| anyhow::anyhow!("{e}"))?);
            Ok(())
        }
        Command::Ca { action: CaAction::Export { config } } => {
            let config = Config::load(&config)?;
            let ca = airlock::plugins::http::mitm::Authority::load_or_create(&config.data_dir())?;
            print!("{}", ca.cert_pem());
            Ok(())
        }
        Command::SshKeyscan { address } => {
            println!("{}", airlock::plugins::ssh::keyscan(&address).await?);
            Ok(())
        }
        Command::CheckConfig { config, connect } => {
            let c = Config::load(&config)?;
            // Secrets are read as `serve` reads them: a missing file or variable fails
            // here too, naming it (never the value).
            let secrets = c.auth.hs256_secret.iter().map(|s| ("auth.hs256_secret".to_owned(), s)).chain(
                c.connections.iter().enumerate().flat_map(|(i, conn)| {
                    let password = conn.password.as_ref().map(|s| (format!("connections[{i}].password"), s));
                    let key = conn.private_key.as_ref().map(|s| (format!("connections[{i}].private_key"), s));
                    password.into_iter().chain(key)
                }),
            );
            let missing: Vec<String> = secrets
                .filter_map(|(key, source)| source.load(&c.base_dir).err().map(|e| format!("{key}: {e}")))
                .collect();
            if !missing.is_empty() {
                anyhow::bail!("{}: secrets cannot be read:\n  {}", config.display(), missing.join("\n  "));
            }
            println!("{}: ok", config.display());
            println!("  data_dir     {}", c.data_dir().display());
            println!("  postgres     {}", c.listen.postgres);
            println!("  admin        {}", c.listen.admin);
            if c.connections.iter().any(|conn| conn.protocol == airlock::config::Protocol::Ssh) {
                println!("  ssh          {}", c.listen.ssh);
            }
            if let Some(remote) = &c.recording.remote {
                println!("  recordings   shipped to {} every {:?}", remote.url, remote.upload_interval);
            }
            if let Some(state) = &c.state {
                let replica = state.replica.as_deref().unwrap_or("the host name");
                println!("  state        shared, from {:?} (replica: {replica})", state.url);
            }
            for conn in &c.connections {
                println!(
                    "  connection   {} ({}) -> {} as {} [groups: {}]",
                    conn.name,
                    conn.protocol.as_str(),
                    conn.address,
                    conn.user.as_deref().unwrap_or("-"),
                    conn.allow_groups.join(", ")
                );
            }
            if connect {
                let mut failed = false;
                for (name, risks) in airlock::plugins::postgres::upstream_role_risks(&c).await? {
                    match risks {
                        Ok(r) if r.is_empty() => println!("  upstream     {name}: ok, least-privileged"),
                        Ok(r) => {
                            println!(
                                "  upstream     {name}: WARNING: the role has {}; an approved or misread statement \
                                 can do anything these allow (use a least-privileged role)",
                                r.join(", ")
                            );
                        }
                        Err(e) => {
                            failed = true;
                            println!("  upstream     {name}: cannot connect: {e:#}");
                        }
                    }
                }
                if failed {
                    anyhow::bail!("some upstreams could not be reached");
                }
            }
            Ok(())
        }
    }
}

async fn serve(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let server = Server::start(&config).await?;
    let mut stdout = std::io::stdout().lock();
    for b in server.bound() {
        // A stable line for scripts and tests that start Airlock on port 0. Nobody
        // may be reading: a closed stdout must not stop the server.
        let _ = writeln!(stdout, "listening {} {}", b.endpoint, b.addr);
    }
    if let Some(fingerprint) = server.ssh_host_key() {
        let _ = writeln!(stdout, "ssh host key {fingerprint}");
    }
    let _ = stdout.flush();
    drop(stdout);
    shutdown_signal().await;
    tokio::select! {
        _ = server.shutdown() => {}
        _ = shutdown_signal() => tracing::warn!("second signal: exiting now"),
    }
    Ok(())
}

fn signing_key(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(src) = &config.auth.hs256_secret {
        return Ok(src.load(&config.base_dir).context("auth.hs256_secret")?.expose().to_vec());
    }
    if config.auth.dev_tokens {
        return Ok(DevKey::load_or_create(&config.data_dir())?.secret().expose().to_vec());
    }
    anyhow::bail!("this config accepts no HS256 tokens: set auth.dev_tokens = true (development) or auth.hs256_secret")
}
