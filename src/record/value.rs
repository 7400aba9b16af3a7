use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, Serializer};

use super::{Bytes, DataType, Date, Decimal, Text, Timestamp};

/// One cell of a [`Record`](super::Record).
///
/// 24 bytes; cloning copies at most 24 bytes (short text is kept inline, longer
/// text, bytes and JSON are shared: see [`Text`]).
///
/// Printed ([`Display`](fmt::Display), as in a CSV field) and serialized (as in
/// JSON Lines) the way [`DataType::parse`] and the JSON Lines reader read it
/// back: a timestamp as RFC 3339 text in UTC, a decimal as its exact text (a
/// JSON string, so that no reader rounds it through a float), bytes as base64
/// text, JSON as itself (nested in JSON output, its compact text in a CSV
/// field).
///
/// Equal when of the same variant and equal value: decimals by value
/// (`1.50 == 1.5`), floats as `f64`s (`NaN` is not equal to itself), but
/// `Int(1) != Float(1.0)` and `Decimal(1) != Int(1)`.
///
/// ```
/// use dataflare::record::{Decimal, Timestamp, Value};
///
/// assert_eq!(Value::from(3).to_string(), "3");
/// assert_eq!(Value::from(2.5).as_f64(), Some(2.5));
/// assert_eq!(Value::Int(2).as_f64(), Some(2.0)); // ints widen to floats
/// assert!(Value::Null.is_null());
///
/// let at = Value::from(Timestamp::from_secs(1_700_000_000));
/// assert_eq!(at.to_string(), "2023-11-14T22:13:20Z");
/// let amount = Value::from("12.50".parse::<Decimal>().unwrap());
/// assert_eq!(serde_json::to_string(&amount).unwrap(), r#""12.50""#);
/// assert_eq!(amount, Value::from(Decimal::new(125, 1)));
/// let doc = Value::from(serde_json::json!({"tags": ["a", "b"]}));
/// assert_eq!(doc.to_string(), r#"{"tags":["a","b"]}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Value {
    /// No value (an empty field).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text: inline up to 22 bytes, shared beyond.
    Str(Text),
    /// A calendar date.
    Date(Date),
    /// An instant, in UTC to the microsecond.
    Timestamp(Timestamp),
    /// An exact decimal number.
    Decimal(Decimal),
    /// Binary data, shared.
    Bytes(Bytes),
    /// Any JSON value (a nested object or array of a JSON Lines record),
    /// shared. The reader makes JSON `null` [`Value::Null`], not this.
    Json(Arc<serde_json::Value>),
}

impl Value {
    /// The value's type; `None` for [`Value::Null`].
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => DataType::Bool,
            Value::Int(_) => DataType::Int,
            Value::Float(_) => DataType::Float,
            Value::Str(_) => DataType::Str,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::Decimal(_) => DataType::Decimal,
            Value::Bytes(_) => DataType::Bytes,
            Value::Json(_) => DataType::Json,
        })
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The integer of a [`Value::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of a [`Value::Float`] or [`Value::Int`]. Not of a
    /// [`Value::Decimal`], which a float would round: take
    /// [`as_decimal`](Value::as_decimal) and [`Decimal::to_f64`] to round on
    /// purpose.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean of a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The date of a [`Value::Date`].
    pub fn as_date(&self) -> Option<Date> {
        match self {
            Value::Date(d) => Some(*d),
            _ => None,
        }
    }

    /// The instant of a [`Value::Timestamp`].
    ///
    /// ```
    /// use dataflare::record::{DataType, Timestamp};
    ///
    /// let v = DataType::Timestamp.parse("2023-11-14T22:13:20Z").unwrap();
    /// assert_eq!(v.as_timestamp(), Some(Timestamp::from_secs(1_700_000_000)));
    /// ```
    pub fn as_timestamp(&self) -> Option<Timestamp> {
        match self {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        }
    }

    /// The number of a [`Value::Decimal`].
    ///
    /// ```
    /// use dataflare::record::{DataType, Decimal};
    ///
    /// let v = DataType::Decimal.parse("12.50").unwrap();
    /// assert_eq!(v.as_decimal(), Some(Decimal::new(1250, 2)));
    /// ```
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Decimal(d) => Some(*d),
            _ => None,
        }
    }

    /// The data of a [`Value::Bytes`].
    ///
    /// ```
    /// use dataflare::record::DataType;
    ///
    /// let v = DataType::Bytes.parse("aGkh").unwrap();
    /// assert_eq!(v.as_bytes(), Some(&b"hi!"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The JSON of a [`Value::Json`].
    ///
    /// ```
    /// use dataflare::record::DataType;
    ///
    /// let v = DataType::Json.parse(r#"{"a":[1,2]}"#).unwrap();
    /// assert_eq!(v.as_json().unwrap()["a"][1], 2);
    /// ```
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Value::Json(j) => Some(j),
            _ => None,
        }
    }
}

/// As text in a CSV field: `Null` is empty, floats in their shortest exact form,
/// timestamps in RFC 3339 (UTC), decimals with their scale, bytes in base64,
/// JSON as compact JSON text.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{d}"),
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Bytes(b) => write!(f, "{b}"),
            Value::Json(j) => write!(f, "{j}"),
        }
    }
}

/// As its natural JSON value; a date as its `YYYY-MM-DD` text, a timestamp,
/// a decimal and bytes as their text (strings), JSON as itself.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(t) => s.serialize_str(t),
            Value::Date(d) => s.collect_str(d),
            Value::Timestamp(t) => t.serialize(s),
            Value::Decimal(d) => d.serialize(s),
            Value::Bytes(b) => b.serialize(s),
            Value::Json(j) => j.serialize(s),
        }
    }
}

macro_rules! from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$v(x.into())
            }
        }
    )*};
}

from!(bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, f32 => Float,
      &str => Str, String => Str, Arc<str> => Str, Text => Str, Date => Date,
      Timestamp => Timestamp, Decimal => Decimal, Bytes => Bytes, Vec<u8> => Bytes,
      &[u8] => Bytes, Arc<serde_json::Value> => Json);

/// [`Value::Json`], or [`Value::Null`] for JSON `null` (as the readers make it).
impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            json => Value::Json(Arc::new(json)),
        }
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_small() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }
}
