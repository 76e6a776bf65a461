//! Tools that read and write files with options that change everything: find, sed,
//! awk, tar, chmod and dd.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::opts::{self, Spec, listed};
use super::paths;
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
        if !w.is_literal() {
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
                    // `{}` alone is a path under a start point, never an option; inside
                    // a longer word it can be anything a file name holds.
                    if a.text == "{}" {
                        a.path = true;
                    } else if a.text.contains("{}") {
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

const SED: Spec = Spec {
    short: "Ee:f:i::l:nrsuz",
    long: "debug e|expression= f|file= follow-symlinks i|in-place? l|line-length= z|null-data z|zero-terminated \
        posix n|quiet r|regexp-extended sandbox s|separate n|silent u|unbuffered b|binary help version",
};

/// `sed`: read when every script provably has no `w`, `e`, `r` or in-place editing.
pub(crate) fn sed(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let p = match opts::parse(args, &SED) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`sed`: {e}")),
    };
    if p.has(&["file"]) {
        return v(&[Unknown], "`sed -f` runs a script the line does not show");
    }
    let mut scripts: Vec<String> = p.values(&["expression"]).map(str::to_string).collect();
    let mut files = p.operands.iter();
    if scripts.is_empty() {
        match files.next() {
            Some(w) if !w.is_literal() => return v(&[Unknown], "`sed` script is not literal"),
            Some(w) => scripts.push(w.text.clone()),
            None => return v(&[Unknown], "`sed` without a script"),
        }
    }
    if let Some(bad) = scripts.iter().find(|s| !sed_script_reads(s)) {
        return v(&[Unknown], format!("`sed` script `{bad}` may write files or run commands"));
    }
    if p.has(&["in-place"]) {
        let mut classes = Classes::from(Write);
        let suffix = p.values(&["in-place"]).next().unwrap_or("");
        if suffix.contains(['/', '*']) {
            // `-i'DIR/*'` copies each file to a path built from the suffix.
            return v(&[Write, Unknown], "`sed -i` backs files up to a path it builds");
        }
        for f in files {
            classes |= paths::write_target(ctx, f);
            if !suffix.is_empty() {
                classes |= paths::write_path(ctx, &format!("{}{suffix}", f.text));
            }
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

/// awk's options, gawk's included: only `-F` and `-v` are accepted.
const AWK: Spec = Spec {
    short: "F:f:v:bcCd::D::e:E:ghi:l:L::nNo::Op::MPrSstVYZ:",
    long: "F|field-separator= f|file= v|assign= b|characters-as-bytes c|traditional C|copyright \
        d|dump-variables? D|debug? e|source= E|exec= g|gen-pot h|help i|include= l|load= L|lint? \
        n|non-decimal-data N|use-lc-numeric o|pretty-print? O|optimize p|profile? M|bignum P|posix \
        r|re-interval S|sandbox s|no-optimize t|lint-old V|version Y|csv Z|locale=",
};

/// `awk`: read when the program cannot run commands or write files.
pub(crate) fn awk(args: &[Word]) -> Verdict {
    let p = match opts::parse_until(args, &AWK, 0) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`awk`: {e}")),
    };
    if let Some(o) = p.other(&["field-separator", "assign", "sandbox"]) {
        return v(&[Unknown], format!("`awk` option `{}`", o.name));
    }
    let Some(program) = args.get(p.rest) else {
        return v(&[Unknown], "`awk` without a program");
    };
    if !program.is_literal() {
        return v(&[Unknown], "`awk` program is not literal");
    }
    let prog = program.text.as_str();
    let risky = ["system", "getline", "close", "fflush", "|", ">", "@", "ENVIRON", "PROCINFO"];
    if let Some(r) = risky.iter().find(|r| prog.contains(*r)) {
        return v(&[Unknown], format!("`awk` program uses `{r}`"));
    }
    v(&[Read], "`awk` program only prints")
}

/// GNU tar's options (1.34), every one, so that prefixes resolve as tar resolves them.
const TAR: Spec = Spec {
    short: "ABC:F:GH:I:JK:L:MN:OPRST:UV:WX:Zab:cdf:g:hijklmnoprstuvwxz",
    long: "P|absolute-names acls add-file= after-date= anchored r|append atime-preserve? a|auto-compress backup? \
        R|block-number b|blocking-factor= j|bzip2 A|catenate check-device l|check-links checkpoint? \
        checkpoint-action= clamp-mtime compare compress concatenate confirmation c|create \
        delay-directory-restore delete h|dereference d|diff C|directory= exclude= exclude-backups \
        exclude-caches exclude-caches-all exclude-caches-under X|exclude-from= exclude-ignore= \
        exclude-ignore-recursive= exclude-tag= exclude-tag-all= exclude-tag-under= exclude-vcs \
        exclude-vcs-ignores x|extract f|file= T|files-from= force-local H|format= full-time get group= \
        group-map= gunzip z|gzip hard-dereference help hole-detection= ignore-case ignore-command-error \
        ignore-failed-read i|ignore-zeros G|incremental index-file= F|info-script= w|interactive \
        keep-directory-symlink keep-newer-files k|keep-old-files V|label= level= t|list g|listed-incremental= \
        lzip lzma lzop mode= mtime= M|multi-volume new-volume-script= N|newer= newer-mtime= no-acls \
        no-anchored no-auto-compress no-check-device no-delay-directory-restore no-ignore-case \
        no-ignore-command-error no-null no-overwrite-dir no-quote-chars= no-recursion no-same-owner \
        no-same-permissions no-seek no-selinux no-unquote no-verbatim-files-from no-wildcards \
        no-wildcards-match-slash no-xattrs null numeric-owner occurrence? o|old-archive one-file-system \
        one-top-level? overwrite overwrite-dir owner= owner-map= pax-option= portability posix preserve \
        preserve-order p|preserve-permissions quote-chars= quoting-style= B|read-full-records record-size= \
        recursion recursive-unlink remove-files restrict rmt-command= rsh-command= s|same-order same-owner \
        same-permissions n|seek selinux show-defaults show-omitted-dirs show-snapshot-field-ranges \
        show-stored-names show-transformed-names skip-old-files sort= S|sparse sparse-version= \
        K|starting-file= strip-components= suffix= L|tape-length= test-label to-command= O|to-stdout totals? \
        m|touch transform= uncompress ungzip U|unlink-first unquote u|update usage I|use-compress-program= \
        utc verbatim-files-from v|verbose W|verify version volno-file= warning= wildcards \
        wildcards-match-slash xattrs xattrs-exclude= xattrs-include= xform= J|xz zstd Z|uncompress",
};

/// tar options that run a program, write outside the target directory or ask for input.
const TAR_RUNS: &str = "to-command checkpoint-action use-compress-program rsh-command rmt-command info-script new-volume-script \
    absolute-names volno-file interactive confirmation multi-volume";

/// `tar`: listing reads; extracting or creating writes; options that run programs are unknown.
pub(crate) fn tar(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let words = opts::old_style(args, &TAR);
    let p = match opts::parse(&words, &TAR) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`tar`: {e}")),
    };
    if let Some(o) = p.opts.iter().find(|o| listed(TAR_RUNS, &o.name)) {
        return v(&[Unknown], format!("`tar --{}` runs a program or writes outside", o.name));
    }
    if !p.has(&["force-local"]) && p.values(&["file"]).any(|f| f.contains(':')) {
        return v(&[Unknown], "`tar -f HOST:FILE` runs a remote shell");
    }
    let extract = p.has(&["extract", "get"]);
    let archive_written = p.has(&["create", "append", "update", "catenate", "concatenate", "delete"]);
    if !extract && !archive_written {
        if p.has(&["list", "diff", "compare", "test-label"]) {
            return v(&[Read], "`tar -t` lists");
        }
        return v(&[Unknown], "`tar` without a known operation");
    }
    if extract && !archive_written && p.has(&["to-stdout"]) {
        return v(&[Read], "`tar -xO` prints members");
    }
    let mut classes = Classes::from(Write);
    if p.has(&["remove-files"]) {
        classes |= Destructive.into();
    }
    for f in p.values(&["listed-incremental", "index-file"]) {
        classes |= paths::write_path(ctx, f);
    }
    if archive_written {
        for f in p.values(&["file"]) {
            if f != "-" {
                classes |= paths::write_path(ctx, f);
            }
        }
    }
    if extract && !p.has(&["to-stdout"]) {
        // Members land under -C (each -C applies to what follows; all are checked), or
        // in the current directory, under names the line does not show.
        let dirs: Vec<&str> = p.values(&["directory"]).collect();
        let top = p.values(&["one-top-level"]).next();
        if dirs.is_empty() {
            classes |= paths::write_into_path(ctx, top.unwrap_or("."));
        }
        for dir in dirs {
            classes |= paths::write_into_path(ctx, dir);
        }
    }
    Verdict { classes, reason: "`tar` creates or extracts files".into() }
}

/// `chmod`, `chown`, `chgrp`.
pub(crate) fn chmod(ctx: &mut Ctx<'_>, n: &str, args: &[Word]) -> Verdict {
    const CHMOD: Spec = Spec {
        short: "HLPRcfhvrwxXstugoa",
        long: "c|changes dereference from= h|no-dereference no-preserve-root preserve-root quiet f|silent \
            R|recursive reference= v|verbose help version",
    };
    // `chmod -x file` and `chmod -rwx` are modes that look like options.
    let p = match opts::parse(args, &CHMOD) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`{n}`: {e}")),
    };
    let mut classes = Classes::from(Write);
    if p.has(&["recursive"]) {
        classes |= Destructive.into();
    }
    let mut operands = p.operands.iter();
    let mode_as_option = p
        .opts
        .iter()
        .any(|o| matches!(o.name.as_str(), "-r" | "-w" | "-x" | "-X" | "-s" | "-t" | "-u" | "-g" | "-o" | "-a"));
    if !p.has(&["reference"]) && !mode_as_option {
        match operands.next() {
            Some(m) if n == "chmod" && setuid_mode(&m.text) => classes |= Privilege.into(),
            Some(_) => {}
            None => return v(&[Unknown], format!("`{n}` without a mode")),
        }
    }
    if n == "chmod" && p.has(&["-s"]) {
        classes |= Privilege.into();
    }
    for f in operands {
        classes |= paths::write_target(ctx, f);
    }
    Verdict { classes, reason: format!("`{n}` changes permissions") }
}

/// `dd`: writing with `of=` is destructive (it overwrites in place).
pub(crate) fn dd(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let mut classes = Classes::from(Read);
    for w in args {
        if !w.is_literal() {
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
