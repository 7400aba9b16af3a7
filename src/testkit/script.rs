use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::{Batch, Error, Result};

/// A scripted source: the batches and errors it yields, in order.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::prelude::*;
/// use dataflare::testkit::Script;
///
/// let source = Script::new()
///     .batch(vec![1, 2])
///     .error(Error::msg("disk on fire"))
///     .batch(vec![3]) // never reached: an error ends the run
///     .into_source();
/// let out = Collected::new();
/// let err = Pipeline::from(source).to(sink::collect(&out)).run().await.unwrap_err();
/// assert_eq!(err.stage(), Some("source"));
/// assert_eq!(out.to_vec(), vec![1, 2]);
/// # }
/// ```
#[derive(Debug)]
pub struct Script<T> {
    items: VecDeque<Result<Batch<T>>>,
}

impl<T> Script<T> {
    /// An empty script: a source that ends at once.
    pub fn new() -> Self {
        Script {
            items: VecDeque::new(),
        }
    }

    /// Then a batch of these records.
    pub fn batch(mut self, records: Vec<T>) -> Self {
        let seq = self.items.len() as u64;
        self.items.push_back(Ok(Batch::new(records).with_seq(seq)));
        self
    }

    /// Then this error.
    pub fn error(mut self, error: Error) -> Self {
        self.items.push_back(Err(error));
        self
    }

    /// The source that plays the script.
    pub fn into_source(self) -> Scripted<T> {
        Scripted { items: self.items }
    }
}

impl<T> Default for Script<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The source made by [`Script::into_source`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Scripted<T> {
    items: VecDeque<Result<Batch<T>>>,
}

impl<T> Unpin for Scripted<T> {}

impl<T> Stream for Scripted<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().items.pop_front())
    }
}
