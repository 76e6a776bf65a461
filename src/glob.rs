//! `*` globs, as config files use them for columns and functions, and path globs
//! for SFTP (`*` within a name, `**` across directories).

/// Whether `text` matches `glob`, where `*` matches any run of characters.
pub fn matches(glob: &str, text: &str) -> bool {
    let Some((first, rest)) = glob.split_once('*') else { return glob == text };
    let Some(mut text) = text.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = rest.split('*').collect();
    let last = parts.pop().unwrap_or_default();
    for p in parts {
        match text.find(p) {
            Some(at) => text = &text[at + p.len()..],
            None => return false,
        }
    }
    text.len() >= last.len() && text.ends_with(last)
}

/// Whether `path` matches `glob` name by name: `*` matches within one name, and a
/// `**` name matches any number of names (none included), so `/srv/**` covers `/srv`
/// and everything under it.
pub fn matches_path(glob: &str, path: &str) -> bool {
    let glob: Vec<&str> = glob.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    names_match(&glob, &path)
}

fn names_match(glob: &[&str], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| names_match(rest, path.get(skip..).unwrap_or_default())),
        Some((g, rest)) => match path.split_first() {
            Some((p, path_rest)) => matches(g, p) && names_match(rest, path_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_globs() {
        assert!(matches_path("/srv/**", "/srv") && matches_path("/srv/**", "/srv/a/b.txt"));
        assert!(!matches_path("/srv/**", "/srvx/a") && !matches_path("/srv/*", "/srv/a/b"));
        assert!(matches_path("**/.ssh/**", "/home/u/.ssh/authorized_keys"));
        assert!(matches_path("/tmp/*.log", "/tmp/x.log") && !matches_path("/tmp/*.log", "/tmp/x.log/y"));
    }

    #[test]
    fn globs() {
        assert!(matches("*", "users"));
        assert!(matches("password*", "password_hash"));
        assert!(matches("*email*", "work_email_addr"));
        assert!(!matches("users", "users2"));
        assert!(matches("a*b*c", "aXbYc") && !matches("a*b*c", "aXbY"));
    }
}
