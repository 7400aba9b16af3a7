//! CSV files as chunks of whole records: [`read_chunks`] cuts a file into
//! blocks that end at record boundaries, parsed wherever they go (on the
//! workers of a [`par_map`](crate::Pipeline::par_map)) into [`Row`]s that
//! borrow from the block; [`write_chunks`] writes blocks of formatted CSV
//! ([`CsvOut`]) in input order.
//!
//! The reader's thread only reads the file, checks its quoting and finds the
//! cuts (with `memchr`); the parsing and the decoding of the columns a job
//! uses happen on the workers, with no record owned or handed across threads.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Sink, Stream};

use super::parse::show;
use crate::connectors::file::{
    BatchWriter, BlockingSource, Deferred, Emit, Output, OutputFile, claim_input,
};
use crate::{Batch, Error, Position, Result};

/// The size of the blocks [`read_chunks`] reads by default, 1 MiB: each
/// chunk holds about this much text, cut back to its last whole record.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// The longest record [`read_chunks`] reads by default, 16 MiB; see
/// [`CsvChunks::max_record_bytes`].
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;

/// Chunks the reader may be ahead of the pipeline.
const READ_AHEAD: usize = 4;

/// Batches waiting for the writer thread of [`write_chunks`].
const WRITE_AHEAD: usize = 4;

/// The quote: fixed, so that counting quotes finds the record boundaries.
const QUOTE: u8 = b'"';

/// A source reading the CSV file at `path` as [`CsvChunk`]s: blocks of whole
/// records, each parsed where it goes with [`CsvChunk::rows`] or
/// [`CsvChunk::for_each_row`].
///
/// The file is read on a blocking thread in blocks of about
/// [`chunk_size`](CsvChunks::chunk_size) bytes (1 MiB by default). The header
/// row is read first (every chunk has it: [`CsvChunk::headers`]); then each
/// block is cut after its last line break outside quotes, and what follows
/// is carried into the next block. A record longer than a block grows the
/// block, up to [`max_record_bytes`](CsvChunks::max_record_bytes), beyond
/// which the run fails naming the line where the record starts. A UTF-8
/// byte order mark at the start of the file is skipped.
///
/// The dialect is RFC 4180: fields are quoted with `"`, a quote in a quoted
/// field is written twice (`""`), records end in `\n` or `\r\n`. Quote and
/// escape characters cannot be changed (counting quotes is what finds the
/// record boundaries, and a doubled quote keeps the count even). Quoting is
/// strict: a quote inside an unquoted field, text after a closing quote, or a
/// quote never closed fails the run with an error naming the file, line and
/// byte (such a file cannot be cut reliably). Every chunk starts at a record
/// boundary, so chunks can be parsed in any order on any thread, and give
/// together exactly the records of the whole file parsed in one go.
///
/// A file that cannot be opened or read fails the run. Lines and bytes in
/// errors are the file's (each chunk knows its first line and byte). For
/// the errors of rows (a bad number, a record of the wrong width) to reach
/// the run as they are, parse in
/// [`par_try_map`](crate::Pipeline::par_try_map) and return them: a
/// DataFlare [`Error`] keeps its file, line, byte and field.
///
/// - **Emits** one chunk per batch, in file order, as soon as it is read and cut.
/// - **Backpressures** when 4 chunks wait for the pipeline: the reader then
///   waits, so at most about 4 chunks plus one block are in memory.
/// - **Completes** at the end of the file, after its last chunk.
/// - **Cancels** with the run: the reader stops at its next chunk.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv::{self, CsvChunk, CsvOut};
/// use dataflare::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
/// std::fs::write(&input, "id,amount\n1,9.5\n2,\"120\"\n3,300\n").unwrap();
///
/// Pipeline::from(csv::read_chunks(&input))
///     .par_map(2, |chunk: CsvChunk| {
///         let mut out = CsvOut::new();
///         chunk
///             .for_each_row(|row| {
///                 if row.parse::<f64>(1)? > 100.0 {
///                     out.write_record([row.str(0)?])?;
///                 }
///                 Ok(())
///             })
///             .unwrap();
///         out.into_bytes()
///     })
///     .to(csv::write_chunks(&output).header(["id"]))
///     .run()
///     .await?;
/// assert_eq!(std::fs::read_to_string(&output).unwrap(), "id\n2\n3\n");
/// # Ok(()) }
/// ```
pub fn read_chunks(path: impl AsRef<Path>) -> CsvChunks {
    CsvChunks {
        config: Some(ReadConfig {
            path: path.as_ref().to_path_buf(),
            delimiter: b',',
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }),
        inner: None,
    }
}

/// The source made by [`read_chunks`]: configure it with its chained
/// methods, then pass it to [`Pipeline::from`](crate::Pipeline::from).
#[must_use = "sources do nothing unless a pipeline reads them"]
pub struct CsvChunks {
    /// The configuration until the first poll.
    config: Option<ReadConfig>,
    inner: Option<BlockingSource<CsvChunk>>,
}

#[derive(Debug, Clone)]
struct ReadConfig {
    path: PathBuf,
    delimiter: u8,
    chunk_size: usize,
    max_record_bytes: usize,
}

impl CsvChunks {
    fn config(&mut self) -> &mut ReadConfig {
        self.config
            .as_mut()
            .expect("a source is configured before it is used")
    }

    /// Sets the field delimiter; `,` by default. It cannot be `"` or a line
    /// break (the run fails saying so).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.tsv");
    /// std::fs::write(&path, "a\tb\n1\t2\n").unwrap();
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_chunks(&path).delimiter(b'\t'))
    ///     .map(|chunk: CsvChunk| {
    ///         let mut sums = Vec::new();
    ///         chunk
    ///             .for_each_row(|row| Ok(sums.push(row.parse::<i64>(0)? + row.parse::<i64>(1)?)))
    ///             .unwrap();
    ///         sums
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![vec![3]]);
    /// # Ok(()) }
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.config().delimiter = delimiter;
        self
    }

    /// Sets the size of the blocks read, in bytes (1 MiB by default, at
    /// least 1): about the text of each chunk. Larger chunks mean fewer
    /// hand-overs; smaller ones, less memory and an earlier start for the
    /// workers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.csv");
    /// std::fs::write(&path, "n\n1\n2\n3\n").unwrap();
    /// let out = Collected::new();
    /// // Blocks of 4 bytes: "1\n2\n", then "3\n".
    /// Pipeline::from(csv::read_chunks(&path).chunk_size(4))
    ///     .map(|chunk: CsvChunk| chunk.first_line())
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![2, 4]);
    /// # Ok(()) }
    /// ```
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.config().chunk_size = bytes.max(1);
        self
    }

    /// Sets how far a block may grow, in bytes, to hold a record that does
    /// not end within it (16 MiB by default): a record still not ended
    /// then (or a quote never closed) fails the run with an error naming
    /// the line where it starts, rather than reading the whole file into
    /// memory. Records that end within a block are read whatever their
    /// length: the bound is on memory, about `max(chunk_size,
    /// max_record_bytes)` per block.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.csv");
    /// std::fs::write(&path, "note\nshort\nthis one is far too long\n").unwrap();
    /// let err = Pipeline::from(csv::read_chunks(&path).chunk_size(8).max_record_bytes(16))
    ///     .map(|chunk: CsvChunk| chunk.len())
    ///     .to(sink::discard())
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.position().line, Some(3));
    /// # Ok(()) }
    /// ```
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.config().max_record_bytes = bytes.max(1);
        self
    }
}

impl Unpin for CsvChunks {}

impl Stream for CsvChunks {
    type Item = Result<Batch<CsvChunk>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(config) = this.config.take() {
            this.inner = Some(BlockingSource::new(READ_AHEAD, move |emit| {
                read_file(&config, emit)
            }));
        }
        match &mut this.inner {
            Some(inner) => Pin::new(inner).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl fmt::Debug for CsvChunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CsvChunks");
        if let Some(c) = &self.config {
            d.field("path", &c.path)
                .field("delimiter", &show(c.delimiter))
                .field("chunk_size", &c.chunk_size)
                .field("max_record_bytes", &c.max_record_bytes);
        }
        d.field("started", &self.inner.is_some()).finish()
    }
}

/// What a chunk shares with the others of its file.
#[derive(Debug)]
struct FileInfo {
    path: PathBuf,
    headers: Arc<::csv::StringRecord>,
    delimiter: u8,
}

/// A block of whole records of a CSV file, made by [`read_chunks`]: its
/// text, where it starts in the file, and the file's header row. Parse it
/// with [`rows`](CsvChunk::rows) or [`for_each_row`](CsvChunk::for_each_row).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv::{self, CsvChunk};
/// use dataflare::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.csv");
/// std::fs::write(&path, "a,b\n1,2\n").unwrap();
/// let out = Collected::new();
/// Pipeline::from(csv::read_chunks(&path))
///     .map(|c: CsvChunk| (c.first_line(), c.first_byte(), c.len(), c.headers().len()))
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![(2, 4, 4, 2)]);
/// # Ok(()) }
/// ```
pub struct CsvChunk {
    bytes: Vec<u8>,
    first_line: u64,
    first_byte: u64,
    file: Arc<FileInfo>,
}

impl CsvChunk {
    /// The file's header row.
    pub fn headers(&self) -> &Arc<::csv::StringRecord> {
        &self.file.headers
    }

    /// The file the chunk was read from.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The chunk's text: whole records, ending in a line break (except
    /// perhaps the file's last).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The length of the chunk's text, in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the chunk has no text (never for a chunk of [`read_chunks`]).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The line of the file (from 1) where the chunk starts.
    pub fn first_line(&self) -> u64 {
        self.first_line
    }

    /// The byte offset in the file (from 0) where the chunk starts.
    pub fn first_byte(&self) -> u64 {
        self.first_byte
    }

    /// The chunk's records, parsed one at a time into one reused record:
    /// call [`Rows::next_row`] until it gives `None`. Each [`Row`] borrows
    /// from the parser, so it lives until the next call (see
    /// [`for_each_row`](CsvChunk::for_each_row) for a closure instead).
    ///
    /// A record whose number of fields differs from the header's gives a
    /// record-level error (the file, line and byte where it starts), and
    /// the rows go on after it. Empty lines are skipped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.csv");
    /// std::fs::write(&path, "name,city\nAda,London\nBob\n").unwrap();
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_chunks(&path))
    ///     .map(|chunk: CsvChunk| {
    ///         let mut seen = Vec::new();
    ///         let mut rows = chunk.rows();
    ///         while let Some(row) = rows.next_row() {
    ///             seen.push(match row {
    ///                 Ok(row) => format!("{} at line {}", row.str(0).unwrap(), row.line()),
    ///                 Err(e) => e.to_string(),
    ///             });
    ///         }
    ///         seen
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let seen = out.to_vec().concat();
    /// assert_eq!(seen[0], "Ada at line 2");
    /// assert!(seen[1].contains("line 3, byte 21"), "{}", seen[1]);
    /// assert!(seen[1].contains("expected 2 fields, found 1"), "{}", seen[1]);
    /// # Ok(()) }
    /// ```
    pub fn rows(&self) -> Rows<'_> {
        let parser = csv_core::ReaderBuilder::new()
            .delimiter(self.file.delimiter)
            .build();
        let width = self.file.headers.len();
        Rows {
            chunk: self,
            parser,
            at: 0,
            text: vec![0; 256],
            ends: vec![0; width.max(1) + 1],
            fields: 0,
            line: 1,
            byte: 0,
        }
    }

    /// Calls `f` with each of the chunk's records, in order; returns the
    /// first error, from `f` or from a record (see [`rows`](CsvChunk::rows)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.csv");
    /// std::fs::write(&path, "id,amount\n1,2.5\n2,oops\n").unwrap();
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_chunks(&path))
    ///     .map(|chunk: CsvChunk| {
    ///         let mut total = 0.0;
    ///         let done = chunk.for_each_row(|row| Ok(total += row.parse::<f64>(1)?));
    ///         (total, done.unwrap_err().to_string())
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let (total, error) = &out.to_vec()[0];
    /// assert_eq!(*total, 2.5);
    /// assert!(error.contains("line 3, byte 16, field \"amount\""), "{error}");
    /// # Ok(()) }
    /// ```
    pub fn for_each_row(&self, mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let mut rows = self.rows();
        while let Some(row) = rows.next_row() {
            f(&row?)?;
        }
        Ok(())
    }

    /// A record-level parse error at `line` and `byte`, naming the file.
    fn error(&self, message: String, line: u64, byte: u64, field: Option<usize>) -> Error {
        let mut position = Position::new().line(line).byte(byte);
        if let Some(field) = field {
            position = position.field(match self.file.headers.get(field) {
                Some(name) => name.to_string(),
                None => field.to_string(),
            });
        }
        Error::parse(message)
            .with_position(position)
            .with_path(&self.file.path)
            .at_record_level()
    }
}

impl fmt::Debug for CsvChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvChunk")
            .field("path", &self.file.path)
            .field("first_line", &self.first_line)
            .field("first_byte", &self.first_byte)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The records of a [`CsvChunk`], made by [`CsvChunk::rows`]: a lending
/// iterator (each [`Row`] borrows the parser's buffers, reused for every
/// record), parsing the chunk in place with the `csv` crate's parser.
pub struct Rows<'c> {
    chunk: &'c CsvChunk,
    parser: csv_core::Reader,
    /// The bytes of the chunk parsed so far.
    at: usize,
    /// The last record's unquoted fields, one after the other...
    text: Vec<u8>,
    /// ...and where each ends in `text`.
    ends: Vec<usize>,
    fields: usize,
    /// The file's line and byte where the last record starts.
    line: u64,
    byte: u64,
}

impl Rows<'_> {
    /// The next record, `None` after the last; a record with the wrong
    /// number of fields is an `Err`, and the next call goes on after it.
    #[inline]
    pub fn next_row(&mut self) -> Option<Result<Row<'_>>> {
        let chunk = self.chunk;
        let input = &chunk.bytes[..];
        let (start, line) = (self.at, self.parser.line());
        let (mut text, mut fields) = (0, 0);
        loop {
            let (result, read, wrote, ended) = self.parser.read_record(
                &input[self.at..],
                &mut self.text[text..],
                &mut self.ends[fields..],
            );
            self.at += read;
            text += wrote;
            fields += ended;
            match result {
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return None,
                csv_core::ReadRecordResult::InputEmpty => {} // then the end: `input` is all there is
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.text.len();
                    self.text.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
            }
        }
        self.fields = fields;
        // The record's first byte: after the line breaks (blank lines, the
        // `\n` of a `\r\n`) the parser skipped before it.
        let (mut line, mut at) = (line, start);
        while let Some(&b) = input.get(at).filter(|&&b| b == b'\n' || b == b'\r') {
            line += u64::from(b == b'\n');
            at += 1;
        }
        self.line = chunk.first_line + line - 1;
        self.byte = chunk.first_byte + at as u64;
        let width = chunk.file.headers.len();
        if fields != width {
            let message = format!("expected {width} fields, found {fields}");
            return Some(Err(chunk.error(message, self.line, self.byte, None)));
        }
        Some(Ok(Row {
            text: &self.text,
            ends: &self.ends[..fields],
            chunk,
            line: self.line,
            byte: self.byte,
        }))
    }
}

impl fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows")
            .field("chunk", self.chunk)
            .field("at", &self.at)
            .finish()
    }
}

/// One record of a [`CsvChunk`], borrowed from it: fields as bytes,
/// decoded only when asked, with errors naming the file, line, byte (where
/// the record starts) and field.
pub struct Row<'a> {
    text: &'a [u8],
    ends: &'a [usize],
    chunk: &'a CsvChunk,
    line: u64,
    byte: u64,
}

impl<'a> Row<'a> {
    /// Field `i` (from 0) as bytes, unquoted; `None` past the last field.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        self.text.get(start..end)
    }

    /// The fields, in order, as bytes.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let text = self.text;
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let field = &text[start..end];
            start = end;
            field
        })
    }

    /// The number of fields (the header's).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the record has no field.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The line of the file (from 1) where the record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The byte offset in the file (from 0) where the record starts.
    pub fn byte(&self) -> u64 {
        self.byte
    }

    /// Field `i` as text: invalid UTF-8, or no field `i`, is a record-level
    /// error naming the file, line, byte and field.
    #[inline]
    pub fn str(&self, i: usize) -> Result<&'a str> {
        let bytes = self.field(i)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => Err(self.utf8_error(i, bytes, e)),
        }
    }

    /// Field `i` parsed with [`FromStr`]: an error is a record-level parse
    /// error naming the file, line, byte and field, and quoting the value.
    #[inline]
    pub fn parse<T>(&self, i: usize) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = self.str(i)?;
        match text.parse() {
            Ok(value) => Ok(value),
            Err(e) => Err(self.error(i, format!("invalid value {}: {e}", excerpt(text)))),
        }
    }

    /// A record-level parse error about field `i` of this record, saying
    /// `message` and naming the file, line, byte and field: for checks of
    /// one's own.
    #[cold]
    pub fn error(&self, i: usize, message: impl Into<String>) -> Error {
        self.chunk
            .error(message.into(), self.line, self.byte, Some(i))
    }

    #[cold]
    fn utf8_error(&self, i: usize, bytes: &[u8], e: std::str::Utf8Error) -> Error {
        let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
        self.error(i, format!("invalid UTF-8 ({})", show(bad)))
    }

    #[inline]
    fn field(&self, i: usize) -> Result<&'a [u8]> {
        match self.get(i) {
            Some(field) => Ok(field),
            None => Err(self.error(i, format!("no field {i}: the record has {}", self.len()))),
        }
    }
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<_> = self.iter().map(String::from_utf8_lossy).collect();
        f.debug_struct("Row")
            .field("line", &self.line)
            .field("byte", &self.byte)
            .field("fields", &fields)
            .finish()
    }
}

/// A value as shown in an error: quoted, cut after 40 characters.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(40) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
    }
}

/// The file being read: what is left of the last block, and where it is.
struct Blocks {
    file: File,
    buf: Vec<u8>,
    eof: bool,
    /// The file's line and byte at `buf[0]`.
    line: u64,
    byte: u64,
}

impl Blocks {
    /// Reads until `buf` holds `want` bytes or the file ends.
    fn fill(&mut self, want: usize, emit: &Emit<CsvChunk>, path: &Path) -> Result<()> {
        if self.eof || self.buf.len() >= want {
            return Ok(());
        }
        let more = want - self.buf.len();
        self.buf.reserve_exact(more);
        let n = (&mut self.file)
            .take(more as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| Error::io(path, e))?;
        emit.add_read(n as u64);
        if n < more {
            self.eof = true;
        }
        Ok(())
    }

    /// Takes `buf[..cut]` out, moving on the line and byte.
    fn take(&mut self, cut: usize, capacity: usize) -> (Vec<u8>, u64, u64) {
        let mut rest = Vec::with_capacity(capacity.max(self.buf.len() - cut));
        rest.extend_from_slice(&self.buf[cut..]);
        let mut taken = std::mem::replace(&mut self.buf, rest);
        taken.truncate(cut);
        let (line, byte) = (self.line, self.byte);
        self.line += memchr::memchr_iter(b'\n', &taken).count() as u64;
        self.byte += cut as u64;
        (taken, line, byte)
    }

    /// A stream-level error at `buf[at]`.
    fn error(&self, path: &Path, at: usize, message: String) -> Error {
        let line = self.line + memchr::memchr_iter(b'\n', &self.buf[..at]).count() as u64;
        Error::parse(message)
            .with_position(Position::new().line(line).byte(self.byte + at as u64))
            .with_path(path)
    }
}

/// A quoting fault found while looking for record boundaries.
struct Fault {
    at: usize,
    message: String,
}

/// Checks the quoting of `buf` (which starts at a record boundary) and
/// finds where to cut it: after its last line break outside quotes, or at
/// its end when it is the end of the file. `None` when no line break is
/// outside quotes.
fn scan(buf: &[u8], delimiter: u8, eof: bool) -> std::result::Result<Option<usize>, Fault> {
    let ends_field = |b: u8| b == delimiter || b == b'\n' || b == b'\r';
    let mut inside = false;
    let mut opened = 0;
    let mut quotes = 0u64;
    for at in memchr::memchr_iter(QUOTE, buf) {
        quotes += 1;
        if inside {
            // A closing quote, or the first of a doubled one.
            match buf.get(at + 1) {
                Some(&b) if b == QUOTE || ends_field(b) => {}
                Some(&b) => {
                    return Err(Fault {
                        at: at + 1,
                        message: format!(
                            "{} after the closing quote of a quoted field (expected a delimiter or the end of the record)",
                            show(b)
                        ),
                    });
                }
                None => {} // known with the next block (or the end)
            }
        } else {
            // An opening quote, or the second of a doubled one.
            let ok = at == 0 || {
                let b = buf[at - 1];
                b == QUOTE || ends_field(b)
            };
            if !ok {
                return Err(Fault {
                    at,
                    message: "quote '\"' inside an unquoted field (quote the whole field and double the quotes in it)"
                        .to_string(),
                });
            }
            opened = at;
        }
        inside = !inside;
    }
    if eof {
        if inside {
            return Err(Fault {
                at: opened,
                message:
                    "quoted field never closed: the quote opened here runs to the end of the input"
                        .to_string(),
            });
        }
        return Ok(Some(buf.len()));
    }
    // The last line break after an even number of quotes.
    let mut end = buf.len();
    let mut after = 0u64;
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        after += memchr::memchr_iter(QUOTE, &buf[nl..end]).count() as u64;
        if (quotes - after).is_multiple_of(2) {
            return Ok(Some(nl + 1));
        }
        end = nl;
    }
    Ok(None)
}

/// Checks the options of a chunked read.
fn check(config: &ReadConfig) -> Result<()> {
    match config.delimiter {
        QUOTE => Err(Error::config(
            "the delimiter cannot be the quote '\"' when reading chunks",
        )),
        b'\n' | b'\r' => Err(Error::config("the delimiter cannot be a line break")),
        _ => Ok(()),
    }
}

/// Reads the file at `config.path`, sending its chunks.
fn read_file(config: &ReadConfig, emit: &mut Emit<CsvChunk>) -> Result<()> {
    let path = &config.path;
    check(config).map_err(|e| e.with_path(path))?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::config("the input path is a directory, not a file").with_path(path));
    }
    claim_input(path)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        emit.set_total(meta.len());
    }
    let mut blocks = Blocks {
        file,
        buf: Vec::new(),
        eof: false,
        line: 1,
        byte: 0,
    };
    let chunk_size = config.chunk_size;
    let max = config.max_record_bytes;
    let too_long = |blocks: &Blocks| {
        blocks.error(
            path,
            0,
            format!(
                "a record longer than {max} bytes (max_record_bytes) starts here, or a quote opened in it is never closed"
            ),
        )
    };

    // The header row: the first record (empty lines before it are skipped).
    let mut want = chunk_size;
    let headers = loop {
        blocks.fill(want, emit, path)?;
        if blocks.buf.starts_with(b"\xEF\xBB\xBF") && blocks.byte == 0 {
            blocks.buf.drain(..3);
            blocks.byte = 3;
        }
        let first = first_record(&blocks.buf, config.delimiter);
        match first {
            Some((mut end, record)) if end < blocks.buf.len() || blocks.eof => {
                if blocks.buf[end - 1] == b'\r' && blocks.buf.get(end) == Some(&b'\n') {
                    end += 1; // the rest of a \r\n
                }
                if let Err(f) = scan(&blocks.buf[..end], config.delimiter, true) {
                    return Err(blocks.error(path, f.at, format!("header row: {}", f.message)));
                }
                let headers = ::csv::StringRecord::from_byte_record(record).map_err(|e| {
                    let field = e.utf8_error().field() + 1;
                    blocks.error(
                        path,
                        0,
                        format!("header row: invalid UTF-8 in field {field}"),
                    )
                })?;
                let _ = blocks.take(end, chunk_size);
                break headers;
            }
            None if blocks.eof => {
                return Ok(()); // an empty file: no header, no rows
            }
            _ if blocks.buf.len() > max => return Err(too_long(&blocks)),
            _ => want = (blocks.buf.len() + chunk_size).min(max + 1),
        }
    };
    let info = Arc::new(FileInfo {
        path: path.clone(),
        headers: Arc::new(headers),
        delimiter: config.delimiter,
    });

    let mut want = chunk_size;
    loop {
        blocks.fill(want, emit, path)?;
        if blocks.buf.is_empty() && blocks.eof {
            return Ok(());
        }
        let cut = scan(&blocks.buf, config.delimiter, blocks.eof)
            .map_err(|f| blocks.error(path, f.at, f.message))?;
        match cut {
            Some(cut) => {
                let (bytes, first_line, first_byte) = blocks.take(cut, chunk_size);
                want = chunk_size;
                let chunk = CsvChunk {
                    bytes,
                    first_line,
                    first_byte,
                    file: info.clone(),
                };
                if !emit.batch(vec![chunk]) {
                    return Ok(()); // the pipeline is gone
                }
            }
            None if blocks.buf.len() > max => return Err(too_long(&blocks)),
            None => want = (blocks.buf.len() + chunk_size).min(max + 1),
        }
    }
}

/// The first record of `buf` and where the next starts, parsed by the
/// `csv` crate; `None` when `buf` has none (empty, or empty lines only).
fn first_record(buf: &[u8], delimiter: u8) -> Option<(usize, ::csv::ByteRecord)> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(buf);
    let mut record = ::csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => Some((reader.position().byte() as usize, record)),
        _ => None,
    }
}

/// Formatted CSV, for a chunk's output: records written with the `csv`
/// crate (quoting fields as needed) into bytes that [`write_chunks`] writes
/// as they are.
///
/// ```
/// use dataflare::csv::CsvOut;
///
/// let mut out = CsvOut::new();
/// out.write_record(["1", "a, b"])?;
/// out.write_record([b"2".as_slice(), b"say \"hi\""])?;
/// assert_eq!(out.into_bytes(), b"1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n");
/// # Ok::<(), dataflare::Error>(())
/// ```
pub struct CsvOut {
    writer: ::csv::Writer<Vec<u8>>,
}

impl CsvOut {
    /// An empty output, fields separated by `,`.
    pub fn new() -> Self {
        Self::with_delimiter(b',')
    }

    /// An empty output, fields separated by `delimiter`.
    ///
    /// ```
    /// use dataflare::csv::CsvOut;
    ///
    /// let mut out = CsvOut::with_delimiter(b';');
    /// out.write_record(["1", "a;b"])?;
    /// assert_eq!(out.into_bytes(), b"1;\"a;b\"\n");
    /// # Ok::<(), dataflare::Error>(())
    /// ```
    pub fn with_delimiter(delimiter: u8) -> Self {
        CsvOut {
            writer: ::csv::WriterBuilder::new()
                .delimiter(delimiter)
                .flexible(true)
                .from_writer(Vec::new()),
        }
    }

    /// An empty output with room for `bytes` bytes before it grows (for a
    /// chunk's output, a guess from its input's length), fields separated by `,`.
    ///
    /// ```
    /// use dataflare::csv::CsvOut;
    ///
    /// let mut out = CsvOut::with_capacity(1 << 16);
    /// out.write_record(["1", "2"])?;
    /// assert_eq!(out.into_bytes(), b"1,2\n");
    /// # Ok::<(), dataflare::Error>(())
    /// ```
    pub fn with_capacity(bytes: usize) -> Self {
        CsvOut {
            writer: ::csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(Vec::with_capacity(bytes)),
        }
    }

    /// Writes one record, its fields quoted as needed.
    pub fn write_record<I, T>(&mut self, record: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.writer.write_record(record).map_err(Error::other)
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        // Writing into memory cannot fail.
        self.writer
            .into_inner()
            .unwrap_or_else(|e| e.into_inner().get_ref().clone())
    }
}

impl Default for CsvOut {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CsvOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvOut").finish_non_exhaustive()
    }
}

/// A sink writing blocks of formatted CSV (each a `Vec<u8>`, e.g. from
/// [`CsvOut::into_bytes`]) to the file at `path`, in input order, as they
/// are: after the [`header`](CsvChunkSink::header), if given.
///
/// As the other file sinks, the file is written under a temporary name in the
/// same directory and renamed into place only when the run completes: a
/// failed or cancelled run leaves no output file (and no temporary) and never
/// clobbers an existing one. A path that is a directory, or whose directory is
/// missing or not writable, fails the run before any record is read. Writing
/// runs on a blocking thread, with up to 4 blocks waiting for it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv;
/// use dataflare::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// let blocks = vec![b"1,a\n".to_vec(), b"2,b\n".to_vec()];
/// Pipeline::from(source::iter(blocks))
///     .to(csv::write_chunks(&path).header(["id", "name"]))
///     .run()
///     .await?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,name\n1,a\n2,b\n");
/// # Ok(()) }
/// ```
pub fn write_chunks(path: impl AsRef<Path>) -> CsvChunkSink {
    CsvChunkSink {
        state: Deferred::new(
            WriteConfig {
                path: path.as_ref().to_path_buf(),
                header: None,
                delimiter: b',',
            },
            WRITE_AHEAD,
            open,
        ),
    }
}

/// The sink made by [`write_chunks`]: configure it with its chained
/// methods, then pass it to [`Pipeline::to`](crate::Pipeline::to).
#[must_use = "sinks do nothing unless a pipeline writes to them"]
pub struct CsvChunkSink {
    state: Deferred<WriteConfig, ChunkWriter, Vec<u8>>,
}

struct WriteConfig {
    path: PathBuf,
    header: Option<Vec<String>>,
    delimiter: u8,
}

impl CsvChunkSink {
    /// Writes a header row first, with these names (quoted as needed),
    /// even when no block comes; none by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(Vec::<Vec<u8>>::new()))
    ///     .to(csv::write_chunks(&path).header(["id", "a,b"]))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,\"a,b\"\n");
    /// # Ok(()) }
    /// ```
    pub fn header<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.state.config().header =
            Some(names.into_iter().map(|n| n.as_ref().to_string()).collect());
        self
    }

    /// Sets the delimiter of the [`header`](CsvChunkSink::header) row; `,`
    /// by default (the blocks are written as they are: format them with
    /// the same delimiter, [`CsvOut::with_delimiter`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvOut};
    /// use dataflare::prelude::*;
    ///
    /// let mut out = CsvOut::with_delimiter(b';');
    /// out.write_record(["1", "2"])?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.csv");
    /// Pipeline::from(source::iter(vec![out.into_bytes()]))
    ///     .to(csv::write_chunks(&path).header(["a", "b"]).delimiter(b';'))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "a;b\n1;2\n");
    /// # Ok(()) }
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.state.config().delimiter = delimiter;
        self
    }
}

impl Unpin for CsvChunkSink {}

impl Sink<Batch<Vec<u8>>> for CsvChunkSink {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().state).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<Vec<u8>>) -> Result<()> {
        Pin::new(&mut self.get_mut().state).start_send(batch)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().state).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().state).poll_close(cx)
    }
}

impl fmt::Debug for CsvChunkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CsvChunkSink");
        if let Some(c) = self.state.pending_config() {
            d.field("path", &c.path).field("header", &c.header);
        }
        d.field("state", &self.state).finish()
    }
}

/// The writer of [`write_chunks`], on its blocking thread.
struct ChunkWriter {
    out: OutputFile,
}

/// Opens the output (on the writer thread) and writes the header.
fn open(config: WriteConfig) -> Result<ChunkWriter> {
    let mut out = Output::Replace(config.path).open()?;
    if let Some(names) = config.header {
        let mut header = CsvOut::with_delimiter(config.delimiter);
        header.write_record(&names)?;
        out.write_all(&header.into_bytes())
            .map_err(|e| out.io_error(e))?;
    }
    Ok(ChunkWriter { out })
}

impl BatchWriter<Vec<u8>> for ChunkWriter {
    fn write(&mut self, batch: Batch<Vec<u8>>) -> Result<()> {
        for bytes in &batch {
            self.out
                .write_all(bytes)
                .map_err(|e| self.out.io_error(e))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.out.finish()
    }
}
