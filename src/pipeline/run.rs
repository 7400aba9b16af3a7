use std::fmt;
use std::pin::pin;
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
use crate::runtime::{Spawned, Tasks};
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
    /// Returns only after the source has ended, every stage has drained, the sink
    /// has been closed and every task the run spawned has ended. On failure the
    /// sink is dropped without `close`: a sink that commits on close (a file
    /// renamed into place) then leaves no partial output.
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
async fn drive<S, K>(
    stream: S,
    sink: K,
    sink_stage: Arc<StageMetrics>,
    stages: Stages,
    tasks: Tasks,
    cancel: CancellationToken,
) -> (Result<()>, bool)
where
    S: Source,
    K: Sink<Batch<S::Record>, Error = Error>,
{
    let dead_letters = stages.dead_letters().to_vec();
    let mut cancelled = false;
    // The dead-letter sinks are driven alongside the pipeline, in this
    // task, and told to finish once the pipeline is done.
    let (done_tx, done_rx): (Vec<_>, Vec<_>) = dead_letters
        .iter()
        .map(|_| oneshot::channel::<()>())
        .unzip();
    let pipeline = async {
        let check = || stages.check_max_errors();
        let run = tasks.scope(forward(stream, sink, &sink_stage, check));
        // The cancel signal is polled first: polled after the run, it would find
        // tokio's cooperative budget spent by the run every time.
        let result = match select(pin!(cancel.cancelled()), pin!(run)).await {
            Either::Right((result, _)) => result,
            Either::Left(((), _)) => {
                // The run future, a temporary of this statement, is
                // dropped at its end, with the pipeline and the sink:
                // nothing more is read, nothing is committed.
                cancelled = true;
                Ok(())
            }
        };
        // Stream and sink are dropped by now, which aborts any task
        // still running. A task may not have seen its abort yet and
        // still reject records (a stage upstream of a buffer, after a
        // `take` ended the run): wait for every task to end before the
        // dead-letter sinks stop taking rejects, so none counted is lost.
        tasks.wait().await;
        drop(done_tx);
        result
    };
    let rejects = try_join_all(
        dead_letters
            .iter()
            .zip(done_rx)
            .map(|(d, done)| async move {
                d.drive(done)
                    .await
                    .map_err(|e| e.with_stage("dead letters"))
            }),
    );
    // A dead-letter sink that fails ends the run there, as a failing
    // sink does (the pipeline is dropped, its sink not closed), and
    // with its own error: going on, the next stage to reject a record
    // would fail with `Closed` instead, hiding the cause.
    let result = match select(pin!(pipeline), pin!(rejects)).await {
        Either::Left((result, rejects)) => result.and(rejects.await.map(drop)),
        Either::Right((Ok(_), pipeline)) => pipeline.await,
        Either::Right((Err(e), _pipeline)) => Err(e),
    };
    // Wait for every task to end (again, if the dead letters failed
    // first and the pipeline was dropped) so nothing outlives the run.
    tasks.wait().await;
    (result, cancelled)
}

/// Drives batches from `stream` into `sink` until the stream ends, then closes
/// the sink (as `futures::StreamExt::forward` does, with metrics and panic
/// catching). Flushes whenever the stream has nothing ready, so a slow source
/// never holds written data back.
///
/// `before_close` runs once the stream has ended, before the sink is closed: an
/// error there fails the run with the sink dropped, not committed.
async fn forward<S, K, T>(
    stream: S,
    sink: K,
    stage: &StageMetrics,
    before_close: impl Fn() -> Result<()>,
) -> Result<()>
where
    S: futures::Stream<Item = Result<Batch<T>>>,
    K: Sink<Batch<T>, Error = Error>,
{
    let mut stream = pin!(stream);
    let mut sink = pin!(sink);
    let mut next: Option<Batch<T>> = None;
    // Records the sink took but has not confirmed: abandoned if the run ends
    // any other way than the sink closing (an error, or this future dropped
    // by a cancel).
    let mut unconfirmed = Unconfirmed { stage, count: 0 };
    let sink_error = |e: Error| e.with_stage(stage.name());
    // Wait for the sink to be ready before reading anything: a sink that opens
    // its destination then (a file) fails the run before any data is read.
    let mut opened = false;
    let mut checked = false;
    poll_fn(|cx| {
        if !opened {
            match guard(stage, || sink.as_mut().poll_ready(cx))? {
                Poll::Ready(Ok(())) => opened = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(sink_error(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        loop {
            if next.is_some() {
                match guard(stage, || sink.as_mut().poll_ready(cx))? {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(sink_error(e))),
                    Poll::Pending => return Poll::Pending,
                }
                let batch = next.take().expect("checked above");
                stage.batch_in(batch.len());
                unconfirmed.count += batch.len();
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
                    next = Some(batch);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => {
                    if !checked {
                        before_close()?;
                        checked = true;
                    }
                    let closed = guard(stage, || sink.as_mut().poll_close(cx))?;
                    return closed.map(|r| {
                        r.map_err(sink_error)?;
                        unconfirmed.confirm();
                        Ok(())
                    });
                }
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
