// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::Sink;
use futures::stream::{BoxStream, StreamExt};

use super::Runnable;
use crate::metrics::{RecordErrors, StageMetrics, Stages};
use crate::ops::{
    BatchOp, Buffer, Counted, Filter, FilterMap, FlatMap, Inspect, Map, MapAsync,
    MapAsyncUnordered, MapBatch, Metered, PartitionBy, Rebatch, Take, Through, Transform,
    TryFilter, TryFlatMap, TryMap, TryMapAsync, TryTransform,
};
use crate::ops::{Pass, Sealed, Step, Steps};
use crate::policy::MaxErrors;
use crate::source::Source;
use crate::{Batch, BoxError, Error, ErrorPolicy, Result};

/// A source and the transforms applied to it, built up one stage at a time.
///
/// Each method consumes the builder and returns a new one whose type records the
/// added stage, so the whole chain compiles to nested stream adapters. Stages run
/// in the order they are added. Every stage up to an async boundary runs in one
/// task, one batch at a time, with no channel between them, and adjacent
/// per-record stages (`map`, `filter`, `filter_map`, `flat_map`, `inspect`) are
/// *fused* further into one pass over each batch: records go through all of
/// them without an intermediate batch. [`buffer`](Pipeline::buffer),
/// [`map_async`](Pipeline::map_async) and
/// [`map_async_unordered`](Pipeline::map_async_unordered) are the async
/// boundaries where work runs in other tasks.
///
/// The type says what the pipeline is made of: `S` is its stream so far (the
/// source and every adapter, nested), `C` the per-record steps added since
/// the last adapter ([`Pass`] when none), which the next adapter, fan-out or
/// sink seals onto the stream as one fused pass. So fusion asks nothing of
/// the adapters: any stream ends a pass.
///
/// Nothing runs until [`to`](Pipeline::to) connects a sink and
/// [`run`](Runnable::run) is awaited, on a tokio runtime.
///
/// Every stage gets a name, used in errors and in the [`Report`](crate::Report):
/// `"source"` for the source, `kind#N` for the N-th stage after it (`map#1`,
/// `filter#2`, ...) and `"sink"` for the sink; [`name`](Pipeline::name) renames
/// the last stage added.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let out = Collected::new();
/// let report = Pipeline::from(source::iter(1..=1000u64).batch_size(100))
///     .filter(|x| x % 3 == 0)
///     .map(|x| x * 2)
///     .buffer(4)
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert!(report.is_completed());
/// assert_eq!(out.len(), 333);
/// # Ok(()) }
/// ```
#[must_use = "a pipeline does nothing until it is connected to a sink and run"]
pub struct Pipeline<S, C = Pass> {
    pub(crate) stream: S,
    /// The per-record steps added since the last stream adapter, fused into
    /// one pass when the next one (or the sink) is added.
    pub(crate) steps: C,
    /// The run's stages, shared with every other branch of the graph.
    pub(crate) stages: Stages,
    /// This branch's last stage, which `name` and `on_error` apply to.
    pub(crate) last: Arc<StageMetrics>,
    /// The fan-out outputs this branch reads from.
    pub(crate) branches: Vec<usize>,
    /// Whether a failure here abandons only this branch (`isolate`).
    pub(crate) isolated: bool,
}

impl<S: Source> Pipeline<Metered<S>> {
    /// Starts a pipeline from a source: any stream of `Result<Batch<T>>` that is
    /// `Send + 'static`, such as those in [`source`](crate::source).
    ///
    /// `Pipeline::from(source)` does the same.
    ///
    /// ```
    /// use dataflare::prelude::*;
    /// use futures::stream;
    ///
    /// // A hand-written source: no wrapper needed.
    /// let batches = stream::iter(vec![Ok(Batch::new(vec![1, 2])), Ok(Batch::new(vec![3]))]);
    /// let pipeline = Pipeline::new(batches);
    /// # drop(pipeline);
    /// ```
    pub fn new(source: S) -> Self {
        let stages = Stages::default();
        // A source may yield record-level errors (a malformed row); it cannot
        // be asked for the same record again.
        let stage = stages.add("source", Vec::new(), RecordErrors::NotRetryable);
        Pipeline {
            stream: Metered::new(source, stage.clone()),
            steps: Pass,
            stages,
            last: stage,
            branches: Vec::new(),
            isolated: false,
        }
    }
}

impl<S: Source> Pipeline<Metered<S>> {
    /// Fails the run if the source produces nothing for `after` (time paused
    /// by a [`RunHandle`](crate::RunHandle) not counted): the error names
    /// the source. For sources that may go silent (a channel, a socket) in a
    /// run that must not hang.
    ///
    /// # Panics
    ///
    /// If `after` is zero.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(1);
    /// let report = Pipeline::from(source::channel(rx))
    ///     .idle_timeout(Duration::from_secs(30))
    ///     .to(sink::discard())
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.error().unwrap().to_string().contains("idle timeout"));
    /// # drop(tx);
    /// # }
    /// ```
    #[track_caller]
    pub fn idle_timeout(mut self, after: std::time::Duration) -> Self {
        assert!(!after.is_zero(), "idle_timeout: the time must not be zero");
        self.stream.set_idle_timeout(after);
        self
    }
}

impl<S: Source> From<S> for Pipeline<Metered<S>> {
    fn from(source: S) -> Self {
        Pipeline::new(source)
    }
}

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Adds a stage reading from the last one; it becomes the last.
    pub(crate) fn add_stage(
        &mut self,
        kind: &'static str,
        record_errors: RecordErrors,
    ) -> Arc<StageMetrics> {
        let stage = self
            .stages
            .add(kind, vec![self.last.clone()], record_errors);
        self.last = stage.clone();
        stage
    }

    /// The same pipeline with its steps sealed onto its stream, and the
    /// result replaced by `stream(sealed)`.
    pub(crate) fn with<S2>(self, stream: impl FnOnce(Sealed<S, C>) -> S2) -> Pipeline<S2> {
        let Pipeline {
            stream: upstream,
            steps,
            stages,
            last,
            branches,
            isolated,
        } = self;
        Pipeline {
            stream: stream(steps.seal(upstream)),
            steps: Pass,
            stages,
            last,
            branches,
            isolated,
        }
    }

    /// Adds a per-record step, fused into the pass before it if there is one.
    fn step<X>(
        mut self,
        kind: &'static str,
        step: impl FnOnce(Arc<StageMetrics>) -> X,
    ) -> Pipeline<S, C::With<X>>
    where
        X: Step<C::Out>,
    {
        let stage = self.add_stage(kind, RecordErrors::Never);
        Pipeline {
            stream: self.stream,
            steps: self.steps.with(step(stage)),
            stages: self.stages,
            last: self.last,
            branches: self.branches,
            isolated: self.isolated,
        }
    }

    fn op<Op>(mut self, kind: &'static str, op: Op) -> Pipeline<Transform<Sealed<S, C>, Op>>
    where
        Op: BatchOp<C::Out>,
    {
        let stage = self.add_stage(kind, RecordErrors::Never);
        self.with(|upstream| Transform::new(upstream, op, stage))
    }

    /// Renames the stage added last (the source, if none was added), for errors
    /// and the [`Report`](crate::Report).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(0..10))
    ///     .map(|x| x + 1)
    ///     .name("increment")
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.stage("increment").unwrap().records_out, 10);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// If another stage of the run already has that name: errors and the
    /// report find stages by name.
    #[track_caller]
    pub fn name(self, name: impl Into<String>) -> Self {
        self.stages.rename(&self.last, name.into());
        self
    }

    /// Sets the [`ErrorPolicy`] of the stage added last (the source, if none was
    /// added): what it does with a record-level error, such as a malformed row
    /// or a failing [`try_map`](Pipeline::try_map).
    ///
    /// Record-level errors arise in the source (a malformed row) and in the
    /// fallible stages: [`try_map`](Pipeline::try_map),
    /// [`try_filter`](Pipeline::try_filter),
    /// [`try_flat_map`](Pipeline::try_flat_map) and
    /// [`try_map_async`](Pipeline::try_map_async). Put `on_error` right after
    /// the one it is meant for; [`default_policy`](Pipeline::default_policy)
    /// sets it for all of them.
    ///
    /// # Panics
    ///
    /// If the stage added last cannot produce a record-level error (a `map`,
    /// `filter`, `filter_map`, `flat_map`, `inspect`, `map_batch`,
    /// `transform`, `take`, `rebatch`, `buffer`, `map_async` or
    /// `map_async_unordered`), where the policy would never apply: the usual
    /// slip is an `on_error` meant for a `try_map` written after the next
    /// stage. Also if `policy` is a [`Retry`](ErrorPolicy::Retry) and the stage
    /// is the source, which cannot be asked for the same record again (under
    /// [`default_policy`](Pipeline::default_policy), a retry goes straight to
    /// its final policy for the source). The message names the stage and its kind.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(vec!["1", "x", "3"]))
    ///     .try_map(|s: &&str| s.parse::<u32>())
    ///     .on_error(ErrorPolicy::Skip) // the try_map's policy
    ///     .map(|n| n * 2)
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.skipped(), 1);
    /// # Ok(()) }
    /// ```
    ///
    /// On a stage that cannot fail a record, it panics:
    ///
    /// ```should_panic
    /// use dataflare::prelude::*;
    ///
    /// let pipeline = Pipeline::from(source::iter(vec!["1", "x", "3"]))
    ///     .try_map(|s: &&str| s.parse::<u32>())
    ///     .map(|n| n * 2)
    ///     .on_error(ErrorPolicy::Skip); // lands on the map: panics
    /// # drop(pipeline);
    /// ```
    #[track_caller]
    pub fn on_error(self, policy: impl Into<ErrorPolicy>) -> Self {
        let policy = policy.into();
        let stage = Arc::clone(&self.last);
        if let Some(refused) = stage.refuse_policy(&policy) {
            panic!("{refused}");
        }
        self.stages.register(&policy);
        stage.set_policy(policy);
        self
    }

    /// Sets the [`ErrorPolicy`] of every stage that has none of its own (set
    /// with [`on_error`](Pipeline::on_error)), before or after this call.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(vec!["1", "2", "x"]))
    ///     .default_policy(ErrorPolicy::Skip)
    ///     .try_map(|s: &&str| s.parse::<u8>())
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.skipped(), 1);
    /// # Ok(()) }
    /// ```
    pub fn default_policy(self, policy: impl Into<ErrorPolicy>) -> Self {
        self.stages.set_default_policy(policy.into());
        self
    }

    /// Fails a run that put aside (skipped or dead-lettered) more records than
    /// `max` allows, instead of completing it with errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use dataflare::MaxErrors;
    ///
    /// let report = Pipeline::from(source::iter(vec!["1", "x", "y"]))
    ///     .try_map(|s: &&str| s.parse::<u8>())
    ///     .on_error(ErrorPolicy::Skip)
    ///     .max_errors(MaxErrors::Count(1))
    ///     .to(sink::discard())
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.is_failed());
    /// assert_eq!(report.skipped(), 2);
    /// # }
    /// ```
    pub fn max_errors(self, max: MaxErrors) -> Self {
        self.stages.set_max_errors(max);
        self
    }

    /// Replaces each record with `f(&record)`, which may fail; a failure is
    /// handled by the stage's [`ErrorPolicy`] (abort by default; skip, retry,
    /// dead-letter). The closure sees the record by reference so the stage still
    /// holds it to retry or dead-letter it (shown with `Debug`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec!["4", "x", "6"]))
    ///     .try_map(|s: &&str| s.parse::<i32>())
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![4, 6]);
    /// assert_eq!(report.stage("try_map#1").unwrap().skipped, 1);
    /// # Ok(()) }
    /// ```
    pub fn try_map<U, E, F>(
        mut self,
        f: F,
    ) -> Pipeline<TryTransform<Sealed<S, C>, TryMap<F>, C::Out>>
    where
        F: FnMut(&C::Out) -> Result<U, E> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
        C::Out: fmt::Debug,
    {
        let stage = self.add_stage("try_map", RecordErrors::Retryable);
        self.with(|upstream| TryTransform::new(upstream, TryMap::new(f), stage))
    }

    /// Keeps the records for which `f(&record)` returns `Ok(true)`; an `Err`
    /// is handled by the stage's [`ErrorPolicy`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!["10", "200", "x"]))
    ///     .try_filter(|s: &&str| s.parse::<u32>().map(|n| n > 50))
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec!["200"]);
    /// # Ok(()) }
    /// ```
    pub fn try_filter<E, F>(
        mut self,
        f: F,
    ) -> Pipeline<TryTransform<Sealed<S, C>, TryFilter<F>, C::Out>>
    where
        F: FnMut(&C::Out) -> Result<bool, E> + Send + 'static,
        E: Into<BoxError>,
        C::Out: fmt::Debug,
    {
        let stage = self.add_stage("try_filter", RecordErrors::Retryable);
        self.with(|upstream| TryTransform::new(upstream, TryFilter::new(f), stage))
    }

    /// Pairs each record with its partition key, `key(&record)`, for a
    /// partitioned file sink such as
    /// [`csv::write_partitioned`](crate::csv::write_partitioned) (one file per
    /// key, `DIR/<key>.csv`). A key that is not a safe file name (empty, `.`
    /// or `..`, a leading `.`, a path separator, a control character, over 200
    /// bytes; see [`PartitionKey`](crate::sink::PartitionKey)) is a
    /// record-level error under the stage's [`ErrorPolicy`] (abort by default;
    /// skip, dead letters; not retry: the key would not change), so nothing is
    /// ever written outside the directory.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv;
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let report = Pipeline::from(source::iter(vec![("books", 1), ("../etc", 2), ("toys", 3)]))
    ///     .partition_by(|(category, _): &(&str, i32)| *category)
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(csv::write_partitioned(dir.path()).has_headers(false))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(dir.path().join("books.csv")).unwrap(), "books,1\n");
    /// assert_eq!(report.skipped(), 1); // "../etc" is not a file name
    /// # Ok(()) }
    /// ```
    pub fn partition_by<K, F>(
        mut self,
        key: F,
    ) -> Pipeline<TryTransform<Sealed<S, C>, PartitionBy<F>, C::Out>>
    where
        F: FnMut(&C::Out) -> K + Send + 'static,
        K: Into<String>,
        C::Out: fmt::Debug,
    {
        let stage = self.add_stage("partition_by", RecordErrors::NotRetryable);
        self.with(|upstream| TryTransform::new(upstream, PartitionBy::new(key), stage))
    }

    /// Maps each record to any number of records with `f(&record)`, which may
    /// fail; a failure is handled by the stage's [`ErrorPolicy`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!["1,2", "3"]))
    ///     .try_flat_map(|s: &&str| {
    ///         s.split(',').map(str::parse::<u8>).collect::<Result<Vec<_>, _>>()
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn try_flat_map<I, E, F>(
        mut self,
        f: F,
    ) -> Pipeline<TryTransform<Sealed<S, C>, TryFlatMap<F>, C::Out>>
    where
        F: FnMut(&C::Out) -> Result<I, E> + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        E: Into<BoxError>,
        C::Out: fmt::Debug,
    {
        let stage = self.add_stage("try_flat_map", RecordErrors::Retryable);
        self.with(|upstream| TryTransform::new(upstream, TryFlatMap::new(f), stage))
    }

    /// Runs the fallible async function `f` on each record, at most
    /// `concurrency` at a time, passing results on in input order. A failure is
    /// handled by the stage's [`ErrorPolicy`]: under
    /// [`Retry`](ErrorPolicy::Retry) the record is tried again after its
    /// backoff, as a new task, while other records go on.
    ///
    /// # Panics
    ///
    /// If `concurrency` is 0 (nothing could ever run).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    ///
    /// // A flaky service: fails twice, then answers.
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![7u32]))
    ///     .try_map_async(4, move |x: &u32| {
    ///         let (x, n) = (*x, c.fetch_add(1, Ordering::SeqCst));
    ///         async move { if n < 2 { Err(Error::msg("busy")) } else { Ok(x * 10) } }
    ///     })
    ///     .on_error(ErrorPolicy::retry(5))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![70]);
    /// assert_eq!(calls.load(Ordering::SeqCst), 3);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn try_map_async<U, E, F, Fut>(
        mut self,
        concurrency: usize,
        f: F,
    ) -> Pipeline<TryMapAsync<Sealed<S, C>, C::Out, U, F>>
    where
        F: FnMut(&C::Out) -> Fut + Send + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
        C::Out: fmt::Debug,
    {
        assert!(
            concurrency > 0,
            "try_map_async: concurrency must be at least 1 (0 would never run anything)"
        );
        let stage = self.add_stage("try_map_async", RecordErrors::Retryable);
        self.with(|upstream| TryMapAsync::new(upstream, concurrency, f, stage))
    }

    /// Replaces each record with `f(record)`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!["a", "bb"]))
    ///     .map(|s| s.len())
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn map<U, F>(self, f: F) -> Pipeline<S, C::With<Map<F>>>
    where
        F: FnMut(C::Out) -> U + Send + 'static,
        U: Send + 'static,
    {
        self.step("map", |stage| Map::new(f, stage))
    }

    /// Keeps the records for which `f` returns true.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(1..=6))
    ///     .filter(|x| x % 2 == 0)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![2, 4, 6]);
    /// # Ok(()) }
    /// ```
    pub fn filter<F>(self, f: F) -> Pipeline<S, C::With<Filter<F>>>
    where
        F: FnMut(&C::Out) -> bool + Send + 'static,
    {
        self.step("filter", |stage| Filter::new(f, stage))
    }

    /// Maps each record to zero or one record: `None` drops it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!["1", "x", "3"]))
    ///     .filter_map(|s| s.parse::<i32>().ok())
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 3]);
    /// # Ok(()) }
    /// ```
    pub fn filter_map<U, F>(self, f: F) -> Pipeline<S, C::With<FilterMap<F>>>
    where
        F: FnMut(C::Out) -> Option<U> + Send + 'static,
        U: Send + 'static,
    {
        self.step("filter_map", |stage| FilterMap::new(f, stage))
    }

    /// Maps each record to any number of records, kept in order within the batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!["a b", "c"]))
    ///     .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec!["a", "b", "c"]);
    /// # Ok(()) }
    /// ```
    pub fn flat_map<I, F>(self, f: F) -> Pipeline<S, C::With<FlatMap<F>>>
    where
        F: FnMut(C::Out) -> I + Send + 'static,
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Send + 'static,
    {
        self.step("flat_map", |stage| FlatMap::new(f, stage))
    }

    /// Calls `f` on each record as it passes, leaving the records unchanged.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let total = Arc::new(AtomicU64::new(0));
    /// let t = total.clone();
    /// Pipeline::from(source::iter(1..=4u64))
    ///     .inspect(move |x| { t.fetch_add(*x, Ordering::Relaxed); })
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(total.load(Ordering::Relaxed), 10);
    /// # Ok(()) }
    /// ```
    pub fn inspect<F>(self, f: F) -> Pipeline<S, C::With<Inspect<F>>>
    where
        F: FnMut(&C::Out) + Send + 'static,
    {
        self.step("inspect", |stage| Inspect::new(f, stage))
    }

    /// Replaces the records of each batch at once, for work that wants a whole
    /// batch (a bulk lookup, a sort within the batch).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![3, 1, 2]))
    ///     .map_batch(|mut records| { records.sort(); records })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn map_batch<U, F>(self, f: F) -> Pipeline<Transform<Sealed<S, C>, MapBatch<F>>>
    where
        F: FnMut(Vec<C::Out>) -> Vec<U> + Send + 'static,
        U: Send + 'static,
    {
        self.op("map_batch", MapBatch::new(f))
    }

    /// Runs a [`BatchOp`] of your own as a stage named `transform#N`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::ops::BatchOp;
    ///
    /// /// Numbers each record across batches.
    /// struct Enumerate(u64);
    /// impl<T> BatchOp<T> for Enumerate {
    ///     type Out = (u64, T);
    ///     fn apply(&mut self, records: Vec<T>) -> dataflare::Result<Vec<(u64, T)>> {
    ///         Ok(records.into_iter().map(|r| { self.0 += 1; (self.0 - 1, r) }).collect())
    ///     }
    /// }
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!['a', 'b']).batch_size(1))
    ///     .transform(Enumerate(0))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![(0, 'a'), (1, 'b')]);
    /// # Ok(()) }
    /// ```
    pub fn transform<Op>(self, op: Op) -> Pipeline<Transform<Sealed<S, C>, Op>>
    where
        Op: BatchOp<C::Out>,
        Op::Out: Send + 'static,
    {
        self.op("transform", op)
    }

    /// Runs a stream adapter of your own as a stage named `through#N`, with
    /// its counters and name like any other: `f` gets the pipeline's stream so
    /// far (a [`Counted`](crate::ops::Counted) stream of batches) and returns
    /// the stream to go on with, for work the builder has no method for (a
    /// `futures` or `tokio-stream` combinator, a hand-written adapter).
    ///
    /// - **Emits**, **backpressures**, **completes** and **cancels** as the
    ///   adapter does; the run polls it like any stage.
    /// - Records it takes count as `records_in`, records it gives as
    ///   `records_out`; at its end the difference counts as `filtered` (or
    ///   `expanded`), and if the run ends first, what it held as `abandoned`.
    ///   A panic in it becomes an error naming the stage; an error it yields
    ///   ends the run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use futures::StreamExt;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(1..=10u32).batch_size(2))
    ///     // Keep every other batch, with a plain `futures` combinator.
    ///     .through(|batches| batches.enumerate().filter_map(|(i, b)| async move {
    ///         (i % 2 == 0).then_some(b)
    ///     }))
    ///     .name("every other batch")
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 5, 6, 9, 10]);
    /// let stage = report.stage("every other batch").unwrap();
    /// assert_eq!((stage.records_in, stage.records_out, stage.filtered), (10, 6, 4));
    /// # Ok(()) }
    /// ```
    pub fn through<U, F, S2>(mut self, f: F) -> Pipeline<Through<S2>>
    where
        F: FnOnce(Counted<Sealed<S, C>>) -> S2,
        S2: futures::Stream<Item = Result<Batch<U>>> + Send + 'static,
        U: Send + 'static,
    {
        let stage = self.add_stage("through", RecordErrors::Never);
        self.with(|upstream| Through::new(upstream, stage, f))
    }

    /// Passes on the first `n` records, then ends the stream: the source is not
    /// read further and the run completes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(0..).batch_size(4)) // endless
    ///     .take(6)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![0, 1, 2, 3, 4, 5]);
    /// # Ok(()) }
    /// ```
    pub fn take(self, n: u64) -> Pipeline<Transform<Sealed<S, C>, Take>> {
        self.op("take", Take::new(n))
    }

    /// Regroups records into batches by a [`BatchPolicy`](crate::ops::BatchPolicy): a batch goes when
    /// it holds the policy's count, or (if set) its records' estimated bytes
    /// reach the limit, or (if set) the linger has passed since its first
    /// record arrived, and at the end of the input. For a sink or stage that
    /// works best with a given batch size, and with a linger for a slow
    /// streaming source whose records must not wait for a full batch.
    /// `rebatch(n)` is `rebatch(BatchPolicy::count(n))`: batches of exactly
    /// `n`, but for the last.
    ///
    /// Records keep their order; batches are numbered afresh. A batch that
    /// arrives with exactly the count (and within the byte limit) while
    /// nothing is held passes through untouched.
    ///
    /// - **Emits** when a batch is full (count or bytes), when the linger of
    ///   the records it holds has passed, and at the end of its input.
    /// - **Backpressures** when downstream does: it reads its input only when
    ///   asked for a batch and holds no full batch.
    /// - **Completes** when its input has ended and what it held has gone.
    /// - **Cancels** with the run: the records it holds count as `abandoned`
    ///   (also when its input fails: the error goes on, the records do not).
    ///
    /// Cost: records are moved into a new batch (unless a batch passes
    /// through untouched); a byte limit estimates each record's size once; a
    /// linger reads the clock once per batch in and sets a timer per partial
    /// batch. A single record larger than the byte limit goes alone.
    ///
    /// # Panics
    ///
    /// If the count is 0 (`rebatch(0)`); [`BatchPolicy`](crate::ops::BatchPolicy)'s setters check
    /// theirs.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let sizes = Collected::new();
    /// let s = sizes.clone();
    /// Pipeline::from(source::iter(0..10).batch_size(3))
    ///     .rebatch(4)
    ///     .to(sink::for_each(move |batch: Batch<i32>| { s.push(batch.len()); Ok(()) }))
    ///     .run()
    ///     .await?;
    /// assert_eq!(sizes.to_vec(), vec![4, 4, 2]);
    /// # Ok(()) }
    /// ```
    ///
    /// A slow source: a partial batch leaves after the linger.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::ops::BatchPolicy;
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = tokio::sync::mpsc::channel::<String>(8);
    /// let (out_tx, mut out) = tokio::sync::mpsc::channel::<Vec<String>>(8);
    /// let run = tokio::spawn(
    ///     Pipeline::from(source::channel(rx))
    ///         .rebatch(BatchPolicy::count(1000).bytes(1 << 20).linger(Duration::from_millis(50)))
    ///         .to(sink::for_each_async(move |batch: Batch<String>| {
    ///             let out_tx = out_tx.clone();
    ///             async move { out_tx.send(batch.into_records()).await.ok(); Ok(()) }
    ///         }))
    ///         .run(),
    /// );
    /// tx.send("a".into()).await.unwrap();
    /// tx.send("b".into()).await.unwrap();
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(out.recv().await.unwrap(), ["a", "b"]); // not 1000 records: the linger
    /// assert!(start.elapsed() <= Duration::from_millis(50));
    /// drop(tx);
    /// run.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn rebatch(
        mut self,
        policy: impl Into<crate::ops::BatchPolicy<C::Out>>,
    ) -> Pipeline<Rebatch<Sealed<S, C>, C::Out>> {
        let policy = policy.into();
        let stage = self.add_stage("rebatch", RecordErrors::Never);
        self.with(|upstream| Rebatch::new(upstream, policy, stage))
    }

    /// An async boundary: everything before this point runs in its own task,
    /// handing batches over through a bounded channel of `capacity` batches.
    ///
    /// Upstream and downstream then work in parallel; when downstream is slower
    /// the channel fills and upstream waits for room (backpressure), so at most
    /// `capacity` batches (plus the one being handed over) wait here. To drop
    /// batches instead of waiting (a live feed), see
    /// [`buffer_with`](Pipeline::buffer_with).
    ///
    /// - **Emits** each batch queued, in order, as soon as downstream asks.
    /// - **Backpressures** when `capacity` batches are queued.
    /// - **Completes** when its upstream has ended and the queue is empty.
    /// - **Cancels** with the run: its upstream task is aborted.
    ///
    /// Cost: a task and a hand-off per batch. It pays when the work on both
    /// sides is heavy enough to use two cores; in a job bound by one stage, or
    /// on a current-thread runtime, it is only overhead.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(0..10_000u64))
    ///     .map(|x| x * x)   // runs in the buffer's upstream task
    ///     .buffer(8)
    ///     .filter(|x| x % 7 == 0) // runs in the task that awaits `run`
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.records_in(), 10_000);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn buffer(mut self, capacity: usize) -> Pipeline<Buffer<Sealed<S, C>, C::Out>> {
        assert!(
            capacity > 0,
            "buffer: the capacity must be at least 1 batch"
        );
        let stage = self.add_stage("buffer", RecordErrors::Never);
        self.with(|upstream| Buffer::new(upstream, capacity, Default::default(), stage))
    }

    /// Runs the async function `f` on each record, at most `concurrency` at a
    /// time, and passes the results on **in input order**.
    ///
    /// Each call's future runs as its own task, so work in flight keeps going
    /// while downstream is busy; a slow record holds back the output of those
    /// after it (use [`map_async_unordered`](Pipeline::map_async_unordered) when
    /// order does not matter).
    ///
    /// # Panics
    ///
    /// If `concurrency` is 0 (nothing could ever run).
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(1..=5u64))
    ///     .map_async(3, |id| async move { format!("user-{id}") })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec!["user-1", "user-2", "user-3", "user-4", "user-5"]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn map_async<U, F, Fut>(
        mut self,
        concurrency: usize,
        f: F,
    ) -> Pipeline<MapAsync<Sealed<S, C>, C::Out, U, F>>
    where
        F: FnMut(C::Out) -> Fut + Send + 'static,
        Fut: Future<Output = U> + Send + 'static,
        U: Send + 'static,
    {
        assert!(
            concurrency > 0,
            "map_async: concurrency must be at least 1 (0 would never run anything)"
        );
        let stage = self.add_stage("map_async", RecordErrors::Never);
        self.with(|upstream| MapAsync::new(upstream, concurrency, f, stage))
    }

    /// Runs the async function `f` on each record, at most `concurrency` at a
    /// time, and passes results on **as they finish**.
    ///
    /// # Panics
    ///
    /// If `concurrency` is 0 (nothing could ever run).
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(1..=5u64))
    ///     .map_async_unordered(3, |x| async move { x * 2 })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let mut got = out.to_vec();
    /// got.sort();
    /// assert_eq!(got, vec![2, 4, 6, 8, 10]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn map_async_unordered<U, F, Fut>(
        mut self,
        concurrency: usize,
        f: F,
    ) -> Pipeline<MapAsyncUnordered<Sealed<S, C>, C::Out, U, F>>
    where
        F: FnMut(C::Out) -> Fut + Send + 'static,
        Fut: Future<Output = U> + Send + 'static,
        U: Send + 'static,
    {
        assert!(
            concurrency > 0,
            "map_async_unordered: concurrency must be at least 1 (0 would never run anything)"
        );
        let stage = self.add_stage("map_async_unordered", RecordErrors::Never);
        self.with(|upstream| MapAsyncUnordered::new(upstream, concurrency, f, stage))
    }

    /// Erases the type of the pipeline built so far: its stream becomes a
    /// [`BoxStream`], keeping every stage added (names, metrics, error policies)
    /// and every task. Adds no stage.
    ///
    /// Each builder method changes the pipeline's type, so a chain decided at run
    /// time (from a configuration, a loop over steps) cannot be written as one
    /// expression; boxing after each step gives every step the same type, at the
    /// cost of one allocation and one dynamic call per batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let steps = [2u64, 3, 5];
    /// let mut pipeline = Pipeline::from(source::iter(1..=30u64)).boxed();
    /// for m in steps {
    ///     pipeline = pipeline.filter(move |x| x % m != 0).boxed();
    /// }
    /// let out = Collected::new();
    /// let report = pipeline.to(sink::collect(&out)).run().await?;
    /// assert_eq!(out.to_vec(), vec![1, 7, 11, 13, 17, 19, 23, 29]);
    /// assert_eq!(report.stage("filter#3").unwrap().records_out, 8);
    /// # Ok(()) }
    /// ```
    pub fn boxed(self) -> Pipeline<BoxStream<'static, Result<Batch<C::Out>>>> {
        self.with(|upstream| upstream.boxed())
    }

    /// Connects the sink: any `futures::Sink` of batches with DataFlare's
    /// [`Error`], such as those in [`sink`](crate::sink). The sink must be
    /// `Send + 'static`: the run drives it from a task of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use futures::SinkExt;
    ///
    /// // Any futures::Sink works, e.g. one built with `futures::sink::unfold`.
    /// let sum = Collected::new();
    /// let s = sum.clone();
    /// let adder = futures::sink::unfold(0u64, move |total, batch: Batch<u64>| {
    ///     let total = total + batch.iter().sum::<u64>();
    ///     s.push(total);
    ///     async move { Ok::<_, Error>(total) }
    /// });
    /// Pipeline::from(source::iter(1..=4u64)).to(adder).run().await?;
    /// assert_eq!(sum.to_vec().last(), Some(&10));
    /// # Ok(()) }
    /// ```
    pub fn to<K>(mut self, sink: K) -> Runnable<Sealed<S, C>, K>
    where
        K: Sink<Batch<C::Out>, Error = Error> + Send + 'static,
    {
        let stage = self.add_stage("sink", RecordErrors::Never);
        Runnable::new(self.with(|sealed| sealed), sink, stage)
    }
}

impl<S, C> fmt::Debug for Pipeline<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.stages.snapshot().into_iter().map(|s| s.name).collect();
        f.debug_struct("Pipeline")
            .field("stages", &names)
            .field("last", &self.last.name())
            .finish()
    }
}
