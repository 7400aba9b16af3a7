use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

use super::Staged;
use super::commit::Commits;
use crate::connectors::file::Claims;

/// The context of one run, shared by every stage: the tasks it spawned (so the
/// run can wait for all of them to end before it returns: when `run()` is done,
/// nothing it started is still running), the files it reads and writes (so no
/// output overwrites an input or another output), and the outputs staged for
/// the run's commit.
///
/// One value per run, cloned into every stage; the clone a sink is polled with
/// also says in which [`Role`] it writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunContext {
    /// The stages' tasks.
    tracker: TaskTracker,
    /// The sinks' blocking writers: they end only when their sink is closed
    /// or dropped, after the stages have drained.
    writers: TaskTracker,
    shared: Arc<Shared>,
    role: Role,
}

#[derive(Debug, Default)]
struct Shared {
    claims: Claims,
    commits: Commits,
    control: std::sync::Arc<super::control::Control>,
}

/// What the sink being polled writes for the run: its main output, or dead
/// letters (which are kept when the run fails, as they explain the failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// The output of the named sink stage.
    Output(Arc<str>),
    /// Dead letters: rejected records.
    DeadLetters,
}

impl Default for Role {
    fn default() -> Self {
        Role::Output(Arc::from("sink"))
    }
}

impl RunContext {
    /// A context whose sources obey `control` (a run handle's).
    pub(crate) fn with_control(control: std::sync::Arc<super::control::Control>) -> Self {
        RunContext {
            shared: Arc::new(Shared {
                control,
                ..Shared::default()
            }),
            ..Self::default()
        }
    }

    /// The run's pause and stop switches.
    pub(crate) fn control(&self) -> &super::control::Control {
        &self.shared.control
    }

    /// Spawns `future` on the current runtime; the handle aborts it.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(future)
    }

    /// Runs a sink's blocking writer (file I/O) on tokio's blocking pool, as
    /// part of the run: the work sees this context.
    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let context = self.clone();
        self.writers.spawn_blocking(move || enter(context, f))
    }

    /// Waits until every stage task spawned so far has ended (finished or
    /// aborted).
    pub(crate) async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Waits until every task of the run has ended, the sinks' writers too.
    pub(crate) async fn wait_all(&self) {
        self.wait().await;
        self.writers.close();
        self.writers.wait().await;
    }

    /// This context, for work done in `role`.
    pub(crate) fn with_role(&self, role: Role) -> RunContext {
        RunContext {
            role,
            ..self.clone()
        }
    }

    /// The role of the sink polled with this context.
    pub(crate) fn role(&self) -> &Role {
        &self.role
    }

    /// The files this run reads and writes.
    pub(crate) fn claims(&self) -> &Claims {
        &self.shared.claims
    }

    /// The outputs staged for this run's commit.
    pub(crate) fn commits(&self) -> &Commits {
        &self.shared.commits
    }

    /// Hands a prepared output to the run, in this context's role, to be
    /// committed with every other output once the whole run has succeeded.
    pub(crate) fn stage(&self, output: Box<dyn Staged>) {
        self.shared.commits.push(self.role.clone(), output);
    }
}

tokio::task_local! {
    /// The context of the run being driven, so a sink that starts blocking work
    /// (a file writer) can have the run wait for it.
    static CURRENT: RunContext;
}

impl RunContext {
    /// Runs `future` with this set as the current run's.
    pub(crate) fn scope<F: Future>(
        &self,
        future: F,
    ) -> tokio::task::futures::TaskLocalFuture<RunContext, F> {
        CURRENT.scope(self.clone(), future)
    }
}

thread_local! {
    /// The run a blocking thread works for, while it does (see [`enter`]).
    static BLOCKING: RefCell<Option<RunContext>> = const { RefCell::new(None) };
}

/// Runs `f` on this (blocking) thread as work of the run of `context`, so
/// [`current`] finds it there too.
fn enter<R>(context: RunContext, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<RunContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BLOCKING.with(|b| *b.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(BLOCKING.with(|b| b.borrow_mut().replace(context)));
    f()
}

/// The context of the run being driven: the task's (a stage's poll) or, on a
/// blocking thread started by the run, the thread's. `None` outside any run (a
/// sink or source driven by hand).
pub(crate) fn current() -> Option<RunContext> {
    CURRENT
        .try_with(RunContext::clone)
        .ok()
        .or_else(|| BLOCKING.with(|b| b.borrow().clone()))
}

/// Runs blocking work on tokio's blocking pool, as part of the current run when
/// there is one: the run then waits for it to end before returning, so a file
/// writer has removed its temporary file by the time `run()` reports a failure.
pub(crate) fn spawn_blocking_in_run<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match current() {
        Some(tasks) => tasks.spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    }
}

/// Runs blocking work on tokio's blocking pool with the current run's context
/// (so it can claim the files it opens), but outside the run's task set: a
/// reader blocked on input (stdin) must not keep a failed run from returning.
pub(crate) fn spawn_blocking_detached<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match current() {
        Some(tasks) => tokio::task::spawn_blocking(move || enter(tasks, f)),
        None => tokio::task::spawn_blocking(f),
    }
}

/// The context of the run a stage is polled in, found on first use (stages are
/// built before their run exists): the current run's, or outside any run (a
/// stream polled by hand) a context of its own.
#[derive(Debug, Default)]
pub(crate) struct LazyContext(std::sync::OnceLock<RunContext>);

impl std::ops::Deref for LazyContext {
    type Target = RunContext;

    fn deref(&self) -> &RunContext {
        self.0.get_or_init(|| current().unwrap_or_default())
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
