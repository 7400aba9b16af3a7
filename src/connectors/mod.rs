//! Connectors: sources and sinks for where data lives.

pub(crate) mod file;
pub(crate) mod memory;
