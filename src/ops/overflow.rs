//! What a [`buffer`](crate::Pipeline::buffer_with) does with a batch that
//! finds it full.

/// What a buffer does with a batch that finds it full: wait for room (the
/// default, losing nothing) or, for live feeds where fresh data matters more
/// than complete data, drop a batch.
///
/// Drops are decided per batch: a whole batch goes, never part of one, so
/// [`rebatch`](crate::Pipeline::rebatch) before the buffer sets how much is
/// lost at a time. Every record dropped counts as `dropped` on the buffer's
/// stage (in the [`Report`](crate::Report) and its
/// [`StageStats`](crate::StageStats)), so
/// `records_in == records_out + dropped` there once the run has returned.
/// An error from upstream is never dropped: it waits for room.
///
/// After Vector's `WhenFull`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for room: the upstream task stops until the downstream has taken
    /// batches (backpressure). Nothing is lost. The default.
    #[default]
    Block,
    /// Drop the batch that arrives: what is queued keeps its place, and the
    /// upstream never waits.
    DropNewest,
    /// Drop the oldest batch queued to make room for the one that arrives:
    /// the downstream sees the freshest data, and the upstream never waits.
    DropOldest,
}
