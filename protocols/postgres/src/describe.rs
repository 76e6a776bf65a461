//! Decoding messages for display: what a recorded stream said, message by message.
//! Used to replay recordings; never on the relay's hot path.

use crate::cursor::Cursor;
use crate::frame::ProtocolError;
use crate::message::{self, Fields, TransactionStatus};

/// A column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name as the query labelled it.
    pub name: String,
    /// OID of the table it comes from (0 for expressions).
    pub table_oid: u32,
    /// Attribute number in that table (0 for expressions).
    pub attnum: i16,
    /// Type OID.
    pub type_oid: u32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// A message, decoded for humans and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Described {
    /// Simple Query.
    Query(String),
    /// Parse.
    Parse {
        /// Prepared statement name ("" = unnamed).
        name: String,
        /// SQL text.
        query: String,
        /// Parameter type OIDs the client gave (0: the server infers it).
        types: Vec<u32>,
    },
    /// Bind with its parameter values (None = NULL).
    Bind {
        /// Portal.
        portal: String,
        /// Statement.
        statement: String,
        /// Parameter format codes (none: all text; one: for every parameter; else
        /// per parameter).
        formats: Vec<i16>,
        /// Values as sent.
        params: Vec<Option<Vec<u8>>>,
    },
    /// Describe of a statement (`S`) or a portal (`P`).
    Describe {
        /// `S` or `P`.
        kind: char,
        /// Its name.
        name: String,
    },
    /// ParameterDescription: the parameter types of the statement described.
    ParameterDescription(Vec<u32>),
    /// Execute.
    Execute {
        /// Portal.
        portal: String,
    },
    /// Sync.
    Sync,
    /// COPY data (either direction).
    CopyData(Vec<u8>),
    /// CopyDone.
    CopyDone,
    /// Terminate.
    Terminate,
    /// RowDescription.
    RowDescription(Vec<Column>),
    /// DataRow (None = NULL).
    DataRow(Vec<Option<Vec<u8>>>),
    /// CommandComplete tag, e.g. `SELECT 3`.
    CommandComplete(String),
    /// ErrorResponse.
    Error(Fields),
    /// NoticeResponse.
    Notice(Fields),
    /// ReadyForQuery.
    Ready(TransactionStatus),
    /// Anything else: tag and body length.
    Other(char, usize),
}

fn values(c: &mut Cursor<'_>) -> Result<Vec<Option<Vec<u8>>>, ProtocolError> {
    let n = c.i16()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = c.i32()?;
        out.push(if len < 0 { None } else { Some(c.take(len as usize)?.to_vec()) });
    }
    Ok(out)
}

/// The columns of a RowDescription body.
pub fn row_description(body: &[u8]) -> Result<Vec<Column>, ProtocolError> {
    let mut c = Cursor::new(body, "RowDescription");
    let n = c.i16()?;
    let mut cols = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let name = c.cstr()?.to_owned();
        let table_oid = c.i32()? as u32;
        let attnum = c.i16()?;
        let type_oid = c.i32()? as u32;
        c.i16()?;
        c.i32()?;
        let format = c.i16()?;
        cols.push(Column { name, table_oid, attnum, type_oid, format });
    }
    Ok(cols)
}

/// The values of a DataRow body, borrowed (None = NULL).
pub fn data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, ProtocolError> {
    let mut c = Cursor::new(body, "DataRow");
    let n = c.i16()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = c.i32()?;
        out.push(if len < 0 { None } else { Some(c.take(len as usize)?) });
    }
    Ok(out)
}

/// A Bind parameter: its byte range in the body and its value (None = NULL, with an
/// empty range just after its length).
pub type BindParameter<'a> = (std::ops::Range<usize>, Option<&'a [u8]>);

/// A Bind body, read: its parameter values and the result format codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Parameter format codes (none: all text; one: for every parameter; else per
    /// parameter).
    pub param_formats: Vec<i16>,
    /// Parameter values, with their places in the body.
    pub params: Vec<BindParameter<'a>>,
    /// Result format codes (none: all text; one: for every column; else per column).
    pub result_formats: Vec<i16>,
}

/// Reads a Bind body (portal and statement names, parameter formats, values, result
/// formats).
pub fn bind(body: &[u8]) -> Result<Bind<'_>, ProtocolError> {
    let mut c = Cursor::new(body, "Bind");
    c.cbytes()?;
    c.cbytes()?;
    let n = c.i16()?;
    let param_formats = (0..n).map(|_| c.i16()).collect::<Result<_, _>>()?;
    let n = c.i16()?;
    let mut params = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = c.i32()?;
        let start = body.len() - c.remaining().len();
        let value = if len < 0 { None } else { Some(c.take(len as usize)?) };
        params.push((start..start + value.map_or(0, <[u8]>::len), value));
    }
    let n = c.i16()?;
    let result_formats = (0..n).map(|_| c.i16()).collect::<Result<_, _>>()?;
    Ok(Bind { param_formats, params, result_formats })
}

/// Decodes a frontend message.
pub fn frontend(tag: u8, body: &[u8]) -> Result<Described, ProtocolError> {
    let mut c = Cursor::new(body, "frontend message");
    Ok(match tag {
        b'Q' => Described::Query(c.cstr()?.to_owned()),
        b'P' => {
            let (name, query) = (c.cstr()?.to_owned(), c.cstr()?.to_owned());
            let n = c.i16()?;
            let types = (0..n).map(|_| c.i32().map(|t| t as u32)).collect::<Result<_, _>>()?;
            Described::Parse { name, query, types }
        }
        b'B' => {
            let portal = c.cstr()?.to_owned();
            let statement = c.cstr()?.to_owned();
            let bind = bind(body)?;
            let params = bind.params.into_iter().map(|(_, v)| v.map(<[u8]>::to_vec)).collect();
            Described::Bind { portal, statement, formats: bind.param_formats, params }
        }
        b'D' => Described::Describe { kind: c.u8()? as char, name: c.cstr()?.to_owned() },
        b'E' => Described::Execute { portal: c.cstr()?.to_owned() },
        b'S' => Described::Sync,
        b'd' => Described::CopyData(body.to_vec()),
        b'c' => Described::CopyDone,
        b'X' => Described::Terminate,
        other => Described::Other(other as char, body.len()),
    })
}

/// Decodes a backend message.
pub fn backend(tag: u8, body: &[u8]) -> Result<Described, ProtocolError> {
    let mut c = Cursor::new(body, "backend message");
    Ok(match tag {
        b'T' => Described::RowDescription(row_description(body)?),
        b't' => {
            let n = c.i16()?;
            Described::ParameterDescription((0..n).map(|_| c.i32().map(|t| t as u32)).collect::<Result<_, _>>()?)
        }
        b'D' => Described::DataRow(values(&mut c)?),
        b'C' => Described::CommandComplete(c.cstr()?.to_owned()),
        b'E' => Described::Error(Fields::parse(body)?),
        b'N' => Described::Notice(Fields::parse(body)?),
        b'Z' => Described::Ready(message::parse_ready_for_query(body)?),
        b'd' => Described::CopyData(body.to_vec()),
        b'c' => Described::CopyDone,
        other => Described::Other(other as char, body.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_and_bind_formats() {
        // Three values: "a@b.io", NULL, "".
        let body = b"\0\x03\0\0\0\x06a@b.io\xff\xff\xff\xff\0\0\0\0";
        assert_eq!(data_row(body).unwrap(), vec![Some(&b"a@b.io"[..]), None, Some(&b""[..])]);
        assert!(data_row(&body[..body.len() - 1]).is_err());
        // portal "", statement "s", no param formats, one NULL param, result formats [1, 0]
        let body = b"\0s\0\0\0\0\x01\xff\xff\xff\xff\0\x02\0\x01\0\0";
        assert_eq!(
            bind(body).unwrap(),
            Bind { param_formats: vec![], params: vec![(11..11, None)], result_formats: vec![1, 0] }
        );
        assert!(bind(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn data_rows_and_bind_values() {
        let body = [0, 2, 0, 0, 0, 1, b'7', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(backend(b'D', &body).unwrap(), Described::DataRow(vec![Some(b"7".to_vec()), None]));
        let mut bind = b"\0s1\0".to_vec();
        bind.extend([0, 0, 0, 1, 0, 0, 0, 2, b'4', b'2', 0, 0]);
        assert_eq!(
            frontend(b'B', &bind).unwrap(),
            Described::Bind {
                portal: "".into(),
                statement: "s1".into(),
                formats: vec![],
                params: vec![Some(b"42".to_vec())]
            }
        );
        assert!(backend(b'D', &[0, 1, 0, 0, 0, 9, b'x']).is_err(), "a value longer than the body");
    }
}
