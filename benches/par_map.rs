//! `par_map` with 2 workers against a sequential `map`.
//!
//! **In memory** (the target): an in-memory source of records with a short
//! text each (`"order-<i>|user<i % 9973>|note"`, made by the source as it
//! goes), a transform of about 2 µs of CPU per record — FNV-1a 64 (a
//! non-cryptographic hash) over the record's text, iterated, its round count
//! calibrated at start (by this thread's CPU time) so one record takes ~2 µs
//! of CPU on this machine — and a sink
//! folding the results into an order-sensitive checksum (so every variant is
//! checked to give the same records in the same order). Variants, in one
//! process on a 2-worker runtime:
//!
//! - `map`: `.map(digest)`, sequential, in the run's task;
//! - `par_map`: `.par_map(2, digest)`, source batches of 1,024 (the default);
//! - `par_map_b64`, `par_map_b8192`: the same with source batches of 64 and
//!   8,192 records (the work unit is a batch: what a hand-off per batch costs);
//! - `par_map_one_batch`: the whole input as one batch (the stage cuts it in
//!   slices for the idle workers: without that, one worker would do it all).
//!
//! **CSV job** (reported, no target): the orders job of `benches/csv.rs`
//! (`typed`: keep five categories over 100, write `id, user, category, total`)
//! with its `map(total)` as is (`csv_map`) and as `par_map(2, total)`
//! (`csv_par_map`), each in a child process of its own; the transform is a
//! small share of that job's work. Outputs are checked byte for byte.
//!
//! Rounds are interleaved (7 by default, `DATAFLARE_BENCH_ROUNDS`); each
//! variant's median and the ratio `map / par_map` per round (min, max) are
//! printed, with the CPU the rest of the machine spent meanwhile (from
//! `/proc/stat`): rounds where it is high are not to be trusted, so the
//! ratio is also given over the quiet rounds alone (under 0.5 s elsewhere).
//! `DATAFLARE_PAR_RECORDS` sets the in-memory records (500,000 by default),
//! `DATAFLARE_BENCH_MB` the CSV's size (100), `DATAFLARE_PAR_SKIP_CSV=1` skips
//! the CSV job. Run with `cargo bench --bench par_map`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{Order, OwnedTotal, keep_order, total};
use dataflare::csv;
use dataflare::prelude::*;

mod common;

const VARIANTS: [&str; 5] = [
    "map",
    "par_map",
    "par_map_b64",
    "par_map_b8192",
    "par_map_one_batch",
];
const CSV_VARIANTS: [&str; 2] = ["csv_map", "csv_par_map"];

/// CPU seconds spent elsewhere on the machine during a pair of runs below
/// which the round counts as quiet.
const QUIET_SECS: f64 = 0.5;

/// The text of record `i`.
fn text(i: u64) -> String {
    let mut s = String::with_capacity(48);
    write!(s, "order-{i}|user{}|note", i % 9973).unwrap();
    s
}

/// FNV-1a 64 over `text`, `rounds` times, each round seeded with the last.
fn digest(text: &str, rounds: u32) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..rounds {
        for &b in text.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// CPU time this thread has run so far, in ns (`/proc/thread-self/schedstat`):
/// unlike wall time, not stretched by other work on a busy machine.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat")
}

/// The rounds that make one `digest` take about 2 µs of CPU here, and the
/// CPU time it then takes, in µs (timed by this thread's CPU time, so a busy
/// machine does not skew it).
fn calibrate() -> (u32, f64) {
    let texts: Vec<String> = (0..50_000).map(text).collect();
    let per_record = |rounds: u32| {
        let start = thread_cpu_ns();
        let mut sink = 0u64;
        for t in &texts {
            sink ^= digest(std::hint::black_box(t), rounds);
        }
        std::hint::black_box(sink);
        (thread_cpu_ns() - start) as f64 / 1e3 / texts.len() as f64
    };
    per_record(10); // warm up
    let probe = 40;
    let per_probe = median((0..5).map(|_| per_record(probe)).collect());
    let rounds = ((2.0 / per_probe) * f64::from(probe)).round().max(1.0) as u32;
    let took = median((0..5).map(|_| per_record(rounds)).collect());
    (rounds, took)
}

/// One in-memory run of `variant`: seconds, and the checksum of what the
/// sink got, in order.
async fn in_memory(variant: &str, records: u64, rounds: u32) -> (f64, u64) {
    let batch = match variant {
        "par_map_b64" => 64,
        "par_map_b8192" => 8192,
        "par_map_one_batch" => records as usize,
        _ => dataflare::source::DEFAULT_BATCH_SIZE,
    };
    let checksum = Arc::new(Mutex::new(0u64));
    let c = checksum.clone();
    let sink = sink::for_each(move |batch: Batch<u64>| {
        let mut c = c.lock().unwrap();
        for &x in batch.iter() {
            *c = c.wrapping_mul(31).wrapping_add(x);
        }
        Ok(())
    });
    let source = source::iter((0..records).map(text)).batch_size(batch);
    let f = move |t: String| digest(&t, rounds);
    let start = Instant::now();
    let report = match variant {
        "map" => Pipeline::from(source).map(f).to(sink).run().await,
        _ => Pipeline::from(source).par_map(2, f).to(sink).run().await,
    }
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.records_out(), records);
    let sum = *checksum.lock().unwrap();
    (secs, sum)
}

/// Child process: one run of a CSV variant.
fn child(rt: &tokio::runtime::Runtime, variant: &str, input: &Path, outputs: &[PathBuf]) -> u64 {
    rt.block_on(async {
        let p = Pipeline::from(csv::read::<Order>(input)).filter(keep_order);
        let written = csv::write::<OwnedTotal>(&outputs[0]);
        let report = match variant {
            "csv_map" => p.map(total).to(written).run().await,
            "csv_par_map" => p.par_map(2, total).to(written).run().await,
            other => panic!("unknown variant {other}"),
        };
        report.unwrap().records_out()
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn spread(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn main() {
    if common::child_or_list(child) {
        return;
    }
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = env("DATAFLARE_BENCH_ROUNDS", 7).max(1) as usize;
    let records = env("DATAFLARE_PAR_RECORDS", 500_000).max(1);

    // In memory.
    let (hash_rounds, us) = calibrate();
    println!(
        "transform: FNV-1a 64 over ~{} bytes, {hash_rounds} rounds: {us:.2} µs per record alone",
        text(records / 2).len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut checksums: Option<u64> = None;
    let runs = common::interleaved(
        &VARIANTS,
        rounds,
        |v| {
            let machine = common::machine_cpu_secs();
            let cpu = common::cpu_secs();
            let (secs, sum) = rt.block_on(in_memory(v, records, hash_rounds));
            let cpu = common::cpu_secs() - cpu;
            let elsewhere = common::machine_cpu_secs() - machine - cpu;
            assert_eq!(
                *checksums.get_or_insert(sum),
                sum,
                "{v}: other records or order"
            );
            (secs, cpu, elsewhere)
        },
        |_| {},
    );
    println!("in memory, {records} records, per round (wall s; cpu busy elsewhere):");
    let secs = |v: usize, r: usize| runs[v][r].0;
    let mut ratios = Vec::new();
    for r in 0..rounds {
        let ratio = secs(0, r) / secs(1, r);
        ratios.push(ratio);
        let line: Vec<String> = VARIANTS
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{v} {:.3}", secs(i, r)))
            .collect();
        let elsewhere: f64 = runs.iter().map(|v| v[r].2).sum();
        println!(
            "  round {}: {}  map / par_map = {ratio:.3}  (elsewhere {elsewhere:.2} s)",
            r + 1,
            line.join("  ")
        );
    }
    println!("medians:");
    let medians: Vec<f64> = runs
        .iter()
        .map(|v| median(v.iter().map(|r| r.0).collect()))
        .collect();
    for (i, v) in VARIANTS.iter().enumerate() {
        let cpu = median(runs[i].iter().map(|r| r.1).collect());
        println!(
            "{v:>18}: {:>7.3} s  {:>6.0} k records/s  cpu {cpu:.2} s (cpu/wall {:.2})  map / this {:.3}",
            medians[i],
            records as f64 / medians[i] / 1e3,
            cpu / medians[i],
            medians[0] / medians[i],
        );
    }
    let (lo, hi) = spread(&ratios);
    println!(
        "ratio map / par_map(2), median of rounds = {:.3} (min {lo:.3}, max {hi:.3}); of medians = {:.3}  (target >= 1.7)",
        median(ratios.clone()),
        medians[0] / medians[1],
    );
    // The rounds the rest of the machine left alone (under 0.5 s of CPU
    // elsewhere while map and par_map ran): the machine is shared.
    let quiet: Vec<f64> = (0..rounds)
        .filter(|&r| runs[0][r].2 + runs[1][r].2 < QUIET_SECS)
        .map(|r| ratios[r])
        .collect();
    if quiet.is_empty() {
        println!("no quiet round (under {QUIET_SECS} s of CPU elsewhere during map and par_map)");
    } else {
        let (lo, hi) = spread(&quiet);
        println!(
            "quiet rounds ({} of {rounds}, under {QUIET_SECS} s of CPU elsewhere): map / par_map(2) median {:.3} (min {lo:.3}, max {hi:.3})",
            quiet.len(),
            median(quiet.clone()),
        );
    }

    if std::env::var("DATAFLARE_PAR_SKIP_CSV").is_ok_and(|v| v == "1") {
        return;
    }
    // The CSV job.
    let common::Setup { dir, input, .. } = common::setup();
    let out = |v: &str| vec![dir.join(format!("par-map-{v}.csv"))];
    let csv_runs = common::interleaved(
        &CSV_VARIANTS,
        rounds,
        |v| common::measure(v, &input, &out(v)),
        |round| {
            let a = std::fs::read(&out("csv_map")[0]).unwrap();
            let b = std::fs::read(&out("csv_par_map")[0]).unwrap();
            assert!(a == b, "round {}: outputs differ", round + 1);
        },
    );
    println!("CSV job, per round (wall s):");
    let mut csv_ratios = Vec::new();
    for (r, (m, p)) in csv_runs[0].iter().zip(&csv_runs[1]).enumerate() {
        let ratio = m.secs / p.secs;
        csv_ratios.push(ratio);
        let elsewhere = m.machine_cpu_secs - m.cpu_secs + p.machine_cpu_secs - p.cpu_secs;
        println!(
            "  round {}: csv_map {:.3}  csv_par_map {:.3}  map / par_map = {ratio:.3}  (elsewhere {elsewhere:.2} s)",
            r + 1,
            m.secs,
            p.secs
        );
    }
    for (i, v) in CSV_VARIANTS.iter().enumerate() {
        let m = common::median(csv_runs[i].clone(), |r| r.secs);
        println!(
            "{v:>12}: {:.3} s  cpu {:.2} s  {} records out  peak RSS {:.1} MB",
            m.secs, m.cpu_secs, m.records, m.rss_mb
        );
    }
    let (lo, hi) = spread(&csv_ratios);
    println!(
        "CSV job: map / par_map(2), median of rounds = {:.3} (min {lo:.3}, max {hi:.3})  (no target)",
        median(csv_ratios.clone())
    );
    let quiet: Vec<f64> = csv_runs[0]
        .iter()
        .zip(&csv_runs[1])
        .zip(&csv_ratios)
        .filter(|((m, p), _)| {
            m.machine_cpu_secs - m.cpu_secs + p.machine_cpu_secs - p.cpu_secs < QUIET_SECS
        })
        .map(|(_, r)| *r)
        .collect();
    if !quiet.is_empty() {
        let (lo, hi) = spread(&quiet);
        println!(
            "CSV job, quiet rounds ({} of {rounds}): median {:.3} (min {lo:.3}, max {hi:.3})",
            quiet.len(),
            median(quiet.clone())
        );
    }
    for v in CSV_VARIANTS {
        std::fs::remove_file(&out(v)[0]).ok();
    }
}
