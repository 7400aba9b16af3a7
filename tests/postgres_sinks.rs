//! PostgreSQL sinks against a real server: all or nothing per run (a failing
//! or cancelled run, a failing other sink of the graph, a killed connection),
//! commit_every's prefix, upsert's idempotence and last-wins within a batch.
#![cfg(feature = "postgres")]

mod support;
use support::postgres::{Db, db};

use std::sync::Arc;

use dataflare::postgres;
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::testkit::failing_source;

fn records(range: std::ops::Range<i64>) -> Vec<Record> {
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("name", DataType::Str),
    ]));
    range
        .map(|i| {
            Record::new(
                schema.clone(),
                vec![Value::Int(i), Value::from(format!("n{i}"))],
            )
        })
        .collect()
}

async fn table(db: &Db, name: &str) -> String {
    let t = db.table(name);
    db.exec(&format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, name text, note text DEFAULT 'd')"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} (id, name) VALUES (-1, 'before')"))
        .await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_cancelled_run_leaves_the_table_unchanged() {
    let Some(db) = db("atomic").await else { return };
    for (i, upsert) in [false, true].into_iter().enumerate() {
        let t = table(&db, &format!("t{i}")).await;
        let before = db.dump(&format!("t{i}")).await;
        let sink = || {
            if upsert {
                postgres::upsert(db.url.as_str(), t.as_str(), ["id"])
            } else {
                postgres::copy_in(db.url.as_str(), t.as_str())
            }
        };
        // The upstream fails after 3 batches were written.
        let report = Pipeline::from(failing_source(records(0..5000), 1000, 3500))
            .to(sink())
            .run_to_report()
            .await;
        assert!(report.is_failed(), "{report}");
        assert_eq!(db.dump(&format!("t{i}")).await, before);

        // Cancelled after the sink took a batch.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tx = Some(tx);
        let source = source::iter(records(0..5000)).batch_size(1000);
        let stalled = futures::StreamExt::chain(source, futures::stream::pending());
        let report = Pipeline::from(stalled)
            .inspect(move |_| {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            })
            .to(sink())
            .run_until(async {
                let _ = rx.await;
            })
            .await;
        assert!(report.is_cancelled(), "{report}");
        assert_eq!(db.dump(&format!("t{i}")).await, before);

        // Another branch of the graph fails after this one wrote everything:
        // nothing commits.
        let report = Pipeline::from(source::iter(records(0..3000)))
            .to(sink())
            .and(Pipeline::from(failing_source(records(0..3000), 100, 2500)).to(sink::discard()))
            .run_to_report()
            .await;
        assert!(report.is_failed());
        assert_eq!(db.dump(&format!("t{i}")).await, before);

        // A row the server refuses (a duplicate key) fails the run at its
        // prepare, and nothing is committed.
        if !upsert {
            let report = Pipeline::from(source::iter(records(-3..3000)))
                .to(sink())
                .run_to_report()
                .await;
            let e = report.error().expect("a duplicate key").to_string();
            assert!(e.contains("duplicate key") && e.contains("23505"), "{e}");
            assert_eq!(db.dump(&format!("t{i}")).await, before);
        }

        // And a run that succeeds commits everything.
        let report = Pipeline::from(source::iter(records(0..3000)))
            .to(sink())
            .run()
            .await
            .unwrap();
        assert_eq!(report.records_out(), 3000);
        assert_eq!(db.count(&format!("t{i}")).await, 3001);
    }
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_or_key_fails_before_any_record_is_read() {
    let Some(db) = db("missing").await else {
        return;
    };
    let t = table(&db, "t").await;
    db.exec(&format!("CREATE TABLE {t}_nokey (id int8, name text)"))
        .await;
    for (sink, says) in [
        (
            postgres::copy_in(db.url.as_str(), db.table("nope")),
            "does not exist",
        ),
        (
            postgres::upsert(db.url.as_str(), format!("{t}_nokey"), ["id"]),
            "not a unique key",
        ),
        (
            postgres::upsert(db.url.as_str(), t.clone(), ["idd"]),
            "not a column",
        ),
    ] {
        let report = Pipeline::from(source::iter(records(0..10)))
            .to(sink)
            .run_to_report()
            .await;
        let e = report.error().expect("failed").to_string();
        assert!(e.contains(says) && e.contains("stage \"sink\""), "{e}");
        assert_eq!(report.records_in(), 0);
    }
    // A field the table has no column for is named.
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("colour", DataType::Str),
    ]));
    let r = Record::new(schema, vec![Value::Int(1), Value::from("red")]);
    let e = Pipeline::from(source::iter(vec![r]))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()))
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("field \"colour\"") && e.contains("id, name, note"),
        "{e}"
    );
    db.drop_schema().await;
}

/// Kills the sink's (or source's) server session from a second connection
/// once the run has written a batch, then lets the run go on: the run fails
/// naming the server and the stage, and nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_fails_the_run_and_commits_nothing() {
    let Some(db) = db("killed").await else { return };
    let t = table(&db, "t").await;
    let before = db.dump("t").await;
    let victim = format!(
        "{}{}application_name=dataflare_victim_sink",
        db.url,
        if db.url.contains('?') { "&" } else { "?" }
    );

    let (reached_tx, reached) = tokio::sync::oneshot::channel::<()>();
    let (killed_tx, killed) = tokio::sync::oneshot::channel::<()>();
    let source = async_stream::stream! {
        let all = records(0..4000);
        yield Ok(Batch::new(all[..1000].to_vec()));
        let _ = reached_tx.send(());
        let _ = killed.await;
        for chunk in all[1000..].chunks(1000) {
            yield Ok(Batch::new(chunk.to_vec()));
        }
    };
    let killer = {
        let client = support::postgres::connect(&db.url).await;
        tokio::spawn(async move {
            reached.await.unwrap();
            terminate(&client, "dataflare_victim_sink").await;
            // The sink may notice the lost connection first and end the run,
            // dropping the source (and this receiver) before this send.
            let _ = killed_tx.send(());
        })
    };
    let report = Pipeline::from(source)
        .to(postgres::copy_in(victim.as_str(), t.as_str()))
        .run_to_report()
        .await;
    killer.await.unwrap();
    let e = report.error().expect("the run failed").to_string();
    assert!(
        e.contains("stage \"sink\"") && e.contains("127.0.0.1") && e.contains("connection"),
        "{e}"
    );
    assert_eq!(db.dump("t").await, before);

    // The source's session killed mid-stream: a clear error, and the table
    // it was feeding is left as it was.
    let victim = victim.replace("victim_sink", "victim_source");
    let (reached_tx, reached) = tokio::sync::oneshot::channel::<()>();
    let (killed_tx, killed) = tokio::sync::oneshot::channel::<()>();
    let mut reached_tx = Some(reached_tx);
    let killed = futures::future::FutureExt::shared(async { killed.await.is_ok() });
    let killer = {
        let client = support::postgres::connect(&db.url).await;
        tokio::spawn(async move {
            reached.await.unwrap();
            terminate(&client, "dataflare_victim_source").await;
            killed_tx.send(()).unwrap();
        })
    };
    db.exec(&format!("CREATE TABLE {t}_copy (LIKE {t})")).await;
    let report = Pipeline::from(
        postgres::query(
            victim.as_str(),
            "SELECT g AS id, 'x' AS name FROM generate_series(1, 100000) g",
            [0; 0],
        )
        .batch_size(100)
        .fetch_size(100),
    )
    .map_async(1, move |r: Record| {
        let first = reached_tx.take();
        let killed = killed.clone();
        async move {
            if let Some(tx) = first {
                let _ = tx.send(());
                killed.await;
            }
            r
        }
    })
    .to(postgres::copy_in(db.url.as_str(), format!("{t}_copy")))
    .run_to_report()
    .await;
    killer.await.unwrap();
    let e = report.error().expect("the run failed").to_string();
    assert!(
        e.contains("stage \"source\"") && e.contains("127.0.0.1") && e.contains("connection"),
        "{e}"
    );
    assert_eq!(db.count("t_copy").await, 0);
    db.drop_schema().await;
}

/// Terminates the sessions named `app` and waits until they are gone.
async fn terminate(client: &postgres::tokio_postgres::Client, app: &str) {
    let killed: Vec<bool> = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(killed, [true], "one session named {app}");
    loop {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_is_idempotent_and_the_last_of_a_key_wins() {
    let Some(db) = db("upsert").await else { return };
    let t = table(&db, "t").await;
    db.exec(&format!("UPDATE {t} SET note = 'kept' WHERE id = -1"))
        .await;
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("name", DataType::Str),
    ]));
    // Keys repeat within a batch and across batches: the last one wins.
    let input: Vec<Record> = (0..5000)
        .map(|i| {
            Record::new(
                schema.clone(),
                vec![Value::Int(i % 1500 - 1), Value::from(format!("v{i}"))],
            )
        })
        .collect();
    let run = || {
        Pipeline::from(source::iter(input.clone()).batch_size(1000))
            .to(postgres::upsert(db.url.as_str(), t.as_str(), ["id"]))
            .run()
    };
    run().await.unwrap();
    let once = db.dump("t").await;
    run().await.unwrap();
    assert_eq!(
        db.dump("t").await,
        once,
        "the same run twice gives the same table"
    );
    assert_eq!(db.count("t").await, 1500);
    let rows = db
        .rows(&format!("SELECT name, note FROM {t} WHERE id = -1"))
        .await;
    assert_eq!(rows[0].get::<_, String>(0), "v4500"); // last of key -1 (i = 4500)
    assert_eq!(rows[0].get::<_, String>(1), "kept"); // a column not written keeps its value
    let rows = db
        .rows(&format!("SELECT name FROM {t} WHERE id = 10"))
        .await;
    assert_eq!(rows[0].get::<_, String>(0), "v4511");
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_every_leaves_the_committed_chunks_of_a_failed_run() {
    let Some(db) = db("chunks").await else { return };
    let t = table(&db, "t").await;
    let report = Pipeline::from(failing_source(records(0..10_000), 1000, 5500))
        .to(postgres::copy_in(db.url.as_str(), t.as_str()).commit_every(2))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    // Batches 1-4 were committed in two chunks; the fifth (uncommitted) was not.
    assert_eq!(db.count("t").await, 1 + 4000);
    db.drop_schema().await;
}
