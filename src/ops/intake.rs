use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use std::future::Future;

use super::guard_record;
use crate::batch::Meta;
use crate::metrics::StageMetrics;
use crate::metrics::clock;
use crate::runtime::{RunContext, Spawned};
use crate::{Batch, Error, Result};

/// What an async stage should do next with its input.
pub(crate) enum Next<T> {
    /// Start work on this record.
    Start(T),
    /// Nothing to start now: no room, or upstream has nothing ready (it will
    /// wake the task), or upstream has ended.
    Wait,
    /// Upstream failed: end the run with this error.
    Failed(Error),
}

/// The input side shared by the async stages (`map_async`,
/// `map_async_unordered`, `try_map_async`): the records of the batch in hand
/// and whether upstream has ended.
///
/// When the stage is full it still takes the next batch into hand, so an
/// upstream error right behind the work in flight is seen at once, not only
/// after a slot frees up (which may be never). At most one batch waits.
#[derive(Debug)]
pub(crate) struct Intake<T> {
    waiting: std::vec::IntoIter<T>,
    upstream_done: bool,
}

impl<T> Intake<T> {
    pub(crate) fn new() -> Self {
        Intake {
            waiting: Vec::new().into_iter(),
            upstream_done: false,
        }
    }

    /// Records taken from upstream and not yet started.
    pub(crate) fn held(&self) -> usize {
        self.waiting.len()
    }

    /// True once upstream has ended and every record has been started.
    pub(crate) fn is_drained(&self) -> bool {
        self.upstream_done && self.waiting.len() == 0
    }

    /// True once upstream has ended.
    pub(crate) fn upstream_done(&self) -> bool {
        self.upstream_done
    }

    /// The next record to start when `room`, reading upstream as needed;
    /// `on_batch` sees each non-empty batch taken in (its length and sequence
    /// number) before its records are handed out.
    pub(crate) fn poll_next<S>(
        &mut self,
        mut upstream: Pin<&mut S>,
        cx: &mut Context<'_>,
        room: bool,
        stage: &StageMetrics,
        mut on_batch: impl FnMut(usize, Meta),
    ) -> Next<T>
    where
        S: Stream<Item = Result<Batch<T>>>,
    {
        loop {
            if self.waiting.len() > 0 {
                return match room.then(|| self.waiting.next()).flatten() {
                    Some(record) => Next::Start(record),
                    None => Next::Wait,
                };
            }
            if self.upstream_done {
                return Next::Wait;
            }
            match upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    stage.batch_in(batch.len());
                    if !batch.is_empty() {
                        let len = batch.len();
                        let (records, meta) = batch.into_parts();
                        on_batch(len, meta);
                        self.waiting = records.into_iter();
                    }
                }
                Poll::Ready(Some(Err(e))) => return Next::Failed(e),
                Poll::Ready(None) => self.upstream_done = true,
                Poll::Pending => return Next::Wait,
            }
        }
    }
}

/// Calls `f` on `record` (a panic becomes the stage's error, and the record,
/// lost with it, counts as abandoned) and runs the future it returns as its own
/// task, so it progresses while downstream is busy.
pub(crate) fn spawn_call<T, F, Fut>(
    f: &mut F,
    record: T,
    tasks: &RunContext,
    stage: &StageMetrics,
) -> Result<Spawned<Fut::Output>>
where
    F: FnMut(T) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let start = clock::now();
    let fut = guard_record(stage, || f(record));
    stage.busy_since(start);
    Ok(Spawned(tasks.spawn(fut?)))
}
