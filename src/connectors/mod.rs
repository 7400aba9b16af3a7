//! Connectors: sources and sinks for where data lives.

pub(crate) mod memory;
