//! Windowed stages of the [`Pipeline`] builder: `key_by(..).window(..)` and
//! what a windowed pipeline computes per key and window.

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;
use std::sync::Arc;

use super::agg::{Aggregate, Fold, Reduce};
use super::aggregate::Pairs;
use super::columns::{Agg, ColumnAggregates, Rows};
use super::stage::{Emits, Stateful};
use super::watermark::WindowClock;
use super::window::{CountWindow, Timed, WindowOf, sealed};
use super::windowing::{AsWindowed, Assign, CountWindows, TimeWindows, WindowRows};
use super::{Columns, KeyBy, KeyOf, StateLimits, StateSize};
use crate::Pipeline;
use crate::metrics::RecordErrors;
use crate::ops::{Sealed, Steps};
use crate::record::Record;
use crate::source::Source;

impl<S, C, KF, E> KeyBy<S, C, KF, E>
where
    S: Source,
    C: Steps<S::Record>,
    KF: KeyOf<C::Out>,
{
    /// Groups each key's records by window too: tumbling or sliding
    /// ([`Window`](super::Window)) or session
    /// ([`Window::session`](super::Window::session)) windows by event time,
    /// after [`event_time`](Pipeline::event_time); the same by processing
    /// time with [`.processing_time()`](super::Window::processing_time),
    /// or count windows ([`Window::count`](super::Window::count)), without.
    /// Then say what to compute per key and window.
    ///
    /// A time window is emitted as one [`Windowed`](super::Windowed) record
    /// once the watermark passes its end, and every window still open when
    /// the input ends (the final watermark) is emitted then: in order of
    /// their end, and windows that end together in the order their first
    /// records came. A record is counted `absorbed` once however many
    /// (sliding) windows take it; each window emitted counts as `expanded`.
    /// The stage holds each open (key, window) pair, reported as
    /// `state_keys` and bounded by [`max_keys`](WindowBy::max_keys).
    ///
    /// - **Emits** a window's result when the watermark passes its end (by
    ///   event time: when later records, or an idle source's
    ///   [`idle_advance`](super::EventTime::idle_advance), move it; by
    ///   processing time: on the stage's timer), a count window's when it
    ///   fills; and what is left at the end of the input.
    /// - **Backpressures** never: it takes every batch as it comes.
    /// - **Completes** after emitting the windows left, when its input has
    ///   ended.
    /// - **Cancels** with the run: its open windows are dropped (their
    ///   records counted when they were taken in, as `absorbed`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::{Window, Windowed, agg};
    /// use std::time::Duration;
    ///
    /// let minute = |m: i64| Timestamp::from_secs(60 * m);
    /// let orders = vec![("books", minute(1)), ("toys", minute(2)), ("books", minute(61)), ("books", minute(59))];
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(orders))
    ///     .event_time(|o: &(&'static str, Timestamp)| o.1, Duration::from_secs(300))
    ///     .key_by(|o: &(&'static str, Timestamp)| o.0)
    ///     .window(Window::tumbling(Duration::from_secs(3600)))
    ///     .aggregate(agg::count())
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let hour = |h: i64| Timestamp::from_secs(3600 * h);
    /// assert_eq!(out.to_vec(), vec![
    ///     Windowed { key: "books", start: hour(0), end: hour(1), value: 2 },
    ///     Windowed { key: "toys", start: hour(0), end: hour(1), value: 1 },
    ///     Windowed { key: "books", start: hour(1), end: hour(2), value: 1 },
    /// ]);
    /// let stage = report.stage("window#1").unwrap();
    /// assert_eq!((stage.absorbed, stage.expanded, stage.records_out), (4, 3, 3));
    /// # Ok(()) }
    /// ```
    pub fn window<W>(self, window: W) -> WindowBy<S, C, KF, W::Plan>
    where
        W: WindowOf<E>,
    {
        let KeyBy {
            pipeline,
            key,
            limits,
            time,
        } = self;
        WindowBy {
            pipeline,
            key,
            plan: window.plan(time),
            limits,
        }
    }
}

/// A keyed pipeline grouped by window too, made by
/// [`KeyBy::window`]: say what to compute per key and window
/// ([`aggregate`](WindowBy::aggregate), [`fold`](WindowBy::fold),
/// [`reduce`](WindowBy::reduce), and for dynamic records
/// [`aggregate_columns`](WindowBy::aggregate_columns)), and how much state
/// it may hold ([`max_keys`](WindowBy::max_keys),
/// [`max_state_bytes`](WindowBy::max_state_bytes)).
///
/// `P` is the window with its clock (a [`Timed`] window, or a
/// [`CountWindow`]).
#[must_use = "a windowed pipeline does nothing until it is aggregated"]
pub struct WindowBy<S, C, KF, P> {
    pipeline: Pipeline<S, C>,
    key: KF,
    plan: P,
    limits: StateLimits,
}

/// What a windowed stage runs, given its window and clock (`Self`), its
/// key and its aggregate. Sealed.
pub trait Plan<T, KF, A>: sealed::Sealed + Send + 'static {
    /// The stage's operator.
    type Op: Emits;

    /// The operator.
    #[doc(hidden)]
    fn build(self, key: KF, agg: A) -> Self::Op;
}

/// What a windowed stage of dynamic records runs, given its window and
/// clock (`Self`). Sealed.
pub trait PlanRows: sealed::Sealed + Send + 'static {
    /// The stage's operator.
    type Op: Emits<Out = Record>;

    /// The operator.
    #[doc(hidden)]
    fn build_rows(self, key: Columns, aggs: Vec<Agg>, names: Vec<Arc<str>>) -> Self::Op;
}

impl<Clk, W> sealed::Sealed for Timed<Clk, W> {}

impl<T, KF, Clk, W, A> Plan<T, KF, A> for Timed<Clk, W>
where
    T: fmt::Debug + Send + 'static,
    KF: KeyOf<T>,
    KF::Key: Sync,
    Clk: WindowClock<T>,
    W: Assign<T, A>,
    A: Aggregate<T>,
{
    type Op = TimeWindows<T, KF, Clk, W, A, AsWindowed>;

    fn build(self, key: KF, agg: A) -> Self::Op {
        TimeWindows::new(key, self.clock, self.window, agg, AsWindowed)
    }
}

impl<T, KF, A> Plan<T, KF, A> for CountWindow
where
    T: fmt::Debug + Send + 'static,
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    type Op = CountWindows<T, KF, A, Pairs>;

    fn build(self, key: KF, agg: A) -> Self::Op {
        CountWindows::new(key, self.len(), agg, Pairs)
    }
}

impl<Clk, W> PlanRows for Timed<Clk, W>
where
    Clk: WindowClock<Record>,
    W: Assign<Record, ColumnAggregates>,
{
    type Op = TimeWindows<Record, Columns, Clk, W, ColumnAggregates, WindowRows>;

    fn build_rows(self, key: Columns, aggs: Vec<Agg>, names: Vec<Arc<str>>) -> Self::Op {
        let rows = WindowRows::new(key.names().unwrap_or_default(), names);
        let aggs = ColumnAggregates::new(aggs);
        TimeWindows::new(key, self.clock, self.window, aggs, rows)
    }
}

impl PlanRows for CountWindow {
    type Op = CountWindows<Record, Columns, ColumnAggregates, Rows>;

    fn build_rows(self, key: Columns, aggs: Vec<Agg>, names: Vec<Arc<str>>) -> Self::Op {
        let rows = Rows::new(key.names().unwrap_or_default(), names);
        CountWindows::new(key, self.len(), ColumnAggregates::new(aggs), rows)
    }
}

impl<S, C, KF, P> WindowBy<S, C, KF, P>
where
    S: Source,
    C: Steps<S::Record>,
    KF: KeyOf<C::Out>,
{
    /// Sets the most open windows the stage may hold, one per key and
    /// window (10 million by default): a key with three sliding windows open
    /// counts three.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use dataflare::state::{Window, agg};
    ///
    /// let report = Pipeline::from(source::iter(0..1_000u32))
    ///     .key_by(|n: &u32| *n)
    ///     .window(Window::count(10))
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::Window;
    /// use std::time::Duration;
    ///
    /// let report = Pipeline::from(source::iter(0..10_000i64))
    ///     .event_time(|n: &i64| Timestamp::from_secs(*n), Duration::from_secs(3600))
    ///     .key_by(|n: &i64| n % 10)
    ///     .window(Window::tumbling(Duration::from_secs(86_400)))
    ///     .max_state_bytes(4096)
    ///     .fold(Vec::new(), |all: &mut Vec<i64>, n: &i64| all.push(*n))
    ///     .to(sink::discard())
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.error().unwrap().to_string().contains("over its max_state_bytes (4096)"));
    /// # }
    /// ```
    #[track_caller]
    pub fn max_state_bytes(mut self, n: u64) -> Self {
        self.limits = self.limits.max_bytes(n);
        self
    }

    /// Runs `agg` over each key's records in each window (see
    /// [`agg`](super::agg); sessions take aggregates that can
    /// [`Merge`](super::agg::Merge)): one [`Windowed`](super::Windowed)
    /// record per key and time window, one `(key, result)` pair per key and
    /// count window. See [`KeyBy::window`] for when and in which order.
    pub fn aggregate<A>(
        self,
        agg: A,
    ) -> Pipeline<Stateful<Sealed<S, C>, <P as Plan<C::Out, KF, A>>::Op>>
    where
        A: Aggregate<C::Out>,
        P: Plan<C::Out, KF, A>,
    {
        self.stage(|plan, key| plan.build(key, agg))
    }

    /// Folds each key's records in each window into an accumulator: each
    /// starts at `init` (cloned), `f(&mut acc, &record)` takes each record
    /// in, in the order they came. Not for session windows, whose merges a
    /// closure's accumulator cannot follow: use
    /// [`aggregate`](WindowBy::aggregate) or [`reduce`](WindowBy::reduce)
    /// there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::Window;
    /// use std::time::Duration;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![(1, 'a'), (3, 'b'), (12, 'c')]))
    ///     .event_time(|r: &(i64, char)| Timestamp::from_secs(r.0), Duration::ZERO)
    ///     .key_by(|_: &(i64, char)| "all")
    ///     .window(Window::sliding(Duration::from_secs(10), Duration::from_secs(5)))
    ///     .fold(String::new(), |s: &mut String, r: &(i64, char)| s.push(r.1))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let windows: Vec<_> = out.to_vec().into_iter().map(|w| (w.start.micros() / 1_000_000, w.value)).collect();
    /// assert_eq!(windows, vec![(-5, "ab".to_string()), (0, "ab".to_string()), (5, "c".to_string()), (10, "c".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn fold<Acc, F>(
        self,
        init: Acc,
        f: F,
    ) -> Pipeline<Stateful<Sealed<S, C>, <P as Plan<C::Out, KF, Fold<Acc, F>>>::Op>>
    where
        Acc: Clone + StateSize + Send + 'static,
        F: FnMut(&mut Acc, &C::Out) + Send + 'static,
        P: Plan<C::Out, KF, Fold<Acc, F>>,
    {
        self.stage(|plan, key| plan.build(key, super::agg::fold(init, f)))
    }

    /// Combines each key's records in each window two by two: the first
    /// (cloned) is the start, `f(&mut acc, &record)` takes each next one in.
    /// When a record bridges two sessions, `f` takes the later session's
    /// result into the earlier's, as if it were a record.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::Window;
    /// use std::time::Duration;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![(0, 5), (4, 9), (20, 1), (2, 3)]))
    ///     .event_time(|r: &(i64, i32)| Timestamp::from_secs(r.0), Duration::from_secs(60))
    ///     .key_by(|_: &(i64, i32)| "all")
    ///     .window(Window::session(Duration::from_secs(5)))
    ///     .reduce(|best: &mut (i64, i32), r: &(i64, i32)| if r.1 > best.1 { *best = *r })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let sessions: Vec<_> = out.to_vec().into_iter().map(|w| (w.start.micros() / 1_000_000, w.end.micros() / 1_000_000, w.value)).collect();
    /// assert_eq!(sessions, vec![(0, 9, (4, 9)), (20, 25, (20, 1))]);
    /// # Ok(()) }
    /// ```
    pub fn reduce<F>(
        self,
        f: F,
    ) -> Pipeline<Stateful<Sealed<S, C>, <P as Plan<C::Out, KF, Reduce<F>>>::Op>>
    where
        C::Out: Clone + StateSize,
        F: FnMut(&mut C::Out, &C::Out) + Send + 'static,
        P: Plan<C::Out, KF, Reduce<F>>,
    {
        self.stage(|plan, key| plan.build(key, super::agg::reduce(f)))
    }

    fn stage<Op: Emits>(
        self,
        op: impl FnOnce(P, KF) -> Op,
    ) -> Pipeline<Stateful<Sealed<S, C>, Op>> {
        let WindowBy {
            mut pipeline,
            key,
            plan,
            limits,
        } = self;
        // A key or time a record lacks, and a late record, are its errors,
        // and it cannot be asked for again.
        let stage = pipeline.add_stage("window", RecordErrors::NotRetryable);
        pipeline.with(|upstream| Stateful::new(upstream, op(plan, key), stage, limits))
    }
}

impl<S, C, P> WindowBy<S, C, Columns, P>
where
    S: Source,
    C: Steps<S::Record, Out = Record>,
{
    /// Runs the named aggregates over each key's records in each window
    /// (dynamic records): one record per key and window, with the key
    /// columns, then (time windows) `window_start` and `window_end`, as RFC
    /// 3339 text in UTC, then one column per aggregate, named as given. A
    /// record without a key column is a record error under the stage's
    /// policy.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::{DataType, Record, Schema, Timestamp, Value};
    /// use dataflare::state::{Agg, Columns, Window};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let schema = Arc::new(Schema::new([("page", DataType::Str), ("at", DataType::Int), ("ms", DataType::Int)]));
    /// let hit = |p: &str, at: i64, ms: i64| Record::new(schema.clone(), vec![Value::from(p), Value::Int(at), Value::Int(ms)]);
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![hit("/", 10, 30), hit("/a", 20, 50), hit("/", 70, 10), hit("/", 15, 20)]))
    ///     .event_time(|r: &Record| Timestamp::from_secs(r.get("at").and_then(Value::as_i64).unwrap_or(0)), Duration::from_secs(60))
    ///     .key_by(Columns::new(["page"]))
    ///     .window(Window::tumbling(Duration::from_secs(60)))
    ///     .aggregate_columns([("hits", Agg::Count), ("slowest", Agg::max("ms"))])
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let rows = out.to_vec();
    /// assert_eq!(rows.len(), 3);
    /// assert_eq!(rows[0].get("page"), Some(&Value::from("/")));
    /// assert_eq!(rows[0].get("window_start"), Some(&Value::Timestamp(Timestamp::from_secs(0))));
    /// assert_eq!(rows[0].get("window_end"), Some(&Value::Timestamp(Timestamp::from_secs(60))));
    /// assert_eq!(rows[0].get("hits"), Some(&Value::Int(2)));
    /// assert_eq!(rows[0].get("slowest"), Some(&Value::Int(30)));
    /// # Ok(()) }
    /// ```
    pub fn aggregate_columns<I, N>(self, aggs: I) -> Pipeline<Stateful<Sealed<S, C>, P::Op>>
    where
        I: IntoIterator<Item = (N, Agg)>,
        N: AsRef<str>,
        P: PlanRows,
    {
        let (names, aggs): (Vec<_>, Vec<_>) = aggs
            .into_iter()
            .map(|(n, a)| (Arc::from(n.as_ref()), a))
            .unzip();
        self.stage(|plan, key| plan.build_rows(key, aggs, names))
    }
}

impl<S, C, KF, P: fmt::Debug> fmt::Debug for WindowBy<S, C, KF, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowBy")
            .field("pipeline", &self.pipeline)
            .field("plan", &self.plan)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
