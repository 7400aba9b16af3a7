//! PostgreSQL against a real server: every mapped type through a file, a
//! table and a file again (NULLs and non-ASCII text included), typed rows,
//! the CSV COPY format, unmappable columns, and the connector kit's source
//! checks.
#![cfg(feature = "postgres")]

mod support;
use support::postgres::db;

use std::sync::Arc;

use dataflare::postgres::{self, CopyFormat};
use dataflare::prelude::*;
use dataflare::record::{DataType, Decimal, Record, Schema, Value};
use dataflare::testkit::kit;
use dataflare::{csv, jsonl};

const TABLE: &str = "CREATE TABLE {t} (
    id int8 PRIMARY KEY, small int2, medium int4, ratio float4, score float8,
    amount numeric(20,4), name text, code varchar(12), flag char(3), ok bool,
    day date, at timestamp, at_tz timestamptz, doc json, docb jsonb, raw bytea)";

fn schema() -> Arc<Schema> {
    use DataType::*;
    Arc::new(Schema::new([
        ("id", Int),
        ("small", Int),
        ("medium", Int),
        ("ratio", Float),
        ("score", Float),
        ("amount", Decimal),
        ("name", Str),
        ("code", Str),
        ("flag", Str),
        ("ok", Bool),
        ("day", Date),
        ("at", Timestamp),
        ("at_tz", Timestamp),
        ("doc", Json),
        ("docb", Json),
        ("raw", Bytes),
    ]))
}

/// Row `i`: every column set, but every 5th row all NULLs (the key aside).
fn line(i: i64) -> String {
    if i % 5 == 4 {
        return format!(
            r#"{{"id":{i},"small":null,"medium":null,"ratio":null,"score":null,"amount":null,"name":null,"code":null,"flag":null,"ok":null,"day":null,"at":null,"at_tz":null,"doc":null,"docb":null,"raw":null}}"#
        );
    }
    let names = ["Zoë", "東京", "naïve, \"quoted\"\nline", "", "emoji 🎉"];
    let name = serde_json::to_string(names[i as usize % names.len()]).unwrap();
    format!(
        r#"{{"id":{i},"small":{},"medium":{},"ratio":0.5,"score":{},"amount":"{}.{:04}","name":{name},"code":"c{i}","flag":"abc","ok":{},"day":"2024-02-{:02}","at":"2024-02-29T12:34:56.{:06}Z","at_tz":"1999-12-31T23:59:59Z","doc":{{"k":[1,"é",null]}},"docb":[{i},true],"raw":"AAEC/w=="}}"#,
        -(i % 300),
        i * 1000,
        i as f64 / 3.0 + 0.25,
        i * 7 - 50,
        i % 10_000,
        i % 2 == 0,
        i % 28 + 1,
        i % 999_999 + 1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_file_to_table_to_file() {
    let Some(db) = db("roundtrip").await else {
        return;
    };
    let t = db.table("all_types");
    db.exec(&TABLE.replace("{t}", &t)).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let n = 3_000;
    let text: String = (0..n).map(|i| line(i) + "\n").collect();
    std::fs::write(&input, &text).unwrap();

    let report = Pipeline::from(jsonl::read_records(&input).schema(schema()))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), n as u64);
    assert_eq!(db.count("all_types").await, n);

    let output = dir.path().join("out.jsonl");
    let sql = format!("SELECT * FROM {t} ORDER BY id");
    let report = Pipeline::from(
        postgres::query(db.url.as_str(), sql, [0; 0])
            .batch_size(700)
            .fetch_size(1000),
    )
    .to(jsonl::write::<Record>(&output))
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_in(), n as u64);
    let want: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        // float4 keeps 0.5 exactly; numeric(20,4) keeps its scale; char(3) pads.
        assert_eq!(g, w, "\n got {g}\nwant {w}");
    }

    // A query with parameters goes through a portal instead of COPY: the
    // same records, byte for byte.
    let portal = dir.path().join("portal.jsonl");
    let sql = format!("SELECT * FROM {t} WHERE id >= $1 ORDER BY id");
    let report = Pipeline::from(
        postgres::query(db.url.as_str(), sql, [i64::MIN])
            .batch_size(700)
            .fetch_size(1000),
    )
    .to(jsonl::write::<Record>(&portal))
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_in(), n as u64);
    assert_eq!(
        std::fs::read_to_string(&portal).unwrap(),
        std::fs::read_to_string(&output).unwrap()
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_rows_csv_copy_and_an_unmappable_column() {
    let Some(db) = db("typed").await else { return };
    let t = db.table("items");
    db.exec(&format!(
        "CREATE TABLE {t} (id int4 PRIMARY KEY, label text, price numeric, tags jsonb, loc point, u uuid)"
    ))
    .await;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Item {
        id: i32,
        label: Option<String>,
        price: Decimal,
        tags: Vec<String>,
    }
    let items: Vec<Item> = (0..10)
        .map(|i| Item {
            id: i,
            label: (i % 3 != 0).then(|| format!("ärtikel {i}")),
            price: Decimal::new(i as i64 * 125, 2),
            tags: vec![format!("t{i}")],
        })
        .collect();
    Pipeline::from(source::iter(items.clone()))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()).typed::<Item>())
        .run()
        .await
        .unwrap();
    let out = Collected::new();
    let sql = format!("SELECT id, label, price, tags FROM {t} WHERE id >= $1 ORDER BY id");
    Pipeline::from(postgres::query(db.url.as_str(), sql, [0]).typed::<Item>())
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), items);

    // Columns DataFlare does not map go through the CSV format as text.
    let s = Arc::new(Schema::strings(["id", "loc", "u", "label"]));
    let rows = vec![Record::new(
        s,
        vec![
            Value::from("100"),
            Value::from("(1.5,2)"),
            Value::from("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value::from("comma, \"quote\""),
        ],
    )];
    let e = Pipeline::from(source::iter(rows.clone()))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()))
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column \"loc\"") && e.contains("point") && e.contains("CopyFormat::Csv"),
        "{e}"
    );
    Pipeline::from(source::iter(rows))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()).format(CopyFormat::Csv))
        .run()
        .await
        .unwrap();
    let back = db
        .rows(&format!(
            "SELECT loc::text, u::text, label FROM {t} WHERE id = 100"
        ))
        .await;
    assert_eq!(back[0].get::<_, String>(0), "(1.5,2)");
    assert_eq!(back[0].get::<_, String>(2), "comma, \"quote\"");

    // Reading an unmappable column fails before any row, naming it.
    let report = Pipeline::from(postgres::query(
        db.url.as_str(),
        format!("SELECT id, loc FROM {t}"),
        [0; 0],
    ))
    .to(sink::discard())
    .run_to_report()
    .await;
    let e = report.error().expect("failed").to_string();
    assert!(
        e.contains("column \"loc\" has PostgreSQL type point"),
        "{e}"
    );
    assert!(e.contains("stage \"source\""), "{e}");
    assert_eq!(report.records_in(), 0);

    // A numeric too large for a decimal is a record-level error naming the
    // column: skipped under Skip, the other rows read.
    let report = Pipeline::from(postgres::query(
        db.url.as_str(),
        "SELECT x::numeric AS big FROM (VALUES ('1'), ('1e40'), ('2')) v(x)",
        [0; 0],
    ))
    .on_error(ErrorPolicy::Skip)
    .to(sink::discard())
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_out(), 2);
    assert_eq!(report.skipped(), 1);
    let e = report.errors()[0].to_string();
    assert!(e.contains("record 2") && e.contains("\"big\""), "{e}");
    // The same through a portal (a query with a parameter): the same error.
    let report = Pipeline::from(postgres::query(
        db.url.as_str(),
        "SELECT x::numeric AS big FROM (VALUES ('1'), ('1e40'), ('2')) v(x) WHERE $1::int8 = 0",
        [0],
    ))
    .on_error(ErrorPolicy::Skip)
    .to(sink::discard())
    .run()
    .await
    .unwrap();
    assert_eq!((report.records_out(), report.skipped()), (2, 1));
    assert_eq!(report.errors()[0].to_string(), e);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_file_to_table_and_back() {
    let Some(db) = db("csvfile").await else {
        return;
    };
    let t = db.table("orders");
    db.exec(&format!(
        "CREATE TABLE {t} (id int8, customer text, amount numeric(12,2), placed_at timestamptz)"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let mut text = String::from("id,customer,amount,placed_at\n");
    for i in 0..2500 {
        text.push_str(&format!(
            "{i},\"Müller, {i}\",{}.{:02},2024-01-01T00:00:{:02}Z\n",
            i * 3,
            i % 100,
            i % 60
        ));
    }
    std::fs::write(&input, &text).unwrap();
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("customer", DataType::Str),
        ("amount", DataType::Decimal),
        ("placed_at", DataType::Timestamp),
    ]));
    Pipeline::from(csv::read_records(&input).schema(schema))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()))
        .run()
        .await
        .unwrap();
    let output = dir.path().join("back.csv");
    Pipeline::from(postgres::query(
        db.url.as_str(),
        format!("SELECT * FROM {t} ORDER BY id"),
        [0; 0],
    ))
    .to(csv::write_records(&output))
    .run()
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), text);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_source_passes_the_connector_kit() {
    let Some(db) = db("kit").await else { return };
    let url = db.url.clone();
    let schema = db.schema.clone();
    let mut n = 0;
    kit::check_source(
        "postgres::query",
        |i| i as i64,
        move |records: Vec<i64>| {
            // A table of its own per run, filled when the source is first polled.
            n += 1;
            let t = format!("{schema}.kit_{n}");
            let url = url.clone();
            let fill = async move {
                let client = support::postgres::connect(&url).await;
                client
                    .batch_execute(&format!("CREATE TABLE {t} (v int8)"))
                    .await
                    .unwrap();
                let stmt = client
                    .prepare(&format!("INSERT INTO {t} SELECT unnest($1::int8[])"))
                    .await
                    .unwrap();
                client.execute(&stmt, &[&records]).await.unwrap();
                postgres::query(
                    url.as_str(),
                    format!("SELECT v FROM {t} ORDER BY v"),
                    [0; 0],
                )
                .fetch_size(600)
            };
            futures::stream::once(fill).flatten().map(|b| {
                b.map(|b| {
                    b.map_records(|r| {
                        r.into_iter()
                            .map(|r: Record| r.get("v").and_then(Value::as_i64).unwrap())
                            .collect()
                    })
                })
            })
        },
    )
    .await;
    db.drop_schema().await;
}

use futures::StreamExt;
