//! Built-in data types by OID (as in the server's `pg_type.dat`), and what their values
//! can carry: which may hold a secret in their text form, which carry text taken from
//! another column, and which are their text in binary format too.

/// `bool`.
pub const BOOL: u32 = 16;
/// `bytea`: binary data (hex text `\x...` in text format).
pub const BYTEA: u32 = 17;
/// `"char"`: one byte.
pub const CHAR: u32 = 18;
/// `name`: an identifier of up to 63 bytes.
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
/// `xid`: a transaction id.
pub const XID: u32 = 28;
/// `json`.
pub const JSON: u32 = 114;
/// `xml`.
pub const XML: u32 = 142;
/// `float4`.
pub const FLOAT4: u32 = 700;
/// `float8`.
pub const FLOAT8: u32 = 701;
/// `unknown`: an untyped literal, sent as its text.
pub const UNKNOWN: u32 = 705;
/// `text[]`.
pub const TEXT_ARRAY: u32 = 1009;
/// `bpchar`: `char(n)`.
pub const BPCHAR: u32 = 1042;
/// `varchar`.
pub const VARCHAR: u32 = 1043;
/// `date`.
pub const DATE: u32 = 1082;
/// `time`.
pub const TIME: u32 = 1083;
/// `timestamp`.
pub const TIMESTAMP: u32 = 1114;
/// `timestamptz`.
pub const TIMESTAMPTZ: u32 = 1184;
/// `interval`.
pub const INTERVAL: u32 = 1186;
/// `timetz`.
pub const TIMETZ: u32 = 1266;
/// `record`: an anonymous row.
pub const RECORD: u32 = 2249;
/// `uuid`.
pub const UUID: u32 = 2950;
/// `pg_lsn`: a write-ahead log position.
pub const PG_LSN: u32 = 3220;
/// `jsonb`: a version byte, then JSON text, in binary format.
pub const JSONB: u32 = 3802;
/// `refcursor`: a cursor's name, its text in binary format.
pub const REFCURSOR: u32 = 1790;
/// `jsonpath`: a version byte, then its text, in binary format.
pub const JSONPATH: u32 = 4072;
/// `numeric`.
pub const NUMERIC: u32 = 1700;
/// `money`.
pub const MONEY: u32 = 790;
/// `xid8`.
pub const XID8: u32 = 5069;
/// The first OID of an object the database defined itself (`FirstNormalObjectId`):
/// composites, domains, enums and their arrays.
pub const FIRST_NORMAL_OID: u32 = 16384;

/// Fixed-format types too short or too structured for their text form to hold a
/// secret. `bytea` is among them: its text form is hex, read separately as the bytes
/// it encodes.
const NO_SECRETS: [u32; 15] =
    [BOOL, INT2, INT4, OID, FLOAT4, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ, UUID, XID, PG_LSN, BYTEA];

/// Types whose binary form is their text: text types, `bytea` (its bytes), `jsonb` and
/// `jsonpath` (a version byte, then text).
const TEXT_IN_BINARY: [u32; 12] =
    [TEXT, VARCHAR, BPCHAR, NAME, JSON, XML, CHAR, UNKNOWN, BYTEA, JSONB, REFCURSOR, JSONPATH];

/// Numbers, times and fixed structures (and arrays of them): neither their text nor
/// their binary form can carry text taken from another column. Every other type is
/// taken to carry text (fail closed: a cast to a type not listed keeps its bytes).
const NO_TEXT: [u32; 32] = [
    BOOL,
    INT2,
    INT4,
    INT8,
    OID,
    FLOAT4,
    FLOAT8,
    NUMERIC,
    MONEY,
    DATE,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    INTERVAL,
    TIMETZ,
    UUID,
    XID,
    PG_LSN, // arrays of them:
    1000,
    1005,
    1007,
    1016,
    1028,
    1021,
    1022,
    1231,
    1182,
    1183,
    1115,
    1185,
    1187,
    2951,
];

/// Fixed-format types too small or too structured for their binary form to hold a
/// secret's digits or text (a card number needs 13 digits: more than an `int4` or a
/// `float4` holds exactly).
const SHORT_FIXED: [u32; 14] =
    [BOOL, INT2, INT4, OID, FLOAT4, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ, UUID, XID, PG_LSN];

/// Whether a binary value of this type is too small or structured to hold a secret.
pub fn short_fixed(type_oid: u32) -> bool {
    SHORT_FIXED.contains(&type_oid)
}

/// Types whose text form can carry a secret: everything but a few fixed-format types
/// too short or too structured to hold one. Unknown (user-defined) types are read.
pub fn may_hold_secrets(type_oid: u32) -> bool {
    !NO_SECRETS.contains(&type_oid)
}

/// Whether a value of this type in binary format is its text (or its bytes, for
/// `bytea`), so that value detectors can read it as it is.
pub fn text_in_binary(type_oid: u32) -> bool {
    TEXT_IN_BINARY.contains(&type_oid)
}

/// Whether values of this type can carry text taken from another column: all but
/// numbers, times and fixed structures, so text, JSON, XML, bytea, records, arrays of
/// them, the database's own types and any type Airlock does not know.
pub fn carries_text(type_oid: u32) -> bool {
    !NO_TEXT.contains(&type_oid)
}

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
        XID8 => (int(8)? as u64).to_string(),
        NUMERIC => numeric(v)?,
        // Cents; the digits as the detectors would read a plain amount.
        MONEY => {
            let cents = int(8)?;
            format!(
                "{}{}.{:02}",
                if cents < 0 { "-" } else { "" },
                (cents / 100).unsigned_abs(),
                (cents % 100).unsigned_abs()
            )
        }
        OID => (int(4)? as u32).to_string(),
        FLOAT4 => f32::from_be_bytes(v.try_into().ok()?).to_string(),
        FLOAT8 => {
            let x = f64::from_be_bytes(v.try_into().ok()?);
            // A whole number as its digits (as the detectors would read it).
            if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e20 { format!("{x:.0}") } else { x.to_string() }
        }
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

/// How deep arrays, records and ranges inside each other are read.
const MAX_NESTING: usize = 4;

/// A binary value as text the detectors can read: a built-in scalar as its text form,
/// an array, record or range as its elements' texts joined by commas, read by the
/// element types the value itself names (arrays, records) or its type implies
/// (ranges). `None` when it is not read (an unknown element type, malformed framing).
pub fn readable_binary(type_oid: u32, v: &[u8]) -> Option<String> {
    readable(type_oid, v, 0)
}

fn readable(type_oid: u32, v: &[u8], depth: usize) -> Option<String> {
    if depth > MAX_NESTING {
        return None;
    }
    if let Some(text) = decode_binary(type_oid, v) {
        return Some(text);
    }
    if let Some(subtype) = range_subtype(type_oid) {
        return range(subtype, v, depth);
    }
    array(v, depth).or_else(|| record(v, depth))
}

/// The element type of a built-in range.
fn range_subtype(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        3904 => INT4,
        3906 => NUMERIC,
        3908 => TIMESTAMP,
        3910 => TIMESTAMPTZ,
        3912 => DATE,
        3926 => INT8,
        _ => return None,
    })
}

/// A value framed as `len:i32 bytes` (`-1`: NULL) at the start of `v`, and the rest.
fn framed(v: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let len = i32::from_be_bytes(v.get(..4)?.try_into().ok()?);
    let rest = &v[4..];
    if len < 0 {
        return (len == -1).then_some((None, rest));
    }
    let len = len as usize;
    Some((Some(rest.get(..len)?), &rest[len..]))
}

/// A binary array (`ndim`, flags, element type, dimensions, then the elements), only
/// if its framing holds exactly.
fn array(v: &[u8], depth: usize) -> Option<String> {
    let be32 = |at: usize| v.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (ndim, flags, element) = (be32(0)?, be32(4)?, be32(8)? as u32);
    if !(0..=6).contains(&ndim) || !(0..=1).contains(&flags) {
        return None;
    }
    let mut count: usize = 1;
    for d in 0..ndim as usize {
        count = count.checked_mul(usize::try_from(be32(12 + 8 * d)?).ok()?)?;
    }
    let count = if ndim == 0 { 0 } else { count };
    let mut rest = v.get(12 + 8 * ndim as usize..)?;
    let mut texts = Vec::new();
    for _ in 0..count {
        let (value, after) = framed(rest)?;
        if let Some(value) = value {
            texts.push(readable(element, value, depth + 1)?);
        }
        rest = after;
    }
    rest.is_empty().then(|| texts.join(","))
}

/// A binary record (field count, then each field's type, length and bytes), only if
/// its framing holds exactly.
fn record(v: &[u8], depth: usize) -> Option<String> {
    let count = i32::from_be_bytes(v.get(..4)?.try_into().ok()?);
    if !(0..=1600).contains(&count) {
        return None;
    }
    let mut rest = &v[4..];
    let mut texts = Vec::new();
    for _ in 0..count {
        let type_oid = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let (value, after) = framed(&rest[4..])?;
        if let Some(value) = value {
            texts.push(readable(type_oid, value, depth + 1)?);
        }
        rest = after;
    }
    rest.is_empty().then(|| texts.join(","))
}

/// A binary range: its flags, then the bounds it has.
fn range(subtype: u32, v: &[u8], depth: usize) -> Option<String> {
    const EMPTY: u8 = 0x01;
    const LOWER_INFINITE: u8 = 0x08;
    const UPPER_INFINITE: u8 = 0x10;
    let (&flags, mut rest) = v.split_first()?;
    if flags & EMPTY != 0 {
        return rest.is_empty().then(String::new);
    }
    let mut texts = Vec::new();
    for infinite in [LOWER_INFINITE, UPPER_INFINITE] {
        if flags & infinite == 0 {
            let (value, after) = framed(rest)?;
            texts.push(readable(subtype, value?, depth + 1)?);
            rest = after;
        }
    }
    rest.is_empty().then(|| texts.join(","))
}

/// A binary `numeric` as its text: sign, then base-10000 digit groups around the
/// decimal point, to its display scale.
fn numeric(v: &[u8]) -> Option<String> {
    let be16 = |i: usize| v.get(i..i + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let (ndigits, weight, sign, dscale) = (be16(0)?, be16(2)?, be16(4)? as u16, be16(6)?);
    if ndigits < 0 || dscale < 0 || v.len() != 8 + 2 * ndigits as usize {
        return None;
    }
    let digit = |i: i32| if (0..i32::from(ndigits)).contains(&i) { be16(8 + 2 * i as usize) } else { Some(0) };
    let mut out = match sign {
        0x0000 => String::new(),
        0x4000 => "-".to_owned(),
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    };
    if weight < 0 {
        out.push('0');
    }
    for i in 0..=i32::from(weight) {
        let d = digit(i)?;
        out.push_str(&if i == 0 { d.to_string() } else { format!("{d:04}") });
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut i = i32::from(weight) + 1;
        while fraction.len() < dscale as usize {
            fraction.push_str(&format!("{:04}", digit(i)?));
            i += 1;
        }
        fraction.truncate(dscale as usize);
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_looked_for_in_all_but_fixed_formats() {
        for t in [BOOL, INT4, TIMESTAMPTZ, UUID, BYTEA] {
            assert!(!may_hold_secrets(t), "{t}");
        }
        // Any type not listed is read: int8, numeric, the database's own.
        for t in [TEXT, JSONB, 20, 1700, RECORD, FIRST_NORMAL_OID + 7] {
            assert!(may_hold_secrets(t), "{t}");
        }
    }

    #[test]
    fn text_types_are_text_in_binary_and_carry_text() {
        for t in TEXT_IN_BINARY {
            assert!(carries_text(t), "{t}");
        }
        assert!(text_in_binary(JSONB) && text_in_binary(BYTEA) && text_in_binary(UNKNOWN));
        // Arrays and records frame their text; numbers carry none.
        assert!(!text_in_binary(TEXT_ARRAY) && !text_in_binary(RECORD) && !text_in_binary(INT4));
        assert!(carries_text(TEXT_ARRAY) && carries_text(RECORD) && carries_text(FIRST_NORMAL_OID));
        assert!(!carries_text(INT4) && !carries_text(TIMESTAMP) && !carries_text(INT8) && !carries_text(1007));
        // A type not listed (refcursor, a cast away from text) is taken to carry text.
        assert!(carries_text(REFCURSOR) && carries_text(4072) && carries_text(FIRST_NORMAL_OID - 1));
        assert!(text_in_binary(REFCURSOR) && text_in_binary(JSONPATH));
    }

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
        // numeric: 5500005555555559 is groups 5500 0055 5555 5559, weight 3; -0.00123 is
        // group 12 (0.0012) then 3000, weight -1, scale 5.
        let numeric = |ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]| {
            let mut v = Vec::new();
            for x in [ndigits, weight, sign as i16, dscale].iter().chain(digits) {
                v.extend_from_slice(&x.to_be_bytes());
            }
            decode_binary(NUMERIC, &v)
        };
        assert_eq!(numeric(4, 3, 0, 0, &[5500, 55, 5555, 5559]).as_deref(), Some("5500005555555559"));
        assert_eq!(numeric(2, -1, 0x4000, 5, &[12, 3000]).as_deref(), Some("-0.00123"));
        assert_eq!(numeric(2, 0, 0, 2, &[7, 5000]).as_deref(), Some("7.50"));
        assert_eq!(numeric(0, 0, 0xC000, 0, &[]).as_deref(), Some("NaN"));
        assert_eq!(numeric(1, 0, 0x1234, 0, &[1]), None, "an unknown sign");
        let card = 4111111111111111i64;
        assert_eq!(decode_binary(FLOAT8, &(card as f64).to_be_bytes()).as_deref(), Some("4111111111111111"));
        assert_eq!(decode_binary(MONEY, &(card * 100 + 5).to_be_bytes()).as_deref(), Some("4111111111111111.05"));
        assert_eq!(decode_binary(XID8, &card.to_be_bytes()).as_deref(), Some("4111111111111111"));
    }

    #[test]
    fn arrays_records_and_ranges_read_as_their_elements() {
        let framed = |v: &[u8]| [&(v.len() as i32).to_be_bytes()[..], v].concat();
        let card = 4111111111111111i64.to_be_bytes();
        // int8[] of two elements, one NULL.
        let array = [
            &1i32.to_be_bytes()[..],
            &1i32.to_be_bytes(),
            &INT8.to_be_bytes(),
            &2i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &framed(&card),
            &(-1i32).to_be_bytes(),
        ]
        .concat();
        assert_eq!(readable_binary(1016, &array).as_deref(), Some("4111111111111111"));
        assert_eq!(readable_binary(1016, &array[..array.len() - 1]), None, "cut short");
        // A record of an int8 and a text.
        let record =
            [&2i32.to_be_bytes()[..], &INT8.to_be_bytes(), &framed(&card), &TEXT.to_be_bytes(), &framed(b"x")].concat();
        assert_eq!(readable_binary(RECORD, &record).as_deref(), Some("4111111111111111,x"));
        // int8range [card, infinity).
        let range = [&[0x02 | 0x10][..], &framed(&card)].concat();
        assert_eq!(readable_binary(3926, &range).as_deref(), Some("4111111111111111"));
        assert_eq!(readable_binary(3926, &[0x01]).as_deref(), Some(""));
        // Framing that does not hold is not read.
        assert_eq!(readable_binary(FIRST_NORMAL_OID, b"\x00\x00\x00\x09junk"), None);
    }
}
