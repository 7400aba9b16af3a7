//! `buffer(n)`: the async boundary. Order is kept, upstream runs in its own task,
//! and a slow downstream holds a fast upstream back (bounded memory).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::testkit::{probe, slow_sink};
use support::{sizes, yielding_sink};

async fn order_is_kept() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..10_000u64).batch_size(100))
        .map(|x| x * 2)
        .buffer(3)
        .filter(|x| x % 3 != 0)
        .buffer(1)
        .map(|x| x + 1)
        .to(sink)
        .run()
        .await
        .unwrap();

    let expected: Vec<u64> = (0..10_000u64)
        .map(|x| x * 2)
        .filter(|x| x % 3 != 0)
        .map(|x| x + 1)
        .collect();
    assert_eq!(probe.records(), expected);
    assert!(probe.is_closed());
    let seqs: Vec<u64> = probe.batches().iter().map(|b| b.seq()).collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
    let buffer = report.stage("buffer#2").unwrap();
    assert_eq!(buffer.records_in, 10_000);
    assert_eq!(buffer.records_out, 10_000);
    assert_eq!(buffer.batches_out, 100);
    assert_eq!(
        report.stage("buffer#4").unwrap().records_in,
        expected.len() as u64
    );
    assert_eq!(report.records_out(), expected.len() as u64);
}

#[tokio::test]
async fn order_is_kept_through_buffers() {
    order_is_kept().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_is_kept_through_buffers_multi_thread() {
    order_is_kept().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_of_a_buffer_runs_in_another_task() {
    let main = std::thread::current().id();
    let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let t = threads.clone();
    Pipeline::from(source::iter(0..64u64).batch_size(8))
        .inspect(move |_| {
            t.lock().unwrap().insert(std::thread::current().id());
        })
        .buffer(2)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    // The test body runs on the test's own thread, outside the two workers: the
    // stage before the buffer was run by a worker.
    let threads = threads.lock().unwrap();
    assert!(!threads.is_empty());
    assert!(!threads.contains(&main));
}

/// A source of `n` records whose iterator records, each time it produces one,
/// how far it has got ahead of what the sink has been handed; returns the most.
fn measured_source(
    n: u64,
    batch_size: usize,
    received: impl Fn() -> usize + Send + 'static,
) -> (impl Source<Record = u64>, Arc<AtomicUsize>) {
    let produced = AtomicUsize::new(0);
    let max_ahead = Arc::new(AtomicUsize::new(0));
    let max = max_ahead.clone();
    let records = (0..n).inspect(move |_| {
        let produced = produced.fetch_add(1, SeqCst) + 1;
        // `received` is read after `produced` moved on and only grows, so this
        // never overstates how far ahead the producer is.
        let ahead = produced.saturating_sub(received());
        max.fetch_max(ahead, SeqCst);
    });
    (source::iter(records).batch_size(batch_size), max_ahead)
}

const BATCH: usize = 10;
const CAPACITY: usize = 2;
/// How many batches the producer can hold beyond those the sink has been handed:
/// - `CAPACITY` batches waiting in the buffer's channel,
/// - 1 batch in the producer task's hand, waiting for room in the channel,
/// - 1 batch in the run loop's hand, taken from the channel and waiting for the
///   sink to be ready.
///
/// An unbounded edge, or a producer that did not wait for room, would let the
/// whole source (50 batches) run ahead of the slow sink.
const MAX_BATCHES_AHEAD: usize = CAPACITY + 2;

#[tokio::test(start_paused = true)]
async fn buffer_holds_a_fast_source_back_to_a_slow_sink() {
    let (sink, probe) = slow_sink(Duration::from_millis(10));
    let p = probe.clone();
    let (source, max_ahead) = measured_source(500, BATCH, move || p.record_count());
    let start = tokio::time::Instant::now();
    let report = Pipeline::from(source)
        .map(|x| x + 1)
        .buffer(CAPACITY)
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(probe.records(), (1..=500).collect::<Vec<u64>>());
    assert!(probe.is_closed());
    assert_eq!(report.records_out(), 500);
    // The sink took 10 ms a batch, and was the bottleneck: 50 batches, 500 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    let max_ahead = max_ahead.load(SeqCst);
    assert!(
        max_ahead <= MAX_BATCHES_AHEAD * BATCH,
        "the source got {max_ahead} records ahead of the sink"
    );
    // And the buffer does let the source work ahead: the channel filled up.
    assert!(
        max_ahead > CAPACITY * BATCH,
        "the source was only {max_ahead} records ahead"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_holds_a_fast_source_back_multi_thread() {
    let (sink, received) = yielding_sink::<u64>(50);
    let r = received.clone();
    let (source, max_ahead) = measured_source(2_000, BATCH, move || r.load(SeqCst));
    let report = Pipeline::from(source)
        .buffer(CAPACITY)
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(received.load(SeqCst), 2_000);
    assert_eq!(report.records_out(), 2_000);
    let max_ahead = max_ahead.load(SeqCst);
    assert!(
        max_ahead <= MAX_BATCHES_AHEAD * BATCH,
        "the source got {max_ahead} records ahead of the sink"
    );
}

/// A bursty source: 4 batches at once, then a 40 ms pause (a slow page of an
/// API, a file being rotated) before a last batch.
fn bursty_source() -> impl Source<Record = u64> {
    async_stream::stream! {
        for i in 0..4u64 {
            yield Ok(Batch::new(vec![i]));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        yield Ok(Batch::new(vec![4]));
    }
}

#[tokio::test(start_paused = true)]
async fn a_buffer_lets_the_source_work_while_the_sink_is_busy() {
    let (sink, probe) = slow_sink(Duration::from_millis(10));
    let start = tokio::time::Instant::now();
    Pipeline::from(bursty_source())
        .buffer(4)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.records(), vec![0, 1, 2, 3, 4]);
    // The source's task queues the burst and starts its pause at once, while
    // the sink writes the burst (4 x 10 ms): the last batch is there at 40 ms,
    // written by 50 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn without_a_buffer_the_source_waits_for_the_sink() {
    // The control for the test above: the same source and sink, in one task.
    let (sink, probe) = slow_sink(Duration::from_millis(10));
    let start = tokio::time::Instant::now();
    Pipeline::from(bursty_source())
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.records(), vec![0, 1, 2, 3, 4]);
    // The run loop reads one batch ahead of the sink, so the pause starts only
    // once the sink took the 4th batch (30 ms): 30 + 40 + 10 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(80));
}

#[tokio::test]
async fn buffer_keeps_batch_sizes() {
    let (sink, probe) = probe();
    Pipeline::from(source::iter(0..25u64).batch_size(10))
        .buffer(1)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(sizes(&probe), vec![10, 10, 5]);
}

#[tokio::test]
async fn buffer_of_an_empty_source_completes() {
    let (sink, probe) = probe::<u64>();
    let report = Pipeline::from(source::iter(Vec::<u64>::new()))
        .buffer(4)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert!(probe.is_closed());
    assert_eq!(probe.record_count(), 0);
}

#[test]
#[should_panic(expected = "buffer: the capacity must be at least 1 batch")]
fn buffer_zero_panics() {
    let _ = Pipeline::from(source::iter(0..10)).buffer(0);
}

/// Records sent one at a time, each awaited at the sink before the next is
/// sent: a buffer must pass a trickle on at once, not wait to fill up.
async fn a_trickle_crosses_a_buffer_record_by_record() {
    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<u64>(16);
    let run = tokio::spawn(
        Pipeline::from(source::channel(rx))
            .buffer(8)
            .map(|x| x * 10)
            .buffer(8)
            .to(sink::channel(seen_tx))
            .run(),
    );
    for x in 0..5u64 {
        tx.send(x).await.unwrap();
        // Would wait for ever if either buffer held the record back.
        let next = tokio::time::timeout(Duration::from_secs(30), seen.recv());
        assert_eq!(
            next.await.expect("a buffer held a record back"),
            Some(x * 10)
        );
    }
    drop(tx);
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.records_out(), 5);
    assert_eq!(seen.recv().await, None);
}

#[tokio::test]
async fn a_trickle_crosses_a_buffer_record_by_record_current_thread() {
    a_trickle_crosses_a_buffer_record_by_record().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_crosses_a_buffer_record_by_record_multi_thread() {
    a_trickle_crosses_a_buffer_record_by_record().await;
}
