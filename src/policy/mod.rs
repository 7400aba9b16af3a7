//! What a stage does when a record fails: [`ErrorPolicy`], with [`Retry`] and
//! its [`Backoff`], and [`DeadLetters`] for failed records kept aside.

mod backoff;
mod dead_letter;
mod retry;

pub use backoff::Backoff;
pub(crate) use dead_letter::DeadLetterSender;
pub use dead_letter::{DeadLetters, Rejected};
pub use retry::Retry;

/// What a stage does with a record-level error: a malformed row from a source,
/// a failing `try_map`. Stream-level errors (I/O, a sink giving up) always end
/// the run. Errors abort unless a policy says otherwise.
///
/// Set per stage with [`Pipeline::on_error`](crate::Pipeline::on_error) (it
/// applies to the stage added last), or for every stage without its own with
/// [`Pipeline::default_policy`](crate::Pipeline::default_policy).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::testkit::Script;
///
/// let source = Script::new()
///     .batch(vec![1, 2])
///     .error(Error::parse("bad row"))
///     .batch(vec![3])
///     .into_source();
/// let report = Pipeline::from(source)
///     .on_error(ErrorPolicy::Skip)
///     .to(sink::discard())
///     .run()
///     .await?;
/// assert_eq!(report.records_out(), 3);
/// assert_eq!(report.skipped(), 1);
/// assert!(report.has_errors()); // completed, with errors
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// End the run with the error (the default).
    #[default]
    Abort,
    /// Drop the failed record, count it in the stage's `skipped`, log it with
    /// `tracing::warn!` (at a bounded rate), and go on.
    Skip,
    /// Try the record again after a [`Backoff`] delay, up to a number of
    /// attempts; then apply the retry's final policy.
    Retry(Retry),
    /// Send the failed record, its error and position to a dead-letter sink,
    /// count it in the stage's `dead_lettered`, and go on.
    DeadLetter(DeadLetters),
}

impl ErrorPolicy {
    /// Retries up to `max_attempts` attempts in all (the first included), with
    /// the default [`Backoff`], then aborts; see [`Retry`] to change both.
    ///
    /// ```
    /// use dataflare::prelude::*;
    /// use dataflare::{Backoff, ErrorPolicy};
    /// use std::time::Duration;
    ///
    /// let policy: ErrorPolicy = ErrorPolicy::retry(5)
    ///     .backoff(Backoff::exponential(Duration::from_millis(50)).max(Duration::from_secs(2)))
    ///     .then(ErrorPolicy::Skip)
    ///     .into();
    /// # drop(policy);
    /// ```
    #[track_caller]
    pub fn retry(max_attempts: u32) -> Retry {
        Retry::new(max_attempts)
    }

    /// The policy that applies once retries (if any) are exhausted.
    pub(crate) fn final_policy(&self) -> &ErrorPolicy {
        match self {
            ErrorPolicy::Retry(r) => r.then_policy().final_policy(),
            other => other,
        }
    }
}

/// How many failed records a run may put aside (skip or dead-letter) and still
/// count as done: past the limit, a run that would have completed with errors
/// ends as failed. Set with [`Pipeline::max_errors`](crate::Pipeline::max_errors).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MaxErrors {
    /// At most this many failed records.
    Count(u64),
    /// At most this fraction (0.0–1.0) of the records the source produced.
    Rate(f64),
}

impl MaxErrors {
    /// True when `failed` records out of `total` are more than allowed.
    pub(crate) fn exceeded(self, failed: u64, total: u64) -> bool {
        match self {
            MaxErrors::Count(n) => failed > n,
            MaxErrors::Rate(r) => failed as f64 > r * total as f64,
        }
    }
}

impl From<Retry> for ErrorPolicy {
    fn from(retry: Retry) -> Self {
        ErrorPolicy::Retry(retry)
    }
}

impl From<DeadLetters> for ErrorPolicy {
    fn from(dead_letters: DeadLetters) -> Self {
        ErrorPolicy::DeadLetter(dead_letters)
    }
}
