use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use super::intake::{Intake, Next, spawn_call};
use super::{fail, join_error};
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::runtime::{LazyContext, Spawned};
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
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    intake: Intake<T>,
    in_flight: VecDeque<Spawned<U>>,
    // Sizes and sequence numbers of the admitted batches whose output is not complete.
    batches: VecDeque<(usize, Meta)>,
    out: Vec<U>,
    failed: bool,
}

impl<S, T, U, F> MapAsync<S, T, U, F> {
    pub(crate) fn new(upstream: S, concurrency: usize, f: F, stage: Arc<StageMetrics>) -> Self {
        MapAsync {
            upstream,
            f,
            concurrency,
            tasks: LazyContext::default(),
            stage,
            intake: Intake::new(),
            in_flight: VecDeque::new(),
            batches: VecDeque::new(),
            out: Vec::new(),
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
                    Ok(task) => this.in_flight.push_back(task),
                    Err(e) => return fail(this.failed, e),
                }
            }
            // Collect finished work strictly in input order.
            let Some(head) = this.in_flight.front_mut() else {
                return if this.intake.upstream_done() {
                    Poll::Ready(None)
                } else {
                    Poll::Pending // upstream was polled above and will wake us
                };
            };
            match Pin::new(head).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return fail(this.failed, join_error(e, this.stage.name())),
                Poll::Ready(Ok(value)) => {
                    this.in_flight.pop_front();
                    this.out.push(value);
                    if this.out.len() == this.batches[0].0 {
                        let (_, meta) = this.batches.pop_front().expect("checked above");
                        let records = std::mem::take(this.out);
                        this.stage.batch_out(records.len());
                        return Poll::Ready(Some(Ok(Batch::from_parts(records, meta))));
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
            .abandon(this.intake.held() + this.in_flight.len() + this.out.len());
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
