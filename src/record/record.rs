use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Schema, Value};

/// A row of [`Value`]s with its shared [`Schema`].
///
/// ```
/// use dataflare::record::{DataType, Record, Schema, Value};
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("amount", DataType::Float), ("qty", DataType::Int)]));
/// let row = Record::new(schema.clone(), vec![Value::Float(2.5), Value::Int(4)]);
/// let total = row.get("amount").and_then(Value::as_f64).unwrap()
///     * row.get("qty").and_then(Value::as_f64).unwrap();
/// assert_eq!(total, 10.0);
/// ```
#[derive(Clone, PartialEq)]
pub struct Record {
    schema: Arc<Schema>,
    values: Vec<Value>,
}

impl Record {
    /// A record of `values`, one per column of `schema`.
    ///
    /// # Panics
    ///
    /// If the number of values differs from the number of columns.
    #[track_caller]
    pub fn new(schema: Arc<Schema>, values: Vec<Value>) -> Self {
        assert_eq!(
            values.len(),
            schema.len(),
            "Record::new: {} values for {} columns",
            values.len(),
            schema.len()
        );
        Record { schema, values }
    }

    /// The record's columns.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The value of the column called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.index_of(name).map(|i| &self.values[i])
    }

    /// The value at column `index`.
    pub fn get_index(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// Replaces the value of the column called `name`; false if there is no such column.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> bool {
        match self.schema.index_of(name) {
            Some(i) => {
                self.values[i] = value.into();
                true
            }
            None => false,
        }
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// `(name, value)` pairs in column order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.schema.names().zip(self.values.iter())
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As a map from column name to value, in column order.
impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
