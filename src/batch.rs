//! [`Batch`]: the unit that moves between stages.

use std::ops::{Deref, DerefMut};

/// An owned group of records plus a little metadata.
///
/// Batches move from stage to stage; they are cloned only when a graph fans out.
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch<T> {
    records: Vec<T>,
    seq: u64,
}

impl<T> Batch<T> {
    /// A batch of the given records, with sequence number 0.
    pub fn new(records: Vec<T>) -> Self {
        Batch { records, seq: 0 }
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
        &self.records
    }

    /// The records, for changing in place.
    pub fn records_mut(&mut self) -> &mut Vec<T> {
        &mut self.records
    }

    /// Takes the records out of the batch.
    pub fn into_records(self) -> Vec<T> {
        self.records
    }

    /// Replaces the records, keeping the metadata.
    pub fn map_records<U>(self, f: impl FnOnce(Vec<T>) -> Vec<U>) -> Batch<U> {
        Batch {
            records: f(self.records),
            seq: self.seq,
        }
    }
}

impl<T> Deref for Batch<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.records
    }
}

impl<T> DerefMut for Batch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.records
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
        self.records.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Batch<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}
