use std::fmt;
use std::time::Duration;

use crate::metrics::StageStats;
use crate::{Error, Result};

/// How a run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Status {
    /// The source ended, every stage drained and the sink closed.
    Completed,
    /// The source ended and the sink closed, but some records failed and were
    /// skipped or dead-lettered; see [`Report::skipped`],
    /// [`Report::dead_lettered`] and [`Report::errors`].
    CompletedWithErrors,
    /// The run was stopped from outside ([`Runnable::run_until`](crate::Runnable::run_until))
    /// before the source ended; the sink was dropped without being closed.
    Cancelled,
    /// The run stopped on this error; the sink was dropped without being closed,
    /// so sinks that commit on close (files) leave nothing half-written.
    Failed(Error),
}

/// What a run did: its [`Status`], how long it took and per-stage statistics.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let report = Pipeline::from(source::iter(1..=10u64))
///     .filter(|x| x % 2 == 0)
///     .name("evens")
///     .to(sink::discard())
///     .run()
///     .await?;
/// assert!(report.is_completed());
/// assert_eq!(report.records_in(), 10);
/// assert_eq!(report.records_out(), 5);
/// assert_eq!(report.stage("evens").unwrap().records_in, 10);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Report {
    pub(crate) status: Status,
    pub(crate) elapsed: Duration,
    pub(crate) stages: Vec<StageStats>,
    pub(crate) errors: Vec<Error>,
    /// The errors of isolated branches that failed (the run went on without them).
    pub(crate) failed_branches: Vec<Error>,
    /// A failed run kept its dead letters (they explain the failure).
    pub(crate) dead_letters_kept: bool,
    /// The run was stopped by its handle: a successful run on a prefix.
    pub(crate) stopped: bool,
    /// The byte budget's use, for a run with a budget.
    pub(crate) in_flight: Option<InFlight>,
}

/// The use of a run's byte budget for batches in flight (see
/// [`Graph::max_in_flight_bytes`](crate::Graph::max_in_flight_bytes)): in
/// [`Progress`](crate::Progress) while it runs, in the [`Report`] at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct InFlight {
    /// The budget.
    pub max_bytes: u64,
    /// Estimated bytes of the batches in flight now (0 when a run ended).
    pub bytes: u64,
    /// The most that were in flight at once so far.
    pub peak_bytes: u64,
}

impl InFlight {
    pub(crate) fn of(budget: &crate::runtime::Budget) -> InFlight {
        InFlight {
            max_bytes: budget.max() as u64,
            bytes: budget.in_flight() as u64,
            peak_bytes: budget.peak() as u64,
        }
    }
}

impl Report {
    /// A report of a run that left no statistics (its task was aborted).
    pub(crate) fn without_stages(status: Status) -> Report {
        Report {
            status,
            elapsed: Duration::ZERO,
            stages: Vec::new(),
            errors: Vec::new(),
            failed_branches: Vec::new(),
            dead_letters_kept: false,
            stopped: false,
            in_flight: None,
        }
    }

    /// What held the run back, in plain words: "sink-bound", the busiest
    /// stage between source and sink, or "source-bound" (see
    /// [`Progress::bottleneck`](crate::Progress::bottleneck)); `None` when
    /// the run was too short to tell or its time was spread evenly.
    pub fn bottleneck(&self) -> Option<String> {
        super::progress::bottleneck(&self.stages, self.elapsed)
    }

    /// True when the run was [`stop`](crate::RunHandle::stop)ped: it read a
    /// prefix of its input, drained it and committed it.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// How the run ended.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// True when the run completed with every record accounted for as passed on
    /// or filtered: nothing skipped, nothing failed.
    pub fn is_completed(&self) -> bool {
        matches!(self.status, Status::Completed)
    }

    /// True when the run completed but skipped some records.
    pub fn has_errors(&self) -> bool {
        matches!(self.status, Status::CompletedWithErrors)
    }

    /// Records dropped under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip), all stages together.
    pub fn skipped(&self) -> u64 {
        self.stages.iter().map(|s| s.skipped).sum()
    }

    /// Records sent to dead letters, all stages together.
    pub fn dead_lettered(&self) -> u64 {
        self.stages.iter().map(|s| s.dead_lettered).sum()
    }

    /// Extra attempts made under retry policies, all stages together.
    pub fn retried(&self) -> u64 {
        self.stages.iter().map(|s| s.retried).sum()
    }

    /// The first few errors of each stage that skipped or dead-lettered
    /// records, in full (stage, position, attempts, cause); the rest are counted.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// Checks that every stage accounted for every record it received:
    /// `records_in + expanded == records_out + filtered + skipped + dead_lettered + abandoned`.
    /// Holds for every run once it has returned; `Err` names the first stage
    /// that does not balance.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let report = Pipeline::from(source::iter(0..100))
    ///     .filter(|x| x % 3 == 0)
    ///     .flat_map(|x| vec![x; 2])
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// report.check_accounting().unwrap();
    /// # Ok(()) }
    /// ```
    pub fn check_accounting(&self) -> Result<(), String> {
        match self.stages.iter().find(|s| s.in_flight() != 0) {
            None => Ok(()),
            Some(s) => Err(format!(
                "stage {:?} does not balance: {} in + {} expanded != {} out + {} filtered + {} skipped + {} dead-lettered + {} dropped + {} combined + {} absorbed + {} late + {} duplicates + {} unmatched + {} abandoned",
                s.name,
                s.records_in,
                s.expanded,
                s.records_out,
                s.filtered,
                s.skipped,
                s.dead_lettered,
                s.dropped,
                s.combined,
                s.absorbed,
                s.late,
                s.duplicates,
                s.unmatched,
                s.abandoned
            )),
        }
    }

    /// True when the run was stopped before it ended.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.status, Status::Cancelled)
    }

    /// True when the run failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.status, Status::Failed(_))
    }

    /// The error a failed run stopped on.
    pub fn error(&self) -> Option<&Error> {
        match &self.status {
            Status::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// `Ok(self)` unless the run failed, in which case its error.
    pub fn into_result(self) -> Result<Report> {
        match self.status {
            Status::Failed(e) => Err(e),
            _ => Ok(self),
        }
    }

    /// Wall-clock time from the start of the run until it returned.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Records the source produced.
    pub fn records_in(&self) -> u64 {
        self.of_kind("source").map(|s| s.records_out).sum()
    }

    /// Records the sinks confirmed written (flushed or closed), summed over
    /// every sink of the run.
    pub fn records_out(&self) -> u64 {
        self.of_kind("sink").map(|s| s.records_out).sum()
    }

    /// Batches the sources produced.
    pub fn batches_in(&self) -> u64 {
        self.of_kind("source").map(|s| s.batches_out).sum()
    }

    /// The errors of the [`isolate`](crate::Pipeline::isolate)d branches that
    /// failed: the run went on without them, and their sinks committed
    /// nothing. Each names the stage it failed in.
    pub fn failed_branches(&self) -> &[Error] {
        &self.failed_branches
    }

    /// The byte budget's use, for a run with one
    /// ([`max_in_flight_bytes`](crate::Graph::max_in_flight_bytes)): its
    /// peak says how close the run came to it.
    pub fn in_flight(&self) -> Option<InFlight> {
        self.in_flight
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a StageStats> + 'a {
        self.stages.iter().filter(move |s| s.kind == kind)
    }

    /// Batches the sink received.
    pub fn batches_out(&self) -> u64 {
        self.of_kind("sink").map(|s| s.batches_in).sum()
    }

    /// Every stage by id: in pipeline order, from the source (`"source"`) to
    /// the sink (`"sink"`); for a graph, in the order the stages were added.
    pub fn stages(&self) -> &[StageStats] {
        &self.stages
    }

    /// The stage of the given name.
    pub fn stage(&self, name: &str) -> Option<&StageStats> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Errors shown in full by the report's `Display`; the rest are counted.
const SHOWN_ERRORS: usize = 5;

impl Report {
    /// Records the source read, those it put aside as malformed included
    /// ([`records_in`](Report::records_in) counts only those it passed on).
    pub fn records_read(&self) -> u64 {
        self.of_kind("source")
            .map(|s| s.records_in.max(s.records_out))
            .sum()
    }

    /// True when the run's outputs were committed: it completed (with or
    /// without put-aside records). A failed or cancelled run committed no main
    /// output, whatever its sink took before the end.
    pub fn committed(&self) -> bool {
        matches!(self.status, Status::Completed | Status::CompletedWithErrors)
    }
}

/// The report as a person reads it: how the run ended, what went in and what
/// came out, one line per stage with every way a record can leave it, then the
/// first errors of put-aside records (and how many more there were).
///
/// ```text
/// completed with errors in 0.004 s: 4 records read, 3 out, 1 put aside (1 skipped)
///   stage                  records in  records out  filtered  failed  abandoned  batches  busy ms
///   source                          0            4         0       0          0        1      0.0
///   ...
///   errors (1):
///     stage "source": in.csv: record 2 (line 3, byte 20), field "amount": ...
/// ```
/// The report as data, with serde (`serde_json::to_string(&report)`), under
/// these stable names: `status` (`completed`, `completed_with_errors`,
/// `cancelled`, `failed`), `error` (the failed run's error, as text),
/// `stopped`, `elapsed_secs`, `records_in`, `records_out`, `skipped`,
/// `dead_lettered`, `stages` (each a [`StageStats`]), `errors` (the errors
/// kept, as text) and `failed_branches` (as text).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let report = Pipeline::from(source::iter(1..=3)).to(sink::discard()).run().await?;
/// let json = serde_json::to_value(&report).unwrap();
/// assert_eq!(json["status"], "completed");
/// assert_eq!(json["records_in"], 3);
/// assert_eq!(json["stages"][0]["name"], "source");
/// # Ok(()) }
/// ```
impl serde::Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (status, error) = match &self.status {
            Status::Completed => ("completed", None),
            Status::CompletedWithErrors => ("completed_with_errors", None),
            Status::Cancelled => ("cancelled", None),
            Status::Failed(e) => ("failed", Some(e.to_string())),
        };
        let texts = |errors: &[Error]| errors.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut r = s.serialize_struct("Report", 13)?;
        r.serialize_field("status", status)?;
        r.serialize_field("error", &error)?;
        r.serialize_field("stopped", &self.stopped)?;
        r.serialize_field("elapsed_secs", &self.elapsed.as_secs_f64())?;
        r.serialize_field("records_in", &self.records_in())?;
        r.serialize_field("records_out", &self.records_out())?;
        r.serialize_field("skipped", &self.skipped())?;
        r.serialize_field("dead_lettered", &self.dead_lettered())?;
        r.serialize_field("stages", &self.stages)?;
        r.serialize_field("errors", &texts(&self.errors))?;
        r.serialize_field("failed_branches", &texts(&self.failed_branches))?;
        r.serialize_field("bottleneck", &self.bottleneck())?;
        r.serialize_field("in_flight", &self.in_flight)?;
        r.end()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let put_aside = self.skipped() + self.dead_lettered();
        match &self.status {
            Status::Completed | Status::CompletedWithErrors => {
                let how = if put_aside > 0 || !self.failed_branches.is_empty() {
                    "completed with errors"
                } else {
                    "completed"
                };
                let how = if self.stopped {
                    format!("{how} (stopped early)")
                } else {
                    how.to_string()
                };
                write!(
                    f,
                    "{how} in {secs:.3} s: {} records read, {} out",
                    self.records_read(),
                    self.records_out()
                )?;
                if put_aside > 0 {
                    write!(f, ", {put_aside} put aside (")?;
                    let mut parts = Vec::new();
                    if self.skipped() > 0 {
                        parts.push(format!("{} skipped", self.skipped()));
                    }
                    if self.dead_lettered() > 0 {
                        parts.push(format!("{} dead-lettered", self.dead_lettered()));
                    }
                    write!(f, "{})", parts.join(", "))?;
                }
                writeln!(f)?;
                for e in &self.failed_branches {
                    writeln!(f, "  isolated branch failed, its output not committed: {e}")?;
                }
            }
            Status::Failed(_) | Status::Cancelled => {
                let how = if self.is_failed() {
                    "failed"
                } else {
                    "cancelled"
                };
                // A failed run keeps its dead letters (unless they were to be
                // committed with the run); a cancelled one nothing.
                let kept = match (self.dead_letters_kept, self.dead_lettered()) {
                    (true, 1..) => " but the dead letters",
                    _ => "",
                };
                writeln!(
                    f,
                    "{how} after {secs:.3} s: {} records read, nothing committed{kept}",
                    self.records_read()
                )?;
                if let Status::Failed(e) = &self.status {
                    writeln!(f, "  error: {e}")?;
                }
            }
        }
        // What held a completed run back (a failed one stopped too soon to say).
        if let Some(b) = self.bottleneck().filter(|_| self.committed()) {
            writeln!(f, "  bottleneck: {b}")?;
        }
        writeln!(
            f,
            "  {:<20} {:>11} {:>12} {:>9} {:>7} {:>10} {:>8} {:>8}",
            "stage",
            "records in",
            "records out",
            "filtered",
            "failed",
            "abandoned",
            "batches",
            "busy ms"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "  {:<20} {:>11} {:>12} {:>9} {:>7} {:>10} {:>8} {:>8.1}",
                s.name,
                s.records_in,
                s.records_out,
                s.filtered,
                s.skipped + s.dead_lettered,
                s.abandoned,
                s.batches_in.max(s.batches_out),
                s.busy.as_secs_f64() * 1e3
            )?;
        }
        // The ways a record leaves a stage that the table has no column for.
        for s in &self.stages {
            let parts: Vec<String> = [
                (
                    s.expanded,
                    "expanded (copies, extra records, results from state)",
                ),
                (s.absorbed, "absorbed into state"),
                (s.late, "late"),
                (s.duplicates, "duplicates"),
                (s.unmatched, "unmatched"),
                (s.missed, "passed without a match"),
                (s.dropped, "dropped by a full tap"),
                (s.combined, "combined"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            let state = (s.peak_state_keys > 0).then(|| {
                format!(
                    "peak state {} keys, ~{:.1} MB",
                    s.peak_state_keys,
                    s.peak_state_bytes as f64 / 1e6
                )
            });
            if !parts.is_empty() || state.is_some() {
                let all: Vec<String> = parts.into_iter().chain(state).collect();
                writeln!(f, "  {}: {}", s.name, all.join(", "))?;
            }
        }
        if put_aside > 0 {
            writeln!(f, "  errors ({put_aside}):")?;
            for e in self.errors.iter().take(SHOWN_ERRORS) {
                writeln!(f, "    {e}")?;
            }
            let shown = self.errors.len().min(SHOWN_ERRORS) as u64;
            if put_aside > shown {
                writeln!(f, "    ... and {} more", put_aside - shown)?;
            }
        }
        Ok(())
    }
}
