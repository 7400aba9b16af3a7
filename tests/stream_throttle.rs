//! `throttle(rate)`: a token bucket on Tokio's clock (paused here, so the
//! times are exact). Nothing is dropped; the stages before it wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use dataflare::ops::Rate;
use dataflare::prelude::*;

/// Runs `source` through `throttle(rate)`: the time (ms since the start)
/// each batch reached the sink, with its length.
async fn paced(source: impl Source<Record = u64>, rate: Rate) -> Vec<(u64, usize)> {
    let start = tokio::time::Instant::now();
    let seen = Collected::new();
    let s = seen.clone();
    let report = Pipeline::from(source)
        .throttle(rate)
        .to(sink::for_each(move |batch: Batch<u64>| {
            s.push((start.elapsed().as_millis() as u64, batch.len()));
            Ok(())
        }))
        .run()
        .await
        .unwrap();
    let stage = report.stage("throttle#1").unwrap();
    assert_eq!(stage.in_flight(), 0);
    assert_eq!(stage.records_in, stage.records_out);
    seen.to_vec()
}

fn times(seen: &[(u64, usize)]) -> Vec<u64> {
    seen.iter().map(|&(t, _)| t).collect()
}

#[tokio::test(start_paused = true)]
async fn n_records_take_n_over_the_rate() {
    // 10,000 records at 1,000 a second with a burst of 100: the first batch
    // at once, then one batch of 100 every 100 ms.
    let seen = paced(
        source::iter(0..10_000u64).batch_size(100),
        Rate::records(1_000).burst(100),
    )
    .await;
    assert_eq!(seen.iter().map(|&(_, n)| n).sum::<usize>(), 10_000);
    assert_eq!(times(&seen), (0..100).map(|i| i * 100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn the_time_held_back_counts_as_blocked() {
    let report = Pipeline::from(source::iter(0..30u64).batch_size(10))
        .throttle(Rate::records(10).burst(10))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    // The 2nd and 3rd batches waited a second each.
    assert_eq!(
        report.stage("throttle#1").unwrap().blocked,
        Duration::from_secs(2)
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_burst_is_one_period_of_the_rate() {
    let start = tokio::time::Instant::now();
    let seen = paced(
        source::iter(0..3_000u64).batch_size(10),
        Rate::records(1_000),
    )
    .await;
    assert_eq!(seen.len(), 300);
    // 1,000 at once, the other 2,000 at 1,000 a second.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn batches_per_second_count_batches_whatever_their_size() {
    let batches = (0..50u64).map(|i| Ok(Batch::new(vec![i; 1 + (i as usize % 7) * 100])));
    let seen = paced(
        futures::stream::iter(batches.collect::<Vec<_>>()),
        Rate::batches(10).burst(10),
    )
    .await;
    // 10 at once, then 10 a second: the 50th at 4 s.
    let expected: Vec<u64> = (0..50)
        .map(|i| if i < 10 { 0 } else { (i - 9) * 100 })
        .collect();
    assert_eq!(times(&seen), expected);
}

/// A source yielding each batch after waiting its delay (paused clock).
fn timed_source(batches: Vec<(u64, Vec<u64>)>) -> impl Source<Record = u64> {
    async_stream::stream! {
        for (after_ms, records) in batches {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            yield Ok(Batch::new(records));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_spell_refills_the_bucket_up_to_the_burst_only() {
    let b = || vec![0u64; 100];
    let seen = paced(
        timed_source(vec![
            (0, b()),
            (0, b()),
            (0, b()),
            (0, b()),
            (0, b()),
            // Asked for when the 5th has gone (at 2 s): comes at 12 s.
            (10_000, b()),
            (0, b()),
            (0, b()),
            (0, b()),
            (0, b()),
        ]),
        Rate::records(100).burst(300),
    )
    .await;
    // A burst of 3 batches, then one a second; 10 s of quiet fill the bucket
    // to 300 records, not to 1,000.
    assert_eq!(
        times(&seen),
        vec![
            0, 0, 0, 1_000, 2_000, 12_000, 12_000, 12_000, 13_000, 14_000
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_larger_than_the_burst_waits_for_a_full_bucket_not_for_ever() {
    // Batches of 50 with a burst of 10: each goes when the bucket is full,
    // the debt of 40 paid by waiting before the next: 100 records a second
    // on average.
    let seen = paced(
        source::iter(0..200u64).batch_size(50),
        Rate::records(100).burst(10),
    )
    .await;
    assert_eq!(
        seen.iter().map(|&(_, n)| n).collect::<Vec<_>>(),
        vec![50; 4]
    );
    assert_eq!(times(&seen), vec![0, 500, 1_000, 1_500]);
}

#[tokio::test(start_paused = true)]
async fn a_rate_per_minute() {
    let seen = paced(
        source::iter(0..4u64).batch_size(1),
        Rate::batches(2).per(Duration::from_secs(60)).burst(1),
    )
    .await;
    assert_eq!(times(&seen), vec![0, 30_000, 60_000, 90_000]);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_throttle_holds_its_source_back() {
    // The source counts what it has produced; the sink notes how far ahead
    // the source was each time a batch arrived.
    let produced = Arc::new(AtomicUsize::new(0));
    let p = produced.clone();
    let records = (0..20u64).inspect(move |_| {
        p.fetch_add(1, SeqCst);
    });
    let ahead = Collected::new();
    let (a, p) = (ahead.clone(), produced.clone());
    let received = Arc::new(AtomicUsize::new(0));
    let r = received.clone();
    let start = tokio::time::Instant::now();
    let report = Pipeline::from(source::iter(records).batch_size(1))
        .map(|x| x + 1)
        .throttle(Rate::batches(10).burst(1))
        .to(sink::for_each(move |batch: Batch<u64>| {
            let received = r.fetch_add(batch.len(), SeqCst) + batch.len();
            a.push(p.load(SeqCst) - received);
            Ok(())
        }))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 20);
    assert_eq!(received.load(SeqCst), 20);
    assert_eq!(start.elapsed(), Duration::from_millis(1_900));
    // At most the batch the throttle holds and one the source has made
    // ahead; reading on while waiting would put it up to 19 ahead.
    let most = ahead.to_vec().into_iter().max().unwrap();
    assert!(most <= 2, "the source got {most} records ahead");
}

#[tokio::test(start_paused = true)]
async fn a_throttle_passes_errors_on_at_once() {
    let source = dataflare::testkit::failing_source(0..100u64, 10, 30);
    let start = tokio::time::Instant::now();
    let report = Pipeline::from(source)
        .throttle(Rate::records(10).burst(10))
        .to(sink::discard())
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(report.error().unwrap().stage(), Some("source"));
    // Three batches of 10: at 0, 1 s and 2 s; the error right after.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    for stage in report.stages() {
        assert_eq!(stage.in_flight(), 0, "{stage:?}");
    }
}

#[test]
#[should_panic(expected = "throttle: the rate must be at least 1")]
fn a_rate_of_zero_panics() {
    let _ = Rate::records(0);
}

#[test]
#[should_panic(expected = "throttle: the burst must be at least 1")]
fn a_burst_of_zero_panics() {
    let _ = Rate::batches(5).burst(0);
}

#[test]
#[should_panic(expected = "throttle: the period must not be zero")]
fn a_period_of_zero_panics() {
    let _ = Rate::batches(5).per(Duration::ZERO);
}
