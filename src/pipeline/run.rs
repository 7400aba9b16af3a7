use std::fmt;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Instant;

use futures::Sink;
use futures::future::{Either, poll_fn, select, try_join_all};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Pipeline, Report, Status};
use crate::metrics::{StageMetrics, Stages};
use crate::ops::{guard, join_error};
use crate::runtime::{Role, RunContext, Spawned};
use crate::source::Source;
use crate::{Batch, Error, Result};

/// A pipeline connected to its sink, ready to [`run`](Runnable::run).
///
/// Created by [`Pipeline::to`].
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

impl<S, K> Runnable<S, K>
where
    S: Source,
    K: Sink<Batch<S::Record>, Error = Error> + Send + 'static,
{
    /// Runs the pipeline to the end and returns its [`Report`], or the error a
    /// failed run stopped on.
    ///
    /// Returns only after the source has ended, every stage has drained, every
    /// sink has been closed and committed and every task the run spawned has
    /// ended. The run's sinks (this one and any dead-letter sinks) are all or
    /// nothing together:
    /// - every sink is made ready (a file sink opens and checks its
    ///   destination) before the source is read, and no file may serve twice
    ///   (an output that is an input or another output is refused, naming both);
    /// - file sinks write to temporaries and are renamed into place together,
    ///   only once the whole run has succeeded; on failure the main outputs are
    ///   removed (dead letters are kept: they explain the failure); a cancelled
    ///   run commits nothing;
    /// - a sink of your own gets `close` only after every other sink succeeded,
    ///   and never on failure (it is dropped). A sink that writes as it goes
    ///   (stdout, a file in append mode) cannot take back what it wrote.
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
        self.run_to_report().await.into_result()
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
        self.run_inner(std::future::pending()).await
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
        self.run_inner(stop).await
    }

    async fn run_inner(self, stop: impl Future<Output = ()> + Send) -> Report {
        let Runnable {
            pipeline,
            sink,
            sink_stage,
        } = self;
        let Pipeline {
            stream,
            stages,
            tasks,
        } = pipeline;
        let start = Instant::now();
        let cancel = CancellationToken::new();
        let driver = drive(
            stream,
            sink,
            sink_stage,
            stages.clone(),
            tasks.clone(),
            cancel.clone(),
        )
        .instrument(tracing::info_span!("pipeline"));
        // The run is driven by a task of its own, not by whoever awaits it. The
        // caller is often `block_on`'s thread (`#[tokio::main]`), which is not a
        // runtime worker: every batch crossing a `buffer` to it would be a
        // cross-thread wake-up, measured at 3 µs per batch, and it would be a
        // third busy thread on a 2-core machine. Dropping this future aborts the run.
        let mut driver = Spawned(tokio::spawn(driver));
        let outcome = match select(pin!(stop), &mut driver).await {
            Either::Right((outcome, _)) => outcome,
            Either::Left(((), driver)) => {
                cancel.cancel();
                driver.await
            }
        };
        let (result, cancelled) = match outcome {
            Ok(outcome) => outcome,
            // Our own code panicked (user code is guarded stage by stage), or
            // the runtime is shutting down.
            Err(e) => (Err(join_error(e, "pipeline")), false),
        };
        let errors = stages.take_errors();
        let stages = stages.snapshot();
        let failed_records: u64 = stages.iter().map(|s| s.skipped + s.dead_lettered).sum();
        let status = match result {
            Ok(()) if cancelled => Status::Cancelled,
            Ok(()) if failed_records > 0 => Status::CompletedWithErrors,
            Ok(()) => Status::Completed,
            Err(e) => Status::Failed(e),
        };
        if let Status::Failed(e) = &status {
            tracing::error!(error = %e, "pipeline failed");
        }
        Report {
            status,
            elapsed: start.elapsed(),
            stages,
            errors,
        }
    }
}

/// Runs the pipeline into its sink, with the dead-letter sinks alongside, until
/// it ends or `cancel` fires; returns its result and whether it was cancelled.
/// Returns only once every task the run spawned has ended.
///
/// The run's sinks are all-or-nothing together, in four phases:
/// 1. *open*: every sink (main and dead letters) is made ready, so a
///    destination that cannot be written fails the run before any record is
///    read;
/// 2. *flow*: the source is drained through every stage into the sink, rejects
///    into the dead-letter sinks;
/// 3. *prepare*: the dead-letter sinks are closed, then, if all went well, the
///    main sink: a file sink flushes and syncs its temporary file and stages
///    it with the run; a user's own sink sees `close` only now, after every
///    other sink succeeded;
/// 4. *commit*: every staged output is renamed into place if the run
///    succeeded; if it failed, only the dead letters are (they explain the
///    failure), the rest are removed; if it was cancelled, nothing is.
async fn drive<S, K>(
    stream: S,
    sink: K,
    sink_stage: Arc<StageMetrics>,
    stages: Stages,
    tasks: RunContext,
    cancel: CancellationToken,
) -> (Result<()>, bool)
where
    S: Source,
    K: Sink<Batch<S::Record>, Error = Error>,
{
    let mut sink = Box::pin(sink);
    let main_role = tasks.with_role(Role::Output(Arc::from(sink_stage.name())));
    let dead_letter_role = tasks.with_role(Role::DeadLetters);
    // Records the sink took but has not confirmed: abandoned if the run ends
    // any other way than the sink closing (an error, or a cancel).
    let mut unconfirmed = Unconfirmed {
        stage: &sink_stage,
        count: 0,
    };
    let mut cancelled = false;

    // 1. Open.
    let drivers: Result<Vec<_>> = stages
        .dead_letters()
        .iter()
        .map(|d| d.take_driver())
        .collect();
    let mut drivers = match drivers {
        Ok(drivers) => drivers,
        Err(e) => return (Err(e.with_stage("dead letters")), false),
    };
    let open_all = futures::future::try_join(
        main_role.scope(open(sink.as_mut(), &sink_stage)),
        dead_letter_role.scope(try_join_all(
            drivers
                .iter_mut()
                .map(|d| async { d.open().await.map_err(|e| e.with_stage("dead letters")) }),
        )),
    );
    let opened = match select(pin!(cancel.cancelled()), pin!(open_all)).await {
        Either::Left(_) => Err(None),
        Either::Right((result, _)) => result.map(drop).map_err(Some),
    };
    if let Err(e) = opened {
        // Nothing was read; every sink is dropped, nothing committed.
        drop(drivers);
        drop(sink);
        tasks.wait_all().await;
        tasks.commits().commit(false, false).ok();
        return match e {
            Some(e) => (Err(e), false),
            None => (Ok(()), true),
        };
    }

    // 2. Flow.
    let (done_tx, done_rx): (Vec<_>, Vec<_>) =
        drivers.iter().map(|_| oneshot::channel::<()>()).unzip();
    let rejects = dead_letter_role.scope(try_join_all(drivers.into_iter().zip(done_rx).map(
        |(d, done)| async move { d.run(done).await.map_err(|e| e.with_stage("dead letters")) },
    )));
    let pipeline = async {
        let run = main_role.scope(forward(
            stream,
            sink.as_mut(),
            &sink_stage,
            &mut unconfirmed,
        ));
        // The cancel signal is polled first: polled after the run, it would find
        // tokio's cooperative budget spent by the run every time.
        let result = match select(pin!(cancel.cancelled()), pin!(run)).await {
            Either::Right((result, _)) => result.and_then(|()| stages.check_max_errors()),
            Either::Left(((), _)) => {
                // The run future, a temporary of this statement, is dropped at
                // its end, with the pipeline: nothing more is read.
                cancelled = true;
                Ok(())
            }
        };
        // A task may not have seen its abort yet and still reject records (a
        // stage upstream of a buffer, after a `take` ended the run): wait for
        // every task to end before the dead-letter sinks stop taking rejects,
        // so none counted is lost.
        tasks.wait().await;
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
            result.and(rejected.map(drop))
        }
        Either::Right((Ok(_), pipeline)) => pipeline.await,
        Either::Right((Err(e), _pipeline)) => Err(e),
    };

    // 3. Prepare: the main sink is closed last, once everything else succeeded.
    let result = match result {
        Ok(()) if !cancelled => {
            main_role
                .scope(close(sink.as_mut(), &sink_stage, &mut unconfirmed))
                .await
        }
        other => other,
    };
    drop(unconfirmed);
    drop(sink);
    // Wait for every task to end (a file writer removing what it abandoned)
    // so nothing outlives the run.
    tasks.wait_all().await;

    // 4. Commit. On a blocking thread, which runs to its end even if the run
    // is aborted meanwhile: a commit once begun is never cut halfway.
    let succeeded = result.is_ok() && !cancelled;
    // A failed run keeps its dead letters: they explain the failure. A
    // cancelled run commits nothing at all, and so does a run refused for
    // using a file twice (its dead-letter file may be the very input it
    // refused to overwrite).
    let keep_dead_letters = !cancelled && !tasks.claims().refused();
    let commits = tasks.clone();
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
    (result, cancelled)
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
async fn close<K, T>(
    mut sink: Pin<&mut K>,
    stage: &StageMetrics,
    unconfirmed: &mut Unconfirmed<'_>,
) -> Result<()>
where
    K: Sink<Batch<T>, Error = Error> + ?Sized,
{
    poll_fn(|cx| {
        guard(stage, || sink.as_mut().poll_close(cx))?.map_err(|e| e.with_stage(stage.name()))
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
async fn forward<S, K, T>(
    stream: S,
    mut sink: Pin<&mut K>,
    stage: &StageMetrics,
    unconfirmed: &mut Unconfirmed<'_>,
) -> Result<()>
where
    S: futures::Stream<Item = Result<Batch<T>>>,
    K: Sink<Batch<T>, Error = Error> + ?Sized,
{
    let mut stream = pin!(stream);
    let mut next: Option<Batch<T>> = None;
    let sink_error = |e: Error| e.with_stage(stage.name());
    poll_fn(|cx| {
        loop {
            if next.is_some() {
                match guard(stage, || sink.as_mut().poll_ready(cx))? {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(sink_error(e))),
                    Poll::Pending => return Poll::Pending,
                }
                let batch = next.take().expect("checked above");
                let start = Instant::now();
                let sent = guard(stage, || sink.as_mut().start_send(batch))?;
                stage.busy_since(start);
                sent.map_err(sink_error)?;
            }
            // A source and sink that are always ready would otherwise keep this
            // task from yielding until the run ends, starving the runtime's other
            // tasks (tokio's cooperative budget, spent once per batch).
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    coop.made_progress();
                    // The sink's from here: a failure before it takes the
                    // batch abandons it there, not between the stages.
                    stage.batch_in(batch.len());
                    unconfirmed.count += batch.len();
                    next = Some(batch);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    if unconfirmed.count > 0 {
                        match guard(stage, || sink.as_mut().poll_flush(cx))? {
                            Poll::Ready(Ok(())) => unconfirmed.confirm(),
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(sink_error(e))),
                            Poll::Pending => {}
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}

/// Records the sink has taken but not yet confirmed written.
struct Unconfirmed<'a> {
    stage: &'a StageMetrics,
    count: usize,
}

impl Unconfirmed<'_> {
    /// The sink flushed or closed: what it took counts as its output.
    fn confirm(&mut self) {
        self.stage.records_confirmed(self.count);
        self.count = 0;
    }
}

impl Drop for Unconfirmed<'_> {
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
