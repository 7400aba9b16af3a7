//! CSV → filter → derive → CSV: DataFlare against hand-written `csv`-crate loops.
//!
//! Generates (not committed) a ~100 MB CSV of orders under `target/bench-data/`,
//! then runs the job — keep rows whose category is one of five and whose amount
//! is over 100, write `id, user, category, total = amount × qty` — several
//! ways, each in its own child process so each peak RSS is its own:
//!
//! - `serde_loop`: one thread, `csv::Reader::deserialize` into a struct, `serialize` out;
//! - `byte_record_loop`: one thread, one reused `ByteRecord`, fields parsed by hand;
//! - `typed`: a DataFlare pipeline of serde structs of every column, default settings
//!   (the file parsed on the cores less one: one thread on 2 cores);
//! - `dynamic`: a DataFlare pipeline of `Record`s (a schema of every column: amount
//!   float, qty int), default settings;
//! - `typed_used`, `dynamic_used`: the same with a struct / schema of only the
//!   columns the job uses, so the others are not decoded;
//! - `typed_2_threads`, `dynamic_2_threads`: `typed` and `dynamic` parsing on two
//!   threads (`parallel(2)`), to show what parallel parsing gives on this machine;
//! - `chunks`: `csv::read_chunks` cuts the file into 1 MiB blocks of whole records,
//!   `par_map(2, ..)` parses each block into rows borrowed from it (only the used
//!   columns decoded) and formats the kept ones with `CsvOut`, and
//!   `csv::write_chunks` writes the blocks in input order: what `byte_record_loop`
//!   writes, byte for byte.
//! - `typed_chunks`: the typed job on chunks: rows deserialized into `Order`
//!   (`Row::deserialize`), filtered, mapped and serialized (`CsvOut::serialize`)
//!   on 2 workers, each record made and freed on one thread: what
//!   `serde_loop` writes, byte for byte.
//!
//! The variants run in 5 interleaved rounds; each one's median counts, and
//! each ratio is the median (and the spread) of the ratios within a round.
//! `cpu` is the child's user + system time. Then `typed` and `dynamic` run
//! once more on a ~400 MB file to compare peak RSS.
//!
//! Run with `cargo bench --bench csv` (release build). Set `DATAFLARE_BENCH_MB`
//! to change the size. The file's generator, the job's steps and the
//! child-process measurement are in `benches/common/mod.rs`, shared with
//! `benches/tee.rs`.

use std::io::Write;
use std::path::Path;

use common::{Order, OwnedTotal, keep, keep_order, total};
use dataflare::csv;
use dataflare::prelude::*;
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

/// How a variant's source parses: with the defaults (the cores less one:
/// one thread on 2 cores), or on two threads.
#[derive(Clone, Copy)]
enum Threads {
    Default,
    Two,
}

fn threads<T: Send + 'static>(source: csv::CsvSource<T>, threads: Threads) -> csv::CsvSource<T> {
    match threads {
        Threads::Default => source,
        Threads::Two => source.parallel(2),
    }
}

/// The columns the job uses, and only those: the others are not decoded.
#[derive(Debug, serde::Deserialize)]
struct Used {
    id: u64,
    user: String,
    category: String,
    amount: f64,
    qty: u32,
}

async fn typed_used(input: &Path, output: &Path) -> u64 {
    Pipeline::from(csv::read::<Used>(input))
        .filter(|o: &Used| keep(&o.category, o.amount))
        .map(|o: Used| OwnedTotal {
            total: o.amount * f64::from(o.qty),
            id: o.id,
            user: o.user,
            category: o.category,
        })
        .to(csv::write::<OwnedTotal>(output))
        .run()
        .await
        .unwrap()
        .records_out()
}

async fn typed(input: &Path, output: &Path, t: Threads) -> u64 {
    Pipeline::from(threads(csv::read::<Order>(input), t))
        .filter(keep_order)
        .map(total)
        .to(csv::write::<OwnedTotal>(output))
        .run()
        .await
        .unwrap()
        .records_out()
}

async fn dynamic(input: &Path, output: &Path, t: Threads, used: bool) -> u64 {
    let parallel = match t {
        Threads::Default => None,
        Threads::Two => Some(2),
    };
    common::dynamic_job(input, output, parallel, used).await
}

/// The job on chunks of whole records: parsed on 2 workers, rows borrowed
/// from their chunk, fields decoded as `byte_record_loop` decodes them.
async fn chunks(input: &Path, output: &Path) -> u64 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let kept = Arc::new(AtomicU64::new(0));
    let count = kept.clone();
    Pipeline::from(csv::read_chunks(input))
        .par_map(2, move |chunk: csv::CsvChunk| -> Vec<u8> {
            let mut out = csv::CsvOut::with_capacity(chunk.len() / 3);
            let mut total_buf = Vec::with_capacity(32);
            let mut n = 0;
            chunk
                .for_each_row(|row| {
                    let category = row.str(3)?;
                    let amount: f64 = row.parse(4)?;
                    if keep(category, amount) {
                        let qty: u32 = row.parse(5)?;
                        total_buf.clear();
                        write!(total_buf, "{}", amount * f64::from(qty)).unwrap();
                        let field = |i| row.get(i).unwrap_or_default();
                        out.write_record([field(0), field(2), field(3), total_buf.as_slice()])?;
                        n += 1;
                    }
                    Ok(())
                })
                .unwrap();
            count.fetch_add(n, Ordering::Relaxed);
            out.into_bytes()
        })
        .to(csv::write_chunks(output).header(["id", "user", "category", "total"]))
        .run()
        .await
        .unwrap();
    kept.load(Ordering::Relaxed)
}

/// The typed job on chunks: each chunk's rows deserialized into `Order`
/// (every column, as `typed`), filtered, mapped and serialized on the same
/// worker, so a record is made and freed on one thread: what `typed` writes,
/// byte for byte.
async fn typed_chunks(input: &Path, output: &Path) -> u64 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let kept = Arc::new(AtomicU64::new(0));
    let count = kept.clone();
    Pipeline::from(csv::read_chunks(input))
        .par_try_map(
            2,
            move |chunk: &csv::CsvChunk| -> dataflare::Result<Vec<u8>> {
                let mut out = csv::CsvOut::with_capacity(chunk.len() / 3);
                let mut n = 0;
                chunk.for_each_row(|row| {
                    let order: Order = row.deserialize()?;
                    if keep_order(&order) {
                        out.serialize(&total(order))?;
                        n += 1;
                    }
                    Ok(())
                })?;
                count.fetch_add(n, Ordering::Relaxed);
                Ok(out.into_bytes())
            },
        )
        .to(csv::write_chunks(output).header(["id", "user", "category", "total"]))
        .run()
        .await
        .unwrap();
    kept.load(Ordering::Relaxed)
}

/// Child process: run one variant.
fn child(rt: &tokio::runtime::Runtime, variant: &str, input: &Path, output: &Path) -> u64 {
    match variant {
        "serde_loop" => serde_loop(input, output),
        "byte_record_loop" => byte_record_loop(input, output),
        "typed" => rt.block_on(typed(input, output, Threads::Default)),
        "typed_2_threads" => rt.block_on(typed(input, output, Threads::Two)),
        "typed_used" => rt.block_on(typed_used(input, output)),
        "dynamic" => rt.block_on(dynamic(input, output, Threads::Default, false)),
        "dynamic_2_threads" => rt.block_on(dynamic(input, output, Threads::Two, false)),
        "dynamic_used" => rt.block_on(dynamic(input, output, Threads::Default, true)),
        "chunks" => rt.block_on(chunks(input, output)),
        "typed_chunks" => rt.block_on(typed_chunks(input, output)),
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

/// Each variant's runs over `rounds` interleaved rounds, in round order.
fn rounds<'v>(
    variants: &[&'v str],
    input: &Path,
    dir: &Path,
    rounds: usize,
) -> Vec<(&'v str, Vec<Run>)> {
    let runs = common::interleaved(variants, rounds, |v| run(v, input, dir), |_| {});
    variants.iter().copied().zip(runs).collect()
}

/// min, median and max of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
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
        "typed_used",
        "dynamic_used",
        "typed_2_threads",
        "dynamic_2_threads",
        "chunks",
        "typed_chunks",
    ];
    let all = rounds(&variants, &input, &dir, ROUNDS);
    let runs = |name: &str| &all.iter().find(|(v, _)| *v == name).unwrap().1;
    let median = |name: &str| {
        let (_, secs, _) = spread(runs(name).iter().map(|r| r.secs).collect());
        runs(name).iter().find(|r| r.secs == secs).unwrap()
    };
    for v in variants {
        let r = median(v);
        println!(
            "{v:>18}: {:>7.3} s  {:>7.1} MB/s  cpu {:>6.2} s  {:>9} records out  peak RSS {:>6.1} MB",
            r.secs,
            size_mb / r.secs,
            r.cpu_secs,
            r.records,
            r.rss_mb
        );
    }
    let expected = median("serde_loop").records;
    for (v, runs) in &all {
        for r in runs {
            assert_eq!(
                r.records, expected,
                "{v} wrote a different number of records"
            );
        }
    }
    // Each pipeline writes what its loop writes, byte for byte (typed ones
    // through serde, dynamic ones with `Display` numbers, as the loops do).
    for (v, like) in [
        ("typed", "serde_loop"),
        ("typed_used", "serde_loop"),
        ("typed_2_threads", "serde_loop"),
        ("dynamic", "byte_record_loop"),
        ("dynamic_used", "byte_record_loop"),
        ("dynamic_2_threads", "byte_record_loop"),
        ("chunks", "byte_record_loop"),
        ("typed_chunks", "serde_loop"),
    ] {
        assert_eq!(
            median(v).digest,
            median(like).digest,
            "{v} did not write what {like} wrote"
        );
    }
    // Throughput ratios, round by round: `base`'s time over `v`'s, from the
    // same round (higher is better).
    let paired = |v: &str, base: &str| {
        spread(
            runs(v)
                .iter()
                .zip(runs(base))
                .map(|(r, b)| b.secs / r.secs)
                .collect(),
        )
    };
    let best = [
        "typed",
        "dynamic",
        "typed_used",
        "dynamic_used",
        "typed_2_threads",
        "dynamic_2_threads",
        "chunks",
    ]
    .into_iter()
    .max_by(|a, b| {
        paired(a, "byte_record_loop")
            .1
            .total_cmp(&paired(b, "byte_record_loop").1)
    })
    .unwrap();
    println!("ratios (throughput, higher is better; median of {ROUNDS} paired rounds [min, max]):");
    for (label, v, base, target) in [
        (
            "best ({best}) / byte_record_loop",
            best,
            "byte_record_loop",
            ">= 1.5",
        ),
        (
            "typed (defaults) / serde_loop",
            "typed",
            "serde_loop",
            ">= 1.5",
        ),
        (
            "dynamic / byte_record_loop",
            "dynamic",
            "byte_record_loop",
            ">= 1.0",
        ),
        ("typed_2_threads / typed", "typed_2_threads", "typed", "-"),
        (
            "dynamic_2_threads / dynamic",
            "dynamic_2_threads",
            "dynamic",
            "-",
        ),
        (
            "chunks / byte_record_loop",
            "chunks",
            "byte_record_loop",
            ">= 1.5",
        ),
        (
            "typed_chunks / serde_loop",
            "typed_chunks",
            "serde_loop",
            "-",
        ),
    ] {
        let (lo, mid, hi) = paired(v, base);
        let label = label.replace("{best}", best);
        println!("  {label:<40} = {mid:.2}  [{lo:.2}, {hi:.2}]  (target {target})");
    }

    let big = dir.join(format!("orders-{}mb.csv", mb * 4));
    common::generate(&big, mb * 4);
    for v in ["typed", "dynamic"] {
        let small = median(v).rss_mb;
        let large = run(v, &big, &dir).rss_mb;
        println!(
            "  peak RSS {v}: {small:.1} MB at {mb} MB input, {large:.1} MB at {} MB input: ratio {:.2} (target <= 1.2)",
            mb * 4,
            large / small
        );
    }
}
