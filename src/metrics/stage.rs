use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::clock::Instant;
use super::tally::Counts;

use crate::{Error, ErrorPolicy};

/// Errors kept in full per stage (the first ones); the rest are only counted.
const KEPT_ERRORS: usize = 3;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

/// One stage of a run: its identity (id, name, kind, inputs, error policy,
/// the errors it kept) and its [`Counters`].
///
/// Shared (`Arc`) between the stage's adapter, which counts, and the run's
/// [`Stages`](super::Stages), which names it and reports it.
#[derive(Debug)]
pub(crate) struct StageMetrics {
    /// Its place in the run's list of stages, from 0 (the first source).
    id: AtomicUsize,
    name: Mutex<String>,
    /// Whether the name is the automatic `kind#N` (renumbered when two
    /// graphs join) rather than one the user gave.
    automatic: AtomicBool,
    kind: &'static str,
    /// The stages it reads from (none for a source).
    inputs: Vec<Arc<StageMetrics>>,
    record_errors: RecordErrors,
    errors: Mutex<Vec<Error>>,
    policy: Mutex<Option<ErrorPolicy>>,
    /// The run's default policy, set when the run starts.
    default_policy: Mutex<Option<ErrorPolicy>>,
    counters: Counters,
    /// The stage's tracing span, made when first entered (during the run,
    /// its name settled), entered for each batch the stage works on.
    span: std::sync::OnceLock<tracing::Span>,
    /// Where a source stands, when it can tell (see [`StageStats::position`]).
    position: Mutex<Option<String>>,
}

impl std::ops::Deref for StageMetrics {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.counters
    }
}

impl StageMetrics {
    pub(crate) fn new(
        id: usize,
        name: String,
        kind: &'static str,
        inputs: Vec<Arc<StageMetrics>>,
        record_errors: RecordErrors,
    ) -> Arc<Self> {
        Arc::new(StageMetrics {
            id: AtomicUsize::new(id),
            name: Mutex::new(name),
            automatic: AtomicBool::new(true),
            kind,
            inputs,
            record_errors,
            errors: Mutex::new(Vec::new()),
            policy: Mutex::new(None),
            default_policy: Mutex::new(None),
            counters: Counters::default(),
            span: std::sync::OnceLock::new(),
            position: Mutex::new(None),
        })
    }

    pub(crate) fn id(&self) -> usize {
        self.id.load(Relaxed)
    }

    pub(crate) fn set_id(&self, id: usize) {
        self.id.store(id, Relaxed);
    }

    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// The stage's span (`stage`, with its name, kind and id), to enter while
    /// it works on a batch: one span a stage, made once; no event per
    /// record.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.span.get_or_init(
            || tracing::info_span!("stage", name = %self.name(), kind = self.kind, id = self.id()),
        )
    }

    pub(crate) fn name(&self) -> String {
        lock(&self.name).clone()
    }

    /// Gives the stage a name of the user's.
    pub(crate) fn rename(&self, name: String) {
        *lock(&self.name) = name;
        self.automatic.store(false, Relaxed);
    }

    pub(crate) fn is_automatic(&self) -> bool {
        self.automatic.load(Relaxed)
    }

    /// Renumbers an automatic name.
    pub(crate) fn set_automatic_name(&self, name: String) {
        *lock(&self.name) = name;
    }

    /// The stage's own policy, or the run's default.
    pub(crate) fn policy(&self) -> ErrorPolicy {
        if let Some(p) = &*lock(&self.policy) {
            return p.clone();
        }
        lock(&self.default_policy).clone().unwrap_or_default()
    }

    pub(crate) fn set_policy(&self, policy: ErrorPolicy) {
        *lock(&self.policy) = Some(policy);
    }

    pub(crate) fn set_default_policy(&self, policy: Option<ErrorPolicy>) {
        *lock(&self.default_policy) = policy;
    }

    /// Why `policy` set on this stage with `on_error` could never apply, if
    /// it could not: the builder's panic message.
    pub(crate) fn refuse_policy(&self, policy: &ErrorPolicy) -> Option<String> {
        const WHERE: &str = "put on_error right after the try_map / fallible stage it is meant \
                             for (try_map, try_filter, try_flat_map, try_map_async, par_try_map, route, or the \
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
        let n = self.counters.skipped.fetch_add(1, Relaxed) + 1;
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(stage = %self.name(), skipped = n, %error, "record skipped");
        }
        self.keep(error);
    }

    /// Counts a record behind the watermark dropped under
    /// [`ErrorPolicy::Skip`] (as `late`), logged at the same bounded rate.
    pub(crate) fn skip_late(&self, error: Error) {
        self.counters.late(1);
        let n = self.counters.late.load(Relaxed);
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(stage = %self.name(), late = n, %error, "late record skipped");
        }
        self.keep(error);
    }

    /// Counts a record sent to dead letters.
    pub(crate) fn dead_letter(&self, error: Error) {
        let n = self.counters.dead_lettered.fetch_add(1, Relaxed) + 1;
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(stage = %self.name(), dead_lettered = n, %error, "record dead-lettered");
        }
        self.keep(error);
    }

    /// Sets where the source stands (see [`StageStats::position`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn set_position(&self, position: String) {
        *lock(&self.position) = Some(position);
    }

    pub(crate) fn snapshot(&self) -> StageStats {
        let c = &self.counters;
        StageStats {
            position: lock(&self.position).clone(),
            id: self.id(),
            name: self.name(),
            kind: self.kind.to_string(),
            inputs: self.inputs.iter().map(|s| s.id()).collect(),
            records_in: c.records_in.load(Relaxed),
            records_out: c.records_out.load(Relaxed),
            batches_in: c.batches_in.load(Relaxed),
            batches_out: c.batches_out.load(Relaxed),
            filtered: c.filtered.load(Relaxed),
            expanded: c.expanded.load(Relaxed),
            skipped: c.skipped.load(Relaxed),
            dead_lettered: c.dead_lettered.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            combined: c.combined.load(Relaxed),
            absorbed: c.absorbed.load(Relaxed),
            late: c.late.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            unmatched: c.unmatched.load(Relaxed),
            evicted: c.evicted.load(Relaxed),
            missed: c.missed.load(Relaxed),
            expired: c.expired.load(Relaxed),
            state_keys: c.state_keys.load(Relaxed),
            state_bytes: c.state_bytes.load(Relaxed),
            peak_state_keys: c.peak_state_keys.load(Relaxed),
            peak_state_bytes: c.peak_state_bytes.load(Relaxed),
            abandoned: c.abandoned.load(Relaxed),
            busy: Duration::from_nanos(c.busy_nanos.load(Relaxed)),
            waiting: Duration::from_nanos(c.wait_nanos.load(Relaxed)),
            blocked: Duration::from_nanos(c.blocked_nanos.load(Relaxed)),
            bytes_in: c.bytes_in.load(Relaxed),
            bytes_total: c.bytes_total.load(Relaxed),
            queue_depth: c.queue_depth.load(Relaxed),
        }
    }

    /// Moves out the errors kept in full.
    pub(crate) fn take_errors(&self) -> Vec<Error> {
        std::mem::take(&mut *lock(&self.errors))
    }
}

/// The baseline counters every stage records (after DataFusion's
/// `BaselineMetrics`), each way a record can leave a stage with its own.
///
/// Atomics updated once per batch (or per failed record) with `Relaxed`
/// ordering: they are statistics, read while the run goes on, never used to
/// synchronise.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    records_in: AtomicU64,
    records_out: AtomicU64,
    batches_in: AtomicU64,
    batches_out: AtomicU64,
    filtered: AtomicU64,
    expanded: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    combined: AtomicU64,
    absorbed: AtomicU64,
    late: AtomicU64,
    duplicates: AtomicU64,
    unmatched: AtomicU64,
    abandoned: AtomicU64,
    /// Keys (not records) a bounded stage let go of.
    evicted: AtomicU64,
    missed: AtomicU64,
    expired: AtomicU64,
    /// Gauges, set (not added to) by stateful stages.
    state_keys: AtomicU64,
    state_bytes: AtomicU64,
    peak_state_keys: AtomicU64,
    peak_state_bytes: AtomicU64,
    busy_nanos: AtomicU64,
    wait_nanos: AtomicU64,
    blocked_nanos: AtomicU64,
    bytes_in: AtomicU64,
    bytes_total: AtomicU64,
    queue_depth: AtomicU64,
}

impl Counters {
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

    /// Counts copies a fan-out made of its records (a `tee` to n branches
    /// makes n - 1 more of each).
    pub(crate) fn expand(&self, records: usize) {
        if records > 0 {
            self.expanded.fetch_add(records as u64, Relaxed);
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

    /// Counts records combined into another record that goes on (the second
    /// of each pair a `zip` makes).
    pub(crate) fn combine(&self, records: usize) {
        if records > 0 {
            self.combined.fetch_add(records as u64, Relaxed);
        }
    }

    /// Counts records taken into a stateful stage's state (an aggregate's
    /// group, a window): they go on only as part of what it emits later.
    pub(crate) fn absorb(&self, records: usize) {
        if records > 0 {
            self.absorbed.fetch_add(records as u64, Relaxed);
        }
    }

    /// Counts records behind the watermark that the stage's policy skipped.
    pub(crate) fn late(&self, records: usize) {
        if records > 0 {
            self.late.fetch_add(records as u64, Relaxed);
        }
    }

    /// Counts records a dedup dropped as duplicates.
    pub(crate) fn duplicate(&self, records: usize) {
        if records > 0 {
            self.duplicates.fetch_add(records as u64, Relaxed);
        }
    }

    /// Counts records a join dropped for want of a match.
    pub(crate) fn unmatched(&self, records: usize) {
        if records > 0 {
            self.unmatched.fetch_add(records as u64, Relaxed);
        }
    }

    /// Counts records a left join passed on without a match.
    pub(crate) fn missed(&self, records: usize) {
        if records > 0 {
            self.missed.fetch_add(records as u64, Relaxed);
        }
    }

    /// Counts keys a bounded stage evicted to stay within its capacity (a
    /// dedup's LRU): keys, not records, so outside the accounting.
    pub(crate) fn evict(&self, keys: usize) {
        if keys > 0 {
            self.evicted.fetch_add(keys as u64, Relaxed);
        }
    }

    /// Counts what a stage let go of as event time moved on (a dedup's keys
    /// past their TTL, an interval join's records past the watermark):
    /// counted when taken in, so outside the accounting.
    pub(crate) fn expire(&self, keys: usize) {
        if keys > 0 {
            self.expired.fetch_add(keys as u64, Relaxed);
        }
    }

    /// Sets the size of a stateful stage's state.
    pub(crate) fn set_state(&self, keys: u64, bytes: u64) {
        self.state_keys.store(keys, Relaxed);
        self.state_bytes.store(bytes, Relaxed);
        self.peak_state_keys.fetch_max(keys, Relaxed);
        self.peak_state_bytes.fetch_max(bytes, Relaxed);
    }

    /// Counts records a lossy output (a `tap`, a dropping `buffer_with`)
    /// dropped because it was full.
    pub(crate) fn drop_records(&self, records: usize) {
        if records > 0 {
            self.dropped.fetch_add(records as u64, Relaxed);
        }
    }

    /// Accounts for what a stage whose records cannot be followed one by one
    /// (a user's stream adapter) still holds: at its end, as `filtered` (or,
    /// if it gave more than it took, `expanded`); dropped early
    /// (`abandoned`), as `abandoned`.
    pub(crate) fn settle(&self, abandoned: bool) {
        let took = self.records_in.load(Relaxed) + self.expanded.load(Relaxed);
        let gone = self.records_out.load(Relaxed)
            + self.filtered.load(Relaxed)
            + self.skipped.load(Relaxed)
            + self.dead_lettered.load(Relaxed)
            + self.dropped.load(Relaxed)
            + self.combined.load(Relaxed)
            + self.absorbed.load(Relaxed)
            + self.late.load(Relaxed)
            + self.duplicates.load(Relaxed)
            + self.unmatched.load(Relaxed)
            + self.abandoned.load(Relaxed);
        if took > gone {
            let held = took - gone;
            let counter = if abandoned {
                &self.abandoned
            } else {
                &self.filtered
            };
            counter.fetch_add(held, Relaxed);
        } else if gone > took && !abandoned {
            self.expanded.fetch_add(gone - took, Relaxed);
        }
    }

    /// Counts one more attempt at a failed record.
    pub(crate) fn retry(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// Records a sink confirmed written: they count as the sink's output.
    pub(crate) fn records_confirmed(&self, records: usize) {
        self.records_out.fetch_add(records as u64, Relaxed);
    }

    /// Counts time the stage waited for input (its upstream had nothing).
    pub(crate) fn waited(&self, time: Duration) {
        self.wait_nanos.fetch_add(time.as_nanos() as u64, Relaxed);
    }

    /// Counts time the stage was blocked on output (downstream had no room).
    pub(crate) fn blocked(&self, time: Duration) {
        self.blocked_nanos
            .fetch_add(time.as_nanos() as u64, Relaxed);
    }

    /// Counts bytes a source read (a file's).
    pub(crate) fn read_bytes(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Relaxed);
    }

    /// Sets the bytes a source will read in all, when it knows (a file's size).
    pub(crate) fn set_bytes_total(&self, bytes: u64) {
        self.bytes_total.store(bytes, Relaxed);
    }

    /// Sets the batches waiting at the stage's boundary (a buffer, a branch).
    pub(crate) fn set_queue_depth(&self, batches: u64) {
        self.queue_depth.store(batches, Relaxed);
    }

    /// Counts the stage's work from `start` to now.
    pub(crate) fn busy_since(&self, start: Instant) {
        self.busy(super::clock::now().saturating_duration_since(start));
    }

    /// Counts `time` of the stage's own work.
    pub(crate) fn busy(&self, time: Duration) {
        self.busy_nanos.fetch_add(time.as_nanos() as u64, Relaxed);
    }

    /// Adds counts a [`Tally`](super::Tally) kept.
    pub(crate) fn add(&self, counts: &Counts) {
        for (counter, n) in [
            (&self.batches_in, counts.batches_in),
            (&self.records_in, counts.records_in),
            (&self.batches_out, counts.batches_out),
            (&self.records_out, counts.records_out),
            (&self.filtered, counts.filtered),
            (&self.expanded, counts.expanded),
            (&self.busy_nanos, counts.busy_nanos),
        ] {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }
}

/// What one stage did during a run.
///
/// Every record a stage receives is accounted for:
/// `records_in + expanded == records_out + filtered + skipped + dead_lettered +
/// dropped + combined + absorbed + late + duplicates + unmatched + abandoned`
/// once the run has returned (see [`in_flight`](StageStats::in_flight)). `busy` is the time spent in the stage's own work
/// (user closures included), not time spent waiting for input or for room
/// downstream.
///
/// Read during a run (progress, [`RunHandle`](crate::RunHandle)), a source's,
/// a per-record stage's and a sink's batch counts and busy time may be up to
/// 10 ms of their work behind: they count each batch locally and publish
/// every 10 ms while busy, and at once whenever the stage waits, ends or
/// fails (a locked add per counter per batch was a measurable share of a
/// cheap pipeline's time). Their `busy` is timed batch by batch while batches
/// take 2 µs or more; after a cheaper one, the next three are not timed and
/// count as long as the next timed one (two clock readings a batch were a
/// measurable share too).
///
/// Serialized (with serde) under these field names, which are stable; `busy`
/// as `busy_secs`, a float.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StageStats {
    /// The stage's id: its place among the run's stages, from 0. Stable for a
    /// built graph, used by [`inputs`](StageStats::inputs).
    pub id: usize,
    /// The stage's name, unique in its run: automatic (`map#2`, `kind#id`; the
    /// first source and the first sink are plain `source` and `sink`) or set
    /// with `.name(..)`.
    pub name: String,
    /// What the stage is: `source`, `map`, `tee`, `merge`, `sink`, ...
    pub kind: String,
    /// The ids of the stages it reads from: none for a source, two or more for
    /// a fan-in (`merge`, `chain`, `zip`).
    pub inputs: Vec<usize>,
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
    /// Records added by one-to-many stages (`flat_map`, `map_batch`), net per
    /// batch, and the extra copies a fan-out made (a `tee` to n branches: n - 1
    /// per record).
    pub expanded: u64,
    /// Records dropped under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip).
    pub skipped: u64,
    /// Records sent to dead letters under [`ErrorPolicy::DeadLetter`](crate::ErrorPolicy::DeadLetter).
    pub dead_lettered: u64,
    /// Extra attempts made under [`ErrorPolicy::Retry`](crate::ErrorPolicy::Retry).
    pub retried: u64,
    /// Records dropped because a lossy boundary was full: copies a
    /// [`tap`](crate::Pipeline::tap) could not give its branch, batches a
    /// [`buffer_with`](crate::Pipeline::buffer_with) dropped under its
    /// [`Overflow`](crate::ops::Overflow).
    pub dropped: u64,
    /// Records combined into another record that went on: the second of each
    /// pair a [`zip`](crate::Pipeline::zip) makes.
    pub combined: u64,
    /// Records taken into a stateful stage's state (an aggregate's group, a
    /// window); what the stage emits from its state counts as `expanded`.
    pub absorbed: u64,
    /// Records behind the watermark, skipped under the stage's policy.
    pub late: u64,
    /// Records a dedup dropped as duplicates.
    pub duplicates: u64,
    /// Records a join dropped for want of a match (an inner join's misses
    /// under [`Miss::Drop`](crate::state::Miss::Drop), table records whose
    /// key has a null).
    pub unmatched: u64,
    /// Records the stage still held when the run ended early: a downstream
    /// `take` had its count, the run failed, or it was cancelled.
    pub abandoned: u64,
    /// Time spent in the stage's own work. Adjacent per-record stages (`map`,
    /// `filter`, `filter_map`, `flat_map`, `inspect`) run fused, in one pass
    /// over each batch, and cannot be timed apart: the pass's time is counted
    /// on the first of them, and the others show none.
    #[serde(rename = "busy_secs", serialize_with = "secs")]
    pub busy: Duration,
    /// Time the stage's task waited for input: its upstream had nothing
    /// ready. Measured per batch at boundaries (buffers, branches, sinks).
    #[serde(rename = "waiting_secs", serialize_with = "secs")]
    pub waiting: Duration,
    /// Time the stage's task was blocked on output: downstream had no room.
    #[serde(rename = "blocked_secs", serialize_with = "secs")]
    pub blocked: Duration,
    /// Bytes a source read (file sources), so far.
    pub bytes_in: u64,
    /// Bytes a source will read in all, when it knows (a file's size); 0
    /// when unknown.
    pub bytes_total: u64,
    /// Batches waiting at the stage's boundary (a buffer's or a branch's
    /// channel), when last seen.
    pub queue_depth: u64,
    /// Keys a stateful stage holds (groups, windows, seen keys, join rows),
    /// when the run ended (or now, for a live snapshot); 0 for other stages.
    pub state_keys: u64,
    /// Estimated bytes of a stateful stage's state.
    pub state_bytes: u64,
    /// The most keys the stage held at once during the run.
    pub peak_state_keys: u64,
    /// The most estimated bytes the stage held at once during the run.
    pub peak_state_bytes: u64,
    /// Records a left join (or lookup) passed on without a match (with
    /// `None`, or empty table columns). They went on: outside the
    /// accounting.
    pub missed: u64,
    /// Keys a bounded stateful stage evicted to stay within its capacity:
    /// a dedup's [`Within::keys`](crate::state::Within::keys) (the least
    /// recently seen key goes; seen again, its record passes again). Keys,
    /// not records: outside the accounting.
    pub evicted: u64,
    /// What a stateful stage let go of as event time moved on: keys whose
    /// time-to-live ran out (a dedup's
    /// [`Within::time`](crate::state::Within::time)), records the watermark
    /// passed (an [`interval_join`](crate::state::KeyBy::interval_join)'s).
    /// Outside the accounting: those records were counted when taken in.
    pub expired: u64,
    /// Where a source stands after the records it emitted, when it can tell
    /// (an incremental PostgreSQL source's high-water mark, see
    /// `postgres::incremental`); `None` for other stages and sources.
    pub position: Option<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
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
            - self.dropped as i64
            - self.combined as i64
            - self.absorbed as i64
            - self.late as i64
            - self.duplicates as i64
            - self.unmatched as i64
            - self.abandoned as i64
    }
}
