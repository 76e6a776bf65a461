//! Run-time settings (`SET`, `RESET`, `set_config`, startup parameters), judged by
//! what changing them can undo.

use super::classify::Class;

/// Settings that guard data, identity or Airlock's own reading of the session.
/// Changing one is `privilege`.
const GUARDS: &[&str] = &[
    "role",
    "session_authorization",
    "session_replication_role",
    "default_transaction_read_only",
    "transaction_read_only",
    "standard_conforming_strings",
    "allow_system_table_mods",
    "allow_in_place_tablespaces",
    "ignore_system_indexes",
    "ignore_checksum_failure",
    "ignore_invalid_pages",
    "zero_damaged_pages",
    "lo_compat_privileges",
    "dynamic_library_path",
    "local_preload_libraries",
    "session_preload_libraries",
    "jit_provider",
];

/// Prefixes of superuser-only settings (logging, tracing, WAL, TLS): changing one is
/// `privilege`.
const GUARD_PREFIXES: &[&str] = &["log_", "debug_", "trace_", "wal_", "archive_", "ssl", "password_", "krb_"];

/// Client encodings whose multi-byte characters may contain the bytes of `\` or `'`.
/// Under one of them the server reads a query differently from any byte-wise lexer
/// (`0x95 0x5C` is one SJIS character, not a backslash), which is why PostgreSQL never
/// accepts them as server encodings. Names as PostgreSQL's `encnames.c` spells them,
/// after its clean-up (lower case, alphanumerics only).
const UNSAFE_ENCODINGS: &[&str] = &[
    "sjis",
    "shiftjis",
    "mskanji",
    "win932",
    "windows932",
    "shiftjis2004",
    "big5",
    "win950",
    "windows950",
    "gbk",
    "win936",
    "windows936",
    "gb18030",
    "uhc",
    "win949",
    "windows949",
    "johab",
];

/// Whether `name` (any spelling the server accepts) is a client encoding Airlock must
/// refuse.
pub fn unsafe_client_encoding(name: &str) -> bool {
    let clean: String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    UNSAFE_ENCODINGS.contains(&clean.as_str())
}

/// The class of setting `name` (normalised) to `value`: `None` when the value is not a
/// literal Airlock could read.
pub fn setting(name: &str, value: Option<&str>) -> Class {
    match name {
        "client_encoding" | "names" => match value {
            Some(v) if !unsafe_client_encoding(v) => Class::Session,
            _ => Class::Privilege,
        },
        // Custom settings (`my.var`) guard nothing of the server's.
        _ if name.contains('.') => Class::Session,
        // Switching a guard on (or to its normal state) lifts nothing.
        "standard_conforming_strings" | "default_transaction_read_only" | "transaction_read_only"
            if value.is_some_and(is_on) =>
        {
            Class::Session
        }
        "session_replication_role" if value == Some("origin") => Class::Session,
        _ if GUARDS.contains(&name) || GUARD_PREFIXES.iter().any(|p| name.starts_with(p)) => Class::Privilege,
        _ => Class::Session,
    }
}

/// How the server spells a boolean `on` (any unique prefix of `on`, `true`, `yes`).
fn is_on(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    matches!(v.as_str(), "on" | "true" | "tru" | "tr" | "t" | "yes" | "ye" | "y" | "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_and_encodings() {
        assert_eq!(setting("role", Some("x")), Class::Privilege);
        assert_eq!(setting("session_replication_role", Some("replica")), Class::Privilege);
        assert_eq!(setting("standard_conforming_strings", Some("off")), Class::Privilege);
        assert_eq!(setting("standard_conforming_strings", None), Class::Privilege);
        assert_eq!(setting("standard_conforming_strings", Some("on")), Class::Session);
        assert_eq!(setting("default_transaction_read_only", Some("true")), Class::Session);
        assert_eq!(setting("session_replication_role", Some("origin")), Class::Session);
        assert_eq!(setting("log_statement", Some("none")), Class::Privilege);
        assert_eq!(setting("jit", Some("off")), Class::Session);
        assert_eq!(setting("extra_float_digits", Some("3")), Class::Session);
        assert_eq!(setting("my.role", Some("x")), Class::Session);
        assert_eq!(setting("client_encoding", Some("UTF8")), Class::Session);
        assert_eq!(setting("client_encoding", Some("Shift_JIS")), Class::Privilege);
        assert_eq!(setting("names", None), Class::Privilege);
        assert!(
            unsafe_client_encoding("SJIS") && unsafe_client_encoding("win-932") && unsafe_client_encoding("GB18030")
        );
        assert!(!unsafe_client_encoding("LATIN1") && !unsafe_client_encoding("EUC_JP"));
    }
}
