//! COPY as a gateway reads it: the query a `COPY ... TO STDOUT` runs and the layout of
//! its rows ([`copy_source`]), and how a text or CSV data line splits into fields
//! ([`copy_fields`]).

use crate::sql::{
    self,
    lexer::{Token, TokenKind, ident_at, skip_parens},
};

/// Where a `COPY ... TO STDOUT` reads from, as a query Airlock can describe.
#[derive(Debug, PartialEq, Eq)]
pub struct CopySource {
    /// A query returning the rows the COPY sends: its own query, or `SELECT columns
    /// FROM table` for a table (all columns without a list).
    pub select: String,
    /// `FORMAT csv` (or the older `CSV`): comma-separated, `"`-quoted lines.
    pub csv: bool,
    /// `HEADER`: the first line names the columns.
    pub header: bool,
    /// `FORMAT binary` (or the older `BINARY`): tuples of typed fields.
    pub binary: bool,
    /// Delimiter, quote, escape or NULL options: not parsed, so not masked by column.
    pub custom_format: bool,
}

/// The source of the one COPY TO STDOUT in `query`.
pub fn copy_source(query: &str) -> Option<CopySource> {
    let statements = sql::split(query);
    let mut copies = statements.iter().filter(|s| s.tokens.first().is_some_and(|t| t.is("copy")));
    let (Some(s), None) = (copies.next(), copies.next()) else { return None };
    let t = &s.tokens;
    // The index of the `)` closing the `(` at `open`.
    let closing = |open: usize| skip_parens(t, open)?.checked_sub(1);
    let between = |a: usize, b: usize| query.get(t.get(a)?.offset..t.get(b)?.offset);
    let (select, rest) = if t.get(1)?.kind == TokenKind::LParen {
        let close = closing(1)?;
        (between(2, close)?.trim().to_owned(), t.get(close + 1..)?)
    } else {
        let mut i = 1;
        while i < t.len() && !t[i].is("to") && t[i].kind != TokenKind::LParen {
            i += 1;
        }
        let last = t.get(i.checked_sub(1)?)?;
        let table = query.get(t.get(1)?.offset..last.offset + last.text.len())?;
        let (columns, after) = if t.get(i)?.kind == TokenKind::LParen {
            let close = closing(i)?;
            (between(i + 1, close)?.trim(), close + 1)
        } else {
            ("*", i)
        };
        (format!("SELECT {columns} FROM {table}"), t.get(after..)?)
    };
    if !(rest.first()?.is("to") && rest.get(1)?.is("stdout")) {
        return None;
    }
    let options = read_options(&rest[2..]);
    let default = Options::default();
    let options = options.unwrap_or(Options { custom: true, ..default });
    Some(CopySource {
        select,
        csv: options.format == Format::Csv,
        header: options.header,
        binary: options.format == Format::Binary,
        custom_format: options.custom,
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Format {
    #[default]
    Text,
    Csv,
    Binary,
}

/// The options of a COPY TO, as far as masking cares.
#[derive(Debug, Clone, Copy, Default)]
struct Options {
    format: Format,
    header: bool,
    /// A layout option set to something else than its default, or one Airlock does
    /// not read (an encoding, FORCE QUOTE...).
    custom: bool,
}

/// Reads the options after `TO STDOUT` as the grammar does, in either spelling:
/// `[WITH] (name [value], ...)` or the older `[WITH] BINARY | CSV | HEADER |
/// DELIMITER [AS] 'x' | NULL [AS] 'x' | QUOTE [AS] 'x' | ESCAPE [AS] 'x' ...`. `None`
/// for anything not understood (a value spelled in a way Airlock does not read, a
/// token out of place), which the caller treats as a custom layout (fail closed).
fn read_options(t: &[Token<'_>]) -> Option<Options> {
    let mut t = t;
    if t.first().is_some_and(|w| w.is("with")) {
        t = &t[1..];
    }
    // (name, value) pairs in order.
    let mut pairs: Vec<(String, Option<&Token<'_>>)> = Vec::new();
    if t.first().is_some_and(|w| w.kind == TokenKind::LParen) {
        let close = skip_parens(t, 0)?;
        if close != t.len() {
            return None;
        }
        for option in t[1..close - 1].split(|w| w.kind == TokenKind::Comma) {
            let (name, span) = ident_at(option, 0)?;
            match &option[span..] {
                [] => pairs.push((name, None)),
                [value] => pairs.push((name, Some(value))),
                _ => return None,
            }
        }
    } else {
        let mut i = 0;
        while i < t.len() {
            let word = t[i].kind == TokenKind::Word;
            let name = t[i].text.to_ascii_lowercase();
            match name.as_str() {
                "binary" | "csv" | "header" if word => {
                    pairs.push(if name == "header" { (name, None) } else { ("format".into(), Some(&t[i])) });
                    i += 1;
                }
                "delimiter" | "null" | "quote" | "escape" if word => {
                    i += 1 + usize::from(t.get(i + 1).is_some_and(|w| w.is("as")));
                    pairs.push((name, Some(t.get(i)?)));
                    i += 1;
                }
                _ => return None,
            }
        }
    }
    let mut options = Options::default();
    let mut layout: Vec<(String, String)> = Vec::new();
    for (name, value) in pairs {
        match (name.as_str(), value) {
            ("format", Some(v)) => {
                options.format = match option_word(v)?.as_str() {
                    "text" => Format::Text,
                    "csv" => Format::Csv,
                    "binary" => Format::Binary,
                    _ => return None,
                }
            }
            ("header", None) => options.header = true,
            ("header", Some(v)) => {
                options.header = match option_word(v)?.to_ascii_lowercase().as_str() {
                    "true" | "on" | "1" => true,
                    "false" | "off" | "0" => false,
                    _ => return None,
                }
            }
            ("delimiter" | "null" | "quote" | "escape", Some(v)) if v.kind == TokenKind::String => {
                layout.push((name, copy_option_value(v)?));
            }
            _ => options.custom = true,
        }
    }
    let csv = options.format == Format::Csv;
    for (name, value) in layout {
        let default = match (name.as_str(), csv) {
            ("delimiter", false) => "\t",
            ("delimiter", true) => ",",
            ("null", false) => "\\N",
            ("null", true) => "",
            ("quote" | "escape", true) => "\"",
            _ => return None,
        };
        options.custom |= value != default;
    }
    Some(options)
}

/// A word or string an option takes as its value: a word as the server folds it, a
/// quoted name or a plain string as written. `None` for what Airlock does not read.
fn option_word(tok: &Token<'_>) -> Option<String> {
    match tok.kind {
        TokenKind::Word | TokenKind::QuotedIdent => ident_at(std::slice::from_ref(tok), 0).map(|(name, _)| name),
        TokenKind::String => copy_option_value(tok),
        TokenKind::Number => Some(tok.text.to_owned()),
        _ => None,
    }
}

/// A COPY option's string as the server reads it with `standard_conforming_strings`
/// on (Airlock holds turning it off): a plain string's backslashes are literal, an
/// `E''` string's `\t`, `\n`, `\\` and `\'` are escapes; anything else is `None`.
pub fn copy_option_value(tok: &Token<'_>) -> Option<String> {
    let text = tok.text;
    if let Some(body) = text.strip_prefix('\'').and_then(|b| b.strip_suffix('\'')) {
        return (!body.replace("''", "").contains('\'')).then(|| body.replace("''", "'"));
    }
    let body = text.strip_prefix(['e', 'E'])?.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next()? {
                't' => '\t',
                'n' => '\n',
                c @ ('\\' | '\'') => c,
                _ => return None,
            },
            '\'' => match chars.next()? {
                '\'' => '\'',
                _ => return None,
            },
            c => c,
        });
    }
    Some(out)
}

/// Splits one COPY line into fields: tab-separated text format (where tabs inside
/// values are escaped), or CSV with `"` quotes.
pub fn copy_fields(line: &[u8], csv: bool) -> Vec<&[u8]> {
    if !csv {
        return line.split(|b| *b == b'\t').collect();
    }
    let mut fields = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, b) in line.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources() {
        let src = |q: &str| copy_source(q).map(|s| (s.select, s.csv, s.header, s.custom_format));
        let binary = |q: &str| copy_source(q).map(|s| (s.binary, s.custom_format));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT binary)"), Some((true, false)));
        assert_eq!(binary("copy t to stdout with binary"), Some((true, false)));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT \"binary\")"), Some((true, false)));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT text)"), Some((false, false)));
        assert_eq!(binary("COPY t TO STDOUT (FORMAT binary, ENCODING 'latin1')"), Some((true, true)));
        assert_eq!(
            src("COPY (select email from t) TO STDOUT"),
            Some(("select email from t".into(), false, false, false))
        );
        assert_eq!(
            src("copy public.t (a, b) to stdout with csv header"),
            Some(("SELECT a, b FROM public.t".into(), true, true, false))
        );
        assert_eq!(src("COPY t TO STDOUT (FORMAT csv, DELIMITER ';')").map(|s| s.3), Some(true));
        assert_eq!(src("copy t to stdout (\"delimiter\" '|')").map(|s| s.3), Some(true));
        assert_eq!(src("copy t to stdout (format \"csv\", header)").map(|s| (s.1, s.3)), Some((true, false)));
        assert_eq!(src("copy t to stdout (encoding 'latin1')").map(|s| s.3), Some(true));
        // Options set to their defaults are none (psycopg2's copy_to).
        assert_eq!(src("COPY t TO stdout WITH DELIMITER AS '\t' NULL AS E'\\\\N'").map(|s| s.3), Some(false));
        assert_eq!(src("COPY t TO stdout WITH DELIMITER AS E'\\t' NULL AS '\\N'").map(|s| s.3), Some(false));
        assert_eq!(src("COPY t TO stdout (FORMAT csv, DELIMITER ',', NULL '', QUOTE '\"')").map(|s| s.3), Some(false));
        assert_eq!(src("COPY t TO stdout WITH DELIMITER AS '|'").map(|s| s.3), Some(true));
        assert_eq!(src("COPY t TO stdout WITH NULL AS 'x'").map(|s| s.3), Some(true));
        // Spellings Airlock does not read are custom; a header turned off is none.
        assert_eq!(src("COPY t TO STDOUT (FORMAT $$csv$$)").map(|s| s.3), Some(true));
        assert_eq!(src("COPY t TO STDOUT (FORMAT U&'csv')").map(|s| s.3), Some(true));
        assert_eq!(
            src("COPY t TO STDOUT (FORMAT csv, HEADER false)").map(|s| (s.1, s.2, s.3)),
            Some((true, false, false))
        );
        assert_eq!(src("COPY t TO STDOUT (FORMAT csv, HEADER off)").map(|s| s.2), Some(false));
        assert_eq!(src("COPY t TO STDOUT (FORMAT csv, HEADER 'true')").map(|s| s.2), Some(true));
        assert_eq!(src("COPY t TO STDOUT (FORMAT csv, HEADER match)").map(|s| s.3), Some(true));
        assert_eq!(
            src("COPY t TO STDOUT (FORMAT 'CSV')").map(|s| s.3),
            Some(true),
            "the server reads 'CSV' as no format"
        );
        assert_eq!(src("COPY t TO STDOUT (NULL 'csv')").map(|s| (s.1, s.3)), Some((false, true)));
        assert_eq!(src("COPY t TO STDOUT WITH CSV DELIMITER AS $$,$$").map(|s| s.3), Some(true));
        assert_eq!(src("COPY t TO STDOUT (FORMAT csv) extra").map(|s| s.3), Some(true));
        assert_eq!(src("COPY t FROM STDIN"), None);
        assert_eq!(src("COPY t TO STDOUT; COPY u TO STDOUT"), None);
    }

    #[test]
    fn copy_lines_split_into_fields() {
        assert_eq!(copy_fields(b"a,\"b,c\",d", true), vec![&b"a"[..], &b"\"b,c\""[..], &b"d"[..]]);
        assert_eq!(copy_fields(b"a\tb", false), vec![&b"a"[..], &b"b"[..]]);
        // A tab in a CSV line and a comma in a text line are data.
        assert_eq!(copy_fields(b"a\tb,", true), vec![&b"a\tb"[..], &b""[..]]);
        assert_eq!(copy_fields(b"a,b", false), vec![&b"a,b"[..]]);
        assert_eq!(copy_fields(b"", false), vec![&b""[..]]);
    }

    #[test]
    fn copy_option_strings_are_read_as_the_server_reads_them() {
        let value = |sql: &str| {
            let t = sql::lexer::tokens(sql);
            copy_option_value(t.first()?)
        };
        assert_eq!(value("'a''b'").as_deref(), Some("a'b"));
        // Backslashes are literal in a plain string, escapes in an E'' string.
        assert_eq!(value("'\\N'").as_deref(), Some("\\N"));
        assert_eq!(value("E'\\t\\n\\\\\\''").as_deref(), Some("\t\n\\'"));
        assert_eq!(value("E'\\x41'"), None);
        assert_eq!(value("$$x$$"), None);
        assert_eq!(value("word"), None);
    }
}
