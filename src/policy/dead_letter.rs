use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use futures::{Sink, SinkExt};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use crate::runtime::bounded;
use crate::{Batch, Error, Result};

/// A record a stage gave up on, with why and where: what a dead-letter sink receives.
///
/// Serializes to one flat row, so a CSV or JSON Lines sink can keep rejects in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rejected {
    /// The stage that failed on the record.
    pub stage: String,
    /// The error, with its causes (`error: cause: cause`).
    pub error: String,
    /// The record as `Debug` shows it, when the stage had it (a transform); for
    /// a source's malformed input, its raw text (a CSV row, a JSON line) when
    /// the source kept it.
    pub record: Option<String>,
    /// Index of the record in its source, counting from 0, when known (messages
    /// number records from 1: index 0 is "record 1").
    pub record_index: Option<u64>,
    /// Line in the input file, when known.
    pub line: Option<u64>,
    /// Byte offset in the input file, when known.
    pub byte: Option<u64>,
    /// The field at fault, when known.
    pub field: Option<String>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl Rejected {
    pub(crate) fn new(stage: String, error: &Error, record: Option<String>, attempts: u32) -> Self {
        let mut text = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(c) = cause {
            let c_text = c.to_string();
            if !text.ends_with(&c_text) {
                text.push_str(": ");
                text.push_str(&c_text);
            }
            cause = c.source();
        }
        let position = error.position();
        Rejected {
            stage,
            error: text,
            record: record.or_else(|| error.record_text().map(str::to_string)),
            record_index: position.record,
            line: position.line,
            byte: position.byte,
            field: position.field.clone(),
            attempts,
        }
    }
}

type BoxSink = Pin<Box<dyn Sink<Batch<Rejected>, Error = Error> + Send>>;

/// Where failed records go under [`ErrorPolicy::DeadLetter`](crate::ErrorPolicy::DeadLetter):
/// a handle to a sink of [`Rejected`] records, driven by the run alongside the
/// pipeline.
///
/// The sink is opened with the run's other sinks, before any record is read,
/// so a rejects file that cannot be written fails the run at once. It is
/// closed when the pipeline is done, before the main sink, and a file sink
/// commits with the run's other outputs; when the run fails, the dead letters
/// are still committed (they explain the failure) while the main outputs are
/// not. A cancelled run commits nothing, nor does a run refused for using one
/// file twice.
///
/// Clone it to send several stages' rejects to the same sink. One handle serves
/// one run: its sink is consumed by it, and a second run with the same handle
/// fails before reading anything, saying so.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::{DeadLetters, Rejected};
///
/// let rejects = Collected::<Rejected>::new();
/// let report = Pipeline::from(source::iter(vec!["1", "x", "3"]))
///     .try_map(|s: &&str| s.parse::<i32>())
///     .on_error(DeadLetters::to(sink::collect(&rejects)))
///     .to(sink::discard())
///     .run()
///     .await?;
/// assert_eq!(report.records_out(), 2);
/// assert_eq!(report.dead_lettered(), 1);
/// let r = &rejects.to_vec()[0];
/// assert_eq!(r.stage, "try_map#1");
/// assert_eq!(r.record.as_deref(), Some("\"x\""));
/// assert!(r.error.contains("invalid digit"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    inner: Arc<Inner>,
}

struct Inner {
    keep_on_failure: std::sync::atomic::AtomicBool,
    tx: mpsc::Sender<Rejected>,
    driver: Mutex<Option<(mpsc::Receiver<Rejected>, BoxSink)>>,
}

/// Rejects waiting for the dead-letter sink, at most; a stage rejecting faster
/// than the sink writes waits (no unbounded edge).
const CAPACITY: usize = 256;

impl DeadLetters {
    /// Dead letters written to `sink`.
    pub fn to<K>(sink: K) -> Self
    where
        K: Sink<Batch<Rejected>, Error = Error> + Send + 'static,
    {
        let (tx, rx) = bounded(CAPACITY);
        DeadLetters {
            inner: Arc::new(Inner {
                keep_on_failure: std::sync::atomic::AtomicBool::new(true),
                tx,
                driver: Mutex::new(Some((rx, Box::pin(sink)))),
            }),
        }
    }

    /// Whether a failed run keeps these dead letters (`true`, the default:
    /// they explain the failure) or commits them only with the rest of the
    /// run's outputs, all or nothing (`false`: a failed run then leaves no
    /// file at all).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use dataflare::prelude::*;
    /// use dataflare::{DeadLetters, Rejected, jsonl};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let rejects = dir.path().join("rejects.jsonl");
    /// let report = Pipeline::from(source::iter(vec!["1", "x", "0"]))
    ///     .try_map(|s: &&str| s.parse::<u32>())
    ///     .on_error(DeadLetters::to(jsonl::write::<Rejected>(&rejects)).keep_on_failure(false))
    ///     .map(|n| 10 / n) // fails on 0
    ///     .to(sink::discard())
    ///     .run_to_report()
    ///     .await;
    /// assert!(report.is_failed());
    /// assert!(!rejects.exists()); // committed only with the run
    /// # }
    /// ```
    pub fn keep_on_failure(self, keep: bool) -> Self {
        self.inner
            .keep_on_failure
            .store(keep, std::sync::atomic::Ordering::Relaxed);
        self
    }

    pub(crate) fn sender(&self) -> DeadLetterSender {
        DeadLetterSender(PollSender::new(self.inner.tx.clone()))
    }

    pub(crate) fn same_as(&self, other: &DeadLetters) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Takes the sink out of the handle to be driven by a run. A handle drives
    /// one run: its sink is consumed by the run (closed or abandoned), so a
    /// second run with the same handle is refused.
    pub(crate) fn take_driver(&self) -> Result<DeadLetterDriver> {
        self.inner
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|(rx, sink)| DeadLetterDriver {
                rx,
                sink,
                keep_on_failure: self
                    .inner
                    .keep_on_failure
                    .load(std::sync::atomic::Ordering::Relaxed),
            })
            .ok_or_else(|| {
                Error::config(
                    "this DeadLetters handle was already used by another run (its sink is \
                     consumed by the run it served): make a new DeadLetters::to(..) for each run",
                )
            })
    }
}

/// The dead-letter sink of one run and the rejects waiting for it.
pub(crate) struct DeadLetterDriver {
    rx: mpsc::Receiver<Rejected>,
    sink: BoxSink,
    /// Kept by a failed run (see [`DeadLetters::keep_on_failure`]).
    pub(crate) keep_on_failure: bool,
}

impl DeadLetterDriver {
    /// Waits for the sink to be ready: a file sink opens (and checks) its
    /// destination then, before the run reads any data.
    pub(crate) async fn open(&mut self) -> Result<()> {
        futures::future::poll_fn(|cx| self.sink.as_mut().poll_ready(cx)).await
    }

    /// Writes rejects to the sink until `done` fires and those already sent are
    /// written, then closes the sink (a file sink stages its output for the
    /// run's commit).
    pub(crate) async fn run(self, done: oneshot::Receiver<()>) -> Result<()> {
        let DeadLetterDriver {
            mut rx, mut sink, ..
        } = self;
        let mut done = std::pin::pin!(done);
        let mut finishing = false;
        let mut buf = Vec::new();
        loop {
            tokio::select! {
                n = rx.recv_many(&mut buf, CAPACITY) => {
                    if n == 0 {
                        break;
                    }
                    sink.send(Batch::new(std::mem::take(&mut buf))).await?;
                }
                _ = &mut done, if !finishing => {
                    // Stop taking new rejects; those already queued are still received.
                    finishing = true;
                    rx.close();
                }
            }
        }
        sink.close().await
    }
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters").finish_non_exhaustive()
    }
}

/// A stage's end of the dead-letter channel.
#[derive(Debug)]
pub(crate) struct DeadLetterSender(PollSender<Rejected>);

impl DeadLetterSender {
    /// Sends the reject in `slot` once there is room; the slot is emptied when sent.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Option<Rejected>,
    ) -> Poll<Result<()>> {
        if slot.is_none() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.0.poll_reserve(cx)).map_err(|_| Error::closed())?;
        let rejected = slot.take().expect("checked above");
        self.0.send_item(rejected).map_err(|_| Error::closed())?;
        Poll::Ready(Ok(()))
    }
}
