//! `map_async` and `map_async_unordered`: order, bounded concurrency, and work
//! in flight that keeps going while downstream is busy.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::testkit::{probe, slow_sink};
use support::{Gauge, sizes};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn map_async_keeps_input_order_when_later_records_finish_first() {
    let finished = Arc::new(Mutex::new(Vec::new()));
    let f = finished.clone();
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..20u64).batch_size(3))
        .map_async(8, move |x| {
            let finished = f.clone();
            async move {
                // Record 0 takes longest, record 19 is quickest.
                tokio::time::sleep(Duration::from_millis(20 - x)).await;
                finished.lock().unwrap().push(x);
                x * 10
            }
        })
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(probe.records(), (0..20).map(|x| x * 10).collect::<Vec<_>>());
    // Output batches have the input's sizes.
    assert_eq!(sizes(&probe), vec![3, 3, 3, 3, 3, 3, 2]);
    // The futures really did finish out of order (else this test proves nothing).
    let finished = finished.lock().unwrap().clone();
    assert_ne!(finished, (0..20).collect::<Vec<_>>());
    assert_eq!(finished.len(), 20);
    let stage = report.stage("map_async#1").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (20, 20));
    assert_eq!((stage.batches_in, stage.batches_out), (7, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_async_keeps_input_order_multi_thread() {
    let out = Collected::new();
    Pipeline::from(source::iter(0..500u64).batch_size(7))
        .map_async(16, |x| async move {
            // Earlier records yield more often, so later ones tend to finish first.
            for _ in 0..(500 - x) % 17 {
                tokio::task::yield_now().await;
            }
            x + 1
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), (1..=500).collect::<Vec<_>>());
}

#[tokio::test]
async fn map_async_orders_by_input_not_by_completion_with_channels() {
    // Each record's future waits for its own signal; the signals are sent in
    // reverse order once all four are in flight.
    let senders = Arc::new(Mutex::new(Vec::new()));
    let s = senders.clone();
    let gauge = Gauge::new();
    let g = gauge.clone();
    let out = Collected::new();
    let run = Pipeline::from(source::iter(0..4u64))
        .map_async(4, move |x| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            s.lock().unwrap().push(tx);
            let running = g.enter();
            async move {
                rx.await.unwrap();
                drop(running);
                x
            }
        })
        .to(sink::collect(&out))
        .run();
    let release = async {
        while senders.lock().unwrap().len() < 4 {
            tokio::task::yield_now().await;
        }
        let senders = std::mem::take(&mut *senders.lock().unwrap());
        for (i, tx) in senders.into_iter().enumerate().rev() {
            if i == 0 {
                // Records 3, 2 and 1 are done, but record 0 holds them back.
                assert!(out.is_empty());
            }
            tx.send(()).unwrap();
            // Wait for the released future to finish before releasing the next.
            while gauge.current() > i {
                tokio::task::yield_now().await;
            }
        }
    };
    let (report, ()) = tokio::join!(run, release);
    report.unwrap();
    assert_eq!(out.to_vec(), vec![0, 1, 2, 3]);
}

async fn at_most_concurrency_in_flight(unordered: bool) {
    const CONCURRENCY: usize = 5;
    let gauge = Gauge::new();
    let g = gauge.clone();
    let f = move |x: u64| {
        let running = g.enter();
        async move {
            tokio::time::sleep(Duration::from_millis(1 + x % 3)).await;
            drop(running);
            x
        }
    };
    let out = Collected::new();
    let pipeline = Pipeline::from(source::iter(0..60u64).batch_size(4));
    let report = if unordered {
        pipeline
            .map_async_unordered(CONCURRENCY, f)
            .to(sink::collect(&out))
            .run()
            .await
    } else {
        pipeline
            .map_async(CONCURRENCY, f)
            .to(sink::collect(&out))
            .run()
            .await
    };
    report.unwrap();
    let mut got = out.to_vec();
    got.sort();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    // Never more than allowed, and the limit was reached (the stage is not
    // running things one at a time).
    assert_eq!(gauge.max(), CONCURRENCY);
    assert_eq!(gauge.current(), 0);
}

#[tokio::test(start_paused = true)]
async fn map_async_runs_at_most_concurrency_futures() {
    at_most_concurrency_in_flight(false).await;
}

#[tokio::test(start_paused = true)]
async fn map_async_unordered_runs_at_most_concurrency_futures() {
    at_most_concurrency_in_flight(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_async_runs_at_most_concurrency_futures_multi_thread() {
    at_most_concurrency_in_flight(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_async_unordered_runs_at_most_concurrency_futures_multi_thread() {
    at_most_concurrency_in_flight(true).await;
}

#[tokio::test(start_paused = true)]
async fn map_async_unordered_yields_results_as_they_finish() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..10u64))
        .map_async_unordered(10, |x| async move {
            tokio::time::sleep(Duration::from_millis(10 - x)).await;
            x
        })
        .to(sink)
        .run()
        .await
        .unwrap();
    // All ten run at once; the quickest (9) finishes first.
    assert_eq!(probe.records(), (0..10).rev().collect::<Vec<_>>());
    assert_eq!(sizes(&probe), vec![10]);
    let stage = report.stage("map_async_unordered#1").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_async_unordered_yields_every_result_in_input_sized_batches() {
    let (sink, probe) = probe();
    Pipeline::from(source::iter(0..1_000u64).batch_size(64))
        .map_async_unordered(7, |x| async move {
            for _ in 0..x % 5 {
                tokio::task::yield_now().await;
            }
            x * 2
        })
        .to(sink)
        .run()
        .await
        .unwrap();
    let mut got = probe.records();
    got.sort();
    assert_eq!(got, (0..1_000).map(|x| x * 2).collect::<Vec<_>>());
    let mut expected_sizes = vec![64; 15];
    expected_sizes.push(40);
    assert_eq!(sizes(&probe), expected_sizes);
}

#[tokio::test]
async fn map_async_of_an_empty_source_completes() {
    let (sink, probe) = probe::<u64>();
    let report = Pipeline::from(source::iter(Vec::<u64>::new()))
        .map_async(3, |x| async move { x })
        .map_async_unordered(3, |x| async move { x })
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert!(probe.is_closed());
    assert_eq!(probe.record_count(), 0);
}

/// The futures-rs issue 2387 scenario: a stream of futures feeding a slow
/// consumer. Where the futures are polled only when the consumer asks for the
/// next item (`StreamExt::buffered`), work in flight stalls while the consumer
/// is busy. Here each future is its own task and finishes on time.
async fn work_in_flight_progresses_while_the_sink_is_busy(unordered: bool) {
    const WORK: Duration = Duration::from_millis(10);
    const WRITE: Duration = Duration::from_millis(100);
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let f = move |x: u64| {
        let times = t.clone();
        let started = Instant::now();
        async move {
            tokio::time::sleep(WORK).await;
            times.lock().unwrap().push((x, started, Instant::now()));
            x
        }
    };
    let (sink, probe) = slow_sink(WRITE);
    let start = Instant::now();
    let pipeline = Pipeline::from(source::iter(0..8u64).batch_size(1));
    if unordered {
        pipeline
            .map_async_unordered(4, f)
            .to(sink)
            .run()
            .await
            .unwrap();
    } else {
        pipeline.map_async(4, f).to(sink).run().await.unwrap();
    }

    // The sink was the bottleneck: 8 writes of 100 ms after the first 10 ms of work.
    assert_eq!(start.elapsed(), WORK + 8 * WRITE);
    let mut got = probe.records();
    got.sort();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 8);
    for &(x, started, finished) in times.iter() {
        // Every future finished 10 ms after it was started, though most started
        // while the sink was in the middle of a 100 ms write; a future polled
        // only between writes would show up to 110 ms here.
        assert_eq!(
            finished - started,
            WORK,
            "record {x} took {:?}",
            finished - started
        );
    }
    // And some of them did run during a write (not all at the start).
    assert!(times.iter().any(|&(_, started, _)| started > start + WORK));
}

#[tokio::test(start_paused = true)]
async fn map_async_work_in_flight_progresses_while_the_sink_is_busy() {
    work_in_flight_progresses_while_the_sink_is_busy(false).await;
}

#[tokio::test(start_paused = true)]
async fn map_async_unordered_work_in_flight_progresses_while_the_sink_is_busy() {
    work_in_flight_progresses_while_the_sink_is_busy(true).await;
}

#[test]
#[should_panic(expected = "map_async: concurrency must be at least 1")]
fn map_async_zero_concurrency_panics() {
    let _ = Pipeline::from(source::iter(0..10)).map_async(0, |x| async move { x });
}

#[test]
#[should_panic(expected = "map_async_unordered: concurrency must be at least 1")]
fn map_async_unordered_zero_concurrency_panics() {
    let _ = Pipeline::from(source::iter(0..10)).map_async_unordered(0, |x| async move { x });
}

/// An upstream error right behind the work in flight reaches the run even
/// while every slot of an async stage holds a future that never finishes: a
/// full stage still takes the next item from upstream (one batch in hand).
#[tokio::test(start_paused = true)]
async fn an_upstream_error_gets_past_async_stages_whose_slots_are_all_stuck() {
    use dataflare::testkit::Script;
    use std::time::Duration;

    let script = || {
        Script::new()
            .batch(vec![1u32, 2])
            .error(Error::msg("disk on fire"))
            .into_source()
    };
    let never = |_: u32| std::future::pending::<u32>();
    // A hang guard only: with paused time, an idle runtime jumps straight to it.
    let guard = Duration::from_secs(3600);

    let report = tokio::time::timeout(
        guard,
        Pipeline::from(script())
            .map_async(2, never)
            .to(sink::discard())
            .run_to_report(),
    )
    .await
    .expect("map_async hung on a full stage");
    assert!(report.error().unwrap().to_string().contains("disk on fire"));

    let report = tokio::time::timeout(
        guard,
        Pipeline::from(script())
            .map_async_unordered(2, never)
            .to(sink::discard())
            .run_to_report(),
    )
    .await
    .expect("map_async_unordered hung on a full stage");
    assert!(report.error().unwrap().to_string().contains("disk on fire"));

    let report = tokio::time::timeout(
        guard,
        Pipeline::from(script())
            .try_map_async(2, |_: &u32| std::future::pending::<Result<u32>>())
            .to(sink::discard())
            .run_to_report(),
    )
    .await
    .expect("try_map_async hung on a full stage");
    assert!(report.error().unwrap().to_string().contains("disk on fire"));
    report.check_accounting().unwrap();
}
