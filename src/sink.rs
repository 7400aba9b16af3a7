//! Sinks: where records go.
//!
//! A sink is any `futures::Sink<Batch<T>, Error = dataflare::Error> + Send`; a
//! hand-written one plugs in as it is. A pipeline calls `close` only when the run
//! completes: on failure the sink is dropped without it, so a sink that commits on
//! close must treat a drop without close as "abandon". This module also holds the
//! in-memory sinks, and [`PartitionKey`] and [`Keyed`], what a partitioned
//! sink ([`csv::write_partitioned`](crate::csv::write_partitioned)) takes.

pub use crate::connectors::file::{Keyed, PartitionKey};
pub use crate::connectors::memory::retrying::{Retrying, retrying};
pub use crate::connectors::memory::sink::{
    Collect, Collected, Discard, ForEach, ForEachAsync, SendTo, channel, collect, discard,
    for_each, for_each_async,
};
