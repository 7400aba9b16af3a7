use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures::Stream;
use pin_project::pin_project;

use super::guard;
use crate::metrics::StageMetrics;
use crate::{Batch, Result};

/// Work done on the records of one batch at a time: the body of a batch-level
/// adapter such as [`MapBatch`](super::MapBatch) or [`Take`](super::Take).
///
/// Implement it to add an adapter of your own and run it with
/// [`Pipeline::transform`](crate::Pipeline::transform).
pub trait BatchOp<T>: Send + 'static {
    /// The records this op produces.
    type Out;

    /// Turns the records of one batch into the records passed on. An `Err` ends
    /// the run with that error, attributed to this stage.
    fn apply(&mut self, records: Vec<T>) -> Result<Vec<Self::Out>>;

    /// True once the op wants no more input (as [`Take`](super::Take) after its
    /// count): the stream then ends without polling upstream again.
    fn is_done(&self) -> bool {
        false
    }
}

/// The stream adapter that runs a [`BatchOp`] over every batch of its upstream.
///
/// Created by [`Pipeline::map_batch`](crate::Pipeline::map_batch),
/// [`take`](crate::Pipeline::take) and [`transform`](crate::Pipeline::transform).
/// Batches the op leaves empty are not passed on.
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Transform<S, Op> {
    #[pin]
    upstream: S,
    op: Op,
    stage: Arc<StageMetrics>,
    done: bool,
}

impl<S, Op> Transform<S, Op> {
    pub(crate) fn new(upstream: S, op: Op, stage: Arc<StageMetrics>) -> Self {
        Transform {
            upstream,
            op,
            stage,
            done: false,
        }
    }
}

impl<S, Op, T> Stream for Transform<S, Op>
where
    S: Stream<Item = Result<Batch<T>>>,
    Op: BatchOp<T>,
{
    type Item = Result<Batch<Op::Out>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            // An op that wants no input from the start (`take(0)`) must not read
            // a batch it would throw away.
            if *this.done || this.op.is_done() {
                *this.done = true;
                return Poll::Ready(None);
            }
            let batch = match ready!(this.upstream.as_mut().poll_next(cx)) {
                None => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(batch)) => batch,
            };
            let records_in = batch.len();
            this.stage.batch_in(records_in);
            let seq = batch.seq();
            let start = Instant::now();
            let op = &mut *this.op;
            let result = guard(this.stage, || op.apply(batch.into_records()));
            this.stage.busy_since(start);
            let records = match result.and_then(|r| r) {
                Ok(records) => records,
                Err(e) => {
                    // The op took the batch's records and gave none back: they
                    // are lost with the run.
                    this.stage.abandon(records_in);
                    *this.done = true;
                    return Poll::Ready(Some(Err(e.with_stage(this.stage.name()))));
                }
            };
            this.stage.balance(records_in, records.len());
            if !records.is_empty() {
                this.stage.batch_out(records.len());
                return Poll::Ready(Some(Ok(Batch::new(records).with_seq(seq))));
            }
        }
    }
}

impl<S, Op> fmt::Debug for Transform<S, Op> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("stage", &self.stage.name())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
