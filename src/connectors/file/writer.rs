use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Sink;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use crate::runtime::{bounded, spawn_blocking_in_run};
use crate::{Batch, Error, Result};

/// A synchronous writer of batches, run on a blocking thread by [`BlockingSink`].
pub(crate) trait BatchWriter<T>: Send + 'static {
    /// Writes one batch.
    fn write(&mut self, batch: Batch<T>) -> Result<()>;
    /// Flushes and commits the output: called once, when the run completes.
    fn finish(self: Box<Self>) -> Result<()>;
}

type Open<T> = Box<dyn FnOnce() -> Result<Box<dyn BatchWriter<T>>> + Send>;

enum Msg<T> {
    Batch(Batch<T>),
    Finish,
}

/// A sink that hands batches to a [`BatchWriter`] on a blocking thread through
/// a bounded channel, so file I/O never blocks a runtime worker.
///
/// The writer is opened on the first `poll_ready`, which the run loop calls
/// before reading any data: a destination that cannot be written fails the run
/// before the source is read. `poll_close` asks the writer to finish (commit)
/// and waits for it. Dropped without `close` (a failed or cancelled run), the
/// writer is dropped unfinished, which for an atomic file removes the
/// temporary file; the run waits for that before returning.
pub(crate) struct BlockingSink<T> {
    state: State<T>,
    capacity: usize,
}

enum State<T> {
    Idle(Open<T>),
    Opening {
        opened: oneshot::Receiver<()>,
        tx: PollSender<Msg<T>>,
        thread: JoinHandle<Result<()>>,
    },
    Running {
        tx: PollSender<Msg<T>>,
        thread: JoinHandle<Result<()>>,
    },
    /// The writer thread is ending (finished, or stopped on an error): its
    /// result is the sink's.
    Ending(JoinHandle<Result<()>>),
    Done,
}

impl<T: Send + 'static> BlockingSink<T> {
    /// A sink whose writer `open` makes on a blocking thread; up to `capacity`
    /// batches wait for the writer.
    pub(crate) fn new<F, W>(capacity: usize, open: F) -> Self
    where
        F: FnOnce() -> Result<W> + Send + 'static,
        W: BatchWriter<T>,
    {
        BlockingSink {
            state: State::Idle(Box::new(move || {
                open().map(|w| Box::new(w) as Box<dyn BatchWriter<T>>)
            })),
            capacity,
        }
    }

    fn start(&mut self) {
        let State::Idle(open) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let (tx, mut rx) = bounded::<Msg<T>>(self.capacity);
        let (opened_tx, opened) = oneshot::channel();
        let thread = spawn_blocking_in_run(move || {
            let mut writer = open()?;
            let _ = opened_tx.send(());
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Batch(batch) => writer.write(batch)?,
                    Msg::Finish => return writer.finish(),
                }
            }
            // The sink was dropped without close: abandon the output.
            Err(Error::msg("output abandoned"))
        });
        self.state = State::Opening {
            opened,
            tx: PollSender::new(tx),
            thread,
        };
    }

    /// Waits for the writer thread's result once it has stopped.
    fn poll_ending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let State::Ending(thread) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        let result = ready!(Pin::new(thread).poll(cx));
        self.state = State::Done;
        Poll::Ready(match result {
            Ok(r) => r,
            Err(e) => Err(Error::from_join(e)),
        })
    }

    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match &mut self.state {
                State::Idle(_) => self.start(),
                State::Opening { opened, .. } => {
                    let ok = ready!(Pin::new(opened).poll(cx)).is_ok();
                    let State::Opening { tx, thread, .. } =
                        std::mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!("matched above")
                    };
                    self.state = if ok {
                        State::Running { tx, thread }
                    } else {
                        State::Ending(thread) // opening failed: its error follows
                    };
                }
                State::Running { tx, .. } => {
                    if ready!(tx.poll_reserve(cx)).is_ok() {
                        return Poll::Ready(Ok(()));
                    }
                    self.end();
                }
                State::Ending(_) => {
                    ready!(self.poll_ending(cx))?;
                    return Poll::Ready(Err(Error::closed()));
                }
                State::Done => return Poll::Ready(Err(Error::closed())),
            }
        }
    }

    /// The writer thread stopped taking batches: go and collect its result.
    fn end(&mut self) {
        if let State::Running { thread, .. } | State::Opening { thread, .. } =
            std::mem::replace(&mut self.state, State::Done)
        {
            self.state = State::Ending(thread);
        }
    }
}

impl<T> Unpin for BlockingSink<T> {}

impl<T: Send + 'static> Sink<Batch<T>> for BlockingSink<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        let this = self.get_mut();
        let State::Running { tx, .. } = &mut this.state else {
            return Err(Error::msg("start_send called before poll_ready"));
        };
        if tx.send_item(Msg::Batch(batch)).is_err() {
            this.end();
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let State::Ending(_) = this.state {
            ready!(this.poll_ending(cx))?;
            return Poll::Ready(Err(Error::closed()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle(_) | State::Opening { .. } => ready!(this.poll_ready_inner(cx))?,
                State::Running { tx, .. } => {
                    if ready!(tx.poll_reserve(cx)).is_ok() {
                        let _ = tx.send_item(Msg::Finish);
                    }
                    this.end();
                }
                State::Ending(_) => return this.poll_ending(cx),
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<T> fmt::Debug for BlockingSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Opening { .. } => "opening",
            State::Running { .. } => "running",
            State::Ending(_) => "ending",
            State::Done => "done",
        };
        f.debug_struct("BlockingSink")
            .field("state", &state)
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::connectors::file::{Output, OutputFile};
    use crate::prelude::*;
    use crate::testkit::failing_source;

    struct Lines(OutputFile);

    impl BatchWriter<u32> for Lines {
        fn write(&mut self, batch: Batch<u32>) -> Result<()> {
            for x in batch {
                writeln!(self.0, "{x}").map_err(|e| self.0.io_error(e))?;
            }
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<()> {
            self.0.finish()
        }
    }

    fn lines(path: &std::path::Path) -> BlockingSink<u32> {
        let output = Output::Replace(path.to_path_buf());
        BlockingSink::new(2, move || Ok(Lines(output.open()?)))
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("dataflare-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn completed_run_commits_the_file() {
        let d = dir("ok");
        let path = d.join("out.txt");
        let report = Pipeline::from(source::iter(0..1000u32).batch_size(7))
            .to(lines(&path))
            .run()
            .await
            .unwrap();
        assert_eq!(report.records_out(), 1000);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn failed_run_leaves_no_file_and_keeps_the_old_one() {
        let d = dir("fail");
        let path = d.join("out.txt");
        std::fs::write(&path, "good").unwrap();
        let report = Pipeline::from(failing_source(0..1000u32, 10, 500))
            .to(lines(&path))
            .run_to_report()
            .await;
        assert!(report.is_failed());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "good");
        // The run waited for the writer thread: its temporary file is gone.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_missing_directory_fails_before_the_source_is_read() {
        let d = dir("missing");
        let path = d.join("nope/out.txt");
        let (reads_tx, reads) = std::sync::mpsc::channel();
        let source = source::iter((0..10u32).inspect(move |_| reads_tx.send(()).unwrap()));
        let err = Pipeline::from(source)
            .to(lines(&path))
            .run()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(err.stage(), Some("sink"));
        assert_eq!(reads.try_iter().count(), 0, "no record was read");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
