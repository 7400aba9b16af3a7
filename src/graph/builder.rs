//! The graph operators of the [`Pipeline`] builder: fan-out (`tee`,
//! `partition`, `route`, `tap`), fan-in (`merge`, `chain`, `zip`) and
//! `isolate`.

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;
use std::sync::Arc;

use futures::FutureExt;

use super::fan_out::{Branch, Split, fan_out};
use super::merge::Merge;
use super::route::{Partition, Route};
use super::tap::{Tap, tap};
use super::tee::Tee;
use super::zip::Zip;
use crate::Pipeline;
use crate::metrics::{RecordErrors, StageMetrics};
use crate::ops::{Pass, Sealed, Steps};
use crate::source::Source;

/// What [`Pipeline::tap`] returns: the main path and the side branch.
pub type Tapped<S, C> = (
    Pipeline<Tap<Sealed<S, C>, <C as Steps<<S as Source>::Record>>::Out>>,
    Pipeline<Branch<<C as Steps<<S as Source>::Record>>::Out>>,
);

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Ends this pipeline in a fan-out of `N` outputs fed by one driver task,
    /// `split` sharing out each batch.
    fn fan_out<const N: usize, P>(
        self,
        kind: &'static str,
        record_errors: RecordErrors,
        split: P,
    ) -> [Pipeline<Branch<C::Out>>; N]
    where
        P: Split<C::Out>,
    {
        match self.fan_out_n(N, kind, record_errors, split).try_into() {
            Ok(outputs) => outputs,
            Err(_) => unreachable!("fan_out makes N outputs"),
        }
    }

    /// [`fan_out`](Self::fan_out) with the number of outputs known at run
    /// time.
    fn fan_out_n<P>(
        mut self,
        n: usize,
        kind: &'static str,
        record_errors: RecordErrors,
        split: P,
    ) -> Vec<Pipeline<Branch<C::Out>>>
    where
        P: Split<C::Out>,
    {
        let stage = self.add_stage(kind, record_errors);
        let Pipeline {
            stream,
            stages,
            branches,
            isolated,
            ..
        } = self.with(|sealed| sealed);
        let (outputs, driver) = fan_out(stream, n, split, stage.clone(), isolated);
        stages.add_driver(driver.boxed());
        let outputs: Vec<Pipeline<Branch<C::Out>>> = outputs
            .into_iter()
            .enumerate()
            .map(|(i, output)| {
                let mut reached = branches.clone();
                reached.push(stages.add_branch(&stage, i));
                Pipeline {
                    stream: output,
                    steps: Pass,
                    stages: stages.clone(),
                    last: stage.clone(),
                    branches: reached,
                    isolated,
                }
            })
            .collect();
        outputs
    }

    /// Broadcasts every record to each of `N` branches (`let [a, b] =
    /// pipeline.tee();`), each then built on as a pipeline of its own and
    /// ended in a sink; the branches run together, joined with
    /// [`and`](crate::Runnable::and).
    ///
    /// - **Emits** each batch to every branch, in order, shared: a branch that
    ///   only reads its records (a file sink) pays no copy; one that takes
    ///   them (a `map`) copies them only if another branch still holds the
    ///   batch (copy on write; hence `Clone + Sync`). `expanded` counts the
    ///   copies as records, shared or not.
    /// - **Backpressures** when any branch is full (4 batches): the slowest
    ///   branch sets the pace, so nothing is lost and memory stays bounded.
    /// - **Completes** when its input ends: every branch then ends.
    /// - **Cancels** with the run; a branch that ends early (a `take`) stops
    ///   receiving and the others go on; when every branch has ended, the
    ///   input is read no further.
    ///
    /// The tee runs as a task of its own, each branch as another, so branches
    /// work in parallel.
    ///
    /// # Panics
    ///
    /// If `N` is 0.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let (all, big) = (Collected::new(), Collected::new());
    /// let [a, b] = Pipeline::from(source::iter(1..=5u32)).tee();
    /// a.to(sink::collect(&all))
    ///     .and(b.filter(|x| *x > 3).to(sink::collect(&big)))
    ///     .run()
    ///     .await?;
    /// assert_eq!(all.to_vec(), vec![1, 2, 3, 4, 5]);
    /// assert_eq!(big.to_vec(), vec![4, 5]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn tee<const N: usize>(self) -> [Pipeline<Branch<C::Out>>; N]
    where
        C::Out: Clone + Sync,
    {
        assert!(N > 0, "tee: at least one branch is needed");
        self.fan_out("tee", RecordErrors::Never, Tee)
    }

    /// [`tee`](Pipeline::tee) into `n` branches, `n` known only at run time
    /// (a workflow file's node read by several others): the same operator,
    /// the branches in a `Vec`.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::Graph;
    /// use dataflare::prelude::*;
    ///
    /// let outs = [Collected::new(), Collected::new(), Collected::new()];
    /// let mut graph: Option<Graph> = None;
    /// for (branch, out) in Pipeline::from(source::iter(1..=3u32)).tee_n(3).into_iter().zip(&outs) {
    ///     let run = branch.to(sink::collect(out));
    ///     graph = Some(match graph {
    ///         Some(g) => g.and(run),
    ///         None => Graph::from(run),
    ///     });
    /// }
    /// graph.unwrap().run().await?;
    /// assert!(outs.iter().all(|o| o.to_vec() == vec![1, 2, 3]));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn tee_n(self, n: usize) -> Vec<Pipeline<Branch<C::Out>>>
    where
        C::Out: Clone + Sync,
    {
        assert!(n > 0, "tee_n: at least one branch is needed");
        self.fan_out_n(n, "tee", RecordErrors::Never, Tee)
    }

    /// Splits the records in two branches: `[matching, rest]`, those for which
    /// `predicate` holds and the others. Every record goes to exactly one.
    ///
    /// - **Emits** each batch's matching records to the first branch and the
    ///   others to the second, in order (an empty share is not sent).
    /// - **Backpressures** when the branch a share goes to is full.
    /// - **Completes** when its input ends; **cancels** with the run; a branch
    ///   that ended early gets nothing more (its records count as
    ///   `abandoned`) while the other goes on.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let (small, large) = (Collected::new(), Collected::new());
    /// let [yes, no] = Pipeline::from(source::iter(vec![5, 50, 7, 70])).partition(|x| *x < 10);
    /// let report = yes
    ///     .to(sink::collect(&small))
    ///     .and(no.to(sink::collect(&large)))
    ///     .run()
    ///     .await?;
    /// assert_eq!((small.to_vec(), large.to_vec()), (vec![5, 7], vec![50, 70]));
    /// assert_eq!(report.stage("partition#1").unwrap().records_out, 4);
    /// # Ok(()) }
    /// ```
    pub fn partition<F>(self, predicate: F) -> [Pipeline<Branch<C::Out>>; 2]
    where
        F: FnMut(&C::Out) -> bool + Send + 'static,
    {
        self.fan_out("partition", RecordErrors::Never, Partition { predicate })
    }

    /// Sends each record to branch `key(&record)` of `N` (`let [a, b, c] =
    /// pipeline.route(|r| ...);`). Every record goes to exactly one branch; a
    /// key of `N` or more is a record-level error under the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy) (abort by default; skip, dead
    /// letters), never a silent drop. Set the policy with `on_error` on any of
    /// the branches before another stage is added to it, or with
    /// `default_policy`.
    ///
    /// - **Emits** each batch's records to their branches, in order (an empty
    ///   share is not sent).
    /// - **Backpressures** when the branch a share goes to is full.
    /// - **Completes** when its input ends; **cancels** with the run; a branch
    ///   that ended early gets nothing more (its records count as
    ///   `abandoned`) while the others go on.
    ///
    /// # Panics
    ///
    /// If `N` is 0.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let outs = [Collected::new(), Collected::new(), Collected::new()];
    /// let [a, b, c] = Pipeline::from(source::iter(0..9u32)).route(|x| (x % 3) as usize);
    /// a.to(sink::collect(&outs[0]))
    ///     .and(b.to(sink::collect(&outs[1])))
    ///     .and(c.to(sink::collect(&outs[2])))
    ///     .run()
    ///     .await?;
    /// assert_eq!(outs[1].to_vec(), vec![1, 4, 7]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn route<const N: usize, F>(self, key: F) -> [Pipeline<Branch<C::Out>>; N]
    where
        F: FnMut(&C::Out) -> usize + Send + 'static,
        C::Out: fmt::Debug,
    {
        assert!(N > 0, "route: at least one branch is needed");
        self.fan_out("route", RecordErrors::NotRetryable, Route { key })
    }

    /// [`route`](Pipeline::route) into `n` branches, `n` known only at run
    /// time (a workflow file's `route`): the same operator, the branches in a
    /// `Vec`; a key of `n` or more is a record-level error.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let (even, odd) = (Collected::new(), Collected::new());
    /// let mut branches = Pipeline::from(source::iter(0..6u32)).route_n(2, |x| (x % 2) as usize);
    /// let b = branches.pop().unwrap();
    /// let a = branches.pop().unwrap();
    /// a.to(sink::collect(&even)).and(b.to(sink::collect(&odd))).run().await?;
    /// assert_eq!(odd.to_vec(), vec![1, 3, 5]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn route_n<F>(self, n: usize, key: F) -> Vec<Pipeline<Branch<C::Out>>>
    where
        F: FnMut(&C::Out) -> usize + Send + 'static,
        C::Out: fmt::Debug,
    {
        assert!(n > 0, "route_n: at least one branch is needed");
        self.fan_out_n(n, "route", RecordErrors::NotRetryable, Route { key })
    }

    /// Passes every record on and offers a copy of each batch to a side
    /// branch, lossy: `(main, side)`. The side branch never holds the main
    /// path back; a copy that finds it full (4 batches) is dropped and counted
    /// in the stage's `dropped`. For monitoring, sampling, previews.
    ///
    /// - **Emits** each batch on the main path as it comes, and a copy to the
    ///   side branch if it has room.
    /// - **Backpressures** only with the main path; never because of the side.
    /// - **Completes** when its input ends: both paths end; **cancels** with
    ///   the run.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let (out, seen) = (Collected::new(), Collected::new());
    /// let (main, side) = Pipeline::from(source::iter(1..=3)).tap();
    /// let report = main
    ///     .to(sink::collect(&out))
    ///     .and(side.to(sink::collect(&seen)))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// let tap = report.stage("tap#1").unwrap();
    /// assert_eq!(seen.len() as u64 + tap.dropped, 3); // what the side missed is counted
    /// # Ok(()) }
    /// ```
    pub fn tap(mut self) -> Tapped<S, C>
    where
        C::Out: Clone,
    {
        let stage = self.add_stage("tap", RecordErrors::Never);
        let mut reached = self.branches.clone();
        reached.push(self.stages.add_branch(&stage, 1));
        let (stages, isolated) = (self.stages.clone(), self.isolated);
        let mut side = None;
        let main = self.with(|upstream| {
            let (main, branch) = tap(upstream, stage.clone());
            side = Some(branch);
            main
        });
        let side = Pipeline {
            stream: side.expect("made with the main path"),
            steps: Pass,
            stages,
            last: stage,
            branches: reached,
            isolated,
        };
        (main, side)
    }

    /// Merges another pipeline's records into this one's, batches interleaved
    /// as they come: two branches of one graph (a diamond after a `tee` or
    /// `partition`) or two sources.
    ///
    /// - **Emits** each batch of either input as it comes; fair: each poll
    ///   starts with the input the previous one did not, so neither starves.
    ///   Order is kept within each input, not across them.
    /// - **Backpressures** both inputs when downstream is slow.
    /// - **Completes** when both inputs have ended; **cancels** both with the
    ///   run.
    ///
    /// # Panics
    ///
    /// If the two were built apart and a stage name the user gave in one is
    /// taken in the other.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let eu = Pipeline::from(source::iter(vec![1, 2]));
    /// let us = Pipeline::from(source::iter(vec![10, 20]));
    /// let report = eu.merge(us).to(sink::collect(&out)).run().await?;
    /// let mut got = out.to_vec();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 10, 20]);
    /// assert_eq!(report.records_in(), 4); // summed over both sources
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn merge<S2, C2>(
        self,
        other: Pipeline<S2, C2>,
    ) -> Pipeline<Merge<Sealed<S, C>, Sealed<S2, C2>>>
    where
        S2: Source,
        C2: Steps<S2::Record, Out = C::Out>,
    {
        self.fan_in("merge", other, |a, b, stage| Merge::new(a, b, false, stage))
    }

    /// Reads this pipeline to its end, then `other`: the second source is
    /// opened only when the first has ended.
    ///
    /// - **Emits** this input's batches, then the other's, in order.
    /// - **Backpressures** the input being read.
    /// - **Completes** when both have ended; **cancels** with the run.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![1, 2]))
    ///     .chain(Pipeline::from(source::iter(vec![3])))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn chain<S2, C2>(
        self,
        other: Pipeline<S2, C2>,
    ) -> Pipeline<Merge<Sealed<S, C>, Sealed<S2, C2>>>
    where
        S2: Source,
        C2: Steps<S2::Record, Out = C::Out>,
    {
        self.fan_in("chain", other, |a, b, stage| Merge::new(a, b, true, stage))
    }

    /// Pairs each record with the record at the same position of `other`, an
    /// independent pipeline (another source): `(mine, theirs)`.
    ///
    /// - **Emits** a pair as soon as both sides have a record for it.
    /// - **Backpressures** both inputs when downstream is slow; reads a side
    ///   only when it has no record waiting to be paired.
    /// - **Completes** when either input ends: the other is read no further,
    ///   and its records waiting for a partner count as `filtered`. The second
    ///   record of each pair counts as `combined`.
    /// - **Cancels** both with the run.
    ///
    /// # Panics
    ///
    /// If `other` is a branch of this pipeline's own graph (say, the other
    /// output of a `tee`): pairing by position two branches fed by one
    /// fan-out can deadlock as soon as one side filters (the fan-out waits for
    /// room on one side while the zip waits for a record on the other), so
    /// `zip` is only offered for independent inputs. Use `merge` there.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec!["a", "b", "c"]))
    ///     .zip(Pipeline::from(source::iter(1..=2)))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![("a", 1), ("b", 2)]); // ends with the shorter
    /// assert_eq!(report.stage("zip#2").unwrap().filtered, 1); // "c" had no partner
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn zip<S2, C2>(
        self,
        other: Pipeline<S2, C2>,
    ) -> Pipeline<Zip<Sealed<S, C>, Sealed<S2, C2>, C::Out, C2::Out>>
    where
        S2: Source,
        C2: Steps<S2::Record>,
    {
        assert!(
            !self.stages.same_as(&other.stages),
            "zip: both inputs belong to one graph (branches of one fan-out?); pairing them \
             by position could deadlock, so zip takes an independent pipeline (another \
             source); to join branches of one graph, use merge"
        );
        self.fan_in("zip", other, Zip::new)
    }

    /// Joins `other` into this pipeline through a stage of `kind` reading
    /// both, its stream made by `make` from the two (sealed) streams.
    #[track_caller]
    fn fan_in<S2, C2, M>(
        self,
        kind: &'static str,
        other: Pipeline<S2, C2>,
        make: impl FnOnce(Sealed<S, C>, Sealed<S2, C2>, Arc<StageMetrics>) -> M,
    ) -> Pipeline<M>
    where
        S2: Source,
        C2: Steps<S2::Record>,
    {
        let (this, other) = (self.with(|s| s), other.with(|s| s));
        this.stages.join(&other.stages);
        let stage = this.stages.add(
            kind,
            vec![this.last.clone(), other.last.clone()],
            RecordErrors::Never,
        );
        let mut branches = this.branches;
        branches.extend(other.branches);
        Pipeline {
            stream: make(this.stream, other.stream, stage.clone()),
            steps: Pass,
            stages: this.stages,
            last: stage,
            branches,
            isolated: this.isolated || other.isolated,
        }
    }

    /// Isolates this branch: a failure in it (in a stage added after the
    /// fan-out, or in its sink) abandons this branch alone. Its sink commits
    /// nothing, what it held counts as `abandoned`, the other branches finish
    /// and commit, and the run ends
    /// [`CompletedWithErrors`](crate::Status::CompletedWithErrors) with the
    /// branch's error in [`Report::failed_branches`](crate::Report::failed_branches).
    /// A failure upstream of the fan-out still fails the whole run.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let [main, preview] = Pipeline::from(source::iter(1..=3)).tee();
    /// let report = main
    ///     .to(sink::collect(&out))
    ///     .and(preview.map(|x: i32| 6 / (x - 2)).isolate().to(sink::discard()))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![1, 2, 3]); // the main branch committed
    /// assert_eq!(report.failed_branches().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn isolate(mut self) -> Self {
        self.isolated = true;
        self
    }
}
