//! [`Column`]: a typed handle on one column of dynamic records.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use super::{Date, Decimal, Record, Schema, Timestamp, Value, excerpt};
use crate::Error;

/// A typed handle on one column of [`Record`]s: the column's index is found
/// by name once, against the schema of the first record read (records of one
/// source share one schema), and every read after that is an index and a
/// type check, with no name lookup and no `Option` chain per value.
///
/// `T` is what a value reads as: `i64`, `f64` (also reads integers), `bool`,
/// `str`, [`Date`], [`Timestamp`], [`Decimal`], `[u8]` or [`Value`] (any).
/// [`get`](Column::get) gives the value or a record-level error that names
/// the column and what it found (null, another type, no such column), so in
/// a `try_map` it is one `?` under the stage's error policy;
/// [`get_opt`](Column::get_opt) reads a null as `None`.
///
/// A handle is cheap to clone and to share between threads (`par_map`
/// workers); each clone resolves once.
///
/// ```
/// use dataflare::record::{Column, DataType, Record, Schema, Value};
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("amount", DataType::Float), ("user", DataType::Str)]));
/// let row = Record::new(schema, vec![Value::Float(120.5), Value::from("ann")]);
///
/// let amount = Column::<f64>::named("amount");
/// let user = Column::<str>::named("user");
/// assert_eq!(amount.get(&row).unwrap(), 120.5);
/// assert_eq!(user.get(&row).unwrap(), "ann");
///
/// let missing = Column::<f64>::named("amonut");
/// let e = missing.get(&row).unwrap_err();
/// assert!(e.is_record_level());
/// assert!(e.to_string().contains(r#"no column "amonut" (the columns: amount, user)"#));
/// ```
///
/// In a pipeline, the handles move into the closures:
///
/// ```
/// # #[tokio::main] async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::record::{Column, Decimal, Record, Schema, DataType, Value};
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("amount", DataType::Float), ("qty", DataType::Int)]));
/// let rows = vec![Record::new(schema.clone(), vec![Value::Float(302.1), Value::Int(3)])];
/// let (amount, qty) = (Column::<f64>::named("amount"), Column::<i64>::named("qty"));
/// let out = Collected::new();
/// Pipeline::from(source::iter(rows))
///     .try_map(move |r: &Record| {
///         let total = amount.get(r)? * qty.get(r)? as f64;
///         Ok::<_, Error>(Decimal::from_f64(total, 2).expect("finite"))
///     })
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.take()[0].to_string(), "906.30");
/// # Ok(()) }
/// ```
pub struct Column<T: ?Sized> {
    name: Arc<str>,
    /// The schema it was resolved against, and the index there (`None`:
    /// no such column).
    resolved: OnceLock<(Arc<Schema>, Option<usize>)>,
    _type: PhantomData<fn(&T)>,
}

impl<T: ColumnType + ?Sized> Column<T> {
    /// A handle on the column called `name`, resolved on first use.
    pub fn named(name: impl Into<Arc<str>>) -> Self {
        Column {
            name: name.into(),
            resolved: OnceLock::new(),
            _type: PhantomData,
        }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks now that `schema` has the column, with a type `T` reads
    /// (instead of on the first record): for a schema known before the run.
    ///
    /// ```
    /// use dataflare::record::{Column, DataType, Schema};
    ///
    /// let schema = Schema::new([("qty", DataType::Int)]);
    /// assert!(Column::<i64>::named("qty").check(&schema).is_ok());
    /// let e = Column::<bool>::named("qty").check(&schema).unwrap_err();
    /// assert!(e.to_string().contains("column \"qty\" is int, not bool"));
    /// ```
    pub fn check(&self, schema: &Schema) -> Result<(), Error> {
        let Some(index) = schema.index_of(&self.name) else {
            return Err(self.missing(schema));
        };
        let field = schema.field(index).expect("index from the schema");
        if T::reads(field.data_type()) {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "column {:?} is {}, not {}",
                &*self.name,
                field.data_type(),
                T::NAME
            )))
        }
    }

    /// The value in `record`; a record-level error naming the column if it
    /// is null, of another type, or missing.
    #[inline]
    pub fn get<'a>(&self, record: &'a Record) -> Result<T::Out<'a>, Error> {
        let value = self.value(record)?;
        match T::read(value) {
            Some(v) => Ok(v),
            None => Err(self.wrong(value)),
        }
    }

    /// The value in `record`, `None` if it is null; a record-level error
    /// naming the column if it is of another type or missing.
    #[inline]
    pub fn get_opt<'a>(&self, record: &'a Record) -> Result<Option<T::Out<'a>>, Error> {
        let value = self.value(record)?;
        if value.is_null() {
            return Ok(None);
        }
        T::read(value).map(Some).ok_or_else(|| self.wrong(value))
    }

    #[inline]
    fn value<'a>(&self, record: &'a Record) -> Result<&'a Value, Error> {
        let schema = record.schema();
        let (resolved, index) = self
            .resolved
            .get_or_init(|| (schema.clone(), schema.index_of(&self.name)));
        let index = if Arc::ptr_eq(resolved, schema) {
            *index
        } else {
            // A record of another schema: looked up by name.
            schema.index_of(&self.name)
        };
        match index.and_then(|i| record.get_index(i)) {
            Some(value) => Ok(value),
            None => Err(self.missing(schema).at_record_level()),
        }
    }

    fn missing(&self, schema: &Schema) -> Error {
        let names: Vec<&str> = schema.names().collect();
        Error::msg(format!(
            "no column {:?} (the columns: {})",
            &*self.name,
            names.join(", ")
        ))
    }

    #[cold]
    fn wrong(&self, value: &Value) -> Error {
        let found = match value {
            Value::Null => "null".to_string(),
            Value::Str(s) => format!("text {}", excerpt(s.as_str())),
            other => format!(
                "{} {other}",
                other.data_type().map_or("null".into(), |t| t.to_string())
            ),
        };
        Error::msg(format!(
            "column {:?} holds {found}, not {}",
            &*self.name,
            T::NAME
        ))
        .at_record_level()
    }
}

impl<T: ?Sized> Clone for Column<T> {
    fn clone(&self) -> Self {
        Column {
            name: self.name.clone(),
            resolved: self.resolved.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: ColumnType + ?Sized> fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Column<{}>({:?})", T::NAME, &*self.name)
    }
}

/// What a [`Column`] reads a value as. Implemented for `i64`, `f64`,
/// `bool`, `str`, `[u8]`, [`Date`], [`Timestamp`], [`Decimal`] and
/// [`Value`]; sealed.
pub trait ColumnType: sealed::Sealed {
    /// What a read gives: the type itself, or a borrow of the record for
    /// `str`, `[u8]` and `Value`.
    type Out<'a>;
    /// The type's name in messages.
    const NAME: &'static str;
    /// The value as this type, `None` if it is another (or null).
    fn read(value: &Value) -> Option<Self::Out<'_>>;
    /// Whether a column of `data_type` reads as this type.
    fn reads(data_type: super::DataType) -> bool;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! column_type {
    ($t:ty, $out:ty, $name:literal, |$v:ident| $read:expr, $($dt:ident)|+) => {
        impl sealed::Sealed for $t {}
        impl ColumnType for $t {
            type Out<'a> = $out;
            const NAME: &'static str = $name;
            #[inline]
            fn read($v: &Value) -> Option<Self::Out<'_>> {
                $read
            }
            fn reads(data_type: super::DataType) -> bool {
                matches!(data_type, $(super::DataType::$dt)|+)
            }
        }
    };
}

column_type!(i64, i64, "int", |v| v.as_i64(), Int);
column_type!(f64, f64, "float", |v| v.as_f64(), Float | Int);
column_type!(bool, bool, "bool", |v| v.as_bool(), Bool);
column_type!(str, &'a str, "string", |v| v.as_str(), Str);
column_type!([u8], &'a [u8], "bytes", |v| v.as_bytes(), Bytes);
column_type!(Date, Date, "date", |v| v.as_date(), Date);
column_type!(
    Timestamp,
    Timestamp,
    "timestamp",
    |v| v.as_timestamp(),
    Timestamp
);
column_type!(Decimal, Decimal, "decimal", |v| v.as_decimal(), Decimal);
column_type!(
    Value,
    &'a Value,
    "any value",
    |v| Some(v),
    Bool | Int | Float | Str | Date | Timestamp | Decimal | Bytes | Json
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DataType;

    fn row(schema: &Arc<Schema>, amount: Value) -> Record {
        Record::new(schema.clone(), vec![amount, Value::from("ann")])
    }

    #[test]
    fn reads_by_index_once_resolved_and_by_name_for_another_schema() {
        let a = Arc::new(Schema::new([
            ("amount", DataType::Float),
            ("user", DataType::Str),
        ]));
        let b = Arc::new(Schema::new([
            ("user", DataType::Str),
            ("amount", DataType::Float),
        ]));
        let amount = Column::<f64>::named("amount");
        assert_eq!(amount.get(&row(&a, Value::Float(1.5))).unwrap(), 1.5);
        let other = Record::new(b, vec![Value::from("bob"), Value::Float(2.5)]);
        assert_eq!(amount.get(&other).unwrap(), 2.5);
        // Integers read as floats; nulls are an error for get, None for get_opt.
        assert_eq!(amount.get(&row(&a, Value::Int(3))).unwrap(), 3.0);
        let null = row(&a, Value::Null);
        let e = amount.get(&null).unwrap_err();
        assert!(e.is_record_level());
        assert!(
            e.to_string()
                .contains("column \"amount\" holds null, not float"),
            "{e}"
        );
        assert_eq!(amount.get_opt(&null).unwrap(), None);
        let text = row(&a, Value::from("12,5"));
        let e = amount.get_opt(&text).unwrap_err();
        assert!(
            e.to_string().contains(r#"holds text "12,5", not float"#),
            "{e}"
        );
    }
}
