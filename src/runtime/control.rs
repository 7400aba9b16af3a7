//! What a run's handle controls from outside: pause, resume and stop, seen by
//! every source of the run before it is polled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::Budget;

/// The run's pause and stop switches, shared by its handle and its sources.
#[derive(Debug, Default)]
pub(crate) struct Control {
    paused: AtomicBool,
    stopped: AtomicBool,
    /// Sources waiting for a resume (or a stop).
    waiting: Mutex<Vec<Waker>>,
    /// Time spent paused: when the current pause began, and the total of
    /// pauses that ended (deadlines and idle timeouts do not count it).
    pauses: Mutex<(Option<Instant>, Duration)>,
    /// The run's phase (`pipeline::Phase` as a code), and a signal for its
    /// progress publisher on every change (pauses and stops included).
    phase: std::sync::atomic::AtomicU8,
    changed: tokio::sync::Notify,
    /// The run's byte budget for batches in flight, if it has one.
    budget: Option<Arc<Budget>>,
}

impl Control {
    /// The switches of a run with a budget of `max_in_flight_bytes` for its
    /// batches in flight, if given.
    pub(crate) fn new(max_in_flight_bytes: Option<usize>) -> Control {
        Control {
            budget: max_in_flight_bytes.map(|max| Arc::new(Budget::new(max))),
            ..Control::default()
        }
    }

    /// The run's byte budget, if it has one.
    pub(crate) fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    /// Sources stop being polled (batches in flight go on).
    pub(crate) fn pause(&self) {
        if !self.paused.swap(true, Ordering::SeqCst) {
            lock(&self.pauses).0 = Some(Instant::now());
        }
        self.changed.notify_one();
    }

    /// Sets the run's phase (a `pipeline::Phase` code).
    pub(crate) fn set_phase(&self, code: u8) {
        self.phase.store(code, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// The run's phase code.
    pub(crate) fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    /// Waits for the next change of phase, pause, resume or stop.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Sources are polled again.
    pub(crate) fn resume(&self) {
        if self.paused.swap(false, Ordering::SeqCst) {
            let mut pauses = lock(&self.pauses);
            if let Some(since) = pauses.0.take() {
                pauses.1 += since.elapsed();
            }
        }
        self.wake();
        self.changed.notify_one();
    }

    /// Sources end at their next poll: the run drains and commits what was
    /// read.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
        self.changed.notify_one();
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Time spent paused so far (the current pause included).
    pub(crate) fn paused_for(&self) -> Duration {
        let pauses = lock(&self.pauses);
        pauses.1 + pauses.0.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// For a source about to be polled: `Ready(true)` to go on,
    /// `Ready(false)` once the run is stopped (the source ends), `Pending`
    /// while paused (woken on resume or stop).
    pub(crate) fn poll_gate(&self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.is_stopped() {
            return Poll::Ready(false);
        }
        if !self.is_paused() {
            return Poll::Ready(true);
        }
        lock(&self.waiting).push(cx.waker().clone());
        // A resume between the check and the push must not be missed.
        if self.is_paused() && !self.is_stopped() {
            Poll::Pending
        } else {
            Poll::Ready(!self.is_stopped())
        }
    }

    fn wake(&self) {
        for waker in std::mem::take(&mut *lock(&self.waiting)) {
            waker.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
