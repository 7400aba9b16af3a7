//! What a stage does when a record fails.

/// What a stage does with a record-level error (a malformed row, a failing
/// record transform). Stream-level errors (I/O, a sink giving up) always end the
/// run. Errors abort unless a policy says otherwise.
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
/// assert!(!report.is_completed()); // completed, with errors
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorPolicy {
    /// End the run with the error (the default).
    #[default]
    Abort,
    /// Drop the failed record, count it in the stage's `skipped`, log it with
    /// `tracing::warn!`, and go on; the run ends as completed with errors.
    Skip,
}
