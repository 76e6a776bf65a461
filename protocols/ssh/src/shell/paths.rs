//! What reading from or writing to a path means, and a small option splitter shared by
//! the command rules.

use airlock_classes::{Class, Classes};

use super::Ctx;
use super::lexer::Word;

/// Files that change who may log in or what they may do.
const PRIVILEGE: &[&str] = &[
    "/etc/sudoers",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/pam.d",
    "/etc/security",
    "/etc/doas",
    "/etc/polkit",
    "/etc/ssh/sshd_config",
];

/// Places where a written file becomes code that runs later, or system configuration.
const ADMIN_PREFIX: &[&str] = &[
    "/etc/",
    "/proc/",
    "/sys/",
    "/boot/",
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib",
    "/opt/",
    "/var/spool/cron",
    "/var/spool/at",
    "/root/",
    "~/bin/",
    "~/.local/bin/",
    "~/.config/",
    "~/.ssh/",
    "~/.kube/",
    "~/.aws/",
    "~/.docker/",
    "~/.gnupg/",
];

/// File names that shells, git or ssh read as code or configuration.
const ADMIN_NAME: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".kshrc",
    ".inputrc",
    ".pam_environment",
    ".gitconfig",
    ".gitattributes",
    ".gitmodules",
    ".npmrc",
    ".pypirc",
    ".curlrc",
    ".wgetrc",
    ".vimrc",
    ".exrc",
    ".lesskey",
    ".netrc",
    ".env",
];

/// Output targets that write no file.
const HARMLESS: &[&str] =
    &["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// Device directories whose files are not disks: writing there is an ordinary write.
const DEV_FILES: &[&str] = &["/dev/fd/", "/dev/shm/", "/dev/pts/", "/dev/mqueue/"];

/// The classes of reading from `w` with `<`.
pub(crate) fn read_target(_ctx: &mut Ctx<'_>, w: &Word) -> Classes {
    if is_socket(&w.text) { Class::Admin.into() } else { Classes::NONE }
}

/// The classes of writing to the file named by `w` (a redirection, `tee`, `cp` target...).
pub(crate) fn write_target(ctx: &mut Ctx<'_>, w: &Word) -> Classes {
    if !w.is_static() {
        return Classes::of(&[Class::Write, Class::Unknown]);
    }
    write_path(ctx, &w.text)
}

/// Whether a path is one of bash's network pseudo-files.
pub(crate) fn is_socket(p: &str) -> bool {
    p.contains("/dev/tcp/") || p.contains("/dev/udp/")
}

/// The classes of writing to `path`.
pub(crate) fn write_path(ctx: &mut Ctx<'_>, path: &str) -> Classes {
    if HARMLESS.contains(&path) || path.strip_prefix("/dev/fd/").is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        return Classes::NONE;
    }
    if is_socket(path) {
        return Class::Admin.into();
    }
    let mut classes = Classes::from(Class::Write) | sensitive(ctx, path);
    if classes.contains(Class::Privilege) {
        classes = classes.without(Class::Admin);
    }
    classes
}

/// Where `path` points as far as the line shows: absolute, or `~/...` for the login
/// directory. `None` when a `cd` made relative paths unknowable.
pub(crate) fn resolve(ctx: &Ctx<'_>, path: &str) -> Option<String> {
    let home = ["~/", "$HOME/", "${HOME}/"].iter().find_map(|p| path.strip_prefix(p));
    let joined = if let Some(rest) = home {
        format!("~/{rest}")
    } else if path == "~" || path == "$HOME" {
        "~/".into()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        let cwd = ctx.cwd.as_ref()?;
        match cwd.as_str() {
            "" => format!("~/{path}"),
            "/" => format!("/{path}"),
            _ => format!("{cwd}/{path}"),
        }
    };
    let mut out = joined.replace("/./", "/");
    while out.contains("//") {
        out = out.replace("//", "/");
    }
    Some(out)
}

/// `path` with `..` components applied lexically (a symlink may make this wrong, so a
/// path with `..` is also marked unknown by the caller).
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        if part == ".." {
            if parts.len() > 1 {
                parts.pop();
            }
        } else {
            parts.push(part);
        }
    }
    parts.join("/")
}

fn sensitive(ctx: &Ctx<'_>, path: &str) -> Classes {
    let mut classes = Classes::NONE;
    let resolved = match resolve(ctx, path) {
        Some(p) => p,
        None => {
            classes |= Class::Unknown.into();
            path.to_string()
        }
    };
    if resolved.split('/').any(|c| c == "..") || resolved.starts_with('~') && !resolved.starts_with("~/") {
        classes |= Class::Unknown.into();
    }
    let normal = lexical(&resolved);
    let p = normal.as_str();
    let name = p.rsplit('/').next().unwrap_or(p);
    if p.contains("authorized_keys") || PRIVILEGE.iter().any(|x| p.starts_with(x)) {
        classes |= Class::Privilege.into();
    }
    if (p.starts_with("/dev/") && !DEV_FILES.iter().any(|d| p.starts_with(d))) || p == "/proc/sysrq-trigger" {
        classes |= Class::Destructive.into();
    }
    let dir = format!("{}/", p.trim_end_matches('/'));
    // The login or root directory itself: whatever lands there may be a dotfile.
    if matches!(p.trim_end_matches(['/', '.']), "~" | "") {
        classes |= Class::Admin.into();
    }
    if ADMIN_PREFIX.iter().any(|x| p.starts_with(x) || dir == *x)
        || ADMIN_NAME.contains(&name)
        || p.contains("/.git/config")
        || p.contains("/.git/hooks")
        || p.contains("/.ssh/")
        || p.contains("/cron")
        || p.contains("/systemd/")
    {
        classes |= Class::Admin.into();
    }
    classes
}

/// One option found by [`split_opts`]: `-o` or `--output`, with its value if it takes one.
pub(crate) struct Opt {
    pub name: String,
    pub value: Option<String>,
}

/// Options and operands of a command line.
pub(crate) struct Split<'w> {
    pub opts: Vec<Opt>,
    pub operands: Vec<&'w Word>,
    /// Some option word could expand into other options.
    pub injectable: bool,
}

impl Split<'_> {
    /// Whether an option with one of these names (`-o`, `--output`) is present.
    pub(crate) fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|o| names.contains(&o.name.as_str()))
    }

    /// The values of the options with these names.
    pub(crate) fn values<'s>(&'s self, names: &'s [&str]) -> impl Iterator<Item = &'s str> {
        self.opts.iter().filter(move |o| names.contains(&o.name.as_str())).filter_map(|o| o.value.as_deref())
    }
}

/// The text of an option's value word; a value that expands taints the split.
fn value_of(w: &Word, injectable: &mut bool) -> String {
    if !w.is_literal() {
        *injectable = true;
    }
    w.text.clone()
}

/// Splits GNU-style arguments. `short_valued` are the short options taking a value
/// (`-o FILE`, `-oFILE`); `long_valued` the long ones (`--output=FILE`, `--output FILE`).
/// Options may follow operands; `--` ends them.
pub(crate) fn split_opts<'w>(args: &'w [Word], short_valued: &str, long_valued: &[&str]) -> Split<'w> {
    let mut split = Split { opts: Vec::new(), operands: Vec::new(), injectable: false };
    let mut iter = args.iter();
    let mut done = false;
    while let Some(w) = iter.next() {
        let t = w.text.as_str();
        if done || t == "-" || !t.starts_with('-') {
            if w.injectable() {
                split.injectable = true;
            }
            split.operands.push(w);
            continue;
        }
        if w.injectable() || !w.vars.is_empty() {
            split.injectable = true;
        }
        if t == "--" {
            done = true;
        } else if let Some(long) = t.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None if long_valued.contains(&long) => (long, iter.next().map(|w| value_of(w, &mut split.injectable))),
                None => (long, None),
            };
            split.opts.push(Opt { name: format!("--{name}"), value });
        } else {
            let body: Vec<char> = t.chars().skip(1).collect();
            for (i, c) in body.iter().enumerate() {
                if short_valued.contains(*c) {
                    let rest: String = body.iter().skip(i + 1).collect();
                    let value = if rest.is_empty() {
                        iter.next().map(|w| value_of(w, &mut split.injectable))
                    } else {
                        Some(rest)
                    };
                    split.opts.push(Opt { name: format!("-{c}"), value });
                    break;
                }
                split.opts.push(Opt { name: format!("-{c}"), value: None });
            }
        }
    }
    split
}
