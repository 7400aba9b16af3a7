//! Sources: where records come from.
//!
//! A source is any `Stream<Item = Result<Batch<T>>> + Send + 'static`; the
//! [`Source`] trait names that shape and is implemented for every such stream, so
//! a hand-written stream plugs in as it is. This module also holds the in-memory
//! sources.

use futures::Stream;

use crate::{Batch, Result};

pub use crate::connectors::memory::source::{
    BatchedStream, Channel, Iter, channel, iter, stream, try_stream,
};

/// Records per batch for sources that batch records themselves, unless set.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// A stream of batches that can start a [`Pipeline`](crate::Pipeline).
///
/// Implemented for every `Stream<Item = Result<Batch<T>>> + Send + 'static`:
/// never implement it by hand. An `Err` item ends the run as failed.
pub trait Source: Stream<Item = Result<Batch<Self::Record>>> + Send + 'static {
    /// The type of the records.
    type Record: Send + 'static;
}

impl<S, T> Source for S
where
    S: Stream<Item = Result<Batch<T>>> + Send + 'static,
    T: Send + 'static,
{
    type Record = T;
}
