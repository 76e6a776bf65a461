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

/// A wire-level gateway that puts AI agents on a leash for PostgreSQL (and soon SSH and HTTP).
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // One crypto provider for every TLS user in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let threads = match &cli.command {
        // Errors surface in `serve` itself; here only the runtime shape matters.
        Command::Serve { config } => Config::load(config)
            .map(|c| c.runtime.worker_threads)
            .unwrap_or(0),
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => serve(&config).await,
        Command::Demo { data_dir } => airlock::demo::run(&data_dir).await,
        Command::Token {
            config,
            sub,
            groups,
            ttl,
        } => {
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
        Command::CheckConfig { config } => {
            let c = Config::load(&config)?;
            println!("{}: ok", config.display());
            println!("  data_dir     {}", c.data_dir().display());
            println!("  postgres     {}", c.listen.postgres);
            println!("  admin        {}", c.listen.admin);
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
        return Ok(src
            .load(&config.base_dir)
            .context("auth.hs256_secret")?
            .expose()
            .to_vec());
    }
    if config.auth.dev_tokens {
        return Ok(DevKey::load_or_create(&config.data_dir())?
            .secret()
            .expose()
            .to_vec());
    }
    anyhow::bail!(
        "this config accepts no HS256 tokens: set auth.dev_tokens = true (development) or auth.hs256_secret"
    )
}
