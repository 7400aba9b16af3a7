//! The async plumbing: bounded edges between tasks and the set of tasks a run spawned.

mod edge;
mod handoff;
mod tasks;

pub(crate) use edge::bounded;
pub(crate) use handoff::{Giver, Taker, handoff};
pub(crate) use tasks::{AbortOnDrop, Spawned, Tasks, spawn_blocking_in_run};
