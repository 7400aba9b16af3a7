//! `buffer_with(n, Overflow::..)`: what a full boundary does. `Block` waits
//! (and keeps everything); `DropNewest` and `DropOldest` drop whole batches,
//! counted as the buffer's `dropped`, and keep the survivors in order.

mod support;

use std::sync::Arc;
use std::time::Duration;

use dataflare::ops::Overflow;
use dataflare::prelude::*;
use dataflare::testkit::{Script, slow_sink};
use futures::StreamExt;
use tokio::sync::{Semaphore, oneshot};

const BATCHES: u64 = 100;
const PER_BATCH: u64 = 3;
const CAPACITY: usize = 2;

/// Batch `i` holds `PER_BATCH` records, `i * PER_BATCH ..`.
fn batch(i: u64) -> Vec<u64> {
    (i * PER_BATCH..(i + 1) * PER_BATCH).collect()
}

/// `BATCHES` batches, all at once, into a buffer whose sink is stuck on its
/// first batch until the source has been read to its end: the channel must
/// overflow. Returns the numbers of the batches the sink received, and the
/// report.
async fn overflowing(overflow: Overflow) -> (Vec<u64>, Report) {
    let (exhausted_tx, exhausted) = oneshot::channel::<()>();
    let source = futures::stream::iter((0..BATCHES).map(|i| Ok(Batch::new(batch(i))))).chain(
        futures::stream::once(async move {
            // Polled past the last batch: every batch was given or dropped.
            let _ = exhausted_tx.send(());
            None
        })
        .filter_map(|end| async move { end }),
    );
    let gate = Arc::new(Semaphore::new(0));
    let seen = Collected::new();
    let (g, s) = (gate.clone(), seen.clone());
    let run = tokio::spawn(
        Pipeline::new(source)
            .buffer_with(CAPACITY, overflow)
            .name("lossy")
            .to(sink::for_each_async(move |batch: Batch<u64>| {
                assert_eq!(batch.len() as u64, PER_BATCH, "a batch was cut");
                s.push(batch[0] / PER_BATCH);
                let gate = g.clone();
                async move {
                    // Closed: every wait ends at once.
                    let _ = gate.acquire().await;
                    Ok(())
                }
            }))
            .run(),
    );
    exhausted.await.unwrap();
    gate.close();
    let report = run.await.unwrap().unwrap();
    let seen = seen.to_vec();
    check_accounting(&report, seen.len() as u64);
    (seen, report)
}

/// Every stage balances; the buffer took in every record, and what it did
/// not pass on it dropped, whole batches at a time.
fn check_accounting(report: &Report, batches_out: u64) {
    for stage in report.stages() {
        assert_eq!(stage.in_flight(), 0, "{stage:?}");
    }
    let lossy = report.stage("lossy").unwrap();
    assert_eq!(lossy.records_in, BATCHES * PER_BATCH);
    assert_eq!(lossy.records_in, lossy.records_out + lossy.dropped);
    assert_eq!(lossy.records_out, batches_out * PER_BATCH);
    assert_eq!(lossy.dropped % PER_BATCH, 0);
    assert!(lossy.dropped > 0, "nothing was dropped");
    assert_eq!(report.records_out(), lossy.records_out);
}

fn assert_in_order(seen: &[u64]) {
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seen:?}"
    );
}

async fn drop_newest_keeps_what_was_queued() {
    let (seen, _) = overflowing(Overflow::DropNewest).await;
    assert_in_order(&seen);
    // The first batch found room; the last found the channel full.
    assert_eq!(seen.first(), Some(&0));
    assert!(!seen.contains(&(BATCHES - 1)), "{seen:?}");
}

async fn drop_oldest_keeps_the_freshest() {
    let (seen, _) = overflowing(Overflow::DropOldest).await;
    assert_in_order(&seen);
    // What the channel held when the source ended: the last batches.
    let last: Vec<u64> = (BATCHES - CAPACITY as u64..BATCHES).collect();
    assert!(seen.ends_with(&last), "{seen:?}");
}

#[tokio::test]
async fn drop_newest_drops_arrivals_and_counts_them() {
    drop_newest_keeps_what_was_queued().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_drops_arrivals_and_counts_them_multi_thread() {
    drop_newest_keeps_what_was_queued().await;
}

#[tokio::test]
async fn drop_oldest_drops_the_queue_head_and_counts_it() {
    drop_oldest_keeps_the_freshest().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_drops_the_queue_head_and_counts_it_multi_thread() {
    drop_oldest_keeps_the_freshest().await;
}

#[tokio::test(start_paused = true)]
async fn block_keeps_everything() {
    let (sink, probe) = slow_sink(Duration::from_millis(10));
    let report =
        Pipeline::from(source::iter(0..BATCHES * PER_BATCH).batch_size(PER_BATCH as usize))
            .buffer_with(CAPACITY, Overflow::Block)
            .name("lossless")
            .to(sink)
            .run()
            .await
            .unwrap();
    assert_eq!(
        probe.records(),
        (0..BATCHES * PER_BATCH).collect::<Vec<_>>()
    );
    let stage = report.stage("lossless").unwrap();
    assert_eq!(stage.dropped, 0);
    assert_eq!(stage.records_out, BATCHES * PER_BATCH);
    // It waited for room instead.
    assert!(stage.blocked > Duration::ZERO);
    assert_eq!(Overflow::default(), Overflow::Block);
}

/// 20 batches, then an error.
fn failing_feed() -> dataflare::testkit::Scripted<u64> {
    let mut script = Script::new();
    for i in 0..20 {
        script = script.batch(batch(i));
    }
    script.error(Error::msg("feed lost")).into_source()
}

#[tokio::test(start_paused = true)]
async fn a_dropping_buffer_never_drops_an_error() {
    for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
        let (sink, probe) = slow_sink(Duration::from_millis(10));
        let report = Pipeline::from(failing_feed())
            .buffer_with(1, overflow)
            .name("lossy")
            .to(sink)
            .run_to_report()
            .await;
        assert!(report.is_failed(), "{overflow:?}");
        let error = report.error().unwrap();
        assert!(error.to_string().contains("feed lost"), "{error}");
        assert_eq!(error.stage(), Some("source"));
        // Batches were dropped on the way, the error was not.
        let lossy = report.stage("lossy").unwrap();
        assert!(lossy.dropped > 0, "{overflow:?}");
        assert!((probe.record_count() as u64) < 20 * PER_BATCH);
    }
}

#[test]
#[should_panic(expected = "buffer: the capacity must be at least 1 batch")]
fn a_capacity_of_zero_panics() {
    let _ = Pipeline::from(source::iter(0..10)).buffer_with(0, Overflow::DropOldest);
}
