use std::task::{Context, Poll};
use std::time::Duration;

use crate::metrics::StageMetrics;
use crate::policy::{DeadLetterSender, Rejected};
use crate::{Error, ErrorPolicy, Result};

/// What to do next with a failed record, as the stage's [`ErrorPolicy`] says.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Try the record again after this delay.
    Retry(Duration),
    /// The record is accounted for (skipped or dead-lettered): go on.
    Dropped,
    /// End the run with this error.
    Abort(Error),
}

/// A stage's handling of failed records: applies its policy, keeps the counts,
/// and holds a reject until the dead-letter channel has room.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    policy: Option<ErrorPolicy>,
    sender: Option<DeadLetterSender>,
    pending: Option<Rejected>,
}

impl Failures {
    /// Decides what happens to a record that failed with `error` after
    /// `attempts` attempts. `retryable` is false where the record cannot be
    /// tried again (a source's malformed input): retries then count as exhausted.
    pub(crate) fn handle(
        &mut self,
        stage: &StageMetrics,
        error: Error,
        attempts: u32,
        retryable: bool,
        record: impl FnOnce() -> Option<String>,
    ) -> Outcome {
        self.handle_as(stage, error, attempts, retryable, record, false)
    }

    /// As [`handle`](Failures::handle), for a record behind the watermark
    /// when `late`: skipped, it counts as `late` rather than `skipped`.
    pub(crate) fn handle_as(
        &mut self,
        stage: &StageMetrics,
        error: Error,
        attempts: u32,
        retryable: bool,
        record: impl FnOnce() -> Option<String>,
        late: bool,
    ) -> Outcome {
        let error = error.with_stage(stage.name()).with_attempts(attempts);
        if !error.is_record_level() {
            return Outcome::Abort(error);
        }
        let policy = self.policy.get_or_insert_with(|| stage.policy());
        let mut policy: &ErrorPolicy = policy;
        loop {
            match policy {
                ErrorPolicy::Abort => return Outcome::Abort(error),
                ErrorPolicy::Skip if late => {
                    stage.skip_late(error);
                    return Outcome::Dropped;
                }
                ErrorPolicy::Skip => {
                    stage.skip(error);
                    return Outcome::Dropped;
                }
                ErrorPolicy::Retry(retry) => match retry.next_delay(attempts) {
                    Some(delay) if retryable => {
                        stage.retry();
                        return Outcome::Retry(delay);
                    }
                    _ => policy = retry.then_policy(),
                },
                ErrorPolicy::DeadLetter(dead_letters) => {
                    self.sender.get_or_insert_with(|| dead_letters.sender());
                    self.pending = Some(Rejected::new(stage.name(), &error, record(), attempts));
                    stage.dead_letter(error);
                    return Outcome::Dropped;
                }
            }
        }
    }

    /// Sends the reject waiting for the dead-letter channel, if any.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.sender {
            Some(sender) => sender.poll_send(cx, &mut self.pending),
            None => Poll::Ready(Ok(())),
        }
    }
}
