//! Keyed aggregation against a hand-written loop, and the memory of a large
//! group-by against its estimate.
//!
//! On the ~100 MB orders CSV of `benches/csv.rs` (generated, not committed,
//! under `target/bench-data/`), per category: the number of orders, the
//! revenue (sum of amount × qty), the mean amount and the number of distinct
//! users; one row per category, sorted, written as CSV. Variants, each in a
//! child process of its own (2 tokio workers):
//!
//! - `loop`: one thread, the `csv` crate, one reused `ByteRecord`, fields
//!   parsed by hand, a `HashMap` of accumulators;
//! - `typed`: a DataFlare pipeline: `csv::read::<Sale>` (the four columns the
//!   job uses, as the loop parses only those) → `key_by(by_ref(category))` →
//!   `aggregate((count, sum, sum, count_distinct_ref))` → `csv::write` (keys
//!   and users looked up by reference, as the loop does);
//!
//! in interleaved rounds (5 by default, `DATAFLARE_BENCH_ROUNDS`); each
//! round checks that both wrote the same bytes. Then `keys_1m`: a group-by
//! over 1 M distinct keys (count and sum per id), whose peak RSS is printed
//! next to the `state_bytes` the stage estimated.
//!
//! Run with `cargo bench --bench aggregate` (release build);
//! `DATAFLARE_BENCH_MB` sets the input's size (100 by default).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Measured, Order};
use dataflare::prelude::*;
use dataflare::state::{agg, by_ref};
use serde::Serialize;

mod common;

const VARIANTS: [&str; 2] = ["loop", "typed"];

#[derive(Debug, Serialize, PartialEq)]
struct Row {
    category: String,
    orders: u64,
    revenue: String,
    mean_amount: String,
    users: u64,
}

fn row(category: String, orders: u64, revenue: f64, amount_sum: f64, users: u64) -> Row {
    Row {
        category,
        orders,
        revenue: format!("{revenue:.2}"),
        mean_amount: format!("{:.2}", amount_sum / orders as f64),
        users,
    }
}

fn write_rows(path: &Path, mut rows: Vec<Row>) -> u64 {
    rows.sort_by(|a, b| a.category.cmp(&b.category));
    let mut w = ::csv::Writer::from_path(path).unwrap();
    for r in &rows {
        w.serialize(r).unwrap();
    }
    w.flush().unwrap();
    rows.len() as u64
}

/// One thread, a reused `ByteRecord`, a `HashMap` of accumulators.
fn hand_loop(input: &Path, output: &Path) -> u64 {
    #[derive(Default)]
    struct Acc {
        orders: u64,
        revenue: f64,
        amount: f64,
        users: HashSet<String>,
    }
    let mut reader = ::csv::Reader::from_path(input).unwrap();
    let mut record = ::csv::ByteRecord::new();
    let mut groups: HashMap<String, Acc> = HashMap::new();
    while reader.read_byte_record(&mut record).unwrap() {
        let category = std::str::from_utf8(&record[3]).unwrap();
        let amount: f64 = std::str::from_utf8(&record[4]).unwrap().parse().unwrap();
        let qty: u32 = std::str::from_utf8(&record[5]).unwrap().parse().unwrap();
        let user = std::str::from_utf8(&record[2]).unwrap();
        let acc = match groups.get_mut(category) {
            Some(acc) => acc,
            None => groups.entry(category.to_string()).or_default(),
        };
        acc.orders += 1;
        acc.revenue += amount * f64::from(qty);
        acc.amount += amount;
        if !acc.users.contains(user) {
            acc.users.insert(user.to_string());
        }
    }
    let rows = groups
        .into_iter()
        .map(|(c, a)| row(c, a.orders, a.revenue, a.amount, a.users.len() as u64))
        .collect();
    write_rows(output, rows)
}

/// The columns the job reads: like the loop, which parses only these, the
/// pipeline decodes only these (the others are skipped by name).
#[derive(Debug, serde::Deserialize)]
struct Sale {
    user: String,
    category: String,
    amount: f64,
    qty: u32,
}

/// The same job as a DataFlare pipeline.
async fn typed(input: &Path, output: &Path) -> u64 {
    let sink = dataflare::csv::write::<Row>(output);
    let report = Pipeline::from(dataflare::csv::read::<Sale>(input))
        .key_by(by_ref(|o: &Sale| o.category.as_str()))
        .aggregate((
            agg::count(),
            agg::sum(|o: &Sale| o.amount * f64::from(o.qty)),
            agg::sum(|o: &Sale| o.amount),
            agg::count_distinct_ref(|o: &Sale| o.user.as_str()),
        ))
        .map(|(category, (orders, revenue, amount, users))| {
            row(category, orders, revenue, amount, users)
        })
        .map_batch(|mut rows| {
            rows.sort_by(|a: &Row, b: &Row| a.category.cmp(&b.category));
            rows
        })
        .to(sink)
        .run()
        .await
        .unwrap();
    report.records_out()
}

/// A group-by over 1 M keys; writes the stage's `state_bytes` to `output`.
async fn keys_1m(input: &Path, output: &Path) -> u64 {
    let report = Pipeline::from(dataflare::csv::read::<Order>(input))
        .key_by(|o: &Order| o.id % 1_000_000)
        .aggregate((agg::count(), agg::sum(|o: &Order| o.amount)))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let stage = report.stage("aggregate#1").unwrap();
    std::fs::write(
        output,
        format!(
            "{} {} {}",
            stage.absorbed, stage.peak_state_keys, stage.peak_state_bytes
        ),
    )
    .unwrap();
    report.records_out()
}

fn child(rt: &tokio::runtime::Runtime, variant: &str, input: &Path, outputs: &[PathBuf]) -> u64 {
    match variant {
        "loop" => hand_loop(input, &outputs[0]),
        "typed" => rt.block_on(typed(input, &outputs[0])),
        "keys_1m" => rt.block_on(keys_1m(input, &outputs[0])),
        other => panic!("unknown variant {other}"),
    }
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
    let out = |v: &str| vec![dir.join(format!("aggregate-{v}.csv"))];
    let runs = common::interleaved(
        &VARIANTS,
        rounds,
        |v| common::measure(v, &input, &out(v)),
        |round| {
            let a = std::fs::read(&out("loop")[0]).unwrap();
            let b = std::fs::read(&out("typed")[0]).unwrap();
            assert!(
                a == b,
                "round {}: the pipeline's rows differ from the loop's",
                round + 1
            );
            println!("  round {}: outputs identical", round + 1);
        },
    );
    println!("per round (wall s):");
    let mut ratios = Vec::new();
    for (round, (l, t)) in runs[0].iter().zip(&runs[1]).enumerate() {
        let (l, t) = (l.secs, t.secs);
        ratios.push(l / t);
        println!(
            "  round {}: loop {l:.3}  typed {t:.3}  loop / typed = {:.3}",
            round + 1,
            l / t
        );
    }
    let medians: Vec<Measured> = runs
        .iter()
        .map(|r| common::median(r.clone(), |m| m.secs))
        .collect();
    for (v, m) in VARIANTS.iter().zip(&medians) {
        println!(
            "{v:>8}: {:>7.3} s  {:>7.1} MB/s  cpu {:>6.2} s (cpu/wall {:.2})  peak RSS {:>6.1} MB",
            m.secs,
            size_mb / m.secs,
            m.cpu_secs,
            m.cpu_secs / m.secs,
            m.rss_mb
        );
    }
    let (min, max) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    println!(
        "throughput typed / loop, median wall = {:.3}  (target >= 1.0; per round {min:.3}..{max:.3})",
        medians[0].secs / medians[1].secs
    );

    let state = dir.join("aggregate-keys_1m.txt");
    let m = common::measure("keys_1m", &input, std::slice::from_ref(&state));
    let text = std::fs::read_to_string(&state).unwrap();
    let mut parts = text.split_whitespace();
    let absorbed: u64 = parts.next().unwrap().parse().unwrap();
    let keys: u64 = parts.next().unwrap().parse().unwrap();
    let state_bytes: u64 = parts.next().unwrap().parse().unwrap();
    println!(
        "keys_1m: {absorbed} records into {keys} keys in {:.3} s; peak RSS {:.1} MB, peak estimated state {:.1} MB",
        m.secs,
        m.rss_mb,
        state_bytes as f64 / 1e6
    );
    let _ = std::io::stdout().flush();
}
