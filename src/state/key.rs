//! Keys of stateful stages: any `Hash + Eq` value a closure makes of a typed
//! record, or the values of named columns of a dynamic [`Record`].

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::StateSize;
use crate::record::{Record, Value};
use crate::{Error, Result};

/// How a stateful stage finds a record's key.
///
/// Implemented for closures `FnMut(&T) -> K` (typed records, any key that is
/// `Hash + Eq + Clone`) and for [`Columns`] (dynamic records, a [`Key`] of
/// column values). A key a record does not have (a missing column) is a
/// record-level error under the stage's policy.
pub trait KeyOf<T>: Send + 'static {
    /// The key.
    type Key: Hash + Eq + Clone + StateSize + Send + 'static + Borrow<Self::Borrowed>;
    /// The key as a lookup borrows it: the key itself, or for [`by_ref`]
    /// what the record holds (`str` for a `String` key).
    type Borrowed: ?Sized + Hash + Eq;

    /// The key of `record`.
    fn key_of(&mut self, record: &T) -> Result<Self::Key>;

    /// Calls `f` with the key of `record` as a lookup borrows it: with
    /// [`by_ref`], without making an owned key (an aggregate makes one only
    /// for a key it has not seen).
    fn with_key<R>(&mut self, record: &T, f: impl FnOnce(&Self::Borrowed) -> R) -> Result<R> {
        Ok(f(self.key_of(record)?.borrow()))
    }

    /// Names for the key's parts, for output records of dynamic stages
    /// (`None` for a closure's key).
    fn names(&self) -> Option<&[Arc<str>]> {
        None
    }

    /// Whether `key` has a null part (a dynamic record's null column): a
    /// join matches such a key with nothing, as SQL does. False for a
    /// closure's key (a `None` there is a value like any other).
    fn has_null(&self, key: &Self::Key) -> bool {
        let _ = key;
        false
    }
}

impl<T, K, F> KeyOf<T> for F
where
    F: FnMut(&T) -> K + Send + 'static,
    K: Hash + Eq + Clone + StateSize + Send + 'static,
{
    type Key = K;
    type Borrowed = K;

    fn key_of(&mut self, record: &T) -> Result<K> {
        Ok(self(record))
    }
}

/// A key the record holds, looked up by reference: `by_ref(|o: &Order|
/// o.category.as_str())` groups by an owned `String` made only the first time
/// a key is seen, where `|o: &Order| o.category.clone()` makes one for every
/// record. For [`key_by`](crate::Pipeline::key_by).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::state::{agg, by_ref};
///
/// let out = Collected::new();
/// Pipeline::from(source::iter(vec![("books".to_string(), 3), ("toys".to_string(), 1), ("books".to_string(), 2)]))
///     .key_by(by_ref(|r: &(String, i32)| r.0.as_str()))
///     .aggregate(agg::sum(|r: &(String, i32)| r.1))
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![("books".to_string(), 5), ("toys".to_string(), 1)]);
/// # Ok(()) }
/// ```
pub fn by_ref<T, Q, F>(f: F) -> ByRef<F>
where
    F: for<'a> FnMut(&'a T) -> &'a Q,
    Q: ?Sized,
{
    ByRef(f)
}

/// Made by [`by_ref`].
#[derive(Debug, Clone, Copy)]
pub struct ByRef<F>(F);

impl<T, Q, F> KeyOf<T> for ByRef<F>
where
    F: for<'a> FnMut(&'a T) -> &'a Q + Send + 'static,
    Q: ?Sized + Hash + Eq + ToOwned + 'static,
    Q::Owned: Hash + Eq + Clone + StateSize + Send + 'static,
{
    type Key = Q::Owned;
    type Borrowed = Q;

    fn key_of(&mut self, record: &T) -> Result<Q::Owned> {
        Ok((self.0)(record).to_owned())
    }

    fn with_key<R>(&mut self, record: &T, f: impl FnOnce(&Q) -> R) -> Result<R> {
        Ok(f((self.0)(record)))
    }
}

/// The key of a dynamic [`Record`]: the values of one or more of its columns.
///
/// ```
/// use dataflare::record::{DataType, Record, Schema, Value};
/// use dataflare::state::{Columns, KeyOf};
///
/// use std::sync::Arc;
///
/// let schema = Arc::new(Schema::new([("id", DataType::Int), ("region", DataType::Str)]));
/// let record = Record::new(schema, vec![Value::Int(7), Value::from("eu")]);
/// let mut by_region = Columns::new(["region"]);
/// assert_eq!(by_region.key_of(&record).unwrap().values(), &[Value::from("eu")]);
/// ```
#[derive(Debug, Clone)]
pub struct Columns {
    names: Vec<Arc<str>>,
    /// Each column's index in the last schema seen, and that schema.
    cached: Option<(Arc<crate::record::Schema>, Vec<usize>)>,
}

impl Columns {
    /// The key made of these columns' values, in this order.
    ///
    /// # Panics
    ///
    /// If `names` is empty.
    #[track_caller]
    pub fn new<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let names: Vec<Arc<str>> = names.into_iter().map(|n| Arc::from(n.as_ref())).collect();
        assert!(!names.is_empty(), "Columns: name one column at least");
        Columns {
            names,
            cached: None,
        }
    }
}

impl KeyOf<Record> for Columns {
    type Key = Key;
    type Borrowed = Key;

    fn key_of(&mut self, record: &Record) -> Result<Key> {
        let schema = record.schema();
        let fresh = !matches!(&self.cached, Some((s, _)) if Arc::ptr_eq(s, schema));
        if fresh {
            let mut indices = Vec::with_capacity(self.names.len());
            for name in &self.names {
                let i = schema.index_of(name).ok_or_else(|| {
                    Error::msg(format!(
                        "the record has no column {name:?} to key by (its columns: {})",
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .at_record_level()
                })?;
                indices.push(i);
            }
            self.cached = Some((schema.clone(), indices));
        }
        let (_, indices) = self.cached.as_ref().expect("cached above");
        Ok(Key(indices
            .iter()
            .map(|&i| record.get_index(i).cloned().unwrap_or(Value::Null))
            .collect()))
    }

    fn names(&self) -> Option<&[Arc<str>]> {
        Some(&self.names)
    }

    fn has_null(&self, key: &Key) -> bool {
        key.0.iter().any(Value::is_null)
    }
}

/// A dynamic record's key: the values of its key columns. Equal when the
/// values are: floats by their bits (so `NaN` equals itself and `-0.0` does
/// not equal `0.0`), `Null` equal to `Null` (nulls group together, as SQL's
/// `GROUP BY` does).
#[derive(Clone)]
pub struct Key(Vec<Value>);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| match (a, b) {
                (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
                (a, b) => a == b,
            })
    }
}

impl Key {
    /// A key of these values.
    pub fn new(values: Vec<Value>) -> Self {
        Key(values)
    }

    /// The key's values, one per key column.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// The key's values, owned.
    pub fn into_values(self) -> Vec<Value> {
        self.0
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for value in &self.0 {
            std::mem::discriminant(value).hash(state);
            match value {
                Value::Null => {}
                Value::Bool(b) => b.hash(state),
                Value::Int(i) => i.hash(state),
                Value::Float(f) => f.to_bits().hash(state),
                Value::Str(s) => s.as_str().hash(state),
                Value::Date(d) => d.days_since_epoch().hash(state),
                Value::Timestamp(t) => t.hash(state),
                // By value, as they compare: 1.50 and 1.5 alike.
                Value::Decimal(d) => d.hash(state),
                Value::Bytes(b) => b.hash(state),
                Value::Json(j) => j.hash(state),
            }
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl StateSize for Key {
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}
