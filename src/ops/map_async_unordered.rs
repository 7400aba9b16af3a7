use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use pin_project::{pin_project, pinned_drop};

use super::{fail, guard, join_error};
use crate::metrics::StageMetrics;
use crate::runtime::{Spawned, Tasks};
use crate::{Batch, Result};

/// Runs an async closure on each record, at most `concurrency` at a time, and
/// passes results on as they finish, in batches of the input's sizes.
///
/// Each future runs as its own task, so work in flight keeps progressing while
/// downstream is busy.
///
/// Created by [`Pipeline::map_async_unordered`](crate::Pipeline::map_async_unordered).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct MapAsyncUnordered<S, T, U, F> {
    #[pin]
    upstream: S,
    f: F,
    concurrency: usize,
    tasks: Tasks,
    stage: Arc<StageMetrics>,
    waiting: std::vec::IntoIter<T>,
    in_flight: FuturesUnordered<Spawned<U>>,
    batches: VecDeque<(usize, u64)>,
    out: Vec<U>,
    upstream_done: bool,
    failed: bool,
}

impl<S, T, U, F> MapAsyncUnordered<S, T, U, F> {
    pub(crate) fn new(
        upstream: S,
        concurrency: usize,
        f: F,
        tasks: Tasks,
        stage: Arc<StageMetrics>,
    ) -> Self {
        MapAsyncUnordered {
            upstream,
            f,
            concurrency,
            tasks,
            stage,
            waiting: Vec::new().into_iter(),
            in_flight: FuturesUnordered::new(),
            batches: VecDeque::new(),
            out: Vec::new(),
            upstream_done: false,
            failed: false,
        }
    }
}

impl<S, T, U, F, Fut> Stream for MapAsyncUnordered<S, T, U, F>
where
    S: Stream<Item = Result<Batch<T>>>,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = U> + Send + 'static,
    U: Send + 'static,
{
    type Item = Result<Batch<U>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        loop {
            loop {
                // When every slot is busy, still take the next batch into hand:
                // an upstream error is then seen at once, not only after a
                // slot frees up (which may be never). At most one batch waits.
                let room = this.in_flight.len() < *this.concurrency;
                if !room && this.waiting.len() > 0 {
                    break;
                }
                if let Some(record) = room.then(|| this.waiting.next()).flatten() {
                    let start = Instant::now();
                    let f = &mut *this.f;
                    let fut = guard(this.stage, || f(record));
                    this.stage.busy_since(start);
                    match fut {
                        Ok(fut) => this.in_flight.push(Spawned(this.tasks.spawn(fut))),
                        Err(e) => return fail(this.failed, e),
                    }
                    continue;
                }
                if *this.upstream_done {
                    break;
                }
                match this.upstream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(batch))) => {
                        this.stage.batch_in(batch.len());
                        if !batch.is_empty() {
                            this.batches.push_back((batch.len(), batch.seq()));
                            *this.waiting = batch.into_records().into_iter();
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return fail(this.failed, e),
                    Poll::Ready(None) => *this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            let all_started = *this.upstream_done && this.waiting.len() == 0;
            if let Some(&(size, seq)) = this.batches.front() {
                // Emit a batch of the oldest input batch's size; at the end, whatever is left.
                if this.out.len() >= size || (all_started && this.in_flight.is_empty()) {
                    this.batches.pop_front();
                    let n = size.min(this.out.len());
                    let records: Vec<U> = this.out.drain(..n).collect();
                    this.stage.batch_out(records.len());
                    return Poll::Ready(Some(Ok(Batch::new(records).with_seq(seq))));
                }
            } else if all_started && this.in_flight.is_empty() {
                return Poll::Ready(None);
            }
            match this.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(value))) => this.out.push(value),
                Poll::Ready(Some(Err(e))) => return fail(this.failed, join_error(e, this.stage)),
                // Nothing in flight: upstream was polled above and will wake us.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[pinned_drop]
impl<S, T, U, F> PinnedDrop for MapAsyncUnordered<S, T, U, F> {
    fn drop(self: Pin<&mut Self>) {
        // Records not started, in flight, or done but not yet passed on.
        let this = self.project();
        this.stage
            .abandon(this.waiting.len() + this.in_flight.len() + this.out.len());
    }
}

impl<S, T, U, F> fmt::Debug for MapAsyncUnordered<S, T, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapAsyncUnordered")
            .field("concurrency", &self.concurrency)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
