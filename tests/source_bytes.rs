//! File sources report the bytes they read and their input's size on their
//! source stage: `bytes_in == bytes_total ==` the file's size after a complete
//! run, `bytes_in <= bytes_total` after one stopped early, and a total of 0
//! (unknown) for a reader given by the user.

use std::io::Cursor;
use std::path::PathBuf;

use dataflare::prelude::*;
use dataflare::{csv, jsonl};

fn file(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

/// A CSV input with a BOM, over several of the reader's 64 KiB chunks.
fn csv_data(rows: usize) -> Vec<u8> {
    let mut data = b"\xEF\xBB\xBFid,name,amount\n".to_vec();
    for i in 0..rows {
        data.extend_from_slice(format!("{i},name-{i},{}.25\n", i * 3).as_bytes());
    }
    data
}

/// A JSON Lines input over several of the reader's 256 KiB chunks.
fn jsonl_data(lines: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..lines {
        data.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"name-{i}\",\"amount\":{}.5}}\n",
                i * 7
            )
            .as_bytes(),
        );
    }
    data
}

async fn run_to_end<S: Source>(source: S) -> Report {
    let report = Pipeline::from(source)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    report.check_accounting().unwrap();
    report
}

async fn run_taking<S: Source>(source: S, n: u64) -> Report {
    let report = Pipeline::from(source)
        .take(n)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    report.check_accounting().unwrap();
    assert_eq!(report.records_out(), n);
    report
}

#[tokio::test]
async fn a_csv_file_read_to_the_end_reports_its_size() {
    let data = csv_data(20_000);
    assert!(data.len() > 4 * 64 * 1024);
    let (_dir, path) = file("in.csv", &data);
    let report = run_to_end(csv::read_records(&path)).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.records_out, 20_000);
    assert_eq!(source.bytes_in, data.len() as u64);
    assert_eq!(source.bytes_total, data.len() as u64);
    // Only the source reads bytes.
    let sink = report.stages().iter().find(|s| s.name != "source").unwrap();
    assert_eq!((sink.bytes_in, sink.bytes_total), (0, 0));
}

#[tokio::test]
async fn a_typed_csv_file_counts_its_bom_and_header() {
    let data = csv_data(3);
    let (_dir, path) = file("in.csv", &data);
    let report = run_to_end(csv::read::<(u64, String, f64)>(&path)).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.records_out, 3);
    assert_eq!(source.bytes_in, data.len() as u64);
    assert_eq!(source.bytes_total, data.len() as u64);
}

#[tokio::test]
async fn a_csv_source_whose_schema_was_read_before_the_run_counts_those_bytes() {
    let data = csv_data(5_000);
    let (_dir, path) = file("in.csv", &data);
    let mut source = csv::read_records(&path);
    source.read_schema().await.unwrap();
    let report = run_to_end(source).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.records_out, 5_000);
    assert_eq!(source.bytes_in, data.len() as u64);
    assert_eq!(source.bytes_total, data.len() as u64);
}

#[tokio::test]
async fn a_jsonl_file_read_to_the_end_reports_its_size() {
    let data = jsonl_data(20_000);
    assert!(data.len() > 2 * 256 * 1024);
    let (_dir, path) = file("in.jsonl", &data);
    let report = run_to_end(jsonl::read_records(&path)).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.records_out, 20_000);
    assert_eq!(source.bytes_in, data.len() as u64);
    assert_eq!(source.bytes_total, data.len() as u64);
}

#[tokio::test]
async fn an_empty_file_reports_zero_of_zero() {
    let (_dir, path) = file("in.jsonl", b"");
    let report = run_to_end(jsonl::read_records(&path)).await;
    let source = report.stage("source").unwrap();
    assert_eq!((source.bytes_in, source.bytes_total), (0, 0));
}

#[tokio::test]
async fn a_run_stopped_early_reports_no_more_than_the_total() {
    let data = csv_data(50_000);
    let (_dir, path) = file("in.csv", &data);
    let report = run_taking(csv::read_records(&path).batch_size(100), 10).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.bytes_total, data.len() as u64);
    assert!(source.bytes_in > 0);
    assert!(source.bytes_in <= source.bytes_total, "{source:?}");

    let data = jsonl_data(50_000);
    let (_dir, path) = file("in.jsonl", &data);
    let report = run_taking(jsonl::read_records(&path).batch_size(100), 10).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.bytes_total, data.len() as u64);
    assert!(source.bytes_in > 0);
    assert!(source.bytes_in <= source.bytes_total, "{source:?}");
}

#[tokio::test]
async fn a_reader_of_unknown_size_counts_what_it_read_of_no_total() {
    let data = csv_data(10_000);
    let report = run_to_end(csv::read_records_from(Cursor::new(data.clone()))).await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.records_out, 10_000);
    assert_eq!(
        (source.bytes_in, source.bytes_total),
        (data.len() as u64, 0)
    );

    let data = jsonl_data(10_000);
    let report = run_to_end(jsonl::read_from::<serde_json::Value>(Cursor::new(
        data.clone(),
    )))
    .await;
    let source = report.stage("source").unwrap();
    assert_eq!(source.records_out, 10_000);
    assert_eq!(
        (source.bytes_in, source.bytes_total),
        (data.len() as u64, 0)
    );
}

#[tokio::test]
async fn other_sources_report_no_bytes() {
    let report = run_to_end(source::iter(0..100)).await;
    let source = report.stage("source").unwrap();
    assert_eq!((source.bytes_in, source.bytes_total), (0, 0));
}
