//! The output side: [`CsvOut`] formats a chunk's records, [`write_chunks`]
//! writes the formatted chunks in input order, atomically.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;

use super::WRITE_AHEAD;
use crate::connectors::file::{BatchWriter, Deferred, Output, OutputFile};
use crate::{Batch, Error, Result};

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
                .has_headers(false)
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
                .has_headers(false)
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

    /// Writes one record with serde, as [`csv::write`](crate::csv::write)
    /// does (a struct's fields in order; no header: give it to
    /// [`write_chunks`]'s [`header`](CsvChunkSink::header)). A record that
    /// cannot be written as CSV (a nested struct, a sequence) is an error.
    ///
    /// ```
    /// use dataflare::csv::CsvOut;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Total<'a> { id: u64, user: &'a str, total: f64 }
    ///
    /// let mut out = CsvOut::new();
    /// out.serialize(&Total { id: 7, user: "ada, l.", total: 906.3 })?;
    /// assert_eq!(out.into_bytes(), b"7,\"ada, l.\",906.3\n");
    /// # Ok::<(), dataflare::Error>(())
    /// ```
    pub fn serialize<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        self.writer.serialize(record).map_err(Error::other)
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
