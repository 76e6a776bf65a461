//! What each command does: the read-only allowlist, the commands that run other
//! commands (`sudo`, `env`, `xargs`, `sh -c`...), and the simple write, destructive,
//! privilege and admin sets. A command not named here is `unknown`.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::paths::{self, split_opts};
use super::{Ctx, Stdin, Verdict, tools};

use Class::{Admin, Destructive, Privilege, Read, Unknown, Write};

/// Directories whose programs are the system's own: `/usr/bin/rm` is `rm`.
const TRUSTED_DIRS: &[&str] = &["/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin", "/usr/local/sbin"];

/// Read-only whatever their options: none of their options writes, deletes or runs.
const PURE_READ: &[&str] = &[
    "ls",
    "cat",
    "head",
    "tail",
    "grep",
    "egrep",
    "fgrep",
    "zcat",
    "bzcat",
    "xzcat",
    "wc",
    "cut",
    "tr",
    "echo",
    "pwd",
    "whoami",
    "id",
    "uptime",
    "ps",
    "free",
    "df",
    "du",
    "uname",
    "stat",
    "which",
    "whereis",
    "printenv",
    "lsblk",
    "lscpu",
    "lsmod",
    "lspci",
    "lsusb",
    "lsof",
    "netstat",
    "md5sum",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "b2sum",
    "cksum",
    "sum",
    "diff",
    "cmp",
    "comm",
    "nl",
    "tac",
    "rev",
    "fold",
    "column",
    "paste",
    "join",
    "expand",
    "unexpand",
    "od",
    "hexdump",
    "strings",
    "base64",
    "base32",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "seq",
    "yes",
    "true",
    "false",
    "sleep",
    "test",
    "[",
    "exit",
    "getent",
    "groups",
    "who",
    "w",
    "last",
    "lastlog",
    "locale",
    "nproc",
    "arch",
    "tty",
    "users",
    "vmstat",
    "iostat",
    "mpstat",
    "jq",
    "dig",
    "nslookup",
    "host",
    "ping",
    "type",
    "pgrep",
    "pidof",
    "numfmt",
    "factor",
    "expr",
    "fmt",
    "logname",
    "findmnt",
    "cal",
    "getconf",
    ":",
    "wait",
    "git-upload-pack",
    "git-upload-archive",
];

/// Remove or stop things.
const DESTRUCTIVE: &[&str] = &[
    "rm",
    "rmdir",
    "unlink",
    "shred",
    "wipefs",
    "mke2fs",
    "mkswap",
    "truncate",
    "pkill",
    "killall",
    "reboot",
    "shutdown",
    "halt",
    "poweroff",
    "fdisk",
    "sfdisk",
    "gdisk",
    "parted",
    "blkdiscard",
    "lvremove",
    "vgremove",
    "pvremove",
    "srm",
];

/// Create or change files; every operand is checked as a write target.
const WRITE_FILES: &[&str] =
    &["mkdir", "cp", "mv", "touch", "ln", "install", "mktemp", "patch", "split", "csplit", "zip"];

/// Change who may do what.
const PRIVILEGE: &[&str] = &[
    "visudo", "sudoedit", "usermod", "useradd", "adduser", "passwd", "chpasswd", "chage", "gpasswd", "groupadd",
    "groupmod", "setcap", "setfacl", "newgrp", "vipw", "vigr", "chsh", "chfn",
];

/// Act on the system itself.
const ADMIN: &[&str] = &[
    "at",
    "batch",
    "atrm",
    "iptables",
    "ip6tables",
    "iptables-restore",
    "nft",
    "ufw",
    "firewall-cmd",
    "umount",
    "insmod",
    "rmmod",
    "modprobe",
    "swapon",
    "swapoff",
    "ldconfig",
    "update-alternatives",
    "tc",
    "ifup",
    "ifdown",
    "chattr",
    "init",
    "telinit",
    "fstrim",
    "losetup",
    "cryptsetup",
    "apt",
    "apt-get",
    "yum",
    "dnf",
    "zypper",
    "pacman",
    "apk",
    "snap",
    "nsenter",
    "chroot",
    "unshare",
];

/// Programs that run code given inline, in a file or on standard input.
const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "luajit",
    "Rscript",
    "tclsh",
    "wish",
    "deno",
    "bun",
    "pwsh",
    "irb",
    "jshell",
    "groovy",
    "osascript",
];

/// Shells whose `-c` string is read with this lexer.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash"];

/// Environment variables a command may be given without changing what it runs.
const SAFE_ENV: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "SYSTEMD_COLORS",
    "DEBIAN_FRONTEND",
];

/// Whether `NAME=value cmd` (or `env NAME=value cmd`) leaves `cmd` doing what it says.
pub(crate) fn env_var_ok(name: &str) -> bool {
    SAFE_ENV.contains(&name) || name.starts_with("LC_")
}

/// Whether a plain `name=value` line leaves the shell as it was: lower-case names are
/// the script's own; upper-case ones may be PATH, IFS, BASH_ENV and friends.
pub(crate) fn shell_var_ok(name: &str) -> bool {
    env_var_ok(name) || name.chars().any(|c| c.is_ascii_lowercase())
}

fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
    Verdict::new(classes, reason)
}

/// The program a literal command word runs, or why it cannot be judged.
fn program(word: &Word) -> Result<String, Verdict> {
    if !word.is_literal() {
        return Err(v(&[Unknown], format!("command name `{}` is not a plain word", word.text)));
    }
    let name = word.text.as_str();
    let Some((dir, base)) = name.rsplit_once('/') else {
        return Ok(name.to_string());
    };
    if TRUSTED_DIRS.contains(&dir) && !base.is_empty() {
        Ok(base.to_string())
    } else {
        Err(v(&[Unknown], format!("runs a program by path `{name}`")))
    }
}

/// Classifies one simple command given as words (quote-removed).
pub(crate) fn run(ctx: &mut Ctx<'_>, words: &[Word], stdin: &Stdin, depth: usize) -> Verdict {
    let Some((first, args)) = words.split_first() else {
        return v(&[Read], "no command");
    };
    if depth > super::lexer::MAX_DEPTH {
        ctx.fail("commands nested too deep");
        return v(&[Unknown], "nested too deep");
    }
    let name = match program(first) {
        Ok(name) => name,
        Err(verdict) => return verdict,
    };
    let n = name.as_str();
    if let Some(verdict) = prefix(ctx, n, args, stdin, depth) {
        return verdict;
    }
    if matches!(n, "test" | "[") && args.iter().any(|a| a.text.contains('[') && a.text.contains(['$', '`'])) {
        // `test -v 'a[$(cmd)]'` evaluates the subscript, running `cmd`.
        return v(&[Unknown], "`test` on an array subscript that expands");
    }
    if PURE_READ.contains(&n) {
        return v(&[Read], format!("`{n}` only reads"));
    }
    if DESTRUCTIVE.contains(&n) || n.starts_with("mkfs") {
        return v(&[Destructive], format!("`{n}` removes or stops things"));
    }
    if PRIVILEGE.contains(&n) {
        return v(&[Privilege], format!("`{n}` changes accounts or capabilities"));
    }
    if ADMIN.contains(&n) {
        return v(&[Admin], format!("`{n}` acts on the system"));
    }
    if WRITE_FILES.contains(&n) {
        return write_operands(ctx, n, args);
    }
    if SHELLS.contains(&n) {
        return shell(ctx, n, args, depth);
    }
    if INTERPRETERS.contains(&n) || n.starts_with("python") {
        if args.len() == 1 && matches!(args.first().map(|w| w.text.as_str()), Some("--version" | "-V")) {
            return v(&[Read], "prints the interpreter version");
        }
        ctx.runs_code = true;
        return v(&[Unknown], format!("`{n}` runs code the line does not show"));
    }
    tools::run(ctx, n, args, stdin, depth)
}

/// A write command: each operand (and `-t DIR`) is a file it may change.
fn write_operands(ctx: &mut Ctx<'_>, n: &str, args: &[Word]) -> Verdict {
    if args
        .iter()
        .any(|a| a.text.starts_with("--filter") || a.text.starts_with("-TT") || a.text.starts_with("--unzip-command"))
    {
        return v(&[Unknown], format!("`{n}` option runs a program"));
    }
    let split = split_opts(args, "tSmogZ", &["target-directory", "suffix", "mode", "owner", "group"]);
    let mut classes = Classes::from(Write);
    for t in split.values(&["-t", "--target-directory"]) {
        classes |= paths::write_path(ctx, t);
    }
    if split.values(&["-m", "--mode"]).any(setuid_mode) {
        classes |= Privilege.into();
    }
    for w in &split.operands {
        classes |= paths::write_target(ctx, w);
    }
    if split.injectable && split.operands.last().is_some_and(|w| w.injectable()) {
        classes |= Unknown.into();
    }
    Verdict { classes, reason: format!("`{n}` creates or changes files") }
}

/// Whether a chmod-style mode sets the setuid or setgid bit.
pub(crate) fn setuid_mode(mode: &str) -> bool {
    if mode.chars().all(|c| c.is_ascii_digit()) {
        return mode.len() >= 4 && mode.chars().next().is_some_and(|c| matches!(c, '2' | '4' | '6' | '7'));
    }
    mode.split(',').any(|m| m.contains(['+', '=']) && m.rsplit(['+', '=']).next().is_some_and(|p| p.contains('s')))
}

/// Options of a command that runs another: flags without value, short options with one,
/// long options without and with one, and how many operands come before the command.
struct Wrapper {
    flags: &'static str,
    valued: &'static str,
    long: &'static [&'static str],
    long_valued: &'static [&'static str],
    operands: usize,
    assigns: bool,
}

/// Splits `args` of a wrapper into its options and the command it runs (index).
fn unwrap(args: &[Word], spec: &Wrapper) -> Result<(Vec<String>, usize), String> {
    let mut opts = Vec::new();
    let mut i = 0;
    let mut operands = spec.operands;
    while let Some(w) = args.get(i) {
        let t = w.text.as_str();
        if w.injectable() || !w.vars.is_empty() {
            return Err(format!("argument `{t}` is not a plain word"));
        }
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            if spec.long_valued.contains(&name) {
                if !long.contains('=') {
                    i += 1;
                }
            } else if !spec.long.contains(&name) {
                return Err(format!("unknown option `{t}`"));
            }
            opts.push(format!("--{name}"));
        } else if t.len() > 1 && t.starts_with('-') && operands == spec.operands {
            let body: Vec<char> = t.chars().skip(1).collect();
            for (k, c) in body.iter().enumerate() {
                opts.push(format!("-{c}"));
                if spec.valued.contains(*c) {
                    if k + 1 == body.len() {
                        i += 1;
                    }
                    break;
                } else if !(spec.flags.contains(*c) || (c.is_ascii_digit() && spec.flags.contains('#'))) {
                    return Err(format!("unknown option `{t}`"));
                }
            }
        } else if operands > 0 {
            operands -= 1;
        } else if spec.assigns && t.contains('=') && !t.starts_with('=') {
            let name = t.split_once('=').map_or(t, |(n, _)| n);
            if !env_var_ok(name) {
                return Err(format!("sets `{name}` for the command"));
            }
        } else {
            break;
        }
        i += 1;
    }
    Ok((opts, i))
}

/// Commands that run the command given as their arguments.
fn prefix(ctx: &mut Ctx<'_>, n: &str, args: &[Word], stdin: &Stdin, depth: usize) -> Option<Verdict> {
    const NONE: &[&str] = &[];
    let w = |flags, valued, long, long_valued, operands, assigns| Wrapper {
        flags,
        valued,
        long,
        long_valued,
        operands,
        assigns,
    };
    let (spec, extra): (Wrapper, &[Class]) = match n {
        "sudo" => (
            w(
                "AbEHkKnPSiseBlv",
                "ugCDhprtTUc",
                &["preserve-env", "login", "shell", "non-interactive", "set-home", "background", "stdin"],
                &["user", "group", "host", "prompt", "chdir"],
                0,
                true,
            ),
            &[Privilege],
        ),
        "doas" => (w("ns", "uC", NONE, NONE, 0, false), &[Privilege]),
        "pkexec" => (w("", "", &["disable-internal-agent"], &["user"], 0, false), &[Privilege]),
        "runuser" | "sg" => {
            (w("lmp", "ugG", &["login"], &["user", "group"], usize::from(n == "sg"), false), &[Privilege])
        }
        "env" => (w("i0v", "uC", &["ignore-environment", "null"], &["unset", "chdir"], 0, true), &[]),
        "nohup" | "setsid" | "exec" | "builtin" => (w("lcfw", "a", &["fork", "wait"], NONE, 0, false), &[]),
        "timeout" => {
            (w("v", "sk", &["preserve-status", "foreground", "verbose"], &["signal", "kill-after"], 1, false), &[])
        }
        "nice" => (w("#", "n", NONE, &["adjustment"], 0, false), &[]),
        "ionice" => (w("t", "cn", NONE, &["class", "classdata"], 0, false), &[]),
        "stdbuf" => (w("", "ioe", NONE, &["input", "output", "error"], 0, false), &[]),
        "time" => (w("pv", "", NONE, NONE, 0, false), &[]),
        "command" => {
            if args.first().is_some_and(|a| a.text == "-v" || a.text == "-V") {
                return Some(v(&[Read], "`command -v` looks a name up"));
            }
            (w("p", "", NONE, NONE, 0, false), &[])
        }
        "xargs" => return Some(xargs(ctx, args, depth)),
        "su" => return Some(su(ctx, args, depth)),
        "watch" => {
            let (_, at) = match unwrap(
                args,
                &w(
                    "bceghtpx",
                    "nd",
                    &["beep", "color", "errexit", "chgexit", "no-title", "precise", "exec"],
                    &["interval", "differences"],
                    0,
                    false,
                ),
            ) {
                Ok(x) => x,
                Err(e) => return Some(v(&[Unknown], e)),
            };
            let rest = args.get(at..).unwrap_or_default();
            if rest.iter().any(|a| !a.is_literal()) {
                return Some(v(&[Unknown], "`watch` command is not plain"));
            }
            let joined: Vec<&str> = rest.iter().map(|a| a.text.as_str()).collect();
            let classes = ctx.line(&joined.join(" "), depth + 1);
            return Some(Verdict { classes, reason: "`watch` runs its command repeatedly".into() });
        }
        "busybox" => return Some(run(ctx, args, stdin, depth + 1)),
        _ => return None,
    };
    let extra = Classes::of(extra);
    let (opts, at) = match unwrap(args, &spec) {
        Ok(x) => x,
        Err(e) => return Some(v(&[Unknown], format!("`{n}`: {e}")).with(extra)),
    };
    let rest = args.get(at..).unwrap_or_default();
    if opts.iter().any(|o| {
        matches!(o.as_str(), "-C" | "--chdir" | "-D") && (n == "env" || n == "sudo") && !(n == "sudo" && o == "-C")
    }) {
        // Relative paths now resolve somewhere the classifier does not follow.
        ctx.cwd = None;
    }
    if n == "sudo" && opts.iter().any(|o| matches!(o.as_str(), "-l" | "-v" | "-k" | "-K")) && rest.is_empty() {
        return Some(v(&[Privilege, Read], "`sudo` lists or refreshes rights"));
    }
    if n == "sudo" && opts.iter().any(|o| o == "-e") {
        return Some(v(&[Privilege, Unknown], "`sudo -e` edits files as root"));
    }
    if rest.is_empty() {
        let verdict = match n {
            "env" | "nice" | "time" | "exec" => v(&[Read], format!("`{n}` alone only reads")),
            _ => v(&[Unknown], format!("`{n}` with no command")),
        };
        return Some(verdict.with(extra));
    }
    let inner = run(ctx, rest, stdin, depth + 1);
    Some(Verdict { classes: inner.classes | extra, reason: format!("`{n}`: {}", inner.reason) })
}

fn su(ctx: &mut Ctx<'_>, args: &[Word], depth: usize) -> Verdict {
    let split = split_opts(args, "cCsgG", &["command", "session-command", "shell", "group"]);
    if split.injectable {
        return v(&[Privilege, Unknown], "`su` arguments are not plain");
    }
    if split.values(&["-s", "--shell"]).any(|s| !matches!(s, "/bin/sh" | "/bin/bash" | "/usr/bin/bash" | "/bin/dash")) {
        return v(&[Privilege, Unknown], "`su` with an unusual shell");
    }
    let scripts: Vec<String> =
        split.values(&["-c", "-C", "--command", "--session-command"]).map(str::to_string).collect();
    if scripts.is_empty() {
        return v(&[Privilege, Unknown], "`su` opens a shell reading stdin");
    }
    let mut classes = Classes::from(Privilege);
    for s in scripts {
        classes |= ctx.line(&s, depth + 1);
    }
    Verdict { classes, reason: "`su -c` runs a command as another user".into() }
}

/// `xargs CMD ARGS`: CMD runs with input appended (or substituted for `-I`'s string).
fn xargs(ctx: &mut Ctx<'_>, args: &[Word], depth: usize) -> Verdict {
    let spec = Wrapper {
        flags: "0rtpxo",
        valued: "adEILnPs",
        long: &["null", "no-run-if-empty", "verbose", "interactive", "exit", "open-tty", "replace"],
        long_valued: &["arg-file", "delimiter", "eof", "max-lines", "max-args", "max-procs", "max-chars"],
        operands: 0,
        assigns: false,
    };
    let mut replace = None;
    for (k, a) in args.iter().enumerate() {
        let t = a.text.as_str();
        if !t.starts_with('-') {
            break;
        }
        if t == "--replace" {
            replace = Some("{}".to_string());
        } else if t == "-I" {
            replace = args.get(k + 1).map(|w| w.text.clone());
        } else if let Some(r) = t.strip_prefix("-I").or_else(|| t.strip_prefix("--replace=")) {
            replace = Some(r.to_string());
        }
    }
    let (_, at) = match unwrap(args, &spec) {
        Ok(x) => x,
        Err(e) => return v(&[Unknown], format!("`xargs`: {e}")),
    };
    let mut cmd: Vec<Word> = args.get(at..).unwrap_or_default().to_vec();
    if cmd.is_empty() {
        return v(&[Read], "`xargs` echoes its input");
    }
    match &replace {
        Some(r) => {
            for w in cmd.iter_mut().skip(1) {
                if w.text.contains(r.as_str()) {
                    w.opaque = true;
                }
            }
        }
        None => cmd.push(Word::opaque("{input}")),
    }
    let inner = run(ctx, &cmd, &Stdin::Pipe, depth + 1);
    Verdict { classes: inner.classes, reason: format!("`xargs`: {}", inner.reason) }
}

/// `sh -c STRING`, `bash script`, `bash` reading stdin.
fn shell(ctx: &mut Ctx<'_>, n: &str, args: &[Word], depth: usize) -> Verdict {
    let mut iter = args.iter();
    while let Some(a) = iter.next() {
        let t = a.text.as_str();
        if !a.is_literal() {
            ctx.runs_code = true;
            return v(&[Unknown], format!("`{n}` argument `{t}` is not a plain word"));
        }
        if matches!(t, "--norc" | "--noprofile" | "--posix" | "--login" | "--noediting") {
            continue;
        }
        if t == "-o" || t == "+o" {
            iter.next();
            continue;
        }
        if let Some(flags) = t.strip_prefix('-').or_else(|| t.strip_prefix('+')) {
            if flags.is_empty() || !flags.chars().all(|c| "ceuxvlinfhBCEHPT".contains(c)) {
                return v(&[Unknown], format!("`{n}` option `{t}`"));
            }
            if flags.contains('i') || flags.contains('s') {
                ctx.runs_code = true;
            }
            if flags.contains('c') {
                let Some(script) = iter.next() else {
                    return v(&[Unknown], format!("`{n} -c` without a string"));
                };
                if !script.is_literal() {
                    return v(&[Unknown], format!("`{n} -c` string is not literal"));
                }
                let classes = ctx.line(&script.text, depth + 1);
                return Verdict { classes, reason: format!("`{n} -c` runs its string") };
            }
            continue;
        }
        ctx.runs_code = true;
        return v(&[Unknown], format!("`{n}` runs the script `{t}`"));
    }
    ctx.runs_code = true;
    v(&[Unknown], format!("`{n}` runs commands from its input"))
}
