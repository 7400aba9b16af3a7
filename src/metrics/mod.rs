//! Per-stage counters, shared so progress can be read while a run goes on, and
//! the run's list of stages they hang on.

pub(crate) mod clock;
mod registry;
mod source_stage;
mod stage;
mod tally;
mod wait;

pub(crate) use registry::Stages;
pub(crate) use source_stage::{offering, source_stage};
pub use stage::StageStats;
pub(crate) use stage::{RecordErrors, StageMetrics};
pub(crate) use tally::Tally;
pub(crate) use wait::{Wait, WaitFor};
