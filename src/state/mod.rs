//! Stateful operators: keyed aggregation and dedup (`dedup_by`,
//! `key_by(..).dedup(within)`) (and, built on the same adapter, windows and
//! joins), with state that is bounded, counted and visible.
//!
//! Batch-first semantics: the end of a bounded input is the final watermark,
//! so every group is flushed when the input ends. Every stateful stage
//! reports the keys and estimated bytes it holds (`state_keys`,
//! `state_bytes` in its [`StageStats`](crate::StageStats)) and is bounded by
//! [`StateLimits`]: over them the run fails naming the stage, never runs out
//! of memory.
//!
//! Accounting: a record a stateful stage takes into its state counts as
//! `absorbed`; what it emits from its state as `expanded`; records it drops
//! for cause have their own counters (`late`, `duplicates`, `unmatched`).

pub mod agg;
mod aggregate;
mod builder;
mod columns;
mod dedup;
mod dedup_builder;
mod key;
mod limits;
mod size;
mod stage;

pub use aggregate::{Aggregation, Output, Pairs};
pub use builder::KeyBy;
pub use columns::{Agg, AggState, ColumnAggregates, Rows};
pub use dedup::{Dedup, NoTime, TimeOf, Within};
pub use key::{Columns, Key, KeyOf};
pub use limits::StateLimits;
pub use size::StateSize;
pub use stage::{Emits, Stateful};
