//! Decoding one JSON line: into a serde type ([`typed`]) or into a dynamic
//! [`Record`] ([`dynamic`]).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::record::{DataType, Field, Record, Schema, Value};

/// Why a line could not be decoded.
pub(super) struct LineError {
    pub(super) message: String,
    pub(super) field: Option<String>,
}

impl LineError {
    pub(super) fn new(message: String) -> Self {
        LineError {
            message,
            field: None,
        }
    }

    /// From `serde_json`, keeping its message and column (its line is always 1).
    fn json(error: &serde_json::Error) -> Self {
        let text = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text);
        Self::new(format!("{message} at column {}", error.column()))
    }
}

/// Decodes one line (without its line break) into a record.
pub(super) trait Decode<T>: Send + 'static {
    /// The record on `line`, or why there is none.
    fn decode(&mut self, line: &str) -> std::result::Result<T, LineError>;
}

pub(super) fn typed<T: DeserializeOwned + Send + 'static>(
    _: Option<Arc<Schema>>,
) -> Box<dyn Decode<T>> {
    Box::new(Typed(PhantomData))
}

struct Typed<T>(PhantomData<fn() -> T>);

impl<T: DeserializeOwned + 'static> Decode<T> for Typed<T> {
    fn decode(&mut self, line: &str) -> std::result::Result<T, LineError> {
        serde_json::from_str(line).map_err(|e| LineError::json(&e))
    }
}

pub(super) fn dynamic(schema: Option<Arc<Schema>>) -> Box<dyn Decode<Record>> {
    Box::new(Dynamic {
        convert: schema.is_some(),
        schema,
        slots: Vec::new(),
    })
}

/// Decodes objects into [`Record`]s.
struct Dynamic {
    /// The columns: given, or those of the first object.
    schema: Option<Arc<Schema>>,
    /// Whether values are converted to their column's type (a given schema).
    convert: bool,
    /// One slot per column, reused from line to line.
    slots: Vec<Option<Value>>,
}

impl Decode<Record> for Dynamic {
    fn decode(&mut self, line: &str) -> std::result::Result<Record, LineError> {
        let mut de = serde_json::Deserializer::from_str(line);
        let mut failed_field = None;
        let result = match &self.schema {
            None => FirstObject {
                failed_field: &mut failed_field,
            }
            .deserialize(&mut de)
            .and_then(|pairs| de.end().map(|()| pairs))
            .map(|pairs| {
                let fields = pairs.iter().map(|(name, value)| {
                    Field::new(name.as_str(), value.data_type().unwrap_or(DataType::Str))
                });
                let schema = Arc::new(Schema::from_fields(fields));
                self.schema = Some(schema.clone());
                let values = pairs.into_iter().map(|(_, v)| v).collect();
                Record::new(schema, values)
            }),
            Some(schema) => {
                self.slots.clear();
                self.slots.resize(schema.len(), None);
                Object {
                    schema,
                    convert: self.convert,
                    slots: &mut self.slots,
                    failed_field: &mut failed_field,
                }
                .deserialize(&mut de)
                .and_then(|()| de.end())
                .map(|()| {
                    let values = self.slots.iter_mut().map(|s| s.take().unwrap_or_default());
                    Record::new(schema.clone(), values.collect())
                })
            }
        };
        result.map_err(|e| {
            let mut error = LineError::json(&e);
            error.field = failed_field;
            error
        })
    }
}

/// The first object: its keys in order, with their values.
struct FirstObject<'a> {
    failed_field: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for FirstObject<'_> {
    type Value = Vec<(String, Value)>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FirstObject<'_> {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if pairs.iter().any(|(k, _)| *k == key) {
                let message = format!("the key {key:?} appears twice");
                *self.failed_field = Some(key);
                return Err(de::Error::custom(message));
            }
            match map.next_value_seed(JsonValue) {
                Ok(value) => pairs.push((key, value)),
                Err(e) => {
                    *self.failed_field = Some(key);
                    return Err(e);
                }
            }
        }
        Ok(pairs)
    }
}

/// A later object, read into the slots of the schema's columns.
struct Object<'a> {
    schema: &'a Schema,
    convert: bool,
    slots: &'a mut [Option<Value>],
    failed_field: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let key = key.as_str();
            let fail = |message: String, failed_field: &mut Option<String>| {
                *failed_field = Some(key.to_string());
                de::Error::custom(message)
            };
            let Some(i) = self.schema.index_of(key) else {
                return Err(fail(
                    format!("unknown key {key:?} (not a column of the schema)"),
                    self.failed_field,
                ));
            };
            if self.slots[i].is_some() {
                return Err(fail(
                    format!("the key {key:?} appears twice"),
                    self.failed_field,
                ));
            }
            let data_type = self.schema.fields()[i].data_type();
            let read = match (self.convert, data_type) {
                // Any JSON, as it is.
                (true, DataType::Json) => map
                    .next_value::<serde_json::Value>()
                    .map(|j| Ok(Value::from(j))),
                // A number from its text, not through a float.
                (true, DataType::Decimal) => map.next_value::<&RawValue>().map(decimal),
                (true, _) => map
                    .next_value_seed(JsonValue)
                    .map(|value| convert(value, data_type)),
                (false, _) => map.next_value_seed(JsonValue).map(Ok),
            };
            let value = match read {
                Ok(converted) => converted.map_err(|m| fail(m, self.failed_field))?,
                Err(e) => {
                    *self.failed_field = Some(key.to_string());
                    return Err(e);
                }
            };
            self.slots[i] = Some(value);
        }
        Ok(())
    }
}

/// Converts a JSON value to a column's type: an integer to a float; a string
/// to a date, a timestamp or bytes, as [`DataType::parse`] reads text.
fn convert(value: Value, data_type: DataType) -> std::result::Result<Value, String> {
    Ok(match (value, data_type) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), DataType::Float) => Value::Float(i as f64),
        (Value::Str(s), DataType::Date | DataType::Timestamp | DataType::Bytes) => {
            data_type.parse(&s)?
        }
        (v, t) if v.data_type() == Some(t) => v,
        (v, t) => {
            let json = serde_json::to_string(&v).unwrap_or_default();
            return Err(format!("expected {t}, found {json}"));
        }
    })
}

/// A decimal column's value, from its JSON text: a number exactly as written
/// (`12.50` keeps its scale; one a float would round is read exactly, or
/// refused if it does not fit 28 digits), or a string as [`DataType::parse`]
/// reads it.
fn decimal(raw: &RawValue) -> std::result::Result<Value, String> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => DataType::Decimal.parse(text),
        Some(b'"') => {
            let s: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
            DataType::Decimal.parse(&s)
        }
        Some(b'n') => Ok(Value::Null),
        _ => Err(format!("expected decimal, found {text}")),
    }
}

/// An object key, borrowed from the line when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A JSON value as a [`Value`]: a nested array or object as [`Value::Json`].
struct JsonValue;

impl<'de> DeserializeSeed<'de> for JsonValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("the integer {u} does not fit in an i64")))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::from(s))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::from(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        // As serde_json reads a `Value`.
        serde_json::Value::deserialize(SeqAccessDeserializer::new(seq)).map(Value::from)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        serde_json::Value::deserialize(MapAccessDeserializer::new(map)).map(Value::from)
    }
}

/// Makes a [`LineError`]'s text readable in tests of this module.
impl fmt::Debug for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (field {:?})", self.message, self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(lines: &[&str], schema: Option<Arc<Schema>>) -> Vec<Result<Record, LineError>> {
        let mut d = dynamic(schema);
        lines.iter().map(|l| d.decode(l)).collect()
    }

    #[test]
    fn first_object_sets_columns_in_key_order() {
        let out = decode_all(
            &[
                r#"{"z":1,"a":"x","m":null,"f":2.5,"b":true}"#,
                r#"{"a":"y"}"#,
                r#"{"a":"y","nope":1}"#,
                r#"{"a":"y","a":"z"}"#,
                r#"{"a":[1,{"b":null}]}"#,
                r#"[1,2]"#,
                r#"{"z":1} x"#,
            ],
            None,
        );
        let first = out[0].as_ref().unwrap();
        assert_eq!(
            first.schema().names().collect::<Vec<_>>(),
            ["z", "a", "m", "f", "b"]
        );
        assert_eq!(
            first.values(),
            [
                Value::Int(1),
                Value::from("x"),
                Value::Null,
                Value::Float(2.5),
                Value::Bool(true)
            ]
        );
        let second = out[1].as_ref().unwrap();
        assert_eq!(second.get("a"), Some(&Value::from("y")));
        assert_eq!(second.get("z"), Some(&Value::Null));
        let e = out[2].as_ref().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("nope"), "{e:?}");
        assert!(e.message.contains("unknown key \"nope\""), "{e:?}");
        let e = out[3].as_ref().unwrap_err();
        assert!(e.message.contains("appears twice"), "{e:?}");
        // A nested value is JSON (it was refused before there was a type for it).
        let nested = out[4].as_ref().unwrap();
        assert_eq!(
            nested.get("a"),
            Some(&Value::from(serde_json::json!([1, {"b": null}])))
        );
        let e = out[5].as_ref().unwrap_err();
        assert!(e.message.contains("expected a JSON object"), "{e:?}");
        let e = out[6].as_ref().unwrap_err();
        assert!(e.message.contains("trailing characters at column"), "{e:?}");
    }

    #[test]
    fn a_given_schema_converts_values() {
        let schema = Arc::new(Schema::new([
            ("n", DataType::Int),
            ("x", DataType::Float),
            ("d", DataType::Date),
        ]));
        let out = decode_all(
            &[
                r#"{"x":1,"n":2,"d":"2020-01-31"}"#,
                r#"{"n":1.5}"#,
                r#"{"d":"31/01/2020"}"#,
                r#"{"n":18446744073709551615}"#,
            ],
            Some(schema),
        );
        let row = out[0].as_ref().unwrap();
        assert_eq!(row.get("x"), Some(&Value::Float(1.0)));
        assert_eq!(row.get("n"), Some(&Value::Int(2)));
        assert_eq!(row.get("d").unwrap().to_string(), "2020-01-31");
        let e = out[1].as_ref().unwrap_err();
        assert!(e.message.contains("expected int, found 1.5"), "{e:?}");
        assert_eq!(e.field.as_deref(), Some("n"));
        let e = out[2].as_ref().unwrap_err();
        assert!(e.message.contains("invalid date"), "{e:?}");
        let e = out[3].as_ref().unwrap_err();
        assert!(e.message.contains("does not fit in an i64"), "{e:?}");
    }

    #[test]
    fn nested_values_of_the_first_object_are_json() {
        let out = decode_all(
            &[r#"{"id":1,"tags":["a","b"],"meta":{"z":1,"a":[]}}"#],
            None,
        );
        let row = out[0].as_ref().unwrap();
        let types: Vec<_> = row
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type())
            .collect();
        assert_eq!(types, [DataType::Int, DataType::Json, DataType::Json]);
        assert_eq!(row.get("tags").unwrap().to_string(), r#"["a","b"]"#);
        assert_eq!(row.get("meta").unwrap().as_json().unwrap()["z"], 1);
    }

    #[test]
    fn a_given_schema_reads_the_new_types() {
        use crate::record::{Decimal, Timestamp};
        let schema = Arc::new(Schema::new([
            ("at", DataType::Timestamp),
            ("amount", DataType::Decimal),
            ("blob", DataType::Bytes),
            ("doc", DataType::Json),
        ]));
        let out = decode_all(
            &[
                r#"{"at":"2026-11-30T17:04:05+02:00","amount":12.50,"blob":"aGkh","doc":{"k":[1]}}"#,
                r#"{"amount":"0.10000000000000000001","doc":"text"}"#,
                r#"{"amount":0.10000000000000000001,"doc":null}"#,
                r#"{"amount":1e2,"doc":2.5}"#,
                r#"{"amount":null}"#,
                r#"{"at":"2026-11-30T15:04:05"}"#,
                r#"{"amount":true}"#,
                r#"{"amount":1e40}"#,
                r#"{"blob":"aGk"}"#,
                r#"{"at":1700000000}"#,
            ],
            Some(schema),
        );
        let row = out[0].as_ref().unwrap();
        assert_eq!(
            row.get("at"),
            Some(&Value::Timestamp(
                "2026-11-30T15:04:05Z".parse::<Timestamp>().unwrap()
            ))
        );
        assert_eq!(row.get("amount").unwrap().to_string(), "12.50");
        assert_eq!(row.get("blob").unwrap().as_bytes(), Some(&b"hi!"[..]));
        assert_eq!(row.get("doc").unwrap().to_string(), r#"{"k":[1]}"#);
        let exact = Value::Decimal("0.10000000000000000001".parse::<Decimal>().unwrap());
        let row = out[1].as_ref().unwrap();
        assert_eq!(row.get("amount"), Some(&exact));
        assert_eq!(
            row.get("doc"),
            Some(&Value::from(serde_json::json!("text")))
        );
        let row = out[2].as_ref().unwrap();
        assert_eq!(row.get("amount"), Some(&exact));
        assert_eq!(row.get("doc"), Some(&Value::Null));
        let row = out[3].as_ref().unwrap();
        assert_eq!(row.get("amount").unwrap().to_string(), "100");
        assert_eq!(row.get("doc").unwrap().to_string(), "2.5");
        assert_eq!(out[4].as_ref().unwrap().get("amount"), Some(&Value::Null));
        let error = |i: usize, field: &str, text: &str| {
            let e = out[i].as_ref().unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
            assert!(e.message.contains(text), "{e:?}");
        };
        error(5, "at", "is not a timestamp: no time zone");
        error(6, "amount", "expected decimal, found true");
        error(
            7,
            "amount",
            r#""1e40" is not a decimal: more than 28 significant digits"#,
        );
        error(8, "blob", r#""aGk" is not base64"#);
        error(9, "at", "expected timestamp, found 1700000000");
    }
}
