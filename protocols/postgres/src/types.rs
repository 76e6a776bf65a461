//! Built-in type OIDs, and how a binary value of one reads as text.

/// `bool`.
pub const BOOL: u32 = 16;
/// `bytea`.
pub const BYTEA: u32 = 17;
/// `"char"`.
pub const CHAR: u32 = 18;
/// `name`.
pub const NAME: u32 = 19;
/// `int8`.
pub const INT8: u32 = 20;
/// `int2`.
pub const INT2: u32 = 21;
/// `int4`.
pub const INT4: u32 = 23;
/// `text`.
pub const TEXT: u32 = 25;
/// `oid`.
pub const OID: u32 = 26;
/// `json`.
pub const JSON: u32 = 114;
/// `float4`.
pub const FLOAT4: u32 = 700;
/// `float8`.
pub const FLOAT8: u32 = 701;
/// `unknown`.
pub const UNKNOWN: u32 = 705;
/// `bpchar`.
pub const BPCHAR: u32 = 1042;
/// `varchar`.
pub const VARCHAR: u32 = 1043;
/// `uuid`.
pub const UUID: u32 = 2950;
/// `jsonb`.
pub const JSONB: u32 = 3802;

/// A binary value of a built-in type as its text form, where it is simple to read;
/// `None` for other types or a value of the wrong length.
pub fn decode_binary(type_oid: u32, v: &[u8]) -> Option<String> {
    let int = |n: usize| -> Option<i64> {
        (v.len() == n).then(|| v.iter().fold(0i64, |acc, b| acc << 8 | i64::from(*b)) << (64 - 8 * n) >> (64 - 8 * n))
    };
    Some(match type_oid {
        BOOL => match v {
            [0] => "f".into(),
            [1] => "t".into(),
            _ => return None,
        },
        INT2 => int(2)?.to_string(),
        INT4 => int(4)?.to_string(),
        INT8 => int(8)?.to_string(),
        OID => (int(4)? as u32).to_string(),
        FLOAT4 => f32::from_be_bytes(v.try_into().ok()?).to_string(),
        FLOAT8 => f64::from_be_bytes(v.try_into().ok()?).to_string(),
        TEXT | VARCHAR | BPCHAR | NAME | CHAR | JSON | UNKNOWN => String::from_utf8(v.to_vec()).ok()?,
        JSONB => match v.split_first() {
            Some((1, text)) => String::from_utf8(text.to_vec()).ok()?,
            _ => return None,
        },
        UUID if v.len() == 16 => {
            let h: String = v.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
        }
        BYTEA => format!("\\x{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_read_as_text() {
        assert_eq!(decode_binary(INT4, &[0xff, 0xff, 0xff, 0xfe]).as_deref(), Some("-2"));
        assert_eq!(decode_binary(INT8, &42i64.to_be_bytes()).as_deref(), Some("42"));
        assert_eq!(decode_binary(INT2, &[0, 1, 2]), None, "wrong length");
        assert_eq!(decode_binary(BOOL, &[1]).as_deref(), Some("t"));
        assert_eq!(decode_binary(FLOAT8, &1.5f64.to_be_bytes()).as_deref(), Some("1.5"));
        assert_eq!(decode_binary(JSONB, b"\x01{}").as_deref(), Some("{}"));
        assert_eq!(decode_binary(BYTEA, &[0, 0xab]).as_deref(), Some("\\x00ab"));
        assert_eq!(decode_binary(UUID, &[0x12; 16]).as_deref(), Some("12121212-1212-1212-1212-121212121212"));
        assert_eq!(decode_binary(1186, &[0; 16]), None, "interval: not read");
    }
}
