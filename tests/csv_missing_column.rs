//! A typed source whose type needs a column the header lacks ends the run
//! once, naming the header's columns and the field, instead of failing (or,
//! under Skip, silently skipping) every row.

use std::path::PathBuf;

use dataflare::csv;
use dataflare::prelude::*;
use futures::StreamExt;
use serde::Deserialize;

fn file(data: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

const DATA: &str = "id,amount,note\n1,9.5,a\n2,3,b\n3,4,c\n";

/// Plain fields: the fast deserializer reads them (and leaves errors to the
/// `csv` crate).
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Order {
    id: u32,
    amount: f64,
    price: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
enum Note {
    #[serde(rename = "a")]
    A,
    #[serde(other)]
    Other,
}

/// An enum field: only the `csv` crate reads it.
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct WithEnum {
    id: u32,
    note: Note,
    price: f64,
}

async fn skipping<S: Source>(source: S) -> Report
where
    S::Record: Clone,
{
    let out = Collected::new();
    Pipeline::from(source)
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run_to_report()
        .await
}

fn assert_missing_price(report: &Report, path: &std::path::Path) {
    assert!(report.is_failed(), "{report:?}");
    assert_eq!(report.skipped(), 0);
    let e = report.error().unwrap();
    assert!(!e.is_record_level());
    assert_eq!(e.path(), Some(path));
    assert_eq!(e.position().field.as_deref(), Some("price"));
    assert!(
        e.to_string().contains(
            "the header has no column `price` that the type needs; columns are id, amount, note"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_field_the_header_lacks_fails_the_run_under_skip() {
    let (_dir, path) = file(DATA);
    assert_missing_price(&skipping(csv::read::<Order>(&path)).await, &path);
    assert_missing_price(&skipping(csv::read::<WithEnum>(&path)).await, &path);
}

#[tokio::test]
async fn the_error_comes_once() {
    let (_dir, path) = file(DATA);
    let items: Vec<_> = csv::read::<Order>(&path).collect().await;
    assert_eq!(items.len(), 1);
    assert!(!items[0].as_ref().unwrap_err().is_record_level());
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Optional {
    id: u32,
    price: Option<f64>,
    #[serde(default)]
    discount: f64,
}

#[tokio::test]
async fn optional_and_default_fields_stay_optional() {
    let (_dir, path) = file(DATA);
    let out = Collected::new();
    Pipeline::from(csv::read::<Optional>(&path))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(
        out.to_vec()[0],
        Optional {
            id: 1,
            price: None,
            discount: 0.0
        }
    );
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Three {
    id: u32,
    amount: f64,
    note: String,
}

#[tokio::test]
async fn a_short_row_is_still_the_row_s_fault() {
    // The header has `note`; the second row lacks it.
    let data = "id,amount,note\n1,9.5,a\n2,3\n3,4,c\n";
    let report = skipping(csv::read_from::<Three>(data.as_bytes()).flexible(true)).await;
    assert!(!report.is_failed(), "{report:?}");
    assert_eq!(report.skipped(), 1);
    assert_eq!(report.records_out(), 2);
}
