//! Lookups and hash joins through the public API: against a nested-loop
//! model over random tables and streams (proptest), misses under each
//! policy, duplicate table keys, dynamic records merged, a table that fails
//! to load, state limits, and the accounting of every run.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::state::{Columns, Interval, Miss, StateSize};
use dataflare::testkit::failing_source;
use dataflare::{DeadLetters, Rejected, csv};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use support::{entries, runtime};

/// A record of the streamed side: (key, its index in the stream).
type Probe = (u8, usize);
/// A record of the built side: (key, payload).
type Row = (u8, u32);

fn probe_key(p: &Probe) -> u8 {
    p.0
}

fn row_key(r: &Row) -> u8 {
    r.0
}

/// A source of `records` counting how many were read.
fn counted<T: Send + 'static>(records: Vec<T>) -> (impl Source<Record = T>, Arc<AtomicUsize>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let r = reads.clone();
    let source = source::iter(records.into_iter().inspect(move |_| {
        r.fetch_add(1, SeqCst);
    }));
    (source, reads)
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Left,
    Drop,
    /// Miss::Error under ErrorPolicy::Skip.
    Skip,
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Left), Just(Mode::Drop), Just(Mode::Skip)]
}

/// What a join of `stream` with `rows` gives, the slow way: every pair, in
/// stream order then row order; a left join keeps a record without a match
/// with `None`. With the misses.
fn nested_loop(stream: &[Probe], rows: &[Row], left: bool) -> (Vec<(Probe, Option<Row>)>, u64) {
    let (mut out, mut misses) = (Vec::new(), 0);
    for p in stream {
        let before = out.len();
        for r in rows {
            if r.0 == p.0 {
                out.push((*p, Some(*r)));
            }
        }
        if out.len() == before {
            misses += 1;
            if left {
                out.push((*p, None));
            }
        }
    }
    (out, misses)
}

fn stream_of(keys: Vec<u8>) -> Vec<Probe> {
    keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect()
}

/// Runs `stream` through a lookup or hash join of `rows` in `mode`; the
/// output as `(probe, Option<row>)` and the join stage's stats.
fn run_join(
    stream: &[Probe],
    rows: &[Row],
    mode: Mode,
    lookup: bool,
    batches: (usize, usize),
) -> (Vec<(Probe, Option<Row>)>, Report) {
    let table = Pipeline::from(source::iter(rows.to_vec()).batch_size(batches.1)).key_by(row_key);
    let main = Pipeline::from(source::iter(stream.to_vec()).batch_size(batches.0));
    let (out, left_out) = (Collected::new(), Collected::new());
    let report = runtime().block_on(async {
        match (lookup, mode) {
            (true, Mode::Left) => {
                main.lookup(table, probe_key)
                    .left()
                    .to(sink::collect(&left_out))
                    .run()
                    .await
            }
            (true, Mode::Drop) => {
                main.lookup(table, probe_key)
                    .inner(Miss::Drop)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
            (true, Mode::Skip) => {
                main.lookup(table, probe_key)
                    .inner(Miss::Error)
                    .on_error(ErrorPolicy::Skip)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
            (false, Mode::Left) => {
                main.hash_join(table, probe_key)
                    .left()
                    .to(sink::collect(&left_out))
                    .run()
                    .await
            }
            (false, Mode::Drop) => {
                main.hash_join(table, probe_key)
                    .inner(Miss::Drop)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
            (false, Mode::Skip) => {
                main.hash_join(table, probe_key)
                    .inner(Miss::Error)
                    .on_error(ErrorPolicy::Skip)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
        }
    });
    let report = report.unwrap();
    let mut got: Vec<(Probe, Option<Row>)> = left_out.to_vec();
    got.extend(out.to_vec().into_iter().map(|(p, r)| (p, Some(r))));
    (got, report)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_lookup_matches_the_nested_loop_over_a_table_of_unique_keys(
        table in prop::collection::hash_map(0..24u8, any::<u32>(), 0..16),
        keys in prop::collection::vec(0..24u8, 0..300),
        mode in mode(),
        batches in (1..40usize, 1..8usize),
    ) {
        let rows: Vec<Row> = table.into_iter().collect();
        let stream = stream_of(keys);
        let (got, report) = run_join(&stream, &rows, mode, true, batches);
        let (expected, misses) = nested_loop(&stream, &rows, matches!(mode, Mode::Left));
        prop_assert_eq!(got, expected);
        let stage = report.stage("lookup#2").unwrap();
        prop_assert_eq!(stage.records_in, (rows.len() + stream.len()) as u64);
        prop_assert_eq!((stage.absorbed, stage.expanded), (rows.len() as u64, 0));
        match mode {
            Mode::Left => prop_assert_eq!((stage.unmatched, stage.skipped), (0, 0)),
            Mode::Drop => prop_assert_eq!((stage.unmatched, stage.skipped), (misses, 0)),
            Mode::Skip => prop_assert_eq!((stage.unmatched, stage.skipped), (0, misses)),
        }
        prop_assert_eq!(stage.state_keys, 0, "the table is let go of at the end");
        report.check_accounting().unwrap();
    }

    #[test]
    fn a_hash_join_matches_the_nested_loop_with_every_match(
        rows in prop::collection::vec((0..16u8, any::<u32>()), 0..40),
        keys in prop::collection::vec(0..20u8, 0..200),
        mode in mode(),
        batches in (1..40usize, 1..12usize),
    ) {
        let stream = stream_of(keys);
        let (got, report) = run_join(&stream, &rows, mode, false, batches);
        let (expected, misses) = nested_loop(&stream, &rows, matches!(mode, Mode::Left));
        prop_assert_eq!(&got, &expected);
        let stage = report.stage("hash_join#2").unwrap();
        let matched = expected.iter().filter(|(_, r)| r.is_some()).count() as u64;
        let hit = stream.len() as u64 - misses;
        prop_assert_eq!(stage.expanded, matched - hit, "each match after the first");
        prop_assert_eq!(stage.absorbed, rows.len() as u64);
        prop_assert_eq!(stage.records_out, expected.len() as u64);
        report.check_accounting().unwrap();
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct User {
    id: String,
    name: String,
}

impl StateSize for User {
    fn heap_bytes(&self) -> usize {
        self.id.heap_bytes() + self.name.heap_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Order {
    order: u32,
    user: String,
    amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Enriched {
    order: u32,
    user: String,
    name: Option<String>,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn orders_are_enriched_from_a_users_csv_read_first() {
    let dir = tempfile::tempdir().unwrap();
    let (users, orders, out) = (
        dir.path().join("users.csv"),
        dir.path().join("orders.csv"),
        dir.path().join("enriched.csv"),
    );
    write(&users, "id,name\nu1,Ann\nu2,Bob\n");
    write(&orders, "order,user,amount\n1,u2,9.5\n2,u9,3\n3,u1,12\n");

    let users = Pipeline::from(csv::read::<User>(&users)).name("users");
    let report = Pipeline::from(csv::read::<Order>(&orders))
        .lookup(users.key_by(|u: &User| u.id.clone()), |o: &Order| {
            o.user.clone()
        })
        .left()
        .map(|(o, u): (Order, Option<User>)| Enriched {
            order: o.order,
            user: o.user,
            name: u.map(|u| u.name),
        })
        .to(csv::write(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "order,user,name\n1,u2,Bob\n2,u9,\n3,u1,Ann\n"
    );
    // The table's pipeline is part of the run: its source is in the report.
    assert_eq!(report.stage("users").unwrap().records_in, 2);
    let lookup = report.stage("lookup#2").unwrap();
    let ids = |names: &[&str]| -> Vec<usize> {
        names.iter().map(|n| report.stage(n).unwrap().id).collect()
    };
    assert_eq!(lookup.inputs, ids(&["source", "users"]));
    assert_eq!((lookup.records_in, lookup.absorbed), (5, 2));
    assert_eq!(report.records_in(), 5, "both sources");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_table_that_fails_to_load_fails_the_run_before_the_stream_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let users: Vec<Row> = (0..100).map(|i| (i as u8, i)).collect();
    let table = Pipeline::from(failing_source(users, 10, 35)).map(|r: Row| r);
    let (main, reads) = counted(stream_of(vec![1, 2, 3]));
    let report = Pipeline::from(main)
        .lookup(table.key_by(row_key), probe_key)
        .left()
        .map(|(p, r): (Probe, Option<Row>)| Enriched {
            order: p.1 as u32,
            user: p.0.to_string(),
            name: r.map(|r| r.1.to_string()),
        })
        .to(csv::write(&out))
        .run_to_report()
        .await;
    let error = report.error().expect("the run fails");
    assert!(
        error.to_string().contains("failed after 35 records"),
        "{error}"
    );
    assert_eq!(reads.load(SeqCst), 0, "the stream's source was never read");
    assert_eq!(report.stage("source").unwrap().records_in, 0);
    assert!(entries(dir.path()).is_empty(), "nothing committed");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_stream_that_fails_after_the_table_loaded_commits_nothing_either() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let table = Pipeline::from(source::iter(vec![(1u8, 10u32)]));
    let report = Pipeline::from(failing_source(stream_of(vec![1; 50]), 8, 20))
        .lookup(table.key_by(row_key), probe_key)
        .inner(Miss::Drop)
        .map(|(p, r): (Probe, Row)| Enriched {
            order: p.1 as u32,
            user: p.0.to_string(),
            name: Some(r.1.to_string()),
        })
        .to(csv::write(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert!(entries(dir.path()).is_empty());
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_miss_under_miss_error_aborts_by_default_naming_the_record_and_key() {
    let table = Pipeline::from(source::iter(vec![(1u8, 10u32)]));
    let out = Collected::new();
    let report = Pipeline::from(source::iter(stream_of(vec![1, 7, 1])))
        .lookup(table.key_by(row_key), probe_key)
        .inner(Miss::Error)
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    let error = report.error().expect("aborts");
    assert_eq!(error.stage(), Some("lookup#2"));
    let message = error.to_string();
    assert!(
        message.contains("no record of the table has key 7"),
        "{message}"
    );
    assert_eq!(error.record_text(), Some("(7, 1)"));
    // The reject is handled before the batch's output goes on: none did.
    assert!(out.is_empty());
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn dead_letters_receive_the_misses() {
    let table = Pipeline::from(source::iter(vec![(1u8, 10u32), (2, 20)]));
    let (out, rejects) = (Collected::new(), Collected::<Rejected>::new());
    let report = Pipeline::from(source::iter(stream_of(vec![1, 5, 2, 6, 1])).batch_size(2))
        .hash_join(table.key_by(row_key), probe_key)
        .inner(Miss::Error)
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![((1, 0), (1, 10)), ((2, 2), (2, 20)), ((1, 4), (1, 10))]
    );
    let rejected = rejects.to_vec();
    let records: Vec<_> = rejected.iter().map(|r| r.record.clone().unwrap()).collect();
    assert_eq!(records, vec!["(5, 1)", "(6, 3)"]);
    assert!(rejected.iter().all(|r| r.stage == "hash_join#2"));
    assert_eq!(report.stage("hash_join#2").unwrap().dead_lettered, 2);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_duplicate_table_key_is_a_record_error_or_the_last_wins() {
    let rows = vec![(1u8, 10u32), (2, 20), (1, 11)];
    let stream = || Pipeline::from(source::iter(stream_of(vec![1, 2])));

    // By default: the run fails, naming the key and the table record.
    let report = stream()
        .lookup(
            Pipeline::from(source::iter(rows.clone())).key_by(row_key),
            probe_key,
        )
        .left()
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("aborts");
    let message = error.to_string();
    assert!(
        message.contains("the table has a record with key 1 already"),
        "{message}"
    );
    assert_eq!(error.record_text(), Some("(1, 11)"));
    assert_eq!(report.stage("source").unwrap().records_in, 0);
    report.check_accounting().unwrap();

    // Skipped: the first is kept.
    let out = Collected::new();
    let report = stream()
        .lookup(
            Pipeline::from(source::iter(rows.clone())).key_by(row_key),
            probe_key,
        )
        .left()
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![((1, 0), Some((1, 10))), ((2, 1), Some((2, 20)))]
    );
    let lookup = report.stage("lookup#2").unwrap();
    assert_eq!((lookup.absorbed, lookup.skipped), (2, 1));
    report.check_accounting().unwrap();

    // keep_last: the later replaces it.
    let out = Collected::new();
    let report = stream()
        .lookup(
            Pipeline::from(source::iter(rows.clone())).key_by(row_key),
            probe_key,
        )
        .keep_last()
        .inner(Miss::Drop)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![((1, 0), (1, 11)), ((2, 1), (2, 20))]);
    assert_eq!(report.stage("lookup#2").unwrap().absorbed, 3);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_table_over_max_keys_fails_the_run_naming_the_stage() {
    let table = Pipeline::from(source::iter((0..10_000u32).map(|i| (i, i))).batch_size(256))
        .key_by(|r: &(u32, u32)| r.0)
        .max_keys(1_000);
    let (main, reads) = counted(vec![1u32, 2, 3]);
    let report = Pipeline::from(main)
        .lookup(table, |n: &u32| *n)
        .left()
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("over the limit");
    assert_eq!(error.stage(), Some("lookup#2"));
    let message = error.to_string();
    assert!(message.contains("over its max_keys (1000)"), "{message}");
    assert_eq!(reads.load(SeqCst), 0);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_hash_join_counts_rows_not_keys_against_max_keys() {
    let build = Pipeline::from(source::iter((0..500u32).map(|i| (0u8, i))))
        .key_by(row_key)
        .max_keys(100);
    let report = Pipeline::from(source::iter(stream_of(vec![0])))
        .hash_join(build, probe_key)
        .inner(Miss::Drop)
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("over the limit").to_string();
    assert!(message.contains("over its max_keys (100)"), "{message}");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_take_after_a_hash_join_ends_the_run_early_and_every_stage_balances() {
    let build = Pipeline::from(source::iter((0..50u32).map(|i| ((i % 5) as u8, i))));
    let out = Collected::new();
    let report = Pipeline::from(
        source::iter(stream_of((0..200).map(|i| (i % 7) as u8).collect())).batch_size(16),
    )
    .hash_join(build.key_by(row_key), probe_key)
    .inner(Miss::Drop)
    .take(25)
    .to(sink::collect(&out))
    .run()
    .await
    .unwrap();
    assert_eq!(out.len(), 25);
    report.check_accounting().unwrap();
}

#[test]
#[should_panic(expected = "the table is a branch of this pipeline's own graph")]
fn a_table_from_the_same_fan_out_is_refused() {
    let [a, b] = Pipeline::from(source::iter(stream_of(vec![1, 2]))).tee();
    let _ = a.lookup(b.key_by(probe_key), probe_key);
}

fn schema(columns: &[(&str, DataType)]) -> Arc<Schema> {
    Arc::new(Schema::new(columns.iter().copied()))
}

fn users_table() -> Vec<Record> {
    let users = schema(&[
        ("user", DataType::Int),
        ("name", DataType::Str),
        ("tier", DataType::Str),
    ]);
    vec![
        Record::new(
            users.clone(),
            vec![Value::Int(1), Value::from("ann"), Value::from("gold")],
        ),
        Record::new(
            users.clone(),
            vec![Value::Int(2), Value::from("bob"), Value::Null],
        ),
        Record::new(
            users.clone(),
            vec![Value::Null, Value::from("nobody"), Value::Null],
        ),
    ]
}

fn orders_stream() -> Vec<Record> {
    let orders = schema(&[("order", DataType::Int), ("user", DataType::Int)]);
    [(10, Some(1)), (11, Some(3)), (12, None), (13, Some(2))]
        .into_iter()
        .map(|(o, u)| {
            Record::new(
                orders.clone(),
                vec![Value::Int(o), u.map_or(Value::Null, Value::Int)],
            )
        })
        .collect()
}

fn text(record: &Record) -> String {
    record
        .iter()
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn dynamic_records_merge_and_null_keys_match_nothing() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(orders_stream()))
        .lookup(
            Pipeline::from(source::iter(users_table())).key_by(Columns::new(["user"])),
            Columns::new(["user"]),
        )
        .left_merged()
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows: Vec<String> = out.to_vec().iter().map(text).collect();
    assert_eq!(
        rows,
        vec![
            "order=Int(10) user=Int(1) name=Str(\"ann\") tier=Str(\"gold\")",
            "order=Int(11) user=Int(3) name=Null tier=Null",
            "order=Int(12) user=Null name=Null tier=Null",
            "order=Int(13) user=Int(2) name=Str(\"bob\") tier=Null",
        ]
    );
    let lookup = report.stage("lookup#2").unwrap();
    // The table's null-keyed user can match nothing: dropped, counted.
    assert_eq!((lookup.absorbed, lookup.unmatched), (2, 1));
    report.check_accounting().unwrap();

    // Inner: the misses (a missing user, a null key) go to dead letters.
    let (out, rejects) = (Collected::new(), Collected::<Rejected>::new());
    Pipeline::from(source::iter(orders_stream()))
        .lookup(
            Pipeline::from(source::iter(users_table())).key_by(Columns::new(["user"])),
            Columns::new(["user"]),
        )
        .prefix("u_")
        .inner_merged(Miss::Error)
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    assert_eq!(
        rows[0].schema().names().collect::<Vec<_>>(),
        vec!["order", "user", "u_name", "u_tier"]
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rejects.len(), 2);
}

#[tokio::test]
async fn a_column_name_clash_fails_the_run_until_a_prefix_tells_them_apart() {
    let table = || {
        let s = schema(&[("id", DataType::Int), ("order", DataType::Str)]);
        Pipeline::from(source::iter(vec![Record::new(
            s,
            vec![Value::Int(1), Value::from("x")],
        )]))
        .key_by(Columns::new(["id"]))
    };
    let report = Pipeline::from(source::iter(orders_stream()))
        .lookup(table(), Columns::new(["user"]))
        .left_merged()
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("a clash").to_string();
    assert!(
        message.contains("the table's column \"order\""),
        "{message}"
    );
    assert!(message.contains(".prefix("), "{message}");
    report.check_accounting().unwrap();

    let out = Collected::new();
    Pipeline::from(source::iter(orders_stream()))
        .lookup(table(), Columns::new(["user"]))
        .prefix("t.")
        .inner_merged(Miss::Drop)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    assert_eq!(rows.len(), 1);
    // Key columns of different names are both kept.
    assert_eq!(
        rows[0].schema().names().collect::<Vec<_>>(),
        vec!["order", "user", "t.id", "t.order"]
    );
}

#[tokio::test]
async fn a_record_without_the_key_column_is_a_record_error() {
    let other = schema(&[("something", DataType::Int)]);
    let mut stream = orders_stream();
    stream.insert(1, Record::new(other, vec![Value::Int(5)]));
    let report = Pipeline::from(source::iter(stream))
        .lookup(
            Pipeline::from(source::iter(users_table())).key_by(Columns::new(["user"])),
            Columns::new(["user"]),
        )
        .left_merged()
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let lookup = report.stage("lookup#2").unwrap();
    assert_eq!((lookup.skipped, lookup.records_out), (1, 4));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_lookup_after_a_tee_of_another_graph_waits_for_its_table() {
    // The stream is a tee branch of its own graph; the table, another
    // graph. The fan-out waits for room while the table loads: no deadlock.
    let (a_out, b_out) = (Collected::new(), Collected::new());
    let [a, b] = Pipeline::from(
        source::iter(stream_of((0..2_000).map(|i| (i % 9) as u8).collect())).batch_size(8),
    )
    .tee();
    let table = Pipeline::from(source::iter((0..9u8).map(|k| (k, k as u32 * 2))).batch_size(1));
    let report = a
        .lookup(table.key_by(row_key), probe_key)
        .inner(Miss::Drop)
        .to(sink::collect(&a_out))
        .and(b.to(sink::collect(&b_out)))
        .run()
        .await
        .unwrap();
    assert_eq!((a_out.len(), b_out.len()), (2_000, 2_000));
    let expected: HashMap<u8, u32> = (0..9u8).map(|k| (k, k as u32 * 2)).collect();
    assert!(a_out.to_vec().iter().all(|(p, r)| expected[&p.0] == r.1));
    report.check_accounting().unwrap();
}

// Interval joins.

/// (key, timestamp in µs, index in its input)
type Timed = (u8, i64, usize);

fn at(r: &Timed) -> dataflare::record::Timestamp {
    dataflare::record::Timestamp::from_micros(r.1)
}

fn timed_key(r: &Timed) -> u8 {
    r.0
}

/// Records whose timestamps rise with a disorder of at most `disorder`:
/// each is at least the greatest before it less `disorder`.
fn timed(max_keys: u8, disorder: i64, len: usize) -> impl Strategy<Value = Vec<Timed>> {
    prop::collection::vec((0..max_keys, 0..6i64, 0..=disorder), 0..len).prop_map(|raw| {
        let mut base = 0;
        raw.into_iter()
            .enumerate()
            .map(|(i, (k, step, jitter))| {
                base += step;
                (k, base + jitter, i)
            })
            .collect()
    })
}

/// Every pair of the interval join, the slow way, sorted.
fn interval_model(a: &[Timed], b: &[Timed], lower: i64, upper: i64) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for x in a {
        for y in b {
            if x.0 == y.0 && y.1 - x.1 >= lower && y.1 - x.1 <= upper {
                pairs.push((x.2, y.2));
            }
        }
    }
    pairs.sort();
    pairs
}

fn interval(lower: i64, upper: i64, lateness: i64) -> Interval {
    let us = |n: i64| std::time::Duration::from_micros(n.unsigned_abs());
    let interval = match (lower >= 0, upper >= 0) {
        (true, _) => Interval::after(us(lower), us(upper)),
        (false, true) => Interval::around(us(lower), us(upper)),
        (false, false) => Interval::before(us(upper), us(lower)),
    };
    interval.lateness(us(lateness))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn an_interval_join_finds_every_pair_of_the_nested_loop(
        a in timed(4, 8, 150),
        b in timed(4, 8, 150),
        (lower, width) in (-12..12i64, 0..15i64),
        batches in (1..20usize, 1..20usize),
    ) {
        let upper = lower + width;
        let out = Collected::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(a.clone()).batch_size(batches.0))
                .key_by(timed_key)
                .interval_join(
                    Pipeline::from(source::iter(b.clone()).batch_size(batches.1)).key_by(timed_key),
                    at,
                    at,
                    // The lateness covers each input's disorder: nothing is late.
                    interval(lower, upper, 8),
                )
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let mut got: Vec<(usize, usize)> = out.to_vec().iter().map(|(x, y)| (x.2, y.2)).collect();
        got.sort();
        prop_assert_eq!(&got, &interval_model(&a, &b, lower, upper));
        let stage = report.stage("interval_join#2").unwrap();
        prop_assert_eq!(stage.absorbed, (a.len() + b.len()) as u64);
        prop_assert_eq!(stage.expanded, got.len() as u64);
        prop_assert_eq!((stage.late, stage.state_keys), (0, 0));
        report.check_accounting().unwrap();
    }

    #[test]
    fn an_interval_self_join_of_a_tee_matches_the_model(
        a in timed(3, 4, 120),
        (lower, width) in (-6..6i64, 0..8i64),
        batch in 1..16usize,
    ) {
        let upper = lower + width;
        let out = Collected::new();
        let [x, y] = Pipeline::from(source::iter(a.clone()).batch_size(batch)).tee();
        let report = runtime().block_on(
            x.key_by(timed_key)
                .interval_join(y.key_by(timed_key), at, at, interval(lower, upper, 4))
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let mut got: Vec<(usize, usize)> = out.to_vec().iter().map(|(x, y)| (x.2, y.2)).collect();
        got.sort();
        prop_assert_eq!(got, interval_model(&a, &a, lower, upper));
        report.check_accounting().unwrap();
    }
}

fn in_order(n: usize, keys: u8) -> Vec<Timed> {
    (0..n)
        .map(|i| ((i % keys as usize) as u8, i as i64, i))
        .collect()
}

#[tokio::test]
async fn an_interval_join_lets_go_of_what_the_watermark_passed() {
    // 20 000 records a side, in order: held only within the interval, far
    // under the limit of 200 rows.
    let out = Collected::new();
    let report = Pipeline::from(source::iter(in_order(20_000, 7)).batch_size(50))
        .key_by(timed_key)
        .max_keys(200)
        .interval_join(
            Pipeline::from(source::iter(in_order(20_000, 7)).batch_size(30)).key_by(timed_key),
            at,
            at,
            interval(-10, 10, 0),
        )
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    // Each record matches its own index and those 7 away either way (same
    // key, within ±10 µs), but near the ends.
    assert_eq!(out.len(), 20_000 + 2 * (20_000 - 7));
    let stage = report.stage("interval_join#2").unwrap();
    assert!(stage.expired > 39_000, "{}", stage.expired);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn an_interval_join_without_expiry_would_hit_max_keys() {
    // The same, but one input's timestamps never move: nothing expires.
    let stuck: Vec<Timed> = (0..5_000).map(|i| (0, 0, i)).collect();
    let report = Pipeline::from(source::iter(in_order(5_000, 1)).batch_size(50))
        .key_by(timed_key)
        .interval_join(
            Pipeline::from(source::iter(stuck).batch_size(50))
                .key_by(timed_key)
                .max_keys(500),
            at,
            at,
            interval(-10, 10, 0),
        )
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("over the limit").to_string();
    assert!(message.contains("over its max_keys (500)"), "{message}");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn once_an_input_ends_the_other_holds_nothing() {
    let short: Vec<Timed> = (0..5).map(|i| (0, i, i as usize)).collect();
    let out = Collected::new();
    let report = Pipeline::from(source::iter(short))
        .key_by(timed_key)
        .max_keys(1_000)
        .interval_join(
            // Timestamps stuck at 0: only the end of the other input lets
            // the join hold none of them.
            Pipeline::from(
                source::iter((0..50_000).map(|i| (0u8, 0i64, i)).collect::<Vec<_>>())
                    .batch_size(64),
            )
            .key_by(timed_key),
            at,
            at,
            interval(-2, 2, 0),
        )
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    // Records 0, 1, 2 of the short input match every record at 0.
    assert_eq!(out.len(), 3 * 50_000);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_late_record_is_a_record_error_counted_as_late_when_skipped() {
    let a: Vec<Timed> = vec![(0, 100, 0), (0, 200, 1)];
    // Read in one batch with the first input's: by then the watermark is 100 - 10.
    let b: Vec<Timed> = vec![(0, 150, 0), (0, 50, 1), (0, 195, 2)];
    let run = |policy: Option<ErrorPolicy>| {
        let out = Collected::new();
        let mut joined = Pipeline::from(source::iter(a.clone()))
            .key_by(timed_key)
            .interval_join(
                Pipeline::from(source::iter(b.clone()).batch_size(1)).key_by(timed_key),
                at,
                at,
                interval(-60, 60, 10),
            )
            .boxed();
        if let Some(policy) = policy {
            joined = joined.on_error(policy);
        }
        let runnable = joined.to(sink::collect(&out));
        async move { (runnable.run_to_report().await, out) }
    };
    let (report, out) = run(Some(ErrorPolicy::Skip)).await;
    let mut got: Vec<(usize, usize)> = out.to_vec().iter().map(|(x, y)| (x.2, y.2)).collect();
    got.sort();
    assert_eq!(got, vec![(0, 0), (1, 0), (1, 2)]);
    let stage = report.stage("interval_join#2").unwrap();
    assert_eq!((stage.late, stage.skipped), (1, 0));
    report.check_accounting().unwrap();

    let (report, _) = run(None).await;
    let error = report.error().expect("a late record aborts by default");
    assert!(
        error.to_string().contains("behind the watermark"),
        "{error}"
    );
    assert_eq!(error.record_text(), Some("(0, 50, 1)"));
    report.check_accounting().unwrap();
}
