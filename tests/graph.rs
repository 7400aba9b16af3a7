//! Graphs through the public API: fan-out (tee, partition, route, tap), fan-in
//! (merge, chain), several sinks in one run, isolate, describe.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use dataflare::graph::Format;
use dataflare::prelude::*;
use dataflare::{DeadLetters, Rejected, csv, jsonl};
use support::entries;

/// Nothing the run spawned is still alive once it returned.
fn assert_nothing_left_running() {
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(alive, 0, "tasks left running after the run returned");
}

#[tokio::test]
async fn tee_gives_every_record_to_every_branch_in_order() {
    let (a, b, c) = (Collected::new(), Collected::new(), Collected::new());
    let [x, y, z] = Pipeline::from(source::iter(0..1000u32).batch_size(7)).tee();
    let report = x
        .to(sink::collect(&a))
        .and(y.map(|n| n * 2).to(sink::collect(&b)))
        .and(z.filter(|n| n % 10 == 0).to(sink::collect(&c)))
        .run()
        .await
        .unwrap();
    assert_eq!(a.to_vec(), (0..1000).collect::<Vec<_>>());
    assert_eq!(b.to_vec(), (0..1000).map(|n| n * 2).collect::<Vec<_>>());
    assert_eq!(c.to_vec(), (0..100).map(|n| n * 10).collect::<Vec<_>>());
    let tee = report.stage("tee#1").unwrap();
    assert_eq!(
        (tee.records_in, tee.expanded, tee.records_out),
        (1000, 2000, 3000)
    );
    assert_eq!(report.records_in(), 1000);
    assert_eq!(report.records_out(), 1000 + 1000 + 100);
    report.check_accounting().unwrap();
    assert_nothing_left_running();
}

#[tokio::test]
async fn partition_sends_every_record_to_exactly_one_branch() {
    let (evens, odds) = (Collected::new(), Collected::new());
    let [e, o] = Pipeline::from(source::iter(0..500u32).batch_size(16)).partition(|n| n % 2 == 0);
    let report = e
        .to(sink::collect(&evens))
        .and(o.to(sink::collect(&odds)))
        .run()
        .await
        .unwrap();
    assert_eq!(evens.to_vec(), (0..500).step_by(2).collect::<Vec<_>>());
    assert_eq!(odds.to_vec(), (1..500).step_by(2).collect::<Vec<_>>());
    let part = report.stage("partition#1").unwrap();
    let branch_heads: u64 = report
        .stages()
        .iter()
        .filter(|s| s.inputs == vec![part.id])
        .map(|s| s.records_in)
        .sum();
    assert_eq!(part.records_in, 500);
    assert_eq!(branch_heads, 500, "records in = the branches' records in");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_route_key_out_of_range_aborts_by_default_naming_the_record() {
    let [a, b] = Pipeline::from(source::iter(vec![0usize, 1, 7, 0])).route(|n| *n);
    let report = a
        .to(sink::discard())
        .and(b.to(sink::discard()))
        .run_to_report()
        .await;
    let error = report.error().expect("the run fails");
    let message = error.to_string();
    assert!(message.contains("branch 7"), "{message}");
    assert!(message.contains("only 2"), "{message}");
    assert_eq!(error.stage(), Some("route#1"));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn route_keys_out_of_range_are_skipped_or_dead_lettered_never_silently_dropped() {
    let (a_out, b_out) = (Collected::new(), Collected::new());
    let [a, b] = Pipeline::from(source::iter(vec![0usize, 1, 7, 0, 9])).route(|n| *n);
    let report = a
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&a_out))
        .and(b.to(sink::collect(&b_out)))
        .run()
        .await
        .unwrap();
    assert_eq!((a_out.to_vec(), b_out.to_vec()), (vec![0, 0], vec![1]));
    assert_eq!(report.stage("route#1").unwrap().skipped, 2);
    assert!(report.has_errors());
    report.check_accounting().unwrap();

    let rejects = Collected::<Rejected>::new();
    let [a, b] = Pipeline::from(source::iter(vec![0usize, 5, 1])).route(|n| *n);
    let report = a
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::discard())
        .and(b.to(sink::discard()))
        .run()
        .await
        .unwrap();
    assert_eq!(report.dead_lettered(), 1);
    let rejected = rejects.to_vec();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].record.as_deref(), Some("5"));
}

#[tokio::test]
async fn merge_reads_two_sources_fairly_and_sums_them() {
    let out = Collected::new();
    // An endless source merged with a finite one: the finite one's records
    // all arrive while the endless one is still read (neither starves).
    let report = Pipeline::from(source::iter(0..1_000u64).batch_size(10))
        .merge(Pipeline::from(
            source::iter(1_000_000..1_000_050u64).batch_size(10),
        ))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let got = out.to_vec();
    assert_eq!(got.len(), 1050);
    let last_of_second = got.iter().rposition(|n| *n >= 1_000_000).unwrap();
    assert!(
        last_of_second < 200,
        "the second source waited for the first: its last record came at {last_of_second}"
    );
    // Order within each input is kept.
    let first: Vec<u64> = got.iter().copied().filter(|n| *n < 1_000_000).collect();
    assert_eq!(first, (0..1000).collect::<Vec<_>>());
    assert_eq!(report.records_in(), 1050);
    assert_eq!(report.stage("source").unwrap().records_out, 1000);
    assert_eq!(report.stage("source#1").unwrap().records_out, 50);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn chain_opens_the_second_source_only_when_the_first_ended() {
    let opened_second_at = Arc::new(AtomicU64::new(u64::MAX));
    let read = Arc::new(AtomicU64::new(0));
    let (o, r) = (opened_second_at.clone(), read.clone());
    let second = futures::stream::once(async move {
        o.store(r.load(SeqCst), SeqCst);
        Ok(Batch::new(vec![100u64]))
    });
    let out = Collected::new();
    Pipeline::from(source::iter(0..10u64).batch_size(3))
        .inspect(move |_| {
            read.fetch_add(1, SeqCst);
        })
        .chain(Pipeline::from(second))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]);
    assert_eq!(opened_second_at.load(SeqCst), 10);
}

/// Source records read minus records the sink took, at its worst.
#[derive(Clone, Default)]
struct Lead {
    read: Arc<AtomicU64>,
    max: Arc<AtomicU64>,
}

impl Lead {
    fn sink_took(&self, records: u64, taken: &AtomicU64) {
        let taken = taken.fetch_add(records, SeqCst) + records;
        let lead = self.read.load(SeqCst).saturating_sub(taken);
        self.max.fetch_max(lead, SeqCst);
    }

    /// The sink reached record `n` of the source (numbered from 0): on
    /// paths that filter, progress is the furthest record seen.
    fn sink_reached(&self, n: u64, furthest: &AtomicU64) {
        let furthest = furthest.fetch_max(n + 1, SeqCst).max(n + 1);
        let lead = self.read.load(SeqCst).saturating_sub(furthest);
        self.max.fetch_max(lead, SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_branch_holds_the_source_back_and_memory_stays_bounded() {
    let lead = Lead::default();
    let read = lead.read.clone();
    let [fast, slow] = Pipeline::from(source::iter(0..10_000u64).batch_size(10))
        .inspect(move |_| {
            read.fetch_add(1, SeqCst);
        })
        .tee();
    let taken = Arc::new(AtomicU64::new(0));
    let (l, t) = (lead.clone(), taken.clone());
    let slow_sink = futures::sink::unfold((), move |(), batch: Batch<u64>| {
        let (l, t) = (l.clone(), t.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            l.sink_took(batch.len() as u64, &t);
            Ok::<_, Error>(())
        }
    });
    let report = fast
        .to(sink::discard())
        .and(slow.buffer(1).to(slow_sink))
        .run()
        .await
        .unwrap();
    assert_eq!(taken.load(SeqCst), 10_000);
    // The tee's channel (4 batches), the buffer (1, plus one in hand each
    // side) and the batches in hand: a few batches of 10, never the input.
    let max = lead.max.load(SeqCst);
    assert!(
        max <= 120,
        "the source got {max} records ahead of the slow sink"
    );
    report.check_accounting().unwrap();
}

/// A diamond: fan out, one side slower or thinner, fan back in, one sink.
async fn diamond(split: &str) {
    let lead = Lead::default();
    let read = lead.read.clone();
    let src = Pipeline::from(source::iter(0..5_000u64).batch_size(10)).inspect(move |_| {
        read.fetch_add(1, SeqCst);
    });
    let [a, b] = match split {
        "tee" => src.tee(),
        _ => src.partition(|n| n % 3 == 0),
    };
    let taken = Arc::new(AtomicU64::new(0));
    let (l, t) = (lead.clone(), taken.clone());
    let out = Collected::new();
    let o = out.clone();
    let slow_sink = futures::sink::unfold((), move |(), batch: Batch<u64>| {
        let (l, t, o) = (l.clone(), t.clone(), o.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if let Some(n) = batch.iter().max() {
                l.sink_reached(*n, &t);
            }
            batch.iter().for_each(|n| o.push(*n));
            Ok::<_, Error>(())
        }
    });
    let report = a
        .buffer(1)
        .merge(b.filter(|n| n % 2 == 0).buffer(1))
        .to(slow_sink)
        .run()
        .await
        .unwrap();
    let mut got = out.to_vec();
    got.sort();
    let mut expected: Vec<u64> = match split {
        "tee" => (0..5_000)
            .chain((0..5_000).filter(|n| n % 2 == 0))
            .collect(),
        _ => (0..5_000).filter(|n| n % 3 == 0 || n % 2 == 0).collect(),
    };
    expected.sort();
    assert_eq!(got, expected);
    let max = lead.max.load(SeqCst);
    assert!(max <= 200, "the source got {max} records ahead of the sink");
    report.check_accounting().unwrap();
    assert_nothing_left_running();
}

#[tokio::test(start_paused = true)]
async fn a_tee_diamond_with_one_side_filtered_neither_hangs_nor_runs_ahead() {
    diamond("tee").await;
}

#[tokio::test(start_paused = true)]
async fn a_partition_diamond_neither_hangs_nor_runs_ahead() {
    diamond("partition").await;
}

#[tokio::test]
async fn a_failing_branch_stops_the_others_and_no_output_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, copy) = (dir.path().join("kept.csv"), dir.path().join("copy.jsonl"));
    std::fs::write(&kept, "old\n").unwrap();
    let [a, b] = Pipeline::from(source::iter(0..100_000u64).batch_size(100)).tee();
    let report = a
        .map(|n| (n, n * 2))
        .to(csv::write(&kept))
        .and(
            b.map(|n| {
                assert!(n != 5_000, "record 5000 is bad");
                n
            })
            .to(jsonl::write(&copy)),
        )
        .run_to_report()
        .await;
    let error = report.error().expect("the run fails");
    assert!(error.to_string().contains("record 5000 is bad"), "{error}");
    assert_eq!(error.stage(), Some("map#4"));
    // Stopped promptly: the source was not read to its end.
    assert!(
        report.records_in() < 100_000,
        "read {}",
        report.records_in()
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old\n");
    assert_eq!(entries(dir.path()), vec!["kept.csv"]);
    report.check_accounting().unwrap();
    assert_nothing_left_running();
}

#[tokio::test]
async fn an_isolated_branch_fails_alone_and_the_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (main_out, side_out) = (dir.path().join("main.csv"), dir.path().join("side.jsonl"));
    let [main, side] = Pipeline::from(source::iter(0..10_000u64).batch_size(100)).tee();
    let report = main
        .to(csv::write(&main_out))
        .and(
            side.map(|n| {
                assert!(n != 3_000, "bad record");
                n
            })
            .isolate()
            .to(jsonl::write(&side_out)),
        )
        .run()
        .await
        .unwrap();
    assert!(report.has_errors());
    assert_eq!(report.failed_branches().len(), 1);
    assert_eq!(report.failed_branches()[0].stage(), Some("map#3"));
    let written = std::fs::read_to_string(&main_out).unwrap();
    assert_eq!(written.lines().count(), 10_000);
    assert!(
        !side_out.exists(),
        "the failed branch's output was committed"
    );
    assert_eq!(entries(dir.path()), vec!["main.csv"]);
    let tee = report.stage("tee#1").unwrap();
    assert!(
        tee.abandoned > 0,
        "what the failed branch missed is counted"
    );
    let text = report.to_string();
    assert!(text.starts_with("completed with errors"), "{text}");
    assert!(
        text.contains("isolated branch failed, its output not committed: stage \"map#3\""),
        "{text}"
    );
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_cancelled_graph_commits_nothing_and_accounts_for_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let [a, b] = Pipeline::from(source::iter(0u64..).batch_size(100))
        .inspect(move |n| {
            if *n == 50_000 {
                stop.take().map(|s| s.send(()));
            }
        })
        .tee();
    let report = a
        .to(csv::write(dir.path().join("a.csv")))
        .and(b.buffer(2).to(jsonl::write(dir.path().join("b.jsonl"))))
        .run_until(async move {
            let _ = stopped.await;
        })
        .await;
    assert!(report.is_cancelled());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    report.check_accounting().unwrap();
    assert_nothing_left_running();
}

#[tokio::test]
async fn a_branch_without_a_sink_fails_the_run_before_anything_is_read() {
    let read = Arc::new(AtomicU64::new(0));
    let r = read.clone();
    let [a, _forgotten] = Pipeline::from(source::iter(0..10u64))
        .inspect(move |_| {
            r.fetch_add(1, SeqCst);
        })
        .tee();
    let error = a.to(sink::discard()).run().await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("output 1 of \"tee#2\""), "{message}");
    assert!(message.contains("reaches no sink"), "{message}");
    assert_eq!(read.load(SeqCst), 0);
}

#[tokio::test]
async fn a_sink_that_cannot_open_fails_every_branch_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let read = Arc::new(AtomicU64::new(0));
    let r = read.clone();
    let [a, b] = Pipeline::from(source::iter(0..10u64))
        .inspect(move |_| {
            r.fetch_add(1, SeqCst);
        })
        .tee();
    let error = a
        .to(csv::write(dir.path().join("ok.csv")))
        .and(b.to(csv::write(dir.path().join("missing/dir/out.csv"))))
        .run()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("out.csv"), "{error}");
    assert_eq!(read.load(SeqCst), 0);
    assert!(entries(dir.path()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_tap_never_holds_the_main_path_back_and_counts_what_it_dropped() {
    let out = Collected::new();
    let (main, side) = Pipeline::from(source::iter(0..10_000u64).batch_size(10)).tap();
    let (slow, probe) = dataflare::testkit::slow_sink(Duration::from_secs(1));
    let report = main
        .to(sink::collect(&out))
        .and(side.to(slow))
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 10_000);
    let tap = report.stage("tap#1").unwrap();
    assert!(tap.dropped > 0);
    assert_eq!(probe.record_count() as u64 + tap.dropped, 10_000);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn independent_pipelines_run_as_one_and_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Pipeline::from(source::iter(0..10u64)).to(csv::write(dir.path().join("ok.csv")));
    let failing = Pipeline::from(source::iter(0..10u64))
        .map(|n| 10 / (n as i64 - 5))
        .to(csv::write(dir.path().join("bad.csv")));
    let report = ok.and(failing).run_to_report().await;
    assert!(report.is_failed());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    // Names stay unique: the second pipeline's stages are renumbered.
    let names: Vec<&str> = report.stages().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["source", "sink", "source#2", "map#3", "sink#4"]);
}

#[test]
#[should_panic(expected = "already named \"orders\"")]
fn stage_names_are_unique_in_a_run() {
    let [a, b] = Pipeline::from(source::iter(0..10u64)).name("orders").tee();
    drop(a);
    drop(b.map(|n| n + 1).name("orders"));
}

#[test]
fn describe_draws_every_stage_and_edge() {
    let [a, b] = Pipeline::from(source::iter(0..10u64))
        .name("orders")
        .partition(|n| n % 2 == 0);
    let graph = a.map(|n| n + 1).to(sink::discard()).name("evens").and(
        b.merge(Pipeline::from(source::iter(0..3u64)))
            .to(sink::discard()),
    );
    let mermaid = graph.describe(Format::Mermaid);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    for line in [
        "s0[(\"orders (source)\")]",
        "s1[\"partition#1\"]",
        "s3[/\"evens (sink)\"/]",
        "s4[(\"source\")]", // the first source was renamed: the name is free
        "s0 --> s1",
        "s1 --> s2",
        "s2 --> s3",
        "s1 --> s5",
        "s4 --> s5",
        "s5 --> s6",
    ] {
        assert!(mermaid.contains(line), "missing {line:?} in\n{mermaid}");
    }
    let dot = graph.describe(Format::Dot);
    assert!(dot.starts_with("digraph dataflare {"), "{dot}");
    assert!(dot.contains("s0 -> s1;"), "{dot}");
    assert!(
        dot.contains("s0 [label=\"orders (source)\", shape=cylinder];"),
        "{dot}"
    );
}

#[tokio::test]
async fn zip_pairs_two_sources_by_position_and_ends_with_the_shorter() {
    let out = Collected::new();
    let names = Pipeline::from(source::iter(vec!["a", "b", "c", "d", "e"]).batch_size(2));
    let numbers = Pipeline::from(source::iter(0..1_000_000u64).batch_size(3));
    let report = names
        .zip(numbers)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]
    );
    // The longer input was read no further than needed.
    assert!(report.records_in() < 20, "read {}", report.records_in());
    let zip = report.stage("zip#2").unwrap();
    assert_eq!((zip.records_out, zip.combined), (5, 5));
    report.check_accounting().unwrap();
}

#[test]
#[should_panic(expected = "zip: both inputs belong to one graph")]
fn zip_refuses_two_branches_of_one_fan_out() {
    let [a, b] = Pipeline::from(source::iter(0..10u64)).tee();
    drop(a.zip(b.filter(|n| n % 2 == 0)));
}

/// A sink that takes everything and fails when closed (a commit refused).
struct FailsOnClose;

impl futures::Sink<Batch<u64>> for FailsOnClose {
    type Error = Error;

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn start_send(self: std::pin::Pin<&mut Self>, _: Batch<u64>) -> Result<(), Error> {
        Ok(())
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Err(Error::msg("commit refused")))
    }
}

#[tokio::test]
async fn an_isolated_branch_whose_sink_fails_to_close_is_abandoned_alone() {
    let dir = tempfile::tempdir().unwrap();
    let [main, side] = Pipeline::from(source::iter(0..100u64)).tee();
    let report = main
        .to(csv::write(dir.path().join("main.csv")))
        .and(side.isolate().to(FailsOnClose))
        .run()
        .await
        .unwrap();
    assert!(report.has_errors());
    assert!(
        report.failed_branches()[0]
            .to_string()
            .contains("commit refused")
    );
    assert_eq!(entries(dir.path()), vec!["main.csv"]);

    // Not isolated, the same failure fails the run and nothing is committed.
    let [main, side] = Pipeline::from(source::iter(0..100u64)).tee();
    let report = main
        .to(csv::write(dir.path().join("other.csv")))
        .and(side.to(FailsOnClose))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(entries(dir.path()), vec!["main.csv"]);
}

#[tokio::test(start_paused = true)]
async fn a_filter_behind_a_tee_sees_every_record_once_while_another_branch_holds_them() {
    let out = Collected::new();
    let [slow, filtered] = Pipeline::from(source::iter(0..2_000u64).batch_size(50)).tee();
    // The slow branch holds each batch a while, so the filter's batches are
    // still shared when it runs.
    let (slow_sink, probe) = dataflare::testkit::slow_sink(Duration::from_millis(5));
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let report = slow
        .to(slow_sink)
        .and(
            filtered
                .filter(move |n| {
                    s.fetch_add(1, SeqCst);
                    n % 7 == 0
                })
                .map(|n| n * 10)
                .to(sink::collect(&out)),
        )
        .run()
        .await
        .unwrap();
    assert_eq!(
        seen.load(SeqCst),
        2_000,
        "the predicate ran once per record"
    );
    assert_eq!(
        out.to_vec(),
        (0..2_000)
            .filter(|n| n % 7 == 0)
            .map(|n| n * 10)
            .collect::<Vec<_>>()
    );
    assert_eq!(probe.record_count(), 2_000);
    let filter = report.stage("filter#3").unwrap();
    assert_eq!((filter.records_in, filter.records_out), (2_000, 286));
    let map = report.stage("map#4").unwrap();
    assert_eq!((map.records_in, map.records_out), (286, 286));
    report.check_accounting().unwrap();
}
