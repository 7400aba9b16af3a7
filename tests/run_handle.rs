//! A run's handle: pause, resume, stop, cancel, abort, detach; deadlines and
//! idle timeouts under paused time. No sleeps: channels and paused time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use dataflare::csv;
use dataflare::prelude::*;
use support::entries;
use tokio::sync::mpsc;

/// Lets the runtime run every task that can (a current-thread runtime).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_paused_run_reads_nothing_until_resumed_and_then_ends_as_if_never_paused() {
    let (tx, rx) = mpsc::channel::<u32>(4);
    let out = Collected::new();
    let run = Pipeline::from(source::channel(rx))
        .to(sink::collect(&out))
        .spawn();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    settle().await;
    assert_eq!(out.to_vec(), vec![1, 2]);

    run.pause();
    assert_eq!(run.status(), RunStatus::Paused);
    tx.send(3).await.unwrap();
    settle().await;
    assert_eq!(out.to_vec(), vec![1, 2], "a paused source was read");
    assert_eq!(
        tx.capacity(),
        3,
        "the batch sent while paused is still waiting"
    );

    run.resume();
    tx.send(4).await.unwrap();
    drop(tx);
    let report = run.await;
    assert!(report.is_completed());
    assert_eq!(out.to_vec(), vec![1, 2, 3, 4]);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn pausing_before_the_first_poll_holds_every_source_of_a_graph() {
    let read = Arc::new(AtomicU64::new(0));
    let r = read.clone();
    let [a, b] = Pipeline::from(source::iter(0..100u64).batch_size(10))
        .inspect(move |_| {
            r.fetch_add(1, SeqCst);
        })
        .tee();
    let (x, y) = (Collected::new(), Collected::new());
    let run = a.to(sink::collect(&x)).and(b.to(sink::collect(&y))).spawn();
    run.pause();
    settle().await;
    assert_eq!(read.load(SeqCst), 0);
    run.resume();
    let report = run.await;
    assert_eq!((x.len(), y.len()), (100, 100));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn stop_commits_what_was_read_as_a_successful_run_on_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prefix.csv");
    let (tx, rx) = mpsc::channel::<u32>(4);
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let run = Pipeline::from(source::channel(rx))
        .inspect(move |n| {
            let _ = seen_tx.send(*n);
        })
        .to(csv::write(&path).has_headers(false))
        .spawn();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    tx.send(3).await.unwrap();
    // Once the pipeline has read all three, stop it.
    for want in 1..=3 {
        assert_eq!(seen.recv().await, Some(want));
    }
    run.stop();
    // Sent after the stop: never read.
    let _ = tx.send(4).await;
    let report = run.await;
    assert!(report.is_completed(), "{report}");
    assert!(report.stopped());
    assert!(
        report.to_string().starts_with("completed (stopped early)"),
        "{report}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn cancel_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel::<u32>(4);
    let run = Pipeline::from(source::channel(rx))
        .to(csv::write(dir.path().join("out.csv")))
        .spawn();
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    tx.send(3).await.unwrap();
    settle().await;
    run.cancel();
    let report = run.await;
    assert!(report.is_cancelled());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn abort_and_dropping_the_handle_end_the_run_and_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for how in ["abort", "drop"] {
        let (tx, rx) = mpsc::channel::<u32>(4);
        let path = dir.path().join(format!("{how}.csv"));
        let run = Pipeline::from(source::channel(rx))
            .to(csv::write(&path))
            .spawn();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        tx.send(3).await.unwrap();
        settle().await;
        match how {
            "abort" => run.abort(),
            _ => drop(run),
        }
        settle().await;
        // The run is gone: nothing takes the channel's batches any more.
        assert!(tx.is_closed(), "{how}: the source is still read");
        assert!(!path.exists(), "{how}: the output was committed");
    }
}

#[tokio::test]
async fn a_detached_run_goes_on_to_its_end() {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = std::sync::Mutex::new(Some(done_tx));
    let sink = sink::for_each(move |batch: Batch<u32>| {
        if batch.contains(&99) {
            done_tx.lock().unwrap().take().map(|tx| tx.send(()));
        }
        Ok(())
    });
    Pipeline::from(source::iter(0..100u32))
        .to(sink)
        .spawn()
        .detach();
    done_rx
        .await
        .expect("the detached run reached its last record");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_fails_the_run_and_paused_time_does_not_count() {
    // Never ends: fails at its deadline.
    let (tx, rx) = mpsc::channel::<u32>(1);
    let start = tokio::time::Instant::now();
    let report = Pipeline::from(source::channel(rx))
        .to(sink::discard())
        .deadline(Duration::from_secs(60))
        .run_to_report()
        .await;
    assert!(
        report
            .error()
            .unwrap()
            .to_string()
            .contains("deadline (60s)")
    );
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    drop(tx);

    // Paused for 100 s: the deadline comes 100 s later.
    let (tx, rx) = mpsc::channel::<u32>(1);
    let start = tokio::time::Instant::now();
    let run = Pipeline::from(source::channel(rx))
        .to(sink::discard())
        .deadline(Duration::from_secs(60))
        .spawn();
    tokio::time::sleep(Duration::from_secs(30)).await;
    run.pause();
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(
        run.status(),
        RunStatus::Paused,
        "the deadline fired while paused"
    );
    run.resume();
    let report = run.await;
    assert!(report.is_failed());
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(160) && elapsed < Duration::from_secs(162),
        "{elapsed:?}"
    );
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn an_idle_source_fails_the_run_naming_it_unless_paused() {
    let (tx, rx) = mpsc::channel::<u32>(1);
    tx.send(1).await.unwrap();
    let start = tokio::time::Instant::now();
    let report = Pipeline::from(source::channel(rx))
        .name("events")
        .idle_timeout(Duration::from_secs(30))
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("fails");
    assert_eq!(error.stage(), Some("events"));
    assert!(error.to_string().contains("idle timeout"), "{error}");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    report.check_accounting().unwrap();
    drop(tx);

    // Paused longer than the timeout: the silence is not held against it.
    let (tx, rx) = mpsc::channel::<u32>(1);
    let run = Pipeline::from(source::channel(rx))
        .idle_timeout(Duration::from_secs(30))
        .to(sink::discard())
        .spawn();
    tokio::time::sleep(Duration::from_secs(10)).await;
    run.pause();
    tokio::time::sleep(Duration::from_secs(300)).await;
    run.resume();
    tx.send(1).await.unwrap();
    drop(tx);
    let report = run.await;
    assert!(report.is_completed(), "{report}");
}
