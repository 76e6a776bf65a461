//! One agent session channel and the upstream channel it maps to.
//!
//! A channel moves through two phases. In `setup`, requests that shape it (pty, env,
//! window size) are passed on as they come, and the first exec, shell or subsystem
//! request is judged: allowed, refused (exit status 126, the reason on stderr), or
//! held while the agent is told on stderr how to get it approved. Once it runs, two
//! pumps move data, one per direction, each with its own state: keys and stdin go up
//! (typed lines rebuilt for the record), output comes down through the masker, with
//! stdout and stderr on pipes of their own so that both are masked as streams. Each
//! write waits for the receiving side's window, so a slow agent makes the upstream
//! wait and memory per channel stays bounded.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use airlock_ssh::record::{Event, Stream};
use bytes::Bytes;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::{Shared, judge};
use crate::approvals::{self, Holding, Settled};
use crate::plugins::masked::{FLUSH_AFTER, MaskedReader};
use crate::policy::Decision;

/// Exit status of a refused command, as a shell reports "cannot execute".
const REFUSED: u32 = 126;
/// The exit status given instead of the command's when its record could not be made
/// durable (what `ssh` itself exits with when a connection fails).
const UNRECORDED: u32 = 255;
/// Input an agent may send before its command starts (or while it is held), counting
/// `EARLY_PACKET_COST` for each packet besides its bytes.
const MAX_EARLY_INPUT: usize = 1 << 20;
/// What keeping one packet costs beyond its bytes.
const EARLY_PACKET_COST: usize = 64;
/// Bytes of output buffered per stream between the upstream and the masker.
const PIPE: usize = 256 * 1024;
/// Output read per chunk: two channel packets.
const CHUNK: usize = 64 * 1024;

/// Why a channel stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The recorder failed: nothing more may pass unrecorded.
    RecorderFailed,
    /// The agent's side went away.
    AgentGone,
}

pub(super) type AgentTx = Arc<ChannelWriteHalf<Msg>>;
type UpstreamTx = ChannelWriteHalf<russh::client::Msg>;

/// Whether `name` is in the connection's `env` allowlist (`LC_*` ends a prefix).
pub(super) fn env_allowed(list: &[String], name: &str) -> bool {
    list.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

/// What the channel was asked to run.
enum Start {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// What came from the agent before the channel ran.
#[derive(Default)]
struct Setup {
    channel: u32,
    pty: bool,
    early: Vec<Bytes>,
    early_len: usize,
    eof: bool,
    closed: bool,
}

impl Setup {
    /// Takes one agent message during setup; `Some` once the channel is asked to run.
    async fn take(&mut self, msg: Option<ChannelMsg>, shared: &Shared, up: &UpstreamTx) -> Result<Option<Start>, End> {
        match msg {
            None | Some(ChannelMsg::Close) => {
                self.closed = true;
                return Err(End::AgentGone);
            }
            Some(ChannelMsg::RequestPty {
                term, col_width, row_height, pix_width, pix_height, terminal_modes, ..
            }) => {
                let _ =
                    up.request_pty(false, &term, col_width, row_height, pix_width, pix_height, &terminal_modes).await;
                self.pty = true;
                let term = term.as_str();
                shared
                    .record(true, Event::Pty { channel: self.channel, cols: col_width, rows: row_height, term })
                    .await?;
            }
            Some(ChannelMsg::SetEnv { variable_name, variable_value, .. }) => {
                if env_allowed(&shared.target.conn.env, &variable_name) {
                    let _ = up.set_env(false, variable_name, variable_value).await;
                }
            }
            Some(ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height }) => {
                let _ = up.window_change(col_width, row_height, pix_width, pix_height).await;
            }
            Some(ChannelMsg::Exec { command, .. }) => return Ok(Some(Start::Exec(command))),
            Some(ChannelMsg::RequestShell { .. }) => return Ok(Some(Start::Shell)),
            Some(ChannelMsg::RequestSubsystem { name, .. }) => return Ok(Some(Start::Subsystem(name))),
            Some(ChannelMsg::Data { data }) => {
                self.early_len += data.len() + EARLY_PACKET_COST;
                if self.early_len > MAX_EARLY_INPUT {
                    return Err(End::AgentGone);
                }
                self.early.push(data);
            }
            Some(ChannelMsg::Eof) => self.eof = true,
            Some(_) => {}
        }
        Ok(None)
    }
}

impl Setup {
    /// Keeps what the agent sends while its command is held; `false` once it has
    /// closed the channel or sent more than the cap.
    fn keep(&mut self, msg: Option<ChannelMsg>) -> bool {
        match msg {
            None | Some(ChannelMsg::Close) => {
                self.closed = true;
                false
            }
            Some(ChannelMsg::Data { data }) => {
                // Each packet kept costs its bytes and its bookkeeping: a flood of
                // tiny packets reaches the cap as soon as their memory would.
                self.early_len += data.len() + EARLY_PACKET_COST;
                self.early.push(data);
                self.early_len < MAX_EARLY_INPUT
            }
            Some(ChannelMsg::Eof) => {
                self.eof = true;
                true
            }
            Some(_) => true,
        }
    }
}

/// Runs one session channel to its end.
pub(super) async fn run(shared: Arc<Shared>, agent: Channel<Msg>) {
    let channel = u32::from(agent.id());
    let (mut agent_rx, agent_tx) = agent.split();
    let agent_tx: AgentTx = Arc::new(agent_tx);
    let upstream = match shared.upstream.channel_open_session().await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "the upstream refused a session channel");
            let _ = refuse(&shared, &agent_tx, channel, &format!("the host refused a session channel: {e}")).await;
            return;
        }
    };
    let (up_rx, up_tx) = upstream.split();
    let mut setup = Setup { channel, ..Setup::default() };
    let start = loop {
        let msg = agent_rx.wait().await;
        match setup.take(msg, &shared, &up_tx).await {
            Ok(Some(start)) => break start,
            Ok(None) => {}
            Err(_) => {
                let _ = up_tx.close().await;
                return;
            }
        }
    };
    // A file-transfer server's stdout is a protocol carrying file contents: unmasked.
    let mut transfer = false;
    let shell = matches!(start, Start::Shell);
    let outcome = match start {
        Start::Exec(command) => {
            let text = String::from_utf8_lossy(&command).into_owned();
            shared.commands.fetch_add(1, Ordering::Relaxed);
            if shared.record(true, Event::Exec { channel, command: &text }).await.is_err() {
                return;
            }
            let line = std::str::from_utf8(&command).ok();
            let analysis = line.map(|l| airlock_ssh::shell::analyze(l, &judge::classify_sql));
            transfer = analysis.as_ref().is_some_and(judge::moves_files);
            let decision = match (&shared.policy, line) {
                (None, _) => None,
                (Some(policy), Some(line)) => {
                    let (mut decision, analysis) =
                        judge::exec(policy, &shared.target.conn, &shared.identity.groups, line);
                    // With a terminal, what the command starts is interactive (a pager's
                    // `!cmd`, an editor): the keys typed into it are not judged, so it
                    // needs what a shell needs too.
                    if setup.pty {
                        decision = decision.merged(&judge::shell(&shared.target.conn));
                    }
                    tracing::info!(command = line, classes = %analysis.classes, verdict = decision.verdict().as_str(), "exec");
                    Some(decision)
                }
                (Some(_), None) => Some(Decision::refused(&text, "the command line is not UTF-8")),
            };
            match settle(&shared, &agent_tx, &mut agent_rx, &mut setup, channel, decision, &text).await {
                Ok(true) => up_tx.exec(true, command).await.map_err(|_| End::AgentGone),
                Ok(false) => Err(End::AgentGone),
                Err(e) => Err(e),
            }
        }
        Start::Shell => {
            if shared.record(true, Event::Shell { channel }).await.is_err() {
                return;
            }
            let decision = shared.policy.as_ref().map(|_| judge::shell(&shared.target.conn));
            match settle(&shared, &agent_tx, &mut agent_rx, &mut setup, channel, decision, "shell").await {
                Ok(true) => up_tx.request_shell(true).await.map_err(|_| End::AgentGone),
                Ok(false) => Err(End::AgentGone),
                Err(e) => Err(e),
            }
        }
        Start::Subsystem(name) => {
            // The handler refused anything else; a client that goes on regardless
            // gets nothing either.
            let refused = name != "sftp" || shared.target.conn.sftp == crate::config::SftpMode::Deny;
            if shared.record(true, Event::Subsystem { channel, name: &name }).await.is_err() || refused {
                let _ = up_tx.close().await;
                return;
            }
            if up_tx.request_subsystem(true, "sftp").await.is_err() {
                return;
            }
            super::sftp::relay(&shared, channel, agent_rx, agent_tx, up_rx, up_tx, setup.early).await;
            return;
        }
    };
    if outcome.is_err() {
        let _ = up_tx.close().await;
        return;
    }
    for data in setup.early.drain(..) {
        if up_tx.data_bytes(data).await.is_err() {
            return;
        }
    }
    if setup.eof {
        let _ = up_tx.eof().await;
    }
    let editor = setup.pty.then(airlock_ssh::terminal::LineEditor::default);
    tokio::join!(
        pump_in(&shared, channel, agent_rx, up_tx, editor),
        pump_out(&shared, channel, up_rx, agent_tx, Output::of(shell && setup.pty, transfer))
    );
}

/// Settles a decision: `Ok(true)` to run, `Ok(false)` when refused (the agent was told
/// and the channel closed) or when the agent left.
async fn settle(
    shared: &Shared,
    agent_tx: &AgentTx,
    agent_rx: &mut ChannelReadHalf,
    setup: &mut Setup,
    channel: u32,
    decision: Option<Decision>,
    text: &str,
) -> Result<bool, End> {
    let Some(decision) = decision else { return Ok(true) };
    let holding = Holding {
        broker: &shared.broker,
        identity: &shared.identity,
        connection: &shared.target.conn.name,
        protocol: "ssh",
        recorder: shared.recorder.as_ref(),
        metrics: &shared.metrics,
        patience: None,
    };
    let notify = |request: &approvals::Request| {
        let id = &request.id;
        let line = format!(
            "Airlock is holding this command for approval (id {id}): {}\r\n\
             An approver runs `airlock approve {id}` or `airlock deny {id} --reason ...`; it waits until {} and then gives up.\r\n",
            request.asked.reason, request.expires_at
        );
        let tx = agent_tx.clone();
        tokio::spawn(async move { tx.extended_data_bytes(1, Bytes::from(line)).await });
    };
    // While it waits, the agent's input is kept (up to a cap) and its departure noticed.
    let gone = async {
        while setup.keep(agent_rx.wait().await) {}
        // Past the input cap, stop reading: the agent waits for its window instead.
        if !setup.closed {
            std::future::pending::<()>().await;
        }
    };
    let never = Notify::new();
    let settled =
        approvals::hold(&holding, &decision, text, notify, &never, gone).await.map_err(|_| End::RecorderFailed)?;
    match settled {
        Settled::Allowed | Settled::Approved => Ok(true),
        Settled::Denied(r) | Settled::Expired(r) => {
            refuse(shared, agent_tx, channel, &r.message).await?;
            Ok(false)
        }
        // Parked only with a patience, which SSH does not set.
        Settled::Canceled | Settled::Withdrawn | Settled::Parked(_) => Ok(false),
    }
}

/// Tells the agent why on stderr, exits 126 and closes the channel.
async fn refuse(shared: &Shared, agent_tx: &AgentTx, channel: u32, message: &str) -> Result<(), End> {
    let line = format!("Airlock: {message}\r\n");
    shared.record(false, Event::Data { channel, stream: Stream::Err, bytes: line.as_bytes() }).await?;
    shared.record(false, Event::Exit { channel, status: REFUSED }).await?;
    let _ = agent_tx.extended_data_bytes(1, Bytes::from(line)).await;
    let _ = agent_tx.exit_status(REFUSED).await;
    let _ = agent_tx.eof().await;
    let _ = agent_tx.close().await;
    Ok(())
}

/// Agent to upstream: stdin and keys (typed lines rebuilt for the record), EOF,
/// resizes and signals, until the agent closes the channel.
async fn pump_in(
    shared: &Shared,
    channel: u32,
    mut agent_rx: ChannelReadHalf,
    up_tx: UpstreamTx,
    mut editor: Option<airlock_ssh::terminal::LineEditor>,
) {
    loop {
        match agent_rx.wait().await {
            Some(ChannelMsg::Data { data }) => {
                if shared.record(true, Event::Data { channel, stream: Stream::In, bytes: &data }).await.is_err() {
                    break;
                }
                for line in editor.as_mut().map(|e| e.feed(&data)).unwrap_or_default() {
                    if shared.record(true, Event::Line { channel, line: &line.for_record() }).await.is_err() {
                        break;
                    }
                }
                shared.to_upstream.fetch_add(data.len() as u64, Ordering::Relaxed);
                shared.metrics.to_upstream.inc_by(data.len() as u64);
                // Input the agent sent reaches the command even if the agent closes
                // the channel meanwhile, as with sshd; the write fails once the host
                // closes the channel or the connection ends.
                if up_tx.data_bytes(data).await.is_err() {
                    break;
                }
            }
            Some(ChannelMsg::Eof) => {
                let _ = shared.record(true, Event::Eof { channel }).await;
                let _ = up_tx.eof().await;
            }
            Some(ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height }) => {
                let _ = shared.record(true, Event::Resize { channel, cols: col_width, rows: row_height }).await;
                let _ = up_tx.window_change(col_width, row_height, pix_width, pix_height).await;
            }
            Some(ChannelMsg::Signal { signal }) => {
                let _ = up_tx.signal(signal).await;
            }
            None | Some(ChannelMsg::Close) => break,
            Some(_) => {}
        }
    }
    let _ = up_tx.close().await;
}

/// How the upstream command ended.
enum Exit {
    Status(u32),
    Signal { name: russh::Sig, core_dumped: bool, message: String },
}

/// What a channel's output is, for the masker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// An interactive shell's terminal: let out on the masker's timer, since a prompt
    /// must show. (A command run with a terminal, `ssh -t host cmd`, is a command.)
    Terminal,
    /// A command's: on a pause, only whole lines go out.
    Command,
    /// A file-transfer protocol's: passed unchanged.
    Files,
}

impl Output {
    fn of(shell_terminal: bool, transfer: bool) -> Output {
        match (shell_terminal, transfer) {
            (true, _) => Output::Terminal,
            (false, true) => Output::Files,
            (false, false) => Output::Command,
        }
    }
}

/// Upstream to agent: stdout and stderr through the masker (as `output` says), then
/// the exit status, EOF and close once all output is out.
async fn pump_out(shared: &Shared, channel: u32, mut up_rx: ChannelReadHalf, agent_tx: AgentTx, output: Output) {
    let (out_w, out_r) = tokio::io::duplex(PIPE);
    let (err_w, err_r) = tokio::io::duplex(PIPE);
    let route = async {
        let (mut out_w, mut err_w) = (Some(out_w), Some(err_w));
        let mut exit = None;
        loop {
            match up_rx.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(w) = out_w.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        break;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if let Some(w) = err_w.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        break;
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(Exit::Status(exit_status)),
                Some(ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, .. }) => {
                    exit = Some(Exit::Signal { name: signal_name, core_dumped, message: error_message })
                }
                Some(ChannelMsg::Eof) => {
                    // Output is over; the exit status may still follow.
                    out_w = None;
                    err_w = None;
                }
                Some(ChannelMsg::Failure) => {
                    if let Some(w) = err_w.as_mut() {
                        let _ = w.write_all(b"Airlock: the host refused the request\r\n").await;
                    }
                }
                None | Some(ChannelMsg::Close) => break,
                Some(_) => {}
            }
        }
        drop((out_w, err_w));
        exit
    };
    let masker = shared.masker.clone().filter(|_| output != Output::Files);
    let reader = |r: tokio::io::DuplexStream| -> Box<dyn AsyncRead + Unpin + Send> {
        match &masker {
            Some(m) if output == Output::Terminal => Box::new(MaskedReader::new(r, m.clone(), FLUSH_AFTER)),
            Some(m) => Box::new(MaskedReader::new(r, m.clone(), FLUSH_AFTER).holding_partial_lines()),
            None => Box::new(r),
        }
    };
    let (exit, out, err) = tokio::join!(
        route,
        forward(shared, channel, reader(out_r), &agent_tx, Stream::Out),
        forward(shared, channel, reader(err_r), &agent_tx, Stream::Err),
    );
    if out.is_err() || err.is_err() {
        let _ = agent_tx.close().await;
        return;
    }
    // An exit status tells the agent the command ran as the channel showed; it is
    // given only once all of that is on record.
    let recorded = match &exit {
        Some(Exit::Status(status)) => shared.record(false, Event::Exit { channel, status: *status }).await,
        Some(Exit::Signal { name, .. }) => {
            shared.record(false, Event::ExitSignal { channel, signal: &format!("{name:?}") }).await
        }
        None => Ok(()),
    };
    if recorded.is_err() || shared.flush().await.is_err() {
        return unrecorded(&agent_tx).await;
    }
    match exit {
        Some(Exit::Status(status)) => {
            let _ = agent_tx.exit_status(status).await;
        }
        Some(Exit::Signal { name, core_dumped, message }) => {
            let _ = shared.agent.exit_signal_request(agent_tx.id(), name, core_dumped, message, String::new()).await;
        }
        None => {}
    }
    let _ = shared.record(false, Event::Close { channel }).await;
    let _ = agent_tx.eof().await;
    let _ = agent_tx.close().await;
}

/// Ends a channel whose record could not be made durable: the agent is told so on
/// stderr and gets exit status 255, never the command's own.
pub(super) async fn unrecorded(agent_tx: &AgentTx) {
    let line = "Airlock: this session could not be recorded, so the command's exit status is withheld\r\n";
    let _ = agent_tx.extended_data_bytes(1, Bytes::from_static(line.as_bytes())).await;
    let _ = agent_tx.exit_status(UNRECORDED).await;
    let _ = agent_tx.eof().await;
    let _ = agent_tx.close().await;
}

/// Copies one output stream to the agent, recording what it sees.
async fn forward(
    shared: &Shared,
    channel: u32,
    mut from: Box<dyn AsyncRead + Unpin + Send>,
    agent_tx: &AgentTx,
    stream: Stream,
) -> Result<(), End> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| End::AgentGone)?;
        if n == 0 {
            return Ok(());
        }
        // One copy: the recorded payload, whose tail is what the agent is sent.
        let payload = airlock_ssh::record::data_payload(channel, stream, &buf[..n]);
        let chunk = payload.slice(airlock_ssh::record::DATA_HEADER..);
        shared.record_payload(false, payload).await?;
        shared.to_agent.fetch_add(n as u64, Ordering::Relaxed);
        shared.metrics.to_agent.inc_by(n as u64);
        let sent = match stream {
            Stream::Err => agent_tx.extended_data_bytes(1, chunk).await,
            _ => agent_tx.data_bytes(chunk).await,
        };
        sent.map_err(|_| End::AgentGone)?;
    }
}
