//! How a run ends: `run()` returns only once the sink has everything and is
//! closed; errors and panics end it as `Failed` with the stage to blame, the sink
//! left unclosed; and nothing the run started is still running when it returns.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::testkit::{Script, failing_sink, failing_source, probe, slow_sink};

/// Fails the test instead of hanging it. Under paused time a hung run leaves
/// the runtime idle, the clock jumps ahead and this fires at once.
async fn no_hang<F: Future>(run: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run hung")
}

#[tokio::test(start_paused = true)]
async fn run_returns_after_the_sink_has_every_batch_and_is_closed() {
    let (sink, probe) = slow_sink(Duration::from_millis(5));
    let report = Pipeline::from(source::iter(0..1_000u64).batch_size(32))
        .map(|x| x + 1)
        .buffer(2)
        .filter(|x| x % 2 == 0)
        .buffer(3)
        .to(sink)
        .run()
        .await
        .unwrap();

    // Checked right after `run` returned: no waiting.
    assert!(probe.is_closed());
    assert_eq!(probe.record_count(), 500);
    assert_eq!(probe.batch_count(), 32);
    assert_eq!(report.records_in(), 1_000);
    assert_eq!(report.records_out(), 500);
    assert_eq!(report.batches_out(), 32);
    assert!(report.is_completed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_after_the_sink_is_closed_multi_thread() {
    let (sink, probe) = probe();
    let report = no_hang(
        Pipeline::from(source::iter(0..100_000u64).batch_size(100))
            .buffer(4)
            .map(|x| x * 2)
            .buffer(1)
            .to(sink)
            .run(),
    )
    .await
    .unwrap();
    assert!(probe.is_closed());
    assert_eq!(probe.record_count(), 100_000);
    assert_eq!(report.records_out(), 100_000);
}

#[tokio::test]
async fn an_empty_source_completes_with_the_sink_closed() {
    let (sink, probe) = probe::<u64>();
    let report = Pipeline::from(Script::<u64>::new().into_source())
        .map(|x| x + 1)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert!(probe.is_closed());
    assert_eq!(probe.record_count(), 0);
    assert_eq!(report.records_in(), 0);
    assert_eq!(report.records_out(), 0);
    assert_eq!(report.batches_out(), 0);
}

#[tokio::test]
async fn empty_batches_from_a_source_are_harmless() {
    let source = Script::new()
        .batch(vec![])
        .batch(vec![1u64, 2])
        .batch(vec![])
        .into_source();
    let out = Collected::new();
    let report = Pipeline::from(source)
        .map(|x| x * 2)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![2, 4]);
    assert!(out.is_closed());
    assert_eq!(report.records_out(), 2);
}

async fn source_error_mid_stream(buffered: bool) {
    let (sink, probe) = probe();
    let pipeline = Pipeline::from(failing_source(0..100u64, 10, 25)).map(|x| x * 2);
    let report = if buffered {
        no_hang(pipeline.buffer(2).to(sink).run_to_report()).await
    } else {
        no_hang(pipeline.to(sink).run_to_report()).await
    };

    assert!(report.is_failed());
    let error = report.error().unwrap();
    assert_eq!(error.stage(), Some("source"));
    assert!(error.to_string().contains("failed after 25 records"));
    // What came before the error was delivered; the sink was not closed.
    assert_eq!(probe.records(), (0..25).map(|x| x * 2).collect::<Vec<_>>());
    assert!(!probe.is_closed());
    assert_eq!(report.records_in(), 25);
}

#[tokio::test]
async fn a_source_error_fails_the_run_naming_the_source() {
    source_error_mid_stream(false).await;
}

#[tokio::test]
async fn a_source_error_crosses_a_buffer() {
    source_error_mid_stream(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_error_crosses_a_buffer_multi_thread() {
    source_error_mid_stream(true).await;
}

#[tokio::test]
async fn run_returns_the_error_of_a_failed_run() {
    let error = Pipeline::from(failing_source(0..10u64, 3, 4))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some("source"));
}

async fn sink_error_mid_stream(buffered: bool) {
    let (sink, probe) = failing_sink(25);
    let pipeline = Pipeline::from(source::iter(0u64..).batch_size(10)); // endless
    let report = if buffered {
        no_hang(pipeline.buffer(2).to(sink).run_to_report()).await
    } else {
        no_hang(pipeline.to(sink).run_to_report()).await
    };

    assert!(report.is_failed());
    let error = report.error().unwrap();
    assert_eq!(error.stage(), Some("sink"));
    assert!(!error.is_panic());
    // Two batches of 10 fit under 25; the third failed.
    assert_eq!(probe.records(), (0..20).collect::<Vec<_>>());
    assert!(!probe.is_closed());
}

#[tokio::test]
async fn a_sink_error_fails_the_run_naming_the_sink() {
    sink_error_mid_stream(false).await;
}

#[tokio::test]
async fn a_sink_error_stops_an_endless_source_behind_a_buffer() {
    sink_error_mid_stream(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_error_stops_an_endless_source_behind_a_buffer_multi_thread() {
    sink_error_mid_stream(true).await;
}

fn panics_on_7(x: u64) -> u64 {
    if x == 7 {
        panic!("no sevens");
    }
    x
}

fn assert_panicked_in(report: &Report, stage: &str) {
    assert!(report.is_failed(), "{report}");
    let error = report.error().unwrap();
    assert!(error.is_panic(), "{error}");
    assert_eq!(error.stage(), Some(stage));
    assert!(error.to_string().contains("no sevens"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_map_fails_the_run_naming_the_stage() {
    let (sink, probe) = probe();
    let report = no_hang(
        Pipeline::from(source::iter(0..20u64).batch_size(5))
            .map(panics_on_7)
            .to(sink)
            .run_to_report(),
    )
    .await;
    assert_panicked_in(&report, "map#1");
    // The batch before the one holding 7 went through; the sink was not closed.
    assert_eq!(probe.records(), vec![0, 1, 2, 3, 4]);
    assert!(!probe.is_closed());
}

async fn panic_before_a_buffer() {
    let (sink, probe) = probe();
    let report = no_hang(
        Pipeline::from(source::iter(0..20u64).batch_size(5))
            .filter(|_| true)
            .map(panics_on_7) // runs in the buffer's task
            .buffer(2)
            .map(|x| x + 100)
            .to(sink)
            .run_to_report(),
    )
    .await;
    assert_panicked_in(&report, "map#2");
    assert_eq!(probe.records(), vec![100, 101, 102, 103, 104]);
    assert!(!probe.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_a_buffer_fails_the_run_naming_the_stage() {
    panic_before_a_buffer().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_before_a_buffer_fails_the_run_multi_thread() {
    panic_before_a_buffer().await;
}

async fn panic_in_map_async_future(unordered: bool) {
    let f = |x: u64| async move {
        tokio::task::yield_now().await;
        panics_on_7(x)
    };
    let pipeline = Pipeline::from(source::iter(0..20u64).batch_size(5));
    let (report, stage) = if unordered {
        let report = pipeline
            .map_async_unordered(3, f)
            .to(sink::discard())
            .run_to_report();
        (no_hang(report).await, "map_async_unordered#1")
    } else {
        let report = pipeline.map_async(3, f).to(sink::discard()).run_to_report();
        (no_hang(report).await, "map_async#1")
    };
    assert_panicked_in(&report, stage);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_map_async_future_fails_the_run() {
    panic_in_map_async_future(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_map_async_unordered_future_fails_the_run() {
    panic_in_map_async_future(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_map_async_future_fails_the_run_multi_thread() {
    panic_in_map_async_future(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_map_async_closure_fails_the_run() {
    let report = no_hang(
        Pipeline::from(source::iter(0..20u64))
            .map_async(3, |x| {
                let x = panics_on_7(x);
                async move { x }
            })
            .to(sink::discard())
            .run_to_report(),
    )
    .await;
    assert_panicked_in(&report, "map_async#1");
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_source_fails_the_run_naming_it() {
    for buffered in [false, true] {
        let records = (0..20u64).map(panics_on_7);
        let pipeline = Pipeline::from(source::iter(records).batch_size(5));
        let report = if buffered {
            no_hang(pipeline.buffer(1).to(sink::discard()).run_to_report()).await
        } else {
            no_hang(pipeline.to(sink::discard()).run_to_report()).await
        };
        assert_panicked_in(&report, "source");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_sink_fails_the_run_naming_it() {
    let report = no_hang(
        Pipeline::from(source::iter(0..20u64).batch_size(5))
            .buffer(2)
            .to(sink::for_each(|batch: Batch<u64>| {
                batch.iter().copied().for_each(|x| {
                    panics_on_7(x);
                });
                Ok(())
            }))
            .run_to_report(),
    )
    .await;
    assert_panicked_in(&report, "sink");
}

/// Work that holds `guard` and never finishes.
async fn forever(guard: Arc<()>) -> u64 {
    let _guard = guard;
    std::future::pending().await
}

/// A map_async stage whose first `quick` records finish at once and whose
/// others never do, each holding a clone of `guard`.
fn quick_then_stuck(
    guard: &Arc<()>,
    quick: u64,
) -> impl FnMut(u64) -> futures::future::BoxFuture<'static, u64> + Send + 'static {
    let guard = guard.clone();
    move |x| {
        if x < quick {
            Box::pin(async move { x })
        } else {
            Box::pin(forever(guard.clone()))
        }
    }
}

async fn stuck_futures_are_dropped_when_the_run_fails(unordered: bool) {
    let guard = Arc::new(());
    // Three records, then an error: all three are in flight, stuck, when it comes.
    let source = Script::new()
        .batch(vec![10u64, 11, 12])
        .error(Error::msg("connection reset"))
        .into_source();
    let pipeline = Pipeline::from(source);
    let f = quick_then_stuck(&guard, 0);
    let report = if unordered {
        no_hang(
            pipeline
                .map_async_unordered(8, f)
                .to(sink::discard())
                .run_to_report(),
        )
        .await
    } else {
        no_hang(pipeline.map_async(8, f).to(sink::discard()).run_to_report()).await
    };
    assert_eq!(report.error().unwrap().stage(), Some("source"));
    // The stuck futures (and the closure) were dropped before `run` returned.
    assert_eq!(Arc::strong_count(&guard), 1);
}

#[tokio::test]
async fn stuck_map_async_futures_are_dropped_when_the_run_fails() {
    stuck_futures_are_dropped_when_the_run_fails(false).await;
}

#[tokio::test]
async fn stuck_map_async_unordered_futures_are_dropped_when_the_run_fails() {
    stuck_futures_are_dropped_when_the_run_fails(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_map_async_futures_are_dropped_when_the_run_fails_multi_thread() {
    stuck_futures_are_dropped_when_the_run_fails(false).await;
}

async fn stuck_futures_are_dropped_when_take_ends_the_run(unordered: bool) {
    let guard = Arc::new(());
    let out = Collected::new();
    // Records 0 and 1 finish; 2, 3, ... are started (4 at a time) and never do.
    let pipeline = Pipeline::from(source::iter(0u64..).batch_size(1));
    let f = quick_then_stuck(&guard, 2);
    let report = if unordered {
        no_hang(
            pipeline
                .map_async_unordered(4, f)
                .take(2)
                .to(sink::collect(&out))
                .run(),
        )
        .await
    } else {
        no_hang(
            pipeline
                .map_async(4, f)
                .take(2)
                .to(sink::collect(&out))
                .run(),
        )
        .await
    };
    let report = report.unwrap();
    assert!(report.is_completed());
    let mut got = out.to_vec();
    got.sort();
    assert_eq!(got, vec![0, 1]);
    assert!(out.is_closed());
    assert!(
        report
            .stage("map_async#1")
            .or(report.stage("map_async_unordered#1"))
            .unwrap()
            .records_in
            > 2
    );
    assert_eq!(Arc::strong_count(&guard), 1);
}

#[tokio::test]
async fn stuck_map_async_futures_are_dropped_when_take_ends_the_run() {
    stuck_futures_are_dropped_when_take_ends_the_run(false).await;
}

#[tokio::test]
async fn stuck_map_async_unordered_futures_are_dropped_when_take_ends_the_run() {
    stuck_futures_are_dropped_when_take_ends_the_run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_map_async_futures_are_dropped_when_take_ends_the_run_multi_thread() {
    stuck_futures_are_dropped_when_take_ends_the_run(false).await;
}

/// An endless source whose iterator holds a clone of `guard`.
fn endless_holding(guard: &Arc<()>) -> impl Source<Record = u64> {
    let guard = guard.clone();
    source::iter((0u64..).inspect(move |_| {
        assert!(Arc::strong_count(&guard) > 1);
    }))
    .batch_size(8)
}

async fn buffer_task_is_gone_when_take_ends_the_run() {
    let guard = Arc::new(());
    let out = Collected::new();
    let report = no_hang(
        Pipeline::from(endless_holding(&guard))
            .buffer(2)
            .take(20)
            .to(sink::collect(&out))
            .run(),
    )
    .await
    .unwrap();
    assert!(report.is_completed());
    assert_eq!(out.to_vec(), (0..20).collect::<Vec<_>>());
    // The buffer's task, blocked sending into a full channel, was aborted and
    // its source dropped before `run` returned.
    assert_eq!(Arc::strong_count(&guard), 1);
}

#[tokio::test]
async fn a_buffer_task_is_gone_when_take_ends_the_run() {
    buffer_task_is_gone_when_take_ends_the_run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_task_is_gone_when_take_ends_the_run_multi_thread() {
    buffer_task_is_gone_when_take_ends_the_run().await;
}

async fn buffer_task_is_gone_when_the_run_fails() {
    let guard = Arc::new(());
    let (sink, probe) = failing_sink(30);
    let report = no_hang(
        Pipeline::from(endless_holding(&guard))
            .buffer(2)
            .map(|x| x + 1)
            .buffer(2)
            .to(sink)
            .run_to_report(),
    )
    .await;
    assert_eq!(report.error().unwrap().stage(), Some("sink"));
    assert_eq!(probe.record_count(), 24);
    assert_eq!(Arc::strong_count(&guard), 1);

    let guard = Arc::new(());
    let report = no_hang(
        Pipeline::from(endless_holding(&guard))
            .buffer(2)
            .map(panics_on_7)
            .to(sink::discard())
            .run_to_report(),
    )
    .await;
    assert_panicked_in(&report, "map#2");
    assert_eq!(Arc::strong_count(&guard), 1);
}

#[tokio::test]
async fn a_buffer_task_is_gone_when_the_run_fails() {
    buffer_task_is_gone_when_the_run_fails().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_task_is_gone_when_the_run_fails_multi_thread() {
    buffer_task_is_gone_when_the_run_fails().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_can_be_spawned_as_a_task_of_its_own() {
    let (sink, probe) = probe();
    let run = Pipeline::from(source::iter(0..10_000u64).batch_size(100))
        .map(|x| x + 1)
        .buffer(2)
        .to(sink)
        .run();
    // The run future is `Send + 'static`: it can go to `tokio::spawn`.
    let report = no_hang(tokio::spawn(run)).await.unwrap().unwrap();
    assert!(report.is_completed());
    assert!(probe.is_closed());
    assert_eq!(probe.record_count(), 10_000);
}

/// Sends on its channel when dropped.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

async fn dropping_the_run_future_stops_the_run() {
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let signal = DropSignal(Some(dropped_tx));
    let mut started_tx = Some(started_tx);
    let (sink, probe) = probe();
    let run = Pipeline::from(source::iter(0u64..).batch_size(100)) // endless
        .map(move |x| {
            let _held = &signal;
            if x == 1_000 {
                started_tx.take().map(|tx| tx.send(()));
            }
            x
        })
        .to(sink)
        .run();
    tokio::select! {
        _ = run => panic!("an endless run ended"),
        _ = started => {}
    }
    // The run future is gone: the pipeline (and the closure holding the
    // signal) must be dropped, not left running in the background.
    no_hang(dropped).await.unwrap();
    assert!(
        !probe.is_closed(),
        "an abandoned run must not commit its sink"
    );
}

#[tokio::test]
async fn dropping_the_run_future_stops_the_run_current_thread() {
    dropping_the_run_future_stops_the_run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_stops_the_run_multi_thread() {
    dropping_the_run_future_stops_the_run().await;
}
