//! One run, several sinks, one commit: every sink (main and dead letters) is
//! opened before any record is read; the main output is committed only when
//! every sink succeeded; dead letters of a failed run are kept; no output may
//! be an input or another output of the same run.

mod support;
use support::entries;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dataflare::prelude::*;
use dataflare::testkit::{failing_sink, probe};
use dataflare::{DeadLetters, MaxErrors, Rejected, csv, jsonl};

/// A source counting the records read from it.
fn counted(n: u32, reads: &Arc<AtomicUsize>) -> impl Source<Record = u32> {
    let reads = reads.clone();
    source::iter((0..n).inspect(move |_| {
        reads.fetch_add(1, Ordering::Relaxed);
    }))
}

#[allow(clippy::ptr_arg)] // the signature try_map asks for
fn parse(s: &String) -> Result<u32, std::num::ParseIntError> {
    s.as_str().parse()
}

#[tokio::test]
async fn an_unwritable_dead_letter_file_fails_before_reading_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.jsonl");
    std::fs::write(&out, "old\n").unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let err = Pipeline::from(counted(100, &reads))
        .map(|x| x.to_string())
        .try_map(parse)
        .on_error(DeadLetters::to(jsonl::write::<Rejected>(
            dir.path().join("no/such/dir/rej.jsonl"),
        )))
        .to(jsonl::write(&out))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("dead letters"));
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(reads.load(Ordering::Relaxed), 0, "nothing was read");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");
    assert_eq!(entries(dir.path()), ["g.jsonl"], "no temporary file left");
}

#[tokio::test]
async fn a_dead_letter_sink_failing_at_the_end_keeps_the_main_output_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.csv");
    // The dead-letter sink fails when it is closed, after every record went
    // through: the main output must not have been committed before it.
    let (rejects, rejected) = probe::<Rejected>();
    let failing_close =
        futures::SinkExt::with(
            rejects,
            |b: Batch<Rejected>| async move { Ok::<_, Error>(b) },
        );
    let failing_close = CloseFails(Box::pin(failing_close));
    let report = Pipeline::from(source::iter(vec!["1", "x", "3"]).batch_size(1))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(DeadLetters::to(failing_close))
        .to(csv::write(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    assert!(
        report.error().unwrap().to_string().contains("cannot close"),
        "{report}"
    );
    assert_eq!(rejected.record_count(), 1);
    assert!(!out.exists(), "the main output was not committed");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

/// A sink that takes everything and fails to close.
struct CloseFails<K>(std::pin::Pin<Box<K>>);

impl<K: futures::Sink<Batch<Rejected>, Error = Error>> futures::Sink<Batch<Rejected>>
    for CloseFails<K>
{
    type Error = Error;
    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        self.0.as_mut().poll_ready(cx)
    }
    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Batch<Rejected>) -> Result<()> {
        self.0.as_mut().start_send(item)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        std::task::Poll::Ready(Err(Error::msg("cannot close the rejects")))
    }
}

#[tokio::test]
async fn a_users_own_sink_is_closed_only_after_the_dead_letters_succeeded() {
    let (main, main_probe) = probe::<u32>();
    let (rejects, _) = failing_sink::<Rejected>(0);
    let report = Pipeline::from(source::iter(vec!["1", "x", "3"]))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(DeadLetters::to(rejects))
        .to(main)
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert!(
        !main_probe.is_closed(),
        "close is the commit of a user's sink"
    );
}

#[tokio::test]
async fn dead_letters_of_a_failed_run_are_kept_and_its_output_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let rej = dir.path().join("rej.jsonl");
    let report = Pipeline::from(source::iter(vec!["1", "x", "y", "4"]))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(DeadLetters::to(jsonl::write::<Rejected>(&rej)))
        .max_errors(MaxErrors::Count(1))
        .to(jsonl::write(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    assert!(
        report
            .to_string()
            .lines()
            .next()
            .unwrap()
            .ends_with("nothing committed but the dead letters"),
        "{report}"
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_to_string(&rej).unwrap().lines().count(), 2);
    assert_eq!(entries(dir.path()), ["rej.jsonl"]);
}

#[tokio::test]
async fn a_completed_run_commits_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let rej = dir.path().join("rej.jsonl");
    let report = Pipeline::from(source::iter(vec!["1", "x", "3"]))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(DeadLetters::to(jsonl::write::<Rejected>(&rej)))
        .to(jsonl::write(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(report.dead_lettered(), 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\n3\n");
    assert_eq!(std::fs::read_to_string(&rej).unwrap().lines().count(), 1);
    assert_eq!(entries(dir.path()), ["out.jsonl", "rej.jsonl"]);
}

#[tokio::test]
async fn an_output_that_is_the_input_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let original = "id,amount\n1,2\n2,x\n";
    std::fs::write(&input, original).unwrap();
    // The same file, written another way.
    let same = dir.path().join(".").join("in.csv");
    let err = Pipeline::from(csv::read_records(&input))
        .on_error(DeadLetters::to(jsonl::write::<Rejected>(&same)))
        .to(jsonl::write(dir.path().join("out.jsonl")))
        .run()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is the input, but it is also the dead-letter output"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), original);
    assert_eq!(entries(dir.path()), ["in.csv"]);

    // The main output as the input, through a symbolic link.
    #[cfg(unix)]
    {
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let err = Pipeline::from(csv::read_records(&input))
            .to(jsonl::write(&link))
            .run()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("is the input, but it is also the output of stage \"sink\""),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&input).unwrap(), original);
    }
}

#[tokio::test]
async fn the_dead_letter_file_cannot_be_the_main_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(&out, "keep\n").unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let err = Pipeline::from(counted(10, &reads))
        .map(|x| x.to_string())
        .try_map(parse)
        .on_error(DeadLetters::to(jsonl::write::<Rejected>(&out)))
        .to(jsonl::write(&out))
        .run()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("but it is also"), "{text}");
    assert!(text.contains("dead-letter output"), "{text}");
    assert!(text.contains("output of stage \"sink\""), "{text}");
    assert_eq!(reads.load(Ordering::Relaxed), 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep\n");
    assert_eq!(entries(dir.path()), ["out.jsonl"]);
}

#[tokio::test]
async fn a_dead_letters_handle_serves_one_run_and_says_so_when_reused() {
    let rejects = Collected::<Rejected>::new();
    let handle = DeadLetters::to(sink::collect(&rejects));
    let first = Pipeline::from(source::iter(vec!["x"]))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(handle.clone())
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(first.dead_lettered(), 1);
    let err = Pipeline::from(source::iter(vec!["y"]))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(handle)
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already used by another run"),
        "{err}"
    );
    assert_eq!(rejects.len(), 1);
}

/// A sink that asks the run to stop as soon as it is closed, then closes the
/// sink it wraps: the stop arrives while the run is committing.
struct StopOnClose<K> {
    inner: std::pin::Pin<Box<K>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<T, K: futures::Sink<Batch<T>, Error = Error>> futures::Sink<Batch<T>> for StopOnClose<K> {
    type Error = Error;
    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        self.inner.as_mut().poll_ready(cx)
    }
    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Batch<T>) -> Result<()> {
        self.inner.as_mut().start_send(item)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.inner.as_mut().poll_close(cx)
    }
}

#[tokio::test]
async fn a_stop_that_arrives_during_the_commit_lets_the_commit_finish() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let rej = dir.path().join("rej.jsonl");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink = StopOnClose {
        inner: Box::pin(jsonl::write::<u32>(&out)),
        stop: Some(stop),
    };
    let report = Pipeline::from(source::iter(vec!["1", "x", "3"]))
        .try_map(|s: &&str| s.parse::<u32>())
        .on_error(DeadLetters::to(jsonl::write::<Rejected>(&rej)))
        .to(sink)
        .run_until(async move {
            let _ = stopped.await;
        })
        .await;
    assert!(report.committed(), "{report}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\n3\n");
    assert_eq!(std::fs::read_to_string(&rej).unwrap().lines().count(), 1);
    assert_eq!(entries(dir.path()), ["out.jsonl", "rej.jsonl"]);
}

#[tokio::test]
async fn a_cancelled_run_commits_nothing_not_even_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let rej = dir.path().join("rej.jsonl");
    std::fs::write(&out, "old\n").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    // Endless input with a bad record now and then; stopped once a reject
    // has been seen.
    let report = Pipeline::from(source::iter((0u64..).map(|i| {
        if i % 10 == 3 {
            "x".to_string()
        } else {
            i.to_string()
        }
    })))
    .try_map(|s: &String| s.parse::<u64>())
    .on_error(DeadLetters::to(jsonl::write::<Rejected>(&rej)))
    .inspect(move |x| {
        if *x > 1_000 {
            stop.take().map(|s| s.send(()));
        }
    })
    .to(jsonl::write(&out))
    .run_until(async move {
        let _ = stopped.await;
    })
    .await;
    assert!(report.is_cancelled(), "{report}");
    assert!(report.dead_lettered() > 0);
    assert!(
        report
            .to_string()
            .lines()
            .next()
            .unwrap()
            .ends_with("nothing committed"),
        "{report}"
    );
    report.check_accounting().unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");
    assert_eq!(
        entries(dir.path()),
        ["out.jsonl"],
        "no rejects file, no temporary"
    );
}
