//! Timestamps, decimals, bytes and JSON in dynamic records, through the
//! connectors: a CSV file read with a typed schema and written back, JSON
//! Lines written and read back, timestamps inferred, decimal sums exact.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use dataflare::prelude::*;
use dataflare::record::{Bytes, DataType, Decimal, Record, Schema, Timestamp, Value};
use dataflare::state::{Columns, KeyOf};
use dataflare::{DeadLetters, Rejected, csv, jsonl};

fn dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    (dir, input, output)
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("id", DataType::Int),
        ("at", DataType::Timestamp),
        ("amount", DataType::Decimal),
        ("blob", DataType::Bytes),
        ("doc", DataType::Json),
    ]))
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// Runs `source` into a collection, skipping bad records; the records and
/// the rejects' (line, field, error).
async fn collect<S>(source: S) -> (Vec<Record>, Vec<(Option<u64>, Option<String>, String)>)
where
    S: Source<Record = Record>,
{
    let out = Collected::new();
    let rejects = Collected::<Rejected>::new();
    Pipeline::from(source)
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rejects = rejects
        .to_vec()
        .into_iter()
        .map(|r| (r.line, r.field, r.error))
        .collect();
    (out.to_vec(), rejects)
}

#[tokio::test]
async fn csv_with_a_typed_schema_reads_and_writes_every_new_type() {
    let (_dir, input, output) = dir();
    std::fs::write(
        &input,
        "id,at,amount,blob,doc\n\
         1,2026-11-30T17:04:05.5+02:00,12.50,aGkh,\"{\"\"tags\"\":[\"\"a\"\"],\"\"n\"\":1}\"\n\
         2,2026-11-30 15:04:05z,-0.05,\\x00ff,\"[1,2]\"\n\
         3,,,,\n",
    )
    .unwrap();
    let (rows, rejects) = collect(csv::read_records(&input).schema(schema())).await;
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(rows.len(), 3);
    let first = &rows[0];
    assert_eq!(
        first.get("at"),
        Some(&Value::Timestamp(ts("2026-11-30T15:04:05.5Z")))
    );
    assert_eq!(first.get("amount"), Some(&Value::Decimal(dec("12.5"))));
    assert_eq!(
        first.get("blob").and_then(Value::as_bytes),
        Some(&b"hi!"[..])
    );
    assert_eq!(
        first.get("doc").and_then(Value::as_json),
        Some(&serde_json::json!({"tags": ["a"], "n": 1}))
    );
    assert_eq!(
        rows[1].get("blob"),
        Some(&Value::Bytes(Bytes::from(vec![0, 255])))
    );
    assert!(rows[2].values()[1..].iter().all(Value::is_null));

    Pipeline::from(source::iter(rows))
        .to(csv::write_records(&output))
        .run()
        .await
        .unwrap();
    // UTC, the decimal's scale, base64, compact JSON (quoted as CSV needs).
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,at,amount,blob,doc\n\
         1,2026-11-30T15:04:05.500000Z,12.50,aGkh,\"{\"\"n\"\":1,\"\"tags\"\":[\"\"a\"\"]}\"\n\
         2,2026-11-30T15:04:05Z,-0.05,AP8=,\"[1,2]\"\n\
         3,,,,\n"
    );
    // What was written reads back the same.
    let (again, _) = collect(csv::read_records(&output).schema(schema())).await;
    let (before, _) = collect(csv::read_records(&input).schema(schema())).await;
    assert_eq!(again, before);
}

#[tokio::test]
async fn a_value_that_does_not_parse_is_a_record_error_saying_what_was_expected() {
    let (_dir, input, _) = dir();
    std::fs::write(
        &input,
        "id,at,amount,blob,doc\n\
         1,2026-13-01T00:00:00Z,1,,\n\
         2,2026-11-30T15:04:05,1,,\n\
         3,2026-11-30T15:04:05Z,1.2.3,,\n\
         4,2026-11-30T15:04:05Z,1,abc,\n\
         5,2026-11-30T15:04:05Z,1,,{oops\n\
         6,2026-11-30T15:04:05Z,1,,\n",
    )
    .unwrap();
    let (rows, rejects) = collect(csv::read_records(&input).schema(schema())).await;
    assert_eq!(rows.len(), 1);
    let expected = [
        (
            "at",
            r#""2026-13-01T00:00:00Z" is not a timestamp: month 13"#,
        ),
        (
            "at",
            r#""2026-11-30T15:04:05" is not a timestamp: no time zone"#,
        ),
        ("amount", r#""1.2.3" is not a decimal"#),
        ("blob", r#""abc" is not base64"#),
        ("doc", r#""{oops" is not JSON"#),
    ];
    assert_eq!(rejects.len(), expected.len(), "{rejects:?}");
    for ((line, field, error), (i, (name, message))) in
        rejects.iter().zip(expected.iter().enumerate())
    {
        assert_eq!(*line, Some(i as u64 + 2));
        assert_eq!(field.as_deref(), Some(*name));
        assert!(error.contains(message), "{error}");
    }
}

#[tokio::test]
async fn json_lines_round_trip() {
    let (_dir, _, output) = dir();
    let schema = schema();
    let doc = serde_json::json!({"deep": {"list": [1, 2.5, "x", null, true]}});
    let rows = vec![
        Record::new(
            schema.clone(),
            vec![
                Value::Int(1),
                Value::from(Timestamp::from_micros(1_700_000_000_000_001)),
                Value::from(dec("0.10000000000000000001")),
                Value::from(&b"\x00\x01binary"[..]),
                Value::from(doc),
            ],
        ),
        Record::new(
            schema.clone(),
            vec![
                Value::Int(2),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ),
    ];
    Pipeline::from(source::iter(rows.clone()))
        .to(jsonl::write(&output))
        .run()
        .await
        .unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        text,
        "{\"id\":1,\"at\":\"2023-11-14T22:13:20.000001Z\",\"amount\":\"0.10000000000000000001\",\
         \"blob\":\"AAFiaW5hcnk=\",\"doc\":{\"deep\":{\"list\":[1,2.5,\"x\",null,true]}}}\n\
         {\"id\":2,\"at\":null,\"amount\":null,\"blob\":null,\"doc\":null}\n"
    );
    let (back, rejects) = collect(jsonl::read_records(&output).schema(schema)).await;
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(back, rows);
}

#[tokio::test]
async fn json_lines_without_a_schema_keep_nested_values_as_json() {
    let (_dir, input, output) = dir();
    let text = "{\"id\":1,\"tags\":[\"a\",\"b\"],\"meta\":{\"a\":{\"b\":[]}}}\n\
                {\"id\":2,\"tags\":[],\"meta\":null}\n";
    std::fs::write(&input, text).unwrap();
    let (rows, rejects) = collect(jsonl::read_records(&input)).await;
    assert!(rejects.is_empty(), "{rejects:?}");
    let types: Vec<_> = rows[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    assert_eq!(types, [DataType::Int, DataType::Json, DataType::Json]);
    Pipeline::from(source::iter(rows))
        .to(jsonl::write(&output))
        .run()
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), text);
}

#[tokio::test]
async fn infer_schema_infers_utc_timestamps_and_never_changes_a_value() {
    let (_dir, input, output) = dir();
    std::fs::write(
        &input,
        "utc,fraction,offset,local\n\
         2026-11-30T15:04:05Z,2026-11-30T15:04:05.5Z,2026-11-30T15:04:05+02:00,2026-11-30T15:04:05\n\
         2026-12-01T00:00:00Z,2026-12-01T00:00:00.123456Z,2026-12-01T00:00:00Z,2026-12-01T00:00:00\n\
         ,,,\n",
    )
    .unwrap();
    let (rows, rejects) = collect(csv::read_records(&input).infer_schema(10)).await;
    assert!(rejects.is_empty(), "{rejects:?}");
    let types: Vec<_> = rows[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect();
    // An offset would be lost in UTC, a zone-less time has no instant: text.
    assert_eq!(
        types,
        [
            DataType::Timestamp,
            DataType::Timestamp,
            DataType::Str,
            DataType::Str
        ]
    );
    assert_eq!(
        rows[0].get("utc"),
        Some(&Value::Timestamp(ts("2026-11-30T15:04:05Z")))
    );
    assert_eq!(rows[2].get("utc"), Some(&Value::Null));
    Pipeline::from(source::iter(rows))
        .to(csv::write_records(&output))
        .run()
        .await
        .unwrap();
    // The same instants; only the fraction's digit count changed.
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "utc,fraction,offset,local\n\
         2026-11-30T15:04:05Z,2026-11-30T15:04:05.500000Z,2026-11-30T15:04:05+02:00,2026-11-30T15:04:05\n\
         2026-12-01T00:00:00Z,2026-12-01T00:00:00.123456Z,2026-12-01T00:00:00Z,2026-12-01T00:00:00\n\
         ,,,\n"
    );
}

#[tokio::test]
async fn a_later_offset_does_not_fit_an_inferred_timestamp_column() {
    let (_dir, input, _) = dir();
    std::fs::write(
        &input,
        "at\n2026-11-30T15:04:05Z\n2026-11-30T17:04:05+02:00\n2026-11-30T16:00:00Z\n",
    )
    .unwrap();
    let (rows, rejects) = collect(csv::read_records(&input).infer_schema(1)).await;
    assert_eq!(rows.len(), 2);
    let (line, field, error) = &rejects[0];
    assert_eq!((*line, field.as_deref()), (Some(3), Some("at")));
    assert!(error.contains("inferred as timestamp"), "{error}");
    assert!(error.contains("2026-11-30T15:04:05Z"), "{error}");
}

#[tokio::test]
async fn decimal_sums_are_exact() {
    let (_dir, input, _) = dir();
    let mut text = String::from("amount\n0.1\n0.2\n");
    for _ in 0..1000 {
        text.push_str("0.01\n");
    }
    std::fs::write(&input, text).unwrap();
    let amounts = Arc::new(Schema::new([("amount", DataType::Decimal)]));
    let (rows, _) = collect(csv::read_records(&input).schema(amounts)).await;
    let decimals = || rows.iter().filter_map(|r| r.get("amount")?.as_decimal());
    let head: Decimal = decimals().take(2).sum();
    assert_eq!(head, dec("0.3"));
    assert_eq!(head.to_string(), "0.3");
    assert_eq!(
        Decimal::checked_sum(decimals()).unwrap().to_string(),
        "10.30"
    );
    // What floats would have made of it.
    assert_ne!(0.1 + 0.2, 0.3);
    let floats: f64 = decimals().map(Decimal::to_f64).sum();
    assert_ne!(floats, 10.3);
}

#[test]
fn keys_group_decimals_by_value() {
    let schema = Arc::new(Schema::new([
        ("amount", DataType::Decimal),
        ("doc", DataType::Json),
    ]));
    let mut by = Columns::new(["amount", "doc"]);
    let keys: HashSet<_> = [
        ("1.50", r#"{"a":1,"b":2}"#),
        ("1.5", r#"{"b":2,"a":1}"#),
        ("1.51", "{}"),
    ]
    .into_iter()
    .map(|(amount, doc)| {
        let values = vec![
            DataType::Decimal.parse(amount).unwrap(),
            DataType::Json.parse(doc).unwrap(),
        ];
        by.key_of(&Record::new(schema.clone(), values)).unwrap()
    })
    .collect();
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn typed_records_read_timestamps_and_exact_decimals_from_csv() {
    #[derive(Debug, Clone, serde::Deserialize)]
    struct Payment {
        at: Timestamp,
        amount: Decimal,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.csv");
    std::fs::write(
        &path,
        "at,amount\n2026-11-30T10:00:00Z,12345678901234567890.10\n2026-11-30T11:30:00+01:00,0.20\n",
    )
    .unwrap();
    let out = Collected::new();
    Pipeline::from(dataflare::csv::read::<Payment>(&path))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    assert_eq!(rows[0].amount.to_string(), "12345678901234567890.10");
    assert_eq!(rows[1].at.to_string(), "2026-11-30T10:30:00Z");
    let total: Decimal = rows.iter().map(|r| r.amount).sum();
    assert_eq!(total.to_string(), "12345678901234567890.30");
    assert_eq!(rows[0].at, Timestamp::from_secs(1_796_032_800));
}
