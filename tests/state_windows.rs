//! Windows: event time and watermarks, tumbling / sliding / session / count
//! windows, late records under each policy, idle sources, processing time,
//! state limits, dynamic records.

use std::sync::Arc;
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Timestamp, Value};
use dataflare::state::{Agg, Columns, Window, Windowed, agg};
use dataflare::{DeadLetters, Rejected};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
struct Event {
    user: &'static str,
    ts: Timestamp,
    amount: i64,
}

fn ev(user: &'static str, secs: i64, amount: i64) -> Event {
    Event {
        user,
        ts: Timestamp::from_secs(secs),
        amount,
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn window<V>(key: &'static str, start: i64, end: i64, value: V) -> Windowed<&'static str, V> {
    Windowed {
        key,
        start: at(start),
        end: at(end),
        value,
    }
}

/// Lets the spawned run take what was sent (time is paused: it moves only
/// once every task is idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_window_is_emitted_when_the_watermark_passes_its_end() {
    let (tx, rx) = mpsc::channel(16);
    let out = Collected::new();
    let run = tokio::spawn(
        Pipeline::from(source::channel(rx))
            .event_time(|e: &Event| e.ts, secs(10))
            .key_by(|e: &Event| e.user)
            .window(Window::tumbling(secs(60)))
            .aggregate(agg::count())
            .to(sink::collect(&out))
            .run(),
    );
    tx.send(ev("ann", 5, 1)).await.unwrap();
    tx.send(ev("bob", 30, 1)).await.unwrap();
    tx.send(ev("ann", 65, 1)).await.unwrap();
    settle().await;
    // The watermark is at 0:55: the first minute may still get records.
    assert!(out.is_empty());
    tx.send(ev("ann", 70, 1)).await.unwrap();
    settle().await;
    // At 1:00 it closes, its windows in the order their first records came.
    assert_eq!(
        out.to_vec(),
        vec![window("ann", 0, 60, 1), window("bob", 0, 60, 1)]
    );
    drop(tx);
    let report = run.await.unwrap().unwrap();
    assert_eq!(out.to_vec()[2..], [window("ann", 60, 120, 2)]);
    let stage = report.stage("window#1").unwrap();
    assert_eq!(
        (
            stage.records_in,
            stage.absorbed,
            stage.expanded,
            stage.records_out
        ),
        (4, 4, 3, 3)
    );
    assert_eq!((stage.state_keys, stage.state_bytes), (0, 0));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_sliding_window_takes_a_record_in_each_window_holding_it_and_absorbs_it_once() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(vec![ev("ann", 25, 5), ev("ann", 31, 7)]))
        .event_time(|e: &Event| e.ts, Duration::ZERO)
        .key_by(|e: &Event| e.user)
        .window(Window::sliding(secs(30), secs(10)))
        .aggregate((agg::count(), agg::sum(|e: &Event| e.amount)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![
            window("ann", 0, 30, (1, 5)),
            window("ann", 10, 40, (2, 12)),
            window("ann", 20, 50, (2, 12)),
            window("ann", 30, 60, (1, 7)),
        ]
    );
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.absorbed, stage.expanded), (2, 4));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_record_bridging_two_sessions_merges_them_keeping_arrival_order() {
    let out = Collected::new();
    // ann: 0:30 then 0:00 make two sessions (gap 20 s); 0:15 bridges them.
    let events = vec![
        ev("ann", 30, 1),
        ev("ann", 0, 2),
        ev("bob", 100, 9),
        ev("ann", 15, 3),
        ev("ann", 60, 4),
    ];
    let report = Pipeline::from(source::iter(events).batch_size(2))
        .event_time(|e: &Event| e.ts, secs(120))
        .key_by(|e: &Event| e.user)
        .window(Window::session(secs(20)))
        .aggregate((
            agg::count(),
            agg::sum(|e: &Event| e.amount),
            agg::first(|e: &Event| e.amount),
            agg::last(|e: &Event| e.amount),
            agg::min(|e: &Event| e.ts),
        ))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![
            // First and last by arrival: 0:30 came first, 0:15 last.
            window("ann", 0, 50, (3, 6, 1, 3, at(0))),
            window("ann", 60, 80, (1, 4, 4, 4, at(60))),
            window("bob", 100, 120, (1, 9, 9, 9, at(100))),
        ]
    );
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.absorbed, stage.expanded), (5, 3));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn count_windows_emit_as_they_fill_and_the_partial_ones_at_the_end() {
    let out = Collected::new();
    let events = (0..7).map(|i| ev(["ann", "bob"][i % 2], i as i64, i as i64));
    let report = Pipeline::from(source::iter(events).batch_size(3))
        .key_by(|e: &Event| e.user)
        .window(Window::count(2))
        .fold(Vec::new(), |acc: &mut Vec<i64>, e: &Event| {
            acc.push(e.amount)
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![
            ("ann", vec![0, 2]),
            ("bob", vec![1, 3]),
            ("ann", vec![4, 6]),
            ("bob", vec![5]),
        ]
    );
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.absorbed, stage.expanded), (7, 4));
    report.check_accounting().unwrap();
}

/// ann's 0:10 comes when the watermark is at 1:10 (1:40 less 30 s).
fn with_a_late_record() -> Vec<Event> {
    vec![
        ev("ann", 20, 1),
        ev("ann", 100, 2),
        ev("ann", 10, 3),
        ev("bob", 90, 4),
    ]
}

#[tokio::test]
async fn a_late_record_fails_the_run_by_default_naming_it_its_time_and_the_watermark() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(with_a_late_record()))
        .event_time(|e: &Event| e.ts, secs(30))
        .key_by(|e: &Event| e.user)
        .window(Window::tumbling(secs(60)))
        .aggregate(agg::count())
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    let error = report.error().unwrap().to_string();
    assert!(
        error.starts_with("stage \"window#1\": late record Event { user: \"ann\""),
        "{error}"
    );
    assert!(error.contains("amount: 3 }"), "{error}");
    assert!(
        error.contains(
            "its event time 1970-01-01T00:00:10Z is behind the watermark 1970-01-01T00:01:10Z \
             (the latest event time seen, 1970-01-01T00:01:40Z, less the allowed lateness of 30s)"
        ),
        "{error}"
    );
    assert!(out.is_empty());
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn under_skip_a_late_record_counts_as_late() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(with_a_late_record()))
        .event_time(|e: &Event| e.ts, secs(30))
        .key_by(|e: &Event| e.user)
        .window(Window::tumbling(secs(60)))
        .aggregate(agg::sum(|e: &Event| e.amount))
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec(),
        vec![
            window("ann", 0, 60, 1),
            window("ann", 60, 120, 2),
            window("bob", 60, 120, 4),
        ]
    );
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.late, stage.skipped, stage.absorbed), (1, 0, 3));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn dead_letters_receive_late_records() {
    let out = Collected::new();
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(source::iter(with_a_late_record()))
        .event_time(|e: &Event| e.ts, secs(30))
        .key_by(|e: &Event| e.user)
        .window(Window::tumbling(secs(60)))
        .aggregate(agg::count())
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    let rejects = rejects.to_vec();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].stage, "window#1");
    assert!(rejects[0].record.as_deref().unwrap().contains("amount: 3"));
    assert!(
        rejects[0]
            .error
            .contains("behind the watermark 1970-01-01T00:01:10Z")
    );
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.dead_lettered, stage.late), (1, 0));
    report.check_accounting().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_source_still_closes_its_windows_with_idle_advance() {
    let (tx, rx) = mpsc::channel(16);
    let out = Collected::new();
    let run = tokio::spawn(
        Pipeline::from(source::channel(rx))
            .event_time(|e: &Event| e.ts, secs(10))
            .idle_advance(secs(30))
            .key_by(|e: &Event| e.user)
            .window(Window::tumbling(secs(60)))
            .aggregate(agg::count())
            .on_error(ErrorPolicy::Skip)
            .to(sink::collect(&out))
            .run(),
    );
    let start = tokio::time::Instant::now();
    tx.send(ev("ann", 40, 1)).await.unwrap();
    tx.send(ev("bob", 50, 1)).await.unwrap();
    settle().await;
    // Silent for 29 s: the watermark stays at 0:40.
    tokio::time::sleep_until(start + secs(29)).await;
    assert!(out.is_empty());
    // From 30 s on it moves with the clock: 0:50 - 0:10 + 30 s = 1:10 is past 1:00.
    tokio::time::sleep_until(start + secs(31)).await;
    assert_eq!(
        out.to_vec(),
        vec![window("ann", 0, 60, 1), window("bob", 0, 60, 1)]
    );
    // 100 s of silence: the watermark is at 0:50 - 0:10 + 100 s = 2:20, so
    // a record at 2:00 is late, one at 2:30 is not.
    tokio::time::sleep_until(start + secs(100)).await;
    tx.send(ev("ann", 120, 1)).await.unwrap();
    tx.send(ev("ann", 150, 1)).await.unwrap();
    settle().await;
    drop(tx);
    let report = run.await.unwrap().unwrap();
    assert_eq!(out.to_vec()[2..], [window("ann", 120, 180, 1)]);
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.late, stage.absorbed, stage.expanded), (1, 3, 3));
    report.check_accounting().unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_idle_advance_an_idle_source_keeps_its_windows_open() {
    let (tx, rx) = mpsc::channel(16);
    let out = Collected::new();
    let run = tokio::spawn(
        Pipeline::from(source::channel(rx))
            .event_time(|e: &Event| e.ts, secs(10))
            .key_by(|e: &Event| e.user)
            .window(Window::tumbling(secs(60)))
            .aggregate(agg::count())
            .to(sink::collect(&out))
            .run(),
    );
    tx.send(ev("ann", 40, 1)).await.unwrap();
    tokio::time::sleep(secs(3600)).await;
    assert!(out.is_empty());
    drop(tx);
    let report = run.await.unwrap().unwrap();
    assert_eq!(out.to_vec(), vec![window("ann", 0, 60, 1)]);
    report.check_accounting().unwrap();
}

#[tokio::test(start_paused = true)]
async fn processing_time_windows_close_on_the_stage_timer() {
    let (tx, rx) = mpsc::channel(16);
    let out = Collected::new();
    let run = tokio::spawn(
        Pipeline::from(source::channel(rx))
            .key_by(|e: &Event| e.user)
            .window(Window::tumbling(secs(10)).processing_time())
            .aggregate(agg::sum(|e: &Event| e.amount))
            .to(sink::collect(&out))
            .run(),
    );
    // Event times mean nothing here: records are timed as they come.
    for e in [ev("ann", 0, 1), ev("bob", -5, 2), ev("ann", 99, 3)] {
        tx.send(e).await.unwrap();
    }
    // Within 10 s the window they came in ends, on the timer.
    tokio::time::sleep(secs(10)).await;
    let first = out.to_vec();
    assert_eq!(
        first.iter().map(|w| (w.key, w.value)).collect::<Vec<_>>(),
        vec![("ann", 4), ("bob", 2)]
    );
    assert!(first.iter().all(|w| w.end == w.start + secs(10)));
    assert_eq!(first[0].start, first[1].start);
    tx.send(ev("ann", 0, 5)).await.unwrap();
    tokio::time::sleep(secs(25)).await;
    let second = out.to_vec()[2..].to_vec();
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].key, second[0].value), ("ann", 5));
    assert!(second[0].start >= first[0].end);
    drop(tx);
    let report = run.await.unwrap().unwrap();
    assert_eq!(out.len(), 3);
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.absorbed, stage.expanded, stage.late), (4, 3, 0));
    report.check_accounting().unwrap();
}

#[tokio::test(start_paused = true)]
async fn processing_time_sessions_end_after_a_silence_of_gap() {
    let (tx, rx) = mpsc::channel(16);
    let out = Collected::new();
    let run = tokio::spawn(
        Pipeline::from(source::channel(rx))
            .key_by(|e: &Event| e.user)
            .window(Window::session(secs(5)).processing_time())
            .aggregate(agg::count())
            .to(sink::collect(&out))
            .run(),
    );
    tx.send(ev("ann", 0, 1)).await.unwrap();
    tokio::time::sleep(secs(4)).await;
    tx.send(ev("ann", 0, 1)).await.unwrap();
    tokio::time::sleep(secs(4)).await;
    // 4 s after the last record: the session is still open.
    assert!(out.is_empty());
    tokio::time::sleep(secs(2)).await;
    let sessions = out.to_vec();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].value, 2);
    assert_eq!(sessions[0].end - secs(4 + 5), sessions[0].start);
    drop(tx);
    run.await.unwrap().unwrap().check_accounting().unwrap();
}

#[tokio::test]
async fn a_key_explosion_hits_max_keys_naming_the_stage() {
    let events = (0..1000).map(|i| Event {
        user: "ann",
        ts: at(i),
        amount: i,
    });
    let report = Pipeline::from(source::iter(events).batch_size(50))
        .event_time(|e: &Event| e.ts, secs(3600))
        .key_by(|e: &Event| e.amount)
        .window(Window::tumbling(secs(60)))
        .max_keys(100)
        .aggregate(agg::count())
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().unwrap().to_string();
    assert!(
        error.contains("stage \"window#1\" holds 150 keys, over its max_keys (100)"),
        "{error}"
    );
    assert_eq!(report.stage("window#1").unwrap().state_keys, 150);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn max_keys_counts_each_open_window_of_a_key() {
    // One key, but a record in 10 sliding windows.
    let report = Pipeline::from(source::iter(vec![ev("ann", 0, 1)]))
        .event_time(|e: &Event| e.ts, Duration::ZERO)
        .key_by(|e: &Event| e.user)
        .max_keys(9)
        .window(Window::sliding(secs(10), secs(1)))
        .aggregate(agg::count())
        .to(sink::discard())
        .run_to_report()
        .await;
    assert!(
        report
            .error()
            .unwrap()
            .to_string()
            .contains("holds 10 keys, over its max_keys (9)")
    );
}

fn clicks_schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("user", DataType::Str),
        ("ts", DataType::Int),
        ("ms", DataType::Int),
    ]))
}

fn click(schema: &Arc<Schema>, user: &str, ts: i64, ms: Option<i64>) -> Record {
    Record::new(
        schema.clone(),
        vec![Value::from(user), Value::Int(ts), Value::from(ms)],
    )
}

fn ts_column(r: &Record) -> Timestamp {
    Timestamp::from_secs(r.get("ts").and_then(Value::as_i64).unwrap_or(0))
}

#[tokio::test]
async fn dynamic_records_by_column_in_sessions() {
    let schema = clicks_schema();
    let other = Arc::new(Schema::new([("ts", DataType::Int)]));
    let records = vec![
        click(&schema, "ann", 30, Some(7)),
        click(&schema, "ann", 0, Some(5)),
        Record::new(other, vec![Value::Int(1)]),
        click(&schema, "bob", 5, None),
        // Bridges ann's sessions; its null is no value for first/last.
        click(&schema, "ann", 15, None),
    ];
    let out = Collected::new();
    let report = Pipeline::from(source::iter(records))
        .event_time(ts_column, secs(60))
        .key_by(Columns::new(["user"]))
        .window(Window::session(secs(20)))
        .aggregate_columns([
            ("clicks", Agg::Count),
            ("total", Agg::sum("ms")),
            ("first", Agg::first("ms")),
            ("last", Agg::last("ms")),
        ])
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows = out.to_vec();
    let names: Vec<&str> = rows[0].schema().fields().iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "user",
            "window_start",
            "window_end",
            "clicks",
            "total",
            "first",
            "last"
        ]
    );
    let values: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
    assert_eq!(
        values,
        vec![
            vec![
                Value::from("bob"),
                Value::Timestamp(Timestamp::from_secs(5)),
                Value::Timestamp(Timestamp::from_secs(25)),
                Value::Int(1),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::from("ann"),
                Value::Timestamp(Timestamp::from_secs(0)),
                Value::Timestamp(Timestamp::from_secs(50)),
                Value::Int(3),
                Value::Int(12),
                // By arrival: 7 came first, 5 last.
                Value::Int(7),
                Value::Int(5),
            ],
        ]
    );
    let stage = report.stage("window#1").unwrap();
    assert_eq!((stage.skipped, stage.absorbed, stage.expanded), (1, 4, 2));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn dynamic_records_in_count_windows() {
    let schema = clicks_schema();
    let records: Vec<_> = (0..5)
        .map(|i| click(&schema, "ann", i, Some(i * 10)))
        .collect();
    let out = Collected::new();
    Pipeline::from(source::iter(records))
        .key_by(Columns::new(["user"]))
        .window(Window::count(3))
        .aggregate_columns([("n", Agg::Count), ("slowest", Agg::max("ms"))])
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let values: Vec<Vec<Value>> = out.to_vec().iter().map(|r| r.values().to_vec()).collect();
    assert_eq!(
        values,
        vec![
            vec![Value::from("ann"), Value::Int(3), Value::Int(20)],
            vec![Value::from("ann"), Value::Int(2), Value::Int(40)],
        ]
    );
}

#[tokio::test]
async fn csv_rows_windowed_by_an_inferred_timestamp_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clicks.csv");
    std::fs::write(
        &path,
        "page,at\n/,2026-11-30T10:00:10Z\n/a,2026-11-30T10:00:20Z\n/,2026-11-30T10:01:05Z\n/,2026-11-30T10:00:50Z\n",
    )
    .unwrap();
    let out = Collected::new();
    let report = Pipeline::from(dataflare::csv::read_records(&path).infer_schema(100))
        .event_time(dataflare::state::time_column("at"), Duration::from_secs(30))
        .key_by(Columns::new(["page"]))
        .window(Window::tumbling(Duration::from_secs(60)))
        .aggregate_columns([("clicks", Agg::Count)])
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let rows: Vec<(String, String, i64)> = out
        .to_vec()
        .iter()
        .map(|r| {
            (
                r.get("page").unwrap().to_string(),
                r.get("window_start").unwrap().to_string(),
                r.get("clicks").and_then(Value::as_i64).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("/".to_string(), "2026-11-30T10:00:00Z".to_string(), 2),
            ("/a".to_string(), "2026-11-30T10:00:00Z".to_string(), 1),
            ("/".to_string(), "2026-11-30T10:01:00Z".to_string(), 1),
        ]
    );
    report.check_accounting().unwrap();

    // A column that holds no timestamps is a record error naming it.
    let report = Pipeline::from(dataflare::csv::read_records(&path))
        .event_time(dataflare::state::time_column("page"), Duration::ZERO)
        .key_by(Columns::new(["page"]))
        .window(Window::tumbling(Duration::from_secs(60)))
        .aggregate_columns([("clicks", Agg::Count)])
        .to(sink::discard())
        .run_to_report()
        .await;
    let message = report.error().expect("fails").to_string();
    assert!(
        message.contains("no event time in column \"page\""),
        "{message}"
    );
    report.check_accounting().unwrap();
}
