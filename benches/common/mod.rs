//! What the file benches (`csv`, `tee`) share: the generated orders file, the
//! job's record types and steps, and running each variant in a child process of
//! its own (the bench binary re-invoked with `--child`), measured there.
//!
//! Included with `mod common;`; each bench uses part of it.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// With `--features bench-jemalloc`, every bench process that includes this
/// module (loops and pipelines alike) allocates with jemalloc.
#[cfg(all(feature = "bench-jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use tokio::runtime::Runtime;

pub const KEEP: [&str; 5] = ["books", "garden", "toys", "music", "games"];
pub const CATEGORIES: [&str; 10] = [
    "books", "garden", "toys", "music", "games", "food", "tools", "sports", "auto", "health",
];

/// One row of the orders file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Order {
    pub id: u64,
    pub ts: String,
    pub user: String,
    pub category: String,
    pub amount: f64,
    pub qty: u32,
    pub note: String,
}

/// What the job writes for each order it keeps.
#[derive(Debug, Serialize)]
pub struct OwnedTotal {
    pub id: u64,
    pub user: String,
    pub category: String,
    pub total: f64,
}

pub fn keep(category: &str, amount: f64) -> bool {
    amount > 100.0 && KEEP.contains(&category)
}

/// The job's filter step: the orders it keeps.
pub fn keep_order(o: &Order) -> bool {
    keep(&o.category, o.amount)
}

/// The job's map step: an order's total.
pub fn total(o: Order) -> OwnedTotal {
    OwnedTotal {
        total: o.amount * f64::from(o.qty),
        id: o.id,
        user: o.user,
        category: o.category,
    }
}

/// A deterministic ~`mb` MB orders file; some notes quoted (commas, quotes).
pub fn generate(path: &Path, mb: u64) {
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

/// The bench's data directory (`target/bench-data/`, made if missing), the
/// size asked for in MB (`DATAFLARE_BENCH_MB`, 100 by default) and the orders
/// file of that size, generated if missing; prints the file's name and size.
pub struct Setup {
    pub dir: PathBuf,
    pub mb: u64,
    pub input: PathBuf,
    pub size_mb: f64,
}

pub fn setup() -> Setup {
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
    Setup {
        dir,
        mb,
        input,
        size_mb,
    }
}

/// Peak resident set size of this process, in MB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system time of this process so far, in seconds.
pub fn cpu_secs() -> f64 {
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

/// Handles the bench binary's own command line. Returns `true` when `main`
/// should return at once: in a child process (`--child VARIANT INPUT
/// OUTPUT...`), after running `job(runtime, variant, input, outputs)` on a
/// 2-worker runtime and printing `records seconds peak_rss_mb cpu_seconds`;
/// and for `--list` (`cargo bench -- --list` and friends: nothing to list).
pub fn child_or_list(job: impl FnOnce(&Runtime, &str, &Path, &[PathBuf]) -> u64) -> bool {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let variant = &args[i + 1];
        let input = Path::new(&args[i + 2]);
        let outputs: Vec<PathBuf> = args[i + 3..].iter().map(PathBuf::from).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let start = Instant::now();
        let n = job(&rt, variant, input, &outputs);
        let secs = start.elapsed().as_secs_f64();
        println!("{n} {secs} {} {}", peak_rss_mb(), cpu_secs());
        return true;
    }
    args.iter().any(|a| a == "--list")
}

/// What one child process reported.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub records: u64,
    /// Wall time of the job, from the runtime built to the job done.
    pub secs: f64,
    pub rss_mb: f64,
    /// User + system time of the whole child process, all threads.
    pub cpu_secs: f64,
    /// CPU time the whole machine spent, on every core, while the child ran
    /// (from its start to its exit): more than `cpu_secs` when something
    /// else was running too.
    pub machine_cpu_secs: f64,
}

/// CPU time the machine has spent busy so far, all cores, in seconds (the
/// first line of `/proc/stat`, in ticks of 1/100 s: all but idle and iowait).
pub fn machine_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map_or(Vec::new(), |l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        });
    if ticks.len() < 8 {
        return f64::NAN;
    }
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];
    busy / 100.0
}

/// Runs `variant` in a child process of its own (so its peak RSS and CPU time
/// are its own) reading `input` and writing `outputs`; panics if it fails.
pub fn measure(variant: &str, input: &Path, outputs: &[PathBuf]) -> Measured {
    let machine_before = machine_cpu_secs();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", variant])
        .arg(input)
        .args(outputs)
        .output()
        .unwrap();
    let machine_cpu_secs = machine_cpu_secs() - machine_before;
    assert!(
        out.status.success(),
        "{variant}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    let mut next = || parts.next().unwrap().parse::<f64>().unwrap();
    let (records, secs, rss_mb, cpu_secs) = (next() as u64, next(), next(), next());
    Measured {
        records,
        secs,
        rss_mb,
        cpu_secs,
        machine_cpu_secs,
    }
}

/// `rounds` rounds, each running every variant once with `run`, then calling
/// `after_round` with the round's index: a machine busy with something else
/// for a while slows all variants alike, not only those that happened to run
/// then. Returns each variant's runs, in round order.
pub fn interleaved<R>(
    variants: &[&str],
    rounds: usize,
    mut run: impl FnMut(&str) -> R,
    mut after_round: impl FnMut(usize),
) -> Vec<Vec<R>> {
    let mut runs: Vec<Vec<R>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (v, runs) in variants.iter().zip(&mut runs) {
            runs.push(run(v));
        }
        after_round(round);
    }
    runs
}

/// The median of `runs` by wall time `secs` (the upper one of an even count).
pub fn median<R>(mut runs: Vec<R>, secs: impl Fn(&R) -> f64) -> R {
    runs.sort_by(|a, b| secs(a).total_cmp(&secs(b)));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

/// The job as a DataFlare pipeline of dynamic `Record`s (a schema of every
/// column, amount float and qty int; `used`: of only the columns the job
/// uses), default settings but `parallel`: shared by `benches/csv.rs` and
/// `benches/workflow.rs` (the Rust pipeline a workflow file is held to).
pub async fn dynamic_job(input: &Path, output: &Path, parallel: Option<usize>, used: bool) -> u64 {
    use dataflare::prelude::*;
    use dataflare::record::{DataType, Record, Schema, Value};
    use std::sync::Arc;
    let schema = Arc::new(if used {
        // Only the columns the job uses: the others are not decoded.
        Schema::new([
            ("id", DataType::Int),
            ("user", DataType::Str),
            ("category", DataType::Str),
            ("amount", DataType::Float),
            ("qty", DataType::Int),
        ])
    } else {
        Schema::new([
            ("id", DataType::Int),
            ("ts", DataType::Str),
            ("user", DataType::Str),
            ("category", DataType::Str),
            ("amount", DataType::Float),
            ("qty", DataType::Int),
            ("note", DataType::Str),
        ])
    });
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
    let report = Pipeline::from({
        let source = dataflare::csv::read_records(input).schema(schema.clone());
        match parallel {
            Some(n) => source.parallel(n),
            None => source,
        }
    })
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
    .to(dataflare::csv::write_records(output))
    .run()
    .await
    .unwrap();
    report.records_out()
}
