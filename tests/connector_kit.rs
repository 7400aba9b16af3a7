//! Every built-in source and sink through the connector compliance kit
//! (`dataflare::testkit::kit`): one test per connector.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::testkit::kit;
use dataflare::{csv, jsonl};
use serde::{Deserialize, Serialize};

/// A typed record; its text needs quoting in CSV (a comma, quotes, and on
/// some rows a line break) and escaping in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    score: f64,
}

fn row(i: usize) -> Row {
    let name = if i.is_multiple_of(7) {
        format!("row {i}, \"quoted\"\nsecond line")
    } else {
        format!("row {i}, \"quoted\"")
    };
    Row {
        id: i as u64,
        name,
        score: i as f64 / 4.0,
    }
}

/// `row(i)` as a record of text columns, as `csv::read_records` makes it.
fn text_record(i: usize) -> Record {
    text_record_of(row(i))
}

fn text_record_of(r: Row) -> Record {
    let schema = Arc::new(Schema::strings(["id", "name", "score"]));
    Record::new(
        schema,
        vec![
            Value::from(r.id.to_string()),
            Value::from(r.name),
            Value::from(r.score.to_string()),
        ],
    )
}

/// `row(i)` as a typed record, as `jsonl::read_records` makes it.
fn typed_record(i: usize) -> Record {
    let r = row(i);
    Record::new(
        typed_schema(),
        vec![
            Value::Int(r.id as i64),
            Value::from(r.name),
            Value::Float(r.score),
        ],
    )
}

fn typed_schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("id", DataType::Int),
        ("name", DataType::Str),
        ("score", DataType::Float),
    ]))
}

/// The `Row` a record of `text_record` or `typed_record` stands for.
fn row_of(record: &Record) -> Row {
    let text = |name: &str| match record.get(name) {
        Some(Value::Str(t)) => t.to_string(),
        other => panic!("{name} is {other:?}"),
    };
    match record.get("id") {
        Some(Value::Int(id)) => Row {
            id: *id as u64,
            name: text("name"),
            score: match record.get("score") {
                Some(Value::Float(x)) => *x,
                other => panic!("score is {other:?}"),
            },
        },
        _ => Row {
            id: text("id").parse().unwrap(),
            name: text("name"),
            score: text("score").parse().unwrap(),
        },
    }
}

/// A CSV field, quoted when it must be.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The CSV text of `rows`, header first, written by hand (not by the sink
/// under test).
fn csv_text(rows: &[Row]) -> String {
    let mut text = String::from("id,name,score\n");
    for r in rows {
        text.push_str(&format!("{},{},{}\n", r.id, csv_field(&r.name), r.score));
    }
    text
}

/// The JSON Lines text of `rows`.
fn jsonl_text(rows: &[Row]) -> String {
    rows.iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

/// Input files for a file source: a new file per call.
struct Inputs {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Inputs {
    fn new() -> Self {
        Inputs {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
        }
    }

    fn write(&self, text: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("input-{n}"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Reads a CSV file with the `csv` crate (not the source under test).
fn read_csv(path: &Path) -> Vec<Row> {
    ::csv::Reader::from_path(path)
        .unwrap()
        .deserialize()
        .map(|r| r.unwrap())
        .collect()
}

/// Reads a JSON Lines file with `serde_json` (not the source under test).
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A JSON object line as a typed record of the `typed_schema` columns.
fn typed_record_from_json(object: serde_json::Value) -> Record {
    let r: Row = serde_json::from_value(object).unwrap();
    Record::new(
        typed_schema(),
        vec![
            Value::Int(r.id as i64),
            Value::from(r.name),
            Value::Float(r.score),
        ],
    )
}

// Sources.

#[tokio::test]
async fn source_iter() {
    kit::check_source("source::iter", row, source::iter).await;
}

#[tokio::test]
async fn source_stream() {
    kit::check_source("source::stream", row, |rows| {
        source::stream(futures::stream::iter(rows))
    })
    .await;
}

#[tokio::test]
async fn source_try_stream() {
    kit::check_source("source::try_stream", row, |rows| {
        source::try_stream(futures::stream::iter(rows.into_iter().map(Ok)))
    })
    .await;
    let failing = (0..10)
        .map(|i| Ok(row(i)))
        .chain([Err(Error::msg("connection reset"))]);
    kit::check_source_error(
        "source::try_stream",
        source::try_stream(futures::stream::iter(failing)),
        &["connection reset"],
    )
    .await;
}

#[tokio::test]
async fn source_channel() {
    kit::check_source("source::channel", row, |rows| {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            for r in rows {
                if tx.send(r).await.is_err() {
                    break; // the run stopped reading
                }
            }
        });
        source::channel(rx)
    })
    .await;
}

/// Checks that `open` on a file of `good` records and then `bad` fails the run
/// naming the file, record 3 and `line`.
async fn bad_third_record<S: Source<Record: Clone>>(
    name: &str,
    good: String,
    bad: &str,
    line: &str,
    open: impl FnOnce(&Path) -> S,
) {
    let inputs = Inputs::new();
    let path = inputs.write(&(good + bad));
    let file = path.display().to_string();
    kit::check_source_error(name, open(&path), &[&file, "record 3", line]).await;
}

#[tokio::test]
async fn csv_read() {
    let inputs = Inputs::new();
    kit::check_source("csv::read", row, |rows| {
        csv::read::<Row>(inputs.write(&csv_text(&rows)))
    })
    .await;
}

#[tokio::test]
async fn csv_read_error() {
    // Record 3, on line 5 (record 1 spans lines 2 and 3), has no number for `id`.
    let good = csv_text(&[row(0), row(1)]);
    bad_third_record("csv::read", good, "x,bad,1\n", "line 5", |p| {
        csv::read::<Row>(p)
    })
    .await;
}

#[tokio::test]
async fn csv_read_records() {
    let inputs = Inputs::new();
    kit::check_source("csv::read_records", text_record, |records| {
        let rows: Vec<Row> = records.iter().map(row_of).collect();
        csv::read_records(inputs.write(&csv_text(&rows)))
    })
    .await;
}

#[tokio::test]
async fn csv_read_records_error() {
    let good = csv_text(&[row(0), row(1)]);
    bad_third_record(
        "csv::read_records",
        good,
        "2,too,many,fields\n",
        "line 5",
        |p| csv::read_records(p),
    )
    .await;
}

#[tokio::test]
async fn jsonl_read() {
    let inputs = Inputs::new();
    kit::check_source("jsonl::read", row, |rows| {
        jsonl::read::<Row>(inputs.write(&jsonl_text(&rows)))
    })
    .await;
}

#[tokio::test]
async fn jsonl_read_error() {
    let good = jsonl_text(&[row(1), row(2)]);
    bad_third_record(
        "jsonl::read",
        good,
        "{\"id\": 3, \"name\": \n",
        "line 3",
        |p| jsonl::read::<Row>(p),
    )
    .await;
}

#[tokio::test]
async fn jsonl_read_records() {
    let inputs = Inputs::new();
    kit::check_source("jsonl::read_records", typed_record, |records| {
        let rows: Vec<Row> = records.iter().map(row_of).collect();
        jsonl::read_records(inputs.write(&jsonl_text(&rows)))
    })
    .await;
}

#[tokio::test]
async fn jsonl_read_records_error() {
    let good = jsonl_text(&[row(1), row(2)]);
    bad_third_record(
        "jsonl::read_records",
        good,
        "[3, \"not an object\"]\n",
        "line 3",
        |p| jsonl::read_records(p),
    )
    .await;
}

// Sinks.

#[tokio::test]
async fn sink_collect() {
    kit::check_memory_sink("sink::collect", row, || {
        let out = Collected::new();
        (sink::collect(&out), move || out.to_vec())
    })
    .await;
}

#[tokio::test]
async fn csv_write() {
    kit::check_sink("csv::write", row, |p| csv::write::<Row>(p), read_csv).await;
}

#[tokio::test]
async fn csv_write_records() {
    kit::check_sink(
        "csv::write_records",
        typed_record,
        |p| csv::write_records(p),
        |path| {
            read_csv(path)
                .into_iter()
                .map(|r| {
                    Record::new(
                        typed_schema(),
                        vec![
                            Value::Int(r.id as i64),
                            Value::from(r.name),
                            Value::Float(r.score),
                        ],
                    )
                })
                .collect()
        },
    )
    .await;
}

#[tokio::test]
async fn csv_write_append() {
    kit::check_appending_sink(
        "csv::write().append()",
        row,
        |path| csv::write::<Row>(path).append(),
        read_csv,
    )
    .await;
}

#[tokio::test]
async fn csv_write_partitioned() {
    kit::check_partitioned_sink(
        "csv::write_partitioned",
        row,
        |dir| csv::write_partitioned::<Row>(dir),
        read_csv,
    )
    .await;
}

#[tokio::test]
async fn csv_write_records_partitioned() {
    kit::check_partitioned_sink(
        "csv::write_records_partitioned",
        text_record,
        |dir| csv::write_records_partitioned(dir),
        |path| read_csv(path).into_iter().map(text_record_of).collect(),
    )
    .await;
}

#[tokio::test]
async fn jsonl_write() {
    kit::check_sink(
        "jsonl::write",
        row,
        |p| jsonl::write::<Row>(p),
        read_jsonl::<Row>,
    )
    .await;
}

#[tokio::test]
async fn jsonl_write_records() {
    kit::check_sink(
        "jsonl::write (records)",
        typed_record,
        |p| jsonl::write::<Record>(p),
        |path| {
            read_jsonl::<serde_json::Value>(path)
                .into_iter()
                .map(typed_record_from_json)
                .collect()
        },
    )
    .await;
}

#[tokio::test]
async fn jsonl_write_append() {
    kit::check_appending_sink(
        "jsonl::write().append()",
        row,
        |path| jsonl::write::<Row>(path).append(),
        read_jsonl::<Row>,
    )
    .await;
}
