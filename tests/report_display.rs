//! What a person reads in a run's report: how it ended (the error on a line of
//! its own), whether anything was committed, every way records left each
//! stage, and the first errors of put-aside records with their positions.

use dataflare::csv;
use dataflare::prelude::*;

#[tokio::test]
async fn skipped_rows_are_named_with_their_line_and_counted_beyond_the_first_few() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut text = String::from("id,amount\n");
    for i in 0..20 {
        text.push_str(&format!("{i},{}\n", if i % 2 == 1 { "x" } else { "1.5" }));
    }
    std::fs::write(&input, text).unwrap();
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Row {
        id: u32,
        amount: f64,
    }
    let report = Pipeline::from(csv::read::<Row>(&input))
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let shown = report.to_string();
    assert!(shown.starts_with("completed with errors in "), "{shown}");
    assert!(
        shown.contains("20 records read, 10 out, 10 put aside (10 skipped)"),
        "{shown}"
    );
    assert!(shown.contains("  errors (10):"), "{shown}");
    // The first bad row is the second record, on line 3.
    assert!(shown.contains("record 2 (line 3, "), "{shown}");
    assert!(shown.contains("field \"amount\""), "{shown}");
    assert!(shown.contains("... and 7 more"), "{shown}");
}

#[tokio::test]
async fn a_failed_run_says_nothing_was_committed_and_gives_the_error_its_own_line() {
    let report = Pipeline::from(source::iter(vec![1, 2, 0, 4]).batch_size(1))
        .map(|x: i32| 12 / x)
        .to(sink::discard())
        .run_to_report()
        .await;
    let shown = report.to_string();
    let mut lines = shown.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("failed after "), "{shown}");
    assert!(
        head.ends_with("4 records read, nothing committed")
            || head.ends_with("3 records read, nothing committed"),
        "{shown}"
    );
    let error = lines.next().unwrap();
    assert!(
        error.starts_with("  error: stage \"map#1\": panicked"),
        "{shown}"
    );
    let header = lines.next().unwrap();
    for column in [
        "records in",
        "records out",
        "filtered",
        "failed",
        "abandoned",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(!report.committed());
}

#[tokio::test]
async fn records_cut_short_by_a_take_show_as_filtered_and_abandoned_not_lost() {
    let report = Pipeline::from(source::iter(0..100u32).batch_size(10))
        .filter(|x| x % 2 == 0)
        .take(5)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    report.check_accounting().unwrap();
    let shown = report.to_string();
    let take = shown
        .lines()
        .find(|l| l.trim_start().starts_with("take#2"))
        .unwrap();
    let numbers: Vec<u64> = take
        .split_whitespace()
        .skip(1)
        .take(5)
        .map(|n| n.parse().unwrap())
        .collect();
    let [records_in, out, filtered, failed, abandoned] = numbers[..] else {
        panic!("{take}")
    };
    assert_eq!(out, 5);
    assert_eq!(failed, 0);
    assert_eq!(records_in, out + filtered + abandoned, "{shown}");
}

#[tokio::test]
async fn a_failed_report_serializes_its_status_error_and_every_stage() {
    let report = Pipeline::from(source::iter(vec![1, 2, 0, 4]))
        .map(|x: i32| 12 / x)
        .to(sink::discard())
        .run_to_report()
        .await;
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "failed");
    assert!(json["error"].as_str().unwrap().contains("map#1"), "{json}");
    assert_eq!(json["stages"].as_array().unwrap().len(), 3);
    assert_eq!(json["stages"][1]["kind"], "map");
    assert!(json["stages"][1]["abandoned"].as_u64().unwrap() > 0);
}
