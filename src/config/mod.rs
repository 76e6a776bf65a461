//! The TOML config file, typed and validated.
//!
//! Parsing happens in two steps: `serde` turns the text into the structs below (unknown
//! keys are errors, so a typo never silently does nothing), then `Config::validate`
//! checks what types cannot express. Every error names the file, the line and the key,
//! and says how to fix it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secrets::SecretSource;

mod values;

/// A connection's rows-affected limit unless it sets `max_rows`.
pub const DEFAULT_MAX_ROWS: u64 = 1000;

pub use values::parse_size;
use values::{de_classes, de_duration, de_max_rows, de_opt_duration, de_opt_max_rows, de_size, defaults};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where generated keys and certificates (and later recordings) live; relative to
    /// the config file's directory.
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// Listening addresses.
    #[serde(default)]
    pub listen: Listen,
    /// Connection and message limits.
    #[serde(default)]
    pub limits: Limits,
    /// Agent-facing TLS.
    #[serde(default)]
    pub tls: AgentTls,
    /// Async runtime shape.
    #[serde(default)]
    pub runtime: Runtime,
    /// Session recordings.
    #[serde(default)]
    pub recording: Recording,
    /// Postgres endpoint settings.
    #[serde(default)]
    pub postgres: PostgresSettings,
    /// How agents prove who they are.
    #[serde(default)]
    pub auth: Auth,
    /// The upstream targets agents may reach.
    #[serde(default)]
    pub connections: Vec<Connection>,
    /// Policy rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Whether the policy is enforced.
    #[serde(default)]
    pub policy: PolicySettings,
    /// Masking: column rules, detector choices and extra patterns, per connection.
    #[serde(default)]
    pub masking: Vec<MaskingRule>,
    /// How held statements wait for a human.
    #[serde(default)]
    pub approvals: Approvals,
    /// Shared state for a fleet of replicas (approvals, grants, the session index).
    pub state: Option<StateSettings>,
    /// The web console on the admin listener.
    #[serde(default)]
    pub console: ConsoleSettings,
    /// Directory of the config file; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[listen]`: where each endpoint accepts connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Postgres endpoint.
    #[serde(default = "defaults::postgres_addr")]
    pub postgres: SocketAddr,
    /// Admin API (`/healthz`, `/metrics`).
    #[serde(default = "defaults::admin_addr")]
    pub admin: SocketAddr,
    /// SSH endpoint; it listens only when an SSH connection is configured.
    #[serde(default = "defaults::ssh_addr")]
    pub ssh: SocketAddr,
    /// HTTP endpoint (reverse and forward proxy); it listens only when an HTTP
    /// connection is configured.
    #[serde(default = "defaults::http_addr")]
    pub http: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            postgres: defaults::postgres_addr(),
            admin: defaults::admin_addr(),
            ssh: defaults::ssh_addr(),
            http: defaults::http_addr(),
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Classify and enforce every statement (the default). `false` forwards every
    /// statement unchecked: only for measuring what the policy costs.
    #[serde(default = "defaults::yes")]
    pub enforce: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { enforce: true }
    }
}

/// `[approvals]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// How long a held statement waits for a decision before it is refused.
    #[serde(default = "defaults::approval_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Slack-compatible webhook told about new and resolved approvals.
    pub webhook: Option<String>,
    /// Time allowed for one webhook delivery attempt.
    #[serde(default = "defaults::webhook_timeout", deserialize_with = "de_duration")]
    pub webhook_timeout: Duration,
    /// The longest grant `airlock approve --for` may give.
    #[serde(default = "defaults::max_grant", deserialize_with = "de_duration")]
    pub max_grant: Duration,
    /// How long a held HTTP request waits before the agent is answered 403 with the
    /// approval's id to retry with (the approval itself stays open for `timeout`).
    #[serde(default = "defaults::http_hold", deserialize_with = "de_duration")]
    pub http_hold: Duration,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            timeout: defaults::approval_timeout(),
            webhook: None,
            webhook_timeout: defaults::webhook_timeout(),
            max_grant: defaults::max_grant(),
            http_hold: defaults::http_hold(),
        }
    }
}

/// `[state]`: where a fleet of replicas keeps what they share. Without it, approvals
/// and grants live in the process and the session index in `data_dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// PostgreSQL URL or key=value string (`postgres://user:pw@host/db?sslmode=require`).
    pub url: SecretSource,
    /// This process's name in the fleet; defaults to the host name (a pod's name).
    pub replica: Option<String>,
    /// CA bundle for the state server's certificate (default: the web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// How often a replica says it is alive. A replica silent for three heartbeats is
    /// taken for dead, and the requests its sessions were waiting on are withdrawn.
    #[serde(default = "defaults::state_heartbeat", deserialize_with = "de_duration")]
    pub heartbeat: Duration,
}

/// `[console]`: the web console served by the admin listener at `/console/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Serve the console (it needs a login either way).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Groups whose members read sessions, replays and verification (approvers are
    /// `auth.approver_groups`).
    #[serde(default)]
    pub auditor_groups: Vec<String>,
    /// How long a console login lasts.
    #[serde(default = "defaults::console_login", deserialize_with = "de_duration")]
    pub login_ttl: Duration,
    /// Where people reach the console, such as `https://airlock.example.com` behind a
    /// TLS-terminating proxy: the OIDC redirect goes there, and with `https` the
    /// cookies are `Secure`. Default: `http://` plus `listen.admin`.
    pub public_url: Option<String>,
    /// Sign in through the IdP (authorization code with PKCE).
    pub oidc: Option<OidcSettings>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: true,
            auditor_groups: Vec::new(),
            login_ttl: defaults::console_login(),
            public_url: None,
            oidc: None,
        }
    }
}

/// `[console.oidc]`: the console as an OIDC client of the issuer in `auth.issuer`,
/// whose ID tokens are checked with the agents' keys (`auth.jwks_url`/`jwks_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The client id registered at the IdP (the ID token's audience).
    pub client_id: String,
    /// The client secret, for IdPs that give one (PKCE is used either way).
    pub client_secret: Option<SecretSource>,
    /// Scopes asked for besides `openid`.
    #[serde(default = "defaults::oidc_scopes")]
    pub scopes: Vec<String>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Open agent connections across all endpoints; more are refused with a clear error.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Time allowed from accept to a ready session (TLS, authentication, upstream).
    #[serde(default = "defaults::handshake_timeout", deserialize_with = "de_duration")]
    pub handshake_timeout: Duration,
    /// Connections still in their handshake (not yet authenticated), across all
    /// endpoints: a flood of idle connections can hold no more than this many of
    /// `max_connections`, so authenticated agents always find room.
    #[serde(default = "defaults::max_handshakes")]
    pub max_handshakes: usize,
    /// Connections in their handshake from one source address.
    #[serde(default = "defaults::max_handshakes_per_source")]
    pub max_handshakes_per_source: usize,
    /// On SIGINT/SIGTERM, how long open sessions may run to a safe point.
    #[serde(default = "defaults::shutdown_grace", deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Largest single message Airlock buffers whole (statements, auth messages).
    /// Rows and COPY data stream through whatever their size.
    #[serde(default = "defaults::max_message_size", deserialize_with = "de_size")]
    pub max_message_size: usize,
    /// Time allowed to reach an upstream and log in to it.
    #[serde(default = "defaults::connect_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: defaults::max_connections(),
            handshake_timeout: defaults::handshake_timeout(),
            max_handshakes: defaults::max_handshakes(),
            max_handshakes_per_source: defaults::max_handshakes_per_source(),
            shutdown_grace: defaults::shutdown_grace(),
            max_message_size: defaults::max_message_size(),
            connect_timeout: defaults::connect_timeout(),
        }
    }
}

/// `[recording]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Record every session (fail closed: no recording, no traffic).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Seal a segment at this size.
    #[serde(default = "defaults::segment_size", deserialize_with = "de_size")]
    pub segment_size: usize,
    /// ... or at this age.
    #[serde(default = "defaults::segment_age", deserialize_with = "de_duration")]
    pub segment_age: Duration,
    /// Delete sealed segments older than this (default: keep everything).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub retention: Option<Duration>,
    /// When blocks are forced to disk.
    #[serde(default)]
    pub fsync: FsyncSetting,
    /// With `fsync = "interval"`: how often.
    #[serde(default = "defaults::fsync_interval", deserialize_with = "de_duration")]
    pub fsync_interval: Duration,
    /// zstd compression level.
    #[serde(default = "defaults::zstd_level")]
    pub zstd_level: i32,
    /// Group-commit window: frames arriving within it share one block.
    #[serde(default = "defaults::flush_interval", deserialize_with = "de_duration")]
    pub flush_interval: Duration,
    /// Frames queued for the writer before sessions wait (backpressure).
    #[serde(default = "defaults::queue_size", deserialize_with = "de_size")]
    pub queue_size: usize,
    /// Sign sealed segments with an Ed25519 key kept in `data_dir`.
    #[serde(default)]
    pub sign: bool,
    /// Ship sealed segments to object storage.
    pub remote: Option<RemoteStorage>,
}

/// `[recording.remote]`: where sealed segments go. Each replica writes under
/// `<prefix>/<replica>/`; the local copy is deleted once the upload is read back intact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteStorage {
    /// `s3://bucket/prefix` (S3 or an S3-compatible store) or `file:///path`.
    pub url: String,
    /// An S3-compatible endpoint (`https://minio.internal:9000`); default: AWS.
    pub endpoint: Option<String>,
    /// The bucket's region.
    #[serde(default = "defaults::s3_region")]
    pub region: String,
    /// Access key id (default: the usual AWS environment and instance credentials).
    pub access_key_id: Option<SecretSource>,
    /// Secret access key.
    pub secret_access_key: Option<SecretSource>,
    /// Allow an `http://` endpoint (a store on a trusted network or loopback only).
    #[serde(default)]
    pub allow_http: bool,
    /// How often sealed segments are looked for and shipped.
    #[serde(default = "defaults::upload_interval", deserialize_with = "de_duration")]
    pub upload_interval: Duration,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            enabled: true,
            segment_size: defaults::segment_size(),
            segment_age: defaults::segment_age(),
            retention: None,
            fsync: FsyncSetting::default(),
            fsync_interval: defaults::fsync_interval(),
            remote: None,
            zstd_level: defaults::zstd_level(),
            flush_interval: defaults::flush_interval(),
            queue_size: defaults::queue_size(),
            sign: false,
        }
    }
}

/// `recording.fsync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncSetting {
    /// After every block.
    #[default]
    EveryBatch,
    /// Every `fsync_interval`.
    Interval,
    /// Never (the OS decides).
    Never,
}

/// `[runtime]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Threads serving connections: 0 = one per CPU core, 1 = a single-threaded
    /// event loop (least CPU per message; best when Airlock shares a small machine).
    #[serde(default)]
    pub worker_threads: usize,
}

/// `[tls]`: the certificate agents see. Without both files, a self-signed certificate
/// is generated into `data_dir/tls/` on first start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTls {
    /// PEM certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
}

/// `[postgres]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Accept tokens over plaintext from loopback clients (never from other hosts).
    #[serde(default)]
    pub allow_plaintext_loopback: bool,
}

/// `[auth]`: identity tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Required `iss` of JWTs.
    #[serde(default = "defaults::issuer")]
    pub issuer: String,
    /// Required `aud` of JWTs.
    #[serde(default = "defaults::audience")]
    pub audience: String,
    /// JWKS file with the IdP's public keys.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL, fetched at start and again when a token names an unknown `kid`.
    pub jwks_url: Option<String>,
    /// HS256 shared secret (development).
    pub hs256_secret: Option<SecretSource>,
    /// Accept HS256 tokens signed with a key Airlock generates in `data_dir`
    /// (`airlock token` mints them).
    #[serde(default)]
    pub dev_tokens: bool,
    /// Claim holding the groups (a dotted path such as `realm_access.roles` works).
    #[serde(default = "defaults::groups_claim")]
    pub groups_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`.
    #[serde(default = "defaults::leeway", deserialize_with = "de_duration")]
    pub leeway: Duration,
    /// Groups whose members may approve held commands.
    #[serde(default)]
    pub approver_groups: Vec<String>,
    /// Static API keys, stored as SHA-256 hashes.
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    /// SSH public keys that identify agents at the SSH endpoint.
    #[serde(default)]
    pub ssh_keys: Vec<SshKey>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            issuer: defaults::issuer(),
            audience: defaults::audience(),
            jwks_file: None,
            jwks_url: None,
            hs256_secret: None,
            dev_tokens: false,
            groups_claim: defaults::groups_claim(),
            leeway: defaults::leeway(),
            approver_groups: Vec::new(),
            api_keys: Vec::new(),
            ssh_keys: Vec::new(),
        }
    }
}

/// `[[auth.api_keys]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who the key identifies.
    pub subject: String,
    /// Groups of that identity.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Lowercase hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    pub sha256: String,
}

/// `[[auth.ssh_keys]]`: an agent's SSH public key, standing for an identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKey {
    /// Who the key identifies.
    pub subject: String,
    /// Groups of that identity.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The public key as in `authorized_keys`: `ssh-ed25519 AAAA... comment`.
    pub key: String,
}

/// Protocols a connection can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// PostgreSQL.
    Postgres,
    /// SSH: exec, shells and SFTP.
    Ssh,
    /// HTTP APIs: reverse and forward proxy.
    Http,
}

impl Protocol {
    /// Lowercase name, as in the config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Ssh => "ssh",
            Protocol::Http => "http",
        }
    }
}

/// How Airlock secures its connection to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, without certificate checks (libpq's default).
    #[default]
    Prefer,
    /// TLS or fail, without certificate checks.
    Require,
    /// TLS, certificate chain checked against `ca_file` (or the web PKI roots) and the
    /// host name checked against `tls_server_name` or the address's host.
    VerifyFull,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the statement through.
    Allow,
    /// Refuse it.
    Deny,
    /// Hold it for a human.
    Approve,
}

/// `[[masking]]`: masking for some connections (all when `connections` is empty).
///
/// The built-in value detectors are on everywhere by default; the first rule for a
/// connection that sets `detectors` chooses that connection's set. Column globs and
/// patterns add up across every rule that applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingRule {
    /// Connections this rule applies to (default: all).
    #[serde(default)]
    pub connections: Vec<String>,
    /// Columns masked by identity: `schema.table.column` globs, `*` for any run of
    /// characters within one part (`*.users.email`, `public.*.password*`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// The built-in detectors to run (default: all); `[]` turns value detection off.
    pub detectors: Option<Vec<String>>,
    /// How values are replaced: redact, partial or hash.
    #[serde(default)]
    pub style: MaskStyle,
    /// Extra detectors: a name and a regex (the whole match is masked).
    #[serde(default)]
    pub patterns: Vec<MaskPattern>,
    /// HTTP: JSON paths masked whole in JSON bodies (`$.user.email`, `$..password`).
    #[serde(default)]
    pub json: Vec<String>,
    /// HTTP: JSON keys whose values are masked whole, as case-insensitive globs
    /// (`*token*`, `*secret*`).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// HTTP basic authentication for an upstream.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub user: String,
    /// The password, from a secret.
    pub password: Credential,
}

/// A credential Airlock adds to upstream requests: a secret from exactly one of
/// `env`, `file` or `value` (development only), with an optional prefix.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Read from this environment variable when Airlock starts.
    pub env: Option<String>,
    /// Read from this file (trailing newline removed).
    pub file: Option<PathBuf>,
    /// Written in the config itself.
    pub value: Option<String>,
    /// Text put before it (`"Bearer "`).
    #[serde(default)]
    pub prefix: String,
}

impl Credential {
    /// Where the secret comes from, if exactly one source is named.
    pub fn source(&self) -> Option<SecretSource> {
        match (&self.env, &self.file, &self.value) {
            (Some(env), None, None) => Some(SecretSource::Env { env: env.clone() }),
            (None, Some(file), None) => Some(SecretSource::File { file: file.clone() }),
            (None, None, Some(value)) => Some(SecretSource::Literal(value.clone())),
            _ => None,
        }
    }
}

/// How a masked value is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskStyle {
    /// A fixed marker, `[MASKED:email]`.
    #[default]
    Redact,
    /// Keep a harmless part: an email's domain, a card's last four.
    Partial,
    /// A keyed HMAC, so equal values mask equally and joins still work.
    Hash,
}

/// A named regex detector from the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskPattern {
    /// Name in the marker (`[MASKED:name]`).
    pub name: String,
    /// The regex; the whole match is masked.
    pub regex: String,
    /// The longest text it can match, which bounds what a stream holds back (default 256).
    #[serde(default = "defaults::pattern_max_len")]
    pub max_len: usize,
}

/// `[[rules]]`: one policy rule. Every condition set must hold for the rule to match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name shown in decisions (default `rules[N]`).
    pub name: Option<String>,
    /// Connections it applies to (default: all).
    #[serde(default)]
    pub connections: Vec<String>,
    /// Groups it applies to (default: everyone).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Statement classes it applies to (default: all).
    #[serde(default, deserialize_with = "de_classes")]
    pub classes: Vec<airlock_classes::Class>,
    /// Regex on the normalised statement (lower-case keywords, single spaces).
    pub statement: Option<String>,
    /// HTTP: `METHOD /path/glob` (`*` within one path name, `**` across names, `*`
    /// for any method), e.g. `POST /repos/*/*/merges`.
    pub request: Option<String>,
    /// HTTP: a GraphQL operation, `kind name-glob`, e.g. `mutation deleteRepository`
    /// or `mutation *`.
    pub graphql: Option<String>,
    /// Functions that are not built in which this rule vouches for, as
    /// `schema.name` globs (an unqualified call is matched by its name alone). Their
    /// calls stop being `unknown`; the rest of the statement is judged as usual. Only
    /// with `action = "allow"`.
    #[serde(default)]
    pub functions: Vec<String>,
    /// What to do.
    pub action: Action,
    /// Text for the agent (and approvers).
    pub message: Option<String>,
    /// For `bulk` statements this rule allows: the most rows one may change before it
    /// is rolled back and held for approval, or `"unlimited"` (no guard); default: the
    /// connection's `max_rows`.
    #[serde(default, deserialize_with = "de_opt_max_rows")]
    pub max_rows: Option<u64>,
}

/// `[[connections]]`: one upstream target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The name agents use (`dbname` for Postgres).
    pub name: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// `host:port` of the upstream (HTTP: taken from `url`).
    #[serde(default)]
    pub address: String,
    /// Upstream database.
    pub database: Option<String>,
    /// Upstream user Airlock logs in as.
    pub user: Option<String>,
    /// Upstream password.
    pub password: Option<SecretSource>,
    /// Groups allowed to use this connection.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Upstream TLS mode.
    #[serde(default)]
    pub tls: UpstreamTls,
    /// CA bundle for `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Name to verify in the upstream certificate (default: the address's host).
    pub tls_server_name: Option<String>,
    /// Postgres: open upstream sessions with `default_transaction_read_only=on` in the
    /// startup packet, so the database itself refuses every write (25006), even one
    /// hidden in a function. `RESET ALL` returns to it; switching it off is privilege.
    #[serde(default)]
    pub read_only: bool,
    /// Postgres: the most rows a `bulk` statement (a DELETE, UPDATE or MERGE that does
    /// not pin its rows by key) may change before Airlock rolls it back and holds it
    /// for approval, or `"unlimited"` (no guard).
    #[serde(default = "defaults::max_rows", deserialize_with = "de_max_rows")]
    pub max_rows: u64,
    /// SSH: the private key Airlock logs in with (OpenSSH format), unless `password`.
    pub private_key: Option<SecretSource>,
    /// SSH: the upstream's host key, pinned (`ssh-ed25519 AAAA...`, as printed by
    /// `airlock ssh-keyscan`). Required: an agent cannot answer a trust prompt.
    pub host_key: Option<String>,
    /// SSH: what an interactive shell needs.
    #[serde(default)]
    pub shell: ShellPolicy,
    /// SSH: what SFTP (and so `scp`) may do.
    #[serde(default)]
    pub sftp: SftpMode,
    /// SSH: path globs SFTP may and may not touch.
    #[serde(default)]
    pub sftp_paths: PathGlobs,
    /// HTTP: the upstream's base URL (`https://api.github.com`); requests to
    /// `/<connection>/<path>` go to `url` + `/<path>`, and in forward-proxy mode its
    /// host picks this connection.
    pub url: Option<String>,
    /// HTTP: headers Airlock adds upstream, from secrets
    /// (`Authorization = { env = "GITHUB_TOKEN", prefix = "Bearer " }`).
    #[serde(default)]
    pub headers: BTreeMap<String, Credential>,
    /// HTTP: query parameters Airlock adds upstream, from secrets (`key = { env = "API_KEY" }`).
    #[serde(default)]
    pub query: BTreeMap<String, Credential>,
    /// HTTP: basic authentication Airlock adds upstream
    /// (`{ user = "ci", password = { env = "JENKINS_TOKEN" } }`).
    pub basic_auth: Option<BasicAuth>,
    /// HTTP: pass WebSocket upgrades through (recorded); off, they are refused.
    #[serde(default)]
    pub websocket: bool,
    /// HTTP: add `Forwarded` and `X-Forwarded-*` headers upstream.
    #[serde(default)]
    pub forwarded: bool,
    /// HTTP: the largest request or response body passed (and the largest response
    /// body buffered whole to mask JSON); larger ones are refused.
    #[serde(default = "defaults::http_max_body", deserialize_with = "de_size")]
    pub max_body: usize,
    /// HTTP: how much of each body is recorded; the rest is noted as truncated.
    #[serde(default = "defaults::http_record_body", deserialize_with = "de_size")]
    pub record_body: usize,
    /// HTTP: paths (globs) that are GraphQL endpoints, whose operations are classified.
    #[serde(default = "defaults::graphql_paths")]
    pub graphql: Vec<String>,
    /// SSH: let agents forward ports (`ssh -L`/`-R`). Off: forwarding bypasses the
    /// gateway's view of what is done.
    #[serde(default)]
    pub allow_forwarding: bool,
    /// SSH: environment variables an agent may pass (`SendEnv`); `*` ends a prefix.
    #[serde(default = "defaults::ssh_env")]
    pub env: Vec<String>,
}

/// What an interactive SSH shell needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellPolicy {
    /// A human approves each shell.
    #[default]
    Approve,
    /// Shells open without asking.
    Allow,
    /// No shells.
    Deny,
}

/// What SFTP may do on an SSH connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SftpMode {
    /// Read and write.
    #[default]
    ReadWrite,
    /// Read only: opening for write, removing, renaming... are refused.
    ReadOnly,
    /// No SFTP subsystem.
    Deny,
}

/// Path globs (`*` within a name, `**` across directories) that allow and deny.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathGlobs {
    /// When not empty, only paths matching one of these.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Never paths matching one of these.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The dotted key whose value starts at byte `offset`: the table headers above it
/// (`[listen]`, the Nth `[[connections]]`) and the key on its line.
fn key_at(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.rsplit('\n').next().unwrap_or("");
    let Some((name, _)) = line.split_once('=') else { return String::new() };
    let name = name.trim();
    let mut table = String::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for header in before.lines().map(str::trim).filter(|l| l.starts_with('[')) {
        if let Some(array) = header.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            let n = seen.entry(array.trim().to_owned()).or_insert(0);
            table = format!("{}[{}]", array.trim(), *n);
            *n += 1;
        } else if let Some(plain) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = plain.trim().to_owned();
        }
    }
    if table.is_empty() { name.to_owned() } else { format!("{table}.{name}") }
}

impl Connection {
    /// Host part of `address`.
    pub fn host(&self) -> &str {
        split_host_port(&self.address).map(|(h, _)| h).unwrap_or(&self.address)
    }
}

/// A config problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub file: Option<PathBuf>,
    /// 1-based line.
    pub line: Option<usize>,
    /// Dotted key, e.g. `connections[1].address`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Config::parse(&text, base).map_err(|e| ConfigError { file: Some(path.to_owned()), ..e })
    }

    /// Parses and validates config text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let key = e.span().map(|s| key_at(text, s.start)).unwrap_or_default();
            ConfigError { file: None, line, key, message: e.message().to_owned() }
        })?;
        config.base_dir = base_dir;
        config.validate().map_err(|(key, message)| ConfigError {
            file: None,
            line: locate(text, &key),
            key,
            message,
        })?;
        Ok(config)
    }

    /// The data directory, resolved.
    pub fn data_dir(&self) -> PathBuf {
        self.base_dir.join(&self.data_dir)
    }

    /// Resolves a path from the config against the config's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// This process's name in a fleet: `state.replica`, or the host name.
    pub fn replica(&self) -> String {
        self.state.as_ref().and_then(|s| s.replica.clone()).unwrap_or_else(crate::state::default_replica)
    }

    /// The connection named `name`.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// The console's OIDC client needs the issuer's keys and an address to come back to.
    fn validate_console(&self) -> Result<(), (String, String)> {
        let console = &self.console;
        if let Some(url) = &console.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(("console.public_url".into(), "must start with https:// or http://".into()));
        }
        let Some(oidc) = &console.oidc else { return Ok(()) };
        if oidc.client_id.trim().is_empty() {
            return Err(("console.oidc.client_id".into(), "must name the client registered at the IdP".into()));
        }
        if self.auth.jwks_url.is_none() && self.auth.jwks_file.is_none() {
            return Err((
                "console.oidc".into(),
                "ID tokens are checked with the IdP's keys: set auth.jwks_url (or auth.jwks_file)".into(),
            ));
        }
        if console.public_url.is_none() && self.listen.admin.ip().is_unspecified() {
            return Err((
                "console.public_url".into(),
                format!(
                    "listen.admin is {}, which is no address a browser can come back to after signing in: \
                     set console.public_url",
                    self.listen.admin
                ),
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: String, msg: String| Err((key, msg));
        if self.limits.max_connections == 0 {
            return err("limits.max_connections".into(), "must be at least 1".into());
        }
        if self.limits.max_handshakes == 0 || self.limits.max_handshakes_per_source == 0 {
            return err(
                "limits.max_handshakes".into(),
                "max_handshakes and max_handshakes_per_source must be at least 1".into(),
            );
        }
        if self.limits.max_message_size < 8 * 1024 {
            return err("limits.max_message_size".into(), "must be at least 8KiB".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return err(
                "tls".into(),
                "set both cert_file and key_file, or neither (a self-signed certificate is then generated)".into(),
            );
        }
        self.validate_console()?;
        let rec = &self.recording;
        if !(-7..=19).contains(&rec.zstd_level) {
            return err("recording.zstd_level".into(), "must be between -7 and 19 (1, the default, is fastest)".into());
        }
        if rec.segment_size < 1 << 20 {
            return err("recording.segment_size".into(), "must be at least 1MiB".into());
        }
        if rec.queue_size < 1 << 20 || rec.queue_size > 1 << 30 {
            return err("recording.queue_size".into(), "must be between 1MiB and 1GiB".into());
        }
        if let Some(remote) = &rec.remote {
            if !(remote.url.starts_with("s3://") || remote.url.starts_with("file:///")) {
                return err(
                    "recording.remote.url".into(),
                    format!("{:?}: use s3://bucket/prefix or file:///path", remote.url),
                );
            }
            if remote.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) && !remote.allow_http {
                return err(
                    "recording.remote.endpoint".into(),
                    "an http:// endpoint sends recordings in clear: use https:// or set allow_http = true".into(),
                );
            }
            if remote.access_key_id.is_some() != remote.secret_access_key.is_some() {
                return err(
                    "recording.remote".into(),
                    "set both access_key_id and secret_access_key, or neither".into(),
                );
            }
            if remote.upload_interval < Duration::from_millis(100) {
                return err("recording.remote.upload_interval".into(), "must be at least 100ms".into());
            }
        }
        if self.approvals.timeout.is_zero() || self.approvals.timeout > Duration::from_secs(30 * 86_400) {
            return err("approvals.timeout".into(), "must be more than 0s and at most 30 days".into());
        }
        if let Some(url) = &self.approvals.webhook
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return err("approvals.webhook".into(), format!("{url:?} is not an http(s) URL"));
        }
        if let Some(state) = &self.state {
            if state.heartbeat < Duration::from_millis(100) || state.heartbeat > Duration::from_secs(60) {
                return err("state.heartbeat".into(), "must be between 100ms and 60s (default 5s)".into());
            }
            if let Some(r) = &state.replica
                && (r.is_empty()
                    || r.len() > 63
                    || r.starts_with('.')
                    || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
            {
                return err(
                    "state.replica".into(),
                    format!("{r:?}: 1 to 63 letters, digits, '-', '_' or '.', not starting with '.'"),
                );
            }
        }
        let auth = &self.auth;
        if auth.jwks_file.is_some() && auth.jwks_url.is_some() {
            return err("auth.jwks_url".into(), "set jwks_file or jwks_url, not both".into());
        }
        if let Some(url) = &auth.jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return err("auth.jwks_url".into(), format!("{url:?} is not an http(s) URL"));
        }
        let has_verifier = auth.jwks_file.is_some()
            || auth.jwks_url.is_some()
            || auth.hs256_secret.is_some()
            || auth.dev_tokens
            || !auth.api_keys.is_empty()
            || !auth.ssh_keys.is_empty();
        if !has_verifier && !self.connections.is_empty() {
            return err(
                "auth".into(),
                "no way to verify agents: set jwks_file, jwks_url, hs256_secret, dev_tokens = true or [[auth.api_keys]]".into(),
            );
        }
        if auth.groups_claim.is_empty() {
            return err("auth.groups_claim".into(), "must not be empty (default \"groups\")".into());
        }
        for (i, key) in auth.api_keys.iter().enumerate() {
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return err(
                    format!("auth.api_keys[{i}].sha256"),
                    "must be 64 hex digits: the SHA-256 of the key (printf %s KEY | sha256sum)".into(),
                );
            }
            if key.subject.is_empty() {
                return err(format!("auth.api_keys[{i}].subject"), "must not be empty".into());
            }
        }
        for (i, k) in auth.ssh_keys.iter().enumerate() {
            if russh::keys::PublicKey::from_openssh(&k.key).is_err() {
                return err(
                    format!("auth.ssh_keys[{i}].key"),
                    "must be a public key line as in authorized_keys (ssh-ed25519 AAAA... comment)".into(),
                );
            }
            if k.subject.is_empty() {
                return err(format!("auth.ssh_keys[{i}].subject"), "must not be empty".into());
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(re) = &rule.statement
                && let Err(e) = regex::Regex::new(re)
            {
                return err(format!("rules[{i}].statement"), format!("not a valid regex: {e}"));
            }
            if let Some(c) = rule.connections.iter().find(|c| !self.connections.iter().any(|k| &k.name == *c)) {
                return err(format!("rules[{i}].connections"), format!("no connection named {c:?}"));
            }
            if let Some(r) = &rule.request
                && !matches!(r.trim().split_once(' '), Some((m, p)) if !m.is_empty() && p.trim().starts_with('/'))
            {
                return err(
                    format!("rules[{i}].request"),
                    format!("{r:?}: write METHOD /path, e.g. \"DELETE /repos/*/*\""),
                );
            }
            if let Some(g) = &rule.graphql
                && !matches!(g.trim().split_once(' '), Some(("query" | "mutation" | "subscription" | "*", n)) if !n.trim().is_empty())
            {
                return err(
                    format!("rules[{i}].graphql"),
                    format!("{g:?}: write KIND NAME, e.g. \"mutation deleteRepository\""),
                );
            }
            if !rule.functions.is_empty() && rule.action != Action::Allow {
                return err(
                    format!("rules[{i}].functions"),
                    "vouches for functions, so it goes with action = \"allow\" (calls of other functions stay unknown and need approval)".into(),
                );
            }
        }
        let builtin: Vec<&str> = crate::masking::detectors::NAMES.to_vec();
        for (i, rule) in self.masking.iter().enumerate() {
            let key = |k: &str| format!("masking[{i}].{k}");
            if let Some(c) = rule.connections.iter().find(|c| !self.connections.iter().any(|k| &k.name == *c)) {
                return err(key("connections"), format!("no connection named {c:?}"));
            }
            if let Some(d) = rule.detectors.iter().flatten().find(|d| !builtin.contains(&d.as_str())) {
                return err(key("detectors"), format!("unknown detector {d:?}: use {}", builtin.join(", ")));
            }
            if let Some(c) = rule.columns.iter().find(|c| c.split('.').count() != 3 || c.split('.').any(str::is_empty))
            {
                return err(key("columns"), format!("{c:?}: write schema.table.column, with * as a wildcard"));
            }
            for (j, path) in rule.json.iter().enumerate() {
                if let Err(e) = airlock_http::json::JsonPath::parse(path) {
                    return err(format!("masking[{i}].json[{j}]"), format!("{path:?}: {e}"));
                }
            }
            for (j, p) in rule.patterns.iter().enumerate() {
                if let Err(e) = crate::masking::Detector::custom(&p.name, &p.regex, p.max_len) {
                    return err(format!("masking[{i}].patterns[{j}].regex"), format!("not a valid regex: {e}"));
                }
                if p.name.is_empty() || !p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return err(format!("masking[{i}].patterns[{j}].name"), "use letters, digits and '_'".into());
                }
            }
        }
        let mut names = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let key = |k: &str| format!("connections[{i}].{k}");
            if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return err(key("name"), format!("{:?}: use letters, digits, '-', '_' or '.'", c.name));
            }
            if !names.insert(c.name.as_str()) {
                return err(key("name"), format!("{:?} is used by an earlier connection", c.name));
            }
            if c.protocol != Protocol::Http && split_host_port(&c.address).is_none() {
                return err(key("address"), format!("{:?}: expected host:port", c.address));
            }
            if c.allow_groups.is_empty() {
                return err(
                    key("allow_groups"),
                    "is empty, so no agent could use this connection; e.g. allow_groups = [\"agents\"]".into(),
                );
            }
            match c.protocol {
                Protocol::Ssh => {
                    if c.user.as_deref().unwrap_or("").is_empty() {
                        return err(key("user"), "the upstream account Airlock logs in as is required".into());
                    }
                    if c.private_key.is_none() && c.password.is_none() {
                        return err(
                            key("private_key"),
                            "set private_key (or password) for the upstream account".into(),
                        );
                    }
                    match c.host_key.as_deref() {
                        None => {
                            return err(
                                key("host_key"),
                                format!(
                                    "the upstream's host key must be pinned: run `airlock ssh-keyscan {}` and paste the line",
                                    c.address
                                ),
                            );
                        }
                        Some(k) if russh::keys::PublicKey::from_openssh(k).is_err() => {
                            return err(
                                key("host_key"),
                                format!("{k:?} is not an OpenSSH public key line (ssh-ed25519 AAAA...)"),
                            );
                        }
                        Some(_) => {}
                    }
                }
                Protocol::Http => {
                    let url = c.url.as_deref().unwrap_or("");
                    if let Err(why) = crate::plugins::http::upstream::check_base_url(url) {
                        return err(key("url"), format!("{url:?}: {why}"));
                    }
                    if let Some(basic) = &c.basic_auth
                        && c.headers.keys().any(|h| h.eq_ignore_ascii_case("authorization"))
                    {
                        return err(
                            key("basic_auth"),
                            format!("{:?}: set basic_auth or an Authorization header, not both", basic.user),
                        );
                    }
                    let creds = c.headers.iter().map(|(n, v)| (format!("headers.{n}"), v));
                    let creds =
                        creds.chain(c.basic_auth.iter().map(|b| ("basic_auth.password".to_owned(), &b.password)));
                    let creds = creds.chain(c.query.iter().map(|(n, v)| (format!("query.{n}"), v)));
                    for (name, credential) in creds {
                        if credential.source().is_none() {
                            return err(key(&name), "set exactly one of env, file or value".into());
                        }
                    }
                    if let Some(h) = c.headers.keys().find(|h| hyper::header::HeaderName::try_from(h.as_str()).is_err())
                    {
                        return err(key("headers"), format!("{h:?} is not a header name"));
                    }
                }
                Protocol::Postgres => {
                    if c.user.as_deref().unwrap_or("").is_empty() {
                        return err(key("user"), "the upstream user Airlock logs in as is required".into());
                    }
                    if c.database.as_deref().unwrap_or("").is_empty() {
                        return err(key("database"), "the upstream database name is required".into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Splits `host:port`, accepting `[v6]:port`.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Finds the line of a dotted key such as `connections[2].address` or `auth.issuer` by
/// walking the table headers. Falls back to the table header, then to nothing.
fn locate(text: &str, key: &str) -> Option<usize> {
    let mut parts = key.split('.').collect::<Vec<_>>();
    let leaf = if parts.len() > 1 { parts.pop() } else { None };
    let table = parts.join(".");
    let (header, index) = match table.split_once('[') {
        Some((name, rest)) => (format!("[[{name}]]"), rest.trim_end_matches(']').parse().ok()?),
        None => (format!("[{table}]"), 0usize),
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().enumerate().filter(|(_, l)| l.trim_start().starts_with(&header)).nth(index)?.0;
    if let Some(leaf) = leaf {
        for (n, line) in lines.iter().enumerate().skip(start + 1) {
            let t = line.trim_start();
            if t.starts_with('[') {
                break;
            }
            if t.strip_prefix(leaf).is_some_and(|r| r.trim_start().starts_with('=')) {
                return Some(n + 1);
            }
        }
    }
    Some(start + 1)
}

#[cfg(test)]
mod tests;
