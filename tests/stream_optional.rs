//! `when(condition, f)`: a stage chosen when the pipeline is built, without
//! boxing. Both ways give one pipeline type; with the stage or without, the
//! records are the same when the stage keeps them.

use std::time::Duration;

use dataflare::ops::{Overflow, Rate};
use dataflare::prelude::*;
use dataflare::testkit::probe;

/// The same pipeline with or without a buffer: one function, one type.
async fn run(buffered: bool) -> (Vec<u64>, Report) {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..1_000u64).batch_size(16))
        .map(|x| x * 3)
        .when(buffered, |p| p.buffer(4).name("optional buffer"))
        .filter(|x| x % 2 == 0)
        .name("evens")
        .to(sink)
        .run()
        .await
        .unwrap();
    (probe.records(), report)
}

async fn both_ways_the_same() {
    let (with, with_report) = run(true).await;
    let (without, without_report) = run(false).await;
    assert_eq!(with, without);
    assert_eq!(
        with,
        (0..1_000u64)
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .collect::<Vec<_>>()
    );
    // The stage exists only when chosen.
    assert_eq!(
        with_report.stage("optional buffer").unwrap().records_out,
        1_000
    );
    assert!(without_report.stage("optional buffer").is_none());
    assert_eq!(
        with_report.stages().len(),
        without_report.stages().len() + 1
    );
    for report in [&with_report, &without_report] {
        assert_eq!(
            report.stage("evens").unwrap().records_out,
            with.len() as u64
        );
    }
}

#[tokio::test]
async fn an_optional_buffer_gives_the_same_output_both_ways() {
    both_ways_the_same().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_buffer_gives_the_same_output_both_ways_multi_thread() {
    both_ways_the_same().await;
}

#[tokio::test]
async fn the_stages_are_added_only_when_chosen() {
    for add in [true, false] {
        let out = Collected::new();
        Pipeline::from(source::iter(0..5u64))
            .when(add, |p| p.map(|x| x + 100).filter(|x| x % 2 == 0))
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
        let expected: Vec<u64> = if add {
            vec![100, 102, 104]
        } else {
            (0..5).collect()
        };
        assert_eq!(out.to_vec(), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn an_optional_throttle_paces_only_when_chosen() {
    for throttled in [true, false] {
        let start = tokio::time::Instant::now();
        let report = Pipeline::from(source::iter(0..300u64).batch_size(10))
            .when(throttled, |p| p.throttle(Rate::records(100)))
            .to(sink::discard())
            .run()
            .await
            .unwrap();
        assert_eq!(report.records_out(), 300);
        let expected = if throttled {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        };
        assert_eq!(start.elapsed(), expected, "throttled: {throttled}");
    }
}

#[tokio::test]
async fn optional_stages_nest_and_chain() {
    // A run-time configuration: each knob on or off, one pipeline type.
    for (lossy, batched) in [(false, false), (false, true), (true, false), (true, true)] {
        let out = Collected::new();
        let report = Pipeline::from(source::iter(0..100u64).batch_size(7))
            .when(batched, |p| p.rebatch(10))
            .when(lossy, |p| p.buffer_with(64, Overflow::DropOldest))
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
        // A buffer of 64 batches never fills with 15: nothing dropped.
        assert_eq!(
            out.to_vec(),
            (0..100).collect::<Vec<_>>(),
            "{lossy} {batched}"
        );
        assert!(
            report
                .stages()
                .iter()
                .all(|s| s.in_flight() == 0 && s.dropped == 0)
        );
    }
}
