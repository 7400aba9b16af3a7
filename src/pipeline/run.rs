use std::fmt;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Poll, ready};

use futures::future::{BoxFuture, Either, poll_fn, select, try_join_all};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::{FutureExt, Sink};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::progress::{Phase, Progress};
use super::report::InFlight;
use super::{Pipeline, Report, Status};
use crate::metrics::{StageMetrics, Stages, Tally};
use crate::ops::{guard, join_error};
use crate::runtime::{Control, Role, RunContext, Spawned};
use crate::source::Source;
use crate::{Batch, Error, Result};

/// A pipeline connected to its sink, ready to [`run`](Runnable::run): one
/// branch of a graph, or the whole of a linear pipeline.
///
/// Created by [`Pipeline::to`]. Several branches of one graph (the outputs of
/// a [`tee`](Pipeline::tee) or [`route`](Pipeline::route)), or independent
/// pipelines, run together as one [`Graph`], joined with [`and`](Runnable::and).
#[must_use = "a pipeline does nothing until it is run"]
pub struct Runnable<S, K> {
    pipeline: Pipeline<S>,
    sink: K,
    sink_stage: Arc<StageMetrics>,
}

impl<S, K> Runnable<S, K> {
    pub(crate) fn new(pipeline: Pipeline<S>, sink: K, sink_stage: Arc<StageMetrics>) -> Self {
        Runnable {
            pipeline,
            sink,
            sink_stage,
        }
    }
}

/// Branches ending in sinks, run together as one: one run context, one
/// completion point, one [`Report`], and all their outputs committed together.
///
/// Made by [`Runnable::and`] (or `Graph::from(runnable)`), grown with
/// [`and`](Graph::and). Every branch made by a fan-out must be in the graph
/// that runs: a branch left without a sink fails the run before anything is
/// read.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let (evens, odds) = (Collected::new(), Collected::new());
/// let [a, b] = Pipeline::from(source::iter(1..=10u64)).partition(|x| x % 2 == 0);
/// let report = a
///     .to(sink::collect(&evens))
///     .and(b.map(|x| x * 100).to(sink::collect(&odds)))
///     .run()
///     .await?;
/// assert_eq!(evens.to_vec(), vec![2, 4, 6, 8, 10]);
/// assert_eq!(odds.to_vec(), vec![100, 300, 500, 700, 900]);
/// assert_eq!(report.records_in(), 10);
/// assert_eq!(report.records_out(), 10); // summed over both sinks
/// # Ok(()) }
/// ```
#[must_use = "a graph does nothing until it is run"]
pub struct Graph {
    stages: Stages,
    legs: Vec<Box<dyn Leg>>,
    branches: Vec<usize>,
    deadline: Option<std::time::Duration>,
    progress_every: std::time::Duration,
    max_in_flight: Option<usize>,
}

impl<S, K> From<Runnable<S, K>> for Graph
where
    S: Source,
    K: Sink<Batch<S::Record>, Error = Error> + Send + 'static,
{
    fn from(runnable: Runnable<S, K>) -> Graph {
        let Runnable {
            pipeline,
            sink,
            sink_stage,
        } = runnable;
        let Pipeline {
            stream,
            stages,
            branches,
            isolated,
            ..
        } = pipeline;
        Graph {
            stages,
            legs: vec![Box::new(Line {
                stream: Some(stream),
                sink: Box::pin(sink),
                unconfirmed: Unconfirmed::new(sink_stage),
                isolated,
            })],
            branches,
            deadline: None,
            progress_every: std::time::Duration::from_millis(500),
            max_in_flight: None,
        }
    }
}

impl<S, K> Runnable<S, K>
where
    S: Source,
    K: Sink<Batch<S::Record>, Error = Error> + Send + 'static,
{
    /// Renames the sink stage (`sink`, or `sink#N` after the first), for
    /// errors and the [`Report`].
    ///
    /// # Panics
    ///
    /// If another stage of the run already has that name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(0..3))
    ///     .to(sink::discard())
    ///     .name("nowhere")
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.stage("nowhere").unwrap().records_in, 3);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn name(self, name: impl Into<String>) -> Self {
        self.pipeline.stages.rename(&self.sink_stage, name.into());
        self
    }

    /// Runs this branch together with `other` (another branch of the same
    /// graph, or an independent pipeline) as one [`Graph`]: one completion
    /// point, one [`Report`], outputs committed together.
    ///
    /// # Panics
    ///
    /// If `other` was built apart and a stage name the user gave in one is
    /// taken in the other: names must be unique in a run.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let (a, b) = (Collected::new(), Collected::new());
    /// let report = Pipeline::from(source::iter(vec![1, 2]))
    ///     .to(sink::collect(&a))
    ///     .and(Pipeline::from(source::iter(vec![3])).to(sink::collect(&b)))
    ///     .run()
    ///     .await?;
    /// assert_eq!((a.len(), b.len()), (2, 1));
    /// assert_eq!(report.records_in(), 3);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn and(self, other: impl Into<Graph>) -> Graph {
        Graph::from(self).and(other)
    }

    /// Runs the pipeline to the end and returns its [`Report`], or the error a
    /// failed run stopped on.
    ///
    /// Returns only after the source has ended, every stage has drained, every
    /// sink has been closed and committed and every task the run spawned has
    /// ended. The run's sinks (this one and any dead-letter sinks; every
    /// branch's, for a [`Graph`]) are all or nothing together:
    /// - every sink is made ready (a file sink opens and checks its
    ///   destination) before any source is read, and no file may serve twice
    ///   (an output that is an input or another output is refused, naming both);
    /// - file sinks write to temporaries and are renamed into place together,
    ///   only once the whole run has succeeded; on failure the main outputs are
    ///   removed (dead letters are kept: they explain the failure); a cancelled
    ///   run commits nothing;
    /// - a sink of your own gets `close` only after every branch drained and
    ///   every dead-letter sink succeeded, and never on failure (it is
    ///   dropped). A sink that writes as it goes (stdout, a file in append
    ///   mode) cannot take back what it wrote. Branches' sinks are closed one
    ///   after the other, in the order the branches were joined with
    ///   [`and`](Runnable::and): join a sink of your own that commits on
    ///   `close` last, after the file sinks (which only prepare then), so a
    ///   file that fails to prepare stops the run before it commits.
    ///
    /// If one rename fails after another succeeded, the error names what was
    /// committed: there is no atomicity across files beyond that.
    ///
    /// The run is driven by a Tokio task of its own (so it must be called within
    /// a Tokio runtime), wherever it is awaited from: awaited on `block_on`'s
    /// thread, it still runs on the runtime's workers. Dropping the returned
    /// future aborts the run; the sink is dropped without `close`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec![1, 2, 3]))
    ///     .map(|x| x * 10)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert!(report.is_completed());
    /// assert_eq!(out.to_vec(), vec![10, 20, 30]);
    /// # Ok(()) }
    /// ```
    pub async fn run(self) -> Result<Report> {
        Graph::from(self).run().await
    }

    /// Runs the pipeline to the end and returns its [`Report`], also when it
    /// failed ([`Status::Failed`]), so the statistics of a failed run can be read.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(vec![1, 2, 0, 4]))
    ///     .map(|x: i32| 12 / x)
    ///     .to(sink::discard())
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.is_failed());
    /// assert_eq!(report.error().unwrap().stage(), Some("map#1"));
    /// # }
    /// ```
    pub async fn run_to_report(self) -> Report {
        Graph::from(self).run_to_report().await
    }

    /// Runs the pipeline until it ends or `stop` completes, whichever comes
    /// first, and returns its [`Report`]. Stopped, the run ends as
    /// [`Status::Cancelled`]: the source is read no further, records in flight
    /// are dropped (counted as `abandoned` in their stage), the sink is dropped
    /// without `close` (a file sink commits nothing) and every task the run
    /// spawned has ended when this returns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    ///
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let mut stop = Some(stop);
    /// let report = Pipeline::from(source::iter(0u64..).batch_size(100)) // endless
    ///     .inspect(move |x| {
    ///         if *x == 1_000 {
    ///             stop.take().map(|s| s.send(()));
    ///         }
    ///     })
    ///     .to(sink::discard())
    ///     .run_until(async move {
    ///         let _ = stopped.await;
    ///     })
    ///     .await;
    /// assert!(report.is_cancelled());
    /// assert!(report.records_in() > 1_000);
    /// report.check_accounting().unwrap(); // what was in flight is counted as abandoned
    /// # }
    /// ```
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> Report {
        Graph::from(self).run_until(stop).await
    }

    /// Starts the run in a task of its own; see [`Graph::spawn`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let run = Pipeline::from(source::iter(0..1000u32).batch_size(10))
    ///     .to(sink::collect(&out))
    ///     .spawn();
    /// run.pause();
    /// assert_eq!(run.status(), RunStatus::Paused);
    /// run.resume();
    /// let report = run.await;
    /// assert!(report.is_completed());
    /// assert_eq!(out.len(), 1000);
    /// # }
    /// ```
    pub fn spawn(self) -> RunHandle {
        Graph::from(self).spawn()
    }

    /// Fails the run if it has not ended within this time; see
    /// [`Graph::deadline`].
    pub fn deadline(self, within: std::time::Duration) -> Graph {
        Graph::from(self).deadline(within)
    }

    /// Bounds the bytes of the batches in flight; see
    /// [`Graph::max_in_flight_bytes`].
    #[track_caller]
    pub fn max_in_flight_bytes(self, bytes: usize) -> Graph {
        Graph::from(self).max_in_flight_bytes(bytes)
    }

    /// The graph this branch belongs to, drawn as text; see [`Graph::describe`].
    pub fn describe(&self, format: crate::graph::Format) -> String {
        crate::graph::describe(&self.pipeline.stages, format)
    }
}

impl Graph {
    /// Adds `other` (a branch ending in a sink, or a graph) to the graph.
    ///
    /// # Panics
    ///
    /// If `other` was built apart and a stage name the user gave in one is
    /// taken in the other: names must be unique in a run.
    #[track_caller]
    pub fn and(mut self, other: impl Into<Graph>) -> Graph {
        let other = other.into();
        self.stages.join(&other.stages);
        self.legs.extend(other.legs);
        self.branches.extend(other.branches);
        self.deadline = match (self.deadline, other.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_in_flight = match (self.max_in_flight, other.max_in_flight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }

    /// Bounds the memory of the batches in flight in the whole graph to
    /// about `bytes`: a batch takes its estimated size from this budget as
    /// it leaves its source, and gives it back when every sink it reaches
    /// has written it (or a stage filtered it away, absorbed it into state,
    /// or dropped it); a source waits while the budget is spent. This is the
    /// bound to set when records are large or branches run at different
    /// speeds: bounded channels bound batches, not bytes.
    ///
    /// - **Estimate**: a batch counts `len × size_of::<T>()` plus the heap
    ///   bytes its source says the records own
    ///   ([`Batch::with_heap_bytes`]): the CSV and JSON Lines sources count
    ///   the text they read. A stage that makes a batch larger (`flat_map`,
    ///   a map into a larger type) takes the difference at once, without
    ///   waiting, and may take the total over the budget until sources have
    ///   waited it back down; one that makes it smaller gives bytes back.
    /// - **One batch always moves**: a source with nothing in flight may send
    ///   a batch even when the budget is spent, so a batch larger than the
    ///   whole budget goes alone (the run slows to one batch at a time, it
    ///   does not deadlock), and a stage holding one source's batch while it
    ///   waits for another (`zip`) is never starved. With `n` sources the
    ///   budget can be overrun by at most one batch each.
    /// - **Not counted**: operator state (bounded by its own
    ///   [`StateLimits`](crate::state::StateLimits): state that waited for
    ///   budget would stall its own source), and what stateful stages emit.
    ///   `rebatch` gives back the bytes of the records it holds while it
    ///   waits for more (its own source must be able to send what completes
    ///   a batch) and takes them again when the batch leaves; `zip` gives
    ///   its inputs' bytes back as it takes their records (its pairs are not
    ///   counted).
    /// - **Cost**: one estimate and two atomic updates per batch; none
    ///   without a budget. The gauge is in [`Progress::in_flight`] and
    ///   [`Report::in_flight`].
    ///
    /// A graph joined with [`and`](Graph::and) keeps the smaller budget.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let rows = (0..10_000).map(|i| format!("row {i:>100}"));
    /// let report = Pipeline::from(source::iter(rows).batch_size(100))
    ///     .to(sink::discard())
    ///     .max_in_flight_bytes(64 << 10)
    ///     .run()
    ///     .await?;
    /// let budget = report.in_flight().unwrap();
    /// assert_eq!(budget.max_bytes, 64 << 10);
    /// assert!(budget.peak_bytes <= 64 << 10);
    /// assert_eq!(budget.bytes, 0); // all given back
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// If `bytes` is zero.
    #[track_caller]
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Graph {
        assert!(
            bytes > 0,
            "max_in_flight_bytes: the budget must not be zero"
        );
        self.max_in_flight = Some(bytes);
        self
    }

    /// Fails the run if it has not ended `within` this time after it started
    /// (time paused by a [`RunHandle`] not counted): every branch is stopped
    /// at once and nothing is committed, as for any failure.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = tokio::sync::mpsc::channel::<u32>(1);
    /// let report = Pipeline::from(source::channel(rx)) // never ends
    ///     .to(sink::discard())
    ///     .and(Pipeline::from(source::iter(0..3)).to(sink::discard()))
    ///     .deadline(Duration::from_secs(60))
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.error().unwrap().to_string().contains("deadline"));
    /// # drop(tx);
    /// # }
    /// ```
    pub fn deadline(mut self, within: std::time::Duration) -> Graph {
        self.deadline = Some(within);
        self
    }

    /// Starts the run in a task of its own and returns its [`RunHandle`]:
    /// pause, resume, stop, cancel or abort it, ask its status, and await it
    /// for the [`Report`]. Dropping the handle aborts the run, unless it was
    /// [`detach`](RunHandle::detach)ed.
    ///
    /// Must be called within a Tokio runtime.
    pub fn spawn(self) -> RunHandle {
        let control = Arc::new(Control::new(self.max_in_flight));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let (progress, _) = tokio::sync::watch::channel(Progress::default());
        let progress = Arc::new(progress);
        let task = tokio::spawn(self.run_inner_published(
            async move {
                stop.cancelled().await;
                None
            },
            control.clone(),
            Some(progress.clone()),
        ));
        RunHandle {
            control,
            cancel,
            task: Some(task),
            detached: false,
            progress,
        }
    }

    /// Sets how often a spawned run publishes its [`Progress`] (besides every
    /// phase change); 500 ms by default.
    ///
    /// # Panics
    ///
    /// If `every` is zero.
    #[track_caller]
    pub fn progress_every(mut self, every: std::time::Duration) -> Graph {
        assert!(
            !every.is_zero(),
            "progress_every: the interval must not be zero"
        );
        self.progress_every = every;
        self
    }

    /// Runs every branch to the end and returns the [`Report`], or the error
    /// a failed run stopped on; see [`Runnable::run`] for what is committed
    /// when.
    ///
    /// Returns when every source has ended, every branch has drained, every
    /// sink has committed and every task of the run has ended. A failure in
    /// one branch stops every other branch (unless it was
    /// [`isolate`](Pipeline::isolate)d) and no main output is committed.
    pub async fn run(self) -> Result<Report> {
        self.run_to_report().await.into_result()
    }

    /// Runs every branch to the end and returns the [`Report`], also when the
    /// run failed.
    pub async fn run_to_report(self) -> Report {
        let control = Arc::new(Control::new(self.max_in_flight));
        self.run_inner(std::future::pending(), control).await
    }

    /// Runs until every branch ends or `stop` completes, whichever comes
    /// first; stopped, the run is [`Status::Cancelled`] and commits nothing.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> Report {
        let control = Arc::new(Control::new(self.max_in_flight));
        self.run_inner(
            async move {
                stop.await;
                None
            },
            control,
        )
        .await
    }

    /// The graph drawn as text: a [Mermaid](crate::graph::Format::Mermaid)
    /// flowchart or a Graphviz [DOT](crate::graph::Format::Dot) digraph, one
    /// node per stage (its name and kind), one edge per input.
    ///
    /// ```
    /// use dataflare::prelude::*;
    /// use dataflare::graph::Format;
    ///
    /// let [a, b] = Pipeline::from(source::iter(1..=4)).tee();
    /// let graph = a.to(sink::discard()).and(b.filter(|x| x % 2 == 0).to(sink::discard()));
    /// let text = graph.describe(Format::Mermaid);
    /// assert!(text.starts_with("flowchart LR"));
    /// assert!(text.contains("s1 --> s2")); // tee#1 feeds the first sink
    /// ```
    pub fn describe(&self, format: crate::graph::Format) -> String {
        crate::graph::describe(&self.stages, format)
    }

    /// Runs the graph until it ends or `stop` completes: with `None` the run
    /// is cancelled, with an error (a deadline) it fails on it.
    async fn run_inner(
        self,
        stop: impl Future<Output = Option<Error>> + Send,
        control: Arc<Control>,
    ) -> Report {
        self.run_inner_published(stop, control, None).await
    }

    /// [`run_inner`](Graph::run_inner), publishing [`Progress`] to
    /// `progress` if given: at the run's interval, at every phase change and
    /// at the end.
    async fn run_inner_published(
        self,
        stop: impl Future<Output = Option<Error>> + Send,
        control: Arc<Control>,
        progress: Option<Arc<tokio::sync::watch::Sender<Progress>>>,
    ) -> Report {
        let Graph {
            stages,
            legs,
            branches,
            deadline,
            progress_every,
            max_in_flight: _,
        } = self;
        let clock = tokio::time::Instant::now();
        #[cfg(feature = "metrics")]
        let exporter = Arc::new(super::export::Exporter::new(
            &stages,
            control.budget().cloned(),
        ));
        // What runs beside the run, in this task (no task of its own to
        // outlive it): the progress publisher and the metrics exporter, both
        // endless, dropped when the run ends.
        let publisher = {
            let (sender, stages, control) = (progress.clone(), stages.clone(), control.clone());
            async move {
                let Some(sender) = sender else {
                    return std::future::pending().await;
                };
                let mut tick = tokio::time::interval(progress_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    sender.send_replace(snapshot(&stages, &control, clock));
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = control.changed() => {}
                    }
                }
            }
        };
        #[cfg(feature = "metrics")]
        let beside = futures::future::join(publisher, exporter.clone().run(progress_every));
        #[cfg(not(feature = "metrics"))]
        let beside = publisher;
        // Tokio's clock, as the stages' waiting and blocked times (the same
        // clock, but for paused time in tests).
        let start = tokio::time::Instant::now();
        let cancel = CancellationToken::new();
        let driver = drive(
            legs,
            branches,
            stages.clone(),
            cancel.clone(),
            control.clone(),
        )
        .instrument(tracing::info_span!("pipeline"));
        let timed = control.clone();
        // Tokio's clock, as the pauses are timed on (paused time in tests).
        let clock_start = tokio::time::Instant::now();
        let stop = async move {
            let stop = async move {
                match select(pin!(stop), pin!(beside)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => unreachable!("runs beside the run until it ends"),
                }
            };
            let Some(within) = deadline else {
                return stop.await;
            };
            let expired = async {
                // Paused time does not count: sleep until the time left runs
                // out while not paused.
                loop {
                    let active = clock_start.elapsed().saturating_sub(timed.paused_for());
                    if active >= within && !timed.is_paused() {
                        break;
                    }
                    let left = within.saturating_sub(active);
                    tokio::time::sleep(left.max(std::time::Duration::from_millis(1))).await;
                }
                Some(Error::msg(format!(
                    "the run did not end within its deadline ({within:?}); every branch was \
                     stopped and nothing committed"
                )))
            };
            match select(pin!(stop), pin!(expired)).await {
                Either::Left((r, _)) | Either::Right((r, _)) => r,
            }
        };
        // The run is driven by a task of its own, not by whoever awaits it. The
        // caller is often `block_on`'s thread (`#[tokio::main]`), which is not a
        // runtime worker: every batch crossing a `buffer` to it would be a
        // cross-thread wake-up, measured at 3 µs per batch, and it would be a
        // third busy thread on a 2-core machine. Dropping this future aborts the run.
        let mut driver = Spawned(tokio::spawn(driver));
        let mut stopped_on = None;
        let outcome = match select(pin!(stop), &mut driver).await {
            Either::Right((outcome, _)) => outcome,
            Either::Left((error, driver)) => {
                stopped_on = error;
                cancel.cancel();
                driver.await
            }
        };
        let Outcome {
            result,
            cancelled,
            isolated,
            dead_letters_kept,
        } = outcome.unwrap_or_else(|e| Outcome {
            // Our own code panicked (user code is guarded stage by stage), or
            // the runtime is shutting down.
            result: Err(join_error(e, "pipeline")),
            cancelled: false,
            isolated: Vec::new(),
            dead_letters_kept: false,
        });
        let errors = stages.take_errors();
        let stages = stages.snapshot();
        let failed_records: u64 = stages.iter().map(|s| s.skipped + s.dead_lettered).sum();
        let status = match result {
            _ if stopped_on.is_some() => Status::Failed(stopped_on.expect("checked")),
            Ok(()) if cancelled => Status::Cancelled,
            Ok(()) if failed_records > 0 || !isolated.is_empty() => Status::CompletedWithErrors,
            Ok(()) => Status::Completed,
            Err(e) => Status::Failed(e),
        };
        if let Status::Failed(e) = &status {
            tracing::error!(error = %e, "pipeline failed");
        }
        #[cfg(feature = "metrics")]
        exporter.flush();
        let report = Report {
            status,
            elapsed: start.elapsed(),
            stages,
            errors,
            failed_branches: isolated,
            dead_letters_kept,
            stopped: control.is_stopped(),
            in_flight: control.budget().map(|b| InFlight::of(b)),
        };
        if let Some(sender) = progress {
            let phase = match report.status() {
                Status::Completed | Status::CompletedWithErrors => Phase::Completed,
                Status::Cancelled => Phase::Cancelled,
                Status::Failed(_) => Phase::Failed,
            };
            let mut last = Progress::of(
                phase,
                report.stages.clone(),
                clock.elapsed(),
                control.paused_for(),
            );
            last.in_flight = report.in_flight;
            sender.send_replace(last);
        }
        report
    }
}

/// A snapshot of a live run: its phase as its handle sees it (a running run
/// paused shows `Paused`; stopped or cancelled, `Draining`).
fn snapshot(stages: &Stages, control: &Control, clock: tokio::time::Instant) -> Progress {
    let phase = match Phase::from_code(control.phase()) {
        Phase::Running if control.is_stopped() => Phase::Draining,
        Phase::Running if control.is_paused() => Phase::Paused,
        phase => phase,
    };
    let mut progress = Progress::of(
        phase,
        stages.snapshot(),
        clock.elapsed(),
        control.paused_for(),
    );
    progress.in_flight = control.budget().map(|b| InFlight::of(b));
    progress
}

/// A run started with [`spawn`](Graph::spawn): control it, then await it for
/// its [`Report`].
///
/// - [`pause`](RunHandle::pause): the sources stop being polled (batches in
///   flight finish; nothing is lost or read twice); [`resume`](RunHandle::resume)
///   goes on. A paused and resumed bounded run gives exactly the result of an
///   uninterrupted one. Paused time does not count against a
///   [`deadline`](Graph::deadline) or an [`idle_timeout`](crate::Pipeline::idle_timeout).
///   Processing-time windows, a `tap` and timers run on the wall clock:
///   pausing does not freeze them.
/// - [`stop`](RunHandle::stop): stop reading, drain what was read, commit it:
///   a successful run on a prefix of the input ([`Report::stopped`]).
/// - [`cancel`](RunHandle::cancel): stop reading, drop what is in flight,
///   commit nothing ([`Status::Cancelled`]).
/// - [`abort`](RunHandle::abort): now; nothing committed.
/// - Dropping the handle aborts the run, unless it was
///   [`detach`](RunHandle::detach)ed.
#[must_use = "dropping a run's handle aborts the run"]
pub struct RunHandle {
    control: Arc<Control>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<Report>>,
    detached: bool,
    progress: Arc<tokio::sync::watch::Sender<Progress>>,
}

/// Where a [`RunHandle`]'s run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunStatus {
    /// Reading and moving data.
    Running,
    /// Paused: its sources are not polled.
    Paused,
    /// Stopped: draining what was read, to commit it.
    Stopping,
    /// Cancelled: ending without committing.
    Cancelling,
    /// Ended; awaiting the handle gives the report at once.
    Finished,
}

impl RunHandle {
    /// The run's [`Progress`]: a `watch` receiver holding the latest snapshot,
    /// published at the run's [`progress_every`](Graph::progress_every)
    /// interval, at every phase change and at the end (its phase then final).
    /// A subscriber that reads slowly, or never, sees the latest snapshot
    /// and never slows the run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use dataflare::Phase;
    ///
    /// let run = Pipeline::from(source::iter(0..1000u32)).to(sink::discard()).spawn();
    /// let mut progress = run.progress();
    /// let report = run.await;
    /// progress.changed().await.ok();
    /// let last = progress.borrow().clone();
    /// assert_eq!(last.phase, Phase::Completed);
    /// assert_eq!(last.records_read, 1000);
    /// # }
    /// ```
    pub fn progress(&self) -> tokio::sync::watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Stops polling the run's sources; batches in flight go on.
    pub fn pause(&self) {
        self.control.pause();
    }

    /// Polls the run's sources again.
    pub fn resume(&self) {
        self.control.resume();
    }

    /// Ends the sources where they are: what was read drains and commits.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Ends the run without committing anything ([`Status::Cancelled`]).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Ends the run now: its tasks are aborted, its sinks dropped (file
    /// sinks remove their temporaries), nothing is committed.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Lets the run go on without the handle (dropping it no longer aborts
    /// the run); its report is then lost.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus {
        match &self.task {
            Some(task) if task.is_finished() => RunStatus::Finished,
            None => RunStatus::Finished,
            Some(_) if self.cancel.is_cancelled() => RunStatus::Cancelling,
            Some(_) if self.control.is_stopped() => RunStatus::Stopping,
            Some(_) if self.control.is_paused() => RunStatus::Paused,
            Some(_) => RunStatus::Running,
        }
    }
}

impl Future for RunHandle {
    type Output = Report;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Report> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Report::without_stages(Status::Failed(Error::msg(
                "the run was aborted",
            ))));
        };
        let joined = ready!(Pin::new(task).poll(cx));
        self.task = None;
        Poll::Ready(
            joined.unwrap_or_else(|e| {
                Report::without_stages(Status::Failed(join_error(e, "pipeline")))
            }),
        )
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take()
            && !self.detached
        {
            task.abort();
        }
    }
}

impl fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// How the driver ended: its result, whether it was cancelled, and the
/// errors of isolated branches that failed (the run went on without them).
struct Outcome {
    result: Result<()>,
    cancelled: bool,
    isolated: Vec<Error>,
    /// A failed run kept dead letters (some were kept on failure).
    dead_letters_kept: bool,
}

/// One branch of a run: a stream drained into its sink, behind a trait so
/// branches of different record types run together.
trait Leg: Send + 'static {
    /// The sink stage's name.
    fn sink_name(&self) -> String;
    /// Whether a failure abandons only this branch.
    fn isolated(&self) -> bool;
    /// Makes the sink ready, before any source is read.
    fn open(&mut self) -> BoxFuture<'_, Result<()>>;
    /// Drains the stream into the sink, without closing it.
    fn flow(&mut self) -> BoxFuture<'_, Result<()>>;
    /// Closes (prepares) the sink: what it took is confirmed.
    fn close(&mut self) -> BoxFuture<'_, Result<()>>;
}

struct Line<S, K> {
    stream: Option<S>,
    sink: Pin<Box<K>>,
    /// Records the sink took but has not confirmed: abandoned if the run ends
    /// any other way than the sink closing (an error, or a cancel).
    unconfirmed: Unconfirmed,
    isolated: bool,
}

impl<S, K> Leg for Line<S, K>
where
    S: Source,
    K: Sink<Batch<S::Record>, Error = Error> + Send + 'static,
{
    fn sink_name(&self) -> String {
        self.unconfirmed.stage.name()
    }

    fn isolated(&self) -> bool {
        self.isolated
    }

    fn open(&mut self) -> BoxFuture<'_, Result<()>> {
        open(self.sink.as_mut(), &self.unconfirmed.stage).boxed()
    }

    fn flow(&mut self) -> BoxFuture<'_, Result<()>> {
        let stream = self.stream.take();
        async move {
            match stream {
                Some(stream) => forward(stream, self.sink.as_mut(), &mut self.unconfirmed).await,
                None => Ok(()),
            }
        }
        .boxed()
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        close(self.sink.as_mut(), &mut self.unconfirmed).boxed()
    }
}

/// The context a branch's sink is polled in: its role is its output.
fn role(context: &RunContext, leg: &dyn Leg) -> RunContext {
    context.with_role(Role::Output(Arc::from(leg.sink_name())))
}

/// Runs the graph's branches into their sinks, with the dead-letter sinks
/// alongside, until they end or `cancel` fires. Returns only once every task
/// the run spawned has ended.
///
/// The run's sinks are all-or-nothing together, in four phases:
/// 1. *open*: every sink (every branch's and the dead letters) is made ready,
///    so a destination that cannot be written fails the run before any record
///    is read;
/// 2. *flow*: the sources are drained through every stage into the sinks
///    (the fan-out drivers feeding the branches), rejects into the dead-letter
///    sinks; a failure anywhere stops every branch, but for an isolated branch,
///    which is abandoned alone;
/// 3. *prepare*: the dead-letter sinks are closed, then, if all went well, each
///    branch's sink: a file sink flushes and syncs its temporary file and
///    stages it with the run; a user's own sink sees `close` only now, after
///    every branch drained;
/// 4. *commit*: every staged output is renamed into place if the run
///    succeeded; if it failed, only the dead letters are (they explain the
///    failure), the rest are removed; if it was cancelled, nothing is.
async fn drive(
    mut legs: Vec<Box<dyn Leg>>,
    branches: Vec<usize>,
    stages: Stages,
    cancel: CancellationToken,
    control: Arc<Control>,
) -> Outcome {
    let context = RunContext::with_control(control);
    context
        .scope(drive_in(&mut legs, branches, stages, &context, cancel))
        .await
}

async fn drive_in(
    legs: &mut Vec<Box<dyn Leg>>,
    branches: Vec<usize>,
    stages: Stages,
    context: &RunContext,
    cancel: CancellationToken,
) -> Outcome {
    // Dead letters are kept by a failed run, unless they are to be committed
    // with the run's outputs, all or nothing.
    let dead_letter_role = |keep_on_failure: bool| {
        context.with_role(if keep_on_failure {
            Role::DeadLetters
        } else {
            Role::Output(Arc::from("dead letters"))
        })
    };
    let fail = |e: Error| Outcome {
        result: Err(e),
        cancelled: false,
        isolated: Vec::new(),
        dead_letters_kept: false,
    };

    // 1. Open.
    let (drivers, dead_letters) = match stages.start(&branches) {
        Ok(started) => started,
        Err(e) => return fail(e),
    };
    let dead_letters: Result<Vec<_>> = dead_letters.iter().map(|d| d.take_driver()).collect();
    let mut dead_letters = match dead_letters {
        Ok(drivers) => drivers,
        Err(e) => return fail(e.with_stage("dead letters")),
    };
    let open_all = futures::future::try_join(
        try_join_all(legs.iter_mut().map(|leg| {
            let role = role(context, &**leg);
            role.scope(leg.open())
        })),
        try_join_all(dead_letters.iter_mut().map(|d| {
            let role = dead_letter_role(d.keep_on_failure);
            role.scope(async { d.open().await.map_err(|e| e.with_stage("dead letters")) })
        })),
    );
    let opened = match select(pin!(cancel.cancelled()), pin!(open_all)).await {
        Either::Left(_) => Err(None),
        Either::Right((result, _)) => result.map(drop).map_err(Some),
    };
    if let Err(e) = opened {
        // Nothing was read; every sink is dropped, nothing committed.
        drop(dead_letters);
        drop(drivers);
        legs.clear();
        context.wait_all().await;
        context.commits().commit(false, false).ok();
        return Outcome {
            cancelled: e.is_none(),
            result: e.map_or(Ok(()), Err),
            isolated: Vec::new(),
            dead_letters_kept: false,
        };
    }

    // 2. Flow.
    context.control().set_phase(Phase::Running.code());
    tracing::info!(phase = "running", "every sink is open: reading");
    let kept_on_failure = dead_letters.iter().any(|d| d.keep_on_failure);
    let (done_tx, done_rx): (Vec<_>, Vec<_>) = dead_letters
        .iter()
        .map(|_| oneshot::channel::<()>())
        .unzip();
    let rejects = try_join_all(dead_letters.into_iter().zip(done_rx).map(|(d, done)| {
        let role = dead_letter_role(d.keep_on_failure);
        role.scope(async move { d.run(done).await.map_err(|e| e.with_stage("dead letters")) })
    }));
    let mut isolated = Vec::new();
    let mut cancelled = false;
    let pipeline = async {
        let run = flow(std::mem::take(legs), drivers, context, &mut isolated);
        // The cancel signal is polled first: polled after the run, it would find
        // tokio's cooperative budget spent by the run every time.
        let result = match select(pin!(cancel.cancelled()), pin!(run)).await {
            Either::Right((result, _)) => {
                result.and_then(|done| stages.check_max_errors().map(|()| done))
            }
            Either::Left(((), _)) => {
                // The run future, a temporary of this statement, is dropped at
                // its end, with every branch: nothing more is read.
                cancelled = true;
                Ok(Vec::new())
            }
        };
        // A task may not have seen its abort yet and still reject records (a
        // stage upstream of a buffer, after a `take` ended the run): wait for
        // every task to end before the dead-letter sinks stop taking rejects,
        // so none counted is lost.
        context.wait().await;
        drop(done_tx);
        result
    };
    // A dead-letter sink that fails ends the run there, as a failing sink
    // does, and with its own error: going on, the next stage to reject a
    // record would fail with `Closed` instead, hiding the cause. When the
    // pipeline fails, its dead letters are still written (they explain it).
    let result = match select(pin!(pipeline), pin!(rejects)).await {
        Either::Left((result, rejects)) => {
            let rejected = rejects.await;
            rejected.map(drop).and(result)
        }
        Either::Right((Ok(_), pipeline)) => pipeline.await,
        Either::Right((Err(e), _pipeline)) => Err(e),
    };

    context.control().set_phase(Phase::Committing.code());
    tracing::info!(phase = "committing", "every branch drained: committing");
    // 3. Prepare: the branches' sinks are closed last, once everything else
    // succeeded, one after the other.
    let result = match result {
        Ok(done) if !cancelled => {
            let mut closed = Ok(());
            for mut leg in done {
                let role = role(context, &*leg);
                match role.scope(leg.close()).await {
                    Ok(()) => {}
                    Err(e) if leg.isolated() => {
                        // Its output is not staged: the others still commit.
                        tracing::warn!(error = %e, "an isolated branch failed to close");
                        isolated.push(e.with_stage(leg.sink_name()));
                    }
                    Err(e) => {
                        closed = Err(e);
                        break;
                    }
                }
            }
            closed
        }
        other => other.map(drop),
    };
    // Wait for every task to end (a file writer removing what it abandoned)
    // so nothing outlives the run.
    context.wait_all().await;

    // 4. Commit. On a blocking thread, which runs to its end even if the run
    // is aborted meanwhile: a commit once begun is never cut halfway.
    let succeeded = result.is_ok() && !cancelled;
    // A failed run keeps its dead letters: they explain the failure. A
    // cancelled run commits nothing at all, and so does a run refused for
    // using a file twice (its dead-letter file may be the very input it
    // refused to overwrite).
    let keep_dead_letters = !cancelled && !context.claims().refused();
    let commits = context.clone();
    let committed =
        tokio::task::spawn_blocking(move || commits.commits().commit(succeeded, keep_dead_letters))
            .await
            .unwrap_or_else(|e| Err(join_error(e, "commit")));
    let result = match (result, committed) {
        (Ok(()), Err(e)) if !cancelled => Err(e.with_stage("commit")),
        (result, Err(e)) => {
            tracing::warn!(error = %e, "the dead letters of a failed run could not be kept");
            result
        }
        (result, Ok(())) => result,
    };
    Outcome {
        dead_letters_kept: result.is_err() && keep_dead_letters && kept_on_failure,
        result,
        cancelled,
        isolated,
    }
}

/// The flow phase: every branch drained into its sink (without closing it)
/// while the fan-out drivers feed them. Returns the branches that finished,
/// to be closed; the first failure (but an isolated branch's, kept in
/// `isolated`) ends it, dropping every other branch and driver.
///
/// One branch runs right here, as a linear pipeline always has; several run
/// as tasks of their own, so branches work in parallel.
async fn flow(
    legs: Vec<Box<dyn Leg>>,
    drivers: Vec<BoxFuture<'static, Result<()>>>,
    context: &RunContext,
    isolated: &mut Vec<Error>,
) -> Result<Vec<Box<dyn Leg>>> {
    type Running = BoxFuture<'static, Result<(Option<Box<dyn Leg>>, Result<()>)>>;
    let mut running: FuturesUnordered<Running> = FuturesUnordered::new();
    for driver in drivers {
        let task = Spawned(context.spawn(context.scope(driver)));
        running.push(
            async move {
                let result = task.await.unwrap_or_else(|e| Err(join_error(e, "fan-out")));
                Ok((None, result))
            }
            .boxed(),
        );
    }
    let parallel = legs.len() > 1;
    for mut leg in legs {
        let role = role(context, &*leg);
        let branch = async move {
            let result = leg.flow().await;
            (Some(leg), result)
        };
        if parallel {
            let task = Spawned(context.spawn(role.scope(branch)));
            running.push(async move { task.await.map_err(|e| join_error(e, "branch")) }.boxed());
        } else {
            running.push(role.scope(branch).map(Ok).boxed());
        }
    }
    let mut done = Vec::new();
    while let Some(finished) = running.next().await {
        match finished? {
            (Some(leg), Ok(())) => done.push(leg),
            (Some(leg), Err(e)) if leg.isolated() => {
                let e = e.with_stage(leg.sink_name());
                tracing::warn!(error = %e, "an isolated branch failed; the others go on");
                // Dropped without close: its sink commits nothing, and what it
                // held counts as abandoned.
                drop(leg);
                isolated.push(e);
            }
            (_, Err(e)) => return Err(e),
            (None, Ok(())) => {}
        }
    }
    Ok(done)
}

/// Waits for the sink to be ready, before any record is read: a sink that opens
/// its destination then (a file) fails the run before any data is read.
async fn open<K, T>(mut sink: Pin<&mut K>, stage: &StageMetrics) -> Result<()>
where
    K: Sink<Batch<T>, Error = Error> + ?Sized,
{
    poll_fn(|cx| {
        guard(stage, || sink.as_mut().poll_ready(cx))?.map_err(|e| e.with_stage(stage.name()))
    })
    .await
}

/// Closes the sink once the run has succeeded: what it took is confirmed.
async fn close<K, T>(mut sink: Pin<&mut K>, unconfirmed: &mut Unconfirmed) -> Result<()>
where
    K: Sink<Batch<T>, Error = Error> + ?Sized,
{
    let stage = unconfirmed.stage.clone();
    poll_fn(|cx| {
        guard(&stage, || sink.as_mut().poll_close(cx))?.map_err(|e| e.with_stage(stage.name()))
    })
    .await?;
    unconfirmed.confirm();
    Ok(())
}

/// Drives batches from `stream` into `sink` until the stream ends (as
/// `futures::StreamExt::forward` does, with metrics and panic catching, but
/// without closing the sink: the run does that when every sink is done).
/// Flushes whenever the stream has nothing ready, so a slow source never holds
/// written data back.
///
/// Times the task's waits on the sink's stage: for the stream (`waiting`),
/// for the sink to be ready or to finish a flush (`blocked`). While both are
/// pending (a slow flush while the stream has nothing either) the time
/// counts in both.
async fn forward<S, K, T>(
    stream: S,
    mut sink: Pin<&mut K>,
    unconfirmed: &mut Unconfirmed,
) -> Result<()>
where
    S: futures::Stream<Item = Result<Batch<T>>>,
    K: Sink<Batch<T>, Error = Error> + ?Sized,
{
    let mut stream = pin!(stream);
    let mut next: Option<Batch<T>> = None;
    let stage = unconfirmed.stage.clone();
    let sink_error = |e: Error| e.with_stage(stage.name());
    let mut input = crate::metrics::Wait::new(&stage, crate::metrics::WaitFor::Input);
    let mut room = crate::metrics::Wait::new(&stage, crate::metrics::WaitFor::Room);
    poll_fn(|cx| {
        let polled = (|| loop {
            if next.is_some() {
                match guard(&stage, || sink.as_mut().poll_ready(cx))? {
                    Poll::Ready(Ok(())) => room.ready(),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(sink_error(e))),
                    Poll::Pending => {
                        room.pending();
                        return Poll::Pending;
                    }
                }
                let batch = next.take().expect("checked above");
                let start = unconfirmed.tally.start();
                let _span = stage.span().enter();
                tracing::debug!(records = batch.len(), "batch to the sink");
                let sent = guard(&stage, || sink.as_mut().start_send(batch))?;
                unconfirmed.tally.stop(start);
                sent.map_err(sink_error)?;
            }
            // A source and sink that are always ready would otherwise keep this
            // task from yielding until the run ends, starving the runtime's other
            // tasks (tokio's cooperative budget, spent once per batch).
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            let polled = stream.as_mut().poll_next(cx);
            if polled.is_ready() {
                input.ready();
            }
            match polled {
                Poll::Ready(Some(Ok(batch))) => {
                    coop.made_progress();
                    // The sink's from here: a failure before it takes the
                    // batch abandons it there, not between the stages.
                    unconfirmed.tally.batch_in(batch.len());
                    unconfirmed.count += batch.len();
                    next = Some(batch);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    input.pending();
                    if unconfirmed.count > 0 {
                        match guard(&stage, || sink.as_mut().poll_flush(cx))? {
                            Poll::Ready(Ok(())) => {
                                room.ready();
                                unconfirmed.confirm();
                            }
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(sink_error(e))),
                            Poll::Pending => room.pending(),
                        }
                    }
                    return Poll::Pending;
                }
            }
        })();
        // Waiting, done or failed: the counts are published (see `Tally`).
        unconfirmed.tally.publish();
        polled
    })
    .await
}

/// Records the sink has taken but not yet confirmed written, and the sink
/// stage's per-batch counts (published whenever the driver returns).
struct Unconfirmed {
    stage: Arc<StageMetrics>,
    count: usize,
    tally: Tally,
}

impl Unconfirmed {
    fn new(stage: Arc<StageMetrics>) -> Self {
        Unconfirmed {
            tally: Tally::new(stage.clone()),
            stage,
            count: 0,
        }
    }

    /// The sink flushed or closed: what it took counts as its output.
    fn confirm(&mut self) {
        // Its input first: never more out than in.
        self.tally.publish();
        self.stage.records_confirmed(self.count);
        self.count = 0;
    }
}

impl Drop for Unconfirmed {
    fn drop(&mut self) {
        self.stage.abandon(self.count);
    }
}

impl<S, K> fmt::Debug for Runnable<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runnable")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sinks: Vec<String> = self.legs.iter().map(|l| l.sink_name()).collect();
        f.debug_struct("Graph")
            .field("sinks", &sinks)
            .finish_non_exhaustive()
    }
}
