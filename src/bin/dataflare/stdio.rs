//! Standard input and output: errors named `<stdin>` / `<stdout>`, and a
//! closed stdout told apart from other failures.

use std::pin::Pin;
use std::task::{Context, Poll};

use dataflare::record::Record;
use dataflare::{Batch, Error, Result};
use futures::{Sink, Stream, StreamExt};

/// How errors name standard input.
pub(crate) const STDIN: &str = "<stdin>";
/// How errors name standard output.
pub(crate) const STDOUT: &str = "<stdout>";

pub(crate) fn named(error: Error, name: &str) -> Error {
    if error.path().is_some() {
        error
    } else {
        error.with_path(name)
    }
}

/// A source reading stdin, its errors (record-level ones included, so skipped
/// rows and rejects say it too) naming `<stdin>`.
pub(crate) fn on_stdin(
    source: impl Stream<Item = Result<Batch<Record>>> + Send + 'static,
) -> super::Records {
    source.map(|item| item.map_err(|e| named(e, STDIN))).boxed()
}

/// A sink writing stdout, its errors naming `<stdout>`.
pub(crate) struct OnStdout<K>(pub(crate) K);

impl<T, K: Sink<T, Error = Error> + Unpin> Sink<T> for OnStdout<K> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.0)
            .poll_ready(cx)
            .map_err(|e| named(e, STDOUT))
    }

    fn start_send(mut self: Pin<&mut Self>, item: T) -> Result<()> {
        Pin::new(&mut self.0)
            .start_send(item)
            .map_err(|e| named(e, STDOUT))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.0)
            .poll_flush(cx)
            .map_err(|e| named(e, STDOUT))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.0)
            .poll_close(cx)
            .map_err(|e| named(e, STDOUT))
    }
}

/// True when `error` was caused by writing to a pipe whose reader is gone
/// (`dataflare convert big.csv - | head -1`).
pub(crate) fn is_broken_pipe(error: &Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cause = e.source();
    }
    false
}
