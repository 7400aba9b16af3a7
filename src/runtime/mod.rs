//! The async plumbing: bounded edges between tasks, and the run's context (the
//! tasks it spawned, the files it uses, the outputs it commits together).

mod commit;
mod edge;
mod handoff;
mod tasks;

pub(crate) use commit::Staged;
pub(crate) use edge::bounded;
pub(crate) use handoff::{Giver, Taker, handoff};
pub(crate) use tasks::{
    AbortOnDrop, Role, Spawned, Tasks, current, spawn_blocking_detached, spawn_blocking_in_run,
};
