//! The partitioned CSV sink (`csv::write_partitioned`): one file per key in a
//! directory, committed all together with the run or not at all; keys that
//! are unsafe as file names never become files; too many keys, or keys that
//! differ only in case, fail the run and leave nothing.

mod support;
use support::entries;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dataflare::prelude::*;
use dataflare::record::{Record, Schema, Value};
use dataflare::sink::{Keyed, PartitionKey};
use dataflare::testkit::{failing_sink, failing_source};
use dataflare::{DeadLetters, Rejected, csv};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    category: String,
}

fn order(id: u64, category: &str) -> Order {
    Order {
        id,
        category: category.to_string(),
    }
}

/// `n` orders whose categories take turns among `categories`.
fn orders(n: u64, categories: &[&str]) -> Vec<Order> {
    (0..n)
        .map(|id| order(id, categories[id as usize % categories.len()]))
        .collect()
}

/// The order with its category as the key: the usual first step.
fn keyed(o: &Order) -> Result<Keyed<Order>> {
    PartitionKey::new(o.category.clone()).map(|k| Keyed::new(k, o.clone()))
}

/// What a partition file should hold: the header, then `orders` in order.
fn csv_of<'a>(orders: impl IntoIterator<Item = &'a Order>) -> String {
    let mut text = String::from("id,category\n");
    for o in orders {
        text.push_str(&format!("{},{}\n", o.id, o.category));
    }
    text
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A source of `orders` counting the records read from it.
fn counted(orders: Vec<Order>, reads: &Arc<AtomicUsize>) -> impl Source<Record = Order> {
    let reads = reads.clone();
    source::iter(orders.into_iter().inspect(move |_| {
        reads.fetch_add(1, Ordering::Relaxed);
    }))
}

#[tokio::test]
async fn one_file_per_key_each_with_its_header_and_its_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("by-category");
    let all = orders(1_000, &["books", "toys", "books", "games", "Café au lait"]);
    let report = Pipeline::from(source::iter(all.clone()).batch_size(64))
        .try_map(keyed)
        .to(csv::write_partitioned(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 1_000);
    report.check_accounting().unwrap();
    assert_eq!(
        entries(&out),
        ["Café au lait.csv", "books.csv", "games.csv", "toys.csv"]
    );
    for category in ["books", "toys", "games", "Café au lait"] {
        let want = csv_of(all.iter().filter(|o| o.category == category));
        assert_eq!(
            read(&out.join(format!("{category}.csv"))),
            want,
            "{category}"
        );
    }
    assert_eq!(entries(dir.path()), ["by-category"]);
}

#[tokio::test]
async fn unsafe_keys_are_skipped_and_counted_and_nothing_is_written_outside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let bad = [
        "..",
        "a/b",
        "",
        "../escape",
        ".",
        ".hidden",
        "a\\b",
        "nul\0",
        "/abs",
    ];
    let mut input: Vec<Order> = Vec::new();
    for (i, category) in bad.iter().enumerate() {
        input.push(order(2 * i as u64, "ok"));
        input.push(order(2 * i as u64 + 1, category));
    }
    let report = Pipeline::from(source::iter(input.clone()).batch_size(3))
        .try_map(keyed)
        .on_error(ErrorPolicy::Skip)
        .to(csv::write_partitioned(&out))
        .run()
        .await
        .unwrap();
    assert!(!report.is_completed(), "records were put aside: {report}");
    assert_eq!(report.skipped(), bad.len() as u64, "{report}");
    assert_eq!(report.records_out(), bad.len() as u64);
    report.check_accounting().unwrap();
    assert!(
        report.to_string().contains("partition key \"..\""),
        "{report}"
    );
    assert_eq!(entries(&out), ["ok.csv"]);
    assert_eq!(
        read(&out.join("ok.csv")),
        csv_of(input.iter().filter(|o| o.category == "ok"))
    );
    assert_eq!(entries(dir.path()), ["out"], "nothing beside the directory");
}

#[tokio::test]
async fn a_failing_source_leaves_no_file_of_the_run_and_the_files_already_there_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("books.csv"), "old books\n").unwrap();
    std::fs::write(dir.path().join("other.csv"), "not ours\n").unwrap();
    let all = orders(1_000, &["books", "toys"]);
    let report = Pipeline::from(failing_source(all, 50, 600))
        .try_map(keyed)
        .to(csv::write_partitioned(dir.path()))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    assert!(
        report
            .error()
            .unwrap()
            .to_string()
            .contains("failed after 600 records"),
        "{report}"
    );
    report.check_accounting().unwrap();
    assert_eq!(
        entries(dir.path()),
        ["books.csv", "other.csv"],
        "no temporary"
    );
    assert_eq!(read(&dir.path().join("books.csv")), "old books\n");
    assert_eq!(read(&dir.path().join("other.csv")), "not ours\n");
}

#[tokio::test]
async fn a_panic_after_some_records_removes_the_directory_the_run_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new");
    let report = Pipeline::from(source::iter(orders(1_000, &["a", "b", "c"])).batch_size(10))
        .try_map(keyed)
        .map(|k: Keyed<Order>| {
            assert!(k.record.id < 700, "boom at {}", k.record.id);
            k
        })
        .to(csv::write_partitioned(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    assert!(report.error().unwrap().is_panic(), "{report}");
    assert!(!out.exists(), "the directory the run made is gone");
    assert!(entries(dir.path()).is_empty());
}

#[tokio::test]
async fn a_cancelled_run_commits_no_partition() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    // Endless input, stopped once the sink has had records.
    let endless = (0u64..).map(|id| order(id, ["x", "y"][id as usize % 2]));
    let report = Pipeline::from(source::iter(endless).batch_size(16))
        .try_map(keyed)
        .inspect(move |k: &Keyed<Order>| {
            if k.record.id > 1_000 {
                stop.take().map(|s| s.send(()));
            }
        })
        .to(csv::write_partitioned(&out))
        .run_until(async move {
            let _ = stopped.await;
        })
        .await;
    assert!(report.is_cancelled(), "{report}");
    report.check_accounting().unwrap();
    assert!(!out.exists());
    assert!(entries(dir.path()).is_empty());
}

#[tokio::test]
async fn a_failing_dead_letter_sink_commits_no_partition() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.csv"), "old\n").unwrap();
    let (rejects, _) = failing_sink::<Rejected>(0);
    let input = vec![order(1, "ok"), order(2, "a/b"), order(3, "ok")];
    let report = Pipeline::from(source::iter(input))
        .try_map(keyed)
        .on_error(DeadLetters::to(rejects))
        .to(csv::write_partitioned(dir.path()))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    assert_eq!(read(&dir.path().join("ok.csv")), "old\n");
    assert_eq!(entries(dir.path()), ["ok.csv"]);
}

#[tokio::test]
async fn a_completed_run_replaces_the_files_of_its_keys_and_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("books.csv"), "old books\n").unwrap();
    std::fs::write(dir.path().join("music.csv"), "old music\n").unwrap();
    // A temporary left by a killed run (no such process, not locked).
    let stale = dir.path().join(".books.csv.4000000000-0.dataflare-tmp");
    std::fs::write(&stale, "partial").unwrap();
    let all = orders(10, &["books", "toys"]);
    Pipeline::from(source::iter(all.clone()))
        .try_map(keyed)
        .to(csv::write_partitioned(dir.path()))
        .run()
        .await
        .unwrap();
    assert_eq!(entries(dir.path()), ["books.csv", "music.csv", "toys.csv"]);
    assert_eq!(
        read(&dir.path().join("books.csv")),
        csv_of(all.iter().filter(|o| o.category == "books"))
    );
    assert_eq!(read(&dir.path().join("music.csv")), "old music\n");
}

#[tokio::test]
async fn an_empty_run_leaves_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let report = Pipeline::from(source::iter(Vec::<Order>::new()))
        .try_map(keyed)
        .to(csv::write_partitioned(&out))
        .run()
        .await
        .unwrap();
    assert!(report.is_completed());
    assert!(out.is_dir());
    assert!(entries(&out).is_empty());
}

#[tokio::test]
async fn a_thousand_keys_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Keys in turn, so every file stays open to the end; 3 records each.
    let all: Vec<Order> = (0..3_000)
        .map(|id| order(id, &format!("k{:04}", id % 1_000)))
        .collect();
    let report = Pipeline::from(source::iter(all.clone()))
        .try_map(keyed)
        .to(csv::write_partitioned(&out).max_partitions(1_000))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 3_000);
    let names = entries(&out);
    assert_eq!(names.len(), 1_000);
    assert_eq!(names[0], "k0000.csv");
    assert_eq!(names[999], "k0999.csv");
    let k7 = [&all[7], &all[1_007], &all[2_007]];
    assert_eq!(read(&out.join("k0007.csv")), csv_of(k7));
}

#[tokio::test]
async fn one_key_more_than_max_partitions_fails_naming_it_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let report = Pipeline::from(source::iter(orders(100, &["a", "b", "c", "d"])))
        .try_map(keyed)
        .to(csv::write_partitioned(&out).max_partitions(3))
        .run_to_report()
        .await;
    assert!(report.is_failed(), "{report}");
    let err = report.error().unwrap();
    let text = err.to_string();
    assert!(
        text.contains("partition key \"d\" would be partition 4 of a sink allowed 3"),
        "{text}"
    );
    assert!(text.contains("max_partitions(n)"), "{text}");
    assert!(text.contains("open files"), "{text}");
    assert_eq!(err.path(), Some(out.join("d.csv").as_path()));
    assert_eq!(err.stage(), Some("sink"));
    assert!(!out.exists(), "nothing left, not even the directory");
}

#[tokio::test]
async fn keys_differing_only_in_case_fail_naming_both_and_leave_nothing() {
    for (first, second) in [("Books", "books"), ("ÉTÉ", "été")] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.csv"), "keep\n").unwrap();
        let input = vec![order(1, first), order(2, "toys"), order(3, second)];
        let err = Pipeline::from(source::iter(input))
            .try_map(keyed)
            .to(csv::write_partitioned(dir.path()))
            .run()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "partition keys {first:?} and {second:?} differ only in case"
            )),
            "{text}"
        );
        let file = dir.path().join(format!("{first}.csv"));
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains("case-insensitive"), "{text}");
        assert_eq!(entries(dir.path()), ["keep.csv"]);
    }
}

#[tokio::test]
async fn a_partition_file_that_is_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("books.csv");
    let original = "id,category\n1,toys\n2,books\n";
    std::fs::write(&input, original).unwrap();
    let err = Pipeline::from(csv::read::<Order>(&input))
        .try_map(keyed)
        .to(csv::write_partitioned(dir.path()))
        .run()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is the output of stage \"sink\", but it is also the input"),
        "{text}"
    );
    assert_eq!(read(&input), original);
    assert_eq!(
        entries(dir.path()),
        ["books.csv"],
        "no toys.csv, no temporary"
    );
}

#[tokio::test]
async fn a_bad_directory_fails_before_any_record_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases = [
        (dir.path().join("missing/out"), "does not exist"),
        (file.clone(), "is not a directory"),
    ];
    for (out, why) in cases {
        let reads = Arc::new(AtomicUsize::new(0));
        let err = Pipeline::from(counted(orders(10, &["a"]), &reads))
            .try_map(keyed)
            .to(csv::write_partitioned(&out))
            .run()
            .await
            .unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        assert_eq!(err.path(), Some(out.as_path()));
        assert_eq!(reads.load(Ordering::Relaxed), 0, "nothing was read");
    }
    assert_eq!(entries(dir.path()), ["a-file"]);
}

#[tokio::test]
async fn a_record_that_cannot_be_written_is_named_by_its_file_and_its_number_there() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ab = Arc::new(Schema::strings(["a", "b"]));
    let ba = Arc::new(Schema::strings(["b", "a"]));
    let rec = |s: &Arc<Schema>| Record::new(s.clone(), vec![Value::from("1"), Value::from("2")]);
    let key = |k: &str| PartitionKey::new(k).unwrap();
    // The 4th record of the run is the 2nd of y.csv.
    let input = vec![
        Keyed::new(key("x"), rec(&ab)),
        Keyed::new(key("y"), rec(&ab)),
        Keyed::new(key("x"), rec(&ab)),
        Keyed::new(key("y"), rec(&ba)),
    ];
    let err = Pipeline::from(source::iter(input))
        .to(csv::write_records_partitioned(&out))
        .run()
        .await
        .unwrap_err();
    let y = out.join("y.csv");
    assert_eq!(err.path(), Some(y.as_path()));
    assert_eq!(err.position().record, Some(1));
    assert!(
        err.to_string()
            .contains("y.csv: record 2: the record's columns (b, a) differ"),
        "{err}"
    );
    assert!(!out.exists());
}
