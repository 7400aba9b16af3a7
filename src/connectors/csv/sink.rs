//! The CSV sink: [`write()`], [`write_records`], [`write_to`], [`write_records_to`].

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::CsvOptions;
use super::writer::CsvWriter;
use crate::Result;
use crate::connectors::file::{Deferred, Output, ends_without_newline, forward_sink_to_state};
use crate::record::{Record, Schema};

/// Batches waiting for the writer thread.
const WRITE_AHEAD: usize = 2;

/// A sink writing typed records as CSV to the file at `path`, the header taken
/// from the struct's field names (as the `csv` crate's `serialize` does).
///
/// The file is written under a temporary name in the same directory and
/// renamed into place only when the run completes: a failed or cancelled run
/// leaves no output file and never clobbers an existing one (see
/// [`append`](CsvSink::append) for the other way). A path that is a directory,
/// or whose directory is missing or not writable, fails the run before any
/// record is read. Writing runs on a blocking thread.
///
/// [`Record`]s work too (as with [`write_records`]): the header is then the
/// first record's column names. With no records at all, the file is empty (a
/// header needs a record to take its names from), unless the sink was given
/// the columns with [`schema`](CsvSink::schema).
///
/// Errors name the file and the index (from 0) of the record that could not be
/// written, e.g. a struct with a nested struct or a sequence.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
///
/// #[derive(serde::Serialize)]
/// struct Total { id: u64, total: f64 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("totals.csv");
/// let totals = vec![Total { id: 1, total: 9.5 }, Total { id: 2, total: 20.0 }];
/// Pipeline::from(source::iter(totals)).to(csv::write(&path)).run().await?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,total\n1,9.5\n2,20.0\n");
/// # Ok(()) }
/// ```
pub fn write<T: Serialize + Send + 'static>(path: impl AsRef<Path>) -> CsvSink<T> {
    CsvSink::new(Target::Path(path.as_ref().to_path_buf()))
}

/// A sink writing dynamic [`Record`]s as CSV to the file at `path`.
///
/// The header is the first record's column names (or those given to
/// [`schema`](CsvSink::schema), which a run without records writes too); each
/// value is written as its
/// [`Display`](crate::record::Value#impl-Display-for-Value) text,
/// [`Value::Null`](crate::record::Value::Null) as an empty field. A record
/// whose column names differ from the first record's fails the run with an
/// error naming that record. Otherwise as [`write()`]: atomic
/// replacement when the run completes, errors naming the file and the record.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
/// use dataflare::record::{DataType, Record, Schema, Value};
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("city", DataType::Str), ("pop", DataType::Int)]));
/// let rows = vec![
///     Record::new(schema.clone(), vec![Value::from("Lyon"), Value::Int(522_000)]),
///     Record::new(schema.clone(), vec![Value::from("Nowhere"), Value::Null]),
/// ];
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("cities.csv");
/// Pipeline::from(source::iter(rows)).to(csv::write_records(&path)).run().await?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "city,pop\nLyon,522000\nNowhere,\n");
/// # Ok(()) }
/// ```
pub fn write_records(path: impl AsRef<Path>) -> CsvSink<Record> {
    write(path)
}

/// A sink writing typed records as CSV to any writer (stdout, a buffer),
/// flushed when the run completes. As [`write()`], except that what was written
/// before a failure stays written: a writer cannot be taken back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
///
/// #[derive(serde::Serialize)]
/// struct Point { x: i32, y: i32 }
///
/// let report = Pipeline::from(source::iter(vec![Point { x: 1, y: 2 }]))
///     .to(csv::write_to(std::io::stdout()))
///     .run()
///     .await?;
/// assert_eq!(report.records_out(), 1);
/// # Ok(()) }
/// ```
pub fn write_to<T: Serialize + Send + 'static>(writer: impl Write + Send + 'static) -> CsvSink<T> {
    CsvSink::new(Target::Writer(Box::new(writer)))
}

/// A sink writing dynamic [`Record`]s as CSV to any writer (stdout, a buffer),
/// as [`write_records`] does to a file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
/// use dataflare::record::{Record, Schema, Value};
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::strings(["name"]));
/// let rows = vec![Record::new(schema, vec![Value::from("Ada")])];
/// Pipeline::from(source::iter(rows)).to(csv::write_records_to(std::io::stdout())).run().await?;
/// # Ok(()) }
/// ```
pub fn write_records_to(writer: impl Write + Send + 'static) -> CsvSink<Record> {
    write_to(writer)
}

/// Where a sink writes, before it is opened.
enum Target {
    Path(PathBuf),
    Writer(Box<dyn Write + Send>),
}

/// The sink made by [`write()`], [`write_records`], [`write_to`] and
/// [`write_records_to`]: configure it with its chained methods, then pass it to
/// [`Pipeline::to`](crate::Pipeline::to).
///
/// It opens its output on the first `poll_ready` (which a run calls before
/// reading any data) and commits it on `close`; dropped without `close`, it
/// abandons a file output.
#[must_use = "sinks do nothing unless a pipeline writes to them"]
pub struct CsvSink<T> {
    /// The configuration until the first poll, then the writer.
    state: Deferred<Config, CsvWriter<T>, T>,
}

struct Config {
    target: Target,
    append: bool,
    options: CsvOptions,
    /// The records' columns, when known before the first record.
    schema: Option<Arc<Schema>>,
}

impl<T: Serialize + Send + 'static> CsvSink<T> {
    fn new(target: Target) -> Self {
        CsvSink {
            state: Deferred::new(
                Config {
                    target,
                    append: false,
                    options: CsvOptions::default(),
                    schema: None,
                },
                WRITE_AHEAD,
                open,
            ),
        }
    }

    fn config(&mut self) -> &mut Config {
        self.state.config()
    }

    /// Sets the field delimiter; `,` by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(vec![(1, "a")]))
    ///     .to(csv::write(&path).delimiter(b';').has_headers(false))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1;a\n");
    /// # Ok(()) }
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.config().options.delimiter = delimiter;
        self
    }

    /// Sets whether a header row is written first; true by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Row { a: u8, b: u8 }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(vec![Row { a: 1, b: 2 }]))
    ///     .to(csv::write(&path).has_headers(false))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1,2\n");
    /// # Ok(()) }
    /// ```
    pub fn has_headers(mut self, yes: bool) -> Self {
        self.config().options.has_headers = yes;
        self
    }

    /// Sets the quote character, used around fields holding the delimiter, a
    /// quote or a line break; `"` by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(vec![("a,b", 1)]))
    ///     .to(csv::write(&path).quote(b'\''))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "'a,b',1\n");
    /// # Ok(()) }
    /// ```
    pub fn quote(mut self, quote: u8) -> Self {
        self.config().options.quote = quote;
        self
    }

    /// Sets the character that escapes a quote inside a quoted field when
    /// [`double_quote`](CsvSink::double_quote) is off; `None` (the default)
    /// means `\`. Takes `u8` or `Option<u8>`, as the CSV source's `escape` does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(vec![("say \"hi\"", 1)]))
    ///     .to(csv::write(&path).double_quote(false).escape(b'!'))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "\"say !\"hi!\"\",1\n");
    /// # Ok(()) }
    /// ```
    pub fn escape(mut self, escape: impl Into<Option<u8>>) -> Self {
        self.config().options.escape = escape.into();
        self
    }

    /// Sets whether a quote inside a quoted field is written as two quotes
    /// (true, the default) or preceded by the [`escape`](CsvSink::escape) character.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(vec![("say \"hi\"", 1)]))
    ///     .to(csv::write(&path).double_quote(false))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "\"say \\\"hi\\\"\",1\n");
    /// # Ok(()) }
    /// ```
    pub fn double_quote(mut self, yes: bool) -> Self {
        self.config().options.double_quote = yes;
        self
    }

    /// Sets whether records may have differing numbers of fields; false by
    /// default, when a record whose length differs from the previous one's
    /// fails the run with an error naming it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("ragged.csv");
    /// Pipeline::from(source::iter(vec![vec![1, 2], vec![3]]))
    ///     .to(csv::write(&path).flexible(true))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1,2\n3\n");
    /// # Ok(()) }
    /// ```
    pub fn flexible(mut self, yes: bool) -> Self {
        self.config().options.flexible = yes;
        self
    }

    /// Appends to the file as batches arrive instead of replacing it when the
    /// run completes, creating it if needed; no header is written when the file
    /// already has content (and a line break is added first if it does not end
    /// with one). For long-running streams: a failed run leaves what
    /// was written before the failure. No effect on [`write_to`] sinks.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Event { id: u32 }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("events.csv");
    /// for id in [1, 2] {
    ///     Pipeline::from(source::iter(vec![Event { id }]))
    ///         .to(csv::write(&path).append())
    ///         .run()
    ///         .await?;
    /// }
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id\n1\n2\n");
    /// # Ok(()) }
    /// ```
    pub fn append(mut self) -> Self {
        self.config().append = true;
        self
    }

    /// Replaces every option at once, e.g. with options shared with a CSV
    /// source. Only the dialect options (delimiter, header, quote, escape,
    /// double quote, flexible) concern writing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvOptions};
    /// use dataflare::prelude::*;
    ///
    /// let mut options = CsvOptions::default();
    /// options.delimiter = b'\t';
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.tsv");
    /// Pipeline::from(source::iter(vec![(1, 2)]))
    ///     .to(csv::write(&path).options(options))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\t2\n");
    /// # Ok(()) }
    /// ```
    pub fn options(mut self, options: CsvOptions) -> Self {
        self.config().options = options;
        self
    }
}

impl CsvSink<Record> {
    /// Gives the records' columns before any record comes: the header is
    /// written from them even when no record comes at all (an input with a
    /// header and no row, an empty run), and every record must have these
    /// column names, in this order. Without it, the header is the first
    /// record's names, and a run without records writes an empty file. A CSV
    /// source tells its schema before reading records with
    /// [`CsvSource::read_schema`](super::CsvSource::read_schema).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use std::sync::Arc;
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::record::{Record, Schema};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("none.csv");
    /// let schema = Arc::new(Schema::strings(["id", "name"]));
    /// Pipeline::from(source::iter(Vec::<Record>::new()))
    ///     .to(csv::write_records(&path).schema(schema))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,name\n");
    /// # Ok(()) }
    /// ```
    pub fn schema(mut self, schema: Arc<Schema>) -> Self {
        self.config().schema = Some(schema);
        self
    }
}

forward_sink_to_state!(CsvSink);

impl<T> fmt::Debug for CsvSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CsvSink");
        if let Some(c) = self.state.pending_config() {
            match &c.target {
                Target::Path(p) => d.field("path", p),
                Target::Writer(_) => d.field("writer", &".."),
            };
            d.field("append", &c.append).field("options", &c.options);
        }
        d.field("state", &self.state);
        d.finish()
    }
}

/// Opens the sink's output (on the writer thread) and makes its writer.
fn open<T: Serialize + 'static>(config: Config) -> Result<CsvWriter<T>> {
    let Config {
        target,
        append,
        options,
        schema,
    } = config;
    let output = match target {
        Target::Path(p) if append => Output::Append(p),
        Target::Path(p) => Output::Replace(p),
        Target::Writer(w) => Output::Writer(w),
    };
    let header = options.has_headers && !output.has_content();
    let newline = match &output {
        Output::Append(path) => ends_without_newline(path)?,
        _ => false,
    };
    let mut out = output.open()?;
    if newline {
        out.write_all(b"\n").map_err(|e| out.io_error(e))?;
    }
    CsvWriter::new(out, &options, header, schema)
}
