//! The CSV source: [`read`], [`read_records`], [`read_from`], [`read_records_from`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ::csv::{ByteRecord, StringRecord};
use futures::Stream;
use serde::de::DeserializeOwned;

use super::options::{CsvOptions, Trim};
use super::strict::{Dialect, Pos, RecordInfo, Tee, Validator, show};
use crate::connectors::file::{BlockingSource, Emit};
use crate::record::{DataType, Record, Schema, Value};
use crate::{Batch, Error, ErrorKind, Position, Result};

/// Batches the reader may be ahead of the pipeline.
const READ_AHEAD: usize = 2;

/// Bytes the `csv` reader asks its input for at a time.
const BUFFER: usize = 64 * 1024;

/// A source reading the CSV file at `path`, each record deserialized into a `T`
/// with serde (by column name when the file has a header, by position when not).
///
/// Reading, parsing and checking run on a blocking thread, started when the
/// pipeline first asks for data, linked to it by a bounded channel; the rows
/// are deserialized in the pipeline's task as it takes them. The dialect and
/// reading options are set with the [`CsvSource`] methods; the defaults read
/// RFC 4180 files: `,` between fields, a header row, `"` quoting with doubled
/// quotes, `\n` or `\r\n` line ends, strict quoting, strict UTF-8. A UTF-8 BOM
/// is skipped; blank lines are skipped.
///
/// A file that cannot be opened or read ends the run with an error naming it.
/// A malformed record (bad quoting, a wrong number of fields, invalid UTF-8, a
/// value that does not fit `T`) is a record-level error naming the file, the
/// record, its line and byte, and the field; the source goes on with the next
/// record, so [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip) skips and counts
/// it. See [`CsvSource`] for what the positions mean.
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

enum Input {
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
}

/// Where the columns of dynamic records come from.
#[derive(Debug, Clone)]
enum Columns {
    /// Names from the header (or `col0`...), every column text.
    FromInput,
    /// A given schema.
    Schema(Arc<Schema>),
    /// Names from the header, types guessed from this many rows.
    Infer(usize),
}

/// Makes the record decoder once the header and the first rows are known.
type MakeDecoder<T> = fn(Setup<'_>) -> Result<Box<dyn Decode<T>>>;

/// The source made by [`read`], [`read_records`], [`read_from`] and
/// [`read_records_from`]: configure it with its chained methods, then start a
/// [`Pipeline`](crate::Pipeline) with it. A `Stream` of batches.
///
/// # Strict quoting
///
/// By default a field is either unquoted, holding no quote, or quoted from its
/// first byte to a closing quote followed by a delimiter or the end of the
/// record (quotes inside doubled, or escaped when an [`escape`](CsvSource::escape)
/// byte is set). Three things the `csv` crate would read silently are
/// record-level errors: a quote inside an unquoted field (`ab"c"d`), text after
/// a closing quote (`"abc"def`), and a quoted field still open at the end of
/// the input (which would hold the rest of the file). After one, reading goes
/// on with the next record as the `csv` crate splits them.
/// [`lenient_quotes(true)`](CsvSource::lenient_quotes) accepts all three as the
/// crate reads them.
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
/// Errors about the header row itself, and a [`schema`](CsvSource::schema)
/// naming a column the header lacks, end the run: no record could be read right.
#[must_use = "streams do nothing unless polled"]
pub struct CsvSource<T> {
    config: Config<T>,
    /// The reader, once started.
    source: Option<BlockingSource<Msg<T>>>,
    /// Turns the reader's rows into records, in the pipeline's task.
    decoding: Decoding<T>,
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
    /// (empty fields aside): [`DataType::Int`] if all are integers, else
    /// [`DataType::Float`] if all are numbers, else [`DataType::Date`]
    /// (`YYYY-MM-DD`), else [`DataType::Bool`] (`true`/`false`, `yes`/`no`,
    /// `t`/`f`), else [`DataType::Str`]; a column with no value is text. Names
    /// are as without a schema. The rows are kept in memory until the types are
    /// known. A later value that does not fit its column's type is a
    /// record-level error, as with [`schema`](CsvSource::schema), which this
    /// replaces.
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
    /// let input = "id,price,day,ok,name\n1,2.5,2024-01-31,true,ada\n2,3,2024-02-01,false,\n";
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_records_from(input.as_bytes()).infer_schema(100))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let types: Vec<DataType> =
    ///     out.to_vec()[0].schema().fields().iter().map(|f| f.data_type()).collect();
    /// assert_eq!(types, [DataType::Int, DataType::Float, DataType::Date, DataType::Bool, DataType::Str]);
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
}

// The configuration and the blocking source are never pinned.
impl<T> Unpin for CsvSource<T> {}

impl<T: Send + 'static> Stream for CsvSource<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.source.is_none() {
            let Some(input) = this.config.input.take() else {
                return Poll::Ready(None);
            };
            let job = Job {
                input,
                options: this.config.options.clone(),
                columns: this.config.columns.clone(),
                decoder: this.config.decoder,
                unnamed: this.config.unnamed,
            };
            this.decoding.size = this.config.options.batch_size;
            this.source = Some(BlockingSource::new(READ_AHEAD, move |emit| {
                read_all(job, emit)
            }));
        }
        let Some(source) = this.source.as_mut() else {
            return Poll::Ready(None);
        };
        let decoding = &mut this.decoding;
        loop {
            if let Some(item) = decoding.out.pop_front() {
                return Poll::Ready(Some(item));
            }
            if decoding.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut *source).poll_next(cx)) {
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
        }
    }
}

/// What the reading thread sends: first the decoder, then checked rows.
enum Msg<T> {
    Start(Box<dyn Decode<T>>, Labels),
    Rows(Chunk),
}

/// Rows read and checked on the reading thread, to be decoded in the
/// pipeline's task, and the record-level errors between them, in order.
#[derive(Default)]
struct Chunk {
    /// The rows' fields, one after the other.
    text: String,
    /// The end of each field in `text`.
    ends: Vec<usize>,
    /// Each field's first byte in the input.
    positions: Vec<Pos>,
    items: Vec<Item>,
    /// Whether the records decoded so far are sent on after this chunk.
    flush: bool,
}

enum Item {
    /// A row of `fields` fields, the next ones in the chunk.
    Row {
        index: u64,
        start: Pos,
        fields: usize,
    },
    Error(Error),
}

/// How fields are named in errors, and the input's path.
#[derive(Default)]
struct Labels {
    /// The header's or the schema's names.
    names: Vec<String>,
    /// The prefix of a field's index when it has no name.
    unnamed: &'static str,
    path: Option<PathBuf>,
}

impl Labels {
    /// The error for a value of the row at `index` that did not decode.
    fn field_error(&self, index: u64, start: Pos, positions: &[Pos], e: FieldError) -> Error {
        let at = e
            .column
            .and_then(|c| positions.get(c).copied())
            .unwrap_or(start);
        let mut position = Position::new().record(index).line(at.line).byte(at.byte);
        if let Some(name) = e.name.or_else(|| {
            e.column.map(|c| match self.names.get(c) {
                Some(name) => name.clone(),
                None => format!("{}{c}", self.unnamed),
            })
        }) {
            position = position.field(name);
        }
        with_path(
            Error::parse(e.message).with_position(position),
            self.path.as_deref(),
        )
    }
}

/// The pipeline's side of the source: decodes rows into records and batches
/// them as the reading thread would have.
struct Decoding<T> {
    decoder: Option<Box<dyn Decode<T>>>,
    labels: Labels,
    /// The row being decoded (its buffers reused).
    record: StringRecord,
    /// Records not yet sent.
    carry: Vec<T>,
    size: usize,
    seq: u64,
    /// What is ready to be yielded.
    out: VecDeque<Result<Batch<T>>>,
    done: bool,
}

impl<T> Default for Decoding<T> {
    fn default() -> Self {
        Decoding {
            decoder: None,
            labels: Labels::default(),
            record: StringRecord::new(),
            carry: Vec::new(),
            size: 1,
            seq: 0,
            out: VecDeque::new(),
            done: false,
        }
    }
}

impl<T> Decoding<T> {
    fn take(&mut self, msg: Msg<T>) {
        match msg {
            Msg::Start(decoder, labels) => {
                self.decoder = Some(decoder);
                self.labels = labels;
            }
            Msg::Rows(chunk) => self.decode(chunk),
        }
    }

    fn decode(&mut self, chunk: Chunk) {
        let Chunk {
            text,
            ends,
            positions,
            items,
            flush,
        } = chunk;
        let (mut field, mut from) = (0, 0);
        for item in items {
            match item {
                Item::Error(e) => {
                    self.flush();
                    self.out.push_back(Err(e));
                }
                Item::Row {
                    index,
                    start,
                    fields,
                } => {
                    self.record.clear();
                    for &end in &ends[field..field + fields] {
                        self.record.push_field(&text[from..end]);
                        from = end;
                    }
                    let at = &positions[field..field + fields];
                    field += fields;
                    let Some(decoder) = self.decoder.as_mut() else {
                        let e = Error::msg("internal error: a CSV row came before its decoder");
                        self.out.push_back(Err(e));
                        continue;
                    };
                    match decoder.decode(&self.record) {
                        Ok(record) => {
                            if self.carry.capacity() == 0 {
                                self.carry.reserve_exact(self.size.min(4096));
                            }
                            self.carry.push(record);
                            if self.carry.len() >= self.size {
                                self.flush();
                            }
                        }
                        Err(e) => {
                            self.flush();
                            let e = self.labels.field_error(index, start, at, e);
                            self.out.push_back(Err(e));
                        }
                    }
                }
            }
        }
        if flush {
            self.flush();
        }
    }

    /// Queues the records so far as a batch, if any.
    fn flush(&mut self) {
        if self.carry.is_empty() {
            return;
        }
        let batch = Batch::new(std::mem::take(&mut self.carry)).with_seq(self.seq);
        self.seq += 1;
        self.out.push_back(Ok(batch));
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

/// Everything the reading thread needs.
struct Job<T> {
    input: Input,
    options: CsvOptions,
    columns: Columns,
    decoder: MakeDecoder<T>,
    unnamed: &'static str,
}

/// What a decoder is made from.
struct Setup<'a> {
    header: Option<&'a StringRecord>,
    /// Fields in a record: the header's, or the first record's.
    width: usize,
    /// The first records that were well formed (as many as schema inference
    /// asked for, else at most one).
    sample: &'a [&'a Row],
    columns: &'a Columns,
    path: Option<&'a Path>,
}

/// Turns a well-formed row's fields into a `T`.
trait Decode<T>: Send {
    fn decode(&mut self, fields: &StringRecord) -> std::result::Result<T, FieldError>;
}

/// A value that does not fit: in which column, and why.
struct FieldError {
    column: Option<usize>,
    name: Option<String>,
    message: String,
}

/// A record that passed the checks: its values, and where it came from.
#[derive(Debug, Clone, Default)]
struct Row {
    index: u64,
    fields: StringRecord,
    info: RecordInfo,
}

/// Deserializes rows into `T` with serde.
struct Typed<T> {
    header: Option<StringRecord>,
    _record: PhantomData<fn() -> T>,
}

fn typed<T: DeserializeOwned + 'static>(setup: Setup<'_>) -> Result<Box<dyn Decode<T>>> {
    Ok(Box::new(Typed {
        header: setup.header.cloned(),
        _record: PhantomData,
    }))
}

impl<T: DeserializeOwned> Decode<T> for Typed<T> {
    fn decode(&mut self, fields: &StringRecord) -> std::result::Result<T, FieldError> {
        fields.deserialize(self.header.as_ref()).map_err(|e| {
            let ::csv::ErrorKind::Deserialize { err, .. } = e.kind() else {
                return FieldError {
                    column: None,
                    name: None,
                    message: e.to_string(),
                };
            };
            let column = err.field().and_then(|c| usize::try_from(c).ok());
            let name = column.map(|c| match self.header.as_ref().and_then(|h| h.get(c)) {
                Some(name) => name.to_string(),
                None => c.to_string(),
            });
            let message = match column.and_then(|c| fields.get(c)) {
                Some(text) => format!("invalid value {}: {}", excerpt(text), err.kind()),
                None => err.kind().to_string(),
            };
            FieldError {
                column,
                name,
                message,
            }
        })
    }
}

/// Makes dynamic records of the schema's columns.
struct Records {
    schema: Arc<Schema>,
    /// For each schema column, the field it is read from.
    columns: Vec<usize>,
}

fn records(setup: Setup<'_>) -> Result<Box<dyn Decode<Record>>> {
    let names: Vec<String> = match setup.header {
        Some(header) => header.iter().map(str::to_string).collect(),
        None => (0..setup.width).map(|i| format!("col{i}")).collect(),
    };
    let all = (0..names.len()).collect();
    let (schema, columns) = match setup.columns {
        Columns::FromInput => (
            Arc::new(Schema::strings(names.iter().map(String::as_str))),
            all,
        ),
        Columns::Infer(_) => {
            let types = (0..names.len()).map(|c| infer(setup.sample, c));
            let schema = Schema::new(names.iter().map(String::as_str).zip(types));
            (Arc::new(schema), all)
        }
        Columns::Schema(schema) => match setup.header {
            None => (schema.clone(), (0..schema.len()).collect()),
            Some(header) => {
                let columns = schema
                    .names()
                    .map(|name| {
                        header.iter().position(|h| h == name).ok_or_else(|| {
                            let e = Error::config(format!(
                                "column {name:?} of the schema is not in the header"
                            ));
                            with_path(e, setup.path)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                (schema.clone(), columns)
            }
        },
    };
    Ok(Box::new(Records { schema, columns }))
}

impl Decode<Record> for Records {
    fn decode(&mut self, fields: &StringRecord) -> std::result::Result<Record, FieldError> {
        let mut values = Vec::with_capacity(self.columns.len());
        for (field, &c) in self.schema.fields().iter().zip(&self.columns) {
            let value = match (fields.get(c), field.data_type()) {
                (None, _) => Value::Null,
                (Some(text), DataType::Str) if !text.is_empty() => Value::from(text),
                (Some(text), data_type) => data_type.parse(text).map_err(|message| FieldError {
                    column: Some(c),
                    name: Some(field.name().to_string()),
                    message,
                })?,
            };
            values.push(value);
        }
        Ok(Record::new(self.schema.clone(), values))
    }
}

/// The type of column `c` in the sample, as [`CsvSource::infer_schema`] says.
fn infer(sample: &[&Row], c: usize) -> DataType {
    let values = || {
        sample
            .iter()
            .filter_map(move |row| row.fields.get(c))
            .filter(|v| !v.is_empty())
    };
    let all = |t: DataType| values().all(|v| t.parse(v).is_ok());
    if values().next().is_none() {
        DataType::Str
    } else if all(DataType::Int) {
        DataType::Int
    } else if values().all(|v| v.bytes().any(|b| b.is_ascii_digit())) && all(DataType::Float) {
        // A digit is required so that words like "nan" or "inf" stay text.
        DataType::Float
    } else if all(DataType::Date) {
        DataType::Date
    } else if all(DataType::Bool) {
        DataType::Bool
    } else {
        DataType::Str
    }
}

/// A value for an error message: quoted, and cut short when long.
fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
    }
}

fn with_path(error: Error, path: Option<&Path>) -> Error {
    match path {
        Some(path) => error.with_path(path),
        None => error,
    }
}

/// Checks the options before anything is read.
fn check(options: &CsvOptions) -> Result<()> {
    if options.batch_size == 0 {
        return Err(Error::config(
            "batch_size: a batch needs room for at least 1 record",
        ));
    }
    if options.delimiter == options.quote {
        return Err(Error::config(format!(
            "the delimiter and the quote are the same byte ({})",
            show(options.quote)
        )));
    }
    for (what, byte) in [
        ("delimiter", Some(options.delimiter)),
        ("quote", Some(options.quote)),
        ("escape", options.escape),
    ] {
        if matches!(byte, Some(b'\r' | b'\n')) {
            return Err(Error::config(format!("the {what} cannot be a line break")));
        }
    }
    Ok(())
}

/// Opens the input: a reader, whether it is a stream (see [`read_from`]: any
/// reader, or a path that is not a regular file), and the file's path.
fn open(input: Input) -> Result<(Box<dyn Read + Send>, bool, Option<PathBuf>)> {
    match input {
        Input::Reader(reader) => Ok((reader, true, None)),
        Input::Path(path) => {
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                return Err(
                    Error::config("the input path is a directory, not a file").with_path(&path)
                );
            }
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            // A named pipe or a device is read as a stream.
            Ok((Box::new(file), !meta.is_file(), Some(path)))
        }
    }
}

/// Reads the whole input, sending batches and record-level errors; returns a
/// stream-level error, or `Ok` at the end of the input or once the pipeline
/// is gone.
fn read_all<T>(job: Job<T>, emit: &mut Emit<Msg<T>>) -> Result<()> {
    let Job {
        input,
        options,
        columns,
        decoder,
        unnamed,
    } = job;
    let path_of = match &input {
        Input::Path(p) => Some(p.clone()),
        Input::Reader(_) => None,
    };
    check(&options).map_err(|e| with_path(e, path_of.as_deref()))?;
    let (reader, streaming, path) = open(input)?;
    let width = match (&columns, options.has_headers) {
        (Columns::Schema(schema), false) => Some(schema.len()),
        _ => None,
    };
    let mut rows = Rows::new(reader, &options, path.clone(), width, unnamed);

    let header = if options.has_headers {
        match rows.header()? {
            Some(header) => Some(header),
            None => return Ok(()), // empty input
        }
    } else {
        None
    };
    rows.names = match (&header, &columns) {
        (Some(header), _) => header.iter().map(str::to_string).collect(),
        (None, Columns::Schema(schema)) => schema.names().map(str::to_string).collect(),
        (None, _) => Vec::new(),
    };

    // The first rows: enough to infer types, and at least one to know how
    // many fields a record has when there is no header.
    let wanted = match columns {
        Columns::Infer(n) => n.max(1),
        _ => 1,
    };
    let mut sample = Vec::new();
    while sample.len() < wanted {
        match rows.next()? {
            None => break,
            Some(Ok(())) => sample.push(Ok(rows.row.clone())),
            Some(Err(e)) => sample.push(Err(e)),
        }
    }
    if header.is_none() && sample.is_empty() {
        return Ok(()); // empty input
    }
    let decoder = {
        let good: Vec<&Row> = sample.iter().filter_map(|r| r.as_ref().ok()).collect();
        decoder(Setup {
            header: header.as_ref(),
            width: rows.width.unwrap_or(0),
            sample: &good,
            columns: &columns,
            path: path.as_deref(),
        })?
    };

    let labels = Labels {
        names: rows.names.clone(),
        unnamed: rows.unnamed,
        path: rows.path.clone(),
    };
    if !emit.batch(vec![Msg::Start(decoder, labels)]) {
        return Ok(());
    }
    let mut out = Batcher {
        emit,
        chunk: Chunk::default(),
        size: options.batch_size,
        unflushed: false,
    };
    for row in sample {
        let more = match row {
            Ok(row) => out.row(&row),
            Err(e) => out.error(e),
        };
        if !more {
            return Ok(());
        }
    }
    if streaming && !rows.has_buffered() && !out.flush() {
        return Ok(());
    }
    loop {
        let more = match rows.next()? {
            None => break,
            Some(Ok(())) => out.row(&rows.row),
            Some(Err(e)) => out.error(e),
        };
        if !more {
            return Ok(());
        }
        if streaming && !rows.has_buffered() && !out.flush() {
            return Ok(());
        }
    }
    out.flush();
    Ok(())
}

/// Collects checked rows and record-level errors into chunks and sends them,
/// to be decoded in the pipeline's task, which batches the records as they
/// would be batched here: a full batch is sent, and the records so far go
/// before an error and wherever [`flush`](Batcher::flush) is called.
struct Batcher<'a, T> {
    emit: &'a mut Emit<Msg<T>>,
    chunk: Chunk,
    size: usize,
    /// Whether rows were sent since the last flush.
    unflushed: bool,
}

impl<T> Batcher<'_, T> {
    /// Adds a row; false when the pipeline is gone.
    fn row(&mut self, row: &Row) -> bool {
        let chunk = &mut self.chunk;
        let mut end = chunk.text.len();
        chunk.text.push_str(row.fields.as_slice());
        for field in &row.fields {
            end += field.len();
            chunk.ends.push(end);
        }
        chunk.positions.extend_from_slice(&row.info.fields);
        chunk.items.push(Item::Row {
            index: row.index,
            start: row.info.start,
            fields: row.fields.len(),
        });
        chunk.items.len() < self.size || self.send(false)
    }

    /// Adds an error, after the rows so far.
    fn error(&mut self, error: Error) -> bool {
        self.chunk.items.push(Item::Error(error));
        self.chunk.items.len() < self.size || self.send(false)
    }

    /// Sends the records so far, if any.
    fn flush(&mut self) -> bool {
        if self.chunk.items.is_empty() && !self.unflushed {
            return true;
        }
        self.send(true)
    }

    fn send(&mut self, flush: bool) -> bool {
        // The next chunk starts with room for as much as this one held.
        let next = Chunk {
            text: String::with_capacity(self.chunk.text.len()),
            ends: Vec::with_capacity(self.chunk.ends.len()),
            positions: Vec::with_capacity(self.chunk.positions.len()),
            items: Vec::with_capacity(self.chunk.items.len()),
            flush: false,
        };
        let mut chunk = std::mem::replace(&mut self.chunk, next);
        chunk.flush = flush;
        self.unflushed = !flush;
        self.emit.batch(vec![Msg::Rows(chunk)])
    }
}

/// Reads records with the `csv` crate, checking each: quoting (through the
/// validator), the number of fields, UTF-8.
struct Rows {
    csv: ::csv::Reader<Tee<Box<dyn Read + Send>>>,
    validator: Rc<RefCell<Validator>>,
    path: Option<PathBuf>,
    quote: u8,
    strict: bool,
    lossy: bool,
    flexible: bool,
    trim_headers: bool,
    trim_fields: bool,
    /// The number of fields a record should have: the header's, the
    /// schema's, or the first record's.
    width: Option<usize>,
    next_index: u64,
    /// Field names for errors: the header's or the schema's.
    names: Vec<String>,
    /// The prefix of a field's index when it has no name.
    unnamed: &'static str,
    /// The last row read.
    row: Row,
    /// Buffers for the next row's positions.
    scratch: RecordInfo,
}

impl Rows {
    fn new(
        reader: Box<dyn Read + Send>,
        options: &CsvOptions,
        path: Option<PathBuf>,
        width: Option<usize>,
        unnamed: &'static str,
    ) -> Self {
        let validator = Rc::new(RefCell::new(Validator::new(Dialect {
            delimiter: options.delimiter,
            quote: options.quote,
            escape: options.escape,
            double_quote: options.double_quote,
            comment: options.comment,
        })));
        let mut builder = options.reader_builder();
        // Headers, lengths and trimming are handled here, with positions.
        builder
            .has_headers(false)
            .flexible(true)
            .trim(::csv::Trim::None)
            .buffer_capacity(BUFFER);
        Rows {
            csv: builder.from_reader(Tee::new(reader, validator.clone())),
            validator,
            path,
            quote: options.quote,
            strict: !options.lenient_quotes,
            lossy: options.lossy_utf8,
            flexible: options.flexible,
            trim_headers: matches!(options.trim, Trim::Headers | Trim::All),
            trim_fields: matches!(options.trim, Trim::Fields | Trim::All),
            width,
            next_index: 0,
            names: Vec::new(),
            unnamed,
            row: Row::default(),
            scratch: RecordInfo::default(),
        }
    }

    /// True when the next record can be read without asking the input for more.
    fn has_buffered(&self) -> bool {
        self.validator.borrow().has_buffered()
    }

    /// Reads the next record's fields into `raw`, and what the validator found
    /// out about it into `info`; false at the end of the input.
    fn read_raw(&mut self, raw: &mut ByteRecord, info: &mut RecordInfo) -> Result<bool> {
        loop {
            if !self.read_any(raw, info)? {
                return Ok(false);
            }
            if !info.phantom {
                return Ok(true);
            }
        }
    }

    /// As [`read_raw`](Rows::read_raw), phantom records included.
    fn read_any(&mut self, raw: &mut ByteRecord, info: &mut RecordInfo) -> Result<bool> {
        let more = match self.csv.read_byte_record(raw) {
            Ok(more) => more,
            Err(e) => {
                return Err(match e.into_kind() {
                    ::csv::ErrorKind::Io(e) => match &self.path {
                        Some(path) => Error::io(path, e),
                        None => Error::from(e),
                    },
                    other => self.at_path(Error::msg(format!("CSV reader: {other:?}"))),
                });
            }
        };
        if !more {
            return Ok(false);
        }
        let found = self.validator.borrow_mut().pop_into(info);
        if found && info.end == self.csv.position().byte() && info.fields.len() == raw.len() {
            Ok(true)
        } else {
            Err(self.at_path(Error::msg(
                "internal error: the CSV reader and the quote validator disagree on a record's end",
            )))
        }
    }

    /// Reads the header row. Its errors are stream-level.
    fn header(&mut self) -> Result<Option<StringRecord>> {
        let mut raw = ByteRecord::new();
        let mut info = RecordInfo::default();
        if !self.read_raw(&mut raw, &mut info)? {
            return Ok(None);
        }
        let fail = |message: String, at: Pos| {
            let position = Position::new().line(at.line).byte(at.byte);
            let e = Error::new(ErrorKind::Parse(format!("header row: {message}")));
            self.at_path(e.with_position(position))
        };
        if let Some(q) = info.error.filter(|_| self.strict) {
            return Err(fail(q.message(self.quote), q.at));
        }
        let mut header = match StringRecord::from_byte_record(raw) {
            Ok(header) => header,
            Err(e) if self.lossy => StringRecord::from_byte_record_lossy(e.into_byte_record()),
            Err(e) => {
                let raw = e.into_byte_record();
                let (message, at) = utf8_error(&raw, &info);
                return Err(fail(message, at));
            }
        };
        if self.trim_headers {
            header.trim();
        }
        self.width = Some(header.len());
        Ok(Some(header))
    }

    /// Reads the next data record into `self.row`: `None` at the end of the
    /// input, `Some(Err)` for a malformed record.
    fn next(&mut self) -> Result<Option<std::result::Result<(), Error>>> {
        // The last row's buffers are reused.
        let mut raw = std::mem::take(&mut self.row.fields).into_byte_record();
        let mut info = std::mem::take(&mut self.scratch);
        if !self.read_raw(&mut raw, &mut info)? {
            return Ok(None);
        }
        let index = self.next_index;
        self.next_index += 1;
        let checked = self.check(raw, &info, index);
        match checked {
            Ok(fields) => {
                self.row.index = index;
                self.row.fields = fields;
                self.scratch = std::mem::replace(&mut self.row.info, info);
                Ok(Some(Ok(())))
            }
            Err(e) => {
                self.scratch = info;
                Ok(Some(Err(e)))
            }
        }
    }

    /// Checks a record's quoting, its number of fields and its UTF-8, and
    /// makes its text fields (trimmed if asked).
    fn check(
        &mut self,
        raw: ByteRecord,
        info: &RecordInfo,
        index: u64,
    ) -> std::result::Result<StringRecord, Error> {
        let width = *self.width.get_or_insert(raw.len());
        if let Some(q) = info.error.filter(|_| self.strict) {
            return Err(self.error(q.message(self.quote), index, q.at, Some(q.field)));
        }
        if !self.flexible && raw.len() != width {
            let message = format!("expected {width} fields, found {}", raw.len());
            return Err(self.error(message, index, info.start, None));
        }
        let mut fields = match StringRecord::from_byte_record(raw) {
            Ok(fields) => fields,
            Err(e) if self.lossy => StringRecord::from_byte_record_lossy(e.into_byte_record()),
            Err(e) => {
                let raw = e.into_byte_record();
                let (message, at) = utf8_error(&raw, info);
                return Err(self.error(message, index, at, utf8_field(&raw)));
            }
        };
        if self.trim_fields {
            fields.trim();
        }
        Ok(fields)
    }

    /// The name of field `column`, for errors.
    fn label(&self, column: usize) -> String {
        match self.names.get(column) {
            Some(name) => name.clone(),
            None => format!("{}{column}", self.unnamed),
        }
    }

    /// A record-level parse error at `at`.
    fn error(&self, message: String, index: u64, at: Pos, field: Option<usize>) -> Error {
        let mut position = Position::new().record(index).line(at.line).byte(at.byte);
        if let Some(field) = field {
            position = position.field(self.label(field));
        }
        self.at_path(Error::parse(message).with_position(position))
    }

    fn at_path(&self, error: Error) -> Error {
        with_path(error, self.path.as_deref())
    }
}

/// The first field of `raw` that is not UTF-8.
fn utf8_field(raw: &ByteRecord) -> Option<usize> {
    raw.iter().position(|f| std::str::from_utf8(f).is_err())
}

/// The message and position for the first invalid UTF-8 in `raw`.
fn utf8_error(raw: &ByteRecord, info: &RecordInfo) -> (String, Pos) {
    for (field, value) in raw.iter().enumerate() {
        if let Err(e) = std::str::from_utf8(value) {
            let offset = e.valid_up_to();
            let at = info.locate(field, value, offset).unwrap_or(info.start);
            let bad = value.get(offset).copied().unwrap_or(0);
            return (format!("invalid UTF-8 ({})", show(bad)), at);
        }
    }
    ("invalid UTF-8".to_string(), info.start)
}
