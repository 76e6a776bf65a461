//! Commands whose class depends on their verb or options: git, docker, kubectl,
//! systemctl, psql, and the readers that have one dangerous option. Anything these do
//! not recognise is `unknown`.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::opts::{self, Spec};
use super::paths;
use super::rules::long_may_be;
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
            const DMESG: Spec = Spec {
                short: "CcDEF:f:HJkL::l:n:PprSs:TtuwWxhV",
                long: "C|clear c|read-clear D|console-off E|console-on F|file= f|facility= H|human J|json \
                    k|kernel L|color? l|level= n|console-level= P|nopager p|force-prefix r|raw S|syslog \
                    s|buffer-size= T|ctime t|notime u|userspace w|follow W|follow-new x|decode noescape \
                    since= until= time-format= help version",
            };
            match opts::parse(args, &DMESG) {
                Err(e) => v(&[Unknown], format!("`dmesg`: {e}")),
                Ok(p) if p.has(&["clear", "read-clear"]) => v(&[Destructive], "`dmesg` clears the kernel log"),
                Ok(p) if p.has(&["console-off", "console-on", "console-level"]) => {
                    v(&[Admin], "`dmesg` changes console logging")
                }
                Ok(_) => v(&[Read], "`dmesg` reads the kernel log"),
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
        "sort" | "shuf" | "tree" => sort(ctx, n, args),
        "uniq" => {
            const UNIQ: Spec = Spec {
                short: "Dcdf:is:uw:z",
                long: "D|all-repeated? w|check-chars= c|count group? i|ignore-case d|repeated s|skip-chars= \
                    f|skip-fields= u|unique z|zero-terminated help version",
            };
            let p = match opts::parse(args, &UNIQ) {
                Ok(p) => p,
                Err(e) => return v(&[Unknown], format!("`uniq`: {e}")),
            };
            let mut classes = Classes::from(Read);
            // uniq [INPUT [OUTPUT]]: the second operand is written.
            for out in p.operands.iter().skip(1) {
                classes |= paths::write_target(ctx, out);
            }
            Verdict { classes, reason: "`uniq` prints, or writes its second operand".into() }
        }
        "xxd" => {
            let mut classes = Classes::from(Read);
            let mut operands = 0;
            let mut it = args.iter();
            while let Some(w) = it.next() {
                let t = w.text.as_str();
                if t.len() > 1 && t.starts_with('-') {
                    // `-c 8`, `-cols 8`, `-c8`: only the bare forms take the next word.
                    let valued = [
                        "-c",
                        "-cols",
                        "-g",
                        "-groupsize",
                        "-l",
                        "-len",
                        "-o",
                        "-offset",
                        "-s",
                        "-seek",
                        "-n",
                        "-name",
                    ];
                    if valued.contains(&t) {
                        it.next();
                    } else if !t.chars().nth(1).is_some_and(|c| "abCcdEeghilnoprsuv".contains(c)) {
                        return v(&[Unknown], format!("`xxd` option `{t}`"));
                    }
                    continue;
                }
                operands += 1;
                if operands > 1 {
                    classes |= paths::write_target(ctx, w);
                }
            }
            Verdict { classes, reason: "`xxd` prints, or writes its second operand".into() }
        }
        "rg" => {
            if t.iter().any(|a| {
                long_may_be(a, &["pre", "pre-glob", "hostname-bin", "search-zip"])
                    || a.starts_with("--pre")
                    || a.starts_with("--hostname-bin")
            }) {
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
            const FILE: Spec = Spec {
                short: "0bcCde:Ef:F:hiklLm:nNpP:rsSvzZ",
                long: "apple b|brief c|checking-printout C|compile d|debug e|exclude= exclude-quiet= extension \
                    f|files-from= F|separator= i|mime mime-type mime-encoding k|keep-going l|list \
                    L|dereference h|no-dereference m|magic-file= n|no-buffer N|no-pad 0|print0 \
                    p|preserve-date P|parameter= r|raw s|special-files S|no-sandbox z|uncompress \
                    Z|uncompress-noreport v|version help",
            };
            match opts::parse(args, &FILE) {
                Err(e) => v(&[Unknown], format!("`file`: {e}")),
                Ok(p) if p.has(&["compile"]) => v(&[Write], "`file -C` writes a magic file"),
                Ok(_) => v(&[Read], "`file` reads"),
            }
        }
        "date" => {
            const DATE: Spec = Spec {
                short: "I::Rd:f:r:s:u",
                long: "d|date= debug f|file= I|iso-8601? r|reference= resolution rfc-3339= R|rfc-email s|set= \
                    u|universal utc uct help version",
            };
            match opts::parse(args, &DATE) {
                Err(e) => v(&[Unknown], format!("`date`: {e}")),
                Ok(p) if p.has(&["set"]) || p.operands.iter().any(|w| !w.text.starts_with('+')) => {
                    v(&[Admin], "`date` sets the clock")
                }
                Ok(_) => v(&[Read], "`date` prints the time"),
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
        "cd" => {
            let target = args.iter().find(|w| !w.text.starts_with('-') || w.text == "-");
            ctx.cwd = match target {
                None => Some(String::new()),
                Some(w) if w.is_literal() && w.text != "-" => paths::resolve(ctx, &w.text).map(|p| {
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

/// `sort`, `shuf` and `tree`: read, unless they write their `-o` file; sort's
/// `--compress-program` and tree's `-R` run or write more.
fn sort(ctx: &mut Ctx<'_>, n: &str, args: &[Word]) -> Verdict {
    const SORT: Spec = Spec {
        short: "CMRS:T:Vbcdfghik:mno:rst:uz",
        long: "batch-size= S|buffer-size= c|check? compress-program= debug d|dictionary-order t|field-separator= \
            files0-from= g|general-numeric-sort h|human-numeric-sort f|ignore-case b|ignore-leading-blanks \
            i|ignore-nonprinting k|key= m|merge M|month-sort n|numeric-sort o|output= parallel= R|random-sort \
            random-source= r|reverse sort= s|stable T|temporary-directory= u|unique V|version-sort \
            z|zero-terminated help version",
    };
    const SHUF: Spec = Spec {
        short: "ei:n:o:rz",
        long: "e|echo n|head-count= i|input-range= o|output= random-source= r|repeat z|zero-terminated help \
            version",
    };
    const TREE: Spec = Spec {
        short: "adlfxqNQpugshDFvtcUriASnCXJL:P:I:o:H:T:",
        long: "noreport dirsfirst filesfirst charset= filelimit= si du prune matchdirs ignore-case inodes device \
            timefmt= sort= gitignore info metafirst nolinks fromfile noindent help version",
    };
    let spec = match n {
        "sort" => &SORT,
        "shuf" => &SHUF,
        _ => &TREE,
    };
    let p = match opts::parse(args, spec) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`{n}`: {e}")),
    };
    if p.has(&["compress-program"]) {
        return v(&[Unknown], "`sort --compress-program` runs a program");
    }
    let mut classes = Classes::from(Read);
    for o in p.values(&["output", "-o"]) {
        classes |= paths::write_path(ctx, o);
    }
    Verdict { classes, reason: format!("`{n}` prints, or writes its -o file") }
}
