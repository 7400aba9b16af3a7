//! Fan-in: `merge` (fair) and `chain` (one after the other).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project::pin_project;

use crate::metrics::StageMetrics;
use crate::{Batch, Result};

/// Batches of two inputs, interleaved as they come: fair, each poll starts
/// with the input the last one did not.
///
/// Made by [`Pipeline::merge`](crate::Pipeline::merge).
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Merge<A, B> {
    #[pin]
    a: Option<A>,
    #[pin]
    b: Option<B>,
    /// Poll `b` first next time.
    b_first: bool,
    /// Poll `a` to its end before `b` (`chain`).
    in_order: bool,
    stage: Arc<StageMetrics>,
}

impl<A, B> Merge<A, B> {
    pub(crate) fn new(a: A, b: B, in_order: bool, stage: Arc<StageMetrics>) -> Self {
        Merge {
            a: Some(a),
            b: Some(b),
            b_first: false,
            in_order,
            stage,
        }
    }
}

/// Polls `input` if it has not ended; `Ready(None)` once it has (and drops it,
/// so a source's resources go as soon as it ends).
fn poll_input<S, T>(
    mut input: Pin<&mut Option<S>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Batch<T>>>>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    let Some(stream) = input.as_mut().as_pin_mut() else {
        return Poll::Ready(None);
    };
    match stream.poll_next(cx) {
        Poll::Ready(None) => {
            input.set(None);
            Poll::Ready(None)
        }
        other => other,
    }
}

impl<A, B, T> Stream for Merge<A, B>
where
    A: Stream<Item = Result<Batch<T>>>,
    B: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let item = if *this.in_order {
            match poll_input(this.a.as_mut(), cx) {
                Poll::Ready(None) => poll_input(this.b.as_mut(), cx),
                other => other,
            }
        } else {
            *this.b_first = !*this.b_first;
            let (first, second) = if *this.b_first { (1, 0) } else { (0, 1) };
            let mut ended = 0;
            let mut found = Poll::Pending;
            for input in [first, second] {
                let polled = if input == 0 {
                    poll_input(this.a.as_mut(), cx)
                } else {
                    poll_input(this.b.as_mut(), cx)
                };
                match polled {
                    Poll::Ready(None) => ended += 1,
                    Poll::Ready(Some(item)) => {
                        found = Poll::Ready(Some(item));
                        break;
                    }
                    Poll::Pending => {}
                }
            }
            if ended == 2 { Poll::Ready(None) } else { found }
        };
        if let Poll::Ready(Some(Ok(batch))) = &item {
            this.stage.batch_in(batch.len());
            this.stage.batch_out(batch.len());
        }
        item
    }
}

impl<A, B> fmt::Debug for Merge<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merge")
            .field("stage", &self.stage.name())
            .field("in_order", &self.in_order)
            .finish_non_exhaustive()
    }
}
