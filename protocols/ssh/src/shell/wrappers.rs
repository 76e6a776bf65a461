//! Commands that run the command given as their arguments (`sudo`, `env`, `timeout`,
//! `xargs`, `watch`, `flock`...) and the shells (`sh -c STRING`). Their own options are
//! parsed with [`opts`] like getopt does, stopping where the wrapped command starts; an
//! option they are not known to take is `unknown`, as are options that split a string
//! into a command (`env -S`), run a shell from input (`sudo -s`) or act on other
//! processes (`ionice -p`).

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::opts::{self, Spec};
use super::rules::{self, env_var_ok, v};
use super::{Ctx, Stdin, Verdict, paths};

use Class::{Admin, Privilege, Read, Unknown};

/// How one wrapper is read: its options, the operands before the command, and what it
/// adds to the command's classes.
struct Wrapper {
    spec: Spec,
    operands: usize,
    assigns: bool,
    extra: &'static [Class],
}

const fn w(short: &'static str, long: &'static str, operands: usize) -> Wrapper {
    Wrapper { spec: Spec { short, long }, operands, assigns: false, extra: &[] }
}

fn wrapper(n: &str) -> Option<Wrapper> {
    Some(match n {
        "sudo" => Wrapper {
            spec: Spec {
                short: "Aa:BbC:c:D:Eeg:Hh::iKklNnPp:R:r:SsT:t:U:u:Vv",
                long: "A|askpass a|auth-type= B|bell b|background C|close-from= D|chdir= E|preserve-env? e|edit \
                    g|group= H|set-home help host= i|login K|remove-timestamp k|reset-timestamp l|list \
                    N|no-update n|non-interactive P|preserve-groups p|prompt= R|chroot= r|role= S|stdin \
                    s|shell t|type= T|command-timeout= U|other-user= u|user= V|version v|validate",
            },
            operands: 0,
            assigns: true,
            extra: &[Privilege],
        },
        "doas" => Wrapper { extra: &[Privilege], ..w("nsu:C:", "", 0) },
        "pkexec" => Wrapper { extra: &[Privilege], ..w("", "disable-internal-agent keep-cwd user=", 0) },
        "env" => Wrapper {
            assigns: true,
            ..w(
                "0C:S:iu:v",
                "0|null C|chdir= S|split-string= i|ignore-environment u|unset= v|debug block-signal? default-signal? ignore-signal? list-signal-handling a|argv0=",
                0,
            )
        },
        "nohup" | "builtin" | "unbuffer" => w("", "", 0),
        "setsid" => w("cfw", "c|ctty f|fork w|wait", 0),
        "exec" => w("cla:", "", 0),
        "command" => w("pvV", "", 0),
        "timeout" => w("k:s:v", "foreground k|kill-after= preserve-status s|signal= v|verbose", 1),
        "nice" => w("n:", "n|adjustment=", 0),
        "ionice" => w("c:n:tp:P:u:", "c|class= n|classdata= t|ignore p|pid= P|pgid= u|uid=", 0),
        "stdbuf" => w("e:i:o:", "e|error= i|input= o|output=", 0),
        "time" => w("o:af:pvq", "o|output= a|append f|format= p|portability v|verbose q|quiet", 0),
        "chronic" => w("ev", "", 0),
        "taskset" => w("acp", "a|all-tasks c|cpu-list p|pid", 1),
        "flock" => w(
            "E:Fc:nosuw:x",
            "o|close c|command= E|conflict-exit-code= x|exclusive F|no-fork n|nonblock s|shared w|timeout= u|unlock verbose",
            1,
        ),
        "watch" => w(
            "bcCd::egn:ptwxq:",
            "b|beep c|color C|no-color d|differences? e|errexit g|chgexit n|interval= p|precise t|no-title w|no-wrap x|exec q|equexit= no-linewrap",
            0,
        ),
        _ => return None,
    })
}

/// Commands that run the command given as their arguments.
pub(crate) fn prefix(ctx: &mut Ctx<'_>, n: &str, args: &[Word], stdin: &Stdin, depth: usize) -> Option<Verdict> {
    match n {
        "xargs" => return Some(xargs(ctx, args, depth)),
        "su" | "runuser" => return Some(su(ctx, n, args, depth)),
        "busybox" => return Some(rules::run(ctx, args, stdin, depth + 1)),
        _ => {}
    }
    let spec = wrapper(n)?;
    let extra = Classes::of(spec.extra);
    // `nice -5 cmd` and `env - cmd` are old spellings of `-n 5` and `-i`.
    let skip = usize::from(
        (n == "nice"
            && args.first().is_some_and(|a| {
                a.text.strip_prefix('-').is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            }))
            || (n == "env" && args.first().is_some_and(|a| a.text == "-")),
    );
    let args = args.get(skip..).unwrap_or_default();
    let parsed = match opts::parse_until(args, &spec.spec, spec.operands) {
        Ok(p) => p,
        Err(e) => return Some(v(&[Unknown], format!("`{n}`: {e}")).with(extra)),
    };
    let mut at = parsed.rest;
    if spec.assigns {
        while let Some(a) = args.get(at).filter(|a| is_assignment(&a.text)) {
            let name = a.text.split_once('=').map_or("", |(n, _)| n);
            if !env_var_ok(name) || !a.is_literal() {
                return Some(v(&[Unknown], format!("`{n}` sets `{name}` for the command")).with(extra));
            }
            at += 1;
        }
    }
    let rest = args.get(at..).unwrap_or_default();
    let mut classes = extra;
    let refuse = |why: &str| Some(v(&[Unknown], format!("`{n}` {why}")).with(extra));
    match n {
        "sudo" => {
            if parsed.has(&["edit"]) {
                return refuse("-e edits files as root");
            }
            if parsed.opts.iter().any(|o| {
                o.name == "preserve-env" && o.value.as_deref().is_none_or(|v| v.split(',').any(|n| !env_var_ok(n)))
            }) {
                // Whatever the session's environment holds would reach root's command.
                classes |= Unknown.into();
            }
            if parsed.has(&["chroot", "close-from"]) {
                return refuse("option changes what runs");
            }
            if rest.is_empty() && parsed.has(&["list", "validate", "reset-timestamp", "remove-timestamp"]) {
                return Some(v(&[Privilege, Read], "`sudo` lists or refreshes rights"));
            }
            if rest.is_empty() && parsed.has(&["shell", "login"]) {
                ctx.runs_code = true;
                return refuse("opens a root shell reading input");
            }
        }
        "env" if parsed.has(&["split-string", "argv0", "block-signal", "default-signal", "ignore-signal"]) => {
            return refuse("-S splits a string into a command line the classifier does not read");
        }
        "ionice" | "taskset" if parsed.has(&["pid", "pgid", "uid"]) => {
            return Some(v(&[Admin], format!("`{n}` changes running processes")));
        }
        "command" if parsed.has(&["-v", "-V"]) => return Some(v(&[Read], "`command -v` looks a name up")),
        "time" => {
            for out in parsed.values(&["output"]) {
                classes |= paths::write_path(ctx, out);
            }
        }
        "flock" => {
            if let Some(lock) = parsed.operands.first() {
                // flock creates its lock file when it is missing.
                classes |= paths::write_target(ctx, lock).without(Class::Write);
            }
            if let Some(script) = parsed.values(&["command"]).next() {
                let script = script.to_string();
                classes |= ctx.line(&script, depth + 1);
                return Some(Verdict { classes, reason: "`flock -c` runs its string".into() });
            }
        }
        "watch" if !parsed.has(&["exec"]) => {
            // watch joins its arguments and hands them to `sh -c`.
            if rest.iter().any(|a| !a.is_literal()) {
                return refuse("command is not plain");
            }
            let joined: Vec<&str> = rest.iter().map(|a| a.text.as_str()).collect();
            classes |= ctx.line(&joined.join(" "), depth + 1);
            return Some(Verdict { classes, reason: "`watch` runs its command repeatedly".into() });
        }
        _ => {}
    }
    if parsed.has(&["chdir", "-C", "-D"]) {
        // Relative paths now resolve somewhere the classifier does not follow.
        ctx.cwd = None;
    }
    if rest.is_empty() {
        let verdict = match n {
            "env" | "nice" | "time" | "exec" | "command" | "builtin" => v(&[Read], format!("`{n}` alone only reads")),
            "flock" => v(&[Read], "`flock` on a descriptor"),
            _ => v(&[Unknown], format!("`{n}` with no command")),
        };
        return Some(verdict.with(classes));
    }
    let inner = rules::run(ctx, rest, stdin, depth + 1);
    Some(Verdict { classes: inner.classes | classes, reason: format!("`{n}`: {}", inner.reason) })
}

fn is_assignment(t: &str) -> bool {
    t.split_once('=').is_some_and(|(name, _)| {
        let mut cs = name.chars();
        cs.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
    })
}

/// `su`/`runuser`: only `-c STRING` (or `-u USER CMD` for runuser) is followed.
fn su(ctx: &mut Ctx<'_>, n: &str, args: &[Word], depth: usize) -> Verdict {
    let spec = Spec {
        short: "c:C:fg:G:lmpPs:u:w:",
        long: "c|command= C|session-command= f|fast g|group= G|supp-group= l|login m|preserve-environment p \
            P|pty s|shell= w|whitelist-environment= u|user=",
    };
    let parsed = match opts::parse(args, &spec) {
        Ok(p) => p,
        Err(e) => return v(&[Privilege, Unknown], format!("`{n}`: {e}")),
    };
    if parsed.values(&["shell"]).any(|s| !matches!(s, "/bin/sh" | "/bin/bash" | "/usr/bin/bash" | "/bin/dash")) {
        return v(&[Privilege, Unknown], format!("`{n}` with an unusual shell"));
    }
    let users = parsed.operands.iter().filter(|w| w.text != "-").count();
    let scripts: Vec<String> = parsed.values(&["command", "session-command"]).map(str::to_string).collect();
    if scripts.is_empty() || users > 1 || parsed.has(&["user"]) {
        ctx.runs_code = true;
        return v(&[Privilege, Unknown], format!("`{n}` opens a shell or passes it arguments"));
    }
    let mut classes = Classes::from(Privilege);
    for s in scripts {
        classes |= ctx.line(&s, depth + 1);
    }
    Verdict { classes, reason: format!("`{n} -c` runs a command as another user") }
}

/// `xargs CMD ARGS`: CMD runs with words from input appended (or put where `-I`'s
/// string is). Those words can be anything, options included.
fn xargs(ctx: &mut Ctx<'_>, args: &[Word], depth: usize) -> Verdict {
    let spec = Spec {
        short: "0E:I:L:P:a:d:e::i::l::n:oprs:tx",
        long: "a|arg-file= d|delimiter= e|eof? x|exit p|interactive n|max-args= s|max-chars= L|max-lines= \
            P|max-procs= r|no-run-if-empty 0|null o|open-tty process-slot-var= i|replace? show-limits \
            t|verbose",
    };
    let parsed = match opts::parse_until(args, &spec, 0) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`xargs`: {e}")),
    };
    let replace = parsed
        .opts
        .iter()
        .find(|o| o.name == "-I" || o.name == "replace")
        .map(|o| o.value.clone().unwrap_or_else(|| "{}".to_string()));
    let mut cmd: Vec<Word> = args.get(parsed.rest..).unwrap_or_default().to_vec();
    if cmd.is_empty() {
        return v(&[Read], "`xargs` echoes its input");
    }
    match &replace {
        Some(r) => {
            for w in cmd.iter_mut() {
                if w.text.contains(r.as_str()) {
                    w.opaque = true;
                }
            }
        }
        None => cmd.push(Word::opaque("{input}")),
    }
    let inner = rules::run(ctx, &cmd, &Stdin::Pipe, depth + 1);
    Verdict { classes: inner.classes, reason: format!("`xargs`: {}", inner.reason) }
}

/// `sh -c STRING`, `bash script`, `bash` reading stdin.
pub(crate) fn shell(ctx: &mut Ctx<'_>, n: &str, args: &[Word], depth: usize) -> Verdict {
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
                // The string is the first operand after the options, not the next word.
                let Some(script) = iter.next() else {
                    return v(&[Unknown], format!("`{n} -c` without a string"));
                };
                if !script.is_literal() || script.text.starts_with(['-', '+']) {
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
