//! The join operators of the [`Pipeline`] builder: `lookup` (enrichment from
//! a table of one record per key) and `hash_join` (1:N), both a table built
//! from another pipeline, then this one streamed through it.

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;
use std::sync::Arc;

use super::join::{
    BuildFirst, HashJoin, Inner, JoinOutput, Left, Merge, MergedInner, MergedLeft, Miss, Multi,
    Unique,
};
use super::stage::Stateful;
use super::{KeyBy, KeyOf, StateSize};
use crate::Pipeline;
use crate::metrics::RecordErrors;
use crate::ops::{Pass, Sealed, Steps};
use crate::record::Record;
use crate::source::Source;

/// What a join's [`left`](Join::left), [`inner`](Join::inner) and their
/// merged variants return: a pipeline whose last stage is the join, with
/// the table's pipeline (`S2`, `C2`) and this one (`S`, `C`) as its inputs.
pub type Joined<S, C, S2, C2, KP, KB, B, O> = Pipeline<
    Stateful<
        BuildFirst<Sealed<S2, C2>, Sealed<S, C>>,
        HashJoin<
            <C as Steps<<S as Source>::Record>>::Out,
            <C2 as Steps<<S2 as Source>::Record>>::Out,
            KP,
            KB,
            B,
            O,
        >,
    >,
>;

/// A join being set up, made by [`Pipeline::lookup`] or
/// [`Pipeline::hash_join`]: say what becomes of a record with no match
/// ([`left`](Join::left) keeps it, [`inner`](Join::inner) drops it or makes
/// it an error), and for dynamic records whether to merge them into one
/// ([`left_merged`](Join::left_merged), [`inner_merged`](Join::inner_merged),
/// [`prefix`](Join::prefix)).
#[must_use = "a join does nothing until left() or inner() makes it a pipeline"]
pub struct Join<S, C, S2, C2, KP, KB, B> {
    probe: Pipeline<S, C>,
    build: KeyBy<S2, C2, KB>,
    probe_key: KP,
    table: B,
    kind: &'static str,
    prefix: Arc<str>,
}

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Enriches each record with the record of `table` that has its key:
    /// `table` is another pipeline (a [`csv::read`](crate::csv::read) of
    /// users, say) keyed with [`key_by`](Pipeline::key_by), read to its end
    /// into memory first; then each record of this pipeline, keyed by `key`
    /// (a closure, or [`Columns`](super::Columns) for dynamic records), is
    /// looked up in it. Then say what becomes of a record with no match:
    /// [`left`](Join::left) (it goes on with `None`), or
    /// [`inner(Miss::Drop)`](Join::inner) / [`inner(Miss::Error)`](Join::inner)
    /// (dropped and counted as `unmatched`, or a record error under the
    /// stage's policy: abort, skip, dead letters).
    ///
    /// The table holds one record per key: a second record with a key it
    /// holds is a record error of the lookup stage under its policy (abort
    /// by default; skipped or dead-lettered, the first is kept), unless
    /// [`keep_last`](Join::keep_last) makes the later replace it (a table
    /// read from a log of updates). For every match of a key, see
    /// [`hash_join`](Pipeline::hash_join). A dynamic key with a null value
    /// matches nothing, as in SQL: such a table record is dropped (counted
    /// `unmatched`), such a record of this pipeline has no match.
    ///
    /// The table's records count as the lookup stage's input, and as
    /// `absorbed`; its pipeline's stages are the run's, in its
    /// [`Report`](crate::Report); the lookup stage has two inputs (this
    /// pipeline's last stage, then the table's). The table is bounded by
    /// the [`StateLimits`](super::StateLimits) of its `key_by`
    /// (`users.key_by(..).max_keys(n)`): its records are the stage's
    /// `state_keys`, and over the limits the run fails naming the stage.
    ///
    /// **Before**: this pipeline's source is not polled until the table's
    /// input has ended, so a table that fails to load fails the run before
    /// that source has been read at all (a file source is not even opened);
    /// the run's sinks were only opened (every run opens them first), and
    /// commit nothing. One exception: if this pipeline is a branch of a
    /// fan-out (`tee`, `partition`, `route`), the fan-out runs as a task of
    /// its own and may have read as far as its branches' channels hold (4
    /// batches each) meanwhile.
    ///
    /// - **Emits** nothing while the table loads; then, for each batch of
    ///   this pipeline, its records with their matches, in order.
    /// - **Backpressures** by reading the table to its end first, as fast as
    ///   it comes; then this pipeline one batch at a time, as downstream
    ///   takes them.
    /// - **Completes** when this pipeline's input ends (after the table's);
    ///   the table is let go of then.
    /// - **Cancels** with the run: both inputs are dropped; the table's
    ///   records were counted when taken in (`absorbed`).
    ///
    /// # Panics
    ///
    /// If `table` is a branch of this pipeline's own graph (the other output
    /// of a `tee`, say): the lookup reads the table to its end before this
    /// pipeline, while the fan-out feeding both would wait for room on this
    /// one: a deadlock. Read the table from a source of its own. Also if the
    /// two were built apart and a stage name the user gave in one is taken
    /// in the other.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::state::Miss;
    ///
    /// let users = Pipeline::from(source::iter(vec![(1, "ann"), (2, "bob")]));
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec![("o1", 2), ("o2", 3), ("o3", 1)]))
    ///     .lookup(users.key_by(|u: &(i32, &'static str)| u.0), |o: &(&'static str, i32)| o.1)
    ///     .inner(Miss::Drop)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![(("o1", 2), (2, "bob")), (("o3", 1), (1, "ann"))]);
    /// let lookup = report.stage("lookup#2").unwrap();
    /// assert_eq!((lookup.records_in, lookup.absorbed, lookup.unmatched), (5, 2, 1));
    /// report.check_accounting().unwrap();
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn lookup<S2, C2, KB, KP>(
        self,
        table: KeyBy<S2, C2, KB>,
        key: KP,
    ) -> Join<S, C, S2, C2, KP, KB, Unique<KB::Key, C2::Out>>
    where
        S2: Source,
        C2: Steps<S2::Record>,
        KB: KeyOf<C2::Out>,
        KP: KeyOf<C::Out, Key = KB::Key>,
    {
        Join::new("lookup", self, table, key, Unique::new())
    }

    /// Joins this pipeline with another by key, every match of each record:
    /// `build` (keyed with [`key_by`](Pipeline::key_by)) is read to its end
    /// into a table in memory, then each record of this pipeline (keyed by
    /// `key`) is streamed through it and paired with every record of
    /// `build` that has its key, in the order they came (1:N; each match
    /// after the first counts as `expanded`). Build the smaller input. Then
    /// say what becomes of a record with no match: [`left`](Join::left),
    /// [`inner(Miss::Drop)`](Join::inner) or [`inner(Miss::Error)`](Join::inner).
    ///
    /// A lookup ([`lookup`](Pipeline::lookup)) is this join with a table of
    /// one record per key; everything said there holds here too: counting
    /// (`build`'s records are the stage's `absorbed`, and its `state_keys`
    /// while held), limits (those of `build`'s `key_by`), null keys, what is
    /// read before what, and the panics.
    ///
    /// - **Emits** nothing while `build` loads; then, for each batch of this
    ///   pipeline, every match of its records, in order.
    /// - **Backpressures** by reading `build` to its end first; then this
    ///   pipeline one batch at a time, as downstream takes them.
    /// - **Completes** when this pipeline's input ends (after `build`'s);
    ///   the table is let go of then.
    /// - **Cancels** with the run: both inputs are dropped.
    ///
    /// # Panics
    ///
    /// As [`lookup`](Pipeline::lookup).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let lines = Pipeline::from(source::iter(vec![("o1", "pen"), ("o1", "ink"), ("o2", "cup")]));
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec!["o1", "o3"]))
    ///     .hash_join(lines.key_by(|l: &(&'static str, &'static str)| l.0), |o: &&'static str| *o)
    ///     .left()
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![
    ///     ("o1", Some(("o1", "pen"))),
    ///     ("o1", Some(("o1", "ink"))),
    ///     ("o3", None),
    /// ]);
    /// assert_eq!(report.stage("hash_join#2").unwrap().expanded, 1);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn hash_join<S2, C2, KB, KP>(
        self,
        build: KeyBy<S2, C2, KB>,
        key: KP,
    ) -> Join<S, C, S2, C2, KP, KB, Multi<KB::Key, C2::Out>>
    where
        S2: Source,
        C2: Steps<S2::Record>,
        KB: KeyOf<C2::Out>,
        KP: KeyOf<C::Out, Key = KB::Key>,
        C::Out: Clone,
    {
        Join::new("hash_join", self, build, key, Multi::new())
    }
}

impl<S, C, S2, C2, KP, KB, B> Join<S, C, S2, C2, KP, KB, B>
where
    S: Source,
    C: Steps<S::Record>,
    S2: Source,
    C2: Steps<S2::Record>,
    KB: KeyOf<C2::Out>,
    KP: KeyOf<C::Out, Key = KB::Key>,
{
    #[track_caller]
    fn new(
        kind: &'static str,
        probe: Pipeline<S, C>,
        build: KeyBy<S2, C2, KB>,
        probe_key: KP,
        table: B,
    ) -> Self {
        assert!(
            !probe.stages.same_as(&build.pipeline.stages),
            "{kind}: the table is a branch of this pipeline's own graph (the other output of \
             a tee?); the {kind} reads the table to its end before this pipeline, while the \
             fan-out feeding both would wait for room on this one: a deadlock. Read the table \
             from a source of its own"
        );
        Join {
            probe,
            build,
            probe_key,
            table,
            kind,
            prefix: Arc::from(""),
        }
    }

    /// Keeps every record of this pipeline: with its match (`Some`, one
    /// output record per match), or with `None`. Output: `(record,
    /// Option<match>)`; the match is cloned from the table.
    #[track_caller]
    pub fn left(self) -> Joined<S, C, S2, C2, KP, KB, B, Left>
    where
        C::Out: fmt::Debug,
        C2::Out: Clone + fmt::Debug + StateSize,
        KB::Key: fmt::Debug,
    {
        self.make(Left, Miss::Drop)
    }

    /// Keeps only the records of this pipeline that have a match, one output
    /// record per match: `(record, match)`, the match cloned from the table.
    /// A record without one is dropped and counted (`Miss::Drop`, in
    /// `unmatched`) or is a record error under the stage's policy
    /// (`Miss::Error`: set the policy with `on_error` right after this).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::{DeadLetters, Rejected};
    /// use dataflare::state::Miss;
    ///
    /// let rates = Pipeline::from(source::iter(vec![("EUR", 1.1), ("GBP", 1.3)]));
    /// let (out, rejects) = (Collected::new(), Collected::<Rejected>::new());
    /// let report = Pipeline::from(source::iter(vec![("EUR", 10.0), ("JPY", 500.0)]))
    ///     .lookup(rates.key_by(|r: &(&'static str, f64)| r.0), |p: &(&'static str, f64)| p.0)
    ///     .inner(Miss::Error)
    ///     .on_error(DeadLetters::to(sink::collect(&rejects)))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![(("EUR", 10.0), ("EUR", 1.1))]);
    /// assert_eq!(rejects.to_vec()[0].record.as_deref(), Some("(\"JPY\", 500.0)"));
    /// assert_eq!(report.dead_lettered(), 1);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn inner(self, miss: Miss) -> Joined<S, C, S2, C2, KP, KB, B, Inner>
    where
        C::Out: fmt::Debug,
        C2::Out: Clone + fmt::Debug + StateSize,
        KB::Key: fmt::Debug,
    {
        self.make(Inner, miss)
    }

    /// The join as a stage reading both pipelines: the table's stages join
    /// this pipeline's run (as a fan-in's do).
    #[track_caller]
    fn make<O>(self, output: O, miss: Miss) -> Joined<S, C, S2, C2, KP, KB, B, O>
    where
        O: JoinOutput<C::Out, C2::Out>,
    {
        let Join {
            probe,
            build:
                KeyBy {
                    pipeline: build,
                    key: build_key,
                    limits,
                    ..
                },
            probe_key,
            table,
            kind,
            prefix: _,
        } = self;
        let (probe, build) = (probe.with(|s| s), build.with(|s| s));
        probe.stages.join(&build.stages);
        // Key errors, duplicate table keys and (under Miss::Error) misses are
        // record errors, and neither input can be asked for a record again.
        let stage = probe.stages.add(
            kind,
            vec![probe.last.clone(), build.last.clone()],
            RecordErrors::NotRetryable,
        );
        let mut branches = probe.branches;
        branches.extend(build.branches);
        let op = HashJoin::new(kind, probe_key, build_key, table, output, miss);
        Pipeline {
            stream: Stateful::new(
                BuildFirst::new(build.stream, probe.stream),
                op,
                stage.clone(),
                limits,
            ),
            steps: Pass,
            stages: probe.stages,
            last: stage,
            branches,
            isolated: probe.isolated || build.isolated,
        }
    }
}

impl<S, C, S2, C2, KP, KB, K, V> Join<S, C, S2, C2, KP, KB, Unique<K, V>> {
    /// A later table record with a key the table holds replaces the earlier
    /// one (last wins: a table read from a log of updates), instead of being
    /// a record error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let prices = Pipeline::from(source::iter(vec![("pen", 1.0), ("pen", 1.5)]));
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec!["pen"]))
    ///     .lookup(prices.key_by(|p: &(&'static str, f64)| p.0), |i: &&'static str| *i)
    ///     .keep_last()
    ///     .left()
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![("pen", Some(("pen", 1.5)))]);
    /// # Ok(()) }
    /// ```
    pub fn keep_last(mut self) -> Self {
        self.table.keep_last();
        self
    }
}

impl<S, C, S2, C2, KP, KB, B> Join<S, C, S2, C2, KP, KB, B>
where
    S: Source,
    C: Steps<S::Record, Out = Record>,
    S2: Source,
    C2: Steps<S2::Record, Out = Record>,
    KB: KeyOf<Record>,
    KP: KeyOf<Record, Key = KB::Key>,
{
    /// Names the table's columns `prefix` + their name in merged records
    /// ([`left_merged`](Join::left_merged), [`inner_merged`](Join::inner_merged)):
    /// the way to tell apart a table column named as one of this pipeline's.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix);
        self
    }

    /// As [`left`](Join::left), each output one record: this pipeline's
    /// columns, then the table's (named with the [`prefix`](Join::prefix)),
    /// null when there is no match. The table's key columns named as this
    /// pipeline's key columns (by [`Columns`](super::Columns), position by
    /// position) are left out: equal in a match, they appear once.
    ///
    /// A table column whose name (prefixed) this pipeline's records have
    /// already fails the run at the first record, naming it: set a prefix.
    /// The table's columns are those of its first record; with an empty
    /// table, records go on with their own columns only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::{DataType, Record, Schema, Value};
    /// use dataflare::state::Columns;
    /// use std::sync::Arc;
    ///
    /// let users = Arc::new(Schema::new([("user", DataType::Int), ("name", DataType::Str)]));
    /// let orders = Arc::new(Schema::new([("order", DataType::Int), ("user", DataType::Int)]));
    /// let table = Pipeline::from(source::iter(vec![
    ///     Record::new(users.clone(), vec![Value::Int(7), Value::from("ann")]),
    /// ]));
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(vec![
    ///     Record::new(orders.clone(), vec![Value::Int(1), Value::Int(7)]),
    ///     Record::new(orders.clone(), vec![Value::Int(2), Value::Int(8)]),
    /// ]))
    /// .lookup(table.key_by(Columns::new(["user"])), Columns::new(["user"]))
    /// .prefix("user_")
    /// .left_merged()
    /// .to(sink::collect(&out))
    /// .run()
    /// .await?;
    /// let rows = out.to_vec();
    /// assert_eq!(rows[0].schema().names().collect::<Vec<_>>(), vec!["order", "user", "user_name"]);
    /// assert_eq!(rows[0].get("user_name"), Some(&Value::from("ann")));
    /// assert_eq!(rows[1].get("user_name"), Some(&Value::Null));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn left_merged(self) -> Joined<S, C, S2, C2, KP, KB, B, MergedLeft>
    where
        KB::Key: fmt::Debug,
    {
        let merge = self.merge();
        self.make(MergedLeft(merge), Miss::Drop)
    }

    /// As [`inner`](Join::inner), each output one merged record: see
    /// [`left_merged`](Join::left_merged).
    #[track_caller]
    pub fn inner_merged(self, miss: Miss) -> Joined<S, C, S2, C2, KP, KB, B, MergedInner>
    where
        KB::Key: fmt::Debug,
    {
        let merge = self.merge();
        self.make(MergedInner(merge), miss)
    }

    fn merge(&self) -> Merge {
        Merge::new(
            self.kind,
            self.prefix.clone(),
            self.probe_key.names(),
            self.build.key.names(),
        )
    }
}

impl<S, C, S2, C2, KP, KB, B: fmt::Debug> fmt::Debug for Join<S, C, S2, C2, KP, KB, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("kind", &self.kind)
            .field("probe", &self.probe)
            .field("build", &self.build)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}
