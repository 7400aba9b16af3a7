//! JSON Lines sources and sinks: one JSON object a line, typed through serde or
//! as dynamic [`Record`](crate::record::Record)s.
//!
//! - [`read`] / [`read_from`]: each line deserialized into your own type.
//! - [`read_records`] / [`read_records_from`]: each line an object made into a
//!   [`Record`](crate::record::Record), the columns those of the first object
//!   (in the order its keys appear) unless a [`schema`](JsonlSource::schema) is given.
//! - [`write()`] / [`write_to`]: any `Serialize` type, records included, one line each.
//!
//! Blank lines are skipped. A malformed line is a record-level error naming the
//! file, the record, the line and the byte where the line starts, and the
//! column (from `serde_json`), and keeping the line's text for dead letters;
//! the source goes on after it, so [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip)
//! skips and counts it. A line longer than
//! [`max_line_bytes`](JsonlSource::max_line_bytes) (16 MiB by default) ends the
//! run. Reading and writing run on blocking threads, linked to the pipeline by
//! bounded channels; output files are replaced atomically when the run completes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dataflare::Result<()> {
//! use dataflare::jsonl;
//! use dataflare::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Deserialize, Serialize)]
//! struct Event { id: u32, kind: String }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let input = dir.path().join("events.jsonl");
//! let output = dir.path().join("clicks.jsonl");
//! std::fs::write(&input, "{\"id\":1,\"kind\":\"click\"}\n{oops\n{\"id\":2,\"kind\":\"view\"}\n").unwrap();
//!
//! let report = Pipeline::from(jsonl::read::<Event>(&input))
//!     .on_error(ErrorPolicy::Skip)
//!     .filter(|e| e.kind == "click")
//!     .to(jsonl::write(&output))
//!     .run()
//!     .await?;
//! assert_eq!(report.skipped(), 1);
//! assert_eq!(std::fs::read_to_string(&output).unwrap(), "{\"id\":1,\"kind\":\"click\"}\n");
//! # Ok(()) }
//! ```

mod decode;
mod lines;
mod sink;
mod source;

pub use sink::{JsonlSink, write, write_to};
pub use source::{
    DEFAULT_MAX_LINE_BYTES, JsonlSource, read, read_from, read_records, read_records_from,
};
