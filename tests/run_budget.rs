//! The run's byte budget (`max_in_flight_bytes`): what is in flight between
//! the sources and the sinks stays within it, whatever the speeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dataflare::prelude::*;

const MB: usize = 1 << 20;

/// `n` records of `size` bytes each, made as they are read.
fn big_rows(n: usize, size: usize) -> impl Iterator<Item = String> + Send + 'static {
    (0..n).map(move |i| {
        let mut s = format!("{i:>8}");
        s.push_str(&"x".repeat(size - 8));
        s
    })
}

/// A sink that takes `per_batch` of (paused) time for every batch, then
/// drops it, and checks on arrival that no more than `limit` records are
/// between the counter `left` (bumped as records leave the source) and
/// itself.
fn slow_checking_sink(
    per_batch: Duration,
    left: Arc<AtomicUsize>,
    limit: usize,
) -> (
    impl futures::Sink<Batch<String>, Error = Error> + Send + 'static,
    Arc<AtomicUsize>,
) {
    let written = Arc::new(AtomicUsize::new(0));
    let done = written.clone();
    let sink = futures::sink::unfold((), move |(), batch: Batch<String>| {
        let (left, written, limit) = (left.clone(), written.clone(), limit);
        async move {
            let in_flight = left.load(Ordering::SeqCst) - written.load(Ordering::SeqCst);
            assert!(
                in_flight <= limit,
                "{in_flight} records in flight, more than the budget holds ({limit})"
            );
            tokio::time::sleep(per_batch).await;
            written.fetch_add(batch.len(), Ordering::SeqCst);
            Ok::<_, Error>(())
        }
    });
    (sink, done)
}

#[tokio::test(start_paused = true)]
async fn a_fast_source_behind_a_slow_sink_stays_within_the_budget() {
    // 1 GiB of 1 MiB records, 4 to a batch, through a buffer of 64 batches
    // (256 MiB if nothing else held it back) into a slow sink.
    let budget = 16 * MB;
    let left = Arc::new(AtomicUsize::new(0));
    let counter = left.clone();
    // Records of 1 MiB + the String itself: 16 fit.
    let (sink, written) = slow_checking_sink(Duration::from_millis(10), left.clone(), 16);
    let report = Pipeline::from(
        source::iter(big_rows(1024, MB))
            .batch_size(4)
            .estimate_heap(),
    )
    .inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .buffer(64)
    .to(sink)
    .max_in_flight_bytes(budget)
    .run()
    .await
    .unwrap();
    assert_eq!(written.load(Ordering::SeqCst), 1024);
    let in_flight = report.in_flight().expect("the run had a budget");
    assert!(
        in_flight.peak_bytes <= budget as u64,
        "peak {} over the budget {budget}",
        in_flight.peak_bytes
    );
    // It was used, not merely never reached.
    assert!(in_flight.peak_bytes >= (budget - 4 * MB - 4096) as u64);
    assert_eq!(in_flight.bytes, 0, "every byte given back at the end");
}

#[tokio::test(start_paused = true)]
async fn a_tee_whose_branches_run_at_different_speeds_stays_within_the_budget() {
    let budget = 16 * MB;
    let left = Arc::new(AtomicUsize::new(0));
    let counter = left.clone();
    let (slow, written) = slow_checking_sink(Duration::from_millis(10), left.clone(), 16);
    let fast_count = Arc::new(AtomicUsize::new(0));
    let fast_seen = fast_count.clone();
    let fast = sink::for_each(move |b: Batch<String>| {
        fast_seen.fetch_add(b.len(), Ordering::SeqCst);
        Ok(())
    });
    let [a, b] = Pipeline::from(
        source::iter(big_rows(1024, MB))
            .batch_size(4)
            .estimate_heap(),
    )
    .inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .tee();
    let report = a
        .to(fast)
        .and(b.buffer(64).to(slow))
        .max_in_flight_bytes(budget)
        .run()
        .await
        .unwrap();
    assert_eq!(written.load(Ordering::SeqCst), 1024);
    assert_eq!(fast_count.load(Ordering::SeqCst), 1024);
    let in_flight = report.in_flight().unwrap();
    assert!(in_flight.peak_bytes <= budget as u64, "{in_flight:?}");
    assert_eq!(in_flight.bytes, 0);
}

#[tokio::test]
async fn a_batch_larger_than_the_whole_budget_goes_alone_and_the_run_ends() {
    // Batches of 4 MiB under a budget of 1 MiB: one at a time, no deadlock.
    let out = Collected::new();
    let report = Pipeline::from(source::iter(big_rows(40, MB)).batch_size(4).estimate_heap())
        .buffer(8)
        .map(|s: String| s.len())
        .to(sink::collect(&out))
        .max_in_flight_bytes(MB)
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 40);
    let in_flight = report.in_flight().unwrap();
    // Never two batches at once: the peak is one batch.
    assert!(in_flight.peak_bytes >= 4 * MB as u64);
    assert!(in_flight.peak_bytes < 5 * MB as u64, "{in_flight:?}");
}

#[tokio::test]
async fn a_zip_of_two_sources_under_a_tiny_budget_does_not_deadlock() {
    // The zip holds one side's batch while it waits for the other's: a source
    // with nothing in flight may always send one batch.
    let left = Pipeline::from(
        source::iter(big_rows(64, 64 << 10))
            .batch_size(8)
            .estimate_heap(),
    );
    let right = Pipeline::from(source::iter(0..64u32).batch_size(3));
    let out = Collected::new();
    left.zip(right)
        .to(sink::collect(&out))
        .max_in_flight_bytes(1024)
        .run()
        .await
        .unwrap();
    let pairs = out.to_vec();
    assert_eq!(pairs.len(), 64);
    assert!(
        pairs
            .iter()
            .enumerate()
            .all(|(i, (s, n))| *n as usize == i && s[..8].trim() == i.to_string())
    );
}

#[tokio::test]
async fn a_stage_that_makes_batches_larger_takes_the_difference() {
    // Each record becomes eight: the batches after the flat_map hold eight
    // times the bytes their source took, and the peak says so.
    let report = Pipeline::from(
        source::iter(big_rows(64, 4096))
            .batch_size(8)
            .estimate_heap(),
    )
    .flat_map(|s: String| std::iter::repeat_n(s, 8))
    .buffer(4)
    .to(sink::discard())
    .max_in_flight_bytes(1 << 30)
    .run()
    .await
    .unwrap();
    let peak = report.in_flight().unwrap().peak_bytes;
    let one_source_batch = 8 * (4096 + std::mem::size_of::<String>()) as u64;
    assert!(peak >= 8 * one_source_batch, "peak {peak}");
    assert_eq!(report.in_flight().unwrap().bytes, 0);
}

#[tokio::test]
async fn records_filtered_away_give_their_bytes_back_at_once() {
    // Everything but one record per batch is filtered away before a slow,
    // deep buffer: what waits there holds an eighth of what the source took.
    let report = Pipeline::from(
        source::iter(big_rows(512, 4096))
            .batch_size(8)
            .estimate_heap(),
    )
    .filter(|s: &String| s[..8].trim().parse::<u32>().unwrap() % 8 == 0)
    .buffer(64)
    .to(sink::discard())
    .max_in_flight_bytes(1 << 30)
    .run()
    .await
    .unwrap();
    let peak = report.in_flight().unwrap().peak_bytes;
    let one_source_batch = 8 * (4096 + std::mem::size_of::<String>()) as u64;
    // 64 batches of one record in the buffer, plus one source batch in the
    // filter: well under 64 whole batches.
    assert!(
        peak <= 64 * one_source_batch / 8 + 2 * one_source_batch,
        "peak {peak}"
    );
}

#[tokio::test]
async fn without_a_budget_the_report_has_no_gauge() {
    let report = Pipeline::from(source::iter(0..10))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert!(report.in_flight().is_none());
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["in_flight"].is_null());
}

#[tokio::test]
async fn the_gauge_is_in_the_progress_and_the_report() {
    let handle = Pipeline::from(
        source::iter(big_rows(100, 1024))
            .batch_size(10)
            .estimate_heap(),
    )
    .to(sink::discard())
    .max_in_flight_bytes(1 << 20)
    .spawn();
    let progress = handle.progress();
    let report = handle.await;
    let last = progress.borrow().clone();
    assert_eq!(last.in_flight, report.in_flight());
    assert_eq!(report.in_flight().unwrap().max_bytes, 1 << 20);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["in_flight"]["max_bytes"], 1 << 20);
}

#[tokio::test(start_paused = true)]
async fn a_rebatch_waiting_for_more_input_than_the_budget_holds_does_not_deadlock() {
    // Batches of one 1 MiB record regrouped by eight under a 4 MiB budget:
    // the rebatch must not hold its own source's budget while it waits for
    // the records that complete its batch.
    let out = Collected::new();
    let report = Pipeline::from(source::iter(big_rows(64, MB)).batch_size(1).estimate_heap())
        .rebatch(8)
        .map(|s: String| s.len())
        .to(sink::collect(&out))
        .max_in_flight_bytes(4 * MB)
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 64);
    let in_flight = report.in_flight().unwrap();
    // The rebatched batches are counted again when they leave.
    assert!(in_flight.peak_bytes >= 8 * MB as u64, "{in_flight:?}");
    assert_eq!(in_flight.bytes, 0);
}

#[tokio::test]
async fn a_csv_source_counts_its_records_against_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    let mut text = String::from("id,name,note\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},name {i},a note of some length for row {i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let budget = 512 << 10;
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    let sink = futures::sink::unfold((), move |(), batch: Batch<dataflare::record::Record>| {
        let count = count.clone();
        async move {
            // Slower than the reader: it yields many times per batch. (No
            // paused clock here: the file is read on a blocking thread,
            // which holds Tokio's paused clock still.)
            for _ in 0..200 {
                tokio::task::yield_now().await;
            }
            count.fetch_add(batch.len(), Ordering::SeqCst);
            Ok::<_, Error>(())
        }
    });
    let report = Pipeline::from(dataflare::csv::read_records(&path))
        .buffer(64)
        .to(sink)
        .max_in_flight_bytes(budget)
        .run()
        .await
        .unwrap();
    assert_eq!(written.load(Ordering::SeqCst), 20_000);
    let in_flight = report.in_flight().unwrap();
    // Each batch of 1,024 records counts its value slots and text: several
    // fit, not all 20 (the buffer alone would hold 64).
    let per_batch = 1024 * std::mem::size_of::<dataflare::record::Record>() as u64;
    assert!(in_flight.peak_bytes > 2 * per_batch, "{in_flight:?}");
    assert!(in_flight.peak_bytes <= budget as u64, "{in_flight:?}");
}
