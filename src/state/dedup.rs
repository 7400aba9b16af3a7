//! Dedup: the first record of each key passes, later ones are dropped as
//! duplicates; over the whole input, or within a number of keys (LRU) and/or
//! a time-to-live measured on the records' own timestamps.

use std::collections::{BTreeMap, BTreeSet};

use super::hash::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use super::stage::{Emits, Reject, StatefulOp};
use super::{KeyOf, StateSize};
use crate::Result;
use crate::metrics::StageMetrics;
use crate::record::Timestamp;
use crate::size::entry_bytes;

/// The timestamp of a record, for a time-to-live measured in event time (a
/// dedup's [`Within::time`]).
///
/// Implemented for closures `FnMut(&T) -> Timestamp`, and for [`NoTime`]
/// (no time-to-live).
pub trait DedupTime<T>: Send + 'static {
    /// The record's timestamp (`None`: the stage keeps no time).
    fn time_of(&mut self, record: &T) -> Option<Timestamp>;
}

/// No timestamps: what a [`Within`] without a time-to-live holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTime;

impl<T> DedupTime<T> for NoTime {
    fn time_of(&mut self, _record: &T) -> Option<Timestamp> {
        None
    }
}

impl<T, F> DedupTime<T> for F
where
    F: FnMut(&T) -> Timestamp + Send + 'static,
{
    fn time_of(&mut self, record: &T) -> Option<Timestamp> {
        Some(self(record))
    }
}

/// How long a dedup remembers a key, for [`KeyBy::dedup`](super::KeyBy::dedup):
/// for the whole input ([`all`](Within::all)), among the most recently seen
/// keys ([`keys`](Within::keys), an LRU), for a time after it was last seen
/// ([`time`](Within::time), in event time), or both
/// ([`and_time`](Within::and_time), [`and_keys`](Within::and_keys)).
///
/// A key the dedup no longer remembers (evicted, expired) is new again: its
/// next record passes. So a bounded dedup drops only duplicates, but may let
/// some through; the unbounded one lets none through, and fails the run when
/// it would hold more keys than its [`StateLimits`](super::StateLimits) allow.
///
/// ```
/// use dataflare::record::Timestamp;
/// use dataflare::state::Within;
/// use std::time::Duration;
///
/// let _forever = Within::all();
/// let _lru = Within::keys(100_000);
/// let _hour = Within::time(|e: &(u64, Timestamp)| e.1, Duration::from_secs(3600));
/// let _both = Within::keys(100_000).and_time(|e: &(u64, Timestamp)| e.1, Duration::from_secs(3600));
/// ```
#[derive(Clone)]
pub struct Within<TS = NoTime> {
    capacity: Option<usize>,
    time: TS,
    ttl: Option<Duration>,
}

impl Within {
    /// Remembers every key for the whole input: every duplicate is dropped.
    /// The stage holds one entry per distinct key, bounded by its
    /// [`max_keys`](super::KeyBy::max_keys) (over it, the run fails).
    pub fn all() -> Within {
        Within {
            capacity: None,
            time: NoTime,
            ttl: None,
        }
    }

    /// Remembers the `n` most recently seen keys (a key is seen by each of
    /// its records, duplicates included): a new key beyond them evicts the
    /// least recently seen one, counted in the stage's
    /// [`evicted`](crate::StageStats::evicted). A key seen again after it was
    /// evicted is new again: its record passes.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn keys(n: usize) -> Within {
        Within::all().and_keys(n)
    }

    /// Remembers a key for `ttl` after it was last seen, in event time:
    /// `time` gives each record's timestamp, and the stage's clock is the
    /// greatest timestamp it has seen. A key last seen at `t` (the greatest
    /// timestamp of its records) is forgotten once the clock reaches `t +
    /// ttl`, counted in the stage's [`expired`](crate::StageStats::expired);
    /// its next record passes. Every record of a key counts as a sight,
    /// duplicates included (so a key seen more often than every `ttl` is
    /// never forgotten). A record whose own `t + ttl` is already behind the
    /// clock passes, if its key is not remembered, and is not remembered.
    ///
    /// Measured on the records' timestamps, never on the wall clock: the
    /// same input gives the same output.
    ///
    /// # Panics
    ///
    /// If `ttl` is under a microsecond (timestamps are in microseconds).
    #[track_caller]
    pub fn time<T, F>(time: F, ttl: Duration) -> Within<F>
    where
        F: FnMut(&T) -> Timestamp + Send + 'static,
    {
        Within::all().and_time(time, ttl)
    }

    /// These bounds and a time-to-live: see [`time`](Within::time).
    ///
    /// # Panics
    ///
    /// If `ttl` is under a microsecond (timestamps are in microseconds).
    #[track_caller]
    pub fn and_time<T, F>(self, time: F, ttl: Duration) -> Within<F>
    where
        F: FnMut(&T) -> Timestamp + Send + 'static,
    {
        assert!(
            duration_micros(ttl) > 0,
            "Within::time: the time-to-live must be a microsecond at least (timestamps are \
             in microseconds)"
        );
        Within {
            capacity: self.capacity,
            time,
            ttl: Some(ttl),
        }
    }
}

impl<TS> Within<TS> {
    /// These bounds and a capacity of `n` keys: see [`keys`](Within::keys).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn and_keys(mut self, n: usize) -> Self {
        assert!(
            n > 0,
            "Within::keys: a dedup must remember one key at least"
        );
        self.capacity = Some(n);
        self
    }

    /// The capacity in keys, if there is one.
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }
}

impl<TS> fmt::Debug for Within<TS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Within")
            .field("keys", &self.capacity)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Passes the first record of each key and drops the others as duplicates,
/// within the bounds of a [`Within`]. Made by
/// [`Pipeline::dedup_by`](crate::Pipeline::dedup_by) and
/// [`KeyBy::dedup`](super::KeyBy::dedup).
pub struct Dedup<T, KF: KeyOf<T>, TS> {
    key: KF,
    time: TS,
    seen: Seen<KF::Key>,
    record: PhantomData<fn(T)>,
}

impl<T, KF: KeyOf<T>, TS> Dedup<T, KF, TS> {
    pub(crate) fn new(key: KF, within: Within<TS>) -> Self {
        Dedup {
            key,
            time: within.time,
            seen: Seen::new(within.capacity, within.ttl.map(duration_micros)),
            record: PhantomData,
        }
    }
}

impl<T, KF: KeyOf<T>, TS> fmt::Debug for Dedup<T, KF, TS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedup")
            .field("keys", &self.seen.marks.len())
            .field("capacity", &self.seen.capacity)
            .field("ttl_micros", &self.seen.ttl)
            .finish_non_exhaustive()
    }
}

impl<T, KF, TS> Emits for Dedup<T, KF, TS>
where
    T: Send + 'static,
    KF: KeyOf<T>,
{
    type Out = T;
}

impl<T, KF, TS> StatefulOp<Vec<T>> for Dedup<T, KF, TS>
where
    T: fmt::Debug + Send + 'static,
    KF: KeyOf<T>,
    TS: DedupTime<T>,
{
    fn apply(
        &mut self,
        records: Vec<T>,
        out: &mut Vec<T>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()> {
        let mut duplicates = 0;
        for record in records {
            let key = match self.key.key_of(&record) {
                Ok(key) => key,
                Err(error) => {
                    rejects.push(Reject::of(error, &record));
                    continue;
                }
            };
            let at = self.time.time_of(&record);
            if self.seen.observe(key, at) {
                out.push(record);
            } else {
                duplicates += 1;
            }
        }
        stage.duplicate(duplicates);
        stage.evict(std::mem::take(&mut self.seen.evicted));
        stage.expire(std::mem::take(&mut self.seen.expired));
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<T>, _stage: &StageMetrics) -> Result<()> {
        // The end of the input: nothing more can be a duplicate.
        self.seen.clear();
        Ok(())
    }

    fn state_size(&self) -> (u64, u64) {
        (self.seen.marks.len() as u64, self.seen.bytes() as u64)
    }
}

/// A duration in whole microseconds (saturating).
fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// When a key was last seen: the tick of its last record (for the LRU and
/// to find it from its expiry), and the greatest timestamp of its records.
#[derive(Debug, Clone, Copy)]
struct Mark {
    tick: u64,
    last: i64,
}

/// The keys a dedup remembers.
///
/// Unbounded, only `marks`. Bounded, also `order` (keys by last sight, the
/// least recent first: the LRU, and a key found from its tick), and with a
/// time-to-live `expiries` (soonest first). The clock is the greatest
/// timestamp seen: a key expires once it reaches `last + ttl`; since only
/// the clock's moving on can expire a key, expired keys are let go of
/// exactly when it moves, so a record finds remembered only keys that have
/// not expired, and the LRU never evicts a live key for an expired one.
struct Seen<K> {
    marks: HashMap<K, Mark>,
    order: BTreeMap<u64, K>,
    expiries: BTreeSet<(i64, u64)>,
    capacity: Option<usize>,
    /// In microseconds.
    ttl: Option<i64>,
    clock: i64,
    tick: u64,
    /// Heap bytes of the keys held (each copy).
    key_heap: usize,
    /// Evicted and expired since the counters were last taken.
    evicted: usize,
    expired: usize,
}

impl<K: std::hash::Hash + Eq + Clone + StateSize> Seen<K> {
    fn new(capacity: Option<usize>, ttl: Option<i64>) -> Self {
        Seen {
            marks: HashMap::default(),
            order: BTreeMap::new(),
            expiries: BTreeSet::new(),
            capacity,
            ttl,
            clock: i64::MIN,
            tick: 0,
            key_heap: 0,
            evicted: 0,
            expired: 0,
        }
    }

    fn ordered(&self) -> bool {
        self.capacity.is_some() || self.ttl.is_some()
    }

    /// Sees `key` (of a record at `at`): true if it is new (the record
    /// passes), false for a duplicate.
    fn observe(&mut self, key: K, at: Option<Timestamp>) -> bool {
        let ttl = self.ttl.zip(at.map(Timestamp::micros));
        if let Some((_, at)) = ttl
            && at > self.clock
        {
            self.clock = at;
            self.purge();
        }
        self.tick += 1;
        let tick = self.tick;
        let ordered = self.ordered();
        if let Some(mark) = self.marks.get_mut(&key) {
            if ordered {
                let key = self
                    .order
                    .remove(&mark.tick)
                    .expect("every mark is in order");
                self.order.insert(tick, key);
                if let Some((ttl, at)) = ttl {
                    self.expiries
                        .remove(&(mark.last.saturating_add(ttl), mark.tick));
                    mark.last = mark.last.max(at);
                    self.expiries.insert((mark.last.saturating_add(ttl), tick));
                }
                mark.tick = tick;
            }
            return false;
        }
        let last = ttl.map_or(i64::MIN, |(_, at)| at);
        if let Some((ttl, _)) = ttl {
            if last.saturating_add(ttl) <= self.clock {
                // Expired as soon as seen: remembered for no time.
                return true;
            }
            self.expiries.insert((last.saturating_add(ttl), tick));
        }
        let heap = key.heap_bytes();
        if ordered {
            self.key_heap += 2 * heap;
            self.order.insert(tick, key.clone());
        } else {
            self.key_heap += heap;
        }
        self.marks.insert(key, Mark { tick, last });
        if let Some(capacity) = self.capacity
            && self.marks.len() > capacity
        {
            let (oldest, key) = self.order.pop_first().expect("over capacity");
            self.forget(oldest, key);
            self.evicted += 1;
        }
        true
    }

    /// Lets go of the keys whose time-to-live the clock has reached.
    fn purge(&mut self) {
        while let Some(&(expiry, tick)) = self.expiries.first() {
            if expiry > self.clock {
                break;
            }
            let key = self.order.remove(&tick).expect("every expiry is in order");
            self.forget(tick, key);
            self.expired += 1;
        }
    }

    /// Drops `key` (out of `order` already) from the marks and expiries.
    fn forget(&mut self, tick: u64, key: K) {
        self.key_heap = self.key_heap.saturating_sub(2 * key.heap_bytes());
        let mark = self
            .marks
            .remove(&key)
            .expect("every key in order is marked");
        if let Some(ttl) = self.ttl {
            self.expiries.remove(&(mark.last.saturating_add(ttl), tick));
        }
    }

    fn clear(&mut self) {
        self.marks = HashMap::default();
        self.order = BTreeMap::new();
        self.expiries = BTreeSet::new();
        self.key_heap = 0;
    }

    fn bytes(&self) -> usize {
        // A B-tree node holds up to 11 entries, about two thirds full.
        let tree = |entry: usize| entry * 3 / 2;
        self.marks.capacity() * entry_bytes::<K, Mark>()
            + self.order.len() * tree(std::mem::size_of::<(u64, K)>())
            + self.expiries.len() * tree(std::mem::size_of::<(i64, u64)>())
            + self.key_heap
    }
}
