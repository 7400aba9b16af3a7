use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{Date, Value};

/// The type of a column.
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
}

impl DataType {
    /// Parses `text` as a value of this type. Empty text is [`Value::Null`].
    ///
    /// ```
    /// use dataflare::record::{DataType, Value};
    ///
    /// assert_eq!(DataType::Int.parse("42"), Ok(Value::Int(42)));
    /// assert_eq!(DataType::Bool.parse("TRUE"), Ok(Value::Bool(true)));
    /// assert_eq!(DataType::Float.parse(""), Ok(Value::Null));
    /// assert!(DataType::Int.parse("4x2").is_err());
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
