use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::Sink;

use crate::{Batch, Error, Result};

/// What a [`ProbeSink`] saw, readable from the test while and after the run.
#[derive(Debug)]
pub struct Probe<T> {
    state: Arc<Mutex<State<T>>>,
}

#[derive(Debug)]
struct State<T> {
    batches: Vec<Batch<T>>,
    flushes: usize,
    closed: bool,
}

impl<T> Probe<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The batches received so far, in order.
    pub fn batches(&self) -> Vec<Batch<T>>
    where
        T: Clone,
    {
        self.lock().batches.clone()
    }

    /// The records received so far, in order.
    pub fn records(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.lock()
            .batches
            .iter()
            .flat_map(|b| b.iter().cloned())
            .collect()
    }

    /// How many records were received so far.
    pub fn record_count(&self) -> usize {
        self.lock().batches.iter().map(|b| b.len()).sum()
    }

    /// How many batches were received so far.
    pub fn batch_count(&self) -> usize {
        self.lock().batches.len()
    }

    /// How many times the sink was flushed.
    pub fn flushes(&self) -> usize {
        self.lock().flushes
    }

    /// True once the sink was closed (the run completed).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl<T> Clone for Probe<T> {
    fn clone(&self) -> Self {
        Probe {
            state: self.state.clone(),
        }
    }
}

/// A sink recording everything it receives into its [`Probe`].
#[derive(Debug)]
pub struct ProbeSink<T> {
    probe: Probe<T>,
}

/// A sink that records every batch, flush and close, and the [`Probe`] to read them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let (sink, probe) = dataflare::testkit::probe();
/// Pipeline::from(source::iter(0..5).batch_size(2)).to(sink).run().await?;
/// assert_eq!(probe.batch_count(), 3);
/// assert!(probe.is_closed());
/// # Ok(()) }
/// ```
pub fn probe<T>() -> (ProbeSink<T>, Probe<T>) {
    let probe = Probe {
        state: Arc::new(Mutex::new(State {
            batches: Vec::new(),
            flushes: 0,
            closed: false,
        })),
    };
    (
        ProbeSink {
            probe: probe.clone(),
        },
        probe,
    )
}

impl<T> ProbeSink<T> {
    pub(crate) fn record(&self, batch: Batch<T>) {
        self.probe.lock().batches.push(batch);
    }

    pub(crate) fn flushed(&self) {
        self.probe.lock().flushes += 1;
    }

    pub(crate) fn closed(&self) {
        self.probe.lock().closed = true;
    }
}

impl<T> Sink<Batch<T>> for ProbeSink<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        self.record(batch);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.closed();
        Poll::Ready(Ok(()))
    }
}
