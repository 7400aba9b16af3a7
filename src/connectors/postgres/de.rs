//! Typed rows: a [`Record`] deserialized into the user's type with serde, by
//! column name (a struct, a map) or by position (a tuple).

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::record::{Record, Value};

/// A value that does not fit the field it is read into, or a field missing.
#[derive(Debug)]
pub(crate) struct DeError(pub(crate) String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

/// Reads a `T` from `record`; the error names the column at fault when known.
pub(crate) fn from_record<T: DeserializeOwned>(record: &Record) -> Result<T, DeError> {
    T::deserialize(RecordDe(record))
}

struct RecordDe<'a>(&'a Record);

impl<'de> de::Deserializer<'de> for RecordDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(Fields {
            iter: self.0.iter(),
            value: None,
            column: "",
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(
            self.0.values().iter().map(ValueDe),
        ))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct map struct enum
        identifier ignored_any
    }
}

struct Fields<'a, I> {
    iter: I,
    value: Option<&'a Value>,
    column: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (&'a str, &'a Value)>> de::MapAccess<'de> for Fields<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((name, value)) => {
                self.value = Some(value);
                self.column = name;
                seed.deserialize(name.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let value = self.value.take().expect("a key first");
        seed.deserialize(ValueDe(value))
            .map_err(|e| DeError(format!("column {:?}: {e}", self.column)))
    }
}

impl<'de> IntoDeserializer<'de, DeError> for ValueDe<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// One value, read into a field.
struct ValueDe<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for ValueDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Bytes(b) => visitor.visit_bytes(b),
            Value::Json(j) => (**j)
                .clone()
                .deserialize_any(visitor)
                .map_err(|e| DeError(e.to_string())),
            other => visitor.visit_string(other.to_string()),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Decimal(d) => visitor.visit_f64(d.to_f64()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Bytes(b) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied()))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Json(j) => (**j)
                .clone()
                .deserialize_enum(name, variants, visitor)
                .map_err(|e| DeError(e.to_string())),
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::{DataType, Decimal, Schema};

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Order {
        id: u32,
        amount: Decimal,
        total: f64,
        note: Option<String>,
        tags: Vec<String>,
    }

    #[test]
    fn a_record_reads_into_a_struct_by_name() {
        let schema = Arc::new(Schema::new([
            ("note", DataType::Str),
            ("id", DataType::Int),
            ("amount", DataType::Decimal),
            ("total", DataType::Decimal),
            ("tags", DataType::Json),
        ]));
        let r = Record::new(
            schema,
            vec![
                Value::Null,
                Value::Int(7),
                Value::Decimal(Decimal::new(1250, 2)),
                Value::Decimal(Decimal::new(25, 1)),
                Value::from(serde_json::json!(["a"])),
            ],
        );
        let o: Order = from_record(&r).unwrap();
        assert_eq!(
            o,
            Order {
                id: 7,
                amount: Decimal::new(1250, 2),
                total: 2.5,
                note: None,
                tags: vec!["a".into()]
            }
        );
        let e = from_record::<(u8, u8)>(&r).unwrap_err();
        assert!(!e.0.is_empty());
        let r2 = Record::new(
            Arc::new(Schema::new([("id", DataType::Int)])),
            vec![Value::Int(-1)],
        );
        let e = from_record::<Order>(&r2).unwrap_err().0;
        assert!(e.contains("column \"id\""), "{e}");
    }
}
