//! Commands whose class depends on their verb or options: git, docker, kubectl,
//! systemctl, psql, and the readers that have one dangerous option. Anything these do
//! not recognise is `unknown`.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::paths::{self, split_opts};
use super::{Ctx, Stdin, Verdict, files, services, transfer};

use Class::{Admin, Destructive, Read, Unknown, Write};

fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
    Verdict::new(classes, reason)
}

fn texts(args: &[Word]) -> Vec<&str> {
    args.iter().map(|w| w.text.as_str()).collect()
}

/// Arguments that are not options.
fn operands(args: &[Word]) -> Vec<&str> {
    args.iter().map(|w| w.text.as_str()).filter(|t| !t.starts_with('-')).collect()
}

fn any_injectable(args: &[Word]) -> bool {
    args.iter().any(Word::injectable)
}

/// Classifies the commands not handled by [`super::rules`].
pub(crate) fn run(ctx: &mut Ctx<'_>, n: &str, args: &[Word], stdin: &Stdin, depth: usize) -> Verdict {
    let t = texts(args);
    let has = |names: &[&str]| t.iter().any(|a| names.contains(a));
    match n {
        "git" => services::git(ctx, args),
        "git-receive-pack" => v(&[Write], "receives a git push"),
        "docker" | "podman" => services::docker(args),
        "kubectl" | "oc" => services::kubectl(args),
        "systemctl" => services::systemctl(args),
        "journalctl" => services::journalctl(&t),
        "dmesg" => {
            if t.iter().any(|a| {
                matches!(*a, "-c" | "-C" | "--clear" | "--read-clear")
                    || (a.starts_with('-') && !a.starts_with("--") && (a.contains('c') || a.contains('C')))
            }) {
                v(&[Destructive], "`dmesg` clears the kernel log")
            } else if t.iter().any(|a| a.starts_with("-n") || a.starts_with("--console") || matches!(*a, "-D" | "-E")) {
                v(&[Admin], "`dmesg` changes console logging")
            } else {
                v(&[Read], "`dmesg` reads the kernel log")
            }
        }
        "psql" => services::psql(ctx, args, stdin),
        "find" => files::find(ctx, args, depth),
        "sed" => files::sed(ctx, args),
        "awk" | "gawk" | "mawk" | "nawk" => files::awk(args),
        "tar" => files::tar(ctx, args),
        "curl" => transfer::curl(ctx, args),
        "wget" => transfer::wget(ctx, args),
        "rsync" => transfer::rsync(ctx, args),
        "scp" => transfer::scp(ctx, args),
        "chmod" | "chown" | "chgrp" => files::chmod(ctx, n, args),
        "dd" => files::dd(ctx, args),
        "tee" => {
            let split = split_opts(args, "", &["output-error"]);
            let mut classes = Classes::from(Read);
            for w in &split.operands {
                classes |= paths::write_target(ctx, w);
            }
            Verdict { classes, reason: "`tee` copies its input to files".into() }
        }
        "sort" | "shuf" | "tree" => {
            let split = split_opts(
                args,
                "ktoSTnNiPILFXe",
                &[
                    "key",
                    "field-separator",
                    "output",
                    "buffer-size",
                    "temporary-directory",
                    "parallel",
                    "files0-from",
                    "batch-size",
                    "random-source",
                    "compress-program",
                    "head-count",
                    "input-range",
                ],
            );
            if split.has(&["--compress-program"]) || (n != "tree" && split.injectable) {
                return v(&[Unknown], format!("`{n}` runs a program or has options it cannot see"));
            }
            let mut classes = Classes::from(Read);
            for o in split.values(&["-o", "--output"]) {
                classes |= paths::write_path(ctx, o);
            }
            Verdict { classes, reason: format!("`{n}` prints, or writes its -o file") }
        }
        "uniq" | "xxd" => {
            let split = split_opts(args, "fswc", &["skip-fields", "skip-chars", "check-chars", "cols", "seek"]);
            let mut classes = Classes::from(Read);
            if split.injectable {
                classes |= Unknown.into();
            }
            if let Some(out) = split.operands.get(1) {
                classes |= paths::write_target(ctx, out);
            }
            Verdict { classes, reason: format!("`{n}` prints, or writes its second operand") }
        }
        "rg" => {
            if t.iter().any(|a| a.starts_with("--pre")) || any_injectable(args) {
                v(&[Unknown], "`rg --pre` runs a program")
            } else {
                v(&[Read], "`rg` only reads")
            }
        }
        "printf" => {
            if t.first().is_some_and(|a| a.starts_with("-v")) {
                v(&[Unknown], "`printf -v` assigns a variable")
            } else {
                v(&[Read], "`printf` prints")
            }
        }
        "file" => {
            if has(&["-C", "--compile"]) {
                v(&[Write], "`file -C` writes a magic file")
            } else {
                v(&[Read], "`file` reads")
            }
        }
        "date" => {
            let split = split_opts(args, "dfrIs", &["date", "file", "reference", "set", "iso-8601"]);
            if split.has(&["-s", "--set"]) || split.operands.iter().any(|w| !w.text.starts_with('+')) {
                v(&[Admin], "`date` sets the clock")
            } else {
                v(&[Read], "`date` prints the time")
            }
        }
        "hostname" => {
            if operands(args).is_empty() && !has(&["-F", "--file", "-b", "--boot"]) {
                v(&[Read], "`hostname` prints the name")
            } else {
                v(&[Admin], "`hostname` sets the name")
            }
        }
        "top" => {
            if t.iter().any(|a| a.starts_with('-') && a.contains('b')) {
                v(&[Read], "`top -b` prints")
            } else {
                v(&[Unknown], "`top` is interactive")
            }
        }
        "ss" => {
            if t.iter().any(|a| *a == "--kill" || (a.starts_with('-') && !a.starts_with("--") && a.contains('K'))) {
                v(&[Destructive], "`ss -K` kills sockets")
            } else {
                v(&[Read], "`ss` lists sockets")
            }
        }
        "ip" => ip(&t),
        "kill" => {
            if t.first().is_some_and(|a| matches!(*a, "-l" | "-L" | "--list" | "--table" | "-0")) {
                v(&[Read], "`kill` lists signals or probes a process")
            } else {
                v(&[Destructive], "`kill` signals processes")
            }
        }
        "crontab" => {
            if t.iter().all(|a| matches!(*a, "-l" | "-u") || !a.starts_with('-')) && has(&["-l"]) {
                v(&[Read], "`crontab -l` lists")
            } else {
                v(&[Admin], "`crontab` installs scheduled commands")
            }
        }
        "mount" | "ifconfig" | "route" | "sysctl" | "iptables-save" | "atq" => {
            let changes = match n {
                "sysctl" => t.iter().any(|a| {
                    a.contains('=')
                        || a.starts_with("-w")
                        || *a == "--write"
                        || *a == "-p"
                        || a.starts_with("--load")
                        || *a == "--system"
                }),
                "iptables-save" | "atq" => false,
                "route" => !(t.is_empty() || t == ["-n"]),
                "ifconfig" => !(t.is_empty() || t == ["-a"]),
                _ => !t.is_empty(),
            };
            if changes { v(&[Admin], format!("`{n}` changes the system")) } else { v(&[Read], format!("`{n}` lists")) }
        }
        "service" => match t.get(1) {
            Some(&"status") if t.len() == 2 => v(&[Read], "service status"),
            Some(&("stop" | "restart")) => v(&[Destructive], "stops a service"),
            _ => v(&[Admin], "`service` changes a service"),
        },
        "hostnamectl" | "timedatectl" | "loginctl" | "localectl" => {
            if t.iter().filter(|a| !a.starts_with('-')).all(|a| {
                matches!(
                    *a,
                    "status"
                        | "show"
                        | "list"
                        | "list-sessions"
                        | "list-users"
                        | "list-timezones"
                        | "show-session"
                        | "show-user"
                )
            }) {
                v(&[Read], format!("`{n}` shows status"))
            } else {
                v(&[Admin], format!("`{n}` changes settings"))
            }
        }
        "dpkg" | "rpm" | "apt-cache" | "dpkg-query" => {
            let query = n == "apt-cache"
                || n == "dpkg-query"
                || t.iter().all(|a| {
                    !a.starts_with('-')
                        || matches!(
                            *a,
                            "-l" | "-L"
                                | "-s"
                                | "-S"
                                | "-q"
                                | "-qa"
                                | "-qi"
                                | "-ql"
                                | "-qf"
                                | "--list"
                                | "--status"
                                | "--search"
                                | "--listfiles"
                                | "--query"
                                | "-a"
                                | "-i"
                                | "-f"
                        )
                });
            let rpm_query = n != "rpm" || t.iter().any(|a| a.starts_with("-q") || *a == "--query");
            if query && rpm_query && !(n == "dpkg" && t.is_empty()) {
                v(&[Read], format!("`{n}` queries packages"))
            } else {
                v(&[Admin], format!("`{n}` changes packages"))
            }
        }
        "nc" | "ncat" | "netcat" => {
            ctx.downloads = true;
            if t.iter().any(|a| {
                matches!(*a, "-e" | "-c" | "--exec" | "--sh-exec" | "--lua-exec")
                    || (a.starts_with('-') && !a.starts_with("--") && (a.contains('e') || a.contains('c')))
            }) {
                ctx.runs_code = true;
                v(&[Admin], "`nc -e` attaches a program to the network")
            } else if t.iter().any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('l')) {
                v(&[Admin], "`nc -l` listens")
            } else if t.iter().any(|a| a.starts_with('-') && a.contains('z')) {
                v(&[Read], "`nc -z` probes a port")
            } else {
                v(&[Unknown], "`nc` sends data the line does not show")
            }
        }
        "socat" => {
            ctx.downloads = true;
            if t.iter().any(|a| {
                let l = a.to_ascii_lowercase();
                l.contains("exec:") || l.contains("system:")
            }) {
                v(&[Admin], "`socat` attaches a program to a socket")
            } else {
                v(&[Unknown], "`socat` moves data the line does not show")
            }
        }
        "unzip" if !t.iter().any(|a| matches!(*a, "-l" | "-t" | "-p" | "-Z" | "-v")) => {
            let split = split_opts(args, "dx", &[]);
            let mut classes = Classes::from(Write);
            let dirs: Vec<&str> = split.values(&["-d"]).collect();
            for d in if dirs.is_empty() { vec!["."] } else { dirs } {
                classes |= paths::write_path(ctx, d);
            }
            Verdict { classes, reason: "`unzip` extracts files".into() }
        }
        "gzip" | "gunzip" | "bzip2" | "bunzip2" | "xz" | "unxz" | "zstd" | "unzstd" | "unzip" | "lz4" => {
            let reads = t.iter().any(|a| {
                matches!(*a, "-c" | "--stdout" | "-l" | "--list" | "-t" | "--test" | "-p" | "-Z")
                    || (a.starts_with('-')
                        && !a.starts_with("--")
                        && (a.contains('c') || a.contains('l') || a.contains('t')))
            });
            let mut classes = if reads { Classes::from(Read) } else { Classes::from(Write) };
            if !reads {
                for w in args.iter().filter(|w| !w.text.starts_with('-')) {
                    classes |= paths::write_target(ctx, w);
                }
            }
            Verdict { classes, reason: format!("`{n}` (de)compresses") }
        }
        "cd" => {
            let target = args.iter().find(|w| !w.text.starts_with('-') || w.text == "-");
            ctx.cwd = match target {
                None => Some(String::new()),
                Some(w) if w.is_static() && w.text != "-" => paths::resolve(ctx, &w.text).map(|p| {
                    let p = p.trim_end_matches('/').to_string();
                    match p.as_str() {
                        "~" => String::new(),
                        "" => "/".into(),
                        _ => p,
                    }
                }),
                Some(_) => None,
            };
            v(&[Read], "`cd` changes directory")
        }
        "set" => {
            if t.iter().all(|a| {
                matches!(
                    *a,
                    "-e" | "-u"
                        | "-x"
                        | "-eu"
                        | "-ue"
                        | "-ex"
                        | "-xe"
                        | "-eux"
                        | "-euo"
                        | "-eo"
                        | "-o"
                        | "+e"
                        | "+x"
                        | "pipefail"
                        | "errexit"
                        | "nounset"
                        | "xtrace"
                )
            }) {
                v(&[Read], "`set` shell options")
            } else {
                v(&[Unknown], "`set` changes the shell")
            }
        }
        "export" | "declare" | "typeset" | "local" | "readonly" => {
            let ok = !args.is_empty()
                && args.iter().all(|w| {
                    w.is_literal() && w.text.split_once('=').is_some_and(|(name, _)| super::rules::env_var_ok(name))
                });
            if ok {
                v(&[Read], format!("`{n}` sets locale variables"))
            } else {
                v(&[Unknown], format!("`{n}` changes variables"))
            }
        }
        "alias" | "history" | "jobs" | "umask" | "hash" => {
            if args.is_empty() {
                v(&[Read], format!("`{n}` lists"))
            } else {
                v(&[Unknown], format!("`{n}` changes the shell"))
            }
        }
        "terraform" | "tofu" => match operands(args).first().copied() {
            Some("show" | "output" | "validate" | "version" | "fmt" | "providers" | "graph") => {
                v(&[Read], "terraform reads")
            }
            Some("plan" | "console") => v(&[Unknown], "`terraform plan` runs providers and external data sources"),
            Some("destroy") => v(&[Destructive], "`terraform destroy`"),
            Some("apply")
                if t.iter()
                    .any(|a| a.starts_with("-auto-approve") || a.starts_with("--auto-approve") || *a == "-destroy") =>
            {
                v(&[Destructive], "`terraform apply -auto-approve`")
            }
            Some("apply" | "import" | "init" | "taint" | "untaint" | "refresh") => {
                v(&[Write], "terraform changes state")
            }
            _ => v(&[Unknown], "terraform verb not known"),
        },
        "helm" if t.iter().any(|a| a.starts_with("--post-renderer") || a.starts_with("--kubeconfig")) => {
            v(&[Unknown], "helm option runs a program")
        }
        "helm" => match operands(args).first().copied() {
            Some(
                "list" | "ls" | "status" | "history" | "get" | "show" | "version" | "search" | "template" | "lint",
            ) => v(&[Read], "helm reads"),
            Some("uninstall" | "delete" | "rollback") => v(&[Destructive], "helm removes a release"),
            Some("install" | "upgrade" | "repo") => v(&[Write], "helm installs"),
            _ => v(&[Unknown], "helm verb not known"),
        },
        "npm" | "pip" | "pip3" | "cargo" | "gem" | "yarn" | "pnpm" | "go" | "make" | "composer" => {
            ctx.runs_code = true;
            v(&[Unknown], format!("`{n}` runs build or install scripts"))
        }
        "eval" | "source" | "." => {
            ctx.runs_code = true;
            v(&[Unknown], format!("`{n}` runs shell code the line does not show"))
        }
        "trap" | "enable" | "let" | "shopt" | "read" | "mapfile" | "readarray" | "getopts" | "unset" | "pushd"
        | "popd" | "fc" => v(&[Unknown], format!("`{n}` changes or runs shell code")),
        "ssh" | "sftp" | "telnet" | "mosh" | "ssh-copy-id" => {
            v(&[Unknown], format!("`{n}` runs commands on another host"))
        }
        "less" | "more" | "most" | "man" | "vi" | "vim" | "nvim" | "view" | "nano" | "emacs" | "ed" | "ex" | "pico"
        | "joe" => v(&[Unknown], format!("`{n}` is interactive and can run commands")),
        _ => v(&[Unknown], format!("`{n}` is not a known command")),
    }
}

fn ip(t: &[&str]) -> Verdict {
    let mut words = t.iter().filter(|a| !a.starts_with('-'));
    if t.iter().any(|a| matches!(*a, "-b" | "-batch" | "-B" | "-force")) {
        return v(&[Unknown], "`ip -batch` reads commands from a file");
    }
    let object = words.next();
    let verb = words.next();
    if object.is_none() || verb.is_none_or(|v| matches!(*v, "show" | "list" | "ls" | "lst" | "get" | "sh" | "s")) {
        return v(&[Read], "`ip` shows");
    }
    if matches!(verb, Some(&"exec")) || object == Some(&"netns") && t.contains(&"exec") {
        return v(&[Unknown], "`ip ... exec` runs a command");
    }
    v(&[Admin], "`ip` changes the network")
}
