use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Sleep;

use futures::Stream;
use pin_project::pin_project;

use super::failure::{Failures, Outcome};
use super::{fail, guard};
use crate::Error;
use crate::metrics::{StageMetrics, Tally, offering};
use crate::runtime::{LazyContext, SourceShare};
use crate::{Batch, Result};

/// The first stage of every pipeline: counts what the source emits, times its
/// work, turns a panic inside the source into an error naming it, and applies
/// the source's [`ErrorPolicy`](crate::ErrorPolicy) to the record-level errors it yields.
///
/// Created by [`Pipeline::new`](crate::Pipeline::new).
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Metered<S: Stream> {
    #[pin]
    source: S,
    /// A batch read and waiting for room in the run's byte budget.
    held: Option<S::Item>,
    /// What this source has in flight of the budget.
    share: Arc<SourceShare>,
    stage: Arc<StageMetrics>,
    /// The stage's per-batch counts and busy time, published in bulk.
    tally: Tally,
    failures: Failures,
    failed: bool,
    /// The run this source reads for: its pause and stop switches.
    run: LazyContext,
    /// Fails the run when the source produces nothing for this long (paused
    /// time not counted), and the timer.
    idle: Option<(Duration, Option<Pin<Box<Sleep>>>)>,
    /// The stage again, offered to the source while it is polled (see
    /// [`offering`]): how a file source reaches its counters to report the
    /// bytes it read.
    offer: Option<Arc<StageMetrics>>,
}

impl<S: Stream> Metered<S> {
    pub(crate) fn new(source: S, stage: Arc<StageMetrics>) -> Self {
        Metered {
            source,
            held: None,
            share: Arc::default(),
            offer: Some(stage.clone()),
            tally: Tally::new(stage.clone()),
            stage,
            failures: Failures::default(),
            failed: false,
            run: LazyContext::default(),
            idle: None,
        }
    }

    /// Fails the run if the source produces nothing for `after`.
    pub(crate) fn set_idle_timeout(&mut self, after: Duration) {
        self.idle = Some((after, None));
    }
}

impl<S, T> Stream for Metered<S>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.as_mut().poll_batch(cx);
        if !matches!(polled, Poll::Ready(Some(Ok(_)))) {
            // Waiting, ending or failing: the counts are published first
            // (see `Tally`).
            self.project().tally.publish();
        }
        polled
    }
}

impl<S, T> Metered<S>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    fn poll_batch(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Batch<T>>>> {
        let mut this = self.project();
        loop {
            if *this.failed {
                return Poll::Ready(None);
            }
            if let Err(e) = ready!(this.failures.poll_flush(cx)) {
                return fail(this.failed, e.with_stage(this.stage.name()));
            }
            if let Some(Ok(batch)) = this.held.as_mut() {
                // Read, and waiting for room in the budget.
                let budget = this
                    .run
                    .control()
                    .budget()
                    .expect("held only with a budget");
                let lease = ready!(budget.poll_take(this.share, batch.estimated_bytes(), cx));
                batch.set_lease(lease);
                return Poll::Ready(this.held.take());
            }
            // Paused, the source is not polled (and its silence not timed);
            // stopped, it ends here.
            match this.run.control().poll_gate(cx) {
                Poll::Pending => {
                    if let Some((_, timer)) = this.idle.as_mut() {
                        *timer = None;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(false) => return Poll::Ready(None),
                Poll::Ready(true) => {}
            }
            let _span = this.stage.span().enter();
            let start = this.tally.start();
            let source = this.source.as_mut();
            let polled = offering(this.offer, || guard(this.stage, || source.poll_next(cx)));
            match &polled {
                Ok(Poll::Ready(Some(Ok(_)))) => this.tally.stop(start),
                _ => this.tally.stop_without_batch(start),
            }
            let polled = match polled {
                Ok(polled) => polled,
                Err(panic) => return fail(this.failed, panic),
            };
            let polled = match polled {
                Poll::Pending => {
                    if let Some((after, timer)) = this.idle.as_mut() {
                        let timer =
                            timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(*after)));
                        if timer.as_mut().poll(cx).is_ready() {
                            let error = Error::msg(format!(
                                "the source produced nothing for {after:?}, its idle timeout; \
                                 raise it with idle_timeout(..) if it is only slow"
                            ))
                            .with_stage(this.stage.name());
                            return fail(this.failed, error);
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(item) => item,
            };
            if let Some((_, timer)) = this.idle.as_mut() {
                // Something came: the silence is timed afresh.
                *timer = None;
            }
            return match polled {
                Some(Ok(batch)) => {
                    // A source's records come in and go out at once.
                    this.tally.batch_in(batch.len());
                    this.tally.batch_out(batch.len());
                    if this.run.control().budget().is_some() {
                        // Leaves when the budget has room for it.
                        *this.held = Some(Ok(batch));
                        continue;
                    }
                    Poll::Ready(Some(Ok(batch)))
                }
                Some(Err(e)) if e.is_record_level() => {
                    this.stage.failed_record_in();
                    // A source cannot be asked for the same record again: a
                    // retry policy goes straight to its final policy.
                    match this.failures.handle(this.stage, e, 1, false, || None) {
                        Outcome::Dropped => continue,
                        Outcome::Abort(e) => {
                            // The malformed record came in (it is counted in
                            // `records_in`) and goes nowhere: the run ends on it.
                            this.stage.abandon(1);
                            fail(this.failed, e)
                        }
                        Outcome::Retry(_) => unreachable!("a source's error is not retryable"),
                    }
                }
                Some(Err(e)) => fail(this.failed, e.with_stage(this.stage.name())),
                None => Poll::Ready(None),
            };
        }
    }
}

impl<S: Stream> fmt::Debug for Metered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered")
            .field("stage", &self.stage.name())
            .finish_non_exhaustive()
    }
}
