//! Flow control on the [`Pipeline`] builder: what a boundary does when full,
//! pacing, and stages chosen at run time.
//!
//! (`rebatch` and `buffer` themselves are with the other adapters, in the
//! builder.)

// The builder's return types spell out the adapters a pipeline is made of
// (that is what makes them zero-cost): long by nature.
#![allow(clippy::type_complexity)]

use futures::future::Either;

use super::Pipeline;
use crate::metrics::RecordErrors;
use crate::ops::{Buffer, Overflow, Rate, Sealed, Steps, Throttle};
use crate::source::Source;

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// An async boundary, as [`buffer`](Pipeline::buffer), with an explicit
    /// choice of what happens when its channel of `capacity` batches is full:
    /// wait for room ([`Overflow::Block`], what `buffer` does), or drop a
    /// batch ([`Overflow::DropNewest`], [`Overflow::DropOldest`]) for a live
    /// feed where fresh data matters more than complete data.
    ///
    /// Drops are decided per batch (a whole batch goes): put a
    /// [`rebatch`](Pipeline::rebatch) before the buffer to choose how much
    /// goes at a time. Every record dropped counts as `dropped` on this stage,
    /// in the [`Report`](crate::Report): `records_in == records_out +
    /// dropped` here once the run has returned. An error from upstream is
    /// never dropped.
    ///
    /// - **Emits** each batch queued, in order, as soon as downstream asks.
    /// - **Backpressures** with `Block`, when `capacity` batches are queued
    ///   (its upstream task waits for room); never with the drop policies,
    ///   whose upstream runs at its own pace.
    /// - **Completes** when its upstream has ended and the queue is empty.
    /// - **Cancels** with the run: its upstream task is aborted, what is
    ///   queued is dropped with it.
    ///
    /// Cost: as `buffer`: a task and a channel, a hand-off per batch (more
    /// cores used, a little more latency; in a job bound by one stage on one
    /// core, a buffer is only overhead). A dropping buffer's upstream never
    /// waits, so with a slow downstream it reads (and throws away) as fast
    /// as its source gives.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::ops::Overflow;
    ///
    /// // A live feed behind a slow consumer: keep the freshest readings.
    /// let report = Pipeline::from(source::iter(0..10_000u64).batch_size(10))
    ///     .buffer_with(4, Overflow::DropOldest)
    ///     .name("latest")
    ///     .to(sink::for_each_async(|_batch: Batch<u64>| async {
    ///         tokio::task::yield_now().await; // a slow consumer
    ///         Ok(())
    ///     }))
    ///     .run()
    ///     .await?;
    /// let latest = report.stage("latest").unwrap();
    /// assert_eq!(latest.records_in, 10_000);
    /// assert_eq!(latest.records_out + latest.dropped, 10_000);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn buffer_with(
        mut self,
        capacity: usize,
        overflow: Overflow,
    ) -> Pipeline<Buffer<Sealed<S, C>, C::Out>> {
        assert!(
            capacity > 0,
            "buffer: the capacity must be at least 1 batch"
        );
        let stage = self.add_stage("buffer", RecordErrors::Never);
        self.with(|upstream| Buffer::new(upstream, capacity, overflow, stage))
    }

    /// Lets records through at most at `rate`: records (or batches) per
    /// second, with bursts, as a token bucket on Tokio's clock
    /// ([`Rate::records`], [`Rate::batches`], [`Rate::burst`]). The bucket
    /// starts full, so the first `burst` go at once; after that, `n` records
    /// take about `n / rate`. Nothing is dropped: a batch waits for its
    /// tokens, and the stages before it wait with it.
    ///
    /// A batch is let through whole. A batch of more records than the burst
    /// does not wait for ever: it waits until the bucket is full, goes, and
    /// leaves the bucket in debt by the difference, which the batches after
    /// it wait for; so the rate holds on average, and the burst is exceeded
    /// by that one batch. Keep batches at or under the burst (a
    /// [`rebatch`](Pipeline::rebatch) before the throttle) for an even pace.
    ///
    /// - **Emits** a batch as soon as the bucket holds its tokens.
    /// - **Backpressures** while it waits for tokens (it holds one batch and
    ///   reads no further), and when downstream does.
    /// - **Completes** when its input has ended (the batch it held gone).
    /// - **Cancels** with the run: a batch waiting for its tokens counts as
    ///   `abandoned`.
    ///
    /// The time a batch is held back counts as the stage's `blocked` time in
    /// the [`Report`](crate::Report).
    ///
    /// Cost: a few integer operations and a clock read per batch, a timer
    /// when a batch must wait; the time waited is the point.
    ///
    /// # Panics
    ///
    /// [`Rate`]'s constructors and setters check their arguments (a rate,
    /// burst or period of zero).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::ops::Rate;
    /// use std::time::Duration;
    ///
    /// let start = tokio::time::Instant::now();
    /// let report = Pipeline::from(source::iter(0..3_000u32).batch_size(100))
    ///     .throttle(Rate::records(1_000).burst(500))
    ///     .to(sink::discard())
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.records_out(), 3_000);
    /// // 500 at once, then 2,500 at 1,000 a second.
    /// assert_eq!(start.elapsed(), Duration::from_millis(2_500));
    /// # Ok(()) }
    /// ```
    pub fn throttle(mut self, rate: Rate) -> Pipeline<Throttle<Sealed<S, C>, C::Out>> {
        let stage = self.add_stage("throttle", RecordErrors::Never);
        self.with(|upstream| Throttle::new(upstream, rate, stage))
    }

    /// Adds the stages `f` adds only if `condition` holds, decided when the
    /// pipeline is built (from a configuration, a command-line flag), without
    /// boxing: the pipeline's stream is an [`Either`] of the two pipelines,
    /// one or the other. `f` must give records of the same type
    /// (a [`buffer`](Pipeline::buffer), a [`throttle`](Pipeline::throttle),
    /// a `rebatch`, a `map` or `filter` keeping the type, several of them).
    ///
    /// When `condition` is false, `f` is not called and its stages do not
    /// exist: they are not in the [`Report`](crate::Report), and the
    /// automatic names of later stages (`map#3`) count one stage fewer —
    /// [`name`](Pipeline::name) the stages you look up.
    ///
    /// - **Emits**, **backpressures**, **completes** and **cancels** as the
    ///   stages `f` adds do, or, without them, as the pipeline before.
    ///
    /// Cost: a branch on the `Either` per batch, nothing per record; the
    /// per-record steps before `when` are fused into one pass (`when` ends a
    /// pass, as any adapter does; in the `f` branch they fuse with the steps
    /// `f` starts with). [`boxed`](Pipeline::boxed) is the alternative for
    /// chains of any length decided at run time: an allocation and a dynamic
    /// call per batch.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    ///
    /// async fn run(buffered: bool) -> dataflare::Result<Vec<u64>> {
    ///     let out = Collected::new();
    ///     Pipeline::from(source::iter(0..100u64).batch_size(10))
    ///         .map(|x| x * 2)
    ///         .when(buffered, |p| p.buffer(8))
    ///         .filter(|x| x % 3 == 0)
    ///         .to(sink::collect(&out))
    ///         .run()
    ///         .await?;
    ///     Ok(out.to_vec())
    /// }
    /// assert_eq!(run(true).await?, run(false).await?);
    /// # Ok(()) }
    /// ```
    pub fn when<S2, C2, F>(
        self,
        condition: bool,
        f: F,
    ) -> Pipeline<Either<Sealed<S, C>, Sealed<S2, C2>>>
    where
        F: FnOnce(Self) -> Pipeline<S2, C2>,
        S2: Source,
        C2: Steps<S2::Record, Out = C::Out>,
    {
        if condition {
            f(self).with(Either::Right)
        } else {
            self.with(Either::Left)
        }
    }
}
