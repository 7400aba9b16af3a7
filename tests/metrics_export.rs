//! Stage counters through the `metrics` facade (feature `metrics`).
#![cfg(feature = "metrics")]

use dataflare::prelude::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn a_run_publishes_its_stage_counters_once_it_ends() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        Pipeline::from(source::iter(0..1000u32).batch_size(100))
            .filter(|n| n % 2 == 0)
            .name("evens")
            .to(sink::discard())
            .max_in_flight_bytes(1 << 20)
            .run(),
    )
    .unwrap();
    // One snapshot: taking one resets the debugging recorder's counters.
    let snapshot = snapshotter.snapshot().into_vec();
    let found = |metric: &str, stage: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == metric
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "stage" && l.value() == stage)
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                _ => panic!("{metric} is no counter"),
            })
    };
    assert_eq!(found("dataflare_stage_records_in", "evens"), Some(1000));
    assert_eq!(found("dataflare_stage_records_out", "evens"), Some(500));
    assert_eq!(found("dataflare_stage_filtered", "evens"), Some(500));
    // The byte budget's gauges: all given back at the end, its peak seen.
    let gauge = |metric: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == metric)
            .map(|(.., value)| match value {
                DebugValue::Gauge(g) => g.into_inner(),
                _ => panic!("{metric} is no gauge"),
            })
    };
    assert_eq!(gauge("dataflare_in_flight_bytes"), Some(0.0));
    assert_eq!(
        gauge("dataflare_in_flight_max_bytes"),
        Some(f64::from(1u32 << 20))
    );
    assert!(gauge("dataflare_in_flight_peak_bytes").is_some_and(|p| p >= 400.0));
}
