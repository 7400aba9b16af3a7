//! The byte budget doing its job: peak memory of a tee whose second branch is
//! slow, with and without `max_in_flight_bytes`.
//!
//! Records of 256 KiB are made as they are read (an in-memory source, 16 to
//! a batch: 4 MiB batches), then `tee`d: one branch counts them and drops
//! them; the other goes through a `buffer(64)` into a sink that is slow (it
//! checksums every byte of every record eight times). Without a budget the
//! buffer fills: 64 batches, 256 MiB, wait in it. With a budget of 64 MiB
//! the source waits instead.
//!
//! Variants, each a child process of its own (2 tokio workers), peak RSS from
//! `VmHWM`:
//!
//! - `none_1g`: 1 GiB of records, no budget;
//! - `budget_1g`: 1 GiB, `max_in_flight_bytes(64 MiB)`;
//! - `budget_100m`, `budget_3g`: 100 MiB and 3 GiB, the same budget: their
//!   peaks should match `budget_1g`'s (within 1.2×): memory set by the
//!   budget, not the input.
//!
//! Every variant runs twice (once with `--features bench-jemalloc`, under
//! jemalloc): with glibc's malloc as it comes, and with
//! `MALLOC_MMAP_THRESHOLD_=131072`. By default glibc raises its mmap
//! threshold after the first large free, so the 256 KiB records freed by
//! the sink's thread go back to per-thread arenas that keep them: the
//! process holds more than the budget has in flight. A fixed threshold
//! returns them to the system at once: what is left is the budget's
//! memory.
//!
//! The report lists each variant's median wall time, peak RSS and the peak
//! of the in-flight gauge. Run with `cargo bench --bench budget`;
//! `DATAFLARE_BENCH_ROUNDS` sets the rounds (3).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dataflare::prelude::*;

mod common;

const RECORD: usize = 256 << 10;
const BUDGET: usize = 64 << 20;

fn records(total: usize) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
    (0..total / RECORD).map(|i| vec![(i % 251) as u8; RECORD])
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    for round in 0..8u64 {
        for &b in bytes {
            sum = sum.wrapping_mul(31).wrapping_add(u64::from(b) ^ round);
        }
    }
    sum
}

/// Runs one variant in this (child) process; returns the records the slow
/// branch saw, and prints the gauge's peak on stderr.
fn job(rt: &tokio::runtime::Runtime, variant: &str) -> u64 {
    // `none_1g`, `budget_100m`...: no budget or 64 MiB, and the input's size.
    let (kind, size) = variant.split_once('_').expect("KIND_SIZE");
    let total: usize = match size.split_at(size.len() - 1) {
        (n, "g") => n.parse::<usize>().unwrap() << 30,
        (n, "m") => n.parse::<usize>().unwrap() << 20,
        _ => panic!("unknown size {size}"),
    };
    let budget = match kind {
        "none" => None,
        "budget" => Some(BUDGET),
        other => panic!("unknown variant {other}"),
    };
    rt.block_on(async move {
        let slow_seen = Arc::new(AtomicU64::new(0));
        let seen = slow_seen.clone();
        let sums = Arc::new(AtomicU64::new(0));
        let sink_sums = sums.clone();
        let [fast, slow] =
            Pipeline::from(source::iter(records(total)).batch_size(16).estimate_heap()).tee();
        let graph = fast
            .to(sink::discard())
            .and(
                slow.buffer(64)
                    .to(sink::for_each(move |batch: Batch<Vec<u8>>| {
                        let sum = batch.iter().map(|r| checksum(r)).fold(0, u64::wrapping_add);
                        sink_sums.fetch_add(sum, Ordering::Relaxed);
                        seen.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        Ok(())
                    })),
            );
        let graph = match budget {
            Some(b) => graph.max_in_flight_bytes(b),
            None => graph,
        };
        let report = graph.run().await.unwrap();
        let peak = report.in_flight().map_or(0, |f| f.peak_bytes);
        eprintln!("gauge_peak {peak}");
        std::hint::black_box(sums.load(Ordering::Relaxed));
        slow_seen.load(Ordering::Relaxed)
    })
}

fn main() {
    if common::child_or_list(|rt, variant, _input: &Path, _outputs: &[PathBuf]| job(rt, variant)) {
        return;
    }
    let rounds: usize = std::env::var("DATAFLARE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let variants = ["none_1g", "budget_1g", "budget_100m", "budget_3g"];
    let none = Path::new("/dev/null");
    // With `--features bench-jemalloc` the children allocate with jemalloc,
    // which has no glibc setting to vary: one pass.
    let allocators: &[&str] = if cfg!(feature = "bench-jemalloc") {
        &["jemalloc (--features bench-jemalloc), default settings"]
    } else {
        &[
            "glibc malloc, default settings",
            "glibc malloc, MALLOC_MMAP_THRESHOLD_=131072",
        ]
    };
    for &allocator in allocators {
        if allocator.contains("MMAP") {
            // SAFETY: the bench's main thread, before it starts any other
            // thread: nothing reads the environment concurrently. The
            // children inherit it; this process's allocator has read it
            // already and is unaffected.
            unsafe { std::env::set_var("MALLOC_MMAP_THRESHOLD_", "131072") };
        }
        println!("\n== {allocator}");
        let runs = common::interleaved(
            &variants,
            rounds,
            |v| common::measure(v, none, &[]),
            |round| println!("round {} done", round + 1),
        );
        println!(
            "{:<12} {:>9} {:>11} {:>9}",
            "variant", "wall s", "peak RSS MB", "records"
        );
        let mut rss = Vec::new();
        for (v, runs) in variants.iter().zip(runs) {
            let worst_rss = runs.iter().map(|m| m.rss_mb).fold(0.0, f64::max);
            let m = common::median(runs, |m| m.secs);
            println!(
                "{v:<12} {:>9.3} {:>11.1} {:>9}",
                m.secs, worst_rss, m.records
            );
            rss.push(worst_rss);
        }
        println!(
            "budget {} MiB: peak RSS 1 GiB / 100 MiB input = {:.2}x, 3 GiB / 1 GiB = {:.2}x \
             (target <= 1.2); without the budget 1 GiB peaks at {:.0} MB, with it {:.0} MB",
            BUDGET >> 20,
            rss[1] / rss[2],
            rss[3] / rss[1],
            rss[0],
            rss[1]
        );
    }
}
