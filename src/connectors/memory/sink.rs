use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use futures::Sink;
use pin_project::pin_project;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::{Batch, Error, Result};

/// A shared, cloneable vector that a [`collect`] sink fills, readable while and
/// after the pipeline runs.
///
/// ```
/// use dataflare::sink::Collected;
///
/// let out = Collected::new();
/// out.push(1);
/// assert_eq!(out.to_vec(), vec![1]);
/// assert!(!out.is_closed());
/// ```
pub struct Collected<T> {
    inner: Arc<Mutex<CollectedInner<T>>>,
}

struct CollectedInner<T> {
    records: Vec<T>,
    closed: bool,
}

impl<T> Collected<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Collected {
            inner: Arc::new(Mutex::new(CollectedInner {
                records: Vec::new(),
                closed: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CollectedInner<T>> {
        // A panic elsewhere while holding the lock leaves the data intact.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a record, as the sink does.
    pub fn push(&self, record: T) {
        self.lock().records.push(record);
    }

    /// Takes the records collected so far, leaving the collection empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut self.lock().records)
    }

    /// How many records were collected.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once a sink writing here was closed: the run completed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl<T: Clone> Collected<T> {
    /// A copy of the records collected so far.
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().records.clone()
    }
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Collected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Collected")
            .field("len", &inner.records.len())
            .field("closed", &inner.closed)
            .finish()
    }
}

/// A sink appending every record to `into`, which can be read during and after the run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let out = Collected::new();
/// Pipeline::from(source::iter(0..3)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec(), vec![0, 1, 2]);
/// assert!(out.is_closed());
/// # Ok(()) }
/// ```
pub fn collect<T>(into: &Collected<T>) -> Collect<T> {
    Collect { into: into.clone() }
}

/// The sink made by [`collect`].
#[derive(Debug)]
pub struct Collect<T> {
    into: Collected<T>,
}

impl<T> Sink<Batch<T>> for Collect<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        self.into.lock().records.extend(batch);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.into.lock().closed = true;
        Poll::Ready(Ok(()))
    }
}

/// A sink sending every record to a tokio channel, waiting for room when it is
/// full (backpressure reaches the pipeline). Fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed)
/// if the receiver is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let (tx, mut rx) = tokio::sync::mpsc::channel(4);
/// let reader = tokio::spawn(async move {
///     let mut got = Vec::new();
///     while let Some(x) = rx.recv().await {
///         got.push(x);
///     }
///     got
/// });
/// Pipeline::from(source::iter(0..10)).to(sink::channel(tx)).run().await?;
/// assert_eq!(reader.await.unwrap(), (0..10).collect::<Vec<_>>());
/// # Ok(()) }
/// ```
pub fn channel<T: Send + 'static>(sender: mpsc::Sender<T>) -> SendTo<T> {
    SendTo {
        sender: PollSender::new(sender),
        pending: Vec::new().into_iter(),
    }
}

/// The sink made by [`channel`].
#[derive(Debug)]
pub struct SendTo<T> {
    sender: PollSender<T>,
    pending: std::vec::IntoIter<T>,
}

impl<T: Send + 'static> SendTo<T> {
    /// Sends the records of the last batch, one channel slot at a time.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while self.pending.len() > 0 {
            ready!(self.sender.poll_reserve(cx)).map_err(|_| Error::closed())?;
            let record = self.pending.next().expect("checked non-empty");
            self.sender.send_item(record).map_err(|_| Error::closed())?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T> Unpin for SendTo<T> {}

impl<T: Send + 'static> Sink<Batch<T>> for SendTo<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_drain(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        self.get_mut().pending = batch.into_records().into_iter();
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_drain(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.sender.close();
        Poll::Ready(Ok(()))
    }
}

/// A sink calling `f` on each batch; an `Err` fails the run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let mut seen = 0;
/// Pipeline::from(source::iter(0..5))
///     .to(sink::for_each(move |batch: Batch<i32>| {
///         seen += batch.len();
///         println!("{seen} records so far");
///         Ok(())
///     }))
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
pub fn for_each<T, F>(f: F) -> ForEach<F>
where
    F: FnMut(Batch<T>) -> Result<()>,
{
    ForEach { f }
}

/// The sink made by [`for_each`].
pub struct ForEach<F> {
    f: F,
}

impl<F> Unpin for ForEach<F> {}

impl<T, F> Sink<Batch<T>> for ForEach<F>
where
    F: FnMut(Batch<T>) -> Result<()>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        (self.get_mut().f)(batch)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<F> fmt::Debug for ForEach<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEach").finish_non_exhaustive()
    }
}

/// A sink awaiting `f(batch)` for each batch, one at a time; an `Err` fails the run.
///
/// The next batch is taken only when the previous future is done, so a slow
/// `f` holds the pipeline back (backpressure).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let report = Pipeline::from(source::iter(0..5))
///     .to(sink::for_each_async(|batch: Batch<i32>| async move {
///         // e.g. write the batch to a database here
///         tokio::task::yield_now().await;
///         Ok(())
///     }))
///     .run()
///     .await?;
/// assert_eq!(report.records_out(), 5);
/// # Ok(()) }
/// ```
pub fn for_each_async<T, F, Fut>(f: F) -> ForEachAsync<F, Fut>
where
    F: FnMut(Batch<T>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    ForEachAsync { f, pending: None }
}

/// The sink made by [`for_each_async`].
#[pin_project]
pub struct ForEachAsync<F, Fut> {
    f: F,
    #[pin]
    pending: Option<Fut>,
}

impl<F, Fut: Future<Output = Result<()>>> ForEachAsync<F, Fut> {
    fn poll_pending(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut this = self.project();
        if let Some(fut) = this.pending.as_mut().as_pin_mut() {
            let result = ready!(fut.poll(cx));
            this.pending.set(None);
            result?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T, F, Fut> Sink<Batch<T>> for ForEachAsync<F, Fut>
where
    F: FnMut(Batch<T>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        let mut this = self.project();
        let fut = (this.f)(batch);
        this.pending.set(Some(fut));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_pending(cx)
    }
}

impl<F, Fut> fmt::Debug for ForEachAsync<F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEachAsync")
            .field("busy", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

/// A sink that drops every record, counting them: for benchmarks and for
/// pipelines run for their side effects.
///
/// The shared count is brought up to date whenever the sink is flushed (the
/// run flushes it each time its input has nothing ready) and when it closes,
/// not on every batch: a locked add per batch was a measurable share of a
/// cheap pipeline's time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let discard = sink::discard();
/// let count = discard.counter();
/// Pipeline::from(source::iter(0..42)).to(discard).run().await?;
/// assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 42);
/// # Ok(()) }
/// ```
pub fn discard() -> Discard {
    Discard {
        records: Arc::new(AtomicU64::new(0)),
        pending: 0,
    }
}

/// The sink made by [`discard`].
#[derive(Debug)]
pub struct Discard {
    records: Arc<AtomicU64>,
    /// Records received since the shared count was last brought up to date.
    pending: u64,
}

impl Discard {
    /// The count of records received, shared with the sink (and its
    /// clones): up to date once the run has flushed or closed the sink.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.records.clone()
    }

    fn publish(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending > 0 {
            self.records.fetch_add(pending, Ordering::Relaxed);
        }
    }
}

impl Clone for Discard {
    /// Another sink counting into the same count.
    fn clone(&self) -> Self {
        Discard {
            records: self.records.clone(),
            pending: 0,
        }
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        self.publish();
    }
}

impl<T> Sink<Batch<T>> for Discard {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        self.pending += batch.len() as u64;
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.publish();
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.publish();
        Poll::Ready(Ok(()))
    }
}
