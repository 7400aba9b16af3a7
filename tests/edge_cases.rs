//! Edge cases found in review: panics in fan-out closures, dead letters failing
//! under a route, an isolated branch that fans out again, decimal sums past
//! the decimal range. Each test failed before its fix.

use dataflare::prelude::*;
use dataflare::testkit::failing_sink;
use dataflare::{DeadLetters, Rejected};

/// A `route` key function (user code run by the fan-out driver) that panics
/// fails the run with an error naming the stage, and the batch it was
/// splitting is counted (abandoned), not lost from the accounting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_key_panic_fails_the_run_and_keeps_the_accounting() {
    let (a, b) = (Collected::new(), Collected::new());
    let [x, y] = Pipeline::from(source::iter(0..100u32).batch_size(10)).route(|n: &u32| {
        assert!(*n != 42, "no 42 here");
        (n % 2) as usize
    });
    let report = x
        .to(sink::collect(&a))
        .and(y.to(sink::collect(&b)))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    let error = report.error().unwrap();
    assert_eq!(error.stage(), Some("route#1"), "{error}");
    report.check_accounting().unwrap();
}

/// Same for a `partition` predicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_predicate_panic_keeps_the_accounting() {
    let (a, b) = (Collected::new(), Collected::new());
    let [x, y] = Pipeline::from(source::iter(0..100u32).batch_size(10)).partition(|n: &u32| {
        assert!(*n != 42, "no 42 here");
        n.is_multiple_of(2)
    });
    let report = x
        .to(sink::collect(&a))
        .and(y.to(sink::collect(&b)))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    report.check_accounting().unwrap();
}

/// A route whose dead-letter sink fails: the rejects of a batch the
/// fan-out had not yet handed to the policy are counted, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_rejects_left_when_dead_letters_fail_are_counted() {
    for round in 0..300 {
        let (dead_letters, _probe) = failing_sink::<Rejected>(0);
        let (a, b) = (Collected::new(), Collected::new());
        let [x, y] = Pipeline::from(source::iter(0..2000u32).batch_size(50)).route(|n: &u32| {
            if n.is_multiple_of(3) {
                7
            } else {
                (n % 2) as usize
            }
        });
        let report = x
            .on_error(DeadLetters::to(dead_letters))
            .to(sink::collect(&a))
            .and(y.to(sink::collect(&b)))
            .run_to_report()
            .await;
        assert!(report.is_failed(), "{report}");
        report
            .check_accounting()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}

/// An isolated branch that fans out again: a failure in it (upstream of its
/// own fan-out) abandons this branch alone, as `isolate` documents; the
/// other branches finish and commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_an_isolated_branch_before_its_own_fan_out_stays_isolated() {
    let (main, s1, s2) = (Collected::new(), Collected::new(), Collected::new());
    let [a, b] = Pipeline::from(source::iter(1..=50i32).batch_size(5)).tee();
    let [c, d] = b
        .isolate()
        .try_map(|x: &i32| {
            if *x == 20 {
                Err(Error::msg("bad"))
            } else {
                Ok(*x)
            }
        })
        .tee();
    let report = a
        .to(sink::collect(&main))
        .and(c.to(sink::collect(&s1)))
        .and(d.to(sink::collect(&s2)))
        .run_to_report()
        .await;
    assert!(!report.is_failed(), "{report}");
    assert!(!report.failed_branches().is_empty(), "{report}");
    assert!(s1.to_vec().len() < 50 && !s1.is_closed() && !s2.is_closed());
    assert_eq!(main.to_vec(), (1..=50).collect::<Vec<_>>());
    assert!(main.is_closed());
    report.check_accounting().unwrap();
}

/// `Agg::sum` over a decimal column goes on as a float once the sum is too
/// large for a decimal, as documented: the decimals after that must still be
/// added, not dropped.
#[tokio::test]
async fn a_decimal_sum_past_the_decimal_range_keeps_adding() {
    use dataflare::record::{DataType, Decimal, Record, Schema, Value};
    use dataflare::state::{Agg, Columns};
    use std::sync::Arc;

    let schema = Arc::new(Schema::new([
        ("k", DataType::Str),
        ("x", DataType::Decimal),
    ]));
    let row = |x: Decimal| Record::new(schema.clone(), vec![Value::from("a"), Value::Decimal(x)]);
    let minus_max = Decimal::MAX.checked_mul(Decimal::new(-1, 0)).unwrap();
    let rows = vec![
        row(Decimal::MAX),
        row(Decimal::MAX),
        row(minus_max),
        row(Decimal::new(0, 0)),
    ];
    let out = Collected::new();
    Pipeline::from(source::iter(rows))
        .key_by(Columns::new(["k"]))
        .aggregate_columns([("s", Agg::sum("x"))])
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let sum = out.to_vec()[0].get("s").cloned().unwrap();
    let expected = Decimal::MAX.to_f64();
    match sum {
        Value::Float(f) => assert!((f - expected).abs() / expected < 1e-9, "{f} vs {expected}"),
        other => panic!("{other:?}"),
    }
}
