//! Keyed aggregation through the public API: results against a `BTreeMap`
//! reference, first-appearance order, dynamic records by column, record errors
//! under the policy, state limits, and accounting on every run.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::state::{Agg, Columns, agg};
use dataflare::{DeadLetters, Rejected};
use proptest::prelude::*;
use support::runtime;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn aggregates_match_a_btreemap_reference(
        records in proptest::collection::vec((0..20u8, -1_000..1_000i64), 0..300),
        batch_size in 1..40usize,
    ) {
        // The reference: count, sum, min, max, first, last, distinct per key,
        // keys in order of first appearance.
        let mut order = Vec::new();
        let mut groups: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, v) in &records {
            if !groups.contains_key(k) {
                order.push(*k);
            }
            groups.entry(*k).or_default().push(*v);
        }
        type Row = (u8, (u64, i64, i64, i64, i64, i64, u64));
        let want: Vec<Row> = order
            .iter()
            .map(|k| {
                let vs = &groups[k];
                let distinct: std::collections::BTreeSet<_> = vs.iter().map(|v| v % 7).collect();
                (*k, (
                    vs.len() as u64,
                    vs.iter().sum(),
                    *vs.iter().min().unwrap(),
                    *vs.iter().max().unwrap(),
                    vs[0],
                    *vs.last().unwrap(),
                    distinct.len() as u64,
                ))
            })
            .collect();

        let out = Collected::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(records.clone()).batch_size(batch_size))
                .key_by(|r: &(u8, i64)| r.0)
                .aggregate((
                    agg::count(),
                    agg::sum(|r: &(u8, i64)| r.1),
                    agg::min(|r: &(u8, i64)| r.1),
                    agg::max(|r: &(u8, i64)| r.1),
                    agg::first(|r: &(u8, i64)| r.1),
                    agg::last(|r: &(u8, i64)| r.1),
                    agg::count_distinct(|r: &(u8, i64)| r.1 % 7),
                ))
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        prop_assert_eq!(out.to_vec(), want.clone());
        let stage = report.stage("aggregate#1").unwrap();
        prop_assert_eq!(stage.absorbed, records.len() as u64);
        prop_assert_eq!(stage.records_out, want.len() as u64);
        prop_assert_eq!(stage.expanded, want.len() as u64);
        prop_assert!(report.check_accounting().is_ok(), "{:?}", report.check_accounting());
    }
}

fn orders_schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("category", DataType::Str),
        ("user", DataType::Str),
        ("amount", DataType::Float),
        ("qty", DataType::Int),
    ]))
}

fn order(schema: &Arc<Schema>, category: &str, user: &str, amount: f64, qty: i64) -> Record {
    Record::new(
        schema.clone(),
        vec![
            Value::from(category),
            Value::from(user),
            Value::Float(amount),
            Value::Int(qty),
        ],
    )
}

#[tokio::test]
async fn dynamic_records_aggregate_by_column_with_typed_result_columns() {
    let s = orders_schema();
    let rows = vec![
        order(&s, "books", "ana", 10.0, 1),
        order(&s, "toys", "bo", 4.0, 3),
        order(&s, "books", "bo", 5.5, 2),
        order(&s, "books", "ana", 2.5, 5),
    ];
    let out = Collected::new();
    let report = Pipeline::from(source::iter(rows))
        .key_by(Columns::new(["category"]))
        .aggregate_columns([
            ("orders", Agg::Count),
            ("revenue", Agg::sum("amount")),
            ("items", Agg::sum("qty")),
            ("mean_amount", Agg::mean("amount")),
            ("users", Agg::count_distinct("user")),
            ("largest", Agg::max("amount")),
        ])
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    assert_eq!(rows.len(), 2);
    let names: Vec<&str> = rows[0].schema().names().collect();
    assert_eq!(
        names,
        [
            "category",
            "orders",
            "revenue",
            "items",
            "mean_amount",
            "users",
            "largest"
        ]
    );
    let books = &rows[0];
    assert_eq!(books.get("category"), Some(&Value::from("books")));
    assert_eq!(books.get("orders"), Some(&Value::Int(3)));
    assert_eq!(books.get("revenue"), Some(&Value::Float(18.0)));
    assert_eq!(books.get("items"), Some(&Value::Int(8)));
    assert_eq!(books.get("mean_amount"), Some(&Value::Float(6.0)));
    assert_eq!(books.get("users"), Some(&Value::Int(2)));
    assert_eq!(books.get("largest"), Some(&Value::Float(10.0)));
    assert_eq!(rows[1].get("category"), Some(&Value::from("toys")));
    let types: Vec<DataType> = books
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Str,
            DataType::Int,
            DataType::Float,
            DataType::Int,
            DataType::Float,
            DataType::Int,
            DataType::Float
        ]
    );
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_record_without_the_key_column_is_a_record_error_under_the_policy() {
    let s = orders_schema();
    let other = Arc::new(Schema::new([("sku", DataType::Str)]));
    let rows = vec![
        order(&s, "books", "ana", 10.0, 1),
        Record::new(other.clone(), vec![Value::from("x-1")]),
        order(&s, "books", "bo", 5.0, 1),
    ];

    // Abort (the default): the run fails naming the column.
    let report = Pipeline::from(source::iter(rows.clone()))
        .key_by(Columns::new(["category"]))
        .aggregate_columns([("n", Agg::Count)])
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("fails");
    assert!(
        error.to_string().contains("no column \"category\""),
        "{error}"
    );
    assert_eq!(error.stage(), Some("aggregate#1"));
    report.check_accounting().unwrap();

    // Dead letters: the record goes there, the others are aggregated.
    let rejects = Collected::<Rejected>::new();
    let out = Collected::new();
    let report = Pipeline::from(source::iter(rows))
        .key_by(Columns::new(["category"]))
        .aggregate_columns([("n", Agg::Count)])
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(rejects.len(), 1);
    assert!(
        rejects.to_vec()[0]
            .record
            .as_deref()
            .unwrap()
            .contains("x-1")
    );
    assert_eq!(out.to_vec()[0].get("n"), Some(&Value::Int(2)));
    assert_eq!(report.dead_lettered(), 1);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn too_many_keys_fail_the_run_naming_the_stage_and_the_limit() {
    let report = Pipeline::from(source::iter(0..100_000u64).batch_size(1000))
        .key_by(|n: &u64| *n)
        .max_keys(5_000)
        .aggregate(agg::count())
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("fails").to_string();
    assert!(message.contains("\"aggregate#1\" holds"), "{message}");
    assert!(message.contains("over its max_keys (5000)"), "{message}");
    // Stopped soon after the limit: not the whole input read.
    let stage = report.stage("aggregate#1").unwrap();
    assert!(
        stage.state_keys > 5_000 && stage.state_keys <= 6_000,
        "{stage:?}"
    );
    assert!(report.records_in() < 100_000);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn too_many_state_bytes_fail_the_run_and_the_estimate_counts_key_text() {
    let long = "x".repeat(200);
    let report = Pipeline::from(source::iter(0..10_000u64).batch_size(100))
        .key_by(move |n: &u64| format!("{long}{n}"))
        .max_state_bytes(100_000)
        .aggregate(agg::count())
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("fails").to_string();
    assert!(
        message.contains("over its max_state_bytes (100000)"),
        "{message}"
    );
    let stage = report.stage("aggregate#1").unwrap();
    // At least the keys' text: 200+ bytes a key.
    assert!(stage.state_bytes >= stage.state_keys * 200, "{stage:?}");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_failed_run_emits_no_partial_groups() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..1_000u64).batch_size(10))
        .map(|n| {
            assert!(n != 500, "bad record");
            n
        })
        .key_by(|n: &u64| n % 3)
        .aggregate(agg::count())
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert!(out.is_empty(), "groups of a failed run went out");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn fold_and_reduce_keep_first_appearance_order() {
    let words = vec!["pear", "apple", "fig", "plum", "avocado", "peach"];
    let out = Collected::new();
    Pipeline::from(source::iter(words.clone()).batch_size(2))
        .key_by(|w: &&str| w.chars().next().unwrap())
        .fold(String::new(), |acc: &mut String, w: &&str| {
            if !acc.is_empty() {
                acc.push(',');
            }
            acc.push_str(w);
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![
            ('p', "pear,plum,peach".to_string()),
            ('a', "apple,avocado".to_string()),
            ('f', "fig".to_string())
        ]
    );

    let longest = Collected::new();
    Pipeline::from(source::iter(words))
        .key_by(|w: &&str| w.chars().next().unwrap())
        .reduce(|best: &mut &str, w: &&str| {
            if w.len() > best.len() {
                *best = w;
            }
        })
        .to(sink::collect(&longest))
        .run()
        .await
        .unwrap();
    assert_eq!(
        longest.to_vec(),
        vec![('p', "peach"), ('a', "avocado"), ('f', "fig")]
    );
}

#[tokio::test]
async fn the_report_says_what_went_into_state_and_how_large_it_grew() {
    let report = Pipeline::from(source::iter(vec!["a", "b", "a", "c", "a", "b"]))
        .key_by(|s: &&str| s.to_string())
        .aggregate(agg::count())
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let stage = report.stage("aggregate#1").unwrap();
    assert_eq!((stage.peak_state_keys, stage.state_keys), (3, 0));
    assert!(stage.peak_state_bytes > 0);
    let text = report.to_string();
    assert!(
        text.contains("aggregate#1: 3 expanded (copies, extra records, results from state), 6 absorbed into state, peak state 3 keys"),
        "{text}"
    );
    let json = serde_json::to_value(report.stages()).unwrap();
    assert_eq!(json[1]["absorbed"], 6);
    assert_eq!(json[1]["peak_state_keys"], 3);
}

#[tokio::test]
async fn decimal_sums_are_exact_and_timestamps_order_by_instant() {
    use dataflare::record::{Decimal, Timestamp};

    let schema = Arc::new(Schema::new([
        ("k", DataType::Str),
        ("amount", DataType::Decimal),
        ("at", DataType::Timestamp),
    ]));
    let row = |amount: &str, at: i64| {
        Record::new(
            schema.clone(),
            vec![
                Value::from("x"),
                Value::Decimal(amount.parse::<Decimal>().unwrap()),
                Value::Timestamp(Timestamp::from_secs(at)),
            ],
        )
    };
    let out = Collected::new();
    Pipeline::from(source::iter(vec![
        row("0.10", 30),
        row("0.20", 10),
        row("100.05", 20),
    ]))
    .key_by(Columns::new(["k"]))
    .aggregate_columns([
        ("total", Agg::sum("amount")),
        ("first_at", Agg::min("at")),
        ("last_at", Agg::max("at")),
        ("largest", Agg::max("amount")),
    ])
    .to(sink::collect(&out))
    .run()
    .await
    .unwrap();
    let r = &out.to_vec()[0];
    assert_eq!(r.get("total").unwrap().to_string(), "100.35");
    assert_eq!(
        r.get("first_at"),
        Some(&Value::Timestamp(Timestamp::from_secs(10)))
    );
    assert_eq!(
        r.get("last_at"),
        Some(&Value::Timestamp(Timestamp::from_secs(30)))
    );
    assert_eq!(r.get("largest").unwrap().to_string(), "100.05");
}
