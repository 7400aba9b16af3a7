//! Stopping a run from outside: `Runnable::run_until`.

use std::sync::Arc;

use dataflare::prelude::*;
use tokio::sync::oneshot;

/// A stop signal fired by the pipeline itself once `at` records went through.
fn stop_at(
    at: u64,
) -> (
    impl FnMut(&u64) + Send + 'static,
    impl Future<Output = ()> + Send,
) {
    let (tx, rx) = oneshot::channel::<()>();
    let mut tx = Some(tx);
    (
        move |x: &u64| {
            if *x == at {
                tx.take().map(|s| s.send(()));
            }
        },
        async move {
            let _ = rx.await;
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_is_cancelled_commits_nothing_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    std::fs::write(&path, "x\nold\n").unwrap();
    let (trigger, stop) = stop_at(5_000);
    let held = Arc::new(());
    let h = held.clone();
    let report = Pipeline::from(source::iter(0u64..).batch_size(100)) // endless
        .inspect(trigger)
        .buffer(2)
        .map_async(4, move |x| {
            let h = h.clone();
            async move {
                let _keep = h;
                x
            }
        })
        .map(|x| vec![x])
        .to(dataflare::csv::write::<Vec<u64>>(&path).has_headers(false))
        .run_until(stop)
        .await;
    assert!(report.is_cancelled(), "{report}");
    assert!(report.records_in() >= 5_000);
    // Nothing committed: the old file is untouched and no temporary file is left.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\nold\n");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Every task ended: no future of the map_async is still holding its clone.
    assert_eq!(Arc::strong_count(&held), 1);
    // What was in flight is counted as abandoned, so every stage balances.
    report.check_accounting().unwrap();
    assert!(report.stages().iter().map(|s| s.abandoned).sum::<u64>() > 0);
    assert!(
        report.into_result().is_ok(),
        "a cancelled run is not an error"
    );
}

#[tokio::test]
async fn a_stop_after_the_end_changes_nothing() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..10u64))
        .to(sink::collect(&out))
        .run_until(std::future::pending())
        .await;
    assert!(report.is_completed());
    assert!(out.is_closed());
    assert_eq!(out.len(), 10);
}
