//! The parallel stages of the [`Pipeline`] builder: per-record work on
//! workers of the stage's own, on tokio's blocking threads (`par_map`,
//! `par_map_unordered`, `par_try_map`, `par_map_keyed`).

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use std::fmt;
use std::hash::Hash;

use super::Pipeline;
use crate::BoxError;
use crate::metrics::RecordErrors;
use crate::ops::{ParMap, ParMapKeyed, ParMapUnordered, ParTryMap, Sealed, Steps};
use crate::source::Source;

/// Checks a parallel stage's number of workers.
#[track_caller]
fn check_workers(method: &str, n: usize) {
    assert!(
        n > 0,
        "{method}: the number of workers must be at least 1 (0 would never run anything)"
    );
}

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Runs `f` on each record on `n` worker threads of the stage's own, off
    /// the async runtime's, and passes the results on **in input order**, in
    /// batches of the input's sizes: for CPU-heavy work per record (parsing,
    /// hashing, scoring, compressing) that one core cannot keep up with.
    ///
    /// The workers are tasks on tokio's blocking pool, at work while the
    /// stage has batches for them (they leave when there are none and start
    /// again with the next), and the run waits for them before it returns;
    /// under tokio's paused time, the clock stands still while they work.
    ///
    /// Records are handed to the workers a batch at a time (a batch is cut
    /// into slices only while workers would otherwise idle, as for the first
    /// one), not one by one: worth it when `f` takes a microsecond or more per
    /// record; for cheaper work a plain [`map`](Pipeline::map) is as fast.
    /// `f` is shared by the workers, so it is `Fn + Sync`; for state of its
    /// own per key, see [`par_map_keyed`](Pipeline::par_map_keyed).
    ///
    /// Memory: at most 2 units per worker (each at most one input batch) are
    /// in flight, queued, being worked on, or done and waiting for an earlier
    /// one: `2 × n` batches at most. A slow batch holds back the ones after it
    /// (use [`par_map_unordered`](Pipeline::par_map_unordered) when order does
    /// not matter).
    ///
    /// - **Emits** when the oldest batch in flight is done.
    /// - **Backpressures** when `2 × n` batches are in flight: it takes no more
    ///   input until downstream has taken the oldest, so a slow sink slows the
    ///   source.
    /// - **Completes** when its input has ended and every batch in flight has
    ///   been passed on; its workers then leave.
    /// - **Cancels** when the run fails, is cancelled or dropped: each worker
    ///   stops after the record in hand, and the records in flight count as
    ///   `abandoned`.
    ///
    /// A panic in `f` fails the run with an error naming the stage. The
    /// stage's `busy` time is its workers' time divided by `n`: 100% means
    /// every worker was busy all along.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(1..=1000u64).batch_size(100))
    ///     // Some CPU work per record, on 2 threads.
    ///     .par_map(2, |x| (0..x).fold(x, |h, i| h.rotate_left(5) ^ i))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let expected: Vec<u64> = (1..=1000u64)
    ///     .map(|x| (0..x).fold(x, |h, i| h.rotate_left(5) ^ i))
    ///     .collect();
    /// assert_eq!(out.to_vec(), expected); // in input order
    /// assert_eq!(report.stage("par_map#1").unwrap().records_out, 1000);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn par_map<U, F>(mut self, n: usize, f: F) -> Pipeline<ParMap<Sealed<S, C>, C::Out, U, F>>
    where
        F: Fn(C::Out) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        check_workers("par_map", n);
        let stage = self.add_stage("par_map", RecordErrors::Never);
        self.with(|upstream| ParMap::new(upstream, n, f, stage))
    }

    /// Runs `f` on each record on `n` worker threads of the stage's own, as
    /// [`par_map`](Pipeline::par_map) does, and passes each batch (or slice)
    /// on **as soon as it is done**, whatever came before it: a slow batch
    /// holds back no other. Output batches are the input's, or slices of them.
    ///
    /// Memory: at most 2 units per worker in flight, each at most one input
    /// batch: `2 × n` batches at most.
    ///
    /// - **Emits** when any batch or slice in flight is done.
    /// - **Backpressures** when `2 × n` units are in flight and none is done
    ///   (or downstream has not taken the last one done).
    /// - **Completes** when its input has ended and everything in flight has
    ///   been passed on.
    /// - **Cancels** when the run fails, is cancelled or dropped: each worker
    ///   stops after the record in hand, and the records in flight count as
    ///   `abandoned`.
    ///
    /// A panic in `f` fails the run with an error naming the stage.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(1..=1000u64).batch_size(50))
    ///     .par_map_unordered(2, |x| x * x)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let mut got = out.to_vec();
    /// got.sort();
    /// assert_eq!(got, (1..=1000u64).map(|x| x * x).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn par_map_unordered<U, F>(
        mut self,
        n: usize,
        f: F,
    ) -> Pipeline<ParMapUnordered<Sealed<S, C>, C::Out, U, F>>
    where
        F: Fn(C::Out) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        check_workers("par_map_unordered", n);
        let stage = self.add_stage("par_map_unordered", RecordErrors::Never);
        self.with(|upstream| ParMapUnordered::new(upstream, n, f, stage))
    }

    /// Runs the fallible `f(&record)` on each record on `n` worker threads of
    /// the stage's own, as [`par_map`](Pipeline::par_map) does, passing the
    /// results on **in input order**; a failure is handled by the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy) (set with
    /// [`on_error`](Pipeline::on_error); abort by default), as
    /// [`try_map`](Pipeline::try_map)'s are: skipped, dead-lettered (shown
    /// with `Debug`), retried, or the run ends with an error naming the stage
    /// and the record. The closure sees the record by reference, so the stage
    /// still holds it after a failure.
    ///
    /// Failures meet the policy in input order, on the stage's task. A
    /// retried record goes back to the workers, ahead of the other work, once
    /// its backoff is over; the output waits for it (order is kept) while the
    /// workers go on with what is queued.
    ///
    /// Memory: at most 2 units per worker in flight, each at most one input
    /// batch, plus the record being retried.
    ///
    /// - **Emits** when the oldest batch in flight is done and its failures
    ///   are settled.
    /// - **Backpressures** when `2 × n` batches are in flight, while a record
    ///   waits out its retry backoff, and while a dead letter waits for room.
    /// - **Completes** when its input has ended and every batch in flight has
    ///   been passed on.
    /// - **Cancels** when the run fails, is cancelled or dropped: each worker
    ///   stops after the record in hand, and the records in flight count as
    ///   `abandoned`.
    ///
    /// Every record is accounted for: `records_in = records_out + skipped +
    /// dead_lettered (+ abandoned if the run ends early)`; `retried` counts
    /// the extra attempts. A panic in `f` fails the run with an error naming
    /// the stage.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec!["4", "x", "6", "8"]))
    ///     .par_try_map(2, |s: &&str| s.parse::<i32>())
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.to_vec(), vec![4, 6, 8]);
    /// let stage = report.stage("par_try_map#1").unwrap();
    /// assert_eq!((stage.records_in, stage.records_out, stage.skipped), (4, 3, 1));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn par_try_map<U, E, F>(
        mut self,
        n: usize,
        f: F,
    ) -> Pipeline<ParTryMap<Sealed<S, C>, C::Out, U, F>>
    where
        F: Fn(&C::Out) -> Result<U, E> + Send + Sync + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
        C::Out: fmt::Debug,
    {
        check_workers("par_try_map", n);
        let stage = self.add_stage("par_try_map", RecordErrors::Retryable);
        self.with(|upstream| ParTryMap::new(upstream, n, f, stage))
    }

    /// Runs `f` on each record in one of `n` **keyed lanes**, each a worker
    /// thread of its own off the async runtime's: the lane is chosen by a
    /// hash of `key(&record)`, so every record of a key goes through the same
    /// lane, one after the other, and **each key keeps its order**; records
    /// of different keys may pass each other.
    ///
    /// Each lane has its own copy of `f` (hence `Clone`): state `f` keeps (a
    /// running total per key in a map, a session per user) is the lane's, and
    /// all of a key's records meet the same copy. The key is computed on the
    /// stage's task, so it should be cheap (a field); the work in `f`. The
    /// hash is fixed, so a key goes to the same lane in every run; a key much
    /// more frequent than others keeps its lane busier than the rest.
    ///
    /// (Not to be confused with [`partition_by`](Pipeline::partition_by),
    /// which keys records for a partitioned file sink.)
    ///
    /// Memory: each batch is split by lane; a lane holds at most 2 parts
    /// (queued, being worked on, or done and not yet passed on), so at most
    /// `2 × n` batches are in flight.
    ///
    /// - **Emits** when any lane has finished a part: each part (a lane's
    ///   share of an input batch, about `1/n` of it) goes on as a batch of
    ///   its own, the lanes taken in turn.
    /// - **Backpressures** when a lane holds 2 parts: no batch is taken in
    ///   until every lane has room.
    /// - **Completes** when its input has ended and every lane has passed its
    ///   parts on.
    /// - **Cancels** when the run fails, is cancelled or dropped: each lane
    ///   stops after the record in hand, and the records in flight count as
    ///   `abandoned`.
    ///
    /// A panic in `key` or `f` fails the run with an error naming the stage.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// A running total per account, over 4 lanes:
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use std::collections::HashMap;
    ///
    /// let moves = vec![("ann", 5), ("bob", 10), ("ann", -2), ("bob", 7), ("ann", 1)];
    /// let out = Collected::new();
    /// let mut totals: HashMap<&str, i64> = HashMap::new();
    /// Pipeline::from(source::iter(moves).batch_size(2))
    ///     .par_map_keyed(4, |(account, _): &(&'static str, i64)| *account, move |(account, amount)| {
    ///         let total = totals.entry(account).or_default();
    ///         *total += amount;
    ///         (account, *total)
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let of = |who| out.to_vec().into_iter().filter(|(a, _)| *a == who).map(|(_, t)| t).collect::<Vec<_>>();
    /// assert_eq!(of("ann"), vec![5, 3, 4]); // each key in its order
    /// assert_eq!(of("bob"), vec![10, 17]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn par_map_keyed<U, H, K, F>(
        mut self,
        n: usize,
        key: K,
        f: F,
    ) -> Pipeline<ParMapKeyed<Sealed<S, C>, C::Out, U, K, F>>
    where
        K: FnMut(&C::Out) -> H + Send + 'static,
        H: Hash,
        F: FnMut(C::Out) -> U + Clone + Send + 'static,
        U: Send + 'static,
    {
        check_workers("par_map_keyed", n);
        let stage = self.add_stage("par_map_keyed", RecordErrors::Never);
        self.with(|upstream| ParMapKeyed::new(upstream, n, key, f, stage))
    }
}
