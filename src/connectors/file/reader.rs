use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::runtime::{bounded, spawn_blocking_detached};
use crate::{Batch, Error, Result};

/// The handle a blocking reader sends its batches and record errors through.
#[derive(Debug)]
pub(crate) struct Emit<T> {
    tx: mpsc::Sender<Result<Batch<T>>>,
    seq: u64,
}

impl<T> Emit<T> {
    /// Sends a batch, waiting for room. False when the pipeline is gone and the
    /// reader should stop.
    pub(crate) fn batch(&mut self, records: Vec<T>) -> bool {
        let batch = Batch::new(records).with_seq(self.seq);
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
pub(crate) struct BlockingSource<T> {
    state: State<T>,
    capacity: usize,
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
        }
    }
}

impl<T> Unpin for BlockingSource<T> {}

impl<T: Send + 'static> Stream for BlockingSource<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle(_) => {
                    let State::Idle(read) = std::mem::replace(&mut this.state, State::Done) else {
                        unreachable!("matched above")
                    };
                    let (tx, rx) = bounded(this.capacity);
                    // Not part of the run's task set: a reader blocked on input
                    // (stdin) must not keep a failed run from returning. It stops
                    // at its next send once the pipeline is gone.
                    let thread = spawn_blocking_detached(move || {
                        let mut emit = Emit { tx, seq: 0 };
                        read(&mut emit)
                    });
                    this.state = State::Running { rx, thread };
                }
                State::Running { rx, .. } => match ready!(rx.poll_recv(cx)) {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => {
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
