//! What an SSH request asks for, as a policy [`Decision`]: exec command lines are
//! classified by the shell lexer in `airlock_ssh::shell` (and SQL handed to `psql` by
//! the Postgres classifier); an interactive shell is judged by the connection's
//! `shell` setting, since what will be typed in it cannot be known in advance.

use airlock_classes::{Class, Classes};
use airlock_postgres::sql;
use airlock_ssh::shell;
use sha2::{Digest, Sha256};

use crate::config::{Connection, SftpMode, ShellPolicy};
use crate::policy::{Command, Decision, Policy, StatementDecision, Verdict};

/// The classes of SQL given to `psql`, read both with and without backslash escapes
/// in strings, since the server's setting is not known here: the union is the
/// stricter reading.
pub fn classify_sql(text: &str) -> Classes {
    let mut classes = Classes::NONE;
    for dialect in [sql::lexer::Dialect::default(), sql::lexer::Dialect::BACKSLASH_QUOTES] {
        for statement in sql::split_with(text, dialect) {
            classes |= sql::classify(&statement);
        }
    }
    if classes.is_empty() { Class::Read.into() } else { classes }
}

/// What a grant for `text` covers: that exact command line.
fn fingerprint(kind: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Which way a file-transfer server run by exec moves files: legacy `scp -t`
/// (upload) and `-f` (download), `rsync --server` with and without `--sender`; an
/// `sftp-server` run by exec both ways.
fn transfer(argv: &[String]) -> Option<bool> {
    let program = argv.first()?.rsplit('/').next()?;
    let flags = || argv.iter().skip(1).take_while(|a| a.starts_with('-'));
    match program {
        "scp" => {
            let upload =
                flags().any(|a| a.starts_with("-t") || (a.len() > 1 && !a.starts_with("--") && a.contains('t')));
            Some(upload)
        }
        "rsync" if argv.iter().any(|a| a == "--server") => Some(!argv.iter().any(|a| a == "--sender")),
        "sftp-server" | "internal-sftp" => Some(true),
        _ => None,
    }
}

/// Whether the line is exactly one file-transfer server (legacy `scp -t`/`-f`,
/// `rsync --server`, git's pack services, `sftp-server`): its stdin and stdout carry
/// a protocol and file contents, which pass unchanged (as over SFTP) and unmasked.
/// Anything more on the line, and it is ordinary output.
pub fn moves_files(analysis: &shell::Analysis) -> bool {
    let [only] = analysis.commands.as_slice() else { return false };
    let program = only.argv.first().and_then(|p| p.rsplit('/').next()).unwrap_or_default();
    let flags = || only.argv.iter().skip(1).take_while(|a| a.starts_with('-'));
    match program {
        "scp" => flags().any(|a| !a.starts_with("--") && (a.contains('t') || a.contains('f'))),
        "rsync" => only.argv.iter().any(|a| a == "--server"),
        "git-upload-pack" | "git-receive-pack" | "git-upload-archive" | "sftp-server" => true,
        _ => false,
    }
}

/// The connection's `sftp` settings apply to files moved over exec too: legacy scp,
/// rsync and an `sftp-server` run by exec would otherwise go around them. Their
/// streams are not decoded, so on a connection with `sftp_paths` they are refused
/// outright (the SFTP subsystem, whose every path is checked, still works).
fn transfer_refusal(conn: &Connection, analysis: &shell::Analysis) -> Option<String> {
    let name = &conn.name;
    let transfers: Vec<bool> = analysis.commands.iter().filter_map(|c| transfer(&c.argv)).collect();
    if transfers.is_empty() {
        return None;
    }
    if conn.sftp == SftpMode::Deny {
        return Some(format!("file transfers are not allowed on connection {name:?} (sftp = \"deny\")"));
    }
    if !conn.sftp_paths.allow.is_empty() || !conn.sftp_paths.deny.is_empty() {
        return Some(format!(
            "connection {name:?} limits file transfers to its sftp_paths: use SFTP (scp without -O, sftp), whose paths are checked"
        ));
    }
    (transfers.contains(&true) && conn.sftp == SftpMode::ReadOnly)
        .then(|| format!("connection {name:?} is read-only for file transfers (sftp = \"read-only\")"))
}

/// The decision on an exec request's command line, and what the lexer found.
pub fn exec(policy: &Policy, conn: &Connection, groups: &[String], command: &str) -> (Decision, shell::Analysis) {
    let connection = conn.name.as_str();
    let analysis = shell::analyze(command, &classify_sql);
    if let Some(reason) = transfer_refusal(conn, &analysis) {
        return (Decision::refused(command, &reason), analysis);
    }
    let normalized = || command.trim().to_owned();
    let fingerprint = || fingerprint("exec", command);
    let decision = policy.decide(&Command {
        connection,
        groups,
        text: command,
        classes: analysis.classes,
        normalized: &normalized,
        fingerprint: &fingerprint,
        attrs: &[],
    });
    (Decision::of(vec![decision]), analysis)
}

/// The decision on an interactive shell: the connection's `shell` setting.
pub fn shell(conn: &Connection) -> Decision {
    let name = &conn.name;
    let verdict = match conn.shell {
        ShellPolicy::Allow => Verdict::Allow,
        ShellPolicy::Deny => {
            Verdict::Deny(format!("interactive shells are not allowed on connection {name:?} (shell = \"deny\")"))
        }
        ShellPolicy::Approve => Verdict::Approve(format!(
            "an interactive shell on {name:?} needs approval: what is typed in it cannot be judged in advance"
        )),
    };
    Decision::of(vec![StatementDecision {
        text: "shell".into(),
        classes: Class::Unknown.into(),
        verdict,
        rule: "shell".into(),
        message: None,
        fingerprint: fingerprint("shell", name),
        max_rows: None,
    }])
}
