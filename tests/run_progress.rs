//! A run's progress: phases, fraction for a file source, the bottleneck named,
//! a subscriber that never reads; pausing and resuming gives the
//! uninterrupted result; tracing spans per stage.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::{Graph, Phase, csv};
use proptest::prelude::*;
use support::runtime;
use tokio::sync::mpsc;

#[tokio::test]
async fn a_file_run_ends_in_its_final_phase_with_every_byte_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    let mut text = String::from("id,name\n");
    for i in 0..5000 {
        text.push_str(&format!("{i},name-{i}\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let run = Pipeline::from(csv::read_records(&path))
        .to(sink::discard())
        .spawn();
    let mut progress = run.progress();
    let report = run.await;
    assert!(report.is_completed());
    let _ = progress.changed().await;
    let last = progress.borrow().clone();
    assert_eq!(last.phase, Phase::Completed);
    assert_eq!(last.bytes_total, Some(text.len() as u64));
    assert_eq!(last.bytes_read, text.len() as u64);
    assert_eq!(last.fraction, Some(1.0));
    assert_eq!(last.records_read, 5000);
    let json = serde_json::to_value(&last).unwrap();
    assert_eq!(json["phase"], "completed");
}

#[tokio::test]
async fn phases_follow_the_handle_and_a_subscriber_that_never_reads_holds_nothing_back() {
    let (tx, rx) = mpsc::channel::<u32>(4);
    let run = Pipeline::from(source::channel(rx))
        .to(sink::discard())
        .spawn();
    let _never_read = run.progress();
    let mut progress = run.progress();
    tx.send(1).await.unwrap();
    progress
        .wait_for(|p| p.phase == Phase::Running)
        .await
        .unwrap();
    run.pause();
    progress
        .wait_for(|p| p.phase == Phase::Paused)
        .await
        .unwrap();
    run.resume();
    progress
        .wait_for(|p| p.phase == Phase::Running)
        .await
        .unwrap();
    for i in 0..1000 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let report = run.await;
    assert_eq!(report.records_in(), 1001);
}

#[test]
fn a_stage_burning_cpu_behind_a_buffer_is_named_the_bottleneck() {
    // Real time: assert the ranking, not durations.
    let report = runtime().block_on(
        Pipeline::from(source::iter(0..400u64).batch_size(4))
            .map(|n| {
                let start = std::time::Instant::now();
                while start.elapsed() < Duration::from_micros(500) {
                    std::hint::spin_loop();
                }
                n
            })
            .name("crunch")
            .buffer(2)
            .to(sink::discard())
            .run(),
    );
    let report = report.unwrap();
    let bottleneck = report.bottleneck().expect("a bottleneck");
    assert!(bottleneck.contains("\"crunch\""), "{bottleneck}\n{report}");
    assert!(
        report.to_string().contains("bottleneck: stage \"crunch\""),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_sink_makes_the_run_sink_bound() {
    let (slow, _probe) = dataflare::testkit::slow_sink(Duration::from_millis(10));
    let report = Pipeline::from(source::iter(0..1000u64).batch_size(10))
        .to(slow)
        .run()
        .await
        .unwrap();
    let bottleneck = report.bottleneck().expect("a bottleneck");
    assert!(
        bottleneck.starts_with("sink-bound"),
        "{bottleneck}\n{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_run_is_throttle_bound_not_source_bound() {
    let report = Pipeline::from(source::iter(0..1000u64).batch_size(10))
        .throttle(Rate::records(100))
        .name("pace")
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let bottleneck = report.bottleneck().expect("a bottleneck");
    assert!(
        bottleneck.starts_with("throttle-bound: \"pace\""),
        "{bottleneck}\n{report}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn pausing_and_resuming_gives_the_uninterrupted_result(
        records in proptest::collection::vec(0..1000u32, 0..300),
        pauses in proptest::collection::vec(0..300usize, 0..5),
    ) {
        let got = runtime().block_on(async {
            let (tx, rx) = mpsc::channel::<u32>(8);
            let out = Collected::new();
            let run = Pipeline::from(source::channel(rx))
                .map(|n| n * 2)
                .buffer(2)
                .filter(|n| n % 3 != 0)
                .to(sink::collect(&out))
                .spawn();
            for (i, r) in records.iter().enumerate() {
                if pauses.contains(&i) {
                    run.pause();
                    tokio::task::yield_now().await;
                    run.resume();
                }
                tx.send(*r).await.unwrap();
            }
            drop(tx);
            let report = run.await;
            assert!(report.is_completed());
            report.check_accounting().unwrap();
            out.to_vec()
        });
        let want: Vec<u32> = records.iter().map(|n| n * 2).filter(|n| n % 3 != 0).collect();
        prop_assert_eq!(got, want);
    }
}

/// Counts entries into spans named `stage`, by the stage's name field.
#[derive(Default, Clone)]
struct SpanCounter {
    stage_entries: Arc<AtomicU64>,
    ids: Arc<AtomicU64>,
}

impl tracing::Subscriber for SpanCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.ids.fetch_add(1, SeqCst) + 1;
        // Stage spans get odd ids, others even: entries are told apart by id.
        let id = if attrs.metadata().name() == "stage" {
            id * 2 + 1
        } else {
            id * 2
        };
        tracing::span::Id::from_u64(id)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, span: &tracing::span::Id) {
        if span.into_u64() % 2 == 1 {
            self.stage_entries.fetch_add(1, SeqCst);
        }
    }
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn each_stage_enters_its_span_per_batch_not_per_record() {
    let counter = SpanCounter::default();
    let entries = counter.stage_entries.clone();
    let _guard = tracing::subscriber::set_default(counter);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(
        Pipeline::from(source::iter(0..1000u32).batch_size(100))
            .map(|n| n + 1)
            .to(sink::discard())
            .run(),
    )
    .unwrap();
    let n = entries.load(SeqCst);
    // Source and fused pass, once per batch (10 batches, plus the source's
    // last poll): far fewer than one per record.
    assert!((20..=40).contains(&n), "{n} stage span entries");
}

/// A run whose input has nothing ready shows every record it has moved so far,
/// at every stage: stages count each batch locally and publish when they
/// wait (and every 10 ms of work), so a snapshot of a waiting run is exact.
#[tokio::test(start_paused = true)]
async fn a_waiting_run_shows_every_record_it_has_moved() {
    let (tx, rx) = mpsc::channel::<u32>(16);
    let out = Collected::new();
    let run = Graph::from(
        Pipeline::from(source::channel(rx))
            .map(|x| x * 2)
            .filter(|x| *x > 2)
            .to(sink::collect(&out)),
    )
    .progress_every(Duration::from_millis(10))
    .spawn();
    let mut progress = run.progress();
    for x in 1..=5 {
        tx.send(x).await.unwrap();
    }
    // The run takes the five records and waits for more.
    while out.to_vec().len() < 4 {
        tokio::task::yield_now().await;
    }
    // The next snapshot, taken while the run waits.
    tokio::time::advance(Duration::from_millis(10)).await;
    progress.changed().await.unwrap();
    let seen = progress.borrow().clone();
    assert_eq!(seen.records_read, 5);
    let stage = |kind: &str| seen.stages.iter().find(|s| s.kind == kind).unwrap().clone();
    assert_eq!(stage("map").records_in, 5);
    assert_eq!(
        (stage("filter").records_out, stage("filter").filtered),
        (4, 1)
    );
    assert_eq!(stage("sink").records_in, 4);
    drop(tx);
    run.await.check_accounting().unwrap();
}
