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
//!
//! It also times the stage's batches ([`start`](Tally::start),
//! [`stop`](Tally::stop)): every one while they take [`CHEAP`] or more; after
//! a cheaper one, the next [`SKIP`] are not timed and count as long as the
//! next one timed (two clock readings were still ~4% of a fused
//! `map → filter`'s time). So a stage whose batches take 2 µs or more is
//! timed exactly; a stage of cheap batches is estimated, and a lone
//! expensive batch among cheap ones is under-counted when it falls in the
//! untimed three.

use std::sync::Arc;
use std::time::Duration;

use super::StageMetrics;
use super::clock::{self, Instant};

/// How long a stage working without a pause may keep its counts to itself.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

/// A batch timed under this is cheap: the next [`SKIP`] batches are not timed.
const CHEAP: Duration = Duration::from_micros(2);

/// The batches not timed after a cheap one.
const SKIP: u32 = 3;

/// Counts of one stage not yet added to its [`StageMetrics`].
#[derive(Debug)]
pub(crate) struct Tally {
    stage: Arc<StageMetrics>,
    counts: Counts,
    /// Busy time in clock ticks, converted when published.
    busy_ticks: u64,
    /// The last timed batch's ticks, and how many batches since were not
    /// timed (counted at the next timed batch's ticks, or at the last one's
    /// when published first).
    last_ticks: u64,
    untimed: u64,
    /// Batches left not to time.
    skip: u32,
    /// [`CHEAP`] in ticks.
    cheap_ticks: u64,
    /// The reading from which the counts are due to be published (none
    /// before the first timed batch).
    due: Option<Instant>,
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
            last_ticks: 0,
            untimed: 0,
            skip: 0,
            cheap_ticks: clock::ticks(CHEAP),
            due: None,
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

    /// The start of a batch's work, if this batch is timed (see the module
    /// doc); pass it to [`stop`](Tally::stop) when the work is done.
    #[inline]
    pub(crate) fn start(&mut self) -> Option<Instant> {
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        Some(clock::now())
    }

    /// The batch [`start`](Tally::start)ed is done; publishes if the counts
    /// have not been for [`PUBLISH_EVERY`].
    #[inline]
    pub(crate) fn stop(&mut self, start: Option<Instant>) {
        match start {
            Some(start) => self.busy(start, clock::now()),
            None => self.untimed += 1,
        }
    }

    /// The work [`start`](Tally::start)ed is done and gave no batch (a
    /// source that had nothing yet, or ended): its time counts if it was
    /// timed, and it is not counted as a batch.
    #[inline]
    pub(crate) fn stop_without_batch(&mut self, start: Option<Instant>) {
        if let Some(start) = start {
            self.busy(start, clock::now());
        }
    }

    /// The stage worked from `start` to `end`, as did each batch not timed
    /// since the last timed one; publishes if the counts have not been for
    /// [`PUBLISH_EVERY`].
    #[inline]
    fn busy(&mut self, start: Instant, end: Instant) {
        let ticks = end.ticks_since(start);
        self.busy_ticks += ticks * (1 + self.untimed);
        self.last_ticks = ticks;
        self.untimed = 0;
        self.skip = if ticks < self.cheap_ticks { SKIP } else { 0 };
        match self.due {
            Some(due) if end < due => {}
            Some(_) => {
                clock::refine();
                self.publish();
                self.due = Some(end.after(PUBLISH_EVERY));
            }
            None => self.due = Some(end.after(PUBLISH_EVERY)),
        }
    }

    /// Adds the counts to the stage's shared counters.
    pub(crate) fn publish(&mut self) {
        let mut counts = std::mem::take(&mut self.counts);
        let untimed = std::mem::take(&mut self.untimed) * self.last_ticks;
        counts.busy_nanos = clock::nanos(std::mem::take(&mut self.busy_ticks) + untimed);
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
