//! The partitioned CSV sink: [`write_partitioned`], [`write_records_partitioned`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::CsvOptions;
use super::writer::CsvWriter;
use crate::Result;
use crate::connectors::file::{
    DEFAULT_MAX_PARTITIONS, Deferred, OutputFile, PartWriter, Partitions, PartitionsConfig,
    forward_sink_to_state,
};
use crate::record::{Record, Schema};
use crate::sink::Keyed;

/// Batches waiting for the writer thread.
const WRITE_AHEAD: usize = 2;

/// A sink writing each [`Keyed`](crate::sink::Keyed) record as CSV to the
/// file of its key in the directory `dir`: `dir/KEY.csv`, one file per key,
/// as Spark's `partitionBy` does. Only the record is written; each file has a
/// header of its own (from the struct's field names, or a [`Record`]'s column
/// names), and holds its records in the order they came.
///
/// **When files appear.** The directory is made ready when the run opens its
/// sinks, before any record is read: created if missing (not its parents: a
/// missing parent fails the run then, as does a `dir` that is a file). A
/// key's file is opened, as a locked temporary in `dir`, the first time the
/// key comes; the file is claimed as an output of the run, so a key whose
/// file is also the run's input (or another output) fails the run. When the
/// run completes, every file is flushed and synced, then renamed into place
/// together with every other output of the run, only if the whole run
/// succeeded. A failed or cancelled run leaves none of its
/// files and no temporary; files already in `dir` that the run does not write
/// are never touched, and one the run writes is replaced only on success. A
/// directory the sink created is removed again when the run fails or is
/// cancelled (best effort, and only if it is empty: never what someone else
/// put there). A completed run without records leaves `dir` empty.
///
/// **Limits.** All files are written by one blocking thread, whatever the
/// number of keys. Each partition keeps its file open (and about 16 KiB of
/// buffers) until the run ends, so a run may have at most
/// [`max_partitions`](PartitionedCsvSink::max_partitions) keys, 512 by
/// default: one more fails the run with an error naming the key and the
/// limit. Two keys that differ only in case (`Books` and `books`, compared in
/// lower case, Unicode included) fail the run with an error naming both and
/// the file: a case-insensitive file system (macOS, Windows) would make them
/// one file, so the sink refuses them on every system, for a run to write the
/// same output wherever it runs. (Keys that differ only in Unicode
/// normalization, `é` as one code point or two, which macOS also takes for
/// one name, are not compared.) Keys are made safe as file names by
/// [`PartitionKey::new`](crate::sink::PartitionKey::new), which refuses the
/// rest record by record; a file in `dir` that is a symbolic link is written
/// through, as [`write()`](super::write) does.
///
/// **Errors** name the file, and for a record that cannot be written, its
/// number in that file (records are counted per file).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
/// use dataflare::sink::{Keyed, PartitionKey};
///
/// #[derive(Debug, Clone, serde::Serialize)]
/// struct Order { id: u64, category: String }
///
/// let orders = vec![
///     Order { id: 1, category: "books".into() },
///     Order { id: 2, category: "toys".into() },
///     Order { id: 3, category: "books".into() },
///     Order { id: 4, category: "../escape".into() },
/// ];
/// let dir = tempfile::tempdir().unwrap();
/// let out = dir.path().join("by-category");
/// let report = Pipeline::from(source::iter(orders))
///     .try_map(|o: &Order| PartitionKey::new(&o.category).map(|k| Keyed::new(k, o.clone())))
///     .on_error(ErrorPolicy::Skip) // the unsafe key
///     .to(csv::write_partitioned(&out))
///     .run()
///     .await?;
/// assert_eq!(report.skipped(), 1);
/// let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
/// assert_eq!(read("books.csv"), "id,category\n1,books\n3,books\n");
/// assert_eq!(read("toys.csv"), "id,category\n2,toys\n");
/// # Ok(()) }
/// ```
pub fn write_partitioned<T: Serialize + Send + 'static>(
    dir: impl AsRef<Path>,
) -> PartitionedCsvSink<T> {
    PartitionedCsvSink {
        state: Deferred::new(
            PartitionsConfig {
                dir: dir.as_ref().to_path_buf(),
                extension: "csv",
                max_partitions: DEFAULT_MAX_PARTITIONS,
                format: Format {
                    options: CsvOptions::default(),
                    schema: None,
                },
            },
            WRITE_AHEAD,
            Partitions::open,
        ),
    }
}

/// A sink writing dynamic [`Record`]s, each with its key, as CSV to the file
/// of its key in `dir`: as [`write_partitioned`], and as
/// [`write_records`](super::write_records) for each file (the header is the
/// file's first record's column names, unless given with
/// [`schema`](PartitionedCsvSink::schema); each value its `Display` text).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use std::sync::Arc;
/// use dataflare::csv;
/// use dataflare::prelude::*;
/// use dataflare::record::{Record, Schema, Value};
/// use dataflare::sink::{Keyed, PartitionKey};
///
/// let schema = Arc::new(Schema::strings(["city", "country"]));
/// let rows = vec![
///     Record::new(schema.clone(), vec![Value::from("Lyon"), Value::from("fr")]),
///     Record::new(schema.clone(), vec![Value::from("Turin"), Value::from("it")]),
/// ];
/// let dir = tempfile::tempdir().unwrap();
/// Pipeline::from(source::iter(rows))
///     .try_map(|r: &Record| {
///         let country = r.get("country").map(|v| v.to_string()).unwrap_or_default();
///         PartitionKey::new(country).map(|k| Keyed::new(k, r.clone()))
///     })
///     .to(csv::write_records_partitioned(dir.path()))
///     .run()
///     .await?;
/// let fr = std::fs::read_to_string(dir.path().join("fr.csv")).unwrap();
/// assert_eq!(fr, "city,country\nLyon,fr\n");
/// # Ok(()) }
/// ```
pub fn write_records_partitioned(dir: impl AsRef<Path>) -> PartitionedCsvSink<Record> {
    write_partitioned(dir)
}

/// The sink made by [`write_partitioned`] and [`write_records_partitioned`]:
/// a `Sink<Batch<Keyed<T>>>`. Configure it with its chained methods (the
/// dialect options are [`CsvSink`](super::CsvSink)'s), then pass it to
/// [`Pipeline::to`](crate::Pipeline::to).
///
/// It makes its directory ready on the first `poll_ready` (which a run calls
/// before reading any data), opens a key's file when the key first comes, and
/// stages every file for the run's commit on `close`; dropped without
/// `close` (a failed or cancelled run), it removes its temporaries.
#[must_use = "sinks do nothing unless a pipeline writes to them"]
pub struct PartitionedCsvSink<T> {
    /// The configuration until the first poll, then the writer.
    state: Deferred<PartitionsConfig<Format>, Writer<T>, Keyed<T>>,
}

/// The writer of all the partitions, on the sink's one blocking thread.
type Writer<T> = Partitions<T, CsvWriter<T>, Format>;

/// What every partition's CSV writer is made from.
#[derive(Debug)]
pub(crate) struct Format {
    options: CsvOptions,
    /// The records' columns, when known before the first record.
    schema: Option<Arc<Schema>>,
}

impl<T: Serialize + Send + 'static> PartWriter<T> for CsvWriter<T> {
    type Config = Format;

    fn open(format: &Format, out: OutputFile) -> Result<Self> {
        CsvWriter::new(
            out,
            &format.options,
            format.options.has_headers,
            format.schema.clone(),
        )
    }

    fn write(&mut self, record: &T) -> Result<()> {
        self.write_one(record)
    }

    fn into_output(self) -> Result<OutputFile> {
        CsvWriter::into_output(self)
    }
}

impl<T: Serialize + Send + 'static> PartitionedCsvSink<T> {
    fn options_mut(&mut self) -> &mut CsvOptions {
        &mut self.state.config().format.options
    }

    /// Sets the most partitions (distinct keys) one run may have; 512 by
    /// default. Each keeps a file open until the run ends: the limit keeps a
    /// run below the process's open-file limit (`ulimit -n`, often 1024),
    /// which may need raising too. The key that would be one too many fails
    /// the run with an error naming it, the limit and this method; nothing is
    /// committed.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let rows = (0..3).map(|i| Keyed::new(PartitionKey::new(format!("k{i}")).unwrap(), (i,)));
    /// let dir = tempfile::tempdir().unwrap();
    /// let err = Pipeline::from(source::iter(rows))
    ///     .to(csv::write_partitioned(dir.path()).max_partitions(2))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("max_partitions"), "{err}");
    /// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing committed");
    /// # Ok(()) }
    /// ```
    pub fn max_partitions(mut self, n: usize) -> Self {
        assert!(n > 0, "max_partitions must be at least 1");
        self.state.config().max_partitions = n;
        self
    }

    /// Sets the field delimiter of every file; `,` by default. As
    /// [`CsvSink::delimiter`](super::CsvSink::delimiter).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(vec![Keyed::new(PartitionKey::new("a")?, (1, "x"))]))
    ///     .to(csv::write_partitioned(dir.path()).delimiter(b';'))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(dir.path().join("a.csv")).unwrap(), "1;x\n");
    /// # Ok(()) }
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.options_mut().delimiter = delimiter;
        self
    }

    /// Sets whether each file starts with a header row; true by default. As
    /// [`CsvSink::has_headers`](super::CsvSink::has_headers).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Row { a: u8 }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(vec![Keyed::new(PartitionKey::new("k")?, Row { a: 1 })]))
    ///     .to(csv::write_partitioned(dir.path()).has_headers(false))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(dir.path().join("k.csv")).unwrap(), "1\n");
    /// # Ok(()) }
    /// ```
    pub fn has_headers(mut self, yes: bool) -> Self {
        self.options_mut().has_headers = yes;
        self
    }

    /// Sets the quote character; `"` by default. As
    /// [`CsvSink::quote`](super::CsvSink::quote).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(vec![Keyed::new(PartitionKey::new("a")?, ("x,y", 1))]))
    ///     .to(csv::write_partitioned(dir.path()).quote(b'\''))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(dir.path().join("a.csv")).unwrap(), "'x,y',1\n");
    /// # Ok(()) }
    /// ```
    pub fn quote(mut self, quote: u8) -> Self {
        self.options_mut().quote = quote;
        self
    }

    /// Sets the character escaping a quote when
    /// [`double_quote`](PartitionedCsvSink::double_quote) is off; `None` (the
    /// default) means `\`. As [`CsvSink::escape`](super::CsvSink::escape).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(vec![Keyed::new(PartitionKey::new("a")?, ("\"hi\"", 1))]))
    ///     .to(csv::write_partitioned(dir.path()).double_quote(false).escape(b'!'))
    ///     .run()
    ///     .await?;
    /// let text = std::fs::read_to_string(dir.path().join("a.csv")).unwrap();
    /// assert_eq!(text, "\"!\"hi!\"\",1\n");
    /// # Ok(()) }
    /// ```
    pub fn escape(mut self, escape: impl Into<Option<u8>>) -> Self {
        self.options_mut().escape = escape.into();
        self
    }

    /// Sets whether a quote inside a quoted field is written as two quotes
    /// (true, the default) or escaped. As
    /// [`CsvSink::double_quote`](super::CsvSink::double_quote).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(vec![Keyed::new(PartitionKey::new("a")?, ("\"hi\"", 1))]))
    ///     .to(csv::write_partitioned(dir.path()).double_quote(false))
    ///     .run()
    ///     .await?;
    /// let text = std::fs::read_to_string(dir.path().join("a.csv")).unwrap();
    /// assert_eq!(text, "\"\\\"hi\\\"\",1\n");
    /// # Ok(()) }
    /// ```
    pub fn double_quote(mut self, yes: bool) -> Self {
        self.options_mut().double_quote = yes;
        self
    }

    /// Sets whether the records of a file may have differing numbers of
    /// fields; false by default (an error naming the file and the record). As
    /// [`CsvSink::flexible`](super::CsvSink::flexible).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let key = PartitionKey::new("ragged")?;
    /// let rows = vec![Keyed::new(key.clone(), vec![1, 2]), Keyed::new(key, vec![3])];
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(rows))
    ///     .to(csv::write_partitioned(dir.path()).flexible(true))
    ///     .run()
    ///     .await?;
    /// let text = std::fs::read_to_string(dir.path().join("ragged.csv")).unwrap();
    /// assert_eq!(text, "1,2\n3\n");
    /// # Ok(()) }
    /// ```
    pub fn flexible(mut self, yes: bool) -> Self {
        self.options_mut().flexible = yes;
        self
    }

    /// Replaces every option at once, e.g. with options shared with a CSV
    /// source; only the dialect options concern writing. As
    /// [`CsvSink::options`](super::CsvSink::options).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvOptions};
    /// use dataflare::prelude::*;
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let mut options = CsvOptions::default();
    /// options.delimiter = b'\t';
    /// let dir = tempfile::tempdir().unwrap();
    /// Pipeline::from(source::iter(vec![Keyed::new(PartitionKey::new("a")?, (1, 2))]))
    ///     .to(csv::write_partitioned(dir.path()).options(options))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(dir.path().join("a.csv")).unwrap(), "1\t2\n");
    /// # Ok(()) }
    /// ```
    pub fn options(mut self, options: CsvOptions) -> Self {
        *self.options_mut() = options;
        self
    }
}

impl PartitionedCsvSink<Record> {
    /// Gives the records' columns before any record comes: every file's
    /// header is written from them, and every record must have these column
    /// names, in this order (an error names the file and the record). As
    /// [`CsvSink::schema`](super::CsvSink::schema), except that a file exists
    /// only for a key that came, so a run without records writes no file.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use std::sync::Arc;
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::record::{Record, Schema, Value};
    /// use dataflare::sink::{Keyed, PartitionKey};
    ///
    /// let schema = Arc::new(Schema::strings(["id", "name"]));
    /// let other = Arc::new(Schema::strings(["name", "id"]));
    /// let rows = vec![Keyed::new(
    ///     PartitionKey::new("a")?,
    ///     Record::new(other, vec![Value::from("Ada"), Value::from("1")]),
    /// )];
    /// let dir = tempfile::tempdir().unwrap();
    /// let err = Pipeline::from(source::iter(rows))
    ///     .to(csv::write_records_partitioned(dir.path()).schema(schema))
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("a.csv: record 1: the record's columns"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn schema(mut self, schema: Arc<Schema>) -> Self {
        self.state.config().format.schema = Some(schema);
        self
    }
}

forward_sink_to_state!(PartitionedCsvSink, Keyed<T>);

impl<T> fmt::Debug for PartitionedCsvSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PartitionedCsvSink");
        if let Some(c) = self.state.pending_config() {
            d.field("dir", &c.dir)
                .field("max_partitions", &c.max_partitions)
                .field("options", &c.format.options);
        }
        d.field("state", &self.state);
        d.finish()
    }
}
