//! CSV sources and sinks: typed records through serde, or dynamic
//! [`Record`](crate::record::Record)s; exact errors (file, line, byte, field);
//! output files replaced atomically when the run completes.
//!
//! Parsing and writing run on blocking threads, linked to the pipeline by
//! bounded channels.

mod options;
mod sink;

pub use options::{CsvOptions, Trim};
pub use sink::{CsvSink, write, write_records, write_records_to, write_to};
