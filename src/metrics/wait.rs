//! Timing a task's waits at a boundary, per batch and from transitions only.

use std::time::Duration;

use tokio::time::Instant;

use super::StageMetrics;

/// What a [`Wait`] counts as on its stage.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitFor {
    /// Input: the upstream had nothing ready (`waiting`).
    Input,
    /// Room: downstream could take nothing more (`blocked`).
    Room,
}

/// One kind of wait of one task, timed on its stage.
///
/// The clock is read only on a transition: when the awaited thing first
/// returns `Pending` ([`pending`](Wait::pending)) and when it is ready again
/// ([`ready`](Wait::ready)). A task that never waits reads no clock. A wait
/// still going when this is dropped (the run ended, failed or was
/// cancelled meanwhile) is counted up to then.
///
/// The clock is tokio's, so paused time in tests moves it (it is the system's
/// monotonic clock otherwise).
#[derive(Debug)]
pub(crate) struct Wait<'a> {
    stage: &'a StageMetrics,
    what: WaitFor,
    since: Option<Instant>,
}

impl<'a> Wait<'a> {
    /// A wait for `what`, counted on `stage`; not waiting yet.
    pub(crate) fn new(stage: &'a StageMetrics, what: WaitFor) -> Self {
        Wait {
            stage,
            what,
            since: None,
        }
    }

    /// The awaited thing is not ready: the wait starts, unless it already
    /// has.
    pub(crate) fn pending(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }

    /// The awaited thing is ready: a wait going on ends and is counted.
    pub(crate) fn ready(&mut self) {
        if let Some(since) = self.since.take() {
            self.count(since.elapsed());
        }
    }

    fn count(&self, time: Duration) {
        match self.what {
            WaitFor::Input => self.stage.waited(time),
            WaitFor::Room => self.stage.blocked(time),
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.ready();
    }
}
