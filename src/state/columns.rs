//! Aggregates over dynamic records, by column name, and the records they
//! make: the key columns, then one column per aggregate.

use super::hash::HashSet;
use std::sync::Arc;

use super::Key;
use super::agg::{Aggregate, Merge};
use super::aggregate::Output;
use crate::record::{DataType, Record, Schema, Value};

/// One aggregate over a column of dynamic records, for
/// [`KeyBy::aggregate_columns`](super::KeyBy::aggregate_columns).
///
/// `Sum` of an integer column is an integer, of a float column a float, of a
/// decimal column an exact decimal (a float only if it outgrows 28 digits);
/// `Mean` is a float; `Min`, `Max`, `First`, `Last` keep the column's type;
/// `Count` and `CountDistinct` are integers. Nulls are skipped (as in SQL):
/// a group whose column is all null gets a null, `Count` counts records.
/// A value that is no number under `Sum` / `Mean` is skipped too (and the
/// column should be typed: see `infer_schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Agg {
    /// The number of records.
    Count,
    /// The sum of the column.
    Sum(Arc<str>),
    /// The mean of the column.
    Mean(Arc<str>),
    /// The least value of the column.
    Min(Arc<str>),
    /// The greatest value of the column.
    Max(Arc<str>),
    /// The column's first non-null value.
    First(Arc<str>),
    /// The column's last non-null value.
    Last(Arc<str>),
    /// The number of distinct non-null values of the column.
    CountDistinct(Arc<str>),
}

impl Agg {
    /// [`Agg::Sum`] of `column`.
    pub fn sum(column: &str) -> Agg {
        Agg::Sum(column.into())
    }
    /// [`Agg::Mean`] of `column`.
    pub fn mean(column: &str) -> Agg {
        Agg::Mean(column.into())
    }
    /// [`Agg::Min`] of `column`.
    pub fn min(column: &str) -> Agg {
        Agg::Min(column.into())
    }
    /// [`Agg::Max`] of `column`.
    pub fn max(column: &str) -> Agg {
        Agg::Max(column.into())
    }
    /// [`Agg::First`] of `column`.
    pub fn first(column: &str) -> Agg {
        Agg::First(column.into())
    }
    /// [`Agg::Last`] of `column`.
    pub fn last(column: &str) -> Agg {
        Agg::Last(column.into())
    }
    /// [`Agg::CountDistinct`] of `column`.
    pub fn count_distinct(column: &str) -> Agg {
        Agg::CountDistinct(column.into())
    }

    fn column(&self) -> Option<&str> {
        match self {
            Agg::Count => None,
            Agg::Sum(c)
            | Agg::Mean(c)
            | Agg::Min(c)
            | Agg::Max(c)
            | Agg::First(c)
            | Agg::Last(c)
            | Agg::CountDistinct(c) => Some(c),
        }
    }
}

/// The running state of one [`Agg`] for one group.
#[derive(Debug)]
pub enum AggState {
    /// Records counted.
    Count(u64),
    /// An integer sum (while every value was an integer), or a float one.
    Sum(Option<Value>),
    /// Sum and count of the values.
    Mean(f64, u64),
    /// The value kept (min, max).
    Held(Option<Value>),
    /// The value kept (first, last) and when it came (the aggregate's count
    /// of updates then), so that partial results merge in arrival order.
    Stamped(Option<(u64, Value)>),
    /// The distinct values.
    Distinct(HashSet<super::Key>),
}

/// The [`Agg`]s of a dynamic aggregation, together an [`Aggregate`] over
/// [`Record`]s whose result is one value per aggregate.
#[derive(Debug)]
pub struct ColumnAggregates {
    aggs: Vec<Agg>,
    /// Each aggregate's column index in the last schema seen.
    indices: Option<(Arc<Schema>, Vec<Option<usize>>)>,
    /// Updates so far: the arrival order of first and last values.
    updates: u64,
}

impl ColumnAggregates {
    pub(crate) fn new(aggs: Vec<Agg>) -> Self {
        ColumnAggregates {
            aggs,
            indices: None,
            updates: 0,
        }
    }
}

impl Aggregate<Record> for ColumnAggregates {
    type Acc = Vec<AggState>;
    type Out = Vec<Value>;

    fn init(&mut self) -> Vec<AggState> {
        self.aggs
            .iter()
            .map(|a| match a {
                Agg::Count => AggState::Count(0),
                Agg::Sum(_) => AggState::Sum(None),
                Agg::Mean(_) => AggState::Mean(0.0, 0),
                Agg::Min(_) | Agg::Max(_) => AggState::Held(None),
                Agg::First(_) | Agg::Last(_) => AggState::Stamped(None),
                Agg::CountDistinct(_) => AggState::Distinct(HashSet::default()),
            })
            .collect()
    }

    fn update(&mut self, acc: &mut Vec<AggState>, record: &Record) {
        let schema = record.schema();
        if !matches!(&self.indices, Some((s, _)) if Arc::ptr_eq(s, schema)) {
            let indices = self
                .aggs
                .iter()
                .map(|a| a.column().and_then(|c| schema.index_of(c)))
                .collect();
            self.indices = Some((schema.clone(), indices));
        }
        let (_, indices) = self.indices.as_ref().expect("set above");
        self.updates += 1;
        let now = self.updates;
        for ((agg, state), index) in self.aggs.iter().zip(acc.iter_mut()).zip(indices) {
            let value = index
                .and_then(|i| record.get_index(i))
                .filter(|v| !v.is_null());
            match (agg, state) {
                (Agg::Count, AggState::Count(n)) => *n += 1,
                (_, _) if value.is_none() => {}
                (Agg::Sum(_), AggState::Sum(sum)) => {
                    *sum = add(sum.take(), value.expect("checked"));
                }
                (Agg::Mean(_), AggState::Mean(sum, n)) => {
                    let x = match value {
                        Some(Value::Decimal(d)) => Some(d.to_f64()),
                        v => v.and_then(Value::as_f64),
                    };
                    if let Some(x) = x {
                        *sum += x;
                        *n += 1;
                    }
                }
                (Agg::Min(_), AggState::Held(held)) => keep(held, value, less),
                (Agg::Max(_), AggState::Held(held)) => keep(held, value, |v, h| less(h, v)),
                (Agg::First(_), AggState::Stamped(held)) => {
                    if held.is_none() {
                        *held = value.map(|v| (now, v.clone()));
                    }
                }
                (Agg::Last(_), AggState::Stamped(held)) => {
                    *held = value.map(|v| (now, v.clone()));
                }
                (Agg::CountDistinct(_), AggState::Distinct(seen)) => {
                    seen.insert(Key::new(vec![value.expect("checked").clone()]));
                }
                _ => unreachable!("states are made by init, in the aggregates' order"),
            }
        }
    }

    fn finish(&mut self, acc: Vec<AggState>) -> Vec<Value> {
        acc.into_iter()
            .map(|state| match state {
                AggState::Count(n) => Value::Int(n as i64),
                AggState::Sum(sum) => sum.unwrap_or(Value::Null),
                AggState::Mean(_, 0) => Value::Null,
                AggState::Mean(sum, n) => Value::Float(sum / n as f64),
                AggState::Held(v) => v.unwrap_or(Value::Null),
                AggState::Stamped(v) => v.map_or(Value::Null, |(_, v)| v),
                AggState::Distinct(seen) => Value::Int(seen.len() as i64),
            })
            .collect()
    }

    fn acc_heap(&self, acc: &Vec<AggState>) -> usize {
        use super::StateSize;
        acc.capacity() * std::mem::size_of::<AggState>()
            + acc
                .iter()
                .map(|s| match s {
                    AggState::Held(v) | AggState::Sum(v) => v.heap_bytes(),
                    AggState::Stamped(v) => v.as_ref().map_or(0, |(_, v)| v.heap_bytes()),
                    AggState::Distinct(seen) => seen.heap_bytes(),
                    _ => 0,
                })
                .sum::<usize>()
    }
}

impl Merge<Record> for ColumnAggregates {
    fn merge(&mut self, acc: &mut Vec<AggState>, other: Vec<AggState>, _other_has_last: bool) {
        for ((agg, state), other) in self.aggs.iter().zip(acc.iter_mut()).zip(other) {
            match (agg, state, other) {
                (Agg::Count, AggState::Count(n), AggState::Count(m)) => *n += m,
                (Agg::Sum(_), AggState::Sum(sum), AggState::Sum(Some(v))) => {
                    *sum = add(sum.take(), &v);
                }
                (Agg::Mean(_), AggState::Mean(sum, n), AggState::Mean(s, m)) => {
                    *sum += s;
                    *n += m;
                }
                (Agg::Min(_), AggState::Held(held), AggState::Held(v)) => {
                    keep(held, v.as_ref(), less);
                }
                (Agg::Max(_), AggState::Held(held), AggState::Held(v)) => {
                    keep(held, v.as_ref(), |v, h| less(h, v));
                }
                (Agg::First(_), AggState::Stamped(held), AggState::Stamped(Some(v))) => {
                    if held.as_ref().is_none_or(|h| v.0 < h.0) {
                        *held = Some(v);
                    }
                }
                (Agg::Last(_), AggState::Stamped(held), AggState::Stamped(Some(v))) => {
                    if held.as_ref().is_none_or(|h| v.0 > h.0) {
                        *held = Some(v);
                    }
                }
                (Agg::CountDistinct(_), AggState::Distinct(seen), AggState::Distinct(more)) => {
                    seen.extend(more);
                }
                (_, _, AggState::Sum(None) | AggState::Stamped(None)) => {}
                _ => unreachable!("states are made by init, in the aggregates' order"),
            }
        }
    }
}

/// A running sum with `v` added: integers while every value is one (a float
/// past `i64`), floats otherwise; a value that is no number is skipped.
fn add(sum: Option<Value>, v: &Value) -> Option<Value> {
    match (sum, v) {
        (None, Value::Int(i)) => Some(Value::Int(*i)),
        (None, Value::Decimal(d)) => Some(Value::Decimal(*d)),
        // Exact while it fits; a sum too large for a decimal goes on as a
        // float rather than failing the run.
        (Some(Value::Decimal(a)), Value::Decimal(b)) => Some(match a.checked_add(*b) {
            Some(s) => Value::Decimal(s),
            None => Value::Float(a.to_f64() + b.to_f64()),
        }),
        (Some(Value::Decimal(a)), Value::Int(b)) => {
            let b = crate::record::Decimal::from(*b);
            Some(match a.checked_add(b) {
                Some(s) => Value::Decimal(s),
                None => Value::Float(a.to_f64() + b.to_f64()),
            })
        }
        (None, v) => v.as_f64().map(Value::Float),
        (Some(Value::Int(a)), Value::Int(b)) => Some(match a.checked_add(*b) {
            Some(s) => Value::Int(s),
            None => Value::Float(a as f64 + *b as f64),
        }),
        (Some(s), v) => match (number(&s), number(v)) {
            (Some(a), Some(b)) => Some(Value::Float(a + b)),
            (a, _) => a.map(Value::Float),
        },
    }
}

/// A number as a float, decimals too (a sum that went on as a float still
/// adds them).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Decimal(d) => Some(d.to_f64()),
        v => v.as_f64(),
    }
}

/// Replaces the held value with `value` when there is none yet or
/// `replace(value, held)` says so.
fn keep(held: &mut Option<Value>, value: Option<&Value>, replace: impl Fn(&Value, &Value) -> bool) {
    if let Some(v) = value {
        match held {
            Some(h) if !replace(v, h) => {}
            _ => *held = Some(v.clone()),
        }
    }
}

/// `a < b` for values of one type (numbers compare across int and float,
/// text by bytes, dates by day); values that do not compare never are less.
fn less(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x.as_str() < y.as_str(),
        (Value::Date(x), Value::Date(y)) => x < y,
        (Value::Timestamp(x), Value::Timestamp(y)) => x < y,
        (Value::Decimal(x), Value::Decimal(y)) => x < y,
        (Value::Bool(x), Value::Bool(y)) => x < y,
        (x, y) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x < y,
            _ => false,
        },
    }
}

impl super::StateSize for AggState {}

/// Records of dynamic aggregation results: the key columns (named as the
/// key's [`Columns`](super::Columns)) then one column per aggregate, each
/// typed from its values (text if all are null).
#[derive(Debug)]
pub struct Rows {
    names: Vec<Arc<str>>,
}

impl Rows {
    pub(crate) fn new(key_names: &[Arc<str>], agg_names: Vec<Arc<str>>) -> Self {
        let mut names = key_names.to_vec();
        names.extend(agg_names);
        Rows { names }
    }
}

impl Output<Key, Vec<Value>> for Rows {
    type Out = Record;

    fn make(&mut self, groups: Vec<(Key, Vec<Value>)>) -> Vec<Record> {
        let rows: Vec<Vec<Value>> = groups
            .into_iter()
            .map(|(key, values)| {
                let mut row = key.into_values();
                row.extend(values);
                row
            })
            .collect();
        let types = self.names.iter().enumerate().map(|(i, _)| {
            rows.iter()
                .find_map(|r| r.get(i).and_then(Value::data_type))
                .unwrap_or(DataType::Str)
        });
        let schema = Arc::new(Schema::new(self.names.iter().cloned().zip(types)));
        rows.into_iter()
            .map(|values| Record::new(schema.clone(), values))
            .collect()
    }
}
