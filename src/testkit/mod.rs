//! Test sources and sinks for testing pipelines (behind the `test-util` feature),
//! in the spirit of Akka's TestKit and tokio's `test-util`.
//!
//! - [`probe`]: a sink recording every batch, flush and close.
//! - [`slow_sink`]: a probe that takes a set time per batch (use with
//!   `tokio::time::pause()` for tests that never really wait).
//! - [`failing_sink`]: a probe that fails once it has taken N records.
//! - [`Script`]: a source that yields a scripted sequence of batches and errors;
//!   [`failing_source`] is the common case.
//! - [`kit`]: the connector compliance checks every source and sink passes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use dataflare::prelude::*;
//! use dataflare::testkit::{failing_source, probe};
//!
//! let (sink, probe) = probe();
//! let report = Pipeline::from(failing_source(0..10, 4, 8))
//!     .to(sink)
//!     .run_to_report()
//!     .await;
//! assert!(report.is_failed());
//! assert_eq!(probe.records(), (0..8).collect::<Vec<_>>());
//! assert!(!probe.is_closed()); // a failed run never closes its sink
//! # }
//! ```

mod failing;
pub mod kit;
mod probe;
mod script;
mod slow;

pub use failing::{FailingSink, failing_sink, failing_source};
pub use probe::{Probe, ProbeSink, probe};
pub use script::{Script, Scripted};
pub use slow::{SlowSink, slow_sink};
