use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;

use super::{Probe, ProbeSink, Script, Scripted, probe};
use crate::{Batch, Error, Result};

/// A source yielding `records` in batches of `batch_size`, then failing once it
/// has yielded `fail_after` records (or at the end, if there are fewer).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::prelude::*;
///
/// let report = Pipeline::from(dataflare::testkit::failing_source(0..100, 10, 25))
///     .to(sink::discard())
///     .run_to_report()
///     .await;
/// assert_eq!(report.records_in(), 25);
/// assert!(report.error().unwrap().to_string().contains("failed after 25 records"));
/// # }
/// ```
pub fn failing_source<T>(
    records: impl IntoIterator<Item = T>,
    batch_size: usize,
    fail_after: usize,
) -> Scripted<T> {
    assert!(
        batch_size > 0,
        "failing_source: batch_size must be at least 1"
    );
    let mut records = records.into_iter().take(fail_after).peekable();
    let mut script = Script::new();
    let mut yielded = 0;
    while records.peek().is_some() {
        let batch: Vec<T> = records.by_ref().take(batch_size).collect();
        yielded += batch.len();
        script = script.batch(batch);
    }
    script
        .error(Error::msg(format!(
            "test source failed after {yielded} records"
        )))
        .into_source()
}

/// A sink accepting `fail_after` records, then failing on the batch that would
/// go past them; what it accepted is in its [`Probe`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::prelude::*;
///
/// let (sink, probe) = dataflare::testkit::failing_sink(5);
/// let err = Pipeline::from(source::iter(0..10).batch_size(2)).to(sink).run().await.unwrap_err();
/// assert_eq!(err.stage(), Some("sink"));
/// assert_eq!(probe.record_count(), 4);
/// # }
/// ```
pub fn failing_sink<T>(fail_after: usize) -> (FailingSink<T>, Probe<T>) {
    let (inner, probe) = probe();
    (
        FailingSink {
            inner,
            accepted: 0,
            fail_after,
        },
        probe,
    )
}

/// The sink made by [`failing_sink`].
#[derive(Debug)]
pub struct FailingSink<T> {
    inner: ProbeSink<T>,
    accepted: usize,
    fail_after: usize,
}

impl<T> Unpin for FailingSink<T> {}

impl<T> Sink<Batch<T>> for FailingSink<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        let this = self.get_mut();
        if this.accepted + batch.len() > this.fail_after {
            return Err(Error::msg(format!(
                "test sink failed after {} records",
                this.accepted
            )));
        }
        this.accepted += batch.len();
        this.inner.record(batch);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.closed();
        Poll::Ready(Ok(()))
    }
}
