use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Sink;
use tokio::time::Sleep;

use crate::{Backoff, Batch, Error, Result};

/// A sink awaiting `f(batch)` for each batch and, when it fails, calling it
/// again with the same batch after a [`Backoff`] delay, up to `max_attempts`
/// attempts in all: for writes that fail transiently (a database restarting, a
/// rate limit). A batch is never written again once `f` reported success; when
/// the attempts are exhausted the run fails with the last error.
///
/// # Panics
///
/// If `max_attempts` is 0.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::Backoff;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let c = calls.clone();
/// let written = Collected::new();
/// let w = written.clone();
/// let flaky = sink::retrying(3, Backoff::exponential(Duration::from_millis(10)), move |batch: Batch<u32>| {
///     let fail = c.fetch_add(1, Ordering::SeqCst) == 0; // the first call fails
///     let w = w.clone();
///     async move {
///         if fail {
///             return Err(Error::msg("connection reset"));
///         }
///         batch.into_iter().for_each(|x| w.push(x));
///         Ok(())
///     }
/// });
/// Pipeline::from(source::iter(0..3u32)).to(flaky).run().await?;
/// assert_eq!(written.to_vec(), vec![0, 1, 2]); // written once
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn retrying<T, F, Fut>(max_attempts: u32, backoff: Backoff, f: F) -> Retrying<T, F, Fut>
where
    T: Clone,
    F: FnMut(Batch<T>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    assert!(
        max_attempts > 0,
        "retrying: max_attempts must be at least 1"
    );
    Retrying {
        f,
        max_attempts,
        backoff,
        state: State::Idle,
    }
}

/// The sink made by [`retrying`].
pub struct Retrying<T, F, Fut> {
    f: F,
    max_attempts: u32,
    backoff: Backoff,
    state: State<T, Fut>,
}

enum State<T, Fut> {
    Idle,
    Writing {
        batch: Batch<T>,
        attempts: u32,
        write: Pin<Box<Fut>>,
    },
    Waiting {
        batch: Batch<T>,
        attempts: u32,
        sleep: Pin<Box<Sleep>>,
    },
}

impl<T, F, Fut> Unpin for Retrying<T, F, Fut> {}

impl<T, F, Fut> Retrying<T, F, Fut>
where
    T: Clone,
    F: FnMut(Batch<T>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    /// Drives the batch in hand until it is written or the attempts run out.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match &mut self.state {
                State::Idle => return Poll::Ready(Ok(())),
                State::Writing {
                    write, attempts, ..
                } => {
                    let result = ready!(write.as_mut().poll(cx));
                    let attempts = *attempts;
                    let State::Writing { batch, .. } =
                        std::mem::replace(&mut self.state, State::Idle)
                    else {
                        unreachable!("matched above")
                    };
                    match result {
                        Ok(()) => return Poll::Ready(Ok(())),
                        Err(e) if attempts >= self.max_attempts => {
                            return Poll::Ready(Err(e.with_attempts(attempts)));
                        }
                        Err(e) => {
                            tracing::warn!(attempt = attempts, error = %e, "sink write failed; retrying");
                            self.state = State::Waiting {
                                batch,
                                attempts,
                                sleep: Box::pin(tokio::time::sleep(self.backoff.delay(attempts))),
                            };
                        }
                    }
                }
                State::Waiting { sleep, .. } => {
                    ready!(sleep.as_mut().poll(cx));
                    let State::Waiting {
                        batch, attempts, ..
                    } = std::mem::replace(&mut self.state, State::Idle)
                    else {
                        unreachable!("matched above")
                    };
                    self.start(batch, attempts);
                }
            }
        }
    }

    fn start(&mut self, batch: Batch<T>, attempts: u32) {
        let write = Box::pin((self.f)(batch.clone()));
        self.state = State::Writing {
            batch,
            attempts: attempts + 1,
            write,
        };
    }
}

impl<T, F, Fut> Sink<Batch<T>> for Retrying<T, F, Fut>
where
    T: Clone,
    F: FnMut(Batch<T>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_idle(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        self.get_mut().start(batch, 0);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_idle(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_idle(cx)
    }
}

impl<T, F, Fut> fmt::Debug for Retrying<T, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrying")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}
