//! The CSV source: [`read`], [`read_records`], [`read_from`], [`read_records_from`].

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use serde::de::DeserializeOwned;

use super::decode::{Columns, Decoding, MakeDecoder, Msg, records, typed};
use super::options::{CsvOptions, DuplicateHeaders, Trim};
use super::reading::{Input, Job, read_all};
use crate::connectors::file::BlockingSource;
#[cfg(doc)]
use crate::record::{DataType, Value};
use crate::record::{Record, Schema};
use crate::{Batch, Result};

/// Batches the reader may be ahead of the pipeline.
const READ_AHEAD: usize = 2;

/// A source reading the CSV file at `path`, each record deserialized into a `T`
/// with serde (by column name when the file has a header, by position when not).
///
/// Reading, parsing and checking run on a blocking thread, started when the
/// pipeline first asks for data, linked to it by a bounded channel; the rows
/// are deserialized in the pipeline's task as it takes them, or on the reading
/// thread while the pipeline is behind, so the two share that work. The
/// dialect and reading options are set with the [`CsvSource`] methods; the
/// defaults read RFC 4180 files: `,` between fields, a header row, `"` quoting
/// with doubled quotes, `\n` or `\r\n` line ends, strict quoting, strict
/// UTF-8. A UTF-8 BOM is skipped; blank lines are skipped.
///
/// A file that cannot be opened or read ends the run with an error naming it.
/// A malformed record (bad quoting, a wrong number of fields, invalid UTF-8, a
/// value that does not fit `T`) is a record-level error naming the file, the
/// record, its line and byte, and the field; the source goes on with the next
/// record, so [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip) skips and counts
/// it. The error keeps the row's text ([`Error::record_text`](crate::Error::record_text):
/// as in the input for a malformed row, re-quoted from its fields for a value
/// that does not fit; cut after 4 KiB, saying so), which a dead letter
/// carries. See [`CsvSource`] for what the positions mean. A field of `T` that
/// the header has no column for (one serde requires: not an `Option` nor
/// `#[serde(default)]`) is the file's fault, not a row's: the first row's
/// "missing field" ends the run, naming the field and the header's columns.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
/// struct Order { id: u32, amount: f64, note: String }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("orders.csv");
/// std::fs::write(&path, "id,amount,note\n1,9.5,\"fragile, glass\"\n2,20,\n").unwrap();
///
/// let out = Collected::new();
/// Pipeline::from(csv::read::<Order>(&path)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec(), vec![
///     Order { id: 1, amount: 9.5, note: "fragile, glass".into() },
///     Order { id: 2, amount: 20.0, note: "".into() },
/// ]);
/// # Ok(()) }
/// ```
pub fn read<T: DeserializeOwned + Send + 'static>(path: impl AsRef<Path>) -> CsvSource<T> {
    CsvSource::new(Input::Path(path.as_ref().to_path_buf()), typed::<T>, "")
}

/// A source reading the CSV file at `path` into dynamic [`Record`]s.
///
/// The columns are named by the header row, or `col0`, `col1`, ... when the
/// file has none ([`has_headers(false)`](CsvSource::has_headers)); their number
/// is the header's or the first record's. Every column is text
/// ([`DataType::Str`]) unless [`schema`](CsvSource::schema) gives the types or
/// [`infer_schema`](CsvSource::infer_schema) guesses them. An empty field is
/// [`Value::Null`]. Otherwise as [`read`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
/// use dataflare::record::Value;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("users.csv");
/// std::fs::write(&path, "name,city\nAda,London\nAlan,\n").unwrap();
///
/// let out = Collected::new();
/// Pipeline::from(csv::read_records(&path)).to(sink::collect(&out)).run().await?;
/// let rows = out.to_vec();
/// assert_eq!(rows[0].schema().names().collect::<Vec<_>>(), ["name", "city"]);
/// assert_eq!(rows[0].get("city"), Some(&Value::from("London")));
/// assert_eq!(rows[1].get("city"), Some(&Value::Null));
/// # Ok(()) }
/// ```
pub fn read_records(path: impl AsRef<Path>) -> CsvSource<Record> {
    CsvSource::new(Input::Path(path.as_ref().to_path_buf()), records, "col")
}

/// A source reading CSV from any reader (stdin, a socket, bytes in memory) into
/// `T`s, as [`read`] does from a file.
///
/// When the reader has no complete record buffered, the records read so far
/// are sent on before it is asked for more, so records from a slow stream
/// (stdin fed by another program) are not held back to fill a batch.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
///
/// let input = "id,name\n1,Ada\n2,Alan\n".as_bytes();
/// let out = Collected::new();
/// Pipeline::from(csv::read_from::<(u32, String)>(input)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec(), vec![(1, "Ada".to_string()), (2, "Alan".to_string())]);
/// # Ok(()) }
/// ```
pub fn read_from<T: DeserializeOwned + Send + 'static>(
    reader: impl Read + Send + 'static,
) -> CsvSource<T> {
    CsvSource::new(Input::Reader(Box::new(reader)), typed::<T>, "")
}

/// A source reading CSV from any reader into dynamic [`Record`]s, as
/// [`read_records`] does from a file (and batching as [`read_from`] does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
///
/// let input = std::io::Cursor::new("a,b\n1,2\n");
/// let out = Collected::new();
/// Pipeline::from(csv::read_records_from(input)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec()[0].schema().names().collect::<Vec<_>>(), ["a", "b"]);
/// # Ok(()) }
/// ```
pub fn read_records_from(reader: impl Read + Send + 'static) -> CsvSource<Record> {
    CsvSource::new(Input::Reader(Box::new(reader)), records, "col")
}

/// The source made by [`read`], [`read_records`], [`read_from`] and
/// [`read_records_from`]: configure it with its chained methods, then start a
/// [`Pipeline`](crate::Pipeline) with it. A `Stream` of batches.
///
/// # Strict quoting
///
/// By default a field is either unquoted, holding no quote, or quoted from its
/// first byte to a closing quote followed by a delimiter or the end of the
/// record (quotes inside doubled, or escaped when an [`escape`](CsvSource::escape)
/// byte is set). Three things the `csv` crate would read silently are errors:
/// a quote inside an unquoted field (`ab"c"d`) and text after a closing quote
/// (`"abc"def`) are record-level errors, after which reading goes on with the
/// next record as the `csv` crate splits them; a quoted field still open at
/// the end of the input, which holds every line after its quote, ends the run
/// (see [`max_record_bytes`](CsvSource::max_record_bytes)).
/// [`lenient_quotes(true)`](CsvSource::lenient_quotes) accepts all three as the
/// crate reads them. A record-level error about a record holding line breaks
/// in a quoted field names the line that quote was opened on.
///
/// # Positions in errors
///
/// - The **record** index counts data records from 0 (the header row not
///   included); malformed records take an index too.
/// - The **line** is the physical line, from 1, as an editor shows it: a quoted
///   field holding line breaks spans several; `\n`, `\r\n` and a lone `\r` each
///   end a line.
/// - The **byte** is the offset from the start of the input, a BOM included.
///
/// Line and byte point at the offending byte for quoting faults (the opening
/// quote for one never closed) and invalid UTF-8; at the field's first byte
/// (its opening quote, if quoted) for a value that does not parse; and at the
/// record's first byte for a wrong number of fields. The field is named by the
/// header or the schema, else `col<i>` for records and its index for typed rows.
///
/// Errors about the header row itself, a [`schema`](CsvSource::schema)
/// naming a column the header lacks, and a record past
/// [`max_record_bytes`](CsvSource::max_record_bytes) or open at the end of the
/// input end the run: no record after could be read right.
#[must_use = "streams do nothing unless polled"]
pub struct CsvSource<T> {
    config: Config<T>,
    /// The reader, once started.
    source: Option<BlockingSource<Msg<T>>>,
    /// Turns the reader's rows into records in the pipeline's task, and
    /// batches them.
    decoding: Decoding<T>,
    /// The input file was claimed in the run (see `claim_input`): checked on
    /// the first poll, for a reader started before the run by `read_schema`.
    claimed: bool,
}

struct Config<T> {
    /// The input, until the first poll.
    input: Option<Input>,
    path: Option<PathBuf>,
    options: CsvOptions,
    columns: Columns,
    decoder: MakeDecoder<T>,
    /// How fields are named when there is neither header nor schema.
    unnamed: &'static str,
}

impl<T: Send + 'static> CsvSource<T> {
    fn new(input: Input, decoder: MakeDecoder<T>, unnamed: &'static str) -> Self {
        let path = match &input {
            Input::Path(p) => Some(p.clone()),
            Input::Reader(_) => None,
        };
        CsvSource {
            config: Config {
                input: Some(input),
                path,
                options: CsvOptions::default(),
                columns: Columns::FromInput,
                decoder,
                unnamed,
            },
            source: None,
            decoding: Decoding::default(),
            claimed: false,
        }
    }

    /// The options the source will read with.
    ///
    /// ```
    /// use dataflare::csv;
    ///
    /// let source = csv::read_records("orders.csv").delimiter(b';');
    /// assert_eq!(source.config().delimiter, b';');
    /// assert!(source.config().has_headers);
    /// ```
    pub fn config(&self) -> &CsvOptions {
        &self.config.options
    }

    /// The file the source reads; `None` for a reader.
    ///
    /// ```
    /// use dataflare::csv;
    ///
    /// let source = csv::read_records("orders.csv");
    /// assert_eq!(source.path(), Some(std::path::Path::new("orders.csv")));
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.config.path.as_deref()
    }

    /// Replaces every dialect and reading option at once, e.g. with a
    /// [`CsvOptions`] shared by several sources. Checked when reading starts:
    /// a delimiter equal to the quote, a line break as delimiter, quote or
    /// escape, or a batch size of 0 ends the run with a configuration error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvOptions};
    /// use dataflare::prelude::*;
    ///
    /// let mut options = CsvOptions::default();
    /// options.delimiter = b'|';
    /// options.has_headers = false;
    /// let out = Collected::new();
    /// let source = csv::read_from::<(u32, u32)>("1|2\n3|4\n".as_bytes()).options(options);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![(1, 2), (3, 4)]);
    /// # Ok(()) }
    /// ```
    pub fn options(mut self, options: CsvOptions) -> Self {
        self.config.options = options;
        self
    }

    /// Sets the field delimiter; `,` by default. Any byte but the quote and line
    /// breaks: `;`, `\t`, `|` ...
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<(String, u32)>("name\tage\nAda\t36\n".as_bytes()).delimiter(b'\t');
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![("Ada".to_string(), 36)]);
    /// # Ok(()) }
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.config.options.delimiter = delimiter;
        self
    }

    /// Sets whether the first row is a header; true by default. Without one,
    /// typed rows are deserialized by position, and dynamic records name their
    /// columns `col0`, `col1`, ...
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<(u32, String)>("1,a\n2,b\n".as_bytes()).has_headers(false);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn has_headers(mut self, yes: bool) -> Self {
        self.config.options.has_headers = yes;
        self
    }

    /// Sets the quote byte; `"` by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<(String, u32)>("name,n\n'a, b',1\n".as_bytes()).quote(b'\'');
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![("a, b".to_string(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn quote(mut self, quote: u8) -> Self {
        self.config.options.quote = quote;
        self
    }

    /// Sets a byte that escapes the next one inside quoted fields (`\` in
    /// `"say \"hi\""`), or `None` for none (the default). Doubled quotes keep
    /// working unless [`double_quote(false)`](CsvSource::double_quote).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<(String,)>("text\n\"say \\\"hi\\\"\"\n".as_bytes()).escape(b'\\');
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![("say \"hi\"".to_string(),)]);
    /// # Ok(()) }
    /// ```
    pub fn escape(mut self, escape: impl Into<Option<u8>>) -> Self {
        self.config.options.escape = escape.into();
        self
    }

    /// Sets whether two quotes in a quoted field stand for one; true by
    /// default. When false (use an [`escape`](CsvSource::escape) byte instead),
    /// a second quote closes the field, and what follows is a quoting error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let source = csv::read_from::<(String,)>("t\n\"a\"\"b\"\n".as_bytes()).double_quote(false);
    /// let err = Pipeline::from(source).to(sink::discard()).run().await.unwrap_err();
    /// assert!(err.to_string().contains("after the closing quote"), "{err}");
    /// # }
    /// ```
    pub fn double_quote(mut self, yes: bool) -> Self {
        self.config.options.double_quote = yes;
        self
    }

    /// Sets a byte that makes a line a comment when it starts one, or `None`
    /// for none (the default). Comment lines are skipped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<(u32,)>("n\n# a comment\n7\n".as_bytes()).comment(b'#');
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![(7,)]);
    /// # Ok(()) }
    /// ```
    pub fn comment(mut self, comment: impl Into<Option<u8>>) -> Self {
        self.config.options.comment = comment.into();
        self
    }

    /// Sets whether whitespace around header names and values is removed
    /// (Unicode whitespace, after quotes are removed); [`Trim::None`] by
    /// default. Whitespace before an opening quote still makes the field
    /// unquoted, so ` "a"` is a quoting error unless quotes are lenient.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, Trim};
    /// use dataflare::prelude::*;
    ///
    /// #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
    /// struct Row { id: u32, name: String }
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<Row>(" id , name \n 1 , Ada \n".as_bytes()).trim(Trim::All);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![Row { id: 1, name: "Ada".into() }]);
    /// # Ok(()) }
    /// ```
    pub fn trim(mut self, trim: Trim) -> Self {
        self.config.options.trim = trim;
        self
    }

    /// Sets whether records may have differing numbers of fields; false by
    /// default, where a record whose count differs from the header's (or the
    /// first record's) is an error. Dynamic records fill missing columns with
    /// [`Value::Null`] and drop fields past the last column.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::record::Value;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_records_from("a,b\n1\n1,2,3\n".as_bytes()).flexible(true);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec()[0].get("b"), Some(&Value::Null));
    /// assert_eq!(out.to_vec()[1].values().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn flexible(mut self, yes: bool) -> Self {
        self.config.options.flexible = yes;
        self
    }

    /// Sets how many records go in each batch; [`DEFAULT_BATCH_SIZE`](crate::source::DEFAULT_BATCH_SIZE)
    /// by default. A batch is sent early before a record-level error (records
    /// keep their order around it) and at the end of the input.
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("n.csv");
    /// std::fs::write(&path, "n\n1\n2\n3\n4\n5\n").unwrap();
    /// let report = Pipeline::from(csv::read::<(u32,)>(&path).batch_size(2))
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.batches_in(), 3);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn batch_size(mut self, size: usize) -> Self {
        assert!(
            size > 0,
            "batch_size: a batch needs room for at least 1 record"
        );
        self.config.options.batch_size = size;
        self
    }

    /// Sets whether malformed quoting is read as the `csv` crate reads it
    /// instead of being an error; false by default. See [strict
    /// quoting](CsvSource#strict-quoting).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let input = "a,b\nab\"c\"d,\"x\"y\n";
    /// let out = Collected::new();
    /// let source = csv::read_from::<(String, String)>(input.as_bytes()).lenient_quotes(true);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![("ab\"c\"d".to_string(), "xy".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn lenient_quotes(mut self, yes: bool) -> Self {
        self.config.options.lenient_quotes = yes;
        self
    }

    /// Sets whether invalid UTF-8 is replaced by U+FFFD (`�`) instead of being
    /// an error; false by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let source = csv::read_from::<(String,)>(&b"name\nJos\xE9\n"[..]).lossy_utf8(true);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![("Jos\u{FFFD}".to_string(),)]);
    /// # Ok(()) }
    /// ```
    pub fn lossy_utf8(mut self, yes: bool) -> Self {
        self.config.options.lossy_utf8 = yes;
        self
    }

    /// Sets what a header row naming a column twice (`a,a,b`) does:
    /// [`DuplicateHeaders::Refuse`] (the default) ends the run with an error
    /// naming the file, the name and both column positions;
    /// [`DuplicateHeaders::Rename`] names the repeats `a_2`, `a_3`, ... (never
    /// a name another column has). Applies to typed sources too: serde would
    /// refuse every row of a struct, or silently keep one of the values.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, DuplicateHeaders};
    /// use dataflare::prelude::*;
    ///
    /// let input = "a,a,b\n1,2,3\n";
    /// let err = Pipeline::from(csv::read_records_from(input.as_bytes()))
    ///     .to(sink::discard())
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("\"a\" appears twice, as columns 1 and 2"), "{err}");
    ///
    /// let out = Collected::new();
    /// let source = csv::read_records_from(input.as_bytes()).duplicate_headers(DuplicateHeaders::Rename);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec()[0].schema().names().collect::<Vec<_>>(), ["a", "a_2", "b"]);
    /// # Ok(()) }
    /// ```
    pub fn duplicate_headers(mut self, mode: DuplicateHeaders) -> Self {
        self.config.options.duplicate_headers = mode;
        self
    }

    /// Sets the most one record may take while it is read, in bytes; 16 MiB
    /// by default. This bounds the memory the source holds for a record
    /// whatever the input: at most the limit and one 64 KiB read.
    ///
    /// A record is measured as it is read: its bytes in the input (quotes and
    /// line breaks included), or what holding it takes (its text and about 24
    /// bytes a field) when that is more. A record that grows past the limit
    /// ends the run with an error naming the file, the line the record starts
    /// on and, when the record is inside a quoted field, the line the quote was
    /// opened on; so does a quoted field still open at the end of the input
    /// (unless [`lenient_quotes`](CsvSource::lenient_quotes)). These are
    /// stream-level errors even under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip):
    /// such a record is usually a stray quote that swallowed every line after
    /// it, and skipping it would drop them all silently.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// // A stray quote on line 2 opens a field that never closes.
    /// let mut input = String::from("id,note\n1,\"oops\n");
    /// for i in 2..10_000 {
    ///     input.push_str(&format!("{i},fine\n"));
    /// }
    /// let source = csv::read_records_from(std::io::Cursor::new(input)).max_record_bytes(1024);
    /// let err = Pipeline::from(source)
    ///     .on_error(ErrorPolicy::Skip) // the run fails all the same
    ///     .to(sink::discard())
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert!(!err.is_record_level());
    /// assert!(err.to_string().contains("a quote opened on line 2 is never closed"), "{err}");
    /// # }
    /// ```
    #[track_caller]
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes > 0,
            "max_record_bytes: a record needs room for at least 1 byte"
        );
        self.config.options.max_record_bytes = bytes;
        self
    }
    /// Sets how many threads parse a regular file at once; by default the
    /// machine's cores less one ([`std::thread::available_parallelism`] − 1,
    /// at least 1), leaving a core to the pipeline's own task. `1` reads on
    /// one thread, as a stream is always read: stdin, a named pipe or any
    /// reader given to [`read_from`] keeps delivering records as they arrive.
    ///
    /// With `n > 1`, the header and the first rows are read first (and the
    /// types inferred, if asked); then the rest of the file is cut into
    /// chunks of about [`chunk_size`](CsvSource::chunk_size) bytes, each
    /// parsed, checked and turned into records by one of `n` threads while
    /// the pipeline works on the chunks before it. Nothing changes but the
    /// speed: the records, their order, their batches and every error (its
    /// record, line, byte and field) are those of the one-thread reader, on
    /// any input it accepts. A chunk starts after a line break that is
    /// guessed to end a record; each guess is checked in file order, and a
    /// chunk whose guess was wrong (a quoted field holding that line break)
    /// or that holds a malformed row is parsed again where it really starts,
    /// on the reading thread.
    ///
    /// What it gives: parsing, checking and decoding are most of the work of
    /// a filter or a conversion (about two thirds of the CPU of a CSV →
    /// filter → CSV job), and they spread over `n` cores instead of
    /// one. What it costs: more CPU in all, 10–25% in that job (records are
    /// made on one thread and freed on another; each chunk's edges are read
    /// twice), and memory for the chunks in flight, at most `2n + 2` of them
    /// with their records (a few MB each with the default chunk size). It
    /// gains only where cores are free: on 2 cores the one-thread reader,
    /// the pipeline's task and a file sink's writer already keep both busy,
    /// which is why the default there is 1.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("n.csv");
    /// let mut text = String::from("n,note\n");
    /// for i in 0..10_000 {
    ///     text.push_str(&format!("{i},\"line one\nline two\"\n"));
    /// }
    /// std::fs::write(&path, text).unwrap();
    ///
    /// // Four threads, each taking 4 KiB at a time.
    /// let out = Collected::new();
    /// let source = csv::read::<(u32, String)>(&path).parallel(4).chunk_size(4096);
    /// Pipeline::from(source).to(sink::collect(&out)).run().await?;
    /// let rows = out.to_vec();
    /// assert_eq!(rows.len(), 10_000);
    /// assert!(rows.iter().enumerate().all(|(i, (n, _))| *n as usize == i));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn parallel(mut self, n: usize) -> Self {
        assert!(n > 0, "parallel: reading needs at least 1 thread");
        self.config.options.parallel = Some(n);
        self
    }

    /// Sets how many bytes of a file a parsing thread takes at a time when
    /// the source reads in [`parallel`](CsvSource::parallel); 512 KiB by
    /// default. Smaller chunks hold less memory and start the threads sooner
    /// but cost more hand-offs; below a few KiB the hand-offs dominate. Any
    /// size gives the same records and errors, which tests use with sizes
    /// of a few bytes.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use dataflare::csv;
    ///
    /// let source = csv::read_records("orders.csv").chunk_size(1 << 20);
    /// assert_eq!(source.config().chunk_size, 1 << 20);
    /// ```
    #[track_caller]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        assert!(
            bytes > 0,
            "chunk_size: a chunk needs room for at least 1 byte"
        );
        self.config.options.chunk_size = bytes;
        self
    }
}

impl CsvSource<Record> {
    /// Gives the columns' names and types. With a header, each schema column
    /// is read from the header column of the same name (others are left out;
    /// a schema column missing from the header ends the run with an error);
    /// without one, by position. Each field is parsed with
    /// [`DataType::parse`]: an empty field is [`Value::Null`], and a value
    /// that does not parse is a record-level error naming the field. Replaces
    /// [`infer_schema`](CsvSource::infer_schema).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use std::sync::Arc;
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::record::{DataType, Schema, Value};
    ///
    /// let schema = Arc::new(Schema::new([("amount", DataType::Float), ("id", DataType::Int)]));
    /// let input = "id,user,amount\n1,ada,9.5\n2,alan,x\n";
    /// let out = Collected::new();
    /// let report = Pipeline::from(csv::read_records_from(input.as_bytes()).schema(schema))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec()[0].values(), &[Value::Float(9.5), Value::Int(1)]);
    /// assert_eq!(report.skipped(), 1); // "x" is not a number
    /// # Ok(()) }
    /// ```
    pub fn schema(mut self, schema: Arc<Schema>) -> Self {
        self.config.columns = Columns::Schema(schema);
        self
    }

    /// Guesses each column's type from its values in the first `rows` records
    /// (empty fields aside), never in a way that changes a value: a column is
    ///
    /// - [`DataType::Int`] if every value is an integer that fits `i64`,
    ///   written without leading zeros (`0` itself is fine; `007`, `00501`
    ///   and `-0` are not: they would print back differently);
    /// - else [`DataType::Float`] if every value is a decimal number, without
    ///   leading zeros, that a float holds exactly enough to print the same
    ///   number back: `150.00` is 150 (trailing zeros after the point carry
    ///   nothing), `1e5` is 100000 (an exponent is read as the number it
    ///   writes), but `12345678901234567890` (20 significant digits) is not,
    ///   and `nan` or `inf` are words;
    /// - else [`DataType::Date`] if every value is a `YYYY-MM-DD` date;
    /// - else [`DataType::Timestamp`] if every value is an RFC 3339 timestamp
    ///   in UTC written with `T` and `Z` (`2026-11-30T15:04:05Z`, with a
    ///   fraction of up to 6 digits): it prints back the same instant in the
    ///   same zone, only the fraction's digit count may change (`.5Z` prints
    ///   `.500000Z`, as `150.00` prints `150`). A timestamp with an offset
    ///   (`+02:00`) stays text: printed in UTC it would lose the offset; give
    ///   the column [`DataType::Timestamp`] in a [`schema`](CsvSource::schema)
    ///   to convert it;
    /// - else [`DataType::Bool`] if every value is `true` or `false`, as
    ///   written (`TRUE`, `yes` or `t` would print back as `true`);
    /// - else [`DataType::Str`], as is a column with no value.
    ///
    /// [`DataType::Decimal`], [`DataType::Bytes`] and [`DataType::Json`] are
    /// never inferred (amounts are kept exactly as floats when they can be,
    /// any short word is base64 and `1` is JSON): give them in a schema.
    ///
    /// Names are as without a schema. The rows are kept in memory until the
    /// types are known. Later values are held to the same rule: one that its
    /// column's type cannot hold as written (`007` in an int column, `x` in
    /// a float one) is a record-level error naming the column and suggesting
    /// a larger sample, never a changed value. Replaces
    /// [`schema`](CsvSource::schema), whose types read values leniently.
    ///
    /// # Panics
    ///
    /// If `rows` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    /// use dataflare::record::DataType;
    ///
    /// let input = "id,price,day,ok,zip,at\n\
    ///              1,2.5,2024-01-31,true,00501,2024-01-31T08:00:00Z\n\
    ///              2,3,2024-02-01,false,10001,2024-02-01T09:30:00.25Z\n";
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_records_from(input.as_bytes()).infer_schema(100))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let types: Vec<DataType> =
    ///     out.to_vec()[0].schema().fields().iter().map(|f| f.data_type()).collect();
    /// // The zip codes stay text: 00501 is not the integer 501.
    /// assert_eq!(
    ///     types,
    ///     [DataType::Int, DataType::Float, DataType::Date, DataType::Bool, DataType::Str, DataType::Timestamp]
    /// );
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn infer_schema(mut self, rows: usize) -> Self {
        assert!(
            rows > 0,
            "infer_schema: types are inferred from at least 1 row"
        );
        self.config.columns = Columns::Infer(rows);
        self
    }

    /// The columns the records will have, known before any record is read:
    /// the header's names (or `col0`, ... from the first record without a
    /// header) with the types of the [`schema`](CsvSource::schema) or those
    /// [`infer_schema`](CsvSource::infer_schema) finds in its sample. Starts
    /// reading, up to the header and the sample; the records read are kept,
    /// and the source yields them all as if this had not been called. An
    /// empty input has the given [`schema`](CsvSource::schema)'s columns, or
    /// none.
    ///
    /// Give it to a CSV sink with [`CsvSink::schema`](super::CsvSink::schema)
    /// so that an input with a header and no record still makes a file with
    /// the header.
    ///
    /// # Errors
    ///
    /// What would end the run before the first record: the file cannot be
    /// opened, the header row is malformed, a schema column is not in the
    /// header. The source yields nothing more after it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
    /// std::fs::write(&input, "id,name\n").unwrap(); // a header, no record
    ///
    /// let mut source = csv::read_records(&input);
    /// let schema = source.read_schema().await?;
    /// assert_eq!(schema.names().collect::<Vec<_>>(), ["id", "name"]);
    /// Pipeline::from(source).to(csv::write_records(&output).schema(schema)).run().await?;
    /// assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,name\n");
    /// # Ok(()) }
    /// ```
    pub async fn read_schema(&mut self) -> Result<Arc<Schema>> {
        self.start();
        std::future::poll_fn(|cx| {
            loop {
                if let Some(schema) = self.decoding.schema() {
                    return Poll::Ready(Ok(schema));
                }
                if self.decoding.done {
                    return Poll::Ready(match self.decoding.take_error() {
                        Some(e) => Err(e),
                        // An empty input: the given schema, or no column.
                        None => Ok(match &self.config.columns {
                            Columns::Schema(schema) => schema.clone(),
                            _ => Arc::new(Schema::from_fields([])),
                        }),
                    });
                }
                ready!(self.poll_more(cx));
            }
        })
        .await
    }
}

// The configuration and the blocking source are never pinned.
impl<T> Unpin for CsvSource<T> {}

impl<T: Send + 'static> CsvSource<T> {
    /// Starts the reader, unless it has started.
    fn start(&mut self) {
        if self.source.is_some() {
            return;
        }
        let Some(input) = self.config.input.take() else {
            return;
        };
        let job = Job {
            input,
            options: self.config.options.clone(),
            columns: self.config.columns.clone(),
            decoder: self.config.decoder,
            unnamed: self.config.unnamed,
        };
        self.decoding.size = self.config.options.batch_size;
        self.source = Some(BlockingSource::new(READ_AHEAD, move |emit| {
            read_all(job, emit)
        }));
    }

    /// Takes what the reader sent next into `decoding`; once the reader has
    /// ended, `decoding.done` is set.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let decoding = &mut self.decoding;
        let Some(source) = self.source.as_mut() else {
            decoding.done = true;
            return Poll::Ready(());
        };
        match ready!(Pin::new(source).poll_next(cx)) {
            Some(Ok(batch)) => {
                for msg in batch.into_records() {
                    decoding.take(msg);
                }
            }
            Some(Err(e)) => {
                // A stream-level error: the records not yet sent are lost,
                // as the reader would have lost them.
                decoding.carry.clear();
                decoding.out.push_back(Err(e));
            }
            None => {
                decoding.flush();
                decoding.done = true;
            }
        }
        Poll::Ready(())
    }
}

impl<T: Send + 'static> Stream for CsvSource<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.claimed {
            this.claimed = true;
            // Started by `read_schema`, outside the run: the run has not seen
            // the input yet, and must, before any record goes on.
            if this.source.is_some()
                && let Some(path) = &this.config.path
                && let Err(e) = crate::connectors::file::claim_input(path)
            {
                this.decoding.done = true;
                this.decoding.out.clear();
                this.source = None;
                return Poll::Ready(Some(Err(e)));
            }
        }
        this.start();
        loop {
            if let Some(item) = this.decoding.out.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.decoding.done {
                return Poll::Ready(None);
            }
            ready!(this.poll_more(cx));
        }
    }
}

impl<T> fmt::Debug for CsvSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CsvSource");
        match &self.config.path {
            Some(path) => d.field("path", path),
            None => d.field("path", &"<reader>"),
        };
        d.field("options", &self.config.options)
            .field("columns", &self.config.columns)
            .field("started", &self.source.is_some())
            .finish()
    }
}
