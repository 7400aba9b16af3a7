use std::future::Future;

use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

/// Every task a run spawns, so the run can wait for all of them to end before it
/// returns: when `run()` is done, nothing it started is still running.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tasks {
    tracker: TaskTracker,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Spawns `future` on the current runtime; the handle aborts it.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(future)
    }

    /// Runs blocking work (file I/O, parsing) on tokio's blocking pool.
    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.tracker.spawn_blocking(f)
    }

    /// Waits until every task spawned so far has ended (finished or aborted).
    pub(crate) async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

tokio::task_local! {
    /// The task set of the run being driven, so a sink that starts blocking work
    /// (a file writer) can have the run wait for it.
    static CURRENT: Tasks;
}

impl Tasks {
    /// Runs `future` with this set as the current run's.
    pub(crate) fn scope<F: Future>(
        &self,
        future: F,
    ) -> tokio::task::futures::TaskLocalFuture<Tasks, F> {
        CURRENT.scope(self.clone(), future)
    }
}

/// Runs blocking work on tokio's blocking pool, as part of the current run when
/// there is one: the run then waits for it to end before returning, so a file
/// writer has removed its temporary file by the time `run()` reports a failure.
pub(crate) fn spawn_blocking_in_run<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match CURRENT.try_with(Tasks::clone) {
        Ok(tasks) => tasks.spawn_blocking(f),
        Err(_) => tokio::task::spawn_blocking(f),
    }
}

/// Aborts a task when dropped, so dropping a stage stops the work behind it.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A spawned task's handle that aborts the task when dropped (a plain
/// `JoinHandle` detaches instead), so work in flight ends with its stage.
#[derive(Debug)]
pub(crate) struct Spawned<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Spawned<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}
