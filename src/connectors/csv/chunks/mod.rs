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
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use super::parse::show;
use crate::connectors::file::BlockingSource;
use crate::{Batch, Result};

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

mod chunk;
mod read;
mod write;

pub use chunk::{CsvChunk, Row, Rows};
use read::read_file;
pub use write::{CsvChunkSink, CsvOut, write_chunks};

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
/// DataFlare [`Error`](crate::Error) keeps its file, line, byte and field.
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
