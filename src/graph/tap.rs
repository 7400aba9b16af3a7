//! `tap`: a lossy copy of the stream for a side branch.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::pin_project;

use super::fan_out::{BRANCH_CAPACITY, Branch};
use crate::metrics::StageMetrics;
use crate::runtime::{Giver, handoff};
use crate::{Batch, Result};

/// Passes every batch on unchanged and offers a copy to a side branch, which
/// never holds the main path back: a copy that finds the side branch full is
/// dropped and counted in the stage's `dropped`.
///
/// Made by [`Pipeline::tap`](crate::Pipeline::tap).
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Tap<S, T> {
    #[pin]
    upstream: S,
    side: Option<Giver<Batch<T>>>,
    stage: Arc<StageMetrics>,
}

/// A tap on `upstream` and the side branch it feeds.
pub(crate) fn tap<S, T>(upstream: S, stage: Arc<StageMetrics>) -> (Tap<S, T>, Branch<T>) {
    let (giver, taker) = handoff(BRANCH_CAPACITY);
    let side = Branch::new(taker, stage.clone());
    (
        Tap {
            upstream,
            side: Some(giver),
            stage,
        },
        side,
    )
}

impl<S, T> Stream for Tap<S, T>
where
    S: Stream<Item = Result<Batch<T>>>,
    T: Clone,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let polled = this.upstream.poll_next(cx);
        if polled.is_pending()
            && let Some(side) = this.side
        {
            side.flush();
        }
        let item = ready!(polled);
        match &item {
            Some(Ok(batch)) => {
                let len = batch.len();
                this.stage.batch_in(len);
                this.stage.batch_out(len);
                this.stage.expand(len);
                if let Some(side) = this.side {
                    match side.try_give(batch.clone()) {
                        Ok(()) => {}
                        Err((_, false)) => this.stage.drop_records(len),
                        Err((_, true)) => {
                            // The side branch ended: nothing more for it.
                            this.stage.abandon(len);
                            *this.side = None;
                        }
                    }
                } else {
                    this.stage.abandon(len);
                }
            }
            // The end, or an error: the side branch ends too.
            _ => *this.side = None,
        }
        Poll::Ready(item)
    }
}

impl<S, T> fmt::Debug for Tap<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("stage", &self.stage.name())
            .finish_non_exhaustive()
    }
}
