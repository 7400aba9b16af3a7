//! How a source reaches its own stage's counters: the [`Metered`] adapter
//! offers its stage on the thread while it polls the source, and a source that
//! has something to report (a file reader's bytes) takes a handle to it.
//!
//! Sources are plain streams built before their run and its stages exist, so
//! the stage cannot be handed to them when they are made; the offer is scoped
//! to the poll, so a stream polled anywhere else (by hand, inside another
//! stage) finds none.
//!
//! [`Metered`]: crate::ops::Metered

use std::cell::Cell;
use std::sync::Arc;

use super::StageMetrics;

thread_local! {
    /// The stage of the source being polled on this thread, if any.
    static OFFERED: Cell<Option<Arc<StageMetrics>>> = const { Cell::new(None) };
}

/// Runs `poll` with `stage` offered to the source it polls, then takes it back
/// (restoring any outer offer). The `Arc` is moved in and out, never cloned:
/// no atomic operation per poll.
pub(crate) fn offering<R>(stage: &mut Option<Arc<StageMetrics>>, poll: impl FnOnce() -> R) -> R {
    /// Takes the offer back even if `poll` unwinds.
    struct Withdraw<'a> {
        stage: &'a mut Option<Arc<StageMetrics>>,
        outer: Option<Arc<StageMetrics>>,
    }
    impl Drop for Withdraw<'_> {
        fn drop(&mut self) {
            *self.stage = OFFERED.with(|o| o.replace(self.outer.take()));
        }
    }
    let outer = OFFERED.with(|o| o.replace(stage.take()));
    let _withdraw = Withdraw { stage, outer };
    poll()
}

/// The stage of the source being polled on this thread: the source stage a
/// reader reports to. `None` outside a [`offering`] scope. Clones the `Arc`:
/// call it once, not per poll.
pub(crate) fn source_stage() -> Option<Arc<StageMetrics>> {
    OFFERED.with(|o| {
        let stage = o.take();
        let found = stage.clone();
        o.set(stage);
        found
    })
}
