//! CSV → filter → derive → CSV: DataFlare against hand-written `csv`-crate loops.
//!
//! Generates (not committed) a ~100 MB CSV of orders under `target/bench-data/`,
//! then runs the job — keep rows whose category is one of five and whose amount
//! is over 100, write `id, user, category, total = amount × qty` — five ways,
//! each in its own child process so each peak RSS is its own:
//!
//! - `serde_loop`: one thread, `csv::Reader::deserialize` into a struct, `serialize` out;
//! - `byte_record_loop`: one thread, one reused `ByteRecord`, fields parsed by hand;
//! - `typed`: a DataFlare pipeline of serde structs;
//! - `dynamic`: a DataFlare pipeline of `Record`s (typed schema: amount float, qty int);
//! - `typed_buffered`: `typed` with a `buffer` boundary, so the filter/derive work
//!   runs apart from the task feeding the writer.
//!
//! Reading, transforming and writing in DataFlare already run on three threads
//! (reader, pipeline, writer). The variants run in 5 interleaved rounds; each
//! one's median counts. `cpu` is the child's user + system time.
//! Then `typed` and `dynamic` run once more on a ~400 MB file to compare peak RSS.
//!
//! Run with `cargo bench --bench csv` (release build). Set `DATAFLARE_BENCH_MB`
//! to change the size. The file's generator, the job's steps and the
//! child-process measurement are in `benches/common/mod.rs`, shared with
//! `benches/tee.rs`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::{Order, OwnedTotal, keep, keep_order, total};
use dataflare::csv;
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use serde::Serialize;

mod common;

#[derive(Debug, Serialize)]
struct Total<'a> {
    id: u64,
    user: &'a str,
    category: &'a str,
    total: f64,
}

fn serde_loop(input: &Path, output: &Path) -> u64 {
    let mut r = ::csv::Reader::from_path(input).unwrap();
    let mut w = ::csv::Writer::from_path(output).unwrap();
    let mut n = 0;
    for order in r.deserialize::<Order>() {
        let o = order.unwrap();
        if keep(&o.category, o.amount) {
            let total = o.amount * f64::from(o.qty);
            w.serialize(Total {
                id: o.id,
                user: &o.user,
                category: &o.category,
                total,
            })
            .unwrap();
            n += 1;
        }
    }
    w.flush().unwrap();
    n
}

fn byte_record_loop(input: &Path, output: &Path) -> u64 {
    let mut r = ::csv::Reader::from_path(input).unwrap();
    let mut w = ::csv::Writer::from_path(output).unwrap();
    w.write_record(["id", "user", "category", "total"]).unwrap();
    let mut rec = ::csv::ByteRecord::new();
    let mut n = 0;
    let mut total_buf = Vec::with_capacity(32);
    while r.read_byte_record(&mut rec).unwrap() {
        let category = std::str::from_utf8(&rec[3]).unwrap();
        let amount: f64 = std::str::from_utf8(&rec[4]).unwrap().parse().unwrap();
        if keep(category, amount) {
            let qty: u32 = std::str::from_utf8(&rec[5]).unwrap().parse().unwrap();
            total_buf.clear();
            write!(total_buf, "{}", amount * f64::from(qty)).unwrap();
            w.write_record([&rec[0], &rec[2], &rec[3], total_buf.as_slice()])
                .unwrap();
            n += 1;
        }
    }
    w.flush().unwrap();
    n
}

async fn typed(input: &Path, output: &Path, buffered: bool) -> u64 {
    let p = Pipeline::from(csv::read::<Order>(input))
        .filter(keep_order)
        .map(total);
    let report = if buffered {
        p.buffer(4).to(csv::write::<OwnedTotal>(output)).run().await
    } else {
        p.to(csv::write::<OwnedTotal>(output)).run().await
    };
    report.unwrap().records_out()
}

async fn dynamic(input: &Path, output: &Path) -> u64 {
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("ts", DataType::Str),
        ("user", DataType::Str),
        ("category", DataType::Str),
        ("amount", DataType::Float),
        ("qty", DataType::Int),
        ("note", DataType::Str),
    ]));
    let out = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("user", DataType::Str),
        ("category", DataType::Str),
        ("total", DataType::Float),
    ]));
    // Columns looked up by name once, not per record.
    let column = |name: &str| schema.index_of(name).unwrap();
    let (id, user, category) = (column("id"), column("user"), column("category"));
    let (amount, qty) = (column("amount"), column("qty"));
    let report = Pipeline::from(csv::read_records(input).schema(schema.clone()))
        .filter(move |r: &Record| {
            let amount = r.get_index(amount).and_then(Value::as_f64).unwrap_or(0.0);
            keep(
                r.get_index(category).and_then(Value::as_str).unwrap_or(""),
                amount,
            )
        })
        .map(move |r: Record| {
            let v = r.values();
            let total = v[amount].as_f64().unwrap_or(0.0) * v[qty].as_f64().unwrap_or(0.0);
            Record::new(
                out.clone(),
                vec![
                    v[id].clone(),
                    v[user].clone(),
                    v[category].clone(),
                    Value::Float(total),
                ],
            )
        })
        .to(csv::write_records(output))
        .run()
        .await
        .unwrap();
    report.records_out()
}

/// Child process: run one variant.
fn child(rt: &tokio::runtime::Runtime, variant: &str, input: &Path, output: &Path) -> u64 {
    match variant {
        "serde_loop" => serde_loop(input, output),
        "byte_record_loop" => byte_record_loop(input, output),
        "typed" => rt.block_on(typed(input, output, false)),
        "typed_buffered" => rt.block_on(typed(input, output, true)),
        "dynamic" => rt.block_on(dynamic(input, output)),
        other => panic!("unknown variant {other}"),
    }
}

struct Run {
    records: u64,
    secs: f64,
    rss_mb: f64,
    /// A hash of the output file, to check that variants wrote the same bytes.
    digest: u64,
    /// User + system time of the whole child process, all threads.
    cpu_secs: f64,
}

/// Rounds of runs of every variant.
const ROUNDS: usize = 5;

/// FNV-1a of a file's bytes.
fn digest(path: &Path) -> u64 {
    std::fs::read(path)
        .unwrap()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn run(variant: &str, input: &Path, dir: &Path) -> Run {
    let output = dir.join(format!("out-{variant}.csv"));
    let m = common::measure(variant, input, std::slice::from_ref(&output));
    let digest = digest(&output);
    let _ = std::fs::remove_file(output);
    Run {
        records: m.records,
        secs: m.secs,
        rss_mb: m.rss_mb,
        digest,
        cpu_secs: m.cpu_secs,
    }
}

/// The median run of each variant over `rounds` interleaved rounds.
fn medians<'v>(
    variants: &[&'v str],
    input: &Path,
    dir: &Path,
    rounds: usize,
) -> Vec<(&'v str, Run)> {
    let runs = common::interleaved(variants, rounds, |v| run(v, input, dir), |_| {});
    variants
        .iter()
        .zip(runs)
        .map(|(v, runs)| (*v, common::median(runs, |r| r.secs)))
        .collect()
}

fn main() {
    if common::child_or_list(|rt, variant, input, outputs| child(rt, variant, input, &outputs[0])) {
        return;
    }
    let common::Setup {
        dir,
        mb,
        input,
        size_mb,
    } = common::setup();

    let variants = [
        "serde_loop",
        "byte_record_loop",
        "typed",
        "dynamic",
        "typed_buffered",
    ];
    let results = medians(&variants, &input, &dir, ROUNDS);
    for (v, r) in &results {
        println!(
            "{v:>18}: {:>7.3} s  {:>7.1} MB/s  cpu {:>6.2} s  {:>9} records out  peak RSS {:>6.1} MB",
            r.secs,
            size_mb / r.secs,
            r.cpu_secs,
            r.records,
            r.rss_mb
        );
    }
    let result = |name: &str| &results.iter().find(|(v, _)| *v == name).unwrap().1;
    let secs = |name: &str| result(name).secs;
    let expected = results[0].1.records;
    for (v, r) in &results {
        assert_eq!(
            r.records, expected,
            "{v} wrote a different number of records"
        );
    }
    // Each pipeline writes what its loop writes, byte for byte (typed ones
    // through serde, dynamic ones with `Display` numbers, as the loops do).
    for (v, like) in [
        ("typed", "serde_loop"),
        ("typed_buffered", "serde_loop"),
        ("dynamic", "byte_record_loop"),
    ] {
        assert_eq!(
            result(v).digest,
            result(like).digest,
            "{v} did not write what {like} wrote"
        );
    }
    println!("ratios (throughput, higher is better):");
    println!(
        "  typed / serde_loop            = {:.2}  (target >= 0.9)",
        secs("serde_loop") / secs("typed")
    );
    println!(
        "  dynamic / byte_record_loop    = {:.2}  (target >= 0.7)",
        secs("byte_record_loop") / secs("dynamic")
    );
    let best = ["typed", "dynamic", "typed_buffered"]
        .into_iter()
        .min_by(|a, b| secs(a).total_cmp(&secs(b)))
        .unwrap();
    println!(
        "  best ({best}) / byte_record_loop = {:.2}  (target > 1)",
        secs("byte_record_loop") / secs(best)
    );

    let big = dir.join(format!("orders-{}mb.csv", mb * 4));
    common::generate(&big, mb * 4);
    for v in ["typed", "dynamic"] {
        let small = results.iter().find(|(n, _)| *n == v).unwrap().1.rss_mb;
        let large = run(v, &big, &dir).rss_mb;
        println!(
            "  peak RSS {v}: {small:.1} MB at {mb} MB input, {large:.1} MB at {} MB input: ratio {:.2} (target <= 1.2)",
            mb * 4,
            large / small
        );
    }
}
