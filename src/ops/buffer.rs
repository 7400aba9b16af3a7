use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::metrics::StageMetrics;
use crate::runtime::{AbortOnDrop, Tasks, bounded};
use crate::{Batch, Error, Result};

/// An async boundary: everything upstream runs in its own task and hands batches
/// over through a bounded channel.
///
/// The upstream task starts on the first poll (so building a pipeline spawns
/// nothing) and is aborted when this stream is dropped. When the channel is full
/// the upstream task waits for room: that wait is the backpressure.
///
/// Created by [`Pipeline::buffer`](crate::Pipeline::buffer).
#[must_use = "streams do nothing unless polled"]
pub struct Buffer<S, T> {
    state: State<S, T>,
    capacity: usize,
    tasks: Tasks,
    stage: Arc<StageMetrics>,
}

enum State<S, T> {
    Idle(S),
    Running {
        rx: mpsc::Receiver<Result<Batch<T>>>,
        _task: AbortOnDrop,
    },
    Taken,
}

impl<S, T> Buffer<S, T> {
    pub(crate) fn new(
        upstream: S,
        capacity: usize,
        tasks: Tasks,
        stage: Arc<StageMetrics>,
    ) -> Self {
        Buffer {
            state: State::Idle(upstream),
            capacity,
            tasks,
            stage,
        }
    }
}

// The state holds the upstream only by value until it is moved into its task, and
// never pins it in place.
impl<S, T> Unpin for Buffer<S, T> {}

impl<S, T> Stream for Buffer<S, T>
where
    S: Stream<Item = Result<Batch<T>>> + Send + 'static,
    T: Send + 'static,
{
    type Item = Result<Batch<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let State::Idle(_) = this.state {
            let State::Idle(upstream) = std::mem::replace(&mut this.state, State::Taken) else {
                unreachable!("checked just above")
            };
            let (tx, rx) = bounded(this.capacity);
            let stage = this.stage.clone();
            let handle = this.tasks.spawn(this.tasks.scope(async move {
                let mut upstream = std::pin::pin!(upstream);
                loop {
                    // Stages catch panics in user code themselves; this catches one
                    // from a hand-written upstream stream, so it cannot pass for a
                    // clean end of the data.
                    let item = match AssertUnwindSafe(upstream.next()).catch_unwind().await {
                        Ok(Some(item)) => item,
                        Ok(None) => break,
                        Err(payload) => Err(Error::panic(payload).with_stage(stage.name())),
                    };
                    let last = item.is_err();
                    // A closed channel means downstream is gone: stop producing.
                    if tx.send(item).await.is_err() || last {
                        break;
                    }
                }
            }));
            this.state = State::Running {
                rx,
                _task: AbortOnDrop(handle.abort_handle()),
            };
        }
        let State::Running { rx, .. } = &mut this.state else {
            return Poll::Ready(None);
        };
        let item = ready!(rx.poll_recv(cx));
        if let Some(Ok(batch)) = &item {
            this.stage.batch_in(batch.len());
            this.stage.batch_out(batch.len());
        }
        if !matches!(item, Some(Ok(_))) {
            // End of stream or an error: the upstream task is finished or finishing.
            this.state = State::Taken;
        }
        Poll::Ready(item)
    }
}

impl<S, T> fmt::Debug for Buffer<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Running { .. } => "running",
            State::Taken => "done",
        };
        f.debug_struct("Buffer")
            .field("capacity", &self.capacity)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
