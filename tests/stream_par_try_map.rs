//! `par_try_map`: the stage's error policy (skip, dead letter, retry, abort)
//! gives what a sequential `try_map` gives (same records out, in order, same
//! counts, same rejects), every record accounted for; panics and aborts
//! fail the run naming the stage.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::{Backoff, DeadLetters, Rejected};
use proptest::prelude::*;
use support::runtime;

#[derive(Debug, Clone, Copy)]
enum Policy {
    Skip,
    DeadLetter,
    /// Two attempts without backoff; the record fails both, then is skipped.
    RetryThenSkip,
    /// Up to three attempts; the record fails its first two, then succeeds.
    RetrySucceeds,
}

#[derive(Debug)]
struct Failed(u32);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.0)
    }
}

impl std::error::Error for Failed {}

/// The closure under test: fails records with `x % k == r` (for
/// `RetrySucceeds`, only their first two attempts), counting attempts per
/// record; some CPU work on the others.
fn closure(
    k: u32,
    r: u32,
    policy: Policy,
) -> impl Fn(&(usize, u32)) -> Result<u64, Failed> + Send + Sync + Clone + 'static {
    let attempts: Arc<Mutex<HashMap<usize, u32>>> = Arc::default();
    move |&(i, x): &(usize, u32)| {
        let attempt = {
            let mut attempts = attempts.lock().unwrap();
            let a = attempts.entry(i).or_default();
            *a += 1;
            *a
        };
        let fails = x % k == r && !(matches!(policy, Policy::RetrySucceeds) && attempt > 2);
        if fails {
            return Err(Failed(x));
        }
        Ok((0..x % 29).fold(u64::from(x), |h, i| {
            (h ^ u64::from(i)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        }))
    }
}

fn error_policy(policy: Policy, rejects: &DeadLetters) -> ErrorPolicy {
    match policy {
        Policy::Skip => ErrorPolicy::Skip,
        Policy::DeadLetter => rejects.clone().into(),
        Policy::RetryThenSkip => ErrorPolicy::retry(2)
            .backoff(Backoff::none())
            .then(ErrorPolicy::Skip)
            .into(),
        Policy::RetrySucceeds => ErrorPolicy::retry(3).backoff(Backoff::none()).into(),
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Skip),
        Just(Policy::DeadLetter),
        Just(Policy::RetryThenSkip),
        Just(Policy::RetrySucceeds),
    ]
}

/// What a run gave: records out, the fallible stage's counters, rejects
/// (record, index, attempts), and whether its accounting balanced.
type Outcome = (
    Vec<u64>,
    [u64; 6],
    Vec<(Option<String>, Option<u64>, u32)>,
    Result<(), String>,
);

fn run(
    parallel: Option<usize>,
    input: &[(usize, u32)],
    batch: usize,
    k: u32,
    r: u32,
    policy: Policy,
) -> Outcome {
    let out = Collected::new();
    let rejects: Collected<Rejected> = Collected::new();
    let dead_letters = DeadLetters::to(sink::collect(&rejects));
    let source = source::iter(input.to_vec()).batch_size(batch);
    let f = closure(k, r, policy);
    let (report, stage) = runtime().block_on(async {
        match parallel {
            Some(n) => (
                Pipeline::from(source)
                    .par_try_map(n, f)
                    .on_error(error_policy(policy, &dead_letters))
                    .to(sink::collect(&out))
                    .run_to_report()
                    .await,
                "par_try_map#1",
            ),
            None => (
                Pipeline::from(source)
                    .try_map(f)
                    .on_error(error_policy(policy, &dead_letters))
                    .to(sink::collect(&out))
                    .run_to_report()
                    .await,
                "try_map#1",
            ),
        }
    });
    assert!(report.error().is_none(), "{:?}", report.error());
    let s = report.stage(stage).unwrap();
    let counts = [
        s.records_in,
        s.records_out,
        s.skipped,
        s.dead_lettered,
        s.retried,
        s.abandoned,
    ];
    let rejects = rejects
        .to_vec()
        .into_iter()
        .map(|r| {
            assert_eq!(r.stage, stage);
            assert!(r.error.contains("failed"), "{}", r.error);
            (r.record, r.record_index, r.attempts)
        })
        .collect();
    (out.to_vec(), counts, rejects, report.check_accounting())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Under every policy, `par_try_map` gives what `try_map` gives: the same
    /// records in the same order, the same counts, the same rejects (same
    /// record, index and attempts), every record accounted for.
    #[test]
    fn par_try_map_equals_try_map(
        values in prop::collection::vec(0..1000u32, 0..400),
        batch in 1..90usize,
        n in 1..5usize,
        (k, r) in (1..8u32).prop_flat_map(|k| (Just(k), 0..k)),
        policy in policy(),
    ) {
        let input: Vec<(usize, u32)> = values.into_iter().enumerate().collect();
        let sequential = run(None, &input, batch, k, r, policy);
        let parallel = run(Some(n), &input, batch, k, r, policy);
        prop_assert_eq!(&parallel.3, &Ok(()));
        prop_assert_eq!(parallel, sequential);
    }
}

fn numbered(n: u32) -> Vec<(usize, u32)> {
    (0..n).enumerate().collect()
}

/// The default policy aborts: the run fails on the first failed record in
/// input order, naming the stage and the record; nothing after it is
/// passed on, and every record is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_under_abort_fails_the_run_at_that_record() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(numbered(5000)).batch_size(100))
        .par_try_map(2, |&(_, x): &(usize, u32)| {
            if x == 3210 || x == 4000 {
                Err(Failed(x))
            } else {
                Ok(x)
            }
        })
        .name("parse")
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    let error = report.error().expect("the run fails");
    let text = error.to_string();
    assert!(
        text.contains("parse") && text.contains("3210 failed"),
        "{text}"
    );
    assert!(text.contains("record 3211"), "{text}");
    let got = out.to_vec();
    assert!(got.len() <= 3200, "{} records passed on", got.len());
    assert_eq!(got, (0..got.len() as u32).collect::<Vec<_>>());
    assert_eq!(report.check_accounting(), Ok(()));
}

/// A retried record waits out its backoff and keeps its place: the output
/// is in input order, the retries counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_backoff_keep_input_order() {
    let out = Collected::new();
    let f = closure(50, 7, Policy::RetrySucceeds);
    let report = Pipeline::from(source::iter(numbered(2000)).batch_size(64))
        .par_try_map(3, f)
        .on_error(ErrorPolicy::retry(3).backoff(Backoff::exponential(Duration::from_millis(1))))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let expected: Vec<u64> = numbered(2000)
        .iter()
        .map(|&(_, x)| {
            (0..x % 29).fold(u64::from(x), |h, i| {
                (h ^ u64::from(i)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            })
        })
        .collect();
    assert_eq!(out.to_vec(), expected);
    let stage = report.stage("par_try_map#1").unwrap();
    // 40 records fail twice each before succeeding.
    assert_eq!(
        (stage.records_out, stage.retried, stage.skipped),
        (2000, 80, 0)
    );
    assert_eq!(report.check_accounting(), Ok(()));
}

/// A panic on a first attempt, or on a retry, fails the run naming the
/// stage, with every record accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_the_run_naming_the_stage() {
    for on_retry in [false, true] {
        let attempts: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
        let report = Pipeline::from(source::iter(0..3000u32).batch_size(100))
            .par_try_map(2, move |&x: &u32| {
                if x != 1500 {
                    return Ok(x);
                }
                let mut attempts = attempts.lock().unwrap();
                let a = attempts.entry(x).or_default();
                *a += 1;
                if !on_retry || *a > 1 {
                    panic!("boom on attempt {a}");
                }
                Err(Failed(x))
            })
            .on_error(ErrorPolicy::retry(3).backoff(Backoff::none()))
            .to(sink::discard())
            .run_to_report()
            .await;
        let text = report.error().expect("the run fails").to_string();
        let attempt = if on_retry { 2 } else { 1 };
        assert!(text.contains("par_try_map#1"), "{text}");
        assert!(
            text.contains(&format!("boom on attempt {attempt}")),
            "{text}"
        );
        assert_eq!(report.check_accounting(), Ok(()), "on retry: {on_retry}");
    }
}

#[test]
#[should_panic(expected = "par_try_map: the number of workers must be at least 1")]
fn par_try_map_with_no_workers_panics() {
    let _ = Pipeline::from(source::iter(0..3u32)).par_try_map(0, |x: &u32| Ok::<_, Failed>(*x));
}
