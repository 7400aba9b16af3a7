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
//! to change the size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use dataflare::csv;
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use serde::{Deserialize, Serialize};

const KEEP: [&str; 5] = ["books", "garden", "toys", "music", "games"];
const CATEGORIES: [&str; 10] = [
    "books", "garden", "toys", "music", "games", "food", "tools", "sports", "auto", "health",
];

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Order {
    id: u64,
    ts: String,
    user: String,
    category: String,
    amount: f64,
    qty: u32,
    note: String,
}

#[derive(Debug, Serialize)]
struct Total<'a> {
    id: u64,
    user: &'a str,
    category: &'a str,
    total: f64,
}

#[derive(Debug, Serialize)]
struct OwnedTotal {
    id: u64,
    user: String,
    category: String,
    total: f64,
}

fn keep(category: &str, amount: f64) -> bool {
    amount > 100.0 && KEEP.contains(&category)
}

/// A deterministic ~`mb` MB orders file; some notes quoted (commas, quotes).
fn generate(path: &Path, mb: u64) {
    if std::fs::metadata(path)
        .map(|m| m.len() >= mb * 1_000_000)
        .unwrap_or(false)
    {
        return;
    }
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    writeln!(w, "id,ts,user,category,amount,qty,note").unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let notes = [
        "",
        "",
        "gift",
        "\"express, fragile\"",
        "\"said \"\"thanks\"\"\"",
        "repeat customer",
    ];
    let mut written = 0u64;
    let mut id = 0u64;
    while written < mb * 1_000_000 {
        id += 1;
        let r = next();
        let line = format!(
            "{id},2026-{:02}-{:02}T{:02}:{:02}:00Z,user{:05},{},{}.{:02},{},{}\n",
            1 + r % 12,
            1 + (r >> 8) % 28,
            (r >> 16) % 24,
            (r >> 24) % 60,
            (r >> 32) % 50_000,
            CATEGORIES[((r >> 40) % 10) as usize],
            (r >> 44) % 500,
            (r >> 52) % 100,
            1 + (r >> 56) % 5,
            notes[((r >> 59) % 6) as usize],
        );
        written += line.len() as u64;
        w.write_all(line.as_bytes()).unwrap();
    }
    w.flush().unwrap();
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
        .filter(|o| keep(&o.category, o.amount))
        .map(|o| OwnedTotal {
            total: o.amount * f64::from(o.qty),
            id: o.id,
            user: o.user,
            category: o.category,
        });
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

/// Peak resident set size of this process, in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child process: run one variant, print `records seconds peak_rss_mb cpu_seconds`.
fn child(variant: &str, input: &Path, output: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let n = match variant {
        "serde_loop" => serde_loop(input, output),
        "byte_record_loop" => byte_record_loop(input, output),
        "typed" => rt.block_on(typed(input, output, false)),
        "typed_buffered" => rt.block_on(typed(input, output, true)),
        "dynamic" => rt.block_on(dynamic(input, output)),
        other => panic!("unknown variant {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{n} {secs} {} {}", peak_rss_mb(), cpu_secs());
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

/// User + system time of this process so far, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

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
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", variant])
        .arg(input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{variant}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    let mut next = || parts.next().unwrap().parse::<f64>().unwrap();
    let (records, secs, rss_mb, cpu_secs) = (next() as u64, next(), next(), next());
    let digest = digest(&output);
    let _ = std::fs::remove_file(output);
    Run {
        records,
        secs,
        rss_mb,
        digest,
        cpu_secs,
    }
}

/// The median run of each variant over `rounds` rounds, each running every
/// variant once: a machine busy with something else for a while slows all
/// variants alike, not only those that happened to run then.
fn medians<'v>(
    variants: &[&'v str],
    input: &Path,
    dir: &Path,
    rounds: usize,
) -> Vec<(&'v str, Run)> {
    let mut runs: Vec<Vec<Run>> = variants.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (v, runs) in variants.iter().zip(&mut runs) {
            runs.push(run(v, input, dir));
        }
    }
    variants
        .iter()
        .zip(runs)
        .map(|(v, mut runs)| {
            runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
            (*v, runs.swap_remove(rounds / 2))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(
            &args[i + 1],
            Path::new(&args[i + 2]),
            Path::new(&args[i + 3]),
        );
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and friends: nothing to list
    }
    let mb: u64 = std::env::var("DATAFLARE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join(format!("orders-{mb}mb.csv"));
    generate(&input, mb);
    let size_mb = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    println!("input: {} ({size_mb:.0} MB)", input.display());

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
    generate(&big, mb * 4);
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
