use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use super::{fail, guard, join_error};
use crate::metrics::StageMetrics;
use crate::runtime::{Spawned, Tasks};
use crate::{Batch, Result};

/// Runs an async closure on each record, at most `concurrency` at a time, and
/// passes the results on in input order, in batches of the input's sizes.
///
/// Each future runs as its own task, so work in flight keeps progressing while
/// downstream is busy (futures-rs issue 2387 cannot happen here).
///
/// Created by [`Pipeline::map_async`](crate::Pipeline::map_async).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct MapAsync<S, T, U, F> {
    #[pin]
    upstream: S,
    f: F,
    concurrency: usize,
    tasks: Tasks,
    stage: Arc<StageMetrics>,
    waiting: std::vec::IntoIter<T>,
    in_flight: VecDeque<Spawned<U>>,
    // Sizes and sequence numbers of the admitted batches whose output is not complete.
    batches: VecDeque<(usize, u64)>,
    out: Vec<U>,
    upstream_done: bool,
    failed: bool,
}

impl<S, T, U, F> MapAsync<S, T, U, F> {
    pub(crate) fn new(
        upstream: S,
        concurrency: usize,
        f: F,
        tasks: Tasks,
        stage: Arc<StageMetrics>,
    ) -> Self {
        MapAsync {
            upstream,
            f,
            concurrency,
            tasks,
            stage,
            waiting: Vec::new().into_iter(),
            in_flight: VecDeque::new(),
            batches: VecDeque::new(),
            out: Vec::new(),
            upstream_done: false,
            failed: false,
        }
    }
}

impl<S, T, U, F, Fut> Stream for MapAsync<S, T, U, F>
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
            // Start work while there is room, pulling batches from upstream as needed.
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
                        Ok(fut) => this.in_flight.push_back(Spawned(this.tasks.spawn(fut))),
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
            // Collect finished work strictly in input order.
            let Some(head) = this.in_flight.front_mut() else {
                return if *this.upstream_done {
                    Poll::Ready(None)
                } else {
                    Poll::Pending // upstream was polled above and will wake us
                };
            };
            match Pin::new(head).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return fail(this.failed, join_error(e, this.stage)),
                Poll::Ready(Ok(value)) => {
                    this.in_flight.pop_front();
                    this.out.push(value);
                    let (size, seq) = this.batches[0];
                    if this.out.len() == size {
                        this.batches.pop_front();
                        let records = std::mem::take(this.out);
                        this.stage.batch_out(records.len());
                        return Poll::Ready(Some(Ok(Batch::new(records).with_seq(seq))));
                    }
                }
            }
        }
    }
}

#[pinned_drop]
impl<S, T, U, F> PinnedDrop for MapAsync<S, T, U, F> {
    fn drop(self: Pin<&mut Self>) {
        // Records not started, in flight, or done but waiting for their batch.
        let this = self.project();
        this.stage
            .abandon(this.waiting.len() + this.in_flight.len() + this.out.len());
    }
}

impl<S, T, U, F> fmt::Debug for MapAsync<S, T, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapAsync")
            .field("concurrency", &self.concurrency)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
