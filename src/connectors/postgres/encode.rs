//! Batches of records as `COPY` data: PostgreSQL's binary format (the
//! default) or CSV (for column types DataFlare does not map, whose text the
//! server parses).

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::Type;

use super::table::{Mapping, Table};
use super::types::{copy_field, data_type};
use crate::record::{Record, Value};

/// The format of the data a `COPY` sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyFormat {
    /// PostgreSQL's binary format (the default): no text to parse on the
    /// server; every column written must be of a type DataFlare maps (see
    /// [`postgres`](super)).
    #[default]
    Binary,
    /// CSV text, parsed by the server as its `COPY ... (FORMAT csv)` does:
    /// for columns of other types (`uuid`, `inet`, enums, arrays), written
    /// as the text of the record's value. `NULL` is an empty unquoted field,
    /// an empty string `""`; bytes are written as `\x` and hex.
    Csv,
}

impl CopyFormat {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CopyFormat::Binary => "binary",
            CopyFormat::Csv => "csv",
        }
    }
}

/// Checks that every column written can be sent in `format`.
pub(crate) fn check_columns(
    mapping: &Mapping,
    table: &Table,
    format: CopyFormat,
) -> Result<(), String> {
    if format == CopyFormat::Csv {
        return Ok(());
    }
    for c in &mapping.columns {
        if c.ty.as_ref().and_then(data_type).is_none() {
            return Err(format!(
                "column {:?} of table {} has type {}, which DataFlare does not write in binary; \
                 write it as text with .format(CopyFormat::Csv)",
                c.name, table.name, c.type_name
            ));
        }
    }
    Ok(())
}

/// Encodes `records` as rows of COPY data into `out`; with `seq`, a last
/// `int8` column numbers them from it. `first` is the number of records the
/// sink wrote before these, for messages.
pub(crate) fn rows(
    records: &[Record],
    mapping: &mut Mapping,
    format: CopyFormat,
    mut seq: Option<i64>,
    first: u64,
    out: &mut BytesMut,
) -> Result<(), String> {
    let columns = mapping.columns.clone();
    let width = columns.len() + seq.is_some() as usize;
    for (i, record) in records.iter().enumerate() {
        let fields = mapping
            .fields(record)
            .map_err(|e| format!("record {}: {e}", first + i as u64 + 1))?;
        let values = record.values();
        if format == CopyFormat::Binary {
            out.put_i16(width as i16);
        }
        for (k, (column, field)) in columns.iter().zip(fields).enumerate() {
            let value = field.map_or(&Value::Null, |f| &values[f]);
            let result = match format {
                CopyFormat::Binary => {
                    copy_field(value, column.ty.as_ref().expect("checked columns"), out)
                }
                CopyFormat::Csv => {
                    if k > 0 {
                        out.put_u8(b',');
                    }
                    csv_field(value, out);
                    Ok(())
                }
            };
            result.map_err(|e| {
                format!(
                    "record {}, column {:?}: {e}",
                    first + i as u64 + 1,
                    column.name
                )
            })?;
        }
        if let Some(n) = seq.as_mut() {
            match format {
                CopyFormat::Binary => {
                    copy_field(&Value::Int(*n), &Type::INT8, out)?;
                }
                CopyFormat::Csv => {
                    out.put_slice(format!(",{n}").as_bytes());
                }
            }
            *n += 1;
        }
        if format == CopyFormat::Csv {
            out.put_u8(b'\n');
        }
    }
    Ok(())
}

/// One CSV field as PostgreSQL reads it: `NULL` empty and unquoted, text
/// quoted when empty or holding a delimiter, quote or line break.
fn csv_field(value: &Value, out: &mut BytesMut) {
    let text;
    let s: &str = match value {
        Value::Null => return,
        Value::Str(s) => s,
        Value::Bytes(b) => {
            out.put_slice(b"\\x");
            for byte in b.iter() {
                out.put_slice(format!("{byte:02x}").as_bytes());
            }
            return;
        }
        v => {
            text = v.to_string();
            &text
        }
    };
    let quote =
        s.is_empty() || s == "\\." || s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if quote {
        out.put_u8(b'"');
        for part in s.split('"').enumerate() {
            if part.0 > 0 {
                out.put_slice(b"\"\"");
            }
            out.put_slice(part.1.as_bytes());
        }
        out.put_u8(b'"');
    } else {
        out.put_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> String {
        let mut out = BytesMut::new();
        csv_field(&v, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn csv_fields_tell_null_from_empty_and_quote_what_needs_it() {
        assert_eq!(field(Value::Null), "");
        assert_eq!(field(Value::from("")), "\"\"");
        assert_eq!(field(Value::from("a,\"b\"")), "\"a,\"\"b\"\"\"");
        assert_eq!(field(Value::from(&b"\x01\xff"[..])), "\\x01ff");
        assert_eq!(field(Value::Int(3)), "3");
    }
}
