//! Failures at the sink end: a flaky sink retried by `sink::retrying` (every
//! batch written exactly once, backoff timed in paused time, exhausted attempts
//! failing the run), and dead-letter sinks: files (JSON Lines, CSV), a slow
//! one, a failing one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::testkit::{failing_sink, slow_sink};
use dataflare::{Backoff, DeadLetters, ErrorKind, Rejected};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn exact(initial: Duration) -> Backoff {
    Backoff::exponential(initial).jitter(false)
}

/// Calls of a flaky write, per batch (by sequence number), and what it wrote.
#[derive(Clone, Default)]
struct Writes {
    calls: Arc<Mutex<HashMap<u64, u32>>>,
    written: Collected<u32>,
}

impl Writes {
    /// A write that fails the first `k` attempts at each batch, and every
    /// attempt at the batches in `broken`.
    fn flaky(
        &self,
        k: u32,
        broken: &'static [u64],
    ) -> impl FnMut(Batch<u32>) -> std::future::Ready<Result<()>> + Send + 'static {
        let this = self.clone();
        move |batch: Batch<u32>| {
            let n = {
                let mut calls = this.calls.lock().unwrap();
                let n = calls.entry(batch.seq()).or_default();
                *n += 1;
                *n
            };
            if n <= k || broken.contains(&batch.seq()) {
                return std::future::ready(Err(Error::msg("connection reset")));
            }
            batch.into_iter().for_each(|x| this.written.push(x));
            std::future::ready(Ok(()))
        }
    }

    fn calls(&self) -> Vec<(u64, u32)> {
        let mut calls: Vec<_> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        calls.sort();
        calls
    }
}

// ---------------------------------------------------------------- sink::retrying

#[tokio::test(start_paused = true)]
async fn a_flaky_sink_writes_every_batch_exactly_once() {
    let writes = Writes::default();
    let sink = sink::retrying(4, exact(ms(10)), writes.flaky(2, &[]));
    let start = Instant::now();
    let report = Pipeline::from(source::iter(0..10u32).batch_size(3))
        .to(sink)
        .run()
        .await
        .unwrap();
    assert!(report.is_completed(), "{report}");
    assert_eq!(
        writes.written.to_vec(),
        (0..10).collect::<Vec<_>>(),
        "no duplicates, no gaps"
    );
    // Each of the 4 batches: two failures, then written.
    assert_eq!(writes.calls(), vec![(0, 3), (1, 3), (2, 3), (3, 3)]);
    // 10 ms then 20 ms of backoff per batch, one batch at a time.
    assert_eq!(start.elapsed(), ms(4 * 30));
    assert_eq!(report.records_out(), 10);
    report.check_accounting().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_succeeds_at_once_is_called_once_per_batch_with_no_wait() {
    let writes = Writes::default();
    let start = Instant::now();
    Pipeline::from(source::iter(0..10u32).batch_size(5))
        .to(sink::retrying(3, exact(ms(10)), writes.flaky(0, &[])))
        .run()
        .await
        .unwrap();
    assert_eq!(writes.calls(), vec![(0, 1), (1, 1)]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_sink_exhausting_its_attempts_fails_the_run_with_the_attempts() {
    let writes = Writes::default();
    let start = Instant::now();
    let out_report = Pipeline::from(source::iter(0..10u32).batch_size(3))
        .to(sink::retrying(3, exact(ms(10)), writes.flaky(0, &[1])))
        .run_to_report()
        .await;
    let error = out_report
        .error()
        .expect("the second batch never gets written");
    assert_eq!(error.stage(), Some("sink"));
    assert_eq!(error.attempts(), 3);
    assert!(!error.is_record_level());
    assert_eq!(
        error.to_string(),
        "stage \"sink\": after 3 attempts: connection reset"
    );
    // The first batch was written once; the second tried 3 times; no more.
    assert_eq!(writes.written.to_vec(), vec![0, 1, 2]);
    assert_eq!(writes.calls(), vec![(0, 1), (1, 3)]);
    assert_eq!(
        start.elapsed(),
        ms(10 + 20),
        "no wait after the last attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn retrying_sink_and_record_policies_work_together() {
    let writes = Writes::default();
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(source::iter(0..50u32).batch_size(4))
        .try_map(|x: &u32| {
            if x.is_multiple_of(7) {
                Err(Error::msg(format!("{x} is a multiple of 7")))
            } else {
                Ok(*x)
            }
        })
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .buffer(2)
        .rebatch(5)
        .to(sink::retrying(5, exact(ms(1)), writes.flaky(1, &[])))
        .run()
        .await
        .unwrap();
    let want: Vec<u32> = (0..50).filter(|x| x % 7 != 0).collect();
    assert_eq!(writes.written.to_vec(), want);
    assert!(writes.calls().iter().all(|(_, n)| *n == 2));
    assert_eq!(rejects.len(), 8);
    assert!(report.has_errors());
    assert_eq!(report.dead_lettered(), 8);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_failing_sink_ends_the_run_whatever_the_record_policy() {
    let (sink, probe) = failing_sink::<u32>(5);
    let report = Pipeline::from(source::iter(0..20u32).batch_size(2))
        .try_map(|x: &u32| {
            if *x == 1 {
                Err(Error::msg("one"))
            } else {
                Ok(*x)
            }
        })
        .default_policy(ErrorPolicy::Skip)
        .to(sink)
        .run_to_report()
        .await;
    let error = report.error().unwrap();
    assert_eq!(error.stage(), Some("sink"));
    assert!(!error.is_record_level());
    assert_eq!(probe.records(), vec![0, 2, 3, 4, 5]);
    assert!(!probe.is_closed());
    assert_eq!(report.skipped(), 1, "counts up to the failure are kept");
}

// ---------------------------------------------------------------- dead letters in files

/// "1", "x", "3", ... : every third record does not parse.
fn mixed() -> Vec<String> {
    (0..12)
        .map(|i| {
            if i % 3 == 1 {
                format!("bad{i}")
            } else {
                i.to_string()
            }
        })
        .collect()
}

async fn run_with_rejects_to<K>(dead_letters: K) -> Report
where
    K: futures::Sink<Batch<Rejected>, Error = Error> + Send + 'static,
{
    Pipeline::from(source::iter(mixed()).batch_size(5))
        .try_map(|s: &String| s.parse::<u32>())
        .on_error(DeadLetters::to(dead_letters))
        .to(sink::discard())
        .run()
        .await
        .unwrap()
}

#[tokio::test]
async fn dead_letters_written_to_a_json_lines_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rejects.jsonl");
    let report = run_with_rejects_to(dataflare::jsonl::write::<Rejected>(&path)).await;
    assert_eq!(report.dead_lettered(), 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (row, i) in rows.iter().zip([1, 4, 7, 10]) {
        assert_eq!(row["stage"], "try_map#1");
        assert_eq!(row["record"], format!("\"bad{i}\""));
        assert_eq!(
            row["error"],
            format!(
                "stage \"try_map#1\": record {}: invalid digit found in string",
                i + 1
            )
        );
        assert_eq!(row["record_index"], i);
        assert_eq!(row["attempts"], 1);
        assert!(row["line"].is_null() && row["byte"].is_null());
    }
}

#[tokio::test]
async fn dead_letters_written_to_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rejects.csv");
    let report = run_with_rejects_to(dataflare::csv::write::<Rejected>(&path)).await;
    assert_eq!(report.dead_lettered(), 4);
    let mut reader = ::csv::Reader::from_path(&path).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "stage",
            "error",
            "record",
            "record_index",
            "line",
            "byte",
            "field",
            "attempts"
        ]
    );
    let rows: Vec<::csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4);
    for (row, i) in rows.iter().zip([1, 4, 7, 10]) {
        assert_eq!(&row[0], "try_map#1");
        assert_eq!(
            &row[1],
            format!(
                "stage \"try_map#1\": record {}: invalid digit found in string",
                i + 1
            )
        );
        assert_eq!(&row[2], format!("\"bad{i}\""));
        assert_eq!(&row[3], i.to_string());
        assert_eq!(&row[7], "1");
    }
}

#[tokio::test]
async fn a_source_s_rejects_in_a_file_keep_their_position() {
    use dataflare::Position;
    use dataflare::testkit::Script;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rejects.jsonl");
    let source = Script::new()
        .batch(vec![1])
        .error(
            Error::parse("expected 3 fields, found 2")
                .with_position(Position::new().record(1).line(3).byte(17).field("amount")),
        )
        .batch(vec![2])
        .into_source();
    Pipeline::from(source)
        .on_error(DeadLetters::to(dataflare::jsonl::write::<Rejected>(&path)))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let row: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(row["stage"], "source");
    assert!(row["record"].is_null());
    assert_eq!(
        (
            &row["record_index"],
            &row["line"],
            &row["byte"],
            &row["field"]
        ),
        (&1.into(), &3.into(), &17.into(), &"amount".into())
    );
}

#[tokio::test]
async fn a_failed_run_still_commits_the_rejects_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let rejects_path = dir.path().join("rejects.jsonl");
    let out_path = dir.path().join("out.jsonl");
    let report = Pipeline::from(source::iter(["1", "x", "2", "y", "stop", "3"]).batch_size(1))
        .try_map(|s: &&str| {
            if *s == "stop" {
                Err(Error::msg("stop"))
            } else {
                s.parse::<u32>().map_err(Error::other)
            }
        })
        .on_error(
            ErrorPolicy::retry(1).then(DeadLetters::to(dataflare::jsonl::write::<Rejected>(
                &rejects_path,
            ))),
        )
        .try_map(|n: &u32| Ok::<_, Error>(*n))
        .to(dataflare::jsonl::write::<u32>(&out_path))
        .run_to_report()
        .await;
    // A retry of one attempt in all goes straight to its final policy.
    assert!(report.has_errors(), "{report}");
    assert_eq!(report.dead_lettered(), 3);
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "1\n2\n3\n");
    let text = std::fs::read_to_string(&rejects_path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");

    // Now the run fails after two rejects: the output file is not committed,
    // the rejects file is.
    let dir = tempfile::tempdir().unwrap();
    let rejects_path = dir.path().join("rejects.jsonl");
    let out_path = dir.path().join("out.jsonl");
    let report = Pipeline::from(source::iter(["1", "x", "2", "y", "-5", "3"]).batch_size(1))
        .try_map(|s: &&str| s.parse::<i64>())
        .on_error(DeadLetters::to(dataflare::jsonl::write::<Rejected>(
            &rejects_path,
        )))
        .try_map(|n: &i64| u32::try_from(*n))
        .to(dataflare::jsonl::write::<u32>(&out_path))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    assert_eq!(report.error().unwrap().stage(), Some("try_map#2"));
    assert!(!out_path.exists(), "a failed run leaves no output file");
    let text = std::fs::read_to_string(&rejects_path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

// ---------------------------------------------------------------- slow and failing dead-letter sinks

#[tokio::test(start_paused = true)]
async fn a_slow_dead_letter_sink_gets_every_reject_in_order() {
    let (dead_letters, probe) = slow_sink::<Rejected>(ms(5));
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..3000u32).batch_size(100))
        .try_map(|x: &u32| {
            if x.is_multiple_of(3) {
                Err(Error::msg(format!("reject {x}")))
            } else {
                Ok(*x)
            }
        })
        .on_error(DeadLetters::to(dead_letters))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(report.dead_lettered(), 1000);
    assert_eq!(out.len(), 2000);
    let rejects = probe.records();
    assert_eq!(
        rejects.len(),
        1000,
        "none lost, though the channel holds 256"
    );
    for (r, x) in rejects.iter().zip((0..3000).step_by(3)) {
        assert_eq!(r.record.as_deref(), Some(x.to_string().as_str()));
    }
    assert!(probe.is_closed());
    // More than one channel's worth: the stage had to wait for room.
    assert!(probe.batch_count() >= 4, "{}", probe.batch_count());
}

#[tokio::test]
async fn a_failing_dead_letter_sink_fails_the_run_with_its_own_error() {
    let (dead_letters, probe) = failing_sink::<Rejected>(0);
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..1000u32).batch_size(10))
        .try_map(|x: &u32| {
            if x.is_multiple_of(2) {
                Err(Error::msg("even"))
            } else {
                Ok(*x)
            }
        })
        .on_error(DeadLetters::to(dead_letters))
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    let error = report.error().unwrap();
    assert_eq!(error.stage(), Some("dead letters"), "{error}");
    assert!(error.to_string().contains("test sink failed"), "{error}");
    assert!(!matches!(error.kind(), ErrorKind::Closed));
    assert_eq!(probe.record_count(), 0);
    assert!(!out.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dead_letter_counted_is_delivered_when_a_take_ends_the_run() {
    // The stage upstream of the buffer may still be rejecting records while
    // the run ends: its rejects must reach the sink, as they are counted.
    for _ in 0..200 {
        let rejects = Collected::<Rejected>::new();
        let report = Pipeline::from(source::iter(0..10_000u32).batch_size(5))
            .try_map(|x: &u32| {
                if x % 4 == 2 {
                    Err(Error::msg("bad"))
                } else {
                    Ok(*x)
                }
            })
            .on_error(DeadLetters::to(sink::collect(&rejects)))
            .buffer(1)
            .take(20)
            .to(sink::discard())
            .run()
            .await
            .unwrap();
        assert_eq!(rejects.len() as u64, report.dead_lettered());
        assert!(rejects.is_closed());
    }
}
