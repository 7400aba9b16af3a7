//! Throughput of the core pipeline against a plain `Iterator` doing the same work.
//!
//! 10 million `u64` records, batches of 1,024: map (`x * 3 ^ 0x5555`), filter
//! (`x % 3 != 0`), discard.
//! - `iterator`: the same map and filter over `0..N`, counted;
//! - `iterator_batched`: the same by hand, 1,024 records at a time in a `Vec`,
//!   in one pass: the ceiling for any pipeline that materialises batches;
//! - `fused`: source, map, filter and sink in one task;
//! - `buffered_x2`: `map, buffer(8), filter, buffer(8)`: three tasks.
//!
//! Every map output goes through `black_box` on both sides, so neither can skip
//! or vectorise the work away. After criterion's report, a summary times each
//! variant again (median of a few runs) and prints the ratios: fused against the
//! iterator, and the cost of one buffer boundary per batch, on the 2-worker
//! runtime and on a single thread (where parallelism cannot hide it).
//!
//! Run with `cargo bench --bench pipeline`; `--only fused [TIMES]` (or
//! `fused_mt`, `iterator`, `iterator_batched`) runs one variant alone, once
//! or `TIMES` times, for whole-process comparisons.

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dataflare::prelude::*;
use tokio::runtime::Runtime;

const N: u64 = 10_000_000;
const BATCH: usize = 1024;
const BUFFER: usize = 8;

fn work(x: u64) -> u64 {
    black_box(x.wrapping_mul(3) ^ 0x5555)
}

fn keep(x: &u64) -> bool {
    !x.is_multiple_of(3)
}

fn iterator() -> u64 {
    (0..N).map(work).filter(keep).count() as u64
}

/// The iterator chain done the pipeline's way, by hand: a `Vec` of 1,024 records
/// at a time, mapped and filtered in one pass (`into_iter().map().filter().collect()`,
/// which std collects in place), counted and dropped. It is the best a pipeline
/// that hands batches from stage to stage can do: the gap between this and
/// `fused` is the pipeline's own overhead; the gap between this and `iterator`
/// is the price of materialising batches (writing each kept record back, with a
/// branch per record where `filter().count()` adds a 0 or a 1).
fn iterator_batched() -> u64 {
    let mut source = 0..N;
    let mut count = 0;
    loop {
        let mut batch: Vec<u64> = Vec::with_capacity(BATCH);
        batch.extend(source.by_ref().take(BATCH));
        if batch.is_empty() {
            return count;
        }
        let batch: Vec<u64> = batch.into_iter().map(work).filter(keep).collect();
        count += batch.len() as u64;
    }
}

async fn fused() -> u64 {
    let sink = sink::discard();
    let count = sink.counter();
    Pipeline::from(source::iter(0..N).batch_size(BATCH))
        .map(work)
        .filter(keep)
        .to(sink)
        .run()
        .await
        .expect("the fused pipeline failed");
    count.load(Relaxed)
}

async fn buffered() -> u64 {
    let sink = sink::discard();
    let count = sink.counter();
    Pipeline::from(source::iter(0..N).batch_size(BATCH))
        .map(work)
        .buffer(BUFFER)
        .filter(keep)
        .buffer(BUFFER)
        .to(sink)
        .run()
        .await
        .expect("the buffered pipeline failed");
    count.load(Relaxed)
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn bench(c: &mut Criterion, rt: &Runtime) {
    let expected = iterator();
    assert_eq!(iterator_batched(), expected);
    assert_eq!(rt.block_on(fused()), expected);
    assert_eq!(rt.block_on(buffered()), expected);

    let mut group = c.benchmark_group("pipeline_10M_u64");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(6));
    group.bench_function("iterator", |b| b.iter(|| black_box(iterator())));
    group.bench_function("iterator_batched", |b| {
        b.iter(|| black_box(iterator_batched()))
    });
    group.bench_function("fused", |b| {
        b.to_async(rt).iter(|| async { black_box(fused().await) })
    });
    group.bench_function("buffered_x2", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(buffered().await) })
    });
    group.finish();
}

/// The time of one call of `f`.
fn time(f: impl FnOnce() -> u64) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}

/// Times the variants again and prints the ratios criterion does not compute.
///
/// The variants take turns, round after round, and each keeps its best time:
/// on a shared 2-core machine, load that comes and goes then weighs on all of
/// them alike, and the best of many runs is the least disturbed one.
fn summary(rt: &Runtime) {
    const ROUNDS: usize = 21;
    let single = current_thread();
    let batches = N.div_ceil(BATCH as u64) as f64;
    let mut best = [Duration::MAX; 6];
    for _ in 0..ROUNDS {
        let times = [
            time(iterator),
            time(iterator_batched),
            time(|| rt.block_on(fused())),
            time(|| rt.block_on(buffered())),
            time(|| single.block_on(fused())),
            time(|| single.block_on(buffered())),
        ];
        for (best, t) in best.iter_mut().zip(times) {
            *best = (*best).min(t);
        }
    }
    let [iter, batched, fused_mt, buffered_mt, fused_st, buffered_st] = best;
    let rate = |t: Duration| N as f64 / t.as_secs_f64() / 1e6;
    let ratio = |base: Duration, t: Duration| base.as_secs_f64() / t.as_secs_f64();
    println!();
    println!("summary (best of {ROUNDS} rounds, {N} records, {batches} batches of {BATCH}):");
    println!(
        "  iterator            {iter:>10.2?}  {:>7.1} M records/s",
        rate(iter)
    );
    println!(
        "  iterator_batched    {batched:>10.2?}  {:>7.1} M records/s  ({:.2}x iterator)",
        rate(batched),
        ratio(iter, batched)
    );
    for (name, fused, buffered) in [
        ("2 workers", fused_mt, buffered_mt),
        ("1 thread", fused_st, buffered_st),
    ] {
        let boundary_us = (buffered.as_secs_f64() - fused.as_secs_f64()) / 2.0 / batches * 1e6;
        println!("  {name}:");
        println!(
            "    fused             {fused:>10.2?}  {:>7.1} M records/s",
            rate(fused)
        );
        println!(
            "    buffered_x2       {buffered:>10.2?}  {:>7.1} M records/s",
            rate(buffered)
        );
        println!(
            "    fused / iterator throughput: {:.2}x",
            ratio(iter, fused)
        );
        println!(
            "    fused / iterator_batched throughput: {:.2}x",
            ratio(batched, fused)
        );
        println!("    per buffer boundary: {boundary_us:+.3} µs per batch of {BATCH}");
    }
}

fn main() {
    // `--only VARIANT`: that variant once, nothing else (for `valgrind
    // --tool=callgrind` or `farm-bench --vs`, whole-process comparisons).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let times: usize = args.get(i + 2).map_or(1, |n| n.parse().expect("a count"));
        let (single, multi) = (current_thread(), multi_thread());
        let mut n = 0;
        for _ in 0..times {
            n += match args[i + 1].as_str() {
                "iterator" => iterator(),
                "iterator_batched" => iterator_batched(),
                "fused" => single.block_on(fused()),
                "fused_mt" => multi.block_on(fused()),
                other => panic!("no variant {other}"),
            };
        }
        println!("{n}");
        return;
    }
    let rt = multi_thread();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &rt);
    criterion.final_summary();
    // Only under `cargo bench` (criterion's --bench flag), not `cargo test --benches`.
    if std::env::args().any(|arg| arg == "--bench") {
        summary(&rt);
    }
}
