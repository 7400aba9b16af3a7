//! The pipeline builder, the run loop and the [`Report`] of a run.

mod builder;
mod report;
mod run;

pub use builder::Pipeline;
pub use report::{Report, Status};
pub use run::{Graph, RunHandle, RunStatus, Runnable};
