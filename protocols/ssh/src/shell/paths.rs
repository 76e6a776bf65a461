//! What reading from or writing to a path means. The login home is not known here, so
//! every home-like directory (`~`, `/root`, `/home/NAME`, `/Users/NAME`, `/var/lib/NAME`,
//! `/var/www`) counts as one, and any path with a component starting with `.` (`.ssh`,
//! `.bashrc`, `.config`, `.git`) is configuration that runs later: admin.

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

/// The classes of reading from `w` with `<`: a name Airlock cannot see is unknown.
pub(crate) fn read_target(_ctx: &mut Ctx<'_>, w: &Word) -> Classes {
    if !w.is_literal() {
        return Class::Unknown.into();
    }
    if is_socket(&w.text) { Class::Admin.into() } else { Classes::NONE }
}

/// The classes of writing to the file named by `w` (a redirection, `tee`, `cp` target...).
/// A name that expands is unknown, and is still judged as written for what it shows.
pub(crate) fn write_target(ctx: &mut Ctx<'_>, w: &Word) -> Classes {
    if !w.is_literal() {
        return Classes::of(&[Class::Write, Class::Unknown]) | write_path(ctx, &w.text);
    }
    write_path(ctx, &w.text)
}

/// The classes of writing files the line does not name into directory `w` (extracting,
/// copying a tree, `-t DIR`): into a home, an ancestor of homes, a system directory or
/// a dot-directory, admin.
pub(crate) fn write_into(ctx: &mut Ctx<'_>, w: &Word) -> Classes {
    let mut classes = write_target(ctx, w);
    classes |= dir_classes(ctx, &w.text);
    classes
}

/// [`write_into`] for a path given as text (an option value).
pub(crate) fn write_into_path(ctx: &mut Ctx<'_>, dir: &str) -> Classes {
    write_path(ctx, dir) | dir_classes(ctx, dir)
}

fn dir_classes(ctx: &Ctx<'_>, dir: &str) -> Classes {
    let Some(resolved) = resolve(ctx, dir) else {
        return Class::Unknown.into();
    };
    let p = lexical(&resolved);
    let p = p.trim_end_matches('/');
    // Extracting into a parent of homes reaches every home's dotfiles.
    if HOME_PARENTS.contains(&p) || p.is_empty() || is_home(p) {
        return Class::Admin.into();
    }
    Classes::NONE
}

/// Directories whose children are home directories.
const HOME_PARENTS: &[&str] = &["/home", "/Users", "/var/lib", "/var", "/usr", "/usr/local", "/srv", "/opt"];

/// Whether `p` (resolved, without trailing `/`) is a home directory.
fn is_home(p: &str) -> bool {
    if matches!(p, "~" | "/root" | "/var/www" | "/var/spool" | "/nonexistent") {
        return true;
    }
    ["/home/", "/Users/", "/var/lib/", "/var/spool/"]
        .iter()
        .any(|parent| p.strip_prefix(parent).is_some_and(|name| !name.is_empty() && !name.contains('/')))
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
    let joined = if let Some(rest) = path.strip_prefix("~/") {
        format!("~/{rest}")
    } else if path == "~" {
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
        } else if part == "." && !parts.is_empty() {
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
    if p.contains("authorized_keys") || p.contains("sudoers") || PRIVILEGE.iter().any(|x| p.starts_with(x)) {
        classes |= Class::Privilege.into();
    }
    if (p.starts_with("/dev/") && !DEV_FILES.iter().any(|d| p.starts_with(d))) || p == "/proc/sysrq-trigger" {
        classes |= Class::Destructive.into();
    }
    let dir = format!("{}/", p.trim_end_matches('/'));
    // A home or the root directory itself: whatever lands there may be a dotfile. Any
    // dot-component is configuration something reads later (`.ssh`, `.bashrc`, `.git`).
    let bare = p.trim_end_matches(['/', '.']);
    if matches!(bare, "~" | "") || is_home(bare) || p.split('/').any(|c| c.starts_with('.') && c != "." && c != "..") {
        classes |= Class::Admin.into();
    }
    if ADMIN_PREFIX.iter().any(|x| p.starts_with(x) || dir == *x)
        || ADMIN_NAME.contains(&name)
        || p.contains("/.git/config")
        || p.contains("/.git/hooks")
        // A bare repository keeps its config and hooks at its top, under any name: a
        // later `git` command run there could be made to run a program.
        || matches!(name, "config" | "gitconfig" | "packed-refs" | "HEAD")
        || p.split('/').any(|c| c == "hooks" || c == "info")
        || p.contains("/.ssh/")
        || p.contains("/cron")
        || p.contains("/systemd/")
    {
        classes |= Class::Admin.into();
    }
    classes
}
