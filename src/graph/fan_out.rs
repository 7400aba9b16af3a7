//! The one mechanism behind every fan-out (`tee`, `partition`, `route`): a
//! driver that reads the upstream and hands each output its share of every
//! batch through a bounded channel, and the [`Branch`] stream each output is
//! read from.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use futures::Stream;
use futures::future::poll_fn;

use crate::metrics::{StageMetrics, Wait, WaitFor};
use crate::ops::failure::{Failures, Outcome};
use crate::runtime::{Depth, Giver, Taker, handoff};
use crate::{Batch, Error, Result};

/// Batches a branch's channel holds before its fan-out waits for room.
pub(crate) const BRANCH_CAPACITY: usize = 4;

/// One output of a fan-out: the batches its driver hands it, in order.
///
/// Ends when the fan-out's upstream ends. Dropped (its branch ended early or
/// was abandoned), the batches still queued count as the fan-out's
/// `abandoned`, and the fan-out stops handing it any.
///
/// Made by [`Pipeline::tee`](crate::Pipeline::tee),
/// [`partition`](crate::Pipeline::partition) and
/// [`route`](crate::Pipeline::route).
#[must_use = "streams do nothing unless polled"]
pub struct Branch<T> {
    taker: Taker<Batch<T>>,
    stage: Arc<StageMetrics>,
    /// Where the driver of an isolated fan-out leaves the error it stopped
    /// on: its branches end with it rather than as if the data had ended.
    failed: Option<Arc<Failed>>,
    /// How full each channel of its fan-out is: after each batch taken, the
    /// fullest is the stage's queue depth.
    depths: Arc<[Depth]>,
}

/// The error an isolated fan-out's driver stopped on: the first branch to
/// end takes it, the others its text.
#[derive(Default)]
pub(crate) struct Failed(Mutex<Option<(Option<Error>, String)>>);

impl Failed {
    fn take(&self) -> Option<Error> {
        let mut failed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (error, text) = failed.as_mut()?;
        Some(error.take().unwrap_or_else(|| Error::msg(text.clone())))
    }
}

impl<T> Branch<T> {
    pub(crate) fn new(taker: Taker<Batch<T>>, stage: Arc<StageMetrics>) -> Self {
        Branch {
            depths: Arc::new([taker.depth()]),
            taker,
            stage,
            failed: None,
        }
    }
}

impl<T> Stream for Branch<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(batch) = ready!(self.taker.poll_take(cx)) else {
            let failed = self.failed.take().and_then(|f| f.take());
            return Poll::Ready(failed.map(Err));
        };
        let depth = self.depths.iter().map(Depth::get).max().unwrap_or(0);
        self.stage.set_queue_depth(depth as u64);
        self.stage.batch_out(batch.len());
        Poll::Ready(Some(Ok(batch)))
    }
}

impl<T> Drop for Branch<T> {
    fn drop(&mut self) {
        for batch in self.taker.close() {
            self.stage.abandon(batch.len());
        }
    }
}

impl<T> fmt::Debug for Branch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Branch")
            .field("stage", &self.stage.name())
            .finish_non_exhaustive()
    }
}

/// How a fan-out shares out one batch: `outputs[i]` receives what output `i`
/// gets (left `None` for nothing); records that can go nowhere (a route's key
/// out of range) are pushed on `rejects` with their error and text, for the
/// stage's policy.
pub(crate) trait Split<T>: Send + 'static {
    fn split(
        &mut self,
        batch: Batch<T>,
        outputs: &mut [Option<Batch<T>>],
        rejects: &mut Vec<(Error, Option<String>)>,
    );
}

/// Makes `n` outputs and the driver feeding them from `upstream`, sharing
/// out every batch with `split`. In an `isolated` branch, the driver's
/// failure ends its outputs with the error (so they fail, alone), not the run.
pub(crate) fn fan_out<S, T, P>(
    upstream: S,
    n: usize,
    split: P,
    stage: Arc<StageMetrics>,
    isolated: bool,
) -> (
    Vec<Branch<T>>,
    impl Future<Output = Result<()>> + Send + 'static,
)
where
    S: Stream<Item = Result<Batch<T>>> + Send + 'static,
    T: Send + 'static,
    P: Split<T>,
{
    let failed = isolated.then(|| Arc::new(Failed::default()));
    let (givers, takers): (Vec<_>, Vec<_>) = (0..n).map(|_| handoff(BRANCH_CAPACITY)).unzip();
    let depths: Arc<[Depth]> = takers.iter().map(Taker::depth).collect();
    let branches = takers
        .into_iter()
        .map(|taker| Branch {
            taker,
            stage: stage.clone(),
            failed: failed.clone(),
            depths: depths.clone(),
        })
        .collect();
    (branches, drive(upstream, givers, split, stage, failed))
}

/// The outputs of one batch not yet handed over, and its failed records
/// not yet handed to the policy: counted as abandoned if the driver is
/// dropped (the run failed or was cancelled) with them in hand.
struct InHand<'a, T> {
    outputs: Vec<Option<Batch<T>>>,
    rejects: usize,
    stage: &'a StageMetrics,
}

impl<T> Drop for InHand<'_, T> {
    fn drop(&mut self) {
        for batch in self.outputs.iter_mut().filter_map(Option::take) {
            self.stage.abandon(batch.len());
        }
        self.stage.abandon(self.rejects);
    }
}

async fn drive<S, T, P>(
    upstream: S,
    givers: Vec<Giver<Batch<T>>>,
    split: P,
    stage: Arc<StageMetrics>,
    failed: Option<Arc<Failed>>,
) -> Result<()>
where
    S: Stream<Item = Result<Batch<T>>>,
    P: Split<T>,
{
    let mut givers: Vec<Option<Giver<Batch<T>>>> = givers.into_iter().map(Some).collect();
    let result = drive_batches(upstream, &mut givers, split, stage).await;
    match (result, failed) {
        (Err(e), Some(failed)) => {
            // Left for the branches before they see their channels end.
            let text = e.to_string();
            *failed.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Some(e), text));
            Ok(())
        }
        (result, _) => result,
    }
}

/// Reads the upstream and shares out its batches until it ends, fails or
/// every branch is gone.
///
/// Its waits count on the fan-out's stage: for the upstream (`waiting`), for
/// room in a branch's channel (`blocked`); the most batches queued in any
/// branch's channel is its queue depth, set per batch shared out.
async fn drive_batches<S, T, P>(
    upstream: S,
    givers: &mut [Option<Giver<Batch<T>>>],
    mut split: P,
    stage: Arc<StageMetrics>,
) -> Result<()>
where
    S: Stream<Item = Result<Batch<T>>>,
    P: Split<T>,
{
    let mut upstream = pin!(upstream);
    let mut failures = Failures::default();
    let mut rejects = Vec::new();
    let mut in_hand = InHand {
        outputs: (0..givers.len()).map(|_| None).collect(),
        rejects: 0,
        stage: &stage,
    };
    let mut input = Wait::new(&stage, WaitFor::Input);
    let mut room = Wait::new(&stage, WaitFor::Room);
    loop {
        if givers.iter().all(Option::is_none) {
            // Every branch ended early (a `take` in each): read no further.
            return Ok(());
        }
        let next = poll_fn(|cx| {
            // Stages catch panics in user code themselves; this catches one
            // from a hand-written upstream stream, so it cannot pass for a
            // clean end of the data.
            match catch_unwind(AssertUnwindSafe(|| upstream.as_mut().poll_next(cx))) {
                Ok(Poll::Pending) => {
                    input.pending();
                    // Nothing more at hand: what is queued goes now.
                    givers.iter().flatten().for_each(Giver::flush);
                    Poll::Pending
                }
                Ok(Poll::Ready(item)) => Poll::Ready(Ok(item)),
                Err(payload) => Poll::Ready(Err(Error::panic(payload).with_stage(stage.name()))),
            }
        })
        .await;
        input.ready();
        let next = next?;
        let batch = match next {
            None => return Ok(()),
            Some(Err(e)) => return Err(e),
            Some(Ok(batch)) => batch,
        };
        let len = batch.len();
        stage.batch_in(len);
        // The split runs user code (a route's key, a partition's predicate):
        // a panic there fails the run naming the stage, its batch abandoned.
        let outputs = &mut in_hand.outputs;
        let split_one = || split.split(batch, outputs, &mut rejects);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(split_one)) {
            in_hand.outputs.iter_mut().for_each(|o| drop(o.take()));
            rejects.clear();
            stage.abandon(len);
            return Err(Error::panic(payload).with_stage(stage.name()));
        }
        let out: usize = in_hand.outputs.iter().flatten().map(|b| b.len()).sum();
        // Copies made (a tee): counted as the stage's expansion.
        stage.expand((out + rejects.len()).saturating_sub(len));
        let failed = std::mem::take(&mut rejects);
        // Those not yet handled (the run may end meanwhile, while a dead
        // letter waits for room) are abandoned with the batch's outputs.
        in_hand.rejects = failed.len();
        for (error, text) in failed {
            in_hand.rejects -= 1;
            match failures.handle(&stage, error, 1, false, || text) {
                Outcome::Dropped => poll_fn(|cx| failures.poll_flush(cx))
                    .await
                    .map_err(|e| e.with_stage(stage.name()))?,
                Outcome::Abort(e) => {
                    // The record goes nowhere: the run ends on it, and on
                    // the failed records after it (abandoned in hand).
                    stage.abandon(1);
                    return Err(e);
                }
                Outcome::Retry(_) => unreachable!("a split is not retried"),
            }
        }
        for (output, giver) in in_hand.outputs.iter_mut().zip(givers.iter_mut()) {
            let Some(batch) = output.as_ref() else {
                continue;
            };
            let len = batch.len();
            let given = match giver {
                None => false,
                Some(g) => {
                    let given = poll_fn(|cx| {
                        // Spend tokio's cooperative budget as a channel send
                        // would, so an always-ready upstream cannot keep this
                        // task from yielding.
                        let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
                            g.flush();
                            return Poll::Pending;
                        };
                        let Poll::Ready(given) = g.poll_give(cx, output) else {
                            room.pending();
                            return Poll::Pending;
                        };
                        coop.made_progress();
                        Poll::Ready(given)
                    })
                    .await;
                    room.ready();
                    given.is_ok()
                }
            };
            if !given {
                // The branch is gone (it ended early, or an isolated branch
                // failed): what it would have had is abandoned here.
                *giver = None;
                output.take();
                stage.abandon(len);
            }
        }
        let depth = givers.iter().flatten().map(Giver::len).max().unwrap_or(0);
        stage.set_queue_depth(depth as u64);
    }
}
