//! Reading once and fanning out (`tee`) against reading twice.
//!
//! On the ~100 MB orders CSV of `benches/csv.rs` (generated, not committed,
//! under `target/bench-data/`; the generator and the child-process
//! measurement are shared in `benches/common/mod.rs`), two jobs read the same
//! typed `Order`s:
//!
//! - the *filter* job of `benches/csv.rs` (its `typed` variant): keep orders of
//!   five categories over 100, write `id, user, category, total = amount × qty`
//!   to CSV;
//! - the *copy* job: every order to JSON Lines.
//!
//! Variants, each in a child process of its own (2 tokio workers):
//!
//! - `linear_filter`: the filter job alone, one linear pipeline;
//! - `linear_copy`: the copy job alone, one linear pipeline;
//! - `tee`: both jobs in one run reading the file once: `let [a, b] =
//!   Pipeline::from(csv::read(..)).tee();`, `a` filtering to CSV, `b` copying
//!   to JSON Lines, run with `a.to(..).and(b.to(..)).run()`. Both branches
//!   share each batch: `b`'s sink only reads it, `a`'s filter runs on the
//!   shared records and copies only those it keeps;
//! - `tee_discard_copy`: `tee` with the copy branch ending in `sink::discard()`:
//!   what the fan-out itself costs (its driver task, the copies, the
//!   hand-offs) over `linear_filter`.
//!
//! They run in interleaved rounds (5 by default, `DATAFLARE_BENCH_ROUNDS` to
//! change); each variant's median wall time, CPU (user + system of the child,
//! all threads), records out (summed over its sinks, `discard` included) and
//! peak RSS are reported, then the ratio `tee / (linear_filter +
//! linear_copy)` of median wall times (target <= 0.75) and the same ratio
//! round by round, with its min and max. `cpu busy elsewhere` is the CPU time
//! the rest of the machine spent meanwhile (from `/proc/stat`): on a machine
//! shared with other work, rounds where it is high are not to be trusted.
//!
//! Every round checks that `tee` wrote byte for byte what the two linear runs
//! wrote (and `tee_discard_copy` what `linear_filter` wrote), and fails
//! otherwise.
//!
//! Run with `cargo bench --bench tee` (release build). Set `DATAFLARE_BENCH_MB`
//! to change the input's size (100 by default).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use common::{Measured, Order, OwnedTotal, keep_order, total};
use dataflare::prelude::*;
use dataflare::{csv, jsonl};

mod common;

const VARIANTS: [&str; 4] = ["linear_filter", "linear_copy", "tee", "tee_discard_copy"];

/// The filter job, alone.
async fn linear_filter(input: &Path, filtered: &Path) -> u64 {
    Pipeline::from(csv::read::<Order>(input))
        .filter(keep_order)
        .map(total)
        .to(csv::write::<OwnedTotal>(filtered))
        .run()
        .await
        .unwrap()
        .records_out()
}

/// The copy job, alone.
async fn linear_copy(input: &Path, copied: &Path) -> u64 {
    Pipeline::from(csv::read::<Order>(input))
        .to(jsonl::write::<Order>(copied))
        .run()
        .await
        .unwrap()
        .records_out()
}

/// Both jobs from one read; the copy discarded if `copied` is `None`.
/// Returns the records written by both sinks.
async fn tee(input: &Path, filtered: &Path, copied: Option<&Path>) -> u64 {
    let [a, b] = Pipeline::from(csv::read::<Order>(input)).tee();
    let a = a
        .filter(keep_order)
        .map(total)
        .to(csv::write::<OwnedTotal>(filtered));
    let report = match copied {
        Some(copied) => a.and(b.to(jsonl::write::<Order>(copied))).run().await,
        None => a.and(b.to(sink::discard())).run().await,
    };
    report.unwrap().records_out()
}

/// The files a variant writes: the filtered CSV and/or the copied JSON Lines.
fn outputs(dir: &Path, variant: &str) -> Vec<PathBuf> {
    let csv = dir.join(format!("tee-out-{variant}.csv"));
    let jsonl = dir.join(format!("tee-out-{variant}.jsonl"));
    match variant {
        "linear_filter" | "tee_discard_copy" => vec![csv],
        "linear_copy" => vec![jsonl],
        "tee" => vec![csv, jsonl],
        other => panic!("unknown variant {other}"),
    }
}

/// Child process: run one variant.
fn child(rt: &tokio::runtime::Runtime, variant: &str, input: &Path, outputs: &[PathBuf]) -> u64 {
    rt.block_on(async {
        match variant {
            "linear_filter" => linear_filter(input, &outputs[0]).await,
            "linear_copy" => linear_copy(input, &outputs[0]).await,
            "tee" => tee(input, &outputs[0], Some(&outputs[1])).await,
            "tee_discard_copy" => tee(input, &outputs[0], None).await,
            other => panic!("unknown variant {other}"),
        }
    })
}

/// Fills `buf` from `r` as far as it goes; the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Panics, naming both files and the first byte that differs, unless `a` and
/// `b` hold the same bytes.
fn assert_same_bytes(a: &Path, b: &Path) {
    let (len_a, len_b) = (
        std::fs::metadata(a).unwrap().len(),
        std::fs::metadata(b).unwrap().len(),
    );
    assert_eq!(
        len_a,
        len_b,
        "{} and {} differ in length",
        a.display(),
        b.display()
    );
    let (mut ra, mut rb) = (
        BufReader::new(File::open(a).unwrap()),
        BufReader::new(File::open(b).unwrap()),
    );
    let (mut ba, mut bb) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let (na, nb) = (fill(&mut ra, &mut ba), fill(&mut rb, &mut bb));
        if let Some(i) = (0..na.min(nb)).find(|&i| ba[i] != bb[i]) {
            panic!(
                "{} and {} differ at byte {}",
                a.display(),
                b.display(),
                offset + i as u64
            );
        }
        assert_eq!(
            na,
            nb,
            "{} and {} differ in length",
            a.display(),
            b.display()
        );
        if na == 0 {
            return;
        }
        offset += na as u64;
    }
}

/// After a round: the tee runs wrote what the linear runs wrote. Then the
/// round's outputs are removed.
fn check_round(dir: &Path, round: usize) {
    let tee = outputs(dir, "tee");
    assert_same_bytes(&tee[0], &outputs(dir, "linear_filter")[0]);
    assert_same_bytes(&tee[1], &outputs(dir, "linear_copy")[0]);
    assert_same_bytes(
        &outputs(dir, "tee_discard_copy")[0],
        &outputs(dir, "linear_filter")[0],
    );
    for v in VARIANTS {
        for output in outputs(dir, v) {
            std::fs::remove_file(output).unwrap();
        }
    }
    println!("  round {}: outputs identical", round + 1);
}

fn main() {
    if common::child_or_list(child) {
        return;
    }
    let common::Setup {
        dir,
        input,
        size_mb,
        ..
    } = common::setup();
    let rounds: usize = std::env::var("DATAFLARE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);

    let runs = common::interleaved(
        &VARIANTS,
        rounds,
        |v| common::measure(v, &input, &outputs(&dir, v)),
        |round| check_round(&dir, round),
    );
    let runs_of = |name: &str| &runs[VARIANTS.iter().position(|v| *v == name).unwrap()];

    // Each run wrote as many records as the others of its variant, and the
    // tee's two sinks as many as the two linear runs.
    for (v, runs) in VARIANTS.iter().zip(&runs) {
        assert!(
            runs.iter().all(|r| r.records == runs[0].records),
            "{v}: runs wrote different numbers of records"
        );
    }
    let records = |name: &str| runs_of(name)[0].records;
    assert_eq!(
        records("tee"),
        records("linear_filter") + records("linear_copy"),
        "tee wrote other than the two linear runs together"
    );

    println!("per round (wall s):");
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let secs = |name: &str| runs_of(name)[round].secs;
        let ratio = secs("tee") / (secs("linear_filter") + secs("linear_copy"));
        ratios.push(ratio);
        let elsewhere: f64 = runs
            .iter()
            .map(|r| r[round].machine_cpu_secs - r[round].cpu_secs)
            .sum();
        println!(
            "  round {}: linear_filter {:.3}  linear_copy {:.3}  tee {:.3}  tee_discard_copy {:.3}  tee / (filter + copy) = {ratio:.3}  (cpu busy elsewhere {elsewhere:.2} s)",
            round + 1,
            secs("linear_filter"),
            secs("linear_copy"),
            secs("tee"),
            secs("tee_discard_copy"),
        );
    }

    println!("medians:");
    let medians: Vec<(&str, Measured)> = VARIANTS
        .iter()
        .zip(&runs)
        .map(|(v, runs)| (*v, common::median(runs.clone(), |r| r.secs)))
        .collect();
    for (v, r) in &medians {
        println!(
            "{v:>18}: {:>7.3} s  {:>7.1} MB/s  cpu {:>6.2} s (cpu/wall {:.2})  {:>9} records out  peak RSS {:>6.1} MB  (cpu busy elsewhere {:.2} s)",
            r.secs,
            size_mb / r.secs,
            r.cpu_secs,
            r.cpu_secs / r.secs,
            r.records,
            r.rss_mb,
            r.machine_cpu_secs - r.cpu_secs,
        );
    }
    let median = |name: &str| medians.iter().find(|(v, _)| *v == name).unwrap().1;
    let (filter, copy, tee, discard) = (
        median("linear_filter"),
        median("linear_copy"),
        median("tee"),
        median("tee_discard_copy"),
    );
    println!("ratios:");
    println!(
        "  tee / (linear_filter + linear_copy), median wall = {:.3}  (target <= 0.75)",
        tee.secs / (filter.secs + copy.secs)
    );
    let (min, max) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "  per round: {}  (min {min:.3}, max {max:.3})",
        listed.join(" ")
    );
    println!(
        "  tee / (linear_filter + linear_copy), median cpu  = {:.3}",
        tee.cpu_secs / (filter.cpu_secs + copy.cpu_secs)
    );
    println!(
        "  tee_discard_copy - linear_filter: {:+.3} s wall, {:+.2} s cpu (the fan-out: driver, copies, hand-offs)",
        discard.secs - filter.secs,
        discard.cpu_secs - filter.cpu_secs
    );
}
