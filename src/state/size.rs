//! Estimating the memory a stateful stage holds.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use crate::record::{Bytes, Date, Decimal, Record, Text, Timestamp, Value};

/// The heap bytes a value owns beyond its own size (`size_of`), for the
/// estimate of a stateful stage's `state_bytes`. Keys and accumulators of
/// stateful stages implement it; for a type of your own, `impl StateSize for
/// MyKey {}` counts its inline size only, or count its heap data too.
///
/// ```
/// use dataflare::state::StateSize;
///
/// assert_eq!(String::from("hello").heap_bytes(), 5);
/// assert_eq!(42u64.heap_bytes(), 0);
/// assert_eq!((String::from("ab"), 1u8).heap_bytes(), 2);
///
/// #[derive(Hash, PartialEq, Eq, Clone)]
/// struct Region(u16);
/// impl StateSize for Region {}
/// ```
pub trait StateSize {
    /// Bytes owned on the heap (0 by default).
    fn heap_bytes(&self) -> usize {
        0
    }
}

macro_rules! no_heap {
    ($($t:ty),*) => {$(impl StateSize for $t {})*};
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

impl StateSize for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl StateSize for Arc<str> {
    fn heap_bytes(&self) -> usize {
        // Shared: counted once per holder, an over-estimate at worst.
        self.len()
    }
}

impl StateSize for Text {
    fn heap_bytes(&self) -> usize {
        // Up to 22 bytes are inline.
        if self.len() > 22 { self.len() } else { 0 }
    }
}

impl StateSize for Bytes {
    fn heap_bytes(&self) -> usize {
        // Shared: counted once per holder, an over-estimate at worst.
        self.len()
    }
}

impl StateSize for Value {
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

impl StateSize for Record {
    fn heap_bytes(&self) -> usize {
        // The schema is shared by every record of a source.
        std::mem::size_of_val(self.values())
            + self
                .values()
                .iter()
                .map(StateSize::heap_bytes)
                .sum::<usize>()
    }
}

impl<T: StateSize> StateSize for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, StateSize::heap_bytes)
    }
}

/// Collections are estimated in constant time (a stage asks after every
/// update): their slots, and their length times the heap data of one sample
/// element (the first).
impl<T: StateSize> StateSize for Vec<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
            + self.len() * self.first().map_or(0, StateSize::heap_bytes)
    }
}

impl<T: StateSize> StateSize for Box<T> {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<T>() + (**self).heap_bytes()
    }
}

impl<T: StateSize + Hash + Eq, S> StateSize for HashSet<T, S> {
    fn heap_bytes(&self) -> usize {
        // hashbrown: a slot and a control byte per bucket, ~7/8 full.
        self.capacity() * (std::mem::size_of::<T>() + 1) * 8 / 7
            + self.len() * self.iter().next().map_or(0, StateSize::heap_bytes)
    }
}

macro_rules! tuples {
    ($(($($n:tt $t:ident),*)),*) => {$(
        impl<$($t: StateSize),*> StateSize for ($($t,)*) {
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
