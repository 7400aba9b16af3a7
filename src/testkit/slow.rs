use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Sink;
use tokio::time::Sleep;

use super::{Probe, ProbeSink, probe};
use crate::{Batch, Error, Result};

/// A sink that takes `per_batch` to write each batch (a timer, so
/// `tokio::time::pause()` makes tests instant), recording into a [`Probe`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use std::time::Duration;
///
/// let (sink, probe) = dataflare::testkit::slow_sink(Duration::from_millis(100));
/// let start = tokio::time::Instant::now();
/// Pipeline::from(source::iter(0..10).batch_size(5)).to(sink).run().await?;
/// assert_eq!(start.elapsed(), Duration::from_millis(200)); // virtual time
/// assert_eq!(probe.record_count(), 10);
/// # Ok(()) }
/// ```
pub fn slow_sink<T>(per_batch: Duration) -> (SlowSink<T>, Probe<T>) {
    let (inner, probe) = probe();
    (
        SlowSink {
            inner,
            per_batch,
            writing: None,
        },
        probe,
    )
}

/// The sink made by [`slow_sink`].
#[derive(Debug)]
pub struct SlowSink<T> {
    inner: ProbeSink<T>,
    per_batch: Duration,
    writing: Option<Pin<Box<Sleep>>>,
}

impl<T> SlowSink<T> {
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = &mut self.writing {
            ready!(sleep.as_mut().poll(cx));
            self.writing = None;
        }
        Poll::Ready(())
    }
}

impl<T> Unpin for SlowSink<T> {}

impl<T> Sink<Batch<T>> for SlowSink<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_written(cx).map(Ok)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        let this = self.get_mut();
        this.inner.record(batch);
        this.writing = Some(Box::pin(tokio::time::sleep(this.per_batch)));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_written(cx));
        this.inner.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_written(cx));
        this.inner.closed();
        Poll::Ready(Ok(()))
    }
}
