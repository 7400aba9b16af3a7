use std::fmt;
use std::time::Duration;

use super::Date;

/// An instant in UTC, with microsecond precision: microseconds since
/// 1970-01-01T00:00:00Z (negative before).
///
/// Prints as RFC 3339 in UTC (`2026-11-30T15:04:05Z`, with `.ffffff` when
/// there are fractions of a second).
///
/// ```
/// use dataflare::record::Timestamp;
/// use std::time::Duration;
///
/// let t = Timestamp::from_micros(1_700_000_000_000_000);
/// assert_eq!(t.to_string(), "2023-11-14T22:13:20Z");
/// assert_eq!((t + Duration::from_millis(1500)).to_string(), "2023-11-14T22:13:21.500000Z");
/// assert!(t < t + Duration::from_micros(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    micros: i64,
}

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

impl Timestamp {
    /// The earliest timestamp.
    pub const MIN: Timestamp = Timestamp { micros: i64::MIN };
    /// The latest timestamp (a bounded input's final watermark).
    pub const MAX: Timestamp = Timestamp { micros: i64::MAX };

    /// The instant `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp { micros }
    }

    /// The instant `secs` seconds after the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp {
            micros: secs.saturating_mul(MICROS_PER_SEC),
        }
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.micros
    }

    /// The date (UTC) of this instant.
    pub fn date(self) -> Date {
        Date::from_days_since_epoch(self.micros.div_euclid(MICROS_PER_DAY) as i32)
    }

    /// This instant plus `d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp {
            micros: self.micros.saturating_add(duration_micros(d)),
        }
    }

    /// This instant minus `d`, saturating at [`Timestamp::MIN`].
    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp {
            micros: self.micros.saturating_sub(duration_micros(d)),
        }
    }
}

/// A duration in whole microseconds (saturating).
pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, d: Duration) -> Timestamp {
        self.saturating_sub(d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.date().ymd();
        let in_day = self.micros.rem_euclid(MICROS_PER_DAY);
        let secs = in_day / MICROS_PER_SEC;
        let fraction = in_day % MICROS_PER_SEC;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if fraction != 0 {
            write!(f, ".{fraction:06}")?;
        }
        f.write_str("Z")
    }
}
