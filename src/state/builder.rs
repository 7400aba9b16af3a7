//! The stateful operators of the [`Pipeline`] builder: `key_by` and what a
//! keyed pipeline computes.

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;

use super::agg::{Aggregate, Fold, Reduce};
use super::aggregate::{Aggregation, Pairs};
use super::columns::{Agg, ColumnAggregates, Rows};
use super::stage::Stateful;
use super::{Columns, KeyOf, StateLimits, StateSize};
use crate::Pipeline;
use crate::metrics::RecordErrors;
use crate::ops::{Sealed, Steps};
use crate::record::Record;
use crate::source::Source;

/// A pipeline whose records are grouped by a key, made by
/// [`Pipeline::key_by`]: say what to compute per key
/// ([`aggregate`](KeyBy::aggregate), [`fold`](KeyBy::fold),
/// [`reduce`](KeyBy::reduce), and for dynamic records
/// [`aggregate_columns`](KeyBy::aggregate_columns)), and how much state it
/// may hold ([`max_keys`](KeyBy::max_keys),
/// [`max_state_bytes`](KeyBy::max_state_bytes)).
#[must_use = "a keyed pipeline does nothing until it is aggregated"]
pub struct KeyBy<S, C, KF> {
    pub(super) pipeline: Pipeline<S, C>,
    pub(super) key: KF,
    pub(super) limits: StateLimits,
}

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Groups the records by `key`: a closure `|record| key` for typed
    /// records (any `Hash + Eq + Clone` key; [`StateSize`] says how much
    /// memory it holds), or [`Columns::new(["region", ...])`](Columns) for
    /// dynamic [`Record`]s. Then say what to compute per key.
    ///
    /// The keyed stage holds one accumulator per key until the end of its
    /// input (the final watermark: everything is emitted then, in the order
    /// the keys first appeared), bounded by [`StateLimits`] (10 M keys and
    /// 1 GiB by default): over them, the run fails naming the stage and the
    /// limit, before memory runs out.
    ///
    /// - **Emits** one record per key when its input ends.
    /// - **Backpressures** never: it takes every batch as it comes.
    /// - **Completes** after emitting, when its input has ended.
    /// - **Cancels** with the run: what it held is dropped (counted when it
    ///   was taken in, as `absorbed`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::state::agg;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec![("books", 12.5), ("toys", 3.0), ("books", 7.5)]))
    ///     .key_by(|o: &(&'static str, f64)| o.0)
    ///     .aggregate((agg::count(), agg::sum(|o: &(&'static str, f64)| o.1)))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![("books", (2, 20.0)), ("toys", (1, 3.0))]);
    /// let stage = report.stage("aggregate#1").unwrap();
    /// assert_eq!((stage.absorbed, stage.records_out, stage.state_keys), (3, 2, 0));
    /// # Ok(()) }
    /// ```
    pub fn key_by<KF>(self, key: KF) -> KeyBy<S, C, KF>
    where
        KF: KeyOf<C::Out>,
    {
        KeyBy {
            pipeline: self,
            key,
            limits: StateLimits::default(),
        }
    }
}

impl<S, C, KF> KeyBy<S, C, KF>
where
    S: Source,
    C: Steps<S::Record>,
    C::Out: fmt::Debug,
    KF: KeyOf<C::Out>,
{
    /// Sets the most keys the stage may hold (10 million by default).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use dataflare::state::agg;
    ///
    /// let report = Pipeline::from(source::iter(0..1_000u32))
    ///     .key_by(|n: &u32| *n)
    ///     .max_keys(100)
    ///     .aggregate(agg::count())
    ///     .to(sink::discard())
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.error().unwrap().to_string().contains("over its max_keys (100)"));
    /// # }
    /// ```
    #[track_caller]
    pub fn max_keys(mut self, n: u64) -> Self {
        self.limits = self.limits.max_keys(n);
        self
    }

    /// Sets the most estimated bytes of state the stage may hold (1 GiB by
    /// default).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn max_state_bytes(mut self, n: u64) -> Self {
        self.limits = self.limits.max_bytes(n);
        self
    }

    /// Runs `agg` over each key's records: one `(key, result)` record per
    /// key, emitted at the end of the input in the order keys first
    /// appeared. See [`agg`](super::agg) for the ready-made aggregates; a
    /// tuple of them computes them all.
    pub fn aggregate<A>(
        self,
        agg: A,
    ) -> Pipeline<Stateful<Sealed<S, C>, Aggregation<C::Out, KF, A, Pairs>>>
    where
        A: Aggregate<C::Out>,
    {
        self.stateful("aggregate", agg, Pairs)
    }

    /// Folds each key's records into an accumulator: each key starts at
    /// `init` (cloned), `f(&mut acc, &record)` takes each record in; one
    /// `(key, acc)` record per key at the end of the input.
    pub fn fold<Acc, F>(
        self,
        init: Acc,
        f: F,
    ) -> Pipeline<Stateful<Sealed<S, C>, Aggregation<C::Out, KF, Fold<Acc, F>, Pairs>>>
    where
        Acc: Clone + StateSize + Send + 'static,
        F: FnMut(&mut Acc, &C::Out) + Send + 'static,
    {
        self.stateful("fold", super::agg::fold(init, f), Pairs)
    }

    /// Combines each key's records two by two: the first (cloned) is the
    /// start, `f(&mut acc, &record)` takes each next one in; one `(key,
    /// acc)` record per key at the end of the input.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![("a", 3), ("b", 1), ("a", 9)]))
    ///     .key_by(|r: &(&'static str, i32)| r.0)
    ///     .reduce(|best: &mut (&'static str, i32), r: &(&'static str, i32)| if r.1 > best.1 { *best = *r })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![("a", ("a", 9)), ("b", ("b", 1))]);
    /// # Ok(()) }
    /// ```
    pub fn reduce<F>(
        self,
        f: F,
    ) -> Pipeline<Stateful<Sealed<S, C>, Aggregation<C::Out, KF, Reduce<F>, Pairs>>>
    where
        C::Out: Clone + StateSize,
        F: FnMut(&mut C::Out, &C::Out) + Send + 'static,
    {
        self.stateful("reduce", super::agg::reduce(f), Pairs)
    }

    fn stateful<A, M>(
        self,
        kind: &'static str,
        agg: A,
        make: M,
    ) -> Pipeline<Stateful<Sealed<S, C>, Aggregation<C::Out, KF, A, M>>>
    where
        A: Aggregate<C::Out>,
        M: super::aggregate::Output<KF::Key, A::Out>,
    {
        let KeyBy {
            mut pipeline,
            key,
            limits,
        } = self;
        // A key a record lacks (a missing column) is its error, and it
        // cannot be asked for again.
        let stage = pipeline.add_stage(kind, RecordErrors::NotRetryable);
        pipeline.with(|upstream| {
            Stateful::new(upstream, Aggregation::new(key, agg, make), stage, limits)
        })
    }
}

impl<S, C> KeyBy<S, C, Columns>
where
    S: Source,
    C: Steps<S::Record, Out = Record>,
{
    /// Runs the named aggregates over each key's records (dynamic records):
    /// one record per key, with the key columns then one column per
    /// aggregate, named as given, emitted at the end of the input in the order
    /// keys first appeared. A record without a key column is a record error
    /// under the stage's policy.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::{DataType, Record, Schema, Value};
    /// use dataflare::state::{Agg, Columns};
    /// use std::sync::Arc;
    ///
    /// let schema = Arc::new(Schema::new([("category", DataType::Str), ("amount", DataType::Float)]));
    /// let row = |c: &str, a: f64| Record::new(schema.clone(), vec![Value::from(c), Value::Float(a)]);
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![row("books", 10.0), row("toys", 4.0), row("books", 5.0)]))
    ///     .key_by(Columns::new(["category"]))
    ///     .aggregate_columns([("orders", Agg::Count), ("revenue", Agg::sum("amount"))])
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let rows = out.to_vec();
    /// assert_eq!(rows[0].get("category"), Some(&Value::from("books")));
    /// assert_eq!(rows[0].get("orders"), Some(&Value::Int(2)));
    /// assert_eq!(rows[0].get("revenue"), Some(&Value::Float(15.0)));
    /// # Ok(()) }
    /// ```
    pub fn aggregate_columns<I, N>(
        self,
        aggs: I,
    ) -> Pipeline<Stateful<Sealed<S, C>, Aggregation<Record, Columns, ColumnAggregates, Rows>>>
    where
        I: IntoIterator<Item = (N, Agg)>,
        N: AsRef<str>,
    {
        let (names, aggs): (Vec<_>, Vec<_>) = aggs
            .into_iter()
            .map(|(n, a)| (std::sync::Arc::from(n.as_ref()), a))
            .unzip();
        let rows = Rows::new(self.key.names().unwrap_or_default(), names);
        self.stateful("aggregate", ColumnAggregates::new(aggs), rows)
    }
}

impl<S, C, KF> fmt::Debug for KeyBy<S, C, KF> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBy")
            .field("pipeline", &self.pipeline)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
