use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{Bytes, Date, Decimal, Timestamp, Value, excerpt};

/// The type of a column.
///
/// Its name (as [`Display`](fmt::Display) writes it and [`FromStr`] reads it)
/// is one of `bool`, `int`, `float`, `string`, `date`, `timestamp`,
/// `decimal`, `bytes`, `json`.
///
/// ```
/// use dataflare::record::DataType;
///
/// assert_eq!("timestamp".parse::<DataType>(), Ok(DataType::Timestamp));
/// assert_eq!(DataType::Decimal.to_string(), "decimal");
/// assert!("money".parse::<DataType>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// `true` / `false`.
    Bool,
    /// A 64-bit signed integer.
    Int,
    /// A 64-bit float.
    Float,
    /// Text.
    Str,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant in UTC, RFC 3339 text: see [`Timestamp`] for what parses.
    Timestamp,
    /// An exact decimal number: see [`Decimal`].
    Decimal,
    /// Binary data, base64 in text: see [`Bytes`].
    Bytes,
    /// Any JSON value.
    Json,
}

impl DataType {
    /// Parses `text` as a value of this type. Empty text is [`Value::Null`],
    /// and so is the JSON text `null` for [`DataType::Json`]. An error names
    /// the text and what was expected.
    ///
    /// - [`Timestamp`]: RFC 3339, with `Z` or an offset (converted to UTC);
    ///   a time without a zone is refused;
    /// - [`Decimal`]: `-12.50`, `1e3`, exact (refused rather than rounded);
    /// - [`Bytes`]: base64 (standard alphabet, padded), or `\x` and hex;
    /// - [`Json`](DataType::Json): any JSON text.
    ///
    /// ```
    /// use dataflare::record::{DataType, Decimal, Value};
    ///
    /// assert_eq!(DataType::Int.parse("42"), Ok(Value::Int(42)));
    /// assert_eq!(DataType::Bool.parse("TRUE"), Ok(Value::Bool(true)));
    /// assert_eq!(DataType::Float.parse(""), Ok(Value::Null));
    /// assert!(DataType::Int.parse("4x2").is_err());
    ///
    /// let at = DataType::Timestamp.parse("2026-11-30T17:04:05+02:00").unwrap();
    /// assert_eq!(at.to_string(), "2026-11-30T15:04:05Z");
    /// assert_eq!(
    ///     DataType::Timestamp.parse("2026-13-01T00:00:00Z"),
    ///     Err(r#""2026-13-01T00:00:00Z" is not a timestamp: month 13"#.to_string())
    /// );
    /// assert_eq!(DataType::Decimal.parse("12.50"), Ok(Value::Decimal(Decimal::new(1250, 2))));
    /// assert_eq!(DataType::Bytes.parse("aGkh").unwrap().as_bytes(), Some(&b"hi!"[..]));
    /// assert_eq!(DataType::Json.parse("[1, 2]").unwrap().to_string(), "[1,2]");
    /// ```
    pub fn parse(self, text: &str) -> Result<Value, String> {
        if text.is_empty() {
            return Ok(Value::Null);
        }
        match self {
            DataType::Str => Ok(Value::from(text)),
            DataType::Int => text
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|e| format!("{text:?} is not an integer ({e})")),
            DataType::Float => text
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| format!("{text:?} is not a number")),
            DataType::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "1" => Ok(Value::Bool(true)),
                "false" | "f" | "no" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!("{text:?} is not a boolean")),
            },
            DataType::Date => text
                .parse::<Date>()
                .map(Value::Date)
                .map_err(|e| e.to_string()),
            DataType::Timestamp => text
                .parse::<Timestamp>()
                .map(Value::Timestamp)
                .map_err(|e| e.to_string()),
            DataType::Decimal => text
                .parse::<Decimal>()
                .map(Value::Decimal)
                .map_err(|e| e.to_string()),
            DataType::Bytes => text
                .parse::<Bytes>()
                .map(Value::Bytes)
                .map_err(|e| e.to_string()),
            DataType::Json => serde_json::from_str::<serde_json::Value>(text)
                .map(Value::from)
                .map_err(|e| format!("{} is not JSON: {e}", excerpt(text))),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::Bool => "bool",
            DataType::Int => "int",
            DataType::Float => "float",
            DataType::Str => "string",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp",
            DataType::Decimal => "decimal",
            DataType::Bytes => "bytes",
            DataType::Json => "json",
        })
    }
}

/// The error for a name that is not a [`DataType`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown type {0:?}: expected bool, int, float, string, date, timestamp, decimal, bytes or json"
)]
pub struct ParseDataTypeError(String);

/// The type named as [`Display`](fmt::Display) writes it.
impl FromStr for DataType {
    type Err = ParseDataTypeError;

    fn from_str(s: &str) -> Result<DataType, ParseDataTypeError> {
        Ok(match s {
            "bool" => DataType::Bool,
            "int" => DataType::Int,
            "float" => DataType::Float,
            "string" => DataType::Str,
            "date" => DataType::Date,
            "timestamp" => DataType::Timestamp,
            "decimal" => DataType::Decimal,
            "bytes" => DataType::Bytes,
            "json" => DataType::Json,
            _ => return Err(ParseDataTypeError(s.to_string())),
        })
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    name: Arc<str>,
    data_type: DataType,
}

impl Field {
    /// A column called `name` holding values of `data_type`.
    pub fn new(name: impl Into<Arc<str>>, data_type: DataType) -> Self {
        Field {
            name: name.into(),
            data_type,
        }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column's type.
    pub fn data_type(&self) -> DataType {
        self.data_type
    }
}

/// The columns of a [`Record`](super::Record): names and types, shared by every
/// record of a source through an `Arc`.
///
/// ```
/// use dataflare::record::{DataType, Schema};
///
/// let schema = Schema::new([("id", DataType::Int), ("name", DataType::Str)]);
/// assert_eq!(schema.index_of("name"), Some(1));
/// assert_eq!(schema.names().collect::<Vec<_>>(), vec!["id", "name"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<Field>,
    index: HashMap<Arc<str>, usize>,
}

impl Schema {
    /// A schema of the given `(name, type)` columns, in order.
    pub fn new<N: Into<Arc<str>>>(columns: impl IntoIterator<Item = (N, DataType)>) -> Self {
        Self::from_fields(columns.into_iter().map(|(n, t)| Field::new(n, t)))
    }

    /// A schema of the given fields, in order. A repeated name resolves to its
    /// first column in [`index_of`](Schema::index_of).
    pub fn from_fields(fields: impl IntoIterator<Item = Field>) -> Self {
        let fields: Vec<Field> = fields.into_iter().collect();
        let mut index = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            index.entry(f.name.clone()).or_insert(i);
        }
        Schema { fields, index }
    }

    /// A schema of text columns with these names.
    pub fn strings<N: Into<Arc<str>>>(names: impl IntoIterator<Item = N>) -> Self {
        Self::new(names.into_iter().map(|n| (n, DataType::Str)))
    }

    /// The columns, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The column at `index`.
    pub fn field(&self, index: usize) -> Option<&Field> {
        self.fields.get(index)
    }

    /// The position of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The column names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name())
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no columns.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|c| (c.name(), c.data_type)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [DataType; 9] = [
        DataType::Bool,
        DataType::Int,
        DataType::Float,
        DataType::Str,
        DataType::Date,
        DataType::Timestamp,
        DataType::Decimal,
        DataType::Bytes,
        DataType::Json,
    ];

    #[test]
    fn names_read_back() {
        for t in ALL {
            assert_eq!(t.to_string().parse::<DataType>(), Ok(t));
        }
    }

    #[test]
    fn every_type_prints_what_it_parses() {
        for (t, text) in [
            (DataType::Bool, "true"),
            (DataType::Int, "-7"),
            (DataType::Float, "2.5"),
            (DataType::Str, "a, \"b\""),
            (DataType::Date, "2024-02-29"),
            (DataType::Timestamp, "2026-11-30T15:04:05.000001Z"),
            (DataType::Decimal, "-12.50"),
            (DataType::Bytes, "aGkhAA=="),
            (DataType::Json, r#"{"a":[1,"x",null,true,2.5],"b":{}}"#),
            (DataType::Json, "\"text\""),
            (DataType::Json, "12"),
        ] {
            let value = t.parse(text).unwrap();
            assert_eq!(value.data_type(), Some(t), "{text}");
            assert_eq!(value.to_string(), text);
            assert_eq!(t.parse(&value.to_string()), Ok(value));
        }
    }

    #[test]
    fn refusals_name_the_type() {
        for (t, text, message) in [
            (
                DataType::Timestamp,
                "2026-11-30T15:04:05",
                "is not a timestamp: no time zone",
            ),
            (DataType::Decimal, "1.2.3", "is not a decimal"),
            (DataType::Bytes, "abc", "is not base64"),
            (DataType::Json, "{a:1}", "is not JSON: key must be a string"),
        ] {
            let e = t.parse(text).unwrap_err();
            assert!(e.starts_with(&format!("{text:?} {message}")), "{e}");
        }
        assert_eq!(DataType::Json.parse("null"), Ok(Value::Null));
        assert_eq!(
            DataType::Json.parse("  [1] "),
            Ok(Value::from(serde_json::json!([1])))
        );
    }
}
