use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use super::{fail, guard};
use crate::metrics::StageMetrics;
use crate::metrics::clock;
use crate::{Batch, Result};

/// The input a [`through`](crate::Pipeline::through) adapter reads: the
/// pipeline's stream so far, counting what the adapter takes as the stage's
/// records in.
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Counted<S> {
    #[pin]
    upstream: S,
    stage: Arc<StageMetrics>,
}

impl<S, T> Stream for Counted<S>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.upstream.poll_next(cx));
        if let Some(Ok(batch)) = &item {
            this.stage.batch_in(batch.len());
        }
        Poll::Ready(item)
    }
}

/// A stream adapter of the user's own, run as a stage with its name and
/// counters: what it takes counts as records in, what it gives as records
/// out; at its end the difference counts as filtered (fewer out) or
/// expanded (more out), and if the run ends first, what it held counts as
/// abandoned. A panic in it becomes an error naming the stage.
///
/// Created by [`Pipeline::through`](crate::Pipeline::through).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct Through<S> {
    #[pin]
    inner: S,
    stage: Arc<StageMetrics>,
    ended: bool,
}

impl<S> Through<S> {
    pub(crate) fn new<U>(
        upstream: U,
        stage: Arc<StageMetrics>,
        adapter: impl FnOnce(Counted<U>) -> S,
    ) -> Self {
        let inner = adapter(Counted {
            upstream,
            stage: stage.clone(),
        });
        Through {
            inner,
            stage,
            ended: false,
        }
    }
}

impl<S, T> Stream for Through<S>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let start = clock::now();
        let inner = this.inner;
        let polled = guard(this.stage, || inner.poll_next(cx));
        this.stage.busy_since(start);
        let item = match polled {
            Ok(polled) => ready!(polled),
            Err(panic) => return fail(this.ended, panic),
        };
        match &item {
            Some(Ok(batch)) => this.stage.batch_out(batch.len()),
            Some(Err(_)) => *this.ended = true,
            None => {
                *this.ended = true;
                this.stage.settle(false);
            }
        }
        Poll::Ready(item.map(|r| r.map_err(|e| e.with_stage(this.stage.name()))))
    }
}

#[pinned_drop]
impl<S> PinnedDrop for Through<S> {
    fn drop(self: Pin<&mut Self>) {
        // Ended early (an error, a failed or cancelled run, a `take`
        // downstream): what the adapter held is lost with it.
        self.stage.settle(true);
    }
}

impl<S> fmt::Debug for Through<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Through")
            .field("stage", &self.stage.name())
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for Counted<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted")
            .field("stage", &self.stage.name())
            .finish_non_exhaustive()
    }
}
