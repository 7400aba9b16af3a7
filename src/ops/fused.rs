use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project::pin_project;

use crate::batch::SharedView;
use crate::metrics::clock::Instant;
use crate::metrics::{StageMetrics, Tally};
use crate::source::Source;
use crate::{Batch, Error, Result};

mod sealed {
    pub trait Sealed {}
}

/// One per-record stage of a fused pass: [`Map`](super::Map),
/// [`Filter`](super::Filter), [`FilterMap`](super::FilterMap),
/// [`FlatMap`](super::FlatMap), [`Inspect`](super::Inspect), or a chain of them
/// ([`Then`]).
///
/// Adjacent steps run as one iterator chain over each batch, collected once: one
/// pass over the records, no intermediate batch, and the input's allocation
/// reused when the record types have the same layout (std's in-place `collect`).
/// Sealed: add a stage of your own with a [`BatchOp`](super::BatchOp) instead.
pub trait Step<T>: sealed::Sealed + Send + 'static {
    /// The records this step produces.
    type Out: Send + 'static;

    /// This step's records, lazily, from its input's. With `COUNT`, steps that
    /// may change the number of records count what they pass on.
    #[doc(hidden)]
    fn apply<'a, const COUNT: bool, I>(
        &'a mut self,
        records: I,
    ) -> impl Iterator<Item = Self::Out> + 'a
    where
        I: Iterator<Item = T> + 'a;

    /// How many steps here may pass on fewer or more records than they
    /// receive. With one, the pass needs no counting: its input and output
    /// counts are that step's, and every other step passes on what it gets.
    #[doc(hidden)]
    fn count_changers(&self) -> usize;

    /// Records the statistics of one pass: `records_in` reached the step, and
    /// `pass_out` left the pass; `counted` if the pass ran with `COUNT`.
    /// Returns the records the step passed on.
    #[doc(hidden)]
    fn settle(&mut self, records_in: usize, pass_out: usize, counted: bool) -> usize;

    /// The stage whose user code panicked during the pass, if it was this one;
    /// forgets the panic.
    #[doc(hidden)]
    fn culprit(&mut self) -> Option<String>;

    /// The start of a pass, if the first stage times this one (see
    /// [`Tally`]).
    #[doc(hidden)]
    fn start_pass(&mut self) -> Option<Instant>;

    /// Counts the pass [`start_pass`](Step::start_pass) started as the first
    /// stage's busy time.
    #[doc(hidden)]
    fn end_pass(&mut self, start: Option<Instant>);

    /// Adds every step's counts so far to its stage's shared counters (see
    /// [`Tally`]).
    #[doc(hidden)]
    fn publish(&mut self);

    /// The span of the pass (its first stage's), entered for each batch.
    #[doc(hidden)]
    fn span(&self) -> &tracing::Span;

    /// Counts the `records` of a pass that panicked as received and
    /// abandoned by the first stage, and returns its name.
    #[doc(hidden)]
    fn lose_pass(&mut self, records: usize) -> String;

    /// True if the pass starts with a `filter`, which can look at records
    /// shared with other branches by reference, so only the records it keeps
    /// are copied.
    #[doc(hidden)]
    fn starts_with_filter(&self) -> bool {
        false
    }

    /// Runs the leading `filter` on a record by reference (counting what it
    /// keeps): whether it keeps the record.
    #[doc(hidden)]
    fn admit(&mut self, _record: &T) -> bool {
        true
    }

    /// This step's records, as [`apply`](Step::apply) gives them, but for a
    /// leading `filter`, which already ran on them by [`admit`](Step::admit).
    #[doc(hidden)]
    fn apply_after_filter<'a, const COUNT: bool, I>(
        &'a mut self,
        records: I,
    ) -> impl Iterator<Item = Self::Out> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        self.apply::<COUNT, _>(records)
    }
}

/// Two fused steps, `A` then `B`.
pub struct Then<A, B> {
    a: A,
    b: B,
}

impl<A, B> sealed::Sealed for Then<A, B> {}

impl<T, A, B> Step<T> for Then<A, B>
where
    A: Step<T>,
    B: Step<A::Out>,
{
    type Out = B::Out;

    fn apply<'a, const COUNT: bool, I>(
        &'a mut self,
        records: I,
    ) -> impl Iterator<Item = B::Out> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        self.b.apply::<COUNT, _>(self.a.apply::<COUNT, _>(records))
    }

    fn count_changers(&self) -> usize {
        self.a.count_changers() + self.b.count_changers()
    }

    fn settle(&mut self, records_in: usize, pass_out: usize, counted: bool) -> usize {
        let between = self.a.settle(records_in, pass_out, counted);
        self.b.settle(between, pass_out, counted)
    }

    fn culprit(&mut self) -> Option<String> {
        self.a.culprit().or_else(|| self.b.culprit())
    }

    fn start_pass(&mut self) -> Option<Instant> {
        self.a.start_pass()
    }

    fn end_pass(&mut self, start: Option<Instant>) {
        self.a.end_pass(start);
    }

    fn publish(&mut self) {
        self.a.publish();
        self.b.publish();
    }

    fn span(&self) -> &tracing::Span {
        self.a.span()
    }

    fn lose_pass(&mut self, records: usize) -> String {
        self.a.lose_pass(records)
    }

    fn starts_with_filter(&self) -> bool {
        self.a.starts_with_filter()
    }

    fn admit(&mut self, record: &T) -> bool {
        self.a.admit(record)
    }

    fn apply_after_filter<'a, const COUNT: bool, I>(
        &'a mut self,
        records: I,
    ) -> impl Iterator<Item = B::Out> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        self.b
            .apply::<COUNT, _>(self.a.apply_after_filter::<COUNT, _>(records))
    }
}

impl<A: fmt::Debug, B: fmt::Debug> fmt::Debug for Then<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Then").field(&self.a).field(&self.b).finish()
    }
}

/// What every step keeps besides its closure: its stage's counts (kept in a
/// [`Tally`], published by the pass), its count of records passed on (in a
/// counting pass) and whether its user code panicked.
pub(crate) struct StepState {
    tally: Tally,
    // Cells, so a `flat_map`'s inner iterators can share them with its closure.
    counted: Cell<usize>,
    panicked: Cell<bool>,
}

/// Marks its step as the culprit if dropped, which happens only while a panic
/// unwinds through the user code it guards: the happy path forgets it, and
/// costs nothing (a `catch_unwind` per call measured 30% more instructions).
struct Culprit<'a>(&'a Cell<bool>);

impl Drop for Culprit<'_> {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

impl StepState {
    pub(crate) fn new(stage: Arc<StageMetrics>) -> Self {
        StepState {
            tally: Tally::new(stage),
            counted: Cell::new(0),
            panicked: Cell::new(false),
        }
    }

    /// Calls user code: a panic marks this step as the culprit and unwinds on
    /// to the pass's guard, which turns it into an error naming the stage.
    #[inline(always)]
    pub(crate) fn call<R>(&self, f: impl FnOnce() -> R) -> R {
        let culprit = Culprit(&self.panicked);
        let r = f();
        std::mem::forget(culprit);
        r
    }

    /// Counts `n` records passed on, in a counting pass.
    #[inline(always)]
    pub(crate) fn count<const COUNT: bool>(&self, n: usize) {
        if COUNT {
            self.counted.set(self.counted.get() + n);
        }
    }

    /// Records one pass of a step that passes on exactly what it receives.
    pub(crate) fn settle_one_to_one(&mut self, records_in: usize) -> usize {
        self.record(records_in, records_in);
        records_in
    }

    /// Records one pass of a step that may drop or add records.
    pub(crate) fn settle_changed(
        &mut self,
        records_in: usize,
        pass_out: usize,
        counted: bool,
    ) -> usize {
        let out = if counted {
            self.counted.take()
        } else {
            pass_out
        };
        self.record(records_in, out);
        out
    }

    fn record(&mut self, records_in: usize, records_out: usize) {
        // As if the step ran on its own: a batch emptied upstream in the pass
        // never reaches it.
        if records_in > 0 {
            self.tally.batch_in(records_in);
        }
        self.tally.balance(records_in, records_out);
        if records_out > 0 {
            self.tally.batch_out(records_out);
        }
    }

    pub(crate) fn culprit(&mut self) -> Option<String> {
        self.counted.set(0);
        self.panicked.take().then(|| self.tally.stage().name())
    }

    pub(crate) fn start_pass(&mut self) -> Option<Instant> {
        self.tally.start()
    }

    pub(crate) fn end_pass(&mut self, start: Option<Instant>) {
        self.tally.stop(start);
    }

    pub(crate) fn publish(&mut self) {
        self.tally.publish();
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        self.tally.stage().span()
    }

    pub(crate) fn lose_pass(&mut self, records: usize) -> String {
        self.tally.publish();
        let stage = self.tally.stage();
        stage.batch_in(records);
        stage.abandon(records);
        stage.name()
    }
}

/// Implements the parts of [`Step`] that only touch the [`StepState`] in a
/// field named `state`, for a step that does (`counted`) or does not
/// (`one_to_one`) change the number of records.
macro_rules! step_bookkeeping {
    (one_to_one) => {
        fn count_changers(&self) -> usize {
            0
        }
        fn settle(&mut self, records_in: usize, _pass_out: usize, _counted: bool) -> usize {
            self.state.settle_one_to_one(records_in)
        }
        step_bookkeeping!(common);
    };
    (changes_count) => {
        fn count_changers(&self) -> usize {
            1
        }
        fn settle(&mut self, records_in: usize, pass_out: usize, counted: bool) -> usize {
            self.state.settle_changed(records_in, pass_out, counted)
        }
        step_bookkeeping!(common);
    };
    (common) => {
        fn culprit(&mut self) -> Option<String> {
            self.state.culprit()
        }
        fn start_pass(&mut self) -> Option<$crate::metrics::clock::Instant> {
            self.state.start_pass()
        }
        fn end_pass(&mut self, start: Option<$crate::metrics::clock::Instant>) {
            self.state.end_pass(start);
        }
        fn publish(&mut self) {
            self.state.publish();
        }
        fn span(&self) -> &tracing::Span {
            self.state.span()
        }
        fn lose_pass(&mut self, records: usize) -> String {
            self.state.lose_pass(records)
        }
    };
}
pub(crate) use step_bookkeeping;

/// Marks the steps of this module as [`Step`]s.
macro_rules! sealed_step {
    ($($name:ident),*) => {
        $(impl<F> sealed::Sealed for super::$name<F> {})*
    };
}
sealed_step!(Map, Filter, FilterMap, FlatMap, Inspect);

/// The stream adapter that runs a fused chain of per-record [`Step`]s over
/// every batch of its upstream, in one pass.
///
/// Created by [`Pipeline::map`](crate::Pipeline::map),
/// [`filter`](crate::Pipeline::filter) and the other per-record methods;
/// adjacent ones extend the same pass. Batches the pass leaves empty are not
/// passed on.
///
/// Each stage of the pass keeps its own counts. Their work cannot be timed
/// apart, so the pass's time is counted as the first stage's `busy` time.
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Fused<S, C> {
    #[pin]
    upstream: S,
    steps: C,
    // More than one stage of the pass may change the number of records, so
    // they count what they pass on (a per-record cost the common pass avoids).
    counting: bool,
    done: bool,
}

/// One pass of `steps` over a batch's records, in a function of its own
/// rather than inside `poll_next`. Whether the compiler inlines the record
/// loop (std's in-place `collect`) is its own choice and moved with unrelated
/// changes elsewhere in the crate: the pipeline bench's fused map → filter
/// measured 0.56x of the hand-written batch loop with the pass inside
/// `poll_next` and 0.68–0.71x with it here, same source otherwise. Re-measure
/// (`cargo bench --bench pipeline`) after changing anything around it.
///
/// One function per `COUNT`, not both collects behind an `if`: with two, std's
/// `IntoIter::try_fold` was left out of line, its iterator behind a pointer,
/// stored and reloaded around every user call (an opaque call may read it):
/// 201.7 M instructions for the bench's 10 M records; with one it is inlined,
/// the loop keeps the iterator in registers as the hand loop does: 178.1 M.
#[inline(never)]
fn run_pass<T, C: Step<T>, const COUNT: bool>(steps: &mut C, batch: Batch<T>) -> Vec<C::Out> {
    let records = batch.into_records().into_iter();
    // One `collect` of one iterator chain: std collects it in place when the
    // record types have the same layout.
    steps.apply::<COUNT, _>(records).collect()
}

/// A pass over a batch a `tee` shares with other branches that still hold it
/// (taking its records would copy them all), for steps that start with a
/// `filter`: the filter runs on the shared records, only those it keeps are
/// copied, and the rest of the pass runs on them. Every step counts what it
/// passes on, as in a counting pass.
#[inline(never)]
fn run_shared_pass<T, C: Step<T>>(steps: &mut C, shared: SharedView<'_, T>) -> Vec<C::Out> {
    let kept: Vec<T> = shared
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| steps.admit(r))
        .map(|(i, _)| shared.clone_at(i))
        .collect();
    steps
        .apply_after_filter::<true, _>(kept.into_iter())
        .collect()
}

impl<S, C> Stream for Fused<S, C>
where
    S: Source,
    C: Step<S::Record>,
{
    type Item = Result<Batch<C::Out>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            // Anything but a batch to pass on: the counts are published first
            // (see `Tally`).
            let batch = match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => batch,
                Poll::Ready(Some(Err(e))) => {
                    this.steps.publish();
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.steps.publish();
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    this.steps.publish();
                    return Poll::Pending;
                }
            };
            let mut batch = batch;
            let records_in = batch.len();
            let meta = batch.take_meta();
            let start = this.steps.start_pass();
            let steps = &mut *this.steps;
            let counting = *this.counting;
            let shared = steps.starts_with_filter() && batch.shared().is_some();
            // The shared pass counts at every step, as a counting pass does.
            let counting = counting || shared;
            let span = steps.span().clone();
            let _entered = span.enter();
            let pass = catch_unwind(AssertUnwindSafe(|| match batch.shared() {
                Some(view) if shared => run_shared_pass(steps, view),
                _ if counting => run_pass::<_, _, true>(steps, batch),
                _ => run_pass::<_, _, false>(steps, batch),
            }));
            this.steps.end_pass(start);
            let records = match pass {
                Ok(records) => records,
                Err(payload) => {
                    // The batch is lost with the run: it counts as abandoned
                    // where it entered the pass.
                    let first = this.steps.lose_pass(records_in);
                    let culprit = this.steps.culprit().unwrap_or(first);
                    this.steps.publish();
                    *this.done = true;
                    return Poll::Ready(Some(Err(Error::panic(payload).with_stage(culprit))));
                }
            };
            this.steps.settle(records_in, records.len(), counting);
            if !records.is_empty() {
                return Poll::Ready(Some(Ok(Batch::from_parts(records, meta))));
            }
        }
    }
}

impl<S, C> fmt::Debug for Fused<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The per-record steps a [`Pipeline`](crate::Pipeline) holds since its last
/// stream adapter: none ([`Pass`]) or a chain of [`Step`]s, fused into one
/// pass over each batch.
///
/// The builder keeps these apart from the stream until another kind of stage
/// (or the sink) is added, then *seals* them onto the stream: no steps leave
/// the stream as it is, steps wrap it in one [`Fused`] pass. So fusion needs
/// nothing from the adapters themselves: any stream is a boundary. Sealed.
pub trait Steps<T>: sealed::Sealed + Send + 'static {
    /// The records coming out of the steps.
    type Out: Send + 'static;
    /// These steps followed by `X`.
    type With<X: Step<Self::Out>>;
    /// A stream of `T` with these steps run over it.
    type Sealed<S: Source<Record = T>>: Source<Record = Self::Out>;

    /// Adds `step` after these.
    #[doc(hidden)]
    fn with<X: Step<Self::Out>>(self, step: X) -> Self::With<X>;

    /// Runs these steps over `stream`.
    #[doc(hidden)]
    fn seal<S: Source<Record = T>>(self, stream: S) -> Self::Sealed<S>;
}

/// The stream of a pipeline `Pipeline<S, C>` with its pending steps `C` sealed
/// onto it: the upstream of the next stage.
pub type Sealed<S, C> = <C as Steps<<S as Source>::Record>>::Sealed<S>;

/// No per-record step: the stream goes on as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass;

impl sealed::Sealed for Pass {}

impl<T: Send + 'static> Steps<T> for Pass {
    type Out = T;
    type With<X: Step<T>> = X;
    type Sealed<S: Source<Record = T>> = S;

    fn with<X: Step<T>>(self, step: X) -> X {
        step
    }

    fn seal<S: Source<Record = T>>(self, stream: S) -> S {
        stream
    }
}

/// Makes each step type (and chains of them) a [`Steps`] of its own: a closed
/// list, as [`Step`] is sealed; stream adapters need no such thing.
macro_rules! steps_of_step {
    ($([$($generics:ident),*] $ty:ty),*) => {$(
        impl<T, $($generics),*> Steps<T> for $ty
        where
            $ty: Step<T>,
        {
            type Out = <$ty as Step<T>>::Out;
            type With<X: Step<Self::Out>> = Then<$ty, X>;
            type Sealed<S: Source<Record = T>> = Fused<S, $ty>;

            fn with<X: Step<Self::Out>>(self, step: X) -> Then<$ty, X> {
                Then { a: self, b: step }
            }

            fn seal<S: Source<Record = T>>(self, stream: S) -> Fused<S, $ty> {
                Fused {
                    upstream: stream,
                    counting: self.count_changers() > 1,
                    steps: self,
                    done: false,
                }
            }
        }
    )*};
}
steps_of_step!(
    [F] super::Map<F>,
    [F] super::Filter<F>,
    [F] super::FilterMap<F>,
    [F] super::FlatMap<F>,
    [F] super::Inspect<F>,
    [A, B] Then<A, B>
);
