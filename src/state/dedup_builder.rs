//! The dedup operators of the [`Pipeline`] builder: `dedup_by(key)` and
//! `key_by(key).dedup(within)`.

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;

use super::dedup::{Dedup, DedupTime, NoTime, Within};
use super::stage::Stateful;
use super::{KeyBy, KeyOf};
use crate::Pipeline;
use crate::metrics::RecordErrors;
use crate::ops::{Sealed, Steps};
use crate::source::Source;

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Drops every record whose key an earlier record had: the first record
    /// of each key passes, the others count as `duplicates`. `key` is a
    /// closure `|record| key` for typed records, or
    /// [`Columns::new(["id", ...])`](super::Columns) for dynamic
    /// [`Record`](crate::record::Record)s (a record without a key column is
    /// a record error under the stage's policy).
    ///
    /// Over the whole input: the stage remembers every distinct key (its
    /// `state_keys`), bounded by the default [`StateLimits`](super::StateLimits)
    /// (10 M keys, 1 GiB): over them, the run fails naming the stage. To set
    /// the limits, or to remember fewer keys (the most recent ones, or for a
    /// time), use [`key_by(key).dedup(within)`](KeyBy::dedup).
    ///
    /// - **Emits** the first record of each key as its batch goes through,
    ///   in order; a batch of duplicates only emits nothing.
    /// - **Backpressures** with its downstream, one batch at a time, as a
    ///   `filter` would.
    /// - **Completes** when its input ends; the keys it remembered are
    ///   dropped then.
    /// - **Cancels** with the run: what it remembered is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]))
    ///     .dedup_by(|r: &(&'static str, i32)| r.0)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![("a", 1), ("b", 2), ("c", 4)]);
    /// assert_eq!(report.stage("dedup#1").unwrap().duplicates, 2);
    /// report.check_accounting().unwrap();
    /// # Ok(()) }
    /// ```
    pub fn dedup_by<KF>(
        self,
        key: KF,
    ) -> Pipeline<Stateful<Sealed<S, C>, Dedup<C::Out, KF, NoTime>>>
    where
        KF: KeyOf<C::Out>,
        C::Out: fmt::Debug,
    {
        self.key_by(key).dedup(Within::all())
    }
}

impl<S, C, KF> KeyBy<S, C, KF>
where
    S: Source,
    C: Steps<S::Record>,
    C::Out: fmt::Debug,
    KF: KeyOf<C::Out>,
{
    /// Drops every record whose key was seen before, as long as the stage
    /// remembers it: [`Within::all`] (the whole input, as
    /// [`dedup_by`](Pipeline::dedup_by)), [`Within::keys(n)`](Within::keys)
    /// (the `n` most recently seen keys; a new key evicts the least recently
    /// seen, counted in `evicted`), [`Within::time(ts, ttl)`](Within::time)
    /// (for `ttl` after a key was last seen, in event time: `ts` gives each
    /// record's timestamp; forgotten keys count in `expired`), or both. A key
    /// no longer remembered is new again: its next record passes.
    ///
    /// Dropped records count as `duplicates`. The keys remembered are the
    /// stage's `state_keys`, bounded by its [`max_keys`](KeyBy::max_keys)
    /// and [`max_state_bytes`](KeyBy::max_state_bytes): an unbounded dedup
    /// over them fails the run, naming the stage; an LRU's capacity is its
    /// bound in keys (it evicts rather than fail), but the bytes limit still
    /// holds.
    ///
    /// - **Emits** the first record of each key (first since it was last
    ///   forgotten) as its batch goes through, in order.
    /// - **Backpressures** with its downstream, one batch at a time.
    /// - **Completes** when its input ends; the keys it remembered are
    ///   dropped then.
    /// - **Cancels** with the run: what it remembered is dropped.
    ///
    /// # Panics
    ///
    /// If the LRU capacity is over the stage's `max_keys`: the stage could
    /// never hold what it is asked to remember. Raise `max_keys` first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::Within;
    /// use std::time::Duration;
    ///
    /// // (user, seconds): a click counts again after 60 s of silence.
    /// let clicks = vec![("ann", 0), ("ann", 30), ("bob", 50), ("ann", 100), ("ann", 200)];
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(clicks))
    ///     .key_by(|c: &(&'static str, i64)| c.0)
    ///     .dedup(Within::time(|c: &(&'static str, i64)| Timestamp::from_secs(c.1), Duration::from_secs(60)))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// // ann at 30 is a duplicate (and seen then); at 100, 70 s after 30, new again.
    /// assert_eq!(out.to_vec(), vec![("ann", 0), ("bob", 50), ("ann", 100), ("ann", 200)]);
    /// let stage = report.stage("dedup#1").unwrap();
    /// assert_eq!((stage.duplicates, stage.expired), (1, 3));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn dedup<TS>(
        self,
        within: Within<TS>,
    ) -> Pipeline<Stateful<Sealed<S, C>, Dedup<C::Out, KF, TS>>>
    where
        TS: DedupTime<C::Out>,
    {
        let KeyBy {
            mut pipeline,
            key,
            limits,
            ..
        } = self;
        if let Some(capacity) = within.capacity() {
            assert!(
                capacity as u64 <= limits.keys(),
                "dedup: Within::keys({capacity}) is over the stage's max_keys ({}): it could \
                 never hold what it is asked to remember; raise it with .max_keys(n) before \
                 .dedup(..)",
                limits.keys()
            );
        }
        // A key a record lacks (a missing column) is its error, and it
        // cannot be asked for again.
        let stage = pipeline.add_stage("dedup", RecordErrors::NotRetryable);
        pipeline.with(|upstream| Stateful::new(upstream, Dedup::new(key, within), stage, limits))
    }
}
