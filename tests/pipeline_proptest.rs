//! Random chains of adapters over random data: a pipeline gives the same records,
//! in the same order, as the same chain applied to a plain `Vec`.

mod support;

use support::runtime;

use dataflare::prelude::*;
use futures::stream::BoxStream;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Adds k to each record.
    Map(u64),
    /// Keeps the records with `x % m != 0`.
    Filter(u64),
    /// Repeats each record n times (0 drops it).
    FlatMap(usize),
    Rebatch(usize),
    Take(u64),
    Buffer(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..100u64).prop_map(Op::Map),
        (1..6u64).prop_map(Op::Filter),
        (0..3usize).prop_map(Op::FlatMap),
        (1..16usize).prop_map(Op::Rebatch),
        (0..120u64).prop_map(Op::Take),
        (1..4usize).prop_map(Op::Buffer),
    ]
}

/// The reference: the chain applied to a `Vec`.
fn expected(mut records: Vec<u64>, ops: &[Op]) -> Vec<u64> {
    for op in ops {
        records = match *op {
            Op::Map(k) => records.into_iter().map(|x| x.wrapping_add(k)).collect(),
            Op::Filter(m) => records.into_iter().filter(|x| x % m != 0).collect(),
            Op::FlatMap(n) => records
                .into_iter()
                .flat_map(|x| std::iter::repeat_n(x, n))
                .collect(),
            Op::Rebatch(_) | Op::Buffer(_) => records,
            Op::Take(n) => records.into_iter().take(n as usize).collect(),
        };
    }
    records
}

type Boxed = Pipeline<BoxStream<'static, Result<Batch<u64>>>>;

fn add(pipeline: Boxed, op: &Op) -> Boxed {
    match *op {
        Op::Map(k) => pipeline.map(move |x| x.wrapping_add(k)).boxed(),
        Op::Filter(m) => pipeline.filter(move |x| x % m != 0).boxed(),
        Op::FlatMap(n) => pipeline
            .flat_map(move |x| std::iter::repeat_n(x, n))
            .boxed(),
        Op::Rebatch(n) => pipeline.rebatch(n).boxed(),
        Op::Take(n) => pipeline.take(n).boxed(),
        Op::Buffer(n) => pipeline.buffer(n).boxed(),
    }
}

proptest! {
    #[test]
    fn a_pipeline_matches_the_same_chain_over_a_vec(
        records in proptest::collection::vec(0..1_000u64, 0..200),
        batch_size in 1..20usize,
        ops in proptest::collection::vec(op(), 0..8),
    ) {
        let want = expected(records.clone(), &ops);
        let out = Collected::new();
        let pipeline = Pipeline::from(source::iter(records.clone()).batch_size(batch_size)).boxed();
        let pipeline = ops.iter().fold(pipeline, add);
        let report = runtime()
            .block_on(pipeline.to(sink::collect(&out)).run())
            .unwrap();

        prop_assert_eq!(out.to_vec(), want.clone());
        prop_assert!(out.is_closed());
        prop_assert!(report.is_completed());
        prop_assert_eq!(report.records_out(), want.len() as u64);
        prop_assert_eq!(report.stages().len(), ops.len() + 2);
        let has_take = ops.iter().any(|op| matches!(op, Op::Take(_)));
        if !has_take {
            // The whole source was read...
            prop_assert_eq!(report.records_in(), records.len() as u64);
        }
        for pair in report.stages().windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            // ...and every stage received what the one before passed on. A take
            // may leave batches in a buffer's channel, never more received than sent.
            if has_take {
                prop_assert!(from.records_out >= to.records_in, "{} -> {}", from.name, to.name);
            } else {
                prop_assert_eq!(from.records_out, to.records_in, "{} -> {}", &from.name, &to.name);
            }
        }
        // A final rebatch(n) leaves full batches but for the last.
        if let Some(Op::Rebatch(n)) = ops.last() {
            let sink = report.stage("sink").unwrap();
            prop_assert_eq!(sink.batches_in, (want.len() as u64).div_ceil(*n as u64));
        }
    }
}
