//! The clock of every stage's busy time.
//!
//! Stages read it around each batch they work on, so its cost is paid per
//! batch: on this project's machine std's `Instant::now` (a vDSO
//! `clock_gettime`) costs about 24 ns, and the six readings a batch of a
//! source, a fused pass and a sink were 12–15% of a cheap `map → filter`
//! chain's time. So:
//! - on x86-64 Linux, where the kernel itself keeps time with the CPU's
//!   time-stamp counter (its clock source is `tsc`: the counter is
//!   constant-rate and the same on every core), a reading is that counter
//!   (about 9 ns), converted to nanoseconds only when counts are published;
//!   elsewhere it is std's clock.
//!
//! (Handing the reading that ends a stage's work on to the stage that polled
//! it, as its start, saves two readings of six, but measured slower: 0.322 s
//! against 0.302 s for the pipeline bench's fused chain, same run.)
//!
//! The counter's rate is measured once per process (100 µs against std's
//! clock, at the first reading) and refined each time counts are published,
//! against the time since that first reading.
//!
//! Only busy times come from this clock; timers, deadlines and waits use
//! Tokio's (which tests pause).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A reading of the stage clock: counter ticks, or nanoseconds where there
/// is no counter to trust. Only differences of two readings mean anything.
///
/// Public only because the sealed [`Step`](crate::ops::Step) trait's
/// hidden methods take it; not reachable from outside the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// The ticks from `earlier` to this reading, 0 if `earlier` is later.
    #[inline]
    pub(crate) fn ticks_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The reading `time` after this one.
    pub(crate) fn after(self, time: Duration) -> Instant {
        Instant(self.0.saturating_add(ticks(time)))
    }

    /// The time from `earlier` to this reading, zero if `earlier` is later.
    pub(crate) fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(nanos(self.ticks_since(earlier)))
    }
}

/// The current time, for busy times.
#[inline]
pub(crate) fn now() -> Instant {
    let clock = clock();
    if clock.counter {
        Instant(counter())
    } else {
        Instant(clock.anchor.elapsed().as_nanos() as u64)
    }
}

/// `ticks` of this clock in nanoseconds.
pub(crate) fn nanos(ticks: u64) -> u64 {
    let clock = clock();
    if !clock.counter {
        return ticks;
    }
    (ticks as f64 * f64::from_bits(clock.nanos_per_tick.load(Relaxed))) as u64
}

/// `time` in ticks of this clock.
pub(crate) fn ticks(time: Duration) -> u64 {
    let clock = clock();
    match clock.counter {
        true => {
            (time.as_nanos() as f64 / f64::from_bits(clock.nanos_per_tick.load(Relaxed))) as u64
        }
        false => time.as_nanos() as u64,
    }
}

/// Measures the counter's rate again, over the whole time since the first
/// reading (more exact the longer the process has run). Cheap enough to call
/// whenever counts are published, not per batch.
pub(crate) fn refine() {
    let clock = clock();
    if clock.counter {
        let (elapsed, ticks) = (clock.anchor.elapsed(), counter());
        if elapsed >= Duration::from_millis(1) {
            clock.set_rate(elapsed, ticks.saturating_sub(clock.anchor_ticks));
        }
    }
}

struct Clock {
    /// Readings are the time-stamp counter's.
    counter: bool,
    /// The first reading, by std's clock and the counter.
    anchor: std::time::Instant,
    anchor_ticks: u64,
    /// Nanoseconds a tick, an `f64`'s bits.
    nanos_per_tick: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        let counter = counter_is_reliable();
        let anchor = std::time::Instant::now();
        let anchor_ticks = if counter { self::counter() } else { 0 };
        let clock = Clock {
            counter,
            anchor,
            anchor_ticks,
            nanos_per_tick: AtomicU64::new(1f64.to_bits()),
        };
        if counter {
            // A first rate, good to about 0.1%: `refine` makes it better.
            let mut elapsed = anchor.elapsed();
            while elapsed < Duration::from_micros(100) {
                std::hint::spin_loop();
                elapsed = anchor.elapsed();
            }
            clock.set_rate(elapsed, self::counter().saturating_sub(anchor_ticks));
        }
        clock
    }

    fn set_rate(&self, elapsed: Duration, ticks: u64) {
        if ticks > 0 {
            let rate = elapsed.as_nanos() as f64 / ticks as f64;
            self.nanos_per_tick.store(rate.to_bits(), Relaxed);
        }
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

/// Whether the time-stamp counter can time work: Linux keeps its own time
/// with it only when it found it constant-rate and synchronised across
/// cores (otherwise it switches to another clock source).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn counter_is_reliable() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|source| source.trim() == "tsc")
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn counter_is_reliable() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn counter() -> u64 {
    safe_arch::read_timestamp_counter()
}

#[cfg(not(target_arch = "x86_64"))]
fn counter() -> u64 {
    unreachable!("the time-stamp counter is used on x86-64 only")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock agrees with std's over a stretch of real work, within 5%
    /// (the two readings at each end are a few nanoseconds apart unless the
    /// thread is preempted between them).
    #[test]
    fn measures_what_std_measures() {
        let (start, std_start) = (now(), std::time::Instant::now());
        let mut x = 1u64;
        while std_start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (ours, theirs) = (now().saturating_duration_since(start), std_start.elapsed());
        let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
        assert!(
            (0.95..1.05).contains(&ratio),
            "{ours:?} vs std's {theirs:?}"
        );
    }
}
