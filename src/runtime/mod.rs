//! The async plumbing: bounded edges between tasks, and the run's context (the
//! tasks it spawned, the files it uses, the outputs it commits together).

mod budget;
mod commit;
mod context;
mod control;
mod edge;
mod handoff;
mod timer;

pub(crate) use budget::{Budget, Lease, Parked, SourceShare};
pub(crate) use commit::Staged;
pub(crate) use context::{
    AbortOnDrop, LazyContext, Role, RunContext, Spawned, current, spawn_blocking_detached,
    spawn_blocking_in_run,
};
pub(crate) use control::Control;
pub(crate) use edge::bounded;
pub(crate) use handoff::{Depth, Giver, Gone, Taker, handoff};
pub(crate) use timer::OpTimer;
