use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use super::fail;
use super::par_workers::{Carry, Feed, Sent, map_records, poll_reply, serve};
use crate::metrics::StageMetrics;
use crate::runtime::LazyContext;
use crate::{Batch, Result};

/// Runs a closure on each record on `n` worker threads, off the async
/// runtime's, and passes the results on **in input order**, in batches of
/// the input's sizes.
///
/// Batches (or slices of them, while workers would otherwise idle) go to the
/// workers through one queue; their results come back each through its own
/// reply and are passed on in the order the units were queued. At most two
/// units per worker are in flight, each at most one input batch.
///
/// Created by [`Pipeline::par_map`](crate::Pipeline::par_map).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct ParMap<S, T, U, F> {
    #[pin]
    upstream: S,
    f: Arc<F>,
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    feed: Feed<T, Vec<U>>,
    /// Units queued, in input order, until their results are passed on.
    in_flight: VecDeque<Sent<Vec<U>>>,
    /// The results of the batch being put back together from its slices.
    out: Vec<U>,
    failed: bool,
}

impl<S, T, U, F> ParMap<S, T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
{
    pub(crate) fn new(upstream: S, workers: usize, f: F, stage: Arc<StageMetrics>) -> Self {
        ParMap {
            upstream,
            f: Arc::new(f),
            tasks: LazyContext::default(),
            stage,
            feed: Feed::new(workers, true),
            in_flight: VecDeque::new(),
            out: Vec::new(),
            failed: false,
        }
    }
}

/// Starts the workers of a `par_map` or `par_map_unordered` stage.
pub(crate) fn start_mapping<T, U, F>(
    feed: &mut Feed<T, Vec<U>>,
    tasks: &LazyContext,
    stage: &Arc<StageMetrics>,
    f: &Arc<F>,
) where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    let (workers, cost) = (feed.pool.workers(), feed.pool.cost());
    let (f, stage) = (f.clone(), stage.clone());
    feed.pool.start(tasks, move |_| {
        let (f, stage, cost) = (f.clone(), stage.clone(), cost.clone());
        move |unit| {
            serve(&stage, &cost, workers, unit, |records, stopped| {
                map_records(records, stopped, &*f)
            })
        }
    });
}

impl<S, T, U, F> Stream for ParMap<S, T, U, F>
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
            let in_flight = &mut *this.in_flight;
            let filled = this.feed.poll_fill(
                this.upstream.as_mut(),
                cx,
                this.stage,
                in_flight.len(),
                |sent| in_flight.push_back(sent),
            );
            if let Err(e) = filled {
                return fail(this.failed, e);
            }
            let Some(head) = this.in_flight.front_mut() else {
                if this.feed.upstream_done() {
                    this.feed.pool.close();
                    return Poll::Ready(None);
                }
                return Poll::Pending; // upstream was polled and will wake us
            };
            let result = ready!(poll_reply(&mut head.reply, cx, this.stage));
            let head = this.in_flight.pop_front().expect("polled just above");
            let values = match result {
                Ok(values) => values,
                Err(e) => {
                    // The unit is lost with the run.
                    this.stage.abandon(head.len);
                    return fail(this.failed, e);
                }
            };
            if this.out.is_empty() {
                *this.out = values;
            } else {
                this.out.extend(values);
            }
            if let Carry::Batch(meta) = head.carry {
                let records = std::mem::take(this.out);
                this.stage.batch_out(records.len());
                return Poll::Ready(Some(Ok(Batch::from_parts(records, meta))));
            }
        }
    }
}

#[pinned_drop]
impl<S, T, U, F> PinnedDrop for ParMap<S, T, U, F> {
    fn drop(self: Pin<&mut Self>) {
        // Units queued, being worked on or done, and the results of a batch
        // not yet passed on. The workers see nobody waits and stop.
        let this = self.project();
        let held: usize = this.in_flight.iter().map(|u| u.len).sum();
        this.stage.abandon(held + this.out.len());
        // Before upstream goes: nobody waits for these any more.
        this.feed.pool.close();
        this.in_flight.clear();
    }
}

impl<S, T, U, F> fmt::Debug for ParMap<S, T, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMap")
            .field("stage", &self.stage.name())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
