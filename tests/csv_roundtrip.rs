//! CSV read → write → read gives back the same records, typed and dynamic.

use std::path::Path;
use std::sync::Arc;

use dataflare::prelude::*;
use dataflare::record::{DataType, Date, Record, Schema, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    user: String,
    amount: f64,
    qty: Option<u32>,
    paid: bool,
    note: String,
}

fn orders(n: u64) -> Vec<Order> {
    let notes = [
        "plain",
        "comma, inside",
        "say \"hi\"",
        "two\nlines",
        "crlf\r\nline",
        " padded ",
        "semi;colon",
        "ünïcödé ✓",
    ];
    (0..n)
        .map(|id| Order {
            id,
            user: format!("user{}", id % 17),
            amount: id as f64 * 0.37 - 12.5,
            qty: (id % 4 != 0).then_some(id as u32 % 9),
            paid: id % 3 == 0,
            note: notes[id as usize % notes.len()].to_string(),
        })
        .collect()
}

async fn read_typed(path: &Path) -> Vec<Order> {
    let out = Collected::new();
    Pipeline::from(dataflare::csv::read::<Order>(path))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    out.to_vec()
}

async fn read_dynamic(path: &Path, schema: Option<Arc<Schema>>) -> Vec<Record> {
    let source = dataflare::csv::read_records(path);
    let source = match schema {
        Some(s) => source.schema(s),
        None => source,
    };
    let out = Collected::new();
    Pipeline::from(source)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    out.to_vec()
}

#[tokio::test]
async fn typed_read_write_read() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.csv");
    let second = dir.path().join("second.csv");
    let original = orders(3000);
    Pipeline::from(source::iter(original.clone()).batch_size(256))
        .to(dataflare::csv::write(&first))
        .run()
        .await
        .unwrap();

    let read = read_typed(&first).await;
    assert_eq!(read, original);
    Pipeline::from(dataflare::csv::read::<Order>(&first).batch_size(100))
        .to(dataflare::csv::write(&second))
        .run()
        .await
        .unwrap();
    assert_eq!(read_typed(&second).await, original);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
        "the same bytes both times"
    );
}

#[tokio::test]
async fn typed_round_trip_with_another_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.csv");
    let second = dir.path().join("second.csv");
    let original = orders(200);
    Pipeline::from(source::iter(original.clone()))
        .to(dataflare::csv::write(&first).delimiter(b';').quote(b'\''))
        .run()
        .await
        .unwrap();
    Pipeline::from(
        dataflare::csv::read::<Order>(&first)
            .delimiter(b';')
            .quote(b'\''),
    )
    .to(dataflare::csv::write(&second).delimiter(b';').quote(b'\''))
    .run()
    .await
    .unwrap();
    let out = Collected::new();
    Pipeline::from(
        dataflare::csv::read::<Order>(&second)
            .delimiter(b';')
            .quote(b'\''),
    )
    .to(sink::collect(&out))
    .run()
    .await
    .unwrap();
    assert_eq!(out.to_vec(), original);
}

fn typed_schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("id", DataType::Int),
        ("city", DataType::Str),
        ("area", DataType::Float),
        ("founded", DataType::Date),
        ("capital", DataType::Bool),
    ]))
}

fn cities(schema: &Arc<Schema>, n: i64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(
                schema.clone(),
                vec![
                    Value::Int(i - 5),
                    Value::from(format!("city \"{i}\", north\nside")),
                    if i % 7 == 3 {
                        Value::Null
                    } else {
                        Value::Float(i as f64 * 1.25 + 0.5)
                    },
                    Value::Date(Date::from_days_since_epoch(i as i32 * 400 - 20_000)),
                    if i % 5 == 0 {
                        Value::Null
                    } else {
                        Value::Bool(i % 2 == 0)
                    },
                ],
            )
        })
        .collect()
}

#[tokio::test]
async fn dynamic_read_write_read_with_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.csv");
    let second = dir.path().join("second.csv");
    let schema = typed_schema();
    let original = cities(&schema, 500);
    Pipeline::from(source::iter(original.clone()).batch_size(64))
        .to(dataflare::csv::write_records(&first))
        .run()
        .await
        .unwrap();

    let read = read_dynamic(&first, Some(schema.clone())).await;
    assert_eq!(read, original);
    Pipeline::from(dataflare::csv::read_records(&first).schema(schema.clone()))
        .to(dataflare::csv::write_records(&second))
        .run()
        .await
        .unwrap();
    assert_eq!(read_dynamic(&second, Some(schema)).await, original);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
}

#[tokio::test]
async fn dynamic_text_records_round_trip_without_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.csv");
    let output = dir.path().join("output.csv");
    // Text columns; an empty field is null, and is written back empty.
    std::fs::write(
        &input,
        "name,city,note\nAda,London,\"first, programmer\"\nAlan,,\"said \"\"hello\"\"\"\n,Paris,\"a\nb\"\n",
    )
    .unwrap();
    let first = read_dynamic(&input, None).await;
    assert_eq!(first.len(), 3);
    assert_eq!(first[1].get("city"), Some(&Value::Null));
    Pipeline::from(dataflare::csv::read_records(&input))
        .to(dataflare::csv::write_records(&output))
        .run()
        .await
        .unwrap();
    assert_eq!(read_dynamic(&output, None).await, first);
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(&output).unwrap()
    );
}

#[tokio::test]
async fn dynamic_round_trip_with_inferred_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let schema = typed_schema();
    // No nulls in the first rows and fractional areas, so inference finds the
    // original types.
    let original: Vec<Record> = cities(&schema, 300)
        .into_iter()
        .filter(|r| !r.values().iter().any(Value::is_null))
        .collect();
    Pipeline::from(source::iter(original.clone()))
        .to(dataflare::csv::write_records(&path))
        .run()
        .await
        .unwrap();
    let out = Collected::new();
    Pipeline::from(dataflare::csv::read_records(&path).infer_schema(1000))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), original);
}
