//! The JSON Lines source: [`read`], [`read_records`], [`read_from`], [`read_records_from`].

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use serde::de::DeserializeOwned;

use super::decode::{Decode, LineError, dynamic, typed};
use super::lines::{LineReader, Next};
use crate::connectors::file::{BlockingSource, Emit};
use crate::record::{Record, Schema};
use crate::source::DEFAULT_BATCH_SIZE;
use crate::{Batch, Error, ErrorKind, Position, Result};

/// Batches the reader may be ahead of the pipeline.
const READ_AHEAD: usize = 2;

/// The longest line a JSON Lines source reads by default, 16 MiB (not counting
/// its line break); see [`JsonlSource::max_line_bytes`].
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;

/// A source reading the file at `path` as JSON Lines, each line deserialized
/// into a `T`.
///
/// Blank lines are skipped. A line that is not valid JSON, or does not fit `T`,
/// is a record-level error naming the file, the record (non-blank lines,
/// numbered from 1 like lines), the line, the byte where the line starts and,
/// in the message, `serde_json`'s column within the line; the source goes on after
/// it, so [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip) skips and counts it,
/// and [dead letters](crate::DeadLetters) carry the line's text (its first
/// 4 KiB). A file that cannot be opened or read, or a line longer than
/// [`max_line_bytes`](JsonlSource::max_line_bytes), ends the run. A UTF-8 byte
/// order mark at the start is skipped (a UTF-16 one ends the run: convert the
/// input to UTF-8), and lines may end in `\n` or `\r\n`.
/// Reading and parsing run on a blocking thread, which starts when the
/// pipeline first asks for data.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::jsonl;
/// use dataflare::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
/// struct Point { x: i32, y: i32 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("points.jsonl");
/// std::fs::write(&path, "{\"x\":1,\"y\":2}\n\n{\"y\":4,\"x\":3}\n").unwrap();
///
/// let out = Collected::new();
/// Pipeline::from(jsonl::read::<Point>(&path)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec(), vec![Point { x: 1, y: 2 }, Point { x: 3, y: 4 }]);
/// # Ok(()) }
/// ```
pub fn read<T: DeserializeOwned + Send + 'static>(path: impl AsRef<Path>) -> JsonlSource<T> {
    JsonlSource::new(Input::Path(path.as_ref().to_path_buf()), typed::<T>)
}

/// A source reading the file at `path` as JSON Lines, each line an object made
/// into a dynamic [`Record`].
///
/// The columns are the keys of the first object, in the order they appear,
/// with the types of its values (a `null` counts as a string) — unless a
/// [`schema`](JsonlSource::schema) is given. JSON `null`, booleans, integers
/// (that fit an `i64`), other numbers and strings become [`Value::Null`],
/// [`Value::Bool`], [`Value::Int`], [`Value::Float`] and [`Value::Str`], and
/// a nested array or object a [`Value::Json`] (whose objects keep their keys
/// sorted, as `serde_json` does); values are kept as they are, not converted
/// to the first object's types. In later objects a missing key is
/// [`Value::Null`]; an unknown or repeated key, or a line that is not an
/// object, is a record-level error naming the field. Otherwise as [`read`].
///
/// [`Value::Null`]: crate::record::Value::Null
/// [`Value::Bool`]: crate::record::Value::Bool
/// [`Value::Int`]: crate::record::Value::Int
/// [`Value::Float`]: crate::record::Value::Float
/// [`Value::Str`]: crate::record::Value::Str
/// [`Value::Json`]: crate::record::Value::Json
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::jsonl;
/// use dataflare::prelude::*;
/// use dataflare::record::Value;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("users.jsonl");
/// std::fs::write(&path, "{\"name\":\"Ada\",\"age\":36}\n{\"name\":\"Alan\"}\n").unwrap();
///
/// let out = Collected::new();
/// Pipeline::from(jsonl::read_records(&path)).to(sink::collect(&out)).run().await?;
/// let rows = out.to_vec();
/// assert_eq!(rows[0].schema().names().collect::<Vec<_>>(), ["name", "age"]);
/// assert_eq!(rows[0].get("age"), Some(&Value::Int(36)));
/// assert_eq!(rows[1].get("age"), Some(&Value::Null));
/// # Ok(()) }
/// ```
pub fn read_records(path: impl AsRef<Path>) -> JsonlSource<Record> {
    JsonlSource::new(Input::Path(path.as_ref().to_path_buf()), dynamic)
}

/// A source reading JSON Lines from any reader (stdin, a socket, a buffer) into
/// `T`s, as [`read`] does from a file.
///
/// The reader is taken as a stream: the records read so far are passed on
/// before each read that may wait for input (as they are for a named pipe or a
/// device given to [`read`]), so `tail -f log.jsonl | ...` flows line by line
/// rather than a batch at a time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::jsonl;
/// use dataflare::prelude::*;
///
/// let input = std::io::Cursor::new("[1,\"a\"]\n[2,\"b\"]\n");
/// let out = Collected::new();
/// Pipeline::from(jsonl::read_from::<(u32, String)>(input)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec(), vec![(1, "a".to_string()), (2, "b".to_string())]);
/// # Ok(()) }
/// ```
pub fn read_from<T: DeserializeOwned + Send + 'static>(
    reader: impl Read + Send + 'static,
) -> JsonlSource<T> {
    JsonlSource::new(Input::Reader(Box::new(reader)), typed::<T>)
}

/// A source reading JSON Lines from any reader into dynamic [`Record`]s, as
/// [`read_records`] does from a file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::jsonl;
/// use dataflare::prelude::*;
///
/// let input = std::io::Cursor::new("{\"b\":1,\"a\":true}\n");
/// let out = Collected::new();
/// Pipeline::from(jsonl::read_records_from(input)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec()[0].schema().names().collect::<Vec<_>>(), ["b", "a"]);
/// # Ok(()) }
/// ```
pub fn read_records_from(reader: impl Read + Send + 'static) -> JsonlSource<Record> {
    JsonlSource::new(Input::Reader(Box::new(reader)), dynamic)
}

enum Input {
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
}

/// Makes the line decoder, given the schema set on the source (if any).
type MakeDecoder<T> = fn(Option<Arc<Schema>>) -> Box<dyn Decode<T>>;

/// The source made by [`read`], [`read_records`], [`read_from`] and
/// [`read_records_from`]: configure it with its chained methods, then start a
/// [`Pipeline`](crate::Pipeline) with it.
#[must_use = "streams do nothing unless polled"]
pub struct JsonlSource<T> {
    /// The configuration, until the first poll.
    config: Option<Box<Config<T>>>,
    /// The reader, once started.
    source: Option<BlockingSource<T>>,
}

struct Config<T> {
    input: Input,
    batch_size: usize,
    lossy_utf8: bool,
    max_line_bytes: usize,
    schema: Option<Arc<Schema>>,
    decoder: MakeDecoder<T>,
}

impl<T: Send + 'static> JsonlSource<T> {
    fn new(input: Input, decoder: MakeDecoder<T>) -> Self {
        JsonlSource {
            config: Some(Box::new(Config {
                input,
                batch_size: DEFAULT_BATCH_SIZE,
                lossy_utf8: false,
                max_line_bytes: DEFAULT_MAX_LINE_BYTES,
                schema: None,
                decoder,
            })),
            source: None,
        }
    }

    fn config(&mut self) -> &mut Config<T> {
        self.config
            .as_mut()
            .expect("a source is configured before it is polled")
    }

    /// Sets how many records go in each batch; [`DEFAULT_BATCH_SIZE`] by default.
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::jsonl;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("n.jsonl");
    /// std::fs::write(&path, "1\n2\n3\n4\n5\n").unwrap();
    /// let report = Pipeline::from(jsonl::read::<u32>(&path).batch_size(2))
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
        self.config().batch_size = size;
        self
    }

    /// Sets whether invalid UTF-8 is replaced by U+FFFD (true) instead of being
    /// a record-level error (false, the default).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::jsonl;
    /// use dataflare::prelude::*;
    ///
    /// let input = std::io::Cursor::new(b"\"caf\xe9\"\n".to_vec());
    /// let out = Collected::new();
    /// Pipeline::from(jsonl::read_from::<String>(input).lossy_utf8(true))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec!["caf\u{FFFD}".to_string()]);
    /// # Ok(()) }
    /// ```
    pub fn lossy_utf8(mut self, yes: bool) -> Self {
        self.config().lossy_utf8 = yes;
        self
    }

    /// Sets the longest line read, in bytes, not counting its line break;
    /// [`DEFAULT_MAX_LINE_BYTES`] (16 MiB) by default.
    ///
    /// A longer line ends the run, even under
    /// [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip): it is most likely not
    /// JSON Lines at all (a pretty-printed document, a file without line
    /// breaks), and skipping it could drop a large part of the input without a
    /// trace. The error names the file, the line, the byte where it starts and
    /// the limit. The source reads at most the limit of a line before giving
    /// up, so memory stays bounded whatever the input.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::jsonl;
    /// use dataflare::prelude::*;
    ///
    /// let input = std::io::Cursor::new("\"short\"\n\"a much longer line\"\n");
    /// let err = Pipeline::from(jsonl::read_from::<String>(input).max_line_bytes(10))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(sink::discard())
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("line 2, byte 8"), "{err}");
    /// assert!(err.to_string().contains("raise max_line_bytes"), "{err}");
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes > 0,
            "max_line_bytes: a line needs room for at least 1 byte"
        );
        self.config().max_line_bytes = bytes;
        self
    }

    fn start(&mut self) -> Pin<&mut BlockingSource<T>> {
        if let Some(config) = self.config.take() {
            let Config {
                input,
                batch_size,
                lossy_utf8,
                max_line_bytes,
                schema,
                decoder,
            } = *config;
            let decoder = decoder(schema);
            let options = ReadOptions {
                batch_size,
                lossy_utf8,
                max_line_bytes,
            };
            self.source = Some(BlockingSource::new(READ_AHEAD, move |emit| {
                read_lines(input, options, decoder, emit)
            }));
        }
        Pin::new(self.source.as_mut().expect("started above"))
    }
}

impl JsonlSource<Record> {
    /// Sets the columns instead of taking them from the first object. Each
    /// value is then converted to its column's type: an integer to a float; a
    /// string to a date, a timestamp or bytes as
    /// [`DataType::parse`](crate::record::DataType::parse) reads text (RFC
    /// 3339, base64); a number *or* a string to a decimal, a number from its
    /// text so that no float rounds it (`12.50` keeps its scale); any JSON
    /// value to a json column. A value that does not fit (a string in an int
    /// column, a float in an int column, a timestamp without a zone) is a
    /// record-level error naming the field. `null` fits every type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::jsonl;
    /// use dataflare::prelude::*;
    /// use dataflare::record::{DataType, Date, Schema, Value};
    ///
    /// let schema = Schema::new([("day", DataType::Date), ("amount", DataType::Float)]);
    /// let input = std::io::Cursor::new("{\"amount\":3,\"day\":\"2024-02-29\"}\n");
    /// let out = Collected::new();
    /// Pipeline::from(jsonl::read_records_from(input).schema(schema))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let row = &out.to_vec()[0];
    /// assert_eq!(row.get("day"), Some(&Value::Date(Date::from_ymd(2024, 2, 29).unwrap())));
    /// assert_eq!(row.get("amount"), Some(&Value::Float(3.0)));
    /// # Ok(()) }
    /// ```
    pub fn schema(mut self, schema: impl Into<Arc<Schema>>) -> Self {
        self.config().schema = Some(schema.into());
        self
    }
}

impl<T> Unpin for JsonlSource<T> {}

impl<T: Send + 'static> Stream for JsonlSource<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().start().poll_next(cx)
    }
}

impl<T> fmt::Debug for JsonlSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JsonlSource");
        if let Some(c) = &self.config {
            match &c.input {
                Input::Path(p) => d.field("path", p),
                Input::Reader(_) => d.field("reader", &".."),
            };
            d.field("batch_size", &c.batch_size)
                .field("lossy_utf8", &c.lossy_utf8)
                .field("max_line_bytes", &c.max_line_bytes)
                .field("schema", &c.schema);
        }
        if let Some(source) = &self.source {
            d.field("running", source);
        }
        d.finish()
    }
}

/// How [`read_lines`] reads.
struct ReadOptions {
    batch_size: usize,
    lossy_utf8: bool,
    max_line_bytes: usize,
}

/// Reads lines, decodes them and sends batches; runs on the blocking thread.
fn read_lines<T: 'static>(
    input: Input,
    options: ReadOptions,
    mut decoder: Box<dyn Decode<T>>,
    emit: &mut Emit<T>,
) -> Result<()> {
    // A file is read in large blocks; a stream (a reader, a pipe, a device)
    // in smaller ones, and the records read so far are sent on before a read
    // that may wait for input, so a slow producer's records flow.
    let (path, reader, streaming): (Option<PathBuf>, Box<dyn Read>, bool) = match input {
        Input::Path(path) => {
            crate::connectors::file::claim_input(&path)?;
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            // A regular file's size is the total to read; a pipe's or a
            // device's is unknown.
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            if let Some(size) = size {
                emit.set_total(size);
            }
            (Some(path), Box::new(emit.counted(file)), size.is_none())
        }
        Input::Reader(reader) => (None, Box::new(emit.counted(reader)), true),
    };
    let with_path = |e: Error| match &path {
        Some(p) => e.with_path(p),
        None => e,
    };
    let batch_size = options.batch_size;
    let capacity = if streaming { 64 * 1024 } else { 256 * 1024 };
    let mut lines = LineReader::new(reader, capacity, options.max_line_bytes);
    let mut records = Vec::with_capacity(batch_size);
    let mut index = 0u64;
    let mut gone = false;
    loop {
        let next = lines.next(|| {
            if streaming && !records.is_empty() && !gone {
                let so_far = std::mem::replace(&mut records, Vec::with_capacity(batch_size));
                gone = !emit.batch(so_far);
            }
        });
        if gone {
            return Ok(()); // the pipeline is gone
        }
        let position = Position::new()
            .record(index)
            .line(lines.number())
            .byte(lines.start());
        let fatal = match next {
            Ok(Next::End) => break,
            Ok(Next::TooLong { read }) => Some(too_long(read, options.max_line_bytes)),
            Ok(Next::Line) if lines.number() == 1 && is_utf16(lines.line()) => {
                // Every line would be rejected, and skipped under Skip.
                Some(Error::new(ErrorKind::Parse(
                    "the input starts with a UTF-16 byte order mark; JSON Lines are read as \
                     UTF-8: convert the input to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
                        .into(),
                )))
            }
            Ok(Next::Line) => None,
            Err(e) => Some(Error::from(e)),
        };
        if let Some(error) = fatal {
            // The records before the line go first; the run ends after them.
            if !records.is_empty() && !emit.batch(records) {
                return Ok(());
            }
            return Err(with_path(error.with_position(position)));
        }
        let bytes = lines.line();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        index += 1;
        let decoded = match std::str::from_utf8(bytes) {
            Ok(text) => decoder.decode(text),
            Err(_) if options.lossy_utf8 => decoder.decode(&String::from_utf8_lossy(bytes)),
            Err(e) => Err(LineError::new(format!(
                "invalid UTF-8 at column {} (byte {}): convert the input to UTF-8, \
                 or set lossy_utf8(true) to replace invalid bytes with U+FFFD",
                e.valid_up_to() + 1,
                lines.start() + e.valid_up_to() as u64
            ))),
        };
        match decoded {
            Ok(record) => {
                records.push(record);
                if records.len() >= batch_size {
                    let full = std::mem::replace(&mut records, Vec::with_capacity(batch_size));
                    if !emit.batch(full) {
                        return Ok(()); // the pipeline is gone
                    }
                }
            }
            Err(e) => {
                // Records before the bad line go first, so order is kept.
                if !records.is_empty() {
                    let before = std::mem::replace(&mut records, Vec::with_capacity(batch_size));
                    if !emit.batch(before) {
                        return Ok(());
                    }
                }
                let position = match e.field {
                    Some(field) => position.field(field),
                    None => position,
                };
                let error = Error::parse(e.message)
                    .with_position(position)
                    .with_record_text(crate::error::record_text(bytes, bytes.len()));
                if !emit.error(with_path(error)) {
                    return Ok(());
                }
            }
        }
    }
    if !records.is_empty() {
        emit.batch(records);
    }
    Ok(())
}

/// True when `line` starts with a UTF-16 byte order mark.
fn is_utf16(line: &[u8]) -> bool {
    line.starts_with(b"\xFF\xFE") || line.starts_with(b"\xFE\xFF")
}

/// The stream-level error for a line longer than `max` bytes, of which `read`
/// bytes were read.
fn too_long(read: usize, max: usize) -> Error {
    Error::new(ErrorKind::Parse(format!(
        "the line is longer than max_line_bytes ({max} bytes); reading stopped after {read} \
         bytes of it: raise max_line_bytes (--max-record-bytes), or check that the input is JSON Lines (one \
         object per line)"
    )))
}
