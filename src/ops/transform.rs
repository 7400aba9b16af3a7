use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::pin_project;

use super::guard;
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::metrics::clock;
use crate::runtime::OpTimer;
use crate::{Batch, Result};

/// Work done on the records of one batch at a time: the body of a batch-level
/// adapter such as [`MapBatch`](super::MapBatch) or [`Take`](super::Take).
///
/// Implement it to add an adapter of your own and run it with
/// [`Pipeline::transform`](crate::Pipeline::transform). Besides `apply`, an op
/// may hold records across batches and let them out at the end of its input
/// ([`finish`](BatchOp::finish)) or when a time comes
/// ([`next_timer`](BatchOp::next_timer) / [`on_timer`](BatchOp::on_timer)).
///
/// Accounting: a batch's records in and out are balanced per call (fewer out
/// count as `filtered`, more as `expanded`), so records an op keeps count as
/// filtered when they go in and as expanded when `finish` or `on_timer` lets
/// them out.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::ops::BatchOp;
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// /// Sums records, emitting the sum every second and at the end of input.
/// struct Sum { total: u64, due: Option<Instant> }
/// impl BatchOp<u64> for Sum {
///     type Out = u64;
///     fn apply(&mut self, records: Vec<u64>) -> dataflare::Result<Vec<u64>> {
///         self.total += records.iter().sum::<u64>();
///         self.due.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
///         Ok(Vec::new())
///     }
///     fn next_timer(&self) -> Option<Instant> {
///         self.due
///     }
///     fn on_timer(&mut self, _now: Instant) -> dataflare::Result<Vec<u64>> {
///         self.due = None;
///         Ok(vec![std::mem::take(&mut self.total)])
///     }
///     fn finish(&mut self) -> dataflare::Result<Vec<u64>> {
///         Ok(vec![self.total])
///     }
/// }
///
/// let out = Collected::new();
/// Pipeline::from(source::iter(1..=4u64))
///     .transform(Sum { total: 0, due: None })
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![10]); // the input ended before the second
/// # Ok(()) }
/// ```
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

    /// Called once when the input has ended (or the op is done): the records
    /// returned are passed on as the last batch. What an op holding records
    /// across batches (an aggregate, a window) lets out at the end. Not called
    /// when the run fails or is cancelled.
    fn finish(&mut self) -> Result<Vec<Self::Out>> {
        Ok(Vec::new())
    }

    /// When [`on_timer`](BatchOp::on_timer) is to be called next (Tokio's
    /// clock, so paused time drives it in tests), or `None`. Asked after every
    /// call; while the time has not come, the stage waits for its input and
    /// for the time together.
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// Called when the time [`next_timer`](BatchOp::next_timer) gave has
    /// come; the records returned are passed on as a batch.
    fn on_timer(&mut self, now: tokio::time::Instant) -> Result<Vec<Self::Out>> {
        let _ = now;
        Ok(Vec::new())
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
    /// The op's timer, while it has one.
    timer: OpTimer,
    /// The input has ended and `finish` was called.
    finished: bool,
    /// The sequence number of the last batch in, for the batches the op
    /// emits on its own (timer, end of input).
    seq: u64,
    done: bool,
}

impl<S, Op> Transform<S, Op> {
    pub(crate) fn new(upstream: S, op: Op, stage: Arc<StageMetrics>) -> Self {
        Transform {
            upstream,
            op,
            stage,
            timer: OpTimer::default(),
            finished: false,
            seq: 0,
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
            if *this.done {
                return Poll::Ready(None);
            }
            // An op that wants no input from the start (`take(0)`) must not read
            // a batch it would throw away.
            if this.op.is_done() {
                let seq = *this.seq;
                return Poll::Ready(finish(this.op, this.stage, seq, this.finished, this.done));
            }
            if this.timer.poll_due(this.op.next_timer(), cx) {
                let op = &mut *this.op;
                let now = tokio::time::Instant::now();
                let start = clock::now();
                let result = guard(this.stage, || op.on_timer(now)).and_then(|r| r);
                this.stage.busy_since(start);
                match emit(this.stage, 0, result, Meta::fresh(*this.seq), this.done) {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => continue,
                }
            }
            let batch = match ready!(this.upstream.as_mut().poll_next(cx)) {
                None => {
                    let seq = *this.seq;
                    return Poll::Ready(finish(this.op, this.stage, seq, this.finished, this.done));
                }
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(batch)) => batch,
            };
            let records_in = batch.len();
            this.stage.batch_in(records_in);
            let (records, meta) = batch.into_parts();
            *this.seq = meta.seq;
            let start = clock::now();
            let op = &mut *this.op;
            let _span = this.stage.span().enter();
            let result = guard(this.stage, || op.apply(records)).and_then(|r| r);
            this.stage.busy_since(start);
            if let Some(item) = emit(this.stage, records_in, result, meta, this.done) {
                return Poll::Ready(Some(item));
            }
        }
    }
}

/// Counts and passes on what one call of the op gave for `records_in`
/// records: `None` when it gave nothing to pass on.
fn emit<U>(
    stage: &StageMetrics,
    records_in: usize,
    result: Result<Vec<U>>,
    meta: Meta,
    done: &mut bool,
) -> Option<Result<Batch<U>>> {
    match result {
        Ok(records) => {
            stage.balance(records_in, records.len());
            if records.is_empty() {
                return None;
            }
            stage.batch_out(records.len());
            Some(Ok(Batch::from_parts(records, meta)))
        }
        Err(e) => {
            // The op took the batch's records and gave none back: they are
            // lost with the run.
            stage.abandon(records_in);
            *done = true;
            Some(Err(e.with_stage(stage.name())))
        }
    }
}

/// The end of the input: the op's `finish` gives its last records, once.
fn finish<T, Op: BatchOp<T>>(
    op: &mut Op,
    stage: &StageMetrics,
    seq: u64,
    finished: &mut bool,
    done: &mut bool,
) -> Option<Result<Batch<Op::Out>>> {
    if std::mem::replace(finished, true) {
        *done = true;
        return None;
    }
    let start = clock::now();
    let result = guard(stage, || op.finish()).and_then(|r| r);
    stage.busy_since(start);
    let item = emit(stage, 0, result, Meta::fresh(seq), done);
    if item.is_none() {
        *done = true;
    }
    item
}

impl<S, Op> fmt::Debug for Transform<S, Op> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("stage", &self.stage.name())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
