use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use pin_project::{pin_project, pinned_drop};

use super::fail;
use super::par_map::start_mapping;
use super::par_workers::{Carry, Feed, Sent, poll_reply};
use crate::metrics::StageMetrics;
use crate::runtime::LazyContext;
use crate::{Batch, Result};

/// Runs a closure on each record on `n` worker threads, off the async
/// runtime's, and passes each unit's results on **as soon as it is done**:
/// a slow unit holds back no other.
///
/// The workers and the bound on units in flight are those of
/// [`ParMap`](super::ParMap); each finished unit (a batch, or a slice of one)
/// goes on as a batch of its own, with its input batch's sequence number.
///
/// Created by [`Pipeline::par_map_unordered`](crate::Pipeline::par_map_unordered).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct ParMapUnordered<S, T, U, F> {
    #[pin]
    upstream: S,
    f: Arc<F>,
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    feed: Feed<T, Vec<U>>,
    in_flight: FuturesUnordered<Done<U>>,
    failed: bool,
}

/// A unit in flight, as a future of its result with its size and sequence
/// number.
struct Done<U> {
    sent: Sent<Vec<U>>,
    stage: Arc<StageMetrics>,
}

impl<U> Future for Done<U> {
    /// The unit's size and sequence number, what it carries, its result.
    type Output = (usize, u64, Carry, Result<Vec<U>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        poll_reply(&mut this.sent.reply, cx, &this.stage).map(|result| {
            let carry = std::mem::replace(&mut this.sent.carry, Carry::Nothing);
            (this.sent.len, this.sent.seq, carry, result)
        })
    }
}

impl<S, T, U, F> ParMapUnordered<S, T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
{
    pub(crate) fn new(upstream: S, workers: usize, f: F, stage: Arc<StageMetrics>) -> Self {
        ParMapUnordered {
            upstream,
            f: Arc::new(f),
            tasks: LazyContext::default(),
            stage,
            feed: Feed::new(workers, false),
            in_flight: FuturesUnordered::new(),
            failed: false,
        }
    }
}

impl<S, T, U, F> Stream for ParMapUnordered<S, T, U, F>
where
    S: Stream<Item = Result<Batch<T>>>,
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    type Item = Result<Batch<U>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        if !this.feed.pool.is_started() {
            start_mapping(this.feed, this.tasks, this.stage, this.f);
        }
        loop {
            let (in_flight, stage) = (&mut *this.in_flight, &*this.stage);
            let filled = this.feed.poll_fill(
                this.upstream.as_mut(),
                cx,
                this.stage,
                in_flight.len(),
                |sent| {
                    in_flight.push(Done {
                        sent,
                        stage: stage.clone(),
                    })
                },
            );
            if let Err(e) = filled {
                return fail(this.failed, e);
            }
            match this.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some((_, seq, carry, Ok(records)))) => {
                    if records.is_empty() {
                        continue;
                    }
                    this.stage.batch_out(records.len());
                    return Poll::Ready(Some(Ok(carry.into_batch(records, seq))));
                }
                Poll::Ready(Some((len, _, _, Err(e)))) => {
                    // The unit is lost with the run.
                    this.stage.abandon(len);
                    return fail(this.failed, e);
                }
                Poll::Ready(None) if this.feed.upstream_done() => {
                    this.feed.pool.close();
                    return Poll::Ready(None);
                }
                // Nothing in flight: upstream was polled and will wake us.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[pinned_drop]
impl<S, T, U, F> PinnedDrop for ParMapUnordered<S, T, U, F> {
    fn drop(self: Pin<&mut Self>) {
        // Units queued, being worked on, or done and not yet passed on.
        let this = self.project();
        let held: usize = this.in_flight.iter().map(|d| d.sent.len).sum();
        this.stage.abandon(held);
        // Before upstream goes: nobody waits for these any more.
        this.feed.pool.close();
        this.in_flight.clear();
    }
}

impl<S, T, U, F> fmt::Debug for ParMapUnordered<S, T, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMapUnordered")
            .field("stage", &self.stage.name())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
