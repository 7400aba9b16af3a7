use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project::{pin_project, pinned_drop};
use tokio::time::Instant;

use super::BatchPolicy;
use super::batch_policy::ByteLimit;
use crate::metrics::StageMetrics;
use crate::runtime::OpTimer;
use crate::runtime::{Lease, Parked};
use crate::{Batch, Result};

/// Regroups records into batches by a [`BatchPolicy`]: a batch goes when it
/// has the policy's count, or its estimated bytes, or has waited the
/// policy's linger, and at the end of the input.
///
/// Created by [`Pipeline::rebatch`](crate::Pipeline::rebatch).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct Rebatch<S, T> {
    #[pin]
    upstream: S,
    count: usize,
    /// The byte limit and the estimate of a record's size, if limited.
    bytes: Option<ByteLimit<T>>,
    linger: Option<Duration>,
    pending: VecDeque<T>,
    /// With a byte limit: the estimate of each pending record, in step with
    /// `pending`, and their sum.
    sizes: VecDeque<usize>,
    pending_bytes: usize,
    /// The pending records' bytes of the run's byte budget, given back while
    /// they wait here.
    parked: Parked,
    /// With a linger: when the first pending record arrived.
    since: Option<Instant>,
    /// With a linger: when the last batch arrived.
    arrived: Option<Instant>,
    timer: OpTimer,
    seq: u64,
    stage: Arc<StageMetrics>,
    done: bool,
}

impl<S, T> Rebatch<S, T> {
    pub(crate) fn new(upstream: S, policy: BatchPolicy<T>, stage: Arc<StageMetrics>) -> Self {
        Rebatch {
            upstream,
            count: policy.max_count(),
            bytes: policy.byte_limit(),
            linger: policy.max_linger(),
            pending: VecDeque::new(),
            sizes: VecDeque::new(),
            pending_bytes: 0,
            parked: Parked::default(),
            since: None,
            arrived: None,
            timer: OpTimer::default(),
            seq: 0,
            stage,
            done: false,
        }
    }
}

/// The fields of a [`Rebatch`] that hold and cut records.
struct Held<'a, T> {
    count: usize,
    bytes: Option<ByteLimit<T>>,
    pending: &'a mut VecDeque<T>,
    sizes: &'a mut VecDeque<usize>,
    pending_bytes: &'a mut usize,
    parked: &'a mut Parked,
}

impl<T> Held<'_, T> {
    /// A full batch is held: the count, or the byte limit, is reached.
    fn full(&self) -> bool {
        self.pending.len() >= self.count
            || self
                .bytes
                .is_some_and(|b| !self.pending.is_empty() && *self.pending_bytes >= b.limit)
    }

    /// Takes `batch` in, with the estimate of each record's size if limited.
    fn extend(&mut self, batch: Batch<T>) {
        let (records, mut meta) = batch.into_parts();
        if let Some(lease) = meta.take_lease() {
            self.parked.park(lease);
        }
        let Some(ByteLimit { estimate, .. }) = self.bytes else {
            self.pending.extend(records);
            return;
        };
        for record in records {
            let size = estimate(&record);
            *self.pending_bytes += size;
            self.sizes.push_back(size);
            self.pending.push_back(record);
        }
    }

    /// The records of the next batch: the longest run from the front within
    /// the count and the byte limit, and at least one record (a record over
    /// the byte limit goes alone).
    fn cut(&mut self) -> (Vec<T>, Option<Lease>) {
        let mut n = self.pending.len().min(self.count);
        if let Some(ByteLimit { limit, .. }) = self.bytes {
            let mut total = 0usize;
            let within = self
                .sizes
                .iter()
                .take(n)
                .take_while(|&&size| {
                    total += size;
                    total <= limit
                })
                .count();
            n = within.max(1).min(n);
            let taken: usize = self.sizes.drain(..n).sum();
            *self.pending_bytes -= taken;
        }
        // The batch's share of the held bytes: all of them for the last.
        let before = self.pending.len();
        let share = self.parked.unpark(n, before);
        (self.pending.drain(..n).collect(), share)
    }
}

impl<S, T> Stream for Rebatch<S, T>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let mut held = Held {
            count: *this.count,
            bytes: *this.bytes,
            pending: this.pending,
            sizes: this.sizes,
            pending_bytes: this.pending_bytes,
            parked: this.parked,
        };
        loop {
            let lingered = match (*this.linger, *this.since) {
                (Some(linger), Some(since)) => this.timer.poll_due(Some(since + linger), cx),
                _ => false,
            };
            if held.full() || (!held.pending.is_empty() && (*this.done || lingered)) {
                let (records, lease) = held.cut();
                // What stays arrived with the last batch: the batch just cut
                // held every record from before it (they were within the
                // limits), so its linger runs from then.
                *this.since = if held.pending.is_empty() {
                    None
                } else {
                    *this.arrived
                };
                this.stage.batch_out(records.len());
                let seq = *this.seq;
                *this.seq += 1;
                return Poll::Ready(Some(Ok(Batch::with_lease(records, seq, lease))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let Poll::Ready(next) = this.upstream.as_mut().poll_next(cx) else {
                return Poll::Pending;
            };
            match next {
                Some(Ok(batch)) => {
                    this.stage.batch_in(batch.len());
                    if batch.is_empty() {
                        continue;
                    }
                    if held.pending.is_empty()
                        && batch.len() == held.count
                        && held
                            .bytes
                            .is_none_or(|b| batch.iter().map(b.estimate).sum::<usize>() <= b.limit)
                    {
                        // Already the right size: pass the allocation through untouched.
                        this.stage.batch_out(batch.len());
                        let seq = *this.seq;
                        *this.seq += 1;
                        return Poll::Ready(Some(Ok(batch.with_seq(seq))));
                    }
                    if this.linger.is_some() {
                        let now = Instant::now();
                        *this.arrived = Some(now);
                        this.since.get_or_insert(now);
                    }
                    held.extend(batch);
                }
                Some(Err(e)) => {
                    // Records still held are not passed on: the run fails, and the
                    // error is what the user must see.
                    *this.done = true;
                    this.stage.abandon(held.pending.len());
                    held.pending.clear();
                    held.sizes.clear();
                    *held.pending_bytes = 0;
                    held.parked.clear();
                    *this.since = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => *this.done = true,
            }
        }
    }
}

#[pinned_drop]
impl<S, T> PinnedDrop for Rebatch<S, T> {
    fn drop(self: Pin<&mut Self>) {
        // Records still waiting for a full batch when the run ended early.
        let this = self.project();
        this.stage.abandon(this.pending.len());
    }
}

impl<S, T> fmt::Debug for Rebatch<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebatch")
            .field("count", &self.count)
            .field("bytes", &self.bytes.map(|b| b.limit))
            .field("linger", &self.linger)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}
