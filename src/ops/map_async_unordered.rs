use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use pin_project::{pin_project, pinned_drop};

use super::intake::{Intake, Next, spawn_call};
use super::{fail, join_error};
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::runtime::{LazyContext, Spawned};
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
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    intake: Intake<T>,
    in_flight: FuturesUnordered<Spawned<U>>,
    batches: VecDeque<(usize, Meta)>,
    out: Vec<U>,
    failed: bool,
}

impl<S, T, U, F> MapAsyncUnordered<S, T, U, F> {
    pub(crate) fn new(upstream: S, concurrency: usize, f: F, stage: Arc<StageMetrics>) -> Self {
        MapAsyncUnordered {
            upstream,
            f,
            concurrency,
            tasks: LazyContext::default(),
            stage,
            intake: Intake::new(),
            in_flight: FuturesUnordered::new(),
            batches: VecDeque::new(),
            out: Vec::new(),
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
                let room = this.in_flight.len() < *this.concurrency;
                let batches = &mut *this.batches;
                let next = this.intake.poll_next(
                    this.upstream.as_mut(),
                    cx,
                    room,
                    this.stage,
                    |len, meta| batches.push_back((len, meta)),
                );
                let record = match next {
                    Next::Start(record) => record,
                    Next::Wait => break,
                    Next::Failed(e) => return fail(this.failed, e),
                };
                match spawn_call(this.f, record, this.tasks, this.stage) {
                    Ok(task) => this.in_flight.push(task),
                    Err(e) => return fail(this.failed, e),
                }
            }
            let all_started = this.intake.is_drained();
            if let Some(&(size, _)) = this.batches.front() {
                // Emit a batch of the oldest input batch's size; at the end, whatever is left.
                if this.out.len() >= size || (all_started && this.in_flight.is_empty()) {
                    let (_, meta) = this.batches.pop_front().expect("checked above");
                    let n = size.min(this.out.len());
                    let records: Vec<U> = this.out.drain(..n).collect();
                    this.stage.batch_out(records.len());
                    return Poll::Ready(Some(Ok(Batch::from_parts(records, meta))));
                }
            } else if all_started && this.in_flight.is_empty() {
                return Poll::Ready(None);
            }
            match this.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(value))) => this.out.push(value),
                Poll::Ready(Some(Err(e))) => {
                    // The record's task panicked (or was cancelled) and has left
                    // `in_flight`: it is lost with the run.
                    this.stage.abandon(1);
                    return fail(this.failed, join_error(e, this.stage.name()));
                }
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
            .abandon(this.intake.held() + this.in_flight.len() + this.out.len());
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
