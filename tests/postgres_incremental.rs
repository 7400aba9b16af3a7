//! Incremental extraction against a real server: three runs with inserts
//! between them read each row once, ties at equal cursor values included;
//! the high-water mark in the report and through its handle.
#![cfg(feature = "postgres")]

mod support;
use support::postgres::db;

use dataflare::postgres::{self, Mark};
use dataflare::prelude::*;
use dataflare::record::{Record, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runs_read_each_row_once_with_ties() {
    let Some(db) = db("incremental").await else {
        return;
    };
    let t = db.table("events");
    db.exec(&format!(
        "CREATE TABLE {t} (id int4 PRIMARY KEY, at timestamptz, what text)"
    ))
    .await;
    // Many rows share a cursor value (10 per second), spread over batches.
    let insert = |from: i32, to: i32| {
        format!(
            "INSERT INTO {t} SELECT g, timestamptz '2024-01-01 00:00:00Z' + (g / 10) * interval '1 second', 'e' || g \
             FROM generate_series({from}, {to}) g"
        )
    };
    db.exec(&insert(1, 2505)).await;
    // A row without a cursor is never read.
    db.exec(&format!("INSERT INTO {t} VALUES (0, NULL, 'no cursor')"))
        .await;

    let mut mark: Option<String> = None;
    let mut seen = Vec::new();
    for run in 0..3 {
        let mut source = postgres::incremental(db.url.as_str(), t.as_str(), "at").batch_size(64);
        if let Some(m) = &mark {
            source = source.start_after(m.parse::<Mark>().unwrap());
        }
        let handle = source.high_water_mark();
        let out = Collected::new();
        let report = Pipeline::from(source)
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
        let ids: Vec<i64> = out
            .to_vec()
            .iter()
            .map(|r: &Record| r.get("id").and_then(Value::as_i64).unwrap())
            .collect();
        let position = report
            .stage("source")
            .unwrap()
            .position
            .clone()
            .expect("a mark");
        assert_eq!(handle.get().unwrap().to_string(), position);
        mark = Some(position);
        seen.extend(ids);
        match run {
            // Inserted between runs: rows tied with the mark's cursor value
            // (ids 2506..2509 share its second), and later ones.
            0 => db.exec(&insert(2506, 4000)).await,
            1 => db.exec(&insert(4001, 4003)).await,
            _ => {}
        }
    }
    let want: Vec<i64> = (1..=4003).collect();
    assert_eq!(seen, want, "every row once, in (cursor, key) order");
    let last: Mark = mark.unwrap().parse().unwrap();
    assert_eq!(last.key(), &[Value::Int(4003)]);
    assert_eq!(last.cursor(), &Value::from("2024-01-01T00:06:40Z"));

    // A fourth run finds nothing and keeps the mark.
    let source = postgres::incremental(db.url.as_str(), t.as_str(), "at").start_after(last.clone());
    let report = Pipeline::from(source)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_in(), 0);
    assert_eq!(
        report.stage("source").unwrap().position,
        Some(last.to_string())
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_needs_its_key_and_a_lag_margin_holds_back_recent_rows() {
    let Some(db) = db("incremental_query").await else {
        return;
    };
    let t = db.table("q");
    db.exec(&format!(
        "CREATE TABLE {t} (a int4, b int4, at timestamptz)"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO {t} VALUES (1, 1, now() - interval '1 hour'), (1, 2, now() - interval '1 hour'), (2, 1, now())"
    ))
    .await;
    let sql = format!("SELECT a, b, at FROM {t}");
    let e = Pipeline::from(postgres::incremental(db.url.as_str(), sql.as_str(), "at"))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(".key("), "{e}");
    let report = Pipeline::from(
        postgres::incremental(db.url.as_str(), sql.as_str(), "at")
            .key(["a", "b"])
            .lag_margin(std::time::Duration::from_secs(600)),
    )
    .to(sink::discard())
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_in(), 2, "the row within the margin waits");
    // Starting after a plain cursor value.
    let report = Pipeline::from(
        postgres::incremental(db.url.as_str(), t.as_str(), "a")
            .key(["b"])
            .start_after(Mark::after(1)),
    )
    .to(sink::discard())
    .run()
    .await
    .unwrap();
    assert_eq!(report.records_in(), 1);
    db.drop_schema().await;
}
