//! Schema inference for dynamic CSV records: a column gets a type only when
//! every value seen reads back as the same text (or, for floats, the same
//! number; for timestamps, the same instant in the same zone), so inference
//! never changes a value. See
//! [`CsvSource::infer_schema`](super::CsvSource::infer_schema).

use ::csv::StringRecord;

use crate::record::{DataType, Date, Timestamp, Value};

/// The type of column `c` in the sample: the first of int, float, date,
/// timestamp and bool that every non-empty value fits [`exact`]ly; text
/// otherwise, and for a column with no value. Decimal, bytes and JSON are
/// never inferred: a decimal column's numbers are already kept exactly as
/// floats or ints (or as text); any short word is valid base64 and `1` valid
/// JSON, so only a schema can say a column holds those.
pub(super) fn infer(sample: &[StringRecord], c: usize) -> DataType {
    let values = || {
        sample
            .iter()
            .filter_map(move |row| row.get(c))
            .filter(|v| !v.is_empty())
    };
    if values().next().is_none() {
        return DataType::Str;
    }
    [
        DataType::Int,
        DataType::Float,
        DataType::Date,
        DataType::Timestamp,
        DataType::Bool,
    ]
    .into_iter()
    .find(|&t| values().all(|v| exact(t, v).is_some()))
    .unwrap_or(DataType::Str)
}

/// `text` as a value of `data_type` when nothing is lost: an integer without
/// leading zeros that fits `i64` (`-0` is not one: its sign would be lost);
/// a decimal number, without leading zeros, whose digits a float holds
/// exactly (trailing zeros after the point aside; exponents allowed:
/// `1e5` is 100000); a `YYYY-MM-DD` date; a timestamp in UTC written with `T`
/// and `Z` (`2026-11-30T15:04:05Z`, a fraction of up to six digits, or more
/// zeros): it prints back as the same instant in the same zone, only its
/// fraction's digit count may change (`.5Z` prints `.500000Z`, as a float's
/// `150.00` prints `150`) — not with an offset (`+02:00`), which printing in
/// UTC would lose, nor lower-case or with a space; `true` or `false` as
/// written. Empty text is [`Value::Null`]. Decimal, bytes and JSON are never
/// inferred, and never exact here.
pub(super) fn exact(data_type: DataType, text: &str) -> Option<Value> {
    if text.is_empty() {
        return Some(Value::Null);
    }
    match data_type {
        DataType::Str => Some(Value::from(text)),
        DataType::Int => int(text).map(Value::Int),
        DataType::Float => float(text).map(Value::Float),
        DataType::Date => {
            let date: Date = text.parse().ok()?;
            // The parser takes exactly `YYYY-MM-DD`, which prints back the same.
            Some(Value::Date(date))
        }
        DataType::Timestamp => {
            // The parser takes only `T` or `t` or a space at byte 10, and a
            // text that ends with `Z` has that zone (an offset ends with a digit).
            if text.as_bytes().get(10) != Some(&b'T') || !text.ends_with('Z') {
                return None;
            }
            text.parse::<Timestamp>().ok().map(Value::Timestamp)
        }
        DataType::Bool => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        DataType::Decimal | DataType::Bytes | DataType::Json => None,
    }
}

/// Splits a sign off `text`: (negative, the rest).
fn sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// True for `0` or digits not starting with `0`.
fn no_leading_zero(digits: &str) -> bool {
    digits == "0" || !digits.starts_with('0')
}

/// An integer as written: digits, an optional sign, no leading zero, no `-0`,
/// within `i64`. One pass, no allocation: this runs for every value of an
/// integer column.
fn int(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') || (negative && digits == b"0")
    {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(d)?
        } else {
            value.checked_add(d)?
        };
    }
    Some(value)
}

/// A decimal number: its sign, its significant digits (no leading or
/// trailing zeros) and the power of ten of the first of them.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, at least one mantissa digit, no
/// leading zero in the integer part (but `0.5` and `.5`).
fn decimal(text: &str) -> Option<Decimal> {
    let (negative, rest) = sign(text);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, f),
        None => (mantissa, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return None;
    }
    if !whole.is_empty() && !no_leading_zero(whole) {
        return None;
    }
    let exponent: i64 = match exponent {
        Some(e) => {
            let (neg, e) = sign(e);
            if e.is_empty() || !digits(e) {
                return None;
            }
            let e: i64 = e.parse().ok()?;
            if neg { -e } else { e }
        }
        None => 0,
    };
    let all = format!("{whole}{fraction}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let significant = all.trim_matches('0');
    Some(Decimal {
        negative,
        digits: significant.to_string(),
        // The power of ten of the first significant digit.
        exponent: exponent + whole.len() as i64 - 1 - lead as i64,
    })
}

/// The number of significant digits of `text` if it has [`decimal`]'s form,
/// in one pass without allocating: this runs for every value of a float column.
fn significant_digits(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let run = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let whole = &b[i..run(i)];
    i += whole.len();
    let mut fraction: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        fraction = &b[i + 1..run(i + 1)];
        i += 1 + fraction.len();
    }
    if whole.len() + fraction.len() == 0 || (whole.len() > 1 && whole[0] == b'0') {
        return None;
    }
    if i < b.len() {
        if !matches!(b[i], b'e' | b'E') {
            return None;
        }
        i += 1;
        i += usize::from(matches!(b.get(i), Some(b'+' | b'-')));
        let end = run(i);
        if end == i || end != b.len() {
            return None;
        }
    }
    let nonzero = |d: &u8| *d != b'0';
    let first = match whole.iter().position(nonzero) {
        Some(at) => Some(at),
        None => fraction.iter().position(nonzero).map(|at| whole.len() + at),
    };
    let last = match fraction.iter().rposition(nonzero) {
        Some(at) => Some(whole.len() + at),
        None => whole.iter().rposition(nonzero),
    };
    Some(match (first, last) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    })
}

fn float(text: &str) -> Option<f64> {
    let x: f64 = text.parse().ok()?;
    if !x.is_finite() {
        return None;
    }
    // Up to 15 significant digits, a normal float holds any decimal exactly
    // enough to print it back; beyond, or for tiny numbers, compare.
    let normal = x == 0.0 || x.abs() >= f64::MIN_POSITIVE;
    if normal && significant_digits(text)? <= 15 {
        return Some(x);
    }
    let written = decimal(text)?;
    let zero_digits = written.digits.is_empty();
    let shortest = decimal(&format!("{x:e}"))?;
    let same = if zero_digits {
        shortest.digits.is_empty() && shortest.negative == written.negative
    } else {
        shortest == written
    };
    same.then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_keep_their_text() {
        for ok in [
            "0",
            "7",
            "-3",
            "+5",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(int(ok), ok.parse().ok(), "{ok}");
        }
        for bad in [
            "007",
            "00501",
            "-0",
            "-007",
            "",
            "-",
            "1.0",
            "9223372036854775808",
            "1_000",
        ] {
            assert!(int(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_fast_digit_count_agrees_with_the_full_parse() {
        for text in [
            "0",
            "0.0",
            "150.00",
            ".5",
            "5.",
            "-0.25",
            "1e5",
            "1.5E-3",
            "007.5",
            "1e",
            "e5",
            "12345678901234567890",
            "0.000120",
            "+3.14",
            "1.2.3",
            "",
            ".",
            "-",
            "1e+",
        ] {
            assert_eq!(
                significant_digits(text),
                decimal(text).map(|d| d.digits.len()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn floats_keep_their_number() {
        for (text, x) in [
            ("150.00", 150.0),
            ("2.5", 2.5),
            ("0.1", 0.1),
            (".5", 0.5),
            ("5.", 5.0),
            ("-0.0", -0.0),
            ("1e5", 100_000.0),
            ("1.5E-3", 0.0015),
            ("10000000000000000000", 1e19),
            ("0.30000000000000004", 0.30000000000000004),
        ] {
            assert_eq!(float(text), Some(x), "{text}");
        }
        for bad in [
            "12345678901234567890",
            "12345678901234567890000",
            "0.1000000000000000055511151231257827",
            "007.5",
            "00501",
            "nan",
            "inf",
            "1e400",
            "1e",
            "e5",
            ".",
            "1.2.3",
        ] {
            assert_eq!(float(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_and_dates_as_written() {
        assert_eq!(exact(DataType::Bool, "true"), Some(Value::Bool(true)));
        for bad in ["TRUE", "yes", "t", "1"] {
            assert_eq!(exact(DataType::Bool, bad), None, "{bad}");
        }
        assert!(exact(DataType::Date, "2024-02-29").is_some());
        assert!(exact(DataType::Date, "2024-2-29").is_none());
    }

    #[test]
    fn timestamps_in_utc_as_written() {
        let micros = |text: &str| match exact(DataType::Timestamp, text) {
            Some(Value::Timestamp(t)) => Some(t.micros()),
            _ => None,
        };
        assert_eq!(micros("2023-11-14T22:13:20Z"), Some(1_700_000_000_000_000));
        assert_eq!(
            micros("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000)
        );
        assert_eq!(
            micros("2023-11-14T22:13:20.123456000Z"),
            Some(1_700_000_000_123_456)
        );
        for not in [
            "2023-11-15T00:13:20+02:00",
            "2023-11-14T22:13:20z",
            "2023-11-14t22:13:20Z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20.1234567Z",
            "2023-11-14",
            "Z",
        ] {
            assert_eq!(micros(not), None, "{not}");
        }
        for t in [DataType::Decimal, DataType::Bytes, DataType::Json] {
            assert_eq!(exact(t, "1"), None);
        }
    }
}
