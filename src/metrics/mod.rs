//! Per-stage counters, shared so progress can be read while a run goes on.

mod stage;

pub use stage::StageStats;
pub(crate) use stage::{RecordErrors, StageMetrics, Stages};
