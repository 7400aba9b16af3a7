//! Dynamic records: rows whose columns are known only at run time (files read
//! without a struct, YAML workflows).
//!
//! Each column has a [`DataType`]: `bool`, `int`, `float`, `string`, `date`,
//! `timestamp` ([`Timestamp`], an instant in UTC), `decimal` ([`Decimal`],
//! exact, for money), `bytes` ([`Bytes`], base64 in text) and `json` (any JSON
//! value). Each type is parsed from text and printed back in one place
//! ([`DataType::parse`], [`Value`]'s `Display` and `Serialize`), which every
//! connector uses: a value reads and writes alike in CSV and in JSON Lines.
//!
//! A [`Record`] is a row of [`Value`]s plus a shared [`Schema`] (`Arc`): the
//! column names and types are stored once per source, not once per row. Values
//! are small (24 bytes) and cheap to clone: text up to 22 bytes is kept inline
//! (no allocation per field), longer text is shared (`Arc<str>`), so passing a
//! string column through a stage never copies more than 24 bytes.
//!
//! ```
//! use dataflare::record::{DataType, Record, Schema, Value};
//! use std::sync::Arc;
//!
//! let schema = Arc::new(Schema::new([("id", DataType::Int), ("city", DataType::Str)]));
//! let row = Record::new(schema, vec![Value::Int(7), Value::from("Lyon")]);
//! assert_eq!(row.get("city").and_then(Value::as_str), Some("Lyon"));
//! assert_eq!(row.get("id").and_then(Value::as_i64), Some(7));
//! ```

mod bytes;
mod column;
mod date;
mod decimal;
#[allow(clippy::module_inception)]
mod record;
mod schema;
mod text;
mod timestamp;
mod value;

pub use bytes::{Bytes, ParseBytesError};
pub use column::{Column, ColumnType};
pub use date::Date;
pub use decimal::{Decimal, ParseDecimalError};
pub use record::Record;
pub use schema::{DataType, Field, ParseDataTypeError, Schema};
pub use text::Text;
pub use timestamp::{ParseTimestampError, Timestamp};
pub use value::Value;

/// `text` quoted for an error message, cut short when long.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
    }
}
