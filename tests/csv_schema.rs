//! The columns of a CSV source before any record, and a CSV sink that writes
//! its header from them: a header-only input converts to a header-only file.

use std::path::PathBuf;
use std::sync::Arc;

use dataflare::csv;
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};

fn dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
    (dir, input, output)
}

#[tokio::test]
async fn a_header_only_csv_keeps_its_header() {
    let (_dir, input, output) = dir();
    std::fs::write(&input, "id,name,city\n").unwrap();
    let mut source = csv::read_records(&input);
    let schema = source.read_schema().await.unwrap();
    assert_eq!(schema.names().collect::<Vec<_>>(), ["id", "name", "city"]);
    let report = Pipeline::from(source)
        .to(csv::write_records(&output).schema(schema))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 0);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,name,city\n");
}

#[tokio::test]
async fn read_schema_keeps_every_record_for_the_run() {
    let (_dir, input, output) = dir();
    let mut data = String::from("id,price,note\n");
    for i in 0..1000 {
        data.push_str(&format!("{i},{i}.5,n{i}\n"));
    }
    std::fs::write(&input, &data).unwrap();
    // A sample larger than a batch, so batches wait behind the schema.
    let mut source = csv::read_records(&input).infer_schema(300).batch_size(64);
    let schema = source.read_schema().await.unwrap();
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(types, [DataType::Int, DataType::Float, DataType::Str]);
    let out = Collected::new();
    Pipeline::from(source)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999].get("id"), Some(&Value::Int(999)));
    assert!(Arc::ptr_eq(rows[0].schema(), &schema));

    // Through a CSV sink given the schema, the same file.
    let mut source = csv::read_records(&input);
    let schema = source.read_schema().await.unwrap();
    Pipeline::from(source)
        .to(csv::write_records(&output).schema(schema))
        .run()
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), data);
}

#[tokio::test]
async fn read_schema_from_a_reader_and_without_a_header() {
    let mut source = csv::read_records_from("1,2,3\n4,5,6\n".as_bytes()).has_headers(false);
    let schema = source.read_schema().await.unwrap();
    assert_eq!(schema.names().collect::<Vec<_>>(), ["col0", "col1", "col2"]);
    let out = Collected::new();
    Pipeline::from(source)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 2);

    // An empty input: no columns, or the given schema's.
    let mut source = csv::read_records_from(&b""[..]);
    assert!(source.read_schema().await.unwrap().is_empty());
    let given = Arc::new(Schema::strings(["a"]));
    let mut source = csv::read_records_from(&b""[..]).schema(given.clone());
    assert_eq!(source.read_schema().await.unwrap(), given);
}

#[tokio::test]
async fn read_schema_fails_as_the_run_would() {
    let (_dir, input, _) = dir();
    let e = csv::read_records(&input).read_schema().await.unwrap_err();
    assert_eq!(e.path(), Some(input.as_path()));
    std::fs::write(&input, "a,a\n1,2\n").unwrap();
    let e = csv::read_records(&input).read_schema().await.unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
}

#[tokio::test]
async fn an_empty_run_with_a_known_schema_writes_the_header() {
    let (_dir, _, output) = dir();
    let schema = Arc::new(Schema::new([("id", DataType::Int), ("n", DataType::Float)]));
    Pipeline::from(source::iter(Vec::<Record>::new()))
        .to(csv::write_records(&output).schema(schema.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,n\n");

    // Records with other columns are refused.
    let other = Arc::new(Schema::strings(["x"]));
    let rows = vec![Record::new(other, vec![Value::from("1")])];
    let e = Pipeline::from(source::iter(rows))
        .to(csv::write_records(&output).schema(schema))
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("differ"), "{e}");
}
