//! `infer_schema` never changes a value: leading zeros, integers past `i64`,
//! floats with more digits than a float holds stay text; a later value its
//! column's type cannot hold is a record error, not a changed value.

use dataflare::csv;
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Value};

async fn infer(data: &str, rows: usize) -> (Vec<Record>, Report) {
    let out = Collected::new();
    let source = csv::read_records_from(std::io::Cursor::new(data.to_string())).infer_schema(rows);
    let report = Pipeline::from(source)
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    (out.to_vec(), report)
}

fn types(row: &Record) -> Vec<DataType> {
    row.schema()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .collect()
}

/// The values as they print: what a CSV or JSON sink would write.
fn printed(rows: &[Record], column: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r.get(column).unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn leading_zeros_keep_a_column_text() {
    let (rows, report) = infer("zip,code,n\n00501,007,0\n10001,12,-5\n", 10).await;
    assert!(report.is_completed(), "{report:?}");
    use DataType::*;
    assert_eq!(types(&rows[0]), [Str, Str, Int]);
    assert_eq!(printed(&rows, "zip"), ["00501", "10001"]);
    assert_eq!(printed(&rows, "code"), ["007", "12"]);
    assert_eq!(printed(&rows, "n"), ["0", "-5"]);

    // `-0` would lose its sign as an integer; as a float it keeps it.
    let (rows, _) = infer("n\n-0\n3\n", 10).await;
    assert_eq!(types(&rows[0]), [Float]);
    assert_eq!(printed(&rows, "n"), ["-0", "3"]);
}

#[tokio::test]
async fn integers_past_i64_stay_text_unless_a_float_holds_them() {
    let (rows, _) = infer(
        "big,round\n12345678901234567890,10000000000000000000\n1,2\n",
        10,
    )
    .await;
    assert_eq!(types(&rows[0]), [DataType::Str, DataType::Float]);
    assert_eq!(printed(&rows, "big"), ["12345678901234567890", "1"]);
    assert_eq!(printed(&rows, "round"), ["10000000000000000000", "2"]);
}

#[tokio::test]
async fn floats_with_more_digits_than_a_float_holds_stay_text() {
    let data = "long,trailing,exp\n1.2345678901234567890,150.00,1e5\n2.5,0.10,2.5E-3\n";
    let (rows, _) = infer(data, 10).await;
    use DataType::*;
    assert_eq!(types(&rows[0]), [Str, Float, Float]);
    assert_eq!(printed(&rows, "long"), ["1.2345678901234567890", "2.5"]);
    // Trailing zeros after the point carry nothing; an exponent is the number it writes.
    assert_eq!(rows[0].get("trailing"), Some(&Value::Float(150.0)));
    assert_eq!(rows[1].get("trailing"), Some(&Value::Float(0.1)));
    assert_eq!(rows[0].get("exp"), Some(&Value::Float(100_000.0)));
}

#[tokio::test]
async fn booleans_only_as_written() {
    let (rows, _) = infer("a,b,c\ntrue,TRUE,yes\nfalse,False,no\n", 10).await;
    use DataType::*;
    assert_eq!(types(&rows[0]), [Bool, Str, Str]);
    assert_eq!(printed(&rows, "b"), ["TRUE", "False"]);
    assert_eq!(printed(&rows, "c"), ["yes", "no"]);
}

#[tokio::test]
async fn a_later_value_that_does_not_fit_is_a_record_error_suggesting_a_larger_sample() {
    let data =
        "id,zip,price\n1,501,2.5\n2,00502,3.5\n3,503,x\n4,504,12345678901234567890\n5,505,5\n";
    let (rows, report) = infer(data, 1).await;
    assert_eq!(
        types(&rows[0]),
        [DataType::Int, DataType::Int, DataType::Float]
    );
    // Only the rows whose values fit, unchanged.
    assert_eq!(printed(&rows, "id"), ["1", "5"]);
    assert_eq!(report.skipped(), 3);
    let errors = report.errors();
    let e = &errors[0];
    assert!(e.is_record_level());
    assert_eq!(e.position().field.as_deref(), Some("zip"));
    assert_eq!(e.position().line, Some(3));
    assert!(
        e.to_string().contains(
            "\"00502\" does not fit column \"zip\", inferred as int from the first 1 records \
             (it would read back as \"502\"); raise infer_schema (--infer-schema N)"
        ),
        "{e}"
    );
    assert_eq!(errors.len(), 3);
    assert!(
        errors[1].to_string().contains("(it is not one)"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2]
            .to_string()
            .contains("\"12345678901234567890\" does not fit column \"price\""),
        "{}",
        errors[2]
    );

    // Without Skip, the run fails on the first, naming it.
    let source = csv::read_records_from(std::io::Cursor::new(data)).infer_schema(1);
    let e = Pipeline::from(source)
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("column \"zip\""), "{e}");

    // A sample that sees them all keeps the column as text instead.
    let (rows, report) = infer(data, 10).await;
    assert!(!report.has_errors());
    assert_eq!(printed(&rows, "zip")[1], "00502");
}
