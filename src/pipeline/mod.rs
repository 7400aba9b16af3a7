//! The pipeline builder, the run loop and the [`Report`] of a run.

mod builder;
#[cfg(feature = "metrics")]
mod export;
mod flow;
mod parallel;
mod progress;
mod report;
mod run;

pub use builder::Pipeline;
pub use progress::{Phase, Progress};
pub use report::{InFlight, Report, Status};
pub use run::{Graph, RunHandle, RunStatus, Runnable};
