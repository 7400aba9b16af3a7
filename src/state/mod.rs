//! Stateful operators: keyed aggregation, event-time windows (`event_time`,
//! `key_by(..).window(..)`), dedup (`dedup_by`, `key_by(..).dedup(within)`),
//! lookups and hash joins (`lookup`, `hash_join`) and interval joins
//! (`key_by(..).interval_join(..)`), all on one adapter, with state that is
//! bounded, counted and visible.
//!
//! Windows: [`Pipeline::event_time`](crate::Pipeline::event_time) gives the
//! records a timestamp and a watermark, then `key_by(..).window(..)` groups
//! them by key and [`Window`] (tumbling, sliding, session; by processing
//! time with [`Window::processing_time`]; or [`Window::count`]). A record
//! behind the watermark is late: a record error under the stage's policy,
//! counted as `late` when skipped.
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
//! A dedup passes first sights one for one and counts the rest as
//! `duplicates`; the keys a bounded one lets go of are counted apart
//! (`evicted`, `expired`: keys, not records). A lookup or hash join has two
//! inputs: the table's records are `absorbed`, the streamed records pass one
//! for one with their first match (each further match is `expanded`), or
//! are `unmatched`, or rejected under the stage's policy. An interval join
//! absorbs every record it takes and counts every pair it emits as
//! `expanded`.

pub mod agg;
mod aggregate;
mod builder;
mod columns;
mod dedup;
mod dedup_builder;
mod event_time;
mod hash;
mod interval;
mod interval_builder;
mod join;
mod join_builder;
mod key;
mod limits;
mod stage;
mod watermark;
mod window;
mod window_builder;
mod windowing;

/// The size estimate of keys and accumulators: [`EstimateSize`](crate::size::EstimateSize) under its former name.
pub use crate::size::EstimateSize as StateSize;
pub use aggregate::{Aggregation, Output, Pairs};
pub use builder::KeyBy;
pub use columns::{Agg, AggState, ColumnAggregates, Rows};
pub use dedup::{Dedup, DedupTime, NoTime, Within};
pub use event_time::{EventTime, TimeColumn, TimeOf, TryTime, time_column, try_time};
pub use hash::StateHasher;
pub use interval::{Interleave, Interval, IntervalJoin, Sides};
pub use interval_builder::IntervalJoined;
pub use join::{
    BuildFirst, HashJoin, Inner, Left, MergedInner, MergedLeft, Miss, Multi, Side, Unique,
};
pub use join_builder::{Join, Joined};
pub use key::{ByRef, Columns, Key, KeyOf, by_ref};
pub use limits::StateLimits;
pub use stage::{Emits, Stateful};
pub use watermark::{EventClock, ProcessingClock};
pub use window::{CountWindow, ProcessingTime, SessionWindow, Timed, Window, WindowOf, Windowed};
pub use window_builder::{Plan, PlanRows, WindowBy};
pub use windowing::{AsWindowed, CountWindows, TimeWindows, WindowOutput, WindowRows};
