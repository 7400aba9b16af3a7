use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::stage::{RecordErrors, StageMetrics, StageStats, lock};
use crate::policy::{DeadLetters, MaxErrors};
use crate::{Error, ErrorPolicy, Result};

/// The stages of one run, shared by every branch of its graph: each stage's
/// identity and counters, and the run-wide failure settings (default policy,
/// dead-letter sinks to drive, error limit), the fan-out drivers to run and
/// the branch outputs that must each reach a sink.
///
/// Cloned into every [`Pipeline`](crate::Pipeline) built from one source: the
/// branches of a `tee` add their stages to the same list. Two graphs built
/// apart (two sources) are joined when one is merged into, or run with, the
/// other: every handle of either then reaches the one list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stages(Arc<Mutex<Node>>);

#[derive(Debug)]
enum Node {
    Root(Registry),
    /// Joined into another graph: everything is there now.
    Joined(Stages),
}

impl Default for Node {
    fn default() -> Self {
        Node::Root(Registry::default())
    }
}

/// A fan-out's driver, run with the graph.
pub(crate) type Driver = BoxFuture<'static, Result<()>>;

#[derive(Default)]
pub(crate) struct Registry {
    list: Vec<Arc<StageMetrics>>,
    default_policy: Option<ErrorPolicy>,
    dead_letters: Vec<DeadLetters>,
    max_errors: Option<MaxErrors>,
    /// The fan-out drivers (one per `tee`, `route`...), run with the graph.
    drivers: Vec<Driver>,
    /// Every branch output made by a fan-out (the stage, the output's
    /// number), by number: each must end in a sink of the run.
    branches: Vec<(Arc<StageMetrics>, usize)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("stages", &self.list.len())
            .field("drivers", &self.drivers.len())
            .finish_non_exhaustive()
    }
}

impl Stages {
    /// The list itself, following joins.
    fn root(&self) -> Stages {
        let next = match &*lock(&self.0) {
            Node::Root(_) => return self.clone(),
            Node::Joined(next) => next.clone(),
        };
        next.root()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let root = self.root();
        let mut node = lock(&root.0);
        match &mut *node {
            Node::Root(registry) => f(registry),
            Node::Joined(_) => unreachable!("root() follows every join"),
        }
    }

    /// True when both handles reach the same list.
    pub(crate) fn same_as(&self, other: &Stages) -> bool {
        Arc::ptr_eq(&self.root().0, &other.root().0)
    }

    /// Adds a stage of `kind` reading from `inputs`, with an automatic name:
    /// `kind#id`, or plain `kind` for the first `source` and the first `sink`.
    pub(crate) fn add(
        &self,
        kind: &'static str,
        inputs: Vec<Arc<StageMetrics>>,
        record_errors: RecordErrors,
    ) -> Arc<StageMetrics> {
        self.with(|r| {
            let id = r.list.len();
            let name = r.automatic_name(kind, id);
            let stage = StageMetrics::new(id, name, kind, inputs, record_errors);
            r.list.push(stage.clone());
            stage
        })
    }

    /// Gives `stage` the user's `name`.
    ///
    /// # Panics
    ///
    /// If another stage of the run already has that name: names are how errors
    /// and the [`Report`](crate::Report) point at a stage.
    #[track_caller]
    pub(crate) fn rename(&self, stage: &StageMetrics, name: String) {
        let taken = self.with(|r| {
            r.list
                .iter()
                .any(|s| s.id() != stage.id() && s.name() == name)
        });
        assert!(
            !taken,
            "name: another stage of this run is already named {name:?}; stage names must be \
             unique, as errors and the report find stages by name"
        );
        stage.rename(name);
    }

    /// Joins `other`'s graph into this one (nothing if they are the same):
    /// its stages are appended (automatic names renumbered), its dead-letter
    /// sinks, drivers and branches added. Its default policy and error limit
    /// apply where this graph has none.
    ///
    /// # Panics
    ///
    /// If a name the user gave a stage of one graph is taken in the other.
    #[track_caller]
    pub(crate) fn join(&self, other: &Stages) {
        if self.same_as(other) {
            return;
        }
        let (root, other_root) = (self.root(), other.root());
        let moved = {
            let mut node = lock(&other_root.0);
            match std::mem::replace(&mut *node, Node::Joined(root.clone())) {
                Node::Root(registry) => registry,
                Node::Joined(_) => unreachable!("a root"),
            }
        };
        self.with(|r| {
            for stage in &moved.list {
                let clash = r.list.iter().any(|s| s.name() == stage.name());
                assert!(
                    stage.is_automatic() || !clash,
                    "two graphs joined into one run both have a stage named {:?}; stage \
                     names must be unique in a run: rename one with .name(..)",
                    stage.name()
                );
            }
            for stage in moved.list {
                let id = r.list.len();
                stage.set_id(id);
                if stage.is_automatic() {
                    stage.set_automatic_name(r.automatic_name(stage.kind(), id));
                }
                r.list.push(stage);
            }
            r.default_policy = r.default_policy.take().or(moved.default_policy);
            r.max_errors = r.max_errors.or(moved.max_errors);
            for d in moved.dead_letters {
                r.register(d);
            }
            r.drivers.extend(moved.drivers);
            r.branches.extend(moved.branches);
        });
    }

    pub(crate) fn set_default_policy(&self, policy: ErrorPolicy) {
        self.register(&policy);
        self.with(|r| r.default_policy = Some(policy));
    }

    /// Notes the dead-letter sink a policy sends to, so the run drives it.
    pub(crate) fn register(&self, policy: &ErrorPolicy) {
        if let ErrorPolicy::DeadLetter(d) = policy.final_policy() {
            self.with(|r| r.register(d.clone()));
        }
    }

    pub(crate) fn set_max_errors(&self, max: MaxErrors) {
        self.with(|r| r.max_errors = Some(max));
    }

    /// Adds a fan-out's driver, run with the graph.
    pub(crate) fn add_driver(&self, driver: Driver) {
        self.with(|r| r.drivers.push(driver));
    }

    /// Notes output `output` of the fan-out `stage`, which must reach a sink;
    /// returns its number.
    pub(crate) fn add_branch(&self, stage: &Arc<StageMetrics>, output: usize) -> usize {
        self.with(|r| {
            r.branches.push((stage.clone(), output));
            r.branches.len() - 1
        })
    }

    /// Prepares the run: every stage gets the default policy; the drivers, the
    /// dead-letter sinks and the branch list are handed over. Fails, naming it,
    /// if a branch in `reached` misses.
    pub(crate) fn start(&self, reached: &[usize]) -> Result<(Vec<Driver>, Vec<DeadLetters>)> {
        self.with(|r| {
            let missing: Vec<String> = (0..r.branches.len())
                .filter(|b| !reached.contains(b))
                .map(|b| {
                    let (stage, output) = &r.branches[b];
                    format!("output {output} of {:?}", stage.name())
                })
                .collect();
            if !missing.is_empty() {
                return Err(Error::config(format!(
                    "{} reaches no sink of this run: end every branch with .to(sink) \
                     (sink::discard() to drop its records), and run the branches together, \
                     joined with .and(..)",
                    missing.join(", ")
                )));
            }
            for stage in &r.list {
                stage.set_default_policy(r.default_policy.clone());
            }
            Ok((std::mem::take(&mut r.drivers), r.dead_letters.clone()))
        })
    }

    /// Fails when more records were put aside (skipped or dead-lettered) than
    /// [`MaxErrors`] allows; checked when the sources have ended, before the
    /// sinks commit.
    pub(crate) fn check_max_errors(&self) -> Result<(), Error> {
        let Some(max) = self.with(|r| r.max_errors) else {
            return Ok(());
        };
        let stats = self.snapshot();
        let failed: u64 = stats.iter().map(|s| s.skipped + s.dead_lettered).sum();
        let produced: u64 = stats
            .iter()
            .filter(|s| s.kind == "source")
            .map(|s| s.records_in)
            .sum();
        if max.exceeded(failed, produced) {
            return Err(Error::msg(format!(
                "{failed} of {produced} records failed, more than max_errors ({max:?}) allows"
            )));
        }
        Ok(())
    }

    /// The stages, in id order.
    pub(crate) fn list(&self) -> Vec<Arc<StageMetrics>> {
        self.with(|r| r.list.clone())
    }

    pub(crate) fn snapshot(&self) -> Vec<StageStats> {
        self.list().iter().map(|s| s.snapshot()).collect()
    }

    pub(crate) fn take_errors(&self) -> Vec<Error> {
        self.list().iter().flat_map(|s| s.take_errors()).collect()
    }
}

impl Registry {
    fn automatic_name(&self, kind: &'static str, id: usize) -> String {
        let first_of_kind =
            matches!(kind, "source" | "sink") && !self.list.iter().any(|s| s.name() == kind);
        if first_of_kind {
            kind.to_string()
        } else {
            format!("{kind}#{id}")
        }
    }

    fn register(&mut self, d: DeadLetters) {
        if !self.dead_letters.iter().any(|known| known.same_as(&d)) {
            self.dead_letters.push(d);
        }
    }
}
