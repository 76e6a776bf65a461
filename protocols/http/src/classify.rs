//! What an HTTP request may do, judged by its method alone.
//!
//! RFC 9110 §9.2.1 calls GET, HEAD and OPTIONS safe (read-only by contract); POST, PUT
//! and PATCH change state; DELETE removes it. Anything else, TRACE and CONNECT
//! included, is not understood here and left to policy as [`Class::Unknown`]. Method
//! names are case-sensitive (RFC 9110 §9.1): `get` is not GET, and a server that
//! treats it as GET is the reason it must not be classified as a read.

use airlock_classes::Class;

/// The class of a request with this method.
pub fn method_class(method: &str) -> Class {
    match method {
        "GET" | "HEAD" | "OPTIONS" => Class::Read,
        "POST" | "PUT" | "PATCH" => Class::Write,
        "DELETE" => Class::Destructive,
        _ => Class::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_methods_read_and_unsafe_ones_write_or_destroy() {
        for (method, class) in [
            ("GET", Class::Read),
            ("HEAD", Class::Read),
            ("OPTIONS", Class::Read),
            ("POST", Class::Write),
            ("PUT", Class::Write),
            ("PATCH", Class::Write),
            ("DELETE", Class::Destructive),
        ] {
            assert_eq!(method_class(method), class, "{method}");
        }
    }

    #[test]
    fn other_methods_and_other_spellings_are_unknown() {
        for method in ["TRACE", "CONNECT", "PROPFIND", "MKCOL", "get", "Get", "DELETE ", " GET", "", "GET\0"] {
            assert_eq!(method_class(method), Class::Unknown, "{method:?}");
        }
    }
}
