//! The connector compliance kit: checks every source and sink passes, in the
//! spirit of Vector's `run_and_assert_sink_compliance`.
//!
//! - [`check_source`]: empty input, [`RECORDS`] records in order, early
//!   shutdown (`take`, with and without a `buffer`), cancellation.
//! - [`check_source_error`]: a source's error fails the run, named.
//! - [`check_sink`]: a file sink is all-or-nothing (empty run, round trip,
//!   failed and cancelled runs leave no output and no temporary file, an
//!   unwritable destination fails before any record is read).
//! - [`check_appending_sink`]: what an appending file sink promises instead.
//! - [`check_partitioned_sink`]: a partitioned file sink (one file per key in
//!   a directory) is all-or-nothing too, for every file and the directory.
//! - [`check_memory_sink`]: an in-memory sink takes what it is given, in order.
//!
//! Every run is checked for accounting
//! ([`Report::check_accounting`](crate::Report::check_accounting)) and for
//! returning at all: a check that has not returned after [`DEADLINE`] panics.
//! Each check panics with a message naming the connector and the check.
//!
//! The deadline is kept in real time by a thread of its own, not by tokio's
//! clock (which a test may pause). File checks work in a scratch directory of
//! their own under [`std::env::temp_dir`], removed afterwards.

use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, select};
use futures::{FutureExt, Sink};
use tokio::sync::oneshot;

use super::failing_source;
use crate::source::{self, Source};
use crate::{Batch, Error, Pipeline, Report, Result};

/// Records in the kit's main runs: more than two batches of
/// [`DEFAULT_BATCH_SIZE`](crate::source::DEFAULT_BATCH_SIZE).
pub const RECORDS: usize = 2_500;

/// How long one check may take before it fails as hung.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Records passed on by the early-shutdown runs (`take`): in the middle of the
/// second default batch.
const TAKE: usize = 1_500;

/// Records per batch of the sink checks' sources.
const SINK_BATCH: usize = 1_000;

/// Records a failing upstream yields before its error, in the sink checks.
const FAIL_AFTER: usize = 1_500;

/// What a pre-existing destination holds before a failed or cancelled run.
const EXISTING: &[u8] = b"left by an earlier run\n";

/// File name of the destination in each sink check's directory.
const OUTPUT: &str = "output";

mod partitioned;
mod sinks;
mod sources;

pub use partitioned::check_partitioned_sink;
pub use sinks::{check_appending_sink, check_memory_sink, check_sink};
pub use sources::{check_source, check_source_error};

/// One check of one connector: names both in every failure.
struct Check<'a> {
    name: &'a str,
    check: std::borrow::Cow<'static, str>,
}

impl<'a> Check<'a> {
    fn new(name: &'a str, check: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Check {
            name,
            check: check.into(),
        }
    }

    #[track_caller]
    fn fail(&self, detail: String) -> ! {
        panic!("{} fails the check {:?}: {detail}", self.name, self.check)
    }

    #[track_caller]
    fn ensure(&self, ok: bool, detail: impl FnOnce() -> String) {
        if !ok {
            self.fail(detail())
        }
    }

    /// Awaits `run`, failing the check if it has not returned by the deadline.
    async fn within<F: Future>(&self, run: F) -> F::Output {
        // The deadline is kept by a thread in real time, not by tokio's
        // clock, which a test may have paused (and auto-advanced while a
        // blocking thread works).
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let (late_tx, late) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(DEADLINE)
            {
                let _ = late_tx.send(());
            }
        });
        let output = match select(pin!(run), late).await {
            Either::Left((output, _)) => output,
            Either::Right(_) => self.fail(format!("the run did not return within {DEADLINE:?}")),
        };
        drop(done);
        output
    }

    #[track_caller]
    fn accounting(&self, report: &Report) {
        if let Err(e) = report.check_accounting() {
            self.fail(format!("the accounting does not balance: {e}"))
        }
    }

    #[track_caller]
    fn completed(&self, report: &Report) {
        match report.error() {
            Some(e) => self.fail(format!("the run failed: {e}")),
            None => self.ensure(report.is_completed(), || {
                format!("the run ended {:?}, not completed", report.status())
            }),
        }
        self.accounting(report);
    }

    #[track_caller]
    fn counts(&self, report: &Report, what: &str, got: u64, want: usize) {
        self.ensure(got == want as u64, || {
            format!("{what} is {got}, not {want}; report:\n{report}")
        });
    }

    #[track_caller]
    fn same_records<T: PartialEq + Debug>(&self, what: &str, got: &[T], want: &[T]) {
        if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
            self.fail(format!(
                "{what} differ first at index {i}: {:?}, not {:?}",
                got[i], want[i]
            ));
        }
        self.ensure(got.len() == want.len(), || {
            format!("{what} are {} records, not {}", got.len(), want.len())
        });
    }

    /// Checks that `dir` holds exactly the entries named `want` (sorted).
    #[track_caller]
    fn left(&self, dir: &Path, want: &[&str]) {
        let got = entries(dir)
            .unwrap_or_else(|e| self.fail(format!("cannot list {}: {e}", dir.display())));
        self.ensure(got == want, || {
            format!("{} holds {got:?}, not {want:?}", dir.display())
        });
    }

    /// Checks that a failed or cancelled run left `dir` as it was: empty, or
    /// holding only the untouched pre-existing destination.
    #[track_caller]
    fn untouched(&self, dir: &Path, existing: bool) {
        if existing {
            self.left(dir, &[OUTPUT]);
            let bytes = self.read(&dir.join(OUTPUT));
            self.ensure(bytes == EXISTING, || {
                format!(
                    "the existing destination was changed: it holds {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        } else {
            self.left(dir, &[]);
        }
    }

    #[track_caller]
    fn read(&self, path: &Path) -> Vec<u8> {
        std::fs::read(path)
            .unwrap_or_else(|e| self.fail(format!("cannot read {}: {e}", path.display())))
    }

    #[track_caller]
    fn write(&self, path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes)
            .unwrap_or_else(|e| self.fail(format!("cannot write {}: {e}", path.display())))
    }
}

/// Names of the entries in `dir`, sorted.
fn entries(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// A source yielding `records` in batches, then waiting forever; the receiver
/// completes once every batch has been taken from it, for `run_until`.
fn stalled_source<T: Send + 'static>(
    records: Vec<T>,
) -> (impl Source<Record = T>, oneshot::Receiver<()>) {
    let (reached, stop) = oneshot::channel::<()>();
    let source = async_stream::stream! {
        let mut records = records.into_iter().peekable();
        let mut seq = 0;
        while records.peek().is_some() {
            let batch: Vec<T> = records.by_ref().take(SINK_BATCH).collect();
            yield Ok::<_, Error>(Batch::new(batch).with_seq(seq));
            seq += 1;
        }
        let _ = reached.send(());
        futures::future::pending::<()>().await;
    };
    (source, stop)
}

/// A sink taking one batch, then telling `stop` and never ready again: a run
/// into it can only end by being cancelled.
struct StallAfterFirstBatch<T> {
    stop: Option<oneshot::Sender<()>>,
    _records: PhantomData<fn(T)>,
}

impl<T> Unpin for StallAfterFirstBatch<T> {}

impl<T> Sink<Batch<T>> for StallAfterFirstBatch<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // Pending for good once a batch came: the run's cancellation wakes it.
        if self.stop.is_some() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn start_send(self: Pin<&mut Self>, _batch: Batch<T>) -> Result<()> {
        if let Some(stop) = self.get_mut().stop.take() {
            let _ = stop.send(());
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A directory of the kit's own under the system's temporary directory,
/// removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("dataflare-kit-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Scratch(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("{name}: the kit cannot create {}: {e}", path.display()),
            }
        }
    }

    /// A new, empty directory inside.
    fn dir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("the kit cannot create {}: {e}", path.display()));
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The runs of a sink that must leave nothing behind, each in a directory of
/// its own: failing upstream and cancelled (`run_until`) after the sink took
/// records, each into a fresh place and over what an earlier run left
/// (`existing`, e.g. "over an existing file"), then an unwritable destination.
/// `prepare(c, dest)` leaves the earlier run's output and returns what
/// `unchanged(c, dir, dest, that)` checks is still there (nothing else left).
#[allow(clippy::too_many_arguments)]
async fn check_leaves_nothing<T, K, B>(
    name: &str,
    scratch: &Scratch,
    records: &[T],
    existing: &str,
    make: &mut impl FnMut(&Path) -> K,
    prepare: impl Fn(&Check<'_>, &Path) -> B,
    unchanged: impl Fn(&Check<'_>, &Path, &Path, Option<&B>),
) where
    T: Clone + Send + 'static,
    K: Sink<Batch<T>, Error = Error> + Send + 'static,
{
    for over in [false, true] {
        let label = |what: &str| {
            if over {
                format!("{what}, {existing}")
            } else {
                what.to_string()
            }
        };
        let dir_name = |what: &str| {
            if over {
                format!("{what}-existing")
            } else {
                what.to_string()
            }
        };

        let c = Check::new(name, label("failing upstream"));
        let dir = scratch.dir(&dir_name("failed"));
        let dest = dir.join(OUTPUT);
        let before = over.then(|| prepare(&c, &dest));
        let run = Pipeline::from(failing_source(records.to_vec(), SINK_BATCH, FAIL_AFTER))
            .to(make(&dest))
            .run_to_report();
        let report = c.within(run).await;
        c.ensure(report.is_failed(), || {
            format!("the run ended {:?}, not failed", report.status())
        });
        c.accounting(&report);
        unchanged(&c, &dir, &dest, before.as_ref());

        let c = Check::new(name, label("cancelled"));
        let dir = scratch.dir(&dir_name("cancelled"));
        let dest = dir.join(OUTPUT);
        let before = over.then(|| prepare(&c, &dest));
        let (stalled, stop) = stalled_source(records[..FAIL_AFTER].to_vec());
        let run = Pipeline::from(stalled).to(make(&dest)).run_until(async {
            let _ = stop.await;
        });
        let report = c.within(run).await;
        c.ensure(report.is_cancelled(), || {
            format!("the run ended {:?}, not cancelled", report.status())
        });
        c.accounting(&report);
        unchanged(&c, &dir, &dest, before.as_ref());
    }

    let c = Check::new(name, "unwritable destination");
    let dir = scratch.dir("unwritable");
    let dest = dir.join("missing").join(OUTPUT);
    let run = Pipeline::from(source::iter(records.to_vec()))
        .to(make(&dest))
        .run_to_report();
    let report = c.within(run).await;
    c.ensure(report.is_failed(), || {
        format!("the run ended {:?}, not failed", report.status())
    });
    c.counts(&report, "records_in", report.records_in(), 0);
    c.accounting(&report);
    c.left(&dir, &[]);
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A sink writing straight into its destination: not all-or-nothing.
    struct Direct {
        path: PathBuf,
        file: Option<std::fs::File>,
    }

    impl Sink<Batch<u64>> for Direct {
        type Error = Error;

        fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
            let this = self.get_mut();
            if this.file.is_none() {
                let file =
                    std::fs::File::create(&this.path).map_err(|e| Error::io(&this.path, e))?;
                this.file = Some(file);
            }
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, batch: Batch<u64>) -> Result<()> {
            let this = self.get_mut();
            let file = this.file.as_mut().expect("opened");
            for x in batch.into_records() {
                writeln!(file, "{x}").map_err(|e| Error::io(&this.path, e))?;
            }
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn read_lines(path: &Path) -> Vec<u64> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().map(|line| line.parse().unwrap()).collect()
    }

    #[tokio::test]
    #[should_panic(expected = "direct fails the check \"failing upstream\": ")]
    async fn a_sink_writing_in_place_fails_the_failing_upstream_check() {
        let make = |path: &Path| Direct {
            path: path.to_path_buf(),
            file: None,
        };
        check_sink("direct", |i| i as u64, make, read_lines).await;
    }

    #[tokio::test]
    #[should_panic(expected = "direct fails the check \"append: two runs\": ")]
    async fn a_truncating_sink_fails_the_append_check() {
        // Direct truncates rather than appends: two runs keep only the second.
        let make = |path: &Path| Direct {
            path: path.to_path_buf(),
            file: None,
        };
        check_appending_sink("direct", |i| i as u64, make, read_lines).await;
    }

    #[tokio::test]
    #[should_panic(expected = "one file fails the check \"empty run\": ")]
    async fn a_sink_writing_every_key_to_one_file_fails_the_partitioned_check() {
        use futures::SinkExt;
        // Not a directory of its own: the run fails, as `dir` does not exist.
        let make = |dir: &Path| {
            crate::csv::write::<u64>(dir.join("all.csv")).with(
                |b: Batch<crate::sink::Keyed<u64>>| async move {
                    Ok::<_, Error>(b.map_records(|r| r.into_iter().map(|k| k.record).collect()))
                },
            )
        };
        check_partitioned_sink("one file", |i| i as u64, make, read_lines).await;
    }

    #[tokio::test]
    #[should_panic(expected = "reversed fails the check \"all records, in order\": ")]
    async fn a_source_out_of_order_fails() {
        check_source(
            "reversed",
            |i| i,
            |mut records: Vec<usize>| {
                records.reverse();
                source::iter(records)
            },
        )
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "short fails the check \"all records, in order\": ")]
    async fn a_source_losing_its_last_record_fails() {
        check_source(
            "short",
            |i| i,
            |mut records: Vec<usize>| {
                records.pop();
                source::iter(records)
            },
        )
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "leaky fails the check \"empty run\": ")]
    async fn a_sink_leaving_a_file_behind_fails() {
        let make = |path: &Path| {
            std::fs::write(path.with_extension("tmp"), b"").unwrap();
            Direct {
                path: path.to_path_buf(),
                file: None,
            }
        };
        check_sink("leaky", |i| i as u64, make, read_lines).await;
    }

    #[tokio::test]
    #[should_panic(
        expected = "stream fails the check \"an error fails the run\": the error does not say \"disk full\""
    )]
    async fn an_error_not_naming_its_cause_fails() {
        let records = futures::stream::iter(vec![Ok(1), Err(Error::msg("connection reset"))]);
        check_source_error("stream", source::try_stream(records), &["disk full"]).await;
    }
}
