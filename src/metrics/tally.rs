//! A stage's per-batch counts, kept by the task that runs the stage and
//! added to its shared [`StageMetrics`] in bulk.
//!
//! Counting each batch straight into the shared atomics costs a locked
//! read-modify-write per counter: about a dozen a batch for a source, a
//! fused pass and a sink, a measurable share of a cheap pass (the pipeline
//! bench's `map → filter`). A [`Tally`] adds plain integers instead and
//! publishes them:
//! - whenever its owner is about to return anything but a batch (it waits
//!   for input or room, ends or fails), so a stage that waits has published
//!   everything;
//! - at least every [`PUBLISH_EVERY`] while it works without a pause (checked
//!   against the clock it reads anyway for its busy time);
//! - when it is dropped (a cancelled run).
//!
//! So readers during a run (progress, the metrics exporter, `in_flight`) see
//! a busy stage's counts at most that late, and the report at the end sees
//! them all.

use std::sync::Arc;
use std::time::Duration;

use super::StageMetrics;
use super::clock::{self, Instant};

/// How long a stage working without a pause may keep its counts to itself.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

/// Counts of one stage not yet added to its [`StageMetrics`].
#[derive(Debug)]
pub(crate) struct Tally {
    stage: Arc<StageMetrics>,
    counts: Counts,
    /// Busy time in clock ticks, converted when published.
    busy_ticks: u64,
    /// When the counts were last published (none yet: at the first timed
    /// batch).
    published: Option<Instant>,
}

/// The counters a [`Tally`] keeps, in the order of the shared ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) batches_in: u64,
    pub(crate) records_in: u64,
    pub(crate) batches_out: u64,
    pub(crate) records_out: u64,
    pub(crate) filtered: u64,
    pub(crate) expanded: u64,
    pub(crate) busy_nanos: u64,
}

impl Tally {
    pub(crate) fn new(stage: Arc<StageMetrics>) -> Self {
        Tally {
            stage,
            counts: Counts::default(),
            busy_ticks: 0,
            published: None,
        }
    }

    /// The stage it counts for.
    pub(crate) fn stage(&self) -> &Arc<StageMetrics> {
        &self.stage
    }

    /// A batch of `records` came in.
    #[inline]
    pub(crate) fn batch_in(&mut self, records: usize) {
        self.counts.batches_in += 1;
        self.counts.records_in += records as u64;
    }

    /// A batch of `records` went out.
    #[inline]
    pub(crate) fn batch_out(&mut self, records: usize) {
        self.counts.batches_out += 1;
        self.counts.records_out += records as u64;
    }

    /// A batch came in with `records_in` records and went out with
    /// `records_out`: fewer were filtered, more were expanded.
    #[inline]
    pub(crate) fn balance(&mut self, records_in: usize, records_out: usize) {
        if records_in > records_out {
            self.counts.filtered += (records_in - records_out) as u64;
        } else {
            self.counts.expanded += (records_out - records_in) as u64;
        }
    }

    /// The stage worked from `start` to `end`; publishes if it has not for
    /// [`PUBLISH_EVERY`].
    #[inline]
    pub(crate) fn busy(&mut self, start: Instant, end: Instant) {
        self.busy_ticks += end.ticks_since(start);
        match self.published {
            Some(at) if end.saturating_duration_since(at) < PUBLISH_EVERY => {}
            Some(_) => {
                clock::refine();
                self.publish();
                self.published = Some(end);
            }
            None => self.published = Some(end),
        }
    }

    /// Adds the counts to the stage's shared counters.
    pub(crate) fn publish(&mut self) {
        let mut counts = std::mem::take(&mut self.counts);
        counts.busy_nanos = clock::nanos(std::mem::take(&mut self.busy_ticks));
        if counts != Counts::default() {
            self.stage.add(&counts);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.publish();
    }
}
