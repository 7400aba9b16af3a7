//! [`Batch`]: the unit that moves between stages.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

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
            })
            .collect()
    }
}

impl<T: Clone> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Batch {
            records: Records::Owned(self.records.as_slice().to_vec()),
            seq: self.seq,
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
        Batch {
            records: Records::Owned(f(self.records.into_vec())),
            seq: self.seq,
        }
    }
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
