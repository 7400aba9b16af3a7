use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::pin_project;
use tokio::sync::mpsc;

use crate::size::EstimateSize;
use crate::source::DEFAULT_BATCH_SIZE;
use crate::{Batch, Result};

/// A source reading records from an iterator (a `Vec`, a range, any `IntoIterator`),
/// [`DEFAULT_BATCH_SIZE`] records a batch unless [`batch_size`](Iter::batch_size) says otherwise.
///
/// The iterator runs inline in the task that polls the source, so it should be
/// cheap per item; for blocking work use a connector that runs on blocking threads.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let report = Pipeline::from(source::iter(vec![1, 2, 3, 4, 5]).batch_size(2))
///     .to(sink::discard())
///     .run()
///     .await?;
/// assert_eq!(report.batches_in(), 3);
/// # Ok(()) }
/// ```
pub fn iter<I: IntoIterator>(records: I) -> Iter<I::IntoIter> {
    Iter {
        iter: records.into_iter(),
        batch_size: DEFAULT_BATCH_SIZE,
        seq: 0,
        heap: None,
    }
}

/// The source made by [`iter`].
#[must_use = "streams do nothing unless polled"]
pub struct Iter<I: Iterator> {
    iter: I,
    batch_size: usize,
    seq: u64,
    /// Counts a record's heap bytes, for the run's byte budget.
    heap: Option<fn(&I::Item) -> usize>,
}

impl<I: Iterator> Iter<I> {
    /// Counts the heap bytes of every record (strings, vectors...) in each
    /// batch's size, for the run's byte budget
    /// ([`max_in_flight_bytes`](crate::Graph::max_in_flight_bytes));
    /// without it a batch counts its records' inline size only. Costs one
    /// walk over each batch's records.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let rows = (0..1_000).map(|i| format!("{i:>1000}")); // ~1 KB each
    /// let report = Pipeline::from(source::iter(rows).batch_size(10).estimate_heap())
    ///     .to(sink::discard())
    ///     .max_in_flight_bytes(100_000)
    ///     .run()
    ///     .await?;
    /// assert!(report.in_flight().unwrap().peak_bytes <= 100_000);
    /// # Ok(()) }
    /// ```
    pub fn estimate_heap(mut self) -> Self
    where
        I::Item: EstimateSize,
    {
        self.heap = Some(|r| r.heap_bytes());
        self
    }

    /// Sets how many records go in each batch.
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    ///
    /// ```
    /// let source = dataflare::source::iter(0..10).batch_size(5);
    /// # drop(source);
    /// ```
    #[track_caller]
    pub fn batch_size(mut self, size: usize) -> Self {
        assert!(
            size > 0,
            "batch_size: a batch needs room for at least 1 record"
        );
        self.batch_size = size;
        self
    }
}

// The iterator is never pinned.
impl<I: Iterator> Unpin for Iter<I> {}

impl<I: Iterator> Stream for Iter<I> {
    type Item = Result<Batch<I::Item>>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let hint = this.iter.size_hint().0.min(this.batch_size);
        let mut records = Vec::with_capacity(hint.max(1));
        records.extend(this.iter.by_ref().take(this.batch_size));
        if records.is_empty() {
            return Poll::Ready(None);
        }
        let seq = this.seq;
        this.seq += 1;
        let heap = this.heap.map_or(0, |heap| records.iter().map(heap).sum());
        Poll::Ready(Some(Ok(Batch::new(records)
            .with_seq(seq)
            .with_heap_bytes(heap))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.iter.size_hint();
        let batches = |n: usize| n.div_ceil(self.batch_size);
        (batches(lo), hi.map(batches))
    }
}

impl<I: Iterator> fmt::Debug for Iter<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// A source reading records from a tokio channel until every sender is dropped.
///
/// Each batch holds what is waiting in the channel, up to the batch size
/// ([`DEFAULT_BATCH_SIZE`] unless set): a record never waits for others to fill
/// a batch.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let (tx, rx) = tokio::sync::mpsc::channel(16);
/// tokio::spawn(async move {
///     for i in 0..100 {
///         tx.send(i).await.unwrap();
///     }
/// });
/// let report = Pipeline::from(source::channel(rx)).to(sink::discard()).run().await?;
/// assert_eq!(report.records_in(), 100);
/// # Ok(()) }
/// ```
pub fn channel<T>(receiver: mpsc::Receiver<T>) -> Channel<T> {
    Channel {
        receiver,
        batch_size: DEFAULT_BATCH_SIZE,
        seq: 0,
    }
}

/// The source made by [`channel`].
#[must_use = "streams do nothing unless polled"]
pub struct Channel<T> {
    receiver: mpsc::Receiver<T>,
    batch_size: usize,
    seq: u64,
}

impl<T> Channel<T> {
    /// Sets the most records a batch holds.
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    ///
    /// ```
    /// let (_tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
    /// let source = dataflare::source::channel(rx).batch_size(64);
    /// # drop(source);
    /// ```
    #[track_caller]
    pub fn batch_size(mut self, size: usize) -> Self {
        assert!(
            size > 0,
            "batch_size: a batch needs room for at least 1 record"
        );
        self.batch_size = size;
        self
    }
}

impl<T> Stream for Channel<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut records = Vec::new();
        let n = ready!(
            this.receiver
                .poll_recv_many(cx, &mut records, this.batch_size)
        );
        if n == 0 {
            return Poll::Ready(None);
        }
        let seq = this.seq;
        this.seq += 1;
        Poll::Ready(Some(Ok(Batch::new(records).with_seq(seq))))
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// A source batching the records of any stream — including a generator written
/// with `async_stream::stream!`.
///
/// Each batch holds the records the stream has ready, up to the batch size
/// ([`DEFAULT_BATCH_SIZE`] unless set): a record never waits for others to fill
/// a batch.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let pages = async_stream::stream! {
///     for page in 0..3u32 {
///         // e.g. fetch a page of an API here
///         for item in 0..10 {
///             yield page * 10 + item;
///         }
///     }
/// };
/// let out = Collected::new();
/// Pipeline::from(source::stream(pages)).to(sink::collect(&out)).run().await?;
/// assert_eq!(out.to_vec(), (0..30).collect::<Vec<_>>());
/// # Ok(()) }
/// ```
pub fn stream<St: Stream>(stream: St) -> BatchedStream<AllOk<St>> {
    try_stream(futures::StreamExt::map(stream, Ok as fn(_) -> _))
}

/// A stream of records seen as a stream of `Ok` records.
type AllOk<St> = futures::stream::Map<St, fn(<St as Stream>::Item) -> Result<<St as Stream>::Item>>;

/// Like [`stream`], for a stream of `Result`s: an `Err` ends the run as failed,
/// after the records before it were passed on.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::prelude::*;
///
/// let lines = async_stream::stream! {
///     yield Ok(1);
///     yield Err(Error::msg("connection reset"));
/// };
/// let err = Pipeline::from(source::try_stream(lines)).to(sink::discard()).run().await.unwrap_err();
/// assert!(err.to_string().contains("connection reset"));
/// # }
/// ```
pub fn try_stream<St, T>(stream: St) -> BatchedStream<St>
where
    St: Stream<Item = Result<T>>,
{
    BatchedStream {
        stream,
        batch_size: DEFAULT_BATCH_SIZE,
        seq: 0,
        error: None,
        done: false,
    }
}

/// The source made by [`stream`] and [`try_stream`].
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct BatchedStream<St> {
    #[pin]
    stream: St,
    batch_size: usize,
    seq: u64,
    error: Option<crate::Error>,
    done: bool,
}

impl<St> BatchedStream<St> {
    /// Sets the most records a batch holds.
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    ///
    /// ```
    /// let source = dataflare::source::stream(futures::stream::iter(0..100)).batch_size(10);
    /// # drop(source);
    /// ```
    #[track_caller]
    pub fn batch_size(mut self, size: usize) -> Self {
        assert!(
            size > 0,
            "batch_size: a batch needs room for at least 1 record"
        );
        self.batch_size = size;
        self
    }
}

impl<St, T> Stream for BatchedStream<St>
where
    St: Stream<Item = Result<T>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let mut records = Vec::new();
        while records.len() < *this.batch_size {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(record))) => records.push(record),
                Poll::Ready(Some(Err(e))) => {
                    // Records read before the error go first; the error follows.
                    *this.done = true;
                    if records.is_empty() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    *this.error = Some(e);
                    break;
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if records.is_empty() {
            return if *this.done {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        let seq = *this.seq;
        *this.seq += 1;
        Poll::Ready(Some(Ok(Batch::new(records).with_seq(seq))))
    }
}

impl<St> fmt::Debug for BatchedStream<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchedStream")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}
