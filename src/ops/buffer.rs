use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;

use futures::Stream;
use futures::future::poll_fn;

use super::Overflow;
use crate::metrics::{StageMetrics, Wait, WaitFor};
use crate::runtime::{AbortOnDrop, Giver, Gone, LazyContext, Taker, handoff};
use crate::{Batch, Error, Result};

/// An async boundary: everything upstream runs in its own task and hands batches
/// over through a bounded channel of `n` batches.
///
/// The downstream side is woken when half the channel is full or when the
/// upstream has nothing more ready, not on every batch: a cross-thread
/// wake-up per batch was the main cost of a boundary on a multi-thread runtime.
///
/// The upstream task starts on the first poll (so building a pipeline spawns
/// nothing) and is aborted when this stream is dropped. When the channel is full
/// the upstream task waits for room (that wait is the backpressure) or, as its
/// [`Overflow`] says, drops a batch and counts its records as `dropped`.
///
/// Created by [`Pipeline::buffer`](crate::Pipeline::buffer) and
/// [`Pipeline::buffer_with`](crate::Pipeline::buffer_with).
#[must_use = "streams do nothing unless polled"]
pub struct Buffer<S, T> {
    state: State<S, T>,
    capacity: usize,
    overflow: Overflow,
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
}

enum State<S, T> {
    Idle(S),
    Running {
        taker: Taker<Result<Batch<T>>>,
        _task: AbortOnDrop,
    },
    Taken,
}

impl<S, T> Buffer<S, T> {
    pub(crate) fn new(
        upstream: S,
        capacity: usize,
        overflow: Overflow,
        stage: Arc<StageMetrics>,
    ) -> Self {
        Buffer {
            state: State::Idle(upstream),
            capacity,
            overflow,
            tasks: LazyContext::default(),
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
            let (giver, taker) = handoff(this.capacity);
            let stage = this.stage.clone();
            let handle =
                this.tasks.spawn(
                    this.tasks
                        .scope(produce(upstream, giver, stage, this.overflow)),
                );
            this.state = State::Running {
                taker,
                _task: AbortOnDrop(handle.abort_handle()),
            };
        }
        let State::Running { taker, .. } = &mut this.state else {
            return Poll::Ready(None);
        };
        let item = ready!(taker.poll_take(cx));
        if let Some(Ok(batch)) = &item {
            this.stage.set_queue_depth(taker.len() as u64);
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

/// The upstream task of a buffer: polls `upstream` and gives each item to
/// the channel, until the upstream ends or fails or the buffer is dropped.
///
/// Its waits count on the buffer's stage: for the upstream (`waiting`), for
/// room in the channel (`blocked`); the batches queued are its queue depth,
/// set per batch given (and per batch taken, by the [`Buffer`]). A batch
/// dropped by the `overflow` policy counts on the stage as in and `dropped`
/// (a batch given counts as in when the [`Buffer`] takes it).
async fn produce<S, T>(
    upstream: S,
    giver: Giver<Result<Batch<T>>>,
    stage: Arc<StageMetrics>,
    overflow: Overflow,
) where
    S: Stream<Item = Result<Batch<T>>>,
{
    let mut upstream = pin!(upstream);
    let mut input = Wait::new(&stage, WaitFor::Input);
    let mut room = Wait::new(&stage, WaitFor::Room);
    loop {
        let next = poll_fn(|cx| {
            // Stages catch panics in user code themselves; this catches one
            // from a hand-written upstream stream, so it cannot pass for a
            // clean end of the data.
            match catch_unwind(AssertUnwindSafe(|| upstream.as_mut().poll_next(cx))) {
                Ok(Poll::Pending) => {
                    input.pending();
                    // Nothing more at hand: what is queued goes now.
                    giver.flush();
                    Poll::Pending
                }
                Ok(Poll::Ready(item)) => Poll::Ready(Ok(item)),
                Err(payload) => Poll::Ready(Err(payload)),
            }
        })
        .await;
        input.ready();
        let item = match next {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(payload) => Err(Error::panic(payload).with_stage(stage.name())),
        };
        let last = item.is_err();
        if !last && overflow != Overflow::Block {
            // Never waits for room, so it spends tokio's cooperative budget
            // itself: an always-ready upstream must not keep it from yielding.
            poll_fn(|cx| {
                let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
                    giver.flush();
                    return Poll::Pending;
                };
                coop.made_progress();
                Poll::Ready(())
            })
            .await;
            if give_or_drop(&giver, item, overflow, &stage).is_err() {
                break;
            }
            stage.set_queue_depth(giver.len() as u64);
            continue;
        }
        let mut item = Some(item);
        let given = poll_fn(|cx| {
            // Spend tokio's cooperative budget as a channel send would, so an
            // always-ready upstream cannot keep this task from yielding.
            let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
                giver.flush();
                return Poll::Pending;
            };
            let Poll::Ready(given) = giver.poll_give(cx, &mut item) else {
                room.pending();
                return Poll::Pending;
            };
            coop.made_progress();
            Poll::Ready(given)
        })
        .await;
        room.ready();
        if given.is_ok() {
            stage.set_queue_depth(giver.len() as u64);
        }
        // A gone receiver means downstream is gone: stop producing.
        if given.is_err() || last {
            break;
        }
    }
}

/// Gives a batch to a full-or-not channel without waiting, dropping the
/// batch `overflow` says when it is full; `Err` when the receiver is gone.
fn give_or_drop<T>(
    giver: &Giver<Result<Batch<T>>>,
    item: Result<Batch<T>>,
    overflow: Overflow,
    stage: &StageMetrics,
) -> Result<(), Gone> {
    let dropped = match overflow {
        Overflow::DropOldest => match giver.give_evicting(item) {
            Ok(evicted) => evicted,
            Err(_) => return Err(Gone),
        },
        // `Block` is handled by the caller, waiting for room.
        Overflow::DropNewest | Overflow::Block => match giver.try_give(item) {
            Ok(()) => None,
            Err((_, true)) => return Err(Gone),
            Err((item, false)) => Some(item),
        },
    };
    match dropped {
        Some(Ok(batch)) => {
            stage.batch_in(batch.len());
            stage.drop_records(batch.len());
        }
        // An error is the last item given: nothing comes after it to evict
        // it, and one that arrives is given by waiting.
        Some(Err(_)) => unreachable!("an error is never dropped by a buffer"),
        None => {}
    }
    Ok(())
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
            .field("overflow", &self.overflow)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
