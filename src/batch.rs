//! [`Batch`]: the unit that moves between stages.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::runtime::Lease;

/// An owned group of records plus a little metadata.
///
/// Batches move from stage to stage. When a graph fans out (a
/// [`tee`](crate::Pipeline::tee)), the branches share one batch: a branch that
/// only reads it (a file sink serializing records) pays nothing, and one that
/// takes its records ([`into_records`](Batch::into_records), a `map`)
/// clones them only if another branch still holds the batch (copy on write).
/// Per-record adapters run a tight loop over a batch, so a pipeline pays its
/// per-item overhead (a poll, a metric update, a channel send) once per batch,
/// not once per record.
///
/// ```
/// use dataflare::Batch;
///
/// let batch = Batch::new(vec![1, 2, 3]).with_seq(7);
/// assert_eq!(batch.len(), 3);
/// assert_eq!(batch.seq(), 7);
/// assert_eq!(batch.iter().sum::<i32>(), 6);
/// assert_eq!(batch.into_records(), vec![1, 2, 3]);
/// ```
pub struct Batch<T> {
    records: Records<T>,
    seq: u64,
    /// Heap bytes the records own beyond their inline size, when the source
    /// knows it (0 otherwise): for the run's byte budget.
    heap_bytes: usize,
    /// The batch's share of the run's byte budget, shared by the copies of a
    /// fan-out; given back when the last of them is dropped.
    lease: Option<Arc<Lease>>,
}

/// What a batch carries besides its records, kept while a stage works on
/// the records alone and put back on the batch it makes of them (see
/// [`Batch::into_parts`]): the sequence number and the budget's lease.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub(crate) seq: u64,
    lease: Option<Arc<Lease>>,
    /// Records when the parts were taken, and their type's inline size: to
    /// scale the lease to the batch made of them.
    len: usize,
    size: usize,
}

impl Meta {
    /// For a batch a stage makes of its own (a timer's, at end of input):
    /// no lease.
    pub(crate) fn fresh(seq: u64) -> Meta {
        Meta {
            seq,
            ..Meta::default()
        }
    }
    /// Records the batch held when the parts were taken.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The lease's bytes, moved out for a stage that splits or merges
    /// batches (`None` without a budget or while shared).
    pub(crate) fn take_lease(&mut self) -> Option<Lease> {
        self.lease
            .take()
            .and_then(|lease| Arc::try_unwrap(lease).ok())
    }
}

/// A batch's records: its own, or shared with other branches of a fan-out.
enum Records<T> {
    Owned(Vec<T>),
    Shared(Arc<dyn SharedRecords<T>>),
}

/// Records shared by the branches of a fan-out, behind a trait object made
/// where `T: Clone + Send + Sync` is known: so `Batch<T>` stays `Send` for any
/// `T: Send`, and only records that may be read from two threads at once are
/// ever shared.
trait SharedRecords<T>: Send + Sync {
    fn as_slice(&self) -> &[T];
    /// A copy of the records, for a holder that takes them while others
    /// still hold them.
    fn copy(&self) -> Vec<T>;
    /// The records themselves, for the last holder.
    fn take(&mut self) -> Vec<T>;
    /// A copy of record `i`.
    fn clone_at(&self, i: usize) -> T;
}

impl<T: Clone + Send + Sync> SharedRecords<T> for Vec<T> {
    fn as_slice(&self) -> &[T] {
        self
    }

    fn copy(&self) -> Vec<T> {
        self.to_vec()
    }

    fn take(&mut self) -> Vec<T> {
        std::mem::take(self)
    }

    fn clone_at(&self, i: usize) -> T {
        self[i].clone()
    }
}

/// The records of a batch still shared with other holders: read them, copy
/// the ones to keep.
pub(crate) struct SharedView<'a, T>(&'a dyn SharedRecords<T>);

impl<T> SharedView<'_, T> {
    pub(crate) fn records(&self) -> &[T] {
        self.0.as_slice()
    }

    pub(crate) fn clone_at(&self, i: usize) -> T {
        self.0.clone_at(i)
    }
}

impl<T> Records<T> {
    #[inline]
    fn as_slice(&self) -> &[T] {
        match self {
            Records::Owned(v) => v,
            Records::Shared(v) => v.as_slice(),
        }
    }

    /// The records as a vector of this batch's own, copied if still shared.
    #[inline]
    fn to_mut(&mut self) -> &mut Vec<T> {
        if let Records::Shared(shared) = self {
            let owned = match Arc::get_mut(shared) {
                Some(v) => v.take(),
                None => shared.copy(),
            };
            *self = Records::Owned(owned);
        }
        match self {
            Records::Owned(v) => v,
            Records::Shared(..) => unreachable!("made owned above"),
        }
    }

    #[inline]
    fn into_vec(self) -> Vec<T> {
        match self {
            Records::Owned(v) => v,
            // The last holder takes the records without a copy.
            Records::Shared(mut shared) => match Arc::get_mut(&mut shared) {
                Some(v) => v.take(),
                None => shared.copy(),
            },
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Batch<T> {
    /// `n` batches sharing these records (a fan-out's copies): none is
    /// copied until a holder takes its records while another still holds them.
    pub(crate) fn share(self, n: usize) -> Vec<Batch<T>> {
        let seq = self.seq;
        let shared: Arc<dyn SharedRecords<T>> = match self.records {
            Records::Owned(v) => Arc::new(v),
            Records::Shared(v) => v,
        };
        (0..n)
            .map(|_| Batch {
                records: Records::Shared(shared.clone()),
                seq,
                heap_bytes: self.heap_bytes,
                lease: self.lease.clone(),
            })
            .collect()
    }
}

impl<T: Clone> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Batch {
            records: Records::Owned(self.records.as_slice().to_vec()),
            seq: self.seq,
            heap_bytes: self.heap_bytes,
            lease: None,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Batch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("records", &self.records.as_slice())
            .field("seq", &self.seq)
            .finish()
    }
}

impl<T: PartialEq> PartialEq for Batch<T> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq && self.records.as_slice() == other.records.as_slice()
    }
}

impl<T: Eq> Eq for Batch<T> {}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch::new(Vec::new())
    }
}

impl<T> Batch<T> {
    /// The records, if they are shared with another holder still (taking them
    /// would copy them all).
    pub(crate) fn shared(&self) -> Option<SharedView<'_, T>> {
        match &self.records {
            Records::Shared(shared) if Arc::strong_count(shared) > 1 => Some(SharedView(&**shared)),
            _ => None,
        }
    }

    /// A batch of the given records, with sequence number 0.
    pub fn new(records: Vec<T>) -> Self {
        Batch {
            records: Records::Owned(records),
            seq: 0,
            heap_bytes: 0,
            lease: None,
        }
    }

    /// Says how many heap bytes the records own beyond their inline size
    /// (`len × size_of::<T>()`): the run's byte budget
    /// ([`max_in_flight_bytes`](crate::Graph::max_in_flight_bytes)) counts a
    /// source's batch as inline size plus these. The file sources set it
    /// from the text they read; a source of your own sets it, or calls
    /// [`estimate_heap_bytes`](Batch::estimate_heap_bytes), when its records
    /// hold heap data (strings, vectors) and the run has a budget.
    ///
    /// ```
    /// use dataflare::Batch;
    ///
    /// let batch = Batch::new(vec![String::from("abc")]).with_heap_bytes(3);
    /// assert_eq!(batch.heap_bytes(), 3);
    /// ```
    pub fn with_heap_bytes(mut self, bytes: usize) -> Self {
        self.heap_bytes = bytes;
        self
    }

    /// Counts the records' heap bytes (see [`with_heap_bytes`](Batch::with_heap_bytes))
    /// with their [`EstimateSize`](crate::size::EstimateSize): one walk over
    /// the records.
    ///
    /// ```
    /// use dataflare::Batch;
    ///
    /// let batch = Batch::new(vec![String::from("abc"), String::from("de")]);
    /// assert_eq!(batch.estimate_heap_bytes().heap_bytes(), 5);
    /// ```
    pub fn estimate_heap_bytes(self) -> Self
    where
        T: crate::size::EstimateSize,
    {
        let heap = self.iter().map(|r| r.heap_bytes()).sum();
        self.with_heap_bytes(heap)
    }

    /// The heap bytes the source said the records own (0 if it did not say).
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    /// The batch's estimated size for the byte budget: inline size plus
    /// [`heap_bytes`](Batch::heap_bytes).
    pub(crate) fn estimated_bytes(&self) -> usize {
        self.len() * std::mem::size_of::<T>().max(1) + self.heap_bytes
    }

    /// Attaches the budget's lease (at the source).
    pub(crate) fn set_lease(&mut self, lease: Lease) {
        self.lease = Some(Arc::new(lease));
    }

    /// Bytes this batch holds of the budget (0 without a budget).
    #[cfg(test)]
    pub(crate) fn leased_bytes(&self) -> usize {
        self.lease.as_ref().map_or(0, |l| l.bytes())
    }

    /// The records apart from what the batch carries (sequence number,
    /// budget lease), for a stage that makes a new batch of them:
    /// [`from_parts`](Batch::from_parts) puts it back, scaled to the records
    /// the new batch holds.
    pub(crate) fn into_parts(self) -> (Vec<T>, Meta) {
        let meta = Meta {
            seq: self.seq,
            len: self.len(),
            size: std::mem::size_of::<T>(),
            lease: self.lease,
        };
        (self.records.into_vec(), meta)
    }

    /// Takes what the batch carries (see [`into_parts`](Batch::into_parts))
    /// and leaves the records: for a stage that reads them in place.
    pub(crate) fn take_meta(&mut self) -> Meta {
        Meta {
            seq: self.seq,
            len: self.len(),
            size: std::mem::size_of::<T>(),
            lease: self.lease.take(),
        }
    }

    /// A batch of `records` carrying `meta`: the lease, if this batch alone
    /// holds it, resized to the estimate of the new records (fewer records
    /// give bytes back; more, or larger ones, take the difference without
    /// waiting).
    pub(crate) fn from_parts(records: Vec<T>, meta: Meta) -> Self {
        let mut lease = meta.lease;
        if let Some(held) = lease.as_mut().and_then(Arc::get_mut) {
            held.resize(scaled(
                held.bytes(),
                meta.len,
                meta.size,
                records.len(),
                std::mem::size_of::<T>(),
            ));
        }
        Batch {
            records: Records::Owned(records),
            seq: meta.seq,
            heap_bytes: 0,
            lease,
        }
    }

    /// A batch of `records` holding `lease` (a stage that merged or split
    /// batches and moved their leases).
    pub(crate) fn with_lease(records: Vec<T>, seq: u64, lease: Option<Lease>) -> Self {
        Batch {
            records: Records::Owned(records),
            seq,
            heap_bytes: 0,
            lease: lease.map(Arc::new),
        }
    }

    /// Sets the sequence number: the batch's index in the stream of its source.
    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// The batch's index in the stream of the source that made it.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The records.
    pub fn records(&self) -> &[T] {
        self.records.as_slice()
    }

    /// The records, for changing in place.
    pub fn records_mut(&mut self) -> &mut Vec<T> {
        self.records.to_mut()
    }

    /// Takes the records out of the batch.
    pub fn into_records(self) -> Vec<T> {
        self.records.into_vec()
    }

    /// Replaces the records, keeping the metadata.
    pub fn map_records<U>(self, f: impl FnOnce(Vec<T>) -> Vec<U>) -> Batch<U> {
        let (records, meta) = self.into_parts();
        Batch::from_parts(f(records), meta)
    }
}

/// The estimate for `new_len` records of inline size `new_size`, made from
/// `old_len` records of inline size `old_size` estimated at `bytes`: each
/// record keeps its share of the heap bytes.
fn scaled(bytes: usize, old_len: usize, old_size: usize, new_len: usize, new_size: usize) -> usize {
    if old_len == 0 {
        return bytes;
    }
    let heap_each = (bytes / old_len).saturating_sub(old_size);
    new_len * (heap_each + new_size.max(1))
}

impl<T> Deref for Batch<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.records.as_slice()
    }
}

impl<T> DerefMut for Batch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.records.to_mut()
    }
}

impl<T> From<Vec<T>> for Batch<T> {
    fn from(records: Vec<T>) -> Self {
        Batch::new(records)
    }
}

impl<T> FromIterator<T> for Batch<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Batch::new(iter.into_iter().collect())
    }
}

impl<T> IntoIterator for Batch<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.into_vec().into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Batch<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.as_slice().iter()
    }
}

#[cfg(test)]
mod tests {
    use super::Batch;
    use crate::runtime::{Budget, SourceShare};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    #[test]
    fn a_batch_made_of_fewer_or_larger_records_resizes_its_lease() {
        let budget = Arc::new(Budget::new(1 << 20));
        let source = Arc::new(SourceShare::default());
        let mut batch = Batch::new(vec![String::from("abcd"); 10]).with_heap_bytes(40);
        let bytes = batch.estimated_bytes();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let Poll::Ready(lease) = budget.poll_take(&source, bytes, &mut cx) else {
            panic!("room for it")
        };
        batch.set_lease(lease);
        // Half the records: half the bytes.
        let half = batch.map_records(|mut r| {
            r.truncate(5);
            r
        });
        assert_eq!(half.leased_bytes(), bytes / 2);
        assert_eq!(budget.in_flight(), bytes / 2);
        // Each record four times over (a flat_map): the difference taken.
        let more = half.map_records(|r| r.into_iter().flat_map(|s| vec![s; 4]).collect());
        assert_eq!(more.leased_bytes(), 2 * bytes);
        // Shared (a tee), the lease goes when the last copy does.
        let copies = more.share(2);
        let mut copies = copies.into_iter();
        drop(copies.next());
        assert_eq!(budget.in_flight(), 2 * bytes);
        drop(copies);
        assert_eq!(budget.in_flight(), 0);
    }

    #[test]
    fn shared_batches_are_copied_only_when_taken_while_shared() {
        let batch = Batch::new(vec![String::from("a"), String::from("b")]).with_seq(3);
        let original = batch.records().as_ptr();
        let mut copies = batch.share(3);
        // Reading never copies.
        assert!(copies.iter().all(|b| b.records().as_ptr() == original));
        assert!(copies.iter().all(|b| b.seq() == 3));
        // Taken while others hold it: a copy, the others untouched.
        let first = copies.remove(0).into_records();
        assert_ne!(first.as_ptr(), original);
        assert_eq!(first, vec!["a", "b"]);
        // Changed while another holds it: a copy too.
        copies[0].records_mut().push(String::from("c"));
        assert_eq!(copies[0].len(), 3);
        assert_eq!(copies[1].records(), ["a", "b"]);
        // The last holder takes the records themselves.
        let last = copies.remove(1).into_records();
        assert_eq!(last.as_ptr(), original);
    }
}
