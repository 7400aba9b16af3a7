//! The checks of sources.

use super::*;

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
    let (sink, probe) = crate::testkit::probe();
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
    let (sink, probe) = crate::testkit::probe();
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
        let (sink, probe) = crate::testkit::probe();
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
    let (sink, probe) = crate::testkit::probe();
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
