//! Interval joins: two streams read together, a record of each paired when
//! their keys are equal and the second's timestamp lies within an interval
//! around the first's; what neither input can match any more is let go of
//! as the watermark passes it.

use std::collections::BTreeMap;

use super::hash::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project::pin_project;

use super::stage::{Emits, Input, Reject, StatefulOp};
use super::{KeyOf, StateSize};
use crate::metrics::StageMetrics;
use crate::record::Timestamp;
use crate::size::entry_bytes;
use crate::{Batch, Error, Result};

/// Where a record of the second input must lie, in event time, to match a
/// record of the first: `b.ts` within `[a.ts + lower, a.ts + upper]`, both
/// ends included; and how late a record may come (the
/// [`lateness`](Interval::lateness)). For
/// [`KeyBy::interval_join`](super::KeyBy::interval_join).
///
/// ```
/// use dataflare::state::Interval;
/// use std::time::Duration;
///
/// let min = Duration::from_secs(60);
/// let _near = Interval::around(5 * min, 5 * min); // [a - 5 min, a + 5 min]
/// let _next_hour = Interval::after(Duration::ZERO, 60 * min); // [a, a + 1 h]
/// let _day_before = Interval::before(Duration::ZERO, 24 * 60 * min).lateness(min);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// In microseconds, from the first record's timestamp.
    lower: i64,
    upper: i64,
    lateness: i64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Interval {
    /// `b.ts` within `[a.ts - before, a.ts + after]`.
    pub fn around(before: Duration, after: Duration) -> Interval {
        Interval {
            lower: -micros(before),
            upper: micros(after),
            lateness: 0,
        }
    }

    /// `b.ts` within `[a.ts + from, a.ts + to]`: `b` after `a`.
    ///
    /// # Panics
    ///
    /// If `from` is after `to`.
    #[track_caller]
    pub fn after(from: Duration, to: Duration) -> Interval {
        assert!(
            from <= to,
            "Interval::after: from ({from:?}) is after to ({to:?})"
        );
        Interval {
            lower: micros(from),
            upper: micros(to),
            lateness: 0,
        }
    }

    /// `b.ts` within `[a.ts - to, a.ts - from]`: `b` before `a`.
    ///
    /// # Panics
    ///
    /// If `from` is after `to`.
    #[track_caller]
    pub fn before(from: Duration, to: Duration) -> Interval {
        assert!(
            from <= to,
            "Interval::before: from ({from:?}) is after to ({to:?})"
        );
        Interval {
            lower: -micros(to),
            upper: -micros(from),
            lateness: 0,
        }
    }

    /// How far behind the latest timestamps a record may come and still be
    /// joined (0 by default). The watermark is the least, over both inputs,
    /// of the greatest timestamp each has shown, less the lateness: a record
    /// behind it is late (a record error under the stage's policy; skipped,
    /// it counts as `late`). An input that has ended holds the watermark
    /// back no more.
    pub fn lateness(mut self, lateness: Duration) -> Interval {
        self.lateness = micros(lateness);
        self
    }
}

/// One of two inputs read together: a batch of either, or the news that one
/// has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sides<A, B> {
    /// A batch of the first input.
    Left(A),
    /// A batch of the second input.
    Right(B),
    /// The first input has ended.
    LeftEnded,
    /// The second input has ended.
    RightEnded,
}

impl<TA, TB> Input for Sides<Batch<TA>, Batch<TB>> {
    type Records = Sides<Vec<TA>, Vec<TB>>;

    fn len(&self) -> usize {
        match self {
            Sides::Left(batch) => batch.records().len(),
            Sides::Right(batch) => batch.records().len(),
            Sides::LeftEnded | Sides::RightEnded => 0,
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Sides::Left(batch) => batch.seq(),
            Sides::Right(batch) => batch.seq(),
            Sides::LeftEnded | Sides::RightEnded => 0,
        }
    }

    fn into_records(self) -> Self::Records {
        match self {
            Sides::Left(batch) => Sides::Left(batch.into_records()),
            Sides::Right(batch) => Sides::Right(batch.into_records()),
            Sides::LeftEnded => Sides::LeftEnded,
            Sides::RightEnded => Sides::RightEnded,
        }
    }

    fn is_marker(&self) -> bool {
        matches!(self, Sides::LeftEnded | Sides::RightEnded)
    }
}

/// Which input to read first: the one behind in event time, as the join
/// last saw them (`BEHIND_*`), or by turns (`EVEN`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lead(Arc<AtomicU8>);

const EVEN: u8 = 0;
const BEHIND_LEFT: u8 = 1;
const BEHIND_RIGHT: u8 = 2;

impl Lead {
    fn set(&self, max_a: i64, max_b: i64) {
        let behind = match max_a.cmp(&max_b) {
            std::cmp::Ordering::Less => BEHIND_LEFT,
            std::cmp::Ordering::Greater => BEHIND_RIGHT,
            std::cmp::Ordering::Equal => EVEN,
        };
        self.0.store(behind, Relaxed);
    }
}

/// Polls in a row an input behind in event time may be read first.
const MAX_STREAK: u8 = 4;

/// Two inputs read together: each poll starts with the input that is
/// behind in event time (the one holding the watermark back, as the join
/// tells it), or by turns when neither is, and takes the first batch either
/// has ready; so neither runs far ahead. The other input gets the first
/// turn at least one poll in `MAX_STREAK + 1`, so neither starves (an input
/// whose timestamps are stuck would otherwise keep the other from ever
/// being read, its end included). The end of each is told once. Ends when
/// both have.
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Interleave<A, B> {
    #[pin]
    a: Option<A>,
    #[pin]
    b: Option<B>,
    b_first: bool,
    /// Polls in a row started with the input behind.
    streak: u8,
    lead: Lead,
}

impl<A, B> Interleave<A, B> {
    pub(crate) fn new(a: A, b: B, lead: Lead) -> Self {
        Interleave {
            a: Some(a),
            b: Some(b),
            b_first: false,
            streak: 0,
            lead,
        }
    }
}

impl<A, B, TA, TB> Stream for Interleave<A, B>
where
    A: Stream<Item = Result<Batch<TA>>>,
    B: Stream<Item = Result<Batch<TB>>>,
{
    type Item = Result<Sides<Batch<TA>, Batch<TB>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let behind = match this.lead.0.load(Relaxed) {
            BEHIND_LEFT => Some(false),
            BEHIND_RIGHT => Some(true),
            _ => None,
        };
        *this.b_first = match behind {
            Some(b_first) if *this.streak < MAX_STREAK => {
                *this.streak += 1;
                b_first
            }
            _ => {
                *this.streak = 0;
                !*this.b_first
            }
        };
        let order = if *this.b_first { [1, 0] } else { [0, 1] };
        for side in order {
            if side == 0 {
                if let Some(a) = this.a.as_mut().as_pin_mut() {
                    match a.poll_next(cx) {
                        Poll::Ready(Some(item)) => return Poll::Ready(Some(item.map(Sides::Left))),
                        Poll::Ready(None) => {
                            this.a.set(None);
                            return Poll::Ready(Some(Ok(Sides::LeftEnded)));
                        }
                        Poll::Pending => {}
                    }
                }
            } else if let Some(b) = this.b.as_mut().as_pin_mut() {
                match b.poll_next(cx) {
                    Poll::Ready(Some(item)) => return Poll::Ready(Some(item.map(Sides::Right))),
                    Poll::Ready(None) => {
                        this.b.set(None);
                        return Poll::Ready(Some(Ok(Sides::RightEnded)));
                    }
                    Poll::Pending => {}
                }
            }
        }
        if this.a.is_none() && this.b.is_none() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<A, B> fmt::Debug for Interleave<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interleave")
            .field("left_open", &self.a.is_some())
            .field("right_open", &self.b.is_some())
            .finish()
    }
}

/// The records one side of an interval join holds: by key, each key's in
/// timestamp order (ties in arrival order), and all of them in timestamp
/// order too, to let go of the oldest.
struct Held<K, T> {
    by_key: HashMap<K, BTreeMap<(i64, u64), T>>,
    by_time: BTreeMap<(i64, u64), K>,
    heap: usize,
}

impl<K, T> Held<K, T> {
    fn new() -> Self {
        Held {
            by_key: HashMap::default(),
            by_time: BTreeMap::new(),
            heap: 0,
        }
    }
}

impl<K, T> Held<K, T>
where
    K: std::hash::Hash + Eq + Clone + StateSize,
    T: StateSize,
{
    fn insert(&mut self, key: K, at: i64, seq: u64, record: T) {
        self.heap += 2 * key.heap_bytes() + record.heap_bytes();
        self.by_time.insert((at, seq), key.clone());
        self.by_key
            .entry(key)
            .or_default()
            .insert((at, seq), record);
    }

    /// The records under `key` whose timestamps lie within `[from, to]`, in
    /// timestamp order.
    fn within(&self, key: &K, from: i64, to: i64) -> impl Iterator<Item = &T> {
        self.by_key
            .get(key)
            .filter(|_| from <= to)
            .into_iter()
            .flat_map(move |held| held.range((from, 0)..=(to, u64::MAX)).map(|(_, r)| r))
    }

    /// Lets go of the records before `cutoff`; how many.
    fn expire(&mut self, cutoff: i64) -> usize {
        let mut expired = 0;
        while let Some(entry) = self.by_time.first_entry() {
            if entry.key().0 >= cutoff {
                break;
            }
            let (at, key) = entry.remove_entry();
            let held = self
                .by_key
                .get_mut(&key)
                .expect("every record is held by key");
            let record = held.remove(&at).expect("held under its time");
            self.heap = self
                .heap
                .saturating_sub(2 * key.heap_bytes() + record.heap_bytes());
            if held.is_empty() {
                self.by_key.remove(&key);
            }
            expired += 1;
        }
        expired
    }

    fn clear(&mut self) {
        self.by_key = HashMap::default();
        self.by_time = BTreeMap::new();
        self.heap = 0;
    }

    fn len(&self) -> usize {
        self.by_time.len()
    }

    fn bytes(&self) -> usize {
        // B-tree nodes hold up to 11 entries, about two thirds full.
        let tree = |entry: usize| entry * 3 / 2;
        self.by_key.capacity() * entry_bytes::<K, BTreeMap<(i64, u64), T>>()
            + self.len()
                * (tree(std::mem::size_of::<((i64, u64), T)>())
                    + tree(std::mem::size_of::<((i64, u64), K)>()))
            + self.heap
    }
}

/// Pairs the records of two streams whose keys are equal and whose
/// timestamps lie within an [`Interval`] of each other. Made by
/// [`KeyBy::interval_join`](super::KeyBy::interval_join).
pub struct IntervalJoin<A, B, KA: KeyOf<A>, KB, TA, TB> {
    key_a: KA,
    key_b: KB,
    time_a: TA,
    time_b: TB,
    interval: Interval,
    left: Held<KA::Key, A>,
    right: Held<KA::Key, B>,
    /// The greatest timestamp each input has shown; `i64::MAX` once it has
    /// ended (it holds the watermark back no more).
    max_a: i64,
    max_b: i64,
    watermark: i64,
    seq: u64,
    /// Tells the inputs' reader which is behind.
    lead: Lead,
    records: PhantomData<fn(A, B)>,
}

impl<A, B, KA: KeyOf<A>, KB, TA, TB> IntervalJoin<A, B, KA, KB, TA, TB> {
    pub(crate) fn new(
        key_a: KA,
        key_b: KB,
        time_a: TA,
        time_b: TB,
        interval: Interval,
        lead: Lead,
    ) -> Self {
        IntervalJoin {
            key_a,
            key_b,
            time_a,
            time_b,
            interval,
            left: Held::new(),
            right: Held::new(),
            max_a: i64::MIN,
            max_b: i64::MIN,
            watermark: i64::MIN,
            seq: 0,
            lead,
            records: PhantomData,
        }
    }
}

impl<A, B, KA: KeyOf<A>, KB, TA, TB> fmt::Debug for IntervalJoin<A, B, KA, KB, TA, TB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntervalJoin")
            .field("interval", &self.interval)
            .field("left_held", &self.left.by_time.len())
            .field("right_held", &self.right.by_time.len())
            .field("watermark_micros", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl<A, B, KA, KB, TA, TB> Emits for IntervalJoin<A, B, KA, KB, TA, TB>
where
    A: Send + 'static,
    B: Send + 'static,
    KA: KeyOf<A>,
{
    type Out = (A, B);
}

/// Whether a record at `at` is behind the watermark: then its reject.
fn late(at: i64, watermark: i64, record: &impl fmt::Debug) -> Option<Reject> {
    (at < watermark).then(|| Reject {
        error: Error::msg(format!(
            "interval_join: the record at {} is behind the watermark {} (the slower \
             input's latest timestamp less the lateness); raise the lateness to join it",
            Timestamp::from_micros(at),
            Timestamp::from_micros(watermark)
        ))
        .at_record_level(),
        record: Some(format!("{record:?}")),
        late: true,
    })
}

impl<A, B, KA, KB, TA, TB> StatefulOp<Sides<Vec<A>, Vec<B>>> for IntervalJoin<A, B, KA, KB, TA, TB>
where
    A: Clone + fmt::Debug + StateSize + Send + 'static,
    B: Clone + fmt::Debug + StateSize + Send + 'static,
    KA: KeyOf<A>,
    KB: KeyOf<B, Key = KA::Key>,
    TA: FnMut(&A) -> Timestamp + Send + 'static,
    TB: FnMut(&B) -> Timestamp + Send + 'static,
{
    fn apply(
        &mut self,
        records: Sides<Vec<A>, Vec<B>>,
        out: &mut Vec<(A, B)>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()> {
        let Interval { lower, upper, .. } = self.interval;
        let (mut absorbed, mut expanded) = (0, 0);
        match records {
            Sides::Left(records) => {
                for a in records {
                    let key = match self.key_a.key_of(&a) {
                        Ok(key) => key,
                        Err(error) => {
                            rejects.push(Reject::of(error, &a));
                            continue;
                        }
                    };
                    let at = (self.time_a)(&a).micros();
                    if let Some(reject) = late(at, self.watermark, &a) {
                        rejects.push(reject);
                        continue;
                    }
                    absorbed += 1;
                    if self.key_a.has_null(&key) {
                        continue;
                    }
                    let (from, to) = (at.saturating_add(lower), at.saturating_add(upper));
                    for b in self.right.within(&key, from, to) {
                        out.push((a.clone(), b.clone()));
                        expanded += 1;
                    }
                    if self.max_b != i64::MAX {
                        self.seq += 1;
                        self.left.insert(key, at, self.seq, a);
                    }
                    if at > self.max_a {
                        self.max_a = at;
                        self.advance(stage);
                    }
                }
            }
            Sides::Right(records) => {
                for b in records {
                    let key = match self.key_b.key_of(&b) {
                        Ok(key) => key,
                        Err(error) => {
                            rejects.push(Reject::of(error, &b));
                            continue;
                        }
                    };
                    let at = (self.time_b)(&b).micros();
                    if let Some(reject) = late(at, self.watermark, &b) {
                        rejects.push(reject);
                        continue;
                    }
                    absorbed += 1;
                    if self.key_b.has_null(&key) {
                        continue;
                    }
                    let (from, to) = (at.saturating_sub(upper), at.saturating_sub(lower));
                    for a in self.left.within(&key, from, to) {
                        out.push((a.clone(), b.clone()));
                        expanded += 1;
                    }
                    if self.max_a != i64::MAX {
                        self.seq += 1;
                        self.right.insert(key, at, self.seq, b);
                    }
                    if at > self.max_b {
                        self.max_b = at;
                        self.advance(stage);
                    }
                }
            }
            Sides::LeftEnded => {
                // No more records of the first input: the second's held
                // records can match nothing more.
                self.max_a = i64::MAX;
                self.right.clear();
                self.advance(stage);
            }
            Sides::RightEnded => {
                self.max_b = i64::MAX;
                self.left.clear();
                self.advance(stage);
            }
        }
        self.lead.set(self.max_a, self.max_b);
        stage.absorb(absorbed);
        stage.expand(expanded);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<(A, B)>, _stage: &StageMetrics) -> Result<()> {
        self.left.clear();
        self.right.clear();
        Ok(())
    }

    fn state_size(&self) -> (u64, u64) {
        let rows = self.left.len() + self.right.len();
        (rows as u64, (self.left.bytes() + self.right.bytes()) as u64)
    }
}

impl<A, B, KA, KB, TA, TB> IntervalJoin<A, B, KA, KB, TA, TB>
where
    A: StateSize,
    B: StateSize,
    KA: KeyOf<A>,
{
    /// The watermark moves to the slower input's latest timestamp less the
    /// lateness: a held record that no record at or after it can match is
    /// let go of (`expired`).
    fn advance(&mut self, stage: &StageMetrics) {
        let watermark = self
            .max_a
            .min(self.max_b)
            .saturating_sub(self.interval.lateness);
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        let Interval { lower, upper, .. } = self.interval;
        // A later `b` (at the watermark or after) matches `a` only if
        // `b.ts <= a.ts + upper`; a later `a` matches `b` only if
        // `a.ts <= b.ts - lower`.
        let expired = self.left.expire(watermark.saturating_sub(upper))
            + self.right.expire(watermark.saturating_add(lower));
        stage.expire(expired);
    }
}
