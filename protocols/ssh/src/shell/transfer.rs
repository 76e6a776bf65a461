//! Tools that move files over the network: curl, wget, rsync and scp. Options are
//! matched by any prefix their parser accepts; whatever is not known to only fetch or
//! print is `unknown`, and every file or directory they write goes through [`paths`].

use airlock_classes::{Class, Classes};

use super::lexer::Word;
use super::opts::{self, Spec, listed};
use super::paths;
use super::{Ctx, Verdict};

use Class::{Destructive, Read, Unknown, Write};

fn v(classes: &[Class], reason: impl Into<String>) -> Verdict {
    Verdict::new(classes, reason)
}

/// curl's options (8.x), every one, so prefixes resolve as curl resolves them.
const CURL: Spec = Spec {
    short: "#0123456ABC:D:E:F:GH:IJK:LMNOP:Q:RST:U:VX:Y:Zab:c:d:e:fghijklm:no:pqr:st:u:vw:x:y:z:",
    long: "abstract-unix-socket= alt-svc= anyauth a|append aws-sigv4= basic cacert= capath= E|cert= cert-status \
        cert-type= ciphers= compressed compressed-ssh K|config= connect-timeout= connect-to= C|continue-at= \
        b|cookie= c|cookie-jar= create-dirs create-file-mode= crlf crlfile= curves= d|data= data-ascii= \
        data-binary= data-raw= data-urlencode= delegation= digest q|disable disable-eprt disable-epsv \
        disallow-username-in-url dns-interface= dns-ipv4-addr= dns-ipv6-addr= dns-servers= doh-cert-status \
        doh-insecure doh-url= D|dump-header= egd-file= engine= etag-compare= etag-save= expect100-timeout= \
        f|fail fail-early fail-with-body false-start F|form= form-escape form-string= ftp-account= \
        ftp-alternative-to-user= ftp-create-dirs ftp-method= ftp-pasv P|ftp-port= ftp-pret ftp-skip-pasv-ip \
        ftp-ssl-ccc ftp-ssl-ccc-mode= ftp-ssl-control G|get g|globoff happy-eyeballs-timeout-ms= \
        haproxy-protocol I|head H|header= h|help hostpubmd5= hostpubsha256= hsts= http0.9 0|http1.0 http1.1 \
        http2 http2-prior-knowledge http3 http3-only ignore-content-length i|include k|insecure interface= \
        4|ipv4 6|ipv6 ip-tos= json= j|junk-session-cookies keepalive-time= key= key-type= krb= libcurl= \
        limit-rate= l|list-only local-port= L|location location-trusted login-options= mail-auth= mail-from= \
        mail-rcpt= mail-rcpt-allowfails M|manual max-filesize= max-redirs= m|max-time= metalink negotiate \
        n|netrc netrc-file= netrc-optional :|next no-alpn N|no-buffer no-clobber no-keepalive no-npn \
        no-progress-meter no-sessionid noproxy= ntlm ntlm-wb oauth2-bearer= o|output= output-dir= Z|parallel \
        parallel-immediate parallel-max= pass= path-as-is pinnedpubkey= post301 post302 post303 preproxy= \
        #|progress-bar proto= proto-default= proto-redir= x|proxy= proxy-anyauth proxy-basic proxy-cacert= \
        proxy-capath= proxy-cert= proxy-cert-type= proxy-ciphers= proxy-crlfile= proxy-digest proxy-header= \
        proxy-insecure proxy-key= proxy-key-type= proxy-negotiate proxy-ntlm proxy-pass= proxy-pinnedpubkey= \
        proxy-service-name= proxy-ssl-allow-beast proxy-ssl-auto-client-cert proxy-tls13-ciphers= \
        proxy-tlsauthtype= proxy-tlspassword= proxy-tlsuser= proxy-tlsv1 U|proxy-user= proxy1.0= \
        p|proxytunnel pubkey= Q|quote= random-file= r|range= rate= raw e|referer= J|remote-header-name \
        O|remote-name remote-name-all R|remote-time remove-on-error X|request= request-target= resolve= \
        retry= retry-all-errors retry-connrefused retry-delay= retry-max-time= sasl-authzid= sasl-ir \
        service-name= S|show-error s|silent socks4= socks4a= socks5= socks5-basic socks5-gssapi \
        socks5-gssapi-nec socks5-gssapi-service= socks5-hostname= Y|speed-limit= y|speed-time= ssl \
        ssl-allow-beast ssl-auto-client-cert ssl-no-revoke ssl-reqd ssl-revoke-best-effort 2|sslv2 3|sslv3 \
        stderr= styled-output suppress-connect-headers tcp-fastopen tcp-nodelay t|telnet-option= \
        tftp-blksize= tftp-no-options z|time-cond= tls-max= tls13-ciphers= tlsauthtype= tlspassword= tlsuser= \
        1|tlsv1 tlsv1.0 tlsv1.1 tlsv1.2 tlsv1.3 tr-encoding trace= trace-ascii= trace-config= trace-ids \
        trace-time unix-socket= T|upload-file= url= url-query= B|use-ascii u|user= A|user-agent= variable= \
        v|verbose V|version w|write-out= xattr ssl-sessions= skip-existing out-null",
};

/// curl options that only change how a fetch is made or printed.
const CURL_READS: &str = "silent show-error location insecure fail fail-with-body fail-early verbose include head globoff get ipv4 \
    ipv6 netrc netrc-optional no-buffer progress-bar user-agent cookie continue-at cert cert-type key \
    key-type referer header max-time range user write-out proxy noproxy speed-time speed-limit time-cond \
    proxy-user compressed connect-timeout retry retry-delay retry-max-time retry-all-errors retry-connrefused \
    cacert capath http1.0 http1.1 http2 http2-prior-knowledge url resolve connect-to no-progress-meter \
    limit-rate max-filesize unix-socket location-trusted oauth2-bearer digest basic anyauth ntlm negotiate \
    max-redirs path-as-is tlsv1.2 tlsv1.3 tls-max ciphers pinnedpubkey proto proto-redir proto-default \
    styled-output tcp-nodelay keepalive-time no-keepalive interface request parallel parallel-max remote-time \
    create-dirs no-clobber remove-on-error xattr trace-time next help version manual";

/// curl options whose value is a file it writes.
const CURL_WRITES: &str = "output dump-header cookie-jar trace trace-ascii stderr libcurl etag-save hsts alt-svc";

/// URL schemes whose GET only fetches; `gopher://`, `dict://` and friends can send
/// arbitrary bytes to a local service.
const CURL_SCHEMES: &str = "http https ftp ftps file sftp scp";

/// The file name `curl -O` or `wget` saves `url` under, when the URL shows it beyond
/// doubt: only letters, digits, `.`, `_`, `-` and `+`, not starting with a dot. Tools
/// decode `%XX`, split on `\\` as well as `/`, and differ between versions; any other
/// name is the tool's to decide, and is judged as an unseen name in its directory.
fn remote_name(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    let (_, name) = path.split_once('/')?;
    let name = name.rsplit('/').next()?;
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    (plain && !name.is_empty() && !name.starts_with('.')).then_some(name)
}

pub(crate) fn curl(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    ctx.downloads = true;
    let p = match opts::parse(args, &CURL) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`curl`: {e}")),
    };
    let mut urls: Vec<&str> = p.operands.iter().map(|w| w.text.as_str()).collect();
    urls.extend(p.values(&["url"]));
    for u in &urls {
        if let Some((scheme, _)) = u.split_once("://")
            && !listed(CURL_SCHEMES, &scheme.to_ascii_lowercase())
        {
            return v(&[Unknown], format!("`curl` URL scheme `{scheme}` can send data"));
        }
    }
    let dir = p.values(&["output-dir"]).next().map(|d| d.trim_end_matches('/').to_string());
    let within = |f: &str| match &dir {
        Some(d) if !f.starts_with('/') && !f.starts_with("~/") => format!("{d}/{f}"),
        _ => f.to_string(),
    };
    let mut classes = Classes::from(Read);
    for o in &p.opts {
        let name = o.name.as_str();
        let value = o.value.as_deref().unwrap_or("");
        if name == "request" && !matches!(value, "GET" | "HEAD") {
            return v(&[Unknown], "`curl -X` sends a request that may change things");
        }
        if matches!(name, "header" | "cookie" | "write-out") && (value.starts_with('@') || value.contains("%output")) {
            return v(&[Unknown], format!("`curl --{name}` reads or writes a file"));
        }
        if listed(CURL_WRITES, name) {
            if value != "-" && !(name == "stderr" && value == "/dev/null") {
                if value.contains('#') {
                    return v(&[Write, Unknown], "`curl -o` names files from the URL glob");
                }
                classes |= paths::write_path(ctx, &within(value));
            }
        } else if matches!(name, "remote-name" | "remote-name-all") {
            classes |= Write.into();
            for u in &urls {
                match remote_name(u) {
                    Some(file) => classes |= paths::write_path(ctx, &within(file)),
                    None => classes |= paths::write_into_path(ctx, dir.as_deref().unwrap_or(".")),
                }
            }
        } else if name == "remote-header-name" {
            // The server picks the name.
            classes |= paths::write_into_path(ctx, dir.as_deref().unwrap_or("."));
        } else if name != "output-dir" && !listed(CURL_READS, name) {
            return v(&[Unknown], format!("`curl --{name}` sends data or is not known"));
        }
    }
    Verdict { classes, reason: "`curl` fetches a URL".into() }
}

/// wget options that only change how a download is made or printed.
const WGET_SAFE: &str = "quiet no-verbose verbose continue timestamping recursive no-parent no-check-certificate user-agent \
    timeout tries user password header progress show-progress server-response limit-rate spider input-file \
    wait no-directories no-host-directories convert-links page-requisites mirror level no-clobber https-only \
    inet4-only inet6-only help version content-disposition max-redirect connect-timeout read-timeout \
    dns-timeout waitretry random-wait no-cache no-cookies ignore-length accept reject domains \
    adjust-extension span-hosts cut-dirs ca-certificate ca-directory no-hsts";

/// wget's options (1.21), every one, so prefixes resolve as wget resolves them.
const WGET: Spec = Spec {
    short: "Vhbe:o:a:dqvi:FB:t:O:cNST:w:Q:46xP:EU:rl:kKmpA:R:D:HLI:X:",
    long: "V|version h|help b|background e|execute= o|output-file= a|append-output= d|debug q|quiet v|verbose \
        no-verbose report-speed= i|input-file= F|force-html B|base= config= no-config rejected-log= t|tries= \
        retry-connrefused retry-on-http-error= O|output-document= no-clobber no-netrc c|continue start-pos= \
        progress= show-progress N|timestamping no-if-modified-since no-use-server-timestamps \
        S|server-response spider T|timeout= dns-timeout= connect-timeout= read-timeout= w|wait= waitretry= \
        random-wait no-proxy Q|quota= bind-address= limit-rate= no-dns-cache restrict-file-names= ignore-case \
        4|inet4-only 6|inet6-only prefer-family= user= password= ask-password use-askpass= no-iri \
        local-encoding= remote-encoding= unlink xattr no-directories x|force-directories no-host-directories \
        protocol-directories P|directory-prefix= cut-dirs= http-user= http-password= no-cache default-page= \
        E|adjust-extension ignore-length header= compression= max-redirect= proxy-user= proxy-password= \
        referer= save-headers U|user-agent= no-http-keep-alive no-cookies load-cookies= save-cookies= \
        keep-session-cookies post-data= post-file= method= body-data= body-file= content-disposition \
        content-on-error auth-no-challenge secure-protocol= https-only no-check-certificate certificate= \
        certificate-type= private-key= private-key-type= ca-certificate= ca-directory= crl-file= \
        pinnedpubkey= ciphers= no-hsts hsts-file= ftp-user= ftp-password= no-remove-listing no-glob \
        no-passive-ftp preserve-permissions retr-symlinks ftps-implicit ftps-resume-ssl \
        ftps-clear-data-connection ftps-fallback-to-ftp warc-file= warc-header= warc-max-size= warc-cdx \
        warc-dedup= no-warc-compression no-warc-digests no-warc-keep-log warc-tempdir= r|recursive l|level= \
        delete-after k|convert-links convert-file-only backups= K|backup-converted m|mirror p|page-requisites \
        strict-comments A|accept= R|reject= accept-regex= reject-regex= regex-type= D|domains= \
        exclude-domains= follow-ftp follow-tags= ignore-tags= H|span-hosts L|relative I|include-directories= \
        trust-server-names X|exclude-directories= no-parent",
};

pub(crate) fn wget(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    ctx.downloads = true;
    // `-nv`, `-nd`, `-nH`, `-np`, `-nc` are wget's own two-letter short options.
    let args: Vec<Word> = args
        .iter()
        .map(|w| {
            let long = match w.text.as_str() {
                "-nv" => "--no-verbose",
                "-nd" => "--no-directories",
                "-nH" => "--no-host-directories",
                "-np" => "--no-parent",
                "-nc" => "--no-clobber",
                _ => return w.clone(),
            };
            Word::plain(long)
        })
        .collect();
    let p = match opts::parse(&args, &WGET) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`wget`: {e}")),
    };
    if let Some(o) = p.opts.iter().find(|o| !listed(WGET_SAFE, &o.name)).filter(|o| {
        !matches!(o.name.as_str(), "output-document" | "output-file" | "append-output" | "directory-prefix")
    }) {
        return v(&[Unknown], format!("`wget --{}` sends data, runs a program or is not known", o.name));
    }
    let mut classes = Classes::NONE;
    let outputs: Vec<&str> = p.values(&["output-document"]).collect();
    let dir = p.values(&["directory-prefix"]).next().unwrap_or(".");
    if p.has(&["spider"]) {
        classes |= Read.into();
    } else if outputs.is_empty() {
        let server_names =
            ["recursive", "mirror", "page-requisites", "content-disposition", "trust-server-names", "input-file"];
        let urls: Vec<&str> = p.operands.iter().map(|w| w.text.as_str()).collect();
        if p.has(&server_names) || urls.is_empty() {
            // Names come from links or the server: judge the directory they land in.
            classes |= paths::write_into_path(ctx, dir);
        }
        for u in urls {
            // A URL whose path ends in `/` is saved as index.html; any other name the
            // URL does not show beyond doubt lands unseen in the directory.
            let ends_in_dir = u.split(['?', '#']).next().is_some_and(|p| p.ends_with('/'));
            match remote_name(u).or(ends_in_dir.then_some("index.html")) {
                Some(name) => classes |= paths::write_path(ctx, &format!("{}/{name}", dir.trim_end_matches('/'))),
                None => classes |= paths::write_into_path(ctx, dir),
            }
        }
    }
    for o in outputs.iter().copied().chain(p.values(&["output-file", "append-output"])) {
        classes |= if o == "-" { Classes::from(Read) } else { paths::write_path(ctx, o) };
    }
    Verdict { classes, reason: "`wget` downloads".into() }
}

/// rsync's options (3.2), every one, so prefixes resolve to what rsync would take.
const RSYNC: Spec = Spec {
    short: "vqcarRbudlLkKHpEAXogDtUNOJSnWxB:e:yzCf:FP0sT:mhiM:I846V@:",
    long: "v|verbose info= debug= stderr= q|quiet no-motd c|checksum a|archive r|recursive inc-recursive \
        no-inc-recursive no-i-r R|relative no-implied-dirs b|backup backup-dir= suffix= u|update inplace \
        append append-verify d|dirs old-dirs old-d mkpath l|links L|copy-links copy-unsafe-links safe-links \
        insecure-links confine-root= munge-links k|copy-dirlinks K|keep-dirlinks H|hard-links p|perms \
        E|executability chmod= A|acls X|xattrs o|owner g|group devices copy-devices write-devices specials \
        t|times U|atimes open-noatime N|crtimes O|omit-dir-times J|omit-link-times super fake-super S|sparse \
        preallocate n|dry-run W|whole-file no-whole-file checksum-choice= x|one-file-system B|block-size= \
        e|rsh= rsync-path= existing ignore-non-existing ignore-existing remove-source-files del delete \
        delete-before delete-during delete-delay delete-after delete-excluded ignore-missing-args \
        delete-missing-args ignore-errors force max-delete= max-size= min-size= max-alloc= partial \
        partial-dir= delay-updates m|prune-empty-dirs numeric-ids usermap= groupmap= chown= timeout= \
        contimeout= I|ignore-times size-only @|modify-window= T|temp-dir= y|fuzzy compare-dest= copy-dest= \
        link-dest= z|compress compress-choice= compress-level= compress-threads= skip-compress= C|cvs-exclude \
        f|filter= exclude= exclude-from= include= include-from= files-from= 0|from0 old-args s|secluded-args \
        protect-args trust-sender copy-as= address= port= sockopts= blocking-io outbuf= stats 8|8-bit-output \
        h|human-readable progress i|itemize-changes M|remote-option= out-format= log-file= log-file-format= \
        password-file= early-input= list-only bwlimit= stop-after= stop-at= fsync write-batch= \
        only-write-batch= read-batch= protocol= iconv= checksum-seed= 4|ipv4 6|ipv6 V|version help server \
        sender daemon config= dparam= no-detach",
};

/// rsync options that run a program, read what the line does not show, or reach devices.
const RSYNC_RUNS: &str = "rsync-path daemon config dparam remote-option early-input write-devices copy-devices password-file \
    read-batch sockopts copy-as usermap groupmap chown super";

/// rsync options whose value is a file or directory it writes.
const RSYNC_WRITES: &str = "log-file write-batch only-write-batch backup-dir partial-dir temp-dir";

pub(crate) fn rsync(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    let p = match opts::parse(args, &RSYNC) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`rsync`: {e}")),
    };
    let server = p.has(&["server"]);
    if let Some(o) = p.opts.iter().find(|o| listed(RSYNC_RUNS, &o.name)) {
        return v(&[Unknown], format!("`rsync --{}` runs a program or reads what the line does not show", o.name));
    }
    for e in p.values(&["rsh"]) {
        let safe = e == "ssh" || e.strip_prefix("ssh -p ").is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if !(safe || server) {
            return v(&[Unknown], format!("`rsync -e {e}` runs a program"));
        }
    }
    let destroys = p.opts.iter().any(|o| o.name.starts_with("del") || o.name == "remove-source-files");
    if server && p.has(&["sender"]) {
        return if destroys {
            v(&[Destructive], "`rsync --sender` removing sources")
        } else {
            v(&[Read], "`rsync` server sending files")
        };
    }
    let mut classes = Classes::from(Write);
    for o in p.opts.iter().filter(|o| listed(RSYNC_WRITES, &o.name)) {
        classes |= paths::write_into_path(ctx, o.value.as_deref().unwrap_or("."));
    }
    if let Some(dest) = p.operands.last() {
        classes |= paths::write_into(ctx, dest);
    }
    if destroys {
        classes |= Destructive.into();
    }
    Verdict { classes, reason: "`rsync` copies files".into() }
}

pub(crate) fn scp(ctx: &mut Ctx<'_>, args: &[Word]) -> Verdict {
    const SCP: Spec = Spec { short: "346ABCOpqRrTvc:D:F:i:J:l:o:P:S:X:dft", long: "" };
    let p = match opts::parse(args, &SCP) {
        Ok(p) => p,
        Err(e) => return v(&[Unknown], format!("`scp`: {e}")),
    };
    if p.has(&["-S", "-o", "-F", "-J", "-D", "-X"]) {
        return v(&[Unknown], "`scp` option runs a program or changes ssh's configuration");
    }
    if p.has(&["-f"]) && !p.has(&["-t"]) {
        return v(&[Read], "`scp -f` sends files");
    }
    let mut classes = Classes::from(Write);
    if let Some(dest) = p.operands.last() {
        classes |= paths::write_into(ctx, dest);
    }
    Verdict { classes, reason: "`scp` copies files".into() }
}
