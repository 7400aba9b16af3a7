//! Dynamic records: rows whose columns are known only at run time (files read
//! without a struct, YAML workflows).
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

mod date;
#[allow(clippy::module_inception)]
mod record;
mod schema;
mod text;
mod timestamp;
mod value;

pub use date::Date;
pub use record::Record;
pub use schema::{DataType, Field, Schema};
pub use text::Text;
pub use timestamp::Timestamp;
pub use value::Value;
