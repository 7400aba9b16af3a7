use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::ser::{Serialize, Serializer};

use super::{Date, excerpt};

/// An instant in UTC, with microsecond precision: microseconds since
/// 1970-01-01T00:00:00Z (negative before).
///
/// Prints as RFC 3339 in UTC (`2026-11-30T15:04:05Z`, with `.ffffff` when
/// there are fractions of a second), and serializes as that text.
///
/// Parses ([`FromStr`]) RFC 3339 and its common ISO 8601 spellings, years
/// 0000 to 9999:
///
/// - `2026-11-30T15:04:05Z`; `t` and `z` in lower case, or a space instead of
///   the `T` (`2026-11-30 15:04:05Z`), are accepted;
/// - a fraction of a second of 1 to 6 digits (`.5`, `.123456`); more digits
///   only when those past the sixth are zeros (`.123456000`): a timestamp
///   keeps microseconds, and a finer instant is refused rather than silently
///   cut, so two distinct events never become one;
/// - an offset instead of `Z`: `+02:00`, `-0530` or `+02`, converted to UTC
///   (`2026-11-30T17:04:05+02:00` is `2026-11-30T15:04:05Z`);
/// - no zone at all (`2026-11-30T15:04:05`) is refused: such a time is a wall
///   clock reading whose zone only its writer knew, and taking it as UTC would
///   shift every instant by the writer's offset without a word. Add the `Z`
///   (or read the column as text and convert it knowing the zone).
///
/// Leap seconds (`:60`) are refused, as are hours past 23.
///
/// ```
/// use dataflare::record::Timestamp;
///
/// let t: Timestamp = "2026-11-30T17:04:05.25+02:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-30T15:04:05.250000Z");
/// assert_eq!("2026-11-30 15:04:05.25z".parse::<Timestamp>(), Ok(t));
///
/// let e = "2026-13-01T00:00:00Z".parse::<Timestamp>().unwrap_err();
/// assert_eq!(e.to_string(), r#""2026-13-01T00:00:00Z" is not a timestamp: month 13"#);
/// assert!("2026-11-30T15:04:05".parse::<Timestamp>().is_err()); // no zone
/// ```
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

/// As its RFC 3339 text (a JSON string), as [`Display`](fmt::Display) writes it.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The error for text that is not a [`Timestamp`]: it names the text and what
/// is wrong with it.
///
/// ```
/// use dataflare::record::Timestamp;
///
/// let e = "2026-11-30T15:04:05".parse::<Timestamp>().unwrap_err();
/// assert!(e.to_string().starts_with(r#""2026-11-30T15:04:05" is not a timestamp: no time zone"#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} is not a timestamp: {reason}")]
pub struct ParseTimestampError {
    /// The text, quoted (and cut short when long).
    text: String,
    reason: String,
}

/// Reads RFC 3339 text (as [`FromStr`] does), so typed records can hold a
/// `Timestamp` read from CSV or JSON.
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Timestamp, ParseTimestampError> {
        parse(s).map_err(|reason| ParseTimestampError {
            text: excerpt(s),
            reason,
        })
    }
}

const SHAPE: &str = "expected YYYY-MM-DDTHH:MM:SS, an optional fraction (.ffffff), then Z or an \
                     offset (+HH:MM)";

/// The instant `s` names, or what is wrong with it.
fn parse(s: &str) -> Result<Timestamp, String> {
    let b = s.as_bytes();
    let number = |at: usize, len: usize| -> Option<i64> {
        b.get(at..at + len)?.iter().try_fold(0, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let (Some(year), Some(month), Some(day)) = (number(0, 4), number(5, 2), number(8, 2)) else {
        return Err(SHAPE.into());
    };
    if !at(4, b'-') || !at(7, b'-') {
        return Err(SHAPE.into());
    }
    if b.len() == 10 {
        return Err("a date without a time of day".into());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(SHAPE.into());
    }
    let (Some(hour), Some(minute)) = (number(11, 2), number(14, 2)) else {
        return Err(SHAPE.into());
    };
    if !at(13, b':') {
        return Err(SHAPE.into());
    }
    let second = match number(17, 2) {
        Some(second) if at(16, b':') => second,
        _ => return Err(format!("expected seconds (HH:MM:SS); {SHAPE}")),
    };
    if !(1..=12).contains(&month) {
        return Err(format!("month {month}"));
    }
    let Some(date) = Date::from_ymd(year as i32, month as u32, day as u32) else {
        return Err(format!("day {day} of {year:04}-{month:02}"));
    };
    if hour > 23 {
        return Err(format!("hour {hour}"));
    }
    if minute > 59 {
        return Err(format!("minute {minute}"));
    }
    if second == 60 {
        return Err("second 60 (leap seconds are not represented)".into());
    }
    if second > 59 {
        return Err(format!("second {second}"));
    }
    let mut i = 19;
    let mut fraction = 0;
    if at(i, b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() {
            return Err("expected digits after the decimal point".into());
        }
        if digits.iter().skip(6).any(|&d| d != b'0') {
            return Err(format!(
                "{} digits of fraction: a timestamp keeps microseconds (6 digits)",
                digits.len()
            ));
        }
        fraction = (0..6).fold(0, |n, k| {
            n * 10 + digits.get(k).map_or(0, |&d| i64::from(d - b'0'))
        });
    }
    let offset_secs = match b.get(i) {
        None => {
            return Err(
                "no time zone: add Z for UTC, or an offset such as +02:00 (a time without \
                 a zone is not taken as UTC)"
                    .into(),
            );
        }
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let Some(hours) = number(i + 1, 2) else {
                return Err("expected an offset of the form +HH:MM, +HHMM or +HH".into());
            };
            i += 3;
            let minutes = if at(i, b':') {
                let Some(minutes) = number(i + 1, 2) else {
                    return Err("expected an offset of the form +HH:MM, +HHMM or +HH".into());
                };
                i += 3;
                minutes
            } else if let Some(minutes) = number(i, 2) {
                i += 2;
                minutes
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return Err(format!(
                    "offset {}{hours:02}:{minutes:02}",
                    char::from(sign)
                ));
            }
            let secs = hours * 3600 + minutes * 60;
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => {
            return Err(format!(
                "expected Z or an offset (+HH:MM) after the time, found {}",
                excerpt(&s[i..])
            ));
        }
    };
    if i != b.len() {
        return Err(format!(
            "unexpected {} after the time zone",
            excerpt(&s[i..])
        ));
    }
    let secs = i64::from(date.days_since_epoch()) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Ok(Timestamp::from_micros(secs * MICROS_PER_SEC + fraction))
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.date().ymd();
        let in_day = self.micros.rem_euclid(MICROS_PER_DAY);
        let secs = in_day / MICROS_PER_SEC;
        let fraction = in_day % MICROS_PER_SEC;
        let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
        if !(0..=9999).contains(&y) {
            write!(f, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}")?;
            if fraction != 0 {
                write!(f, ".{fraction:06}")?;
            }
            return f.write_str("Z");
        }
        // The common case by hand: `write!` with padded fields cost a
        // CSV-to-JSON-Lines job with a timestamp column 4% of its work.
        let mut buf = *b"0000-00-00T00:00:00.000000Z";
        digits(&mut buf[0..4], y as u32);
        digits(&mut buf[5..7], m);
        digits(&mut buf[8..10], d);
        digits(&mut buf[11..13], hh as u32);
        digits(&mut buf[14..16], mm as u32);
        digits(&mut buf[17..19], ss as u32);
        let len = if fraction == 0 {
            buf[19] = b'Z';
            20
        } else {
            digits(&mut buf[20..26], fraction as u32);
            27
        };
        f.write_str(std::str::from_utf8(&buf[..len]).expect("ASCII digits"))
    }
}

/// Writes `n` in decimal into `out`, zero-padded to its length.
fn digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn reason(s: &str) -> String {
        let e = s.parse::<Timestamp>().unwrap_err().to_string();
        let prefix = format!("{s:?} is not a timestamp: ");
        e.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{e}"))
            .to_string()
    }

    #[test]
    fn parses_rfc_3339_and_its_spellings() {
        let t = Timestamp::from_secs(1_700_000_000);
        for text in [
            "2023-11-14T22:13:20Z",
            "2023-11-14t22:13:20z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20.000000Z",
            "2023-11-14T22:13:20.000000000Z",
            "2023-11-15T00:13:20+02:00",
            "2023-11-15T00:13:20+0200",
            "2023-11-15T00:13:20+02",
            "2023-11-14T16:43:20-0530",
            "2023-11-14T22:13:20-00:00",
        ] {
            assert_eq!(ts(text), t, "{text}");
        }
        assert_eq!(ts("1970-01-01T00:00:00.5Z").micros(), 500_000);
        assert_eq!(ts("1970-01-01T00:00:00.000001Z").micros(), 1);
        assert_eq!(ts("1969-12-31T23:59:59.999999Z").micros(), -1);
        assert_eq!(
            ts("0000-01-01T00:00:00Z").to_string(),
            "0000-01-01T00:00:00Z"
        );
        assert_eq!(
            ts("9999-12-31T23:59:59.999999Z").to_string(),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            ts("2024-02-29T12:00:00Z").date(),
            Date::from_ymd(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(reason("2026-13-01T00:00:00Z"), "month 13");
        assert_eq!(reason("2026-00-01T00:00:00Z"), "month 0");
        assert_eq!(reason("2026-02-29T00:00:00Z"), "day 29 of 2026-02");
        assert_eq!(reason("2026-01-01T24:00:00Z"), "hour 24");
        assert_eq!(reason("2026-01-01T23:60:00Z"), "minute 60");
        assert!(reason("2026-12-31T23:59:60Z").contains("leap seconds"));
        assert!(reason("2026-11-30T15:04:05").starts_with("no time zone"));
        assert!(reason("2026-11-30T15:04:05.5").starts_with("no time zone"));
        assert_eq!(reason("2026-11-30"), "a date without a time of day");
        assert!(reason("2026-11-30T15:04Z").starts_with("expected seconds"));
        assert!(reason("2026-11-30T15:04:05.1234567Z").contains("7 digits of fraction"));
        assert!(reason("2026-11-30T15:04:05.Z").contains("digits after the decimal point"));
        assert_eq!(reason("2026-11-30T15:04:05+24:00"), "offset +24:00");
        assert_eq!(reason("2026-11-30T15:04:05-05:60"), "offset -05:60");
        assert!(reason("2026-11-30T15:04:05+2").starts_with("expected an offset"));
        assert!(reason("2026-11-30T15:04:05 UTC").contains(r#"found " UTC""#));
        assert!(reason("2026-11-30T15:04:05Zx").contains(r#"unexpected "x""#));
        assert!(reason("2026-11-30T15:04:05+02:00:00").contains("unexpected"));
        for shape in [
            "",
            "yesterday",
            "26-11-30T15:04:05Z",
            "2026/11/30T15:04:05Z",
            "2026-11-30X15:04:05Z",
            "2026-11-30T15-04-05Z",
            "+2026-11-30T15:04:05Z",
            "2026-1-30T15:04:05Z",
        ] {
            assert!(
                reason(shape).starts_with("expected"),
                "{shape}: {}",
                reason(shape)
            );
        }
    }

    #[test]
    fn a_long_text_is_cut_short_in_the_error() {
        let long = format!("2026-11-30T15:04:05Z{}", "x".repeat(1000));
        let e = long.parse::<Timestamp>().unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn serializes_as_its_text() {
        let t = Timestamp::from_micros(1_700_000_000_000_001);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2023-11-14T22:13:20.000001Z\""
        );
    }

    /// Micros of 0000-01-01T00:00:00Z and of 9999-12-31T23:59:59.999999Z.
    const FIRST: i64 = -62_167_219_200_000_000;
    const LAST: i64 = 253_402_300_799_999_999;

    #[test]
    fn the_range_ends_are_right() {
        assert_eq!(ts("0000-01-01T00:00:00Z").micros(), FIRST);
        assert_eq!(ts("9999-12-31T23:59:59.999999Z").micros(), LAST);
    }

    proptest! {
        #[test]
        fn prints_then_parses_back(micros in FIRST..=LAST) {
            let t = Timestamp::from_micros(micros);
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }

        #[test]
        fn an_offset_names_the_same_instant(micros in FIRST + 86_400_000_000..=LAST - 86_400_000_000,
                                           minutes in -23 * 60 - 59..=23 * 60 + 59i64) {
            let t = Timestamp::from_micros(micros);
            let local = Timestamp::from_micros(micros + minutes * 60_000_000).to_string();
            let sign = if minutes < 0 { '-' } else { '+' };
            let text = format!("{}{sign}{:02}:{:02}", local.trim_end_matches('Z'),
                               minutes.abs() / 60, minutes.abs() % 60);
            prop_assert_eq!(text.parse::<Timestamp>(), Ok(t));
        }
    }
}
