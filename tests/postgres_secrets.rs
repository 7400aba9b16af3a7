//! The password of a PostgreSQL connection never appears: not in an error
//! (wrong password, missing table, refused row, killed session), not in a
//! log line, not in the report (displayed or serialized).
#![cfg(feature = "postgres")]

mod support;
use support::postgres::db;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use dataflare::postgres;
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};

/// Every event and span field, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Visit<'a>(&'a mut String);

impl tracing::field::Visit for Visit<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = writeln!(self.0, "{}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Visit(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Visit(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut log = self.0.lock().unwrap();
        let _ = write!(log, "{}: ", event.metadata().target());
        event.record(&mut Visit(&mut log));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn the_password_never_appears() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(db) = db("secrets").await else {
            return;
        };
        let password = postgres::Connect::parse(&db.url)
            .unwrap()
            .config()
            .get_password()
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .expect("the test server's URL has a password");
        let t = db.table("t");
        db.exec(&format!("CREATE TABLE {t} (id int4 PRIMARY KEY)"))
            .await;
        let schema = Arc::new(Schema::new([("id", DataType::Int)]));
        let rows = |ids: Vec<i64>| -> Vec<Record> {
            ids.into_iter()
                .map(|i| Record::new(schema.clone(), vec![Value::Int(i)]))
                .collect()
        };
        let wrong = db.url.replace(&password, "wr0ngpassw0rd");
        let mut texts = Vec::new();
        let mut check = |report: Report| {
            assert!(report.is_failed());
            texts.push(report.to_string());
            texts.push(format!("{report:?}"));
            texts.push(serde_json::to_string(&report).unwrap());
            let e = report.error().unwrap();
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
        };
        // A wrong password (neither it nor the right one shows).
        check(
            Pipeline::from(postgres::query(wrong.as_str(), "SELECT 1", [0; 0]))
                .to(sink::discard())
                .run_to_report()
                .await,
        );
        // A missing table, a query error, a refused row.
        check(
            Pipeline::from(source::iter(rows(vec![1])))
                .to(postgres::copy_in(db.url.as_str(), db.table("nope")))
                .run_to_report()
                .await,
        );
        check(
            Pipeline::from(postgres::query(db.url.as_str(), "SELEC 1", [0; 0]))
                .to(sink::discard())
                .run_to_report()
                .await,
        );
        check(
            Pipeline::from(source::iter(rows(vec![1, 1])))
                .to(postgres::copy_in(db.url.as_str(), t.as_str()))
                .run_to_report()
                .await,
        );
        // Unreachable (retried, with warnings logged).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let unreachable = with_port(&db.url, port);
        check(
            Pipeline::from(postgres::query(unreachable.as_str(), "SELECT 1", [0; 0]))
                .to(sink::discard())
                .run_to_report()
                .await,
        );
        let logs = capture.0.lock().unwrap().clone();
        assert!(
            logs.contains("retrying"),
            "the connection retries were logged: {logs}"
        );
        texts.push(logs);
        for text in &texts {
            assert!(!text.contains(&password), "the password shows in: {text}");
            assert!(
                !text.contains("wr0ngpassw0rd"),
                "the wrong password shows in: {text}"
            );
        }
        assert!(
            texts
                .iter()
                .any(|t| t.contains("password authentication failed"))
        );
        db.drop_schema().await;
    });
}

/// `url` with its port replaced by `port` (nothing listens there).
fn with_port(url: &str, port: u16) -> String {
    let at = url.rfind('@').unwrap();
    let slash = url[at..].find('/').unwrap() + at;
    let colon = url[at..slash].rfind(':').unwrap() + at;
    format!("{}:{port}{}", &url[..colon], &url[slash..])
}
