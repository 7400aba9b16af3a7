use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::ser::{Serialize, Serializer};

use super::excerpt;

/// Significant digits a [`Decimal`] holds, and digits after its point.
const MAX_DIGITS: u32 = 28;

/// `10^28`: every mantissa is below it in magnitude.
const LIMIT: u128 = 10u128.pow(MAX_DIGITS);

/// An exact decimal number, for amounts of money and other quantities that
/// must not be rounded: a mantissa of up to 28 significant digits and a scale
/// (digits after the point) of 0 to 28. `12.50` is the mantissa 1250 at
/// scale 2.
///
/// - **Exact arithmetic**: [`checked_add`](Decimal::checked_add),
///   [`checked_sub`](Decimal::checked_sub), [`checked_mul`](Decimal::checked_mul)
///   and [`checked_sum`](Decimal::checked_sum) give the exact result, or `None`
///   when it does not fit 28 digits — never a rounded one. The operators `+`,
///   `-`, `*` and [`Sum`](std::iter::Sum) panic instead of returning `None`,
///   like integer overflow (in release builds too). A sum keeps the larger
///   scale of its terms (`12.50 + 1 = 13.50`), a product the sum of theirs; a
///   result only drops trailing zeros of its fraction when it would not fit
///   otherwise.
/// - **Compared by value**: `1.50 == 1.5`, and they hash alike.
/// - **Printed with its scale**: `12.50` prints `12.50`, never with an
///   exponent. Serializes as that text (a JSON string: a JSON number would be
///   read back as a float by most readers, `serde_json`'s default included).
/// - **Parsed** ([`FromStr`]) from an optional sign, digits with an optional
///   point, and an optional exponent: `-12.50`, `+3`, `.5`, `5.`, `1e3`
///   (`1000`), `1.5E-3` (`0.0015`). A written scale is kept (`1.50e1` is
///   `15.0`); text with more than 28 significant digits, or a nonzero digit
///   past the 28th after the point, is refused rather than rounded. Not
///   accepted: spaces, `_`, `NaN`, infinities.
///
/// ```
/// use dataflare::record::Decimal;
///
/// let a: Decimal = "0.1".parse().unwrap();
/// let b: Decimal = "0.2".parse().unwrap();
/// assert_eq!(a + b, "0.3".parse().unwrap()); // exactly: 0.1 + 0.2 == 0.3
///
/// let price: Decimal = "12.50".parse().unwrap();
/// assert_eq!(price.to_string(), "12.50");
/// assert_eq!(price, Decimal::new(125, 1)); // 12.5
/// assert_eq!(price.to_f64(), 12.5);
/// assert_eq!(Decimal::checked_sum([price, price, price]), Some(Decimal::new(3750, 2)));
/// assert_eq!(Decimal::MAX.checked_add(Decimal::new(1, 0)), None);
/// ```
#[derive(Clone, Copy)]
pub struct Decimal {
    /// The mantissa's low 64 bits and high 32 bits (96-bit two's complement):
    /// 16 bytes with the scale, aligned to 8, so that a
    /// [`Value`](super::Value) stays 24 bytes.
    lo: u64,
    hi: i32,
    scale: u8,
}

/// `10^n` for `n <= 38`, `None` beyond.
fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    /// Zero (at scale 0).
    pub const ZERO: Decimal = Decimal::from_mantissa(0, 0);
    /// The largest decimal, 28 nines.
    pub const MAX: Decimal = Decimal::from_mantissa(LIMIT as i128 - 1, 0);
    /// The smallest decimal, minus 28 nines.
    pub const MIN: Decimal = Decimal::from_mantissa(1 - LIMIT as i128, 0);
    /// The most significant digits a decimal holds.
    pub const MAX_DIGITS: u32 = MAX_DIGITS;
    /// The most digits after the point a decimal holds.
    pub const MAX_SCALE: u32 = MAX_DIGITS;

    /// Unchecked: the caller keeps `|mantissa| < 10^28` and `scale <= 28`.
    const fn from_mantissa(mantissa: i128, scale: u32) -> Decimal {
        Decimal {
            lo: mantissa as u64,
            hi: (mantissa >> 64) as i32,
            scale: scale as u8,
        }
    }

    /// The decimal `mantissa × 10^-scale`: `Decimal::new(1250, 2)` is `12.50`.
    ///
    /// # Panics
    ///
    /// If `scale` is over 28.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// assert_eq!(Decimal::new(-1250, 2).to_string(), "-12.50");
    /// assert_eq!(Decimal::new(7, 0).to_string(), "7");
    /// ```
    #[track_caller]
    pub const fn new(mantissa: i64, scale: u32) -> Decimal {
        assert!(scale <= MAX_DIGITS, "Decimal::new: a scale over 28");
        Decimal::from_mantissa(mantissa as i128, scale)
    }

    /// The decimal `mantissa × 10^-scale`, if the mantissa has at most 28
    /// digits and `scale` is at most 28.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let big = Decimal::from_parts(10i128.pow(27), 2).unwrap();
    /// assert_eq!(big.to_string(), "10000000000000000000000000.00");
    /// assert_eq!(Decimal::from_parts(10i128.pow(28), 0), None);
    /// assert_eq!(Decimal::from_parts(1, 29), None);
    /// ```
    pub const fn from_parts(mantissa: i128, scale: u32) -> Option<Decimal> {
        if mantissa.unsigned_abs() >= LIMIT || scale > MAX_DIGITS {
            return None;
        }
        Some(Decimal::from_mantissa(mantissa, scale))
    }

    /// The mantissa: `12.50` has 1250.
    pub const fn mantissa(self) -> i128 {
        ((self.hi as i128) << 64) | self.lo as i128
    }

    /// The scale, digits after the point: `12.50` has 2.
    pub const fn scale(self) -> u32 {
        self.scale as u32
    }

    /// True for zero, at any scale.
    pub const fn is_zero(self) -> bool {
        self.lo == 0 && self.hi == 0
    }

    /// True below zero.
    pub const fn is_negative(self) -> bool {
        self.hi < 0
    }

    /// The same number without trailing zeros after the point: `12.50` gives
    /// `12.5`, `3.00` gives `3`.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let d: Decimal = "3.00".parse().unwrap();
    /// assert_eq!(d.normalize().to_string(), "3");
    /// assert_eq!(d.normalize(), d);
    /// ```
    pub fn normalize(self) -> Decimal {
        let (mut m, mut scale) = (self.mantissa(), self.scale());
        while scale > 0 && m % 10 == 0 {
            m /= 10;
            scale -= 1;
        }
        Decimal::from_mantissa(m, scale)
    }

    /// The nearest float (correctly rounded): for display or statistics, not
    /// for sums that must stay exact.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// assert_eq!(Decimal::new(-25, 1).to_f64(), -2.5);
    /// assert_eq!("0.1".parse::<Decimal>().unwrap().to_f64(), 0.1);
    /// ```
    pub fn to_f64(self) -> f64 {
        let m = self.mantissa();
        // Both exact as floats: one correctly rounded division.
        if m.unsigned_abs() < 1 << 53 && self.scale <= 22 {
            return m as f64 / 10f64.powi(i32::from(self.scale));
        }
        self.to_string()
            .parse()
            .expect("a decimal's text is a float's")
    }

    /// `self + other`, exactly; `None` if the result does not fit 28 digits.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let (a, b) = (Decimal::new(1250, 2), Decimal::new(1, 0));
    /// assert_eq!(a.checked_add(b).unwrap().to_string(), "13.50");
    /// assert_eq!(Decimal::MAX.checked_add(b), None);
    /// ```
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        add(self, other).or_else(|| add(self.normalize(), other.normalize()))
    }

    /// `self - other`, exactly; `None` if the result does not fit 28 digits.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// assert_eq!(Decimal::new(1, 1).checked_sub(Decimal::new(3, 1)), Some(Decimal::new(-2, 1)));
    /// ```
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(-other)
    }

    /// `self × other`, exactly; `None` if the result does not fit 28 digits
    /// or 28 digits after the point.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let price = Decimal::new(1999, 2);
    /// assert_eq!(price.checked_mul(Decimal::new(3, 0)).unwrap().to_string(), "59.97");
    /// assert_eq!(Decimal::MAX.checked_mul(Decimal::new(2, 0)), None);
    /// ```
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        mul(self, other).or_else(|| mul(self.normalize(), other.normalize()))
    }

    /// Rounded to `scale` digits after the point, half away from zero (as
    /// PostgreSQL's `round(numeric, int)`); more digits than it has are
    /// added as zeros. `None` only if the result does not fit 28 digits.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let d: Decimal = "906.305".parse().unwrap();
    /// assert_eq!(d.round(2).unwrap().to_string(), "906.31");
    /// assert_eq!(Decimal::new(-25, 1).round(0).unwrap().to_string(), "-3");
    /// assert_eq!(Decimal::new(9063, 1).round(2).unwrap().to_string(), "906.30");
    /// ```
    pub fn round(self, scale: u32) -> Option<Decimal> {
        let (m, from) = (self.mantissa(), self.scale());
        if scale >= from {
            let up = 10i128.checked_pow(scale - from)?;
            return Decimal::from_parts(m.checked_mul(up)?, scale);
        }
        let down = 10i128.pow(from - scale);
        let (q, r) = (m / down, m % down);
        let q = if r.unsigned_abs() * 2 >= down.unsigned_abs() {
            q + m.signum()
        } else {
            q
        };
        Decimal::from_parts(q, scale)
    }

    /// The float `x` with `scale` digits after the point: exactly the digits
    /// `format!("{x:.scale$}")` prints (so a computed `amount * qty` is
    /// written as `906.30`, not `906.3000000000001`, without carrying a
    /// formatted string). `None` for NaN, infinities and numbers past 28
    /// digits.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let total = Decimal::from_f64(302.1 * 3.0, 2).unwrap();
    /// assert_eq!(total.to_string(), "906.30");
    /// assert_eq!(Decimal::from_f64(f64::NAN, 2), None);
    /// // 1.5 with 28 decimals is 29 digits: more than a decimal holds.
    /// assert_eq!(Decimal::from_f64(1.5, 28), None);
    /// assert_eq!(Decimal::from_f64(0.5, 28).unwrap().scale(), 28);
    /// ```
    pub fn from_f64(x: f64, scale: u32) -> Option<Decimal> {
        if !x.is_finite() || scale > MAX_DIGITS {
            return None;
        }
        let mut text = String::with_capacity(32);
        use std::fmt::Write as _;
        write!(text, "{x:.*}", scale as usize).ok()?;
        // Parsing may drop trailing zeros to fit 28 digits: then the digits
        // asked for do not fit, and the answer is `None`, not fewer digits.
        text.parse::<Decimal>().ok().filter(|d| d.scale() == scale)
    }

    /// The exact sum of `terms` ([`ZERO`](Decimal::ZERO) for none), or `None`
    /// if it, or a partial sum, does not fit 28 digits.
    ///
    /// ```
    /// use dataflare::record::Decimal;
    ///
    /// let tenth = Decimal::new(1, 1);
    /// assert_eq!(Decimal::checked_sum(std::iter::repeat_n(tenth, 10)), Some(Decimal::new(10, 1)));
    /// assert_eq!(Decimal::checked_sum([Decimal::MAX, Decimal::MAX]), None);
    /// ```
    pub fn checked_sum(terms: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
        terms
            .into_iter()
            .try_fold(Decimal::ZERO, Decimal::checked_add)
    }
}

/// `m × 10^-scale`, dropping trailing zeros of the fraction only as far as
/// needed to fit.
fn fit(mut m: i128, mut scale: u32) -> Option<Decimal> {
    while (m.unsigned_abs() >= LIMIT || scale > MAX_DIGITS) && scale > 0 && m % 10 == 0 {
        m /= 10;
        scale -= 1;
    }
    Decimal::from_parts(m, scale)
}

fn add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let scale = a.scale().max(b.scale());
    let x = a.mantissa().checked_mul(pow10(scale - a.scale())?)?;
    let y = b.mantissa().checked_mul(pow10(scale - b.scale())?)?;
    fit(x.checked_add(y)?, scale)
}

fn mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    fit(
        a.mantissa().checked_mul(b.mantissa())?,
        a.scale() + b.scale(),
    )
}

impl Default for Decimal {
    fn default() -> Self {
        Decimal::ZERO
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// By value: `1.5 == 1.50`, `-0.01 < 0`.
impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let (a, b) = (self.mantissa(), other.mantissa());
        let (sa, sb) = (self.scale(), other.scale());
        // Brings the operand with the smaller scale to the other's; if that
        // overflows, its magnitude is beyond any mantissa, so its sign decides.
        let up = |m: i128, by: u32| pow10(by).and_then(|p| m.checked_mul(p));
        match sa.cmp(&sb) {
            Ordering::Equal => a.cmp(&b),
            Ordering::Less => match up(a, sb - sa) {
                Some(a) => a.cmp(&b),
                None => a.cmp(&0),
            },
            Ordering::Greater => match up(b, sa - sb) {
                Some(b) => a.cmp(&b),
                None => 0.cmp(&b),
            },
        }
    }
}

/// Consistent with equality: equal numbers hash alike, whatever their scale.
impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let n = self.normalize();
        n.mantissa().hash(state);
        n.scale.hash(state);
    }
}

impl std::ops::Neg for Decimal {
    type Output = Decimal;

    /// Never overflows: the range is symmetric.
    fn neg(self) -> Decimal {
        Decimal::from_mantissa(-self.mantissa(), self.scale())
    }
}

macro_rules! checked_op {
    ($trait:ident, $method:ident, $checked:ident, $what:literal) => {
        /// Exact.
        ///
        /// # Panics
        ///
        /// If the result does not fit 28 digits (see the `checked_` methods).
        impl std::ops::$trait for Decimal {
            type Output = Decimal;

            #[track_caller]
            fn $method(self, other: Decimal) -> Decimal {
                match self.$checked(other) {
                    Some(d) => d,
                    None => panic!(
                        concat!(
                            "decimal ",
                            $what,
                            " overflow: {} and {} (use ",
                            stringify!($checked),
                            ")"
                        ),
                        self, other
                    ),
                }
            }
        }
    };
}

checked_op!(Add, add, checked_add, "addition");
checked_op!(Sub, sub, checked_sub, "subtraction");
checked_op!(Mul, mul, checked_mul, "multiplication");

/// Exact.
///
/// # Panics
///
/// If the sum does not fit 28 digits (see [`Decimal::checked_sum`]).
impl std::iter::Sum for Decimal {
    #[track_caller]
    fn sum<I: Iterator<Item = Decimal>>(iter: I) -> Decimal {
        iter.fold(Decimal::ZERO, |a, b| a + b)
    }
}

/// Exact.
///
/// # Panics
///
/// If the sum does not fit 28 digits (see [`Decimal::checked_sum`]).
impl<'a> std::iter::Sum<&'a Decimal> for Decimal {
    #[track_caller]
    fn sum<I: Iterator<Item = &'a Decimal>>(iter: I) -> Decimal {
        iter.fold(Decimal::ZERO, |a, &b| a + b)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Decimal {
            fn from(i: $t) -> Decimal {
                Decimal::from_mantissa(i128::from(i), 0)
            }
        }
    )*};
}

from_int!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Plain notation with the decimal's scale: `12.50`, `-0.05`, `1000`.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A sign, up to 28 digits, a point and up to 28 zeros before them.
        let mut buf = [0u8; 2 * MAX_DIGITS as usize + 3];
        let mut at = buf.len();
        let mut m = self.mantissa().unsigned_abs();
        let scale = self.scale();
        let mut written = 0;
        while m > 0 || written <= scale {
            if written == scale && scale > 0 {
                at -= 1;
                buf[at] = b'.';
            }
            at -= 1;
            buf[at] = b'0' + (m % 10) as u8;
            m /= 10;
            written += 1;
        }
        if self.is_negative() {
            at -= 1;
            buf[at] = b'-';
        }
        f.pad(std::str::from_utf8(&buf[at..]).expect("ASCII"))
    }
}

/// As [`Display`](fmt::Display) writes it: `Decimal(12.50)`.
impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

/// As its text, a JSON string (`"12.50"`): exact, where a JSON number would
/// be read back as a float.
impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The error for text that is not a [`Decimal`]: it names the text and what
/// is wrong with it.
///
/// ```
/// use dataflare::record::Decimal;
///
/// let e = "12,50".parse::<Decimal>().unwrap_err();
/// assert!(e.to_string().starts_with(r#""12,50" is not a decimal: "#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} is not a decimal: {reason}")]
pub struct ParseDecimalError {
    /// The text, quoted (and cut short when long).
    text: String,
    reason: &'static str,
}

/// Reads a decimal from its text (`"12.50"`, exactly, as [`FromStr`] does), so
/// typed records can hold a `Decimal` read from CSV, or from JSON where it is
/// a string (as DataFlare writes it). A JSON number is refused rather than
/// read through a float, which would round it.
impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a decimal number as text")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal::from(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                Decimal::from_parts(i128::from(v), 0)
                    .ok_or_else(|| E::custom("too many digits for a decimal"))
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(s: &str) -> Result<Decimal, ParseDecimalError> {
        parse(s).map_err(|reason| ParseDecimalError {
            text: excerpt(s),
            reason,
        })
    }
}

const SHAPE: &str = "expected digits with an optional sign, point and exponent (-12.50, 1e3)";

fn parse(s: &str) -> Result<Decimal, &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    // The digits without their trailing zeros (`m`), and how many trailing
    // zeros there were; digits after the point.
    let (mut m, mut zeros, mut fraction, mut digits) = (0i128, 0u32, 0i64, 0usize);
    let mut point = false;
    const TOO_MANY: &str = "more than 28 significant digits";
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                if point {
                    fraction += 1;
                }
                if c == b'0' {
                    zeros = zeros.saturating_add(1);
                } else if m == 0 {
                    m = i128::from(c - b'0');
                    zeros = 0;
                } else {
                    let scale = pow10(zeros + 1).ok_or(TOO_MANY)?;
                    m = m
                        .checked_mul(scale)
                        .and_then(|m| m.checked_add(i128::from(c - b'0')))
                        .ok_or(TOO_MANY)?;
                    zeros = 0;
                }
            }
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(SHAPE);
    }
    let mut exponent = 0i64;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let sign = match b.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let start = i;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            exponent = (exponent * 10 + i64::from(c - b'0')).min(1_000_000);
            i += 1;
        }
        if i == start {
            return Err(SHAPE);
        }
        exponent *= sign;
    }
    if i != b.len() {
        return Err(SHAPE);
    }
    if m == 0 {
        // Zero at the written scale, within bounds.
        let scale = (fraction - exponent).clamp(0, i64::from(MAX_DIGITS));
        return Ok(Decimal::from_mantissa(0, scale as u32));
    }
    if negative {
        m = -m;
    }
    // The value is m × 10^(zeros - written), written as scale `written`.
    // The scale kept is the written one if it fits, else the largest that
    // keeps the value exact and the mantissa within 28 digits.
    let written = fraction - exponent;
    let zeros = i64::from(zeros);
    let highest = written.clamp(0, i64::from(MAX_DIGITS));
    let lowest = (written - zeros).max(0);
    if lowest > highest {
        return Err("more than 28 digits after the point");
    }
    for scale in (lowest..=highest).rev() {
        let shift = u32::try_from(zeros - written + scale).map_err(|_| TOO_MANY)?;
        if let Some(d) = pow10(shift)
            .and_then(|p| m.checked_mul(p))
            .and_then(|m| Decimal::from_parts(m, scale as u32))
        {
            return Ok(d);
        }
    }
    Err(TOO_MANY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::hash_map::DefaultHasher;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn parts(s: &str) -> (i128, u32) {
        let d = d(s);
        (d.mantissa(), d.scale())
    }

    #[test]
    fn stays_small() {
        assert_eq!(std::mem::size_of::<Decimal>(), 16);
    }

    #[test]
    fn parses_and_keeps_the_written_scale() {
        assert_eq!(parts("-12.50"), (-1250, 2));
        assert_eq!(parts("+3"), (3, 0));
        assert_eq!(parts(".5"), (5, 1));
        assert_eq!(parts("5."), (5, 0));
        assert_eq!(parts("007.10"), (710, 2));
        assert_eq!(parts("1e3"), (1000, 0));
        assert_eq!(parts("1.50e1"), (150, 1));
        assert_eq!(parts("1.5E-3"), (15, 4));
        assert_eq!(parts("0"), (0, 0));
        assert_eq!(parts("-0.00"), (0, 2));
        assert_eq!(parts("0e-40"), (0, 28));
        assert_eq!(
            parts("9999999999999999999999999999"),
            (LIMIT as i128 - 1, 0)
        );
        // Trailing zeros beyond what fits are dropped, not the value.
        assert_eq!(
            parts("1.0000000000000000000000000000000000"),
            (10i128.pow(27), 27)
        );
        assert_eq!(
            parts("0.10000000000000000000000000000000000000000000"),
            (10i128.pow(27), 28)
        );
        assert_eq!(
            parts("1234567890123456789012345678e-1"),
            (1234567890123456789012345678, 1)
        );
        assert_eq!(parts("1e27"), (10i128.pow(27), 0));
        assert_eq!(
            d("0.0000000000000000000000000001").to_string(),
            "0.0000000000000000000000000001"
        );
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        let reason = |s: &str| s.parse::<Decimal>().unwrap_err().reason;
        assert_eq!(reason("12345678901234567890123456789"), TOO_MANY_FOR_TESTS);
        assert_eq!(reason("1e28"), TOO_MANY_FOR_TESTS);
        assert_eq!(reason("1e400"), TOO_MANY_FOR_TESTS);
        assert_eq!(
            reason("0.00000000000000000000000000001"),
            "more than 28 digits after the point"
        );
        assert_eq!(reason("1e-29"), "more than 28 digits after the point");
        for bad in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,5", " 1", "1 ", "1_000", "NaN",
            "inf", "0x10", "--1", "1-",
        ] {
            assert_eq!(reason(bad), SHAPE, "{bad:?}");
        }
        let e = "12,50".parse::<Decimal>().unwrap_err().to_string();
        assert_eq!(e, format!("\"12,50\" is not a decimal: {SHAPE}"));
    }

    const TOO_MANY_FOR_TESTS: &str = "more than 28 significant digits";

    #[test]
    fn prints_its_scale() {
        for text in ["12.50", "-0.05", "0.00", "1000", "-7", "0.1", "123.456"] {
            assert_eq!(d(text).to_string(), text);
        }
        assert_eq!(d("-0").to_string(), "0");
        assert_eq!(format!("{:>8}", d("1.5")), "     1.5");
        assert_eq!(Decimal::MIN.to_string(), "-9999999999999999999999999999");
        assert_eq!(format!("{:?}", d("1.50")), "Decimal(1.50)");
        assert_eq!(serde_json::to_string(&d("1.50")).unwrap(), "\"1.50\"");
    }

    #[test]
    fn compares_and_hashes_by_value() {
        let hash = |d: Decimal| {
            let mut h = DefaultHasher::new();
            d.hash(&mut h);
            h.finish()
        };
        assert_eq!(d("1.50"), d("1.5"));
        assert_eq!(hash(d("1.50")), hash(d("1.5")));
        assert_eq!(d("0"), d("-0.000"));
        assert_eq!(hash(d("0")), hash(d("0.000")));
        assert!(d("-0.01") < d("0"));
        assert!(d("2") > d("1.999999999999999999999999999"));
        assert!(Decimal::MAX > d("0.0000000000000000000000000001"));
        assert!(Decimal::MIN < d("-0.0000000000000000000000000001"));
        assert!(d("0.0000000000000000000000000001") < Decimal::MAX);
        assert!(d("-0.0000000000000000000000000001") > Decimal::MIN);
        assert!(d("0.0000000000000000000000000001") > d("0"));
    }

    #[test]
    fn arithmetic_is_exact_or_refused() {
        assert_eq!(d("0.1") + d("0.2"), d("0.3"));
        assert_eq!((d("0.1") + d("0.2")).to_string(), "0.3");
        assert_eq!((d("12.50") + d("1")).to_string(), "13.50");
        assert_eq!((d("12.50") - d("0.50")).to_string(), "12.00");
        assert_eq!((d("1.5") * d("1.5")).to_string(), "2.25");
        assert_eq!((d("-2") * d("0.5")).to_string(), "-1.0");
        assert_eq!((-d("1.5")).to_string(), "-1.5");
        let cents: Decimal = std::iter::repeat_n(d("0.01"), 1000).sum();
        assert_eq!(cents.to_string(), "10.00");
        // Fits once the needless trailing zeros go.
        assert_eq!(Decimal::MAX.checked_add(d("0.0")), Some(Decimal::MAX));
        assert_eq!(d("1e27").checked_add(d("0.1")), None);
        assert_eq!(d("1e27").checked_add(d("1e-28")), None);
        assert_eq!(Decimal::MIN.checked_sub(d("1")), None);
        assert_eq!(
            d("0.00000000000001").checked_mul(d("0.000000000000001")),
            None
        );
        assert_eq!(
            d("0.10000000000000")
                .checked_mul(d("0.100000000000000"))
                .map(|d| d.to_string()),
            Some("0.0100000000000000000000000000".into()) // scale 29 would not fit: 28
        );
        assert_eq!(Decimal::checked_sum([]), Some(Decimal::ZERO));
    }

    #[test]
    #[should_panic(expected = "decimal addition overflow")]
    fn the_operator_panics_on_overflow() {
        let _ = Decimal::MAX + Decimal::from(1);
    }

    #[test]
    fn converts_to_f64() {
        assert_eq!(d("0.3").to_f64(), 0.3);
        assert_eq!(d("-12.50").to_f64(), -12.5);
        assert_eq!(
            d("123456789012345678901234.5678").to_f64(),
            123456789012345678901234.5678
        );
        assert_eq!(d("0.0000000000000000000000000001").to_f64(), 1e-28);
        assert_eq!(Decimal::from(u64::MAX).to_f64(), u64::MAX as f64);
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        (-(LIMIT as i128 - 1)..LIMIT as i128, 0..=MAX_DIGITS)
            .prop_map(|(m, s)| Decimal::from_parts(m, s).unwrap())
    }

    proptest! {
        #[test]
        fn prints_then_parses_back_with_its_scale(x in any_decimal()) {
            let back: Decimal = x.to_string().parse().unwrap();
            prop_assert_eq!((back.mantissa(), back.scale()), (x.mantissa(), x.scale()));
        }

        #[test]
        fn small_mantissas_too(m in any::<i64>(), s in 0..=MAX_DIGITS) {
            let x = Decimal::new(m, s);
            let back: Decimal = x.to_string().parse().unwrap();
            prop_assert_eq!((back.mantissa(), back.scale()), (x.mantissa(), x.scale()));
        }

        #[test]
        fn addition_agrees_with_integers(a in any::<i32>(), b in any::<i32>(),
                                         sa in 0..=10u32, sb in 0..=10u32) {
            let sum = Decimal::new(a.into(), sa) + Decimal::new(b.into(), sb);
            let scale = sa.max(sb);
            let exact = i128::from(a) * 10i128.pow(scale - sa) + i128::from(b) * 10i128.pow(scale - sb);
            prop_assert_eq!((sum.mantissa(), sum.scale()), (exact, scale));
            prop_assert_eq!(sum - Decimal::new(b.into(), sb), Decimal::new(a.into(), sa));
        }

        #[test]
        fn order_agrees_with_scaled_integers(a in any::<i32>(), b in any::<i32>(),
                                                         sa in 0..=6u32, sb in 0..=6u32) {
            let (x, y) = (Decimal::new(a.into(), sa), Decimal::new(b.into(), sb));
            // Compare a × 10^(6 - sa) with b × 10^(6 - sb), exactly, in i128.
            let (p, q) = (i128::from(a) * 10i128.pow(6 - sa), i128::from(b) * 10i128.pow(6 - sb));
            prop_assert_eq!(x.cmp(&y), p.cmp(&q));
        }
    }
}
