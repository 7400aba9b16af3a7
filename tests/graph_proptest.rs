//! Random graph shapes over random data: a fan-out (tee, partition or route),
//! random chains on each branch, perhaps a diamond (two branches merged back),
//! perhaps a stage that fails. Each sink gets what the same shape gives over a
//! plain `Vec`; every stage balances, on failed runs too; nothing is lost
//! between stages.

mod support;

use support::runtime;

use dataflare::prelude::*;
use futures::stream::BoxStream;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Map(u64),
    Filter(u64),
    Take(u64),
    Rebatch(usize),
    Buffer(usize),
    /// Fails the run on this value (a panic in a map).
    FailAt(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..100u64).prop_map(Op::Map),
        4 => (1..6u64).prop_map(Op::Filter),
        1 => (0..150u64).prop_map(Op::Take),
        2 => (1..16usize).prop_map(Op::Rebatch),
        3 => (1..4usize).prop_map(Op::Buffer),
        1 => (0..1_000u64).prop_map(Op::FailAt),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Split {
    Tee,
    Partition,
    Route,
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![Just(Split::Tee), Just(Split::Partition), Just(Split::Route)]
}

type Boxed = Pipeline<BoxStream<'static, Result<Batch<u64>>>>;

fn add(pipeline: Boxed, op: &Op) -> Boxed {
    match *op {
        Op::Map(k) => pipeline.map(move |x| x.wrapping_add(k)).boxed(),
        Op::Filter(m) => pipeline.filter(move |x| x % m != 0).boxed(),
        Op::Take(n) => pipeline.take(n).boxed(),
        Op::Rebatch(n) => pipeline.rebatch(n).boxed(),
        Op::Buffer(n) => pipeline.buffer(n).boxed(),
        Op::FailAt(v) => pipeline
            .map(move |x| {
                assert!(x != v, "failing at {v}");
                x
            })
            .boxed(),
    }
}

/// The reference for one chain, or `None` if it fails.
fn chain(mut records: Vec<u64>, ops: &[Op]) -> Option<Vec<u64>> {
    for op in ops {
        records = match *op {
            Op::Map(k) => records.into_iter().map(|x| x.wrapping_add(k)).collect(),
            Op::Filter(m) => records.into_iter().filter(|x| x % m != 0).collect(),
            Op::Take(n) => records.into_iter().take(n as usize).collect(),
            Op::Rebatch(_) | Op::Buffer(_) => records,
            Op::FailAt(v) if records.contains(&v) => return None,
            Op::FailAt(_) => records,
        };
    }
    Some(records)
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_graph_matches_the_same_shape_over_a_vec(
        records in proptest::collection::vec(0..1_000u64, 0..200),
        batch_size in 1..20usize,
        split in split(),
        branches in proptest::collection::vec(proptest::collection::vec(op(), 0..5), 3),
        diamond in any::<bool>(),
        after in proptest::collection::vec(op(), 0..3),
    ) {
        // A take after a failing step decides how much of its input the
        // step sees (batch by batch, or none for take(0)): no failure there.
        let branches: Vec<Vec<Op>> = branches
            .into_iter()
            .map(|ops| {
                let last_take = ops.iter().rposition(|op| matches!(op, Op::Take(_)));
                ops.into_iter()
                    .enumerate()
                    .map(|(i, op)| match op {
                        Op::FailAt(_) if last_take.is_some_and(|t| i < t) => Op::Map(0),
                        op => op,
                    })
                    .collect()
            })
            .collect();
        // After a merge, which records a take keeps depends on the
        // interleaving, and so would what follows it: no take there (and no
        // failure, kept to the branches).
        let after: Vec<Op> = after
            .into_iter()
            .map(|op| match op {
                Op::FailAt(_) | Op::Take(_) => Op::Map(0),
                op => op,
            })
            .collect();
        // The inputs of the three branches (the third unused but by route).
        let inputs: Vec<Vec<u64>> = match split {
            Split::Tee => vec![records.clone(); 3],
            Split::Partition => vec![
                records.iter().copied().filter(|x| x % 2 == 0).collect(),
                records.iter().copied().filter(|x| x % 2 != 0).collect(),
                Vec::new(),
            ],
            Split::Route => (0..3)
                .map(|i| records.iter().copied().filter(|x| x % 3 == i).collect())
                .collect(),
        };
        let width = if matches!(split, Split::Route) { 3 } else { 2 };
        let outs: Vec<Option<Vec<u64>>> = (0..width)
            .map(|i| chain(inputs[i].clone(), &branches[i]))
            .collect();
        // With a diamond, branches 0 and 1 merge and go through `after`.
        let want: Vec<Option<Vec<u64>>> = if diamond {
            let merged = match (&outs[0], &outs[1]) {
                (Some(a), Some(b)) => Some(a.iter().chain(b).copied().collect()),
                _ => None,
            };
            let mut w = vec![merged.and_then(|m| chain(m, &after))];
            w.extend(outs[2..].iter().cloned());
            w
        } else {
            outs.clone()
        };
        let fails = want.iter().any(Option::is_none);

        let source = Pipeline::from(source::iter(records.clone()).batch_size(batch_size));
        let heads: Vec<Boxed> = match split {
            Split::Tee => { let [a, b] = source.tee(); vec![a.boxed(), b.boxed()] }
            Split::Partition => { let [a, b] = source.partition(|x| x % 2 == 0); vec![a.boxed(), b.boxed()] }
            Split::Route => {
                let [a, b, c] = source.route(|x| (x % 3) as usize);
                vec![a.boxed(), b.boxed(), c.boxed()]
            }
        };
        let mut chains: Vec<Boxed> = heads
            .into_iter()
            .zip(&branches)
            .map(|(head, ops)| ops.iter().fold(head, add))
            .collect();
        if diamond {
            let b = chains.remove(1);
            let a = chains.remove(0);
            let merged = a.merge(b).boxed();
            chains.insert(0, after.iter().fold(merged, add));
        }
        let collected: Vec<Collected<u64>> = chains.iter().map(|_| Collected::new()).collect();
        let mut graph: Option<dataflare::Graph> = None;
        for (chain, out) in chains.into_iter().zip(&collected) {
            let runnable = chain.to(sink::collect(out));
            graph = Some(match graph {
                None => runnable.into(),
                Some(g) => g.and(runnable),
            });
        }
        let report = runtime().block_on(graph.unwrap().run_to_report());

        // Every stage balances, whatever the outcome.
        prop_assert!(report.check_accounting().is_ok(), "{:?}\n{}", report.check_accounting(), report);
        // Nothing vanishes between stages: a stage never receives more than
        // its inputs passed on (less only if the run ended early).
        for stage in report.stages() {
            let fed: u64 = stage
                .inputs
                .iter()
                .map(|i| report.stages()[*i].records_out)
                .sum();
            if !stage.inputs.is_empty() && stage.kind != "tee" {
                prop_assert!(stage.records_in <= fed, "{} got {} of {}", stage.name, stage.records_in, fed);
            }
        }
        if fails {
            prop_assert!(report.is_failed(), "{}", report);
            return Ok(());
        }
        prop_assert!(report.is_completed(), "{}", report);
        for (i, (out, want)) in collected.iter().zip(&want).enumerate() {
            let want = want.clone().unwrap();
            if i == 0 && diamond {
                prop_assert_eq!(sorted(out.to_vec()), sorted(want));
            } else {
                // Order kept within a branch.
                prop_assert_eq!(out.to_vec(), want);
            }
        }
    }
}
