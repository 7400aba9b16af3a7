//! Error policies (Abort, Skip, DeadLetter, Retry then a final policy) on every
//! fallible stage — `try_map`, `try_filter`, `try_flat_map`, `try_map_async` —
//! and on a source's record-level errors; `default_policy`, `max_errors`;
//! retries of a flaky transform with their backoff timed in paused time; a
//! failing stage in the middle of a buffered pipeline.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::testkit::Script;
use dataflare::{Backoff, DeadLetters, ErrorKind, MaxErrors, Position, Rejected, Retry};
use futures::stream::BoxStream;
use tokio::time::Instant;

type Boxed<T> = Pipeline<BoxStream<'static, Result<Batch<T>>>>;

/// The cause a failing closure gives: the stage's error must keep it.
#[derive(Debug, Clone, PartialEq)]
struct BadRecord(String);

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad record {:?}", self.0)
    }
}

impl std::error::Error for BadRecord {}

fn parse(s: &str) -> Result<i32, BadRecord> {
    s.parse().map_err(|_| BadRecord(s.to_string()))
}

/// Eight records, four of them bad, two to a batch.
const INPUT: [&str; 8] = ["1", "x", "3", "y", "5", "z", "7", "w"];
const BAD: [&str; 4] = ["x", "y", "z", "w"];
const GOOD: [i32; 4] = [1, 3, 5, 7];

fn input() -> Boxed<&'static str> {
    Pipeline::from(source::iter(INPUT).batch_size(2)).boxed()
}

/// The fallible stages, each parsing a `&str` into an `i32` (so one test body
/// covers all four).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Map,
    Filter,
    FlatMap,
    MapAsync,
}

const KINDS: [Kind; 4] = [Kind::Map, Kind::Filter, Kind::FlatMap, Kind::MapAsync];

impl Kind {
    /// The name of the fallible stage (the first after the source).
    fn stage(self) -> &'static str {
        match self {
            Kind::Map => "try_map#1",
            Kind::Filter => "try_filter#1",
            Kind::FlatMap => "try_flat_map#1",
            Kind::MapAsync => "try_map_async#1",
        }
    }

    /// Adds the stage, counting calls of its closure in `calls`, with `policy`
    /// as its own policy when given.
    fn add(
        self,
        pipeline: Boxed<&'static str>,
        policy: Option<ErrorPolicy>,
        calls: &Arc<AtomicU32>,
    ) -> Boxed<i32> {
        fn with_policy<S: Source>(p: Pipeline<S>, policy: Option<ErrorPolicy>) -> Pipeline<S> {
            match policy {
                Some(policy) => p.on_error(policy),
                None => p,
            }
        }
        let calls = calls.clone();
        match self {
            Kind::Map => with_policy(
                pipeline.try_map(move |s: &&str| {
                    calls.fetch_add(1, SeqCst);
                    parse(s)
                }),
                policy,
            )
            .boxed(),
            Kind::Filter => with_policy(
                pipeline.try_filter(move |s: &&str| {
                    calls.fetch_add(1, SeqCst);
                    parse(s).map(|_| true)
                }),
                policy,
            )
            .map(|s| s.parse::<i32>().unwrap())
            .boxed(),
            Kind::FlatMap => with_policy(
                pipeline.try_flat_map(move |s: &&str| {
                    calls.fetch_add(1, SeqCst);
                    parse(s).map(|n| vec![n])
                }),
                policy,
            )
            .boxed(),
            Kind::MapAsync => with_policy(
                pipeline.try_map_async(2, move |s: &&str| {
                    calls.fetch_add(1, SeqCst);
                    let result = parse(s);
                    async move { result }
                }),
                policy,
            )
            .boxed(),
        }
    }
}

/// Runs `INPUT` through the fallible stage of `kind` under `policy`.
async fn run_kind(
    kind: Kind,
    policy: Option<ErrorPolicy>,
) -> (Report, Collected<i32>, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let out = Collected::new();
    let report = kind
        .add(input(), policy, &calls)
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    (report, out, calls)
}

/// The record-level cause the closure gave, kept as the error's source.
fn cause(error: &Error) -> Option<&BadRecord> {
    std::error::Error::source(error)?.downcast_ref::<BadRecord>()
}

// ---------------------------------------------------------------- Abort

#[tokio::test]
async fn abort_is_the_default_and_names_the_stage_and_the_cause() {
    for kind in KINDS {
        let (report, out, calls) = run_kind(kind, None).await;
        assert!(report.is_failed(), "{kind:?}: {report}");
        let error = report.error().unwrap();
        assert_eq!(error.stage(), Some(kind.stage()), "{kind:?}");
        assert_eq!(
            cause(error),
            Some(&BadRecord("x".into())),
            "{kind:?}: {error:?}"
        );
        assert!(error.is_record_level(), "{kind:?}");
        assert_eq!(error.attempts(), 1, "{kind:?}");
        assert!(
            error
                .to_string()
                .contains(&format!("stage \"{}\"", kind.stage())),
            "{error}"
        );
        // The first batch held the bad record: nothing passed, nothing committed.
        assert_eq!(out.to_vec(), Vec::<i32>::new(), "{kind:?}");
        assert!(!out.is_closed(), "{kind:?}");
        assert_eq!(
            report.skipped() + report.dead_lettered() + report.retried(),
            0
        );
        assert!(
            report.errors().is_empty(),
            "the run's error is in its status"
        );
        // No retry, and the source was not read to its end.
        assert!(calls.load(SeqCst) < 8, "{kind:?}: {}", calls.load(SeqCst));
    }
}

#[tokio::test]
async fn an_explicit_abort_fails_the_same_way() {
    for kind in KINDS {
        let (report, _, _) = run_kind(kind, Some(ErrorPolicy::Abort)).await;
        assert_eq!(report.error().unwrap().stage(), Some(kind.stage()));
        assert!(report.into_result().is_err());
    }
}

#[tokio::test]
async fn records_before_the_failing_batch_are_passed_on() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(["1", "2", "3", "4", "x", "6"]).batch_size(2))
        .try_map(|s: &&str| parse(s))
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(out.to_vec(), vec![1, 2, 3, 4]);
    assert_eq!(report.stage("try_map#1").unwrap().records_out, 4);
    // The stage held the failed batch when it stopped: abandoned, so the
    // stage still balances.
    assert_eq!(report.stage("try_map#1").unwrap().abandoned, 2);
    assert_eq!(report.stage("try_map#1").unwrap().in_flight(), 0);
    report.check_accounting().unwrap();
}

// ---------------------------------------------------------------- Skip

#[tokio::test]
async fn skip_drops_failed_records_counts_them_and_keeps_the_first_errors() {
    for kind in KINDS {
        let (report, out, calls) = run_kind(kind, Some(ErrorPolicy::Skip)).await;
        assert!(report.has_errors(), "{kind:?}: {report}");
        assert!(matches!(report.status(), Status::CompletedWithErrors));
        assert_eq!(out.to_vec(), GOOD, "{kind:?}");
        assert!(out.is_closed());
        assert_eq!(calls.load(SeqCst), 8, "{kind:?}: each record tried once");

        let stage = report.stage(kind.stage()).unwrap();
        assert_eq!(stage.records_in, 8, "{kind:?}");
        assert_eq!(stage.skipped, 4, "{kind:?}");
        assert_eq!(stage.records_out, 4, "{kind:?}");
        assert_eq!(
            stage.dead_lettered + stage.retried + stage.filtered,
            0,
            "{kind:?}"
        );
        assert_eq!(report.skipped(), 4);
        assert_eq!(report.records_out(), 4);
        report.check_accounting().unwrap();

        // The first errors of the stage, in full and in order; the rest counted.
        let errors = report.errors();
        assert_eq!(errors.len(), 3, "{kind:?}: {errors:?}");
        for (error, bad) in errors.iter().zip(BAD) {
            assert_eq!(error.stage(), Some(kind.stage()));
            assert_eq!(cause(error), Some(&BadRecord(bad.into())), "{error:?}");
            assert_eq!(error.attempts(), 1);
            assert!(error.is_record_level());
            assert!(
                error.to_string().contains(&format!("bad record {bad:?}")),
                "{error}"
            );
        }
    }
}

#[tokio::test]
async fn a_completed_run_with_skips_is_ok_for_run() {
    let report = Pipeline::from(source::iter(["1", "x"]))
        .try_map(|s: &&str| parse(s))
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .expect("skipping is not failing");
    assert!(report.has_errors());
    assert!(!report.is_completed());
    assert!(report.to_string().contains("1 skipped"), "{report}");
}

#[tokio::test]
async fn try_flat_map_accounts_expansion_and_failures_together() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(["2", "x", "0", "3"]).batch_size(4))
        .try_flat_map(|s: &&str| parse(s).map(|n| vec![n; n as usize]))
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![2, 2, 3, 3, 3]);
    let stage = report.stage("try_flat_map#1").unwrap();
    assert_eq!(
        (stage.records_in, stage.records_out, stage.skipped),
        (4, 5, 1)
    );
    // Net per batch: 3 accepted records became 5.
    assert_eq!((stage.expanded, stage.filtered), (2, 0));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn try_filter_counts_rejections_as_filtered_and_failures_as_skipped() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(["10", "x", "200", "7", "y"]))
        .try_filter(|s: &&str| parse(s).map(|n| n > 50))
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec!["200"]);
    let stage = report.stage("try_filter#1").unwrap();
    assert_eq!(
        (stage.filtered, stage.skipped, stage.records_out),
        (2, 2, 1)
    );
    report.check_accounting().unwrap();
}

// ---------------------------------------------------------------- DeadLetter

#[tokio::test]
async fn dead_letter_collects_each_rejected_record_with_its_error() {
    for kind in KINDS {
        let rejects = Collected::<Rejected>::new();
        let policy = ErrorPolicy::from(DeadLetters::to(sink::collect(&rejects)));
        let (report, out, _) = run_kind(kind, Some(policy)).await;
        assert!(report.has_errors(), "{kind:?}: {report}");
        assert_eq!(out.to_vec(), GOOD, "{kind:?}");
        assert_eq!(report.dead_lettered(), 4);
        assert_eq!(report.skipped(), 0);
        assert_eq!(report.stage(kind.stage()).unwrap().dead_lettered, 4);
        assert_eq!(report.errors().len(), 3);
        report.check_accounting().unwrap();

        assert!(
            rejects.is_closed(),
            "{kind:?}: the dead-letter sink is closed"
        );
        let rejects = rejects.to_vec();
        assert_eq!(rejects.len(), 4, "{kind:?}");
        for (r, bad) in rejects.iter().zip(BAD) {
            assert_eq!(r.stage, kind.stage());
            assert_eq!(r.record.as_deref(), Some(format!("{bad:?}").as_str()));
            assert!(
                r.error.contains(&format!("bad record {bad:?}")),
                "{}",
                r.error
            );
            assert!(r.error.contains(kind.stage()), "{}", r.error);
            assert_eq!(r.attempts, 1);
            assert_eq!((r.line, r.byte), (None, None));
        }
    }
}

#[tokio::test]
async fn the_error_text_of_a_reject_includes_the_whole_cause_chain() {
    #[derive(Debug)]
    struct Outer(BadRecord);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("lookup failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    let rejects = Collected::<Rejected>::new();
    Pipeline::from(source::iter(["q"]))
        .try_map(|s: &&str| parse(s).map_err(Outer))
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let r = &rejects.to_vec()[0];
    assert_eq!(
        r.error,
        "stage \"try_map#1\": record 1: lookup failed: bad record \"q\""
    );
    assert_eq!(r.record_index, Some(0));
}

#[tokio::test]
async fn one_dead_letter_sink_takes_rejects_from_several_stages() {
    let rejects = Collected::<Rejected>::new();
    let dead_letters = DeadLetters::to(sink::collect(&rejects));
    let out = Collected::new();
    let report = Pipeline::from(source::iter(["1", "x", "30", "4"]))
        .try_map(|s: &&str| parse(s))
        .on_error(dead_letters.clone())
        .try_map(|n: &i32| {
            if *n > 10 {
                Err(Error::msg(format!("{n} is too big")))
            } else {
                Ok(n * 2)
            }
        })
        .on_error(dead_letters)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![2, 8]);
    assert_eq!(report.dead_lettered(), 2);
    let rejects = rejects.to_vec();
    let seen: Vec<_> = rejects
        .iter()
        .map(|r| (r.stage.as_str(), r.record.as_deref().unwrap()))
        .collect();
    assert_eq!(seen, vec![("try_map#1", "\"x\""), ("try_map#2", "30")]);
    assert!(rejects[1].error.contains("30 is too big"));
}

#[tokio::test]
async fn dead_letters_seen_before_a_failure_are_kept() {
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(source::iter(["x", "1", "y", "2", "-5", "z", "3"]).batch_size(1))
        .try_map(|s: &&str| parse(s))
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .name("parse")
        .try_map(|n: &i32| {
            if *n < 0 {
                Err(Error::msg("negative"))
            } else {
                Ok(*n)
            }
        })
        .to(sink::discard())
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(report.error().unwrap().stage(), Some("try_map#2"));
    let seen: Vec<_> = rejects
        .to_vec()
        .into_iter()
        .map(|r| (r.stage, r.record.unwrap()))
        .collect();
    let want =
        [("parse", "\"x\""), ("parse", "\"y\"")].map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(
        seen, want,
        "the rejects before the failure, under the stage's own name"
    );
    assert!(rejects.is_closed(), "and the dead-letter sink is closed");
}

// ---------------------------------------------------------------- Retry

fn retry(max: u32) -> Retry {
    ErrorPolicy::retry(max).backoff(Backoff::none())
}

#[tokio::test]
async fn retry_then_skip() {
    for kind in KINDS {
        let (report, out, calls) =
            run_kind(kind, Some(retry(3).then(ErrorPolicy::Skip).into())).await;
        assert!(report.has_errors(), "{kind:?}: {report}");
        assert_eq!(out.to_vec(), GOOD);
        // 4 good records once, 4 bad ones 3 times each.
        assert_eq!(calls.load(SeqCst), 4 + 4 * 3, "{kind:?}");
        assert_eq!(report.retried(), 4 * 2, "{kind:?}");
        assert_eq!(report.skipped(), 4);
        let stage = report.stage(kind.stage()).unwrap();
        assert_eq!((stage.retried, stage.skipped), (8, 4));
        report.check_accounting().unwrap();
        for error in report.errors() {
            assert_eq!(error.attempts(), 3);
            assert!(error.to_string().contains("after 3 attempts"), "{error}");
        }
    }
}

#[tokio::test]
async fn retry_then_dead_letter() {
    for kind in KINDS {
        let rejects = Collected::<Rejected>::new();
        let policy = retry(2).then(DeadLetters::to(sink::collect(&rejects)));
        let (report, out, calls) = run_kind(kind, Some(policy.into())).await;
        assert!(report.has_errors(), "{kind:?}: {report}");
        assert_eq!(out.to_vec(), GOOD);
        assert_eq!(calls.load(SeqCst), 4 + 4 * 2, "{kind:?}");
        assert_eq!((report.retried(), report.dead_lettered()), (4, 4));
        let rejects = rejects.to_vec();
        assert_eq!(rejects.len(), 4, "{kind:?}");
        assert!(rejects.iter().all(|r| r.attempts == 2));
        assert!(rejects.iter().all(|r| r.error.contains("after 2 attempts")));
    }
}

#[tokio::test]
async fn retry_then_abort_is_the_default_final_policy() {
    for kind in KINDS {
        for policy in [retry(4), retry(4).then(ErrorPolicy::Abort)] {
            let (report, out, _) = run_kind(kind, Some(policy.into())).await;
            assert!(report.is_failed(), "{kind:?}");
            let error = report.error().unwrap();
            assert_eq!(error.stage(), Some(kind.stage()));
            assert_eq!(error.attempts(), 4, "{kind:?}");
            assert_eq!(cause(error), Some(&BadRecord("x".into())));
            assert!(error.to_string().contains("after 4 attempts"), "{error}");
            assert_eq!(report.retried(), 3, "{kind:?}");
            assert!(!out.is_closed());
        }
    }
}

#[tokio::test]
async fn any_error_a_closure_returns_is_about_its_record() {
    // Even a dataflare::Error of a kind that is stream-level elsewhere.
    let out = Collected::new();
    let report = Pipeline::from(source::iter(vec![1, 2, 3]))
        .try_map(|n: &i32| {
            if *n == 2 {
                Err(Error::config("not a record problem?"))
            } else {
                Ok(*n)
            }
        })
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![1, 3]);
    assert_eq!(report.skipped(), 1);
    assert!(matches!(report.errors()[0].kind(), ErrorKind::Config(_)));
}

#[tokio::test]
async fn a_panic_in_a_fallible_closure_fails_the_run_whatever_the_policy() {
    let report = Pipeline::from(source::iter(vec![1, 2, 3]))
        .try_map(|n: &i32| -> Result<i32, BadRecord> {
            assert!(*n != 2, "two is right out");
            Ok(*n)
        })
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("a panic is not a record error");
    assert!(error.is_panic());
    assert_eq!(error.stage(), Some("try_map#1"));
    assert!(error.to_string().contains("two is right out"));
}

// ---------------------------------------------------------------- source errors

fn bad_row(n: u64) -> Error {
    Error::parse(format!("bad row {n}"))
        .with_position(Position::new().record(n).line(n + 2).byte(10 * n))
}

/// Batches [1, 2], a bad row, [3], a bad row, [4].
fn script() -> Script<i32> {
    Script::new()
        .batch(vec![1, 2])
        .error(bad_row(2))
        .batch(vec![3])
        .error(bad_row(4))
        .batch(vec![4])
}

#[tokio::test]
async fn a_source_error_aborts_by_default() {
    let out = Collected::new();
    let report = Pipeline::from(script().into_source())
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    let error = report.error().unwrap();
    assert_eq!(error.stage(), Some("source"));
    assert!(matches!(error.kind(), ErrorKind::Parse(m) if m == "bad row 2"));
    assert_eq!(error.position().line, Some(4));
    assert_eq!(error.attempts(), 1);
    assert_eq!(out.to_vec(), vec![1, 2]);
    assert!(!out.is_closed());
}

#[tokio::test]
async fn a_source_error_is_skipped_and_counted() {
    let out = Collected::new();
    let report = Pipeline::from(script().into_source())
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert!(report.has_errors());
    assert_eq!(out.to_vec(), vec![1, 2, 3, 4]);
    let source = report.stage("source").unwrap();
    assert_eq!((source.skipped, source.records_out), (2, 4));
    assert_eq!(report.records_in(), 4);
    report.check_accounting().unwrap();
    let errors = report.errors();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1].position().record, Some(4));
    assert_eq!(errors[1].stage(), Some("source"));
}

#[tokio::test]
async fn a_source_error_is_dead_lettered_with_its_position() {
    let rejects = Collected::<Rejected>::new();
    let out = Collected::new();
    let report = Pipeline::from(script().into_source())
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![1, 2, 3, 4]);
    assert_eq!(report.dead_lettered(), 2);
    let rejects = rejects.to_vec();
    assert_eq!(rejects.len(), 2);
    let r = &rejects[0];
    assert_eq!(r.stage, "source");
    assert_eq!(
        r.record, None,
        "a source's bad input has its position instead"
    );
    assert_eq!(
        (r.record_index, r.line, r.byte),
        (Some(2), Some(4), Some(20))
    );
    assert!(r.error.contains("bad row 2"), "{}", r.error);
    assert_eq!(r.attempts, 1);
}

/// A source cannot retry (`on_error(retry)` on it panics, see
/// tests/policy_placement.rs); a pipeline-wide retry applies its final
/// policy to the source's failed records.
#[tokio::test]
async fn a_source_error_under_a_default_retry_goes_straight_to_the_final_policy() {
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(script().into_source())
        .default_policy(retry(5).then(DeadLetters::to(sink::collect(&rejects))))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.retried(), 0, "a source cannot be asked again");
    assert_eq!(report.dead_lettered(), 2);
    assert!(rejects.to_vec().iter().all(|r| r.attempts == 1));

    let report = Pipeline::from(script().into_source())
        .default_policy(retry(5))
        .to(sink::discard())
        .run_to_report()
        .await;
    assert_eq!(report.error().unwrap().stage(), Some("source"));
    assert_eq!(report.retried(), 0);
}

#[tokio::test]
async fn a_stream_level_source_error_ends_the_run_whatever_the_policy() {
    let source = Script::new()
        .batch(vec![1])
        .error(Error::msg("disk on fire"))
        .batch(vec![2])
        .into_source();
    let report = Pipeline::from(source)
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().unwrap();
    assert_eq!(error.to_string(), "stage \"source\": disk on fire");
    assert_eq!(report.skipped(), 0);
}

// ---------------------------------------------------------------- default_policy

#[tokio::test]
async fn default_policy_applies_to_stages_without_their_own() {
    let rejects = Collected::<Rejected>::new();
    let out = Collected::new();
    let report = Pipeline::from(script().into_source().map_ok_strings())
        .default_policy(ErrorPolicy::Skip)
        .try_map(|s: &String| parse(s))
        .try_filter(|n: &i32| {
            if *n == 3 {
                Err(BadRecord("three".into()))
            } else {
                Ok(true)
            }
        })
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![2, 4]);
    // The source and the try_map have no policy of their own: they skip.
    assert_eq!(report.stage("source").unwrap().skipped, 2);
    assert_eq!(report.stage("try_map#1").unwrap().skipped, 1); // "one"
    // The try_filter has its own.
    let filter = report.stage("try_filter#2").unwrap();
    assert_eq!((filter.skipped, filter.dead_lettered), (0, 1));
    assert_eq!(rejects.len(), 1);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn default_policy_set_after_the_stages_applies_too() {
    let report = Pipeline::from(source::iter(INPUT))
        .try_map(|s: &&str| parse(s))
        .try_map(|n: &i32| {
            if *n == 5 {
                Err(BadRecord("5".into()))
            } else {
                Ok(*n)
            }
        })
        .default_policy(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.stage("try_map#1").unwrap().skipped, 4);
    assert_eq!(report.stage("try_map#2").unwrap().skipped, 1);
    assert_eq!(report.records_out(), 3);
}

#[tokio::test]
async fn a_stage_s_own_abort_beats_the_default() {
    let report = Pipeline::from(source::iter(INPUT))
        .try_map(|s: &&str| parse(s))
        .on_error(ErrorPolicy::Abort)
        .default_policy(ErrorPolicy::Skip)
        .to(sink::discard())
        .run_to_report()
        .await;
    assert_eq!(report.error().unwrap().stage(), Some("try_map#1"));
}

#[tokio::test]
async fn a_dead_letter_default_policy_is_driven() {
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(source::iter(INPUT))
        .default_policy(retry(2).then(DeadLetters::to(sink::collect(&rejects))))
        .try_map(|s: &&str| parse(s))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.dead_lettered(), 4);
    assert_eq!(report.retried(), 4);
    assert_eq!(rejects.len(), 4);
    assert!(rejects.is_closed());
}

/// Turns the script's `i32`s into strings, and 1 into "one" (which does not parse).
trait MapOkStrings {
    fn map_ok_strings(self) -> BoxStream<'static, Result<Batch<String>>>;
}

impl MapOkStrings for dataflare::testkit::Scripted<i32> {
    fn map_ok_strings(self) -> BoxStream<'static, Result<Batch<String>>> {
        use futures::{StreamExt, TryStreamExt};
        self.map_ok(|b| {
            b.map_records(|r| {
                r.into_iter()
                    .map(|n| {
                        if n == 1 {
                            "one".to_string()
                        } else {
                            n.to_string()
                        }
                    })
                    .collect()
            })
        })
        .boxed()
    }
}

// ---------------------------------------------------------------- max_errors

async fn run_with_max(max: Option<MaxErrors>) -> (Report, Collected<i32>) {
    let out = Collected::new();
    let mut p = Pipeline::from(source::iter(INPUT).batch_size(3))
        .try_map(|s: &&str| parse(s))
        .on_error(ErrorPolicy::Skip);
    if let Some(max) = max {
        p = p.max_errors(max);
    }
    let report = p.to(sink::collect(&out)).run_to_report().await;
    (report, out)
}

#[tokio::test]
async fn max_errors_count_turns_completed_with_errors_into_failed() {
    let (report, _) = run_with_max(None).await;
    assert!(report.has_errors());
    let (report, _) = run_with_max(Some(MaxErrors::Count(4))).await;
    assert!(report.has_errors(), "4 failed, 4 allowed: {report}");
    let (report, out) = run_with_max(Some(MaxErrors::Count(3))).await;
    assert!(report.is_failed(), "4 failed, 3 allowed: {report}");
    let msg = report.error().unwrap().to_string();
    assert!(
        msg.contains("4 of 8 records failed") && msg.contains("max_errors"),
        "{msg}"
    );
    // Checked before the sink commits: a failed run's sink is never closed.
    assert!(!out.is_closed());
    // The counts are still there to read.
    assert_eq!(report.skipped(), 4);
    assert_eq!(report.errors().len(), 3);
    let (report, _) = run_with_max(Some(MaxErrors::Count(0))).await;
    assert!(report.is_failed());
}

#[tokio::test]
async fn max_errors_rate_compares_with_the_records_the_source_produced() {
    // 4 of 8 records fail: a rate of 0.5 is allowed, less is not.
    let (report, _) = run_with_max(Some(MaxErrors::Rate(0.5))).await;
    assert!(report.has_errors(), "{report}");
    let (report, _) = run_with_max(Some(MaxErrors::Rate(0.49))).await;
    assert!(report.is_failed(), "{report}");
    let (report, _) = run_with_max(Some(MaxErrors::Rate(0.0))).await;
    assert!(report.is_failed(), "{report}");
}

#[tokio::test]
async fn max_errors_counts_dead_letters_and_source_errors_too() {
    // The source yields 4 good records and 2 bad rows: 6 produced.
    let run = |max: MaxErrors| {
        let rejects = Collected::<Rejected>::new();
        Pipeline::from(script().into_source())
            .on_error(ErrorPolicy::Skip)
            .try_map(|n: &i32| {
                if *n == 4 {
                    Err(BadRecord("4".into()))
                } else {
                    Ok(*n)
                }
            })
            .on_error(DeadLetters::to(sink::collect(&rejects)))
            .max_errors(max)
            .to(sink::discard())
            .run_to_report()
    };
    // 3 failed of 6.
    assert!(run(MaxErrors::Count(3)).await.has_errors());
    assert!(run(MaxErrors::Count(2)).await.is_failed());
    assert!(run(MaxErrors::Rate(0.5)).await.has_errors());
    assert!(run(MaxErrors::Rate(0.4)).await.is_failed());
}

#[tokio::test]
async fn max_errors_does_not_touch_a_clean_run() {
    let report = Pipeline::from(source::iter(["1", "2"]))
        .try_map(|s: &&str| parse(s))
        .max_errors(MaxErrors::Count(0))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
}

// ---------------------------------------------------------------- flaky transforms

/// A transform that fails the first `k` attempts at each record, then doubles
/// it; remembers when each attempt was made.
#[derive(Clone)]
struct Flaky {
    k: u32,
    attempts: Arc<Mutex<HashMap<u32, Vec<Instant>>>>,
}

impl Flaky {
    fn new(k: u32) -> Self {
        Flaky {
            k,
            attempts: Arc::default(),
        }
    }

    fn call(&self, x: u32) -> Result<u32, Error> {
        let mut attempts = self.attempts.lock().unwrap();
        let seen = attempts.entry(x).or_default();
        seen.push(Instant::now());
        if seen.len() as u32 <= self.k {
            Err(Error::msg(format!("{x} is busy")))
        } else {
            Ok(x * 2)
        }
    }

    /// Gaps between consecutive attempts at each record.
    fn gaps(&self) -> HashMap<u32, Vec<Duration>> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .map(|(x, at)| (*x, at.windows(2).map(|w| w[1] - w[0]).collect()))
            .collect()
    }
}

fn exact(initial_ms: u64) -> Backoff {
    Backoff::exponential(Duration::from_millis(initial_ms)).jitter(false)
}

#[allow(non_snake_case)]
fn MS(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[tokio::test(start_paused = true)]
async fn a_flaky_try_map_async_delivers_every_record_in_order_after_exact_backoffs() {
    let flaky = Flaky::new(3);
    let f = flaky.clone();
    let out = Collected::new();
    let start = Instant::now();
    let report = Pipeline::from(source::iter(0..6u32).batch_size(4))
        .try_map_async(8, move |x: &u32| {
            let r = f.call(*x);
            async move { r }
        })
        .on_error(ErrorPolicy::retry(4).backoff(exact(100)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    // All records at once (concurrency 8): 100 + 200 + 400 ms of backoff.
    assert_eq!(start.elapsed(), MS(700));
    assert_eq!(out.to_vec(), vec![0, 2, 4, 6, 8, 10]);
    assert!(report.is_completed(), "{report}");
    assert_eq!(report.retried(), 6 * 3);
    assert_eq!(report.stage("try_map_async#1").unwrap().retried, 18);
    for (x, gaps) in flaky.gaps() {
        assert_eq!(gaps, vec![MS(100), MS(200), MS(400)], "record {x}");
    }
    report.check_accounting().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_flaky_try_map_async_with_concurrency_one_waits_record_by_record() {
    let flaky = Flaky::new(2);
    let f = flaky.clone();
    let out = Collected::new();
    let start = Instant::now();
    let report = Pipeline::from(source::iter(0..3u32))
        .try_map_async(1, move |x: &u32| {
            let r = f.call(*x);
            async move { r }
        })
        .on_error(ErrorPolicy::retry(3).backoff(exact(50)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(start.elapsed(), MS(3 * (50 + 100)));
    assert_eq!(out.to_vec(), vec![0, 2, 4]);
    assert_eq!(report.retried(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_flaky_try_map_retries_in_place_keeping_order() {
    let flaky = Flaky::new(2);
    let f = flaky.clone();
    let out = Collected::new();
    let start = Instant::now();
    let report = Pipeline::from(source::iter(0..5u32).batch_size(2))
        .try_map(move |x: &u32| f.call(*x))
        .on_error(ErrorPolicy::retry(3).backoff(exact(100).max(MS(150))))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    // One record at a time: 100 ms then 150 (capped) each.
    assert_eq!(start.elapsed(), MS(5 * 250));
    assert_eq!(out.to_vec(), vec![0, 2, 4, 6, 8]);
    assert_eq!(report.retried(), 10);
    assert!(report.is_completed());
    for (x, gaps) in flaky.gaps() {
        assert_eq!(gaps, vec![MS(100), MS(150)], "record {x}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_flaky_record_exhausting_its_retries_takes_the_final_policy_after_the_backoffs() {
    let flaky = Flaky::new(10);
    let f = flaky.clone();
    let start = Instant::now();
    let report = Pipeline::from(source::iter(vec![1u32]))
        .try_map(move |x: &u32| f.call(*x))
        .on_error(
            ErrorPolicy::retry(3)
                .backoff(exact(100))
                .then(ErrorPolicy::Skip),
        )
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(start.elapsed(), MS(300), "no wait after the last attempt");
    assert_eq!((report.retried(), report.skipped()), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_stays_between_half_and_the_full_delay() {
    let flaky = Flaky::new(3);
    let f = flaky.clone();
    let out = Collected::new();
    let start = Instant::now();
    Pipeline::from(source::iter(0..8u32))
        .try_map_async(8, move |x: &u32| {
            let r = f.call(*x);
            async move { r }
        })
        .on_error(ErrorPolicy::retry(4).backoff(Backoff::exponential(MS(100)).jitter(true)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 8);
    let elapsed = start.elapsed();
    assert!(elapsed >= MS(350) && elapsed <= MS(700), "{elapsed:?}");
    let full = [MS(100), MS(200), MS(400)];
    let mut below_full = 0;
    for (x, gaps) in flaky.gaps() {
        assert_eq!(gaps.len(), 3);
        for (gap, full) in gaps.iter().zip(full) {
            assert!(
                *gap >= full / 2 && *gap <= full,
                "record {x}: {gap:?} vs {full:?}"
            );
            if *gap < full {
                below_full += 1;
            }
        }
    }
    assert!(below_full > 0, "jitter never shortened a delay");
}

// ---------------------------------------------------------------- a failure mid-pipeline

/// Work that never completes, holding `held` (a clone of a counted `Arc`) until dropped.
async fn never_completes<T>(held: Arc<()>) -> T {
    let _held = held;
    std::future::pending::<T>().await
}

#[tokio::test]
async fn a_stage_aborting_between_buffers_ends_the_run_and_every_task() {
    for flavor in 0..2 {
        let held = Arc::new(());
        let (h1, h2) = (held.clone(), held.clone());
        let out = Collected::new();
        let run = Pipeline::from(source::iter(0..1000u32).batch_size(1))
            // Records past 20 hang forever, each holding a clone of `held`.
            .map_async(4, move |x| {
                let h = h1.clone();
                async move {
                    if x > 20 {
                        never_completes::<()>(h).await;
                    }
                    x
                }
            })
            .buffer(2)
            .try_map(move |x: &u32| {
                if *x == 10 {
                    Err(BadRecord(x.to_string()))
                } else {
                    Ok(*x)
                }
            })
            .on_error(if flavor == 0 {
                ErrorPolicy::Abort
            } else {
                retry(2).into()
            })
            .buffer(2)
            // Room for more than the hanging records: it keeps reading upstream.
            .try_map_async(8, move |x: &u32| {
                let (x, h) = (*x, h2.clone());
                async move {
                    if x > 5 {
                        never_completes::<()>(h).await;
                    }
                    Ok::<_, Error>(x)
                }
            })
            .to(sink::collect(&out))
            .run_to_report();
        let report = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the run must end, not hang");
        assert!(report.is_failed(), "{report}");
        let error = report.error().unwrap();
        assert_eq!(error.stage(), Some("try_map#3"), "{error}");
        assert_eq!(cause(error), Some(&BadRecord("10".into())));
        assert_eq!(error.attempts(), if flavor == 0 { 1 } else { 2 });
        assert!(!out.is_closed());
        let got = out.to_vec();
        assert!(
            got.len() <= 6 && got.iter().copied().eq(0..got.len() as u32),
            "{got:?}"
        );
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "every task holding a clone was stopped and dropped before run returned"
        );
    }
}

#[tokio::test]
async fn a_try_map_async_aborting_stops_its_other_work_in_flight() {
    let held = Arc::new(());
    let h = held.clone();
    let report = Pipeline::from(source::iter(0..100u32).batch_size(7))
        .buffer(2)
        .try_map_async(8, move |x: &u32| {
            let (x, h) = (*x, h.clone());
            async move {
                match x {
                    3 => Err(BadRecord("3".into())),
                    x if x > 3 => never_completes(h).await,
                    x => Ok(x),
                }
            }
        })
        .buffer(2)
        .to(sink::discard())
        .run_to_report();
    let report = tokio::time::timeout(Duration::from_secs(30), report)
        .await
        .expect("no hang");
    assert_eq!(report.error().unwrap().stage(), Some("try_map_async#2"));
    assert_eq!(Arc::strong_count(&held), 1);
}

#[tokio::test]
async fn a_try_map_async_aborts_without_waiting_for_the_records_before_the_failure() {
    let held = Arc::new(());
    let h = held.clone();
    let report = Pipeline::from(source::iter(0..10u32))
        .try_map_async(4, move |x: &u32| {
            let (x, h) = (*x, h.clone());
            async move {
                match x {
                    0 => never_completes(h).await, // the first record never finishes
                    2 => Err(BadRecord("2".into())),
                    x => Ok(x),
                }
            }
        })
        .to(sink::discard())
        .run_to_report();
    let report = tokio::time::timeout(Duration::from_secs(30), report)
        .await
        .expect("the failure of record 2 ends the run");
    assert_eq!(cause(report.error().unwrap()), Some(&BadRecord("2".into())));
    assert_eq!(Arc::strong_count(&held), 1);
}

#[tokio::test]
async fn a_failed_record_is_named_by_its_index_in_the_stage_input() {
    let input = ["1", "2", "x", "4", "y"];
    let report = Pipeline::from(source::iter(input).batch_size(2))
        .try_map(|s: &&str| s.parse::<i32>())
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let at: Vec<_> = report
        .errors()
        .iter()
        .map(|e| e.position().record)
        .collect();
    assert_eq!(at, vec![Some(2), Some(4)]);
    assert!(report.errors()[0].to_string().contains("record 3"));

    let report = Pipeline::from(source::iter(input).batch_size(2))
        .try_map_async(2, |s: &&str| {
            let parsed = s.parse::<i32>();
            async move { parsed }
        })
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let at: Vec<_> = report
        .errors()
        .iter()
        .map(|e| e.position().record)
        .collect();
    assert_eq!(at, vec![Some(2), Some(4)]);
}
