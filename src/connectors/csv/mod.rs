//! CSV sources and sinks: typed records through serde, or dynamic
//! [`Record`](crate::record::Record)s; exact errors (file, line, byte, field);
//! output files replaced atomically when the run completes.
//!
//! Parsing and writing run on blocking threads, linked to the pipeline by
//! bounded channels. A regular file may be parsed on several threads
//! ([`CsvSource::parallel`]; by default the machine's cores less one), with
//! exactly the records and errors of one thread; a stream (stdin, a pipe, any reader) is read on one
//! thread and delivers records as they arrive.
//!
//! Reading: [`read`] and [`read_from`] deserialize records into your own
//! types with serde; [`read_records`] and [`read_records_from`] make dynamic
//! records (text columns, or typed by a [`schema`](CsvSource::schema) or by
//! [`infer_schema`](CsvSource::infer_schema)). Quoting is strict by default
//! and every malformed record is an error with its file, record, line, byte
//! and field; see [`CsvSource`].
//!
//! For the most speed on a large file: [`read_chunks`] cuts it into blocks of
//! whole records ([`CsvChunk`]) that workers parse in place
//! ([`par_map`](crate::Pipeline::par_map)) into [`Row`]s borrowed from the
//! block, decoding only the fields asked for; [`CsvOut`] formats a block's
//! output, and [`write_chunks`] writes the blocks in input order, atomically.

mod chunks;
mod de;
mod decode;
mod headers;
mod infer;
mod limit;
mod options;
mod parallel;
mod parse;
mod partitioned;
mod reading;
mod row;
mod sink;
mod source;
mod writer;

pub use chunks::{
    CsvChunk, CsvChunkSink, CsvChunks, CsvOut, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_RECORD_BYTES, Row,
    Rows, read_chunks, write_chunks,
};
pub use options::{CsvOptions, DuplicateHeaders, Trim};
pub use partitioned::{PartitionedCsvSink, write_partitioned, write_records_partitioned};
pub use sink::{CsvSink, write, write_records, write_records_to, write_to};
pub use source::{CsvSource, read, read_from, read_records, read_records_from};
