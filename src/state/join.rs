//! Hash joins: one input built into a table in memory, then the other
//! streamed through it. A lookup is a hash join whose table holds one record
//! per key.

use super::hash::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::pin_project;

use super::stage::{Emits, Input, Reject, StatefulOp};
use super::{KeyOf, StateSize};
use crate::metrics::StageMetrics;
use crate::record::{Field, Record, Schema, Value};
use crate::size::entry_bytes;
use crate::{Batch, Error, Result};

/// What an inner join does with a record that has no match in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Drops it, counted in the stage's
    /// [`unmatched`](crate::StageStats::unmatched).
    Drop,
    /// Makes it a record-level error under the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy) (set with `on_error` right after
    /// the join): abort (the default) fails the run naming the record, skip
    /// counts it, dead letters receive it.
    Error,
}

/// One of a join's two inputs: the table being built, or the records
/// streamed through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side<B, P> {
    /// From the input built into the table.
    Build(B),
    /// From the input streamed through the table.
    Probe(P),
}

impl<TB, TP> Input for Side<Batch<TB>, Batch<TP>> {
    type Records = Side<Vec<TB>, Vec<TP>>;

    fn len(&self) -> usize {
        match self {
            Side::Build(batch) => batch.records().len(),
            Side::Probe(batch) => batch.records().len(),
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Side::Build(batch) => batch.seq(),
            Side::Probe(batch) => batch.seq(),
        }
    }

    fn into_records(self) -> Self::Records {
        match self {
            Side::Build(batch) => Side::Build(batch.into_records()),
            Side::Probe(batch) => Side::Probe(batch.into_records()),
        }
    }
}

/// A join's two inputs, one after the other: the build input to its end,
/// then the probe input. The probe input is not polled before the build
/// input has ended, so its source is not read (not even opened, for a file)
/// before the table is complete; an error in the build input ends the join
/// there.
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct BuildFirst<B, P> {
    #[pin]
    build: Option<B>,
    #[pin]
    probe: P,
}

impl<B, P> BuildFirst<B, P> {
    pub(crate) fn new(build: B, probe: P) -> Self {
        BuildFirst {
            build: Some(build),
            probe,
        }
    }
}

impl<B, P, TB, TP> Stream for BuildFirst<B, P>
where
    B: Stream<Item = Result<Batch<TB>>>,
    P: Stream<Item = Result<Batch<TP>>>,
{
    type Item = Result<Side<Batch<TB>, Batch<TP>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some(build) = this.build.as_mut().as_pin_mut() {
            match ready!(build.poll_next(cx)) {
                Some(item) => return Poll::Ready(Some(item.map(Side::Build))),
                // Dropped at its end: a source's resources go now.
                None => this.build.set(None),
            }
        }
        this.probe
            .poll_next(cx)
            .map(|item| item.map(|batch| batch.map(Side::Probe)))
    }
}

impl<B, P> fmt::Debug for BuildFirst<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildFirst")
            .field("building", &self.build.is_some())
            .finish_non_exhaustive()
    }
}

/// What looking a record up in a table found.
pub(crate) enum Probe<T> {
    /// This many matches, each given to the output.
    Matched(usize),
    /// None: the record back.
    Missed(T),
}

/// How a join's table holds the build input's records: [`Unique`] (one per
/// key) or [`Multi`] (all of them).
pub(crate) trait Table<K, T, V>: Send + 'static {
    /// Takes `value` under `key`; gives both back if the table keeps one
    /// record per key and has one under `key` already.
    fn insert(&mut self, key: K, value: V) -> std::result::Result<(), (K, V)>;

    /// Gives `record` with each record under `key` to `each` (cloning
    /// `record` for all but the last).
    fn probe<F>(&self, key: &K, record: T, each: F) -> Result<Probe<T>>
    where
        F: FnMut(T, &V) -> Result<()>;

    /// Records held.
    fn rows(&self) -> usize;

    /// Estimated bytes held.
    fn bytes(&self) -> usize;

    /// Lets everything go.
    fn clear(&mut self);
}

/// A table of one record per key, for a lookup: a second record with a key
/// already held is refused (a record error under the stage's policy), or,
/// with [`keep_last`](super::Join::keep_last), replaces the first.
pub struct Unique<K, V> {
    map: HashMap<K, V>,
    keep_last: bool,
    heap: usize,
}

impl<K, V> Unique<K, V> {
    pub(crate) fn new() -> Self {
        Unique {
            map: HashMap::default(),
            keep_last: false,
            heap: 0,
        }
    }

    pub(crate) fn keep_last(&mut self) {
        self.keep_last = true;
    }
}

impl<K, V> fmt::Debug for Unique<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unique")
            .field("keys", &self.map.len())
            .field("keep_last", &self.keep_last)
            .finish()
    }
}

impl<K, T, V> Table<K, T, V> for Unique<K, V>
where
    K: Hash + Eq + StateSize + Send + 'static,
    V: StateSize + Send + 'static,
{
    fn insert(&mut self, key: K, value: V) -> std::result::Result<(), (K, V)> {
        if let Some(held) = self.map.get_mut(&key) {
            if !self.keep_last {
                return Err((key, value));
            }
            self.heap = (self.heap + value.heap_bytes()).saturating_sub(held.heap_bytes());
            *held = value;
            return Ok(());
        }
        self.heap += key.heap_bytes() + value.heap_bytes();
        self.map.insert(key, value);
        Ok(())
    }

    fn probe<F>(&self, key: &K, record: T, mut each: F) -> Result<Probe<T>>
    where
        F: FnMut(T, &V) -> Result<()>,
    {
        match self.map.get(key) {
            Some(value) => {
                each(record, value)?;
                Ok(Probe::Matched(1))
            }
            None => Ok(Probe::Missed(record)),
        }
    }

    fn rows(&self) -> usize {
        self.map.len()
    }

    fn bytes(&self) -> usize {
        self.map.capacity() * entry_bytes::<K, V>() + self.heap
    }

    fn clear(&mut self) {
        self.map = HashMap::default();
        self.heap = 0;
    }
}

/// A table of every record of each key, for a hash join: a record of the
/// streamed input matches them all (1:N), in the order they came.
pub struct Multi<K, V> {
    map: HashMap<K, Vec<V>>,
    rows: usize,
    heap: usize,
}

impl<K, V> Multi<K, V> {
    pub(crate) fn new() -> Self {
        Multi {
            map: HashMap::default(),
            rows: 0,
            heap: 0,
        }
    }
}

impl<K, V> fmt::Debug for Multi<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi")
            .field("keys", &self.map.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl<K, T, V> Table<K, T, V> for Multi<K, V>
where
    K: Hash + Eq + StateSize + Send + 'static,
    T: Clone,
    V: StateSize + Send + 'static,
{
    fn insert(&mut self, key: K, value: V) -> std::result::Result<(), (K, V)> {
        let size = std::mem::size_of::<V>();
        let heap = value.heap_bytes();
        let rows = match self.map.get_mut(&key) {
            Some(rows) => rows,
            None => {
                self.heap += key.heap_bytes();
                self.map.entry(key).or_default()
            }
        };
        let before = rows.capacity();
        rows.push(value);
        self.heap += (rows.capacity() - before) * size + heap;
        self.rows += 1;
        Ok(())
    }

    fn probe<F>(&self, key: &K, record: T, mut each: F) -> Result<Probe<T>>
    where
        F: FnMut(T, &V) -> Result<()>,
    {
        match self.map.get(key).map(Vec::as_slice) {
            Some([rest @ .., last]) => {
                for value in rest {
                    each(record.clone(), value)?;
                }
                each(record, last)?;
                Ok(Probe::Matched(rest.len() + 1))
            }
            _ => Ok(Probe::Missed(record)),
        }
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn bytes(&self) -> usize {
        self.map.capacity() * entry_bytes::<K, Vec<V>>() + self.heap
    }

    fn clear(&mut self) {
        self.map = HashMap::default();
        self.rows = 0;
        self.heap = 0;
    }
}

/// How a join makes its output records of a streamed record and its
/// match: implemented by [`Left`], [`Inner`], [`MergedLeft`] and
/// [`MergedInner`], which [`Join`](super::Join)'s methods choose.
pub trait JoinOutput<T, V>: Send + 'static {
    /// The output record.
    type Out: Send + 'static;
    /// Whether a record without a match goes on (a left join).
    const KEEPS_UNMATCHED: bool;

    /// A record of the table, as it is taken in.
    fn build_seen(&mut self, _value: &V) {}

    /// The output of `record` and one of its matches.
    fn matched(&mut self, record: T, value: &V) -> Result<Self::Out>;

    /// The output of `record` without a match (a left join only).
    fn unmatched(&mut self, _record: T) -> Result<Self::Out> {
        Err(Error::msg(
            "an inner join has no output for a record without a match",
        ))
    }
}

/// A left join's output: `(record, Some(match))`, or `(record, None)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Left;

impl<T, V> JoinOutput<T, V> for Left
where
    T: Send + 'static,
    V: Clone + Send + 'static,
{
    type Out = (T, Option<V>);
    const KEEPS_UNMATCHED: bool = true;

    fn matched(&mut self, record: T, value: &V) -> Result<(T, Option<V>)> {
        Ok((record, Some(value.clone())))
    }

    fn unmatched(&mut self, record: T) -> Result<(T, Option<V>)> {
        Ok((record, None))
    }
}

/// An inner join's output: `(record, match)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inner;

impl<T, V> JoinOutput<T, V> for Inner
where
    T: Send + 'static,
    V: Clone + Send + 'static,
{
    type Out = (T, V);
    const KEEPS_UNMATCHED: bool = false;

    fn matched(&mut self, record: T, value: &V) -> Result<(T, V)> {
        Ok((record, value.clone()))
    }
}

/// Dynamic records merged: the streamed record's columns, then the table
/// record's (each named with the prefix), less the table's key columns
/// named as the stream's (equal in a match, they appear once).
#[derive(Debug)]
pub(crate) struct Merge {
    kind: &'static str,
    prefix: Arc<str>,
    /// Table columns left out: its key columns named as the stream's.
    dropped: Vec<Arc<str>>,
    /// The first table record's columns, for a left join's misses.
    table: Option<Arc<Schema>>,
    layout: Option<Layout>,
}

/// The merged columns for one pair of schemas.
#[derive(Debug)]
struct Layout {
    probe: Arc<Schema>,
    build: Arc<Schema>,
    merged: Arc<Schema>,
    /// The table columns kept, by index.
    kept: Vec<usize>,
}

impl Merge {
    pub(crate) fn new(
        kind: &'static str,
        prefix: Arc<str>,
        probe_keys: Option<&[Arc<str>]>,
        build_keys: Option<&[Arc<str>]>,
    ) -> Self {
        let dropped = match (probe_keys, build_keys) {
            (Some(probe), Some(build)) => probe
                .iter()
                .zip(build)
                .filter(|(p, b)| p == b)
                .map(|(_, b)| b.clone())
                .collect(),
            _ => Vec::new(),
        };
        Merge {
            kind,
            prefix,
            dropped,
            table: None,
            layout: None,
        }
    }

    fn layout(&mut self, probe: &Arc<Schema>, build: &Arc<Schema>) -> Result<&Layout> {
        let fresh = !matches!(&self.layout, Some(l) if Arc::ptr_eq(&l.probe, probe) && Arc::ptr_eq(&l.build, build));
        if fresh {
            let mut fields: Vec<Field> = probe.fields().to_vec();
            let mut kept = Vec::new();
            for (i, field) in build.fields().iter().enumerate() {
                if self.dropped.iter().any(|d| &**d == field.name()) {
                    continue;
                }
                let name = format!("{}{}", self.prefix, field.name());
                if fields.iter().any(|f| f.name() == name) {
                    return Err(Error::config(format!(
                        "{}: the table's column {:?} would be named {name:?}, as a column \
                         the output already has (the stream's: {}); name the table's columns \
                         apart with .prefix(\"...\") (its key columns named as the stream's \
                         appear once, unprefixed)",
                        self.kind,
                        field.name(),
                        probe.names().collect::<Vec<_>>().join(", ")
                    )));
                }
                fields.push(Field::new(name, field.data_type()));
                kept.push(i);
            }
            self.layout = Some(Layout {
                probe: probe.clone(),
                build: build.clone(),
                merged: Arc::new(Schema::from_fields(fields)),
                kept,
            });
        }
        Ok(self.layout.as_ref().expect("set above"))
    }

    fn build_seen(&mut self, value: &Record) {
        if self.table.is_none() {
            self.table = Some(value.schema().clone());
        }
    }

    fn matched(&mut self, record: Record, value: &Record) -> Result<Record> {
        let layout = self.layout(record.schema(), value.schema())?;
        let (merged, kept) = (layout.merged.clone(), &layout.kept);
        let mut values = record.into_values();
        values.reserve(kept.len());
        values.extend(kept.iter().map(|&i| value.values()[i].clone()));
        Ok(Record::new(merged, values))
    }

    fn unmatched(&mut self, record: Record) -> Result<Record> {
        let Some(table) = self.table.clone() else {
            // An empty table: no table columns are known.
            return Ok(record);
        };
        let layout = self.layout(record.schema(), &table)?;
        let (merged, nulls) = (layout.merged.clone(), layout.kept.len());
        let mut values = record.into_values();
        values.resize(values.len() + nulls, Value::Null);
        Ok(Record::new(merged, values))
    }
}

/// A left join's output of dynamic records: one merged record, the table's
/// columns null when there is no match.
#[derive(Debug)]
pub struct MergedLeft(pub(crate) Merge);

impl JoinOutput<Record, Record> for MergedLeft {
    type Out = Record;
    const KEEPS_UNMATCHED: bool = true;

    fn build_seen(&mut self, value: &Record) {
        self.0.build_seen(value);
    }

    fn matched(&mut self, record: Record, value: &Record) -> Result<Record> {
        self.0.matched(record, value)
    }

    fn unmatched(&mut self, record: Record) -> Result<Record> {
        self.0.unmatched(record)
    }
}

/// An inner join's output of dynamic records: one merged record per match.
#[derive(Debug)]
pub struct MergedInner(pub(crate) Merge);

impl JoinOutput<Record, Record> for MergedInner {
    type Out = Record;
    const KEEPS_UNMATCHED: bool = false;

    fn matched(&mut self, record: Record, value: &Record) -> Result<Record> {
        self.0.matched(record, value)
    }
}

/// Builds a table of one input's records by key, then streams the other's
/// through it, making an output record per match. Made by
/// [`Pipeline::lookup`](crate::Pipeline::lookup) and
/// [`Pipeline::hash_join`](crate::Pipeline::hash_join).
pub struct HashJoin<T, V, KP, KB, B, O> {
    probe_key: KP,
    build_key: KB,
    table: B,
    output: O,
    miss: Miss,
    kind: &'static str,
    records: PhantomData<fn(T, V)>,
}

impl<T, V, KP, KB, B, O> HashJoin<T, V, KP, KB, B, O> {
    pub(crate) fn new(
        kind: &'static str,
        probe_key: KP,
        build_key: KB,
        table: B,
        output: O,
        miss: Miss,
    ) -> Self {
        HashJoin {
            probe_key,
            build_key,
            table,
            output,
            miss,
            kind,
            records: PhantomData,
        }
    }
}

impl<T, V, KP, KB, B: fmt::Debug, O> fmt::Debug for HashJoin<T, V, KP, KB, B, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashJoin")
            .field("kind", &self.kind)
            .field("table", &self.table)
            .field("miss", &self.miss)
            .finish_non_exhaustive()
    }
}

impl<T, V, KP, KB, B, O> Emits for HashJoin<T, V, KP, KB, B, O>
where
    O: JoinOutput<T, V>,
{
    type Out = O::Out;
}

impl<T, V, KP, KB, B, O> StatefulOp<Side<Vec<V>, Vec<T>>> for HashJoin<T, V, KP, KB, B, O>
where
    T: fmt::Debug + Send + 'static,
    V: fmt::Debug + Send + 'static,
    KP: KeyOf<T>,
    KP::Key: fmt::Debug,
    KB: KeyOf<V, Key = KP::Key>,
    B: Table<KP::Key, T, V>,
    O: JoinOutput<T, V>,
{
    fn apply(
        &mut self,
        records: Side<Vec<V>, Vec<T>>,
        out: &mut Vec<O::Out>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()> {
        match records {
            Side::Build(values) => {
                // Into the table.
                let (mut absorbed, mut unmatched) = (0, 0);
                for value in values {
                    let key = match self.build_key.key_of(&value) {
                        Ok(key) => key,
                        Err(error) => {
                            rejects.push(Reject::of(error, &value));
                            continue;
                        }
                    };
                    if self.build_key.has_null(&key) {
                        // It could match nothing.
                        unmatched += 1;
                        continue;
                    }
                    self.output.build_seen(&value);
                    match self.table.insert(key, value) {
                        Ok(()) => absorbed += 1,
                        Err((key, value)) => {
                            let error = Error::msg(format!(
                                "{}: the table has a record with key {key:?} already; it keeps \
                                 one record per key (the first; .keep_last() keeps the last \
                                 instead)",
                                self.kind
                            ))
                            .at_record_level();
                            rejects.push(Reject::of(error, &value));
                        }
                    }
                }
                stage.absorb(absorbed);
                stage.unmatched(unmatched);
            }
            Side::Probe(records) => {
                // Through the table.
                let (mut expanded, mut unmatched, mut missed) = (0, 0, 0);
                out.reserve(records.len());
                for record in records {
                    let key = match self.probe_key.key_of(&record) {
                        Ok(key) => key,
                        Err(error) => {
                            rejects.push(Reject::of(error, &record));
                            continue;
                        }
                    };
                    let probed = if self.probe_key.has_null(&key) {
                        Probe::Missed(record)
                    } else {
                        let output = &mut self.output;
                        self.table.probe(&key, record, |record, value| {
                            out.push(output.matched(record, value)?);
                            Ok(())
                        })?
                    };
                    match probed {
                        Probe::Matched(n) => expanded += n - 1,
                        Probe::Missed(record) if O::KEEPS_UNMATCHED => {
                            out.push(self.output.unmatched(record)?);
                            missed += 1;
                        }
                        Probe::Missed(_) if self.miss == Miss::Drop => unmatched += 1,
                        Probe::Missed(record) => {
                            let error = Error::msg(format!(
                                "{}: no record of the table has key {key:?}",
                                self.kind
                            ))
                            .at_record_level();
                            rejects.push(Reject::of(error, &record));
                        }
                    }
                }
                stage.expand(expanded);
                stage.unmatched(unmatched);
                stage.missed(missed);
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<O::Out>, _stage: &StageMetrics) -> Result<()> {
        // Both inputs have ended: the table is needed no more.
        self.table.clear();
        Ok(())
    }

    fn state_size(&self) -> (u64, u64) {
        (self.table.rows() as u64, self.table.bytes() as u64)
    }
}
