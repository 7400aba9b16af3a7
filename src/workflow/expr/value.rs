//! The values an expression computes with ([`V`]), their CEL types
//! ([`Kind`]) and sets of them known at compile time ([`Ty`]).

use std::sync::Arc;

use crate::record::{Bytes, DataType, Text, Value};

/// A CEL value while an expression is evaluated: text and bytes read from a
/// record are borrowed from it, not copied.
#[derive(Debug, Clone)]
pub(super) enum V<'r> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    /// Text borrowed from the record.
    Str(&'r str),
    /// Text made by the expression (or a literal's, shared).
    Text(Text),
    /// Bytes borrowed from the record.
    Bytes(&'r [u8]),
    /// Bytes made by the expression (or a literal's, shared).
    OwnedBytes(Bytes),
    /// A list (of a list literal, or concatenated).
    List(Arc<[V<'r>]>),
}

impl<'r> V<'r> {
    /// The value of a record's cell; `Err` names a type expressions do not
    /// take (dates, timestamps, JSON).
    #[inline]
    pub(super) fn of(value: &'r Value) -> Result<V<'r>, &'static str> {
        Ok(match value {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(*b),
            Value::Int(i) => V::Int(*i),
            Value::Float(f) => V::Double(*f),
            Value::Str(s) => V::Str(s.as_str()),
            Value::Decimal(d) => V::Double(d.to_f64()),
            Value::Bytes(b) => V::Bytes(b.as_slice()),
            Value::Date(_) => return Err("a date"),
            Value::Timestamp(_) => return Err("a timestamp"),
            Value::Json(_) => return Err("JSON"),
        })
    }

    /// The value as a record's cell: `Err` for a list, or a uint beyond an
    /// int's range.
    pub(super) fn into_value(self) -> Result<Value, String> {
        Ok(match self {
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(b),
            V::Int(i) => Value::Int(i),
            V::UInt(u) => match i64::try_from(u) {
                Ok(i) => Value::Int(i),
                Err(_) => return Err(format!("the uint {u} is beyond a column's int range")),
            },
            V::Double(f) => Value::Float(f),
            V::Str(s) => Value::Str(Text::from(s)),
            V::Text(t) => Value::Str(t),
            V::Bytes(b) => Value::Bytes(Bytes::from(b)),
            V::OwnedBytes(b) => Value::Bytes(b),
            V::List(_) => return Err("the result is a list, which a column can't hold".into()),
        })
    }

    /// The value's CEL type.
    #[inline]
    pub(super) fn kind(&self) -> Kind {
        match self {
            V::Null => Kind::Null,
            V::Bool(_) => Kind::Bool,
            V::Int(_) => Kind::Int,
            V::UInt(_) => Kind::UInt,
            V::Double(_) => Kind::Double,
            V::Str(_) | V::Text(_) => Kind::String,
            V::Bytes(_) | V::OwnedBytes(_) => Kind::Bytes,
            V::List(_) => Kind::List,
        }
    }

    /// The text of a string.
    #[inline]
    pub(super) fn str(&self) -> Option<&str> {
        match self {
            V::Str(s) => Some(s),
            V::Text(t) => Some(t.as_str()),
            _ => None,
        }
    }

    /// The data of bytes.
    #[inline]
    pub(super) fn bytes(&self) -> Option<&[u8]> {
        match self {
            V::Bytes(b) => Some(b),
            V::OwnedBytes(b) => Some(b.as_slice()),
            _ => None,
        }
    }

    /// The value as written in CEL, for messages.
    pub(super) fn show(&self) -> String {
        match self {
            V::Null => "null".into(),
            V::Bool(b) => b.to_string(),
            V::Int(i) => i.to_string(),
            V::UInt(u) => format!("{u}u"),
            V::Double(f) => format!("{f:?}"),
            V::Str(_) | V::Text(_) => crate::record::excerpt(self.str().unwrap_or_default()),
            V::Bytes(_) | V::OwnedBytes(_) => {
                format!(
                    "b{}",
                    crate::record::excerpt(&String::from_utf8_lossy(
                        self.bytes().unwrap_or_default()
                    ))
                )
            }
            V::List(items) => {
                let items: Vec<String> = items.iter().map(V::show).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

/// A CEL type an expression's value can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Bool,
    Int,
    UInt,
    Double,
    String,
    Bytes,
    List,
}

impl Kind {
    pub(super) const ALL: [Kind; 8] = [
        Kind::Null,
        Kind::Bool,
        Kind::Int,
        Kind::UInt,
        Kind::Double,
        Kind::String,
        Kind::Bytes,
        Kind::List,
    ];

    /// The type's name in CEL.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::UInt => "uint",
            Kind::Double => "double",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::List => "list",
        }
    }

    /// A value of the type that no operation fails on for its value (only
    /// for its type): what the compiler evaluates operations on to find
    /// their result types.
    pub(super) fn sample(self) -> V<'static> {
        match self {
            Kind::Null => V::Null,
            Kind::Bool => V::Bool(true),
            Kind::Int => V::Int(1),
            Kind::UInt => V::UInt(1),
            Kind::Double => V::Double(1.0),
            Kind::String => V::Str("a"),
            Kind::Bytes => V::Bytes(b"a"),
            Kind::List => V::List(Arc::from(vec![V::Int(1)])),
        }
    }
}

/// The set of types an expression's value can have, known at compile time;
/// empty when it fails for every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Ty(u8);

impl Ty {
    pub(super) const NONE: Ty = Ty(0);

    pub(super) fn of(kind: Kind) -> Ty {
        Ty(1 << kind as u8)
    }

    /// A column's: its type's, or null.
    pub(super) fn column(data_type: DataType) -> Result<Ty, &'static str> {
        let kind = match data_type {
            DataType::Bool => Kind::Bool,
            DataType::Int => Kind::Int,
            DataType::Float | DataType::Decimal => Kind::Double,
            DataType::Str => Kind::String,
            DataType::Bytes => Kind::Bytes,
            DataType::Date => return Err("a date"),
            DataType::Timestamp => return Err("a timestamp"),
            DataType::Json => return Err("JSON"),
        };
        Ok(Ty::of(kind).or(Ty::of(Kind::Null)))
    }

    pub(super) fn or(self, other: Ty) -> Ty {
        Ty(self.0 | other.0)
    }

    pub(super) fn has(self, kind: Kind) -> bool {
        self.0 & Ty::of(kind).0 != 0
    }

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The one type, if there is exactly one.
    pub(super) fn single(self) -> Option<Kind> {
        let mut kinds = self.kinds();
        match (kinds.next(), kinds.next()) {
            (Some(kind), None) => Some(kind),
            _ => None,
        }
    }

    pub(super) fn without(self, kind: Kind) -> Ty {
        Ty(self.0 & !Ty::of(kind).0)
    }

    pub(super) fn kinds(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.has(*k))
    }

    /// The names of the types, for messages: `int or null`.
    pub(super) fn describe(self) -> String {
        let names: Vec<&str> = self.kinds().map(Kind::name).collect();
        names.join(" or ")
    }
}
