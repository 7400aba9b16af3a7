//! PostgreSQL sources and sinks (feature `postgres`), on `tokio-postgres`.
//!
//! - [`query`]: the rows of a query, streamed through `COPY ... TO STDOUT`
//!   (binary) or, with parameters, a server-side portal a fetch at a time, as dynamic [`Record`](crate::record::Record)s typed by
//!   the result's columns, or into your own type with serde
//!   ([`typed`](PgSource::typed)); [`table`]: all rows of a table.
//! - [`incremental`]: the rows of a table or query past the last high-water
//!   mark, in cursor order, each row read once over scheduled runs.
//! - [`copy_in`]: a sink loading a table through `COPY ... FROM STDIN`.
//! - [`upsert`]: a sink inserting or updating rows by key, in batches.
//!
//! Both sinks write the whole run in one transaction, committed with the
//! run's other outputs only when every branch of the run has succeeded; a
//! failed or cancelled run rolls it back, leaving the table as it was (see
//! [`PgSink`] for the non-transactional mode of very large loads).
//!
//! Where to connect is a [`Connect`]: a connection string or a
//! `tokio_postgres::Config`. The password is never shown: errors, log
//! lines and the report name the server as `postgres://user@host:port/db`.
//!
//! # Types
//!
//! | PostgreSQL | [`DataType`](crate::record::DataType) |
//! |---|---|
//! | `bool` | `Bool` |
//! | `int2`, `int4`, `int8` | `Int` |
//! | `float4`, `float8` | `Float` |
//! | `numeric` | `Decimal` (up to 28 significant digits; larger values are a record-level error naming the column) |
//! | `text`, `varchar`, `char(n)`, `name` | `Str` |
//! | `date` | `Date` |
//! | `timestamp`, `timestamptz` | `Timestamp` (a `timestamp` without time zone is taken as UTC; `±infinity` is `Timestamp::MAX`/`MIN`) |
//! | `json`, `jsonb` | `Json` (JSON `null` reads as `Null`) |
//! | `bytea` | `Bytes` |
//!
//! `NULL` is [`Value::Null`](crate::record::Value::Null). Any other column
//! type fails the run before a row is read, naming the column and its type;
//! cast it in the query (`col::text`). Writing, a value is converted to its
//! column's type where that is exact: text is parsed as the column's type (as
//! [`DataType::parse`](crate::record::DataType::parse) reads a CSV field), an
//! integer goes into a float or numeric column, anything into a text column
//! as its text.

mod conn;
mod de;
mod encode;
mod error;
mod incremental;
mod sink;
mod source;
mod table;
#[cfg(feature = "postgres-tls")]
mod tls;
mod types;

pub use conn::Connect;
pub use encode::CopyFormat;
pub use error::PgError;
pub use incremental::{HighWaterMark, Incremental, Mark, ParseMarkError, incremental};
pub use sink::{PgSink, copy_in, upsert};
pub use source::{PgSource, query, table};
/// The PostgreSQL client DataFlare uses, for its [`Config`](tokio_postgres::Config).
pub use tokio_postgres;
