//! # DataFlare
//!
//! Dataflow pipelines as streams: read records from a source, push them through
//! transforms, write them to a sink — with backpressure, bounded memory, exact
//! errors and nothing lost.
//!
//! - A **source** is any `futures::Stream<Item = Result<Batch<T>>>` ([`Source`]).
//! - A **transform** is a stream adapter, added with the [`Pipeline`] builder.
//! - A **sink** is any `futures::Sink<Batch<T>, Error = Error>`.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> dataflare::Result<()> {
//! use dataflare::prelude::*;
//!
//! #[derive(Debug, Clone)]
//! struct Order { id: u64, amount: f64, qty: u32 }
//! #[derive(Debug, Clone, PartialEq)]
//! struct Total { id: u64, total: f64 }
//!
//! let orders = (0..10_000).map(|id| Order { id, amount: (id % 500) as f64, qty: 2 });
//! let out = Collected::new();
//! let report = Pipeline::from(source::iter(orders).batch_size(1024))
//!     .filter(|o: &Order| o.amount > 100.0)
//!     .map(|o| Total { id: o.id, total: o.amount * o.qty as f64 })
//!     .buffer(8)
//!     .to(sink::collect(&out))
//!     .run()
//!     .await?;
//! assert!(report.is_completed());
//! assert_eq!(report.records_out(), out.len() as u64);
//! # Ok(()) }
//! ```
//!
//! `run().await` returns only after the source has ended, every stage has
//! drained, the sink has been closed and every task the run spawned has ended.
//! Batches are the unit of work: every stage up to an async boundary runs in one
//! task, and adjacent per-record adapters are fused into one pass over each batch.
//! `run()` drives the pipeline from a task of its own, so it runs on the
//! runtime's workers wherever it is awaited from.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod batch;
mod connectors;
mod error;
pub mod graph;
mod metrics;
pub mod ops;
mod pipeline;
mod policy;
pub mod prelude;
pub mod record;
mod runtime;
pub mod sink;
pub mod size;
pub mod source;
pub mod state;
#[cfg(feature = "test-util")]
pub mod testkit;
#[cfg(feature = "workflow")]
pub mod workflow;

pub use batch::Batch;
#[cfg(feature = "postgres")]
pub use connectors::postgres;
pub use connectors::{csv, jsonl};
pub use error::{BoxError, Error, ErrorKind, Position, Result};
pub use metrics::StageStats;
pub use pipeline::{
    Graph, InFlight, Phase, Pipeline, Progress, Report, RunHandle, RunStatus, Runnable, Status,
};
pub use policy::{Backoff, DeadLetters, ErrorPolicy, MaxErrors, Rejected, Retry};
pub use source::Source;
