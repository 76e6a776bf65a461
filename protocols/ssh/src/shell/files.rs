//! Tools that read and write files with options that change everything: find, sed,
//! awk, tar, chmod and dd.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::paths::{self, split_opts};
use super::rules::{self, setuid_mode};
use super::{Ctx, Stdin, Verdict};

use Class::{Destructive, Privilege, Read, Unknown, Write};

fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
    Verdict::new(classes, reason)
}

/// find's tests and options that take one argument.
const FIND_VALUED: &[&str] = &[
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-wholename",
    "-iwholename",
    "-regex",
    "-iregex",
    "-regextype",
    "-type",
    "-xtype",
    "-size",
    "-mtime",
    "-mmin",
    "-atime",
    "-amin",
    "-ctime",
    "-cmin",
    "-newer",
    "-anewer",
    "-cnewer",
    "-user",
    "-group",
    "-uid",
    "-gid",
    "-perm",
    "-links",
    "-inum",
    "-samefile",
    "-maxdepth",
    "-mindepth",
    "-printf",
    "-used",
    "-fstype",
    "-lname",
    "-ilname",
    "-context",
    "-files0-from",
];

/// find's tests and options without an argument.
const FIND_FLAGS: &[&str] = &[
    "-print",
    "-print0",
    "-ls",
    "-prune",
    "-quit",
    "-not",
    "!",
    "-a",
    "-and",
    "-o",
    "-or",
    "(",
    ")",
    ",",
    "-true",
    "-false",
    "-readable",
    "-writable",
    "-executable",
    "-daystart",
    "-noleaf",
    "-ignore_readdir_race",
    "-noignore_readdir_race",
    "-nouser",
    "-nogroup",
    "-empty",
    "-depth",
    "-xdev",
    "-mount",
    "-follow",
    "-help",
    "--help",
    "-version",
    "--version",
    "-warn",
    "-nowarn",
];

/// `find`: read, unless it deletes, writes a file or runs a command.
pub(crate) fn find(ctx: &mut Ctx<'_>, args: &[Word], depth: usize) -> Verdict {
    let mut classes = Classes::from(Read);
    let mut reason = "`find` lists files".to_string();
    let mut i = 0;
    while let Some(w) = args.get(i) {
        i += 1;
        let t = w.text.as_str();
        if w.injectable() {
            return v(&[Unknown], format!("`find` argument `{t}` may expand into tests"));
        }
        if !(t.starts_with('-') || matches!(t, "!" | "(" | ")" | ",")) || matches!(t, "-H" | "-L" | "-P") {
            continue;
        }
        if FIND_FLAGS.contains(&t) || t.starts_with("-O") {
            continue;
        }
        let newer_xy =
            t.strip_prefix("-newer").is_some_and(|xy| xy.len() == 2 && xy.chars().all(|c| "aBcmt".contains(c)));
        if FIND_VALUED.contains(&t) || newer_xy || t == "-D" {
            i += 1;
            continue;
        }
        match t {
            "-delete" => {
                classes |= Destructive.into();
                reason = "`find -delete` removes files".into();
            }
            "-fprint" | "-fprint0" | "-fls" | "-fprintf" => {
                match args.get(i) {
                    Some(target) => classes |= paths::write_target(ctx, target),
                    None => classes |= Unknown.into(),
                }
                i += if t == "-fprintf" { 2 } else { 1 };
                reason = format!("`find {t}` writes a file");
            }
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let mut cmd = Vec::new();
                while let Some(a) = args.get(i) {
                    i += 1;
                    if a.text == ";" || a.text == "+" {
                        break;
                    }
                    let mut a = a.clone();
                    if a.text.contains("{}") {
                        a.opaque = true;
                    }
                    cmd.push(a);
                }
                if t.ends_with("dir") {
                    // The command runs in each match's directory.
                    ctx.cwd = None;
                }
                let inner = rules::run(ctx, &cmd, &Stdin::Channel, depth + 1);
                classes |= inner.classes;
                reason = format!("`find {t}`: {}", inner.reason);
            }
            _ => return v(&[Unknown], format!("`find` test `{t}` is not known")),
        }
    }
    Verdict { classes, reason }
}

/// `sed`: read when the script provably has no `w`, `e`, `r` or in-place editing.
pub(crate) fn sed(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let split = split_opts(args, "eflsE", &["expression", "file", "line-length"]);
    let t: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
    let in_place = split.has(&["-i", "--in-place"]) || t.iter().any(|a| a.starts_with("--in-place"));
    if split.injectable {
        return v(&[Unknown], "`sed` arguments may expand into options");
    }
    if let Some(o) = split.opts.iter().find(|o| {
        !matches!(
            o.name.as_str(),
            "-n" | "-r"
                | "-E"
                | "-u"
                | "-z"
                | "-s"
                | "-e"
                | "-i"
                | "-l"
                | "--quiet"
                | "--silent"
                | "--regexp-extended"
                | "--expression"
                | "--in-place"
                | "--null-data"
                | "--separate"
                | "--posix"
                | "--debug"
                | "--sandbox"
                | "--unbuffered"
                | "--line-length"
        )
    }) {
        return v(&[Unknown], format!("`sed` option `{}`", o.name));
    }
    let mut scripts: Vec<&str> = split.values(&["-e", "--expression"]).collect();
    let mut files = split.operands.iter();
    if scripts.is_empty() {
        match files.next() {
            Some(w) if !w.is_literal() => return v(&[Unknown], "`sed` script is not literal"),
            Some(w) => scripts.push(w.text.as_str()),
            None => return v(&[Unknown], "`sed` without a script"),
        }
    }
    if let Some(bad) = scripts.iter().find(|s| !sed_script_reads(s)) {
        return v(&[Unknown], format!("`sed` script `{bad}` may write files or run commands"));
    }
    if in_place {
        let mut classes = Classes::from(Write);
        for f in files {
            classes |= paths::write_target(ctx, f);
        }
        return Verdict { classes, reason: "`sed -i` edits files".into() };
    }
    v(&[Read], "`sed` prints")
}

/// Whether a sed script uses only commands that print or edit the pattern space.
fn sed_script_reads(script: &str) -> bool {
    let mut cs = script.chars().peekable();
    loop {
        while cs.next_if(|c| c.is_whitespace() || *c == ';').is_some() {}
        if cs.peek().is_none() {
            return true;
        }
        // Address: numbers, $, /re/, with an optional range and `!`.
        let mut saw_address = false;
        for _ in 0..2 {
            if cs.next_if(|c| c.is_ascii_digit()).is_some() {
                while cs.next_if(|c| c.is_ascii_digit() || *c == '~').is_some() {}
                saw_address = true;
            } else if cs.next_if_eq(&'$').is_some() {
                saw_address = true;
            } else if cs.next_if_eq(&'/').is_some() {
                if !skip_delimited(&mut cs, '/') {
                    return false;
                }
                while cs.next_if(|c| matches!(c, 'I' | 'M')).is_some() {}
                saw_address = true;
            }
            if saw_address && cs.next_if_eq(&',').is_some() {
                continue;
            }
            break;
        }
        while cs.next_if(|c| *c == '!' || *c == ' ').is_some() {}
        let Some(cmd) = cs.next() else { return false };
        match cmd {
            'p' | 'd' | 'D' | 'P' | 'n' | 'N' | 'h' | 'H' | 'g' | 'G' | 'x' | '=' | 'l' | 'z' | 'F' => {}
            'q' | 'Q' => while cs.next_if(|c| c.is_ascii_digit()).is_some() {},
            's' | 'y' => {
                let Some(delim) = cs.next() else { return false };
                if delim == '\\' || delim == '\n' || !skip_delimited(&mut cs, delim) || !skip_delimited(&mut cs, delim)
                {
                    return false;
                }
                if cmd == 's' {
                    while let Some(f) = cs.next_if(|c| !matches!(c, ';' | '\n' | '}' | ' ')) {
                        if !(f.is_ascii_digit() || matches!(f, 'g' | 'p' | 'i' | 'I' | 'm' | 'M')) {
                            return false;
                        }
                    }
                }
            }
            _ => return false,
        }
        while cs.next_if_eq(&' ').is_some() {}
        match cs.next() {
            None => return true,
            Some(';' | '\n') => {}
            Some(_) => return false,
        }
    }
}

fn skip_delimited(cs: &mut std::iter::Peekable<std::str::Chars<'_>>, delim: char) -> bool {
    while let Some(c) = cs.next() {
        if c == '\\' {
            if cs.next().is_none() {
                return false;
            }
        } else if c == delim {
            return true;
        } else if c == '\n' {
            return false;
        }
    }
    false
}

/// `awk`: read when the program cannot run commands or write files.
pub(crate) fn awk(args: &[Word]) -> Verdict {
    let split = split_opts(args, "Fv", &["field-separator", "assign"]);
    if split.injectable || split.operands.iter().any(|w| !w.is_static()) {
        return v(&[Unknown], "`awk` arguments are not plain");
    }
    if let Some(o) =
        split.opts.iter().find(|o| !matches!(o.name.as_str(), "-F" | "-v" | "--field-separator" | "--assign"))
    {
        return v(&[Unknown], format!("`awk` option `{}`", o.name));
    }
    let Some(program) = split.operands.first() else {
        return v(&[Unknown], "`awk` without a program");
    };
    if !program.is_literal() {
        return v(&[Unknown], "`awk` program is not literal");
    }
    let p = program.text.as_str();
    let risky = ["system", "getline", "close", "fflush", "|", ">", "@", "ENVIRON", "PROCINFO"];
    if let Some(r) = risky.iter().find(|r| p.contains(*r)) {
        return v(&[Unknown], format!("`awk` program uses `{r}`"));
    }
    v(&[Read], "`awk` program only prints")
}

/// `tar`: listing reads; extracting or creating writes; options that run programs are unknown.
pub(crate) fn tar(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    if args.iter().any(|w| w.injectable()) {
        return v(&[Unknown], "`tar` arguments may expand into options");
    }
    let t: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
    let runs = [
        "--to-command",
        "--checkpoint-action",
        "--use-compress-program",
        "--rsh-command",
        "--rmt-command",
        "--info-script",
        "--new-volume-script",
        "--absolute-names",
        "-I",
        "-F",
        "-P",
    ];
    if let Some(r) = t.iter().find(|a| runs.iter().any(|r| a.starts_with(r))) {
        return v(&[Unknown], format!("`tar {r}` runs a program or writes outside"));
    }
    let first = t.first().copied().unwrap_or("");
    let short = |c: char| {
        t.iter().any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(c))
            || (!first.starts_with('-') && first.contains(c))
    };
    if short('t') || t.contains(&"--list") {
        return v(&[Read], "`tar -t` lists");
    }
    let mut classes = Classes::from(Write);
    if t.iter().any(|a| a.starts_with("--remove-files")) {
        classes |= Destructive.into();
    }
    let split = split_opts(args, "fCTXbHKLNVg", &["file", "directory", "files-from", "exclude-from"]);
    let create = short('c') || t.contains(&"--create");
    let dirs: Vec<&str> = split.values(&["-C", "--directory"]).collect();
    if dirs.is_empty() && !create {
        classes |= paths::write_path(ctx, ".");
    }
    for dir in dirs {
        classes |= paths::write_path(ctx, dir);
    }
    if create {
        for f in split.values(&["-f", "--file"]) {
            if f != "-" {
                classes |= paths::write_path(ctx, f);
            }
        }
    }
    Verdict { classes, reason: "`tar` creates or extracts files".into() }
}

/// `curl`: a GET that prints is read; saving is write; sending data is unknown.
/// `wget`: saves a file unless told to print.
/// `rsync`, including the `--server` side a client starts over SSH.
/// `scp`: `-f` serves a download (read), `-t` receives an upload (write).
/// `chmod`, `chown`, `chgrp`.
pub(crate) fn chmod(ctx: &mut Ctx<'_>, n: &str, args: &[Word]) -> Verdict {
    let split = split_opts(args, "", &["reference", "from"]);
    let mut classes = Classes::from(Write);
    let recursive = split.has(&["-R", "--recursive"]);
    if recursive {
        classes |= Destructive.into();
    }
    let mut operands = split.operands.iter();
    let mode = if split.opts.iter().any(|o| o.name.starts_with("--reference")) { None } else { operands.next() };
    if let Some(m) = mode {
        if n == "chmod" && (setuid_mode(&m.text) || !m.is_literal()) {
            classes |= Privilege.into();
        }
        if !m.is_literal() {
            classes |= Unknown.into();
        }
    }
    // `chmod -s`, `chmod -x` and friends look like options.
    if n == "chmod" && split.opts.iter().any(|o| o.name == "-s") {
        classes |= Privilege.into();
    }
    for f in operands {
        classes |= paths::write_target(ctx, f);
    }
    if split.injectable {
        classes |= Unknown.into();
    }
    Verdict { classes, reason: format!("`{n}` changes permissions") }
}

/// `dd`: writing with `of=` is destructive (it overwrites in place).
pub(crate) fn dd(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let mut classes = Classes::from(Read);
    for w in args {
        if !w.is_static() {
            return v(&[Unknown], "`dd` operand is not plain");
        }
        let Some((key, value)) = w.text.split_once('=') else {
            return v(&[Unknown], format!("`dd` operand `{}`", w.text));
        };
        match key {
            "of" => {
                classes |= Destructive.into();
                classes |= paths::write_path(ctx, value);
            }
            "if" | "bs" | "ibs" | "obs" | "cbs" | "count" | "skip" | "seek" | "status" | "conv" | "iflag" | "oflag" => {
            }
            _ => return v(&[Unknown], format!("`dd` operand `{key}`")),
        }
    }
    Verdict { classes, reason: "`dd` copies blocks".into() }
}
