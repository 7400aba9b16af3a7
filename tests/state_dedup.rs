//! Dedup through the public API: `dedup_by` against a `HashSet`, the LRU
//! and the time-to-live against a plain model of their rules, over random
//! keys, timestamps and batch sizes; state limits, record errors, and the
//! accounting of every run.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Timestamp, Value};
use dataflare::state::{Columns, Within};
use dataflare::{DeadLetters, Rejected};
use proptest::prelude::*;
use support::runtime;

type Event = (u8, i64, usize);

fn key(e: &Event) -> u8 {
    e.0
}

fn at(e: &Event) -> Timestamp {
    Timestamp::from_micros(e.1)
}

/// What a dedup lets through, by its documented rules, the slow way: the
/// indices of the records that pass, and the keys evicted and expired.
fn model(events: &[Event], capacity: Option<usize>, ttl: Option<i64>) -> (Vec<usize>, u64, u64) {
    // (key, greatest timestamp, last sight)
    let mut held: Vec<(u8, i64, u64)> = Vec::new();
    let (mut clock, mut tick) = (i64::MIN, 0u64);
    let (mut passed, mut evicted, mut expired) = (Vec::new(), 0, 0);
    for &(k, t, index) in events {
        if let Some(ttl) = ttl
            && t > clock
        {
            clock = t;
            let before = held.len();
            held.retain(|&(_, last, _)| last + ttl > clock);
            expired += (before - held.len()) as u64;
        }
        tick += 1;
        if let Some(h) = held.iter_mut().find(|h| h.0 == k) {
            h.1 = h.1.max(t);
            h.2 = tick;
            continue;
        }
        passed.push(index);
        if let Some(ttl) = ttl
            && t + ttl <= clock
        {
            continue;
        }
        held.push((k, t, tick));
        if let Some(capacity) = capacity
            && held.len() > capacity
        {
            let oldest = (0..held.len()).min_by_key(|&i| held[i].2).unwrap();
            held.remove(oldest);
            evicted += 1;
        }
    }
    (passed, evicted, expired)
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    // Few keys, so duplicates are common; timestamps mostly rising, with
    // some out of order.
    prop::collection::vec((0..12u8, 0..40i64, -15..3i64), 0..300).prop_map(|raw| {
        let mut t = 0i64;
        raw.into_iter()
            .enumerate()
            .map(|(i, (k, step, jitter))| {
                t += step / 8;
                (k, t + jitter, i)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn dedup_by_passes_the_first_record_of_each_key(
        keys in prop::collection::vec(0..50u16, 0..400),
        batch in 1..40usize,
    ) {
        let out = Collected::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(keys.clone()).batch_size(batch))
                .dedup_by(|k: &u16| *k)
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let mut seen = HashSet::new();
        let expected: Vec<u16> = keys.iter().copied().filter(|k| seen.insert(*k)).collect();
        prop_assert_eq!(out.to_vec(), expected.clone());
        let dedup = report.stage("dedup#1").unwrap();
        prop_assert_eq!(dedup.duplicates, (keys.len() - expected.len()) as u64);
        prop_assert_eq!((dedup.evicted, dedup.expired, dedup.state_keys), (0, 0, 0));
        report.check_accounting().unwrap();
    }

    #[test]
    fn bounded_dedup_follows_its_rules(
        events in events(),
        capacity in prop::option::of(1..8usize),
        ttl in prop::option::of(1..30i64),
        batch in 1..30usize,
    ) {
        let within = match (capacity, ttl) {
            (Some(c), Some(t)) => Within::keys(c).and_time(at, Duration::from_micros(t as u64)),
            (None, Some(t)) => Within::time(at, Duration::from_micros(t as u64)),
            // An LRU (or nothing) with a clock that never expires a key:
            // the TTL machinery stays out of it.
            (Some(c), None) => Within::keys(c).and_time(at, Duration::MAX),
            (None, None) => Within::all().and_time(at, Duration::MAX),
        };
        let out = Collected::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(events.clone()).batch_size(batch))
                .key_by(key)
                .dedup(within)
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let (passed, evicted, expired) = model(&events, capacity, ttl);
        let got: Vec<usize> = out.to_vec().iter().map(|e| e.2).collect();
        prop_assert_eq!(&got, &passed);
        let dedup = report.stage("dedup#1").unwrap();
        prop_assert_eq!(dedup.duplicates, (events.len() - passed.len()) as u64);
        prop_assert_eq!((dedup.evicted, dedup.expired), (evicted, expired));
        report.check_accounting().unwrap();
    }

    #[test]
    fn an_lru_without_time_matches_the_model(
        keys in prop::collection::vec(0..20u8, 0..300),
        capacity in 1..10usize,
        batch in 1..30usize,
    ) {
        let events: Vec<Event> = keys.iter().enumerate().map(|(i, k)| (*k, 0, i)).collect();
        let out = Collected::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(events.clone()).batch_size(batch))
                .key_by(key)
                .dedup(Within::keys(capacity))
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let (passed, evicted, _) = model(&events, Some(capacity), None);
        let got: Vec<usize> = out.to_vec().iter().map(|e| e.2).collect();
        prop_assert_eq!(got, passed);
        prop_assert_eq!(report.stage("dedup#1").unwrap().evicted, evicted);
        report.check_accounting().unwrap();
    }
}

#[tokio::test]
async fn an_evicted_key_passes_again() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(vec!["a", "b", "a", "c", "b", "a"]))
        .key_by(|s: &&'static str| *s)
        .dedup(Within::keys(2))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    // a b | a (dup, a now most recent) | c evicts b | b new again, evicts a |
    // a new again.
    assert_eq!(out.to_vec(), vec!["a", "b", "c", "b", "a"]);
    let dedup = report.stage("dedup#1").unwrap();
    assert_eq!((dedup.duplicates, dedup.evicted), (1, 3));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn ttl_is_measured_on_record_timestamps_and_refreshed_by_duplicates() {
    // (key, seconds): out of order on purpose.
    let events = vec![
        ("x", 100),
        ("x", 150), // duplicate: x now last seen at 150
        ("y", 95),  // new, behind the clock (150) but within the TTL
        ("x", 140), // duplicate; does not move x's last sight back
        ("z", 200), // clock 200: y (95 + 60 <= 200) expires; x (150 + 60) lives
        ("x", 205), // duplicate
        ("y", 100), // y forgotten, and 100 + 60 <= 200: passes, not remembered
        ("y", 101), // passes again, for the same reason
        ("x", 270), // clock 270: x (205 + 60) and z (260) expire; x passes
    ];
    let out = Collected::new();
    let report = Pipeline::from(source::iter(events).batch_size(2))
        .key_by(|e: &(&'static str, i64)| e.0)
        .dedup(Within::time(
            |e: &(&'static str, i64)| Timestamp::from_secs(e.1),
            Duration::from_secs(60),
        ))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![
            ("x", 100),
            ("y", 95),
            ("z", 200),
            ("y", 100),
            ("y", 101),
            ("x", 270)
        ]
    );
    let dedup = report.stage("dedup#1").unwrap();
    assert_eq!((dedup.duplicates, dedup.expired), (3, 3));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn an_unbounded_dedup_fails_at_max_keys_naming_the_stage() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..10_000u32).batch_size(100))
        .key_by(|n: &u32| *n)
        .max_keys(1_000)
        .dedup(Within::all())
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    let error = report.error().expect("the run fails");
    assert_eq!(error.stage(), Some("dedup#1"));
    let message = error.to_string();
    assert!(message.contains("holds 1100 keys"), "{message}");
    assert!(message.contains("over its max_keys (1000)"), "{message}");
    assert!(report.stage("dedup#1").unwrap().state_keys > 1_000);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn an_lru_evicts_instead_of_failing() {
    let report = Pipeline::from(source::iter(0..10_000u32).batch_size(100))
        .key_by(|n: &u32| *n % 5_000)
        .max_keys(1_000)
        .dedup(Within::keys(1_000))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let dedup = report.stage("dedup#1").unwrap();
    // Every key is seen again only after 4999 others: evicted by then.
    assert_eq!((dedup.records_out, dedup.duplicates), (10_000, 0));
    assert_eq!(dedup.evicted, 9_000);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn the_state_bytes_limit_holds_for_an_lru_too() {
    let report = Pipeline::from(source::iter(0..5_000u32).batch_size(100))
        .key_by(|n: &u32| format!("{n:0>200}"))
        .max_state_bytes(100_000)
        .dedup(Within::keys(4_000))
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("over the bytes").to_string();
    assert!(message.contains("max_state_bytes (100000)"), "{message}");
    report.check_accounting().unwrap();
}

#[test]
#[should_panic(expected = "Within::keys(20) is over the stage's max_keys (10)")]
fn an_lru_larger_than_max_keys_is_refused_when_built() {
    let _ = Pipeline::from(source::iter(0..1u32))
        .key_by(|n: &u32| *n)
        .max_keys(10)
        .dedup(Within::keys(20));
}

fn rows(names: &[&str], rows: Vec<Vec<Value>>) -> Vec<Record> {
    let schema = Arc::new(Schema::new(names.iter().map(|n| (*n, DataType::Str))));
    rows.into_iter()
        .map(|values| Record::new(schema.clone(), values))
        .collect()
}

#[tokio::test]
async fn dynamic_records_dedup_by_columns_and_a_missing_column_is_a_record_error() {
    let mut records = rows(
        &["id", "v"],
        vec![
            vec![Value::from("a"), Value::from("1")],
            vec![Value::from("a"), Value::from("2")],
            vec![Value::Null, Value::from("3")],
            vec![Value::Null, Value::from("4")],
        ],
    );
    records.extend(rows(&["other"], vec![vec![Value::from("x")]]));

    // Nulls are one key, as in GROUP BY; the record without the column is
    // sent to dead letters.
    let (out, rejects) = (Collected::new(), Collected::<Rejected>::new());
    let report = Pipeline::from(source::iter(records.clone()))
        .dedup_by(Columns::new(["id"]))
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let passed: Vec<String> = out
        .to_vec()
        .iter()
        .map(|r| r.get("v").unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(passed, vec!["1", "3"]);
    let rejected = rejects.to_vec();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].error.contains("no column \"id\""),
        "{}",
        rejected[0].error
    );
    assert_eq!(rejected[0].stage, "dedup#1");
    let dedup = report.stage("dedup#1").unwrap();
    assert_eq!((dedup.duplicates, dedup.dead_lettered), (2, 1));
    report.check_accounting().unwrap();

    // By default, the missing column fails the run, naming the record.
    let report = Pipeline::from(source::iter(records))
        .dedup_by(Columns::new(["id"]))
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("aborts");
    assert_eq!(error.stage(), Some("dedup#1"));
    assert!(error.to_string().contains("no column \"id\""), "{error}");
    assert_eq!(error.record_text(), Some("{\"other\": Str(\"x\")}"));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_take_after_a_dedup_ends_the_run_early_and_every_stage_balances() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter((0..10_000u32).map(|n| n % 700)).batch_size(64))
        .dedup_by(|n: &u32| *n)
        .take(10)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), (0..10).collect::<Vec<_>>());
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_failing_source_after_a_dedup_fails_the_run_and_every_stage_balances() {
    let report = Pipeline::from(dataflare::testkit::failing_source(
        (0..1_000u32).map(|n| n % 10),
        16,
        500,
    ))
    .dedup_by(|n: &u32| *n)
    .to(sink::discard())
    .run_to_report()
    .await;
    assert!(report.is_failed());
    let dedup = report.stage("dedup#1").unwrap();
    assert_eq!((dedup.records_in, dedup.records_out), (500, 10));
    report.check_accounting().unwrap();
}
