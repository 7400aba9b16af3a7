//! The CSV writer of one output: typed records through serde, dynamic
//! [`Record`]s from their values; errors naming the file and the record. Made
//! from the sink's options for each output it opens (one for [`write()`],
//! one per partition file for [`write_partitioned`]).
//!
//! [`write()`]: super::write
//! [`write_partitioned`]: super::write_partitioned

use std::any::Any;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::CsvOptions;
use crate::connectors::file::{BatchWriter, OutputFile};
use crate::record::{Record, Schema, Value};
use crate::{Batch, Error, Position, Result};

/// Writes records as CSV into one output, on a sink's writer thread.
pub(super) struct CsvWriter<T> {
    csv: ::csv::Writer<OutputFile>,
    /// Index of the next record in this output, counting from 0 over the run.
    index: u64,
    /// Whether a header is still to be written (dynamic records only; for
    /// typed records the `csv` writer does it).
    header: bool,
    /// The first record's schema, once seen; and the last schema found equal
    /// to it, so a shared `Arc` is checked once.
    first: Option<Arc<Schema>>,
    checked: Option<Arc<Schema>>,
    row: ::csv::ByteRecord,
    text: String,
    int: itoa::Buffer,
    _records: PhantomData<fn(T)>,
}

impl<T: Serialize + 'static> CsvWriter<T> {
    /// A writer of CSV into `out`, with a header row first when `header` (as
    /// `options.has_headers` says, unless appending to a file with content).
    /// Given the records' columns (`schema`), it writes that header now.
    pub(super) fn new(
        out: OutputFile,
        options: &CsvOptions,
        header: bool,
        schema: Option<Arc<Schema>>,
    ) -> Result<Self> {
        let mut builder = options.writer_builder();
        builder.has_headers(header);
        let csv = builder.from_writer(out);
        let mut writer = CsvWriter {
            csv,
            index: 0,
            header,
            first: None,
            checked: None,
            row: ::csv::ByteRecord::new(),
            text: String::new(),
            int: itoa::Buffer::new(),
            _records: PhantomData,
        };
        if let Some(schema) = schema {
            writer.start(schema)?;
        }
        Ok(writer)
    }

    /// The output's file, if it is one.
    pub(super) fn path(&self) -> Option<&Path> {
        self.csv.get_ref().path()
    }

    /// An error about the current record, naming the file and the record.
    fn error(&self, error: Error) -> Error {
        let error = error.with_position(Position::new().record(self.index));
        match self.path() {
            Some(p) => error.with_path(p),
            None => error,
        }
    }

    fn csv_error(&self, error: ::csv::Error) -> Error {
        let error = match error.into_kind() {
            ::csv::ErrorKind::Io(e) => Error::from(e),
            ::csv::ErrorKind::Serialize(message) => {
                Error::msg(format!("cannot write the record as CSV: {message}"))
            }
            ::csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => Error::msg(format!(
                "the record has {len} fields but the previous one has {expected_len} \
                 (see `flexible`)"
            )),
            other => Error::msg(format!("cannot write the record as CSV: {other:?}")),
        };
        self.error(error)
    }

    /// Takes `schema` as the records' columns, writing the header if one is
    /// due.
    fn start(&mut self, schema: Arc<Schema>) -> Result<()> {
        if self.header {
            self.header = false;
            self.row.clear();
            for name in schema.names() {
                self.row.push_field(name.as_bytes());
            }
            self.csv
                .write_byte_record(&self.row)
                .map_err(|e| self.csv_error(e))?;
        }
        self.first = Some(schema.clone());
        self.checked = Some(schema);
        Ok(())
    }

    fn write_record(&mut self, record: &Record) -> Result<()> {
        let schema = record.schema();
        match &self.first {
            None => self.start(schema.clone())?,
            Some(first) => {
                let same =
                    |s: &Option<Arc<Schema>>| s.as_ref().is_some_and(|s| Arc::ptr_eq(s, schema));
                if !same(&self.first) && !same(&self.checked) {
                    if !first.names().eq(schema.names()) {
                        let names = |s: &Schema| s.names().collect::<Vec<_>>().join(", ");
                        return Err(self.error(Error::msg(format!(
                            "the record's columns ({}) differ from the first record's ({})",
                            names(schema),
                            names(first)
                        ))));
                    }
                    self.checked = Some(schema.clone());
                }
            }
        }
        self.row.clear();
        for value in record.values() {
            // As `Value`'s `Display` writes them, without its formatting
            // machinery for the common cases.
            match value {
                Value::Str(s) => self.row.push_field(s.as_bytes()),
                Value::Null => self.row.push_field(b""),
                Value::Int(i) => self.row.push_field(self.int.format(*i).as_bytes()),
                other => {
                    self.text.clear();
                    match other {
                        Value::Float(x) => write!(self.text, "{x}"),
                        other => write!(self.text, "{other}"),
                    }
                    .expect("writing to a String never fails");
                    self.row.push_field(self.text.as_bytes());
                }
            }
        }
        self.csv
            .write_byte_record(&self.row)
            .map_err(|e| self.csv_error(e))
    }

    /// Writes one record, counting it.
    pub(super) fn write_one(&mut self, record: &T) -> Result<()> {
        // Records serialize as maps, which the `csv` crate does not write:
        // they take their own path, with the header from their schema.
        if let Some(record) = (record as &dyn Any).downcast_ref::<Record>() {
            self.write_record(record)?;
        } else {
            self.csv.serialize(record).map_err(|e| self.csv_error(e))?;
        }
        self.index += 1;
        Ok(())
    }

    /// Flushes what the CSV writer holds and gives back the output, to be
    /// finished (committed) by the caller.
    pub(super) fn into_output(self) -> Result<OutputFile> {
        let path = self.path().map(Path::to_path_buf);
        self.csv.into_inner().map_err(|e| {
            let error = e.into_error();
            match &path {
                Some(p) => Error::io(p, error),
                None => Error::from(error),
            }
        })
    }
}

impl<T: Serialize + Send + 'static> BatchWriter<T> for CsvWriter<T> {
    fn write(&mut self, batch: Batch<T>) -> Result<()> {
        for record in batch.iter() {
            self.write_one(record)?;
        }
        if self.path().is_none() {
            // A stream (stdout, a pipe): what was written goes now, so a reader
            // downstream sees records as they come (`tail -f | ...`).
            self.csv.flush().map_err(Error::from)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.into_output()?.finish()
    }
}
