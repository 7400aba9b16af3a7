use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;

use super::{BatchWriter, BlockingSink};
use crate::{Batch, Error, Result};

/// A file sink's two lives: its configuration, changed by builder methods,
/// until the first poll; then the [`BlockingSink`] writing with it.
///
/// The CSV and JSON Lines sinks keep one of these and pass the `Sink` calls on.
pub(crate) struct Deferred<C, W, T> {
    config: Option<Box<C>>,
    sink: Option<BlockingSink<T>>,
    capacity: usize,
    open: fn(C) -> Result<W>,
}

impl<C, W, T> Deferred<C, W, T> {
    /// A sink to be written by `open(config)` on a blocking thread, with up to
    /// `capacity` batches waiting for it.
    pub(crate) fn new(config: C, capacity: usize, open: fn(C) -> Result<W>) -> Self {
        Deferred {
            config: Some(Box::new(config)),
            sink: None,
            capacity,
            open,
        }
    }

    /// The configuration, for builder methods.
    ///
    /// # Panics
    ///
    /// Once the sink has started (builder methods consume the sink before any poll).
    pub(crate) fn config(&mut self) -> &mut C {
        self.config
            .as_mut()
            .expect("a sink is configured before it is used")
    }

    /// The configuration until the sink starts, for `Debug`.
    pub(crate) fn pending_config(&self) -> Option<&C> {
        self.config.as_deref()
    }
}

impl<C, W, T> Deferred<C, W, T>
where
    C: Send + 'static,
    W: BatchWriter<T>,
    T: Send + 'static,
{
    /// Starts the writer (it opens its output on its own thread).
    fn start(&mut self) -> Pin<&mut BlockingSink<T>> {
        if let Some(config) = self.config.take() {
            let open = self.open;
            self.sink = Some(BlockingSink::new(self.capacity, move || open(*config)));
        }
        Pin::new(self.sink.as_mut().expect("started above"))
    }
}

impl<C, W, T> Unpin for Deferred<C, W, T> {}

impl<C, W, T> Sink<Batch<T>> for Deferred<C, W, T>
where
    C: Send + 'static,
    W: BatchWriter<T>,
    T: Send + 'static,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().start().poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        match &mut self.get_mut().sink {
            Some(sink) => Pin::new(sink).start_send(batch),
            None => Err(Error::msg("start_send called before poll_ready")),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.get_mut().sink {
            Some(sink) => Pin::new(sink).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        // Also opens an output never made ready: an empty run still commits a file.
        self.get_mut().start().poll_close(cx)
    }
}

impl<C, W, T> fmt::Debug for Deferred<C, W, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sink {
            Some(sink) => f.debug_tuple("Started").field(sink).finish(),
            None => f.write_str("Configured"),
        }
    }
}

/// Implements `Unpin` and `Sink<Batch<T>>` (or `Sink<Batch<$item>>`, e.g.
/// `Keyed<T>`) for a file sink type `$sink<T>` whose `state` field is a
/// [`Deferred`], passing every call on to it.
macro_rules! forward_sink_to_state {
    ($sink:ident) => {
        $crate::connectors::file::forward_sink_to_state!($sink, T);
    };
    ($sink:ident, $item:ty) => {
        impl<T> Unpin for $sink<T> {}

        impl<T: serde::Serialize + Send + 'static> futures::Sink<$crate::Batch<$item>>
            for $sink<T>
        {
            type Error = $crate::Error;

            fn poll_ready(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().state).poll_ready(cx)
            }

            fn start_send(
                self: std::pin::Pin<&mut Self>,
                batch: $crate::Batch<$item>,
            ) -> $crate::Result<()> {
                std::pin::Pin::new(&mut self.get_mut().state).start_send(batch)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().state).poll_flush(cx)
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().state).poll_close(cx)
            }
        }
    };
}

pub(crate) use forward_sink_to_state;
