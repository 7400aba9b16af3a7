//! The timer of an operator that asks, after each call, when it wants to be
//! called next (`BatchOp::next_timer`, a stateful operator's timers).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use tokio::time::{Instant, Sleep};

/// A timer set to whatever time its operator asks for next, on Tokio's clock
/// (so paused time drives it in tests).
#[derive(Debug, Default)]
pub(crate) struct OpTimer(Option<Pin<Box<Sleep>>>);

impl OpTimer {
    /// Whether the time `due` has come (registering the task to be woken at
    /// it if not); `None`: no time asked for, the timer is dropped.
    pub(crate) fn poll_due(&mut self, due: Option<Instant>, cx: &mut Context<'_>) -> bool {
        let Some(due) = due else {
            self.0 = None;
            return false;
        };
        let sleep = self
            .0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            self.0 = None;
            return true;
        }
        false
    }
}
