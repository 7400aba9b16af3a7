//! The interval join of the [`Pipeline`] builder:
//! `a.key_by(ka).interval_join(b.key_by(kb), ts_a, ts_b, interval)`.

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;

use super::interval::{Interleave, Interval, IntervalJoin, Lead};
use super::stage::Stateful;
use super::{KeyBy, KeyOf, StateLimits, StateSize};
use crate::Pipeline;
use crate::metrics::RecordErrors;
use crate::ops::{Pass, Sealed, Steps};
use crate::record::Timestamp;
use crate::source::Source;

/// What [`KeyBy::interval_join`] returns: a pipeline whose last stage is
/// the interval join, reading this pipeline (`S`, `C`) and the other (`S2`,
/// `C2`).
pub type IntervalJoined<S, C, S2, C2, KA, KB, TA, TB> = Pipeline<
    Stateful<
        Interleave<Sealed<S, C>, Sealed<S2, C2>>,
        IntervalJoin<
            <C as Steps<<S as Source>::Record>>::Out,
            <C2 as Steps<<S2 as Source>::Record>>::Out,
            KA,
            KB,
            TA,
            TB,
        >,
    >,
>;

impl<S, C, KF> KeyBy<S, C, KF>
where
    S: Source,
    C: Steps<S::Record>,
    C::Out: fmt::Debug,
    KF: KeyOf<C::Out>,
{
    /// Pairs each record `a` of this pipeline with each record `b` of
    /// `other` that has its key and whose timestamp lies within `interval`
    /// of `a`'s: `b.ts` in `[a.ts + lower, a.ts + upper]`, in event time
    /// (`time` and `other_time` give the timestamps). Output: `(a, b)`, as
    /// soon as the second of the two has come. Both inputs stream, read
    /// together fairly: either may be a source of its own or a branch of the
    /// same graph (a `tee`'s other output).
    ///
    /// Each input holds the records the other may still match. The
    /// watermark is the least of the greatest timestamps the two inputs
    /// have shown, less the interval's [`lateness`](Interval::lateness); a
    /// held record no record at or after the watermark can match is let go
    /// of (counted in `expired`), and a record behind the watermark is late:
    /// a record error under the stage's policy (abort by default, naming
    /// it; skipped, it counts as `late`). So what is held is bounded by the
    /// interval, the lateness and how far one input runs ahead of the other;
    /// when an input ends, the other's records are held no more. The held
    /// records are the stage's `state_keys`, bounded by the tighter of the
    /// two `key_by`s' [`StateLimits`]: over them, the run fails naming the
    /// stage.
    ///
    /// Accounting: every record the join takes counts as `absorbed`, every
    /// pair it emits as `expanded`. A dynamic key with a null value matches
    /// nothing, as in SQL.
    ///
    /// - **Emits** each pair when its second record comes, in the order
    ///   found; a record's matches in their timestamp order.
    /// - **Backpressures** both inputs with its downstream; reads first the
    ///   input that is behind in event time (by turns when neither is; the
    ///   other first at least one time in five), the other when that one has
    ///   nothing ready: neither starves, and neither runs far ahead of the
    ///   other while both move on.
    /// - **Completes** when both inputs have ended.
    /// - **Cancels** with the run: both inputs are dropped; what it held was
    ///   counted when taken in (`absorbed`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::Interval;
    /// use std::time::Duration;
    ///
    /// // (user, second): a click joins the views of its user in the 10 s before it.
    /// let views = Pipeline::from(source::iter(vec![("ann", 1), ("bob", 2), ("ann", 15)]));
    /// let clicks = Pipeline::from(source::iter(vec![("ann", 5), ("bob", 30)]));
    /// let out = Collected::new();
    /// clicks
    ///     .key_by(|c: &(&'static str, i64)| c.0)
    ///     .interval_join(
    ///         views.key_by(|v: &(&'static str, i64)| v.0),
    ///         |c: &(&'static str, i64)| Timestamp::from_secs(c.1),
    ///         |v: &(&'static str, i64)| Timestamp::from_secs(v.1),
    ///         Interval::before(Duration::ZERO, Duration::from_secs(10)),
    ///     )
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![(("ann", 5), ("ann", 1))]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn interval_join<S2, C2, KB, TA, TB>(
        self,
        other: KeyBy<S2, C2, KB>,
        time: TA,
        other_time: TB,
        interval: Interval,
    ) -> IntervalJoined<S, C, S2, C2, KF, KB, TA, TB>
    where
        S2: Source,
        C2: Steps<S2::Record>,
        KB: KeyOf<C2::Out, Key = KF::Key>,
        C::Out: Clone + StateSize,
        C2::Out: Clone + fmt::Debug + StateSize,
        TA: FnMut(&C::Out) -> Timestamp + Send + 'static,
        TB: FnMut(&C2::Out) -> Timestamp + Send + 'static,
    {
        let KeyBy {
            pipeline: a,
            key: key_a,
            limits: limits_a,
            ..
        } = self;
        let KeyBy {
            pipeline: b,
            key: key_b,
            limits: limits_b,
            ..
        } = other;
        let limits = StateLimits::default()
            .max_keys(limits_a.keys().min(limits_b.keys()))
            .max_bytes(limits_a.bytes().min(limits_b.bytes()));
        let (a, b) = (a.with(|s| s), b.with(|s| s));
        // Nothing if both are branches of one graph: read fairly, they
        // cannot deadlock.
        a.stages.join(&b.stages);
        // Key errors and late records are record errors, and neither input
        // can be asked for a record again.
        let stage = a.stages.add(
            "interval_join",
            vec![a.last.clone(), b.last.clone()],
            RecordErrors::NotRetryable,
        );
        let mut branches = a.branches;
        branches.extend(b.branches);
        let lead = Lead::default();
        let op = IntervalJoin::new(key_a, key_b, time, other_time, interval, lead.clone());
        Pipeline {
            stream: Stateful::new(
                Interleave::new(a.stream, b.stream, lead),
                op,
                stage.clone(),
                limits,
            ),
            steps: Pass,
            stages: a.stages,
            last: stage,
            branches,
            isolated: a.isolated || b.isolated,
        }
    }
}
