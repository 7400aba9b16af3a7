//! Estimating the memory records hold: for the run's byte budget
//! ([`Graph::max_in_flight_bytes`](crate::Graph::max_in_flight_bytes)), byte
//! limits of batches and the state of stateful stages.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use crate::record::{Bytes, Date, Decimal, Record, Text, Timestamp, Value};

/// The heap bytes a value owns beyond its own size (`size_of`): the estimate
/// behind a stateful stage's `state_bytes`, a batch's size under the run's
/// byte budget ([`source::Iter::estimate_heap`](crate::source::Iter::estimate_heap),
/// [`Batch::estimate_heap_bytes`](crate::Batch::estimate_heap_bytes)) and
/// byte limits of batches. Implemented for primitives, strings, DataFlare's
/// values and records, options, vectors, boxes, sets and tuples; keys and
/// accumulators of stateful stages implement it. For a type of your own,
/// `impl EstimateSize for MyType {}` counts its inline size only, or sum its
/// fields' heap bytes with [`estimate_size!`](crate::estimate_size).
///
/// ```
/// use dataflare::size::EstimateSize;
///
/// assert_eq!(String::from("hello").heap_bytes(), 5);
/// assert_eq!(42u64.heap_bytes(), 0);
/// assert_eq!((String::from("ab"), 1u8).heap_bytes(), 2);
///
/// #[derive(Hash, PartialEq, Eq, Clone)]
/// struct Region(u16);
/// impl EstimateSize for Region {}
/// ```
pub trait EstimateSize {
    /// Bytes owned on the heap (0 by default).
    fn heap_bytes(&self) -> usize {
        0
    }

    /// Inline size plus heap bytes.
    fn estimated_bytes(&self) -> usize
    where
        Self: Sized,
    {
        std::mem::size_of::<Self>() + self.heap_bytes()
    }
}

/// Implements [`EstimateSize`] for a struct as the sum of the heap bytes of
/// the fields listed (fields left out count their inline size only).
///
/// ```
/// use dataflare::size::EstimateSize;
///
/// struct Order { id: u64, user: String, tags: Vec<String> }
/// dataflare::estimate_size!(Order { user, tags });
///
/// let order = Order { id: 1, user: "ann".into(), tags: vec!["a".into()] };
/// assert_eq!(order.heap_bytes(), 3 + std::mem::size_of::<String>() + 1);
/// ```
#[macro_export]
macro_rules! estimate_size {
    ($t:ty { $($field:ident),* $(,)? }) => {
        impl $crate::size::EstimateSize for $t {
            fn heap_bytes(&self) -> usize {
                0 $(+ $crate::size::EstimateSize::heap_bytes(&self.$field))*
            }
        }
    };
}

macro_rules! no_heap {
    ($($t:ty),*) => {$(impl EstimateSize for $t {})*};
}
no_heap!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    Date,
    Timestamp,
    Decimal,
    &'static str
);

impl EstimateSize for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl EstimateSize for Arc<str> {
    fn heap_bytes(&self) -> usize {
        // Shared: counted once per holder, an over-estimate at worst.
        self.len()
    }
}

impl EstimateSize for Text {
    fn heap_bytes(&self) -> usize {
        // Up to 22 bytes are inline.
        if self.len() > 22 { self.len() } else { 0 }
    }
}

impl EstimateSize for Bytes {
    fn heap_bytes(&self) -> usize {
        // Shared: counted once per holder, an over-estimate at worst.
        self.len()
    }
}

impl EstimateSize for Value {
    fn heap_bytes(&self) -> usize {
        match self {
            Value::Str(t) => t.heap_bytes(),
            Value::Bytes(b) => b.heap_bytes(),
            Value::Json(j) => json_bytes(j),
            _ => 0,
        }
    }
}

/// A rough estimate of a JSON value's heap bytes: its parts' sizes and text.
fn json_bytes(json: &serde_json::Value) -> usize {
    use serde_json::Value as J;
    std::mem::size_of::<J>()
        + match json {
            J::Null | J::Bool(_) | J::Number(_) => 0,
            J::String(s) => s.capacity(),
            J::Array(items) => items.iter().map(json_bytes).sum(),
            // A B-tree node per entry or so: key, value and links.
            J::Object(map) => map
                .iter()
                .map(|(k, v)| k.capacity() + 2 * std::mem::size_of::<usize>() + json_bytes(v))
                .sum(),
        }
}

impl EstimateSize for Record {
    fn heap_bytes(&self) -> usize {
        // The schema is shared by every record of a source.
        std::mem::size_of_val(self.values())
            + self
                .values()
                .iter()
                .map(EstimateSize::heap_bytes)
                .sum::<usize>()
    }
}

impl<T: EstimateSize> EstimateSize for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, EstimateSize::heap_bytes)
    }
}

/// Collections are estimated in constant time (a stage asks after every
/// update): their slots, and their length times the heap data of one sample
/// element (the first).
impl<T: EstimateSize> EstimateSize for Vec<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
            + self.len() * self.first().map_or(0, EstimateSize::heap_bytes)
    }
}

impl<T: EstimateSize> EstimateSize for Box<T> {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<T>() + (**self).heap_bytes()
    }
}

impl<T: EstimateSize + Hash + Eq, S> EstimateSize for HashSet<T, S> {
    fn heap_bytes(&self) -> usize {
        // hashbrown: a slot and a control byte per bucket, ~7/8 full.
        self.capacity() * (std::mem::size_of::<T>() + 1) * 8 / 7
            + self.len() * self.iter().next().map_or(0, EstimateSize::heap_bytes)
    }
}

macro_rules! tuples {
    ($(($($n:tt $t:ident),*)),*) => {$(
        impl<$($t: EstimateSize),*> EstimateSize for ($($t,)*) {
            fn heap_bytes(&self) -> usize {
                0 $(+ self.$n.heap_bytes())*
            }
        }
    )*};
}
tuples!(
    (0 A),
    (0 A, 1 B),
    (0 A, 1 B, 2 C),
    (0 A, 1 B, 2 C, 3 D),
    (0 A, 1 B, 2 C, 3 D, 4 E),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H)
);

/// Bytes a hash table entry of `K` → `V` costs besides the heap data of
/// both: the slot, its control byte, and the table's slack.
pub(crate) fn entry_bytes<K, V>() -> usize {
    (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 1) * 8 / 7
}
