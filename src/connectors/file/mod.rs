//! What file connectors share: atomic output files, partitioned outputs (one
//! file per key) and the bridges that run blocking readers and writers on
//! tokio's blocking threads, linked to the async pipeline by bounded channels.

mod atomic;
mod claims;
mod deferred;
mod output;
mod partition_key;
mod partitioned;
mod reader;
mod writer;

pub(crate) use atomic::AtomicFile;
pub(crate) use claims::{Claims, claim_input, claim_output};
pub(crate) use deferred::{Deferred, forward_sink_to_state};
pub(crate) use output::{Output, OutputFile, ends_without_newline};
pub use partition_key::{Keyed, PartitionKey};
pub(crate) use partitioned::{DEFAULT_MAX_PARTITIONS, PartWriter, Partitions, PartitionsConfig};
pub(crate) use reader::{BlockingSource, Emit};
pub(crate) use writer::{BatchWriter, BlockingSink};
