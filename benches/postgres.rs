//! PostgreSQL: 1 M orders rows, DataFlare against `psql`'s `\copy` on the
//! same server, in one run, interleaved rounds.
//!
//! - load: CSV file → table, `csv::read_records` (typed schema) into
//!   `postgres::copy_in` (binary COPY) vs `psql -c "\copy t FROM file CSV HEADER"`;
//! - unload: table → CSV file, `postgres::query` (a query without parameters:
//!   binary `COPY ... TO STDOUT`) into `csv::write_records` vs `psql -c
//!   "\copy (SELECT ...) TO file CSV HEADER"`; and the same query with a
//!   parameter (`WHERE id >= $1`), which goes through a portal, for the
//!   transport's share.
//!
//! Each is timed wall-clock, interleaved rounds (DataFlare, psql, DataFlare,
//! psql, ...; 5, or `DATAFLARE_BENCH_ROUNDS`); the ratio is psql's time over DataFlare's (≥ 1 means DataFlare
//! is faster; the target is ≥ 0.8), median and spread over the rounds. The
//! peak RSS of this process (VmHWM) is reported after the first 1 M-row load.
//!
//! Uses the server in `DATAFLARE_PG_URL`, or starts a throwaway one with
//! `.ci/postgres.sh` (and stops it). Run with `cargo bench --features
//! postgres --bench postgres`; `DATAFLARE_BENCH_ROWS` changes the row count.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataflare::prelude::*;
use dataflare::record::{DataType, Schema};
use dataflare::{csv, postgres};

struct Server {
    url: String,
    /// What `pg_stop` needs, when this bench started the server.
    started: Option<[String; 3]>,
}

impl Server {
    fn get() -> Server {
        if let Ok(url) = std::env::var("DATAFLARE_PG_URL") {
            return Server { url, started: None };
        }
        let out = Command::new("bash")
            .args([
                "-c",
                "set -e; source .ci/postgres.sh; pg_start >&2; echo \"$DATAFLARE_PG_URL\"; \
                 echo \"$PG_DIR\"; echo \"$PG_BINDIR\"; echo \"${PG_AS[*]}\"",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("bash");
        assert!(out.status.success(), "could not start PostgreSQL");
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        Server {
            url: lines[0].to_string(),
            started: Some([
                lines[1].into(),
                lines[2].into(),
                lines.get(3).unwrap_or(&"").to_string(),
            ]),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some([dir, bindir, r#as]) = &self.started {
            let script = format!(
                "source .ci/postgres.sh; PG_DIR='{dir}'; PG_BINDIR='{bindir}'; PG_AS=({}); pg_stop",
                r#as
            );
            let _ = Command::new("bash")
                .args(["-c", &script])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status();
        }
    }
}

fn psql(url: &str, command: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", command])
        .status()
        .expect("psql");
    assert!(status.success(), "psql {command}");
    start.elapsed()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn write_orders(path: &Path, rows: usize) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "id,customer,product,qty,amount,placed_at").unwrap();
    for i in 0..rows {
        writeln!(
            w,
            "{i},customer {},\"product {}, size {}\",{},{}.{:02},2024-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            i % 50_000,
            i % 997,
            i % 5,
            i % 9 + 1,
            (i * 37) % 100_000,
            i % 100,
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60,
            (i * 7) % 60
        )
        .unwrap();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rows: usize = std::env::var("DATAFLARE_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("DATAFLARE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let server = Server::get();
    let url = server.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    write_orders(&input, rows);
    let mb = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    println!("{rows} orders rows, {mb:.0} MB of CSV");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = |sql: &str| psql(&url, sql);
    setup(
        "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench; \
         CREATE TABLE bench.orders_df (id int8, customer text, product text, qty int4, amount numeric(12,2), placed_at timestamptz); \
         CREATE TABLE bench.orders_psql (LIKE bench.orders_df)",
    );
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("customer", DataType::Str),
        ("product", DataType::Str),
        ("qty", DataType::Int),
        ("amount", DataType::Decimal),
        ("placed_at", DataType::Timestamp),
    ]));

    let (mut load, mut unload, mut portal) = (Vec::new(), Vec::new(), Vec::new());
    let mut rss = None;
    for round in 0..rounds {
        setup("TRUNCATE bench.orders_df");
        let start = Instant::now();
        let report = runtime
            .block_on(
                Pipeline::from(csv::read_records(&input).schema(schema.clone()))
                    .to(postgres::copy_in(url.as_str(), "bench.orders_df"))
                    .run(),
            )
            .unwrap();
        let df_load = start.elapsed();
        assert_eq!(report.records_out(), rows as u64);
        rss.get_or_insert_with(peak_rss_mb);

        setup("TRUNCATE bench.orders_psql");
        let psql_load = psql(
            &url,
            &format!(
                "\\copy bench.orders_psql FROM '{}' CSV HEADER",
                input.display()
            ),
        );

        let out = dir.path().join("df-out.csv");
        let start = Instant::now();
        let report = runtime
            .block_on(
                Pipeline::from(postgres::query(
                    url.as_str(),
                    "SELECT * FROM bench.orders_df",
                    [0; 0],
                ))
                .to(csv::write_records(&out))
                .run(),
            )
            .unwrap();
        let df_unload = start.elapsed();
        assert_eq!(report.records_in(), rows as u64);
        let start = Instant::now();
        let report = runtime
            .block_on(
                Pipeline::from(postgres::query(
                    url.as_str(),
                    "SELECT * FROM bench.orders_df WHERE id >= $1",
                    [i64::MIN],
                ))
                .to(csv::write_records(&out))
                .run(),
            )
            .unwrap();
        let df_portal = start.elapsed();
        assert_eq!(report.records_in(), rows as u64);
        let psql_out = dir.path().join("psql-out.csv");
        let psql_unload = psql(
            &url,
            &format!(
                "\\copy (SELECT * FROM bench.orders_df) TO '{}' CSV HEADER",
                psql_out.display()
            ),
        );
        println!(
            "round {}: load DataFlare {:.2}s, psql {:.2}s; unload DataFlare {:.2}s (portal {:.2}s), psql {:.2}s",
            round + 1,
            df_load.as_secs_f64(),
            psql_load.as_secs_f64(),
            df_unload.as_secs_f64(),
            df_portal.as_secs_f64(),
            psql_unload.as_secs_f64()
        );
        portal.push(psql_unload.as_secs_f64() / df_portal.as_secs_f64());
        load.push(psql_load.as_secs_f64() / df_load.as_secs_f64());
        unload.push(psql_unload.as_secs_f64() / df_unload.as_secs_f64());
    }
    for (what, ratios) in [
        ("CSV -> table (copy_in vs \\copy FROM)", load),
        ("table -> CSV (query, COPY TO STDOUT, vs \\copy TO)", unload),
        (
            "table -> CSV (query with a parameter, portal, vs \\copy TO)",
            portal,
        ),
    ] {
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "{what}: psql time / DataFlare time = {:.2}x median of {rounds} (spread {lo:.2}-{hi:.2}); target >= 0.8",
            median(ratios.clone())
        );
    }
    println!(
        "peak RSS of the bench process after the first {rows}-row copy_in: {:.0} MB",
        rss.unwrap_or(0.0)
    );
    setup("DROP SCHEMA bench CASCADE");
}
