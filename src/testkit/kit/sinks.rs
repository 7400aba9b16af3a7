//! The checks of sinks: files (replaced or appended to) and in-memory ones.

use super::*;

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

    check_leaves_nothing(
        name,
        &scratch,
        &all,
        "over an existing file",
        &mut make,
        |c, dest| c.write(dest, EXISTING),
        |c, dir, _, existing| c.untouched(dir, existing.is_some()),
    )
    .await;
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
