use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::{StageMetrics, source_stage};
use crate::runtime::{bounded, spawn_blocking_detached};
use crate::{Batch, Error, Result};

/// What a blocking reader has read of its input: counted on its thread (once
/// per chunk read, see [`Counted`]) and published to the source's stage by the
/// [`BlockingSource`] once per batch it receives.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes read from the input so far, as read (before any decoding).
    read: AtomicU64,
    /// The input's size, when known (a regular file's); 0 when unknown.
    total: AtomicU64,
}

/// A reader counting the bytes read through it: one atomic add per `read`
/// call, that is per chunk for the buffered readers of the file sources.
pub(crate) struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.progress.read.fetch_add(n as u64, Relaxed);
        }
        Ok(n)
    }
}

/// The handle a blocking reader sends its batches and record errors through.
#[derive(Debug)]
pub(crate) struct Emit<T> {
    tx: mpsc::Sender<Result<Batch<T>>>,
    seq: u64,
    progress: Arc<Progress>,
    /// Bytes read when the last batch left: each batch's records own about
    /// the text read since (the heap estimate of the run's byte budget).
    read_at_last_batch: u64,
}

impl<T> Emit<T> {
    /// Wraps the reader of the input so the bytes read through it count as
    /// the source's `bytes_in`: wrap the raw input (the file, the user's
    /// reader), below any buffering or decoding.
    pub(crate) fn counted<R: io::Read>(&self, reader: R) -> Counted<R> {
        Counted {
            inner: reader,
            progress: self.progress.clone(),
        }
    }

    /// Counts `bytes` more of the input as read, for a reader that reads it
    /// otherwise than through one [`counted`](Emit::counted) reader.
    pub(crate) fn add_read(&self, bytes: u64) {
        self.progress.read.fetch_add(bytes, Relaxed);
    }

    /// Sets the size of the input, when known (a regular file's length, from
    /// its metadata when it is opened): the source's `bytes_total`.
    pub(crate) fn set_total(&self, bytes: u64) {
        self.progress.total.store(bytes, Relaxed);
    }

    /// Sends a batch, waiting for room. False when the pipeline is gone and the
    /// reader should stop.
    pub(crate) fn batch(&mut self, records: Vec<T>) -> bool {
        let read = self.progress.read.load(Relaxed);
        let text = usize::try_from(read.saturating_sub(self.read_at_last_batch)).unwrap_or(0);
        self.read_at_last_batch = read;
        let batch = Batch::new(records).with_seq(self.seq).with_heap_bytes(text);
        self.seq += 1;
        self.tx.blocking_send(Ok(batch)).is_ok()
    }

    /// True when a batch could be sent now without waiting for room.
    pub(crate) fn has_room(&self) -> bool {
        self.tx.capacity() > 0
    }

    /// Sends an error. A record-level error lets the source's policy decide
    /// whether the reader goes on; false when the pipeline is gone.
    pub(crate) fn error(&mut self, error: Error) -> bool {
        self.tx.blocking_send(Err(error)).is_ok()
    }
}

type Read<T> = Box<dyn FnOnce(&mut Emit<T>) -> Result<()> + Send>;

/// A source whose records come from a synchronous reader running on a blocking
/// thread, handing batches over through a bounded channel of `capacity`
/// batches: parsing never blocks a runtime worker, and a reader ahead of the
/// pipeline waits for room.
///
/// The reader starts on the first poll. It returns `Err` for a stream-level
/// failure, which ends the stream after the batches before it; a panic in the
/// reader also becomes an error, never a silent end of data.
///
/// It reports the bytes its reader read (and the input's size) on the stage
/// of the source it runs for, found when polled (see
/// [`source_stage`](crate::metrics::source_stage)): per batch received, at
/// the end, and when dropped.
pub(crate) struct BlockingSource<T> {
    state: State<T>,
    capacity: usize,
    progress: Arc<Progress>,
    /// The source's stage, once found.
    stage: Option<Arc<StageMetrics>>,
    /// Bytes already added to the stage's `bytes_in`.
    published: u64,
    /// The size already set as the stage's `bytes_total`.
    total_published: u64,
}

enum State<T> {
    Idle(Read<T>),
    Running {
        rx: mpsc::Receiver<Result<Batch<T>>>,
        thread: JoinHandle<Result<()>>,
    },
    Ending(JoinHandle<Result<()>>),
    Done,
}

impl<T: Send + 'static> BlockingSource<T> {
    /// A source running `read` on a blocking thread.
    pub(crate) fn new<F>(capacity: usize, read: F) -> Self
    where
        F: FnOnce(&mut Emit<T>) -> Result<()> + Send + 'static,
    {
        BlockingSource {
            state: State::Idle(Box::new(read)),
            capacity,
            progress: Arc::default(),
            stage: None,
            published: 0,
            total_published: 0,
        }
    }
}

impl<T> BlockingSource<T> {
    /// Adds what the reader read since the last time to the stage's
    /// `bytes_in`, and sets its `bytes_total` once known: two atomic loads,
    /// and a store or add only when something changed.
    fn publish(&mut self) {
        let Some(stage) = &self.stage else {
            return;
        };
        let read = self.progress.read.load(Relaxed);
        if read > self.published {
            stage.read_bytes(read - self.published);
            self.published = read;
        }
        let total = self.progress.total.load(Relaxed);
        if total != self.total_published {
            stage.set_bytes_total(total);
            self.total_published = total;
        }
    }
}

impl<T> Drop for BlockingSource<T> {
    fn drop(&mut self) {
        // Stopped early (a downstream `take` had its count): what was read
        // counts too.
        self.publish();
    }
}

impl<T> Unpin for BlockingSource<T> {}

impl<T: Send + 'static> Stream for BlockingSource<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stage.is_none() {
            // Found once; a reader started before the run (a CSV source's
            // `read_schema`) publishes what it read then on its first batch.
            this.stage = source_stage();
        }
        loop {
            match &mut this.state {
                State::Idle(_) => {
                    let State::Idle(read) = std::mem::replace(&mut this.state, State::Done) else {
                        unreachable!("matched above")
                    };
                    let (tx, rx) = bounded(this.capacity);
                    let progress = this.progress.clone();
                    // Not part of the run's task set: a reader blocked on input
                    // (stdin) must not keep a failed run from returning. It stops
                    // at its next send once the pipeline is gone.
                    let thread = spawn_blocking_detached(move || {
                        let mut emit = Emit {
                            tx,
                            seq: 0,
                            progress,
                            read_at_last_batch: 0,
                        };
                        read(&mut emit)
                    });
                    this.state = State::Running { rx, thread };
                }
                State::Running { rx, .. } => match ready!(rx.poll_recv(cx)) {
                    Some(item) => {
                        this.publish();
                        return Poll::Ready(Some(item));
                    }
                    None => {
                        // The reader has ended: all it read is counted.
                        this.publish();
                        let State::Running { thread, .. } =
                            std::mem::replace(&mut this.state, State::Done)
                        else {
                            unreachable!("matched above")
                        };
                        this.state = State::Ending(thread);
                    }
                },
                State::Ending(thread) => {
                    let result = ready!(Pin::new(thread).poll(cx));
                    this.state = State::Done;
                    let error = match result {
                        Ok(Ok(())) => return Poll::Ready(None),
                        Ok(Err(e)) => e,
                        Err(e) => Error::from_join(e),
                    };
                    return Poll::Ready(Some(Err(error)));
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<T> fmt::Debug for BlockingSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Running { .. } => "running",
            State::Ending(_) => "ending",
            State::Done => "done",
        };
        f.debug_struct("BlockingSource")
            .field("state", &state)
            .field("capacity", &self.capacity)
            .finish()
    }
}
