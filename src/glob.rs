//! `*` globs, as config files use them for columns and functions.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("*", "users"));
        assert!(matches("password*", "password_hash"));
        assert!(matches("*email*", "work_email_addr"));
        assert!(!matches("users", "users2"));
        assert!(matches("a*b*c", "aXbYc") && !matches("a*b*c", "aXbY"));
    }
}
