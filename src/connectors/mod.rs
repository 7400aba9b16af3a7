//! Connectors: sources and sinks for where data lives.

pub mod csv;
pub(crate) mod file;
pub mod jsonl;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
