//! Stream adapters: the transforms between a source and a sink.
//!
//! Per-record adapters ([`Map`], [`Filter`], [`FilterMap`], [`FlatMap`],
//! [`Inspect`]) are [`Step`]s: adjacent ones are fused by the builder into one
//! [`Fused`] pass, a single iterator chain over each batch collected once, so
//! records go through all of them without an intermediate batch. Batch-level
//! adapters ([`MapBatch`], [`Take`], your own) are [`BatchOp`]s run by
//! [`Transform`]. Both record each stage's metrics and turn a panic in user code
//! into an error naming the stage; the records lost with it (the one user code
//! panicked on, those in hand or in flight) count as the stage's `abandoned`, so
//! every stage balances after a panic too. Every adapter up to an async boundary
//! ([`Buffer`], the `map_async` adapters) runs in one task, with no channel
//! between them.
//!
//! Users reach these types through the [`Pipeline`](crate::Pipeline) builder's
//! methods; the types are public so a pipeline's type can be named.

mod batch_policy;
mod buffer;
pub(crate) mod failure;
mod filter;
mod filter_map;
mod flat_map;
mod fused;
mod inspect;
mod intake;
mod key_lanes;
mod map;
mod map_async;
mod map_async_unordered;
mod map_batch;
mod metered;
mod overflow;
mod par_map;
mod par_map_unordered;
mod par_try_map;
mod par_workers;
mod partition_by;
mod rebatch;
mod take;
mod throttle;
mod through;
mod transform;
mod try_filter;
mod try_flat_map;
mod try_map;
mod try_map_async;
mod try_transform;

pub use batch_policy::BatchPolicy;
pub use buffer::Buffer;
pub use filter::Filter;
pub use filter_map::FilterMap;
pub use flat_map::FlatMap;
pub use fused::{Fused, Pass, Sealed, Step, Steps, Then};
pub use inspect::Inspect;
pub use key_lanes::ParMapKeyed;
pub use map::Map;
pub use map_async::MapAsync;
pub use map_async_unordered::MapAsyncUnordered;
pub use map_batch::MapBatch;
pub use metered::Metered;
pub use overflow::Overflow;
pub use par_map::ParMap;
pub use par_map_unordered::ParMapUnordered;
pub use par_try_map::ParTryMap;
pub use partition_by::PartitionBy;
pub use rebatch::Rebatch;
pub use take::Take;
pub use throttle::{Rate, Throttle};
pub use through::{Counted, Through};
pub use transform::{BatchOp, Transform};
pub use try_filter::TryFilter;
pub use try_flat_map::TryFlatMap;
pub use try_map::TryMap;
pub use try_map_async::TryMapAsync;
pub use try_transform::{TryOp, TryTransform};

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Error;
use crate::metrics::StageMetrics;

/// Runs user code, turning a panic into an error naming `stage`.
#[inline]
pub(crate) fn guard<R>(stage: &StageMetrics, f: impl FnOnce() -> R) -> Result<R, Error> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| Error::panic(payload).with_stage(stage.name()))
}

/// Runs user code that consumes one record the stage took in, as [`guard`]
/// does; a panic loses the record with the run, so it counts as abandoned.
pub(crate) fn guard_record<R>(stage: &StageMetrics, f: impl FnOnce() -> R) -> Result<R, Error> {
    guard(stage, f).inspect_err(|_| stage.abandon(1))
}

/// Ends an adapter's stream with `error`: the run fails, so nothing more is polled.
pub(crate) fn fail<T>(
    failed: &mut bool,
    error: Error,
) -> std::task::Poll<Option<Result<T, Error>>> {
    *failed = true;
    std::task::Poll::Ready(Some(Err(error)))
}

/// The error for a spawned task of `stage` that did not finish: a panic keeps
/// its message.
pub(crate) fn join_error(error: tokio::task::JoinError, stage: impl Into<String>) -> Error {
    Error::from_join(error).with_stage(stage)
}
