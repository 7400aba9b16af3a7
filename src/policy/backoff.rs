use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How long to wait before each retry: exponential growth from an initial
/// delay, capped, with jitter so many failing records do not retry in lockstep.
///
/// With jitter (the default) each delay is drawn uniformly from the upper half
/// of the exponential delay ("equal jitter"): delays still grow, and retries
/// spread out.
///
/// ```
/// use dataflare::Backoff;
/// use std::time::Duration;
///
/// let b = Backoff::exponential(Duration::from_millis(100))
///     .max(Duration::from_secs(1))
///     .jitter(false);
/// assert_eq!(b.delay(1), Duration::from_millis(100));
/// assert_eq!(b.delay(2), Duration::from_millis(200));
/// assert_eq!(b.delay(5), Duration::from_secs(1)); // capped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: bool,
}

impl Default for Backoff {
    /// 100 ms, doubling, capped at 10 s, with jitter.
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100))
    }
}

impl Backoff {
    /// Starts at `initial` and doubles after each failed attempt, up to 10 s
    /// unless [`max`](Backoff::max) says otherwise; with jitter.
    pub fn exponential(initial: Duration) -> Self {
        Backoff {
            initial,
            max: Duration::from_secs(10).max(initial),
            jitter: true,
        }
    }

    /// No wait at all between attempts.
    pub fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            jitter: false,
        }
    }

    /// Caps each delay.
    ///
    /// ```
    /// let b = dataflare::Backoff::exponential(std::time::Duration::from_secs(1))
    ///     .max(std::time::Duration::from_secs(4));
    /// # drop(b);
    /// ```
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Turns jitter on or off (off gives exact, predictable delays).
    ///
    /// ```
    /// let b = dataflare::Backoff::default().jitter(false);
    /// # drop(b);
    /// ```
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(32);
        let base = self
            .initial
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        if !self.jitter || base.is_zero() {
            return base;
        }
        let half = base / 2;
        let nanos = (base - half).as_nanos() as u64;
        half + Duration::from_nanos(random_u64() % nanos.max(1))
    }
}

/// A small, fast, non-cryptographic random number (for jitter only).
fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9E37_79B9_7F4A_7C15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let b = Backoff::exponential(Duration::from_millis(100));
        for retry in 1..8 {
            let exact = b.jitter(false).delay(retry);
            for _ in 0..100 {
                let d = b.delay(retry);
                assert!(d >= exact / 2 && d <= exact, "{d:?} vs {exact:?}");
            }
        }
    }

    #[test]
    fn huge_retry_counts_saturate_at_the_cap() {
        let b = Backoff::exponential(Duration::from_secs(1)).jitter(false);
        assert_eq!(b.delay(1000), Duration::from_secs(10));
        assert_eq!(Backoff::none().delay(3), Duration::ZERO);
    }
}
