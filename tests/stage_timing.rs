//! Where a run's tasks wait, per stage: `waiting` (for input), `blocked` (for
//! room downstream) and `queue_depth` (batches queued at a boundary). Under
//! paused tokio time, so the durations are virtual and deterministic.

use std::time::Duration;

use dataflare::StageStats;
use dataflare::prelude::*;
use dataflare::testkit::{probe, slow_sink};

const WRITE: Duration = Duration::from_millis(100);

/// The one stage of `kind` in the report.
fn stage<'a>(report: &'a Report, kind: &str) -> &'a StageStats {
    let mut of_kind = report.stages().iter().filter(|s| s.kind == kind);
    let stage = of_kind.next().unwrap_or_else(|| panic!("no {kind} stage"));
    assert!(of_kind.next().is_none(), "more than one {kind} stage");
    stage
}

#[tokio::test(start_paused = true)]
async fn a_slow_sink_blocks_the_task_feeding_it_through_a_buffer() {
    let (sink, probe) = slow_sink(WRITE);
    let report = Pipeline::from(source::iter(0..100u32).batch_size(10))
        .buffer(2)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.record_count(), 100);
    report.check_accounting().unwrap();

    // Ten writes of 100 ms: the upstream of the buffer fills it, then waits
    // for room for all but the first few batches.
    let buffer = stage(&report, "buffer");
    assert!(
        buffer.blocked >= 5 * WRITE,
        "buffer blocked {:?}",
        buffer.blocked
    );
    assert!(
        buffer.waiting < WRITE,
        "buffer waiting {:?}",
        buffer.waiting
    );
    // The sink's own task waits on the sink, not on its input.
    let sink = stage(&report, "sink");
    assert!(sink.blocked >= 8 * WRITE, "sink blocked {:?}", sink.blocked);
    assert!(sink.waiting < WRITE, "sink waiting {:?}", sink.waiting);
}

#[tokio::test(start_paused = true)]
async fn an_always_ready_sink_never_blocks() {
    let (sink, _probe) = probe();
    let report = Pipeline::from(source::iter(0..10_000u32).batch_size(100))
        .buffer(2)
        .to(sink)
        .run()
        .await
        .unwrap();
    report.check_accounting().unwrap();
    assert_eq!(stage(&report, "sink").blocked, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_slow_source_shows_as_waiting_on_the_sink_stage() {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for i in 0..5u32 {
            tokio::time::sleep(WRITE).await;
            tx.send(i).await.unwrap();
        }
    });
    let (sink, probe) = probe();
    let report = Pipeline::from(source::channel(rx))
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.record_count(), 5);
    report.check_accounting().unwrap();
    let sink = stage(&report, "sink");
    // 500 ms of virtual time, all of it waiting for the next record.
    assert!(sink.waiting >= 4 * WRITE, "sink waiting {:?}", sink.waiting);
    assert!(sink.waiting <= 5 * WRITE, "{:?}", sink.waiting);
    assert_eq!(sink.blocked, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_slow_source_through_a_buffer_shows_as_waiting_on_the_buffer() {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for i in 0..5u32 {
            tokio::time::sleep(WRITE).await;
            tx.send(i).await.unwrap();
        }
    });
    let report = Pipeline::from(source::channel(rx))
        .buffer(4)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    report.check_accounting().unwrap();
    let buffer = stage(&report, "buffer");
    assert!(buffer.waiting >= 4 * WRITE, "{:?}", buffer.waiting);
    assert_eq!(buffer.blocked, Duration::ZERO);
    // Drained at the end.
    assert_eq!(buffer.queue_depth, 0);
}

#[tokio::test(start_paused = true)]
async fn a_buffer_in_front_of_a_slow_sink_fills_to_its_capacity() {
    let (sink, _probe) = slow_sink(WRITE);
    // Cancelled while the sink writes its fourth batch: the gauge is what
    // was queued then.
    let report = Pipeline::from(source::iter(0..1_000u32).batch_size(10))
        .buffer(2)
        .to(sink)
        .run_until(tokio::time::sleep(WRITE * 7 / 2))
        .await;
    assert!(report.is_cancelled());
    report.check_accounting().unwrap();
    let buffer = stage(&report, "buffer");
    assert_eq!(buffer.queue_depth, 2);
    assert!(buffer.blocked >= 2 * WRITE, "{:?}", buffer.blocked);
}

#[tokio::test(start_paused = true)]
async fn a_slow_branch_blocks_its_fan_out() {
    let (slow, slow_probe) = slow_sink(WRITE);
    let (fast, fast_probe) = probe();
    let [a, b] = Pipeline::from(source::iter(0..100u32).batch_size(10)).tee();
    let report = a.to(slow).and(b.to(fast)).run().await.unwrap();
    assert_eq!(slow_probe.record_count(), 100);
    assert_eq!(fast_probe.record_count(), 100);
    report.check_accounting().unwrap();
    let tee = stage(&report, "tee");
    // Ten batches, four fit in the slow branch's channel: the tee waits for
    // room for the rest.
    assert!(tee.blocked >= 4 * WRITE, "tee blocked {:?}", tee.blocked);
    assert!(tee.waiting < WRITE, "tee waiting {:?}", tee.waiting);
    assert_eq!(tee.queue_depth, 0, "both channels drained by the end");
}

/// Busy time is exact for batches that take a while (the per-batch timing
/// skips only after a batch under 2 µs): a pass that sleeps 2 ms on each of
/// 30 batches is busy at least 60 ms, and its cheap source and sink far less
/// than the run took. (Real time: the sleeps are the work being timed.)
#[tokio::test]
async fn a_slow_pass_is_busy_for_all_its_batches_and_cheap_stages_for_little() {
    let started = std::time::Instant::now();
    let report = Pipeline::from(source::iter(0..30u32).batch_size(1))
        .map(|x| {
            std::thread::sleep(Duration::from_millis(2));
            x
        })
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let took = started.elapsed();
    report.check_accounting().unwrap();
    let pass = stage(&report, "map");
    assert_eq!(pass.batches_in, 30);
    assert!(pass.busy >= Duration::from_millis(60), "{:?}", pass.busy);
    assert!(pass.busy <= took, "{:?} of {took:?}", pass.busy);
    for cheap in [stage(&report, "source"), stage(&report, "sink")] {
        assert!(
            cheap.busy < took / 4,
            "{}: {:?} of {took:?}",
            cheap.name,
            cheap.busy
        );
    }
}
