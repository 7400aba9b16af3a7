//! Dead letters from a CSV source carry the malformed row's text, so a reject
//! can be fixed without opening the input.

use dataflare::csv;
use dataflare::prelude::*;
use dataflare::record::{DataType, Schema};
use dataflare::{DeadLetters, Rejected};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Order {
    id: u32,
    user: String,
    amount: f64,
}

async fn rejects_of<S: Source>(source: S) -> (Vec<Rejected>, Report)
where
    S::Record: Clone,
{
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(source)
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    (rejects.to_vec(), report)
}

#[tokio::test]
async fn a_source_dead_letter_carries_the_raw_row() {
    let data = b"id,user,amount\r\n\
                 1,ada,1\r\n\
                 2,ab\"c\"d,2\r\n\
                 3,bob\r\n\
                 4,\"multi\nline\",x\r\n\
                 5,Jos\xE9,5\r\n\
                 6,eve,6\r\n";
    let (rejects, report) = rejects_of(csv::read_from::<Order>(&data[..])).await;
    assert_eq!(report.dead_lettered(), 4);
    let records: Vec<Option<&str>> = rejects.iter().map(|r| r.record.as_deref()).collect();
    assert_eq!(
        records,
        [
            Some("2,ab\"c\"d,2"),        // a quote in an unquoted field
            Some("3,bob"),               // too few fields
            Some("4,\"multi\nline\",x"), // a value that does not parse
            Some("5,Jos\u{FFFD},5"),     // invalid UTF-8, replaced
        ]
    );
    assert_eq!(rejects[1].line, Some(4));
}

#[tokio::test]
async fn dynamic_records_too() {
    let schema = std::sync::Arc::new(Schema::new([("n", DataType::Int)]));
    let data = "n,note\n1,a\nx,\"b, c\"\n3,\"d\"e\n";
    let (rejects, _) = rejects_of(csv::read_records_from(data.as_bytes()).schema(schema)).await;
    let records: Vec<Option<&str>> = rejects.iter().map(|r| r.record.as_deref()).collect();
    assert_eq!(records, [Some("x,\"b, c\""), Some("3,\"d\"e")]);
}

#[tokio::test]
async fn a_long_row_is_cut_saying_so() {
    let long = "y".repeat(10_000);
    let data = format!("id,user,amount\n1,{long}\n");
    let (rejects, _) = rejects_of(csv::read_from::<Order>(std::io::Cursor::new(data))).await;
    let text = rejects[0].record.as_deref().unwrap();
    assert!(text.starts_with("1,yyy"), "{text}");
    assert!(
        text.ends_with("... [cut: the record has 10002 bytes]"),
        "{}",
        &text[text.len() - 60..]
    );
    assert!(text.len() < 4200);
}
