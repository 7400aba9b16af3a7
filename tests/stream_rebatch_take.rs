//! `rebatch` (regrouping records into batches by count, estimated bytes and
//! linger) and `take` (ending the stream after N records).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use dataflare::ops::BatchPolicy;
use dataflare::prelude::*;
use dataflare::size::EstimateSize;
use dataflare::testkit::probe;
use proptest::prelude::*;
use support::{runtime, sizes};

async fn rebatched(records: u64, source_batch: usize, size: usize) -> (Vec<usize>, Vec<u64>) {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..records).batch_size(source_batch))
        .rebatch(size)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert!(probe.is_closed());
    // Whatever the regrouping, every record arrives once, in order.
    assert_eq!(probe.records(), (0..records).collect::<Vec<_>>());
    let stage = report.stage("rebatch#1").unwrap();
    assert_eq!(stage.records_in, records);
    assert_eq!(stage.records_out, records);
    assert_eq!(stage.batches_out, probe.batch_count() as u64);
    let seqs = probe.batches().iter().map(|b| b.seq()).collect();
    (sizes(&probe), seqs)
}

#[tokio::test]
async fn rebatch_splits_into_exact_sizes() {
    let (sizes, seqs) = rebatched(12, 6, 4).await;
    assert_eq!(sizes, vec![4, 4, 4]);
    // Rebatched batches are numbered afresh.
    assert_eq!(seqs, vec![0, 1, 2]);
}

#[tokio::test]
async fn rebatch_merges_small_batches() {
    let (sizes, _) = rebatched(12, 1, 5).await;
    assert_eq!(sizes, vec![5, 5, 2]);
}

#[tokio::test]
async fn rebatch_makes_the_last_batch_smaller() {
    let (sizes, _) = rebatched(10, 3, 4).await;
    assert_eq!(sizes, vec![4, 4, 2]);
}

#[tokio::test]
async fn rebatch_across_uneven_boundaries() {
    let (sizes, _) = rebatched(23, 7, 3).await;
    assert_eq!(sizes, vec![3, 3, 3, 3, 3, 3, 3, 2]);
}

#[tokio::test]
async fn rebatch_passes_right_sized_batches_through() {
    let (sizes, seqs) = rebatched(12, 4, 4).await;
    assert_eq!(sizes, vec![4, 4, 4]);
    assert_eq!(seqs, vec![0, 1, 2]);
}

#[tokio::test]
async fn rebatch_of_nothing_is_nothing() {
    let (sizes, _) = rebatched(0, 4, 4).await;
    assert!(sizes.is_empty());
}

#[tokio::test]
async fn rebatch_after_a_filter_fills_batches_again() {
    let (sink, probe) = probe();
    Pipeline::from(source::iter(0..100u64).batch_size(10))
        .filter(|x| x % 4 == 0) // 25 records, 2 or 3 per batch
        .rebatch(10)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(sizes(&probe), vec![10, 10, 5]);
    assert_eq!(probe.records(), (0..100).step_by(4).collect::<Vec<u64>>());
}

#[tokio::test]
async fn rebatch_drops_held_records_when_the_source_fails() {
    // 5 records arrive, rebatch(4) has passed 4 on and holds 1 when the error comes.
    let (sink, probe) = probe();
    let report = Pipeline::from(dataflare::testkit::failing_source(0..100u64, 5, 5))
        .rebatch(4)
        .to(sink)
        .run_to_report()
        .await;
    assert_eq!(report.error().unwrap().stage(), Some("source"));
    assert_eq!(probe.records(), vec![0, 1, 2, 3]);
    assert!(!probe.is_closed());
}

#[test]
#[should_panic(expected = "rebatch: the batch size must be at least 1")]
fn rebatch_zero_panics() {
    let _ = Pipeline::from(source::iter(0..10)).rebatch(0);
}

#[tokio::test]
async fn take_truncates_mid_batch() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..10u64).batch_size(4))
        .take(6)
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(probe.records(), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(sizes(&probe), vec![4, 2]);
    assert!(probe.is_closed());
    let take = report.stage("take#1").unwrap();
    assert_eq!((take.records_in, take.records_out), (8, 6));
    // The source was read no further than the batch that reached the count.
    assert_eq!(report.records_in(), 8);
    assert_eq!(report.batches_in(), 2);
}

#[tokio::test]
async fn take_at_a_batch_boundary_reads_no_further() {
    let report = Pipeline::from(source::iter(0..100u64).batch_size(5))
        .take(10)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_in(), 10);
    assert_eq!(report.records_out(), 10);
}

#[tokio::test]
async fn take_ends_an_endless_source() {
    let produced = Arc::new(AtomicUsize::new(0));
    let p = produced.clone();
    let endless = (0u64..).inspect(move |_| {
        p.fetch_add(1, SeqCst);
    });
    let out = Collected::new();
    let report = Pipeline::from(source::iter(endless).batch_size(16))
        .map(|x| x * 2)
        .take(40)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();

    assert!(report.is_completed());
    assert_eq!(out.to_vec(), (0..40).map(|x| x * 2).collect::<Vec<u64>>());
    assert!(out.is_closed());
    // Three batches of 16 hold the first 40 records; nothing more was produced.
    assert_eq!(produced.load(SeqCst), 48);
}

#[tokio::test]
async fn take_counts_records_after_a_filter() {
    let out = Collected::new();
    Pipeline::from(source::iter(0u64..).batch_size(7))
        .filter(|x| x % 5 == 0)
        .take(4)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![0, 5, 10, 15]);
}

#[tokio::test]
async fn take_zero_passes_nothing_and_reads_nothing() {
    let (sink, probe) = probe::<u64>();
    let report = Pipeline::from(source::iter(0u64..).batch_size(8))
        .take(0)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert_eq!(probe.record_count(), 0);
    assert!(probe.is_closed());
    // A channel or queue source would lose what it handed over, so none is read.
    assert_eq!(report.records_in(), 0);
}

#[tokio::test]
async fn take_more_than_there_is_passes_everything() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..5u64).batch_size(2))
        .take(1_000)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![0, 1, 2, 3, 4]);
    assert!(report.is_completed());
}

#[tokio::test]
async fn take_then_rebatch() {
    let (sink, probe) = probe();
    Pipeline::from(source::iter(0u64..).batch_size(3))
        .take(10)
        .rebatch(4)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(sizes(&probe), vec![4, 4, 2]);
    assert_eq!(probe.records(), (0..10).collect::<Vec<_>>());
}

// ---- batching policies: bytes and linger ----

/// A source yielding each batch after waiting its delay (on Tokio's clock, so
/// paused in these tests), then ending after `end` more.
fn timed_source(batches: Vec<(u64, Vec<u64>)>, end: u64) -> impl Source<Record = u64> {
    async_stream::stream! {
        for (after_ms, records) in batches {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            yield Ok(Batch::new(records));
        }
        tokio::time::sleep(Duration::from_millis(end)).await;
    }
}

/// Runs `source` through `rebatch(policy)`: each batch out with the time (ms
/// since the start, paused clock) it reached the sink.
async fn arrivals(
    source: impl Source<Record = u64>,
    policy: BatchPolicy<u64>,
) -> Vec<(u64, Vec<u64>)> {
    let start = tokio::time::Instant::now();
    let seen = Collected::new();
    let s = seen.clone();
    let report = Pipeline::from(source)
        .rebatch(policy)
        .to(sink::for_each(move |batch: Batch<u64>| {
            s.push((start.elapsed().as_millis() as u64, batch.into_records()));
            Ok(())
        }))
        .run()
        .await
        .unwrap();
    let stage = report.stage("rebatch#1").unwrap();
    assert_eq!(stage.in_flight(), 0);
    assert_eq!(stage.records_in, stage.records_out);
    seen.to_vec()
}

fn lingering(count: usize, ms: u64) -> BatchPolicy<u64> {
    BatchPolicy::count(count).linger(Duration::from_millis(ms))
}

#[tokio::test(start_paused = true)]
async fn linger_lets_a_partial_batch_go_after_the_linger_not_before() {
    // Two records at 0, then nothing for a second: they leave at 50 ms, not
    // at 0 (too early) nor with the end of the input (too late).
    let got = arrivals(
        timed_source(vec![(0, vec![0, 1]), (1_000, vec![2])], 0),
        lingering(100, 50),
    )
    .await;
    assert_eq!(got, vec![(50, vec![0, 1]), (1_000, vec![2])]);
}

#[tokio::test(start_paused = true)]
async fn linger_runs_from_the_first_record_of_the_batch() {
    let got = arrivals(
        timed_source(
            vec![(0, vec![0]), (30, vec![1]), (30, vec![2]), (140, vec![3])],
            10,
        ),
        lingering(100, 50),
    )
    .await;
    // 0 and 1 leave at 0 + 50 (the record at 30 does not restart the
    // clock); 2, come at 60, at 110; 3, come at 200, with the end at 210.
    assert_eq!(got, vec![(50, vec![0, 1]), (110, vec![2]), (210, vec![3])]);
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_at_once_and_the_rest_lingers_from_its_arrival() {
    let got = arrivals(
        timed_source(vec![(0, vec![0]), (30, vec![1, 2, 3, 4])], 500),
        lingering(3, 50),
    )
    .await;
    // The count fills at 30; 3 and 4 came at 30, so they leave at 80.
    assert_eq!(got, vec![(30, vec![0, 1, 2]), (80, vec![3, 4])]);
}

#[tokio::test(start_paused = true)]
async fn linger_sends_no_empty_batch() {
    let got = arrivals(timed_source(vec![(100, vec![])], 1_000), lingering(10, 50)).await;
    assert!(got.is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_linger_a_partial_batch_waits_for_the_end() {
    let got = arrivals(
        timed_source(vec![(0, vec![0, 1])], 1_000),
        BatchPolicy::count(100),
    )
    .await;
    assert_eq!(got, vec![(1_000, vec![0, 1])]);
}

/// The estimate a byte limit uses: inline size plus heap bytes.
fn bytes_of(s: &String) -> usize {
    std::mem::size_of::<String>() + s.heap_bytes()
}

#[tokio::test]
async fn a_byte_limit_cuts_batches_and_a_big_record_goes_alone() {
    let records: Vec<String> = ["a", "bb", &"x".repeat(200), "c", "dd", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (sink, probe) = probe();
    let limit = 3 * std::mem::size_of::<String>() + 4;
    Pipeline::from(source::iter(records.clone()).batch_size(100))
        .rebatch(BatchPolicy::count(100).bytes(limit))
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.records(), records);
    let batches: Vec<Vec<String>> = probe
        .batches()
        .into_iter()
        .map(|b| b.into_records())
        .collect();
    // "a" + "bb" are within; the 200-byte record is over the limit alone;
    // "c", "dd", "e" (3 x 24 + 4 bytes) fit exactly.
    assert_eq!(sizes(&probe), vec![2, 1, 3]);
    for batch in &batches {
        let bytes: usize = batch.iter().map(bytes_of).sum();
        assert!(
            bytes <= limit || batch.len() == 1,
            "{batch:?}: {bytes} bytes"
        );
    }
}

#[tokio::test]
async fn a_count_of_rebatch_n_is_a_count_policy() {
    let (a, b) = (probe::<u64>(), probe::<u64>());
    for (policy, sink) in [(BatchPolicy::from(4), a.0), (BatchPolicy::count(4), b.0)] {
        Pipeline::from(source::iter(0..10u64).batch_size(3))
            .rebatch(policy)
            .to(sink)
            .run()
            .await
            .unwrap();
    }
    assert_eq!(sizes(&a.1), vec![4, 4, 2]);
    assert_eq!(sizes(&a.1), sizes(&b.1));
}

#[tokio::test]
async fn an_estimate_of_ones_own_limits_bytes() {
    let (sink, probe) = probe();
    Pipeline::from(source::iter(vec![
        vec![0u8; 10],
        vec![0; 10],
        vec![0; 10],
        vec![0; 5],
    ]))
    .rebatch(BatchPolicy::count(100).bytes_with(20, |v: &Vec<u8>| v.len()))
    .to(sink)
    .run()
    .await
    .unwrap();
    assert_eq!(sizes(&probe), vec![2, 2]);
}

#[test]
#[should_panic(expected = "rebatch: the byte limit must be at least 1")]
fn a_byte_limit_of_zero_panics() {
    let _ = BatchPolicy::<String>::count(1).bytes(0);
}

#[test]
#[should_panic(expected = "rebatch: the linger time must not be zero")]
fn a_linger_of_zero_panics() {
    let _ = BatchPolicy::<u64>::count(1).linger(Duration::ZERO);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the input batches and limits: the output, concatenated, is
    /// the input; every batch is within the count and the byte limit (but
    /// for a record over the limit, alone); and every batch but the last is
    /// full, as no record more would have fit.
    #[test]
    fn batches_keep_the_records_and_the_limits(
        input in prop::collection::vec(
            prop::collection::vec("[a-z]{0,60}", 0..12),
            0..12,
        ),
        count in 1..20usize,
        extra in 0..400usize,
    ) {
        let limit = std::mem::size_of::<String>() + extra;
        let expected: Vec<String> = input.iter().flatten().cloned().collect();
        let batches = runtime().block_on(async {
            let (sink, probe) = probe();
            let source = futures::stream::iter(
                input.into_iter().map(|b| Ok(Batch::new(b))).collect::<Vec<_>>(),
            );
            let report = Pipeline::new(source)
                .rebatch(BatchPolicy::count(count).bytes(limit))
                .to(sink)
                .run()
                .await
                .unwrap();
            prop_assert_eq!(report.stage("rebatch#1").unwrap().in_flight(), 0);
            Ok(probe.batches().into_iter().map(|b| b.into_records()).collect::<Vec<Vec<String>>>())
        })?;
        let flat: Vec<String> = batches.iter().flatten().cloned().collect();
        prop_assert_eq!(&flat, &expected);
        for (i, batch) in batches.iter().enumerate() {
            let bytes: usize = batch.iter().map(bytes_of).sum();
            prop_assert!(!batch.is_empty());
            prop_assert!(batch.len() <= count);
            prop_assert!(bytes <= limit || batch.len() == 1, "{} bytes over {}", bytes, limit);
            if let Some(next) = batches.get(i + 1) {
                prop_assert!(
                    batch.len() == count || bytes + bytes_of(&next[0]) > limit,
                    "batch {} could have taken one more", i
                );
            }
        }
    }
}
