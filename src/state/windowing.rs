//! The operators of windowed stages: time windows (fixed or sessions, by
//! event or processing time) and count windows.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use super::hash::{HashMap, IndexMap};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::size_of;
use std::sync::Arc;

use tokio::time::Instant;

use super::agg::update_counted as update;
use super::agg::{Aggregate, Merge};
use super::aggregate::Output;
use super::columns::Rows;
use super::stage::{Emits, Reject, StatefulOp};
use super::watermark::{Stamp, WindowClock};
use super::window::{SessionWindow, Window, Windowed};
use super::{Key, KeyOf, StateSize};
use crate::metrics::StageMetrics;
use crate::record::{Record, Timestamp, Value};
use crate::size::entry_bytes;
use crate::{Error, Result};

/// How a windowed stage's windows become its output records.
pub trait WindowOutput<K, V>: Send + 'static {
    /// The output record.
    type Out: Send + 'static;
    /// The records for these windows, in their order.
    fn make(&mut self, windows: Vec<Windowed<K, V>>) -> Vec<Self::Out>;
}

/// Windows as [`Windowed`] records, as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsWindowed;

impl<K: Send + 'static, V: Send + 'static> WindowOutput<K, V> for AsWindowed {
    type Out = Windowed<K, V>;

    fn make(&mut self, windows: Vec<Windowed<K, V>>) -> Vec<Windowed<K, V>> {
        windows
    }
}

/// Windows of dynamic aggregates as records: the key columns, then
/// `window_start` and `window_end` (timestamps), then one column per
/// aggregate.
#[derive(Debug)]
pub struct WindowRows {
    rows: Rows,
}

impl WindowRows {
    pub(crate) fn new(key_names: &[Arc<str>], agg_names: Vec<Arc<str>>) -> Self {
        let mut names = key_names.to_vec();
        names.extend([Arc::from("window_start"), Arc::from("window_end")]);
        WindowRows {
            rows: Rows::new(&names, agg_names),
        }
    }
}

impl WindowOutput<Key, Vec<Value>> for WindowRows {
    type Out = Record;

    fn make(&mut self, windows: Vec<Windowed<Key, Vec<Value>>>) -> Vec<Record> {
        let groups = windows
            .into_iter()
            .map(|w| {
                let mut key = w.key.into_values();
                key.push(Value::Timestamp(w.start));
                key.push(Value::Timestamp(w.end));
                (Key::new(key), w.value)
            })
            .collect();
        self.rows.make(groups)
    }
}

/// Where in a key's windows one is: its bounds, and the arrival of its
/// first record (with its end, the window's place in the stage).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: Timestamp,
    end: Timestamp,
    seq: u64,
}

/// One open window of one key (which it shares with the key's other
/// windows: keys of windowed stages are `Sync`).
struct Slot<K, Acc> {
    key: Arc<K>,
    start: Timestamp,
    /// The arrival of its latest record.
    last: u64,
    acc: Acc,
}

/// The open windows of a stage: by key (each key's windows, by start), and
/// by end then first arrival, the order they close in.
pub(crate) struct Open<K, Acc> {
    keys: IndexMap<Arc<K>, Vec<Span>>,
    windows: BTreeMap<(Timestamp, u64), Slot<K, Acc>>,
    bytes: usize,
}

impl<K, Acc> Open<K, Acc> {
    fn new() -> Self {
        Open {
            keys: IndexMap::default(),
            windows: BTreeMap::new(),
            bytes: 0,
        }
    }
}

impl<K: Hash + Eq + Clone + StateSize + Sync, Acc> Open<K, Acc> {
    /// Bytes a window costs besides its accumulator's heap: its place in the
    /// B-tree (nodes are not full: a third more) and in its key's spans.
    const WINDOW_BYTES: usize =
        (size_of::<(Timestamp, u64)>() + size_of::<Slot<K, Acc>>()) * 4 / 3 + size_of::<Span>();

    /// Bytes a key costs: its entry (and index) in the key map, its shared
    /// allocation (two counts and the key) and the key's heap.
    fn key_bytes(key: &K) -> usize {
        entry_bytes::<Arc<K>, Vec<Span>>()
            + size_of::<usize>() * 3
            + size_of::<K>()
            + key.heap_bytes()
    }

    /// The place of `key` in `keys`, added if new.
    fn key_index(&mut self, key: K) -> usize {
        match self.keys.get_index_of(&key) {
            Some(i) => i,
            None => {
                self.bytes += Self::key_bytes(&key);
                self.keys.insert_full(Arc::new(key), Vec::new()).0
            }
        }
    }

    /// Takes a record at `ts` into each fixed window holding it.
    fn take_fixed<T, A>(
        &mut self,
        window: &Window,
        agg: &mut A,
        key: K,
        ts: Timestamp,
        seq: u64,
        record: &T,
    ) where
        A: Aggregate<T, Acc = Acc>,
    {
        let i = self.key_index(key);
        let (key, spans) = self.keys.get_index_mut(i).expect("indexed above");
        for start in window.starts(ts) {
            match spans.binary_search_by_key(&start, |s| s.start) {
                Ok(j) => {
                    let span = spans[j];
                    let slot = self
                        .windows
                        .get_mut(&(span.end, span.seq))
                        .expect("a key's span has its window");
                    update(agg, &mut slot.acc, record, &mut self.bytes);
                    slot.last = seq;
                }
                Err(j) => {
                    let end = window.end(start);
                    let mut acc = agg.init();
                    agg.update(&mut acc, record);
                    self.bytes += Self::WINDOW_BYTES + agg.acc_heap(&acc);
                    let slot = Slot {
                        key: key.clone(),
                        start,
                        last: seq,
                        acc,
                    };
                    self.windows.insert((end, seq), slot);
                    spans.insert(j, Span { start, end, seq });
                }
            }
        }
    }

    /// Takes a record at `ts` into its key's session, merging the sessions
    /// it bridges.
    fn take_session<T, A>(
        &mut self,
        window: &SessionWindow,
        agg: &mut A,
        key: K,
        ts: Timestamp,
        seq: u64,
        record: &T,
    ) where
        A: Merge<T, Acc = Acc>,
    {
        let (mut start, mut end) = window.around(ts);
        let i = self.key_index(key);
        let (key, spans) = self.keys.get_index_mut(i).expect("indexed above");
        // A key's sessions are disjoint, so sorted by end too: those the
        // record's own overlaps are a run.
        let lo = spans.partition_point(|s| s.end <= start);
        let hi = spans.partition_point(|s| s.start < end);
        let mut parts: Vec<(u64, Slot<K, Acc>)> = spans
            .drain(lo..hi)
            .map(|span| {
                start = start.min(span.start);
                end = end.max(span.end);
                let slot = self
                    .windows
                    .remove(&(span.end, span.seq))
                    .expect("a key's span has its window");
                (span.seq, slot)
            })
            .collect();
        // The part whose first record came first takes the others in.
        parts.sort_unstable_by_key(|(seq, _)| *seq);
        let mut parts = parts.into_iter();
        let (first, mut slot) = parts.next().unwrap_or_else(|| {
            let acc = agg.init();
            self.bytes += Self::WINDOW_BYTES + agg.acc_heap(&acc);
            let slot = Slot {
                key: key.clone(),
                start,
                last: seq,
                acc,
            };
            (seq, slot)
        });
        for (_, other) in parts {
            let freed = Self::WINDOW_BYTES + agg.acc_heap(&other.acc) + agg.acc_heap(&slot.acc);
            self.bytes = self.bytes.saturating_sub(freed);
            let other_has_last = other.last > slot.last;
            slot.last = slot.last.max(other.last);
            agg.merge(&mut slot.acc, other.acc, other_has_last);
            self.bytes += agg.acc_heap(&slot.acc);
        }
        update(agg, &mut slot.acc, record, &mut self.bytes);
        slot.start = start;
        slot.last = seq;
        self.windows.insert((end, first), slot);
        spans.insert(
            lo,
            Span {
                start,
                end,
                seq: first,
            },
        );
    }

    /// Closes the windows that end at or before `upto` (all of them for
    /// `None`), in the order they close in.
    fn close<T, A>(&mut self, upto: Option<Timestamp>, agg: &mut A) -> Vec<Windowed<K, A::Out>>
    where
        A: Aggregate<T, Acc = Acc>,
    {
        let mut closed = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            let (end, _) = *entry.key();
            if upto.is_some_and(|watermark| end > watermark) {
                break;
            }
            let Slot {
                key, start, acc, ..
            } = entry.remove();
            let i = self
                .keys
                .get_index_of(&*key)
                .expect("an open window's key is indexed");
            let spans = &mut self.keys[i];
            if let Ok(j) = spans.binary_search_by_key(&start, |s| s.start) {
                spans.remove(j);
            }
            if spans.is_empty() {
                let (gone, _) = self.keys.swap_remove_index(i).expect("indexed");
                self.bytes = self.bytes.saturating_sub(Self::key_bytes(&gone));
            }
            self.bytes = self
                .bytes
                .saturating_sub(Self::WINDOW_BYTES + agg.acc_heap(&acc));
            let key = Arc::try_unwrap(key).unwrap_or_else(|key| (*key).clone());
            closed.push(Windowed {
                key,
                start,
                end,
                value: agg.finish(acc),
            });
        }
        closed
    }

    /// The end of the window that closes first.
    fn next_end(&self) -> Option<Timestamp> {
        self.windows.first_key_value().map(|(&(end, _), _)| end)
    }
}

/// How a kind of time window takes a record in: fixed windows take any
/// aggregate, sessions one that can merge.
pub(crate) trait Assign<T, A: Aggregate<T>>: Send + 'static {
    fn take<K: Hash + Eq + Clone + StateSize + Sync>(
        &self,
        open: &mut Open<K, A::Acc>,
        agg: &mut A,
        key: K,
        ts: Timestamp,
        seq: u64,
        record: &T,
    );
}

impl<T, A: Aggregate<T>> Assign<T, A> for Window {
    fn take<K: Hash + Eq + Clone + StateSize + Sync>(
        &self,
        open: &mut Open<K, A::Acc>,
        agg: &mut A,
        key: K,
        ts: Timestamp,
        seq: u64,
        record: &T,
    ) {
        open.take_fixed(self, agg, key, ts, seq, record);
    }
}

impl<T, A: Merge<T>> Assign<T, A> for SessionWindow {
    fn take<K: Hash + Eq + Clone + StateSize + Sync>(
        &self,
        open: &mut Open<K, A::Acc>,
        agg: &mut A,
        key: K,
        ts: Timestamp,
        seq: u64,
        record: &T,
    ) {
        open.take_session(self, agg, key, ts, seq, record);
    }
}

/// Groups records by key and by time window (fixed or sessions, by event or
/// processing time) and runs an [`Aggregate`] over each; emits a window's
/// result when the watermark passes its end, and at the end of the input all
/// those left: in order of their end, and windows that end together in the
/// order their first records came.
pub struct TimeWindows<T, KF, Clk, W, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    key: KF,
    clock: Clk,
    window: W,
    agg: A,
    make: M,
    open: Open<KF::Key, A::Acc>,
    /// Records taken so far: the arrival order.
    seq: u64,
    record: PhantomData<fn(T)>,
}

impl<T, KF, Clk, W, A, M> TimeWindows<T, KF, Clk, W, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    pub(crate) fn new(key: KF, clock: Clk, window: W, agg: A, make: M) -> Self {
        TimeWindows {
            key,
            clock,
            window,
            agg,
            make,
            open: Open::new(),
            seq: 0,
            record: PhantomData,
        }
    }

    /// Emits the windows that end at or before `upto` (all for `None`).
    fn emit(&mut self, upto: Option<Timestamp>, out: &mut Vec<M::Out>, stage: &StageMetrics)
    where
        KF::Key: Sync,
        M: WindowOutput<KF::Key, A::Out>,
    {
        let closed = self.open.close(upto, &mut self.agg);
        if !closed.is_empty() {
            let made = self.make.make(closed);
            stage.expand(made.len());
            out.extend(made);
        }
    }
}

impl<T, KF, Clk, W, A, M> fmt::Debug for TimeWindows<T, KF, Clk, W, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
    Clk: fmt::Debug,
    W: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindows")
            .field("clock", &self.clock)
            .field("window", &self.window)
            .field("open", &self.open.windows.len())
            .field("bytes", &self.open.bytes)
            .finish_non_exhaustive()
    }
}

impl<T, KF, Clk, W, A, M> Emits for TimeWindows<T, KF, Clk, W, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
    M: WindowOutput<KF::Key, A::Out>,
{
    type Out = M::Out;
}

impl<T, KF, Clk, W, A, M> StatefulOp<Vec<T>> for TimeWindows<T, KF, Clk, W, A, M>
where
    T: fmt::Debug + Send + 'static,
    KF: KeyOf<T>,
    KF::Key: Sync,
    Clk: WindowClock<T>,
    W: Assign<T, A>,
    A: Aggregate<T>,
    M: WindowOutput<KF::Key, A::Out>,
{
    fn apply(
        &mut self,
        records: Vec<T>,
        out: &mut Vec<M::Out>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()> {
        self.clock.arrive(Instant::now());
        let mut absorbed = 0;
        for record in records {
            let ts = match self.clock.stamp(&record) {
                Stamp::On(ts) => ts,
                Stamp::Late(ts) => {
                    let text = format!("{record:?}");
                    let error = Error::msg(format!(
                        "late record {}: {}",
                        short(&text),
                        self.clock.late(ts)
                    ))
                    .at_record_level();
                    rejects.push(Reject {
                        error,
                        record: Some(text),
                        late: true,
                    });
                    continue;
                }
                Stamp::Failed(error) => {
                    rejects.push(Reject::of(error, &record));
                    continue;
                }
            };
            let key = match self.key.key_of(&record) {
                Ok(key) => key,
                Err(error) => {
                    rejects.push(Reject::of(error, &record));
                    continue;
                }
            };
            self.clock.observe(ts);
            self.seq += 1;
            self.window
                .take(&mut self.open, &mut self.agg, key, ts, self.seq, &record);
            absorbed += 1;
        }
        stage.absorb(absorbed);
        let watermark = self.clock.watermark();
        self.emit(Some(watermark), out, stage);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<M::Out>, stage: &StageMetrics) -> Result<()> {
        self.emit(None, out, stage);
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        self.clock.due(self.open.next_end()?)
    }

    fn on_timer(
        &mut self,
        now: Instant,
        out: &mut Vec<M::Out>,
        stage: &StageMetrics,
    ) -> Result<()> {
        self.clock.tick(now);
        let watermark = self.clock.watermark();
        self.emit(Some(watermark), out, stage);
        Ok(())
    }

    fn state_size(&self) -> (u64, u64) {
        (self.open.windows.len() as u64, self.open.bytes as u64)
    }
}

/// The first 200 characters of a record's text, for an error message.
fn short(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(200) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

/// A key's window being filled.
struct Partial<Acc> {
    acc: Acc,
    len: u64,
    /// The arrival of its first record.
    seq: u64,
}

/// Groups records by key, `n` at a time, and runs an [`Aggregate`] over
/// each group: emits a key's result as soon as its `n`-th record comes, and
/// at the end of the input each key's partial group, in the order their
/// first records came.
pub struct CountWindows<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    key: KF,
    n: u64,
    agg: A,
    make: M,
    partial: HashMap<KF::Key, Partial<A::Acc>>,
    seq: u64,
    bytes: usize,
    record: PhantomData<fn(T)>,
}

impl<T, KF, A, M> CountWindows<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    pub(crate) fn new(key: KF, n: u64, agg: A, make: M) -> Self {
        CountWindows {
            key,
            n,
            agg,
            make,
            partial: HashMap::default(),
            seq: 0,
            bytes: 0,
            record: PhantomData,
        }
    }

    /// Bytes a key's partial window costs besides the heap of key and
    /// accumulator.
    fn entry_bytes() -> usize {
        entry_bytes::<KF::Key, Partial<A::Acc>>()
    }
}

impl<T, KF, A, M> fmt::Debug for CountWindows<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountWindows")
            .field("n", &self.n)
            .field("open", &self.partial.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<T, KF, A, M> Emits for CountWindows<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
    M: Output<KF::Key, A::Out>,
{
    type Out = M::Out;
}

impl<T, KF, A, M> StatefulOp<Vec<T>> for CountWindows<T, KF, A, M>
where
    T: fmt::Debug + Send + 'static,
    KF: KeyOf<T>,
    A: Aggregate<T>,
    M: Output<KF::Key, A::Out>,
{
    fn apply(
        &mut self,
        records: Vec<T>,
        out: &mut Vec<M::Out>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()> {
        let mut absorbed = 0;
        let mut full = Vec::new();
        for record in records {
            let key = match self.key.key_of(&record) {
                Ok(key) => key,
                Err(error) => {
                    rejects.push(Reject::of(error, &record));
                    continue;
                }
            };
            self.seq += 1;
            absorbed += 1;
            let agg = &mut self.agg;
            match self.partial.entry(key) {
                Entry::Occupied(mut entry) => {
                    let partial = entry.get_mut();
                    update(agg, &mut partial.acc, &record, &mut self.bytes);
                    partial.len += 1;
                    if partial.len == self.n {
                        let (key, partial) = entry.remove_entry();
                        let freed =
                            Self::entry_bytes() + key.heap_bytes() + agg.acc_heap(&partial.acc);
                        self.bytes = self.bytes.saturating_sub(freed);
                        full.push((key, agg.finish(partial.acc)));
                    }
                }
                Entry::Vacant(entry) => {
                    let mut acc = agg.init();
                    agg.update(&mut acc, &record);
                    if self.n == 1 {
                        full.push((entry.into_key(), agg.finish(acc)));
                    } else {
                        self.bytes +=
                            Self::entry_bytes() + entry.key().heap_bytes() + agg.acc_heap(&acc);
                        entry.insert(Partial {
                            acc,
                            len: 1,
                            seq: self.seq,
                        });
                    }
                }
            }
        }
        stage.absorb(absorbed);
        if !full.is_empty() {
            let made = self.make.make(full);
            stage.expand(made.len());
            out.extend(made);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<M::Out>, stage: &StageMetrics) -> Result<()> {
        let mut partial: Vec<_> = std::mem::take(&mut self.partial).into_iter().collect();
        partial.sort_unstable_by_key(|(_, p)| p.seq);
        let groups = partial
            .into_iter()
            .map(|(key, p)| (key, self.agg.finish(p.acc)))
            .collect();
        self.bytes = 0;
        let made = self.make.make(groups);
        stage.expand(made.len());
        out.extend(made);
        Ok(())
    }

    fn state_size(&self) -> (u64, u64) {
        (self.partial.len() as u64, self.bytes as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::agg;
    use std::time::Duration;

    impl<K: Hash + Eq + Clone + StateSize + Sync, Acc> Open<K, Acc> {
        /// The bytes held, counted afresh.
        fn recount<T, A: Aggregate<T, Acc = Acc>>(&self, agg: &A) -> usize {
            let keys: usize = self.keys.keys().map(|k| Self::key_bytes(k)).sum();
            let windows: usize = self
                .windows
                .values()
                .map(|slot| Self::WINDOW_BYTES + agg.acc_heap(&slot.acc))
                .sum();
            keys + windows
        }

        /// Every span has its window and the other way round.
        fn check(&self) {
            let spans: usize = self.keys.values().map(Vec::len).sum();
            assert_eq!(spans, self.windows.len());
            for (key, spans) in &self.keys {
                assert!(!spans.is_empty());
                assert!(spans.windows(2).all(|w| w[0].start < w[1].start));
                for span in spans {
                    let slot = &self.windows[&(span.end, span.seq)];
                    assert!(*slot.key == **key && slot.start == span.start);
                }
            }
        }
    }

    /// A few thousand pseudo-random steps (an LCG: no dependency).
    fn steps() -> impl Iterator<Item = (String, i64, i64, bool)> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        std::iter::from_fn(move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let r = x >> 33;
            Some((
                format!("key-{}", r % 7),
                (r / 7 % 500) as i64,
                (r / 3500 % 40) as i64,
                r.is_multiple_of(11),
            ))
        })
        .take(3000)
    }

    #[test]
    fn bytes_follow_what_fixed_and_session_windows_hold() {
        let sliding = Window::sliding(Duration::from_micros(30), Duration::from_micros(7));
        let session = Window::session(Duration::from_micros(9));
        for fixed in [true, false] {
            let mut agg = agg::count_distinct(|v: &i64| *v);
            let mut open: Open<String, _> = Open::new();
            for (seq, (key, jitter, value, close)) in steps().enumerate() {
                // Times move on, out of order; the watermark follows.
                let now = seq as i64 / 6;
                let ts = Timestamp::from_micros(now + jitter % 60);
                if fixed {
                    open.take_fixed(&sliding, &mut agg, key, ts, seq as u64, &value);
                } else {
                    open.take_session(&session, &mut agg, key, ts, seq as u64, &value);
                }
                if close {
                    open.close(Some(Timestamp::from_micros(now - 10)), &mut agg);
                }
                open.check();
                assert_eq!(open.bytes, open.recount(&agg));
            }
            let left = open.windows.len();
            assert!(left > 0);
            assert_eq!(open.close(None, &mut agg).len(), left);
            assert_eq!((open.bytes, open.keys.len()), (0, 0));
        }
    }
}
