use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};
use tokio::sync::oneshot;

use super::par_workers::{
    Carry, Pool, Sent, UNITS_PER_WORKER, Unit, map_records, poll_reply, serve,
};
use super::{fail, guard};
use crate::metrics::StageMetrics;
use crate::runtime::LazyContext;
use crate::{Batch, Result};

/// Runs a closure on each record in one of `n` lanes, each a worker thread
/// of its own off the async runtime's, chosen by a hash of the record's key:
/// records of one key go through one lane, one after the other, **in input
/// order**; records of different keys may pass each other.
///
/// Each batch is split by lane (the key is computed on the stage's task);
/// each lane works through its parts in order (one worker at a time), with a
/// copy of the closure of its own, and holds at most two parts; a batch
/// is taken in only when every lane has room. Each finished part goes on as
/// a batch of its own, with its share of the batch's budget lease (so output
/// batches are about `1/n` of the input's), the lanes taken in turn.
///
/// Created by [`Pipeline::par_map_keyed`](crate::Pipeline::par_map_keyed).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct ParMapKeyed<S, T, U, K, F> {
    #[pin]
    upstream: S,
    key: K,
    /// Copied into each lane when the lanes start.
    f: F,
    tasks: LazyContext,
    stage: Arc<StageMetrics>,
    pool: Pool<Unit<T, Vec<U>>>,
    /// Each lane's parts in flight, in input order.
    lanes: Vec<VecDeque<Sent<Vec<U>>>>,
    hasher: foldhash::fast::FixedState,
    /// The lane to look at first for a finished part.
    next_lane: usize,
    upstream_done: bool,
    failed: bool,
}

impl<S, T, U, K, F> ParMapKeyed<S, T, U, K, F>
where
    T: Send + 'static,
    U: Send + 'static,
{
    pub(crate) fn new(upstream: S, lanes: usize, key: K, f: F, stage: Arc<StageMetrics>) -> Self {
        ParMapKeyed {
            upstream,
            key,
            f,
            tasks: LazyContext::default(),
            stage,
            pool: Pool::lanes(lanes),
            lanes: (0..lanes).map(|_| VecDeque::new()).collect(),
            // Fixed, so a key goes to the same lane in every run.
            hasher: foldhash::fast::FixedState::default(),
            next_lane: 0,
            upstream_done: false,
            failed: false,
        }
    }
}

impl<S, T, U, H, K, F> Stream for ParMapKeyed<S, T, U, K, F>
where
    S: Stream<Item = Result<Batch<T>>>,
    T: Send + 'static,
    U: Send + 'static,
    H: Hash,
    K: FnMut(&T) -> H,
    F: FnMut(T) -> U + Clone + Send + 'static,
{
    type Item = Result<Batch<U>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        let n = this.lanes.len();
        if !this.pool.is_started() {
            // Each lane's copy of the closure, kept across the lane's workers
            // (one at a time: a lane's worker leaves when its queue is empty).
            let copies: Vec<Arc<Mutex<F>>> = (0..n)
                .map(|_| Arc::new(Mutex::new(this.f.clone())))
                .collect();
            let (stage, cost) = (this.stage.clone(), this.pool.cost());
            this.pool.start(this.tasks, move |lane| {
                let (f, stage, cost) = (copies[lane].clone(), stage.clone(), cost.clone());
                move |unit| {
                    // Never contended; poisoned only by a panic that fails the run.
                    let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                    serve(&stage, &cost, n, unit, |records, stopped| {
                        map_records(records, stopped, &mut *f)
                    })
                }
            });
        }
        // Take batches while every lane has room for one more part.
        while !*this.upstream_done && this.lanes.iter().all(|l| l.len() < UNITS_PER_WORKER) {
            let batch = match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => batch,
                Poll::Ready(Some(Err(e))) => return fail(this.failed, e),
                Poll::Ready(None) => {
                    *this.upstream_done = true;
                    break;
                }
                Poll::Pending => break,
            };
            let len = batch.len();
            this.stage.batch_in(len);
            if len == 0 {
                continue;
            }
            let seq = batch.seq();
            let (records, mut meta) = batch.into_parts();
            // Each lane's part takes its share of the batch's lease.
            let mut lease = meta.take_lease();
            let (key, hasher) = (&mut *this.key, &*this.hasher);
            let mut parts: Vec<Vec<T>> = (0..n).map(|_| Vec::with_capacity(len / n + 1)).collect();
            let routed = guard(this.stage, || {
                for record in records {
                    let hash = hasher.hash_one(key(&record));
                    // Multiply-shift: the hash's high bits pick the lane.
                    let lane = ((u128::from(hash) * n as u128) >> 64) as usize;
                    parts[lane].push(record);
                }
            });
            if let Err(e) = routed {
                // The key panicked: the batch is lost with the run.
                this.stage.abandon(len);
                return fail(this.failed, e);
            }
            let mut left = len;
            for (lane, records) in parts.into_iter().enumerate() {
                if records.is_empty() {
                    continue;
                }
                let (reply, receiver) = oneshot::channel();
                let part = records.len();
                // The last part takes what is left (`part == left`).
                let share = lease.as_mut().map(|l| l.split_records(part, left));
                left -= part;
                this.pool.push(lane, Unit { records, reply }, false);
                this.lanes[lane].push_back(Sent {
                    reply: receiver,
                    len: part,
                    seq,
                    carry: Carry::Share(share),
                });
            }
            let parts: usize = this.lanes.iter().map(VecDeque::len).sum();
            this.stage.set_queue_depth(parts as u64);
        }
        // Pass on a part some lane has finished, each as a batch of its own
        // with its share of the budget: a lane's parts in order, so each
        // key's records stay in order; the lanes in turn, from the one after
        // the last passed on.
        for i in 0..n {
            let lane = (*this.next_lane + i) % n;
            let Some(head) = this.lanes[lane].front_mut() else {
                continue;
            };
            let Poll::Ready(result) = poll_reply(&mut head.reply, cx, this.stage) else {
                continue;
            };
            let head = this.lanes[lane].pop_front().expect("polled just above");
            let values = match result {
                Ok(values) => values,
                Err(e) => {
                    // The part is lost with the run.
                    this.stage.abandon(head.len);
                    return fail(this.failed, e);
                }
            };
            *this.next_lane = (lane + 1) % n;
            this.stage.batch_out(values.len());
            return Poll::Ready(Some(Ok(head.carry.into_batch(values, head.seq))));
        }
        if *this.upstream_done && this.lanes.iter().all(VecDeque::is_empty) {
            this.pool.close();
            return Poll::Ready(None);
        }
        // Every lane with parts in flight will wake us, and so will
        // upstream if it was polled (when no lane has parts, it was).
        Poll::Pending
    }
}

#[pinned_drop]
impl<S, T, U, K, F> PinnedDrop for ParMapKeyed<S, T, U, K, F> {
    fn drop(self: Pin<&mut Self>) {
        // Parts queued, being worked on, or done and not yet passed on.
        let this = self.project();
        let held: usize = this.lanes.iter().flatten().map(|p| p.len).sum();
        this.stage.abandon(held);
        // Before upstream goes: nobody waits for these any more.
        this.pool.close();
        this.lanes.clear();
    }
}

impl<S, T, U, K, F> fmt::Debug for ParMapKeyed<S, T, U, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMapKeyed")
            .field("stage", &self.stage.name())
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}
