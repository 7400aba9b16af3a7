//! The JSON Lines sink: [`write()`], [`write_to`].

use std::fmt;
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::connectors::file::{
    BatchWriter, Deferred, Output, OutputFile, ends_without_newline, forward_sink_to_state,
};
use crate::{Batch, Error, Position, Result};

/// Batches waiting for the writer thread.
const WRITE_AHEAD: usize = 2;

/// Bytes gathered before they are handed to the file.
const CHUNK: usize = 64 * 1024;

/// A sink writing each record as one line of JSON to the file at `path`.
///
/// Any `Serialize` type works, [`Record`](crate::record::Record)s included
/// (each an object of its columns, in order). The file is written under a
/// temporary name in the same directory and renamed into place only when the
/// run completes: a failed or cancelled run leaves no output file and never
/// clobbers an existing one (see [`append`](JsonlSink::append) for the other
/// way). A path that is a directory, or whose directory is missing or not
/// writable, fails the run before any record is read. Writing runs on a
/// blocking thread; errors name the file and the record's index (from 0).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::jsonl;
/// use dataflare::prelude::*;
///
/// #[derive(serde::Serialize)]
/// struct Point { x: i32, y: i32 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("points.jsonl");
/// Pipeline::from(source::iter(vec![Point { x: 1, y: 2 }, Point { x: 3, y: 4 }]))
///     .to(jsonl::write(&path))
///     .run()
///     .await?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"x\":1,\"y\":2}\n{\"x\":3,\"y\":4}\n");
/// # Ok(()) }
/// ```
pub fn write<T: Serialize + Send + 'static>(path: impl AsRef<Path>) -> JsonlSink<T> {
    JsonlSink::new(Target::Path(path.as_ref().to_path_buf()))
}

/// A sink writing each record as one line of JSON to any writer (stdout, a
/// buffer), flushed when the run completes. As [`write()`], except that what was
/// written before a failure stays written.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::jsonl;
/// use dataflare::prelude::*;
///
/// Pipeline::from(source::iter(vec![1, 2, 3]))
///     .to(jsonl::write_to(std::io::stdout()))
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
pub fn write_to<T: Serialize + Send + 'static>(
    writer: impl Write + Send + 'static,
) -> JsonlSink<T> {
    JsonlSink::new(Target::Writer(Box::new(writer)))
}

enum Target {
    Path(PathBuf),
    Writer(Box<dyn Write + Send>),
}

/// The sink made by [`write()`] and [`write_to`].
///
/// It opens its output on the first `poll_ready` (which a run calls before
/// reading any data) and commits it on `close`; dropped without `close`, it
/// abandons a file output.
#[must_use = "sinks do nothing unless a pipeline writes to them"]
pub struct JsonlSink<T> {
    /// The configuration until the first poll, then the writer.
    state: Deferred<Config, JsonlWriter<T>, T>,
}

struct Config {
    target: Target,
    append: bool,
}

impl<T: Serialize + Send + 'static> JsonlSink<T> {
    fn new(target: Target) -> Self {
        JsonlSink {
            state: Deferred::new(
                Config {
                    target,
                    append: false,
                },
                WRITE_AHEAD,
                JsonlWriter::open,
            ),
        }
    }

    /// Appends to the file as batches arrive instead of replacing it when the
    /// run completes, creating it if needed (a line break is added first if the
    /// file does not end with one). For long-running streams: a failed run
    /// leaves what was written before the failure. No effect on [`write_to`] sinks.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::jsonl;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("log.jsonl");
    /// for run in 0..2 {
    ///     Pipeline::from(source::iter(vec![run]))
    ///         .to(jsonl::write(&path).append())
    ///         .run()
    ///         .await?;
    /// }
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n1\n");
    /// # Ok(()) }
    /// ```
    pub fn append(mut self) -> Self {
        self.state.config().append = true;
        self
    }
}

forward_sink_to_state!(JsonlSink);

impl<T> fmt::Debug for JsonlSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JsonlSink");
        if let Some(c) = self.state.pending_config() {
            match &c.target {
                Target::Path(p) => d.field("path", p),
                Target::Writer(_) => d.field("writer", &".."),
            };
            d.field("append", &c.append);
        }
        d.field("state", &self.state);
        d.finish()
    }
}

/// Writes batches on the blocking thread.
struct JsonlWriter<T> {
    out: OutputFile,
    /// Index of the next record, counting from 0 over the whole run.
    index: u64,
    buf: Vec<u8>,
    _records: PhantomData<fn(T)>,
}

impl<T: Serialize> JsonlWriter<T> {
    fn open(config: Config) -> Result<Self> {
        let output = match config.target {
            Target::Path(p) if config.append => Output::Append(p),
            Target::Path(p) => Output::Replace(p),
            Target::Writer(w) => Output::Writer(w),
        };
        let mut buf = Vec::with_capacity(CHUNK);
        if let Output::Append(path) = &output
            && ends_without_newline(path)?
        {
            buf.push(b'\n');
        }
        Ok(JsonlWriter {
            out: output.open()?,
            index: 0,
            buf,
            _records: PhantomData,
        })
    }

    fn drain(&mut self) -> Result<()> {
        self.out
            .write_all(&self.buf)
            .map_err(|e| self.out.io_error(e))?;
        self.buf.clear();
        Ok(())
    }
}

impl<T: Serialize + Send + 'static> BatchWriter<T> for JsonlWriter<T> {
    fn write(&mut self, batch: Batch<T>) -> Result<()> {
        for record in batch.iter() {
            if let Err(e) = serde_json::to_writer(&mut self.buf, record) {
                let error = Error::msg(format!("cannot write the record as JSON: {e}"))
                    .with_position(Position::new().record(self.index));
                return Err(match self.out.path() {
                    Some(p) => error.with_path(p),
                    None => error,
                });
            }
            self.buf.push(b'\n');
            self.index += 1;
            if self.buf.len() >= CHUNK {
                self.drain()?;
            }
        }
        self.drain()?;
        if self.out.path().is_none() {
            // A stream (stdout, a pipe): what was written goes now, so a reader
            // downstream sees records as they come (`tail -f | ...`).
            self.out.flush().map_err(Error::from)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.drain()?;
        self.out.finish()
    }
}
