//! Multi-verb tools whose class depends on the verb: git, docker, kubectl, systemctl,
//! journalctl, and psql, whose SQL goes to the SQL classifier.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::opts::{self, Spec};
use super::paths;
use super::rules::long_may_be;
use super::{Ctx, Stdin, Verdict};

use Class::{Admin, Destructive, Privilege, Read, Unknown, Write};

fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
    Verdict::new(classes, reason)
}

fn texts(args: &[Word]) -> Vec<&str> {
    args.iter().map(|w| w.text.as_str()).collect()
}

/// `journalctl`: reading logs, or maintaining the journal. Long options are matched by
/// prefix, as getopt_long takes them (`--vac=1d` is `--vacuum-time`).
pub(crate) fn journalctl(t: &[&str]) -> Verdict {
    let admin = [
        "rotate",
        "flush",
        "relinquish-var",
        "smart-relinquish-var",
        "setup-keys",
        "update-catalog",
        "sync",
        "cursor-file",
    ];
    if t.iter().any(|a| long_may_be(a, &["vacuum-size", "vacuum-time", "vacuum-files"])) {
        v(&[Destructive], "`journalctl --vacuum` deletes logs")
    } else if t.iter().any(|a| long_may_be(a, &admin)) {
        v(&[Admin], "`journalctl` maintains the journal or writes a cursor file")
    } else {
        v(&[Read], "`journalctl` reads logs")
    }
}

/// `systemctl`: by verb.
pub(crate) fn systemctl(args: &[Word]) -> Verdict {
    const SYSTEMCTL: Spec = Spec {
        short: "aH:M:t:p:P:s:n:o:lqrfiT",
        long: "a|all t|type= state= p|property= P= value show-types job-mode= fail irreversible \
            ignore-dependencies i|ignore-inhibitors q|quiet no-block wait user system global no-wall reverse \
            after before f|force now root= runtime preset-mode= n|lines= o|output= plain l|full no-pager \
            no-legend legend= H|host= M|machine= kill-whom= kill-value= s|signal= what= message= timestamp= \
            marked failed with-dependencies r|recursive firmware-setup boot-loader-menu= boot-loader-entry= \
            reboot-argument= check-inhibitors= mkdir read-only drop-in= image= image-policy= \
            T|show-transaction dry-run no-ask-password no-reload no-warn when= help version",
    };
    let p = match opts::parse(args, &SYSTEMCTL) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`systemctl`: {e}")),
    };
    let verb = p.operands.first().map(|w| w.text.as_str());
    match verb {
        None
        | Some(
            "status" | "is-active" | "is-enabled" | "is-failed" | "is-system-running" | "list-units"
            | "list-unit-files" | "list-timers" | "list-sockets" | "list-dependencies" | "list-jobs" | "list-machines"
            | "show" | "cat" | "get-default" | "show-environment",
        ) => {
            if p.has(&["host", "machine", "root", "image"]) {
                v(&[Read, Unknown], "`systemctl` on another host")
            } else {
                v(&[Read], "`systemctl` shows state")
            }
        }
        Some(
            "stop"
            | "restart"
            | "try-restart"
            | "reload-or-restart"
            | "try-reload-or-restart"
            | "disable"
            | "mask"
            | "kill"
            | "isolate"
            | "reboot"
            | "poweroff"
            | "halt"
            | "kexec"
            | "suspend"
            | "hibernate"
            | "rescue"
            | "emergency"
            | "default"
            | "exit"
            | "switch-root"
            | "soft-reboot"
            | "clean"
            | "freeze",
        ) => v(&[Destructive], format!("`systemctl {}` stops things", verb.unwrap_or_default())),
        Some(verb) => v(&[Admin], format!("`systemctl {verb}` changes services")),
    }
}

/// `git`: by subcommand; options that make git run programs are unknown.
pub(crate) fn git(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let mut i = 0;
    while let Some(w) = args.get(i) {
        let t = w.text.as_str();
        if !t.starts_with('-') {
            break;
        }
        match t {
            "-C" => i += 1,
            "--no-pager"
            | "--bare"
            | "--no-replace-objects"
            | "--literal-pathspecs"
            | "--no-optional-locks"
            | "-P"
            | "--version"
            | "--no-lazy-fetch" => {}
            _ if t.starts_with("-C") => {}
            _ => return v(&[Unknown], format!("git option `{t}` can change what git runs")),
        }
        i += 1;
    }
    if args.iter().take(i).any(|w| w.text.starts_with("-C")) {
        // Relative paths now resolve in another directory.
        ctx.cwd = None;
    }
    let rest = args.get(i + 1..).unwrap_or_default();
    let Some(sub) = args.get(i).map(|w| w.text.as_str()) else {
        return v(&[Read], "`git` alone prints help");
    };
    let t = texts(rest);
    let opts_end = t.iter().position(|a| *a == "--").unwrap_or(t.len());
    let options = t.get(..opts_end).unwrap_or_default();
    // git's option parser takes any unambiguous prefix of a long option and clusters
    // short ones, so both spellings are checked.
    let has = |names: &[&str]| {
        options.iter().any(|a| {
            names.iter().any(|n| match (n.strip_prefix("--"), n.strip_prefix('-')) {
                (Some(long), _) if !long.is_empty() => long_may_be(a, &[long]),
                (None, Some(c)) if c.len() == 1 => {
                    *a == *n || (a.len() > 2 && a.starts_with('-') && !a.starts_with("--") && a.contains(c))
                }
                _ => a == n,
            })
        })
    };
    let ops: Vec<&str> = t.iter().copied().filter(|a| !a.starts_with('-')).collect();
    let first = ops.first().copied();
    let runs = [
        "upload-pack",
        "receive-pack",
        "exec",
        "ext-diff",
        "open-files-in-pager",
        "config",
        "config-env",
        "template",
        "extcmd",
        "tool",
        "separate-git-dir",
        "reference",
        "server-option",
    ];
    let short_runs = match sub {
        "grep" => "O",
        "clone" => "uc",
        "rebase" => "x",
        _ => "",
    };
    if options.iter().any(|a| {
        long_may_be(a, &runs)
            || a.contains("ext::")
            || (!a.starts_with("--") && a.starts_with('-') && a.chars().skip(1).any(|c| short_runs.contains(c)))
    }) {
        return v(&[Unknown], format!("`git {sub}` option runs a program"));
    }
    let mut outputs = Classes::NONE;
    let mut it = options.iter();
    while let Some(a) = it.next() {
        let is_out = long_may_be(a, &["output", "output-directory"]) && !a.starts_with("--output-indicator");
        let short_out =
            matches!(sub, "format-patch" | "archive") && a.starts_with('-') && !a.starts_with("--") && a.contains('o');
        if !(is_out || short_out) {
            continue;
        }
        let inline = if is_out {
            a.split_once('=').map(|(_, v)| v.to_string())
        } else {
            a.split_once('o').map(|(_, v)| v.to_string()).filter(|v| !v.is_empty())
        };
        let value = inline.or_else(|| it.next().map(|w| w.to_string())).unwrap_or_default();
        outputs |= paths::write_into_path(ctx, &value);
    }
    let read = |why: &str| v(&[Read], format!("`git {sub}` {why}"));
    match sub {
        "log" | "diff" | "show" | "format-patch" | "whatchanged" | "diff-tree" | "diff-files" | "diff-index"
        | "range-diff" => {
            let mut classes = Classes::from(Read) | outputs;
            if sub == "format-patch" {
                classes |= Write.into();
            }
            Verdict { classes, reason: format!("`git {sub}` shows history") }
        }
        "status" | "rev-parse" | "ls-files" | "ls-tree" | "blame" | "shortlog" | "describe" | "cat-file"
        | "rev-list" | "for-each-ref" | "show-ref" | "merge-base" | "name-rev" | "count-objects" | "verify-commit"
        | "check-ignore" | "var" | "annotate" | "ls-remote" | "version" | "--version" | "fsck" => {
            read("reads the repository")
        }
        "grep" => read("searches"),
        "remote" => match first {
            None | Some("show" | "get-url") => read("lists remotes"),
            Some("remove" | "rm" | "prune") => v(&[Destructive], "`git remote remove`"),
            _ => v(&[Write], "`git remote` changes remotes"),
        },
        "branch" => {
            if has(&["-D"]) || (has(&["-d", "--delete"]) && has(&["-f", "--force"])) || has(&["-M", "-C"]) {
                v(&[Destructive], "`git branch -D` deletes unmerged work")
            } else if has(&[
                "-d",
                "--delete",
                "-m",
                "--move",
                "-c",
                "--copy",
                "-u",
                "--set-upstream-to",
                "--unset-upstream",
                "--edit-description",
            ]) || !ops.is_empty()
                && !has(&["--list", "-l", "--contains", "--no-contains", "--merged", "--no-merged", "--points-at"])
            {
                v(&[Write], "`git branch` changes branches")
            } else {
                read("lists branches")
            }
        }
        "tag" => {
            if has(&["-d", "--delete"]) {
                v(&[Destructive], "`git tag -d`")
            } else if ops.is_empty() || has(&["-l", "--list", "--contains", "--points-at", "--merged"]) {
                read("lists tags")
            } else {
                v(&[Write], "`git tag` creates a tag")
            }
        }
        "stash" => match first {
            Some("list" | "show") => read("lists stashes"),
            Some("drop" | "clear") => v(&[Destructive], "`git stash drop` loses work"),
            _ => v(&[Write], "`git stash` saves or applies work"),
        },
        "config" => {
            if has(&["--get", "--get-all", "--get-regexp", "--list", "-l", "--show-origin", "--get-urlmatch"])
                || first == Some("get")
                || first == Some("list")
                || ops.len() == 1
                    && !has(&[
                        "--unset",
                        "--unset-all",
                        "--add",
                        "--replace-all",
                        "--edit",
                        "-e",
                        "--remove-section",
                        "--rename-section",
                    ])
            {
                read("reads configuration")
            } else {
                v(&[Unknown], "`git config` can make later git commands run programs")
            }
        }
        "worktree" => match (first, ops.get(1)) {
            (Some("list"), _) => read("lists worktrees"),
            (Some("add"), Some(dir)) => {
                Verdict { classes: paths::write_into_path(ctx, dir), reason: "`git worktree add` checks out".into() }
            }
            _ => v(&[Write], "`git worktree` changes worktrees"),
        },
        "push" => {
            if has(&[
                "-f",
                "--force",
                "--force-with-lease",
                "--force-if-includes",
                "--delete",
                "-d",
                "--mirror",
                "--prune",
            ]) || t.iter().any(|a| a.starts_with('+') || a.starts_with(':') || a.starts_with("--force"))
                || t.iter().any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('f'))
            {
                v(&[Destructive], "`git push` that overwrites or deletes remote history")
            } else {
                v(&[Write], "`git push`")
            }
        }
        "reset" => {
            if has(&["--hard", "--merge", "--keep"]) {
                v(&[Destructive], "`git reset --hard` discards work")
            } else {
                v(&[Write], "`git reset`")
            }
        }
        "clean" => {
            if has(&["-n", "--dry-run"]) && !has(&["-f", "--force"]) {
                read("dry run")
            } else {
                v(&[Destructive], "`git clean` deletes untracked files")
            }
        }
        "checkout" | "switch" => {
            if has(&["-f", "--force", "--discard-changes", "--", "."])
                || ops.contains(&".")
                || t.contains(&"--")
                || (sub == "checkout" && ops.len() > 1 && !has(&["-b", "-B"]))
            {
                v(&[Destructive], format!("`git {sub}` discards local changes"))
            } else {
                v(&[Write], format!("`git {sub}`"))
            }
        }
        "restore" => {
            if has(&["--staged", "-S"]) && !has(&["--worktree", "-W"]) {
                v(&[Write], "`git restore --staged`")
            } else {
                v(&[Destructive], "`git restore` discards local changes")
            }
        }
        "rm" | "prune" => v(&[Destructive], format!("`git {sub}` deletes")),
        "gc" => {
            if t.iter().any(|a| a.starts_with("--prune")) {
                v(&[Destructive], "`git gc --prune`")
            } else {
                v(&[Write], "`git gc`")
            }
        }
        "reflog" => match first {
            None | Some("show") => read("shows the reflog"),
            _ => v(&[Destructive], "`git reflog` expires history"),
        },
        "rebase" => {
            if has(&["-i", "--interactive", "-x", "--exec"]) {
                v(&[Unknown], "`git rebase -i/--exec` runs an editor or commands")
            } else {
                v(&[Write], "`git rebase`")
            }
        }
        "add" | "commit" | "fetch" | "pull" | "merge" | "init" | "clone" | "mv" | "cherry-pick" | "revert" | "am"
        | "apply" | "notes" | "archive" | "bundle" => {
            let mut classes = Classes::from(Write) | outputs;
            if sub == "bundle"
                && first == Some("create")
                && let Some(file) = ops.get(1)
            {
                classes |= paths::write_path(ctx, file);
            }
            if sub == "clone" {
                // The checkout lands in DIR, or in a directory named after the URL.
                match ops.get(1) {
                    Some(dir) => classes |= paths::write_into_path(ctx, dir),
                    None => {
                        let name = first.and_then(|u| u.trim_end_matches('/').rsplit(['/', ':']).next()).unwrap_or(".");
                        classes |= paths::write_into_path(ctx, name.strip_suffix(".git").unwrap_or(name));
                    }
                }
            }
            Verdict { classes, reason: format!("`git {sub}` changes the repository") }
        }
        _ => v(&[Unknown], format!("`git {sub}` is not a known git command")),
    }
}

/// `docker` and `podman`: by subcommand.
pub(crate) fn docker(args: &[Word]) -> Verdict {
    let t = texts(args);
    let mut i = 0;
    while let Some(a) = t.get(i) {
        match *a {
            "-H" | "--host" | "--context" | "-c" | "--log-level" | "-l" => i += 1,
            _ if a.starts_with("--host=") || a.starts_with("--context=") || a.starts_with("--log-level=") => {}
            "--debug" | "-D" => {}
            _ => break,
        }
        i += 1;
    }
    let rest: Vec<&str> = t.get(i..).unwrap_or_default().to_vec();
    let mut words = rest.iter().copied();
    let mut sub = words.next().unwrap_or("");
    let verb = words.find(|a| !a.starts_with('-')).unwrap_or("");
    if matches!(sub, "container" | "image" | "volume" | "network" | "system" | "builder" | "compose") {
        sub = match (sub, verb) {
            ("compose", "down") => "rm",
            ("compose", "ps" | "logs" | "config" | "ls" | "images" | "top" | "version") => "ps",
            ("compose", "up" | "run" | "exec" | "start" | "create") => "run",
            ("compose", "pull" | "build" | "push" | "restart" | "stop") => verb,
            (_, "ls" | "list" | "inspect" | "df" | "info" | "history" | "events") => "ps",
            (_, "rm" | "remove" | "prune" | "rmi" | "kill" | "stop") => "rm",
            (_, other) => other,
        };
    }
    match sub {
        "ps" | "logs" | "inspect" | "images" | "version" | "info" | "stats" | "top" | "port" | "diff" | "history"
        | "events" | "search" | "--version" => v(&[Read], format!("`docker {sub}` reads")),
        "rm" | "rmi" | "kill" | "stop" | "prune" | "restart" => {
            v(&[Destructive], format!("`docker {sub}` removes or stops"))
        }
        "run" | "create" => v(&[Admin], "`docker run` starts a container that may reach the host"),
        "exec" | "attach" | "cp" | "login" | "debug" => {
            v(&[Unknown], format!("`docker {sub}` runs or moves things the line does not show"))
        }
        "build" | "pull" | "push" | "tag" | "commit" | "load" | "import" | "save" | "start" | "pause" | "unpause"
        | "rename" | "update" | "create-volume" => v(&[Write], format!("`docker {sub}`")),
        _ => v(&[Unknown], format!("`docker {sub}` is not known")),
    }
}

/// `kubectl`: by verb.
pub(crate) fn kubectl(args: &[Word]) -> Verdict {
    let t = texts(args);
    let valued = [
        "-n",
        "--namespace",
        "--context",
        "--kubeconfig",
        "-o",
        "--output",
        "-l",
        "--selector",
        "-c",
        "--container",
        "--cluster",
        "--user",
        "-f",
        "--filename",
        "-s",
        "--server",
        "--as",
        "--as-group",
        "--token",
    ];
    let flags = ["-A", "--all-namespaces", "-w", "--watch", "--no-headers", "--show-labels", "--all", "-h", "--help"];
    let mut ops = Vec::new();
    let mut i = 0;
    while let Some(a) = t.get(i) {
        let name = a.split_once('=').map_or(*a, |(n, _)| n);
        if valued.contains(a) {
            i += 1;
        } else if !a.starts_with('-') {
            ops.push(*a);
        } else if ops.is_empty() && !(flags.contains(a) || (a.contains('=') && valued.contains(&name))) {
            // An option kubectl takes with a value would hide the verb behind it.
            return v(&[Unknown], format!("`kubectl` option `{a}` before the verb"));
        }
        i += 1;
    }
    if t.iter().any(|a| a.starts_with("--kubeconfig") || a.starts_with("--exec")) {
        return v(&[Unknown], "a kubeconfig can name a program kubectl runs");
    }
    if t.iter().any(|a| {
        *a == "--as"
            || a.starts_with("--as=")
            || a.starts_with("--as-group")
            || *a == "--token"
            || a.starts_with("--token=")
    }) {
        return v(&[Privilege, Unknown], "`kubectl --as` impersonates");
    }
    let verb = ops.first().copied().unwrap_or("");
    match verb {
        "get" | "describe" | "logs" | "top" | "explain" | "version" | "api-resources" | "api-versions"
        | "cluster-info" | "events" | "wait" | "diff" => v(&[Read], format!("`kubectl {verb}` reads")),
        "config" => match ops.get(1).copied() {
            Some("view" | "get-contexts" | "current-context" | "get-clusters" | "get-users") => {
                v(&[Read], "`kubectl config` reads")
            }
            _ => v(&[Write], "`kubectl config` changes the kubeconfig"),
        },
        "auth" => {
            if ops.get(1) == Some(&"can-i") || ops.get(1) == Some(&"whoami") {
                v(&[Read], "`kubectl auth can-i`")
            } else {
                v(&[Unknown], "`kubectl auth`")
            }
        }
        "delete" | "drain" => v(&[Destructive], format!("`kubectl {verb}` removes")),
        "apply" | "replace" if t.iter().any(|a| a.starts_with("--prune") || a.starts_with("--force")) => {
            v(&[Destructive], "`kubectl apply --prune/--force` deletes")
        }
        "apply" | "create" | "scale" | "patch" | "label" | "annotate" | "set" | "rollout" | "edit" | "replace"
        | "autoscale" | "expose" | "cordon" | "uncordon" | "taint" => {
            v(&[Write], format!("`kubectl {verb}` changes objects"))
        }
        "run" => v(&[Admin], "`kubectl run` starts a pod"),
        "exec" | "attach" | "cp" | "debug" | "port-forward" | "proxy" | "plugin" => {
            v(&[Unknown], format!("`kubectl {verb}` runs or moves things the line does not show"))
        }
        _ => v(&[Unknown], format!("`kubectl {verb}` is not known")),
    }
}

/// `psql`: the SQL it is given is judged by the SQL classifier; SQL it reads from a file
/// or from input the line does not show is unknown.
pub(crate) fn psql(ctx: &mut Ctx<'_>, args: &[Word], stdin: &Stdin) -> Verdict {
    const PSQL: Spec = Spec {
        short: "aAbc:d:eEf:F:h:HlL:no:p:P:qR:sStT:U:v:VwWxXz0?1",
        long: "a|echo-all A|no-align b|echo-errors c|command= d|dbname= e|echo-queries E|echo-hidden f|file= \
            F|field-separator= h|host= H|html l|list L|log-file= n|no-readline o|output= p|port= P|pset= \
            q|quiet R|record-separator= s|single-step S|single-line t|tuples-only T|table-attr= U|username= \
            v|set= variable= V|version w|no-password W|password x|expanded X|no-psqlrc z|field-separator-zero \
            0|record-separator-zero 1|single-transaction csv help?",
    };
    let split = match opts::parse(args, &PSQL) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`psql`: {e}")),
    };
    let known = [
        "command",
        "dbname",
        "file",
        "host",
        "port",
        "username",
        "set",
        "variable",
        "no-psqlrc",
        "no-align",
        "tuples-only",
        "quiet",
        "no-password",
        "password",
        "single-transaction",
        "list",
        "expanded",
        "pset",
        "field-separator",
        "echo-queries",
        "echo-hidden",
        "echo-all",
        "echo-errors",
        "no-readline",
        "single-line",
        "csv",
        "version",
        "html",
        "record-separator",
        "field-separator-zero",
        "record-separator-zero",
    ];
    if let Some(o) = split.opts.iter().find(|o| !known.contains(&o.name.as_str())) {
        return v(&[Unknown], format!("`psql` option `{}`", o.name));
    }
    let mut classes = Classes::NONE;
    let judge = |ctx: &mut Ctx<'_>, text: &str| {
        let meta = if text.contains('\\') { Classes::from(Unknown) } else { Classes::NONE };
        meta | (ctx.sql)(text)
    };
    let commands: Vec<String> = split.values(&["command"]).map(str::to_string).collect();
    for c in &commands {
        classes |= judge(ctx, c);
    }
    let files: Vec<&str> = split.values(&["file"]).collect();
    let stdin_sql = files.contains(&"-") || (commands.is_empty() && files.is_empty());
    for f in &files {
        if *f != "-" {
            classes |= Unknown.into();
        }
    }
    if split.has(&["list", "version"]) && commands.is_empty() && files.is_empty() {
        return v(&[Read], "`psql -l` lists databases");
    }
    if stdin_sql {
        match stdin {
            Stdin::Text(Some(text)) => classes |= judge(ctx, text),
            _ => classes |= Unknown.into(),
        }
    }
    if classes.is_empty() {
        classes = Unknown.into();
    }
    Verdict { classes, reason: "`psql` runs SQL".into() }
}
