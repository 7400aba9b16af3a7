use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};
use tokio::time::Sleep;

use super::failure::{Failures, Outcome};
use super::{fail, guard};
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::metrics::clock;
use crate::{Batch, BoxError, Error, Result};

/// A fallible per-record step: the body of [`try_map`](crate::Pipeline::try_map),
/// [`try_filter`](crate::Pipeline::try_filter) and
/// [`try_flat_map`](crate::Pipeline::try_flat_map).
///
/// The step sees the record by reference, so that after a failure the stage
/// still holds it to retry, dead-letter or report it; only once the step
/// succeeded does [`emit`](TryOp::emit) take it.
pub trait TryOp<T>: Send + 'static {
    /// The records this step produces.
    type Out;
    /// What a successful attempt yields, before the record is consumed.
    type Partial;

    /// One attempt at the record.
    fn try_apply(&mut self, record: &T) -> Result<Self::Partial, BoxError>;

    /// Passes on the output for a record whose attempt succeeded.
    fn emit(&mut self, record: T, partial: Self::Partial, out: &mut Vec<Self::Out>);
}

/// The stream adapter that runs a [`TryOp`] over every record under the
/// stage's [`ErrorPolicy`](crate::ErrorPolicy): a failed record is retried
/// after its backoff (the rest of the batch waits, keeping order), skipped,
/// dead-lettered or ends the run.
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct TryTransform<S, Op: TryOp<T>, T> {
    #[pin]
    upstream: S,
    op: Op,
    stage: Arc<StageMetrics>,
    failures: Failures,
    work: Option<Work<T, Op::Out>>,
    backoff: Option<Pin<Box<Sleep>>>,
    /// Records received so far: the index of the next batch's first record.
    received: u64,
    done: bool,
}

struct Work<T, U> {
    /// Index in the stage's input of the batch's first record, and its length.
    first: u64,
    len: usize,
    records: std::vec::IntoIter<T>,
    current: Option<T>,
    attempts: u32,
    out: Vec<U>,
    meta: Meta,
    accepted: usize,
}

impl<S, Op: TryOp<T>, T> TryTransform<S, Op, T> {
    pub(crate) fn new(upstream: S, op: Op, stage: Arc<StageMetrics>) -> Self {
        TryTransform {
            upstream,
            op,
            stage,
            failures: Failures::default(),
            work: None,
            backoff: None,
            received: 0,
            done: false,
        }
    }
}

impl<S, Op, T> Stream for TryTransform<S, Op, T>
where
    S: Stream<Item = Result<Batch<T>>>,
    Op: TryOp<T>,
    T: fmt::Debug,
{
    type Item = Result<Batch<Op::Out>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            if let Err(e) = ready!(this.failures.poll_flush(cx)) {
                return fail(this.done, e.with_stage(this.stage.name()));
            }
            if let Some(sleep) = this.backoff {
                ready!(sleep.as_mut().poll(cx));
                *this.backoff = None;
            }
            let Some(work) = this.work else {
                match ready!(this.upstream.as_mut().poll_next(cx)) {
                    None => *this.done = true,
                    Some(Err(e)) => return fail(this.done, e),
                    Some(Ok(batch)) => {
                        this.stage.batch_in(batch.len());
                        let (records, meta) = batch.into_parts();
                        let first = *this.received;
                        *this.received += records.len() as u64;
                        *this.work = Some(Work {
                            first,
                            len: records.len(),
                            out: Vec::with_capacity(records.len()),
                            records: records.into_iter(),
                            current: None,
                            attempts: 0,
                            meta,
                            accepted: 0,
                        });
                    }
                }
                continue;
            };
            let start = clock::now();
            let mut interrupted = false;
            while let Some(record) = work.current.take().or_else(|| work.records.next()) {
                let op = &mut *this.op;
                let attempt = match guard(this.stage, || op.try_apply(&record)) {
                    Ok(attempt) => attempt,
                    Err(panic) => {
                        // Still held: counted as abandoned when dropped.
                        work.current = Some(record);
                        this.stage.busy_since(start);
                        return fail(this.done, panic);
                    }
                };
                match attempt {
                    Ok(partial) => {
                        work.attempts = 0;
                        work.accepted += 1;
                        let out = &mut work.out;
                        // A panic here loses the record with the run: it counts
                        // as accepted and not passed on, so abandoned when dropped.
                        if let Err(panic) = guard(this.stage, || op.emit(record, partial, out)) {
                            this.stage.busy_since(start);
                            return fail(this.done, panic);
                        }
                    }
                    Err(e) => {
                        work.attempts += 1;
                        // The record just taken: the ones after it are still in the iterator.
                        let index = work.first + (work.len - work.records.len() - 1) as u64;
                        let outcome = this.failures.handle(
                            this.stage,
                            Error::from_user(e).or_at_record(index),
                            work.attempts,
                            true,
                            || Some(format!("{record:?}")),
                        );
                        match outcome {
                            Outcome::Retry(delay) => {
                                work.current = Some(record);
                                *this.backoff = Some(Box::pin(tokio::time::sleep(delay)));
                            }
                            Outcome::Dropped => work.attempts = 0,
                            Outcome::Abort(e) => {
                                // Still held: counted as abandoned when dropped.
                                work.current = Some(record);
                                this.stage.busy_since(start);
                                return fail(this.done, e);
                            }
                        }
                        // Wait out a backoff or a full dead-letter channel first.
                        interrupted = true;
                        break;
                    }
                }
            }
            this.stage.busy_since(start);
            if interrupted {
                continue;
            }
            let work = this.work.take().expect("matched above");
            this.stage.balance(work.accepted, work.out.len());
            if !work.out.is_empty() {
                this.stage.batch_out(work.out.len());
                return Poll::Ready(Some(Ok(Batch::from_parts(work.out, work.meta))));
            }
        }
    }
}

#[pinned_drop]
impl<S, Op: TryOp<T>, T> PinnedDrop for TryTransform<S, Op, T> {
    fn drop(self: Pin<&mut Self>) {
        // The rest of a batch in hand when the run ended early: records not yet
        // tried, and outputs of those that succeeded but were not passed on.
        let this = self.project();
        if let Some(work) = this.work {
            let held = work.accepted + work.records.len() + usize::from(work.current.is_some());
            this.stage.abandon(held);
        }
    }
}

impl<S, Op: TryOp<T>, T> fmt::Debug for TryTransform<S, Op, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryTransform")
            .field("stage", &self.stage.name())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
