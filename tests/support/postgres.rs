//! The PostgreSQL server the `postgres_*` tests use: `DATAFLARE_PG_URL`
//! (`.ci/run` starts a throwaway one and sets it). Without it a test prints a
//! loud skip message, unless `CI=true`, where a missing server fails it.
//! Each test works in a schema of its own, so the tests run in parallel.

use dataflare::postgres::tokio_postgres::{self, Client, NoTls, Row};

/// A test's own schema on the test server, and a client for setting up and
/// checking.
pub struct Db {
    pub url: String,
    pub schema: String,
    pub client: Client,
}

/// The test server's connection string, or `None` (after a loud message)
/// on a developer's machine without one; under `CI=true`, a panic.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("DATAFLARE_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!(
                    "{test}: DATAFLARE_PG_URL is not set under CI=true: the PostgreSQL tests must run, not be skipped"
                );
            }
            eprintln!(
                "\n!!!!!!!! SKIPPED {test}: no PostgreSQL server (set DATAFLARE_PG_URL, or run \
                 `source .ci/postgres.sh && pg_start`) !!!!!!!!\n"
            );
            None
        }
    }
}

/// Connects to the test server and makes a fresh schema named after `test`.
pub async fn db(test: &str) -> Option<Db> {
    let url = url(test)?;
    let client = connect(&url).await;
    let schema = format!("t_{}", test.replace(['-', ' ', ':'], "_"));
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    Some(Db {
        url,
        schema,
        client,
    })
}

/// A plain client (for setting up and checking, not under test).
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl Db {
    /// `name` in this test's schema.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    pub async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    pub async fn rows(&self, sql: &str) -> Vec<Row> {
        self.client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.rows(&format!("SELECT count(*) FROM {}", self.table(table)))
            .await[0]
            .get(0)
    }

    /// The whole table as text, ordered by its first column: for comparing
    /// before and after.
    pub async fn dump(&self, table: &str) -> Vec<String> {
        self.rows(&format!(
            "SELECT t::text FROM {} t ORDER BY 1",
            self.table(table)
        ))
        .await
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    pub async fn drop_schema(self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await;
    }
}
