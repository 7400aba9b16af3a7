//! The run's byte budget for batches in flight (see
//! [`Graph::max_in_flight_bytes`](crate::Graph::max_in_flight_bytes)).
//!
//! A source's batch takes its estimated size from the budget before it leaves
//! the source stage, as a [`Lease`] that travels with the batch through every
//! stage; the bytes come back when the last holder drops it (every sink it
//! reaches has written it, or a stage filtered it away, absorbed it into
//! state or dropped it). Only sources wait for room; a stage that makes a
//! batch larger takes the difference at once, without waiting (a stage that
//! waited for budget could wait for bytes held by a batch that only it can
//! move on). A source with nothing in flight may always send one batch, so a
//! batch larger than the budget, or a stage holding one source's batch while
//! it waits for another source (`zip`), never deadlocks the run.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The byte budget of one run.
#[derive(Debug)]
pub(crate) struct Budget {
    max: usize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    /// Sources waiting for room, woken when bytes come back.
    waiting: Mutex<Vec<Waker>>,
    has_waiting: AtomicBool,
}

/// What one source has in flight: a source with nothing in flight may always
/// send a batch.
#[derive(Debug, Default)]
pub(crate) struct SourceShare(AtomicUsize);

impl Budget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            max,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            waiting: Mutex::new(Vec::new()),
            has_waiting: AtomicBool::new(false),
        }
    }

    /// The budget's size.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Bytes in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most bytes that were in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Takes `bytes` for a batch of `source` when they fit in the budget, or
    /// when the source has nothing in flight; otherwise `Pending`, woken when
    /// bytes come back.
    pub(crate) fn poll_take(
        self: &Arc<Self>,
        source: &Arc<SourceShare>,
        bytes: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Lease> {
        if let Some(lease) = self.try_take(source, bytes) {
            return Poll::Ready(lease);
        }
        let mut waiting = lock(&self.waiting);
        // Set before the second look, so a release after the first look
        // either is seen by it or sees the flag and wakes us.
        self.has_waiting.store(true, Ordering::SeqCst);
        if let Some(lease) = self.try_take(source, bytes) {
            return Poll::Ready(lease);
        }
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn try_take(self: &Arc<Self>, source: &Arc<SourceShare>, bytes: usize) -> Option<Lease> {
        let alone = source.0.load(Ordering::SeqCst) == 0;
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if !alone && current.saturating_add(bytes) > self.max {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current.saturating_add(bytes),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        self.peak
            .fetch_max(current.saturating_add(bytes), Ordering::SeqCst);
        source.0.fetch_add(bytes, Ordering::SeqCst);
        Some(Lease {
            budget: self.clone(),
            source: source.clone(),
            bytes,
        })
    }

    fn grow(&self, bytes: usize) {
        let now = self.in_flight.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn release(&self, bytes: usize) {
        self.in_flight.fetch_sub(bytes, Ordering::SeqCst);
        if self.has_waiting.load(Ordering::SeqCst) {
            let wakers = {
                let mut waiting = lock(&self.waiting);
                self.has_waiting.store(false, Ordering::SeqCst);
                std::mem::take(&mut *waiting)
            };
            for waker in wakers {
                waker.wake();
            }
        }
    }
}

/// A batch's share of the budget: given back when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    budget: Arc<Budget>,
    source: Arc<SourceShare>,
    bytes: usize,
}

impl Lease {
    /// The bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `bytes` from now on: more are taken at once (never waiting),
    /// fewer given back.
    pub(crate) fn resize(&mut self, bytes: usize) {
        if bytes > self.bytes {
            let more = bytes - self.bytes;
            self.budget.grow(more);
            self.source.0.fetch_add(more, Ordering::SeqCst);
        } else if bytes < self.bytes {
            let less = self.bytes - bytes;
            self.source.0.fetch_sub(less, Ordering::SeqCst);
            self.budget.release(less);
        }
        self.bytes = bytes;
    }

    /// Splits off the share of `part` of the `left` records this lease still
    /// covers (all of it when `part >= left`), for a stage that cuts a batch
    /// into several: called with the records not given a share yet, the
    /// last part takes what is left, and records in no part (rejected) give
    /// theirs back as the lease drops.
    pub(crate) fn split_records(&mut self, part: usize, left: usize) -> Lease {
        self.split(share_of(self.bytes, part, left))
    }

    /// Splits off a lease of `bytes` (at most those held) for another batch.
    pub(crate) fn split(&mut self, bytes: usize) -> Lease {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Lease {
            budget: self.budget.clone(),
            source: self.source.clone(),
            bytes,
        }
    }
}

/// The bytes of records a stage holds while it waits for more input
/// (`rebatch`): given back to the budget while held, since the stage's own
/// source must be able to send what completes them (waiting for budget they
/// hold would deadlock), and taken again, without waiting, when they leave.
#[derive(Debug, Default)]
pub(crate) struct Parked {
    /// A lease of no bytes, to take them again from the same budget.
    lease: Option<Lease>,
    bytes: usize,
}

impl Parked {
    /// Gives `lease`'s bytes back, keeping count of them.
    pub(crate) fn park(&mut self, mut lease: Lease) {
        self.bytes += lease.bytes;
        lease.resize(0);
        self.lease.get_or_insert(lease);
    }

    /// A lease for `part` of the `whole` records held (all that is left
    /// when `part == whole`), taken again without waiting.
    pub(crate) fn unpark(&mut self, part: usize, whole: usize) -> Option<Lease> {
        let template = self.lease.as_mut()?;
        let bytes = share_of(self.bytes, part, whole);
        self.bytes -= bytes;
        let mut lease = template.split(0);
        lease.resize(bytes);
        Some(lease)
    }

    /// Forgets the held bytes (the records were dropped).
    pub(crate) fn clear(&mut self) {
        self.bytes = 0;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.source.0.fetch_sub(self.bytes, Ordering::SeqCst);
            self.budget.release(self.bytes);
        }
    }
}

/// The share of `bytes` for `part` of `of` records: all of them when
/// `part >= of`.
fn share_of(bytes: usize, part: usize, of: usize) -> usize {
    if part >= of {
        bytes
    } else {
        (bytes as u128 * part as u128 / of as u128) as usize
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    fn take(budget: &Arc<Budget>, source: &Arc<SourceShare>, bytes: usize) -> Option<Lease> {
        match budget.poll_take(source, bytes, &mut Context::from_waker(noop_waker_ref())) {
            Poll::Ready(lease) => Some(lease),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_source_waits_while_the_budget_is_spent_and_goes_on_when_bytes_come_back() {
        let budget = Arc::new(Budget::new(100));
        let source = Arc::new(SourceShare::default());
        let a = take(&budget, &source, 60).unwrap();
        assert!(take(&budget, &source, 60).is_none());
        let b = take(&budget, &source, 40).unwrap();
        assert_eq!(budget.in_flight(), 100);
        drop(a);
        assert_eq!(budget.in_flight(), 40);
        assert!(take(&budget, &source, 60).is_some());
        drop(b);
        assert_eq!(budget.in_flight(), 0);
        assert_eq!(budget.peak(), 100);
    }

    #[test]
    fn a_source_with_nothing_in_flight_may_always_send_one_batch() {
        let budget = Arc::new(Budget::new(100));
        let (one, other) = (Arc::default(), Arc::default());
        // Larger than the whole budget: it goes alone.
        let big = take(&budget, &one, 500).unwrap();
        assert!(take(&budget, &one, 1).is_none());
        // Another source, nothing in flight: one batch goes (no deadlock
        // when a stage holds the first source's batch waiting for it).
        let small = take(&budget, &other, 10).unwrap();
        assert!(take(&budget, &other, 10).is_none());
        drop((big, small));
        assert_eq!(budget.in_flight(), 0);
    }

    #[test]
    fn leases_resize_split_and_park_without_losing_a_byte() {
        let budget = Arc::new(Budget::new(1000));
        let source = Arc::new(SourceShare::default());
        let mut lease = take(&budget, &source, 100).unwrap();
        lease.resize(150);
        assert_eq!(budget.in_flight(), 150);
        let part = lease.split(50);
        assert_eq!((lease.bytes(), part.bytes()), (100, 50));
        // Parked bytes are given back while held, and taken again.
        let mut parked = Parked::default();
        parked.park(part);
        assert_eq!(budget.in_flight(), 100);
        let back = parked.unpark(1, 2).unwrap();
        assert_eq!((back.bytes(), budget.in_flight()), (25, 125));
        let rest = parked.unpark(1, 1).unwrap();
        assert_eq!(rest.bytes(), 25);
        drop((back, rest));
        lease.resize(20);
        assert_eq!(budget.in_flight(), 20);
        drop(lease);
        assert_eq!(budget.in_flight(), 0);
        assert_eq!(source.0.load(Ordering::SeqCst), 0);
    }
}
