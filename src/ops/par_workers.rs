//! The workers behind the parallel stages (`par_map`, `par_map_unordered`,
//! `par_try_map`, `par_map_keyed`): what they share, in one place.
//!
//! - **Threads.** A stage's `n` workers are tasks on tokio's blocking pool,
//!   run through the run's context (the run waits for them before it
//!   returns: nothing outlives `run()`), at work while their queue has jobs
//!   (see [`Pool`]). Off the async worker threads, a CPU-heavy closure cannot
//!   starve the stages and sinks that share them; at most `n` at work per
//!   stage whatever the blocking pool's own limit; a worker takes its next
//!   unit from the queue without a round trip through the stage's task, so
//!   it stops only when the queue is empty.
//! - **Work unit.** A batch, or a slice of one ([`Feed`] splits a batch only
//!   while workers are idle: at the start, or behind a slow source), handed
//!   over once per unit, not per record: one queue push and one `oneshot`
//!   reply per unit.
//! - **Bound.** At most [`UNITS_PER_WORKER`] units per worker are in flight
//!   (queued, being worked on, or done and waiting for an earlier one), each
//!   at most one input batch; the stage takes no input beyond that, so
//!   backpressure from downstream reaches the source.
//! - **Stopping.** A worker checks, before each record, whether anybody
//!   still waits for its unit (the reply's receiver is alive): when the stage
//!   is dropped (the run failed, was cancelled or aborted), its workers stop
//!   within one record and leave; the stage's queues are closed then too.
//! - **Panics** in user code become an error naming the stage, sent back as
//!   the unit's reply.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::oneshot;

use super::guard;
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::runtime::{Lease, RunContext};
use crate::{Batch, Error, Result};

/// Units of work in flight per worker: one being worked on, one waiting, so
/// a worker that finishes finds its next unit ready.
pub(crate) const UNITS_PER_WORKER: usize = 2;

/// The fewest records in a slice when a batch is split for idle workers.
pub(crate) const MIN_SLICE: usize = 64;

/// The least work (as measured so far, per record) a slice must hold for a
/// batch to be split: a hand-off costs about 20 µs of CPU here (wake-ups,
/// the reply; `benches/par_map.rs` at batches of 64), so a slice of less
/// work would cost more than it saves (the CSV job's cheap `par_map` went
/// from 0.77x to 0.98x of `map` without the split).
const SPLIT_WORTH_NANOS: f64 = 300_000.0;

/// The time the workers spent per record so far, for deciding whether a
/// batch is worth splitting.
#[derive(Debug, Default)]
pub(crate) struct Cost {
    nanos: AtomicU64,
    records: AtomicU64,
}

impl Cost {
    fn add(&self, records: usize, nanos: u64) {
        self.nanos.fetch_add(nanos, Relaxed);
        self.records.fetch_add(records as u64, Relaxed);
    }

    /// Nanoseconds per record so far; `None` before any record was done.
    fn per_record(&self) -> Option<f64> {
        let records = self.records.load(Relaxed);
        (records > 0).then(|| self.nanos.load(Relaxed) as f64 / records as f64)
    }
}

/// A unit of work: records to process, and where the result goes.
pub(crate) struct Unit<T, R> {
    pub(crate) records: Vec<T>,
    pub(crate) reply: oneshot::Sender<Result<R>>,
}

/// Where the result of a unit arrives.
pub(crate) type Reply<R> = oneshot::Receiver<Result<R>>;

/// A unit handed to the workers, as its stage keeps track of it.
pub(crate) struct Sent<R> {
    pub(crate) reply: Reply<R>,
    /// Records in the unit.
    pub(crate) len: usize,
    /// The sequence number of the batch it came from.
    pub(crate) seq: u64,
    /// What the batch carried that goes on with the unit's results.
    pub(crate) carry: Carry,
}

/// What an input batch carries besides its records (its sequence number, its
/// share of the run's byte budget) and how it travels with a unit: the bytes
/// stay leased while the records, then their results, are in the stage.
pub(crate) enum Carry {
    /// All of it: the unit is the whole batch, or the last slice of one
    /// its stage puts back together (the batch made of the results gets it,
    /// the lease scaled to them).
    Batch(Meta),
    /// A slice's share of the batch's lease, for a stage that passes the
    /// slice on alone.
    Share(Option<Lease>),
    /// Nothing: an earlier slice of a batch its stage puts back together.
    Nothing,
}

impl Carry {
    /// The batch of a unit's `records` passed on alone.
    pub(crate) fn into_batch<U>(self, records: Vec<U>, seq: u64) -> Batch<U> {
        match self {
            Carry::Batch(meta) => Batch::from_parts(records, meta),
            Carry::Share(lease) => Batch::with_lease(records, seq, lease),
            Carry::Nothing => Batch::with_lease(records, seq, None),
        }
    }
}

/// Polls a unit's reply. A reply that never comes (its worker left without
/// answering, which the workers never do while the stage lives) is an error
/// naming the stage rather than a hang.
pub(crate) fn poll_reply<R>(
    reply: &mut Reply<R>,
    cx: &mut Context<'_>,
    stage: &StageMetrics,
) -> Poll<Result<R>> {
    Pin::new(reply).poll(cx).map(|r| {
        r.unwrap_or_else(|_| {
            Err(Error::msg("a worker of the stage stopped without a result")
                .with_stage(stage.name()))
        })
    })
}

/// How long a worker that finds its queue empty waits for a job before it
/// leaves: long enough for the next batch of a steady flow (starting a
/// worker again costs more than waking one), short enough that an idle
/// stage holds no thread, and that paused time in tests, which stands
/// still while a worker is at work, moves on almost at once.
const LINGER: Duration = Duration::from_millis(2);

/// A queue of jobs and the workers taking them: the stage pushes (never more
/// than its bound, so this is not an unbounded edge) and starts a worker
/// when fewer than the queue's share are at work; a worker that finds the
/// queue empty for [`LINGER`] leaves. Both under one lock, so no job is left
/// without one.
struct Jobs<J> {
    state: Mutex<JobsState<J>>,
    ready: Condvar,
}

struct JobsState<J> {
    queue: VecDeque<J>,
    /// Workers at work on this queue (or lingering).
    alive: usize,
    closed: bool,
}

impl<J> Jobs<J> {
    fn new() -> Self {
        Jobs {
            state: Mutex::new(JobsState {
                queue: VecDeque::new(),
                alive: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, JobsState<J>> {
        // Every update is a single push, pop or count: consistent after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`; true if a worker is to be started for it (fewer than
    /// `workers` are at work: counted as one from now), else one waiting is
    /// woken.
    fn push(&self, job: J, front: bool, workers: usize) -> bool {
        let mut state = self.lock();
        if front {
            state.queue.push_front(job);
        } else {
            state.queue.push_back(job);
        }
        let start = state.alive < workers;
        state.alive += usize::from(start);
        drop(state);
        if !start {
            self.ready.notify_one();
        }
        start
    }

    /// The next job, waiting up to `linger` for one; `None` when none came
    /// (or the queue is closed): the worker then leaves, counted out.
    fn pop_or_leave(&self, linger: Duration) -> Option<J> {
        let mut state = self.lock();
        let mut deadline = None;
        loop {
            if state.closed {
                break;
            }
            if let Some(job) = state.queue.pop_front() {
                return Some(job);
            }
            let now = Instant::now();
            let until = *deadline.get_or_insert(now + linger);
            if now >= until {
                break;
            }
            state = self
                .ready
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.alive -= 1;
        None
    }

    /// Closes the queue: workers leave after the job in hand; queued jobs
    /// are dropped here (their replies with them).
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let queued = std::mem::take(&mut state.queue);
        drop(state);
        self.ready.notify_all();
        drop(queued);
    }
}

/// Starts one worker on queue `q`.
type Starter = Box<dyn Fn(usize) + Send>;

/// A stage's workers and their queues: one queue shared by up to `n`
/// workers ([`shared`](Pool::shared)), or `n` queues of one worker each
/// ([`lanes`](Pool::lanes)). Dropping it closes the queues.
///
/// Workers are tasks on tokio's blocking pool, run through the run's
/// context (so the run waits for them before it returns: nothing outlives
/// `run()`), and at work only while their queue has jobs: a worker that
/// finds it empty for [`LINGER`] leaves, and the next push starts one again.
/// That way a worker never holds a thread for long for nothing, and paused
/// time (tokio's `test-util`), which does not auto-advance while a blocking
/// task runs, advances as soon as the work is done.
pub(crate) struct Pool<J> {
    queues: Vec<Arc<Jobs<J>>>,
    workers: usize,
    /// Workers per queue at most.
    per_queue: usize,
    starter: Option<Starter>,
    /// Jobs pushed and not yet finished by a worker (a gauge for splitting).
    unfinished: Arc<AtomicUsize>,
    cost: Arc<Cost>,
}

impl<J: Send + 'static> Pool<J> {
    /// `n` workers taking jobs from one queue.
    pub(crate) fn shared(n: usize) -> Self {
        Self::new(n, 1, n)
    }

    /// `n` workers, each with a queue of its own.
    pub(crate) fn lanes(n: usize) -> Self {
        Self::new(n, n, 1)
    }

    fn new(workers: usize, queues: usize, per_queue: usize) -> Self {
        Pool {
            queues: (0..queues).map(|_| Arc::new(Jobs::new())).collect(),
            workers,
            per_queue,
            starter: None,
            unfinished: Arc::default(),
            cost: Arc::default(),
        }
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    pub(crate) fn is_started(&self) -> bool {
        self.starter.is_some()
    }

    /// The workers' time per record, for [`serve`] to count into.
    pub(crate) fn cost(&self) -> Arc<Cost> {
        self.cost.clone()
    }

    /// Readies the pool: a worker on queue `q` runs `worker(q)` on each job
    /// it takes, on the run's blocking threads.
    pub(crate) fn start<W>(
        &mut self,
        tasks: &RunContext,
        worker: impl Fn(usize) -> W + Send + 'static,
    ) where
        W: FnMut(J) + Send + 'static,
    {
        let (queues, unfinished, tasks) =
            (self.queues.clone(), self.unfinished.clone(), tasks.clone());
        self.starter = Some(Box::new(move |q| {
            let (queue, unfinished, mut work) = (queues[q].clone(), unfinished.clone(), worker(q));
            // Not awaited: the run's task set waits for it.
            drop(tasks.spawn_blocking(move || {
                while let Some(job) = queue.pop_or_leave(LINGER) {
                    work(job);
                    unfinished.fetch_sub(1, Relaxed);
                }
            }));
        }));
    }

    /// Queues `job` for the workers of `queue` (0 for a shared pool), behind
    /// the others or, `front`, before them (a record the output waits for),
    /// starting a worker for it if the queue has fewer than its share.
    pub(crate) fn push(&self, queue: usize, job: J, front: bool) {
        self.unfinished.fetch_add(1, Relaxed);
        if self.queues[queue].push(job, front, self.per_queue) {
            let start = self.starter.as_ref().expect("a pool is started before use");
            start(queue);
        }
    }

    /// Workers with nothing to do, about.
    pub(crate) fn idle(&self) -> usize {
        self.workers.saturating_sub(self.unfinished.load(Relaxed))
    }
}

impl<J> Pool<J> {
    /// Closes the queues: the workers leave once done with the record in hand.
    pub(crate) fn close(&self) {
        for queue in &self.queues {
            queue.close();
        }
    }
}

impl<J> Drop for Pool<J> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Runs `work` on a unit on a worker and sends back its result: a panic in
/// it becomes an error naming the stage. Skipped when nobody waits for the
/// result; `work` gets a check to call between records that says whether
/// anybody still does.
///
/// The time is counted as the stage's `busy` divided by `workers`, so a
/// stage whose workers were all busy all along shows as busy 100% of the
/// time, as a single-threaded stage would.
pub(crate) fn serve<T, R>(
    stage: &StageMetrics,
    cost: &Cost,
    workers: usize,
    unit: Unit<T, R>,
    work: impl FnOnce(Vec<T>, &dyn Fn() -> bool) -> R,
) {
    let Unit { records, reply } = unit;
    if reply.is_closed() {
        return;
    }
    let len = records.len();
    let start = Instant::now();
    let result = {
        let _span = stage.span().enter();
        guard(stage, || work(records, &|| reply.is_closed()))
    };
    let took = start.elapsed();
    cost.add(len, took.as_nanos() as u64);
    // This worker's share of the stage's time.
    stage.busy(took / workers.max(1) as u32);
    let _ = reply.send(result);
}

/// `f` over the records, in order, stopping early (with a partial result
/// nobody will read) once `stopped` says so.
pub(crate) fn map_records<T, U>(
    records: Vec<T>,
    stopped: &dyn Fn() -> bool,
    mut f: impl FnMut(T) -> U,
) -> Vec<U> {
    records
        .into_iter()
        .map_while(|r| (!stopped()).then(|| f(r)))
        .collect()
}

/// Splits `records` into `k` slices of near-equal length, in order.
fn split<T>(mut records: Vec<T>, k: usize) -> Vec<Vec<T>> {
    let len = records.len();
    let mut slices = Vec::with_capacity(k);
    // From the back, so each `split_off` moves only its own slice.
    for i in (1..k).rev() {
        slices.push(records.split_off(len * i / k));
    }
    slices.push(records);
    slices.reverse();
    slices
}

/// The input side of the stages on a shared pool (`par_map`,
/// `par_map_unordered`, `par_try_map`): takes batches from upstream while
/// there is room, cuts them into units, and queues them for the workers.
pub(crate) struct Feed<T, R> {
    pub(crate) pool: Pool<Unit<T, R>>,
    /// Whether the stage puts each batch back together from its slices
    /// (else each slice goes on alone, with its share of the lease).
    rejoin: bool,
    upstream_done: bool,
}

impl<T: Send + 'static, R: Send + 'static> Feed<T, R> {
    /// The feed of a stage that puts each batch back together from its
    /// slices (`rejoin`), or passes each slice on alone.
    pub(crate) fn new(workers: usize, rejoin: bool) -> Self {
        Feed {
            pool: Pool::shared(workers),
            rejoin,
            upstream_done: false,
        }
    }

    /// The most units in flight.
    pub(crate) fn limit(&self) -> usize {
        self.pool.workers() * UNITS_PER_WORKER
    }

    /// True once upstream has ended.
    pub(crate) fn upstream_done(&self) -> bool {
        self.upstream_done
    }

    /// How many slices to cut a batch of `len` records into. Whole batches
    /// keep every worker busy once the queue holds some: a batch is cut only
    /// for workers that would idle (at the start, behind a slow source, one
    /// huge batch), into slices of at least [`MIN_SLICE`] records and, once
    /// the workers' time per record is known, worth [`SPLIT_WORTH_NANOS`].
    fn slices(&self, len: usize, in_flight: usize) -> usize {
        let worth = match self.pool.cost.per_record() {
            Some(nanos) => (nanos * len as f64 / SPLIT_WORTH_NANOS) as usize,
            None => usize::MAX,
        };
        self.pool
            .idle()
            .min(self.limit() - in_flight)
            .min(len / MIN_SLICE)
            .min(worth)
            .max(1)
    }

    /// Takes batches from upstream while fewer than [`limit`](Feed::limit)
    /// units are in flight (`in_flight` now), queueing their units and
    /// passing each to `sent`. Returns when there is no room or upstream
    /// has nothing ready (it will wake the task) or has ended; `Err` when
    /// upstream failed.
    pub(crate) fn poll_fill<S>(
        &mut self,
        mut upstream: Pin<&mut S>,
        cx: &mut Context<'_>,
        stage: &StageMetrics,
        mut in_flight: usize,
        mut sent: impl FnMut(Sent<R>),
    ) -> Result<()>
    where
        S: Stream<Item = Result<Batch<T>>>,
    {
        while !self.upstream_done && in_flight < self.limit() {
            let batch = match upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => batch,
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(None) => {
                    self.upstream_done = true;
                    break;
                }
                Poll::Pending => break,
            };
            stage.batch_in(batch.len());
            if batch.is_empty() {
                continue;
            }
            let (total, seq) = (batch.len(), batch.seq());
            let k = self.slices(total, in_flight);
            let (records, mut meta) = batch.into_parts();
            let mut lease = if k > 1 && !self.rejoin {
                meta.take_lease()
            } else {
                None
            };
            let mut meta = Some(meta);
            let mut left = total;
            for (i, records) in split(records, k).into_iter().enumerate() {
                let (reply, receiver) = oneshot::channel();
                let len = records.len();
                let carry = match (k, self.rejoin) {
                    (1, _) => Carry::Batch(meta.take().expect("one slice")),
                    (_, true) if i + 1 == k => Carry::Batch(meta.take().expect("one last slice")),
                    (_, true) => Carry::Nothing,
                    (_, false) if i + 1 == k => Carry::Share(lease.take()),
                    (_, false) => Carry::Share(lease.as_mut().map(|l| l.split_records(len, left))),
                };
                left -= len;
                self.pool.push(0, Unit { records, reply }, false);
                sent(Sent {
                    reply: receiver,
                    len,
                    seq,
                    carry,
                });
                in_flight += 1;
            }
            stage.set_queue_depth(in_flight as u64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_order_and_sizes() {
        for len in [0usize, 1, 5, 64, 1000, 1024] {
            for k in 1..=5 {
                let slices = split((0..len).collect::<Vec<_>>(), k);
                assert_eq!(slices.len(), k);
                let lens: Vec<usize> = slices.iter().map(Vec::len).collect();
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(max - min <= 1, "{lens:?}");
                assert_eq!(slices.concat(), (0..len).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_worker_starts_for_a_job_when_fewer_than_allowed_are_at_work() {
        // (A worker waiting for a job is woken by the next push instead.)
        let jobs = Jobs::<Arc<()>>::new();
        let job = Arc::new(());
        assert!(jobs.push(job.clone(), false, 2), "none at work: start one");
        assert!(
            jobs.push(job.clone(), false, 2),
            "one at work: start another"
        );
        assert!(
            !jobs.push(job.clone(), false, 2),
            "two at work: they will take it"
        );
        let now = Duration::ZERO;
        assert!(jobs.pop_or_leave(now).is_some());
        assert!(jobs.pop_or_leave(now).is_some());
        assert!(jobs.pop_or_leave(now).is_some());
        // Empty: the first worker leaves; a new job starts one again.
        assert!(jobs.pop_or_leave(now).is_none());
        assert!(jobs.push(job.clone(), false, 2));
        // Closed: queued jobs dropped, workers leave.
        jobs.close();
        assert_eq!(Arc::strong_count(&job), 1);
        assert!(jobs.pop_or_leave(Duration::from_secs(60)).is_none());
        assert!(jobs.pop_or_leave(Duration::from_secs(60)).is_none());
        assert_eq!(jobs.lock().alive, 0);
    }
}
