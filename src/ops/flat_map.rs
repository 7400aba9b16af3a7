use std::fmt;
use std::sync::Arc;

use super::fused::{Step, StepState, step_bookkeeping};
use crate::metrics::StageMetrics;

/// The records one call returned: pulling them runs user code too (the
/// iterator's `next`), guarded and counted like the call.
struct Guarded<'a, I, const COUNT: bool> {
    records: I,
    state: &'a StepState,
}

impl<I: Iterator, const COUNT: bool> Iterator for Guarded<'_, I, COUNT> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let next = self.state.call(|| self.records.next());
        self.state.count::<COUNT>(next.is_some() as usize);
        next
    }
}

/// Maps each record to any number of records.
///
/// Created by [`Pipeline::flat_map`](crate::Pipeline::flat_map).
pub struct FlatMap<F> {
    f: F,
    state: StepState,
}

impl<F> FlatMap<F> {
    pub(crate) fn new(f: F, stage: Arc<StageMetrics>) -> Self {
        FlatMap {
            f,
            state: StepState::new(stage),
        }
    }
}

impl<T, R, F> Step<T> for FlatMap<F>
where
    F: FnMut(T) -> R + Send + 'static,
    R: IntoIterator,
    R::IntoIter: 'static,
    R::Item: Send + 'static,
{
    type Out = R::Item;

    fn apply<'a, const COUNT: bool, I>(
        &'a mut self,
        records: I,
    ) -> impl Iterator<Item = R::Item> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        let (f, state) = (&mut self.f, &self.state);
        records.flat_map(move |r| Guarded::<_, COUNT> {
            records: state.call(|| f(r)).into_iter(),
            state,
        })
    }

    step_bookkeeping!(changes_count);
}

impl<F> fmt::Debug for FlatMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatMap").finish_non_exhaustive()
    }
}
