//! Schema inference for dynamic CSV records: a column gets a type only when
//! every value seen reads back as the same text (or, for floats, the same
//! number), so inference never changes a value. See
//! [`CsvSource::infer_schema`](super::CsvSource::infer_schema).

use ::csv::StringRecord;

use crate::record::{DataType, Date, Value};

/// The type of column `c` in the sample: the first of int, float, date and
/// bool that every non-empty value fits [`exact`]ly; text otherwise, and for
/// a column with no value.
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
/// `1e5` is 100000); a `YYYY-MM-DD` date; `true` or `false` as written.
/// Empty text is [`Value::Null`].
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
        DataType::Bool => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
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

fn int(text: &str) -> Option<i64> {
    let (negative, digits) = sign(text);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !no_leading_zero(digits)
        || (negative && digits == "0")
    {
        return None;
    }
    text.parse().ok()
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

fn float(text: &str) -> Option<f64> {
    let x: f64 = text.parse().ok()?;
    if !x.is_finite() {
        return None;
    }
    let written = decimal(text)?;
    // Up to 15 significant digits, a normal float holds any decimal exactly
    // enough to print it back; beyond, or for tiny numbers, compare.
    let normal = x == 0.0 || x.abs() >= f64::MIN_POSITIVE;
    if normal && written.digits.len() <= 15 {
        return Some(x);
    }
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
            assert!(int(ok).is_some(), "{ok}");
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
}
