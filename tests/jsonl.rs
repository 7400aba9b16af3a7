//! JSON Lines: typed and dynamic reading, exact errors, the Skip policy, blank
//! lines, round trips, and atomic output.

mod support;
use support::entries;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dataflare::jsonl;
use dataflare::prelude::*;
use dataflare::record::{DataType, Date, Record, Schema, Value};
use dataflare::testkit::failing_source;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    id: u64,
    kind: String,
    amount: f64,
    tag: Option<String>,
}

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|id| Event {
            id,
            kind: if id % 3 == 0 { "click" } else { "view" }.to_string(),
            amount: id as f64 / 4.0,
            tag: (id % 2 == 0).then(|| format!("t\"{id}\"\n")),
        })
        .collect()
}

async fn collect<S: Source>(source: S) -> Result<(Vec<S::Record>, Report)>
where
    S::Record: Clone,
{
    let out = Collected::new();
    let report = Pipeline::from(source).to(sink::collect(&out)).run().await?;
    Ok((out.to_vec(), report))
}

#[tokio::test]
async fn typed_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"id":1,"kind":"click","amount":2.5,"tag":null}"#,
            "\n",
            r#"{"tag":"x","amount":3,"kind":"view","id":2}"#,
            "\r\n",
            r#"{"id":3,"kind":"view","amount":0}"#,
        ),
    )
    .unwrap();
    let (got, report) = collect(jsonl::read::<Event>(&path)).await.unwrap();
    assert_eq!(
        got,
        vec![
            Event {
                id: 1,
                kind: "click".into(),
                amount: 2.5,
                tag: None
            },
            Event {
                id: 2,
                kind: "view".into(),
                amount: 3.0,
                tag: Some("x".into())
            },
            Event {
                id: 3,
                kind: "view".into(),
                amount: 0.0,
                tag: None
            },
        ]
    );
    assert!(report.is_completed());
}

#[tokio::test]
async fn dynamic_read_takes_columns_from_the_first_object_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"name":"Ada","age":36,"score":9.5,"admin":true,"note":null}"#,
            "\n",
            r#"{"age":41,"name":"Alan"}"#,
            "\n",
            r#"{"name":"Grace","admin":false,"score":7,"age":null,"note":"hi"}"#,
            "\n",
        ),
    )
    .unwrap();
    let (rows, _) = collect(jsonl::read_records(&path)).await.unwrap();
    assert_eq!(rows.len(), 3);
    let schema = rows[0].schema();
    assert_eq!(
        schema.names().collect::<Vec<_>>(),
        ["name", "age", "score", "admin", "note"]
    );
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            DataType::Str,
            DataType::Int,
            DataType::Float,
            DataType::Bool,
            DataType::Str
        ]
    );
    assert!(
        rows.iter().all(|r| Arc::ptr_eq(r.schema(), schema)),
        "one shared schema"
    );
    assert_eq!(
        rows[0].values(),
        [
            Value::from("Ada"),
            Value::Int(36),
            Value::Float(9.5),
            Value::Bool(true),
            Value::Null
        ]
    );
    // Missing keys are null; values keep their JSON type.
    assert_eq!(
        rows[1].values(),
        [
            Value::from("Alan"),
            Value::Int(41),
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(rows[2].get("score"), Some(&Value::Int(7)));
    assert_eq!(rows[2].get("note"), Some(&Value::from("hi")));
}

#[tokio::test]
async fn an_unknown_key_is_a_record_level_error_naming_the_field() {
    let input = concat!(
        r#"{"a":1}"#,
        "\n",
        r#"{"a":2,"b":3}"#,
        "\n",
        r#"{"a":4}"#,
        "\n"
    );
    let err = collect(jsonl::read_records_from(std::io::Cursor::new(input)))
        .await
        .unwrap_err();
    assert!(err.is_record_level());
    assert_eq!(err.stage(), Some("source"));
    assert_eq!(err.position().record, Some(1));
    assert_eq!(err.position().line, Some(2));
    assert_eq!(err.position().byte, Some(8));
    assert_eq!(err.position().field.as_deref(), Some("b"));
    assert!(err.to_string().contains("unknown key \"b\""), "{err}");

    let out = Collected::new();
    let report = Pipeline::from(jsonl::read_records_from(std::io::Cursor::new(input)))
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(report.skipped(), 1);
    let values: Vec<Value> = out.to_vec().iter().map(|r| r.values()[0].clone()).collect();
    assert_eq!(values, [Value::Int(1), Value::Int(4)]);
}

#[tokio::test]
async fn a_malformed_line_names_path_line_byte_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let good = r#"{"id":1,"kind":"a","amount":1}"#; // 30 bytes
    let text = format!("{good}\n\n{good}\n{{\"id\":2,,}}\n{good}\n");
    std::fs::write(&path, &text).unwrap();
    let bad_start = text.find("{\"id\":2").unwrap() as u64;
    assert_eq!(bad_start, 31 + 1 + 31);

    let out = Collected::new();
    let report = Pipeline::from(jsonl::read::<Event>(&path).batch_size(1))
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    let err = report.error().expect("the run failed");
    assert!(err.is_record_level());
    assert_eq!(err.path(), Some(path.as_path()));
    assert_eq!(
        err.position().record,
        Some(2),
        "blank lines are not records"
    );
    assert_eq!(err.position().line, Some(4), "lines count blank ones");
    assert_eq!(err.position().byte, Some(bad_start));
    assert!(
        err.to_string()
            .ends_with("key must be a string at column 9"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "stage \"source\": {}: record 3 (line 4, byte 63): key must be a string at column 9",
            path.display()
        )
    );
    assert_eq!(
        out.len(),
        2,
        "the records before the bad line were passed on"
    );
}

#[tokio::test]
async fn skip_counts_bad_lines_and_keeps_the_rest() {
    let good = |id: u32| format!(r#"{{"id":{id},"kind":"k","amount":{id}.5}}"#);
    let mut text = String::new();
    for id in 0..100u32 {
        match id % 10 {
            3 => text.push_str("{\"id\": oops}\n"),
            7 => text.push_str(&format!("{{\"id\":{id},\"kind\":\"k\"}}\n")), // no amount
            _ => text.push_str(&(good(id) + "\n")),
        }
    }
    let out = Collected::new();
    let report =
        Pipeline::from(jsonl::read_from::<Event>(std::io::Cursor::new(text)).batch_size(8))
            .on_error(ErrorPolicy::Skip)
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
    assert_eq!(report.skipped(), 20);
    assert_eq!(report.records_out(), 80);
    assert!(report.has_errors());
    let ids: Vec<u64> = out.to_vec().iter().map(|e| e.id).collect();
    let expected: Vec<u64> = (0..100).filter(|i| i % 10 != 3 && i % 10 != 7).collect();
    assert_eq!(ids, expected, "order kept around skipped lines");
}

#[tokio::test]
async fn blank_lines_are_skipped() {
    let text = "\n  \n1\n\t\r\n\r\n2\n\n3";
    let (got, report) = collect(jsonl::read_from::<u32>(std::io::Cursor::new(text)))
        .await
        .unwrap();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(report.skipped(), 0);
    let (got, _) = collect(jsonl::read_from::<u32>(std::io::Cursor::new("")))
        .await
        .unwrap();
    assert!(got.is_empty());
}

#[tokio::test]
async fn a_byte_order_mark_at_the_start_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.jsonl");
    std::fs::write(
        &path,
        "\u{FEFF}{\"name\":\"Ada\"}\r\n{\"name\":\"Alan\"}\r\n",
    )
    .unwrap();
    let (rows, _) = collect(jsonl::read_records(&path)).await.unwrap();
    assert_eq!(rows[0].schema().names().collect::<Vec<_>>(), ["name"]);
    assert_eq!(rows[1].get("name"), Some(&Value::from("Alan")));

    // Positions count the mark's 3 bytes.
    let input = std::io::Cursor::new("\u{FEFF}{oops}\n");
    let err = collect(jsonl::read_records_from(input)).await.unwrap_err();
    assert_eq!(
        (err.position().line, err.position().byte),
        (Some(1), Some(3))
    );
    assert_eq!(err.record_text(), Some("{oops}"));
}

#[tokio::test]
async fn a_utf16_input_fails_the_run_instead_of_rejecting_every_line() {
    let mut input = vec![0xFF, 0xFE];
    for unit in "{\"a\":1}\n{\"a\":2}\n".encode_utf16() {
        input.extend_from_slice(&unit.to_le_bytes());
    }
    let report = Pipeline::from(jsonl::read_records_from(std::io::Cursor::new(input)))
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(report.skipped(), 0);
    let err = report.error().unwrap();
    assert!(!err.is_record_level());
    assert_eq!(
        (err.position().line, err.position().byte),
        (Some(1), Some(0))
    );
    assert!(
        err.to_string()
            .contains("UTF-16 byte order mark; JSON Lines are read as UTF-8: convert the input"),
        "{err}"
    );
}

#[tokio::test]
async fn batch_size_sets_records_per_batch() {
    let text: String = (0..10).map(|i| format!("{i}\n")).collect();
    let report = Pipeline::from(jsonl::read_from::<u32>(std::io::Cursor::new(text)).batch_size(4))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_in(), 10);
    assert_eq!(report.batches_in(), 3);
}

#[tokio::test]
async fn invalid_utf8_is_an_error_unless_lossy() {
    let text = b"\"ok\"\n\"caf\xe9\"\n\"end\"\n".to_vec();
    let err = collect(jsonl::read_from::<String>(std::io::Cursor::new(
        text.clone(),
    )))
    .await
    .unwrap_err();
    assert!(err.is_record_level());
    assert_eq!(err.position().line, Some(2));
    assert_eq!(err.position().byte, Some(5));
    assert!(
        err.to_string()
            .contains("invalid UTF-8 at column 5 (byte 9): convert the input to UTF-8"),
        "{err}"
    );

    let (got, _) = collect(jsonl::read_from::<String>(std::io::Cursor::new(text)).lossy_utf8(true))
        .await
        .unwrap();
    assert_eq!(got, ["ok", "caf\u{FFFD}", "end"]);
}

#[tokio::test]
async fn a_missing_file_fails_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.jsonl");
    let err = collect(jsonl::read::<Event>(&path)).await.unwrap_err();
    assert!(!err.is_record_level());
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(matches!(err.kind(), dataflare::ErrorKind::Io(_)), "{err:?}");
}

#[tokio::test]
async fn a_given_schema_converts_and_rejects() {
    let schema = Schema::new([("n", DataType::Int), ("day", DataType::Date)]);
    let text = concat!(
        r#"{"n":1,"day":"2024-01-31"}"#,
        "\n",
        r#"{"n":"two"}"#,
        "\n",
        r#"{"day":null}"#,
        "\n"
    );
    let out = Collected::new();
    let report =
        Pipeline::from(jsonl::read_records_from(std::io::Cursor::new(text)).schema(schema))
            .on_error(ErrorPolicy::Skip)
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
    assert_eq!(report.skipped(), 1);
    let first = report.errors().first().expect("the skipped error is kept");
    assert_eq!(first.position().field.as_deref(), Some("n"));
    assert!(
        first.to_string().contains("expected int, found \"two\""),
        "{first}"
    );
    let rows = out.to_vec();
    assert_eq!(
        rows[0].values(),
        [
            Value::Int(1),
            Value::Date(Date::from_ymd(2024, 1, 31).unwrap())
        ]
    );
    assert_eq!(rows[1].values(), [Value::Null, Value::Null]);
}

#[tokio::test]
async fn typed_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let original = events(2500);
    Pipeline::from(source::iter(original.clone()).batch_size(100))
        .to(jsonl::write(&path))
        .run()
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2500);
    assert!(
        text.starts_with(
            "{\"id\":0,\"kind\":\"click\",\"amount\":0.0,\"tag\":\"t\\\"0\\\"\\n\"}\n"
        ),
        "{text:.80}"
    );
    let (back, _) = collect(jsonl::read::<Event>(&path)).await.unwrap();
    assert_eq!(back, original);
}

#[tokio::test]
async fn dynamic_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    let schema = Arc::new(Schema::new([
        ("city", DataType::Str),
        ("pop", DataType::Int),
        ("area", DataType::Float),
        ("capital", DataType::Bool),
    ]));
    let rows: Vec<Record> = (0..50)
        .map(|i| {
            Record::new(
                schema.clone(),
                vec![
                    Value::from(format!("c{i}, \"quoted\"")),
                    if i % 5 == 4 {
                        Value::Null
                    } else {
                        Value::Int(i * 1000)
                    },
                    Value::Float(i as f64 + 0.25),
                    Value::Bool(i % 2 == 0),
                ],
            )
        })
        .collect();
    Pipeline::from(source::iter(rows.clone()))
        .to(jsonl::write(&path))
        .run()
        .await
        .unwrap();
    let (back, _) = collect(jsonl::read_records(&path)).await.unwrap();
    // The first record has no null, so the inferred types are the original ones.
    assert_eq!(back, rows);

    // With dates, a given schema brings them back as dates.
    let dated = Arc::new(Schema::new([("day", DataType::Date), ("n", DataType::Int)]));
    let rows: Vec<Record> = (0..5)
        .map(|i| {
            Record::new(
                dated.clone(),
                vec![
                    Value::Date(Date::from_ymd(2024, 2, 25 + i).unwrap()),
                    Value::Int(i as i64),
                ],
            )
        })
        .collect();
    let path = dir.path().join("dated.jsonl");
    Pipeline::from(source::iter(rows.clone()))
        .to(jsonl::write(&path))
        .run()
        .await
        .unwrap();
    let (back, _) = collect(jsonl::read_records(&path).schema(dated.clone()))
        .await
        .unwrap();
    assert_eq!(back, rows);
}

#[tokio::test]
async fn write_to_a_writer_and_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    std::fs::write(&path, "0").unwrap(); // no final line break
    for run in 1..3 {
        Pipeline::from(source::iter(vec![run]))
            .to(jsonl::write(&path).append())
            .run()
            .await
            .unwrap();
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n1\n2\n");

    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct W(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    Pipeline::from(source::iter(vec![("a", 1), ("b", 2)]))
        .to(jsonl::write_to(W(buf.clone())))
        .run()
        .await
        .unwrap();
    assert_eq!(&*buf.lock().unwrap(), b"[\"a\",1]\n[\"b\",2]\n");
}

#[tokio::test]
async fn a_failed_run_leaves_no_output_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let report = Pipeline::from(failing_source(events(1000), 10, 500))
        .to(jsonl::write(&path))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert!(entries(dir.path()).is_empty(), "no file, no temporary file");

    std::fs::write(&path, "{\"good\":true}\n").unwrap();
    let report = Pipeline::from(failing_source(events(1000), 10, 500))
        .to(jsonl::write(&path))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"good\":true}\n");
    assert_eq!(entries(dir.path()), ["out.jsonl"]);
}

#[tokio::test]
async fn a_bad_destination_fails_before_any_record_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for path in [
        dir.path().join("missing/out.jsonl"),
        dir.path().to_path_buf(),
    ] {
        let reads = Arc::new(AtomicUsize::new(0));
        let r = reads.clone();
        let source = source::iter(events(10).into_iter().inspect(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        let err = Pipeline::from(source)
            .to(jsonl::write(&path))
            .run()
            .await
            .unwrap_err();
        assert_eq!(err.stage(), Some("sink"));
        assert_eq!(err.path(), Some(path.as_path()));
        assert_eq!(reads.load(Ordering::SeqCst), 0, "no record was read: {err}");
    }
}

#[tokio::test]
async fn a_record_that_cannot_be_serialized_is_named() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maps.jsonl");
    // JSON object keys must be strings: a map keyed by a tuple fails.
    let records: Vec<HashMap<(u8, u8), u8>> =
        vec![HashMap::new(), HashMap::new(), HashMap::from([((1, 2), 3)])];
    let err = Pipeline::from(source::iter(records))
        .to(jsonl::write(&path))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.position().record, Some(2));
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(err.to_string().contains("key must be a string"), "{err}");
    assert!(!path.exists());
}
