//! In-memory sources and sinks: iterators, channels, streams, collections.

pub(crate) mod retrying;
pub(crate) mod sink;
pub(crate) mod source;
