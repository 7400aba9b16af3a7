//! Bounds on what a stateful stage may hold.

use crate::Error;

/// The most a stateful stage may hold: keys (groups, windows, seen keys, join
/// rows) and estimated bytes. Over either, the stage fails the run with an
/// error naming it, the limit and what it held, before memory runs out (an
/// operator that documents eviction, such as a bounded dedup, evicts
/// instead).
///
/// State is bounded by these limits alone, not by the in-flight batches: a
/// run's memory is its batches in flight plus its stages' state limits.
///
/// ```
/// use dataflare::state::StateLimits;
///
/// let limits = StateLimits::default().max_keys(50_000).max_bytes(64 << 20);
/// assert_eq!(limits.keys(), 50_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    max_keys: u64,
    max_bytes: u64,
}

impl Default for StateLimits {
    /// 10 million keys, 1 GiB.
    fn default() -> Self {
        StateLimits {
            max_keys: 10_000_000,
            max_bytes: 1 << 30,
        }
    }
}

impl StateLimits {
    /// Sets the most keys the stage may hold.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn max_keys(mut self, n: u64) -> Self {
        assert!(
            n > 0,
            "max_keys: a stateful stage must be allowed one key at least"
        );
        self.max_keys = n;
        self
    }

    /// Sets the most estimated bytes the stage may hold.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn max_bytes(mut self, n: u64) -> Self {
        assert!(
            n > 0,
            "max_state_bytes: a stateful stage must be allowed some bytes"
        );
        self.max_bytes = n;
        self
    }

    /// The most keys allowed.
    pub fn keys(&self) -> u64 {
        self.max_keys
    }

    /// The most estimated bytes allowed.
    pub fn bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Fails if `keys` or `bytes` are over the limits.
    pub(crate) fn check(&self, stage: &str, keys: u64, bytes: u64) -> Result<(), Error> {
        if keys > self.max_keys {
            return Err(Error::msg(format!(
                "stage {stage:?} holds {keys} keys, over its max_keys ({}); raise it with \
                 .max_keys(n) if the memory is there, or group by fewer keys (a coarser key, \
                 a window that closes)",
                self.max_keys
            ))
            .with_stage(stage));
        }
        if bytes > self.max_bytes {
            return Err(Error::msg(format!(
                "stage {stage:?} holds about {bytes} bytes of state ({keys} keys), over its \
                 max_state_bytes ({}); raise it with .max_state_bytes(n) if the memory is \
                 there, or keep less per key",
                self.max_bytes
            ))
            .with_stage(stage));
        }
        Ok(())
    }
}
