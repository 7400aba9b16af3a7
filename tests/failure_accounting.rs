//! Nothing disappears without a count: random pipelines with fallible stages
//! under Skip or DeadLetter, over random data. Every stage balances
//! (`records_in + expanded == records_out + filtered + skipped + dead_lettered`),
//! and the sink gets exactly what the same chain over a plain `Vec` gives, the
//! failed records removed.

mod support;

use support::runtime;

use dataflare::prelude::*;
use dataflare::{Backoff, DeadLetters, Rejected};
use futures::stream::BoxStream;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Policy {
    Skip,
    DeadLetter,
    /// Retried once (no wait; the record fails again), then skipped.
    RetryThenSkip,
}

#[derive(Debug, Clone)]
enum Op {
    /// Keeps the records with `x % m != 0`.
    Filter(u32),
    /// Repeats each record n times (0 drops it).
    FlatMap(usize),
    /// Adds `add` to each record, failing those with `x % k == r`.
    TryMap {
        k: u32,
        r: u32,
        add: u32,
        policy: Policy,
    },
    /// As `TryMap`, with `try_map_async` and a concurrency.
    TryMapAsync {
        k: u32,
        r: u32,
        add: u32,
        policy: Policy,
        concurrency: usize,
    },
    /// Keeps the records with `x % m != 0`, failing those with `x % k == r`.
    TryFilter {
        k: u32,
        r: u32,
        m: u32,
        policy: Policy,
    },
    Rebatch(usize),
    Take(u64),
    Buffer(usize),
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Skip),
        Just(Policy::DeadLetter),
        Just(Policy::RetryThenSkip),
    ]
}

/// A failing predicate `x % k == r`.
fn failing() -> impl Strategy<Value = (u32, u32)> {
    (1..6u32).prop_flat_map(|k| (Just(k), 0..k))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..6u32).prop_map(Op::Filter),
        (0..3usize).prop_map(Op::FlatMap),
        (failing(), 0..100u32, policy()).prop_map(|((k, r), add, policy)| Op::TryMap {
            k,
            r,
            add,
            policy
        }),
        (failing(), 0..100u32, policy(), 1..5usize).prop_map(
            |((k, r), add, policy, concurrency)| Op::TryMapAsync {
                k,
                r,
                add,
                policy,
                concurrency
            }
        ),
        (failing(), 1..6u32, policy()).prop_map(|((k, r), m, policy)| Op::TryFilter {
            k,
            r,
            m,
            policy
        }),
        (1..16usize).prop_map(Op::Rebatch),
        (0..120u64).prop_map(Op::Take),
        (1..4usize).prop_map(Op::Buffer),
    ]
}

/// What the chain gives over a `Vec`, and how many records each fallible
/// stage fails (in stage order).
fn expected(mut records: Vec<u32>, ops: &[Op]) -> (Vec<u32>, Vec<u64>) {
    let mut failed = Vec::new();
    for op in ops {
        records = match *op {
            Op::Filter(m) => records.into_iter().filter(|x| x % m != 0).collect(),
            Op::FlatMap(n) => records
                .into_iter()
                .flat_map(|x| std::iter::repeat_n(x, n))
                .collect(),
            Op::TryMap { k, r, add, .. } | Op::TryMapAsync { k, r, add, .. } => {
                failed.push(records.iter().filter(|x| *x % k == r).count() as u64);
                records
                    .into_iter()
                    .filter(|x| x % k != r)
                    .map(|x| x.wrapping_add(add))
                    .collect()
            }
            Op::TryFilter { k, r, m, .. } => {
                failed.push(records.iter().filter(|x| *x % k == r).count() as u64);
                records
                    .into_iter()
                    .filter(|x| x % k != r && x % m != 0)
                    .collect()
            }
            Op::Rebatch(_) | Op::Buffer(_) => records,
            Op::Take(n) => records.into_iter().take(n as usize).collect(),
        };
    }
    (records, failed)
}

type Boxed = Pipeline<BoxStream<'static, Result<Batch<u32>>>>;

#[derive(Debug)]
struct Failed(u32);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.0)
    }
}

impl std::error::Error for Failed {}

fn check(x: u32, k: u32, r: u32) -> Result<u32, Failed> {
    if x % k == r { Err(Failed(x)) } else { Ok(x) }
}

fn error_policy(policy: Policy, rejects: &DeadLetters) -> ErrorPolicy {
    match policy {
        Policy::Skip => ErrorPolicy::Skip,
        Policy::DeadLetter => rejects.clone().into(),
        Policy::RetryThenSkip => ErrorPolicy::retry(2)
            .backoff(Backoff::none())
            .then(ErrorPolicy::Skip)
            .into(),
    }
}

fn add(pipeline: Boxed, op: &Op, rejects: &DeadLetters) -> Boxed {
    match *op {
        Op::Filter(m) => pipeline.filter(move |x| x % m != 0).boxed(),
        Op::FlatMap(n) => pipeline
            .flat_map(move |x| std::iter::repeat_n(x, n))
            .boxed(),
        Op::TryMap { k, r, add, policy } => pipeline
            .try_map(move |x: &u32| check(*x, k, r).map(|x| x.wrapping_add(add)))
            .on_error(error_policy(policy, rejects))
            .boxed(),
        Op::TryMapAsync {
            k,
            r,
            add,
            policy,
            concurrency,
        } => pipeline
            .try_map_async(concurrency, move |x: &u32| {
                let result = check(*x, k, r).map(|x| x.wrapping_add(add));
                async move {
                    tokio::task::yield_now().await;
                    result
                }
            })
            .on_error(error_policy(policy, rejects))
            .boxed(),
        Op::TryFilter { k, r, m, policy } => pipeline
            .try_filter(move |x: &u32| check(*x, k, r).map(|x| x % m != 0))
            .on_error(error_policy(policy, rejects))
            .boxed(),
        Op::Rebatch(n) => pipeline.rebatch(n).boxed(),
        Op::Take(n) => pipeline.take(n).boxed(),
        Op::Buffer(n) => pipeline.buffer(n).boxed(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_record_is_accounted_for(
        records in proptest::collection::vec(0..1_000u32, 0..200),
        batch_size in 1..20usize,
        ops in proptest::collection::vec(op(), 0..7),
    ) {
        let (want, failed) = expected(records.clone(), &ops);
        let rejected = Collected::<Rejected>::new();
        let rejects = DeadLetters::to(sink::collect(&rejected));
        let out = Collected::new();
        let pipeline = Pipeline::from(source::iter(records.clone()).batch_size(batch_size)).boxed();
        let pipeline = ops.iter().fold(pipeline, |p, op| add(p, op, &rejects));
        let report = runtime().block_on(pipeline.to(sink::collect(&out)).run_to_report());

        prop_assert!(!report.is_failed(), "{}", report);
        prop_assert_eq!(out.to_vec(), want.clone());
        prop_assert!(out.is_closed());
        prop_assert_eq!(report.records_out(), want.len() as u64);
        prop_assert_eq!(report.stages().len(), ops.len() + 2);
        // Every stage balances, also those upstream of a `take` that ended the
        // run while they still held records (counted as abandoned).
        for stage in report.stages() {
            prop_assert_eq!(stage.in_flight(), 0, "{:?}", stage);
        }
        if let Err(e) = report.check_accounting() {
            prop_assert!(false, "{}\n{:#?}", e, report.stages());
        }
        let has_take = ops.iter().any(|op| matches!(op, Op::Take(_)));
        if !has_take {
            let abandoned: u64 = report.stages().iter().map(|s| s.abandoned).sum();
            prop_assert_eq!(abandoned, 0, "nothing is abandoned when the source is read to its end");
        }
        // Whatever was put aside is in the totals, and every dead letter reached its sink.
        let put_aside = report.skipped() + report.dead_lettered();
        prop_assert_eq!(report.has_errors(), put_aside > 0);
        prop_assert_eq!(rejected.len() as u64, report.dead_lettered());
        let retries: u64 = report.stages().iter().map(|s| s.retried).sum();
        prop_assert_eq!(report.retried(), retries);

        if !has_take {
            // The whole source was read, each stage got what the one before
            // passed on, and each fallible stage failed the records the
            // reference fails.
            prop_assert_eq!(report.records_in(), records.len() as u64);
            for pair in report.stages().windows(2) {
                prop_assert_eq!(pair[0].records_out, pair[1].records_in, "{} -> {}", &pair[0].name, &pair[1].name);
            }
            let fallible: Vec<_> = report
                .stages()
                .iter()
                .filter(|s| s.name.starts_with("try_"))
                .collect();
            prop_assert_eq!(fallible.len(), failed.len());
            let policies = ops.iter().filter_map(|op| match *op {
                Op::TryMap { policy, .. }
                | Op::TryMapAsync { policy, .. }
                | Op::TryFilter { policy, .. } => Some(policy),
                _ => None,
            });
            for ((stage, n), policy) in fallible.iter().zip(&failed).zip(policies) {
                let (skipped, dead_lettered, retried) = match policy {
                    Policy::Skip => (*n, 0, 0),
                    Policy::DeadLetter => (0, *n, 0),
                    Policy::RetryThenSkip => (*n, 0, *n),
                };
                prop_assert_eq!(
                    (stage.skipped, stage.dead_lettered, stage.retried),
                    (skipped, dead_lettered, retried),
                    "{}", &stage.name
                );
            }
        }
    }
}

#[tokio::test]
async fn records_held_upstream_of_a_take_are_counted() {
    let report = Pipeline::from(source::iter(0..9u32).batch_size(3))
        .rebatch(1)
        .take(1)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    // rebatch#1 took in 3 records and passed on 1; the take ended the run
    // while it held the other 2.
    report.check_accounting().unwrap();
    assert_eq!(report.stage("rebatch#1").unwrap().abandoned, 2);
}

/// A user `BatchOp` that fails the run (an `Err`, not a panic) on its third batch.
struct FailsOnThirdBatch(u32);

impl dataflare::ops::BatchOp<u32> for FailsOnThirdBatch {
    type Out = u32;

    fn apply(&mut self, records: Vec<u32>) -> dataflare::Result<Vec<u32>> {
        self.0 += 1;
        if self.0 == 3 {
            return Err(Error::msg("lookup service gone"));
        }
        Ok(records)
    }
}

#[tokio::test]
async fn a_batch_op_that_fails_abandons_the_batch_it_took() {
    let report = Pipeline::from(source::iter(0..20u32).batch_size(5))
        .transform(FailsOnThirdBatch(0))
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("the op's error fails the run");
    assert_eq!(error.stage(), Some("transform#1"), "{error}");
    report.check_accounting().unwrap();
    // The batch it failed on; the fourth was never read.
    assert_eq!(report.stage("transform#1").unwrap().abandoned, 5);
}
