use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project::{pin_project, pinned_drop};
use tokio::time::Instant;

use crate::metrics::StageMetrics;
use crate::runtime::OpTimer;
use crate::{Batch, Result};

/// How fast a [`throttle`](crate::Pipeline::throttle) lets records (or
/// batches) through: `n` per period (a second unless [`per`](Rate::per) says
/// otherwise), with bursts of up to [`burst`](Rate::burst) at once.
///
/// A token bucket on Tokio's clock: it holds up to `burst` tokens, starts
/// full, and fills at the rate; a record (or a batch) takes one token.
///
/// ```
/// use dataflare::ops::Rate;
/// use std::time::Duration;
///
/// let rate = Rate::records(10_000).burst(2_000);
/// assert_eq!(rate.max_burst(), 2_000);
/// let slow = Rate::batches(30).per(Duration::from_secs(60)); // 30 a minute
/// assert_eq!(slow.max_burst(), 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    unit: Unit,
    amount: u64,
    period: Duration,
    burst: u64,
}

/// What a [`Rate`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Records,
    Batches,
}

impl Rate {
    /// `n` records a second; a burst of `n` by default.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn records(n: u64) -> Self {
        Rate::new(Unit::Records, n)
    }

    /// `n` batches a second, whatever their size; a burst of `n` by default.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn batches(n: u64) -> Self {
        Rate::new(Unit::Batches, n)
    }

    #[track_caller]
    fn new(unit: Unit, amount: u64) -> Self {
        assert!(amount > 0, "throttle: the rate must be at least 1");
        Rate {
            unit,
            amount,
            period: Duration::from_secs(1),
            burst: amount,
        }
    }

    /// The rate's amount per `period` instead of per second.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    #[track_caller]
    pub fn per(mut self, period: Duration) -> Self {
        assert!(!period.is_zero(), "throttle: the period must not be zero");
        self.period = period;
        self
    }

    /// At most `burst` records (or batches) at once after a quiet spell: the
    /// size of the bucket. Small bursts smooth the output; a burst smaller
    /// than the batches makes each batch wait for a full bucket (see
    /// [`throttle`](crate::Pipeline::throttle)).
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    #[track_caller]
    pub fn burst(mut self, burst: u64) -> Self {
        assert!(burst > 0, "throttle: the burst must be at least 1");
        self.burst = burst;
        self
    }

    /// The most records (or batches) let through at once.
    pub fn max_burst(&self) -> u64 {
        self.burst
    }

    /// The tokens a batch of `records` records takes.
    fn cost(&self, records: usize) -> u64 {
        match self.unit {
            Unit::Records => records as u64,
            Unit::Batches => 1,
        }
    }
}

/// The token bucket, in exact integer units: one token is `period` (in
/// nanoseconds) units, and every nanosecond adds `amount` units, so no
/// rounding builds up however long the run.
#[derive(Debug)]
struct Bucket {
    /// Units in the bucket; negative while a batch larger than the burst
    /// is paid off.
    level: i128,
    /// When `level` was last brought up to date.
    at: Option<Instant>,
    /// Units a token is worth.
    token: i128,
    /// Units added per nanosecond.
    fill: i128,
    /// The most units the bucket holds.
    full: i128,
}

impl Bucket {
    fn new(rate: &Rate) -> Self {
        let token = rate.period.as_nanos() as i128;
        let full = token.saturating_mul(rate.burst as i128);
        Bucket {
            level: full,
            at: None,
            token,
            fill: rate.amount as i128,
            full,
        }
    }

    /// How long to wait until `cost` tokens may go (zero: now), the bucket
    /// brought up to `now`.
    fn wait(&mut self, cost: u64, now: Instant) -> Duration {
        if let Some(at) = self.at {
            let elapsed = now.saturating_duration_since(at).as_nanos() as i128;
            self.level = self
                .level
                .saturating_add(elapsed.saturating_mul(self.fill))
                .min(self.full);
        }
        self.at = Some(now);
        // A batch over the burst waits for a full bucket, not for ever.
        let need = (cost as i128).saturating_mul(self.token).min(self.full);
        if self.level >= need {
            return Duration::ZERO;
        }
        let nanos = (need - self.level + self.fill - 1) / self.fill;
        Duration::from_nanos(nanos.try_into().unwrap_or(u64::MAX))
    }

    /// Takes `cost` tokens (the level may go below zero).
    fn take(&mut self, cost: u64) {
        self.level = self
            .level
            .saturating_sub((cost as i128).saturating_mul(self.token));
    }
}

/// Lets batches through at a [`Rate`], holding the next one back (and not
/// reading further) until the token bucket allows it. The time a batch is
/// held back counts as the stage's `blocked` time.
///
/// Created by [`Pipeline::throttle`](crate::Pipeline::throttle).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct Throttle<S, T> {
    #[pin]
    upstream: S,
    rate: Rate,
    bucket: Bucket,
    /// The batch waiting for tokens.
    held: Option<Batch<T>>,
    /// Since when the held batch has waited for its tokens, if it has.
    waiting_since: Option<Instant>,
    timer: OpTimer,
    stage: Arc<StageMetrics>,
    done: bool,
}

impl<S, T> Throttle<S, T> {
    pub(crate) fn new(upstream: S, rate: Rate, stage: Arc<StageMetrics>) -> Self {
        Throttle {
            upstream,
            bucket: Bucket::new(&rate),
            rate,
            held: None,
            waiting_since: None,
            timer: OpTimer::default(),
            stage,
            done: false,
        }
    }
}

impl<S, T> Stream for Throttle<S, T>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(batch) = this.held {
                let cost = this.rate.cost(batch.len());
                let now = Instant::now();
                let wait = this.bucket.wait(cost, now);
                if !wait.is_zero() {
                    this.waiting_since.get_or_insert(now);
                    let due = now + wait;
                    if !this.timer.poll_due(Some(due), cx) {
                        return Poll::Pending;
                    }
                    // The time has come: bring the bucket up to it.
                    continue;
                }
                this.bucket.take(cost);
                if let Some(since) = this.waiting_since.take() {
                    // Held back by the rate: time blocked on output.
                    this.stage.blocked(now.saturating_duration_since(since));
                }
                let batch = this.held.take().expect("checked just above");
                this.stage.batch_out(batch.len());
                return Poll::Ready(Some(Ok(batch)));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let Poll::Ready(next) = this.upstream.as_mut().poll_next(cx) else {
                return Poll::Pending;
            };
            match next {
                Some(Ok(batch)) => {
                    this.stage.batch_in(batch.len());
                    if batch.is_empty() {
                        // Nothing to pace: passed on, taking no token.
                        this.stage.batch_out(0);
                        return Poll::Ready(Some(Ok(batch)));
                    }
                    *this.held = Some(batch);
                }
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => *this.done = true,
            }
        }
    }
}

#[pinned_drop]
impl<S, T> PinnedDrop for Throttle<S, T> {
    fn drop(self: Pin<&mut Self>) {
        // A batch still waiting for its tokens when the run ended early.
        let this = self.project();
        if let Some(batch) = this.held {
            this.stage.abandon(batch.len());
        }
        if let Some(since) = this.waiting_since {
            this.stage.blocked(since.elapsed());
        }
    }
}

impl<S, T> fmt::Debug for Throttle<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("rate", &self.rate)
            .field("held", &self.held.as_ref().map(|b| b.len()))
            .finish_non_exhaustive()
    }
}
