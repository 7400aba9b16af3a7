//! `zip`: records of two independent inputs paired by position.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use crate::metrics::StageMetrics;
use crate::{Batch, Result};

/// Pairs the n-th record of one input with the n-th of the other.
///
/// Made by [`Pipeline::zip`](crate::Pipeline::zip).
#[pin_project(PinnedDrop, project = ZipProj)]
#[must_use = "streams do nothing unless polled"]
pub struct Zip<A, B, TA, TB> {
    #[pin]
    a: Option<A>,
    #[pin]
    b: Option<B>,
    left: VecDeque<TA>,
    right: VecDeque<TB>,
    ended: bool,
    stage: Arc<StageMetrics>,
}

impl<A, B, TA, TB> Zip<A, B, TA, TB> {
    pub(crate) fn new(a: A, b: B, stage: Arc<StageMetrics>) -> Self {
        Zip {
            a: Some(a),
            b: Some(b),
            left: VecDeque::new(),
            right: VecDeque::new(),
            ended: false,
            stage,
        }
    }
}

impl<A, B, TA, TB> Stream for Zip<A, B, TA, TB>
where
    A: Stream<Item = Result<Batch<TA>>>,
    B: Stream<Item = Result<Batch<TB>>>,
{
    type Item = Result<Batch<(TA, TB)>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.ended {
                return Poll::Ready(None);
            }
            let pairs = this.left.len().min(this.right.len());
            if pairs > 0 {
                let records: Vec<(TA, TB)> = this
                    .left
                    .drain(..pairs)
                    .zip(this.right.drain(..pairs))
                    .collect();
                this.stage.batch_out(pairs);
                this.stage.combine(pairs);
                return Poll::Ready(Some(Ok(Batch::new(records))));
            }
            // Read the side with nothing in hand (both, at the start).
            let mut pending = true;
            if this.left.is_empty() {
                match poll_side(this.a.as_mut(), cx, this.left, this.stage) {
                    Poll::Ready(Ok(true)) => pending = false,
                    Poll::Ready(Ok(false)) => return Poll::Ready(end(&mut this)),
                    Poll::Ready(Err(e)) => {
                        *this.ended = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => {}
                }
            }
            if this.right.is_empty() {
                match poll_side(this.b.as_mut(), cx, this.right, this.stage) {
                    Poll::Ready(Ok(true)) => pending = false,
                    Poll::Ready(Ok(false)) => return Poll::Ready(end(&mut this)),
                    Poll::Ready(Err(e)) => {
                        *this.ended = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => {}
                }
            }
            if pending {
                return Poll::Pending;
            }
        }
    }
}

/// Polls one input for its next batch, into `queue`: `Ok(true)` for a batch,
/// `Ok(false)` at its end.
fn poll_side<S, T>(
    mut input: Pin<&mut Option<S>>,
    cx: &mut Context<'_>,
    queue: &mut VecDeque<T>,
    stage: &StageMetrics,
) -> Poll<Result<bool>>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    let Some(stream) = input.as_mut().as_pin_mut() else {
        return Poll::Ready(Ok(false));
    };
    match stream.poll_next(cx) {
        Poll::Ready(Some(Ok(batch))) => {
            stage.batch_in(batch.len());
            queue.extend(batch.into_records());
            Poll::Ready(Ok(true))
        }
        Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e)),
        Poll::Ready(None) => {
            input.set(None);
            Poll::Ready(Ok(false))
        }
        Poll::Pending => Poll::Pending,
    }
}

/// One input ended: so does the zip. The other's unpaired records are
/// dropped on purpose (`filtered`), and the other input is read no further.
fn end<A, B, TA, TB>(this: &mut ZipProj<'_, A, B, TA, TB>) -> Option<Result<Batch<(TA, TB)>>> {
    *this.ended = true;
    let unpaired = this.left.len() + this.right.len();
    this.left.clear();
    this.right.clear();
    this.stage.balance(unpaired, 0);
    this.a.set(None);
    this.b.set(None);
    None
}

#[pinned_drop]
impl<A, B, TA, TB> PinnedDrop for Zip<A, B, TA, TB> {
    fn drop(self: Pin<&mut Self>) {
        // The run ended first: the records in hand are lost with it.
        let held = self.left.len() + self.right.len();
        self.stage.abandon(held);
    }
}

impl<A, B, TA, TB> fmt::Debug for Zip<A, B, TA, TB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zip")
            .field("stage", &self.stage.name())
            .finish_non_exhaustive()
    }
}
