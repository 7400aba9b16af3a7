//! Clocks of windowed stages: event time, with a watermark that follows the
//! records' timestamps (and, after a silence, processing time), and
//! processing time, read from Tokio's clock.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::TimeOf;
use crate::Error;
use crate::record::Timestamp;

/// Where a record stands against its stage's clock.
#[derive(Debug)]
pub(crate) enum Stamp {
    /// In time, at this timestamp.
    On(Timestamp),
    /// Behind the watermark, at this timestamp.
    Late(Timestamp),
    /// Its timestamp could not be read.
    Failed(Error),
}

/// A windowed stage's clock: the time of each record and the watermark
/// windows close by.
pub(crate) trait WindowClock<T>: Send + 'static {
    /// A batch came, at `now`.
    fn arrive(&mut self, now: Instant);
    /// The record's time, checked against the watermark (which it does not
    /// move: see [`observe`](WindowClock::observe)).
    fn stamp(&mut self, record: &T) -> Stamp;
    /// A record at `ts` was taken.
    fn observe(&mut self, ts: Timestamp);
    /// Windows ending at or before it are complete.
    fn watermark(&self) -> Timestamp;
    /// When the watermark reaches `end` if no record comes, by the clock's
    /// timer; `None` if it does not move on its own.
    fn due(&self, end: Timestamp) -> Option<Instant>;
    /// The time from `due` has come.
    fn tick(&mut self, now: Instant);
    /// Why a record at `ts` is late, for its error.
    fn late(&self, ts: Timestamp) -> String;
}

/// The event-time clock of a pipeline, made by
/// [`Pipeline::event_time`](crate::Pipeline::event_time): each record's
/// timestamp, and a watermark — the latest timestamp seen less the allowed
/// lateness, and with [`idle_advance`](super::EventTime::idle_advance), moving
/// on with processing time while the input is silent. The end of the input
/// is the final watermark (+∞).
///
/// A record whose timestamp is behind the watermark is *late*: a record
/// error under its stage's policy.
pub struct EventClock<TF> {
    time: TF,
    lateness: Duration,
    idle: Option<Duration>,
    /// The latest timestamp taken.
    max: Option<Timestamp>,
    watermark: Timestamp,
    /// When the last batch came (Tokio's clock).
    last_arrival: Option<Instant>,
}

impl<TF> EventClock<TF> {
    pub(crate) fn new(time: TF, lateness: Duration) -> Self {
        EventClock {
            time,
            lateness,
            idle: None,
            max: None,
            watermark: Timestamp::MIN,
            last_arrival: None,
        }
    }

    pub(crate) fn set_idle(&mut self, after: Duration) {
        self.idle = Some(after);
    }

    /// The watermark the records alone make.
    fn by_records(&self) -> Option<Timestamp> {
        self.max.map(|max| max - self.lateness)
    }

    /// Moves the watermark on with processing time if the input has been
    /// silent for the idle time: as if event time had kept pace with it
    /// since the last batch.
    fn advance_idle(&mut self, now: Instant) {
        let (Some(idle), Some(base), Some(last)) =
            (self.idle, self.by_records(), self.last_arrival)
        else {
            return;
        };
        let silent = now.saturating_duration_since(last);
        if silent >= idle {
            self.watermark = self.watermark.max(base + silent);
        }
    }
}

impl<T, TF: TimeOf<T>> WindowClock<T> for EventClock<TF> {
    fn arrive(&mut self, now: Instant) {
        // A silence that ended now moved the watermark, timer or not.
        self.advance_idle(now);
        self.last_arrival = Some(now);
    }

    fn stamp(&mut self, record: &T) -> Stamp {
        match self.time.time_of(record) {
            Ok(ts) if ts < self.watermark => Stamp::Late(ts),
            Ok(ts) => Stamp::On(ts),
            Err(e) => Stamp::Failed(e),
        }
    }

    fn observe(&mut self, ts: Timestamp) {
        let max = self.max.map_or(ts, |m| m.max(ts));
        self.max = Some(max);
        self.watermark = self.watermark.max(max - self.lateness);
    }

    fn watermark(&self) -> Timestamp {
        self.watermark
    }

    fn due(&self, end: Timestamp) -> Option<Instant> {
        let (idle, base, last) = (self.idle?, self.by_records()?, self.last_arrival?);
        let gap = u64::try_from(end.micros().checked_sub(base.micros())?).unwrap_or(0);
        last.checked_add(idle.max(Duration::from_micros(gap)))
    }

    fn tick(&mut self, now: Instant) {
        self.advance_idle(now);
    }

    fn late(&self, ts: Timestamp) -> String {
        let why = match (self.max, self.by_records()) {
            (Some(max), Some(base)) if base == self.watermark => format!(
                "the latest event time seen, {max}, less the allowed lateness of {:?}",
                self.lateness
            ),
            _ => "moved on by idle_advance while the input was silent".to_string(),
        };
        format!(
            "its event time {ts} is behind the watermark {} ({why}); allow more lateness in \
             event_time(..), or give the stage on_error(ErrorPolicy::Skip) to count late \
             records, or DeadLetters to keep them",
            self.watermark
        )
    }
}

impl<TF> fmt::Debug for EventClock<TF> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventClock")
            .field("lateness", &self.lateness)
            .field("idle_advance", &self.idle)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

/// The processing-time clock of a windowed stage: a record's time is when
/// its batch came, on Tokio's clock (as UTC: the wall clock when the stage
/// took its first batch, plus Tokio's time since), and the watermark is now.
/// No record is ever late.
#[derive(Debug, Default)]
pub struct ProcessingClock {
    /// Tokio's instant and the wall clock at the first batch.
    base: Option<(Instant, Timestamp)>,
    now: Option<Timestamp>,
}

impl ProcessingClock {
    fn at(&self, now: Instant) -> Option<Timestamp> {
        let (instant, wall) = self.base?;
        Some(wall + now.saturating_duration_since(instant))
    }
}

impl<T> WindowClock<T> for ProcessingClock {
    fn arrive(&mut self, now: Instant) {
        self.base.get_or_insert_with(|| (now, wall_clock()));
        self.now = self.at(now);
    }

    fn stamp(&mut self, _record: &T) -> Stamp {
        Stamp::On(self.now.unwrap_or(Timestamp::MIN))
    }

    fn observe(&mut self, _ts: Timestamp) {}

    fn watermark(&self) -> Timestamp {
        self.now.unwrap_or(Timestamp::MIN)
    }

    fn due(&self, end: Timestamp) -> Option<Instant> {
        let (instant, wall) = self.base?;
        let gap = u64::try_from(end.micros().checked_sub(wall.micros())?).unwrap_or(0);
        instant.checked_add(Duration::from_micros(gap))
    }

    fn tick(&mut self, now: Instant) {
        self.now = self.at(now);
    }

    fn late(&self, _ts: Timestamp) -> String {
        unreachable!("no record is late by processing time")
    }
}

/// The wall clock, as a timestamp.
fn wall_clock() -> Timestamp {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => Timestamp::from_micros(0) + since,
        Err(before) => Timestamp::from_micros(0) - before.duration(),
    }
}
