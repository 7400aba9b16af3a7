use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ErrorPolicy;

/// The baseline counters every stage records (after DataFusion's `BaselineMetrics`).
///
/// Counters are atomics updated once per batch with `Relaxed` ordering: they are
/// statistics, read while the run goes on, never used to synchronise.
#[derive(Debug)]
pub(crate) struct StageMetrics {
    name: Mutex<String>,
    records_in: AtomicU64,
    records_out: AtomicU64,
    batches_in: AtomicU64,
    batches_out: AtomicU64,
    skipped: AtomicU64,
    busy_nanos: AtomicU64,
    policy: Mutex<ErrorPolicy>,
}

impl StageMetrics {
    pub(crate) fn new(name: String) -> Arc<Self> {
        Arc::new(StageMetrics {
            name: Mutex::new(name),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            policy: Mutex::new(ErrorPolicy::default()),
        })
    }

    pub(crate) fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn rename(&self, name: String) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }

    pub(crate) fn batch_in(&self, records: usize) {
        self.batches_in.fetch_add(1, Relaxed);
        self.records_in.fetch_add(records as u64, Relaxed);
    }

    pub(crate) fn batch_out(&self, records: usize) {
        self.batches_out.fetch_add(1, Relaxed);
        self.records_out.fetch_add(records as u64, Relaxed);
    }

    pub(crate) fn policy(&self) -> ErrorPolicy {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_policy(&self, policy: ErrorPolicy) {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner()) = policy;
    }

    /// Counts a record dropped under [`ErrorPolicy::Skip`] and logs it, at a
    /// bounded rate: the first ten of a stage, then every thousandth.
    pub(crate) fn skip(&self, error: &crate::Error) {
        let n = self.skipped.fetch_add(1, Relaxed) + 1;
        if n <= 10 || n.is_multiple_of(1000) {
            tracing::warn!(stage = %self.name(), skipped = n, %error, "record skipped");
        }
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
            skipped: self.skipped.load(Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Relaxed)),
        }
    }
}

/// The stages of one pipeline, in order from source to sink.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stages(Vec<Arc<StageMetrics>>);

impl Stages {
    /// Adds a stage named `kind#N`, N being its place in the pipeline.
    pub(crate) fn add(&mut self, kind: &str) -> Arc<StageMetrics> {
        let name = if self.0.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}#{}", self.0.len())
        };
        self.add_named(name)
    }

    pub(crate) fn add_named(&mut self, name: String) -> Arc<StageMetrics> {
        let stage = StageMetrics::new(name);
        self.0.push(stage.clone());
        stage
    }

    pub(crate) fn last(&self) -> Option<&Arc<StageMetrics>> {
        self.0.last()
    }

    pub(crate) fn snapshot(&self) -> Vec<StageStats> {
        self.0.iter().map(|s| s.snapshot()).collect()
    }
}

/// What one stage did during a run.
///
/// A stage that only drops records (a filter) shows `records_in > records_out`;
/// `busy` is the time spent in the stage's own work (user closures included),
/// not time spent waiting for input or for room downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageStats {
    /// The stage's name: automatic (`map#2`) or set with `.name(..)`.
    pub name: String,
    /// Records the stage received.
    pub records_in: u64,
    /// Records the stage passed on.
    pub records_out: u64,
    /// Batches the stage received.
    pub batches_in: u64,
    /// Batches the stage passed on.
    pub batches_out: u64,
    /// Records dropped under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip).
    pub skipped: u64,
    /// Time spent in the stage's own work.
    pub busy: Duration,
}
