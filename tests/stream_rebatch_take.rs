//! `rebatch` (regrouping records into batches of a set size) and `take`
//! (ending the stream after N records).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use dataflare::prelude::*;
use dataflare::testkit::probe;
use support::sizes;

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
