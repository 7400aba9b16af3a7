//! When a [`rebatch`](crate::Pipeline::rebatch) stage lets a batch go: by
//! count, by estimated bytes, by time.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

// The one place this module names the size-estimate trait (and `record_bytes`
// the one place it calls it), so moving or renaming the trait touches these.
use crate::size::EstimateSize as SizeEstimate;

/// The estimated memory of one record: its inline size plus the heap bytes it
/// owns, as [`EstimateSize`](crate::size::EstimateSize) counts them.
#[inline]
pub(crate) fn record_bytes<T: SizeEstimate>(record: &T) -> usize {
    std::mem::size_of::<T>() + record.heap_bytes()
}

/// A byte limit on batches, with the estimate of a record's size.
pub(crate) struct ByteLimit<T> {
    pub(crate) limit: usize,
    pub(crate) estimate: fn(&T) -> usize,
}

impl<T> Clone for ByteLimit<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ByteLimit<T> {}

/// When a [`rebatch`](crate::Pipeline::rebatch) stage lets a batch of records
/// of type `T` go: when it holds [`count`](BatchPolicy::count) records, or
/// (if set) when their estimated size reaches [`bytes`](BatchPolicy::bytes),
/// or (if set) when [`linger`](BatchPolicy::linger) has passed since its first
/// record arrived — whichever comes first — and at the end of the input.
///
/// A `usize` converts into a count-only policy, so `rebatch(1000)` and
/// `rebatch(BatchPolicy::count(1000))` are the same.
///
/// ```
/// use dataflare::ops::BatchPolicy;
/// use dataflare::record::Record;
/// use std::time::Duration;
///
/// let policy: BatchPolicy<Record> = BatchPolicy::count(1000)
///     .bytes(1 << 20)
///     .linger(Duration::from_millis(50));
/// assert_eq!(policy.max_count(), 1000);
/// assert_eq!(policy.max_bytes(), Some(1 << 20));
/// assert_eq!(policy.max_linger(), Some(Duration::from_millis(50)));
/// ```
pub struct BatchPolicy<T> {
    count: usize,
    bytes: Option<ByteLimit<T>>,
    linger: Option<Duration>,
    _records: PhantomData<fn(&T)>,
}

impl<T> BatchPolicy<T> {
    /// Batches of at most `count` records (the last may be smaller).
    ///
    /// # Panics
    ///
    /// If `count` is 0.
    #[track_caller]
    pub fn count(count: usize) -> Self {
        assert!(count > 0, "rebatch: the batch size must be at least 1");
        BatchPolicy {
            count,
            bytes: None,
            linger: None,
            _records: PhantomData,
        }
    }

    /// Also lets a batch go as soon as its records' estimated size reaches
    /// `bytes` (`size_of::<T>()` plus the heap bytes each record owns, as
    /// [`EstimateSize`](crate::size::EstimateSize) counts them): every batch
    /// stays within `bytes`, but for a single record larger than that,
    /// which goes alone.
    ///
    /// Cost: one estimate per record (for a dynamic
    /// [`Record`](crate::record::Record), a walk over its values).
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    #[track_caller]
    pub fn bytes(self, bytes: usize) -> Self
    where
        T: SizeEstimate,
    {
        self.bytes_with(bytes, record_bytes::<T>)
    }

    /// As [`bytes`](BatchPolicy::bytes), with the estimate of each record's
    /// size made by `estimate`: for record types with no
    /// [`EstimateSize`](crate::size::EstimateSize), or a better guess (the length
    /// of a line).
    ///
    /// ```
    /// use dataflare::ops::BatchPolicy;
    ///
    /// let policy = BatchPolicy::count(10_000).bytes_with(64 << 10, |line: &Vec<u8>| line.len());
    /// assert_eq!(policy.max_bytes(), Some(64 << 10));
    /// ```
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    #[track_caller]
    pub fn bytes_with(mut self, bytes: usize, estimate: fn(&T) -> usize) -> Self {
        assert!(bytes > 0, "rebatch: the byte limit must be at least 1");
        self.bytes = Some(ByteLimit {
            limit: bytes,
            estimate,
        });
        self
    }

    /// Also lets a partial batch go once `linger` has passed since its first
    /// record arrived, so a slow source's records do not wait for a full
    /// batch. The time is Tokio's (paused time drives it in tests).
    ///
    /// Cost: a timer per partial batch, and a read of the clock per batch in.
    ///
    /// # Panics
    ///
    /// If `linger` is zero.
    #[track_caller]
    pub fn linger(mut self, linger: Duration) -> Self {
        assert!(
            !linger.is_zero(),
            "rebatch: the linger time must not be zero"
        );
        self.linger = Some(linger);
        self
    }

    /// The most records a batch holds.
    pub fn max_count(&self) -> usize {
        self.count
    }

    /// The estimated bytes a batch reaches before it goes, if limited.
    pub fn max_bytes(&self) -> Option<usize> {
        self.bytes.map(|b| b.limit)
    }

    /// How long a partial batch waits for more records, if it does not wait
    /// for ever.
    pub fn max_linger(&self) -> Option<Duration> {
        self.linger
    }

    /// The estimate of a record's size, with the byte limit.
    pub(crate) fn byte_limit(&self) -> Option<ByteLimit<T>> {
        self.bytes
    }
}

impl<T> From<usize> for BatchPolicy<T> {
    /// A count-only policy: `rebatch(n)`.
    ///
    /// # Panics
    ///
    /// If `count` is 0.
    #[track_caller]
    fn from(count: usize) -> Self {
        BatchPolicy::count(count)
    }
}

impl<T> Default for BatchPolicy<T> {
    /// Batches of [`DEFAULT_BATCH_SIZE`](crate::source::DEFAULT_BATCH_SIZE)
    /// records (what the built-in sources make), no byte limit, no linger.
    fn default() -> Self {
        BatchPolicy::count(crate::source::DEFAULT_BATCH_SIZE)
    }
}

impl<T> Clone for BatchPolicy<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for BatchPolicy<T> {}

impl<T> fmt::Debug for BatchPolicy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchPolicy")
            .field("count", &self.count)
            .field("bytes", &self.max_bytes())
            .field("linger", &self.linger)
            .finish()
    }
}
