use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::policy::{DeadLetters, MaxErrors};
use crate::{Error, ErrorPolicy};

/// Errors kept in full per stage (the first ones); the rest are only counted.
const KEPT_ERRORS: usize = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and names stay meaningful after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which record-level errors a stage can meet, fixed by its kind: the builder
/// refuses an [`ErrorPolicy`] set on a stage where it could never apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordErrors {
    /// None: its user code cannot fail a record (`map`, `buffer`, `take`, ...);
    /// a panic or a stream-level error ends the run whatever the policy.
    Never,
    /// Its own fallible closure's, which it can call again: every policy applies.
    Retryable,
    /// Those of its input, which cannot be asked for the same record again (a
    /// source's malformed row): every policy but a retry.
    NotRetryable,
}

/// What one stage shares with the run: its name, kind, error policy and the
/// baseline counters every stage records (after DataFusion's `BaselineMetrics`).
///
/// Counters are atomics updated once per batch (or per failed record) with
/// `Relaxed` ordering: they are statistics, read while the run goes on, never
/// used to synchronise.
#[derive(Debug)]
pub(crate) struct StageMetrics {
    name: Mutex<String>,
    kind: &'static str,
    record_errors: RecordErrors,
    records_in: AtomicU64,
    records_out: AtomicU64,
    batches_in: AtomicU64,
    batches_out: AtomicU64,
    filtered: AtomicU64,
    expanded: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    retried: AtomicU64,
    abandoned: AtomicU64,
    busy_nanos: AtomicU64,
    errors: Mutex<Vec<Error>>,
    policy: Mutex<Option<ErrorPolicy>>,
    default_policy: Arc<Mutex<ErrorPolicy>>,
}

impl StageMetrics {
    fn new(
        name: String,
        kind: &'static str,
        record_errors: RecordErrors,
        default_policy: Arc<Mutex<ErrorPolicy>>,
    ) -> Arc<Self> {
        Arc::new(StageMetrics {
            name: Mutex::new(name),
            kind,
            record_errors,
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            expanded: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            policy: Mutex::new(None),
            default_policy,
        })
    }

    pub(crate) fn name(&self) -> String {
        lock(&self.name).clone()
    }

    pub(crate) fn rename(&self, name: String) {
        *lock(&self.name) = name;
    }

    pub(crate) fn batch_in(&self, records: usize) {
        self.batches_in.fetch_add(1, Relaxed);
        self.records_in.fetch_add(records as u64, Relaxed);
    }

    /// Counts a record that arrived failed (a source's malformed row).
    pub(crate) fn failed_record_in(&self) {
        self.records_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn batch_out(&self, records: usize) {
        self.batches_out.fetch_add(1, Relaxed);
        self.records_out.fetch_add(records as u64, Relaxed);
    }

    /// Balances a batch that went in with `records_in` records and came out
    /// with `records_out` (failed records already counted): fewer out were
    /// filtered, more out were expanded (one-to-many stages).
    pub(crate) fn balance(&self, records_in: usize, records_out: usize) {
        if records_in > records_out {
            self.filtered
                .fetch_add((records_in - records_out) as u64, Relaxed);
        } else if records_out > records_in {
            self.expanded
                .fetch_add((records_out - records_in) as u64, Relaxed);
        }
    }

    /// Counts records the stage still held when it was dropped: the run ended
    /// before they could go on (a downstream `take` was satisfied, the run
    /// failed or was cancelled).
    pub(crate) fn abandon(&self, records: usize) {
        if records > 0 {
            self.abandoned.fetch_add(records as u64, Relaxed);
        }
    }

    /// The stage's own policy, or the pipeline's default.
    pub(crate) fn policy(&self) -> ErrorPolicy {
        match &*lock(&self.policy) {
            Some(p) => p.clone(),
            None => lock(&self.default_policy).clone(),
        }
    }

    pub(crate) fn set_policy(&self, policy: ErrorPolicy) {
        *lock(&self.policy) = Some(policy);
    }

    /// Why `policy` set on this stage with `on_error` could never apply, if
    /// it could not: the builder's panic message.
    pub(crate) fn refuse_policy(&self, policy: &ErrorPolicy) -> Option<String> {
        const WHERE: &str = "put on_error right after the try_map / fallible stage it is meant \
                             for (try_map, try_filter, try_flat_map, try_map_async, or the \
                             source for its malformed records), or use default_policy";
        let (name, kind) = (self.name(), self.kind);
        match (self.record_errors, policy) {
            (RecordErrors::Never, _) => Some(format!(
                "on_error landed on stage {name:?} (kind: {kind}), which cannot produce a \
                 record-level error, so the policy would never apply; {WHERE}"
            )),
            (RecordErrors::NotRetryable, ErrorPolicy::Retry(_)) => Some(format!(
                "on_error(retry) landed on stage {name:?} (kind: {kind}), which cannot retry \
                 a record: it cannot be asked for the same record again, so the retry would \
                 go straight to its final policy; give the {kind} that final policy \
                 (ErrorPolicy::Skip, DeadLetters) instead, and for a retry {WHERE}"
            )),
            _ => None,
        }
    }

    fn keep(&self, error: Error) {
        let mut errors = lock(&self.errors);
        if errors.len() < KEPT_ERRORS {
            errors.push(error);
        }
    }

    /// Counts a record dropped under [`ErrorPolicy::Skip`] and logs it, at a
    /// bounded rate: the first ten of a stage, then every thousandth.
    pub(crate) fn skip(&self, error: Error) {
        let n = self.skipped.fetch_add(1, Relaxed) + 1;
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(stage = %self.name(), skipped = n, %error, "record skipped");
        }
        self.keep(error);
    }

    /// Counts a record sent to dead letters.
    pub(crate) fn dead_letter(&self, error: Error) {
        let n = self.dead_lettered.fetch_add(1, Relaxed) + 1;
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(stage = %self.name(), dead_lettered = n, %error, "record dead-lettered");
        }
        self.keep(error);
    }

    /// Counts one more attempt at a failed record.
    pub(crate) fn retry(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// Records a sink confirmed written: they count as the sink's output.
    pub(crate) fn records_confirmed(&self, records: usize) {
        self.records_out.fetch_add(records as u64, Relaxed);
    }

    pub(crate) fn busy_since(&self, start: Instant) {
        self.busy_nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StageStats {
        StageStats {
            name: self.name(),
            records_in: self.records_in.load(Relaxed),
            records_out: self.records_out.load(Relaxed),
            batches_in: self.batches_in.load(Relaxed),
            batches_out: self.batches_out.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            expanded: self.expanded.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            retried: self.retried.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Relaxed)),
        }
    }

    /// Moves out the errors kept in full.
    pub(crate) fn take_errors(&self) -> Vec<Error> {
        std::mem::take(&mut *lock(&self.errors))
    }
}

/// The stages of one pipeline, in order from source to sink, and the
/// pipeline-wide failure settings: default policy, dead-letter sinks to drive,
/// error limit.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stages {
    list: Vec<Arc<StageMetrics>>,
    default_policy: Arc<Mutex<ErrorPolicy>>,
    dead_letters: Vec<DeadLetters>,
    max_errors: Option<MaxErrors>,
}

impl Stages {
    /// Adds a stage named `kind#N`, N being its place in the pipeline (the
    /// first, the source, is named `kind`).
    pub(crate) fn add(
        &mut self,
        kind: &'static str,
        record_errors: RecordErrors,
    ) -> Arc<StageMetrics> {
        let name = if self.list.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}#{}", self.list.len())
        };
        self.add_named(name, kind, record_errors)
    }

    /// Adds a stage named `name`.
    pub(crate) fn add_named(
        &mut self,
        name: String,
        kind: &'static str,
        record_errors: RecordErrors,
    ) -> Arc<StageMetrics> {
        let stage = StageMetrics::new(name, kind, record_errors, self.default_policy.clone());
        self.list.push(stage.clone());
        stage
    }

    pub(crate) fn last(&self) -> Option<&Arc<StageMetrics>> {
        self.list.last()
    }

    pub(crate) fn set_default_policy(&mut self, policy: ErrorPolicy) {
        self.register(&policy);
        *lock(&self.default_policy) = policy;
    }

    /// Notes the dead-letter sink a policy sends to, so the run drives it.
    pub(crate) fn register(&mut self, policy: &ErrorPolicy) {
        if let ErrorPolicy::DeadLetter(d) = policy.final_policy()
            && !self.dead_letters.iter().any(|known| known.same_as(d))
        {
            self.dead_letters.push(d.clone());
        }
    }

    pub(crate) fn dead_letters(&self) -> &[DeadLetters] {
        &self.dead_letters
    }

    pub(crate) fn set_max_errors(&mut self, max: MaxErrors) {
        self.max_errors = Some(max);
    }

    /// Fails when more records were put aside (skipped or dead-lettered) than
    /// [`MaxErrors`] allows; checked when the source has ended, before the sink
    /// commits its output.
    pub(crate) fn check_max_errors(&self) -> Result<(), Error> {
        let Some(max) = self.max_errors else {
            return Ok(());
        };
        let stats = self.snapshot();
        let failed: u64 = stats.iter().map(|s| s.skipped + s.dead_lettered).sum();
        let produced = stats.first().map_or(0, |s| s.records_in);
        if max.exceeded(failed, produced) {
            return Err(Error::msg(format!(
                "{failed} of {produced} records failed, more than max_errors ({max:?}) allows"
            )));
        }
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Vec<StageStats> {
        self.list.iter().map(|s| s.snapshot()).collect()
    }

    pub(crate) fn take_errors(&self) -> Vec<Error> {
        self.list.iter().flat_map(|s| s.take_errors()).collect()
    }
}

/// What one stage did during a run.
///
/// Every record a stage receives is accounted for:
/// `records_in + expanded == records_out + filtered + skipped + dead_lettered + abandoned`
/// once the run has returned (see [`in_flight`](StageStats::in_flight)). `busy` is the time spent in the stage's own work
/// (user closures included), not time spent waiting for input or for room
/// downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageStats {
    /// The stage's name: automatic (`map#2`) or set with `.name(..)`.
    pub name: String,
    /// Records the stage received (for the source: none; it produces them).
    pub records_in: u64,
    /// Records the stage passed on (for the sink: confirmed written).
    pub records_out: u64,
    /// Batches the stage received.
    pub batches_in: u64,
    /// Batches the stage passed on.
    pub batches_out: u64,
    /// Records dropped on purpose: a filter said no, a `filter_map` gave
    /// `None`, a `flat_map` gave nothing, past a `take`'s count. For stages that
    /// may also expand, counted net per batch.
    pub filtered: u64,
    /// Records added by one-to-many stages (`flat_map`, `map_batch`), net per batch.
    pub expanded: u64,
    /// Records dropped under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip).
    pub skipped: u64,
    /// Records sent to dead letters under [`ErrorPolicy::DeadLetter`](crate::ErrorPolicy::DeadLetter).
    pub dead_lettered: u64,
    /// Extra attempts made under [`ErrorPolicy::Retry`](crate::ErrorPolicy::Retry).
    pub retried: u64,
    /// Records the stage still held when the run ended early: a downstream
    /// `take` had its count, the run failed, or it was cancelled.
    pub abandoned: u64,
    /// Time spent in the stage's own work. Adjacent per-record stages (`map`,
    /// `filter`, `filter_map`, `flat_map`, `inspect`) run fused, in one pass
    /// over each batch, and cannot be timed apart: the pass's time is counted
    /// on the first of them, and the others show none.
    pub busy: Duration,
}

impl StageStats {
    /// Records received but not accounted for as passed on, filtered, skipped,
    /// dead-lettered or abandoned: 0 once the run has returned, whatever its
    /// outcome; read from a live run, the records in the stage's hands.
    ///
    /// The source stage produces records rather than receiving them, so it
    /// counts its output as its input.
    pub fn in_flight(&self) -> i64 {
        self.records_in as i64 + self.expanded as i64
            - self.records_out as i64
            - self.filtered as i64
            - self.skipped as i64
            - self.dead_lettered as i64
            - self.abandoned as i64
    }
}
