//! What watching a run costs: the CSV filter → total → CSV job of
//! `benches/csv.rs` (its `typed` variant) on the ~100 MB orders file, run
//!
//! - `plain`: with `run()`, nothing watching;
//! - `observed`: with `spawn()`, a task reading every progress snapshot
//!   (published every 100 ms), a tracing subscriber taking spans and events at
//!   info, and the `metrics` feature's exporter with a recorder installed;
//!
//! each in a child process of its own, in interleaved rounds (20 by default,
//! `DATAFLARE_BENCH_ROUNDS`), compared by CPU time (user + system): the target
//! is at most 3% more. Both write the same bytes (checked each round).
//!
//! Run with `cargo bench --bench observe --features metrics`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Order, OwnedTotal, keep_order, total};
use dataflare::csv;
use dataflare::prelude::*;

mod common;

const VARIANTS: [&str; 2] = ["plain", "observed"];

/// A subscriber that takes spans and events at info and above, as a
/// logging subscriber would (without formatting them).
struct AtInfo;

impl tracing::Subscriber for AtInfo {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn job(
    input: &Path,
    output: &Path,
) -> dataflare::Runnable<
    impl Source<Record = OwnedTotal>,
    impl futures::Sink<Batch<OwnedTotal>, Error = Error> + Send + 'static,
> {
    Pipeline::from(csv::read::<Order>(input))
        .filter(keep_order)
        .map(total)
        .to(csv::write::<OwnedTotal>(output))
}

fn child(rt: &tokio::runtime::Runtime, variant: &str, input: &Path, outputs: &[PathBuf]) -> u64 {
    match variant {
        "plain" => rt
            .block_on(job(input, &outputs[0]).run())
            .unwrap()
            .records_out(),
        "observed" => {
            tracing::subscriber::set_global_default(AtInfo).unwrap();
            #[cfg(feature = "metrics")]
            metrics_util::debugging::DebuggingRecorder::new()
                .install()
                .unwrap();
            rt.block_on(async {
                let run = dataflare::Graph::from(job(input, &outputs[0]))
                    .progress_every(Duration::from_millis(100))
                    .spawn();
                let mut progress = run.progress();
                let watcher = tokio::spawn(async move {
                    let mut seen = 0u64;
                    while progress.changed().await.is_ok() {
                        seen += progress.borrow().records_read;
                    }
                    seen
                });
                let report = run.await;
                let _ = watcher.await;
                report.records_out()
            })
        }
        other => panic!("unknown variant {other}"),
    }
}

fn main() {
    if common::child_or_list(child) {
        return;
    }
    let common::Setup { dir, input, .. } = common::setup();
    let rounds: usize = std::env::var("DATAFLARE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let out = |v: &str| vec![dir.join(format!("observe-{v}.csv"))];
    let runs = common::interleaved(
        &VARIANTS,
        rounds,
        |v| common::measure(v, &input, &out(v)),
        |round| {
            let a = std::fs::read(&out("plain")[0]).unwrap();
            let b = std::fs::read(&out("observed")[0]).unwrap();
            assert!(a == b, "round {}: outputs differ", round + 1);
        },
    );
    let mut ratios: Vec<f64> = runs[1]
        .iter()
        .zip(&runs[0])
        .map(|(o, p)| o.cpu_secs / p.cpu_secs)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let cpu = |v: usize| {
        let mut c: Vec<f64> = runs[v].iter().map(|m| m.cpu_secs).collect();
        c.sort_by(f64::total_cmp);
        c[c.len() / 2]
    };
    println!(
        "cpu median: plain {:.3} s, observed {:.3} s; observed / plain = {:.3} (median of {rounds} paired rounds, {:.3}..{:.3}; target <= 1.03)",
        cpu(0),
        cpu(1),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}
