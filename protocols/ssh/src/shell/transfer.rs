//! Tools that move files over the network: curl, wget, rsync and scp.

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::paths::{self, split_opts};
use super::{Ctx, Verdict};

use Class::{Destructive, Read, Unknown, Write};

fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
    Verdict::new(classes, reason)
}

const CURL_VALUED: &str = "AbcCdDeEFHKmoPQrTuUwxXyYz";

pub(crate) fn curl(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    ctx.downloads = true;
    let split = split_opts(
        args,
        CURL_VALUED,
        &[
            "output",
            "header",
            "user-agent",
            "max-time",
            "connect-timeout",
            "retry",
            "retry-delay",
            "user",
            "proxy",
            "noproxy",
            "cacert",
            "cert",
            "key",
            "url",
            "write-out",
            "range",
            "resolve",
            "referer",
            "cookie",
            "limit-rate",
            "max-filesize",
            "request",
            "data",
            "data-raw",
            "data-binary",
            "data-urlencode",
            "form",
            "upload-file",
            "json",
            "config",
            "dump-header",
            "cookie-jar",
            "output-dir",
            "unix-socket",
            "oauth2-bearer",
            "trace",
            "trace-ascii",
            "stderr",
            "quote",
        ],
    );
    if split.injectable {
        return v(&[Unknown], "`curl` options may expand");
    }
    let reads = [
        "-s", "-S", "-L", "-k", "-v", "-f", "-i", "-I", "-g", "-G", "-4", "-6", "-n", "-N", "-#", "-A", "-b", "-C",
        "-E", "-e", "-H", "-m", "-r", "-u", "-w", "-x", "-y", "-Y", "-z", "-U", "-P",
    ];
    let long_reads = [
        "--silent",
        "--show-error",
        "--location",
        "--insecure",
        "--fail",
        "--fail-with-body",
        "--verbose",
        "--include",
        "--head",
        "--header",
        "--user-agent",
        "--max-time",
        "--connect-timeout",
        "--retry",
        "--retry-delay",
        "--compressed",
        "--user",
        "--proxy",
        "--noproxy",
        "--cacert",
        "--cert",
        "--key",
        "--http1.1",
        "--http2",
        "--ipv4",
        "--ipv6",
        "--get",
        "--url",
        "--write-out",
        "--globoff",
        "--range",
        "--resolve",
        "--no-progress-meter",
        "--progress-bar",
        "--referer",
        "--cookie",
        "--limit-rate",
        "--max-filesize",
        "--netrc",
        "--unix-socket",
        "--location-trusted",
        "--oauth2-bearer",
        "--digest",
        "--basic",
    ];
    let writes = [
        "-o",
        "-O",
        "-J",
        "-D",
        "-c",
        "--output",
        "--remote-name",
        "--remote-name-all",
        "--remote-header-name",
        "--dump-header",
        "--cookie-jar",
        "--output-dir",
        "--trace",
        "--trace-ascii",
        "--stderr",
        "--create-dirs",
    ];
    let mut classes = Classes::from(Read);
    for o in &split.opts {
        let name = o.name.as_str();
        if name == "-X" || name == "--request" {
            if !matches!(o.value.as_deref(), Some("GET" | "HEAD")) {
                return v(&[Unknown], "`curl -X` sends a request that may change things");
            }
        } else if writes.contains(&name) {
            classes |= match o.value.as_deref() {
                Some("-") | None => Classes::from(Write),
                Some(p) => paths::write_path(ctx, p),
            };
        } else if !reads.contains(&name) && !long_reads.contains(&name) {
            return v(&[Unknown], format!("`curl {name}` sends data or is not known"));
        }
    }
    Verdict { classes, reason: "`curl` fetches a URL".into() }
}

pub(crate) fn wget(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    ctx.downloads = true;
    let split = split_opts(
        args,
        "OoaPeiUTtwQ",
        &[
            "output-document",
            "output-file",
            "append-output",
            "directory-prefix",
            "execute",
            "input-file",
            "user-agent",
            "timeout",
            "tries",
            "wait",
            "user",
            "password",
            "header",
            "progress",
            "limit-rate",
            "post-data",
            "post-file",
            "method",
            "body-data",
            "body-file",
            "use-askpass",
        ],
    );
    if split.injectable {
        return v(&[Unknown], "`wget` options may expand");
    }
    let known = [
        "-O",
        "-o",
        "-a",
        "-P",
        "-q",
        "-v",
        "-c",
        "-N",
        "-r",
        "-S",
        "-T",
        "-t",
        "-U",
        "-i",
        "-w",
        "-k",
        "-p",
        "-m",
        "--quiet",
        "--no-verbose",
        "--verbose",
        "--output-document",
        "--output-file",
        "--append-output",
        "--directory-prefix",
        "--continue",
        "--timestamping",
        "--recursive",
        "--no-parent",
        "--no-check-certificate",
        "--user-agent",
        "--timeout",
        "--tries",
        "--user",
        "--password",
        "--header",
        "--progress",
        "--show-progress",
        "--server-response",
        "--limit-rate",
        "--spider",
        "--input-file",
        "--wait",
        "-nv",
        "-nd",
        "-nH",
        "-np",
    ];
    let mut classes = Classes::NONE;
    for o in &split.opts {
        if !known.contains(&o.name.as_str()) && !matches!(o.name.as_str(), "-n" | "-d" | "-H") {
            return v(&[Unknown], format!("`wget {}` sends data or is not known", o.name));
        }
    }
    let outputs: Vec<&str> = split.values(&["-O", "--output-document"]).collect();
    if split.has(&["--spider"]) {
        classes |= Read.into();
    } else if outputs.is_empty() {
        classes |= Write.into();
    }
    for o in
        outputs.iter().chain(split.values(&["-o", "--output-file", "-a", "--append-output"]).collect::<Vec<_>>().iter())
    {
        classes |= if *o == "-" { Classes::from(Read) } else { paths::write_path(ctx, o) };
    }
    for p in split.values(&["-P", "--directory-prefix"]) {
        classes |= paths::write_path(ctx, &format!("{p}/x"));
    }
    Verdict { classes, reason: "`wget` downloads".into() }
}

pub(crate) fn rsync(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    if args.iter().any(|w| w.injectable()) {
        return v(&[Unknown], "`rsync` arguments may expand");
    }
    let t: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
    if t.iter().any(|a| {
        a.starts_with("--rsync-path")
            || a.starts_with("--daemon")
            || a.starts_with("--config")
            || a.starts_with("--remote-option")
            || *a == "-M"
    }) {
        return v(&[Unknown], "`rsync` option runs a program");
    }
    let split = split_opts(
        args,
        "eBfT",
        &[
            "rsh",
            "block-size",
            "filter",
            "temp-dir",
            "write-batch",
            "only-write-batch",
            "exclude",
            "include",
            "exclude-from",
            "include-from",
            "files-from",
            "partial-dir",
            "backup-dir",
            "suffix",
            "chmod",
            "timeout",
            "port",
            "log-file",
            "out-format",
            "compare-dest",
            "copy-dest",
            "link-dest",
        ],
    );
    for e in split.values(&["-e", "--rsh"]) {
        let safe = e == "ssh" || e.strip_prefix("ssh -p ").is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if !(safe || t.contains(&"--server")) {
            return v(&[Unknown], format!("`rsync -e {e}` runs a program"));
        }
    }
    let destroys =
        t.iter().any(|a| a.starts_with("--delete") || a.starts_with("--remove-source-files") || *a == "--del");
    if t.contains(&"--server") && t.contains(&"--sender") {
        return if destroys {
            v(&[Destructive], "`rsync --sender` removing sources")
        } else {
            v(&[Read], "`rsync` server sending files")
        };
    }
    let mut classes = Classes::from(Write);
    if let Some(dest) = split.operands.last() {
        classes |= paths::write_target(ctx, dest);
    }
    for f in split.values(&[
        "--log-file",
        "--write-batch",
        "--only-write-batch",
        "--backup-dir",
        "--partial-dir",
        "--temp-dir",
        "-T",
    ]) {
        classes |= paths::write_path(ctx, f);
    }
    if destroys {
        classes |= Destructive.into();
    }
    Verdict { classes, reason: "`rsync` copies files".into() }
}

pub(crate) fn scp(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let split = split_opts(args, "cFiJlLoPSD", &[]);
    if split.injectable || split.has(&["-S", "-o", "-F", "-J", "-D"]) {
        return v(&[Unknown], "`scp` option runs a program or is not plain");
    }
    if split.has(&["-f"]) && !split.has(&["-t"]) {
        return v(&[Read], "`scp -f` sends files");
    }
    let mut classes = Classes::from(Write);
    if let Some(dest) = split.operands.last() {
        classes |= paths::write_target(ctx, dest);
    }
    Verdict { classes, reason: "`scp` copies files".into() }
}
