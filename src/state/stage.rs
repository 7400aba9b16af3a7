//! The stream adapter every stateful operator runs in: its accounting, its
//! record errors under the stage's policy, its timers, its end of input and
//! its state limits, in one place.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use super::StateLimits;
use crate::metrics::StageMetrics;
use crate::metrics::clock;
use crate::ops::failure::{Failures, Outcome};
use crate::ops::guard;
use crate::runtime::OpTimer;
use crate::{Batch, Error, Result};

/// A record a stateful operator could not take: its error (record-level) and
/// text, for the stage's policy; `late` if it came behind the watermark
/// (skipped, it counts as `late`).
#[derive(Debug)]
pub(crate) struct Reject {
    pub(crate) error: Error,
    pub(crate) record: Option<String>,
    pub(crate) late: bool,
}

impl Reject {
    /// `record` (shown with `Debug`) failed with `error`.
    pub(crate) fn of(error: Error, record: &impl std::fmt::Debug) -> Reject {
        Reject {
            error,
            record: Some(format!("{record:?}")),
            late: false,
        }
    }
}

/// What a stateful stage reads at a time: a [`Batch`] of its one input, or
/// (a join) a batch of either of its two inputs, told apart once per batch.
pub(crate) trait Input {
    /// What the operator is handed: the batch's records.
    type Records;
    /// How many records.
    fn len(&self) -> usize;
    /// The batch's sequence number, given to what the operator emits for it.
    fn seq(&self) -> u64;
    /// The records, for the operator.
    fn into_records(self) -> Self::Records;
    /// Whether this is no batch but news about an input (one of two ended):
    /// not counted as a batch in.
    fn is_marker(&self) -> bool {
        false
    }
}

impl<T> Input for Batch<T> {
    type Records = Vec<T>;

    fn len(&self) -> usize {
        self.records().len()
    }

    fn seq(&self) -> u64 {
        Batch::seq(self)
    }

    fn into_records(self) -> Vec<T> {
        Batch::into_records(self)
    }
}

/// An operator that holds state across batches: an aggregate, a window, a
/// dedup, a join. `In` is what it is handed per batch: `Vec<T>` for an
/// operator of one input.
///
/// The adapter counts records in and out; the operator counts, on `stage`,
/// every other way a record leaves it: taken into its state (`absorb`),
/// dropped as a duplicate or for want of a match, and what it emits from its
/// state (`expand`). Records it cannot take go in `rejects`, for the stage's
/// policy.
pub(crate) trait StatefulOp<In>: Emits + Send + 'static {
    /// Takes one batch's records; pushes what goes on onto `out`.
    fn apply(
        &mut self,
        records: In,
        out: &mut Vec<Self::Out>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()>;

    /// The end of the input (the final watermark): lets out what the state
    /// still holds.
    fn finish(&mut self, out: &mut Vec<Self::Out>, stage: &StageMetrics) -> Result<()>;

    /// When [`on_timer`](StatefulOp::on_timer) is due next (Tokio's clock).
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// The time from `next_timer` has come.
    fn on_timer(
        &mut self,
        _now: tokio::time::Instant,
        _out: &mut Vec<Self::Out>,
        _stage: &StageMetrics,
    ) -> Result<()> {
        Ok(())
    }

    /// Keys and estimated bytes held now.
    fn state_size(&self) -> (u64, u64);
}

/// What a stateful operator emits: named apart from what it takes, so its
/// stage's type can name it. Implemented by the crate's stateful operators.
pub trait Emits {
    /// The records the operator emits.
    type Out: Send + 'static;
}

/// Runs a stateful operator over a stream; see the [`state`](crate::state)
/// module. Dropped before its end (a failed or cancelled run), what it was
/// about to pass on counts as abandoned; what its state held was counted
/// when it was taken in.
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct Stateful<S, Op: Emits> {
    #[pin]
    upstream: S,
    op: Op,
    stage: Arc<StageMetrics>,
    limits: StateLimits,
    failures: Failures,
    /// Rejects waiting for the policy, in order (dead letters may wait for
    /// room).
    rejects: Vec<Reject>,
    /// Output waiting for the rejects before it to be handled.
    pending: Option<Vec<<Op as Emits>::Out>>,
    timer: OpTimer,
    seq: u64,
    finished: bool,
    done: bool,
}

impl<S, Op: Emits> Stateful<S, Op> {
    pub(crate) fn new(upstream: S, op: Op, stage: Arc<StageMetrics>, limits: StateLimits) -> Self {
        Stateful {
            upstream,
            op,
            stage,
            limits,
            failures: Failures::default(),
            rejects: Vec::new(),
            pending: None,
            timer: OpTimer::default(),
            seq: 0,
            finished: false,
            done: false,
        }
    }
}

impl<S, Op, I> Stream for Stateful<S, Op>
where
    S: Stream<Item = Result<I>>,
    I: Input,
    Op: StatefulOp<I::Records>,
{
    type Item = Result<Batch<Op::Out>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            // Rejects first: each under the policy, in order, before more
            // input is read.
            while !this.rejects.is_empty() {
                if let Err(e) = ready!(this.failures.poll_flush(cx)) {
                    return fail(this.done, e.with_stage(this.stage.name()));
                }
                let reject = this.rejects.remove(0);
                let Reject {
                    error,
                    mut record,
                    late,
                } = reject;
                // The record's text goes with its error, so an abort names
                // the record too (a dead letter takes it from there).
                let error = match record.take() {
                    Some(text) if error.record_text().is_none() => error.with_record_text(text),
                    text => {
                        record = text;
                        error
                    }
                };
                match this
                    .failures
                    .handle_as(this.stage, error, 1, false, || record, late)
                {
                    Outcome::Dropped => {}
                    Outcome::Abort(e) => {
                        // The record goes nowhere, nor do those behind it.
                        this.stage.abandon(1 + this.rejects.len());
                        this.rejects.clear();
                        return fail(this.done, e);
                    }
                    Outcome::Retry(_) => unreachable!("a stateful stage does not retry"),
                }
            }
            if let Err(e) = ready!(this.failures.poll_flush(cx)) {
                return fail(this.done, e.with_stage(this.stage.name()));
            }
            if let Some(records) = this.pending.take() {
                this.stage.batch_out(records.len());
                return Poll::Ready(Some(Ok(Batch::new(records).with_seq(*this.seq))));
            }
            if *this.finished {
                *this.done = true;
                return Poll::Ready(None);
            }
            // The operator's timer.
            if this.timer.poll_due(this.op.next_timer(), cx) {
                let now = tokio::time::Instant::now();
                let mut out = Vec::new();
                let (op, stage) = (&mut *this.op, &**this.stage);
                let result = run(stage, || op.on_timer(now, &mut out, stage));
                if let Err(e) = settle(this.op, this.stage, this.limits, result) {
                    return fail(this.done, e);
                }
                if !out.is_empty() {
                    *this.pending = Some(out);
                }
                continue;
            }
            let batch = match ready!(this.upstream.as_mut().poll_next(cx)) {
                Some(Ok(batch)) => batch,
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    // The end of the input: the final watermark.
                    *this.finished = true;
                    let mut out = Vec::new();
                    let (op, stage) = (&mut *this.op, &**this.stage);
                    let result = run(stage, || op.finish(&mut out, stage));
                    if let Err(e) = settle(this.op, this.stage, this.limits, result) {
                        return fail(this.done, e);
                    }
                    if !out.is_empty() {
                        *this.pending = Some(out);
                    }
                    continue;
                }
            };
            if !batch.is_marker() {
                this.stage.batch_in(batch.len());
                *this.seq = batch.seq();
            }
            let mut out = Vec::new();
            let (op, stage, rejects) = (&mut *this.op, &**this.stage, &mut *this.rejects);
            let result = run(stage, || {
                op.apply(batch.into_records(), &mut out, rejects, stage)
            });
            if let Err(e) = settle(this.op, this.stage, this.limits, result) {
                // What the operator had not accounted for, and what it was
                // about to pass on, is lost with the run.
                let held = this.stage.snapshot().in_flight().max(0) as usize;
                this.stage.abandon(held);
                this.rejects.clear();
                return fail(this.done, e);
            }
            if !out.is_empty() {
                *this.pending = Some(out);
            }
        }
    }
}

/// Runs the operator's code, timing it and turning a panic into an error.
fn run(stage: &StageMetrics, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let _span = stage.span().enter();
    let start = clock::now();
    let result = guard(stage, f).and_then(|r| r);
    stage.busy_since(start);
    result
}

/// After a call: the state's size on the stage, checked against the limits.
fn settle<In, Op: StatefulOp<In>>(
    op: &Op,
    stage: &StageMetrics,
    limits: &StateLimits,
    result: Result<()>,
) -> Result<()> {
    let (keys, bytes) = op.state_size();
    stage.set_state(keys, bytes);
    result.map_err(|e| e.with_stage(stage.name()))?;
    limits.check(&stage.name(), keys, bytes)
}

fn fail<T>(done: &mut bool, error: Error) -> Poll<Option<Result<T>>> {
    *done = true;
    Poll::Ready(Some(Err(error)))
}

#[pinned_drop]
impl<S, Op: Emits> PinnedDrop for Stateful<S, Op> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let pending = this.pending.as_ref().map_or(0, Vec::len);
        this.stage.abandon(pending + this.rejects.len());
    }
}

impl<S, Op: Emits> fmt::Debug for Stateful<S, Op> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stateful")
            .field("stage", &self.stage.name())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
