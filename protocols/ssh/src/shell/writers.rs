//! Commands that create or change files: cp, mv, ln, install, mkdir, touch, mktemp,
//! tee, split, csplit, patch, zip, unzip and the compressors. Each is parsed with its
//! real option table ([`opts`]), so an option the table does not know is `unknown`, and
//! every file or directory it writes (operands, `-t DIR`, prefixes, `-d DIR`) goes through
//! the same path checks as a `>` redirection. Writing names the line does not show into
//! a directory (extracting, copying a tree) is judged by [`paths::write_into`].

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::opts::{self, Parsed, Spec};
use super::rules::{setuid_mode, v};
use super::{Ctx, Verdict, paths};

use Class::{Destructive, Privilege, Read, Unknown, Write};

const CP: Spec = Spec {
    short: "HLPRS:TZabdfilnprst:uvx",
    long: "a|archive attributes-only backup? context? copy-contents debug L|dereference f|force i|interactive \
        keep-directory-symlink l|link n|no-clobber P|no-dereference no-preserve= T|no-target-directory \
        x|one-file-system parents preserve? r|recursive reflink? remove-destination sparse= \
        strip-trailing-slashes S|suffix= s|symbolic-link t|target-directory= u|update? v|verbose help version",
};

const MV: Spec = Spec {
    short: "S:TZbfint:uv",
    long: "backup? Z|context debug exchange f|force i|interactive n|no-clobber no-copy T|no-target-directory \
        strip-trailing-slashes S|suffix= t|target-directory= u|update? v|verbose help version",
};

const LN: Spec = Spec {
    short: "FLPS:Tbdfinrst:v",
    long: "backup? d|directory f|force i|interactive L|logical n|no-dereference T|no-target-directory P|physical \
        r|relative S|suffix= s|symbolic t|target-directory= v|verbose help version",
};

const INSTALL: Spec = Spec {
    short: "CDS:TZbcdg:m:o:pst:v",
    long: "backup? C|compare context? debug d|directory g|group= m|mode= T|no-target-directory o|owner= \
        preserve-context p|preserve-timestamps s|strip strip-program= S|suffix= t|target-directory= v|verbose \
        help version",
};

const MKDIR: Spec = Spec { short: "Zm:pv", long: "context? m|mode= p|parents v|verbose help version" };

const TOUCH: Spec =
    Spec { short: "acd:fhmr:t:", long: "d|date= c|no-create h|no-dereference r|reference= time= help version" };

const MKTEMP: Spec = Spec { short: "dp:qtu", long: "d|directory u|dry-run q|quiet suffix= p|tmpdir? help version" };

const TEE: Spec = Spec { short: "aip", long: "a|append i|ignore-interrupts output-error? help version" };

const SPLIT: Spec = Spec {
    short: "C:a:b:del:n:t:ux",
    long: "additional-suffix= b|bytes= e|elide-empty-files filter= hex-suffixes? C|line-bytes= l|lines= \
        n|number= d|numeric-suffixes? t|separator= a|suffix-length= u|unbuffered verbose help version",
};

const CSPLIT: Spec = Spec {
    short: "b:f:kn:sz",
    long: "n|digits= z|elide-empty-files k|keep-files f|prefix= quiet s|silent b|suffix-format= suppress-matched \
        help version",
};

const PATCH: Spec = Spec {
    short: "B:D:EF:NRTV:Y:Zbcd:efg:i:lno:p:r:stuvz:",
    long: "B|prefix= D|ifdef= E|remove-empty-files F|fuzz= N|forward R|reverse T|set-time V|version-control= \
        Y|basename-prefix= Z|set-utc b|backup c|context d|directory= e|ed f|force g|get= i|input= \
        l|ignore-whitespace n|normal o|output= p|strip= r|reject-file= s|quiet silent t|batch u|unified \
        v|version z|suffix= backup-if-mismatch binary dry-run help merge? no-backup-if-mismatch posix \
        quoting-style= read-only= reject-format= verbose follow-symlinks",
};

const GZIP: Spec = Spec {
    short: "123456789cdfklnNqrtv",
    long: "9|best d|decompress 1|fast f|force k|keep l|list N|name n|no-name q|quiet r|recursive c|stdout \
        to-stdout t|test v|verbose uncompress help version",
};

/// Classifies the file-writing commands; `None` for any other command.
pub(crate) fn run(ctx: &mut Ctx<'_>, n: &str, args: &[Word]) -> Option<Verdict> {
    let spec = match n {
        "cp" => &CP,
        "mv" => &MV,
        "ln" => &LN,
        "install" => &INSTALL,
        "mkdir" => &MKDIR,
        "touch" => &TOUCH,
        "mktemp" => &MKTEMP,
        "tee" => &TEE,
        "split" => &SPLIT,
        "csplit" => &CSPLIT,
        "patch" => &PATCH,
        "zip" => return Some(zip(ctx, args)),
        "unzip" => return Some(unzip(ctx, args)),
        "gzip" | "gunzip" | "bzip2" | "bunzip2" | "xz" | "unxz" | "zstd" | "unzstd" | "lz4" => &GZIP,
        _ => return None,
    };
    let p = match opts::parse(args, spec) {
        Ok(p) => p,
        Err(e) => return Some(v(&[Unknown], format!("`{n}`: {e}"))),
    };
    Some(match n {
        "tee" => {
            let mut classes = Classes::from(Read);
            for w in &p.operands {
                classes |= paths::write_target(ctx, w);
            }
            Verdict { classes, reason: "`tee` copies its input to files".into() }
        }
        "split" | "csplit" => split(ctx, n, &p),
        "patch" => patch(ctx, &p),
        "gzip" | "gunzip" | "bzip2" | "bunzip2" | "xz" | "unxz" | "zstd" | "unzstd" | "lz4" => compress(ctx, n, &p),
        _ => copy(ctx, n, &p),
    })
}

/// cp, mv, ln, install, mkdir, touch, mktemp: every operand may be written, the last one
/// (or `-t DIR`) may be a directory receiving files the line does not name.
fn copy(ctx: &mut Ctx<'_>, n: &str, p: &Parsed<'_>) -> Verdict {
    if p.has(&["strip-program"]) {
        return v(&[Unknown], format!("`{n} --strip-program` runs a program"));
    }
    let mut classes = Classes::from(Write);
    for t in p.values(&["target-directory"]) {
        classes |= paths::write_into_path(ctx, t);
    }
    if let Some(dir) = p.values(&["tmpdir"]).next() {
        classes |= paths::write_path(ctx, &format!("{dir}/tmp"));
    }
    if p.values(&["mode"]).any(setuid_mode) {
        classes |= Privilege.into();
    }
    if n == "mv" && p.has(&["exchange"]) {
        classes |= Destructive.into();
    }
    let receives = matches!(n, "cp" | "mv" | "ln" | "install") && !p.has(&["no-target-directory", "target-directory"]);
    let last = p.operands.len().saturating_sub(1);
    for (i, w) in p.operands.iter().enumerate() {
        classes |= if receives && i == last && i > 0 { paths::write_into(ctx, w) } else { paths::write_target(ctx, w) };
    }
    Verdict { classes, reason: format!("`{n}` creates or changes files") }
}

/// split writes PREFIXaa... (default `x`), csplit PREFIX00... (default `xx`).
fn split(ctx: &mut Ctx<'_>, n: &str, p: &Parsed<'_>) -> Verdict {
    if p.has(&["filter"]) {
        return v(&[Unknown], "`split --filter` runs a command");
    }
    let prefix = if n == "split" {
        p.operands.get(1).map(|w| (w.text.clone(), w.is_literal()))
    } else {
        p.values(&["prefix"]).next().map(|s| (s.to_string(), true))
    };
    let (prefix, literal) = prefix.unwrap_or_else(|| (if n == "split" { "x" } else { "xx" }.to_string(), true));
    let suffix = p.values(&["additional-suffix"]).next().unwrap_or("");
    let mut classes = paths::write_path(ctx, &format!("{prefix}aa{suffix}"));
    if !literal {
        classes |= Unknown.into();
    }
    Verdict { classes: classes | Write.into(), reason: format!("`{n}` writes pieces of its input") }
}

/// patch writes the files its patch names, which the line does not show, under `-d` or
/// the current directory; `-e` and `-g` run ed or a version-control tool.
fn patch(ctx: &mut Ctx<'_>, p: &Parsed<'_>) -> Verdict {
    if p.has(&["ed", "get"]) {
        return v(&[Unknown], "`patch -e/-g` runs another program");
    }
    if p.has(&["dry-run"]) {
        return v(&[Read], "`patch --dry-run` only checks");
    }
    let mut classes = Classes::from(Write);
    let dir = p.values(&["directory"]).next().unwrap_or(".").to_string();
    if p.has(&["directory"]) {
        ctx.cwd = None;
    }
    match p.operands.first() {
        Some(file) => classes |= paths::write_target(ctx, file),
        None => classes |= paths::write_into_path(ctx, &dir),
    }
    for f in p.values(&["output", "reject-file", "prefix", "basename-prefix"]) {
        classes |= paths::write_path(ctx, f);
    }
    Verdict { classes, reason: "`patch` changes the files its patch names".into() }
}

/// The compressors: listing, testing or `-c` read; otherwise each file is replaced.
fn compress(ctx: &mut Ctx<'_>, n: &str, p: &Parsed<'_>) -> Verdict {
    if p.has(&["stdout", "to-stdout", "list", "test"]) {
        return v(&[Read], format!("`{n}` prints or tests"));
    }
    // `-N` restores the name stored in the archive, `-r` walks directories: names the
    // line does not show.
    if p.has(&["name", "recursive"]) {
        return v(&[Write, Unknown], format!("`{n}` writes names the line does not show"));
    }
    let mut classes = Classes::from(Write);
    for w in &p.operands {
        classes |= paths::write_target(ctx, w);
    }
    Verdict { classes, reason: format!("`{n}` (de)compresses files in place") }
}

/// zip has its own option syntax: only a few known flags are accepted; `-x`/`-i` take
/// patterns up to the next option. The first operand is the archive written.
fn zip(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let mut operands = Vec::new();
    let mut patterns = false;
    for w in args {
        let t = w.text.as_str();
        if let Some(flags) = t.strip_prefix('-').filter(|f| !f.is_empty()) {
            patterns = matches!(flags, "x" | "i");
            if !patterns && !flags.chars().all(|c| "rqjvyuDX0123456789".contains(c)) {
                return v(&[Unknown], format!("`zip` option `{t}` is not known"));
            }
        } else if !patterns {
            operands.push(w);
        }
    }
    match operands.first() {
        Some(archive) => {
            let classes = paths::write_target(ctx, archive) | Write.into();
            Verdict { classes, reason: "`zip` writes an archive".into() }
        }
        None => v(&[Unknown], "`zip` without an archive"),
    }
}

/// unzip: listing reads; extracting writes names the line does not show into `-d DIR`
/// or the current directory. `-:` lets names climb out with `../`.
fn unzip(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let mut dir = None;
    let mut lists = false;
    let mut it = args.iter();
    while let Some(w) = it.next() {
        let t = w.text.as_str();
        let Some(flags) = t.strip_prefix('-').filter(|f| !f.is_empty()) else { continue };
        let mut cs = flags.chars();
        while let Some(c) = cs.next() {
            match c {
                'l' | 't' | 'p' | 'Z' | 'v' | 'z' | 'c' => lists = true,
                'o' | 'n' | 'q' | 'j' | 'a' | 'b' | 'C' | 'L' | 'U' | 'X' | 'f' | 'u' | 'M' | 'T' | 'W' | 'D' | 'x' => {
                }
                'K' => return v(&[Privilege, Write], "`unzip -K` keeps setuid bits"),
                'd' | 'P' => {
                    let rest: String = cs.by_ref().collect();
                    let value = if rest.is_empty() { it.next().map(|w| w.text.clone()) } else { Some(rest) };
                    if c == 'd' {
                        dir = value;
                    }
                }
                _ => return v(&[Unknown], format!("`unzip` option `-{c}` is not known")),
            }
        }
    }
    if lists {
        return v(&[Read], "`unzip` lists, tests or prints");
    }
    let dir = dir.unwrap_or_else(|| ".".to_string());
    let classes = paths::write_into_path(ctx, &dir) | Write.into();
    Verdict { classes, reason: "`unzip` extracts files".into() }
}
