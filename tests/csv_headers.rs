//! The header row: a name given twice is refused, or renamed when asked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dataflare::csv::{self, DuplicateHeaders};
use dataflare::prelude::*;
use serde::Deserialize;

fn file(data: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.csv");
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

async fn fail_under_skip<S: Source>(source: S) -> Error
where
    S::Record: Clone,
{
    let report = Pipeline::from(source)
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run_to_report()
        .await;
    assert_eq!(report.skipped(), 0);
    report.into_result().expect_err("the run fails")
}

#[tokio::test]
async fn a_repeated_header_name_is_refused_naming_both_columns() {
    let (_dir, path) = file("id,a,b,a\n1,2,3,4\n");
    let e = fail_under_skip(csv::read_records(&path)).await;
    assert!(!e.is_record_level());
    assert_eq!(e.path(), Some(path.as_path()));
    assert_eq!(e.position().line, Some(1));
    assert_eq!(e.position().field.as_deref(), Some("a"));
    assert!(
        e.to_string()
            .contains("column name \"a\" appears twice, as columns 2 and 4"),
        "{e}"
    );
    assert!(e.to_string().contains("DuplicateHeaders::Rename"), "{e}");
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Row {
    a: u32,
    b: u32,
}

#[tokio::test]
async fn typed_sources_refuse_them_too() {
    let (_dir, path) = file("a,a,b\n1,2,3\n");
    // A struct would fail every row ("duplicate field"), a map keep one value.
    let e = fail_under_skip(csv::read::<Row>(&path)).await;
    assert!(
        e.to_string()
            .contains("\"a\" appears twice, as columns 1 and 2"),
        "{e}"
    );
    let e = fail_under_skip(csv::read::<BTreeMap<String, String>>(&path)).await;
    assert!(e.to_string().contains("\"a\" appears twice"), "{e}");
}

#[tokio::test]
async fn rename_gives_repeats_names_no_column_has() {
    let (_dir, path) = file("a,a,a_2,a\n1,2,3,4\n");
    let out = Collected::new();
    let source = csv::read_records(&path).duplicate_headers(DuplicateHeaders::Rename);
    Pipeline::from(source)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    assert_eq!(
        rows[0].schema().names().collect::<Vec<_>>(),
        ["a", "a_3", "a_2", "a_4"]
    );
    assert_eq!(rows[0].get("a_3").unwrap().to_string(), "2");

    // And JSON objects get one key each.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.jsonl");
    let source = csv::read_records(&path).duplicate_headers(DuplicateHeaders::Rename);
    Pipeline::from(source)
        .to(dataflare::jsonl::write(&json))
        .run()
        .await
        .unwrap();
    let line = std::fs::read_to_string(&json).unwrap();
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line.trim()).unwrap();
    assert_eq!(object.len(), 4);

    // Typed rows read the renamed columns by their new names.
    let out = Collected::new();
    let source =
        csv::read::<BTreeMap<String, u32>>(&path).duplicate_headers(DuplicateHeaders::Rename);
    Pipeline::from(source)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec()[0]["a_4"], 4);
}

#[tokio::test]
async fn names_equal_only_before_trimming_are_refused_after_it() {
    let e =
        fail_under_skip(csv::read_records_from("a, a\n1,2\n".as_bytes()).trim(csv::Trim::Headers))
            .await;
    assert!(e.to_string().contains("\"a\" appears twice"), "{e}");
}
