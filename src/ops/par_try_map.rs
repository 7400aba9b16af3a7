use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use pin_project::{pin_project, pinned_drop};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use super::fail;
use super::failure::{Failures, Outcome};
use super::par_workers::{Carry, Feed, Reply, Sent, Unit, poll_reply, serve};
use crate::metrics::StageMetrics;
use crate::runtime::LazyContext;
use crate::{Batch, BoxError, Error, Result};

/// Runs a fallible closure on each record on `n` worker threads, off the
/// async runtime's, passing results on **in input order** under the stage's
/// [`ErrorPolicy`](crate::ErrorPolicy).
///
/// The workers try every record of a unit; back in the stage, its failures
/// meet the policy in input order: skipped, dead-lettered, or the run ends;
/// a retried record goes back to the workers (ahead of the queue) after its
/// backoff, alone, and the output waits for it, keeping order, while the
/// workers go on with the units behind it. The closure sees the record by
/// reference: a failed record comes back with its error, to be retried,
/// dead-lettered or reported.
///
/// Created by [`Pipeline::par_try_map`](crate::Pipeline::par_try_map).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct ParTryMap<S, T, U, F> {
    #[pin]
    upstream: S,
    f: Arc<F>,
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    failures: Failures,
    feed: Feed<T, Tried<T, U>>,
    in_flight: VecDeque<Sent<Tried<T, U>>>,
    /// The unit whose results are being passed on.
    current: Option<Resolving<T, U>>,
    /// The stage's input index of the next unit's first record.
    next_index: u64,
    /// What the batch being put together passes on.
    out: Vec<U>,
    /// Records of that batch that succeeded.
    accepted: usize,
    failed: bool,
}

/// What a worker made of a unit: the values of the records that succeeded,
/// in order, and those that failed, with their place in the unit.
pub(crate) struct Tried<T, U> {
    values: Vec<U>,
    failures: Vec<Failure<T>>,
}

struct Failure<T> {
    pos: usize,
    record: T,
    error: BoxError,
}

/// A unit whose results are being passed on.
struct Resolving<T, U> {
    /// The stage's input index of its first record.
    first: u64,
    len: usize,
    /// What the input batch carried, if this unit is its last.
    carry: Carry,
    values: std::vec::IntoIter<U>,
    failures: std::vec::IntoIter<Failure<T>>,
    /// Records passed on or put aside so far: the place of the next one.
    resolved: usize,
    /// The record at `resolved` while it is being retried.
    retry: Option<Retry<T, U>>,
}

enum Retry<T, U> {
    /// Waiting out the backoff.
    Waiting {
        record: T,
        attempts: u32,
        sleep: Pin<Box<Sleep>>,
    },
    /// Back with the workers.
    Running {
        attempts: u32,
        reply: Reply<Tried<T, U>>,
    },
}

impl<S, T, U, F> ParTryMap<S, T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
{
    pub(crate) fn new(upstream: S, workers: usize, f: F, stage: Arc<StageMetrics>) -> Self {
        ParTryMap {
            upstream,
            f: Arc::new(f),
            tasks: LazyContext::default(),
            stage,
            failures: Failures::default(),
            feed: Feed::new(workers, true),
            in_flight: VecDeque::new(),
            current: None,
            next_index: 0,
            out: Vec::new(),
            accepted: 0,
            failed: false,
        }
    }
}

/// Tries `f` on every record of a unit (on a worker).
fn try_records<T, U, E>(
    records: Vec<T>,
    stopped: &dyn Fn() -> bool,
    f: impl Fn(&T) -> Result<U, E>,
) -> Tried<T, U>
where
    E: Into<BoxError>,
{
    let mut values = Vec::with_capacity(records.len());
    let mut failures = Vec::new();
    for (pos, record) in records.into_iter().enumerate() {
        if stopped() {
            break;
        }
        match f(&record) {
            Ok(value) => values.push(value),
            Err(e) => failures.push(Failure {
                pos,
                record,
                error: e.into(),
            }),
        }
    }
    Tried { values, failures }
}

/// What to do after a failed record met the policy.
enum Next<T, U> {
    /// Put aside: go on with the next record.
    Dropped,
    /// Try it again.
    Retry(Retry<T, U>),
    /// End the run.
    Abort(Error),
}

impl<S, T, U, E, F> Stream for ParTryMap<S, T, U, F>
where
    S: Stream<Item = Result<Batch<T>>>,
    T: fmt::Debug + Send + 'static,
    U: Send + 'static,
    E: Into<BoxError>,
    F: Fn(&T) -> Result<U, E> + Send + Sync + 'static,
{
    type Item = Result<Batch<U>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        if !this.feed.pool.is_started() {
            let (workers, cost) = (this.feed.pool.workers(), this.feed.pool.cost());
            let (f, stage) = (this.f.clone(), this.stage.clone());
            this.feed.pool.start(this.tasks, move |_| {
                let (f, stage, cost) = (f.clone(), stage.clone(), cost.clone());
                move |unit| {
                    serve(&stage, &cost, workers, unit, |records, stopped| {
                        try_records(records, stopped, &*f)
                    })
                }
            });
        }
        loop {
            // A reject waits for room in the dead letters before the next
            // failure is handled.
            if let Err(e) = ready!(this.failures.poll_flush(cx)) {
                return fail(this.failed, e.with_stage(this.stage.name()));
            }
            let in_flight = &mut *this.in_flight;
            let filled = this.feed.poll_fill(
                this.upstream.as_mut(),
                cx,
                this.stage,
                in_flight.len(),
                |sent| in_flight.push_back(sent),
            );
            if let Err(e) = filled {
                return fail(this.failed, e);
            }
            let current = match this.current {
                Some(current) => current,
                None => {
                    let Some(head) = this.in_flight.front_mut() else {
                        if this.feed.upstream_done() {
                            this.feed.pool.close();
                            return Poll::Ready(None);
                        }
                        return Poll::Pending;
                    };
                    let result = ready!(poll_reply(&mut head.reply, cx, this.stage));
                    let head = this.in_flight.pop_front().expect("polled just above");
                    let tried = match result {
                        Ok(tried) => tried,
                        Err(e) => {
                            // The unit is lost with the run.
                            this.stage.abandon(head.len);
                            return fail(this.failed, e);
                        }
                    };
                    let first = *this.next_index;
                    *this.next_index += head.len as u64;
                    this.current.insert(Resolving {
                        first,
                        len: head.len,
                        carry: head.carry,
                        values: tried.values.into_iter(),
                        failures: tried.failures.into_iter(),
                        resolved: 0,
                        retry: None,
                    })
                }
            };
            // A record being retried holds back the rest.
            if let Some(retry) = &mut current.retry {
                let (failure, attempts) = match retry {
                    Retry::Waiting { sleep, .. } => {
                        ready!(sleep.as_mut().poll(cx));
                        let Some(Retry::Waiting {
                            record, attempts, ..
                        }) = current.retry.take()
                        else {
                            unreachable!("matched above")
                        };
                        current.retry = Some(resubmit(this.feed, record, attempts));
                        continue;
                    }
                    Retry::Running { attempts, reply } => {
                        let attempts = *attempts;
                        // A panic here leaves the record unresolved: it is
                        // counted as abandoned when the stage is dropped.
                        let tried = match ready!(poll_reply(reply, cx, this.stage)) {
                            Ok(tried) => tried,
                            Err(e) => return fail(this.failed, e),
                        };
                        current.retry = None;
                        if let Some(value) = tried.values.into_iter().next() {
                            this.out.push(value);
                            *this.accepted += 1;
                            current.resolved += 1;
                            continue;
                        }
                        let failure = tried
                            .failures
                            .into_iter()
                            .next()
                            .expect("a tried record either succeeds or fails");
                        (failure, attempts)
                    }
                };
                let index = current.first + current.resolved as u64;
                match handle(
                    this.failures,
                    this.stage,
                    this.feed,
                    failure,
                    attempts + 1,
                    index,
                ) {
                    Next::Dropped => current.resolved += 1,
                    Next::Retry(retry) => current.retry = Some(retry),
                    Next::Abort(e) => return fail(this.failed, e),
                }
                continue;
            }
            // Pass on the successes up to the next failure, then let the
            // policy have it.
            if let Some(failure) = current.failures.next() {
                let ok = failure.pos - current.resolved;
                this.out.extend(current.values.by_ref().take(ok));
                *this.accepted += ok;
                current.resolved = failure.pos;
                let index = current.first + failure.pos as u64;
                match handle(this.failures, this.stage, this.feed, failure, 1, index) {
                    Next::Dropped => current.resolved += 1,
                    Next::Retry(retry) => current.retry = Some(retry),
                    Next::Abort(e) => return fail(this.failed, e),
                }
                continue;
            }
            let rest = current.len - current.resolved;
            this.out.extend(current.values.by_ref());
            *this.accepted += rest;
            let carry = this.current.take().expect("resolved above").carry;
            if let Carry::Batch(meta) = carry {
                let records = std::mem::take(this.out);
                this.stage
                    .balance(std::mem::take(this.accepted), records.len());
                if !records.is_empty() {
                    this.stage.batch_out(records.len());
                    // The lease scaled to the records that went on.
                    return Poll::Ready(Some(Ok(Batch::from_parts(records, meta))));
                }
            }
        }
    }
}

/// Sends a record back to the workers for another attempt, ahead of the
/// queue: the output waits for it.
fn resubmit<T, U>(feed: &Feed<T, Tried<T, U>>, record: T, attempts: u32) -> Retry<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
{
    let (reply, receiver) = oneshot::channel();
    let unit = Unit {
        records: vec![record],
        reply,
    };
    feed.pool.push(0, unit, true);
    Retry::Running {
        attempts,
        reply: receiver,
    }
}

/// A record failed its `attempts`-th attempt: what the policy says.
fn handle<T, U>(
    failures: &mut Failures,
    stage: &StageMetrics,
    feed: &Feed<T, Tried<T, U>>,
    failure: Failure<T>,
    attempts: u32,
    index: u64,
) -> Next<T, U>
where
    T: fmt::Debug + Send + 'static,
    U: Send + 'static,
{
    let Failure { record, error, .. } = failure;
    let error = Error::from_user(error).or_at_record(index);
    match failures.handle(stage, error, attempts, true, || Some(format!("{record:?}"))) {
        Outcome::Dropped => Next::Dropped,
        Outcome::Abort(e) => Next::Abort(e),
        Outcome::Retry(delay) if delay == Duration::ZERO => {
            Next::Retry(resubmit(feed, record, attempts))
        }
        Outcome::Retry(delay) => Next::Retry(Retry::Waiting {
            record,
            attempts,
            sleep: Box::pin(tokio::time::sleep(delay)),
        }),
    }
}

#[pinned_drop]
impl<S, T, U, F> PinnedDrop for ParTryMap<S, T, U, F> {
    fn drop(self: Pin<&mut Self>) {
        // Units not yet resolved, the records of the one being resolved not
        // yet passed on or put aside (one being retried among them), and
        // the successes of a batch not yet passed on.
        let this = self.project();
        let queued: usize = this.in_flight.iter().map(|u| u.len).sum();
        let current = this.current.as_ref().map_or(0, |c| c.len - c.resolved);
        this.stage.abandon(queued + current + this.out.len());
        // Before upstream goes: nobody waits for these any more.
        this.feed.pool.close();
        this.in_flight.clear();
        *this.current = None;
    }
}

impl<S, T, U, F> fmt::Debug for ParTryMap<S, T, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParTryMap")
            .field("stage", &self.stage.name())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
