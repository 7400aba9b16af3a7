//! Aggregates: what a keyed stage computes over each group's records.
//!
//! Ready-made over typed records (each takes a closure reading the value from
//! a record): [`count`], [`sum`], [`min`], [`max`], [`mean`], [`first`],
//! [`last`], [`count_distinct`]; a tuple of aggregates is an aggregate of
//! their tuple. Over dynamic [`Record`](crate::record::Record)s, by column
//! name: [`column`]. [`fold`] and [`reduce`] make one of a closure.
//!
//! Session windows merge two sessions a record bridges, and with them their
//! accumulators: they take aggregates that also implement [`Merge`] (all the
//! ready-made ones but [`fold`], and tuples of them).

use super::hash::HashSet;
use std::hash::Hash;
use std::marker::PhantomData;

use super::StateSize;

/// An aggregate over records of type `T`: an accumulator per group, updated
/// with each record, turned into the group's result at the end.
pub trait Aggregate<T>: Send + 'static {
    /// The running state of one group.
    type Acc: Send + 'static;
    /// The group's result.
    type Out: Send + 'static;

    /// A new group's accumulator.
    fn init(&mut self) -> Self::Acc;
    /// Takes `record` into the group's accumulator.
    fn update(&mut self, acc: &mut Self::Acc, record: &T);
    /// The group's result.
    fn finish(&mut self, acc: Self::Acc) -> Self::Out;
    /// Heap bytes the accumulator owns (for `state_bytes`; 0 by default).
    fn acc_heap(&self, _acc: &Self::Acc) -> usize {
        0
    }
}

/// An [`Aggregate`] whose accumulators of one group can be combined: what
/// session windows need, where a record may bridge two sessions of a key
/// into one.
///
/// The window whose first record came first is `acc`, the other `other`;
/// `other_has_last` says whether `other` holds the group's latest record.
/// So order-sensitive aggregates stay exact: [`first`] keeps `acc`'s value,
/// [`last`] takes `other`'s when `other_has_last`. Others combine as their
/// nature allows: counts and sums add (floating-point sums may round
/// differently than one running sum), [`min`] / [`max`] keep `acc`'s value
/// on ties, [`reduce`] calls its closure with `other`'s result as the next
/// record.
///
/// ```
/// use dataflare::state::agg::{self, Aggregate, Merge};
///
/// let mut sum = agg::sum(|x: &i64| *x);
/// let (mut a, mut b) = (sum.init(), sum.init());
/// sum.update(&mut a, &2);
/// sum.update(&mut b, &5);
/// sum.merge(&mut a, b, true);
/// assert_eq!(sum.finish(a), 7);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot merge two partial results, which session windows need",
    label = "not mergeable",
    note = "use the aggregates of `dataflare::state::agg` (all but `fold`; tuples of them), \
            `reduce`, or implement `Merge` for your own aggregate"
)]
pub trait Merge<T>: Aggregate<T> {
    /// Takes `other` into `acc`: `acc` holds the records that came first,
    /// `other_has_last` says whether `other` holds the last one.
    fn merge(&mut self, acc: &mut Self::Acc, other: Self::Acc, other_has_last: bool);
}

/// Takes `record` into `acc`, keeping `bytes` (a stage's state estimate) in
/// step with the accumulator's heap: what every keyed stage does per record.
pub(crate) fn update_counted<T, A: Aggregate<T>>(
    agg: &mut A,
    acc: &mut A::Acc,
    record: &T,
    bytes: &mut usize,
) {
    let before = agg.acc_heap(acc);
    agg.update(acc, record);
    *bytes = (*bytes + agg.acc_heap(acc)).saturating_sub(before);
}

/// The number of records.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::state::agg;
///
/// let out = Collected::new();
/// Pipeline::from(source::iter(vec!["a", "b", "a"]))
///     .key_by(|s: &&str| s.to_string())
///     .aggregate(agg::count())
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![("a".to_string(), 2), ("b".to_string(), 1)]);
/// # Ok(()) }
/// ```
pub fn count() -> Count {
    Count
}

/// Made by [`count`].
#[derive(Debug, Clone, Copy)]
pub struct Count;

impl<T> Aggregate<T> for Count {
    type Acc = u64;
    type Out = u64;

    fn init(&mut self) -> u64 {
        0
    }

    fn update(&mut self, acc: &mut u64, _record: &T) {
        *acc += 1;
    }

    fn finish(&mut self, acc: u64) -> u64 {
        acc
    }
}

impl<T> Merge<T> for Count {
    fn merge(&mut self, acc: &mut u64, other: u64, _other_has_last: bool) {
        *acc += other;
    }
}

/// A closure reading a value from a record, for the aggregates that take one.
#[derive(Debug, Clone, Copy)]
pub struct Of<F, V> {
    f: F,
    value: PhantomData<fn() -> V>,
}

fn of<F, V>(f: F) -> Of<F, V> {
    Of {
        f,
        value: PhantomData,
    }
}

/// The sum of `f(record)`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::state::agg;
///
/// let out = Collected::new();
/// Pipeline::from(source::iter(vec![("a", 1.5), ("b", 2.0), ("a", 3.0)]))
///     .key_by(|r: &(&'static str, f64)| r.0)
///     .aggregate((agg::sum(|r: &(&'static str, f64)| r.1), agg::mean(|r: &(&'static str, f64)| r.1)))
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![("a", (4.5, 2.25)), ("b", (2.0, 2.0))]);
/// # Ok(()) }
/// ```
pub fn sum<T, V, F>(f: F) -> Sum<F, V>
where
    F: FnMut(&T) -> V,
{
    Sum(of(f))
}

/// Made by [`sum`].
#[derive(Debug, Clone, Copy)]
pub struct Sum<F, V>(Of<F, V>);

impl<T, V, F> Aggregate<T> for Sum<F, V>
where
    F: FnMut(&T) -> V + Send + 'static,
    V: std::ops::AddAssign + Default + Send + 'static,
{
    type Acc = V;
    type Out = V;

    fn init(&mut self) -> V {
        V::default()
    }

    fn update(&mut self, acc: &mut V, record: &T) {
        *acc += (self.0.f)(record);
    }

    fn finish(&mut self, acc: V) -> V {
        acc
    }
}

impl<T, V, F> Merge<T> for Sum<F, V>
where
    F: FnMut(&T) -> V + Send + 'static,
    V: std::ops::AddAssign + Default + Send + 'static,
{
    fn merge(&mut self, acc: &mut V, other: V, _other_has_last: bool) {
        *acc += other;
    }
}

/// The mean of `f(record)`, as `f64`.
pub fn mean<T, V, F>(f: F) -> Mean<F, V>
where
    F: FnMut(&T) -> V,
{
    Mean(of(f))
}

/// Made by [`mean`].
#[derive(Debug, Clone, Copy)]
pub struct Mean<F, V>(Of<F, V>);

impl<T, V, F> Aggregate<T> for Mean<F, V>
where
    F: FnMut(&T) -> V + Send + 'static,
    V: Into<f64> + 'static,
{
    type Acc = (f64, u64);
    type Out = f64;

    fn init(&mut self) -> (f64, u64) {
        (0.0, 0)
    }

    fn update(&mut self, acc: &mut (f64, u64), record: &T) {
        acc.0 += (self.0.f)(record).into();
        acc.1 += 1;
    }

    fn finish(&mut self, (sum, n): (f64, u64)) -> f64 {
        sum / n as f64
    }
}

impl<T, V, F> Merge<T> for Mean<F, V>
where
    F: FnMut(&T) -> V + Send + 'static,
    V: Into<f64> + 'static,
{
    fn merge(&mut self, acc: &mut (f64, u64), other: (f64, u64), _other_has_last: bool) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
}

macro_rules! extreme {
    ($(#[$doc:meta])* $fn:ident, $ty:ident, $keep:expr, $merge:expr) => {
        $(#[$doc])*
        pub fn $fn<T, V, F>(f: F) -> $ty<F, V>
        where
            F: FnMut(&T) -> V,
        {
            $ty(of(f))
        }

        #[doc = concat!("Made by [`", stringify!($fn), "`].")]
        #[derive(Debug, Clone, Copy)]
        pub struct $ty<F, V>(Of<F, V>);

        impl<T, V, F> Aggregate<T> for $ty<F, V>
        where
            F: FnMut(&T) -> V + Send + 'static,
            V: PartialOrd + StateSize + Send + 'static,
        {
            type Acc = Option<V>;
            type Out = V;

            fn init(&mut self) -> Option<V> {
                None
            }

            fn update(&mut self, acc: &mut Option<V>, record: &T) {
                let v = (self.0.f)(record);
                let keep: fn(&V, &V) -> bool = $keep;
                match acc {
                    Some(held) if !keep(&v, held) => {}
                    _ => *acc = Some(v),
                }
            }

            fn finish(&mut self, acc: Option<V>) -> V {
                acc.expect("a group holds one record at least")
            }

            fn acc_heap(&self, acc: &Option<V>) -> usize {
                acc.heap_bytes()
            }
        }

        impl<T, V, F> Merge<T> for $ty<F, V>
        where
            F: FnMut(&T) -> V + Send + 'static,
            V: PartialOrd + StateSize + Send + 'static,
        {
            fn merge(&mut self, acc: &mut Option<V>, other: Option<V>, other_has_last: bool) {
                let Some(v) = other else { return };
                // Whether `other`'s value replaces `acc`'s.
                let replace: fn(&V, &V, bool) -> bool = $merge;
                match acc {
                    Some(held) if !replace(&v, held, other_has_last) => {}
                    _ => *acc = Some(v),
                }
            }
        }
    };
}

extreme!(
    /// The least `f(record)` (the first of equals; values that do not
    /// compare, such as `NaN`, never replace another).
    min, Min, |v, held| v < held, |v, held, _| v < held
);
extreme!(
    /// The greatest `f(record)` (the first of equals).
    max, Max, |v, held| v > held, |v, held, _| v > held
);
extreme!(
    /// `f` of the group's first record.
    first, First, |_, _| false, |_, _, _| false
);
extreme!(
    /// `f` of the group's last record.
    last, Last, |_, _| true, |_, _, other_has_last| other_has_last
);

/// The number of distinct values of `f(record)`. Its state grows with the
/// values seen: it counts in the stage's `state_bytes`.
pub fn count_distinct<T, V, F>(f: F) -> CountDistinct<F, V>
where
    F: FnMut(&T) -> V,
{
    CountDistinct(of(f))
}

/// Made by [`count_distinct`].
#[derive(Debug, Clone, Copy)]
pub struct CountDistinct<F, V>(Of<F, V>);

impl<T, V, F> Aggregate<T> for CountDistinct<F, V>
where
    F: FnMut(&T) -> V + Send + 'static,
    V: Hash + Eq + StateSize + Send + 'static,
{
    type Acc = Distinct<V>;
    type Out = u64;

    fn init(&mut self) -> Distinct<V> {
        Distinct {
            seen: HashSet::default(),
            heap: 0,
        }
    }

    fn update(&mut self, acc: &mut Distinct<V>, record: &T) {
        let v = (self.0.f)(record);
        let heap = v.heap_bytes();
        if acc.seen.insert(v) {
            acc.heap += heap;
        }
    }

    fn finish(&mut self, acc: Distinct<V>) -> u64 {
        acc.seen.len() as u64
    }

    fn acc_heap(&self, acc: &Distinct<V>) -> usize {
        acc.seen.capacity() * (std::mem::size_of::<V>() + 1) * 8 / 7 + acc.heap
    }
}

/// The number of distinct values of a field the record holds, looked up by
/// reference: `count_distinct_ref(|o: &Order| o.user.as_str())` makes an
/// owned value only for a value not seen before, where [`count_distinct`]
/// with `o.user.clone()` makes one for every record.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::state::agg;
///
/// let out = Collected::new();
/// let visits = vec![(1, "ana".to_string()), (1, "bo".to_string()), (1, "ana".to_string())];
/// Pipeline::from(source::iter(visits))
///     .key_by(|v: &(i32, String)| v.0)
///     .aggregate(agg::count_distinct_ref(|v: &(i32, String)| v.1.as_str()))
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![(1, 2)]);
/// # Ok(()) }
/// ```
pub fn count_distinct_ref<T, Q, F>(f: F) -> CountDistinctRef<F>
where
    F: for<'a> FnMut(&'a T) -> &'a Q,
    Q: ?Sized,
{
    CountDistinctRef(f)
}

/// Made by [`count_distinct_ref`].
#[derive(Debug, Clone, Copy)]
pub struct CountDistinctRef<F>(F);

impl<T, Q, F> Aggregate<T> for CountDistinctRef<F>
where
    F: for<'a> FnMut(&'a T) -> &'a Q + Send + 'static,
    Q: ?Sized + Hash + Eq + ToOwned + 'static,
    Q::Owned: Hash + Eq + StateSize + Send + 'static + std::borrow::Borrow<Q>,
{
    type Acc = Distinct<Q::Owned>;
    type Out = u64;

    fn init(&mut self) -> Distinct<Q::Owned> {
        Distinct {
            seen: HashSet::default(),
            heap: 0,
        }
    }

    fn update(&mut self, acc: &mut Distinct<Q::Owned>, record: &T) {
        let v = (self.0)(record);
        if !acc.seen.contains(v) {
            let owned = v.to_owned();
            acc.heap += owned.heap_bytes();
            acc.seen.insert(owned);
        }
    }

    fn finish(&mut self, acc: Distinct<Q::Owned>) -> u64 {
        acc.seen.len() as u64
    }

    fn acc_heap(&self, acc: &Distinct<Q::Owned>) -> usize {
        acc.seen.capacity() * (std::mem::size_of::<Q::Owned>() + 1) * 8 / 7 + acc.heap
    }
}

/// The state of a [`count_distinct`]: the values seen, and the heap bytes
/// they own (kept as they come, so the estimate costs nothing).
#[derive(Debug)]
pub struct Distinct<V> {
    seen: HashSet<V>,
    heap: usize,
}

impl<T, V, F> Merge<T> for CountDistinct<F, V>
where
    F: FnMut(&T) -> V + Send + 'static,
    V: Hash + Eq + StateSize + Send + 'static,
{
    fn merge(&mut self, acc: &mut Distinct<V>, other: Distinct<V>, _other_has_last: bool) {
        let (mut into, from) = if acc.seen.len() < other.seen.len() {
            (
                other,
                std::mem::replace(
                    acc,
                    Distinct {
                        seen: HashSet::default(),
                        heap: 0,
                    },
                ),
            )
        } else {
            (
                std::mem::replace(
                    acc,
                    Distinct {
                        seen: HashSet::default(),
                        heap: 0,
                    },
                ),
                other,
            )
        };
        for v in from.seen {
            let heap = v.heap_bytes();
            if into.seen.insert(v) {
                into.heap += heap;
            }
        }
        *acc = into;
    }
}

/// An aggregate of a closure: each group starts at `init` (cloned) and
/// `f(&mut acc, record)` takes each record in.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
///
/// let out = Collected::new();
/// Pipeline::from(source::iter(vec![("a", 3), ("b", 1), ("a", 4)]))
///     .key_by(|r: &(&'static str, i32)| r.0)
///     .fold(Vec::new(), |acc: &mut Vec<i32>, r: &(&'static str, i32)| acc.push(r.1))
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![("a", vec![3, 4]), ("b", vec![1])]);
/// # Ok(()) }
/// ```
pub fn fold<T, A, F>(init: A, f: F) -> Fold<A, F>
where
    A: Clone,
    F: FnMut(&mut A, &T),
{
    Fold { init, f }
}

/// Made by [`fold`].
#[derive(Debug, Clone)]
pub struct Fold<A, F> {
    init: A,
    f: F,
}

impl<T, A, F> Aggregate<T> for Fold<A, F>
where
    A: Clone + StateSize + Send + 'static,
    F: FnMut(&mut A, &T) + Send + 'static,
{
    type Acc = A;
    type Out = A;

    fn init(&mut self) -> A {
        self.init.clone()
    }

    fn update(&mut self, acc: &mut A, record: &T) {
        (self.f)(acc, record);
    }

    fn finish(&mut self, acc: A) -> A {
        acc
    }

    fn acc_heap(&self, acc: &A) -> usize {
        acc.heap_bytes()
    }
}

/// An aggregate combining a group's records two by two: the first record
/// (cloned) is the start, `f(&mut acc, record)` takes each next one in.
pub fn reduce<T, F>(f: F) -> Reduce<F>
where
    F: FnMut(&mut T, &T),
{
    Reduce(f)
}

/// Made by [`reduce`].
#[derive(Debug, Clone)]
pub struct Reduce<F>(F);

impl<T, F> Aggregate<T> for Reduce<F>
where
    T: Clone + StateSize + Send + 'static,
    F: FnMut(&mut T, &T) + Send + 'static,
{
    type Acc = Option<T>;
    type Out = T;

    fn init(&mut self) -> Option<T> {
        None
    }

    fn update(&mut self, acc: &mut Option<T>, record: &T) {
        match acc {
            Some(held) => (self.0)(held, record),
            None => *acc = Some(record.clone()),
        }
    }

    fn finish(&mut self, acc: Option<T>) -> T {
        acc.expect("a group holds one record at least")
    }

    fn acc_heap(&self, acc: &Option<T>) -> usize {
        acc.heap_bytes()
    }
}

impl<T, F> Merge<T> for Reduce<F>
where
    T: Clone + StateSize + Send + 'static,
    F: FnMut(&mut T, &T) + Send + 'static,
{
    fn merge(&mut self, acc: &mut Option<T>, other: Option<T>, _other_has_last: bool) {
        match (acc.as_mut(), other) {
            (Some(held), Some(other)) => (self.0)(held, &other),
            (None, other) => *acc = other,
            (Some(_), None) => {}
        }
    }
}

macro_rules! tuple_aggregates {
    ($(($($n:tt $a:ident),*)),*) => {$(
        impl<T, $($a: Aggregate<T>),*> Aggregate<T> for ($($a,)*) {
            type Acc = ($($a::Acc,)*);
            type Out = ($($a::Out,)*);

            fn init(&mut self) -> Self::Acc {
                ($(self.$n.init(),)*)
            }

            fn update(&mut self, acc: &mut Self::Acc, record: &T) {
                $(self.$n.update(&mut acc.$n, record);)*
            }

            fn finish(&mut self, acc: Self::Acc) -> Self::Out {
                ($(self.$n.finish(acc.$n),)*)
            }

            fn acc_heap(&self, acc: &Self::Acc) -> usize {
                0 $(+ self.$n.acc_heap(&acc.$n))*
            }
        }

        impl<T, $($a: Merge<T>),*> Merge<T> for ($($a,)*) {
            fn merge(&mut self, acc: &mut Self::Acc, other: Self::Acc, other_has_last: bool) {
                $(self.$n.merge(&mut acc.$n, other.$n, other_has_last);)*
            }
        }
    )*};
}
tuple_aggregates!(
    (0 A),
    (0 A, 1 B),
    (0 A, 1 B, 2 C),
    (0 A, 1 B, 2 C, 3 D),
    (0 A, 1 B, 2 C, 3 D, 4 E),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H)
);
