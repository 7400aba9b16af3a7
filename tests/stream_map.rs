//! Per-record adapters: map, filter, filter_map, flat_map, inspect, map_batch —
//! their results, their per-stage statistics and the names of their stages.

mod support;

use std::sync::{Arc, Mutex};

use dataflare::prelude::*;
use dataflare::testkit::probe;
use support::sizes;

#[tokio::test]
async fn map_replaces_each_record_and_counts_it() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..10u64).batch_size(4))
        .map(|x| x * 3 + 1)
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(
        probe.records(),
        (0..10u64).map(|x| x * 3 + 1).collect::<Vec<_>>()
    );
    // One output batch per input batch, same sizes.
    assert_eq!(sizes(&probe), vec![4, 4, 2]);
    let map = report.stage("map#1").unwrap();
    assert_eq!((map.records_in, map.records_out), (10, 10));
    assert_eq!((map.batches_in, map.batches_out), (3, 3));
    assert_eq!(report.records_in(), 10);
    assert_eq!(report.records_out(), 10);
    assert!(report.is_completed());
}

#[tokio::test]
async fn map_can_change_the_record_type() {
    let out = Collected::new();
    Pipeline::from(source::iter(vec![1, 22, 333]))
        .map(|x: i32| x.to_string())
        .map(|s| s.len())
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![1, 2, 3]);
}

#[tokio::test]
async fn filter_keeps_matching_records_and_counts_what_it_dropped() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..20u64).batch_size(5))
        .map(|x| x + 1)
        .filter(|x| x % 3 == 0)
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(probe.records(), vec![3, 6, 9, 12, 15, 18]);
    let filter = report.stage("filter#2").unwrap();
    assert_eq!(filter.records_in, 20);
    assert_eq!(filter.records_out, 6);
    assert_eq!(filter.batches_in, 4);
    assert_eq!(report.records_out(), 6);
}

#[tokio::test]
async fn filter_passes_no_empty_batches_on() {
    // Batches [0..4), [4..8), [8..12): only the middle one keeps anything.
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..12u64).batch_size(4))
        .filter(|x| (4..8).contains(x) && x % 2 == 0)
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(probe.records(), vec![4, 6]);
    assert_eq!(probe.batch_count(), 1);
    let filter = report.stage("filter#1").unwrap();
    assert_eq!((filter.batches_in, filter.batches_out), (3, 1));
    assert_eq!(report.batches_out(), 1);
}

#[tokio::test]
async fn filter_that_drops_everything_still_completes_and_closes_the_sink() {
    let (sink, probe) = probe::<u64>();
    let report = Pipeline::from(source::iter(0..100u64).batch_size(7))
        .filter(|_| false)
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert_eq!(probe.record_count(), 0);
    assert!(probe.is_closed());
    assert_eq!(report.stage("filter#1").unwrap().records_in, 100);
}

#[tokio::test]
async fn filter_map_maps_and_drops_in_one_step() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(vec!["1", "x", "3", "", "-5"]).batch_size(2))
        .filter_map(|s| s.parse::<i32>().ok())
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();

    assert_eq!(out.to_vec(), vec![1, 3, -5]);
    let stage = report.stage("filter_map#1").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (5, 3));
}

#[tokio::test]
async fn flat_map_expands_records_in_order() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..4u32).batch_size(2))
        .flat_map(|x| std::iter::repeat_n(x, x as usize))
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(probe.records(), vec![1, 2, 2, 3, 3, 3]);
    // Batch [0, 1] becomes [1]; batch [2, 3] becomes [2, 2, 3, 3, 3].
    assert_eq!(sizes(&probe), vec![1, 5]);
    let stage = report.stage("flat_map#1").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (4, 6));
    assert_eq!((stage.batches_in, stage.batches_out), (2, 2));
}

#[tokio::test]
async fn flat_map_to_nothing_drops_the_batch() {
    let (sink, probe) = probe::<u32>();
    let report = Pipeline::from(source::iter(0..6u32).batch_size(3))
        .flat_map(|x| if x < 3 { vec![] } else { vec![x, x] })
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.records(), vec![3, 3, 4, 4, 5, 5]);
    assert_eq!(probe.batch_count(), 1);
    assert_eq!(report.stage("flat_map#1").unwrap().batches_out, 1);
}

#[tokio::test]
async fn inspect_sees_every_record_in_order_and_changes_nothing() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(10..20u64).batch_size(3))
        .filter(|x| x % 2 == 1)
        .inspect(move |x| s.lock().unwrap().push(*x))
        .to(sink)
        .run()
        .await
        .unwrap();

    assert_eq!(*seen.lock().unwrap(), vec![11, 13, 15, 17, 19]);
    assert_eq!(probe.records(), vec![11, 13, 15, 17, 19]);
    let stage = report.stage("inspect#2").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (5, 5));
}

#[tokio::test]
async fn map_batch_gets_whole_batches() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(vec![3, 1, 2, 9, 7, 8, 5]).batch_size(3))
        .map_batch(|mut records: Vec<i32>| {
            records.sort();
            records
        })
        .to(sink)
        .run()
        .await
        .unwrap();

    // Sorted within each batch, not across batches.
    assert_eq!(probe.records(), vec![1, 2, 3, 7, 8, 9, 5]);
    assert_eq!(sizes(&probe), vec![3, 3, 1]);
    let stage = report.stage("map_batch#1").unwrap();
    assert_eq!((stage.batches_in, stage.batches_out), (3, 3));
}

#[tokio::test]
async fn map_batch_may_change_the_count() {
    let (sink, probe) = probe();
    let report = Pipeline::from(source::iter(0..10u64).batch_size(4))
        .map_batch(|records: Vec<u64>| vec![records.iter().sum::<u64>()])
        .to(sink)
        .run()
        .await
        .unwrap();
    assert_eq!(probe.records(), vec![6, 22, 17]);
    let stage = report.stage("map_batch#1").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (10, 3));
}

#[tokio::test]
async fn stages_are_named_by_kind_and_place() {
    let report = Pipeline::from(source::iter(0..8u64).batch_size(2))
        .map(|x| x + 1)
        .filter(|x| x % 2 == 0)
        .filter_map(Some)
        .flat_map(|x| [x])
        .inspect(|_| {})
        .map_batch(|b| b)
        .map(|x| x)
        .to(sink::discard())
        .run()
        .await
        .unwrap();

    let names: Vec<&str> = report.stages().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "source",
            "map#1",
            "filter#2",
            "filter_map#3",
            "flat_map#4",
            "inspect#5",
            "map_batch#6",
            "map#7",
            "sink",
        ]
    );
    // Every stage after the filter saw the same 4 records.
    for stage in &report.stages()[3..] {
        assert_eq!(stage.records_in, 4, "{}", stage.name);
    }
    assert_eq!(report.stage("map#1").unwrap().records_in, 8);
}

#[tokio::test]
async fn name_renames_the_last_stage_added() {
    let report = Pipeline::from(source::iter(0..6u64))
        .name("numbers")
        .map(|x| x * 2)
        .name("double")
        .filter(|x| *x > 4)
        .name("big")
        .map(|x| x)
        .to(sink::discard())
        .run()
        .await
        .unwrap();

    let names: Vec<&str> = report.stages().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["numbers", "double", "big", "map#3", "sink"]);
    assert_eq!(report.stage("numbers").unwrap().records_out, 6);
    assert_eq!(report.stage("big").unwrap().records_in, 6);
    assert_eq!(report.stage("big").unwrap().records_out, 3);
    assert!(report.stage("map#1").is_none());
}

#[tokio::test]
async fn a_renamed_stage_is_named_in_its_errors() {
    let report = Pipeline::from(source::iter(vec![1, 2, 0, 4]))
        .map(|x: i32| 12 / x)
        .name("divide")
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("the map panics on 0");
    assert!(error.is_panic());
    assert_eq!(error.stage(), Some("divide"));
}

#[tokio::test]
async fn sink_counts_written_records() {
    let report = Pipeline::from(source::iter(0..1000u64).batch_size(64))
        .filter(|x| x % 10 == 0)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let sink = report.stage("sink").unwrap();
    assert_eq!(sink.records_in, 100);
    assert_eq!(sink.records_out, 100);
    assert_eq!(report.batches_in(), 16);
    assert_eq!(report.batches_out(), 16);
}
