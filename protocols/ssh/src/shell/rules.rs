//! What each command does: the read-only allowlist, the simple write, destructive,
//! privilege and admin sets, and the rule every command obeys first: a word whose value
//! Airlock cannot see (any expansion, a glob, xargs input) makes the command `unknown`,
//! except for the few commands no argument can turn into a side effect. A command not
//! named here is `unknown`.

use airlock_classes::Class;

use super::lexer::Word;
use super::{Ctx, Stdin, Verdict, tools, wrappers, writers};

use Class::{Admin, Destructive, Privilege, Read, Unknown};

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
    "systemd-run",
    "firejail",
    "bwrap",
    "lastlog",
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
    "strace",
    "ltrace",
    "gdb",
    "lldb",
    "parallel",
    "script",
    "expect",
    "make",
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

/// Commands no argument can turn into a side effect, whatever the arguments expand to.
const ANY_ARGS: &[&str] = &["echo", "true", "false", ":", "sleep", "exit", "cd"];

/// Readers whose operands are only ever files to read: they may be given file names the
/// line does not show (a glob such as `/var/log/*.log`, find's `{}`), never options.
const OPERAND_READERS: &[&str] = &[
    "ls",
    "cat",
    "head",
    "tail",
    "wc",
    "du",
    "stat",
    "grep",
    "egrep",
    "fgrep",
    "zcat",
    "bzcat",
    "xzcat",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "cksum",
    "nl",
    "tac",
    "strings",
    "od",
    "hexdump",
];

/// Whether command `n` stays what it is whatever its non-literal arguments become.
fn tolerates(n: &str, args: &[Word]) -> bool {
    if ANY_ARGS.contains(&n) {
        return true;
    }
    if n == "printf" {
        // `printf -v NAME` assigns, and a subscript in NAME runs code.
        return args.first().is_some_and(|f| f.is_literal() && !f.text.starts_with('-'));
    }
    OPERAND_READERS.contains(&n) && args.iter().all(|a| a.is_literal() || a.is_operand_only())
}

/// A verdict of these classes, for the command rules.
pub(crate) fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
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
    let verdict = dispatch(ctx, n, args, stdin, depth);
    match args.iter().find(|a| !a.is_literal()) {
        Some(w) if !tolerates(n, args) => Verdict {
            classes: verdict.classes | Unknown.into(),
            reason: format!("`{n}` is given `{}`, whose value Airlock cannot see; {}", w.text, verdict.reason),
        },
        _ => verdict,
    }
}

fn dispatch(ctx: &mut Ctx<'_>, n: &str, args: &[Word], stdin: &Stdin, depth: usize) -> Verdict {
    if let Some(verdict) = wrappers::prefix(ctx, n, args, stdin, depth) {
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
    if let Some(verdict) = writers::run(ctx, n, args) {
        return verdict;
    }
    if SHELLS.contains(&n) {
        return wrappers::shell(ctx, n, args, depth);
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

/// Whether a chmod-style mode sets the setuid or setgid bit.
pub(crate) fn setuid_mode(mode: &str) -> bool {
    if mode.chars().all(|c| c.is_ascii_digit()) {
        return mode.len() >= 4 && mode.chars().next().is_some_and(|c| matches!(c, '2' | '4' | '6' | '7'));
    }
    mode.split(',').any(|m| m.contains(['+', '=']) && m.rsplit(['+', '=']).next().is_some_and(|p| p.contains('s')))
}

/// Whether a long option word (`--name` or `--name=value`) may be any of `names`:
/// getopt_long takes any unambiguous prefix, so `--upload-pac` is `--upload-pack`.
pub(crate) fn long_may_be(word: &str, names: &[&str]) -> bool {
    let Some(long) = word.strip_prefix("--") else {
        return false;
    };
    let given = long.split_once('=').map_or(long, |(n, _)| n);
    !given.is_empty() && names.iter().any(|n| n.starts_with(given))
}
