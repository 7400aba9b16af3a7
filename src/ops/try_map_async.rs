use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project::{pin_project, pinned_drop};
use tokio::time::Sleep;

use super::failure::{Failures, Outcome};
use super::intake::{Intake, Next};
use super::{fail, guard, join_error};
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::metrics::clock;
use crate::runtime::{LazyContext, RunContext, Spawned};
use crate::{Batch, BoxError, Error, Result};

/// Runs a fallible async closure on each record, at most `concurrency` at a
/// time, passing results on in input order, under the stage's
/// [`ErrorPolicy`](crate::ErrorPolicy): a failed record is retried after its
/// backoff (the closure is called again once the delay is over, and the new
/// attempt runs as a new task, keeping its place in the order; other records
/// go on meanwhile), skipped, dead-lettered or ends the run.
///
/// Created by [`Pipeline::try_map_async`](crate::Pipeline::try_map_async).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct TryMapAsync<S, T, U, F> {
    #[pin]
    upstream: S,
    f: F,
    concurrency: usize,
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    failures: Failures,
    intake: Intake<T>,
    waiting_batch: u64,
    in_flight: VecDeque<Attempt<T, U>>,
    batches: VecDeque<Pending<U>>,
    next_batch: u64,
    /// Records started so far: the index of the next one.
    started: u64,
    failed: bool,
}

/// A record whose work is in flight.
struct Attempt<T, U> {
    record: T,
    /// The record's index in the stage's input.
    index: u64,
    batch: u64,
    attempts: u32,
    work: Work<U>,
    /// Once the record is done with: its value, or `None` when it was
    /// skipped or dead-lettered; waiting for the records before it.
    resolved: Option<Option<U>>,
}

/// Where a record's current attempt is.
enum Work<U> {
    /// Waiting out the backoff before the closure is called again.
    Backoff(Pin<Box<Sleep>>),
    /// The closure's future, running as its own task.
    Running(Spawned<Result<U, BoxError>>),
}

impl<U> Work<U> {
    /// The next attempt after a failure: at once, or after `delay`.
    fn retry_after<T, E, F, Fut>(
        delay: Duration,
        f: &mut F,
        record: &T,
        tasks: &RunContext,
        stage: &StageMetrics,
    ) -> Result<Self>
    where
        F: FnMut(&T) -> Fut,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
    {
        if delay.is_zero() {
            start(f, record, tasks, stage).map(Work::Running)
        } else {
            Ok(Work::Backoff(Box::pin(tokio::time::sleep(delay))))
        }
    }
}

/// An input batch whose output is not complete.
struct Pending<U> {
    id: u64,
    meta: Meta,
    unresolved: usize,
    accepted: usize,
    out: Vec<U>,
}

impl<S, T, U, F> TryMapAsync<S, T, U, F> {
    pub(crate) fn new(upstream: S, concurrency: usize, f: F, stage: Arc<StageMetrics>) -> Self {
        TryMapAsync {
            upstream,
            f,
            concurrency,
            tasks: LazyContext::default(),
            stage,
            failures: Failures::default(),
            intake: Intake::new(),
            waiting_batch: 0,
            in_flight: VecDeque::new(),
            batches: VecDeque::new(),
            next_batch: 0,
            started: 0,
            failed: false,
        }
    }
}

/// Starts one attempt at `record` as its own task.
fn start<T, U, E, F, Fut>(
    f: &mut F,
    record: &T,
    tasks: &RunContext,
    stage: &StageMetrics,
) -> Result<Spawned<Result<U, BoxError>>>
where
    F: FnMut(&T) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError>,
    U: Send + 'static,
{
    let start = clock::now();
    let fut = guard(stage, || f(record));
    stage.busy_since(start);
    let fut = fut?;
    Ok(Spawned(
        tasks.spawn(async move { fut.await.map_err(Into::into) }),
    ))
}

impl<S, T, U, E, F, Fut> Stream for TryMapAsync<S, T, U, F>
where
    S: Stream<Item = Result<Batch<T>>>,
    T: fmt::Debug,
    F: FnMut(&T) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<BoxError>,
    U: Send + 'static,
{
    type Item = Result<Batch<U>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        'next: loop {
            match this.failures.poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return fail(this.failed, e.with_stage(this.stage.name())),
                Poll::Pending => return Poll::Pending,
            }
            // Emit the oldest batch once all its records are resolved.
            if let Some(front) = this.batches.front()
                && front.unresolved == 0
            {
                let done = this.batches.pop_front().expect("checked above");
                this.stage.balance(done.accepted, done.out.len());
                if !done.out.is_empty() {
                    this.stage.batch_out(done.out.len());
                    return Poll::Ready(Some(Ok(Batch::from_parts(done.out, done.meta))));
                }
                continue;
            }
            // Start work while there is room.
            loop {
                let room = this.in_flight.len() < *this.concurrency;
                let (batches, waiting_batch, next_batch) = (
                    &mut *this.batches,
                    &mut *this.waiting_batch,
                    &mut *this.next_batch,
                );
                let next = this.intake.poll_next(
                    this.upstream.as_mut(),
                    cx,
                    room,
                    this.stage,
                    |len, meta| {
                        *waiting_batch = *next_batch;
                        *next_batch += 1;
                        batches.push_back(Pending {
                            id: *waiting_batch,
                            meta,
                            unresolved: len,
                            accepted: 0,
                            out: Vec::with_capacity(len),
                        });
                    },
                );
                let record = match next {
                    Next::Start(record) => record,
                    Next::Wait => break,
                    Next::Failed(e) => return fail(this.failed, e),
                };
                match start(this.f, &record, this.tasks, this.stage) {
                    Ok(task) => this.in_flight.push_back(Attempt {
                        record,
                        index: *this.started,
                        batch: *this.waiting_batch,
                        attempts: 0,
                        work: Work::Running(task),
                        resolved: None,
                    }),
                    Err(e) => {
                        // The closure panicked on a record not yet in flight:
                        // it is lost with the run.
                        this.stage.abandon(1);
                        return fail(this.failed, e);
                    }
                }
                *this.started += 1;
            }
            // Poll every attempt in flight and apply the policy to a failure
            // at once: a retry starts its backoff while the records before it
            // are still in flight, and an abort does not wait for them.
            // Results are passed on in input order below.
            for attempt in this.in_flight.iter_mut() {
                while attempt.resolved.is_none() {
                    let result = match &mut attempt.work {
                        Work::Backoff(sleep) => {
                            if sleep.as_mut().poll(cx).is_pending() {
                                break;
                            }
                            match start(this.f, &attempt.record, this.tasks, this.stage) {
                                Ok(task) => attempt.work = Work::Running(task),
                                Err(e) => return fail(this.failed, e),
                            }
                            // Poll the new task, so that it wakes this stream.
                            continue;
                        }
                        Work::Running(task) => match Pin::new(task).poll(cx) {
                            Poll::Pending => break,
                            Poll::Ready(Err(e)) => {
                                return fail(this.failed, join_error(e, this.stage.name()));
                            }
                            Poll::Ready(Ok(result)) => result,
                        },
                    };
                    let error = match result {
                        Ok(value) => {
                            attempt.resolved = Some(Some(value));
                            break;
                        }
                        Err(e) => Error::from_user(e).or_at_record(attempt.index),
                    };
                    attempt.attempts += 1;
                    let record = &attempt.record;
                    let outcome =
                        this.failures
                            .handle(this.stage, error, attempt.attempts, true, || {
                                Some(format!("{record:?}"))
                            });
                    match outcome {
                        Outcome::Retry(delay) => {
                            let next = Work::retry_after(
                                delay,
                                this.f,
                                &attempt.record,
                                this.tasks,
                                this.stage,
                            );
                            match next {
                                Ok(work) => attempt.work = work,
                                Err(e) => return fail(this.failed, e),
                            }
                        }
                        Outcome::Dropped => {
                            attempt.resolved = Some(None);
                            // Send a reject before handling another failure.
                            continue 'next;
                        }
                        Outcome::Abort(e) => return fail(this.failed, e),
                    }
                }
            }
            // Pass on the oldest record's result: results keep input order.
            let Some(head) = this.in_flight.front_mut() else {
                return if this.intake.upstream_done() && this.batches.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                };
            };
            let Some(resolved) = head.resolved.take() else {
                return Poll::Pending;
            };
            let batch = this
                .batches
                .iter_mut()
                .find(|b| b.id == head.batch)
                .expect("an attempt's batch is pending until the attempt resolves");
            if let Some(value) = resolved {
                batch.out.push(value);
                batch.accepted += 1;
            }
            batch.unresolved -= 1;
            this.in_flight.pop_front();
        }
    }
}

#[pinned_drop]
impl<S, T, U, F> PinnedDrop for TryMapAsync<S, T, U, F> {
    fn drop(self: Pin<&mut Self>) {
        // Records not started, in flight (but not those already skipped or
        // dead-lettered), or done but waiting for their batch.
        let this = self.project();
        let in_flight = this
            .in_flight
            .iter()
            .filter(|a| !matches!(a.resolved, Some(None)))
            .count();
        let done: usize = this.batches.iter().map(|b| b.out.len()).sum();
        this.stage.abandon(this.intake.held() + in_flight + done);
    }
}

impl<S, T, U, F> fmt::Debug for TryMapAsync<S, T, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapAsync")
            .field("concurrency", &self.concurrency)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
