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

/// Checks a source: `make` turns records into a source yielding exactly them,
/// in order (for a file source: writes them to a new file and reads it), and
/// `sample(i)` is the `i`-th record of a run. Checks, each on a fresh source:
///
/// 1. *empty input*: the run completes with 0 records;
/// 2. *all records*: [`RECORDS`] records (several batches) all arrive in
///    order, and `records_in` counts them;
/// 3. *early shutdown*: `.take(k)` right after the source, then behind a
///    `.buffer(2)` (the source in a task of its own), completes the run with
///    exactly the first `k` records, and the run returns;
/// 4. *cancellation*: a run stopped (`run_until`) once the sink has its first
///    batch ends as cancelled and returns.
///
/// Every run's accounting must balance and every run must return.
///
/// # Panics
///
/// When a check fails, naming `name` and the check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::source;
/// use dataflare::testkit::kit;
///
/// kit::check_source("source::iter", |i| i as u64, |records| source::iter(records)).await;
/// # }
/// ```
pub async fn check_source<T, S>(
    name: &str,
    sample: impl Fn(usize) -> T,
    mut make: impl FnMut(Vec<T>) -> S,
) where
    T: Clone + PartialEq + Debug + Send + 'static,
    S: Source<Record = T>,
{
    let all: Vec<T> = (0..RECORDS).map(&sample).collect();

    let c = Check::new(name, "empty input");
    let (sink, probe) = super::probe();
    let report = c
        .within(Pipeline::from(make(Vec::new())).to(sink).run_to_report())
        .await;
    c.completed(&report);
    c.ensure(report.records_in() == 0, || {
        format!("records_in is {}, not 0", report.records_in())
    });
    c.same_records("the records received", &probe.records(), &[]);
    c.ensure(probe.is_closed(), || "the sink was not closed".into());

    let c = Check::new(name, "all records, in order");
    let (sink, probe) = super::probe();
    let report = c
        .within(Pipeline::from(make(all.clone())).to(sink).run_to_report())
        .await;
    c.completed(&report);
    c.counts(&report, "records_in", report.records_in(), RECORDS);
    c.counts(&report, "records_out", report.records_out(), RECORDS);
    c.same_records("the records received", &probe.records(), &all);

    for buffered in [false, true] {
        let c = Check::new(
            name,
            if buffered {
                "early shutdown: buffer(2).take(k)"
            } else {
                "early shutdown: take(k)"
            },
        );
        let (sink, probe) = super::probe();
        let pipeline = Pipeline::from(make(all.clone()));
        let run = if buffered {
            pipeline
                .buffer(2)
                .take(TAKE as u64)
                .to(sink)
                .run_to_report()
                .boxed_local()
        } else {
            pipeline
                .take(TAKE as u64)
                .to(sink)
                .run_to_report()
                .boxed_local()
        };
        let report = c.within(run).await;
        c.completed(&report);
        c.counts(&report, "records_out", report.records_out(), TAKE);
        c.ensure(report.records_in() >= TAKE as u64, || {
            format!("records_in is {}, fewer than {TAKE}", report.records_in())
        });
        c.same_records("the records received", &probe.records(), &all[..TAKE]);
    }

    let c = Check::new(name, "cancelled after the first batch");
    let (stop, stopped) = oneshot::channel();
    let sink = StallAfterFirstBatch::<T> {
        stop: Some(stop),
        _records: PhantomData,
    };
    let run = Pipeline::from(make(all)).to(sink).run_until(async {
        let _ = stopped.await;
    });
    let report = c.within(run).await;
    c.ensure(report.is_cancelled(), || {
        format!("the run ended {:?}, not cancelled", report.status())
    });
    c.ensure(report.records_in() > 0, || {
        "the source passed no record on".into()
    });
    c.accounting(&report);
}

/// Checks that `source` (made from a bad input: a malformed record, a stream
/// that fails) fails the run, under the default policy (abort), with an error
/// attributed to the source whose message holds every string of `expected`
/// (for a file: its path, and the position of the bad record). The run must
/// return, not commit (the sink is never closed) and balance its accounting.
///
/// # Panics
///
/// When a check fails, naming `name` and the check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::prelude::*;
/// use dataflare::testkit::kit;
///
/// let lines = futures::stream::iter(vec![Ok(1), Ok(2), Err(Error::msg("connection reset"))]);
/// kit::check_source_error("source::try_stream", source::try_stream(lines), &["connection reset"])
///     .await;
/// # }
/// ```
pub async fn check_source_error<S>(name: &str, source: S, expected: &[&str])
where
    S: Source,
    S::Record: Clone,
{
    let c = Check::new(name, "an error fails the run");
    let (sink, probe) = super::probe();
    let report = c
        .within(Pipeline::from(source).to(sink).run_to_report())
        .await;
    let Some(error) = report.error() else {
        c.fail(format!("the run ended {:?}, not failed", report.status()))
    };
    c.ensure(error.stage() == Some("source"), || {
        format!(
            "the error is attributed to {:?}, not the source: {error}",
            error.stage()
        )
    });
    let message = error.to_string();
    for part in expected {
        c.ensure(message.contains(part), || {
            format!("the error does not say {part:?}: {message}")
        });
    }
    c.ensure(!probe.is_closed(), || {
        "the sink of a failed run was closed (committed)".into()
    });
    c.accounting(&report);
}

/// Checks a sink writing to a file that replaces its destination when the run
/// completes, and only then: `make(path)` makes the sink writing to `path`,
/// `read_back(path)` reads what it wrote, and `sample(i)` is the `i`-th record
/// of a run. Each check runs in an empty directory of its own:
///
/// 1. *empty run*: completes; the destination exists, reads back as no
///    records (an empty or header-only file), and nothing else is left;
/// 2. *round trip*: [`RECORDS`] records (several batches) read back in order,
///    `records_out` counts them, and nothing else is left (no temporary file);
/// 3. *failing upstream*: a source failing after some records fails the run;
///    the destination is not created, or, if it existed, is byte for byte
///    unchanged, and nothing else is left;
/// 4. *cancelled*: a run stopped (`run_until`) after the sink has taken
///    records: as 3;
/// 5. *unwritable destination*: a destination in a missing directory fails
///    the run before any record is read, creating nothing.
///
/// Every run's accounting must balance and every run must return.
///
/// # Panics
///
/// When a check fails, naming `name` and the check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::jsonl;
/// use dataflare::testkit::kit;
///
/// kit::check_sink(
///     "jsonl::write",
///     |i| i as u64,
///     |path| jsonl::write::<u64>(path),
///     |path| {
///         let text = std::fs::read_to_string(path).unwrap();
///         text.lines().map(|line| line.parse().unwrap()).collect()
///     },
/// )
/// .await;
/// # }
/// ```
pub async fn check_sink<T, K>(
    name: &str,
    sample: impl Fn(usize) -> T,
    mut make: impl FnMut(&Path) -> K,
    mut read_back: impl FnMut(&Path) -> Vec<T>,
) where
    T: Clone + PartialEq + Debug + Send + 'static,
    K: Sink<Batch<T>, Error = Error> + Send + 'static,
{
    let all: Vec<T> = (0..RECORDS).map(&sample).collect();
    let scratch = Scratch::new(name);

    let c = Check::new(name, "empty run");
    let dir = scratch.dir("empty");
    let dest = dir.join(OUTPUT);
    let run = Pipeline::from(source::iter(Vec::<T>::new()))
        .to(make(&dest))
        .run_to_report();
    let report = c.within(run).await;
    c.completed(&report);
    c.counts(&report, "records_out", report.records_out(), 0);
    c.left(&dir, &[OUTPUT]);
    c.same_records("the records read back", &read_back(&dest), &[]);

    let c = Check::new(name, "round trip");
    let dir = scratch.dir("round-trip");
    let dest = dir.join(OUTPUT);
    let run = Pipeline::from(source::iter(all.clone()).batch_size(SINK_BATCH))
        .to(make(&dest))
        .run_to_report();
    let report = c.within(run).await;
    c.completed(&report);
    c.counts(&report, "records_out", report.records_out(), RECORDS);
    c.left(&dir, &[OUTPUT]);
    c.same_records("the records read back", &read_back(&dest), &all);

    for existing in [false, true] {
        let c = Check::new(
            name,
            if existing {
                "failing upstream, over an existing file"
            } else {
                "failing upstream"
            },
        );
        let dir = scratch.dir(if existing {
            "failed-existing"
        } else {
            "failed"
        });
        let dest = dir.join(OUTPUT);
        if existing {
            c.write(&dest, EXISTING);
        }
        let run = Pipeline::from(failing_source(all.clone(), SINK_BATCH, FAIL_AFTER))
            .to(make(&dest))
            .run_to_report();
        let report = c.within(run).await;
        c.ensure(report.is_failed(), || {
            format!("the run ended {:?}, not failed", report.status())
        });
        c.accounting(&report);
        c.untouched(&dir, existing);

        let c = Check::new(
            name,
            if existing {
                "cancelled, over an existing file"
            } else {
                "cancelled"
            },
        );
        let dir = scratch.dir(if existing {
            "cancelled-existing"
        } else {
            "cancelled"
        });
        let dest = dir.join(OUTPUT);
        if existing {
            c.write(&dest, EXISTING);
        }
        let (stalled, stop) = stalled_source(all[..FAIL_AFTER].to_vec());
        let run = Pipeline::from(stalled).to(make(&dest)).run_until(async {
            let _ = stop.await;
        });
        let report = c.within(run).await;
        c.ensure(report.is_cancelled(), || {
            format!("the run ended {:?}, not cancelled", report.status())
        });
        c.accounting(&report);
        c.untouched(&dir, existing);
    }

    let c = Check::new(name, "unwritable destination");
    let dir = scratch.dir("unwritable");
    let dest = dir.join("missing").join(OUTPUT);
    let run = Pipeline::from(source::iter(all))
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

/// Checks a file sink in append mode, which cannot be all-or-nothing: it
/// writes as batches arrive, so a failed run leaves what it wrote before the
/// failure. Arguments as for [`check_sink`]. Checks, each in an empty
/// directory of its own:
///
/// 1. *empty run*: creates the destination, which reads back as no records;
/// 2. *appends*: two runs of half the records each read back as all of them,
///    in order, and `records_out` counts each run's;
/// 3. *failing upstream*: after a first run, a run failing after some records
///    leaves the first run's bytes as they were, followed by whole records
///    only: the file reads back as a prefix of what was sent;
/// 4. *cancelled*: as 3, for a run stopped (`run_until`) after the sink has
///    taken records.
///
/// In every case nothing but the destination is left in the directory, every
/// run's accounting balances and every run returns.
///
/// # Panics
///
/// When a check fails, naming `name` and the check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::jsonl;
/// use dataflare::testkit::kit;
///
/// kit::check_appending_sink(
///     "jsonl::write().append()",
///     |i| i as u64,
///     |path| jsonl::write::<u64>(path).append(),
///     |path| {
///         let text = std::fs::read_to_string(path).unwrap();
///         text.lines().map(|line| line.parse().unwrap()).collect()
///     },
/// )
/// .await;
/// # }
/// ```
pub async fn check_appending_sink<T, K>(
    name: &str,
    sample: impl Fn(usize) -> T,
    mut make: impl FnMut(&Path) -> K,
    mut read_back: impl FnMut(&Path) -> Vec<T>,
) where
    T: Clone + PartialEq + Debug + Send + 'static,
    K: Sink<Batch<T>, Error = Error> + Send + 'static,
{
    let all: Vec<T> = (0..RECORDS).map(&sample).collect();
    let half = RECORDS / 2;
    let scratch = Scratch::new(name);

    let c = Check::new(name, "append: empty run");
    let dir = scratch.dir("empty");
    let dest = dir.join(OUTPUT);
    let run = Pipeline::from(source::iter(Vec::<T>::new()))
        .to(make(&dest))
        .run_to_report();
    let report = c.within(run).await;
    c.completed(&report);
    c.left(&dir, &[OUTPUT]);
    c.same_records("the records read back", &read_back(&dest), &[]);

    let c = Check::new(name, "append: two runs");
    let dir = scratch.dir("appends");
    let dest = dir.join(OUTPUT);
    for part in [&all[..half], &all[half..]] {
        let run = Pipeline::from(source::iter(part.to_vec()).batch_size(SINK_BATCH))
            .to(make(&dest))
            .run_to_report();
        let report = c.within(run).await;
        c.completed(&report);
        c.counts(&report, "records_out", report.records_out(), part.len());
    }
    c.left(&dir, &[OUTPUT]);
    c.same_records("the records read back", &read_back(&dest), &all);

    for cancelled in [false, true] {
        let c = Check::new(
            name,
            if cancelled {
                "append: cancelled"
            } else {
                "append: failing upstream"
            },
        );
        let dir = scratch.dir(if cancelled { "cancelled" } else { "failed" });
        let dest = dir.join(OUTPUT);
        let first = 100;
        let run = Pipeline::from(source::iter(all[..first].to_vec()))
            .to(make(&dest))
            .run_to_report();
        c.completed(&c.within(run).await);
        let before = c.read(&dest);
        let rest = all[first..first + FAIL_AFTER].to_vec();
        let report = if cancelled {
            let (stalled, stop) = stalled_source(rest);
            let run = Pipeline::from(stalled).to(make(&dest)).run_until(async {
                let _ = stop.await;
            });
            let report = c.within(run).await;
            c.ensure(report.is_cancelled(), || {
                format!("the run ended {:?}, not cancelled", report.status())
            });
            report
        } else {
            let run = Pipeline::from(failing_source(rest, SINK_BATCH, FAIL_AFTER))
                .to(make(&dest))
                .run_to_report();
            let report = c.within(run).await;
            c.ensure(report.is_failed(), || {
                format!("the run ended {:?}, not failed", report.status())
            });
            report
        };
        c.accounting(&report);
        c.left(&dir, &[OUTPUT]);
        let after = c.read(&dest);
        c.ensure(after.starts_with(&before), || {
            "the bytes of the earlier run were changed".into()
        });
        let got = read_back(&dest);
        c.ensure(got.len() >= first, || {
            format!(
                "{} records read back, fewer than the first run's {first}",
                got.len()
            )
        });
        let sent = &all[..got.len().min(first + FAIL_AFTER)];
        c.same_records("the records read back", &got, sent);
    }
}

/// Checks an in-memory sink: `make()` gives a sink and a function reading
/// what that sink has taken so far; `sample(i)` is the `i`-th record of a run.
/// Checks: an empty run completes with nothing taken; [`RECORDS`] records are
/// taken in order and counted in `records_out`; a failing upstream fails the
/// run and a cancelled one is cancelled, the sink holding a prefix of the
/// records sent (an in-memory sink cannot take back what it took). Every run's
/// accounting must balance and every run must return.
///
/// # Panics
///
/// When a check fails, naming `name` and the check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::prelude::*;
/// use dataflare::testkit::kit;
///
/// kit::check_memory_sink("sink::collect", |i| i, || {
///     let out = Collected::new();
///     (sink::collect(&out), move || out.to_vec())
/// })
/// .await;
/// # }
/// ```
pub async fn check_memory_sink<T, K, R>(
    name: &str,
    sample: impl Fn(usize) -> T,
    mut make: impl FnMut() -> (K, R),
) where
    T: Clone + PartialEq + Debug + Send + 'static,
    K: Sink<Batch<T>, Error = Error> + Send + 'static,
    R: Fn() -> Vec<T>,
{
    let all: Vec<T> = (0..RECORDS).map(&sample).collect();

    let c = Check::new(name, "empty run");
    let (sink, taken) = make();
    let report = c
        .within(
            Pipeline::from(source::iter(Vec::<T>::new()))
                .to(sink)
                .run_to_report(),
        )
        .await;
    c.completed(&report);
    c.counts(&report, "records_out", report.records_out(), 0);
    c.same_records("the records taken", &taken(), &[]);

    let c = Check::new(name, "all records, in order");
    let (sink, taken) = make();
    let run = Pipeline::from(source::iter(all.clone()).batch_size(SINK_BATCH))
        .to(sink)
        .run_to_report();
    let report = c.within(run).await;
    c.completed(&report);
    c.counts(&report, "records_out", report.records_out(), RECORDS);
    c.same_records("the records taken", &taken(), &all);

    let c = Check::new(name, "failing upstream");
    let (sink, taken) = make();
    let run = Pipeline::from(failing_source(all.clone(), SINK_BATCH, FAIL_AFTER))
        .to(sink)
        .run_to_report();
    let report = c.within(run).await;
    c.ensure(report.is_failed(), || {
        format!("the run ended {:?}, not failed", report.status())
    });
    c.accounting(&report);
    let got = taken();
    c.same_records("the records taken", &got, &all[..got.len().min(FAIL_AFTER)]);

    let c = Check::new(name, "cancelled");
    let (sink, taken) = make();
    let (stalled, stop) = stalled_source(all[..FAIL_AFTER].to_vec());
    let run = Pipeline::from(stalled).to(sink).run_until(async {
        let _ = stop.await;
    });
    let report = c.within(run).await;
    c.ensure(report.is_cancelled(), || {
        format!("the run ended {:?}, not cancelled", report.status())
    });
    c.accounting(&report);
    let got = taken();
    c.same_records("the records taken", &got, &all[..got.len().min(FAIL_AFTER)]);
}

/// One check of one connector: names both in every failure.
struct Check<'a> {
    name: &'a str,
    check: &'static str,
}

impl<'a> Check<'a> {
    fn new(name: &'a str, check: &'static str) -> Self {
        Check { name, check }
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
