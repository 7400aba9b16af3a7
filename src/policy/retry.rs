use super::{Backoff, ErrorPolicy};

/// Retry a failed record: up to `max_attempts` attempts in all, waiting a
/// [`Backoff`] delay between them; when they are exhausted, the final policy
/// ([`then`](Retry::then), [`ErrorPolicy::Abort`] unless set) decides.
///
/// Made by [`ErrorPolicy::retry`]; converts into an [`ErrorPolicy`].
///
/// ```
/// use dataflare::{Backoff, ErrorPolicy};
///
/// let policy: ErrorPolicy = ErrorPolicy::retry(3).backoff(Backoff::none()).then(ErrorPolicy::Skip).into();
/// # drop(policy);
/// ```
#[derive(Debug, Clone)]
pub struct Retry {
    max_attempts: u32,
    backoff: Backoff,
    then: Box<ErrorPolicy>,
}

impl Retry {
    /// Up to `max_attempts` attempts in all.
    ///
    /// # Panics
    ///
    /// If `max_attempts` is 0 (the record must be tried at least once).
    #[track_caller]
    pub fn new(max_attempts: u32) -> Self {
        assert!(max_attempts > 0, "retry: max_attempts must be at least 1");
        Retry {
            max_attempts,
            backoff: Backoff::default(),
            then: Box::new(ErrorPolicy::Abort),
        }
    }

    /// Sets the delays between attempts.
    ///
    /// ```
    /// let r = dataflare::Retry::new(4).backoff(dataflare::Backoff::none());
    /// # drop(r);
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets what happens once the attempts are exhausted.
    ///
    /// ```
    /// let r = dataflare::Retry::new(4).then(dataflare::ErrorPolicy::Skip);
    /// # drop(r);
    /// ```
    pub fn then(mut self, policy: impl Into<ErrorPolicy>) -> Self {
        self.then = Box::new(policy.into());
        self
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the attempt after `attempts` failed ones, or `None`
    /// when the attempts are exhausted.
    pub(crate) fn next_delay(&self, attempts: u32) -> Option<std::time::Duration> {
        (attempts < self.max_attempts).then(|| self.backoff.delay(attempts))
    }

    pub(crate) fn then_policy(&self) -> &ErrorPolicy {
        &self.then
    }
}
